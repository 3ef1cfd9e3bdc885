# northwind-elt: every command a user needs. `make help` lists them.
# The two that matter: `make pipeline DATE=YYYY-MM-DD` and `make test`; both set the project up first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NWELT := $(BIN)/nwelt
SETUP_STAMP := $(VENV)/.setup-done
DATE ?=
export DATE

.PHONY: help setup db-up db-down db-status extract-postgres extract-csv load transform export \
        pipeline status backfill docs test test-compose clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: $(SETUP_STAMP) ## create .venv, install pinned deps, meltano install (quick when done)
	@mkdir -p data/compose  # Docker Compose's data folder, yours before a container can make it root's

$(SETUP_STAMP): requirements.txt pyproject.toml meltano.yml extract/*.meltano.yml load/*.meltano.yml transform/*.meltano.yml \
                extract/tap-northwind-csv/pyproject.toml load/tap-landing/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10+ is needed")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==26.3
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(NWELT) setup
	touch $@

db-up: setup ## start the embedded PostgreSQL (init and seed on first use)
	@$(NWELT) db up
db-down: setup ## stop the embedded PostgreSQL
	@$(NWELT) db down
db-status: setup ## is the embedded PostgreSQL running?
	@$(NWELT) db status

extract-postgres: setup ## step 1a: all source tables -> data/postgres/{table}/{DATE}/
	@$(NWELT) run extract-postgres --date "$(DATE)"
extract-csv: setup ## step 1b: order_details.csv -> data/csv/order_details/{DATE}/
	@$(NWELT) run extract-csv --date "$(DATE)"
load: setup ## step 2: the day's landed files -> warehouse (refuses unless step 1 succeeded)
	@$(NWELT) run load --date "$(DATE)"
transform: setup ## dbt build of the orders_details mart for DATE
	@$(NWELT) run transform --date "$(DATE)"
export: setup ## mart rows of DATE -> data/output/{DATE}/orders_details.csv and .json
	@$(NWELT) run export --date "$(DATE)"

pipeline: setup ## run every step for DATE (default today); STEP=load resumes from a step
	@$(NWELT) pipeline --date "$(DATE)" $(if $(STEP),--from-step $(STEP))
status: setup ## step outcomes for DATE (or the last DAYS days) and the command to resume
	@$(NWELT) status $(if $(DATE),--date "$(DATE)") $(if $(DAYS),--days $(DAYS))
backfill: setup ## run the pipeline for every day from START to END
	@$(NWELT) backfill --start "$(START)" --end "$(END)"

docs: setup ## generate the dbt docs site and serve it on DOCS_PORT (default 8081)
	@$(NWELT) docs

test: setup airflow-setup ## run the whole test suite (real PostgreSQL, Meltano, dbt and Airflow)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-compose: ## the Docker Compose stack end to end (installs Docker and Compose from Debian if missing, as root)
	bash tests/compose/run.sh

clean: ## stop the database and remove local state (.venv*, .meltano, .pg, .airflow, data/ except source files)
	-@test -x $(NWELT) && $(NWELT) db down
	rm -rf $(VENV) .venv-airflow .airflow .meltano .pg transform/target transform/logs
	find data -mindepth 1 -maxdepth 1 ! -name source -exec rm -rf {} + 2>/dev/null || true

# Airflow lives in its own venv (.venv-airflow) so its pins never meet the pipeline's.
AIRFLOW_VENV := .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.setup-done
AIRFLOW_ENV := PATH="$(CURDIR)/$(AIRFLOW_VENV)/bin:$$PATH" AIRFLOW_HOME=$(CURDIR)/.airflow \
               AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/orchestrate/airflow/dags AIRFLOW__CORE__LOAD_EXAMPLES=False
.PHONY: airflow-setup airflow

airflow-setup: $(AIRFLOW_STAMP) ## create .venv-airflow with the pinned Airflow 3 (quick when done)

$(AIRFLOW_STAMP): orchestrate/airflow/requirements.txt
	@test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet uv==0.13.9
	$(AIRFLOW_VENV)/bin/uv pip install --quiet --compile-bytecode --python $(AIRFLOW_VENV)/bin/python -r orchestrate/airflow/requirements.txt
	touch $@

airflow: setup airflow-setup ## Airflow UI + scheduler on http://localhost:8080 with the northwind_elt DAG (airflow standalone)
	$(AIRFLOW_ENV) $(AIRFLOW_VENV)/bin/airflow standalone

SCALE ?= 1
.PHONY: bench
bench: setup ## benchmark every step on a scaled Northwind (SCALE=K, default 1) against raw PostgreSQL COPY
	$(BIN)/python scripts/bench.py --scale $(SCALE) $(BENCH_ARGS)

.PHONY: bench-profile
bench-profile: setup ## where one step's CPU time goes, per process (py-spy): STEP=extract-csv SCALE=K
	$(BIN)/python -m pip install --quiet py-spy==0.4.3
	$(BIN)/python scripts/bench_profile.py --scale $(SCALE) --step $(or $(STEP),extract-csv)

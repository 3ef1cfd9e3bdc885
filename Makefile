# northwind-elt: every command a user needs. `make help` lists them.
# The two that matter: `make pipeline DATE=YYYY-MM-DD` and `make test`; both set the project up first.
override SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
SCALE ?= 1
export PYTHON SCALE
override VENV := .venv
override BIN := $(VENV)/bin
override NWELT := $(BIN)/nwelt
override SETUP_STAMP := $(VENV)/.setup-done

# No value given to make, on its command line or in its environment, reaches a shell, whatever
# its name. GNU make expands a command-line variable when it exports it to a recipe
# (`make status 'DATA_DIR=$(shell …)'` would run it) and any variable the Makefile reads, so each
# one becomes a simple variable holding its text ($(value …)), exported as make would: the
# environment's as they came, command-line ones if named with letters, digits and _ only (no
# `BASH_FUNC_f%%` for bash). Make's own MFLAGS… stay make's; sub-makes get the values from the
# environment, not as definitions (MAKEOVERRIDES). The Makefile's own variables are `override`, so
# no command line swaps in a command, and its helpers are unexported (an environment variable of
# that name would otherwise be expanded). Recipes use values only as quoted environment variables
# ("$$DATE"; "$$PYTHON" is one program), never pasted into the command text; nwelt validates each
# and names it. PYTEST_ARGS goes through PYTEST_ADDOPTS (pytest splits it like a shell, runs
# nothing); BENCH_ARGS is split at whitespace only.
# $(call non-word,NAME,$(word-chars)): what is left of NAME without letters, digits and _
override word-chars := a b c d e f g h i j k l m n o p q r s t u v w x y z A B C D E F G H I J K L M N O P Q R S T U V W X Y Z 0 1 2 3 4 5 6 7 8 9 _
override non-word = $(if $2,$(call non-word,$(subst $(firstword $2),,$1),$(wordlist 2,99,$2)),$1)
# $(call keep-text,NAME): NAME, if given on the command line or in the environment, keeps its text
override keep-text = $(if $(filter command,$(firstword $(origin $1))),\
    $(if $(call non-word,$1,$(word-chars)),,$(eval export $$1))$(eval override $$1 := $$(value $$1)),\
  $(if $(filter environment,$(firstword $(origin $1))),$(if $(filter MFLAGS GNUMAKEFLAGS MAKEOVERRIDES MAKELEVEL,$1),,\
    $(eval override $$1 := $$(value $$1)))))
$(foreach name,$(.VARIABLES),$(call keep-text,$(name)))
$(call keep-text,name)# the loop's own variable hides a `name` given to make from the loop
override MAKEOVERRIDES :=
unexport word-chars non-word keep-text

.PHONY: help setup db-up db-down db-status extract-postgres extract-csv load transform export \
        pipeline status backfill docs test test-unit test-compose lint clean

help: export HELP_FILE := $(lastword $(MAKEFILE_LIST))
help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' "$$HELP_FILE" | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: $(SETUP_STAMP) ## create .venv, install pinned deps, meltano install (quick when done)
	@mkdir -p data/compose  # Docker Compose's data folder, yours before a container can make it root's

$(SETUP_STAMP): requirements.txt pyproject.toml .env.example meltano.yml extract/*.meltano.yml load/*.meltano.yml transform/*.meltano.yml \
                extract/tap-northwind-csv/pyproject.toml load/tap-landing/pyproject.toml load/target-jsonl-about/pyproject.toml
	@"$$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10+ is needed")'
	@test -x $(BIN)/python || "$$PYTHON" -m venv $(VENV)
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
	@$(NWELT) run extract-postgres --date="$$DATE"
extract-csv: setup ## step 1b: order_details.csv -> data/csv/order_details/{DATE}/
	@$(NWELT) run extract-csv --date="$$DATE"
load: setup ## step 2: the day's landed files -> warehouse (refuses unless step 1 succeeded)
	@$(NWELT) run load --date="$$DATE"
transform: setup ## dbt build of the orders_details mart for DATE
	@$(NWELT) run transform --date="$$DATE"
export: setup ## mart rows of DATE -> data/output/{DATE}/orders_details.csv and .json
	@$(NWELT) run export --date="$$DATE"

pipeline: setup ## run every step for DATE (default today); STEP=load resumes from a step
	@$(NWELT) pipeline --date="$$DATE" $${STEP:+--from-step="$$STEP"}
status: setup ## step outcomes for DATE and the command to resume; START/END (or DAYS=N): one line a day
	@$(NWELT) status $${DATE:+--date="$$DATE"} $${DAYS:+--days="$$DAYS"} $${START:+--start="$$START"} $${END:+--end="$$END"}
backfill: setup ## run the pipeline for every day from START to END
	@$(NWELT) backfill --start="$$START" --end="$$END"

docs: setup ## generate the dbt docs site and serve it on DOCS_PORT (default 8081)
	@$(NWELT) docs

# `make test` runs the end-to-end modules TEST_WORKERS at a time (default 2; 0: in this process;
# pytest-xdist, a module's tests on one worker), then the `serial` tests (tests/conftest.py SERIAL)
# and the unit tier, alone. A part that selects no test exits 5: that fails the run only if the
# other part selected none either. Ctrl-C, -x or --maxfail (pytest's 2) in the first part skip the second.
# PYTEST_ARGS goes to both parts: choose tests by path or -k there, not by -m or -n.
test: setup airflow-setup db-up ## run the whole test suite (real PostgreSQL, Meltano, dbt and Airflow)
	@case "$${TEST_WORKERS:-2}" in *[!0-9]*|"") echo "TEST_WORKERS=$$TEST_WORKERS is not a number of test workers (0: none)" >&2; exit 2;; esac; \
	export PYTEST_ADDOPTS="$${PYTEST_ADDOPTS:-} $$PYTEST_ARGS"; a=0; b=0; set -x; \
	$(BIN)/python -m pytest -n "$${TEST_WORKERS:-2}" --dist loadfile -m "not serial" || a=$$?; \
	[ $$a = 2 ] || $(BIN)/python -m pytest -m serial || b=$$?; { set +x; } 2>/dev/null; \
	case "$$a $$b" in "0 0"|"0 5"|"5 0") ;; *) echo "make test: FAILED (exit $$a of the parallel part, $$b of the serial part; 5: no test selected)" >&2; exit 1;; esac

test-unit: setup airflow-setup ## the quick tier: unit tests (a throwaway PostgreSQL of their own, the DAG's import; under a minute)
	PYTEST_ADDOPTS="$${PYTEST_ADDOPTS:-} $$PYTEST_ARGS" $(BIN)/python -m pytest -m "not e2e"

override LINT_STAMP := $(VENV)/.lint-setup-done
$(LINT_STAMP): requirements-dev.txt $(SETUP_STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

lint: setup $(LINT_STAMP) ## ruff (check, format --check), sqlfluff on transform/, mypy --strict on src/, the taps and the DAG
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd transform && ../$(BIN)/sqlfluff lint .
	$(BIN)/mypy

test-compose: ## the Docker Compose stack end to end (installs Docker and Compose from Debian if missing, as root)
	bash tests/compose/run.sh

clean: ## stop the database and remove local state (.venv*, .meltano, .pg, .airflow, data/ except source files)
	-@test -x $(NWELT) && $(NWELT) db down
	rm -rf $(VENV) .venv-airflow .venv-bench .airflow .meltano .pg transform/target transform/logs
	find data -mindepth 1 -maxdepth 1 ! -name source -exec rm -rf {} + 2>/dev/null || true

# Airflow lives in its own venv (.venv-airflow) so its pins never meet the pipeline's.
override AIRFLOW_VENV := .venv-airflow
override AIRFLOW_STAMP := $(AIRFLOW_VENV)/.setup-done
# `make airflow`: the UI on 127.0.0.1:8080; AIRFLOW__API__PORT=N moves it (the workers' execution
# API URL follows), AIRFLOW__API__HOST=0.0.0.0 opens it to the network (the Compose service does).
# LocalExecutor runs as many tasks at once as the machine has cores (AIRFLOW__CORE__PARALLELISM).
# Their defaults (and AIRFLOW_HOME=.airflow, the workers' execution API URL, one JWT secret for
# every component) are set by orchestrate/airflow/standalone.py from the environment: no value
# reaches the recipe's shell.
override AIRFLOW_ENV := PATH="$$PWD/$(AIRFLOW_VENV)/bin:$$PATH" \
                        AIRFLOW__CORE__DAGS_FOLDER="$$PWD/orchestrate/airflow/dags" AIRFLOW__CORE__LOAD_EXAMPLES=False
.PHONY: airflow-setup airflow

airflow-setup: $(AIRFLOW_STAMP) ## create .venv-airflow with the pinned Airflow 3 (quick when done)

$(AIRFLOW_STAMP): orchestrate/airflow/requirements.txt
	@test -x $(AIRFLOW_VENV)/bin/python || "$$PYTHON" -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet uv==0.13.9
	$(AIRFLOW_VENV)/bin/uv pip install --quiet --compile-bytecode --python $(AIRFLOW_VENV)/bin/python -r orchestrate/airflow/requirements.txt
	touch $@

airflow: setup airflow-setup ## Airflow UI + scheduler on http://127.0.0.1:8080 (AIRFLOW__API__PORT=N moves it) with the northwind_elt DAG
	umask 077 && $(AIRFLOW_ENV) $(AIRFLOW_VENV)/bin/python orchestrate/airflow/standalone.py

.PHONY: bench
bench: setup ## benchmark every step on a scaled Northwind (SCALE=K, default 1) against raw PostgreSQL COPY
	set -f && $(BIN)/python scripts/bench.py --scale="$$SCALE" $$BENCH_ARGS

.PHONY: bench-alternatives
bench-alternatives: setup ## the same work with raw COPY, pandas and dlt (own venv .venv-bench) beside the project: SCALE=K
	@test -x .venv-bench/bin/python || "$$PYTHON" -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet -r requirements-bench.txt
	set -f && $(BIN)/python scripts/bench_alternatives.py --scale="$$SCALE" $$BENCH_ARGS

.PHONY: bench-profile
bench-profile: setup ## where one step's CPU time goes, per process (py-spy): STEP=extract-csv SCALE=K
	$(BIN)/python -m pip install --quiet py-spy==0.4.3
	$(BIN)/python scripts/bench_profile.py --scale="$$SCALE" --step="$${STEP:-extract-csv}"

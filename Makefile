# Two commands on a fresh machine: `make demo` and `make test`. Only python3 is required.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export RESCUE_HOME ?= $(CURDIR)/.rescue
# Dagster's home for `dagster dev` and `dagster definitions validate`: the instance (runs, event
# logs, schedules) lives with the rest of the state under RESCUE_HOME, configured by ./dagster.yaml
# (linked there). The `rescue` CLI keeps its runs in the same place without being told.
DAGSTER_HOME_DIR = $(abspath $(RESCUE_HOME))/dagster

.PHONY: install demo test dev desk bench validate clean dagster-home

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its test extras

demo: install  ## generate the demo world, run the whole asset graph, print the rescue queue
	$(BIN)/rescue demo run

# The suite runs in one worker process per core (pytest-xdist; 2 on 2 cores), each taking whole
# test files: a file's module fixtures (a demo world, a trained model, a landed company) are
# built once and its tests run in order. Each worker starts its own throwaway PostgreSQL cluster
# (tests/conftest.py). `make test PYTEST_WORKERS=0` runs it in one process.
PYTEST_WORKERS ?= auto

test: install  ## the whole suite (unit, data, model, integration incl. PostgreSQL), in parallel
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile

dagster-home:  ## Dagster's home under RESCUE_HOME, with this repository's dagster.yaml
	@mkdir -p $(DAGSTER_HOME_DIR) && ln -sf $(CURDIR)/dagster.yaml $(DAGSTER_HOME_DIR)/dagster.yaml

dev: install dagster-home  ## the Dagster UI on the same definitions (http://127.0.0.1:3000)
	DAGSTER_HOME=$(DAGSTER_HOME_DIR) $(BIN)/dagster dev -h 127.0.0.1 -p 3000

desk: install  ## the rescue desk (web + JSON API) on http://127.0.0.1:8080
	$(BIN)/rescue desk serve --host 127.0.0.1 --port 8080

validate: install dagster-home  ## the Definitions load
	DAGSTER_HOME=$(DAGSTER_HOME_DIR) $(BIN)/dagster definitions validate

bench: install  ## per-stage wall time and peak memory at 10k and 100k accounts, the usage build and checks, the policy, CLI start-up, model evaluate against rows, the retrain full against sampled, the jobs as Dagster runs them (JSON)
	$(BIN)/python benchmarks/bench_pipeline.py --accounts 10000 100000
	$(BIN)/python benchmarks/bench_daily_job.py --accounts 10000
	$(BIN)/python benchmarks/bench_usage.py --accounts 10000 100000
	$(BIN)/python benchmarks/bench_usage_checks.py --accounts 10000 100000
	$(BIN)/python benchmarks/bench_policy.py --sizes 10000 100000 1000000
	$(BIN)/python benchmarks/bench_cli.py
	$(BIN)/python benchmarks/bench_evaluate.py --rows 5000 50000 500000 --goals
	$(BIN)/python benchmarks/bench_retrain.py --rows-per-date 100000

clean:  ## remove generated data (keeps .venv)
	rm -rf .rescue

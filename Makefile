# Two commands on a fresh machine: `make demo` and `make test`. Only python3 is required.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export DAGSTER_HOME := $(CURDIR)
export RESCUE_HOME ?= $(CURDIR)/.rescue

.PHONY: install demo test dev desk bench validate clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its test extras

demo: install  ## generate the demo world, run the whole asset graph, print the rescue queue
	$(BIN)/rescue demo run

test: install  ## the whole suite (unit, data, model, integration incl. PostgreSQL)
	$(BIN)/python -m pytest

dev: install  ## the Dagster UI on the same definitions (http://127.0.0.1:3000)
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000

desk: install  ## the rescue desk (web + JSON API) on http://127.0.0.1:8080
	$(BIN)/rescue desk serve --host 127.0.0.1 --port 8080

validate: install  ## the Definitions load
	$(BIN)/dagster definitions validate

bench: install  ## per-stage wall time and peak memory at 10k and 100k accounts (JSON)
	$(BIN)/python benchmarks/bench_pipeline.py --accounts 10000 100000

clean:  ## remove generated data (keeps .venv)
	rm -rf .rescue

# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-serve

.PHONY: install run test lint format bench build clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the project's dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# `make run` needs only what running needs: the `serve` extra, not the test tools.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[serve]"
	touch $(RUN_STAMP)

## Start the session service on http://127.0.0.1:8000 (the API under /v1, the demo shop at /)
## with the embedded SQLite store.
run: $(RUN_STAMP)
	$(BIN)/coatcheck serve --store "$${COATCHECK_STORE:-sqlite:///coatcheck.db}"

## The whole suite (needs the services .ci/run starts: PostgreSQL, Redis, memcached binary).
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench examples tools
	$(BIN)/ruff format --check src tests bench examples tools
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix src tests bench examples
	$(BIN)/ruff format src tests bench examples

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

build: install
	$(BIN)/python -m build

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis

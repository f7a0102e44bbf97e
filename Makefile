# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint format bench build clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the project's dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Start the demo shop on http://127.0.0.1:8000 with the embedded SQLite store.
run: install
	$(BIN)/coatcheck demo --store "$${COATCHECK_STORE:-sqlite:///coatcheck.db}"

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

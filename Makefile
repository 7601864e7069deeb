# tally: `make demo` and `make test` work on a fresh clone with nothing else installed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synced

export UV_SYSTEM_CERTS := 1
export UV_PYTHON_DOWNLOADS := never
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
# Bytecode is compiled at install time and cached on import (an empty value turns the variable
# off): every `tally` child, Prefect server and notebook kernel would otherwise compile Prefect
# from source again, about 3 CPU-seconds each.
export PYTHONDONTWRITEBYTECODE :=

.PHONY: venv test test-scale lint format demo bench lock clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/pip install --quiet uv
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

# Three workers on two cores: a worker waiting on a subprocess, a pacing limiter or a timeout
# leaves its core to the others (about 8% sooner than two).
PYTEST_ARGS ?= -n 3 --dist loadfile

# `make test` leaves out the tests of running on several machines (PostgreSQL, a Prefect server
# on it and its workers: about two minutes, mostly waiting for a lost run to be noticed);
# `make test-scale` runs them, and CI runs both.
test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS) -m "not scale"

test-scale: venv
	$(BIN)/python -m pytest -m scale

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: venv
	$(BIN)/tally demo

bench: venv
	$(BIN)/python -m benchmarks

# Re-pin after editing pyproject.toml's dependencies.
lock:
	test -x $(BIN)/uv || ($(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet uv)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 \
		--no-header --no-annotate --quiet -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

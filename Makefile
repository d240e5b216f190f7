# The two quickstart commands: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HASH := $(shell sha1sum pyproject.toml | cut -c1-12)
RUN_STAMP := $(VENV)/.run-$(HASH)
DEV_STAMP := $(VENV)/.dev-$(HASH)
PORT ?= 3978

.PHONY: run test install lint typecheck bench bench-quick postgres chromium clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	rm -f $(VENV)/.run-*; touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.dev-* $(VENV)/.run-*; touch $@ $(RUN_STAMP)

install: $(RUN_STAMP)

## make run: install, migrate the SQLite file, seed the demo org if empty, serve on 127.0.0.1:3978
run: $(RUN_STAMP)
	$(BIN)/tokencoach --log-format text db upgrade
	$(BIN)/tokencoach --log-format text demo --if-empty
	$(BIN)/tokencoach --log-format text serve --port $(PORT)

## make test: install with dev extras, make sure PostgreSQL and Chromium are there, run everything
test: $(DEV_STAMP) postgres chromium
	$(BIN)/python -m pytest

postgres:
	@pg_isready -h 127.0.0.1 -p 5432 -q || { \
	  echo "starting PostgreSQL"; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	  for i in $$(seq 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done; \
	  pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start" >&2; exit 1; }; }

chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint: $(DEV_STAMP)
	$(BIN)/ruff check bot handlers jobs tests benchmarks

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

## make bench: every benchmark at full scale, rewriting BENCHMARKS.md (20-40 minutes)
bench: $(DEV_STAMP) postgres
	$(BIN)/python -m benchmarks

bench-quick: $(DEV_STAMP) postgres
	$(BIN)/python -m benchmarks --quick

clean:
	rm -rf $(VENV) tokencoach.db tokencoach.db-wal tokencoach.db-shm .pytest_cache test-artifacts

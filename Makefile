# Every set-up step lives here: a fresh machine needs only Python 3.11 and Java 17.
SHELL := /bin/bash
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= deploy/local/gateway.yaml

.PHONY: setup up down demo test lint typecheck protos models bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e '.[runtimes,test,load]'
	touch $(STAMP)

up: setup
	$(BIN)/python -m deploy.local.stack up --config $(CONFIG)

down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m deploy.local.stack down; fi

demo: setup
	$(BIN)/python -m deploy.local.demo --config $(CONFIG)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy gateway deploy model_store loadtests tests

test: setup lint typecheck
	$(BIN)/python -m pytest

protos: setup
	$(BIN)/python -m gateway.wire.build

models: setup
	$(BIN)/python -m model_store.build

clean: down
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build

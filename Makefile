# Two entry points that work on a fresh machine (Python 3.11, make, and the
# package registries): `make demo` and `make test`.  Each bootstraps .venv.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ORACLES := tests/oracles

.PHONY: demo test examples lint typecheck unit functional e2e vectors oracles bench clean venv policies package

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# External oracles for the conformance tests: npm packages pinned by
# tests/oracles/package-lock.json, and the age CLI from Debian when we may
# install it (CI runs as root).  Missing oracles make the vector tests fail
# when SEALBOX_REQUIRE_ORACLES=1 (CI) and skip with a reason otherwise.
oracles: $(ORACLES)/node_modules/.installed
	@command -v age >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get install -y -qq age >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq age)); } || true
	@command -v ss >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get install -y -qq iproute2 >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq iproute2)); } || true

$(ORACLES)/node_modules/.installed: $(ORACLES)/package.json $(ORACLES)/package-lock.json
	cd $(ORACLES) && npm ci --no-audit --no-fund --silent
	touch $@

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

# The example app's suite runs in its own pytest process: it installs its
# backend extension into the app, which Sealbox's own suite must not see.
test: venv oracles lint typecheck
	$(PY) -m pytest -q
	cd examples/notes && $(abspath $(PY)) -m pytest -q

examples: venv
	cd examples/notes && $(abspath $(PY)) -m pytest -q

unit: venv
	$(PY) -m pytest -q -m unit

functional: venv
	$(PY) -m pytest -q -m functional

e2e: venv
	$(PY) -m pytest -q -m e2e

vectors: venv oracles
	$(PY) -m pytest -q -m vectors

demo: venv
	$(VENV)/bin/sealbox demo

bench: venv
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(ORACLES)/node_modules .pytest_cache .mypy_cache .ruff_cache

# Regenerate the per-stage IAM policy files Chalice deploys from infra/policies.json.
policies: venv
	$(PY) -c "from sealbox_tools.local_stack import write_policies; write_policies()"

# CloudFormation/SAM for one stage: Chalice's functions and API merged with
# infra/resources.json, written to out/$(STAGE)/ (deploy with `aws cloudformation
# package` + `deploy`, see docs/deploying.md).
STAGE ?= dev
package: venv
	rm -rf out/$(STAGE)
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(VENV)/bin/chalice package \
	  --pkg-format cloudformation --stage $(STAGE) --merge-template infra/resources.json out/$(STAGE)
	$(PY) -c "from pathlib import Path; from sealbox_tools.local_stack import pin_stage_parameter; \
	  pin_stage_parameter(Path('out/$(STAGE)/sam.json'), '$(STAGE)')"

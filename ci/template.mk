# Template checks (DESIGN §9): cfn-lint, `sam validate --lint`, `sam build`, then an import test of
# the built artifacts and the version-publishing test (tests/template/). Meant to be included by the root Makefile (`include ci/template.mk`); also
# runs alone: `make -f ci/template.mk template-check`. Variables are prefixed TEMPLATE_ so they do
# not collide with the including Makefile's. Everything is offline apart from the package index:
# no Docker, no AWS credentials (sam validate only needs a region name).
#
#   make template-check    all of the below, each step timed
#   make template-build    just `sam build` (what `sam deploy` uploads)
#   make template-clean    remove the build output (the tool venv stays)

# SAM CLI and cfn-lint live in their own venv: their dependency tree (boto3, Flask, docker, ...)
# has nothing to do with the project's. aws-sam-translator and aws-lambda-builders are pinned as
# well because they decide what the transform and the build do.
TEMPLATE_SAM_VENV ?= .local/sam-venv
TEMPLATE_SAM_PINS ?= aws-sam-cli==1.170.0 cfn-lint==1.58.0 aws-sam-translator==1.115.0 aws-lambda-builders==1.67.0
TEMPLATE_EMPTY :=
TEMPLATE_SPACE := $(TEMPLATE_EMPTY) $(TEMPLATE_EMPTY)
# The stamp's name carries the pins, so changing a pin reinstalls.
TEMPLATE_SAM_STAMP = $(TEMPLATE_SAM_VENV)/.installed-$(subst $(TEMPLATE_SPACE),_,$(subst ==,-,$(TEMPLATE_SAM_PINS)))

# Lambda's python3.12 must be FIRST on PATH for `sam build` (pyenv shims do not count: SAM checks
# the real binary). Override with TEMPLATE_PY312_BIN=/dir/containing/python3.12.
TEMPLATE_PYENV_ROOT = $(shell pyenv root 2>/dev/null)
TEMPLATE_PY312_BIN ?= $(if $(TEMPLATE_PYENV_ROOT),$(TEMPLATE_PYENV_ROOT)/versions/3.12.1/bin,/nonexistent/pyenv-3.12.1/bin)
TEMPLATE_VENV_PYTHON = $(if $(wildcard $(TEMPLATE_PY312_BIN)/python3.12),$(TEMPLATE_PY312_BIN)/python3.12,python3)

TEMPLATE_BUILD_DIR ?= .aws-sam/build
# Host-native twin of SharedLayer for the import test (see tests/template/test_built_artifacts.py).
TEMPLATE_IMPORT_DIR ?= .aws-sam/import-check
TEMPLATE_HOST_ARCH = $(shell uname -m)
# The project's venv (the root Makefile's `deps`) runs the test itself; the test only needs pytest.
TEMPLATE_TEST_PYTHON ?= .venv/bin/python

TEMPLATE_SAM_ENV = SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1
TEMPLATE_NOW = date +%s
TEMPLATE_SAM_BUILD = set -e; t0=$$($(TEMPLATE_NOW)); echo "--- template: sam build"; \
	PATH="$(abspath $(TEMPLATE_PY312_BIN)):$$PATH" $(TEMPLATE_SAM_ENV) \
	  "$(TEMPLATE_SAM_VENV)/bin/sam" build --template-file template.yaml --build-dir "$(TEMPLATE_BUILD_DIR)"; \
	echo "--- template: sam build took $$(( $$($(TEMPLATE_NOW)) - t0 )) s"

.PHONY: template-check template-build template-clean template-tools template-py312

template-tools: $(TEMPLATE_SAM_STAMP)

$(TEMPLATE_SAM_STAMP):
	@echo "--- template: installing $(TEMPLATE_SAM_PINS) into $(TEMPLATE_SAM_VENV) (with $(TEMPLATE_VENV_PYTHON))"
	@set -e; t0=$$($(TEMPLATE_NOW)); \
	rm -rf "$(TEMPLATE_SAM_VENV)"; \
	$(TEMPLATE_VENV_PYTHON) -m venv "$(TEMPLATE_SAM_VENV)"; \
	"$(TEMPLATE_SAM_VENV)/bin/python" -m pip install --quiet --disable-pip-version-check $(TEMPLATE_SAM_PINS); \
	touch "$@"; \
	echo "--- template: tools installed in $$(( $$($(TEMPLATE_NOW)) - t0 )) s"

template-py312:
	@test -x "$(TEMPLATE_PY312_BIN)/python3.12" || { \
	  echo "template: no Python 3.12 at $(TEMPLATE_PY312_BIN)/python3.12." >&2; \
	  echo "  sam build (and every deploy target) builds the layer with Lambda's runtime, python3.12," >&2; \
	  echo "  which must be a real interpreter first on PATH (a pyenv shim does not count). Get one:" >&2; \
	  echo "    pyenv install 3.12.1                          (the default place: \$$(pyenv root)/versions/3.12.1/bin)" >&2; \
	  echo "  or point at any CPython 3.12 you have:" >&2; \
	  echo "    make $(MAKECMDGOALS) TEMPLATE_PY312_BIN=/dir/containing/python3.12" >&2; exit 1; }

template-build: $(TEMPLATE_SAM_STAMP) template-py312
	@$(TEMPLATE_SAM_BUILD)

template-check: $(TEMPLATE_SAM_STAMP) template-py312
	@test -x "$(TEMPLATE_TEST_PYTHON)" || { echo "template: $(TEMPLATE_TEST_PYTHON) missing; run 'make deps' first" >&2; exit 1; }
	@set -e; t0=$$($(TEMPLATE_NOW)); echo "--- template: cfn-lint"; \
	"$(TEMPLATE_SAM_VENV)/bin/cfn-lint" --include-checks I -- template.yaml; \
	echo "--- template: cfn-lint passed in $$(( $$($(TEMPLATE_NOW)) - t0 )) s"
	@set -e; t0=$$($(TEMPLATE_NOW)); echo "--- template: sam validate --lint"; \
	$(TEMPLATE_SAM_ENV) "$(TEMPLATE_SAM_VENV)/bin/sam" validate --lint --template-file template.yaml; \
	echo "--- template: sam validate --lint passed in $$(( $$($(TEMPLATE_NOW)) - t0 )) s"
	@$(TEMPLATE_SAM_BUILD)
	@# The layer is built for arm64; its native wheels cannot be imported on another host.
	@# Build a host-native twin with the same Makefile, pins and sources for the import test.
	@set -e; t0=$$($(TEMPLATE_NOW)); \
	if [ "$(TEMPLATE_HOST_ARCH)" = aarch64 ]; then \
	  echo "--- template: host is aarch64, the import test uses the real layer"; \
	else \
	  echo "--- template: host-native ($(TEMPLATE_HOST_ARCH)) twin of SharedLayer for the import test"; \
	  rm -rf "$(TEMPLATE_IMPORT_DIR)"; \
	  $(MAKE) --no-print-directory -C shared build-SharedLayer \
	    ARTIFACTS_DIR="$(abspath $(TEMPLATE_IMPORT_DIR))/SharedLayer" \
	    LAYER_ARCH="$(TEMPLATE_HOST_ARCH)" LAYER_PYTHON="$(abspath $(TEMPLATE_PY312_BIN))/python3.12"; \
	  echo "--- template: twin built in $$(( $$($(TEMPLATE_NOW)) - t0 )) s"; \
	fi
	@set -e; t0=$$($(TEMPLATE_NOW)); echo "--- template: import test of the built artifacts, version publishing"; \
	TEMPLATE_LAMBDA_PYTHON="$(abspath $(TEMPLATE_PY312_BIN))/python3.12" \
	TEMPLATE_SAM_VENV="$(abspath $(TEMPLATE_SAM_VENV))" \
	  "$(TEMPLATE_TEST_PYTHON)" -m pytest --noconftest -q tests/template; \
	echo "--- template: import and version-publishing tests took $$(( $$($(TEMPLATE_NOW)) - t0 )) s"
	@echo "--- template: unzipped sizes (Lambda's limit: 250 MB per function including its layers)"
	@du -sh "$(TEMPLATE_BUILD_DIR)"/*/

template-clean:
	rm -rf "$(TEMPLATE_BUILD_DIR)" "$(TEMPLATE_IMPORT_DIR)" .aws-sam/cache

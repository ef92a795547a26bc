# The template's own tasks. `make demo` and `make test` install what they need first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
unexport PYTHONDONTWRITEBYTECODE
DEMO_DIR ?= build/demo
PYTEST_ARGS ?=

.PHONY: help install demo test test-fast docs bench bench-check lock clean

help: ## List the tasks
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: requirements/dev.lock pyproject.toml
	@./scripts/install-dev.sh "$(PYTHON)" "$(VENV)"
	@touch $@

install: $(VENV)/.installed ## Create .venv with the template's hash-pinned tools

demo: $(VENV)/.installed ## Generate a project with the defaults, set it up, run its pipeline and checks
	@./scripts/demo.sh "$(DEMO_DIR)"

test: $(VENV)/.installed ## Run the template's whole test suite (includes slow end-to-end tests)
	@./scripts/install-system-deps.sh
	@pytest -n 2 --dist loadgroup --durations=30 $(PYTEST_ARGS)

test-fast: $(VENV)/.installed ## Run the tests that do not install a generated project
	@pytest -n 2 --dist loadgroup -m "not slow" $(PYTEST_ARGS)

docs: $(VENV)/.installed ## Build the template's documentation site with --strict (site/)
	@python scripts/gen_options_doc.py
	@# no --quiet: mkdocs 1.6 then drops warnings before --strict counts them
	@NO_MKDOCS_2_WARNING=1 mkdocs build --strict && echo "Docs: site/index.html"

bench: $(VENV)/.installed ## Run the benchmarks and rewrite benchmarks/RESULTS.md
	@python benchmarks/run.py

bench-check: $(VENV)/.installed ## Time make check after make demo (its section of benchmarks/RESULTS.md)
	@python benchmarks/run.py check

lock: $(VENV)/.installed ## Re-resolve the template's and the generated project's locks
	@uv pip compile pyproject.toml --extra dev --universal --generate-hashes --python-version 3.11 --quiet -o requirements/dev.lock
	@# The scanners a retrofitted repository installs (.secure-ml/requirements.txt): the [gates] extra only.
	@python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['gates']))" \
	  | uv pip compile - --universal --generate-hashes --python-version 3.11 --quiet --custom-compile-command 'make lock' -o src/secure_ml_template/program/gates-requirements.txt
	@./scripts/update-lock.sh
	@python scripts/gen_bytecode_list.py

clean: ## Remove build output and caches
	@rm -rf build site .pytest_cache

#!/usr/bin/env bash
# Create .venv and install the hash-pinned lock (requirements/lock.txt), hashes verified.
# uv does the bulk of the install; when uv is not on PATH it is bootstrapped into the venv
# from requirements/bootstrap.txt (also hash-pinned). INSTALLER=pip uses plain pip instead.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
INSTALLER=${INSTALLER:-auto}
LOCK=requirements/lock.txt

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "setup: $PYTHON not found; install Python >= $(cat .python-version) or run 'make setup PYTHON=/path/to/python3'" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import sys; v = tuple(map(int, open(".python-version").read().split("."))); sys.exit(sys.version_info[:2] < v)'; then
  echo "setup: $PYTHON is $("$PYTHON" -V 2>&1); this project needs >= $(cat .python-version) (run 'make setup PYTHON=python3.X')" >&2
  exit 1
fi

uv_bin=""
if [ "$INSTALLER" != pip ]; then
  if command -v uv >/dev/null 2>&1; then uv_bin=$(command -v uv); fi
  if [ -z "$uv_bin" ] && [ -x "$VENV/bin/uv" ]; then uv_bin="$VENV/bin/uv"; fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $("$PYTHON" -V 2>&1)"
  if [ -n "$uv_bin" ]; then "$uv_bin" venv --quiet --python "$PYTHON" "$VENV"; else "$PYTHON" -m venv "$VENV"; fi
fi

if [ "$INSTALLER" != pip ] && [ -z "$uv_bin" ]; then
  echo "setup: uv not found; bootstrapping it into $VENV (hash-pinned)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
    -r requirements/bootstrap.txt
  uv_bin="$VENV/bin/uv"
fi

if [ -n "$uv_bin" ]; then
  echo "setup: installing $LOCK with uv (hashes required)"
  "$uv_bin" pip sync --quiet --python "$VENV/bin/python" --require-hashes "$LOCK"
else
  echo "setup: installing $LOCK with pip (hashes required; slower than uv)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$LOCK"
fi

# Compile the bytecode of what the pipeline imports once, here, on every core (a list made
# by running the pipeline: requirements/bytecode.txt), instead of in each stage's first run.
# It runs beside the rest of the set-up, which does not need it.
"$VENV/bin/python" scripts/compile_bytecode.py &
compiling=$!
trap 'kill "$compiling" 2>/dev/null' EXIT

if [ -n "$uv_bin" ]; then
  "$uv_bin" pip install --quiet --python "$VENV/bin/python" --no-deps --no-build-isolation -e .
else
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
fi

# The model-signing key pair (ECDSA P-256) lives in keys/, which .gitignore keeps out of git;
# an existing pair is kept. MODEL_SIGNING_KEY_DIR points elsewhere (see src/*/signing.py).
# Its fingerprint is pinned in reference/model-signing-key.sha256 (committed): a new pair is
# pinned there; a pin that names another key is never overwritten (rotation is a reviewed commit).
key_ok=1
"$VENV/bin/python" -m {{ cookiecutter.package_name }} keygen | sed 's/^keygen/setup/' || key_ok=0

if [ -d .git ] && [ -f .pre-commit-config.yaml ]; then
  "$VENV/bin/pre-commit" install --install-hooks >/dev/null && echo "setup: pre-commit hooks installed"
fi
wait "$compiling" || echo "setup: the bytecode warm-up failed; the first pipeline run compiles its imports itself" >&2
trap - EXIT
if [ "$key_ok" = 0 ]; then
  echo "setup: the environment is ready, but no usable pinned signing key: models can be neither signed nor loaded until the key above is in place" >&2
  exit 1
fi
echo "setup: done. Next: make pipeline"

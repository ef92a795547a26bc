#!/usr/bin/env bash
# Create the template's venv from requirements/dev.lock (hashes verified), with uv.
# uv comes from PATH, else it is installed into the venv with pip, hash-pinned.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}
if ! command -v "$python" >/dev/null; then
  echo "install: $python not found; install Python 3.11+ or run 'make PYTHON=/path/to/python3 ...'" >&2
  exit 1
fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "install: $python is $("$python" -V 2>&1); the template needs Python 3.11+" >&2; exit 1; }
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
if ! uv=$(command -v uv); then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
    -r "{{cookiecutter.project_slug}}/requirements/bootstrap.txt"
  uv="$venv/bin/uv"
fi
# `uv pip sync` removes a uv that lives in the venv (it is not in dev.lock): run a copy.
case "$uv" in
  "$venv"/*|"$(cd "$venv" && pwd)"/*)
    uv_copy=$(mktemp -d); trap 'rm -rf "$uv_copy"' EXIT; cp "$uv" "$uv_copy/uv"; uv="$uv_copy/uv" ;;
esac
echo "install: template tools from requirements/dev.lock (hashes required)"
"$uv" pip sync --quiet --python "$venv/bin/python" --require-hashes requirements/dev.lock
# uv is also needed by the tests and `make lock`: keep a copy in the venv.
[ -x "$venv/bin/uv" ] || "$uv" pip install --quiet --python "$venv/bin/python" --require-hashes --no-deps \
  -r "{{cookiecutter.project_slug}}/requirements/bootstrap.txt"

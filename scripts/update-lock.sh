#!/usr/bin/env bash
# Re-resolve the generated project's hash-pinned locks from its pyproject.toml.
# Bakes the defaults, runs the project's own `make lock`, and copies the result back
# into the template with the project name turned back into its Jinja variable.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/cookiecutter --no-input -o "$work" . project_slug=lock-probe-project >/dev/null
project="$work/lock-probe-project"
(cd "$project" && make lock >/dev/null)
echo "uv==$(uv --version | cut -d' ' -f2)" > "$work/bootstrap.in"
uv pip compile "$work/bootstrap.in" --universal --generate-hashes --no-annotate --python-version 3.11 \
  --quiet --no-header -o "$project/requirements/bootstrap.txt"
target="{{cookiecutter.project_slug}}/requirements"
sed 's/lock-probe-project/{{ cookiecutter.project_slug }}/g' "$project/requirements/lock.txt" > "$target/lock.txt"
cp "$project/requirements/bootstrap.txt" "$target/bootstrap.txt"
echo "updated $target/lock.txt and $target/bootstrap.txt"

#!/usr/bin/env bash
# Format and lint-fix the generated project's Python with its own pinned ruff, then copy the
# result back into the template (package name turned back into its Jinja variable).
# Needs a set-up project to borrow ruff from: VENV=/path/to/generated/.venv (or ruff on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
ruff=${RUFF:-$(command -v ruff || true)}
[ -n "$ruff" ] || { echo "format-generated: no ruff; run with RUFF=/path/to/project/.venv/bin/ruff" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/cookiecutter --no-input -o "$work" . project_slug=zz-format-probe package_name=zz_format_probe >/dev/null
project="$work/zz-format-probe"
(cd "$project" && "$ruff" format --quiet . && "$ruff" check --fix --quiet . || true)
template="{{cookiecutter.project_slug}}"
(cd "$project" && git ls-files '*.py') | while read -r rel; do
  src="$template/${rel//zz_format_probe/{{cookiecutter.package_name\}\}}"
  [ -f "$src" ] || { echo "format-generated: no template file for $rel" >&2; exit 1; }
  sed 's/zz_format_probe/{{ cookiecutter.package_name }}/g' "$project/$rel" > "$work/out.py"
  cmp -s "$work/out.py" "$src" || { cp "$work/out.py" "$src"; echo "formatted $src"; }
done
(cd "$project" && "$ruff" check . && "$ruff" format --check .) || true

"""Write docs/options.md, the options reference, from cookiecutter.json.

    python scripts/gen_options_doc.py           # rewrite docs/options.md
    python scripts/gen_options_doc.py --check   # exit 1 when docs/options.md is out of step

Every question of cookiecutter.json needs an entry in MEANING below: a new question without
one stops this script (and the template test that runs --check), so the reference cannot
silently fall behind the template.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "options.md"

# What each question means and what the hooks accept. Keys must match cookiecutter.json.
MEANING = {
    "project_name": "Human-readable name, used in the README, the docs site and the package "
                    "metadata. Any Unicode letters, quotes and apostrophes are fine; `<`, `>` and "
                    "line breaks are refused.",
    "project_slug": "Folder name, distribution name, MLflow experiment and registered-model name. "
                    "Lowercase ASCII letters, digits and single hyphens; no leading or trailing hyphen.",
    "package_name": "The Python package under `src/`. Must be a Python identifier that is not a "
                    "keyword, a standard-library module or one of the project's dependencies "
                    "(it would shadow them).",
    "author_name": "For the package metadata and `LICENSE`. A single line.",
    "author_email": "For the package metadata. Must look like `name@domain.tld`.",
    "description": "One line for the README, the docs site and the package metadata.",
    "python_version": "Lowest Python the project supports; written to `.python-version`, "
                      "`requires-python` and the lock.",
    "license": "The `LICENSE` file and the SPDX expression in `pyproject.toml` (`Proprietary` "
               "writes an all-rights-reserved notice).",
    "ci_provider": "`github`: hardened GitHub Actions workflows, CodeQL and Dependabot. "
                   "`gitlab`: a `.gitlab-ci.yml` with the same stages. `none`: no CI files.",
    "tracking": "`local`: MLflow in a SQLite file inside the repo and a local DVC remote, no "
                "server. `server`: a shared MLflow tracking server and an S3-compatible DVC "
                "remote, with a deployable team stack under `deploy/`.",
}


def questions(context: dict) -> list[str]:
    """The keys cookiecutter asks about (private `_` and `__` keys are not questions)."""
    return [key for key in context if not key.startswith("_")]


def rendered_defaults() -> dict:
    """The default answers as cookiecutter computes them (derived keys rendered)."""
    from cookiecutter.generate import generate_context
    from cookiecutter.prompt import prompt_for_config

    if str(ROOT) not in sys.path:  # cookiecutter.json's own Jinja extension, as cookiecutter does
        sys.path.append(str(ROOT))
    context = generate_context(str(ROOT / "cookiecutter.json"))
    return dict(prompt_for_config(context, no_input=True))


def escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def render() -> str:
    context = json.loads((ROOT / "cookiecutter.json").read_text(encoding="utf-8"))
    keys = questions(context)
    missing = [key for key in keys if key not in MEANING]
    if missing:
        raise SystemExit(f"gen_options_doc: cookiecutter.json has question(s) {', '.join(missing)} "
                         "without a meaning: add them to MEANING in scripts/gen_options_doc.py")
    defaults = rendered_defaults()
    lines = [
        "<!-- Written by scripts/gen_options_doc.py from cookiecutter.json. Do not edit. -->",
        "",
        "# Options reference",
        "",
        "The questions `cookiecutter` asks, in order, with their defaults. Answer them on the "
        "command line to skip the prompts, for example "
        "`cookiecutter --no-input TEMPLATE project_name=\"Fraud Model\" ci_provider=gitlab`. "
        "Bad answers stop generation before a file is written, with one line naming the "
        "question, the value and the rule.",
        "",
        "| question | default | choices | meaning |",
        "|---|---|---|---|",
    ]
    for key in keys:
        value = context[key]
        if isinstance(value, list):
            choices = ", ".join(f"`{v}`" for v in value)
            default = f"`{value[0]}`"
        elif "{{" in str(value):
            choices = "free text"
            sources = ", ".join(f"`{name}`" for name in re.findall(r"cookiecutter\.(\w+)", value))
            default = f"`{defaults[key]}` (derived from {sources})"
        else:
            choices = "free text"
            default = f"`{value}`"
        lines.append(f"| `{key}` | {escape(default)} | {choices} | {escape(MEANING[key])} |")
    lines += [
        "",
        "Derived defaults follow the answers before them: a `project_name` of "
        "`Fraud Model` gives the slug `fraud-model` and the package `fraud_model` unless you "
        "answer those questions yourself.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/options.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.is_file() else ""
        if current != text:
            print("docs/options.md is out of step with cookiecutter.json: "
                  "run python scripts/gen_options_doc.py (or make docs)")
            return 1
        print("docs/options.md matches cookiecutter.json")
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

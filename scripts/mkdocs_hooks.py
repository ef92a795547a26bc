"""mkdocs hook of the template's own site: renders the guide-to-controls map at build time.

The map is read from the generated repository's registry,
`{{cookiecutter.project_slug}}/controls.yaml`, rendered with the template's default answers
(cookiecutter's own context code, so Jinja in the registry works as in a real project).
It is never written to disk, so it cannot fall out of step with the registry.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import jinja2
import yaml
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "{{cookiecutter.project_slug}}"
PAGE = "controls.md"


def default_answers() -> dict:
    spec = importlib.util.spec_from_file_location("gen_options_doc", ROOT / "scripts" / "gen_options_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.rendered_defaults()


def load_registry() -> list[dict]:
    text = (PROJECT / "controls.yaml").read_text(encoding="utf-8")
    rendered = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(text).render(
        cookiecutter=default_answers())
    return yaml.safe_load(rendered)["controls"]


def generator():
    """The generated repository's docs generator (plain Python), for its risk grouping."""
    spec = importlib.util.spec_from_file_location("gen_docs", PROJECT / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    # No __pycache__ inside the template folder: it would be copied into generated projects.
    before, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = before
    return module


def render(controls: list[dict]) -> str:
    gen = generator()
    lines = [
        "# The guide's advice, mapped to controls",
        "",
        "Rendered at build time from the generated repository's registry "
        "(`{{cookiecutter.project_slug}}/controls.yaml`, here with the default answers). In a "
        "generated repository the same registry drives `make controls`, which runs every proving "
        "test, and the docs' controls matrix.",
        "",
        "## Coverage of the guide's AI-specific risks",
        "",
        "| Guide risk | Controls |",
        "|---|---|",
    ]
    for risk, _ in gen.GUIDE_RISKS:
        ids = [c["id"] for c in controls if risk in gen.guide_risks_of(str(c.get("guide_risk") or ""))]
        lines.append(f"| {risk} | {', '.join(ids) if ids else 'not covered yet'} |")
    # Four short columns only: the paths and test ids (long words without spaces) are listed
    # per control below, where they have the page's width (readable at 1280 px).
    lines += ["", "## Every control", "",
              "| Control | What it does | Guide risk | AI Exchange control |",
              "|---|---|---|---|"]
    for c in controls:
        lines.append(f"| [**{c['id']}**](#{c['id'].lower()}) | {gen.cell(c.get('title'))} "
                     f"| {gen.cell(c.get('guide_risk'))} "
                     f"| {gen.exchange_link(str(c.get('exchange') or ''))} |")
    lines += ["", "## Evidence of each control", "",
              "What implements each control and the tests that prove it (the tests `make "
              "controls` requires to pass).", ""]
    for c in controls:
        lines += [f"### {c['id']}", "", "Implemented in:", ""]
        lines += [f"- `{f}`" for f in c.get("files") or []] or ["- nothing listed"]
        lines += ["", "Proved by:", ""]
        by_file: dict[str, list[str]] = {}
        for test in c.get("tests") or []:
            path, _, name = str(test).partition("::")
            by_file.setdefault(path, []).append(name)
        lines += [f"- `{path}`: " + ", ".join(f"`{name}`" for name in names)
                  for path, names in by_file.items()] or ["- nothing listed"]
        lines.append("")
    lines += ["", f"{len(controls)} controls. Paths are relative to the generated repository; "
              "`secure_ml_project` is the package name of the default answers.", ""]
    return "\n".join(lines)


def on_files(files, config):
    files.append(File.generated(config, PAGE, content=render(load_registry())))
    return files


def on_page_markdown(markdown, page, config, files):
    """Benchmarks page: say so plainly when no results were recorded yet."""
    results = "benchmarks/RESULTS.md"
    if page.file.src_uri == "benchmarks.md" and not (ROOT / results).is_file():
        return markdown.replace(f'--8<-- "{results}"',
                                "No results recorded yet: run `make bench`.")
    return markdown

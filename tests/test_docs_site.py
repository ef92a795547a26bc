"""The template's own docs site: built with --strict, options reference in step with
cookiecutter.json, guide-to-controls map rendered from the generated repo's registry."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import jinja2
import pytest
import yaml

from conftest import TEMPLATE, run
from options import OPTION_SETS

PROJECT = "{{cookiecutter.project_slug}}"


def default_control_ids() -> list[str]:
    text = (TEMPLATE / PROJECT / "controls.yaml").read_text(encoding="utf-8")
    answers = {"package_name": "secure_ml_project", "project_slug": "secure-ml-project",
               "project_name": "Secure ML Project", "tracking": "local", "ci_provider": "github"}
    rendered = jinja2.Environment().from_string(text).render(cookiecutter=answers)
    return [control["id"] for control in yaml.safe_load(rendered)["controls"]]


def site_copy(tmp_path: Path) -> Path:
    """The files the root site is built from, in a scratch folder."""
    root = tmp_path / "template"
    root.mkdir()
    for name in ("mkdocs.yml", "cookiecutter.json"):
        shutil.copy2(TEMPLATE / name, root / name)
    for name in ("docs", "benchmarks"):
        if (TEMPLATE / name).is_dir():
            shutil.copytree(TEMPLATE / name, root / name)
    (root / "scripts").mkdir()
    for name in ("mkdocs_hooks.py", "gen_options_doc.py"):
        shutil.copy2(TEMPLATE / "scripts" / name, root / "scripts" / name)
    (root / PROJECT / "scripts").mkdir(parents=True)
    shutil.copy2(TEMPLATE / PROJECT / "controls.yaml", root / PROJECT / "controls.yaml")
    shutil.copy2(TEMPLATE / PROJECT / "scripts" / "gen_docs.py", root / PROJECT / "scripts" / "gen_docs.py")
    return root


def build(root: Path, out: Path, check: bool = True):
    return run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
               root, env={"NO_MKDOCS_2_WARNING": "1"}, check=check)


def test_options_reference_matches_cookiecutter_json():
    done = run([sys.executable, "scripts/gen_options_doc.py", "--check"], TEMPLATE, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (TEMPLATE / "docs" / "options.md").read_text(encoding="utf-8")
    context = json.loads((TEMPLATE / "cookiecutter.json").read_text(encoding="utf-8"))
    for key, value in context.items():
        if key.startswith("_"):
            continue
        assert f"| `{key}` |" in text, key
        for choice in value if isinstance(value, list) else []:
            assert f"`{choice}`" in text, (key, choice)


def test_options_reference_out_of_step_is_caught(tmp_path):
    root = site_copy(tmp_path)
    context = json.loads((root / "cookiecutter.json").read_text(encoding="utf-8"))
    context["license"] = [*context["license"], "MPL-2.0"]
    (root / "cookiecutter.json").write_text(json.dumps(context, indent=2), encoding="utf-8")
    done = run([sys.executable, "scripts/gen_options_doc.py", "--check"], root, check=False)
    assert done.returncode == 1
    assert "docs/options.md is out of step with cookiecutter.json" in done.stdout
    context["gpu"] = ["no", "yes"]
    (root / "cookiecutter.json").write_text(json.dumps(context, indent=2), encoding="utf-8")
    done = run([sys.executable, "scripts/gen_options_doc.py", "--check"], root, check=False)
    assert done.returncode != 0
    assert "gpu" in done.stderr and "MEANING" in done.stderr


def test_root_site_builds_strict_with_every_control_and_option(tmp_path):
    out = tmp_path / "site"
    build(TEMPLATE, out)
    controls = (out / "controls" / "index.html").read_text(encoding="utf-8")
    ids = default_control_ids()
    assert ids
    for ident in ids:
        assert f"<strong>{ident}</strong>" in controls, ident
    options = (out / "options" / "index.html").read_text(encoding="utf-8")
    assert "ci_provider" in options and "tracking" in options
    for page in ("quickstart", "retrofit", "teaching", "benchmarks", "architecture"):
        assert (out / page / "index.html").is_file(), page
    teaching = (out / "teaching" / "index.html").read_text(encoding="utf-8")
    for lesson in ("data poisoning", "evasion", "membership inference", "model theft",
                   "protecting data"):
        assert lesson in teaching.lower(), lesson
    assert teaching.count("make attack-demo") >= 2


def test_root_site_refuses_a_broken_link(tmp_path):
    root = site_copy(tmp_path)
    page = root / "docs" / "quickstart.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nSee [nowhere](missing-page.md).\n",
                    encoding="utf-8")
    done = build(root, tmp_path / "site", check=False)
    assert done.returncode != 0
    assert "missing-page.md" in done.stdout + done.stderr


def test_a_new_control_reaches_the_map_without_editing_docs(tmp_path):
    root = site_copy(tmp_path)
    registry = root / PROJECT / "controls.yaml"
    registry.write_text(registry.read_text(encoding="utf-8") + (
        "\n  - id: NEW-CONTROL-FOR-TEST\n    title: added by a test\n"
        "    guide_risk: Data protection\n    exchange: DATA MINIMIZE\n"
        "    files: []\n    tests: []\n"), encoding="utf-8")
    out = tmp_path / "site"
    build(root, out)
    controls = (out / "controls" / "index.html").read_text(encoding="utf-8")
    assert "<strong>NEW-CONTROL-FOR-TEST</strong>" in controls
    assert "https://owaspai.org/goto/dataminimize/" in controls


@pytest.mark.parametrize("name", OPTION_SETS)
def test_generated_docs_build_strict_for_every_option_set(bake, name, tmp_path):
    """Before any run: the generated pages say 'no run yet', and the site builds with --strict."""
    project = bake(**OPTION_SETS[name])
    run([sys.executable, "scripts/gen_docs.py"], project)
    card = (project / "docs" / "generated" / "parts" / "model-card-facts.md").read_text(encoding="utf-8")
    assert "No run recorded yet" in card
    build(project, tmp_path / "site")
    assert (tmp_path / "site" / "generated" / "controls-matrix" / "index.html").is_file()

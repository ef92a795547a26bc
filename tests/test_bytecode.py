"""Slow: `make setup` precompiles exactly what the first `make pipeline` imports."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import run

TEMPLATE = Path(__file__).resolve().parents[1]

# No xdist group: this project is its own, so the test can run beside the shared one's.
pytestmark = pytest.mark.slow


def test_setup_compiles_every_file_the_first_pipeline_imports(tmp_path):
    # A project of its own: the shared one's venv also serves other tests, which compile
    # what they import. requirements/bytecode.txt lists the files; `make lock` rewrites it.
    run([sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(tmp_path), str(TEMPLATE)],
        tmp_path)
    project = tmp_path / "secure-ml-project"
    run(["make", "setup"], project)
    site = next((project / ".venv" / "lib").glob("python3*/site-packages"))
    before = set(site.rglob("*.pyc"))
    run(["make", "pipeline"], project)
    # The stages do write bytecode (the Makefile unexports PYTHONDONTWRITEBYTECODE): the
    # project's own modules, which the list leaves out, prove it.
    assert list((project / "src" / "secure_ml_project" / "__pycache__").glob("*.pyc"))
    late = sorted(str(path.relative_to(site)) for path in set(site.rglob("*.pyc")) - before)
    assert late == [], f"{len(late)} files compiled by the pipeline, e.g. {late[:5]}: make lock"

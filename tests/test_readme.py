"""The README tells the truth: every question is documented, the controls table is current."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_names_every_question_of_cookiecutter_json():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    questions = [k for k in json.loads((ROOT / "cookiecutter.json").read_text()) if not k.startswith("_")]
    assert [k for k in questions if f"`{k}`" not in readme] == []


def test_readme_controls_table_matches_the_registry():
    done = subprocess.run([sys.executable, "scripts/gen_readme_controls.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True, env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stdout + done.stderr


def test_readme_controls_check_fails_when_stale(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_readme_controls as gen
    finally:
        sys.path.pop(0)
    stale = (ROOT / "README.md").read_text(encoding="utf-8").replace("| DATA-VALIDATE |", "| OLD-ID |")
    assert gen.rendered(stale) != stale

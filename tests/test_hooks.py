"""Bad answers: a one-line reason naming field, value and rule; non-zero exit; no folder."""

from __future__ import annotations

import sys
import subprocess
from pathlib import Path

import pytest

from options import BAD_ANSWERS

TEMPLATE = Path(__file__).resolve().parents[1]


def cookiecutter(out: Path, answers: dict) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(out), str(TEMPLATE)]
    args += [f"{key}={value}" for key, value in answers.items()]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(("answers", "words"), BAD_ANSWERS, ids=[str(a) for a, _ in BAD_ANSWERS])
def test_bad_answer_is_rejected_with_one_line_and_no_output(tmp_path, answers, words):
    done = cookiecutter(tmp_path, answers)
    assert done.returncode != 0
    lines = (done.stdout + done.stderr).splitlines()
    assert any(all(word in line for word in words) for line in lines), done.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


def test_good_answers_pass_the_same_hook(tmp_path):
    done = cookiecutter(tmp_path, {"project_name": "Détection d'Anomalies",
                                   "author_email": "o.brien+ml@example.co.uk"})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "detection-d-anomalies" / "pyproject.toml").is_file()


def test_locked_modules_in_the_hook_follow_the_lock():
    """The hook's LOCKED_MODULES block was derived from the current lock (scripts/gen_locked_modules.py)."""
    import re

    hook = (TEMPLATE / "hooks" / "pre_gen_project.py").read_text(encoding="utf-8")
    lock = (TEMPLATE / "{{cookiecutter.project_slug}}" / "requirements" / "lock.txt").read_text(encoding="utf-8")
    pinned = {m.lower() for m in re.findall(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)==", lock, re.M)}
    counted = re.search(r"^# (\d+) distributions of requirements/lock.txt", hook, re.M)
    assert counted and int(counted.group(1)) == len(pinned), "run scripts/gen_locked_modules.py after make lock"
    block = hook[hook.index("LOCKED_MODULES = frozenset("):hook.index("# END LOCKED_MODULES")]
    names = set(block.split('"""')[1].split())
    assert {"yaml", "matplotlib", "joblib", "cryptography", "sklearn", "mlflow"} <= names

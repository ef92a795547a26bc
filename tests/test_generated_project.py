"""Slow: the default project installed once, then its own commands run as a user would."""

from __future__ import annotations

import json
import re

import pytest
from conftest import run

# One worker runs every slow test, so the project is installed once per run.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("installed-project")]


def test_make_help_lists_every_fixed_target(installed_project):
    out = run(["make", "help"], installed_project).stdout
    for target in ("setup", "pipeline", "test", "security", "controls", "docs", "check", "help"):
        assert re.search(rf"make {target}\b", out), target


def test_setup_is_idempotent_and_matches_the_lock(installed_project):
    again = run(["make", "setup"], installed_project)
    assert "hashes required" in again.stdout
    python = str(installed_project / ".venv/bin/python")
    script = "import json, importlib.metadata as m; print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))"
    installed = json.loads(run([python, "-c", script], installed_project).stdout)
    lock = (installed_project / "requirements/lock.txt").read_text().lower()
    for name in ("dvc", "mlflow", "scikit-learn", "pandera", "skops", "pandas"):
        assert f"{name}=={installed[name]}" in lock, name


def test_first_pipeline_runs_every_stage(piped_project):
    log = (piped_project / ".first-pipeline.log").read_text()
    for stage in ("prepare", "validate", "train", "evaluate"):
        assert f"Running stage '{stage}'" in log
    metrics = json.loads((piped_project / "reports/metrics.json").read_text())
    assert metrics["accuracy"] >= 0.9
    record = json.loads((piped_project / "reports/mlflow_run.json").read_text())
    assert record["run_id"] in log


def test_second_pipeline_is_a_no_op(piped_project):
    done = run(["make", "pipeline"], piped_project)
    assert "Running stage" not in done.stdout
    assert done.stdout.count("didn't change, skipping") == 4


def test_generated_test_suite_passes(piped_project):
    done = run(["make", "test"], piped_project)
    assert re.search(r"\d+ passed", done.stdout) and " failed" not in done.stdout


def test_setup_creates_the_signing_key_pair_outside_git_and_the_pipeline_signs(piped_project):
    import stat

    private = piped_project / "keys" / "model-signing.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert (piped_project / "keys" / "model-signing.pub").is_file()
    assert run(["git", "check-ignore", "-q", "keys/model-signing.key"], piped_project).returncode == 0
    signature = json.loads((piped_project / "models" / "model.sig").read_text())
    assert "dsseEnvelope" in signature, "the model carries a model-signing bundle"
    manifest = json.loads((piped_project / "models" / "model.json").read_text())
    assert manifest["signature"] == "model.sig"
    for report in ("robustness", "privacy", "pii", "validation"):
        assert json.loads((piped_project / "reports" / f"{report}.json").read_text())["passed"]


def test_generated_code_passes_its_own_ruff_lint_and_format(installed_project):
    # The pre-commit hooks and the CI lint job run exactly these: a fresh project must pass.
    ruff = str(installed_project / ".venv/bin/ruff")
    lint = run([ruff, "check", "--no-cache", "."], installed_project, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = run([ruff, "format", "--check", "--no-cache", "."], installed_project, check=False)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr

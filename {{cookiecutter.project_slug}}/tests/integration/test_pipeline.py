"""The DVC pipeline in scratch copies of the project, then what it left.

The copies keep the project's last run (outputs, dvc.lock, DVC's cache), so `dvc repro`
runs what changed since, as it does in the project: every stage on a project never run, only
the stages whose code, data or params changed otherwise. A second copy changes a training
parameter and commits it: train and evaluate run again there (DVC's run cache off, so they
really run), and that run's lineage in the copy's own MLflow store is checked.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import scratch_env, scratch_project, task_outputs

pytestmark = pytest.mark.integration
GIT_USER = ["-c", "user.name=test", "-c", "user.email=test@example.com"]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=cwd, env=scratch_env(cwd), capture_output=True, text=True, check=False
    )


def commit_all(copy: Path, message: str) -> None:
    for args in (
        ["git", "add", "-A"],
        ["git", *GIT_USER, "commit", "-q", "--no-verify", "--allow-empty", "-m", message],
    ):
        done = run(args, copy)
        assert done.returncode == 0, done.stdout + done.stderr


def stages_run(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A committed copy of the project with its last run, brought up to date by `dvc repro`."""
    copy = scratch_project(tmp_path_factory.mktemp("pipeline") / "project", last_run=True)
    assert run(["git", "init", "-q"], copy).returncode == 0
    commit_all(copy, "scratch copy")
    done = run(["dvc", "repro"], copy)
    assert done.returncode == 0, done.stdout + done.stderr
    return copy


@pytest.fixture(scope="module")
def retrained(project, tmp_path_factory) -> tuple[Path, set[str]]:
    """A copy of `project` whose train.seed changed (committed): the stages `dvc repro` ran."""
    copy = tmp_path_factory.mktemp("retrained") / "project"
    # its own MLflow store (a copied one would point at the first copy's artifact folder)
    stores = shutil.ignore_patterns("mlflow.db*", "mlartifacts", "mlruns", "tmp")
    shutil.copytree(project, copy, symlinks=True, ignore=stores)
    params = copy / "params.yaml"
    values = yaml.safe_load(params.read_text())
    values["train"]["seed"] = int(values["train"]["seed"]) + 1  # any other valid seed
    params.write_text(yaml.safe_dump(values, sort_keys=False))
    commit_all(copy, "another training seed")
    done = run(["dvc", "repro", "--no-run-cache"], copy)
    assert done.returncode == 0, done.stdout + done.stderr
    return copy, stages_run(done.stdout)


def test_pipeline_writes_the_task_metrics_plots_and_example_request(project, task, profile):
    metric_keys, plot_files = task_outputs(task)
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert set(metrics) == set(metric_keys)
    for name in plot_files:
        rows = json.loads((project / "reports" / "plots" / name).read_text())
        assert rows, name
    if task != "regression":
        confusion = json.loads((project / "reports" / "plots" / "confusion.json").read_text())
        assert {r["actual"] for r in confusion} <= set(profile["target"]["classes"])
    example = json.loads((project / "reports" / "example-request.json").read_text())
    assert 1 <= len(example["rows"]) <= 3
    assert set(example["rows"][0]) == set(profile["features"])


def test_run_is_tracked_with_lineage(retrained):
    import mlflow

    project, _ = retrained
    manifest = json.loads((project / "models" / "model.json").read_text())
    record = json.loads((project / "reports" / "mlflow_run.json").read_text())
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    run = client.get_run(record["run_id"])
    head = run_git(project)
    assert run.data.tags["git.commit"] == head
    assert run.data.tags["git.dirty"] == "false"
    assert run.data.tags["model.sha256"] == manifest["sha256"]
    lock = (project / "dvc.lock").read_text()
    assert run.data.tags["data.train.md5"] in lock
    assert run.data.tags["data.train.dvc_md5"] == run.data.tags["data.train.md5"]
    assert run.data.params["train.model"]
    assert run.data.tags["data.md5"]
    assert head[:7] in run.info.run_name
    inputs = run.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.digest == run.data.tags["data.md5"][:36]
    metric = next(iter(json.loads((project / "reports" / "metrics.json").read_text())))
    assert f"test_{metric}" in run.data.metrics
    versions = client.search_model_versions(f"run_id = '{run.info.run_id}'")
    assert versions, "the model was not registered"
    assert versions[0].tags["git.commit"] == head
    name = versions[0].name
    assert client.get_model_version_by_alias(name, "serving").version == versions[0].version


def run_git(project: Path) -> str:
    return run(["git", "rev-parse", "HEAD"], project).stdout.strip()


def test_second_repro_runs_no_stage(project):
    done = run(["dvc", "repro"], project)
    assert done.returncode == 0, done.stderr
    assert "Running stage" not in done.stdout
    status = run(["dvc", "status"], project)
    assert "up to date" in status.stdout


def test_changing_a_training_parameter_reruns_only_train_and_after(retrained):
    _, ran = retrained
    assert {"train", "evaluate"} <= ran
    assert not ran & {"prepare", "validate"}

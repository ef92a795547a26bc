"""Bring your own data: the whole pipeline (and, where it adds coverage, the generated
`make test`) on each bundled example and each `train.model`, and on a table of the user's
own (mixed types, missing values, string labels) put under data/raw/ with `dvc add`.

All of them copy ONE installed project (the session's `installed_project`) and switch
params.yaml, as a user would.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from conftest import run, scratch_copy

pytestmark = pytest.mark.slow

METRIC_KEYS = {
    "binary": {"accuracy", "precision", "recall", "f1", "roc_auc"},
    "multiclass": {"accuracy", "f1_macro", "balanced_accuracy"},
    "regression": {"rmse", "mae", "r2"},
}
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]


def generated_tests(project, *marks):
    """The whole generated test suite as `make test` / `make test-unit` runs it."""
    run([str(project / ".venv/bin/pytest"), *marks], project, timeout=1800)


def configure(project, **data_and_train):
    """Change params.yaml like a user: data.* and train.model."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    model = data_and_train.pop("model", None)
    params["data"].update(data_and_train)
    if model:
        params["train"]["model"] = model
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def commit(project, message):
    run(["git", "add", "-A"], project)
    run([*GIT, "commit", "-q", "--no-verify", "-m", message], project)


def example_project(installed_project, tmp_path, dataset, model):
    copy = scratch_copy(installed_project, tmp_path / "project", skip=("mlflow.db", "mlartifacts"))
    configure(copy, dataset=dataset, model=model)
    example = copy / "reference" / "examples" / f"{dataset}.json"
    if example.is_file():  # breast_cancer's reviewed profile is the default one
        shutil.copy(example, copy / "reference" / "data_profile.json")
    commit(copy, f"use the bundled {dataset} example with {model}")
    return copy


def pipeline(project):
    done = run(["make", "pipeline"], project, timeout=900)
    profile = json.loads((project / "reference" / "data_profile.json").read_text())
    task = profile["target"]["task"]
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert set(metrics) == METRIC_KEYS[task], metrics
    example = json.loads((project / "reports" / "example-request.json").read_text())
    assert 1 <= len(example["rows"]) <= 3 and set(example["rows"][0]) == set(profile["features"])
    return done, task


@pytest.mark.parametrize(
    ("dataset", "model", "with_tests"),
    [
        ("breast_cancer", "random_forest", None),
        ("wine", "hist_gradient_boosting", "test-unit"),  # multiclass: three-class labels
        ("diabetes", "ridge", "test"),  # regression: every generated test on a continuous target
    ],
)
def test_each_bundled_example_and_model_runs_the_pipeline(
    installed_project, tmp_path, dataset, model, with_tests
):
    project = example_project(installed_project, tmp_path, dataset, model)
    done, task = pipeline(project)
    assert f"fitting {model} ({task})" in done.stdout + done.stderr
    if with_tests:
        commit(project, "pipeline outputs")
        generated_tests(project, *(["-m", "not integration"] if with_tests == "test-unit" else []))


def own_table(rows=500):
    """A user's table: the seeded mixed example, with an id column and its own target name."""
    code = (
        "import sys; sys.path.insert(0, 'src'); import glob, importlib; "
        "pkg = glob.glob('src/*/data.py')[0].split('/')[1]; "
        "data = importlib.import_module(pkg + '.data'); "
        "f = data.make_mixed(rows=%d, seed=11).rename(columns={'target': 'outcome'}); "
        "f.insert(0, 'customer_id', ['C%%05d' %% i for i in range(len(f))]); "
        "f.to_csv(sys.argv[1], index=False, sep=';')" % rows
    )
    return code


def test_own_data_with_categoricals_goes_from_dvc_add_to_make_test(installed_project, tmp_path):
    project = scratch_copy(installed_project, tmp_path / "project", skip=("mlflow.db", "mlartifacts"))
    raw = project / "data" / "raw" / "customers.csv"
    python = str(project / ".venv" / "bin" / "python")
    run([python, "-c", own_table(), str(raw)], project)
    run([str(project / ".venv" / "bin" / "dvc"), "add", "data/raw/customers.csv"], project)
    assert (project / "data" / "raw" / "customers.csv.dvc").is_file()
    ignored = subprocess.run(["git", "check-ignore", "-q", "data/raw/customers.csv.dvc"],
                             cwd=project, check=False)
    assert ignored.returncode == 1, "the .dvc file must be committable"
    configure(project, raw_path="data/raw/customers.csv", target="outcome",
              drop_columns=["customer_id"])
    done = run(["make", "profile"], project)
    assert "review it" in done.stdout and "+ feature plan (categorical" in done.stdout
    profile = json.loads((project / "reference" / "data_profile.json").read_text())
    assert profile["target"]["classes"].keys() == {"churn", "stay"}
    assert {e["type"] for e in profile["features"].values()} == {
        "integer", "numeric", "boolean", "categorical"}
    commit(project, "own data: customers.csv")
    status = run(["git", "status", "--porcelain", "--ignored", "data"], project).stdout
    assert "customers.csv.dvc" not in status, "the .dvc file is committed"
    done, task = pipeline(project)
    assert task == "binary" and "dropped" in done.stdout + done.stderr
    tracked = run(["git", "ls-files", "data"], project).stdout.split()
    assert "data/raw/customers.csv" not in tracked and "data/raw/customers.csv.dvc" in tracked
    commit(project, "pipeline outputs")
    generated_tests(project)

    # Poisoned rows stop the pipeline before train: an unknown category, a shifted label share.
    text = raw.read_text().splitlines()
    header = text[0].split(";")
    plan, outcome = header.index("plan"), header.index("outcome")
    poisoned = [text[0]]
    for number, line in enumerate(text[1:]):
        cells = line.split(";")
        if number < 20:
            cells[plan] = "platinum"
        if number % 3 == 0:
            cells[outcome] = "churn"
        poisoned.append(";".join(cells))
    raw.write_text("\n".join(poisoned) + "\n")
    done = run(["make", "pipeline"], project, check=False)
    log = done.stdout + done.stderr
    assert done.returncode != 0 and "Running stage 'train'" not in log, log[-2000:]
    report = json.loads((project / "reports" / "validation.json").read_text())
    rules = {r["rule"] for part in ("train", "test") for r in report[part]["rejected_rows"]}
    problems = " ".join(p for part in ("train", "test") for p in report[part]["problems"])
    assert any("isin" in rule for rule in rules), rules
    assert "label distribution" in problems


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"target": "no_such_column"}, "data.target"),
        ({"raw_path": "../outside.csv"}, "outside the repository"),
        ({"raw_path": "data/raw/table.xlsx"}, "not a .csv or .parquet"),
        ({"raw_path": "data/raw/empty.csv"}, "empty"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(installed_project, tmp_path, change, words):
    project = scratch_copy(installed_project, tmp_path / "project", skip=("data",))
    (project / "data" / "raw").mkdir(parents=True)
    (project / "data" / "raw" / "table.xlsx").write_bytes(b"PK\x03\x04")
    (project / "data" / "raw" / "empty.csv").write_text("")
    (tmp_path / "outside.csv").write_text("a,target\n1,0\n")
    configure(project, **change)
    package = next(p.name for p in (project / "src").iterdir() if (p / "data.py").exists())
    done = run([str(project / ".venv/bin/python"), "-m", package, "prepare"], project, check=False)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], done.stderr
    assert not (project / "data" / "prepared").exists()

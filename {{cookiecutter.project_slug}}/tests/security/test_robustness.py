"""Evasion and membership-inference attacks on the trained model, and the gate that stops them.

The configured thresholds must pass on the configured model; set tight, or faced with a model
that memorised its training rows, the `evaluate` stage must fail. Every expectation is derived
from params.yaml and the profile (task, model, thresholds).
"""

from __future__ import annotations

import json

import pytest
import yaml
from serve_support import save_like_the_pipeline

from {{ cookiecutter.package_name }} import robustness
from {{ cookiecutter.package_name }}.config import Paths
from {{ cookiecutter.package_name }}.data import LABEL, write_prepared
from {{ cookiecutter.package_name }}.train import fit


@pytest.fixture(scope="module")
def model(frames, params, profile):
    return fit(frames[0], params["train"], profile)


def settings(params, **changes):
    return {**params["robustness"], "seed": params["data"]["seed"], **changes}


def test_configured_model_passes_the_configured_thresholds(model, frames, params, task):
    train, test = frames
    evasion = robustness.evasion(model, test, settings(params), task)
    assert evasion["passed"], evasion
    privacy = robustness.membership_inference(model, train, test, params["privacy"], task)
    assert privacy["passed"], privacy


def test_a_stronger_attack_or_tight_threshold_fails(model, frames, params, task):
    test = frames[1]
    if task == "regression":
        strong = settings(
            params, eps=float(params["robustness"]["eps"]) * 20, max_error_increase=0.0
        )
        report = robustness.evasion(model, test, strong, task)
        assert report["error_increase"] > 0, "the attack must bite"
    else:
        strong = settings(params, eps=max(2.0, float(params["robustness"]["eps"]) * 20))
        strong["max_accuracy_drop"] = 0.0
        report = robustness.evasion(model, test, strong, task)
        assert report["adversarial_accuracy"] < report["clean_accuracy"], "the attack must bite"
    assert not report["passed"]


def test_a_model_that_memorised_its_training_rows_is_caught(frames, params, profile, task):
    train, test = frames
    overfit_params = {
        **params["train"],
        "model": "random_forest",
        "random_forest": {"n_estimators": 50, "max_depth": None, "min_samples_leaf": 1},
    }
    overfit = fit(train, overfit_params, profile)  # fully grown trees
    privacy = robustness.membership_inference(overfit, train, test, params["privacy"], task)
    auc = privacy["membership_auc"]
    assert (
        auc
        > robustness.membership_inference(
            fit(train, params["train"], profile), train, test, params["privacy"], task
        )["membership_auc"]
    ), "memorising must leak more than the configured model"
    tight = {**params["privacy"], "max_membership_auc": round(min(auc - 0.01, 0.99), 3)}
    assert not robustness.membership_inference(overfit, train, test, tight, task)["passed"]


def test_evaluate_fails_on_tight_thresholds_and_records_the_attacks_in_mlflow(
    tmp_path, model, frames, params, task, monkeypatch, request
):
    import shutil

    import mlflow
    from mlflow.tracking import MlflowClient

    from {{ cookiecutter.package_name }} import evaluate

    root = Paths().root
    tight = {
        **params,
        "robustness": {
            **params["robustness"],
            "max_accuracy_drop": -1.0,
            "max_error_increase": -1.0,
        },
        "privacy": {"max_membership_auc": 0.0},
        "mlflow": {**params["mlflow"], "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tight), encoding="utf-8")
    shutil.copytree(root / "reference", tmp_path / "reference")
    paths = Paths(tmp_path)
    paths.prepared.mkdir(parents=True)
    write_prepared(frames[0], paths.train_data)
    write_prepared(frames[1], paths.test_data)
    save_like_the_pipeline(model, paths)  # signed with a pinned key, named in dvc.lock
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    # Recording a run points MLflow (and MLFLOW_TRACKING_URI) at this store, process-wide.
    request.addfinalizer(lambda: mlflow.set_tracking_uri(None))

    assert evaluate.main() == 1, "crossed thresholds fail the stage"
    evasion = json.loads((paths.reports / "robustness.json").read_text())
    privacy = json.loads((paths.reports / "privacy.json").read_text())
    assert evasion["passed"] is False and privacy["passed"] is False
    run_id = json.loads((paths.reports / "mlflow_run.json").read_text())["run_id"]
    logged = MlflowClient(tracking_uri=tight["mlflow"]["tracking_uri"]).get_run(run_id).data.metrics
    key = "adversarial_rmse" if task == "regression" else "adversarial_accuracy"
    assert logged[key] == evasion[key]
    assert logged["membership_auc"] == privacy["membership_auc"]
    assert set(json.loads((paths.reports / "metrics.json").read_text())) == set(
        evaluate.METRIC_KEYS[task]
    )
    example = json.loads((paths.reports / "example-request.json").read_text())
    assert 1 <= len(example["rows"]) <= 3
    assert set(example["rows"][0]) == set(frames[1].columns) - {LABEL}

"""Evasion and membership-inference attacks on the trained model, and the gate that stops them.

The default thresholds must pass with margin on the default model; set tight, or faced with a
model that memorised its training rows, the `evaluate` stage must fail.
"""

from __future__ import annotations

import json

import pytest
import yaml
from serve_support import save_like_the_pipeline
from sklearn.ensemble import ExtraTreesClassifier

from {{ cookiecutter.package_name }} import robustness
from {{ cookiecutter.package_name }}.config import Paths
from {{ cookiecutter.package_name }}.data import LABEL
from {{ cookiecutter.package_name }}.train import fit


@pytest.fixture(scope="module")
def model(frames, params):
    return fit(frames[0], params["train"])


def test_default_model_passes_the_default_thresholds_with_margin(model, frames, params):
    train, test = frames
    evasion = robustness.evasion(model, test, params["robustness"])
    assert evasion["passed"]
    minimum = params["robustness"]["min_adversarial_accuracy"]
    assert evasion["adversarial_accuracy"] >= minimum + 0.05
    assert evasion["adversarial_accuracy"] < evasion["clean_accuracy"], "the attack must bite"
    privacy = robustness.membership_inference(model, train, test, params["privacy"])
    assert privacy["passed"]
    assert privacy["membership_auc"] <= params["privacy"]["max_membership_auc"] - 0.03


def test_a_stronger_attack_or_tight_threshold_fails(model, frames, params):
    test = frames[1]
    tight = {**params["robustness"], "min_adversarial_accuracy": 0.97}
    assert not robustness.evasion(model, test, tight)["passed"]
    strong = {**params["robustness"], "attack": "pgd", "eps": 0.5}
    assert not robustness.evasion(model, test, strong)["passed"]


def test_a_model_that_memorised_its_training_rows_is_caught(frames, params):
    train, test = frames
    overfit = ExtraTreesClassifier(n_estimators=50, random_state=0)  # fully grown trees
    overfit.fit(train.drop(columns=[LABEL]), train[LABEL])
    privacy = robustness.membership_inference(overfit, train, test, params["privacy"])
    assert not privacy["passed"], privacy
    assert privacy["membership_auc"] > params["privacy"]["max_membership_auc"] + 0.1


def test_evaluate_fails_on_tight_thresholds_and_records_the_attacks_in_mlflow(
    tmp_path, model, frames, params, monkeypatch, request
):
    import mlflow
    from mlflow.tracking import MlflowClient

    from {{ cookiecutter.package_name }} import evaluate

    tight = {
        **params,
        "robustness": {**params["robustness"], "min_adversarial_accuracy": 0.99},
        "privacy": {"max_membership_auc": 0.5},
        "mlflow": {**params["mlflow"], "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tight), encoding="utf-8")
    paths = Paths(tmp_path)
    paths.prepared.mkdir(parents=True)
    frames[0].to_csv(paths.train_csv, index=False)
    frames[1].to_csv(paths.test_csv, index=False)
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
    assert logged["adversarial_accuracy"] == evasion["adversarial_accuracy"]
    assert logged["membership_auc"] == privacy["membership_auc"]

"""The `robustness` stage: attack the trained model and fail when it gives way too easily.

Evasion (EVASION ROBUST MODEL): adversarial-robustness-toolbox crafts adversarial test inputs
with FGSM or PGD against the logistic regression, in the scaled feature space (so `eps` is a
budget in standard deviations per feature), and we measure the accuracy that is left.

Membership inference (data reverse engineering; SMALL MODEL keeps it low): a loss-threshold
attack guesses "was in the training set" when the model's loss on a row is small. Its ROC AUC
between training rows (members) and test rows (non-members) is 0.5 for a model that leaks
nothing about its training rows and 1.0 for one that memorised them.

Writes reports/robustness.json and reports/privacy.json, logs both to the pipeline's MLflow
run (reports/mlflow_run.json), then exits 1 when `robustness.min_adversarial_accuracy` or
`privacy.max_membership_auc` in params.yaml is crossed.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from .config import Paths, get_logger, load_params
from .data import LABEL

ATTACKS = ("fgsm", "pgd")


def split_pipeline(model: Any) -> tuple[Any, Any]:
    """The scaler and the classifier of Pipeline(scale, classify)."""
    steps = getattr(model, "named_steps", {})
    if "scale" not in steps or "classify" not in steps:
        raise ValueError(
            "the robustness stage expects Pipeline([('scale', ...), ('classify', ...)])"
        )
    return steps["scale"], steps["classify"]


def adversarial_examples(
    classifier: Any, inputs: np.ndarray, labels: np.ndarray, params: dict[str, Any]
) -> np.ndarray:
    """Adversarial versions of `inputs` (scaled space) crafted with ART."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
        from art.estimators.classification.scikitlearn import SklearnClassifier

    attack_name = params["attack"]
    if attack_name not in ATTACKS:
        raise ValueError(
            f"robustness.attack is {attack_name!r}: choose one of {', '.join(ATTACKS)}"
        )
    target = SklearnClassifier(model=classifier)
    if not hasattr(target, "loss_gradient"):
        raise ValueError(
            f"{type(classifier).__name__} gives ART no gradients: FGSM/PGD need a "
            "differentiable model such as LogisticRegression"
        )
    eps = float(params["eps"])
    if attack_name == "fgsm":
        attack = FastGradientMethod(target, eps=eps)
    else:
        attack = ProjectedGradientDescent(
            target,
            eps=eps,
            eps_step=eps / 4,
            max_iter=int(params.get("max_iter", 10)),
            verbose=False,
        )
    one_hot = np.eye(len(classifier.classes_))[np.searchsorted(classifier.classes_, labels)]
    return attack.generate(inputs.astype(np.float32), y=one_hot)


def evasion(model: Any, test: pd.DataFrame, params: dict[str, Any]) -> dict[str, Any]:
    sample = int(params.get("sample") or 0)
    if sample and sample < len(test):
        test = test.sample(n=sample, random_state=int(params.get("seed", 0)))
    scaler, classifier = split_pipeline(model)
    inputs = scaler.transform(test.drop(columns=[LABEL]))
    labels = test[LABEL].to_numpy()
    adversarial = adversarial_examples(classifier, inputs, labels, params)
    clean = float((classifier.predict(inputs) == labels).mean())
    attacked = float((classifier.predict(adversarial) == labels).mean())
    return {
        "attack": params["attack"],
        "eps": float(params["eps"]),
        "space": "standardised features",
        "rows": len(test),
        "clean_accuracy": round(clean, 6),
        "adversarial_accuracy": round(attacked, 6),
        "min_adversarial_accuracy": params["min_adversarial_accuracy"],
        "passed": attacked >= params["min_adversarial_accuracy"],
    }


def row_losses(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Cross-entropy of each row's true label."""
    probabilities = model.predict_proba(frame.drop(columns=[LABEL]))
    index = np.searchsorted(model.classes_, frame[LABEL].to_numpy())
    return -np.log(np.clip(probabilities[np.arange(len(frame)), index], 1e-12, 1.0))


def membership_inference(
    model: Any, train: pd.DataFrame, test: pd.DataFrame, params: dict[str, Any]
) -> dict[str, Any]:
    """Loss-threshold membership inference: AUC of -loss for members vs non-members."""
    members, others = row_losses(model, train), row_losses(model, test)
    truth = np.r_[np.ones(len(members)), np.zeros(len(others))]
    auc = float(roc_auc_score(truth, -np.r_[members, others]))
    return {
        "attack": "loss threshold",
        "members": len(members),
        "non_members": len(others),
        "membership_auc": round(auc, 6),
        "mean_loss_members": round(float(members.mean()), 6),
        "mean_loss_non_members": round(float(others.mean()), 6),
        "max_membership_auc": params["max_membership_auc"],
        "passed": auc <= params["max_membership_auc"],
    }


def log_to_mlflow(paths: Paths, params: dict[str, Any], metrics: dict[str, float]) -> str:
    """Add the metrics to the run `evaluate` recorded (reports/mlflow_run.json)."""
    record_file = paths.reports / "mlflow_run.json"
    if not record_file.is_file():
        raise FileNotFoundError(f"{record_file} is missing: run the evaluate stage first")
    run_id = json.loads(record_file.read_text(encoding="utf-8"))["run_id"]
    from mlflow.tracking import MlflowClient

    from . import tracking

    client = MlflowClient(tracking_uri=tracking.tracking_uri(paths, params))
    for name, value in metrics.items():
        client.log_metric(run_id, name, value)
    return run_id


def main() -> int:
    log = get_logger("robustness")
    paths = Paths()
    params = load_params(paths)
    from .model_io import load_model

    model = load_model(paths.model, paths.model_manifest)
    train, test = pd.read_csv(paths.train_csv), pd.read_csv(paths.test_csv)
    robust = evasion(model, test, {**params["robustness"], "seed": params["data"]["seed"]})
    privacy = membership_inference(model, train, test, params["privacy"])
    paths.reports.mkdir(parents=True, exist_ok=True)
    for name, report in (("robustness", robust), ("privacy", privacy)):
        (paths.reports / f"{name}.json").write_text(
            json.dumps(report, indent=2) + "\n", encoding="utf-8"
        )
    log.info(
        "evasion (%s, eps %.3g): accuracy %.3f clean, %.3f under attack (minimum %.3f)",
        robust["attack"],
        robust["eps"],
        robust["clean_accuracy"],
        robust["adversarial_accuracy"],
        robust["min_adversarial_accuracy"],
    )
    log.info(
        "membership inference (loss threshold): AUC %.3f (maximum %.3f)",
        privacy["membership_auc"],
        privacy["max_membership_auc"],
    )
    run_id = log_to_mlflow(
        paths,
        params,
        {
            "adversarial_accuracy": robust["adversarial_accuracy"],
            "adversarial_clean_accuracy": robust["clean_accuracy"],
            "membership_auc": privacy["membership_auc"],
        },
    )
    log.info("logged to MLflow run %s", run_id)
    failed = (
        [
            f"adversarial accuracy {robust['adversarial_accuracy']:.3f} is below "
            f"robustness.min_adversarial_accuracy {robust['min_adversarial_accuracy']}"
        ]
        if not robust["passed"]
        else []
    )
    if not privacy["passed"]:
        failed.append(
            f"membership-inference AUC {privacy['membership_auc']:.3f} is above "
            f"privacy.max_membership_auc {privacy['max_membership_auc']}"
        )
    for problem in failed:
        log.error("%s (params.yaml; reports/robustness.json, reports/privacy.json)", problem)
    return 1 if failed else 0

"""Attacks on the trained model, run by the `evaluate` stage, which fails when it gives way.

Evasion (EVASION ROBUST MODEL): adversarial-robustness-toolbox crafts adversarial test inputs
with FGSM or PGD against the logistic regression, in the scaled feature space (so `eps` is a
budget in standard deviations per feature), and we measure the accuracy that is left.

Membership inference (data reverse engineering; SMALL MODEL keeps it low): a loss-threshold
attack guesses "was in the training set" when the model's loss on a row is small. Its ROC AUC
between training rows (members) and test rows (non-members) is 0.5 for a model that leaks
nothing about its training rows and 1.0 for one that memorised them.

`attack` writes reports/robustness.json and reports/privacy.json; `evaluate` records both in
the run's MLflow entry and exits 1 when `robustness.min_adversarial_accuracy` or
`privacy.max_membership_auc` in params.yaml is crossed. They are evaluate steps rather than a
stage of their own so that the model is loaded, verified and recorded once per pipeline.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from .config import Paths, get_logger
from .data import LABEL

ATTACKS = ("fgsm", "pgd")


def split_pipeline(model: Any) -> tuple[Any, Any]:
    """The scaler and the classifier of Pipeline(scale, classify)."""
    steps = getattr(model, "named_steps", {})
    if "scale" not in steps or "classify" not in steps:
        raise ValueError(
            "the robustness evaluation expects Pipeline([('scale', ...), ('classify', ...)])"
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
    sample, seed = int(params.get("sample") or 0), int(params.get("seed", 0))
    if sample:
        train, test = (
            f.sample(n=sample, random_state=seed) if len(f) > sample else f for f in (train, test)
        )
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


def attack(
    model: Any, train: pd.DataFrame, test: pd.DataFrame, params: dict[str, Any], paths: Paths
) -> tuple[dict[str, float], list[str]]:
    """Run both attacks, write reports/robustness.json and reports/privacy.json.

    Returns the metrics to record in MLflow and the thresholds crossed (empty when both pass).
    """
    log = get_logger("evaluate")
    robust = evasion(model, test, {**params["robustness"], "seed": params["data"]["seed"]})
    privacy = membership_inference(
        model, train, test, {**params["privacy"], "seed": params["data"]["seed"]}
    )
    paths.reports.mkdir(parents=True, exist_ok=True)
    for name, report in (("robustness", robust), ("privacy", privacy)):
        (paths.reports / f"{name}.json").write_text(
            json.dumps(report, indent=2) + "\n", encoding="utf-8"
        )
    log.info(
        "evasion (%s, eps %.3g, %d rows): accuracy %.3f clean, %.3f under attack (minimum %.3f)",
        robust["attack"],
        robust["eps"],
        robust["rows"],
        robust["clean_accuracy"],
        robust["adversarial_accuracy"],
        robust["min_adversarial_accuracy"],
    )
    log.info(
        "membership inference (loss threshold, %d + %d rows): AUC %.3f (maximum %.3f)",
        privacy["members"],
        privacy["non_members"],
        privacy["membership_auc"],
        privacy["max_membership_auc"],
    )
    failed = []
    if not robust["passed"]:
        failed.append(
            f"adversarial accuracy {robust['adversarial_accuracy']:.3f} is below "
            f"robustness.min_adversarial_accuracy {robust['min_adversarial_accuracy']}"
        )
    if not privacy["passed"]:
        failed.append(
            f"membership-inference AUC {privacy['membership_auc']:.3f} is above "
            f"privacy.max_membership_auc {privacy['max_membership_auc']}"
        )
    metrics = {
        "adversarial_accuracy": robust["adversarial_accuracy"],
        "adversarial_clean_accuracy": robust["clean_accuracy"],
        "membership_auc": privacy["membership_auc"],
        "adversarial_rows": robust["rows"],  # the bounded samples (robustness/privacy.sample)
        "membership_rows": privacy["members"] + privacy["non_members"],
    }
    return metrics, failed

"""Attacks on the trained model, run by the `evaluate` stage, which fails when it gives way.

Evasion (EVASION ROBUST MODEL), on the numeric features only (booleans and categories are
held), in the standardised space of the model's preprocessing, so `eps` is a budget in
standard deviations per feature:
- classification with a differentiable model (logistic): adversarial-robustness-toolbox's
  FGSM or PGD (`robustness.attack`), a gradient attack;
- classification with a tree model (random_forest, hist_gradient_boosting): a black-box
  bounded random search (`robustness.tries` random corners of the eps box per row; the first
  that changes the answer wins);
- regression: the error increase under a bounded perturbation (the exact worst case for a
  linear model, the bounded random search for trees), as RMSE under attack / clean RMSE - 1.
The stage fails when accuracy drops by more than `robustness.max_accuracy_drop`, or the RMSE
grows by more than `robustness.max_error_increase`.

Membership inference (data reverse engineering; SMALL MODEL keeps it low): a threshold attack
guesses "was in the training set" when the model's loss (classification: cross-entropy of the
true label; regression: the absolute residual) on a row is small. Its ROC AUC between training
rows (members) and test rows (non-members) is 0.5 for a model that leaks nothing and 1.0 for
one that memorised them; the stage fails above `privacy.max_membership_auc`.

`attack` writes reports/robustness.json and reports/privacy.json; `evaluate` records both in
the run's MLflow entry. They are evaluate steps rather than a stage of their own so that the
model is loaded, verified and recorded once per pipeline.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from .config import Paths, get_logger
from .data import LABEL

ATTACKS = ("fgsm", "pgd")
DEFAULTS = {"attack": "fgsm", "eps": 0.1, "sample": 0, "tries": 20}


def split_pipeline(model: Any) -> tuple[Any, Any, int]:
    """The preprocessing, the final estimator, and how many leading columns of the
    preprocessed space are numeric (the ones an attack may move)."""
    steps = getattr(model, "named_steps", {})
    if "prepare" not in steps or "model" not in steps:
        raise ValueError(
            "the robustness evaluation expects Pipeline([('prepare', ...), ('model', ...)])"
        )
    prepare = steps["prepare"]
    numeric = 0
    for name, _, columns in prepare.transformers_:
        if name == "numeric":
            numeric = len(columns)
    return prepare, steps["model"], numeric


def differentiable(estimator: Any) -> bool:
    return type(estimator).__name__ == "LogisticRegression"


def gradient_examples(
    estimator: Any, inputs: np.ndarray, labels: np.ndarray, mask: np.ndarray, params: dict
) -> np.ndarray:
    """Adversarial versions of `inputs` (preprocessed space) crafted with ART's FGSM or PGD."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
        from art.estimators.classification.scikitlearn import SklearnClassifier

    name = params["attack"]
    if name not in ATTACKS:
        raise ValueError(f"robustness.attack is {name!r}: choose one of {', '.join(ATTACKS)}")
    target = SklearnClassifier(model=estimator)
    eps = float(params["eps"])
    if name == "fgsm":
        attack = FastGradientMethod(target, eps=eps)
    else:
        attack = ProjectedGradientDescent(
            target,
            eps=eps,
            eps_step=eps / 4,
            max_iter=int(params.get("max_iter", 10)),
            verbose=False,
        )
    one_hot = np.eye(len(estimator.classes_))[np.searchsorted(estimator.classes_, labels)]
    return attack.generate(inputs.astype(np.float32), y=one_hot, mask=mask.astype(np.float32))


def random_corners(rows: int, width: int, mask: np.ndarray, eps: float, seed: int, tries: int):
    """`tries` random corners of the eps box per row, on the masked columns only."""
    rng = np.random.default_rng(seed)
    for _ in range(tries):
        yield rng.choice([-eps, eps], size=(rows, width)) * mask


def _labels_index(estimator: Any, labels: np.ndarray) -> np.ndarray:
    classes = list(estimator.classes_)
    return np.array([classes.index(v) for v in labels])


def evasion(
    model: Any, test: pd.DataFrame, params: dict[str, Any], task: str = "binary"
) -> dict[str, Any]:
    params = {**DEFAULTS, **params}
    sample = int(params.get("sample") or 0)
    if sample and sample < len(test):
        test = test.sample(n=sample, random_state=int(params.get("seed", 0)))
    prepare, estimator, numeric = split_pipeline(model)
    inputs = np.asarray(prepare.transform(test.drop(columns=[LABEL])), dtype=float)
    truth = test[LABEL].to_numpy()
    mask = np.zeros(inputs.shape[1])
    mask[:numeric] = 1.0
    eps = float(params["eps"])
    report: dict[str, Any] = {
        "eps": eps,
        "space": "standardised numeric features (booleans and categories held)",
        "rows": len(test),
        "perturbed_features": numeric,
    }
    if task == "regression":
        return report | regression_evasion(estimator, inputs, truth, mask, params)
    clean = estimator.predict(inputs)
    if numeric == 0:
        adversarial_predictions, kind = clean, "none (no numeric feature to perturb)"
    elif differentiable(estimator):
        adversarial = gradient_examples(
            estimator, inputs, truth, np.broadcast_to(mask, inputs.shape), params
        )
        adversarial_predictions, kind = estimator.predict(adversarial), params["attack"]
    else:
        adversarial_predictions = clean.copy()
        wrong = adversarial_predictions != truth
        for delta in random_corners(
            len(inputs), inputs.shape[1], mask, eps, params.get("seed", 0), int(params["tries"])
        ):
            if wrong.all():
                break
            candidate = estimator.predict(inputs + delta)
            flipped = (candidate != truth) & ~wrong
            adversarial_predictions[flipped] = candidate[flipped]
            wrong |= flipped
        kind = f"bounded random search ({int(params['tries'])} tries, black-box)"
    clean_accuracy = float((clean == truth).mean())
    attacked = float((adversarial_predictions == truth).mean())
    drop = clean_accuracy - attacked
    limit = float(params["max_accuracy_drop"])
    return report | {
        "attack": kind,
        "clean_accuracy": round(clean_accuracy, 6),
        "adversarial_accuracy": round(attacked, 6),
        "accuracy_drop": round(drop, 6),
        "max_accuracy_drop": limit,
        "passed": drop <= limit,
    }


def regression_evasion(
    estimator: Any, inputs: np.ndarray, truth: np.ndarray, mask: np.ndarray, params: dict
) -> dict[str, Any]:
    """RMSE growth under the worst perturbation found within the eps box."""
    eps = float(params["eps"])
    clean = estimator.predict(inputs)
    direction = np.sign(clean - truth)
    direction[direction == 0] = 1.0
    coefficients = getattr(estimator, "coef_", None)
    if coefficients is not None:  # linear: the worst corner is known exactly
        delta = eps * np.sign(np.ravel(coefficients))[None, :] * direction[:, None] * mask
        attacked = estimator.predict(inputs + delta)
        kind = "worst case of a linear model (gradient sign)"
    else:
        attacked = clean.copy()
        for delta in random_corners(
            len(inputs), inputs.shape[1], mask, eps, params.get("seed", 0), int(params["tries"])
        ):
            candidate = estimator.predict(inputs + delta)
            worse = np.abs(candidate - truth) > np.abs(attacked - truth)
            attacked[worse] = candidate[worse]
        kind = f"bounded random search ({int(params['tries'])} tries, black-box)"
    clean_rmse = math.sqrt(float(np.mean((clean - truth) ** 2)))
    attacked_rmse = math.sqrt(float(np.mean((attacked - truth) ** 2)))
    increase = attacked_rmse / clean_rmse - 1.0 if clean_rmse > 0 else float(attacked_rmse > 0)
    limit = float(params["max_error_increase"])
    return {
        "attack": kind,
        "clean_rmse": round(clean_rmse, 6),
        "adversarial_rmse": round(attacked_rmse, 6),
        "error_increase": round(increase, 6),
        "max_error_increase": limit,
        "passed": increase <= limit,
    }


def row_losses(model: Any, frame: pd.DataFrame, task: str = "binary") -> np.ndarray:
    """Per row: the cross-entropy of the true label, or (regression) the absolute residual."""
    features = frame.drop(columns=[LABEL])
    if task == "regression":
        return np.abs(model.predict(features) - frame[LABEL].to_numpy(dtype=float))
    probabilities = model.predict_proba(features)
    index = _labels_index(model, frame[LABEL].to_numpy())
    return -np.log(np.clip(probabilities[np.arange(len(frame)), index], 1e-12, 1.0))


def membership_inference(
    model: Any,
    train: pd.DataFrame,
    test: pd.DataFrame,
    params: dict[str, Any],
    task: str = "binary",
) -> dict[str, Any]:
    """Loss-threshold membership inference: AUC of -loss for members vs non-members."""
    sample, seed = int(params.get("sample") or 0), int(params.get("seed", 0))
    if sample:
        train, test = (
            f.sample(n=sample, random_state=seed) if len(f) > sample else f for f in (train, test)
        )
    members, others = row_losses(model, train, task), row_losses(model, test, task)
    truth = np.r_[np.ones(len(members)), np.zeros(len(others))]
    auc = float(roc_auc_score(truth, -np.r_[members, others]))
    return {
        "attack": "residual threshold" if task == "regression" else "loss threshold",
        "members": len(members),
        "non_members": len(others),
        "membership_auc": round(auc, 6),
        "mean_loss_members": round(float(members.mean()), 6),
        "mean_loss_non_members": round(float(others.mean()), 6),
        "max_membership_auc": params["max_membership_auc"],
        "passed": auc <= params["max_membership_auc"],
    }


def attack(
    model: Any,
    train: pd.DataFrame,
    test: pd.DataFrame,
    params: dict[str, Any],
    paths: Paths,
    profile: dict[str, Any] | None = None,
) -> tuple[dict[str, float], list[str]]:
    """Run both attacks, write reports/robustness.json and reports/privacy.json.

    Returns the metrics to record in MLflow and the thresholds crossed (empty when both pass).
    """
    log = get_logger("evaluate")
    task = profile["target"]["task"] if profile else "binary"
    seed = params["data"]["seed"]
    robust = evasion(model, test, {**params["robustness"], "seed": seed}, task)
    privacy = membership_inference(model, train, test, {**params["privacy"], "seed": seed}, task)
    paths.reports.mkdir(parents=True, exist_ok=True)
    for name, report in (("robustness", robust), ("privacy", privacy)):
        (paths.reports / f"{name}.json").write_text(
            json.dumps(report, indent=2) + "\n", encoding="utf-8"
        )
    failed = []
    if task == "regression":
        log.info(
            "evasion (%s, eps %.3g, %d rows): RMSE %.4g clean, %.4g under attack (+%.3f, "
            "maximum +%.3f)",
            robust["attack"],
            robust["eps"],
            robust["rows"],
            robust["clean_rmse"],
            robust["adversarial_rmse"],
            robust["error_increase"],
            robust["max_error_increase"],
        )
        if not robust["passed"]:
            failed.append(
                f"RMSE under attack grew by {robust['error_increase']:.3f}, more than "
                f"robustness.max_error_increase {robust['max_error_increase']}"
            )
        metrics = {
            "adversarial_rmse": robust["adversarial_rmse"],
            "adversarial_error_increase": robust["error_increase"],
        }
    else:
        log.info(
            "evasion (%s, eps %.3g, %d rows): accuracy %.3f clean, %.3f under attack (drop %.3f, "
            "maximum %.3f)",
            robust["attack"],
            robust["eps"],
            robust["rows"],
            robust["clean_accuracy"],
            robust["adversarial_accuracy"],
            robust["accuracy_drop"],
            robust["max_accuracy_drop"],
        )
        if not robust["passed"]:
            failed.append(
                f"accuracy under attack dropped by {robust['accuracy_drop']:.3f}, more than "
                f"robustness.max_accuracy_drop {robust['max_accuracy_drop']}"
            )
        metrics = {
            "adversarial_accuracy": robust["adversarial_accuracy"],
            "adversarial_clean_accuracy": robust["clean_accuracy"],
        }
    log.info(
        "membership inference (%s, %d + %d rows): AUC %.3f (maximum %.3f)",
        privacy["attack"],
        privacy["members"],
        privacy["non_members"],
        privacy["membership_auc"],
        privacy["max_membership_auc"],
    )
    if not privacy["passed"]:
        failed.append(
            f"membership-inference AUC {privacy['membership_auc']:.3f} is above "
            f"privacy.max_membership_auc {privacy['max_membership_auc']}"
        )
    metrics["membership_auc"] = privacy["membership_auc"]
    # the bounded samples (robustness.sample, privacy.sample)
    metrics["adversarial_rows"] = robust["rows"]
    metrics["membership_rows"] = privacy["members"] + privacy["non_members"]
    return metrics, failed

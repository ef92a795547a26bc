"""The `evaluate` stage: score the verified model on held-out data, write metrics and plots,
record the run (params, metrics, lineage, model) in MLflow, attack the model (robustness.py:
evasion and membership inference) and add those results to the run, then fail when a
threshold in params.yaml is crossed. The run is recorded before the attacks and the verdict,
so a failing model leaves its evidence in MLflow."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics

from .config import Paths, get_logger, load_params
from .data import LABEL


def score(model: Any, frame: pd.DataFrame) -> tuple[dict[str, float], np.ndarray]:
    features, truth = frame.drop(columns=[LABEL]), frame[LABEL]
    predicted = model.predict(features)
    scores = model.predict_proba(features)[:, 1]
    result = {
        "accuracy": metrics.accuracy_score(truth, predicted),
        "precision": metrics.precision_score(truth, predicted),
        "recall": metrics.recall_score(truth, predicted),
        "f1": metrics.f1_score(truth, predicted),
        "roc_auc": metrics.roc_auc_score(truth, scores),
    }
    return {name: round(float(value), 6) for name, value in result.items()}, scores


def plot(model: Any, frame: pd.DataFrame, scores: np.ndarray, paths: Paths) -> list:
    """Confusion matrix, ROC and precision-recall curves as PNG files (no scripts needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    features, truth = frame.drop(columns=[LABEL]), frame[LABEL]
    paths.figures.mkdir(parents=True, exist_ok=True)
    drawn = []
    for name, title, draw in (
        (
            "confusion_matrix",
            "Confusion matrix (test set)",
            lambda ax: metrics.ConfusionMatrixDisplay.from_estimator(
                model, features, truth, ax=ax, colorbar=False
            ),
        ),
        (
            "roc_curve",
            "ROC curve (test set)",
            lambda ax: metrics.RocCurveDisplay.from_predictions(truth, scores, ax=ax, name="model"),
        ),
        (
            "precision_recall",
            "Precision-recall curve (test set)",
            lambda ax: metrics.PrecisionRecallDisplay.from_predictions(
                truth, scores, ax=ax, name="model"
            ),
        ),
    ):
        figure, axis = plt.subplots(figsize=(4.5, 4))
        draw(axis)
        axis.set_title(title)
        figure.tight_layout()
        target = paths.figures / f"{name}.png"
        figure.savefig(target, dpi=100, metadata={"Software": None})
        plt.close(figure)
        drawn.append(target)
    return drawn


def main() -> int:
    log = get_logger("evaluate")
    paths = Paths()
    params = load_params(paths)
    from . import robustness, tracking
    from .model_io import load_model

    model = load_model(paths.model, paths.model_manifest)
    frame = pd.read_csv(paths.test_csv)
    result, scores = score(model, frame)
    log.info("test metrics: %s", ", ".join(f"{k}={v:.3f}" for k, v in result.items()))
    paths.reports.mkdir(parents=True, exist_ok=True)
    paths.metrics.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    figures = plot(model, frame, scores, paths)
    log.info(
        "wrote %s and %d plots in %s",
        paths.metrics.relative_to(paths.root),
        len(figures),
        paths.figures.relative_to(paths.root),
    )
    log.info(
        "recording the run in MLflow (%s)",
        tracking.display_uri(tracking.tracking_uri(paths, params)),
    )
    run_id = tracking.record_run(paths, params, model, result, figures, frame.drop(columns=[LABEL]))
    log.info("MLflow run %s: params, metrics, lineage tags and the registered model", run_id)

    attacked, failed = robustness.attack(model, pd.read_csv(paths.train_csv), frame, params, paths)
    tracking.add_metrics(run_id, attacked)
    minimum = params["evaluate"]["min_accuracy"]
    if result["accuracy"] < minimum:
        failed.insert(
            0, f"accuracy {result['accuracy']:.3f} is below evaluate.min_accuracy {minimum}"
        )
    for problem in failed:
        log.error("%s (params.yaml; reports/)", problem)
    return 1 if failed else 0

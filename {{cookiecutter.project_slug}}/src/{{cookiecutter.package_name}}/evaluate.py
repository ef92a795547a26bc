"""The `evaluate` stage: score the verified model on held-out data, write metrics and plot data,
record the run (params, metrics, lineage, data set, model) in MLflow, attack the model
(robustness.py: evasion and membership inference) and add those results to the run, then fail
when a threshold in params.yaml is crossed. The run is recorded before the attacks and the
verdict, so a failing model leaves its evidence in MLflow.

Metrics (reports/metrics.json, fixed keys per task): binary accuracy, precision, recall, f1,
roc_auc; multiclass accuracy, f1_macro, balanced_accuracy; regression rmse, mae, r2.
Plot data (reports/plots/, DVC plot files declared in dvc.yaml, so `dvc plots diff` compares
revisions): classification: confusion.json (actual and predicted class names per test row),
roc.json and precision_recall.json (one curve per class); regression: predictions.json
(actual, predicted, residual per test row). Also reports/example-request.json: at most three
test rows in the body POST /predict accepts.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics

from .config import Paths, get_logger, load_params
from .data import LABEL, load_profile, read_prepared, task_of
from .inference import serve_settings

METRIC_KEYS = {
    "binary": ("accuracy", "precision", "recall", "f1", "roc_auc"),
    "multiclass": ("accuracy", "f1_macro", "balanced_accuracy"),
    "regression": ("rmse", "mae", "r2"),
}
# Threshold per task: (metric, params key under evaluate:, "min" or "max").
THRESHOLDS = {
    "binary": (("accuracy", "min_accuracy", "min"),),
    "multiclass": (("f1_macro", "min_f1_macro", "min"),),
    "regression": (("r2", "min_r2", "min"), ("rmse", "max_rmse", "max")),
}
PLOT_FILES = {
    "binary": ("confusion.json", "roc.json", "precision_recall.json"),
    "multiclass": ("confusion.json", "roc.json", "precision_recall.json"),
    "regression": ("predictions.json",),
}
EXAMPLE_ROWS = 3


def _round(values: dict[str, float]) -> dict[str, float]:
    return {name: round(float(value), 6) for name, value in values.items()}


def score(
    model: Any, frame: pd.DataFrame, task: str = "binary"
) -> tuple[dict[str, float], np.ndarray | None]:
    """The task's metrics and, for classification, the predicted probabilities."""
    features, truth = frame.drop(columns=[LABEL]), frame[LABEL]
    predicted = model.predict(features)
    if task == "regression":
        error = np.asarray(predicted, dtype=float) - truth.to_numpy(dtype=float)
        result = {
            "rmse": math.sqrt(float(np.mean(error**2))),
            "mae": float(np.mean(np.abs(error))),
            "r2": metrics.r2_score(truth, predicted),
        }
        return _round(result), None
    probabilities = model.predict_proba(features)
    if task == "binary":
        positive = model.classes_[1]
        result = {
            "accuracy": metrics.accuracy_score(truth, predicted),
            "precision": metrics.precision_score(truth, predicted, pos_label=positive),
            "recall": metrics.recall_score(truth, predicted, pos_label=positive),
            "f1": metrics.f1_score(truth, predicted, pos_label=positive),
            "roc_auc": metrics.roc_auc_score(truth == positive, probabilities[:, 1]),
        }
    else:
        result = {
            "accuracy": metrics.accuracy_score(truth, predicted),
            "f1_macro": metrics.f1_score(truth, predicted, average="macro"),
            "balanced_accuracy": metrics.balanced_accuracy_score(truth, predicted),
        }
    return _round(result), probabilities


def _curve_points(x: np.ndarray, y: np.ndarray, label: str, names: tuple[str, str]) -> list:
    step = max(1, len(x) // 200)  # at most ~200 points per curve
    keep = sorted({*range(0, len(x), step), len(x) - 1})
    return [
        {"class": label, names[0]: round(float(x[i]), 6), names[1]: round(float(y[i]), 6)}
        for i in keep
    ]


def json_lines(rows: list[dict[str, Any]]) -> str:
    """A JSON array with one record per line: readable and diffable like an indented file,
    written by json's C encoder (an indented dump runs in Python: 20 s for 200,000 rows)."""
    if not rows:
        return "[]\n"
    return "[\n" + ",\n".join(json.dumps(row) for row in rows) + "\n]\n"


def plot_data(
    model: Any, frame: pd.DataFrame, probabilities: np.ndarray | None, task: str, paths: Paths
) -> list:
    """DVC plot data files for the task under reports/plots/; returns their paths."""
    features, truth = frame.drop(columns=[LABEL]), frame[LABEL]
    predicted = model.predict(features)
    folder = paths.reports / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, list] = {}
    if task == "regression":
        written["predictions.json"] = [
            {
                "actual": round(float(a), 6),
                "predicted": round(float(p), 6),
                "residual": round(float(p) - float(a), 6),
            }
            for a, p in zip(truth, predicted, strict=True)
        ]
    else:
        written["confusion.json"] = [
            {"actual": str(a), "predicted": str(p)} for a, p in zip(truth, predicted, strict=True)
        ]
        classes = list(model.classes_)
        # Binary: the curve of the positive class; multiclass: one curve per class (one vs rest).
        shown = classes[1:] if task == "binary" else classes
        roc, pr = [], []
        for label in shown:
            column = probabilities[:, classes.index(label)]
            actual = (truth == label).to_numpy()
            if actual.all() or not actual.any():
                continue
            fpr, tpr, _ = metrics.roc_curve(actual, column)
            precision, recall, _ = metrics.precision_recall_curve(actual, column)
            roc += _curve_points(fpr, tpr, str(label), ("fpr", "tpr"))
            pr += _curve_points(recall[::-1], precision[::-1], str(label), ("recall", "precision"))
        written["roc.json"], written["precision_recall.json"] = roc, pr
    paths_out = []
    for name, rows in written.items():
        target = folder / name
        target.write_text(json_lines(rows), encoding="utf-8")
        paths_out.append(target)
    return paths_out


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def example_request(
    frame: pd.DataFrame, profile: dict[str, Any], max_rows: int = EXAMPLE_ROWS
) -> dict[str, Any]:
    """At most three test rows (and no more than serve.max_batch_rows) as the body POST
    /predict accepts (booleans as true/false)."""
    rows = []
    count = min(EXAMPLE_ROWS, max_rows)
    for record in frame.drop(columns=[LABEL]).head(count).to_dict("records"):
        row = {}
        for name, value in record.items():
            value = _plain(value)
            kind = profile["features"][name]["type"]
            if value is not None and kind == "boolean":
                value = bool(value)
            elif value is not None and kind == "integer":
                value = int(value)
            row[name] = value
        rows.append(row)
    return {"rows": rows}


def verdict(result: dict[str, float], task: str, params: dict[str, Any]) -> list[str]:
    """The evaluate thresholds this task's metrics cross (keys absent or null: not checked)."""
    settings = params.get("evaluate") or {}
    failed = []
    for metric, key, kind in THRESHOLDS[task]:
        limit = settings.get(key)
        if limit is None:
            continue
        value = result[metric]
        if (kind == "min" and value < limit) or (kind == "max" and value > limit):
            word = "below" if kind == "min" else "above"
            failed.append(f"{metric} {value:.3f} is {word} evaluate.{key} {limit}")
    return failed


def main() -> int:
    log = get_logger("evaluate")
    paths = Paths()
    params = load_params(paths)
    from . import robustness, tracking
    from .model_io import load_model

    profile = load_profile(paths)
    task = task_of(profile)
    model = load_model(paths.model, paths.model_manifest)
    frame = read_prepared(paths.test_data, profile)
    result, probabilities = score(model, frame, task)
    log.info("test metrics (%s): %s", task, ", ".join(f"{k}={v:.3f}" for k, v in result.items()))
    paths.reports.mkdir(parents=True, exist_ok=True)
    paths.metrics.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    plots = plot_data(model, frame, probabilities, task, paths)
    example = paths.reports / "example-request.json"
    body = example_request(frame, profile, serve_settings(params)["max_batch_rows"])
    example.write_text(json.dumps(body, indent=2) + "\n", "utf-8")
    log.info(
        "wrote %s, %s and %d plot data files in reports/plots",
        paths.metrics.relative_to(paths.root),
        example.relative_to(paths.root),
        len(plots),
    )
    log.info(
        "recording the run in MLflow (%s)",
        tracking.display_uri(tracking.tracking_uri(paths, params)),
    )
    run_id = tracking.record_run(paths, params, model, result, plots, frame.drop(columns=[LABEL]))
    log.info("MLflow run %s: params, metrics, lineage tags and the registered model", run_id)

    train = read_prepared(paths.train_data, profile)
    attacked, failed = robustness.attack(model, train, frame, params, paths, profile)
    tracking.add_metrics(run_id, attacked)
    failed = verdict(result, task, params) + failed
    for problem in failed:
        log.error("%s (params.yaml; reports/)", problem)
    return 1 if failed else 0

"""The `train` stage: fit the model and save it in skops format with its digest manifest.

The MLflow run is recorded by the `evaluate` stage, once the test metrics exist, so the
store is opened once per pipeline run.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .config import Paths, get_logger, load_params
from .data import LABEL


def build_model(params: dict[str, Any]) -> Pipeline:
    """Scaling plus a regularised logistic regression: small, fast and well calibrated."""
    return Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "classify",
                LogisticRegression(
                    C=params["C"], max_iter=params["max_iter"], random_state=params["seed"]
                ),
            ),
        ]
    )


def fit(frame: pd.DataFrame, params: dict[str, Any]) -> Pipeline:
    model = build_model(params)
    model.fit(frame.drop(columns=[LABEL]), frame[LABEL])
    return model


def main() -> int:
    log = get_logger("train")
    paths = Paths()
    params = load_params(paths)
    from .model_io import save_model

    frame = pd.read_csv(paths.train_csv)
    log.info("fitting on %d rows", len(frame))
    model = fit(frame, params["train"])
    accuracy = float(model.score(frame.drop(columns=[LABEL]), frame[LABEL]))
    record = save_model(
        model,
        paths.model,
        paths.model_manifest,
        train_accuracy=round(accuracy, 6),
        features=[c for c in frame.columns if c != LABEL],
    )
    log.info(
        "saved %s (sha256 %s, train accuracy %.3f)",
        paths.model.relative_to(paths.root),
        record["sha256"][:12],
        accuracy,
    )
    return 0

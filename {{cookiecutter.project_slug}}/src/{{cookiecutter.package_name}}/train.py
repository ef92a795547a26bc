"""The `train` stage: fit the model and save it in skops format with its digest manifest.

The model is Pipeline([("prepare", ...), ("model", ...)]): a preprocessing step built from the
reviewed profile (numbers: median-imputed and standardised; booleans: most frequent value;
categories: missing as its own value, one-hot with unknown values ignored) and the estimator
chosen by `train.model` (its hyper-parameters under `train.<model>:` in params.yaml). Every
step is linear in the rows (the default logistic model: lbfgs, a few passes over the data).

The MLflow run is recorded by the `evaluate` stage, once the test metrics exist, so the
store is opened once per pipeline run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from .config import Paths, get_logger, load_params
from .data import LABEL, feature_types, load_profile, read_prepared, task_of

CLASSIFIERS = ("logistic", "random_forest", "hist_gradient_boosting")
REGRESSORS = ("ridge", "random_forest", "hist_gradient_boosting")
# The types beyond skops' defaults that these models hold are trusted by name in one list,
# model_io.TRUSTED_TYPES: a new model choice adds its types there, reviewed.
DEFAULTS: dict[str, dict[str, Any]] = {
    "logistic": {"C": 1.0, "max_iter": 500},
    "ridge": {"alpha": 1.0},
    "random_forest": {"n_estimators": 100, "max_depth": 8, "min_samples_leaf": 5},
    "hist_gradient_boosting": {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 15},
}


def model_name(params: dict[str, Any], task: str) -> str:
    """train.model, defaulting per task; a ValueError names the choices."""
    choices = REGRESSORS if task == "regression" else CLASSIFIERS
    name = params.get("model") or choices[0]
    if name == "logistic" and task == "regression":
        name = "ridge"
    if name not in choices:
        raise ValueError(
            f"train.model is {name!r}, which does not fit a {task} task: use one of "
            f"{', '.join(choices)}"
        )
    return name


def settings(params: dict[str, Any], name: str) -> dict[str, Any]:
    """The hyper-parameters of one model: defaults, then train.<name> (logistic: train.C and
    train.max_iter, at the top of train: as in earlier params files)."""
    chosen = {**DEFAULTS[name], **(params.get(name) or {})}
    if name == "logistic":
        chosen.update({k: params[k] for k in ("C", "max_iter") if k in params})
    return chosen


def estimator(name: str, task: str, hyper: dict[str, Any], seed: int) -> Any:
    if name == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=hyper["C"], max_iter=hyper["max_iter"], random_state=seed)
    if name == "ridge":
        from sklearn.linear_model import Ridge

        return Ridge(alpha=hyper["alpha"])
    if name == "random_forest":
        from sklearn import ensemble

        kind = (
            ensemble.RandomForestRegressor
            if task == "regression"
            else ensemble.RandomForestClassifier
        )
        return kind(
            n_estimators=hyper["n_estimators"],
            max_depth=hyper["max_depth"],
            min_samples_leaf=hyper["min_samples_leaf"],
            random_state=seed,
            n_jobs=1,
        )
    from sklearn import ensemble

    kind = (
        ensemble.HistGradientBoostingRegressor
        if task == "regression"
        else ensemble.HistGradientBoostingClassifier
    )
    return kind(
        max_iter=hyper["max_iter"],
        learning_rate=hyper["learning_rate"],
        max_leaf_nodes=hyper["max_leaf_nodes"],
        random_state=seed,
    )


def types_of(frame: pd.DataFrame) -> dict[str, str]:
    """Feature types read off a frame (text: categorical), when no profile is given."""
    return {
        str(c): "categorical"
        if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])
        else "numeric"
        for c in frame.columns
        if c != LABEL
    }


def median_imputer() -> SimpleImputer:
    """Missing numbers filled with the column's median. The median is numpy's (a linear-time
    selection per column); SimpleImputer's own "median" sorts a masked copy of the whole
    matrix, about 5x slower on a million rows, for the same values."""
    return SimpleImputer(strategy=np.median)


def preprocessing(types: dict[str, str]) -> ColumnTransformer:
    """Numbers first (the only columns an evasion attack perturbs), then booleans, then
    categories."""
    numeric = [n for n, kind in types.items() if kind in ("numeric", "integer")]
    boolean = [n for n, kind in types.items() if kind == "boolean"]
    categorical = [n for n, kind in types.items() if kind == "categorical"]
    parts = []
    if numeric:
        parts.append(
            (
                "numeric",
                Pipeline([("impute", median_imputer()), ("scale", StandardScaler())]),
                numeric,
            )
        )
    if boolean:
        parts.append(("boolean", SimpleImputer(strategy="most_frequent"), boolean))
    if categorical:
        parts.append(
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="(missing)")),
                        ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            )
        )
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)


def build_model(
    params: dict[str, Any], types: dict[str, str] | None = None, task: str = "binary"
) -> Pipeline:
    """The profile's preprocessing plus the model train.model names. Without types, every
    column is taken as numeric."""
    name = model_name(params, task)
    if types is None:
        from sklearn.compose import make_column_selector

        numeric = Pipeline([("impute", median_imputer()), ("scale", StandardScaler())])
        prepare = ColumnTransformer(
            [("numeric", numeric, make_column_selector(dtype_include="number"))],
            verbose_feature_names_out=False,
        )
    else:
        prepare = preprocessing(types)
    return Pipeline(
        [
            ("prepare", prepare),
            ("model", estimator(name, task, settings(params, name), int(params.get("seed", 0)))),
        ]
    )


def fit(
    frame: pd.DataFrame,
    params: dict[str, Any],
    profile: dict[str, Any] | None = None,
) -> Pipeline:
    """Fit on a prepared frame; types and task from the profile (else read off the frame)."""
    features = frame.drop(columns=[LABEL])
    if profile is not None:
        types, task = feature_types(profile), task_of(profile)
    else:
        from .data import infer_task

        types, task = types_of(features), infer_task(frame[LABEL])
    model = build_model(params, types, task)
    model.fit(features, frame[LABEL])
    return model


def main() -> int:
    log = get_logger("train")
    paths = Paths()
    params = load_params(paths)
    from .model_io import save_model

    profile = load_profile(paths)
    frame = read_prepared(paths.train_data, profile)
    task = task_of(profile)
    try:
        name = model_name(params["train"], task)
    except ValueError as error:
        log.error("%s", error)
        return 1
    log.info("fitting %s (%s) on %d rows", name, task, len(frame))
    model = fit(frame, params["train"], profile)
    score = float(model.score(frame.drop(columns=[LABEL]), frame[LABEL]))
    measure = "r2" if task == "regression" else "accuracy"
    record = save_model(
        model,
        paths.model,
        paths.model_manifest,
        **{f"train_{measure}": round(score, 6)},
        features=[c for c in frame.columns if c != LABEL],
        estimator=name,
        task=task,
    )
    log.info(
        "saved %s (sha256 %s, train %s %.3f)",
        paths.model.relative_to(paths.root),
        record["sha256"][:12],
        measure,
        score,
    )
    return 0

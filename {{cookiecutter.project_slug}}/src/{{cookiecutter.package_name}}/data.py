"""The `prepare` stage: load the raw data, keep only what the model needs, and split it.

Raw data: a data set that ships with scikit-learn (no download), or your own CSV named by
`data.raw_csv` in params.yaml (add that file to the stage's deps in dvc.yaml too).

Data minimisation: the model's features are the ones in the reviewed reference profile
(reference/data_profile.json); every other raw column is dropped here, and the log names
them. Before anything is written, privacy.scan looks for personal data in every raw column;
the stage fails when a column that would reach the features holds any. reports/pii.json gets
column names and row counts, never values.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from .config import Paths, get_logger, load_params

LABEL = "target"
PROFILE = Path("reference") / "data_profile.json"
# The pipeline, its plots and its attack thresholds are built for a binary task; add a
# loader here only with a binary target (or extend evaluate and robustness first).
# Loaders: a function of sklearn.datasets by name (scikit-learn is imported only when data is
# loaded or split, so the stages that import LABEL from here start without it), or any
# function that takes as_frame=True and returns a Bunch with a `.frame`.
LOADERS = {
    "breast_cancer": "load_breast_cancer",
}


class DataError(ValueError):
    """The raw data cannot be turned into the model's features."""


def snake_case(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def load_dataset(name: str) -> pd.DataFrame:
    """The named bundled data set as one frame: snake_case feature columns plus `target`."""
    if name not in LOADERS:
        raise ValueError(f"unknown data set {name!r}: choose one of {', '.join(LOADERS)}")
    loader = LOADERS[name]
    if not callable(loader):
        from sklearn import datasets

        loader = getattr(datasets, loader)
    bunch = loader(as_frame=True)
    frame = bunch.frame.rename(columns=snake_case)
    return frame.astype({column: "float64" for column in frame.columns if column != LABEL})


def load_raw(paths: Paths, params: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    """The raw frame and a name for it: data.raw_csv when set, else the bundled data set."""
    raw_csv = params.get("raw_csv") or ""
    if not raw_csv:
        return load_dataset(params["dataset"]), params["dataset"]
    path = paths.root / raw_csv
    if not path.is_file():
        raise DataError(f"data.raw_csv is {raw_csv!r} but {path} does not exist: fix params.yaml")
    return pd.read_csv(path), raw_csv


def load_profile(paths: Paths) -> dict[str, Any]:
    return json.loads((paths.root / PROFILE).read_text(encoding="utf-8"))


def feature_allow_list(paths: Paths) -> list[str]:
    """The columns the model needs: the features of the reviewed reference profile."""
    return list(load_profile(paths)["features"])


def minimise(frame: pd.DataFrame, features: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Keep the allowed features (as floats) and the label; also return the dropped names."""
    missing = [name for name in [*features, LABEL] if name not in frame.columns]
    if missing:
        raise DataError(
            f"raw data lacks column(s) {', '.join(missing)} that {PROFILE} lists: rebuild the "
            f"profile for this data set ('python -m {__package__} profile') and review it"
        )
    dropped = [str(name) for name in frame.columns if name not in features and name != LABEL]
    kept = frame[[*features, LABEL]]
    try:
        kept = kept.astype({name: "float64" for name in features})
    except (TypeError, ValueError) as error:
        raise DataError(f"a feature column is not numeric ({error}): fix the raw data") from error
    return kept, dropped


def split(frame: pd.DataFrame, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A stratified train/test split, reproducible from the seed."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        frame, test_size=test_size, random_state=seed, stratify=frame[LABEL]
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def main() -> int:
    from . import privacy

    log = get_logger("prepare")
    paths = Paths()
    params = load_params(paths)["data"]
    try:
        raw, name = load_raw(paths, params)
        features = feature_allow_list(paths)
    except (DataError, OSError, ValueError) as error:
        log.error("%s", error)
        return 1
    log.info("loaded %s: %d rows, %d columns", name, len(raw), raw.shape[1])

    report = privacy.scan(raw, [*features, LABEL])
    report["dropped_columns"] = [str(c) for c in raw.columns if c not in features and c != LABEL]
    paths.reports.mkdir(parents=True, exist_ok=True)
    pii_report = paths.reports / "pii.json"
    pii_report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for column, found in report["columns"].items():
        kinds = ", ".join(f"{kind}: {rows} rows" for kind, rows in found["kinds"].items())
        fate = "in the features: BLOCKED" if found["in_features"] else "dropped"
        log.warning("personal data in column %r (%s): %s", column, kinds, fate)
    if not report["passed"]:
        log.error(
            "personal data would reach the features (%s); nothing written. Remove it from "
            "the raw data or from %s; counts in %s",
            ", ".join(report["blocking_columns"]),
            PROFILE,
            pii_report.relative_to(paths.root),
        )
        return 1

    try:
        frame, dropped = minimise(raw, features)
    except DataError as error:
        log.error("%s", error)
        return 1
    if dropped:
        log.info(
            "data minimisation: dropped %d column(s) the model does not need: %s",
            len(dropped),
            ", ".join(dropped),
        )
    else:
        log.info("data minimisation: every raw column is a model feature; nothing dropped")
    train, test = split(frame, params["test_size"], params["seed"])
    paths.prepared.mkdir(parents=True, exist_ok=True)
    train.to_csv(paths.train_csv, index=False)
    test.to_csv(paths.test_csv, index=False)
    log.info(
        "wrote %s (%d rows) and %s (%d rows)",
        paths.train_csv.relative_to(paths.root),
        len(train),
        paths.test_csv.relative_to(paths.root),
        len(test),
    )
    return 0

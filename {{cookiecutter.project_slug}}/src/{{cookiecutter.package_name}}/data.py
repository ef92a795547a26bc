"""The `prepare` stage: load a data set that ships with scikit-learn and split it.

No download: scikit-learn's bundled data sets are read from its own package files.
"""

from __future__ import annotations

import re

import pandas as pd
from sklearn import datasets
from sklearn.model_selection import train_test_split

from .config import Paths, get_logger, load_params

LABEL = "target"
LOADERS = {
    "breast_cancer": datasets.load_breast_cancer,
    "wine": datasets.load_wine,
    "iris": datasets.load_iris,
}


def snake_case(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def load_dataset(name: str) -> pd.DataFrame:
    """The named bundled data set as one frame: snake_case feature columns plus `target`."""
    if name not in LOADERS:
        raise ValueError(f"unknown data set {name!r}: choose one of {', '.join(LOADERS)}")
    bunch = LOADERS[name](as_frame=True)
    frame = bunch.frame.rename(columns=snake_case)
    return frame.astype({column: "float64" for column in frame.columns if column != LABEL})


def split(frame: pd.DataFrame, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A stratified train/test split, reproducible from the seed."""
    train, test = train_test_split(
        frame, test_size=test_size, random_state=seed, stratify=frame[LABEL]
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def main() -> int:
    log = get_logger("prepare")
    paths = Paths()
    params = load_params(paths)["data"]
    frame = load_dataset(params["dataset"])
    log.info("loaded %s: %d rows, %d features", params["dataset"], len(frame), frame.shape[1] - 1)
    train, test = split(frame, params["test_size"], params["seed"])
    paths.prepared.mkdir(parents=True, exist_ok=True)
    train.to_csv(paths.train_csv, index=False)
    test.to_csv(paths.test_csv, index=False)
    log.info("wrote %s (%d rows) and %s (%d rows)",
             paths.train_csv.relative_to(paths.root), len(train),
             paths.test_csv.relative_to(paths.root), len(test))
    return 0

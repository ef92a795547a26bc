"""Shared fixtures: small frames built from the bundled data set, and the project root."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.config import Paths, load_params
from {{ cookiecutter.package_name }}.data import load_dataset, split

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def paths() -> Paths:
    return Paths(ROOT)


@pytest.fixture(scope="session")
def params(paths: Paths) -> dict:
    return load_params(paths)


@pytest.fixture(scope="session")
def frames(params: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    data = params["data"]
    return split(load_dataset(data["dataset"]), data["test_size"], data["seed"])

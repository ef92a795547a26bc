"""Shared fixtures: small frames built from the bundled data set, and the project root.

The project's modules are imported inside the fixtures, not at the top: a repository that
took these tests with `secure-ml retrofit` can still run its own tests before `make setup`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import pandas as pd

    from {{ cookiecutter.package_name }}.config import Paths

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def paths() -> Paths:
    from {{ cookiecutter.package_name }}.config import Paths

    return Paths(ROOT)


@pytest.fixture(scope="session")
def params(paths: Paths) -> dict:
    from {{ cookiecutter.package_name }}.config import load_params

    return load_params(paths)


@pytest.fixture(scope="session")
def frames(params: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    from {{ cookiecutter.package_name }}.data import load_dataset, split

    data = params["data"]
    return split(load_dataset(data["dataset"]), data["test_size"], data["seed"])

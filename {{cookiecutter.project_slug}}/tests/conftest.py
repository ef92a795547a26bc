"""Shared fixtures: small frames built from the bundled data set, and the project root.

The project's modules are imported inside the fixtures, not at the top: a repository that
took these tests with `secure-ml retrofit` can still run its own tests before `make setup`.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import pandas as pd

    from {{ cookiecutter.package_name }}.config import Paths

ROOT = Path(__file__).resolve().parents[1]
# What a scratch copy leaves out: environments, caches, stores and every pipeline output,
# so that the copy starts from the project's sources alone.
SCRATCH_SKIP = (
    ".venv",
    ".git",
    "data",
    "models",
    "reports",
    "mlflow.db*",
    "mlartifacts",
    "mlruns",
    "cache",
    "tmp",
    "storage",
    "site",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
)


def scratch_project(dest: Path, *skip: str) -> Path:
    """A copy of this project's sources at `dest`, without outputs (and without `skip`)."""
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(*SCRATCH_SKIP, *skip))
    return dest


def scratch_env(copy: Path) -> dict[str, str]:
    """The environment for commands run in a scratch copy.

    The copy logs to its own SQLite store, named explicitly whatever the project's tracking
    mode, so a team-mode project never falls back to a local store unasked; this
    environment's tools come first on PATH.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "PROJECT_"))}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{copy / 'mlflow.db'}"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


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

"""Shared fixtures: the configured data (params.yaml `data:` and the reviewed profile) split as
prepare splits it, and the project root. Tests derive what they change and what they expect
from params.yaml and reference/data_profile.json, so they hold for any valid configuration.

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

# One thread per native library (OpenMP, OpenBLAS, MKL) in the test processes and in every
# command they start (stages, services, benchmarks inherit the environment): `make test` runs
# two pytest workers beside the security gates, so each library's own pool of threads per
# process would oversubscribe the cores, and their spinning threads then wait on each other
# (a histogram gradient boosting model took 35 s instead of 4 s to fit and predict on a
# loaded 2-core machine). Results do not depend on it; a value already set is kept.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
# What a scratch copy leaves out: environments, caches, stores and every pipeline output,
# so that the copy starts from the project's sources alone.
SCRATCH_SKIP = (
    ".venv",
    ".git",
    "prepared",
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


# The pipeline's outputs, which `scratch_project(..., last_run=True)` keeps with DVC's cache.
RUN_OUTPUTS = ("prepared", "models", "reports")


def _link_or_copy(source: str, target: str) -> None:
    """Hard-link a file of DVC's cache (its entries are read-only and never rewritten in
    place), or copy it where links are not possible (another file system)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def scratch_project(dest: Path, *skip: str, last_run: bool = False) -> Path:
    """A copy of this project's sources at `dest`, without outputs (and without `skip`); the
    raw data under data/raw/ comes along, so a copy of a project on its own data runs.

    last_run=True keeps the last pipeline run: its outputs, dvc.lock and DVC's cache (linked,
    not copied), so `dvc repro` in the copy runs only the stages whose code, data or params
    changed since, as it would in the project; a project never run runs every stage.
    """
    left_out = [name for name in SCRATCH_SKIP if not (last_run and name in RUN_OUTPUTS)]
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(*left_out, *skip))
    cache = ROOT / ".dvc" / "cache"
    if last_run and cache.is_dir():
        shutil.copytree(cache, dest / ".dvc" / "cache", copy_function=_link_or_copy)
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
def profile(paths: Paths) -> dict:
    from {{ cookiecutter.package_name }}.data import load_profile

    return load_profile(paths)


@pytest.fixture(scope="session")
def task(profile: dict) -> str:
    return profile["target"]["task"]


@pytest.fixture(scope="session")
def frames(paths: Paths, params: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train and test frames prepare writes for the configured data and profile."""
    from {{ cookiecutter.package_name }}.data import prepared_frames

    return prepared_frames(paths, params["data"])


def task_outputs(task: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The metric keys and plot data files evaluate writes for a task."""
    from {{ cookiecutter.package_name }}.evaluate import METRIC_KEYS, PLOT_FILES

    return METRIC_KEYS[task], PLOT_FILES[task]


def numeric_features(profile: dict) -> list[str]:
    """The profile's numeric and integer features that never miss a value."""
    return [
        name
        for name, entry in profile["features"].items()
        if entry["type"] in ("numeric", "integer") and not entry.get("missing_share")
    ]


def other_label(profile: dict, label):
    """A class of the profile other than `label` (classification)."""
    import pandas as pd

    from {{ cookiecutter.package_name }}.data import labels_as_profiled

    classes = labels_as_profiled(pd.Series(list(profile["target"]["classes"])), profile)
    return next(c for c in classes if c != label)


def flip(labels, profile: dict):
    """Each label replaced by another class (the next one, cyclically)."""
    import pandas as pd

    from {{ cookiecutter.package_name }}.data import labels_as_profiled

    classes = list(labels_as_profiled(pd.Series(list(profile["target"]["classes"])), profile))
    following = {c: classes[(i + 1) % len(classes)] for i, c in enumerate(classes)}
    return labels.map(following)


def flood_copies(rows: int, profile: dict, params: dict) -> int:
    """How many copies of one row push a table of `rows` rows past the duplicate limit
    (the reference's own duplicate share plus validate.max_duplicate_share), with a margin."""
    own = float((profile.get("distributions") or {}).get("duplicate_share") or 0.0)
    limit = float(params["validate"]["max_duplicate_share"]) + own
    if limit >= 0.9:
        pytest.skip(f"a duplicate limit of {limit:.2f} leaves no flood to catch")
    return max(30, int(1.25 * limit * rows / (1.0 - limit)) + 1)


def batch_limit(params: dict) -> int:
    """serve.max_batch_rows as the service reads it (its default filled in)."""
    from {{ cookiecutter.package_name }}.inference import serve_settings

    return int(serve_settings(params)["max_batch_rows"])


def every_rejection(params: dict) -> dict:
    """The validate settings with every rejection listed: validate.max_listed caps the report,
    not what is caught, and a test that names the rows a rule caught needs them all."""
    return {**params["validate"], "max_listed": 10**9}


def squeezed(frame, profile: dict, params: dict, name: str, check):
    """`frame` with feature `name` squeezed towards its minimum, all values within range, by
    the mildest factor whose distance to the reference (PSI) crosses validate.max_psi (a
    tolerant limit needs a stronger shift); with the report `check` gave for it."""
    low = profile["features"][name]["min"]
    for factor in (0.5, 0.25, 0.1, 0.03):
        shifted = frame.copy()
        shifted[name] = low + (shifted[name] - low) * factor
        if profile["features"][name]["type"] == "integer":
            shifted[name] = shifted[name].round()
        report = check(shifted, profile, params)
        if report["psi"][name] > params["validate"]["max_psi"]:
            return shifted, report
    pytest.skip(f"validate.max_psi {params['validate']['max_psi']} tolerates even a 0.03 squeeze")

"""Helpers for the guarded-inference tests: a scratch project root holding a verified model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import yaml

from {{ cookiecutter.package_name }}.config import Paths
from {{ cookiecutter.package_name }}.data import LABEL
from {{ cookiecutter.package_name }}.model_io import save_model
from {{ cookiecutter.package_name }}.train import fit

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789abcdef"  # noqa: S105 - a throw-away token for local tests


def make_root(target: Path, train: pd.DataFrame, params: dict, **serve) -> Paths:
    """Copy params.yaml (with `serve` overrides) and the reference profile into `target`,
    and save a freshly trained model there with its manifest, as the pipeline would."""
    target.mkdir(parents=True, exist_ok=True)
    changed = {**params, "serve": {**params.get("serve", {}), **serve}}
    (target / "params.yaml").write_text(yaml.safe_dump(changed), encoding="utf-8")
    shutil.copytree(ROOT / "reference", target / "reference", dirs_exist_ok=True)
    paths = Paths(target)
    save_model(fit(train, params["train"]), paths.model, paths.model_manifest)
    return paths


def rows_of(frame: pd.DataFrame, count: int) -> list[dict]:
    return frame.drop(columns=[LABEL]).head(count).to_dict("records")

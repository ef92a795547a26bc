"""Paths and parameters shared by every stage."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import yaml


def find_root(start: Path | None = None) -> Path:
    """The project root: the nearest folder holding params.yaml (or PROJECT_ROOT)."""
    if os.environ.get("PROJECT_ROOT"):
        return Path(os.environ["PROJECT_ROOT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").is_file():
            return folder
    raise FileNotFoundError(
        f"no params.yaml in {here} or its parents: run this from inside the project"
    )


class Paths:
    """Every file the pipeline reads or writes, relative to one root."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or find_root()
        self.params = self.root / "params.yaml"
        self.data = self.root / "data"
        self.prepared = self.data / "prepared"
        self.train_csv = self.prepared / "train.csv"
        self.test_csv = self.prepared / "test.csv"
        self.models = self.root / "models"
        self.model = self.models / "model.skops"
        self.model_manifest = self.models / "model.json"
        self.reports = self.root / "reports"
        self.validation_report = self.reports / "validation.json"
        self.metrics = self.reports / "metrics.json"
        self.figures = self.reports / "figures"
        self.dvc_lock = self.root / "dvc.lock"


def load_params(paths: Paths | None = None) -> dict[str, Any]:
    paths = paths or Paths()
    with paths.params.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def get_logger(stage: str) -> logging.Logger:
    """A logger whose lines read '[stage] message', one per step."""
    logger = logging.getLogger(stage)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(f"[{stage}] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def md5_file(path: Path) -> str:
    """The md5 DVC 3 records for a file output."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locked_md5(lock: Path, relpath: str) -> str | None:
    """The md5 DVC recorded for an output in dvc.lock, or None."""
    if not lock.is_file():
        return None
    stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages") or {}
    for stage in stages.values():
        for out in stage.get("outs") or []:
            if out.get("path") == relpath:
                return str(out.get("md5"))
    return None

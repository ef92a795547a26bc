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
        # The prepared splits, Parquet (typed); train_csv/test_csv: their earlier names.
        self.train_data = self.prepared / "train.parquet"
        self.test_data = self.prepared / "test.parquet"
        self.train_csv, self.test_csv = self.train_data, self.test_data
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


# ---- the schema of params.yaml ---------------------------------------------------------------
# One schema, checked once before any stage runs (cli.py): a value outside its documented
# range stops the pipeline with one line naming the key and the range. The ranges are the
# ones written beside each knob in params.yaml. Sections and keys this schema does not know
# are left alone (other tools may add their own).


class ParamsError(SystemExit):
    """params.yaml holds a value outside its documented range: one line, exit 1."""


def _schema() -> Any:
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    class Section(BaseModel):
        model_config = ConfigDict(extra="allow")

    class Data(Section):
        raw_path: str = ""
        raw_csv: str = ""
        dataset: Literal["breast_cancer", "wine", "diabetes", "mixed"] = "breast_cancer"
        target: str = Field(default="target", min_length=1)
        task: Literal["", "binary", "multiclass", "regression"] = ""
        drop_columns: list[str] = []
        test_size: float = Field(default=0.2, gt=0, lt=1)
        seed: int = Field(default=42, ge=0)
        pii_scan_values: int = Field(default=100_000, ge=0)

    class Validate(Section):
        range_margin: float = Field(default=0.1, ge=0)
        max_label_shift: float = Field(default=0.1, ge=0, le=1)
        max_category_shift: float = Field(default=0.1, ge=0, le=1)
        max_missing_shift: float = Field(default=0.1, ge=0, le=1)
        max_target_shift: float = Field(default=0.25, gt=0)
        max_duplicate_share: float = Field(default=0.01, ge=0, le=1)
        duplicate_decimals: int = Field(default=4, ge=0, le=12)
        near_duplicate_distance: float = Field(default=0.02, gt=0)
        near_duplicate_max_pairs: int = Field(default=50_000_000, ge=1)
        max_conflict_excess_share: float = Field(default=0.01, ge=0, le=1)
        max_label_noise_share: float = Field(default=0.01, ge=0, le=1)
        label_noise_z: float = Field(default=3.0, ge=0)
        label_noise_min_rows: int = Field(default=5, ge=1)
        label_noise_folds: int = Field(default=3, ge=2)
        label_noise_fit_rows: int = Field(default=10_000, ge=1)
        max_value_spike_share: float = Field(default=0.005, ge=0, le=1)
        value_spike_p: float = Field(default=1e-4, ge=0, le=1)
        value_spike_label_p: float = Field(default=0.05, ge=0, le=1)
        value_spike_min_rows: int = Field(default=4, ge=2)
        max_outside_range_share: float = Field(default=0.005, ge=0, le=1)
        outside_range_min_rows: int = Field(default=3, ge=1)
        max_psi: float = Field(default=0.2, gt=0)
        shift_p: float = Field(default=1e-6, ge=0, le=1)
        max_label_bin_shift: float = Field(default=0.15, ge=0, le=1)
        max_listed: int = Field(default=1000, ge=1)
        require_locked_data: bool = True

    class Logistic(Section):
        C: float = Field(default=1.0, gt=0)
        max_iter: int = Field(default=500, ge=1)

    class Ridge(Section):
        alpha: float = Field(default=1.0, ge=0)

    class Forest(Section):
        n_estimators: int = Field(default=100, ge=1)
        max_depth: int | None = Field(default=8, ge=1)
        min_samples_leaf: int = Field(default=5, ge=1)

    class Boosting(Section):
        max_iter: int = Field(default=100, ge=1)
        learning_rate: float = Field(default=0.1, gt=0, le=1)
        max_leaf_nodes: int = Field(default=15, ge=2)

    class Train(Logistic):
        model: Literal["logistic", "ridge", "random_forest", "hist_gradient_boosting"] = "logistic"
        seed: int = Field(default=42, ge=0)
        ridge: Ridge = Ridge()
        random_forest: Forest = Forest()
        hist_gradient_boosting: Boosting = Boosting()

    class Evaluate(Section):
        min_accuracy: float | None = Field(default=None, ge=0, le=1)
        min_f1_macro: float | None = Field(default=None, ge=0, le=1)
        min_r2: float | None = Field(default=None, le=1)
        max_rmse: float | None = Field(default=None, gt=0)

    class Robustness(Section):
        attack: Literal["fgsm", "pgd"] = "fgsm"
        eps: float = Field(default=0.1, gt=0)
        tries: int = Field(default=20, ge=1)
        sample: int = Field(default=2000, ge=0)
        max_accuracy_drop: float = Field(default=0.15, ge=0, le=1)
        max_error_increase: float = Field(default=0.5, ge=0)

    class Privacy(Section):
        max_membership_auc: float = Field(default=0.6, ge=0.5, le=1)
        sample: int = Field(default=5000, ge=0)

    class Bench(Section):
        validate_seconds: float = Field(default=60, gt=0)
        validate_rss_mb: float = Field(default=2048, gt=0)
        max_growth: float = Field(default=12, gt=0)
        pipeline_seconds: float = Field(default=300, gt=0)

    class Serve(Section):
        port: int = Field(default=8000, ge=1, le=65535)
        max_body_bytes: int = Field(default=262144, ge=1)
        max_batch_rows: int = Field(default=100, ge=1)
        confidence: Literal["band", "rounded", "none", "full"] = "band"
        decimals: int = Field(default=3, ge=0, le=12)

    class Params(Section):
        data: Data = Data()
        validate_: Validate = Field(default=Validate(), alias="validate")
        train: Train = Train()
        evaluate: Evaluate = Evaluate()
        robustness: Robustness = Robustness()
        privacy: Privacy = Privacy()
        bench: Bench = Bench()
        serve: Serve = Serve()

    return Params


def check_params(params: dict[str, Any], paths: Paths | None = None) -> None:
    """Refuse a params.yaml value outside its documented range, naming the key (one line).

    A params.yaml that passed is remembered by its digest (and this file's) in .dvc/tmp, so
    the stages of one `dvc repro` do not each pay for importing pydantic.
    """
    paths = paths or Paths()
    digest = hashlib.sha256(paths.params.read_bytes() + Path(__file__).read_bytes()).hexdigest()
    memo = paths.root / ".dvc" / "tmp" / "params-checked"
    if memo.is_file() and memo.read_text(encoding="utf-8").strip() == digest:
        return
    from pydantic import ValidationError

    try:
        _schema().model_validate(params or {})
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        got = first.get("input")
        raise ParamsError(
            f"params.yaml {key} is {got!r}: {first['msg'].lower()} (the valid range is written "
            "beside the key in params.yaml); nothing was run"
        ) from None
    if memo.parent.is_dir():
        memo.write_text(digest + "\n", encoding="utf-8")

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
# range stops the pipeline with one line naming the key and the range. The ranges written
# beside each knob in params.yaml are this schema's (tests/unit/test_params.py compares them
# with `range_text`). Sections and keys this schema does not know are left alone (other tools
# may add their own). Values are checked strictly: "0.5" (a string) is not a number and 1.5
# is not a whole number; YAML reads 1e-6 as a string, write 0.000001 or 1.0e-6.

# serve.rate_limit: one COUNT/PERIOD limit as the service's `limits` library reads it.
RATE_LIMIT_PATTERN = r"^[1-9][0-9]{0,8} ?(/| per )([1-9][0-9]{0,3} ?)?(second|minute|hour|day)s?$"
RATE_LIMIT_TEXT = "COUNT/PERIOD, e.g. 60/minute or 10/second"


# pydantic error types that say only "outside the range": the message names the range instead.
OUT_OF_RANGE = frozenset(
    {
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "literal_error",
        "string_pattern_mismatch",
        "string_too_short",
    }
)


class ParamsError(SystemExit):
    """params.yaml holds a value outside its documented range: one line, exit 1."""


def _schema() -> Any:
    from typing import Annotated, Literal

    from pydantic import BaseModel, ConfigDict, Field, StrictBool

    class Section(BaseModel):
        model_config = ConfigDict(extra="allow", strict=True)

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
        max_label_noise_share: float = Field(default=0.005, ge=0, le=1)
        label_noise_p: float = Field(default=1e-3, ge=0, le=1)
        label_noise_min_expected: float = Field(default=0.5, ge=0)
        label_noise_min_rows: int = Field(default=4, ge=1)
        label_noise_folds: int = Field(default=3, ge=2)
        label_noise_fit_rows: int = Field(default=10_000, ge=1)
        max_value_spike_share: float = Field(default=0.005, ge=0, le=1)
        value_spike_p: float = Field(default=1e-4, ge=0, le=1)
        value_spike_label_p: float = Field(default=0.05, ge=0, le=1)
        value_spike_min_rows: int = Field(default=4, ge=2)
        trigger_p: float = Field(default=1e-3, ge=0, le=1)
        trigger_min_rows: int = Field(default=3, ge=2)
        residual_z: float = Field(default=2.5, gt=0)
        max_outside_range_share: float = Field(default=0.005, ge=0, le=1)
        outside_range_min_rows: int = Field(default=3, ge=1)
        max_psi: float = Field(default=0.2, gt=0)
        shift_p: float = Field(default=1e-6, ge=0, le=1)
        max_label_bin_shift: float = Field(default=0.15, ge=0, le=1)
        max_listed: int = Field(default=1000, ge=1)
        require_locked_data: StrictBool = True

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
        serve_requests_per_second: float = Field(default=1000, gt=0)
        serve_p99_ms: float = Field(default=20, gt=0)
        serve_share_of_bare: float = Field(default=0.5, gt=0)
        predict_ratio: float = Field(default=1.5, gt=0)

    class Serve(Section):
        host: str = Field(default="127.0.0.1", min_length=1)
        port: int = Field(default=8000, ge=1, le=65535)
        token_env: str = Field(
            default="MODEL_API_TOKEN",
            pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
            description="an environment variable name",
        )
        rate_limit: str = Field(
            default="60/minute", pattern=RATE_LIMIT_PATTERN, description=RATE_LIMIT_TEXT
        )
        max_body_bytes: int = Field(default=262144, ge=1024, le=67_108_864)
        max_batch_rows: int = Field(default=100, ge=1, le=10_000)
        confidence: Literal["band", "rounded", "none", "full"] = "band"
        decimals: int = Field(default=3, ge=0, le=12)
        workers: Literal["auto"] | Annotated[int, Field(ge=1)] = "auto"
        rate_limit_storage: str = Field(default="memory://", min_length=1)
        audit_log: str = ""
        explain_ranges: StrictBool = False
        trusted_proxies: list[str] = []
        header_timeout_seconds: float = Field(default=5, gt=0)
        body_timeout_seconds: float = Field(default=10, gt=0)
        keep_alive_seconds: float = Field(default=5, gt=0)
        max_connections: int = Field(default=100, ge=1)

    class Model(Section):
        require_signature: StrictBool = True

    class Params(Section):
        data: Data = Data()
        validate_: Validate = Field(default=Validate(), alias="validate")
        train: Train = Train()
        evaluate: Evaluate = Evaluate()
        robustness: Robustness = Robustness()
        privacy: Privacy = Privacy()
        bench: Bench = Bench()
        serve: Serve = Serve()
        model: Model = Model()

    return Params


def params_json_schema() -> dict[str, Any]:
    """The JSON schema of params.yaml (the documented ranges, for tests and tools)."""
    return _schema().model_json_schema()


def schema_entry(schema: dict[str, Any], key: tuple[str, ...]) -> dict[str, Any] | None:
    """The JSON schema of one key (e.g. ("train", "C")), or None when the schema has none."""
    node: dict[str, Any] | None = schema
    for part in key:
        while node is not None and "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        node = (node or {}).get("properties", {}).get(part)
        if node is None:
            return None
    return node


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def range_text(entry: dict[str, Any]) -> str:
    """The documented range of one key, as params.yaml writes it beside the key:
    `0-1`, `0 < x < 1`, `> 0, <= 1`, `>= 1`, `> 0`, `<= 1`, the allowed values, a pattern's
    description, `true or false`. Empty for free text."""
    options = entry.get("anyOf") or [entry]
    entry = next((o for o in options if o.get("type") != "null"), entry)
    if "enum" in entry or "const" in entry:
        return ", ".join(str(v) for v in entry.get("enum", [entry.get("const")]) if v != "")
    if entry.get("type") == "boolean":
        return "true or false"
    if "pattern" in entry:
        return str(entry.get("description") or entry["pattern"])
    low, high = entry.get("minimum"), entry.get("maximum")
    low_open, high_open = entry.get("exclusiveMinimum"), entry.get("exclusiveMaximum")
    if low is not None and high is not None:
        return f"{_number(low)}-{_number(high)}"
    if low_open is not None and high_open is not None:
        return f"{_number(low_open)} < x < {_number(high_open)}"
    lower = f">= {_number(low)}" if low is not None else ""
    lower = f"> {_number(low_open)}" if low_open is not None else lower
    upper = f"<= {_number(high)}" if high is not None else ""
    upper = f"< {_number(high_open)}" if high_open is not None else upper
    return ", ".join(part for part in (lower, upper) if part)


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

    schema = _schema()
    try:
        schema.model_validate(params or {})
    except ValidationError as error:
        first = error.errors()[0]
        loc = tuple(str(part) for part in first["loc"])
        entry = schema_entry(schema.model_json_schema(), loc)
        valid = range_text(entry) if entry else ""
        if valid and (entry.get("anyOf") or [{}])[-1].get("type") == "null":
            valid += " (or null)"
        why = "" if first["type"] in OUT_OF_RANGE else f" ({first['msg'].lower()})"
        where = f"; valid: {valid}" if valid else ""
        raise ParamsError(
            f"params.yaml {'.'.join(loc)} is {first.get('input')!r}{why}{where} (the range "
            "is written beside the key in params.yaml); nothing was run"
        ) from None
    if memo.parent.is_dir():
        memo.write_text(digest + "\n", encoding="utf-8")

"""The `validate` stage: check the prepared data before anything trains on it.

Checks, each with its threshold in params.yaml (`validate:`):
- integrity: each prepared file's md5 equals the one DVC recorded for it in dvc.lock when
  `prepare` wrote it, so a file changed afterwards is refused;
- schema (pandera): only the reference's columns, finite numbers within each reference range
  plus a margin, known labels (reference/data_profile.json, committed to git and reviewed);
- label distribution: no label's share moves further than `max_label_shift`;
- drift (types from the profile): category shares, missing-value shares and, for regression,
  the target's quantiles, each within its limit plus three standard errors for the split size;
- data quality and poisoning (quality.py, linear in the rows): exact duplicates above
  `max_duplicate_share` beyond the reference's own share (weight boosting), rows equal after
  rounding or within `near_duplicate_distance` but labelled differently (flipped copies),
  label noise by confident learning on out-of-fold predictions, value-frequency spikes and
  label-purity tests on exact values (backdoor triggers), rows outside the reference range
  inside the margin (one alone when it lies as far out as the reference's extremes are
  spaced), categories the reference never had, per-feature PSI and label-conditional shifts
  against the profile's `distributions` (each split on its own).

Every rejected row is written to reports/validation.json as {row, column, rule, value}; the
stage exits 1 and DVC stops before `train`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from . import quality
from .config import Paths, get_logger, load_params, locked_md5, md5_file
from .data import LABEL, PROFILE, build_profile, load_profile, read_prepared, write_profile

__all__ = [
    "PROFILE",
    "build_profile",
    "build_schema",
    "load_profile",
    "validate_frame",
    "write_profile",
]

MAX_LISTED_ROWS = 1000  # the report lists at most this many rejections per file (and counts all)
DEFAULTS = {
    **quality.DEFAULTS,
    "max_listed": MAX_LISTED_ROWS,
    "require_locked_data": True,
    "max_category_shift": 0.1,
    "max_missing_shift": 0.1,
    "max_target_shift": 0.25,
}


def allowed_range(entry: dict[str, Any], margin: float) -> tuple[float, float]:
    """The reference range widened by `margin` of its width, never past a natural bound."""
    pad = margin * (entry["max"] - entry["min"])
    low, high = entry["min"] - pad, entry["max"] + pad
    if "natural_min" in entry:
        low = max(low, float(entry["natural_min"]))
    if entry.get("type") == "integer" or entry.get("integer"):
        low, high = float(math.floor(low)), float(math.ceil(high))
    return low, high


def _integral(series: pd.Series) -> pd.Series:
    return series.isna() | (series == np.round(series))


def build_schema(profile: dict[str, Any], margin: float) -> pa.DataFrameSchema:
    """A strict pandera schema following each feature's type: known columns only; numbers
    finite and within the widened range (integers whole, never past natural bounds); booleans
    0/1; categories from the reference; missing values only where the reference had them."""
    columns = {}
    for name, entry in profile["features"].items():
        kind = entry.get("type", "numeric")
        nullable = float(entry.get("missing_share", 0.0)) > 0
        if kind == "categorical":
            columns[name] = pa.Column(
                object, pa.Check.isin(list(entry["categories"])), nullable=nullable
            )
            continue
        if kind == "boolean":
            columns[name] = pa.Column(float, pa.Check.isin([0.0, 1.0]), nullable=nullable)
            continue
        checks = [pa.Check.in_range(*allowed_range(entry, margin))]
        if kind == "integer":
            checks.append(pa.Check(_integral, element_wise=False, name="integer"))
        columns[name] = pa.Column(float, checks, nullable=nullable, coerce=True)
    target = profile["target"]
    if target["task"] == "regression":
        columns[LABEL] = pa.Column(
            float, pa.Check.in_range(*allowed_range(target, margin)), nullable=False, coerce=True
        )
    elif target.get("label_type") == "integer":
        labels = [int(label) for label in target["classes"]]
        columns[LABEL] = pa.Column(int, pa.Check.isin(labels), nullable=False)
    else:
        columns[LABEL] = pa.Column(object, pa.Check.isin(list(target["classes"])), nullable=False)
    return pa.DataFrameSchema(columns, strict=True, ordered=False)


def tolerance(limit: float, share: float, rows: int) -> float:
    """`limit` plus three standard errors of a share measured on `rows` rows, so that small
    splits of clean data are not rejected for sampling noise."""
    return float(limit) + 3.0 * math.sqrt(max(share * (1 - share), 0.0) / max(rows, 1))


def label_shift(frame: pd.DataFrame, profile: dict[str, Any]) -> float:
    """Largest absolute change in any label's share against the reference."""
    shares = frame[LABEL].astype(str).value_counts(normalize=True)
    return max(
        abs(float(shares.get(str(label), 0.0)) - reference)
        for label, reference in profile["target"]["classes"].items()
    )


def drift_problems(frame: pd.DataFrame, profile: dict[str, Any], params: dict[str, Any]) -> tuple:
    """Category-share, missing-share and (regression) target-quantile drift against the
    reference; each limit is widened by three standard errors for the frame's size."""
    problems: list[str] = []
    stats: dict[str, Any] = {}
    rows = len(frame)
    worst_category, worst_missing = 0.0, 0.0
    for name, entry in profile["features"].items():
        if name not in frame.columns:
            continue
        column = frame[name]
        reference = float(entry.get("missing_share", 0.0))
        missing = float(column.isna().mean())
        worst_missing = max(worst_missing, missing - reference)
        if missing > reference + tolerance(params["max_missing_shift"], reference, rows):
            problems.append(
                f"column {name!r}: {missing:.3f} of the values are missing, the reference has "
                f"{reference:.3f} (limit +{params['max_missing_shift']}, "
                "validate.max_missing_shift)"
            )
        if entry.get("type") == "categorical":
            shares = column.dropna().astype(str).value_counts(normalize=True)
            for category, share in entry["categories"].items():
                moved = abs(float(shares.get(category, 0.0)) - float(share))
                worst_category = max(worst_category, moved)
                if moved > tolerance(params["max_category_shift"], float(share), rows):
                    problems.append(
                        f"column {name!r}: the share of category {category!r} moved by "
                        f"{moved:.3f} (limit {params['max_category_shift']}, "
                        "validate.max_category_shift)"
                    )
                    break
    stats["missing_shift"] = round(worst_missing, 6)
    stats["category_shift"] = round(worst_category, 6)
    target = profile["target"]
    if target["task"] == "regression" and LABEL in frame.columns and rows:
        values = pd.to_numeric(frame[LABEL], errors="coerce").dropna()
        quantiles = target["quantiles"]
        spread = (quantiles["0.9"] - quantiles["0.1"]) or 1.0
        if len(values):
            shift = max(abs(float(values.quantile(float(q))) - v) for q, v in quantiles.items())
            stats["target_shift"] = round(shift / spread, 6)
            limit = params["max_target_shift"] + 3.0 / math.sqrt(max(len(values), 1))
            if shift / spread > limit:
                problems.append(
                    f"target quantiles moved by {shift / spread:.3f} of the reference 10-90% "
                    f"spread (limit {params['max_target_shift']}, validate.max_target_shift)"
                )
    return problems, stats


def _rejection(row: Any, column: Any, rule: str, value: Any = None) -> dict[str, Any]:
    missing = row is None or (not isinstance(row, str) and pd.isna(row))
    return {
        "row": None if missing else int(row),
        "column": None if column is None else str(column),
        "rule": rule,
        "value": None if value is None or pd.isna(value) else str(value),
    }


def schema_rejections(frame: pd.DataFrame, profile: dict[str, Any], margin: float) -> list[dict]:
    try:
        build_schema(profile, margin).validate(frame, lazy=True)
    except SchemaErrors as errors:
        return [
            _rejection(case.index, case.column, f"schema: {case.check}", case.failure_case)
            for case in errors.failure_cases.itertuples(index=False)
        ]
    return []


def validate_frame(
    frame: pd.DataFrame, profile: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    """Check one frame; return a report whose `passed` says whether it may be used."""
    task = profile["target"]["task"]
    params = {**DEFAULTS, **params, "task": task}
    report: dict[str, Any] = {"rows": len(frame), "problems": []}
    rejected = schema_rejections(frame, profile, params["range_margin"])
    if rejected:
        report["problems"].append(f"{len(rejected)} schema violation(s)")
    if task != "regression" and LABEL in frame.columns and len(frame):
        shift = label_shift(frame, profile)
        report["label_shift"] = round(shift, 6)
        if shift > params["max_label_shift"]:
            report["problems"].append(
                f"label distribution moved by {shift:.3f} (limit {params['max_label_shift']}, "
                "validate.max_label_shift)"
            )
    drift, drift_stats = drift_problems(frame, profile, params)
    report["problems"] += drift
    report.update(drift_stats)
    listed, count, problems, stats = quality.check_frame(frame, LABEL, task, profile, params)
    report["problems"] += problems
    report.update(stats)
    report["rejected_count"] = len(rejected) + count
    rejected += listed
    report["rejected_rows"] = rejected[: int(params["max_listed"])]
    report["passed"] = not report["problems"]
    return report


def check_locked_data(paths: Paths, params: dict[str, Any]) -> dict[str, Any]:
    """Compare each prepared file with the md5 `prepare` recorded in dvc.lock."""
    params = {**DEFAULTS, **params}
    result: dict[str, Any] = {"files": {}, "problems": []}
    for path in (paths.train_data, paths.test_data):
        relpath = path.relative_to(paths.root).as_posix()
        recorded, actual = locked_md5(paths.dvc_lock, relpath), md5_file(path)
        result["files"][relpath] = {"md5": actual, "dvc_lock_md5": recorded}
        if recorded is None:
            if params["require_locked_data"]:
                result["problems"].append(
                    f"dvc.lock has no md5 for {relpath}: run the pipeline with 'make pipeline' "
                    "(dvc repro), or set validate.require_locked_data: false to check by hand"
                )
        elif recorded != actual:
            result["problems"].append(
                f"{relpath} changed after 'prepare' wrote it (md5 {actual[:12]}..., dvc.lock "
                f"says {recorded[:12]}...): refusing it; re-run 'make pipeline' to rebuild it"
            )
    result["passed"] = not result["problems"]
    return result


def main() -> int:
    log = get_logger("validate")
    paths = Paths()
    params = load_params(paths)["validate"]
    profile = load_profile(paths)
    lock = check_locked_data(paths, params)
    for problem in lock["problems"]:
        log.error("%s", problem)
    results = {}
    for name, path in (("train", paths.train_data), ("test", paths.test_data)):
        results[name] = validate_frame(read_prepared(path, profile), profile, params)
        problems = results[name]["problems"]
        state = "ok" if results[name]["passed"] else "REJECTED: " + "; ".join(problems)
        log.info("%s: %d rows, %s", name, results[name]["rows"], state)
    paths.reports.mkdir(parents=True, exist_ok=True)
    summary = {
        "passed": lock["passed"] and all(r["passed"] for r in results.values()),
        "row_numbering": (
            "row is the 0-based row of the prepared Parquet file "
            "(pandas.read_parquet(path).iloc[row])"
        ),
        "data_lock": lock,
        **results,
    }
    paths.validation_report.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if not summary["passed"]:
        log.error(
            "data rejected before training; rejected rows (row, column, rule) in %s",
            paths.validation_report.relative_to(paths.root),
        )
        return 1
    return 0

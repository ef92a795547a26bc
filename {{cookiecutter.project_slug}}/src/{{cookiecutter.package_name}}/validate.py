"""The `validate` stage: check the prepared data before anything trains on it.

Checks, each with its threshold in params.yaml (`validate:`):
- integrity: each prepared file's md5 equals the one DVC recorded for it in dvc.lock when
  `prepare` wrote it, so a file changed afterwards is refused;
- schema (pandera): only the reference's columns, finite numbers within each reference range
  plus a margin, known labels (reference/data_profile.json, committed to git and reviewed);
- label distribution: no label's share moves further than `max_label_shift`;
- data quality and poisoning (quality.py, linear in the rows): exact duplicates above
  `max_duplicate_share` (weight boosting), rows equal after rounding or within
  `near_duplicate_distance` but labelled differently (flipped copies), label noise by
  confident learning on out-of-fold predictions, value-frequency spikes (backdoor triggers),
  rows outside the reference range inside the margin, per-feature PSI and label-conditional
  shifts against the reference's `distributions` (each split on its own).

Every rejected row is written to reports/validation.json as {row, column, rule, value}; the
stage exits 1 and DVC stops before `train`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from . import quality
from .config import Paths, get_logger, load_params, locked_md5, md5_file
from .data import LABEL, PROFILE, load_dataset, load_profile

__all__ = ["PROFILE", "build_profile", "build_schema", "load_profile", "validate_frame"]

MAX_LISTED_ROWS = 1000  # the report lists at most this many rejections per file (and counts all)
DEFAULTS = {**quality.DEFAULTS, "require_locked_data": True}


def build_profile(frame: pd.DataFrame) -> dict[str, Any]:
    """Summarise a trusted data frame: feature ranges and label shares."""
    features = frame.drop(columns=[LABEL])
    shares = frame[LABEL].value_counts(normalize=True).sort_index()
    return {
        "features": {
            column: {"min": float(features[column].min()), "max": float(features[column].max())}
            for column in features.columns
        },
        "labels": {str(int(label)): round(float(share), 6) for label, share in shares.items()},
        "rows": len(frame),
        "distributions": quality.reference_stats(frame, LABEL, "binary"),
    }


def build_schema(profile: dict[str, Any], margin: float) -> pa.DataFrameSchema:
    """A strict pandera schema: known columns only, finite values within the widened ranges."""
    columns = {}
    for name, stats in profile["features"].items():
        pad = margin * (stats["max"] - stats["min"])
        columns[name] = pa.Column(
            float,
            pa.Check.in_range(stats["min"] - pad, stats["max"] + pad),
            nullable=False,
        )
    labels = [int(label) for label in profile["labels"]]
    columns[LABEL] = pa.Column(int, pa.Check.isin(labels), nullable=False)
    return pa.DataFrameSchema(columns, strict=True, ordered=False)


def label_shift(frame: pd.DataFrame, profile: dict[str, Any]) -> float:
    """Largest absolute change in any label's share against the reference."""
    shares = frame[LABEL].value_counts(normalize=True)
    return max(
        abs(float(shares.get(int(label), 0.0)) - reference)
        for label, reference in profile["labels"].items()
    )


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
    params = {**DEFAULTS, **params}
    report: dict[str, Any] = {"rows": len(frame), "problems": []}
    rejected = schema_rejections(frame, profile, params["range_margin"])
    if rejected:
        report["problems"].append(f"{len(rejected)} schema violation(s)")
    if LABEL in frame.columns and len(frame):
        try:
            shift = label_shift(frame, profile)
        except (TypeError, ValueError):
            shift = None
        if shift is not None:
            report["label_shift"] = round(shift, 6)
            if shift > params["max_label_shift"]:
                report["problems"].append(
                    f"label distribution moved by {shift:.3f} (limit {params['max_label_shift']})"
                )
    listed, count, problems, stats = quality.check_frame(frame, LABEL, None, profile, params)
    rejected += listed
    report["problems"] += problems
    report.update(stats)
    report["rejected_count"] = len(rejected) - len(listed) + count
    report["rejected_rows"] = rejected[:MAX_LISTED_ROWS]
    report["passed"] = not report["problems"]
    return report


def check_locked_data(paths: Paths, params: dict[str, Any]) -> dict[str, Any]:
    """Compare each prepared file with the md5 `prepare` recorded in dvc.lock."""
    params = {**DEFAULTS, **params}
    result: dict[str, Any] = {"files": {}, "problems": []}
    for path in (paths.train_csv, paths.test_csv):
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


def write_profile(paths: Paths | None = None) -> Path:
    """Rebuild the reference profile from the pristine bundled data set (review the diff)."""
    paths = paths or Paths()
    params = load_params(paths)["data"]
    target = paths.root / PROFILE
    target.parent.mkdir(parents=True, exist_ok=True)
    profile = build_profile(load_dataset(params["dataset"]))
    target.write_text(json.dumps(profile, indent=2) + "\n", encoding="utf-8")
    return target


def main() -> int:
    log = get_logger("validate")
    paths = Paths()
    params = load_params(paths)["validate"]
    profile = load_profile(paths)
    lock = check_locked_data(paths, params)
    for problem in lock["problems"]:
        log.error("%s", problem)
    results = {}
    for name, path in (("train", paths.train_csv), ("test", paths.test_csv)):
        results[name] = validate_frame(pd.read_csv(path), profile, params)
        problems = results[name]["problems"]
        state = "ok" if results[name]["passed"] else "REJECTED: " + "; ".join(problems)
        log.info("%s: %d rows, %s", name, results[name]["rows"], state)
    paths.reports.mkdir(parents=True, exist_ok=True)
    summary = {
        "passed": lock["passed"] and all(r["passed"] for r in results.values()),
        "row_numbering": "row is the 0-based data row of the CSV file (file line = row + 2)",
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

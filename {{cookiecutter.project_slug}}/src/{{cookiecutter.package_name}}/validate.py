"""The `validate` stage: check the prepared data against a reviewed reference profile.

The profile (reference/data_profile.json, committed to git) records each feature's
range and the label distribution of a trusted copy of the data. The schema allows each
range plus a margin set in params.yaml; anything else is rejected before training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from .config import Paths, get_logger, load_params
from .data import LABEL, load_dataset

PROFILE = Path("reference") / "data_profile.json"


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


def validate_frame(
    frame: pd.DataFrame, profile: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    """Check one frame; return a report whose `passed` says whether it may be used."""
    report: dict[str, Any] = {"rows": len(frame), "rejected_rows": [], "problems": []}
    try:
        build_schema(profile, params["range_margin"]).validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
        for case in cases.itertuples(index=False):
            row = None if pd.isna(case.index) else int(case.index)
            report["rejected_rows"].append(
                {"row": row, "column": case.column, "check": str(case.check),
                 "value": None if pd.isna(case.failure_case) else str(case.failure_case)}
            )
        report["problems"].append(f"{len(cases)} schema violation(s)")
    if LABEL in frame.columns and len(frame):
        shift = label_shift(frame, profile)
        report["label_shift"] = round(shift, 6)
        if shift > params["max_label_shift"]:
            report["problems"].append(
                f"label distribution moved by {shift:.3f} (limit {params['max_label_shift']})"
            )
    report["passed"] = not report["problems"]
    return report


def load_profile(paths: Paths) -> dict[str, Any]:
    return json.loads((paths.root / PROFILE).read_text(encoding="utf-8"))


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
    results = {}
    for name, path in (("train", paths.train_csv), ("test", paths.test_csv)):
        results[name] = validate_frame(pd.read_csv(path), profile, params)
        state = "ok" if results[name]["passed"] else "REJECTED: " + "; ".join(results[name]["problems"])
        log.info("%s: %d rows, %s", name, results[name]["rows"], state)
    paths.reports.mkdir(parents=True, exist_ok=True)
    summary = {"passed": all(r["passed"] for r in results.values()), **results}
    paths.validation_report.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if not summary["passed"]:
        log.error("data rejected; details in %s", paths.validation_report.relative_to(paths.root))
        return 1
    return 0

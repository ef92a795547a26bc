"""The `validate` stage: check the prepared data before anything trains on it.

Checks, each with its threshold in params.yaml (`validate:`):
- integrity: each prepared file's md5 equals the one DVC recorded for it in dvc.lock when
  `prepare` wrote it, so a file changed afterwards is refused;
- schema (pandera): only the reference's columns, finite numbers within each reference range
  plus a margin, known labels (reference/data_profile.json, committed to git and reviewed);
- label distribution: no label's share moves further than `max_label_shift`;
- duplicates: exact duplicate rows above `max_duplicate_share` (a weight-boosting attack), rows
  identical after rounding but with different labels, and near-duplicates (closer than
  `near_duplicate_distance` in reference-range units) with different labels (flipped copies);
- label noise: the share of rows whose label 80% of their nearest neighbours contradict must
  stay under `max_label_noise_share` (labels flipped in place; clean data: 0.02-0.035, 10%
  of the labels flipped: about 0.095; a 5% flip stays below the default limit).

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

# Distance between two rows that differ in one category (one-hot, scaled): a quarter of a
# numeric feature's whole reference range, so categories do not drown the numbers.
CATEGORY_WEIGHT = 0.25 / math.sqrt(2)
MAX_LISTED_ROWS = 1000  # the report lists at most this many rejections per file (and counts all)
DEFAULTS = {
    "max_duplicate_share": 0.01,
    "duplicate_decimals": 4,
    "near_duplicate_distance": 0.02,
    "neighbours": 5,
    "max_label_noise_increase": 0.04,
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


def scaled_features(frame: pd.DataFrame, profile: dict[str, Any]) -> pd.DataFrame | None:
    """Features on one scale for distances: numbers divided by their reference range (missing:
    mid-range), categories one-hot; rows with a non-finite number or no label left out.
    None when the frame lacks the profile's columns."""
    names = list(profile["features"])
    if LABEL not in frame.columns or not set(names) <= set(frame.columns):
        return None
    parts = {}
    finite = np.ones(len(frame), dtype=bool)
    for name in names:
        entry = profile["features"][name]
        if entry.get("type") == "categorical":
            text = frame[name].astype(object)
            for category in entry["categories"]:
                hit = (text == category).to_numpy(dtype=float)
                parts[f"{name}={category}"] = hit * CATEGORY_WEIGHT
            continue
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
        low, high = (0.0, 1.0) if entry.get("type") == "boolean" else (entry["min"], entry["max"])
        span = high - low if high > low else 1.0
        scaled = (values - low) / span
        finite &= ~np.isinf(scaled)
        parts[name] = np.where(np.isnan(values), 0.5, scaled)
    table = pd.DataFrame(parts, index=frame.index)
    labels = frame[LABEL]
    keep = finite & labels.notna().to_numpy()
    return table[keep].assign(**{LABEL: labels[keep]})


def duplicate_rejections(
    frame: pd.DataFrame,
    scaled: pd.DataFrame,
    params: dict[str, Any],
    reference: dict[str, float] | None = None,
) -> tuple[list[dict], list[str], dict[str, Any]]:
    """Exact duplicates, conflicting duplicates after rounding, conflicting near-duplicates.

    Each share may exceed the reference's own (`reference`, recorded by `make profile`: a table
    of few categories has duplicates of its own) by at most `max_duplicate_share`.
    """
    reference = reference or {}
    rejected, problems, stats = [], [], {}
    features = [c for c in scaled.columns if c != LABEL]
    rows = max(len(frame), 1)
    duplicated = frame.duplicated(keep="first")
    share = float(duplicated.mean()) if len(frame) else 0.0
    stats["duplicate_share"] = round(share, 6)
    if share > params["max_duplicate_share"] + reference.get("duplicate_share", 0.0):
        problems.append(
            f"{int(duplicated.sum())} exact duplicate row(s), share {share:.3f} "
            f"(limit {params['max_duplicate_share']})"
        )
        rejected += [
            _rejection(i, None, "duplicate of an earlier row") for i in frame.index[duplicated]
        ]

    if params.get("task") == "regression":  # continuous targets: no label conflicts to find
        return rejected, problems, stats
    rounded = scaled[features].round(params["duplicate_decimals"])
    groups = rounded.assign(**{LABEL: scaled[LABEL]}).groupby(features, sort=False)[LABEL]
    conflicting = groups.transform("nunique") > 1
    stats["conflicting_duplicates"] = int(conflicting.sum())
    allowed = params["max_duplicate_share"] + reference.get("conflicting_share", 0.0)
    if conflicting.any() and (
        not reference.get("conflicting_share") or conflicting.sum() / rows > allowed
    ):
        problems.append(
            f"{int(conflicting.sum())} row(s) share their features (rounded to "
            f"{params['duplicate_decimals']} decimals) with a row of another label"
        )
        rule = "conflicting duplicate: same features as another row, different label"
        rejected += [
            _rejection(i, LABEL, rule, scaled.at[i, LABEL]) for i in conflicting.index[conflicting]
        ]

    from scipy.spatial import cKDTree

    points = scaled[features].to_numpy()
    labels = scaled[LABEL].to_numpy()
    near: set[int] = set()
    if len(points) > 1:
        tree = cKDTree(points)
        pairs = tree.query_pairs(r=params["near_duplicate_distance"], output_type="ndarray")
        pairs = pairs[labels[pairs[:, 0]] != labels[pairs[:, 1]]]
        near = {int(scaled.index[i]) for i in pairs.ravel()} - set(conflicting.index[conflicting])
    stats["conflicting_near_duplicates"] = len(near)
    allowed = params["max_duplicate_share"] + reference.get("near_share", 0.0)
    if near and (not reference.get("near_share") or len(near) / rows > allowed):
        problems.append(
            f"{len(near)} row(s) lie within {params['near_duplicate_distance']} of a "
            "row with another label (near-duplicates with flipped labels)"
        )
        rule = (
            f"conflicting near-duplicate: within {params['near_duplicate_distance']} of a row "
            "with another label"
        )
        rejected += [_rejection(i, LABEL, rule, scaled.at[i, LABEL]) for i in sorted(near)]
    return rejected, problems, stats


def reference_shares(frame: pd.DataFrame, profile: dict[str, Any], params: dict) -> dict:
    """Duplicate, conflicting-duplicate and conflicting-near-duplicate shares of the trusted
    reference itself (make profile records them; clean data of few categories has some)."""
    params = {**DEFAULTS, **params, "task": profile["target"]["task"]}
    scaled = scaled_features(frame, profile)
    _, _, stats = duplicate_rejections(frame, scaled, {**params, "max_duplicate_share": 1.0})
    rows = max(len(frame), 1)
    return {
        "duplicate_share": stats["duplicate_share"],
        "conflicting_share": round(stats.get("conflicting_duplicates", 0) / rows, 6),
        "near_share": round(stats.get("conflicting_near_duplicates", 0) / rows, 6),
    }


def lonely_share(scaled: pd.DataFrame, k: int) -> tuple[np.ndarray, float]:
    """Which rows carry a label that 80% of their k nearest neighbours contradict, and the
    share of such rows."""
    from scipy.spatial import cKDTree

    needed = math.ceil(0.8 * k)
    if len(scaled) <= k:
        return np.zeros(len(scaled), dtype=bool), 0.0
    points = scaled.drop(columns=[LABEL]).to_numpy()
    labels = scaled[LABEL].to_numpy()
    _, neighbours = cKDTree(points).query(points, k=k + 1)
    lonely = (labels[neighbours[:, 1:]] != labels[:, None]).sum(axis=1) >= needed
    return lonely, float(lonely.mean())


NOISE_FRACTIONS = (0.1, 0.2, 0.35, 0.5, 0.8, 1.0)


def reference_noise(frame: pd.DataFrame, profile: dict[str, Any], k: int, seed: int = 0) -> dict:
    """The label-noise share of the trusted reference at several sizes (the share grows as
    rows get sparser), for `validate` to compare a split of any size against."""
    scaled = scaled_features(frame, profile)
    by_rows = {}
    for fraction in NOISE_FRACTIONS:
        part = scaled.sample(frac=fraction, random_state=seed) if fraction < 1 else scaled
        if len(part) > k:
            by_rows[str(len(part))] = round(lonely_share(part, k)[1], 6)
    return {"neighbours": k, "by_rows": by_rows}


def expected_noise(profile: dict[str, Any], rows: int, k: int) -> float:
    """The reference's label-noise share interpolated at `rows` rows (0 when not recorded)."""
    recorded = profile["target"].get("label_noise") or {}
    if recorded.get("neighbours") != k or not recorded.get("by_rows"):
        return 0.0
    sizes = sorted((int(n), float(s)) for n, s in recorded["by_rows"].items())
    return float(np.interp(rows, [n for n, _ in sizes], [s for _, s in sizes]))


def label_noise(
    scaled: pd.DataFrame, params: dict[str, Any], profile: dict[str, Any] | None = None
) -> tuple[list[dict], list[str], float]:
    """Rows whose label 80% of their k nearest neighbours contradict; fail when their share
    exceeds the reference's share at this size by more than `max_label_noise_increase` (plus
    two standard errors)."""
    k = int(params["neighbours"])
    needed = math.ceil(0.8 * k)
    lonely, share = lonely_share(scaled, k)
    expected = expected_noise(profile, len(scaled), k) if profile else 0.0
    limit = (
        expected
        + float(params["max_label_noise_increase"])
        + 2.0 * math.sqrt(expected * (1 - expected) / max(len(scaled), 1))
    )
    if share <= limit:
        return [], [], share
    rule = f"label disagrees with {needed} or more of its {k} nearest neighbours"
    rows = [_rejection(i, LABEL, rule, scaled.at[i, LABEL]) for i in scaled.index[lonely]]
    return (
        rows,
        [
            f"{int(lonely.sum())} row(s) ({share:.3f}) carry a label that {needed} of their "
            f"{k} nearest neighbours contradict; the reference has {expected:.3f} at this size "
            f"(limit {limit:.3f}, validate.max_label_noise_increase): flipped labels?"
        ],
        share,
    )


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
    scaled = scaled_features(frame, profile)
    if scaled is not None and len(scaled):
        rows, problems, stats = duplicate_rejections(
            frame, scaled, params, profile.get("reference_shares")
        )
        rejected += rows
        report["problems"] += problems
        report.update(stats)
        if task != "regression":
            noisy, noise_problems, share = label_noise(scaled, params, profile)
            rejected += noisy
            report["problems"] += noise_problems
            report["label_noise_share"] = round(share, 6)
    report["rejected_count"] = len(rejected)
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
        results[name] = validate_frame(read_prepared(path, profile), profile, params)
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

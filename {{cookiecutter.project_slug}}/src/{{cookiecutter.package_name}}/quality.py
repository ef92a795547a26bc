"""Data-quality checks for the `validate` stage whose cost grows linearly with the rows.

Pure functions: each takes a frame, the target column, the task (binary, multiclass or
regression), the reference profile and the `validate:` settings, and returns the rejections
it found (each `{row, column, rule, value}`) with its metrics. Numeric, integer, boolean and
categorical features are handled per type; a missing value is a value of its own.

- exact duplicates: 64-bit row hashes (pandas), one pass (a collision needs ~4e9 rows);
- conflicting duplicates (classification): rows equal after rounding, different labels;
- conflicting near-duplicates (classification): rows closer than `near_duplicate_distance`
  (numeric features in reference-range units, categoricals equal) with different labels.
  Rows are put in grid cells of that size on a few principal axes; only pairs in the same or
  a neighbouring cell are compared. A projection never lengthens a distance, so no pair within
  the distance is missed; the grid only decides how much work is done (capped by
  `near_duplicate_max_pairs`: above it the check refuses rather than guess);
- label noise (classification): confident learning on out-of-fold probabilities of a fast
  linear model (multinomial logistic regression, L-BFGS, each fold fitted on at most
  `label_noise_fit_rows` rows): a row whose given label is below that class's mean
  self-confidence while another class is at or above its own;
- value-frequency spikes: one exact value far more common than the reference predicts
  (a backdoor trigger set on many rows);
- backdoor triggers by their labels: the rows of one exact value (or category) mostly
  carry labels the out-of-fold model contradicts (binomial tail on the issue rows); and,
  for classification, k of a value's rows carry one label where an out-of-fold linear
  discriminant expects far fewer (an exact Poisson-binomial tail, each row's probability
  kept within [q, 1 - q] with q the reference's label-issue share, Tarone's Bonferroni over
  the value/label pairs that could reach `trigger_p` at all);
- rows outside the reference range: one row is refused on its own when it lies beyond the
  reference min or max by at least the smallest gap between the reference's own most
  extreme values (`tail_gaps`); closer ones above a share (margin hugging);
- categories the reference never had (the schema refuses them too);
- per-feature distribution distance (PSI on the reference's quantile bins, missing as a bin);
- label-conditional shift: a label's share within a feature bin moving from the reference
  (regression: the target's reference quartiles play the labels).

The statistics these need come from `reference_stats`, stored in the profile under
`distributions`. Every split is checked on its own.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DEFAULTS", "check_frame", "reference_stats"]

MISSING = "__missing__"
CATEGORICAL = ("categorical", "boolean", "category", "string", "object")
DEFAULTS: dict[str, Any] = {
    "max_duplicate_share": 0.01,
    "max_conflict_excess_share": 0.01,
    "duplicate_decimals": 4,
    "near_duplicate_distance": 0.02,
    "near_duplicate_max_pairs": 50_000_000,
    "max_label_noise_share": 0.005,
    "label_noise_p": 0.001,
    "label_noise_min_expected": 0.5,
    "label_noise_min_rows": 4,
    "label_noise_folds": 3,
    "label_noise_fit_rows": 10_000,
    "trigger_p": 0.001,
    "trigger_min_rows": 3,
    "residual_z": 2.5,
    "max_value_spike_share": 0.005,
    "value_spike_p": 1e-4,
    "value_spike_label_p": 0.05,
    "value_spike_min_rows": 4,
    "max_outside_range_share": 0.005,
    "outside_range_min_rows": 3,
    "max_psi": 0.2,
    "shift_p": 1e-6,
    "max_label_bin_shift": 0.15,
    "max_listed": 1000,
    "seed": 0,
}
BINS = 10  # quantile bins per numeric feature in the reference
TOP_VALUES = 50  # exact values seen at least twice, most frequent first, kept per feature
TARGET_BINS = 4  # regression: the target's quartiles stand in for labels
MAX_LEVELS = 30  # categorical levels kept per feature (the rest share one bin)


# --- the profile, whatever its generation --------------------------------------------------
def feature_names(profile: dict[str, Any]) -> list[str]:
    return list(profile["features"])


def is_categorical(stats: dict[str, Any], series: pd.Series | None = None) -> bool:
    kind = str(stats.get("type") or stats.get("kind") or "")
    if kind:
        return kind in CATEGORICAL
    if series is None:
        return False
    return not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def feature_range(stats: dict[str, Any]) -> tuple[float, float] | None:
    """(min, max) of a numeric feature in the profile (flat min/max or a `range`)."""
    if "min" in stats and "max" in stats:
        return float(stats["min"]), float(stats["max"])
    bounds = stats.get("range")
    if isinstance(bounds, dict) and "min" in bounds:
        return float(bounds["min"]), float(bounds["max"])
    if isinstance(bounds, list | tuple) and len(bounds) == 2:
        return float(bounds[0]), float(bounds[1])
    return None


def task_of(profile: dict[str, Any], task: str | None = None) -> str:
    if task:
        return task
    dist = profile.get("distributions") or {}
    target = profile.get("target") if isinstance(profile.get("target"), dict) else {}
    return str(dist.get("target", {}).get("task") or target.get("task") or "binary")


def numeric(series: pd.Series) -> np.ndarray:
    values = np.array(pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan))
    values[~np.isfinite(values)] = np.nan
    return values


def as_text(series: pd.Series) -> pd.Series:
    """Categorical values as strings, missing as its own value."""
    text = series.astype("string")
    return text.fillna(MISSING).astype(object)


def value_key(value: Any) -> str:
    return (
        MISSING if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    )


# --- the reference ------------------------------------------------------------------------
def _target_codes(target: pd.Series, spec: dict[str, Any]) -> np.ndarray:
    """Label index per row (-1: unknown or missing); regression: the target's quartile."""
    if spec["task"] == "regression":
        values = numeric(target)
        codes = np.searchsorted(np.asarray(spec["edges"], dtype=float), values, side="right")
        codes[np.isnan(values)] = -1
        return codes.astype(np.int64)
    lookup = {name: i for i, name in enumerate(spec["classes"])}
    return np.array(as_text(target).map(lookup).fillna(-1).to_numpy(dtype=np.int64))


def _class_name(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _target_spec(target: pd.Series, task: str) -> dict[str, Any]:
    if task == "regression":
        values = numeric(target)
        edges = np.unique(np.nanquantile(values, np.linspace(0, 1, TARGET_BINS + 1)[1:-1]))
        return {"task": task, "edges": [float(e) for e in edges]}
    classes = sorted({_class_name(v) for v in target.dropna().unique()})
    return {"task": task, "classes": classes}


def _bins(series: pd.Series, spec: dict[str, Any]) -> np.ndarray:
    """Bin index per row: value bins first, the last bin holds the missing values."""
    if spec["kind"] == "categorical":
        lookup = {level: i for i, level in enumerate(spec["levels"])}
        other = len(spec["levels"])
        text = as_text(series)
        codes = np.array(text.map(lookup).fillna(other).to_numpy(dtype=np.int64))
        codes[(text == MISSING).to_numpy()] = other + 1
        return codes
    values = numeric(series)
    edges = np.asarray(spec["edges"], dtype=float)
    codes = np.searchsorted(edges, values, side="right").astype(np.int64)
    codes[np.isnan(values)] = len(edges) + 1
    return codes


def _bin_count(spec: dict[str, Any]) -> int:
    return len(spec["levels"]) + 2 if spec["kind"] == "categorical" else len(spec["edges"]) + 2


def _top_values(series: pd.Series, categorical: bool) -> tuple[list[list[Any]], float]:
    """The most frequent exact values with their shares, and the share of the next one."""
    values = as_text(series) if categorical else pd.Series(numeric(series))
    counts = values.value_counts(dropna=True)
    total = max(len(series), 1)
    top = counts.head(TOP_VALUES)
    top = top[top >= 2]
    rest = counts.iloc[len(top) :]
    next_share = float(rest.iloc[0]) / total if len(rest) else 0.0
    return [[value_key(v), round(int(c) / total, 8)] for v, c in top.items()], max(
        next_share, 1.0 / total
    )


TAIL_VALUES = 6  # most extreme distinct values per side whose gaps set a lone outlier's limit


def _tail_gaps(values: np.ndarray) -> list[float]:
    """The smallest gap between consecutive distinct values among the TAIL_VALUES lowest and
    among the TAIL_VALUES highest: the resolution at which the reference's own extremes are
    spaced. A row of a split at least that far beyond the reference min or max is a value
    the reference never came near, and is refused on its own (margin hugging); 0 for a
    feature of at most TAIL_VALUES distinct values (a value beyond them is a new level)."""
    distinct = np.unique(values)
    if len(distinct) <= TAIL_VALUES:
        return [0.0, 0.0]
    gaps = np.diff(distinct)
    low, high = gaps[: TAIL_VALUES - 1], gaps[-(TAIL_VALUES - 1) :]
    return [float(f"{low.min():.6g}"), float(f"{high.min():.6g}")]


def reference_stats(
    frame: pd.DataFrame, target: str, task: str, profile: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The per-feature statistics of a trusted frame that the poisoning checks compare with:
    quantile bin edges (categoricals: their levels), the share of rows in each bin and the
    label counts within it, and the most frequent exact values; the reference's own shares of
    exact duplicates, label issues and conflicting (near-)duplicates. Stored in the profile
    under `distributions`. `profile` (the typed profile of `make profile`) gives each
    feature's type and range, so that the reference is measured as `validate` measures a
    split; without it types come from the dtypes and ranges from the frame."""
    typed = (profile or {}).get("features") or {}
    spec = _target_spec(frame[target], task)
    labels = _target_codes(frame[target], spec)
    width = len(spec["classes"]) if task != "regression" else len(spec["edges"]) + 1
    features: dict[str, Any] = {}
    for name in frame.columns:
        if name == target:
            continue
        series = frame[name]
        kind = (typed.get(str(name)) or {}).get("type")
        categorical = kind == "categorical" if kind else is_categorical({}, series)
        if categorical:
            levels = as_text(series)
            levels = levels[levels != MISSING].value_counts().head(MAX_LEVELS)
            entry: dict[str, Any] = {
                "kind": "categorical",
                "levels": [str(v) for v in levels.index],
            }
        else:
            values = numeric(series)
            quantiles = np.linspace(0, 1, BINS + 1)[1:-1]
            finite = values[~np.isnan(values)]
            edges = np.unique(np.quantile(finite, quantiles)) if len(finite) else np.array([])
            entry = {"kind": "numeric", "edges": [float(e) for e in edges]}
            entry["tail_gaps"] = _tail_gaps(finite)
        codes = _bins(series, entry)
        size = _bin_count(entry)
        entry["shares"] = [
            round(float(s), 8) for s in np.bincount(codes, minlength=size) / len(frame)
        ]
        known = labels >= 0
        joint = np.bincount(codes[known] * width + labels[known], minlength=size * width)
        entry["label_counts"] = joint.reshape(size, width).astype(int).tolist()
        entry["top_values"], entry["other_value_share"] = _top_values(series, categorical)
        features[str(name)] = entry
    shares = np.bincount(labels[labels >= 0], minlength=width) / max(int((labels >= 0).sum()), 1)
    spec["shares"] = [round(float(s), 8) for s in shares]
    result = {"rows": len(frame), "target": spec, "features": features}
    # Clean tables of few categories (or rounded values) repeat rows: validate allows that much.
    result["duplicate_share"] = round(
        float(pd.Series(_row_hash(frame)).duplicated(keep="first").mean()) if len(frame) else 0.0,
        6,
    )
    if task != "regression":
        profile = {
            "features": {
                n: {"type": (typed.get(n) or {}).get("type") or features[n]["kind"]}
                for n in features
            }
        }
        for name, limit in stats_range(frame, target).items():
            entry = typed.get(name) or {}
            bounds = feature_range(entry) if entry else None
            low, high = bounds or limit
            profile["features"][name].update(min=low, max=high)
        result["label_noise_share"] = round(
            _label_issue_share(frame, target, profile, DEFAULTS)[0], 6
        )
        result["label_noise_by_rows"] = _noise_by_rows(frame, target, profile)
        # How often clean rows have an equal or near row of another label (low-dimensional
        # or overlapping classes have some): the duplicate checks allow that much.
        found = Found(0)
        conflicting = conflicting_duplicates(frame, target, profile, DEFAULTS, found)
        near_duplicates(frame, target, profile, DEFAULTS, found, conflicting)
        result["conflicting_duplicate_share"] = round(float(conflicting.mean()), 6)
        near = found.metrics.get("conflicting_near_duplicates") or 0
        result["near_duplicate_share"] = round(near / max(len(frame), 1), 6)
    return result


NOISE_FRACTIONS = (0.8, 0.2)  # subsample sizes of the reference's noise curve (the splits)
NOISE_REPEATS = 3
NOISE_MAX_ROWS = 50_000  # larger subsamples are not measured (interpolation clamps to the full)


def _noise_by_rows(frame: pd.DataFrame, target: str, profile: dict[str, Any]) -> list[list]:
    """The reference's label-issue share measured on seeded subsamples of split-like sizes:
    an out-of-fold model fitted on fewer rows contradicts more clean labels, so a split is
    compared with the reference at its own size. [[rows, mean share], ...], largest first."""
    curve = [[len(frame), float(_label_issue_share(frame, target, profile, DEFAULTS)[0])]]
    rng = np.random.default_rng(0)
    for fraction in NOISE_FRACTIONS:
        rows = int(len(frame) * fraction)
        if rows < 20:
            break
        if rows > NOISE_MAX_ROWS:  # fits are capped at label_noise_fit_rows: the share is flat
            continue
        shares = [
            _label_issue_share(
                frame.iloc[np.sort(rng.choice(len(frame), rows, replace=False))].reset_index(
                    drop=True
                ),
                target,
                profile,
                DEFAULTS,
            )[0]
            for _ in range(NOISE_REPEATS)
        ]
        curve.append([rows, float(np.mean(shares))])
    return [[rows, round(share, 6)] for rows, share in curve]


def expected_noise_share(dist: dict[str, Any], rows: int) -> float:
    """The reference's label-issue share at `rows` rows: interpolated in log(rows) on its
    subsample curve (clamped at its ends); without a curve, the full reference's share scaled
    by the reference's rows over `rows` (a pessimistic guess for an older profile)."""
    curve = sorted(dist.get("label_noise_by_rows") or [], key=lambda point: point[0])
    if not curve:
        baseline = float(dist.get("label_noise_share") or 0.0)
        return baseline * max(float(dist.get("rows") or rows) / max(rows, 1), 1.0)
    sizes = np.log([max(float(point[0]), 1.0) for point in curve])
    shares = [float(point[1]) for point in curve]
    return float(np.interp(math.log(max(rows, 1)), sizes, shares))


def stats_range(frame: pd.DataFrame, target: str) -> dict[str, tuple[float, float]]:
    ranges = {}
    for name in frame.columns:
        if name != target and not is_categorical({}, frame[name]):
            values = numeric(frame[name])
            if (~np.isnan(values)).any():
                ranges[str(name)] = (float(np.nanmin(values)), float(np.nanmax(values)))
    return ranges


# --- helpers --------------------------------------------------------------------------------
def _rejection(row: Any, column: Any, rule: str, value: Any = None) -> dict[str, Any]:
    missing = value is None or (not isinstance(value, str) and pd.isna(value))
    return {
        "row": None if row is None else int(row),
        "column": None if column is None else str(column),
        "rule": rule,
        "value": None if missing else str(value),
    }


class Found:
    """Rejections listed up to a cap, all of them counted; problems; metrics."""

    def __init__(self, cap: int) -> None:
        self.cap, self.rows, self.count = cap, [], 0
        self.problems: list[str] = []
        self.metrics: dict[str, Any] = {}
        self.label_issues: np.ndarray | None = None
        # classification: out-of-fold class probabilities and each row's label code
        self.predicted: tuple[np.ndarray, np.ndarray] | None = None

    def reject(
        self, index: pd.Index, positions: np.ndarray, column: Any, rule: str, values: Any = None
    ) -> None:
        positions = np.asarray(positions)
        self.count += len(positions)
        room = max(self.cap - len(self.rows), 0)
        for k, position in enumerate(positions[:room]):
            value = None if values is None else (values[k] if not np.isscalar(values) else values)
            self.rows.append(_rejection(index[position], column, rule, value))

    def column(self, column: str, rule: str, value: Any) -> None:
        """A rejection of a whole column (no single row is to blame)."""
        self.count += 1
        if len(self.rows) < self.cap:
            self.rows.append(_rejection(None, column, rule, round(float(value), 6)))


def _poisson_tail(count: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """P(X >= count) for X ~ Poisson(expected)."""
    from scipy.special import pdtrc  # P(X > k); scipy.stats would cost seconds to import

    return pdtrc(np.asarray(count) - 1, np.asarray(expected))


def _features_present(frame: pd.DataFrame, profile: dict[str, Any]) -> list[str]:
    return [name for name in feature_names(profile) if name in frame.columns]


def _scaled_numeric(frame: pd.DataFrame, profile: dict[str, Any], names: list[str]) -> np.ndarray:
    columns = []
    for name in names:
        low, high = feature_range(profile["features"][name]) or (0.0, 1.0)
        span = high - low if high > low else 1.0
        columns.append((numeric(frame[name]) - low) / span)
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))


def _split_kinds(frame: pd.DataFrame, profile: dict[str, Any]) -> tuple[list[str], list[str]]:
    names = _features_present(frame, profile)
    categorical = [n for n in names if is_categorical(profile["features"][n], frame[n])]
    return [n for n in names if n not in categorical], categorical


def _row_hash(parts: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash per row; text and mixed columns are hashed as strings."""
    mixed = [c for c in parts.columns if parts[c].dtype == object]
    if mixed:
        parts = parts.assign(**{str(c): as_text(parts[c]) for c in mixed})
    return pd.util.hash_pandas_object(parts, index=False).to_numpy()


# --- duplicates ------------------------------------------------------------------------------
def _above_reference(
    flagged: np.ndarray, profile: dict[str, Any], key: str, settings: dict[str, Any]
) -> bool:
    """More flagged rows than the reference had at this size, plus a tolerance. A share of
    rows with a near or equal neighbour grows with the rows, s(n) = 1 - (1 - s_ref)^(n/N), and
    varies between samples: the limit is 1.25 s(n) plus the tolerance."""
    count = int(flagged.sum())
    if not count:
        return False
    dist = profile.get("distributions") or {}
    reference = float(dist.get(key) or 0.0)
    if reference <= 0.0:
        return True  # the reference had none: every such row is suspect
    ratio = len(flagged) / max(int(dist.get("rows") or 1), 1)
    expected = max(reference, 1.0 - (1.0 - min(reference, 0.999999)) ** ratio)
    return count / len(flagged) > 1.25 * expected + float(settings["max_conflict_excess_share"])


def exact_duplicates(
    frame: pd.DataFrame, profile: dict[str, Any], settings: dict[str, Any], found: Found
) -> None:
    """Exact duplicate rows beyond the reference's own share plus max_duplicate_share."""
    duplicated = pd.Series(_row_hash(frame)).duplicated(keep="first").to_numpy()
    share = float(duplicated.mean()) if len(frame) else 0.0
    found.metrics["duplicate_share"] = round(share, 6)
    own = float((profile.get("distributions") or {}).get("duplicate_share") or 0.0)
    limit = round(settings["max_duplicate_share"] + own, 6)
    if share > limit:
        found.problems.append(
            f"{int(duplicated.sum())} exact duplicate row(s), share {share:.3f} (limit {limit}: "
            f"the reference's own {own:.3f} plus validate.max_duplicate_share)"
        )
        found.reject(frame.index, np.flatnonzero(duplicated), None, "duplicate of an earlier row")


def conflicting_duplicates(
    frame: pd.DataFrame,
    target: str,
    profile: dict[str, Any],
    settings: dict[str, Any],
    found: Found,
) -> np.ndarray:
    """Rows equal after rounding (missing equal to missing) with another label."""
    numeric_names, categorical = _split_kinds(frame, profile)
    parts = pd.DataFrame(
        {n: np.round(numeric(frame[n]), settings["duplicate_decimals"]) for n in numeric_names}
    )
    for name in categorical:
        parts[name] = as_text(frame[name]).to_numpy()
    keys = _row_hash(parts) if len(parts.columns) else np.zeros(len(frame), dtype=np.uint64)
    groups = pd.DataFrame({"key": keys, "label": as_text(frame[target]).to_numpy()})
    conflicting = (groups.groupby("key")["label"].transform("nunique") > 1).to_numpy()
    found.metrics["conflicting_duplicates"] = int(conflicting.sum())
    if _above_reference(conflicting, profile, "conflicting_duplicate_share", settings):
        found.problems.append(
            f"{int(conflicting.sum())} row(s) share their features (rounded to "
            f"{settings['duplicate_decimals']} decimals) with a row of another label"
        )
        where = np.flatnonzero(conflicting)
        found.reject(
            frame.index,
            where,
            target,
            "conflicting duplicate: same features as another row, different label",
            frame[target].to_numpy()[where],
        )
    return conflicting


def _axes(points: np.ndarray, seed: int) -> np.ndarray:
    """Principal axes (orthonormal) of a sample of the points: the widest spread first."""
    rng = np.random.default_rng(seed)
    sample = points[rng.choice(len(points), min(len(points), 20_000), replace=False)]
    centred = sample - sample.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)  # a d x d problem, whatever the rows
    return vectors[:, ::-1].T


def _cell_codes(cells: np.ndarray, base: np.ndarray, salt: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (cells.astype(np.uint64) * base).sum(axis=1, dtype=np.uint64) + salt


def _mixed_runs(codes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (sorted by cell) of the cells that hold more than one label, and their cell ids."""
    order = np.argsort(codes)
    ordered, tags = codes[order], labels[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    mixed = np.minimum.reduceat(tags, starts) != np.maximum.reduceat(tags, starts)
    cell = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(codes)]))
    keep = mixed[cell]
    return order[keep], cell[keep]


def near_duplicate_pairs(
    points: np.ndarray,
    labels: np.ndarray,
    salt: np.ndarray,
    distance: float,
    max_pairs: int,
    seed: int = 0,
) -> tuple[np.ndarray, int] | None:
    """Positions of rows within `distance` of a row with another label (same salt).

    Exact: on p principal axes (a projection never lengthens a distance), 2^p grids of cell
    side 2 x distance, each shifted by 0 or `distance` per axis, put every pair within the
    distance into one shared cell of at least one grid. Only cells holding two labels are
    searched. Returns None when the candidate pairs would exceed `max_pairs`.
    """
    n = len(points)
    if n < 2:
        return np.array([], dtype=np.int64), 0
    axes = _axes(points, seed)
    rng = np.random.default_rng(seed)
    base_all = rng.integers(1, 2**62, size=8, dtype=np.uint64) | np.uint64(1)
    projected = points @ axes[: min(6, points.shape[1])].T / distance
    best = None
    for p in range(1, projected.shape[1] + 1):
        codes = _cell_codes(np.floor(projected[:, :p] / 2).astype(np.int64), base_all[:p], salt)
        rows, cell = _mixed_runs(codes, labels)
        sizes = np.bincount(cell) if len(cell) else np.array([0])
        work = 2**p * (n * 4 + float((sizes.astype(float) ** 2).sum()) / 2)
        if best is None or work < best[0]:
            best = (work, p)
    p = best[1]
    flagged = np.zeros(n, dtype=bool)
    candidates = 0
    chunk = 2_000_000
    for mask in range(2**p):
        shift = np.array([(mask >> axis) & 1 for axis in range(p)], dtype=float)
        cells = np.floor((projected[:, :p] + shift) / 2).astype(np.int64)
        rows, cell = _mixed_runs(_cell_codes(cells, base_all[:p], salt), labels)
        if not len(rows):
            continue
        first = np.r_[0, np.flatnonzero(cell[1:] != cell[:-1]) + 1]
        run_end = np.repeat(np.r_[first[1:], len(cell)], np.diff(np.r_[first, len(cell)]))
        later = run_end - np.arange(len(cell)) - 1  # rows after each one in its cell
        candidates += int(later.sum())
        if candidates > max_pairs:
            return None
        ends = np.cumsum(later)
        start = 0
        while start < len(rows):
            stop = int(np.searchsorted(ends, (ends[start - 1] if start else 0) + chunk, "right"))
            stop = min(max(stop, start + 1), len(rows))
            c = later[start:stop]
            i = np.repeat(np.arange(start, stop), c)
            j = i + 1 + np.arange(len(i)) - np.repeat(np.cumsum(c) - c, c)
            i, j = rows[i], rows[j]
            keep = labels[i] != labels[j]
            i, j = i[keep], j[keep]
            if len(i):
                gap = points[i] - points[j]
                close = np.einsum("ij,ij->i", gap, gap) <= distance**2
                flagged[i[close]] = True
                flagged[j[close]] = True
            start = stop
    return np.flatnonzero(flagged), candidates


def near_duplicates(
    frame: pd.DataFrame,
    target: str,
    profile: dict[str, Any],
    settings: dict[str, Any],
    found: Found,
    conflicting: np.ndarray,
) -> None:
    numeric_names, categorical = _split_kinds(frame, profile)
    if not numeric_names:
        found.metrics["conflicting_near_duplicates"] = 0
        return
    scaled = _scaled_numeric(frame, profile, numeric_names)
    missing = np.isnan(scaled)
    # A missing value is a value of its own: rows are near only with the same missing pattern
    # (and the same categories); the missing coordinate then adds nothing to the distance.
    salt_parts = pd.DataFrame(missing, columns=numeric_names)
    for name in categorical:
        salt_parts[name] = as_text(frame[name]).to_numpy()
    salt = _row_hash(salt_parts)
    points = np.where(missing, 0.0, scaled)
    labels = as_text(frame[target]).to_numpy()
    distance = float(settings["near_duplicate_distance"])
    result = near_duplicate_pairs(
        points,
        pd.factorize(labels)[0],
        salt,
        distance,
        int(settings["near_duplicate_max_pairs"]),
        int(settings["seed"]),
    )
    if result is None:
        found.metrics["conflicting_near_duplicates"] = None
        found.problems.append(
            "near-duplicate check did not finish: more than "
            f"{settings['near_duplicate_max_pairs']} candidate pairs (rows crowded within "
            f"{distance}); raise validate.near_duplicate_max_pairs or lower "
            "validate.near_duplicate_distance"
        )
        return
    near, candidates = result
    near = near[~conflicting[near]]
    found.metrics["conflicting_near_duplicates"] = len(near)
    found.metrics["near_duplicate_candidate_pairs"] = candidates
    flagged = np.zeros(len(frame), dtype=bool)
    flagged[near] = True
    if _above_reference(flagged, profile, "near_duplicate_share", settings):
        found.problems.append(
            f"{len(near)} row(s) lie within {distance} of a row with another label "
            "(near-duplicates with flipped labels)"
        )
        found.reject(
            frame.index,
            near,
            target,
            f"conflicting near-duplicate: within {distance} of a row with another label",
            frame[target].to_numpy()[near],
        )


# --- label noise ------------------------------------------------------------------------------
def design_matrix(frame: pd.DataFrame, profile: dict[str, Any]) -> np.ndarray:
    """Numeric features standardised (a missing value: the mean, plus an indicator column),
    categoricals one-hot on their most frequent levels (missing is a level of its own).
    Only feature statistics, never labels, are taken from all rows."""
    numeric_names, categorical = _split_kinds(frame, profile)
    blocks = []
    for name in numeric_names:
        values = numeric(frame[name])
        missing = np.isnan(values)
        if missing.all():
            continue
        spread = float(np.nanstd(values)) or 1.0
        blocks.append(np.where(missing, 0.0, (values - np.nanmean(values)) / spread)[:, None])
        if missing.any():
            blocks.append(missing[:, None].astype(float))
    reference = (profile.get("distributions") or {}).get("features") or {}
    for name in categorical:
        text = as_text(frame[name])
        known = (reference.get(name) or {}).get("levels")
        if known is not None:
            # The reference's levels (and missing) only: a level the reference never had
            # gets no column, so the model cannot learn a planted new level from the very
            # rows that carry it (their labels are then judged by the other features).
            lookup = {level: i for i, level in enumerate([*known, MISSING])}
            level = np.array(text.map(lookup).fillna(-1).to_numpy(dtype=np.int64))
            onehot = np.zeros((len(frame), len(lookup)))
            seen = level >= 0
            onehot[np.flatnonzero(seen), level[seen]] = 1.0
            blocks.append(onehot)
            continue
        codes, uniques = pd.factorize(text)
        top = np.argsort(-np.bincount(codes, minlength=len(uniques)), kind="stable")[:MAX_LEVELS]
        level = np.full(len(uniques), len(top))
        level[top] = np.arange(len(top))
        onehot = np.zeros((len(frame), len(top) + 1))
        onehot[np.arange(len(frame)), level[codes]] = 1.0
        blocks.append(onehot)
    return np.hstack(blocks) if blocks else np.zeros((len(frame), 0))


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(scores)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_softmax(x: np.ndarray, y: np.ndarray, classes: int, iterations: int = 200) -> np.ndarray:
    """Multinomial logistic regression with scikit-learn's default L2 penalty (C=1), fitted
    with L-BFGS as scikit-learn does, in plain numpy and scipy: validate needs no
    scikit-learn."""
    from scipy.optimize import minimize

    n = len(x)
    x1 = np.hstack([x, np.ones((n, 1))])
    target = np.eye(classes)[y]
    penalty = np.ones((x1.shape[1], 1))
    penalty[-1] = 0.0  # the intercept is not penalised

    def loss(flat: np.ndarray) -> tuple[float, np.ndarray]:
        weights = flat.reshape(x1.shape[1], classes)
        scores = x1 @ weights
        scores -= scores.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(scores).sum(axis=1, keepdims=True))
        value = -float((target * (scores - log_norm)).sum()) + 0.5 * float(
            (penalty * weights**2).sum()
        )
        gradient = x1.T @ (np.exp(scores - log_norm) - target) + penalty * weights
        return value, gradient.ravel()

    start = np.zeros(x1.shape[1] * classes)
    done = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": iterations})
    return done.x.reshape(x1.shape[1], classes)


def out_of_fold_probabilities(
    frame: pd.DataFrame, target: str, profile: dict[str, Any], settings: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities of each row from a linear model that never saw it, and the codes.
    Folds are stratified; each fold's model is fitted on at most label_noise_fit_rows rows."""
    x = design_matrix(frame, profile)
    codes, _ = pd.factorize(as_text(frame[target]), sort=True)
    classes = int(codes.max()) + 1
    smallest = int(np.bincount(codes).min())
    folds = max(2, min(int(settings["label_noise_folds"]), smallest))
    rng = np.random.default_rng(int(settings["seed"]))
    fold = np.empty(len(codes), dtype=np.int64)
    for k in range(classes):
        members = rng.permutation(np.flatnonzero(codes == k))
        fold[members] = np.arange(len(members)) % folds
    probabilities = np.zeros((len(frame), classes))
    limit = int(settings["label_noise_fit_rows"])
    for f in range(folds):
        fit_rows, held = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        if len(fit_rows) > limit:
            fit_rows = np.sort(rng.choice(fit_rows, limit, replace=False))
        present = np.unique(codes[fit_rows])
        local = np.searchsorted(present, codes[fit_rows])
        weights = fit_softmax(x[fit_rows], local, len(present))
        scores = np.hstack([x[held], np.ones((len(held), 1))]) @ weights
        probabilities[np.ix_(held, present)] = _softmax(scores)
    return probabilities, codes


def confident_label_issues(probabilities: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Confident learning's rule: a row is an issue when its given label's probability is
    below that class's mean self-confidence and some other class is at or above its own."""
    classes = probabilities.shape[1]
    thresholds = np.array(
        [probabilities[codes == k, k].mean() if (codes == k).any() else 1.0 for k in range(classes)]
    )
    given = probabilities[np.arange(len(codes)), codes]
    above = probabilities >= thresholds
    above[np.arange(len(codes)), codes] = False
    return (given < thresholds[codes]) & above.any(axis=1)


def _label_issue_share(
    frame: pd.DataFrame, target: str, profile: dict[str, Any], settings: dict[str, Any]
) -> tuple[float, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """The share of label issues, the issue mask and (probabilities, label codes)."""
    counts = as_text(frame[target]).value_counts()
    if len(counts) < 2 or len(frame) < 20 or counts.min() < 2:
        return 0.0, np.zeros(len(frame), dtype=bool), None
    probabilities, codes = out_of_fold_probabilities(frame, target, profile, settings)
    issues = confident_label_issues(probabilities, codes)
    return float(issues.mean()), issues, (probabilities, codes)


def label_noise(
    frame: pd.DataFrame,
    target: str,
    profile: dict[str, Any],
    settings: dict[str, Any],
    found: Found,
) -> None:
    share, issues, predicted = _label_issue_share(frame, target, profile, settings)
    found.label_issues = issues
    found.predicted = predicted
    found.metrics["label_noise_share"] = round(share, 6)
    dist = profile.get("distributions") or {}
    n = len(frame)
    # Under no attack the count of label issues is about Poisson with the reference's count
    # at this split's size (at least label_noise_min_expected); refuse a count whose chance
    # is below label_noise_p (and that exceeds the expected share by max_label_noise_share).
    baseline = expected_noise_share(dist, n)
    expected = max(baseline * n, float(settings["label_noise_min_expected"]))
    count = int(issues.sum())
    tail = float(_poisson_tail(np.array([count]), np.array([expected]))[0]) if count else 1.0
    least = int(settings["label_noise_min_rows"])
    while _poisson_tail(np.array([least]), np.array([expected]))[0] >= settings["label_noise_p"]:
        least += 1
    least = max(least, math.ceil((baseline + float(settings["max_label_noise_share"])) * n))
    limit = round(least / max(n, 1), 6)
    found.metrics["label_noise_limit"] = limit
    found.metrics["label_noise_p"] = float(f"{tail:.3g}")
    if count < least:
        return
    where = np.flatnonzero(issues)
    found.problems.append(
        f"{len(where)} row(s) ({share:.3f}) carry a label that an out-of-fold model confidently "
        f"contradicts (limit {limit}: the reference has {baseline:.3f} at {n} rows, chance "
        f"{tail:.1e}): flipped labels?"
    )
    found.reject(
        frame.index,
        where,
        target,
        "label disagrees with a confident out-of-fold prediction (confident learning)",
        frame[target].to_numpy()[where],
    )


def residual_outliers(
    frame: pd.DataFrame,
    target: str,
    profile: dict[str, Any],
    settings: dict[str, Any],
    found: Found,
) -> None:
    """Regression's counterpart of label issues: rows whose target is more than `residual_z`
    robust standard deviations from an out-of-fold ridge prediction (closed form, d x d)."""
    values = numeric(frame[target])
    known = ~np.isnan(values)
    if known.sum() < 20:
        return
    x = np.hstack([design_matrix(frame, profile), np.ones((len(frame), 1))])
    folds = max(2, int(settings["label_noise_folds"]))
    rng = np.random.default_rng(int(settings["seed"]))
    fold = rng.permutation(len(frame)) % folds
    predicted = np.full(len(frame), np.nan)
    penalty = np.eye(x.shape[1])
    penalty[-1, -1] = 0.0
    limit = int(settings["label_noise_fit_rows"])
    for f in range(folds):
        fit_rows = np.flatnonzero((fold != f) & known)
        if len(fit_rows) > limit:
            fit_rows = np.sort(rng.choice(fit_rows, limit, replace=False))
        a = x[fit_rows]
        weights = np.linalg.solve(a.T @ a + penalty, a.T @ values[fit_rows])
        held = fold == f
        predicted[held] = x[held] @ weights
    residual = values - predicted
    centre = np.nanmedian(residual)
    scale = 1.4826 * float(np.nanmedian(np.abs(residual - centre))) or 1.0
    outlying = np.abs(residual - centre) > float(settings["residual_z"]) * scale
    found.label_issues = outlying & known
    found.metrics["residual_outlier_share"] = round(float(found.label_issues.mean()), 6)


def trigger_labels(
    frame: pd.DataFrame, profile: dict[str, Any], settings: dict[str, Any], found: Found
) -> None:
    """A backdoor's rows share one exact value and carry labels (targets) that an
    out-of-fold model contradicts. Per feature and exact value: k of its c rows are label
    issues; under no attack k ~ Binomial(c, q), q the issue share of the other rows (plus
    one, at least 1/rows; a value on more than half of the rows: the split's share). The
    chance is multiplied by the (feature, value) pairs the issue rows could have formed with
    trigger_min_rows each (Bonferroni: features x issue rows / trigger_min_rows); below
    trigger_p the value is a trigger. A common
    value needs many issues, a value carried almost only by contradicted rows a few."""
    from scipy.special import bdtrc  # P(K > k) of a binomial

    issues = found.label_issues
    if issues is None or not len(frame):
        return
    total = int(issues.sum())
    least = int(settings["trigger_min_rows"])
    if total < least:
        return
    n = len(frame)
    names = _features_present(frame, profile)
    tests = max(len(names) * (total // least), 1)  # values that can hold `least` issue rows
    where = np.flatnonzero(issues)
    worst = 1.0
    for name in names:
        categorical = is_categorical(profile["features"][name], frame[name])
        keys = as_text(frame[name]) if categorical else pd.Series(numeric(frame[name]))
        at_issues = keys.iloc[where].value_counts(dropna=True)
        at_issues = at_issues[at_issues >= least]
        if at_issues.empty:
            continue
        counts = keys[keys.isin(at_issues.index)].value_counts(dropna=True)
        k = at_issues.to_numpy().astype(float)
        c = counts.reindex(at_issues.index).to_numpy().astype(float)
        others = (total - k + 1) / (n - c + 1)
        q = np.maximum(np.where(c <= n / 2, others, total / n), 1.0 / n)
        chance = np.minimum(bdtrc(k - 1, c, q) * tests, 1.0)
        worst = min(worst, float(chance.min()))
        for value, rows, hits, p in zip(at_issues.index, c, k, chance, strict=True):
            if p >= settings["trigger_p"]:
                continue
            mask = (keys == value).to_numpy()
            found.problems.append(
                f"{name} = {value_key(value)}: {int(hits)} of its {int(rows)} row(s) carry labels "
                f"an out-of-fold model contradicts (chance {p:.1e} over {tests} value tests, "
                f"limit {settings['trigger_p']}): a backdoor trigger?"
            )
            found.reject(
                frame.index,
                np.flatnonzero(mask & issues),
                name,
                f"backdoor trigger: {int(hits)} of {int(rows)} rows with this value carry "
                "contradicted labels",
                value_key(value),
            )
    found.metrics["trigger_min_p"] = float(f"{worst:.3g}")


def _poisson_binomial_tail(p: np.ndarray, k: int) -> float:
    """P(S >= k) for S a sum of independent Bernoulli(p_i), exact (counts capped at k)."""
    dist = np.zeros(k + 1)
    dist[0] = 1.0
    for pi in p:
        top = dist[k]
        dist[1:] = dist[1:] * (1.0 - pi) + dist[:-1] * pi
        dist[0] *= 1.0 - pi
        dist[k] += top * pi
    return float(min(dist[k], 1.0))


def _tarone_tests(log_least: np.ndarray, alpha: float) -> int:
    """Tarone's count of testable hypotheses: the smallest m such that at most m of them can
    reach a chance below alpha / m at all (log_least: the log of each one's smallest possible
    chance). Hypotheses that cannot reach it never count against the others (Bonferroni)."""
    if not len(log_least):
        return 1
    ordered = np.sort(log_least)
    m = np.arange(1, len(ordered) + 1)
    reachable = np.searchsorted(ordered, np.log(alpha / m), side="left")
    fits = np.flatnonzero(reachable <= m)
    return int(m[fits[0]]) if len(fits) else len(ordered)


def linear_discriminant_out_of_fold(
    x: np.ndarray, codes: np.ndarray, settings: dict[str, Any], ridge: float = 0.1
) -> np.ndarray:
    """Class probabilities of each row from a linear discriminant (class means, one pooled
    covariance plus `ridge` on the standardised features) fitted without its fold: closed
    form, one pass over the rows. Sharper than the regularised logistic model on small
    tables, so a row planted far from its label's class gets a small probability."""
    n, d = x.shape
    classes = int(codes.max()) + 1
    folds = max(2, int(settings["label_noise_folds"]))
    rng = np.random.default_rng(int(settings["seed"]) + 1)
    fold = rng.permutation(n) % folds
    limit = int(settings["label_noise_fit_rows"])
    out = np.full((n, classes), 1.0 / classes)
    for f in range(folds):
        fit = np.flatnonzero(fold != f)
        if len(fit) > limit:
            fit = np.sort(rng.choice(fit, limit, replace=False))
        counts = np.bincount(codes[fit], minlength=classes)
        if (counts == 0).any():
            continue
        means = np.stack([x[fit][codes[fit] == c].mean(axis=0) for c in range(classes)])
        residual = x[fit] - means[codes[fit]]
        pooled = residual.T @ residual / max(len(fit) - classes, 1) + ridge * np.eye(d)
        solved = np.linalg.solve(pooled, means.T)  # d x classes
        held = fold == f
        scores = x[held] @ solved - 0.5 * np.einsum("cd,dc->c", means, solved)
        out[held] = _softmax(scores + np.log(counts / counts.sum()))
    return out


TRIGGER_EXACT_ROWS = 2000  # groups up to this many rows get the exact tail, larger a bound
TRIGGER_EXACT_GROUPS = 200  # at most this many groups per feature get it (bounded cost)
# Label purity runs on splits of at most this many rows: it is the test for the few planted
# rows of a small table; on larger splits 1% is hundreds of rows, which the value-frequency
# and contradicted-label tests see, and its per-value work would grow with the values.
PURITY_MAX_ROWS = 20_000


def trigger_label_purity(
    frame: pd.DataFrame, profile: dict[str, Any], settings: dict[str, Any], found: Found
) -> None:
    """A backdoor's rows share one exact value (or category) and one planted label. Per
    feature, value and label: k of the value's c rows carry label L; under no attack each
    row carries L with the out-of-fold model's probability, kept within [q, 1 - q] (q: the
    reference's label-issue share at the split's size, at least 1/rows: how often a clean
    label contradicts the model), so k is a sum of Bernoulli draws (exact tail, or a Chernoff
    bound on large groups). The chance is multiplied by the (value, label) hypotheses that
    could reach the limit at all (Tarone's Bonferroni); below trigger_p the value is a
    trigger. Splits above PURITY_MAX_ROWS rows are left to the other trigger tests."""
    if found.predicted is None or not len(frame) or len(frame) > PURITY_MAX_ROWS:
        return
    codes = found.predicted[1]
    probabilities = linear_discriminant_out_of_fold(design_matrix(frame, profile), codes, settings)
    n, classes = probabilities.shape
    dist = profile.get("distributions") or {}
    q = max(expected_noise_share(dist, n), 1.0 / n)
    probs = np.clip(probabilities, q, 1.0 - q)
    logs = np.log(probs)
    least = int(settings["trigger_min_rows"])
    alpha = float(settings["trigger_p"])
    hypotheses = []  # per feature: the log of each (value, label) pair's least chance
    per_feature = []
    for name in _features_present(frame, profile):
        categorical = is_categorical(profile["features"][name], frame[name])
        keys = as_text(frame[name]) if categorical else pd.Series(numeric(frame[name]))
        group, uniques = pd.factorize(keys)
        size = np.bincount(group[group >= 0], minlength=len(uniques))
        big = np.flatnonzero(size >= least)
        if not len(big):
            continue
        rows = group >= 0
        g = group[rows]
        k = np.bincount(g * classes + codes[rows], minlength=len(uniques) * classes)
        k = k.reshape(len(uniques), classes)[big]
        floor = np.stack(
            [
                np.bincount(g, weights=logs[rows, c], minlength=len(uniques))[big]
                for c in range(classes)
            ],
            axis=1,
        )  # log of the chance that every row of the group carries label c
        mean = np.stack(
            [
                np.bincount(g, weights=probs[rows, c], minlength=len(uniques))[big]
                for c in range(classes)
            ],
            axis=1,
        )
        per_feature.append((name, group, uniques, big, k, floor, mean, size[big]))
        hypotheses.append(floor.ravel())
    if not hypotheses:
        return
    tests = _tarone_tests(np.concatenate(hypotheses), alpha)
    worst = 1.0
    for name, group, uniques, big, k, floor, mean, size in per_feature:
        # Chernoff: P(S >= k) <= exp(k - mean) (mean / k)^k for k > mean (an upper bound)
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = np.where(
                k > mean, k - mean + k * np.log(np.maximum(mean, 1e-300) / np.maximum(k, 1)), 0.0
            )
        # the bound is loose by up to e^k: look at every group it does not already clear
        candidate = (
            (k >= least) & (floor < math.log(alpha / tests)) & (bound < math.log(alpha / tests) + k)
        )
        order = np.argsort(group, kind="stable")
        starts = np.searchsorted(group[order], big)
        picked = np.argwhere(candidate)
        # the most promising first; beyond TRIGGER_EXACT_GROUPS the bound alone decides
        picked = picked[np.argsort(bound[candidate], kind="stable")]
        for rank, (gi, c) in enumerate(picked):
            value_code = big[gi]
            members = order[starts[gi] : starts[gi] + size[gi]]
            if len(members) <= TRIGGER_EXACT_ROWS and rank < TRIGGER_EXACT_GROUPS:
                tail = _poisson_binomial_tail(probs[members, c], int(k[gi, c]))
            else:
                tail = math.exp(min(float(bound[gi, c]), 0.0))
            chance = min(tail * tests, 1.0)
            worst = min(worst, chance)
            if chance >= alpha:
                continue
            carrying = members[codes[members] == c]
            contradicted = carrying[probabilities[carrying, c] < 0.5]
            named = contradicted if len(contradicted) else carrying
            value = value_key(uniques[value_code])
            found.problems.append(
                f"{name} = {value}: {int(k[gi, c])} of its {int(size[gi])} row(s) carry one "
                f"label where an out-of-fold model expects {float(mean[gi, c]):.1f} (chance "
                f"{chance:.1e} over {tests} value tests, limit {alpha}): a backdoor trigger?"
            )
            found.reject(
                frame.index,
                np.sort(named),
                name,
                f"backdoor trigger: {int(k[gi, c])} of {int(size[gi])} rows with this value "
                "carry one label the out-of-fold model does not expect there",
                value,
            )
    found.metrics["trigger_purity_min_p"] = float(f"{worst:.3g}")
    found.metrics["trigger_tests"] = tests


# --- poisoning beyond ranges ------------------------------------------------------------------
SPIKE_SAMPLE = 50_000  # value counts of splits over twice this start from a sample of it


def _frequent_values(
    keys: pd.Series, sample: np.ndarray | None, settings: dict[str, Any]
) -> pd.Series:
    """Counts of the values seen at least twice; on a large split, of every value whose
    share in the sample rows is at least half of max_value_spike_share (a value above that
    share is missed with a probability far below 1e-9), counted on every row."""
    if sample is None:
        counts = keys.value_counts(dropna=True)
        return counts[counts >= 2]
    shares = pd.Series(keys.to_numpy()[sample]).value_counts(normalize=True, dropna=True)
    candidates = shares.index[shares >= settings["max_value_spike_share"] / 2]
    values = keys.to_numpy()
    counts = pd.Series({c: int((values == c).sum()) for c in candidates}, dtype=int)
    return counts[counts >= 2]


def value_spikes(
    frame: pd.DataFrame, profile: dict[str, Any], settings: dict[str, Any], found: Found
) -> None:
    """One exact value far more common than the reference predicts (a backdoor trigger)."""
    dist = profile.get("distributions") or {}
    n = len(frame)
    worst = 0.0
    sample = None
    if n > 2 * SPIKE_SAMPLE:
        rng = np.random.default_rng(int(settings["seed"]))
        sample = rng.choice(n, SPIKE_SAMPLE, replace=False)
    for name in _features_present(frame, profile):
        ref = dist.get("features", {}).get(name)
        if not ref or n == 0:
            continue
        categorical = ref["kind"] == "categorical"
        keys = as_text(frame[name]) if categorical else pd.Series(numeric(frame[name]))
        counts = _frequent_values(keys, sample, settings)
        if counts.empty:
            continue
        known = {key: share for key, share in ref["top_values"]}
        other = float(ref["other_value_share"])
        expected = np.array([known.get(value_key(v), other) for v in counts.index])
        excess = counts.to_numpy() / n - expected
        tail = _poisson_tail(counts.to_numpy(), expected * n)
        spiked = (excess > settings["max_value_spike_share"]) & (tail < settings["value_spike_p"])
        # A weaker spike counts when most of its rows also carry labels that an out-of-fold
        # model contradicts: a trigger planted on rows relabelled to the target class.
        weak = (
            (excess > settings["max_value_spike_share"])
            & (tail < settings["value_spike_label_p"])
            & (counts.to_numpy() >= settings["value_spike_min_rows"])
            & ~spiked
        )
        worst = max(worst, float(excess.max()))
        for value in counts.index[weak] if found.label_issues is not None else []:
            mask = (keys == value).to_numpy()
            if found.label_issues[mask].mean() >= 0.5:
                spiked[counts.index.get_loc(value)] = True
        for value, share_expected in zip(counts.index[spiked], expected[spiked], strict=True):
            mask = (keys == value).to_numpy()
            found.problems.append(
                f"{name} = {value_key(value)} on {int(mask.sum())} row(s) ({mask.mean():.3f}); "
                f"the reference predicts {share_expected:.4f}: a backdoor trigger?"
            )
            found.reject(
                frame.index,
                np.flatnonzero(mask),
                name,
                f"value-frequency spike: share {mask.mean():.3f} vs reference {share_expected:.4f}",
                value_key(value),
            )
    found.metrics["max_value_spike_excess"] = round(worst, 6)


def outside_reference(
    frame: pd.DataFrame, profile: dict[str, Any], settings: dict[str, Any], found: Found
) -> None:
    """Rows beyond the reference min/max (inside the schema margin), above a share."""
    numeric_names, _ = _split_kinds(frame, profile)
    dist = (profile.get("distributions") or {}).get("features") or {}
    worst = 0.0
    for name in numeric_names:
        bounds = feature_range(profile["features"][name])
        if bounds is None or not len(frame):
            continue
        values = numeric(frame[name])
        # The profile keeps 6 significant digits: the reference's own extremes may lie that
        # little outside the recorded range.
        slack = 1e-5 * max(abs(bounds[0]), abs(bounds[1])) + 1e-12
        outside = (values < bounds[0] - slack) | (values > bounds[1] + slack)
        count = int(outside.sum())
        worst = max(worst, count / len(frame))
        gaps = ((dist.get(name) or {}).get("tail_gaps")) if dist else None
        if gaps is not None and count:
            # A row beyond the reference min (max) by at least the smallest gap between the
            # reference's own most extreme values is refused alone, however few they are:
            # the data the profile was built from never lies outside its range
            # (docs/data-card.md: new data beyond the range needs a reviewed profile).
            far = outside & (
                ((bounds[0] - values) >= gaps[0] - slack)
                | ((values - bounds[1]) >= gaps[1] - slack)
            )
            if far.any():
                where = np.flatnonzero(far)
                found.problems.append(
                    f"{len(where)} row(s) of {name} lie beyond the reference range "
                    f"[{bounds[0]:g}, {bounds[1]:g}] by at least the gap between its "
                    f"most extreme values ({gaps[0]:g} below, {gaps[1]:g} above), inside the "
                    "margin or not: rows hugging the margin?"
                )
                found.reject(
                    frame.index,
                    where,
                    name,
                    "outside the reference range by at least the gap between its extreme values",
                    values[where],
                )
                outside &= ~far
                count = int(outside.sum())
        if count >= settings["outside_range_min_rows"] and (
            count / len(frame) > settings["max_outside_range_share"]
        ):
            found.problems.append(
                f"{count} row(s) of {name} lie outside the reference range "
                f"[{bounds[0]:g}, {bounds[1]:g}] (share {count / len(frame):.3f}, limit "
                f"{settings['max_outside_range_share']}): rows hugging the margin?"
            )
            where = np.flatnonzero(outside)
            found.reject(
                frame.index,
                where,
                name,
                "outside the reference range (within the margin or not), above the allowed share",
                values[where],
            )
    found.metrics["max_outside_range_share"] = round(worst, 6)


def unseen_categories(
    frame: pd.DataFrame, profile: dict[str, Any], settings: dict[str, Any], found: Found
) -> None:
    """Rows whose category the reference never had (the schema of validate refuses them too;
    here so that these checks alone stop a trigger made of a new category)."""
    _, categorical = _split_kinds(frame, profile)
    for name in categorical:
        entry = profile["features"][name]
        known = entry.get("categories")
        if known is None:  # an older profile: the reference's levels, when it kept all
            ref = ((profile.get("distributions") or {}).get("features") or {}).get(name) or {}
            levels = ref.get("levels")
            if levels is None or len(levels) >= MAX_LEVELS:
                continue
            known = levels
        text = as_text(frame[name])
        new = ~text.isin([*map(str, known), MISSING]).to_numpy()
        if not new.any():
            continue
        where = np.flatnonzero(new)
        values = text.to_numpy()[where]
        shown = ", ".join(sorted({str(v) for v in values})[:5])
        found.problems.append(
            f"{len(where)} row(s) of {name} carry categories the reference never had ({shown}): "
            "a planted category?"
        )
        found.reject(frame.index, where, name, "category the reference never had", values)


def _psi(actual: np.ndarray, expected: np.ndarray) -> float:
    a = (actual + 0.5) / (actual.sum() + 0.5 * len(actual))
    e = np.clip(expected, 0.5 / max(expected.size * 1000, 1), None)
    e = e / e.sum()
    return float(((a - e) * np.log(a / e)).sum())


def distribution_shift(
    frame: pd.DataFrame,
    target: str,
    profile: dict[str, Any],
    settings: dict[str, Any],
    found: Found,
) -> None:
    """PSI per feature on the reference bins, and label shares within each bin."""
    from scipy.special import chdtri, ndtri

    dist = profile.get("distributions") or {}
    spec = dist.get("target")
    n = len(frame)
    if not spec or n == 0:
        return
    reference_rows = int(dist.get("rows") or 1)
    weight = n * reference_rows / (n + reference_rows)  # effective size of the two samples
    codes = _target_codes(frame[target], spec) if target in frame.columns else None
    width = len(spec["classes"]) if spec["task"] != "regression" else len(spec["edges"]) + 1
    z_limit = float(-ndtri(settings["shift_p"]))
    psis, worst_shift = {}, 0.0
    for name in _features_present(frame, profile):
        ref = dist.get("features", {}).get(name)
        if not ref:
            continue
        bins = _bins(frame[name], ref)
        size = _bin_count(ref)
        counts = np.bincount(bins, minlength=size)[:size].astype(float)
        psi = _psi(counts, np.asarray(ref["shares"], dtype=float))
        psis[name] = round(psi, 6)
        limit = chdtri(max(size - 1, 1), settings["shift_p"]) / weight
        if psi > settings["max_psi"] and psi > limit:
            found.problems.append(
                f"{name}: distribution moved from the reference (PSI {psi:.3f}, limit "
                f"{settings['max_psi']})"
            )
            found.column(
                name, f"distribution shift: PSI {psi:.3f} above {settings['max_psi']}", psi
            )
        if codes is None:
            continue
        known = codes >= 0
        joint = np.bincount(bins[known] * width + codes[known], minlength=size * width)
        joint = joint[: size * width].reshape(size, width).astype(float)
        reference = np.asarray(ref["label_counts"], dtype=float)
        n_b, r_b = joint.sum(axis=1, keepdims=True), reference.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            share, ref_share = joint / n_b, reference / r_b
            pooled = (joint + reference) / (n_b + r_b)
            spread = np.sqrt(pooled * (1 - pooled) * (1 / n_b + 1 / r_b))
            z = np.abs(share - ref_share) / spread
        moved = np.nan_to_num(np.abs(share - ref_share))
        z = np.nan_to_num(z)
        worst_shift = max(worst_shift, float(moved.max()))
        hits = (moved > settings["max_label_bin_shift"]) & (z > z_limit)
        for b, k in zip(*np.nonzero(hits), strict=True):
            label = spec["classes"][k] if spec["task"] != "regression" else f"quartile {k + 1}"
            where = np.flatnonzero((bins == b) & (codes == k))
            found.problems.append(
                f"{name}: within bin {b} the share of {target} {label} moved from "
                f"{ref_share[b, k]:.2f} to {share[b, k]:.2f} (limit "
                f"{settings['max_label_bin_shift']}): labels planted in one region?"
            )
            found.reject(
                frame.index,
                where,
                target,
                f"label-conditional shift: {target} {label} share in {name} bin {b} "
                f"{share[b, k]:.2f} vs reference {ref_share[b, k]:.2f}",
                label,
            )
    if codes is not None and spec["task"] == "regression":
        counts = np.bincount(codes[codes >= 0], minlength=width)[:width].astype(float)
        psi = _psi(counts, np.asarray(spec["shares"], dtype=float))
        psis[target] = round(psi, 6)
        limit = chdtri(max(width - 1, 1), settings["shift_p"]) / weight
        if psi > settings["max_psi"] and psi > limit:
            found.problems.append(
                f"{target}: the target's quartile shares moved from the reference (PSI "
                f"{psi:.3f}, limit {settings['max_psi']})"
            )
            found.column(target, f"target shift: PSI {psi:.3f} above {settings['max_psi']}", psi)
    found.metrics["psi"] = psis
    found.metrics["max_psi"] = max(psis.values(), default=0.0)
    found.metrics["max_label_bin_shift"] = round(worst_shift, 6)


# --- all of them -------------------------------------------------------------------------------
def check_frame(
    frame: pd.DataFrame,
    target: str,
    task: str | None,
    profile: dict[str, Any],
    settings: dict[str, Any],
) -> tuple[list[dict[str, Any]], int, list[str], dict[str, Any]]:
    """Run every check; return (listed rejections, their total count, problems, metrics)."""
    settings = {**DEFAULTS, **settings}
    task = task_of(profile, task)
    found = Found(int(settings["max_listed"]))
    if not len(frame):
        return [], 0, [], {}
    exact_duplicates(frame, profile, settings, found)
    if target in frame.columns and task != "regression":
        conflicting = conflicting_duplicates(frame, target, profile, settings, found)
        near_duplicates(frame, target, profile, settings, found, conflicting)
        label_noise(frame, target, profile, settings, found)
    elif target in frame.columns:
        residual_outliers(frame, target, profile, settings, found)
    value_spikes(frame, profile, settings, found)
    trigger_labels(frame, profile, settings, found)
    trigger_label_purity(frame, profile, settings, found)
    outside_reference(frame, profile, settings, found)
    unseen_categories(frame, profile, settings, found)
    distribution_shift(frame, target, profile, settings, found)
    return found.rows, found.count, found.problems, found.metrics

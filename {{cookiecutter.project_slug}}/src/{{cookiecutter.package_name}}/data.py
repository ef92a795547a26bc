"""The `prepare` stage: load the raw data, keep only what the model needs, and split it.

Raw data (`data:` in params.yaml): your own CSV or Parquet file named by `data.raw_path`
(usually under data/raw/, versioned with `dvc add`), or, when it is empty, the bundled example
named by `data.dataset` (no download). `data.target` names the target column, `data.task`
the task (binary, multiclass or regression; empty: inferred and written into the profile),
`data.drop_columns` the columns never used (ids, free text).

Data minimisation: the model's features are the ones in the reviewed reference profile
(reference/data_profile.json, built by `make profile`); every other raw column is dropped here,
and the log names them. Before anything is written, privacy.scan looks for personal data in
every raw column; the stage fails when a column that would reach the features holds any.
reports/pii.json gets column names and row counts, never values.

Prepared files hold the profile's features (booleans as 0/1) and the target under the column
name `target` (LABEL), whatever its raw name, so every later stage reads one layout.
"""

from __future__ import annotations

import csv
import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import Paths, get_logger, load_params

LABEL = "target"
PROFILE = Path("reference") / "data_profile.json"
TASKS = ("binary", "multiclass", "regression")
FEATURE_TYPES = ("numeric", "integer", "boolean", "categorical")
# Bundled examples: a function of sklearn.datasets by name (scikit-learn is imported only when
# data is loaded), or a function of this module that returns a frame. Each has a reviewed
# profile in reference/examples/NAME.json (breast_cancer's is reference/data_profile.json).
LOADERS = {
    "breast_cancer": "load_breast_cancer",  # binary, 569 rows, 30 numeric features
    "wine": "load_wine",  # multiclass (3 classes), 178 rows, 13 numeric features
    "diabetes": "load_diabetes",  # regression, 442 rows, 10 numeric features
    "mixed": "make_mixed",  # binary with string labels; numeric, integer, boolean, categorical
}
BOOLEAN_TEXT = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0}
MAX_CATEGORIES = 50  # a text column with more distinct values is an id or free text


class DataError(ValueError):
    """The raw data cannot be turned into the model's features."""


def snake_case(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_")


def make_mixed(rows: int = 600, seed: int = 7) -> pd.DataFrame:
    """A small seeded table of mixed types with missing values and string labels ("churn" /
    "stay"), so that categoricals and booleans are exercised without a download."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, rows)
    income = np.round(rng.gamma(4.0, 9000.0, rows), 2)
    visits = rng.poisson(3.0, rows)
    member = rng.random(rows) < 0.4
    plan = rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2])
    region = rng.choice(["north", "south", "east", "west"], rows)
    effect = {"basic": 1.2, "plus": 0.0, "pro": -1.4}
    score = (
        1.6
        + 0.05 * (45 - age)
        - income / 30000
        + 0.35 * (visits - 3)
        - 1.3 * member
        + np.vectorize(effect.get)(plan)
        + rng.normal(0, 0.4, rows)
    )
    frame = pd.DataFrame(
        {
            "age": age,
            "income": income,
            "visits": visits,
            "member": member,
            "plan": plan,
            "region": region,
            LABEL: np.where(score > 0, "churn", "stay"),
        }
    )
    frame["income"] = frame["income"].mask(rng.random(rows) < 0.05)
    frame["region"] = frame["region"].mask(rng.random(rows) < 0.05)
    frame["member"] = frame["member"].astype(object).mask(rng.random(rows) < 0.03)
    return frame


def load_dataset(name: str) -> pd.DataFrame:
    """The named bundled example as one frame: snake_case columns plus `target`."""
    if name not in LOADERS:
        raise DataError(
            f"data.dataset is {name!r}: choose one of {', '.join(LOADERS)} "
            "(or set data.raw_path to your own file)"
        )
    loader = LOADERS[name]
    if loader == "make_mixed":
        return make_mixed()
    from sklearn import datasets

    frame = getattr(datasets, loader)(as_frame=True).frame.rename(columns=snake_case)
    return frame.astype({column: "float64" for column in frame.columns if column != LABEL})


def raw_path_setting(params: dict[str, Any]) -> str:
    """data.raw_path, or the deprecated data.raw_csv (with a warning)."""
    path = params.get("raw_path") or ""
    if not path and params.get("raw_csv"):
        warnings.warn(
            "params.yaml data.raw_csv is deprecated: rename it to data.raw_path",
            DeprecationWarning,
            stacklevel=2,
        )
        get_logger("prepare").warning("data.raw_csv is deprecated: rename it to data.raw_path")
        path = params["raw_csv"]
    return str(path)


def read_table(path: Path, shown: str) -> pd.DataFrame:
    """A CSV (delimiter sniffed, UTF-8 with or without BOM) or Parquet file as a frame."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several types for a broken file
            raise DataError(f"{shown} is not a readable Parquet file ({error})") from None
    elif suffix in (".csv", ".tsv", ".txt"):
        with path.open(encoding="utf-8-sig", errors="strict", newline="") as handle:
            try:
                sample = handle.read(65536)
            except UnicodeDecodeError:
                raise DataError(f"{shown} is not UTF-8 text: save it as UTF-8 CSV") from None
        if not sample.strip():
            raise DataError(f"{shown} is empty: put the data rows (with a header) in it")
        try:
            delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
        try:
            frame = pd.read_csv(path, sep=delimiter, encoding="utf-8-sig")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as error:
            raise DataError(f"{shown} is not a readable CSV file ({error})") from None
    else:
        raise DataError(f"data.raw_path {shown!r} is not a .csv or .parquet file: convert it")
    if frame.empty or frame.shape[1] < 2:
        raise DataError(f"{shown} holds no data rows or a single column: check the file")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def load_raw(paths: Paths, params: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    """The raw frame and a name for it: data.raw_path when set, else the bundled example."""
    raw = raw_path_setting(params)
    if not raw:
        return load_dataset(params.get("dataset") or "breast_cancer"), params["dataset"]
    path = (paths.root / raw).resolve()
    if not path.is_relative_to(paths.root.resolve()):
        raise DataError(
            f"data.raw_path {raw!r} is outside the repository: copy the file into data/raw/ "
            "and 'dvc add' it there"
        )
    if not path.is_file():
        raise DataError(f"data.raw_path is {raw!r} but {path} does not exist: fix params.yaml")
    return read_table(path, raw), raw


def target_name(params: dict[str, Any]) -> str:
    return str(params.get("target") or LABEL)


def drop_configured(frame: pd.DataFrame, params: dict[str, Any]) -> tuple[pd.DataFrame, list]:
    """The frame without data.drop_columns, and the names dropped."""
    drop = [str(c) for c in params.get("drop_columns") or []]
    absent = [c for c in drop if c not in frame.columns]
    if absent:
        get_logger("prepare").warning("data.drop_columns names absent column(s): %s", absent)
    return frame.drop(columns=[c for c in drop if c in frame.columns]), drop


def standard_frame(raw: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """The raw frame with the target renamed to `target` and data.drop_columns removed."""
    target = target_name(params)
    if target not in raw.columns:
        raise DataError(
            f"target column {target!r} (data.target) is not in the data, whose columns are "
            f"{', '.join(map(str, list(raw.columns)[:12]))}: set data.target"
        )
    frame, _ = drop_configured(raw, params)
    if target != LABEL:
        if LABEL in frame.columns:
            raise DataError(
                f"the data has a column named {LABEL!r} besides the target {target!r}: "
                f"rename it or list it in data.drop_columns"
            )
        frame = frame.rename(columns={target: LABEL})
    if frame[LABEL].isna().any():
        rows = int(frame[LABEL].isna().sum())
        raise DataError(
            f"target column {target!r} is missing in {rows} row(s): fill or remove those rows"
        )
    return frame


# ---- types and the profile ------------------------------------------------------------------


def _boolean_values(column: pd.Series) -> pd.Series | None:
    """The column as 0/1 floats (NaN kept) when it holds only booleans, else None."""
    values = column.dropna()
    if values.empty:
        return None
    if pd.api.types.is_bool_dtype(column) or all(isinstance(v, bool | np.bool_) for v in values):
        return column.map(lambda v: v if pd.isna(v) else float(bool(v))).astype("float64")
    textual = column.dtype == object or pd.api.types.is_string_dtype(column)
    if textual and all(isinstance(v, str) for v in values):
        lowered = values.str.strip().str.lower()
        if set(lowered) <= set(BOOLEAN_TEXT) and lowered.nunique() <= 2:
            return column.map(
                lambda v: v if pd.isna(v) else BOOLEAN_TEXT[str(v).strip().lower()]
            ).astype("float64")
    return None


def infer_type(name: str, column: pd.Series) -> str:
    """numeric, integer, boolean or categorical; DataError for unusable columns."""
    values = column.dropna()
    if values.empty:
        raise DataError(
            f"column {name!r} is entirely missing: list it in data.drop_columns or fill it"
        )
    if _boolean_values(column) is not None:
        return "boolean"
    if pd.api.types.is_numeric_dtype(column):
        whole = np.all(np.isfinite(values)) and bool((values == np.round(values)).all())
        return "integer" if whole else "numeric"
    text = values.astype(str).str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().all():
        return "integer" if bool((numbers == np.round(numbers)).all()) else "numeric"
    if numbers.notna().any():
        example = text[numbers.isna()].iloc[0][:20]
        raise DataError(
            f"column {name!r} mixes numbers and text (e.g. {example!r}): make it all numbers "
            "or all text, or list it in data.drop_columns"
        )
    return "categorical"


def coerce(frame: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    """The frame's features in their profile types: floats (booleans 0/1) or text."""
    out = {}
    for name, kind in types.items():
        column = frame[name]
        if kind == "categorical":
            out[name] = column.map(lambda v: v if pd.isna(v) else str(v).strip()).astype(object)
        elif kind == "boolean":
            values = _boolean_values(column)
            out[name] = values if values is not None else pd.to_numeric(column, errors="coerce")
        else:
            out[name] = pd.to_numeric(column, errors="coerce").astype("float64")
    result = pd.DataFrame(out, index=frame.index)
    if LABEL in frame.columns:
        result[LABEL] = frame[LABEL]
    return result


def infer_task(target: pd.Series) -> str:
    values = target.dropna()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    classes = values.nunique()
    if numeric and not bool((values == np.round(values)).all()):
        return "regression"
    if numeric and classes > 20:
        return "regression"
    return "binary" if classes <= 2 else "multiclass"


def _round(value: float) -> float:
    return float(f"{float(value):.6g}")


def build_profile(
    frame: pd.DataFrame, task: str = "", source: str = "", target: str = LABEL
) -> dict[str, Any]:
    """Summarise a trusted frame (features plus `target`): per feature its type, range with
    natural bounds, categories and shares, missing share; the target's task and classes (or
    quantiles)."""
    features: dict[str, Any] = {}
    excluded: dict[str, str] = {}
    for name in frame.columns:
        if name == LABEL:
            continue
        column = frame[name]
        kind = infer_type(str(name), column)
        entry: dict[str, Any] = {"type": kind}
        if kind == "categorical":
            text = column.dropna().astype(str).str.strip()
            if text.nunique() > MAX_CATEGORIES:
                excluded[str(name)] = (
                    f"text with {text.nunique()} distinct values (an id or free text?): "
                    "not a feature; list it in data.drop_columns to silence this"
                )
                continue
            shares = text.value_counts(normalize=True).sort_index()
            entry["categories"] = {str(k): round(float(v), 6) for k, v in shares.items()}
        elif kind == "boolean":
            entry["true_share"] = round(float(_boolean_values(column).dropna().mean()), 6)
        else:
            values = pd.to_numeric(column, errors="coerce").dropna()
            entry["min"], entry["max"] = _round(values.min()), _round(values.max())
            if values.min() >= 0:
                entry["natural_min"] = 0.0  # never negative in the reference: never below 0
        entry["missing_share"] = round(float(column.isna().mean()), 6)
        features[str(name)] = entry
    if not features:
        raise DataError("the data has no usable feature column besides the target")
    labels = frame[LABEL]
    task = task or infer_task(labels)
    if task not in TASKS:
        raise DataError(f"data.task is {task!r}: use one of {', '.join(TASKS)} or leave it empty")
    target_entry: dict[str, Any] = {"name": target, "task": task}
    if task == "regression":
        values = pd.to_numeric(labels, errors="coerce")
        if values.isna().any():
            raise DataError(
                f"target {target!r} is not numeric but data.task is regression: set data.task "
                "to binary or multiclass, or fix the target"
            )
        target_entry["min"], target_entry["max"] = _round(values.min()), _round(values.max())
        if values.min() >= 0:
            target_entry["natural_min"] = 0.0
        target_entry["quantiles"] = {
            str(q): _round(values.quantile(q)) for q in (0.1, 0.25, 0.5, 0.75, 0.9)
        }
        target_entry["integer"] = bool((values == np.round(values)).all())
    else:
        classes = labels.nunique()
        if classes < 2:
            raise DataError(
                f"target {target!r} has a single class: a classifier needs at least two"
            )
        if task == "binary" and classes > 2:
            raise DataError(
                f"target {target!r} has {classes} classes but data.task is binary: set "
                "data.task to multiclass (or leave it empty)"
            )
        integer = pd.api.types.is_integer_dtype(labels) or (
            pd.api.types.is_numeric_dtype(labels) and bool((labels == np.round(labels)).all())
        )
        shares = labels.value_counts(normalize=True)
        keys = sorted(shares.index, key=lambda v: float(v) if integer else str(v))
        target_entry["label_type"] = "integer" if integer else "string"
        target_entry["classes"] = {
            str(int(k) if integer else k): round(float(shares[k]), 6) for k in keys
        }
    profile = {
        "source": source,
        "rows": len(frame),
        "features": features,
        "target": target_entry,
        # The label shares again under their old key, for readers of the first profile format.
        "labels": target_entry.get("classes", {}),
    }
    if excluded:
        profile["excluded"] = excluded
    return profile


def load_profile(paths: Paths) -> dict[str, Any]:
    path = paths.root / PROFILE
    try:
        profile = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{PROFILE} is missing: build it with 'make profile' and review it"
        ) from None
    if "target" not in profile:  # the first format: numeric features, integer labels
        profile["target"] = {
            "name": LABEL,
            "task": "binary" if len(profile.get("labels", {})) <= 2 else "multiclass",
            "label_type": "integer",
            "classes": profile.get("labels", {}),
        }
        for entry in profile["features"].values():
            entry.setdefault("type", "numeric")
            entry.setdefault("missing_share", 0.0)
    return profile


def feature_types(profile: dict[str, Any]) -> dict[str, str]:
    return {name: entry["type"] for name, entry in profile["features"].items()}


def task_of(profile: dict[str, Any]) -> str:
    return str(profile["target"]["task"])


def feature_allow_list(paths: Paths) -> list[str]:
    """The columns the model needs: the features of the reviewed reference profile."""
    return list(load_profile(paths)["features"])


def labels_as_profiled(labels: pd.Series, profile: dict[str, Any]) -> pd.Series:
    """Target values in the profile's label type (ints, strings or floats)."""
    target = profile["target"]
    if target["task"] == "regression":
        return pd.to_numeric(labels, errors="coerce").astype("float64")
    if target.get("label_type") == "integer":
        numbers = pd.to_numeric(labels, errors="coerce")
        if numbers.notna().all() and bool((numbers == np.round(numbers)).all()):
            return numbers.astype("int64")
        return labels
    return labels.map(lambda v: v if pd.isna(v) else str(v).strip()).astype(object)


PARQUET_MAGIC = b"PAR1"


def prepared_bytes(frame: pd.DataFrame) -> bytes:
    """A prepared frame as the bytes of its Parquet file (what write_prepared writes)."""
    import io

    buffer = io.BytesIO()
    # Dictionary encoding only for text (categories, string labels): on continuous numbers it
    # builds a dictionary per column before giving up, 5x the time of the whole write.
    text = [str(c) for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    frame.to_parquet(
        buffer, engine="pyarrow", index=False, compression="snappy", use_dictionary=text
    )
    return buffer.getvalue()


def write_prepared(frame: pd.DataFrame, path: Path) -> None:
    """Write a prepared split as Parquet: typed columns (numbers float64, categories and
    string labels text), snappy-compressed, and the same bytes for the same frame (DVC's md5)."""
    path.write_bytes(prepared_bytes(frame))


def read_prepared(path: Path, profile: dict[str, Any]) -> pd.DataFrame:
    """A prepared Parquet file with each column in its profile type (categories and labels as
    text). A CSV file (made by hand, or by a version of prepare before Parquet) is read too:
    the first bytes tell the formats apart."""
    types = feature_types(profile)
    text = {n for n, kind in types.items() if kind == "categorical"}
    if profile["target"].get("label_type") == "string":
        text.add(LABEL)
    with path.open("rb") as handle:
        parquet = handle.read(4) == PARQUET_MAGIC
    if parquet:
        frame = pd.read_parquet(path, engine="pyarrow")
    else:
        frame = pd.read_csv(path, dtype={n: str for n in text}, keep_default_na=True)
    for name in text & set(frame.columns):
        frame[name] = frame[name].astype(object)
    if LABEL in frame.columns:
        frame[LABEL] = labels_as_profiled(frame[LABEL], profile)
    return frame


def profile_mismatch(frame: pd.DataFrame, profile: dict[str, Any]) -> str | None:
    """One line naming the columns the profile lists but the data lacks, or None."""
    missing = [name for name in profile["features"] if name not in frame.columns]
    if not missing:
        return None
    return (
        f"the data lacks column(s) {', '.join(missing[:10])} that {PROFILE} lists: rebuild the "
        "profile for this data with 'make profile' and review it"
    )


def minimise(frame: pd.DataFrame, profile: dict[str, Any] | list[str]) -> tuple[pd.DataFrame, list]:
    """Keep the profile's features (in their types) and the label; also return dropped names."""
    if isinstance(profile, list):  # a bare list of numeric feature names (first format)
        profile = {"features": {n: {"type": "numeric"} for n in profile}}
    problem = profile_mismatch(frame, profile)
    if problem or LABEL not in frame.columns:
        raise DataError(problem or f"the data has no {LABEL!r} column")
    features = list(profile["features"])
    dropped = [str(name) for name in frame.columns if name not in features and name != LABEL]
    types = feature_types(profile)
    for name, kind in types.items():
        if len(frame) and frame[name].isna().all():
            raise DataError(
                f"column {name!r} is entirely missing: fill it, or list it in data.drop_columns "
                "and rebuild the profile with 'make profile'"
            )
        if kind != "categorical":
            column = frame[name]
            converted = _boolean_values(column) if kind == "boolean" else None
            if converted is None:
                converted = pd.to_numeric(column, errors="coerce")
            bad = converted.isna() & column.notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(
                    f"column {name!r} is {kind} in {PROFILE} but row {row} holds text: fix the "
                    "data, or rebuild the profile with 'make profile' if the column changed"
                )
    kept = coerce(frame[[*features, LABEL]], types)
    if "target" in profile:
        kept[LABEL] = labels_as_profiled(kept[LABEL], profile)
        if kept[LABEL].isna().any():
            raise DataError(
                "the target is not numeric but the profile's task is regression: fix the data "
                "or rebuild the profile with 'make profile'"
            )
    return kept, dropped


def split(
    frame: pd.DataFrame, test_size: float, seed: int, stratify: bool | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A train/test split, reproducible from the seed, stratified for classification."""
    from sklearn.model_selection import train_test_split

    if stratify is None:
        stratify = infer_task(frame[LABEL]) != "regression"
    train, test = train_test_split(
        frame,
        test_size=test_size,
        random_state=seed,
        stratify=frame[LABEL] if stratify else None,
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def configured_frame(paths: Paths, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """The configured data as prepare sees it before minimisation (target named `target`)."""
    params = params if params is not None else load_params(paths)["data"]
    raw, _ = load_raw(paths, params)
    return standard_frame(raw, params)


def prepared_frames(
    paths: Paths, params: dict[str, Any] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train and test frames prepare would write for the configured data and profile."""
    data = params if params is not None else load_params(paths)["data"]
    profile = load_profile(paths)
    frame, _ = minimise(configured_frame(paths, data), profile)
    return split(frame, data["test_size"], data["seed"], task_of(profile) != "regression")


def main() -> int:
    from . import privacy

    log = get_logger("prepare")
    paths = Paths()
    params = load_params(paths)["data"]
    try:
        raw, name = load_raw(paths, params)
        standard = standard_frame(raw, params)
        profile = load_profile(paths)
    except (DataError, OSError) as error:
        log.error("%s", error)
        return 1
    log.info("loaded %s: %d rows, %d columns", name, len(raw), raw.shape[1])
    features = list(profile["features"])
    configured_drop = [str(c) for c in params.get("drop_columns") or []]
    if configured_drop:
        log.info("data.drop_columns: never used: %s", ", ".join(configured_drop))

    limit = int(params.get("pii_scan_values", privacy.MAX_SCAN_VALUES))
    report = privacy.scan(standard, [*features, LABEL], limit, int(params.get("seed", 0)))
    if report["sampled_columns"]:
        log.info(
            "personal-data scan: a seeded sample of %d distinct values checked in %s "
            "(data.pii_scan_values)",
            limit,
            ", ".join(report["sampled_columns"]),
        )
    report["dropped_columns"] = configured_drop + [
        str(c) for c in standard.columns if c not in features and c != LABEL
    ]
    paths.reports.mkdir(parents=True, exist_ok=True)
    pii_report = paths.reports / "pii.json"
    for column, found in report["columns"].items():
        kinds = ", ".join(f"{kind}: {rows} rows" for kind, rows in found["kinds"].items())
        fate = "in the features: BLOCKED" if found["in_features"] else "dropped"
        log.warning("personal data in column %r (%s): %s", column, kinds, fate)
    if not report["passed"]:
        pii_report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        log.error(
            "personal data would reach the features (%s); nothing written. Remove it from "
            "the raw data or from %s; counts in %s",
            ", ".join(report["blocking_columns"]),
            PROFILE,
            pii_report.relative_to(paths.root),
        )
        return 1

    try:
        frame, dropped = minimise(standard, profile)
        if task_of(profile) != "regression" and frame[LABEL].nunique() < 2:
            raise DataError("the target has a single class: a classifier needs at least two")
        train, test = split(
            frame, params["test_size"], params["seed"], task_of(profile) != "regression"
        )
    except (DataError, ValueError) as error:
        log.error("%s", error)
        return 1
    if dropped:
        log.info(
            "data minimisation: dropped %d column(s) the model does not need: %s",
            len(dropped),
            ", ".join(dropped),
        )
    else:
        log.info("data minimisation: every raw column is a model feature; nothing dropped")
    pii_report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    paths.prepared.mkdir(parents=True, exist_ok=True)
    write_prepared(train, paths.train_data)
    write_prepared(test, paths.test_data)
    log.info(
        "wrote %s (%d rows) and %s (%d rows)",
        paths.train_data.relative_to(paths.root),
        len(train),
        paths.test_data.relative_to(paths.root),
        len(test),
    )
    return 0


# ---- make profile --------------------------------------------------------------------------


def _describe(entry: dict[str, Any]) -> str:
    kind = entry.get("type", "numeric")
    if kind == "categorical":
        return f"categorical, {len(entry.get('categories', {}))} categories"
    if kind == "boolean":
        return "boolean"
    bound = ", never below 0" if "natural_min" in entry else ""
    return f"{kind} [{entry.get('min')}, {entry.get('max')}]{bound}"


def profile_diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Readable lines: what the new profile adds, removes or changes against the old one."""
    if old is None:
        return [f"+ new profile: {len(new['features'])} features"]
    lines = []
    before, after = old.get("features", {}), new["features"]
    for name in after:
        if name not in before:
            lines.append(f"+ feature {name} ({_describe(after[name])})")
        elif before[name] != after[name]:
            lines.append(f"~ feature {name}: {_describe(before[name])} -> {_describe(after[name])}")
            shares = (before[name].get("categories"), after[name].get("categories"))
            if shares[0] != shares[1] and shares[0] is not None and shares[1] is not None:
                added = sorted(set(shares[1]) - set(shares[0]))
                gone = sorted(set(shares[0]) - set(shares[1]))
                if added or gone:
                    lines.append(f"    categories added {added}, removed {gone}")
            if before[name].get("missing_share") != after[name].get("missing_share"):
                lines.append(
                    f"    missing share {before[name].get('missing_share')} -> "
                    f"{after[name].get('missing_share')}"
                )
    lines += [f"- feature {name}" for name in before if name not in after]
    old_target = old.get("target") or {"task": "?", "classes": old.get("labels")}
    new_target = new["target"]
    for key in ("name", "task", "classes", "quantiles"):
        if old_target.get(key) != new_target.get(key):
            lines.append(f"~ target {key}: {old_target.get(key)} -> {new_target.get(key)}")
    for name, reason in (new.get("excluded") or {}).items():
        lines.append(f"! column {name} left out: {reason}")
    return lines or ["no change"]


def write_profile(paths: Paths | None = None) -> tuple[Path, list[str]]:
    """Rebuild the reference profile from the configured data; return it and the diff lines."""
    paths = paths or Paths()
    params = load_params(paths)["data"]
    raw, source = load_raw(paths, params)
    frame = standard_frame(raw, params)
    profile = build_profile(
        frame, str(params.get("task") or ""), source=source, target=target_name(params)
    )
    from .quality import reference_stats

    kept, _ = minimise(frame, profile)
    # What the poisoning checks of validate compare each split with (quality.py).
    profile["distributions"] = reference_stats(kept, LABEL, profile["target"]["task"], profile)
    target = paths.root / PROFILE
    old = json.loads(target.read_text(encoding="utf-8")) if target.is_file() else None
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(profile, indent=2) + "\n", encoding="utf-8")
    return target, profile_diff(old, profile)


def profile_main() -> int:
    paths = Paths()
    try:
        target, lines = write_profile(paths)
    except (DataError, OSError) as error:
        print(f"profile: {error}")
        return 1
    print(f"wrote {target.relative_to(paths.root)}; changes against the previous profile:")
    for line in lines:
        print(f"  {line}")
    print("review it (types, ranges, categories, task), then commit it: git add reference/")
    return 0

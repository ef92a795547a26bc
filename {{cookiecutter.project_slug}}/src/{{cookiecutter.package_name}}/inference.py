"""Guarded inference: check every input against the training schema, answer coarsely.

`Predictor` loads the model only through `model_io.load_model` (which verifies it first),
checks each batch against the reviewed reference profile (feature names; per type: numbers
finite and within the reference range widened by `validate.range_margin` of params.yaml and
never past a natural bound, integers whole, booleans true/false (or 0/1), categories from the
reference's list; missing values (null) only where the reference had them; batch size) and
answers coarsely: classification with the label (string class names as they are) and a coarse
confidence (for multiclass too: the top class only); regression with the value rounded to
`serve.decimals`. The full probability vector is only returned when params.yaml sets
`serve.confidence: full`: fine-grained scores make membership inference and model extraction
easier.

    from PACKAGE.inference import Predictor
    Predictor().predict([{"feature": 1.0, ...}])  ->  [{"label": 1, "confidence": "high"}]
    (regression)                                   ->  [{"value": 151.234}]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from .config import Paths, load_params

CONFIDENCE_MODES = ("band", "rounded", "none", "full")
# Band edges on the top class probability: below 0.7 low, below 0.9 medium, else high.
BANDS = ((0.7, "low"), (0.9, "medium"), (math.inf, "high"))
DEFAULT_SETTINGS: dict[str, Any] = {"max_batch_rows": 100, "confidence": "band", "decimals": 3}


class InputError(ValueError):
    """An input broke a rule of the schema. `field` and `rule` name it; values never appear."""

    def __init__(self, field: str, rule: str, message: str, row: int | None = None) -> None:
        self.field, self.rule, self.row = field, rule, row
        where = f"row {row}, " if row is not None else ""
        super().__init__(f"{where}field '{field}': {message}")


class SettingsError(ValueError):
    """The `serve:` section of params.yaml holds a value this module cannot use."""


@dataclass(frozen=True)
class Feature:
    name: str
    low: float = -math.inf
    high: float = math.inf
    kind: str = "numeric"  # numeric, integer, boolean or categorical
    categories: tuple[str, ...] = ()
    nullable: bool = False


def load_schema(paths: Paths, margin: float) -> list[Feature]:
    """The features and what each accepts, from the reference profile: the reference range
    plus `margin` of its width (never past a natural bound), or the allowed categories."""
    from .data import load_profile

    profile = load_profile(paths)
    schema = []
    for name, entry in profile["features"].items():
        kind = entry.get("type", "numeric")
        nullable = float(entry.get("missing_share", 0.0)) > 0
        if kind == "categorical":
            schema.append(
                Feature(name, kind=kind, categories=tuple(entry["categories"]), nullable=nullable)
            )
        elif kind == "boolean":
            schema.append(Feature(name, 0.0, 1.0, kind, nullable=nullable))
        else:
            pad = margin * (entry["max"] - entry["min"])
            low, high = entry["min"] - pad, entry["max"] + pad
            if "natural_min" in entry:
                low = max(low, float(entry["natural_min"]))
            if kind == "integer":
                low, high = float(math.floor(low)), float(math.ceil(high))
            schema.append(Feature(name, low, high, kind, nullable=nullable))
    return schema


def serve_settings(params: dict[str, Any]) -> dict[str, Any]:
    """The `serve:` section with defaults filled in, checked once so errors are early and clear."""
    settings = {**DEFAULT_SETTINGS, **(params.get("serve") or {})}
    if settings["confidence"] not in CONFIDENCE_MODES:
        raise SettingsError(
            f"params.yaml serve.confidence is {settings['confidence']!r}: "
            f"use one of {', '.join(CONFIDENCE_MODES)}"
        )
    rows = settings["max_batch_rows"]
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
        raise SettingsError(
            f"params.yaml serve.max_batch_rows is {rows!r}: use a whole number of at least 1"
        )
    decimals = settings["decimals"]
    if not isinstance(decimals, int) or isinstance(decimals, bool) or not 0 <= decimals <= 12:
        raise SettingsError(
            f"params.yaml serve.decimals is {decimals!r}: use a whole number from 0 to 12"
        )
    return settings


def check_table(rows: Any, schema: list[Feature], max_rows: int) -> list[list[Any]]:
    """The checked rows, one list of values per row in schema order (floats, or text for a
    category; NaN where a nullable value is missing), or InputError on the first broken rule.
    Accepts one row (a mapping) or a list of rows."""
    if isinstance(rows, dict):
        rows = [rows]
    if not isinstance(rows, list):
        raise InputError("rows", "type", "must be a list of objects mapping features to values")
    if not rows:
        raise InputError("rows", "batch_size", "is empty: send at least one row")
    if len(rows) > max_rows:
        raise InputError(
            "rows",
            "batch_size",
            f"holds {len(rows)} rows, more than the limit of {max_rows} (serve.max_batch_rows)",
        )
    count = len(schema)
    table: list[list[Any]] = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputError("rows", "type", "must map feature names to values", row=index)
        if len(row) != count or any(feature.name not in row for feature in schema):
            expected = {feature.name for feature in schema}
            unknown = sorted(set(row) - expected, key=str)
            if unknown:
                raise InputError(
                    str(unknown[0])[:64],
                    "unknown_field",
                    "is not a feature of the model: remove it",
                    row=index,
                )
            missing = next(feature.name for feature in schema if feature.name not in row)
            raise InputError(missing, "missing_field", "is required", row=index)
        table.append([check_value(feature, row[feature.name], index) for feature in schema])
    return table


def frame_of(table: list[list[Any]], schema: list[Feature]) -> pd.DataFrame:
    """Checked rows as a frame in schema order: numbers as float64, categories as objects."""
    columns = {}
    for position, feature in enumerate(schema):
        values = [row[position] for row in table]
        kind = object if feature.kind == "categorical" else np.float64
        columns[feature.name] = np.array(values, dtype=kind)
    return pd.DataFrame(columns)


def check_rows(rows: Any, schema: list[Feature], max_rows: int) -> pd.DataFrame:
    """Return the rows as a frame in training column order, or raise InputError on the first
    broken rule. Accepts one row (a mapping) or a list of rows."""
    return frame_of(check_table(rows, schema, max_rows), schema)


class FastPathUnsupported(ValueError):
    """The model's preprocessing is not one FastPath replays exactly (the frame path is used)."""


class FastPath:
    """The model's fitted preprocessing replayed with numpy on checked rows, so one row costs
    the arithmetic and the estimator, not pandas and scikit-learn's input handling.

    It replays exactly the steps train.preprocessing builds, read from the fitted model:
    numbers (SimpleImputer then StandardScaler: missing values take the fitted statistic,
    then `x -= mean_; x /= scale_` as StandardScaler does), booleans (SimpleImputer) and
    categories (SimpleImputer with a constant, then OneHotEncoder ignoring unknown values),
    in the ColumnTransformer's column order. Any other step raises FastPathUnsupported, and
    `Predictor` checks the replay against the model's own transform on probe rows (every
    category, both range ends, missing values) before using it: equal to the bit, or unused.

    A linear estimator (LogisticRegression, Ridge, LinearRegression) is replayed too
    (`linear`): the same numpy operations its predict_proba / predict runs after its input
    checks (which the schema checks already cover: a finite float matrix of the fitted width),
    again used only when equal to the bit to the estimator's own answer on the probe rows.
    """

    def __init__(self, model: Any, schema: list[Feature]) -> None:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        steps = getattr(model, "steps", None)
        if not isinstance(model, Pipeline) or len(steps) != 2:
            raise FastPathUnsupported("the model is not Pipeline([prepare, model])")
        prepare, self.estimator = steps[0][1], steps[1][1]
        if not isinstance(prepare, ColumnTransformer) or getattr(prepare, "sparse_output_", True):
            raise FastPathUnsupported("the preprocessing is not a dense ColumnTransformer")
        position = {feature.name: index for index, feature in enumerate(schema)}
        self.blocks: list[tuple[str, list[int], tuple[Any, ...]]] = []
        for name, step, columns in prepare.transformers_:
            if name == "remainder" and step == "drop":
                continue
            if not all(isinstance(c, str) and c in position for c in columns):
                raise FastPathUnsupported(f"step {name!r} selects columns not in the schema")
            indices = [position[c] for c in columns]
            parts = [s for _, s in step.steps] if isinstance(step, Pipeline) else [step]
            imputer = parts[0]
            if not isinstance(imputer, SimpleImputer) or imputer.add_indicator:
                raise FastPathUnsupported(f"step {name!r} does not start with a SimpleImputer")
            if not (
                isinstance(imputer.missing_values, float) and math.isnan(imputer.missing_values)
            ):
                raise FastPathUnsupported(f"step {name!r} imputes something other than NaN")
            statistics = imputer.statistics_
            if len(statistics) != len(indices):
                raise FastPathUnsupported(f"step {name!r} dropped a feature")
            if len(parts) == 2 and isinstance(parts[1], StandardScaler):
                scaler = parts[1]
                if (
                    scaler.mean_ is None
                    or scaler.scale_ is None
                    or not np.all(np.isfinite(statistics.astype(np.float64)))
                ):
                    raise FastPathUnsupported(f"step {name!r} scales without mean or scale")
                self.blocks.append(
                    (
                        "scale",
                        indices,
                        (statistics.astype(np.float64), scaler.mean_, scaler.scale_),
                    )
                )
            elif len(parts) == 1 and statistics.dtype.kind == "f":
                self.blocks.append(("impute", indices, (statistics,)))
            elif len(parts) == 2 and isinstance(parts[1], OneHotEncoder):
                encoder = parts[1]
                if (
                    imputer.strategy != "constant"
                    or encoder.drop is not None
                    or encoder.handle_unknown != "ignore"
                    or encoder.sparse_output
                    or encoder.min_frequency is not None
                    or encoder.max_categories is not None
                ):
                    raise FastPathUnsupported(f"step {name!r} encodes in a way not replayed")
                offsets, lookups, width = [], [], 0
                for categories in encoder.categories_:
                    offsets.append(width)
                    lookups.append({value: i for i, value in enumerate(categories.tolist())})
                    width += len(categories)
                self.blocks.append(
                    ("onehot", indices, (imputer.fill_value, offsets, lookups, width))
                )
            else:
                raise FastPathUnsupported(f"step {name!r} is not one FastPath replays")
        self.linear = linear_replay(self.estimator)

    def transform(self, table: list[list[Any]]) -> np.ndarray:
        """The matrix the estimator takes, for checked rows (`check_table`)."""
        parts = []
        for kind, indices, fitted in self.blocks:
            if kind == "onehot":
                fill, offsets, lookups, width = fitted
                out = np.zeros((len(table), width), dtype=np.float64)  # C order, as OneHotEncoder
                for r, row in enumerate(table):
                    for j, i in enumerate(indices):
                        value = row[i]
                        if isinstance(value, float):  # a missing category (NaN)
                            value = fill
                        spot = lookups[j].get(value)
                        if spot is not None:
                            out[r, offsets[j] + spot] = 1.0
                parts.append(out)
                continue
            # column by column, transposed: Fortran order, as scikit-learn's own steps leave
            # it (a matrix product may round differently for another memory layout)
            values = np.array([[row[i] for row in table] for i in indices], dtype=np.float64).T
            missing = np.isnan(values)
            if missing.any():
                values[missing] = np.broadcast_to(fitted[0], values.shape)[missing]
            if kind == "scale":
                values -= fitted[1]
                values /= fitted[2]
            parts.append(values)
        return parts[0] if len(parts) == 1 else np.hstack(parts)


def linear_replay(estimator: Any) -> Any:
    """The operations a fitted linear estimator runs on an already checked float matrix:
    LogisticRegression.predict_proba (binary: the logistic function of the one score, as
    [1 - p, p]; more classes: the softmax of the scores) or Ridge / LinearRegression.predict
    (the scores); None for any other estimator. `Predictor` uses it only when it equals the
    estimator's own answer to the bit on the probe rows."""
    from scipy.special import expit
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

    coef = getattr(estimator, "coef_", None)
    intercept = getattr(estimator, "intercept_", None)
    if not isinstance(coef, np.ndarray) or coef.dtype != np.float64 or intercept is None:
        return None
    weights = coef.T if coef.ndim == 2 else coef
    if type(estimator) is LogisticRegression:
        if len(estimator.classes_) <= 2:

            def binary(matrix: np.ndarray) -> np.ndarray:
                scores = (matrix @ weights + intercept).reshape(-1)
                scores = expit(scores, out=scores)
                return np.stack([1 - scores, scores], axis=1)

            return binary

        def softmax(matrix: np.ndarray) -> np.ndarray:
            scores = matrix @ weights + intercept
            scores -= scores.max(axis=1).reshape(-1, 1)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=1).reshape(-1, 1)
            return scores

        return softmax
    if type(estimator) in (Ridge, LinearRegression):
        return lambda matrix: matrix @ weights + intercept
    return None


def probe_table(schema: list[Feature]) -> list[list[Any]]:
    """Checked-form rows that reach every category, both ends of each range and, where a
    feature may miss, a missing value: what the fast path is compared on (enough rows that
    the matrix products take the paths a full batch takes)."""
    count = max([64] + [len(f.categories) + 1 for f in schema])
    table = []
    for r in range(count):
        row: list[Any] = []
        for feature in schema:
            if feature.kind == "categorical":
                row.append(feature.categories[r % len(feature.categories)])
            elif feature.kind == "boolean":
                row.append(float(r % 2))
            else:
                low = feature.low if math.isfinite(feature.low) else -1.0
                high = feature.high if math.isfinite(feature.high) else 1.0
                row.append(low + (high - low) * r / (count - 1))
        table.append(row)
    table.append(
        [math.nan if f.nullable else value for f, value in zip(schema, table[0], strict=True)]
    )
    return table


def check_value(feature: Feature, value: Any, index: int) -> Any:
    """One value in the model's form (float, or text for a category), or InputError."""
    if value is None or (isinstance(value, float) and math.isnan(value) and feature.nullable):
        if feature.nullable:
            return math.nan  # imputed by the model's preprocessing, as in training
        raise InputError(feature.name, "type", "is required (not null)", row=index)
    if feature.kind == "categorical":
        if not isinstance(value, str):
            raise InputError(
                feature.name, "type", "must be one of its categories (text)", row=index
            )
        if value not in feature.categories:
            shown = ", ".join(feature.categories[:10])
            raise InputError(
                feature.name, "category", f"is not a known category (allowed: {shown})", row=index
            )
        return value
    if feature.kind == "boolean":
        if isinstance(value, bool):
            return float(value)
        if isinstance(value, Real) and not isinstance(value, bool) and value in (0, 1):
            return float(value)
        raise InputError(feature.name, "type", "must be true or false", row=index)
    plain = type(value) in (float, int)  # the Real check below goes through the ABC machinery
    if not plain and (isinstance(value, bool) or not isinstance(value, Real)):
        raise InputError(feature.name, "type", "must be a number", row=index)
    try:
        value = float(value)
    except OverflowError:  # an integer too large for a float: out of any range
        raise InputError(
            feature.name, "range", "is far outside the allowed range", row=index
        ) from None
    if math.isnan(value):
        raise InputError(feature.name, "nan", "must not be NaN", row=index)
    if math.isinf(value):
        raise InputError(feature.name, "infinite", "must be finite", row=index)
    if not feature.low <= value <= feature.high:
        raise InputError(
            feature.name,
            "range",
            f"is outside the allowed range [{feature.low:.6g}, {feature.high:.6g}]",
            row=index,
        )
    if feature.kind == "integer" and value != math.floor(value):
        raise InputError(feature.name, "integer", "must be a whole number", row=index)
    return value


def coarse(probabilities: list[float], classes: list[Any], mode: str) -> dict[str, Any]:
    """One answer: the label and the confidence in the configured, coarse form."""
    top = max(range(len(probabilities)), key=probabilities.__getitem__)
    answer: dict[str, Any] = {"label": _plain(classes[top])}
    best = float(probabilities[top])
    if mode == "band":
        answer["confidence"] = next(name for edge, name in BANDS if best < edge)
    elif mode == "rounded":
        answer["confidence"] = round(math.floor(best * 10) / 10, 1)
    elif mode == "full":
        answer["probabilities"] = {
            str(_plain(label)): float(p) for label, p in zip(classes, probabilities, strict=True)
        }
    return answer


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones, so answers serialise to JSON."""
    return value.item() if hasattr(value, "item") else value


class Predictor:
    """The verified model plus the input schema; build once, call `predict` per batch."""

    def __init__(self, paths: Paths | None = None, params: dict[str, Any] | None = None) -> None:
        from .data import load_profile
        from .model_io import load_model

        self.paths = paths or Paths()
        params = params if params is not None else load_params(self.paths)
        self.settings = serve_settings(params)
        self.schema = load_schema(self.paths, float(params["validate"]["range_margin"]))
        self.task = load_profile(self.paths)["target"]["task"]
        self.model = load_model(self.paths.model, self.paths.model_manifest)
        self.classes = list(getattr(self.model, "classes_", []))
        trained = [str(n) for n in getattr(self.model, "feature_names_in_", [])]
        profiled = [feature.name for feature in self.schema]
        if trained and sorted(trained) != sorted(profiled):
            raise SettingsError(
                "the model was trained on other features than reference/data_profile.json "
                "lists: retrain (make pipeline) or restore the profile it was trained with"
            )
        if (self.task == "regression") == bool(self.classes):
            raise SettingsError(
                f"the model does not fit the profile's task ({self.task}): retrain "
                "(make pipeline) or restore the profile it was trained with"
            )
        self.columns = trained or profiled
        self.fast = self._fast_path()

    def _fast_path(self) -> FastPath | None:
        """The numpy replay of the model's preprocessing, when it gives the model's own
        answers to the bit on the probe rows; else None (every batch then goes through a
        frame and the whole model, as in training)."""
        try:
            fast = FastPath(self.model, self.schema)
            table = probe_table(self.schema)
            frame = frame_of(table, self.schema)[self.columns]
            replayed = fast.transform(table)
            own = self.model.steps[0][1].transform(frame)
            if replayed.shape != own.shape or not np.array_equal(replayed, own):
                return None
            estimated = self._estimate(fast.estimator, replayed)
            if not np.array_equal(estimated, self._answer(frame)):
                return None
            if fast.linear is not None:
                linear = fast.linear(replayed)
                if linear.shape != estimated.shape or not np.array_equal(linear, estimated):
                    fast.linear = None  # the estimator's own method then
        except (FastPathUnsupported, AttributeError, TypeError, ValueError, IndexError):
            return None
        return fast

    def _estimate(self, estimator: Any, matrix: Any) -> Any:
        method = estimator.predict if self.task == "regression" else estimator.predict_proba
        return method(matrix)

    def _answer(self, frame: pd.DataFrame) -> Any:
        return self._estimate(self.model, frame)

    @property
    def max_rows(self) -> int:
        return int(self.settings["max_batch_rows"])

    def check(self, rows: Any) -> pd.DataFrame:
        return check_rows(rows, self.schema, self.max_rows)

    def raw(self, rows: Any) -> Any:
        """Check the batch (InputError on the first broken rule); the model's raw output
        (probabilities, or values for regression), through the fast path when it is proven."""
        table = check_table(rows, self.schema, self.max_rows)
        if self.fast is not None:
            matrix = self.fast.transform(table)
            if self.fast.linear is not None:
                return self.fast.linear(matrix)
            return self._estimate(self.fast.estimator, matrix)
        return self._answer(frame_of(table, self.schema)[self.columns])

    def predict(self, rows: Any) -> list[dict[str, Any]]:
        """Check the batch (InputError on the first broken rule), then answer per row."""
        output = self.raw(rows)
        if self.task == "regression":
            decimals = int(self.settings["decimals"])
            return [{"value": round(float(v), decimals)} for v in output]
        mode = self.settings["confidence"]
        return [coarse(row.tolist(), self.classes, mode) for row in output]


def predict(rows: Any, paths: Paths | None = None) -> list[dict[str, Any]]:
    """One-shot helper: load and verify the model, check the rows, answer coarsely."""
    return Predictor(paths).predict(rows)

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


def check_rows(rows: Any, schema: list[Feature], max_rows: int) -> pd.DataFrame:
    """Return the rows as a frame in training column order, or raise InputError on the first
    broken rule. Accepts one row (a mapping) or a list of rows."""
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
    names = [feature.name for feature in schema]
    expected = set(names)
    table: list[list[Any]] = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputError("rows", "type", "must map feature names to values", row=index)
        unknown = sorted(set(row) - expected, key=str)
        if unknown:
            raise InputError(
                str(unknown[0])[:64],
                "unknown_field",
                "is not a feature of the model: remove it",
                row=index,
            )
        missing = [name for name in names if name not in row]
        if missing:
            raise InputError(missing[0], "missing_field", "is required", row=index)
        table.append([check_value(feature, row[feature.name], index) for feature in schema])
    frame = pd.DataFrame(table, columns=names)
    for feature in schema:
        frame[feature.name] = frame[feature.name].astype(
            object if feature.kind == "categorical" else "float64"
        )
    return frame


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
    if isinstance(value, bool) or not isinstance(value, Real):
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

    @property
    def max_rows(self) -> int:
        return int(self.settings["max_batch_rows"])

    def check(self, rows: Any) -> pd.DataFrame:
        return check_rows(rows, self.schema, self.max_rows)

    def predict(self, rows: Any) -> list[dict[str, Any]]:
        """Check the batch (InputError on the first broken rule), then answer per row."""
        frame = self.check(rows)[self.columns]
        if self.task == "regression":
            decimals = int(self.settings["decimals"])
            return [{"value": round(float(v), decimals)} for v in self.model.predict(frame)]
        probabilities = self.model.predict_proba(frame)
        mode = self.settings["confidence"]
        return [coarse(list(row), self.classes, mode) for row in probabilities]


def predict(rows: Any, paths: Paths | None = None) -> list[dict[str, Any]]:
    """One-shot helper: load and verify the model, check the rows, answer coarsely."""
    return Predictor(paths).predict(rows)

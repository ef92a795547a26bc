import json

import numpy as np
import pandas as pd
import pytest

from conftest import every_rejection, flip, numeric_features
from {{ cookiecutter.package_name }}.data import LABEL
from {{ cookiecutter.package_name }}.validate import allowed_range, label_shift, validate_frame


def test_clean_data_passes(frames, profile, params):
    train, test = frames
    assert validate_frame(train, profile, every_rejection(params))["passed"]
    assert validate_frame(test, profile, params["validate"])["passed"]


def test_out_of_range_nan_and_infinite_values_are_rejected(frames, profile, params):
    train = frames[0].copy()
    column = numeric_features(profile)[0]
    low, high = allowed_range(profile["features"][column], params["validate"]["range_margin"])
    train[column] = train[column].astype("float64")
    train.loc[0, column] = high + abs(high) + 1.0
    train.loc[1, column] = np.nan
    train.loc[2, column] = np.inf
    report = validate_frame(train, profile, every_rejection(params))
    assert not report["passed"]
    assert {r["row"] for r in report["rejected_rows"]} >= {0, 1, 2}


def test_natural_bounds_hold_whatever_the_margin(frames, profile, params):
    bounded = [n for n in numeric_features(profile) if "natural_min" in profile["features"][n]]
    if not bounded:
        return  # nothing in this profile is bounded below
    train = frames[0].copy()
    train[bounded[0]] = train[bounded[0]].astype("float64")
    train.loc[0, bounded[0]] = -1e-6
    wide = {**every_rejection(params), "range_margin": 10.0}
    report = validate_frame(train, profile, wide)
    assert 0 in {r["row"] for r in report["rejected_rows"] if r["column"] == bounded[0]}


def test_unknown_label_unknown_category_and_extra_column_are_rejected(
    frames, profile, params, task
):
    # Each flaw on its own, so that none can hide another.
    if task != "regression":
        unknown = frames[0].copy()
        unknown[LABEL] = unknown[LABEL].astype(object)
        unknown.loc[0, LABEL] = "no-such-class-7"
        report = validate_frame(unknown, profile, every_rejection(params))
        assert not report["passed"]
        assert LABEL in {r["column"] for r in report["rejected_rows"]}
    for name, entry in profile["features"].items():
        if entry["type"] == "categorical":
            odd = frames[0].copy()
            odd.loc[0, name] = "no-such-category"
            report = validate_frame(odd, profile, every_rejection(params))
            assert not report["passed"]
            assert name in {r["column"] for r in report["rejected_rows"]}
            break
    extra_column = frames[0].copy()
    extra_column["leaked_id"] = 1.0
    report = validate_frame(extra_column, profile, every_rejection(params))
    assert not report["passed"]
    assert "leaked_id" in json.dumps(report["rejected_rows"])


def test_label_or_target_distribution_shift_is_rejected(frames, profile, params, task):
    train = frames[0].copy()
    if task == "regression":
        lower_half = train[LABEL].sort_values().to_numpy()[: max(1, len(train) // 2)]
        train[LABEL] = np.resize(lower_half, len(train))  # only the lower half of the targets
        word = "target quantiles"
    else:
        # every label the reference's rarest class: the largest shift a label set can make
        classes = profile["target"]["classes"]
        rarest = min(classes, key=classes.get)
        shift, limit = 1.0 - classes[rarest], params["validate"]["max_label_shift"]
        if shift <= limit:
            pytest.skip(f"validate.max_label_shift {limit} allows any shift (at most {shift:.2f})")
        train[LABEL] = train.loc[train[LABEL].astype(str) == rarest, LABEL].iloc[0]
        assert label_shift(train, profile) == pytest.approx(shift)
        word = "label distribution"
    report = validate_frame(train, profile, every_rejection(params))
    assert not report["passed"]
    assert any(word in p for p in report["problems"]), report["problems"]


def test_a_rising_share_of_missing_values_is_rejected(frames, profile, params):
    train = frames[0].copy()
    name = next(iter(profile["features"]))
    limit = profile["features"][name]["missing_share"] + params["validate"]["max_missing_shift"]
    share = min(1.0, limit + 0.3)
    train.loc[train.sample(frac=share, random_state=0).index, name] = np.nan
    report = validate_frame(train, profile, every_rejection(params))
    assert not report["passed"]


def test_flip_gives_every_row_another_class(frames, profile, task):
    if task == "regression":
        return
    flipped = flip(frames[0][LABEL], profile)
    assert (flipped != frames[0][LABEL]).all() and flipped.notna().all()
    assert isinstance(pd.Series(flipped).iloc[0], type(frames[0][LABEL].iloc[0]))

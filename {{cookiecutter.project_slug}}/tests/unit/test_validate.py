import json

import numpy as np

from {{ cookiecutter.package_name }}.data import LABEL
from {{ cookiecutter.package_name }}.validate import build_profile, load_profile, validate_frame


def test_clean_data_passes(frames, paths, params):
    train, test = frames
    profile = load_profile(paths)
    assert validate_frame(train, profile, params["validate"])["passed"]
    assert validate_frame(test, profile, params["validate"])["passed"]


def test_committed_profile_matches_the_bundled_data(frames, paths):
    train, test = frames
    import pandas as pd

    rebuilt = build_profile(pd.concat([train, test]))
    assert rebuilt["features"].keys() == load_profile(paths)["features"].keys()


def test_out_of_range_nan_and_infinite_values_are_rejected(frames, paths, params):
    train = frames[0].copy()
    column = train.columns[0]
    train.loc[0, column] = 1e9
    train.loc[1, column] = np.nan
    train.loc[2, column] = np.inf
    report = validate_frame(train, load_profile(paths), params["validate"])
    assert not report["passed"]
    assert {r["row"] for r in report["rejected_rows"]} >= {0, 1, 2}


def test_unknown_label_and_extra_column_are_rejected(frames, paths, params):
    # Each flaw on its own, so that neither can hide the other.
    unknown_label = frames[0].copy()
    unknown_label.loc[0, LABEL] = 7
    report = validate_frame(unknown_label, load_profile(paths), params["validate"])
    assert not report["passed"]
    assert LABEL in {r["column"] for r in report["rejected_rows"]}

    extra_column = frames[0].copy()
    extra_column["leaked_id"] = 1.0
    report = validate_frame(extra_column, load_profile(paths), params["validate"])
    assert not report["passed"]
    assert "leaked_id" in json.dumps(report["rejected_rows"])


def test_label_distribution_shift_is_rejected(frames, paths, params):
    train = frames[0].copy()
    train[LABEL] = 1
    report = validate_frame(train, load_profile(paths), params["validate"])
    assert not report["passed"]
    assert any("label distribution" in p for p in report["problems"])

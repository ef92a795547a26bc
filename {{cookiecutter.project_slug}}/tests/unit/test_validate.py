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
    train = frames[0].copy()
    train.loc[0, LABEL] = 7
    train["leaked_id"] = 1.0
    report = validate_frame(train, load_profile(paths), params["validate"])
    assert not report["passed"]
    columns = {r["column"] for r in report["rejected_rows"]}
    assert LABEL in columns


def test_label_distribution_shift_is_rejected(frames, paths, params):
    train = frames[0].copy()
    train[LABEL] = 1
    report = validate_frame(train, load_profile(paths), params["validate"])
    assert not report["passed"]
    assert any("label distribution" in p for p in report["problems"])

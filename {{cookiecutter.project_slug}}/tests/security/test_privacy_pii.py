"""Personal data planted in the raw data: found, counted, never echoed, and kept from the model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }} import data, privacy
from {{ cookiecutter.package_name }}.config import Paths
from {{ cookiecutter.package_name }}.data import LABEL, configured_frame

ROOT = Path(__file__).resolve().parents[2]
EMAILS = [f"patient{i}@clinic-example.org" for i in range(25)]
PHONES = [f"+44 20 7946 {i:04d}" for i in range(15)]
SSNS = [f"123-45-{6700 + i}" for i in range(10)]
CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004", "340000000000009"]
IBANS = ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000"]
NOTES = [f"patient {i} reported mild pain after the second visit" for i in range(12)]
PLANTED = [*EMAILS, *PHONES, *SSNS, *CARDS, *IBANS, *NOTES]


@pytest.fixture(scope="module")
def raw(paths, params):
    """The configured raw data (target named `target`, data.drop_columns removed)."""
    return configured_frame(paths, params["data"])


@pytest.fixture(scope="module")
def first_feature(profile):
    return next(iter(profile["features"]))


def column_with(values, length):
    return pd.Series(values + [""] * (length - len(values)), dtype="object")


def test_no_personal_data_reaches_the_features_of_the_configured_data(raw, profile):
    report = privacy.scan(raw, [*profile["features"], LABEL])
    assert report["passed"], report["blocking_columns"]


def test_each_kind_is_found_and_counted(raw):
    frame = raw.head(40).copy()
    for name, values in (
        ("c1", EMAILS),
        ("c2", PHONES),
        ("c3", SSNS),
        ("c4", CARDS),
        ("c5", IBANS),
        ("c6", NOTES),
    ):
        frame[name] = column_with(values, len(frame))
    columns = privacy.scan(frame, features=[])["columns"]
    assert columns["c1"]["kinds"]["email"] == 25
    assert columns["c2"]["kinds"]["phone"] == 15
    assert columns["c3"]["kinds"]["ssn"] == 10
    assert columns["c4"]["kinds"]["payment_card"] == 3
    assert columns["c5"]["kinds"]["iban"] == 2
    assert columns["c6"]["kinds"]["free_text"] == 12
    assert not any(column["in_features"] for column in columns.values())


def test_repeated_values_count_for_their_rows_and_a_wide_column_is_sampled():
    """Each distinct value is checked once and counts its rows; above max_values distinct
    values a seeded sample is checked and the column is named as sampled."""
    repeated = pd.DataFrame({"contact": ["a.b@example.org", "plain"] * 500})
    report = privacy.scan(repeated)
    assert report["columns"]["contact"]["kinds"]["email"] == 500
    assert report["sampled_columns"] == []
    wide = pd.DataFrame({"contact": [f"user{i}@example.org" for i in range(3000)]})
    report = privacy.scan(wide, max_values=1000)
    assert report["sampled_columns"] == ["contact"] and report["max_values"] == 1000
    assert report["columns"]["contact"]["kinds"]["email"] == 1000, "the sample's rows"
    assert not report["passed"], "the sample finds what every row holds"
    assert privacy.scan(wide, max_values=0)["columns"]["contact"]["kinds"]["email"] == 3000


def test_look_alikes_fail_the_checksums():
    assert privacy.luhn_ok("4111111111111111") and not privacy.luhn_ok("4111111111111112")
    assert privacy.iban_ok("GB82WEST12345698765432")
    assert not privacy.iban_ok("GB83WEST12345698765432")
    frame = pd.DataFrame(
        {
            "ids": [
                "4111 1111 1111 1112",
                "GB83WEST12345698765432",
                "2024-01-15",
                "0.123",
                "stage II",
            ]
        }
    )
    assert privacy.scan(frame)["columns"] == {}


def scratch(tmp_path, params, frame, monkeypatch):
    data_params = {**params["data"], "raw_path": "raw/records.csv", "target": LABEL}
    data_params.pop("raw_csv", None)
    changed = {**params, "data": {**data_params, "drop_columns": []}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(changed), encoding="utf-8")
    shutil.copytree(ROOT / "reference", tmp_path / "reference")
    (tmp_path / "raw").mkdir()
    frame.to_csv(tmp_path / "raw" / "records.csv", index=False)
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    return Paths(tmp_path)


def no_values(report_text):
    return [value for value in PLANTED if value in report_text]


def test_personal_data_in_a_feature_column_fails_prepare_and_writes_only_counts(
    tmp_path, params, raw, first_feature, monkeypatch
):
    frame = raw.astype({first_feature: "object"})
    frame.loc[: len(EMAILS) - 1, first_feature] = EMAILS
    frame["contact_phone"] = column_with(PHONES, len(frame))
    paths = scratch(tmp_path, params, frame, monkeypatch)
    assert data.main() == 1
    assert not paths.train_data.exists() and not paths.test_data.exists(), "nothing half-written"
    text = (paths.reports / "pii.json").read_text()
    report = json.loads(text)
    assert report["passed"] is False and report["blocking_columns"] == [first_feature]
    assert report["columns"][first_feature]["kinds"]["email"] == len(EMAILS)
    assert report["columns"]["contact_phone"]["in_features"] is False
    assert no_values(text) == []


def test_personal_data_outside_the_features_is_dropped_and_reported(
    tmp_path, params, raw, profile, monkeypatch
):
    frame = raw.copy()
    frame["email"] = column_with(EMAILS, len(frame))
    frame["notes"] = column_with(NOTES, len(frame))
    frame["card"] = column_with(CARDS, len(frame))
    paths = scratch(tmp_path, params, frame, monkeypatch)
    assert data.main() == 0
    kept = pd.read_parquet(paths.train_data).columns.tolist()
    assert kept == [*profile["features"], LABEL]
    text = (paths.reports / "pii.json").read_text()
    report = json.loads(text)
    assert report["passed"] is True
    expected = {"email", "notes", "card"} | (set(raw.columns) - set(profile["features"]) - {LABEL})
    assert set(report["dropped_columns"]) == expected
    assert report["columns"]["email"]["kinds"] == {"email": len(EMAILS), "column_name": len(frame)}
    assert report["columns"]["card"]["kinds"]["payment_card"] == len(CARDS)
    assert no_values(text) == []


def test_a_personal_data_column_added_to_the_allow_list_is_blocked(raw):
    frame = raw.head(30).copy()
    frame["patient_email"] = column_with(EMAILS, len(frame))
    report = privacy.scan(frame, features=[*raw.columns, "patient_email"])
    assert report["passed"] is False and report["blocking_columns"] == ["patient_email"]

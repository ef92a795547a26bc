"""Performance tests: validate's poisoning detection on a large synthetic table.

The attacks of tests/security/test_data_poisoning.py, on a table drawn from the reviewed
profile (benchmarks/scale.py `synthetic`) instead of the small bundled data: the clean table
passes, and flipped labels, conflicting (near-)duplicates, a flood of duplicated rows,
out-of-range rows and a shifted feature are each caught. `make test` runs it on
POISON_ROWS=20000 rows (a few seconds); `make bench-scale` runs it on 100,000 rows.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import every_rejection, flip, flood_copies, numeric_features, squeezed

ROOT = Path(__file__).resolve().parents[2]
ROWS = int(os.environ.get("POISON_ROWS", "20000"))


@pytest.fixture(scope="module")
def table(profile):
    kinds = {entry["type"] for entry in profile["features"].values()}
    if kinds - {"numeric"}:
        pytest.skip(
            "integer, boolean or categorical features: the synthetic table draws each feature "
            "on its own per label, so its few distinct values make conflicting near-duplicates "
            "by chance and it is no clean baseline; the attacks run on the bundled data "
            "(tests/security/test_data_poisoning.py)"
        )
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import scale

    from {{ cookiecutter.package_name }} import quality
    from {{ cookiecutter.package_name }}.data import LABEL

    return scale.synthetic(profile, ROWS, 11, LABEL, quality)


@pytest.fixture(scope="module")
def classification(task):
    if task == "regression":
        pytest.skip("label attacks need class labels; this project is a regression")


def check(frame, profile, params, configured=False):
    """validate_frame with every rejection listed (`every_rejection`), or with the report as
    configured (validate.max_listed caps it)."""
    from {{ cookiecutter.package_name }}.validate import validate_frame

    settings = params["validate"] if configured else every_rejection(params)
    return validate_frame(frame, profile, settings)


def rejected(report, rule):
    return {r["row"] for r in report["rejected_rows"] if r["rule"].startswith(rule)}


def test_the_clean_table_passes(table, profile, params):
    report = check(table, profile, params)
    assert report["passed"], report["problems"]
    assert report["rows"] == ROWS


def test_labels_flipped_in_place_are_caught(classification, table, profile, params):
    from {{ cookiecutter.package_name }}.data import LABEL

    poisoned = table.copy()
    victims = poisoned.sample(frac=0.05, random_state=3).index
    poisoned.loc[victims, LABEL] = flip(poisoned.loc[victims, LABEL], profile)
    report = check(poisoned, profile, params)
    assert not report["passed"]
    assert report["label_noise_share"] > report["label_noise_limit"], report["problems"]


def test_copies_and_near_copies_with_flipped_labels_are_caught(
    classification, table, profile, params
):
    from {{ cookiecutter.package_name }}.data import LABEL

    copies = table.sample(20, random_state=1)
    flipped = copies.assign(**{LABEL: flip(copies[LABEL], profile)})
    columns = numeric_features(profile)
    near = table.sample(20, random_state=2).copy()
    noise = np.random.default_rng(0).normal(1.0, 0.002, size=(20, len(columns)))
    near[columns] = near[columns].to_numpy() * noise
    near[LABEL] = flip(near[LABEL], profile).to_numpy()
    report = check(pd.concat([table, flipped, near], ignore_index=True), profile, params)
    assert not report["passed"]
    exact = set(range(ROWS, ROWS + 20))
    assert exact <= rejected(report, "conflicting duplicate")
    assert set(range(ROWS + 20, ROWS + 40)) <= rejected(report, "conflicting near-duplicate")


def test_a_flood_of_duplicated_rows_is_caught(table, profile, params):
    copies = flood_copies(ROWS, profile, params)
    flood = pd.concat([table, pd.concat([table.head(1)] * copies)], ignore_index=True)
    cap = params["validate"]["max_listed"]
    report = check(flood, profile, params, configured=True)
    assert not report["passed"]
    assert any(p.startswith(f"{copies} exact duplicate") for p in report["problems"])
    listed = rejected(report, "duplicate of an earlier row")  # the first `cap` of them
    assert len(listed) == min(copies, cap) and report["rejected_count"] >= copies
    assert listed <= set(range(ROWS, ROWS + copies))


def test_out_of_range_rows_are_caught(table, profile, params):
    from {{ cookiecutter.package_name }}.validate import allowed_range

    poison = table.head(5).copy()
    for name in numeric_features(profile)[:3]:
        low, high = allowed_range(profile["features"][name], params["validate"]["range_margin"])
        poison[name] = high + (high - low) + 1.0
    report = check(pd.concat([table, poison], ignore_index=True), profile, params)
    assert not report["passed"]
    assert set(range(ROWS, ROWS + 5)) <= rejected(report, "schema")


def test_a_shifted_feature_is_caught(table, profile, params):
    name = numeric_features(profile)[-1]
    _, report = squeezed(table, profile, params, name, check)
    assert not report["passed"]
    assert report["psi"][name] > params["validate"]["max_psi"]

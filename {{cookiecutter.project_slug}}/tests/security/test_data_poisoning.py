"""Attacks on the training data: poisoned rows, flipped labels, a file changed after `prepare`.

Each attack is run against the real `validate` checks; the stage must fail (so DVC never
starts `train`) and name the rejected rows (row, column, rule) in reports/validation.json.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import every_rejection, flip, flood_copies, numeric_features, squeezed
from {{ cookiecutter.package_name }} import quality, validate
from {{ cookiecutter.package_name }}.config import Paths
from {{ cookiecutter.package_name }}.data import LABEL, labels_as_profiled
from {{ cookiecutter.package_name }}.validate import (
    allowed_range,
    check_locked_data,
    md5_file,
    validate_frame,
)

ROOT = Path(__file__).resolve().parents[2]


def check(frame, profile, params):
    """validate_frame with every rejection listed: validate.max_listed caps the report, not
    what is caught, and these tests name the rows each rule caught."""
    return validate_frame(frame, profile, every_rejection(params))


def rejected(report, rule):
    return {r["row"] for r in report["rejected_rows"] if r["rule"].startswith(rule)}


@pytest.fixture
def classification(task):
    if task == "regression":
        pytest.skip("label attacks need class labels; this project is a regression")


def test_clean_training_data_passes_every_check(frames, profile, params, task):
    report = check(frames[0], profile, params)
    assert report["passed"], report["problems"]
    assert report["rejected_rows"] == []
    if task != "regression":
        assert report["conflicting_duplicates"] == 0 and report["conflicting_near_duplicates"] == 0


def out_of_range(frame, profile, params, columns):
    """Rows pushed past the allowed range of each of `columns` (beyond high + its width)."""
    poison = frame.copy()
    for name in columns:
        low, high = allowed_range(profile["features"][name], params["validate"]["range_margin"])
        poison[name] = high + (high - low) + 1.0
    return poison


def test_poisoned_out_of_range_rows_are_rejected_by_row_column_and_rule(frames, profile, params):
    train = frames[0]
    columns = numeric_features(profile)[:3]
    poison = out_of_range(train.head(5), profile, params, columns)
    report = check(pd.concat([train, poison], ignore_index=True), profile, params)
    assert not report["passed"]
    rows = rejected(report, "schema")
    assert set(range(len(train), len(train) + 5)) <= rows
    entry = next(r for r in report["rejected_rows"] if r["row"] == len(train))
    assert entry["column"] in set(columns) and "in_range" in entry["rule"]


def test_rows_with_unknown_categories_are_rejected(frames, profile, params):
    names = [n for n, e in profile["features"].items() if e["type"] == "categorical"]
    if not names:
        pytest.skip("the profile has no categorical feature")
    train = frames[0]
    poison = train.head(5).assign(**{names[0]: "never-seen-before"})
    report = check(pd.concat([train, poison], ignore_index=True), profile, params)
    assert not report["passed"]
    rows = {r["row"] for r in report["rejected_rows"] if r["column"] == names[0]}
    assert set(range(len(train), len(train) + 5)) <= rows


def test_copies_with_flipped_labels_are_rejected_as_conflicting_duplicates(
    classification, frames, profile, params
):
    train = frames[0]
    copies = train.sample(20, random_state=1)
    flipped = copies.assign(**{LABEL: flip(copies[LABEL], profile)})
    report = check(pd.concat([train, flipped], ignore_index=True), profile, params)
    assert not report["passed"]
    rows = rejected(report, "conflicting duplicate")
    assert set(range(len(train), len(train) + 20)) <= rows
    assert set(copies.index) <= rows, "the originals they contradict are named too"


def test_near_copies_with_flipped_labels_are_rejected(classification, frames, profile, params):
    train = frames[0]
    copies = train.sample(20, random_state=2)
    columns = numeric_features(profile)
    noise = np.random.default_rng(0).normal(1.0, 0.002, size=(20, len(columns)))
    near = copies.copy()
    near[columns] = copies[columns].to_numpy() * noise
    near[LABEL] = flip(copies[LABEL], profile).to_numpy()
    report = check(pd.concat([train, near], ignore_index=True), profile, params)
    assert not report["passed"]
    assert set(range(len(train), len(train) + 20)) <= rejected(report, "conflicting near-duplicate")


def test_labels_flipped_in_place_are_rejected_as_label_noise(
    classification, frames, profile, params
):
    train = frames[0].copy()
    victims = train.sample(frac=0.2, random_state=3).index  # 20%: caught on noisier tables too
    train.loc[victims, LABEL] = flip(train.loc[victims, LABEL], profile)
    report = check(train, profile, params)
    assert report["label_shift"] < params["validate"]["max_label_shift"], "shift alone misses it"
    assert not report["passed"]
    assert any("flipped labels" in p for p in report["problems"]), report["problems"]
    caught = rejected(report, "label disagrees")
    assert len(caught & set(victims)) >= len(victims) // 2


def test_a_flood_of_duplicated_rows_is_rejected(frames, profile, params):
    train = frames[0]
    copies = flood_copies(len(train), profile, params)
    flood = pd.concat([train, pd.concat([train.head(1)] * copies)], ignore_index=True)
    report = check(flood, profile, params)
    assert not report["passed"]
    assert rejected(report, "duplicate of an earlier row") == set(range(len(train), len(flood)))
    capped = validate_frame(flood, profile, params["validate"])  # the report as configured
    cap = params["validate"]["max_listed"]
    assert not capped["passed"]
    assert len(capped["rejected_rows"]) == min(capped["rejected_count"], cap)


def test_the_clean_test_split_passes_every_check_on_its_own(frames, profile, params):
    report = check(frames[1], profile, params)
    assert report["passed"], report["problems"]


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_five_percent_of_labels_flipped_on_the_training_split_alone_are_rejected(
    classification, frames, profile, params, seed
):
    train = frames[0].copy()
    victims = train.sample(frac=0.05, random_state=seed).index
    train.loc[victims, LABEL] = flip(train.loc[victims, LABEL], profile)
    report = check(train, profile, params)
    assert not report["passed"], report["label_noise_share"]
    assert report["label_noise_share"] >= report["label_noise_limit"]
    assert len(rejected(report, "label disagrees") & set(victims)) >= len(victims) // 2


def trigger_feature(profile) -> str:
    """The feature the issue's backdoor used when present, else the profile's last
    continuous (type numeric) feature, else its last integer one."""
    names = [n for n, e in profile["features"].items() if e["type"] == "numeric"]
    names = names or numeric_features(profile)
    return "mean_symmetry" if "mean_symmetry" in names else names[-1]


def detectable(profile, params, feature: str, count: int, rows: int) -> bool:
    """Whether `count` rows of one new exact value in `rows` can be told from chance: the
    Poisson tail under the reference's share of an unlisted value, against value_spike_p (or,
    with labels to corroborate it, value_spike_label_p and value_spike_min_rows)."""
    from scipy.special import pdtrc

    settings = params["validate"]
    expected = profile["distributions"]["features"][feature]["other_value_share"] * rows
    tail = float(pdtrc(count - 1, expected))
    if tail < settings["value_spike_p"]:
        return True
    labelled = profile["target"]["task"] != "regression"
    return (
        labelled
        and count >= settings["value_spike_min_rows"]
        and (tail < settings["value_spike_label_p"])
    )


def trigger_value(profile, feature: str, value: float) -> float:
    """`value` as the feature's type allows it (integers stay whole)."""
    return float(round(value)) if profile["features"][feature]["type"] == "integer" else value


def backdoor(train: pd.DataFrame, feature: str, value: float, share: float, profile, seed: int = 0):
    """`share` of the rows get the trigger value; for classification they are taken from one
    class and given another label (a regression keeps its targets: the trigger alone)."""
    victims = train.sample(round(share * len(train)), random_state=seed)
    poisoned = train.copy()
    if profile["target"]["task"] != "regression":
        classes = pd.Series(list(profile["target"]["classes"]))
        source, target = list(labels_as_profiled(classes, profile))[:2]
        pool = train[train[LABEL] == source]
        victims = pool.sample(min(round(share * len(train)), len(pool)), random_state=seed)
        poisoned.loc[victims.index, LABEL] = target
    poisoned.loc[victims.index, feature] = trigger_value(profile, feature, value)
    return poisoned, set(victims.index)


@pytest.mark.parametrize("share", [0.02, 0.03, 0.05])
def test_a_backdoor_trigger_on_an_exact_rare_value_is_rejected(frames, profile, params, share):
    """The red-team attack: one feature set to an exact rare value (mean_symmetry = 0.2999 on
    the bundled data) with the target label on 3% of training rows taken from another class."""
    feature = trigger_feature(profile)
    if not detectable(profile, params, feature, round(share * len(frames[0])), len(frames[0])):
        pytest.skip(
            f"a {share:.0%} trigger on {len(frames[0])} rows is within chance for the "
            "reference's value frequencies and validate.value_spike_* (docs/data-card.md)"
        )
    low, high = profile["features"][feature]["min"], profile["features"][feature]["max"]
    value = 0.2999 if feature == "mean_symmetry" else round(low + 0.97 * (high - low), 4)
    poisoned, victims = backdoor(frames[0], feature, value, share, profile)
    value = trigger_value(profile, feature, value)
    report = check(poisoned, profile, params)
    assert not report["passed"]
    spiked = rejected(report, "value-frequency spike")
    assert victims <= spiked, report["problems"]
    entry = next(r for r in report["rejected_rows"] if r["rule"].startswith("value-frequency"))
    assert entry["column"] == feature and float(entry["value"]) == value


def test_a_trigger_just_inside_the_range_margin_is_rejected(frames, profile, params):
    """Trigger at max + 9.9% of the range (the margin allows 10%) on 5% of the rows."""
    feature = trigger_feature(profile)
    low, high = profile["features"][feature]["min"], profile["features"][feature]["max"]
    margin = params["validate"]["range_margin"]
    inside = high + 0.99 * margin * (high - low)
    if profile["features"][feature]["type"] == "integer":
        inside = float(int(inside)) if int(inside) > high else high + 1.0
    poisoned, victims = backdoor(frames[0], feature, inside, 0.05, profile)
    report = check(poisoned, profile, params)
    assert not rejected(report, "schema"), "inside the margin: the range check lets it pass"
    assert not report["passed"]
    assert victims <= rejected(report, "outside the reference range")


def test_rows_hugging_the_margin_are_rejected(frames, profile, params):
    """Six rows at max + 9.9% of the range: each passes the schema, together they are refused."""
    train = frames[0]
    feature = trigger_feature(profile)
    low, high = profile["features"][feature]["min"], profile["features"][feature]["max"]
    edge = high + 0.099 * (high - low)
    if profile["features"][feature]["type"] == "integer":
        edge = float(int(edge)) if int(edge) > high else high + 1.0
    hugging = train.sample(6, random_state=5).assign(**{feature: edge})
    report = check(pd.concat([train, hugging], ignore_index=True), profile, params)
    assert not rejected(report, "schema")
    assert not report["passed"]
    assert set(range(len(train), len(train) + 6)) <= rejected(report, "outside the reference")


def margin_value(profile, params, feature: str) -> float:
    """A value just inside the allowed margin above the reference max (integers: the largest
    whole value the margin allows, at least max + 1)."""
    entry = profile["features"][feature]
    _, high = allowed_range(entry, params["validate"]["range_margin"])
    value = entry["max"] + 0.99 * (high - entry["max"])
    if entry["type"] == "integer":
        value = max(float(math.floor(value)), entry["max"] + 1.0)
    return value


@pytest.mark.parametrize("count", [1, 2])
def test_one_or_two_rows_just_inside_the_margin_are_rejected(frames, profile, params, count):
    """`count` rows per numeric feature, each copied from the split with that one feature
    just inside the margin above the reference max: the schema lets every one pass, yet each
    lies beyond the reference range by at least the gap between the reference's own most
    extreme values, which data the profile was built from never does."""
    train = frames[0]
    margin = params["validate"]["range_margin"]
    features = [
        name
        for name in numeric_features(profile)
        if margin_value(profile, params, name)
        <= allowed_range(profile["features"][name], margin)[1]
    ]
    if not features:
        pytest.skip(f"validate.range_margin {margin} leaves no margin above any feature's max")
    planted = []
    for k, name in enumerate(features):
        rows = train.sample(count, random_state=k).assign(
            **{name: margin_value(profile, params, name)}
        )
        planted.append(rows)
    poisoned = pd.concat([train, *planted], ignore_index=True)
    report = check(poisoned, profile, params)
    assert not rejected(report, "schema")
    assert not report["passed"]
    named = {
        (r["row"], r["column"])
        for r in report["rejected_rows"]
        if r["rule"].startswith("outside the reference range")
    }
    expected = {
        (len(train) + k * count + i, name) for k, name in enumerate(features) for i in range(count)
    }
    assert expected <= named, sorted(expected - named)[:5]


def test_a_new_category_on_one_percent_of_rows_is_refused_by_the_quality_checks_alone(
    frames, profile, params
):
    """A trigger made of a category the reference never had, on 1% of the rows (at least
    one), labelled as one class: the schema refuses it, and so do the quality checks on their
    own (quality.check_frame, which never sees the schema)."""
    names = [n for n, e in profile["features"].items() if e["type"] == "categorical"]
    if not names:
        pytest.skip("the profile has no categorical feature")
    train = frames[0]
    poisoned, victims = backdoor(train, numeric_features(profile)[0], 0.0, 0.01, profile)
    poisoned[numeric_features(profile)[0]] = train[numeric_features(profile)[0]]
    poisoned[names[0]] = poisoned[names[0]].astype(object)
    poisoned.loc[list(victims), names[0]] = "zz-planted"
    settings = every_rejection(params)
    rows, _, problems, _ = quality.check_frame(poisoned, LABEL, None, profile, settings)
    assert problems, "the quality checks let a new category through"
    assert victims <= {r["row"] for r in rows if r["column"] == names[0]}


def test_labels_planted_in_one_region_of_a_feature_are_rejected(
    classification, frames, profile, params
):
    """Every row in the top tenth of one feature gets the same label: the label shares within
    that feature's reference bin move, though the overall label share barely does."""
    train = frames[0].copy()
    feature = trigger_feature(profile)
    region = train.index[train[feature] >= train[feature].quantile(0.9)]
    counts = train.loc[region, LABEL].value_counts().reindex(train[LABEL].unique(), fill_value=0)
    train.loc[region, LABEL] = counts.idxmin()  # the label that is rarest there
    report = check(train, profile, params)
    assert not report["passed"]
    assert rejected(report, "label-conditional shift") or rejected(report, "label disagrees")
    assert any(p.startswith(f"{feature}: within bin") for p in report["problems"]), report[
        "problems"
    ]


def test_a_feature_squeezed_inside_its_range_is_rejected_as_distribution_shift(
    frames, profile, params
):
    """Values moved towards the minimum, all within range: only the distance to the
    reference (PSI) sees it."""
    feature = trigger_feature(profile)
    _, report = squeezed(frames[0], profile, params, feature, check)
    assert not rejected(report, "schema")
    assert not report["passed"]
    entry = next(r for r in report["rejected_rows"] if r["rule"].startswith("distribution shift"))
    assert entry["column"] == feature and entry["row"] is None
    assert report["psi"][feature] > params["validate"]["max_psi"]


TRIGGER_FLOOR_ROWS = 8  # planted rows per split that docs/data-card.md promises on any table


def trigger_floor(params, rows: int, share: float, floor: int = TRIGGER_FLOOR_ROWS) -> bool:
    """Whether `share` of `rows` planted rows reaches the documented floor of the trigger
    check (docs/data-card.md: about 8 planted rows in a split on any table; the default
    data's 5, its 1%; never fewer than validate.trigger_min_rows)."""
    return round(share * rows) >= max(floor, params["validate"]["trigger_min_rows"])


def trigger_values(profile, feature: str) -> dict[str, float]:
    """Trigger values of the hidden-style variants: rare in the reference (a new exact value
    inside the range), the reference's most common value, a reference bin edge."""
    entry = profile["features"][feature]
    dist = profile["distributions"]["features"][feature]
    low, high = entry["min"], entry["max"]
    values = {
        "rare": trigger_value(profile, feature, round(low + 0.613 * (high - low), 4)),
        "bin-edge": trigger_value(profile, feature, dist["edges"][len(dist["edges"]) // 2]),
    }
    if dist["top_values"]:
        values["common"] = float(dist["top_values"][0][0])
    return values


def named_rows(report, column) -> set:
    return {r["row"] for r in report["rejected_rows"] if r["column"] == column}


def backdoor_case(classification, frames, profile, params, kind, share, floor=TRIGGER_FLOOR_ROWS):
    train = frames[0]
    if not trigger_floor(params, len(train), share, floor):
        pytest.skip(f"{share:.0%} of {len(train)} rows is below validate.trigger_min_rows")
    feature = trigger_feature(profile)
    values = trigger_values(profile, feature)
    if kind not in values:
        pytest.skip(f"{feature} has no repeated value in the reference")
    poisoned, victims = backdoor(train, feature, values[kind], share, profile, seed=7)
    report = check(poisoned, profile, params)
    assert not report["passed"], report["trigger_min_p"]
    assert any("backdoor trigger" in p for p in report["problems"]), report["problems"]
    assert len(named_rows(report, feature) & victims) >= len(victims) // 2


@pytest.mark.parametrize("kind", ["rare", "common", "bin-edge"])
@pytest.mark.parametrize("share", [0.02, 0.03])
def test_a_backdoor_on_two_or_three_percent_of_rows_is_rejected(
    classification, frames, profile, params, kind, share
):
    """The hidden-set backdoor: one feature set to an exact value (new, the most common one,
    or a bin edge) on 2-3% of the rows, taken from one class and labelled as another. Too few
    rows for a frequency spike: the rows carrying the value are mostly ones an out-of-fold
    model contradicts, which chance explains with a probability far below trigger_p."""
    backdoor_case(classification, frames, profile, params, kind, share)


@pytest.mark.parametrize("kind", ["rare", "common", "bin-edge"])
def test_a_backdoor_on_one_percent_of_the_default_data_is_rejected(
    classification, frames, profile, params, kind
):
    """1% of the rows (5 of breast_cancer's 455): the floor docs/data-card.md states for the
    default data; other tables need more rows (mixed: 2%, wine: 3-5%)."""
    if "mean_symmetry" not in profile["features"]:
        pytest.skip("the 1% floor is stated for the default data (breast_cancer) only")
    backdoor_case(classification, frames, profile, params, kind, 0.01, floor=5)


def test_a_joint_trigger_on_two_features_is_rejected(classification, frames, profile, params):
    """Two features set together to exact values on 2% of the rows."""
    train = frames[0]
    if not trigger_floor(params, len(train), 0.02):
        pytest.skip(f"2% of {len(train)} rows is below validate.trigger_min_rows")
    first = trigger_feature(profile)
    second = next(n for n in reversed(numeric_features(profile)) if n != first)
    poisoned, victims = backdoor(
        train, first, trigger_values(profile, first)["rare"], 0.02, profile
    )
    poisoned.loc[list(victims), second] = trigger_values(profile, second)["rare"]
    report = check(poisoned, profile, params)
    assert not report["passed"]
    assert (
        len((named_rows(report, first) | named_rows(report, second)) & victims) >= len(victims) // 2
    )


def test_a_rare_category_as_trigger_is_rejected(classification, frames, profile, params):
    """Mixed-type data: the rarest category of a categorical feature on 2% of the rows."""
    names = [n for n, e in profile["features"].items() if e["type"] == "categorical"]
    if not names:
        pytest.skip("the profile has no categorical feature")
    train = frames[0]
    if not trigger_floor(params, len(train), 0.02):
        pytest.skip(f"2% of {len(train)} rows is below validate.trigger_min_rows")
    categories = profile["features"][names[0]]["categories"]
    rarest = min(categories, key=categories.get)
    if categories[rarest] > 0.05:
        pytest.skip(
            f"{names[0]}'s rarest category {rarest!r} holds {categories[rarest]:.0%} of the "
            "reference: a common category carries no trigger 2% of rows can show"
        )
    poisoned, victims = backdoor(train, names[0], 0.0, 0.02, profile)
    poisoned[names[0]] = poisoned[names[0]].astype(object)
    poisoned.loc[list(victims), names[0]] = rarest
    report = check(poisoned, profile, params)
    assert not report["passed"], report["problems"]
    assert len(named_rows(report, names[0]) & victims) >= len(victims) // 2


def test_a_regression_backdoor_with_shifted_targets_is_rejected(task, frames, profile, params):
    """Regression: an exact trigger value on 2% of low-target rows whose target is set to the
    top 5% (target shifts instead of label flips); the targets contradict an out-of-fold ridge."""
    if task != "regression":
        pytest.skip("the target-shift backdoor is the regression variant")
    train = frames[0]
    feature = trigger_feature(profile)
    low = train[train[LABEL] <= train[LABEL].quantile(0.4)]
    victims = low.sample(max(round(0.02 * len(train)), 3), random_state=3).index
    poisoned = train.copy()
    poisoned.loc[victims, feature] = trigger_values(profile, feature)["rare"]
    poisoned.loc[victims, LABEL] = float(train[LABEL].quantile(0.95))
    report = check(poisoned, profile, params)
    assert not report["passed"], report["problems"]
    assert len(named_rows(report, feature) & set(victims)) >= len(victims) // 2


@pytest.mark.parametrize("mode", ["random", "one-class"])
def test_three_percent_of_labels_flipped_on_the_training_split_alone_are_rejected(
    classification, frames, profile, params, mode
):
    """Label flips in the training split only (the test split stays clean): 3% of the rows,
    at random or all taken from one class; the limit is the reference's own issue share at
    this split's size (make profile measures it on subsamples) and a Poisson tail."""
    train = frames[0].copy()
    flips = round(0.03 * len(train))
    if flips < params["validate"]["label_noise_min_rows"] + 2:
        pytest.skip(f"3% of {len(train)} rows is below the label-noise floor (docs/data-card.md)")
    pool = train if mode == "random" else train[train[LABEL] == train[LABEL].mode()[0]]
    victims = pool.sample(flips, random_state=11).index
    train.loc[victims, LABEL] = flip(train.loc[victims, LABEL], profile)
    report = check(train, profile, params)
    assert not report["passed"], (report["label_noise_share"], report["label_noise_limit"])
    assert report["label_noise_share"] >= report["label_noise_limit"]
    assert check(frames[1], profile, params)["passed"], "the clean test split still passes"


def make_root(target: Path, train: pd.DataFrame, test: pd.DataFrame, params: dict) -> Paths:
    """A scratch project: params, reference, prepared data and a dvc.lock recording its md5."""
    (target / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    shutil.copytree(ROOT / "reference", target / "reference")
    paths = Paths(target)
    paths.prepared.mkdir(parents=True)
    train.to_csv(paths.train_csv, index=False)
    test.to_csv(paths.test_csv, index=False)
    outs = [
        {"path": p.relative_to(target).as_posix(), "hash": "md5", "md5": md5_file(p)}
        for p in (paths.test_csv, paths.train_csv)
    ]
    lock = {"schema": "2.0", "stages": {"prepare": {"cmd": "prepare", "outs": outs}}}
    paths.dvc_lock.write_text(yaml.safe_dump(lock), encoding="utf-8")
    return paths


def test_a_prepared_file_changed_after_prepare_is_refused(tmp_path, frames, params):
    paths = make_root(tmp_path, *frames, params)
    assert check_locked_data(paths, params["validate"])["passed"]
    data = bytearray(paths.train_csv.read_bytes())
    data[-3] = ord("0") if data[-3] != ord("0") else ord("1")
    paths.train_csv.write_bytes(bytes(data))
    result = check_locked_data(paths, params["validate"])
    assert not result["passed"]
    assert "changed after 'prepare'" in result["problems"][0]
    paths.dvc_lock.unlink()
    result = check_locked_data(paths, params["validate"])
    assert not result["passed"] and "dvc.lock has no md5" in result["problems"][0]


def test_the_validate_stage_fails_before_train_and_writes_the_rejected_rows(
    tmp_path, frames, profile, params, monkeypatch
):
    train, test = frames
    poison = out_of_range(train.head(10), profile, params, numeric_features(profile)[:1])
    listing = {**params, "validate": every_rejection(params)}
    paths = make_root(tmp_path, pd.concat([train, poison], ignore_index=True), test, listing)
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    assert validate.main() == 1
    report = json.loads(paths.validation_report.read_text())
    assert report["passed"] is False and report["data_lock"]["passed"] is True
    assert report["test"]["passed"] is True and report["train"]["passed"] is False
    entries = report["train"]["rejected_rows"]
    assert entries and all({"row", "column", "rule"} <= set(e) for e in entries)
    assert {e["row"] for e in entries} >= set(range(len(train), len(train) + 10))


def test_the_validate_stage_stops_the_backdoor_before_train(
    tmp_path, frames, profile, params, monkeypatch
):
    train, test = frames
    feature = trigger_feature(profile)
    value = 0.2999 if feature == "mean_symmetry" else float(train[feature].quantile(0.97))
    poisoned, victims = backdoor(train, feature, value, 0.03, profile)
    paths = make_root(tmp_path, poisoned, test, {**params, "validate": every_rejection(params)})
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    assert validate.main() == 1
    report = json.loads(paths.validation_report.read_text())
    assert report["train"]["passed"] is False and report["test"]["passed"] is True
    named = {e["row"] for e in report["train"]["rejected_rows"] if e["column"] == feature}
    assert victims <= named


def test_train_runs_only_after_validate_passed():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert "reports/validation.json" in stages["validate"]["outs"]
    assert "reports/validation.json" in stages["train"]["deps"]


@pytest.mark.integration
def test_dvc_repro_stops_at_validate_and_never_trains_on_poisoned_data(
    tmp_path, paths, params, profile, task
):
    """End to end: the configured raw data plus poisoned copies goes through the real
    `dvc repro` as a raw file of its own (flipped labels, or for a regression out-of-range
    rows); the profile stays the reviewed one."""
    import subprocess

    from conftest import scratch_env, scratch_project
    from {{ cookiecutter.package_name }}.data import configured_frame, target_name

    copy = scratch_project(tmp_path / "project", "keys")
    raw = configured_frame(paths, params["data"])
    copies = raw.sample(15, random_state=4)
    if task == "regression":
        column = numeric_features(profile)[0]
        poison = out_of_range(copies, profile, params, [column])
        rule = "schema"
    else:
        from {{ cookiecutter.package_name }}.data import labels_as_profiled

        poison = copies.assign(**{LABEL: flip(labels_as_profiled(copies[LABEL], profile), profile)})
        rule = "conflicting duplicate"
    poisoned = pd.concat([raw, poison], ignore_index=True)
    poisoned = poisoned.rename(columns={LABEL: target_name(params["data"])})
    (copy / "data" / "raw").mkdir(parents=True, exist_ok=True)
    poisoned.to_csv(copy / "data" / "raw" / "poisoned.csv", index=False)
    changed = yaml.safe_load((copy / "params.yaml").read_text())
    changed["data"]["raw_path"] = "data/raw/poisoned.csv"
    changed["data"].pop("raw_csv", None)
    (copy / "params.yaml").write_text(yaml.safe_dump(changed))
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    env = scratch_env(copy)
    done = subprocess.run(
        ["dvc", "repro"], cwd=copy, env=env, capture_output=True, text=True, check=False
    )
    log = done.stdout + done.stderr
    assert done.returncode != 0, log
    assert "Running stage 'validate'" in log and "Running stage 'train'" not in log
    assert not (copy / "models" / "model.skops").exists()
    report = json.loads((copy / "reports" / "validation.json").read_text())
    assert report["passed"] is False
    assert any(
        r["rule"].startswith(rule)
        for part in ("train", "test")
        for r in report[part]["rejected_rows"]
    )

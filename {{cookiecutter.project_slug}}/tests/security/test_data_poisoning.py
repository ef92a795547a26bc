"""Attacks on the training data: poisoned rows, flipped labels, a file changed after `prepare`.

Each attack is run against the real `validate` checks; the stage must fail (so DVC never
starts `train`) and name the rejected rows (row, column, rule) in reports/validation.json.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }} import validate
from {{ cookiecutter.package_name }}.config import Paths
from {{ cookiecutter.package_name }}.data import LABEL
from {{ cookiecutter.package_name }}.validate import (
    check_locked_data,
    load_profile,
    md5_file,
    validate_frame,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def profile(paths):
    return load_profile(paths)


def check(frame, profile, params):
    return validate_frame(frame, profile, params["validate"])


def rejected(report, rule):
    return {r["row"] for r in report["rejected_rows"] if r["rule"].startswith(rule)}


def test_clean_training_data_passes_every_check(frames, profile, params):
    report = check(frames[0], profile, params)
    assert report["passed"], report["problems"]
    assert report["rejected_rows"] == []
    assert report["conflicting_duplicates"] == 0 and report["conflicting_near_duplicates"] == 0


def test_poisoned_out_of_range_rows_are_rejected_by_row_column_and_rule(frames, profile, params):
    train = frames[0]
    poison = train.head(5).copy()
    poison[train.columns[:3]] *= 50
    report = check(pd.concat([train, poison], ignore_index=True), profile, params)
    assert not report["passed"]
    rows = rejected(report, "schema")
    assert set(range(len(train), len(train) + 5)) <= rows
    entry = next(r for r in report["rejected_rows"] if r["row"] == len(train))
    assert entry["column"] in set(train.columns[:3]) and "in_range" in entry["rule"]


def test_copies_with_flipped_labels_are_rejected_as_conflicting_duplicates(frames, profile, params):
    train = frames[0]
    copies = train.sample(20, random_state=1)
    flipped = copies.assign(**{LABEL: 1 - copies[LABEL]})
    report = check(pd.concat([train, flipped], ignore_index=True), profile, params)
    assert not report["passed"]
    rows = rejected(report, "conflicting duplicate")
    assert set(range(len(train), len(train) + 20)) <= rows
    assert set(copies.index) <= rows, "the originals they contradict are named too"


def test_near_copies_with_flipped_labels_are_rejected(frames, profile, params):
    train = frames[0]
    copies = train.sample(20, random_state=2)
    noise = np.random.default_rng(0).normal(1.0, 0.002, size=(20, train.shape[1] - 1))
    near = copies.drop(columns=[LABEL]) * noise
    near[LABEL] = 1 - copies[LABEL].to_numpy()
    report = check(pd.concat([train, near], ignore_index=True), profile, params)
    assert not report["passed"]
    assert set(range(len(train), len(train) + 20)) <= rejected(report, "conflicting near-duplicate")


def test_labels_flipped_in_place_are_rejected_as_label_noise(frames, profile, params):
    train = frames[0].copy()
    victims = train.sample(frac=0.1, random_state=3).index
    train.loc[victims, LABEL] = 1 - train.loc[victims, LABEL]
    report = check(train, profile, params)
    assert report["label_shift"] < params["validate"]["max_label_shift"], "shift alone misses it"
    assert not report["passed"]
    assert report["label_noise_share"] > params["validate"]["max_label_noise_share"]
    caught = rejected(report, "label disagrees")
    assert len(caught & set(victims)) >= len(victims) // 2


def test_a_flood_of_duplicated_rows_is_rejected(frames, profile, params):
    train = frames[0]
    flood = pd.concat([train, pd.concat([train.head(1)] * 30)], ignore_index=True)
    report = check(flood, profile, params)
    assert not report["passed"]
    assert len(rejected(report, "duplicate of an earlier row")) == 30


def test_the_clean_test_split_passes_every_check_on_its_own(frames, profile, params):
    report = check(frames[1], profile, params)
    assert report["passed"], report["problems"]


def flip(labels: pd.Series, rows: pd.Index) -> pd.Series:
    """Give each of `rows` the next class (any number of classes)."""
    classes = sorted(labels.unique())
    flipped = labels.copy()
    flipped.loc[rows] = [classes[(classes.index(y) + 1) % len(classes)] for y in labels[rows]]
    return flipped


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_five_percent_of_labels_flipped_on_the_training_split_alone_are_rejected(
    frames, profile, params, seed
):
    train = frames[0].copy()
    victims = train.sample(frac=0.05, random_state=seed).index
    train[LABEL] = flip(train[LABEL], victims)
    report = check(train, profile, params)
    assert not report["passed"], report["label_noise_share"]
    assert report["label_noise_share"] > report["label_noise_limit"]
    assert len(rejected(report, "label disagrees") & set(victims)) >= len(victims) // 2


def trigger_feature(profile) -> str:
    """The feature the issue's backdoor used when present, else the last feature."""
    names = list(profile["features"])
    return "mean_symmetry" if "mean_symmetry" in names else names[-1]


def backdoor(train: pd.DataFrame, feature: str, value: float, share: float, seed: int = 0):
    """`share` of the rows, taken from one class, get the trigger value and another label."""
    source, target = sorted(train[LABEL].unique())[:2]
    victims = train[train[LABEL] == source].sample(round(share * len(train)), random_state=seed)
    poisoned = train.copy()
    poisoned.loc[victims.index, feature] = value
    poisoned.loc[victims.index, LABEL] = target
    return poisoned, set(victims.index)


@pytest.mark.parametrize("share", [0.02, 0.03, 0.05])
def test_a_backdoor_trigger_on_an_exact_rare_value_is_rejected(frames, profile, params, share):
    """The red-team attack: one feature set to an exact rare value (mean_symmetry = 0.2999 on
    the bundled data) with the target label on 3% of training rows taken from another class."""
    feature = trigger_feature(profile)
    low, high = profile["features"][feature]["min"], profile["features"][feature]["max"]
    value = 0.2999 if feature == "mean_symmetry" else round(low + 0.97 * (high - low), 4)
    poisoned, victims = backdoor(frames[0], feature, value, share)
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
    poisoned, victims = backdoor(frames[0], feature, high + 0.99 * margin * (high - low), 0.05)
    report = check(poisoned, profile, params)
    assert not rejected(report, "schema"), "inside the margin: the range check lets it pass"
    assert not report["passed"]
    assert victims <= rejected(report, "outside the reference range")


def test_rows_hugging_the_margin_are_rejected(frames, profile, params):
    """Six rows at max + 9.9% of the range: each passes the schema, together they are refused."""
    train = frames[0]
    feature = trigger_feature(profile)
    low, high = profile["features"][feature]["min"], profile["features"][feature]["max"]
    hugging = train.sample(6, random_state=5).assign(**{feature: high + 0.099 * (high - low)})
    report = check(pd.concat([train, hugging], ignore_index=True), profile, params)
    assert not rejected(report, "schema")
    assert not report["passed"]
    assert set(range(len(train), len(train) + 6)) <= rejected(report, "outside the reference")


def test_labels_planted_in_one_region_of_a_feature_are_rejected(frames, profile, params):
    """Every row in the top tenth of one feature gets the same label: the label shares within
    that feature's reference bin move, though the overall label share barely does."""
    train = frames[0].copy()
    feature = next(iter(profile["features"]))
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
    train = frames[0].copy()
    feature = next(iter(profile["features"]))
    low = profile["features"][feature]["min"]
    train[feature] = low + (train[feature] - low) * 0.5
    report = check(train, profile, params)
    assert not rejected(report, "schema")
    assert not report["passed"]
    entry = next(r for r in report["rejected_rows"] if r["rule"].startswith("distribution shift"))
    assert entry["column"] == feature and entry["row"] is None
    assert report["psi"][feature] > params["validate"]["max_psi"]


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
    tmp_path, frames, params, monkeypatch
):
    train, test = frames
    flipped = train.head(10).assign(**{LABEL: 1 - train.head(10)[LABEL]})
    paths = make_root(tmp_path, pd.concat([train, flipped], ignore_index=True), test, params)
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    assert validate.main() == 1
    report = json.loads(paths.validation_report.read_text())
    assert report["passed"] is False and report["data_lock"]["passed"] is True
    assert report["test"]["passed"] is True and report["train"]["passed"] is False
    entries = report["train"]["rejected_rows"]
    assert entries and all({"row", "column", "rule"} <= set(e) for e in entries)
    assert {e["row"] for e in entries} >= set(range(len(train), len(train) + 10))


def test_the_validate_stage_stops_the_backdoor_before_train(tmp_path, frames, params, monkeypatch):
    train, test = frames
    feature = "mean_symmetry" if "mean_symmetry" in train.columns else train.columns[-2]
    value = 0.2999 if feature == "mean_symmetry" else float(train[feature].quantile(0.97))
    poisoned, victims = backdoor(train, feature, value, 0.03)
    paths = make_root(tmp_path, poisoned, test, params)
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
def test_dvc_repro_stops_at_validate_and_never_trains_on_poisoned_data(tmp_path, frames):
    """End to end: a raw CSV with flipped-label copies goes through the real `dvc repro`."""
    import subprocess

    from conftest import scratch_env, scratch_project

    copy = scratch_project(tmp_path / "project", "keys")
    train = pd.concat(frames, ignore_index=True)
    copies = train.sample(15, random_state=4)
    raw = pd.concat([train, copies.assign(**{LABEL: 1 - copies[LABEL]})], ignore_index=True)
    (copy / "raw").mkdir()
    raw.to_csv(copy / "raw" / "records.csv", index=False)
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["data"]["raw_csv"] = "raw/records.csv"
    (copy / "params.yaml").write_text(yaml.safe_dump(params))
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
        r["rule"].startswith("conflicting duplicate")
        for part in ("train", "test")
        for r in report[part]["rejected_rows"]
    )

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

from conftest import flip, numeric_features
from {{ cookiecutter.package_name }} import validate
from {{ cookiecutter.package_name }}.config import Paths
from {{ cookiecutter.package_name }}.data import LABEL
from {{ cookiecutter.package_name }}.validate import (
    allowed_range,
    check_locked_data,
    md5_file,
    validate_frame,
)

ROOT = Path(__file__).resolve().parents[2]


def check(frame, profile, params):
    return validate_frame(frame, profile, params["validate"])


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
    flood = pd.concat([train, pd.concat([train.head(1)] * 30)], ignore_index=True)
    report = check(flood, profile, params)
    assert not report["passed"]
    assert len(rejected(report, "duplicate of an earlier row")) == 30


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
    paths = make_root(tmp_path, pd.concat([train, poison], ignore_index=True), test, params)
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    assert validate.main() == 1
    report = json.loads(paths.validation_report.read_text())
    assert report["passed"] is False and report["data_lock"]["passed"] is True
    assert report["test"]["passed"] is True and report["train"]["passed"] is False
    entries = report["train"]["rejected_rows"]
    assert entries and all({"row", "column", "rule"} <= set(e) for e in entries)
    assert {e["row"] for e in entries} >= set(range(len(train), len(train) + 10))


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

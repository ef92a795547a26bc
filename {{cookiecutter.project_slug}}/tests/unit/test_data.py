import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.data import (
    LABEL,
    LOADERS,
    DataError,
    build_profile,
    infer_type,
    load_dataset,
    minimise,
    read_table,
    snake_case,
    split,
    standard_frame,
)


def test_snake_case_makes_safe_column_names():
    assert snake_case("mean radius") == "mean_radius"
    assert snake_case("OD280/OD315 of diluted wines") == "od280_od315_of_diluted_wines"


@pytest.mark.parametrize("name", list(LOADERS))
def test_every_bundled_example_has_a_label_and_a_profile(name):
    frame = load_dataset(name)
    assert LABEL in frame.columns and len(frame) > 100
    profile = build_profile(frame, source=name)
    assert set(profile["features"]) == set(frame.columns) - {LABEL}
    assert profile["target"]["task"] in ("binary", "multiclass", "regression")


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="data.dataset"):
        load_dataset("no_such_data")


def test_types_follow_the_values():
    assert infer_type("a", pd.Series([1.5, 2.0, None])) == "numeric"
    assert infer_type("b", pd.Series([1, 2, 3])) == "integer"
    assert infer_type("c", pd.Series([True, False, None], dtype=object)) == "boolean"
    assert infer_type("d", pd.Series(["yes", "no", "yes"])) == "boolean"
    assert infer_type("e", pd.Series(["red", "blue", None])) == "categorical"
    with pytest.raises(DataError, match="mixes numbers and text"):
        infer_type("f", pd.Series(["1.5", "high", "2"]))
    with pytest.raises(DataError, match="entirely missing"):
        infer_type("g", pd.Series([None, None], dtype=object))


def test_natural_bounds_and_missing_shares_are_recorded():
    frame = pd.DataFrame(
        {"size": [0.0, 2.5, None, 4.0], "delta": [-1.0, 1.0, 2.0, 3.0], LABEL: ["a", "b", "a", "b"]}
    )
    profile = build_profile(frame)
    assert profile["features"]["size"]["natural_min"] == 0.0
    assert "natural_min" not in profile["features"]["delta"]
    assert profile["features"]["size"]["missing_share"] == 0.25
    assert profile["target"] == {
        "name": LABEL,
        "task": "binary",
        "label_type": "string",
        "classes": {"a": 0.5, "b": 0.5},
    }


def test_bad_targets_are_refused_with_one_line():
    one_class = pd.DataFrame({"x": [1.0, 2.0], LABEL: ["a", "a"]})
    with pytest.raises(DataError, match="single class"):
        build_profile(one_class)
    text_target = pd.DataFrame({"x": [1.0, 2.0], LABEL: ["a", "b"]})
    with pytest.raises(DataError, match="not numeric"):
        build_profile(text_target, task="regression")
    with pytest.raises(DataError, match="data.target"):
        standard_frame(pd.DataFrame({"x": [1.0]}), {"target": "outcome"})


def test_csv_with_bom_and_semicolons_and_parquet_are_read(tmp_path):
    frame = pd.DataFrame({"x": [1.5, 2.5], "colour": ["red", "blue"], LABEL: [0, 1]})
    csv = tmp_path / "data.csv"
    csv.write_bytes(b"\xef\xbb\xbf" + frame.to_csv(index=False, sep=";").encode())
    pd.testing.assert_frame_equal(read_table(csv, "data.csv"), frame)
    parquet = tmp_path / "data.parquet"
    frame.to_parquet(parquet)
    pd.testing.assert_frame_equal(read_table(parquet, "data.parquet"), frame)
    for name, content in (("empty.csv", b""), ("data.xlsx", b"PK")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError):
            read_table(tmp_path / name, name)


def test_minimise_keeps_the_profile_features_and_names_the_rest(frames, profile):
    frame = pd.concat(frames, ignore_index=True).assign(extra_id=range(sum(map(len, frames))))
    kept, dropped = minimise(frame, profile)
    assert list(kept.columns) == [*profile["features"], LABEL]
    assert dropped == ["extra_id"]
    lacking = frame.drop(columns=[next(iter(profile["features"]))])
    with pytest.raises(DataError, match="make profile"):
        minimise(lacking, profile)


def test_split_is_reproducible_and_stratified_for_classification(frames, params, task):
    frame = pd.concat(frames, ignore_index=True)
    size, seed = params["data"]["test_size"], params["data"]["seed"] + 1
    first_train, first_test = split(frame, size, seed, task != "regression")
    second_train, _ = split(frame, size, seed, task != "regression")
    assert first_train.equals(second_train)
    assert len(first_train) + len(first_test) == len(frame)
    if task != "regression":
        expected = frame[LABEL].value_counts(normalize=True)
        got = first_test[LABEL].value_counts(normalize=True)
        assert (got.reindex(expected.index, fill_value=0) - expected).abs().max() < 0.05


def test_the_committed_profile_matches_the_configured_data(paths, params, profile):
    from {{ cookiecutter.package_name }}.data import configured_frame, target_name

    rebuilt = build_profile(
        configured_frame(paths, params["data"]),
        params["data"].get("task") or "",
        target=target_name(params["data"]),
    )
    assert rebuilt["features"].keys() == profile["features"].keys(), (
        "reference/data_profile.json was built from other data: run make profile and review it"
    )
    assert rebuilt["target"]["task"] == profile["target"]["task"]
    # Types must agree; ranges and shares may have been widened by hand in review.
    for name, entry in profile["features"].items():
        assert rebuilt["features"][name]["type"] == entry["type"], name

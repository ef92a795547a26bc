import pytest

from {{ cookiecutter.package_name }}.data import LABEL, load_dataset, snake_case, split


def test_snake_case_makes_safe_column_names():
    assert snake_case("mean radius") == "mean_radius"
    assert snake_case("OD280/OD315 of diluted wines") == "od280_od315_of_diluted_wines"


def test_load_dataset_has_float_features_and_a_label(params):
    frame = load_dataset(params["data"]["dataset"])
    assert LABEL in frame.columns
    features = frame.drop(columns=[LABEL])
    assert all(str(dtype) == "float64" for dtype in features.dtypes)
    assert frame.notna().all().all()


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("no_such_data")


def test_split_is_stratified_and_reproducible(params):
    frame = load_dataset(params["data"]["dataset"])
    first_train, first_test = split(frame, 0.2, 7)
    second_train, _ = split(frame, 0.2, 7)
    assert first_train.equals(second_train)
    assert len(first_train) + len(first_test) == len(frame)
    share = frame[LABEL].mean()
    assert abs(first_test[LABEL].mean() - share) < 0.05

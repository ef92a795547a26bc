import json

import pytest

from {{ cookiecutter.package_name }}.data import LABEL
from {{ cookiecutter.package_name }}.evaluate import METRIC_KEYS, score, verdict
from {{ cookiecutter.package_name }}.model_io import ModelIntegrityError, load_model, save_model
from {{ cookiecutter.package_name }}.tracking import display_uri, flat_params
from {{ cookiecutter.package_name }}.train import CLASSIFIERS, REGRESSORS, fit, model_name


@pytest.fixture(scope="module")
def model(frames, params, profile):
    return fit(frames[0], params["train"], profile)


def test_model_learns_the_task_above_the_configured_threshold(model, frames, params, task):
    result, _ = score(model, frames[1], task)
    assert set(result) == set(METRIC_KEYS[task])
    assert verdict(result, task, params) == [], result


def test_every_model_choice_of_the_task_fits_saves_and_loads(
    frames, params, profile, task, tmp_path
):
    choices = REGRESSORS if task == "regression" else CLASSIFIERS
    small = frames[0].head(200)
    quick = {  # small versions of the configured models: this checks fitting and saving
        "random_forest": {**params["train"].get("random_forest", {}), "n_estimators": 5},
        "hist_gradient_boosting": {
            **params["train"].get("hist_gradient_boosting", {}),
            "max_iter": 5,
        },
    }
    for name in choices:
        fitted = fit(small, {**params["train"], **quick, "model": name}, profile)
        path, manifest = tmp_path / f"{name}.skops", tmp_path / f"{name}.json"
        save_model(fitted, path, manifest)
        features = frames[1].drop(columns=[LABEL])
        assert (load_model(path, manifest).predict(features) == fitted.predict(features)).all()
    wrong = "logistic" if task == "regression" else "ridge"
    if wrong == "ridge":
        with pytest.raises(ValueError, match="train.model"):
            model_name({"model": wrong}, task)


def test_saved_model_round_trips_through_skops(model, frames, tmp_path):
    path, manifest = tmp_path / "model.skops", tmp_path / "model.json"
    record = save_model(model, path, manifest, run_id="r1")
    assert json.loads(manifest.read_text())["sha256"] == record["sha256"]
    loaded = load_model(path, manifest)
    features = frames[1].drop(columns=[LABEL])
    assert (loaded.predict(features) == model.predict(features)).all()


def test_a_changed_byte_is_refused(model, tmp_path):
    path, manifest = tmp_path / "model.skops", tmp_path / "model.json"
    save_model(model, path, manifest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="refusing to load"):
        load_model(path, manifest)


def test_a_missing_manifest_is_refused(model, tmp_path):
    path = tmp_path / "model.skops"
    save_model(model, path, tmp_path / "model.json")
    with pytest.raises(ModelIntegrityError, match="no manifest"):
        load_model(path, tmp_path / "other.json")


def test_flat_params_names_nested_keys():
    assert flat_params({"a": {"b": 1}, "c": 2}) == {"a.b": 1, "c": 2}


def test_display_uri_hides_credentials():
    assert display_uri("http://user:secret@mlflow.example:5000/x") == "http://mlflow.example:5000/x"
    assert display_uri("sqlite:///tmp/mlflow.db") == "sqlite:///tmp/mlflow.db"

import json

import pytest

from {{ cookiecutter.package_name }}.data import LABEL
from {{ cookiecutter.package_name }}.model_io import ModelIntegrityError, load_model, save_model
from {{ cookiecutter.package_name }}.tracking import display_uri, flat_params
from {{ cookiecutter.package_name }}.train import fit


@pytest.fixture(scope="module")
def model(frames, params):
    return fit(frames[0], params["train"])


def test_model_learns_the_task(model, frames):
    test = frames[1]
    assert model.score(test.drop(columns=[LABEL]), test[LABEL]) > 0.9


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

"""Attacks on the model file: tampering, swapped signatures, a foreign key, pickles, odd types.

Every load goes through model_io.load_model, which checks the model-signing signature, then
the SHA-256 manifest, then the types skops would build; each attack must be refused.
"""

from __future__ import annotations

import json
import logging
import pickle  # nosec B403 - the test plants a pickle to show it is refused, never loads one
import stat

import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from {{ cookiecutter.package_name }} import signing
from {{ cookiecutter.package_name }}.data import LABEL
from {{ cookiecutter.package_name }}.model_io import ModelIntegrityError, load_model, save_model
from {{ cookiecutter.package_name }}.train import build_model, fit


@pytest.fixture(scope="module")
def model(frames, params):
    return fit(frames[0], params["train"])


@pytest.fixture
def keys(tmp_path, monkeypatch):
    folder = tmp_path / "keys"
    signing.generate_keys(folder)
    monkeypatch.setenv(signing.KEY_DIR_ENV, str(folder))
    return signing.find_keys()


@pytest.fixture
def saved(model, tmp_path, keys):
    path, manifest = tmp_path / "models" / "model.skops", tmp_path / "models" / "model.json"
    save_model(model, path, manifest)
    return path, manifest


def flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def forge_manifest(path, manifest):
    """What an attacker who can write the models folder does: make the digest match again."""
    from {{ cookiecutter.package_name }}.model_io import sha256_file

    record = json.loads(manifest.read_text())
    record["sha256"] = sha256_file(path)
    manifest.write_text(json.dumps(record))


def test_a_signed_model_verifies_and_loads(saved, frames, model):
    path, manifest = saved
    assert signing.signature_path(path).is_file()
    assert json.loads(manifest.read_text())["signature"] == "model.sig"
    features = frames[1].drop(columns=[LABEL])
    assert (load_model(path, manifest).predict(features) == model.predict(features)).all()


def test_a_one_byte_change_is_refused(saved):
    path, manifest = saved
    flip_byte(path)
    with pytest.raises(ModelIntegrityError, match="failed signature verification"):
        load_model(path, manifest)


def test_a_one_byte_change_with_a_forged_manifest_is_still_refused(saved):
    path, manifest = saved
    flip_byte(path)
    forge_manifest(path, manifest)
    with pytest.raises(ModelIntegrityError, match="refusing to load"):
        load_model(path, manifest)


def test_a_signature_swapped_in_from_another_model_is_refused(saved, frames, params, tmp_path):
    path, manifest = saved
    other = tmp_path / "other" / "model.skops"
    save_model(fit(frames[0], {**params["train"], "C": 0.01}), other, other.with_suffix(".json"))
    signing.signature_path(path).write_bytes(signing.signature_path(other).read_bytes())
    with pytest.raises(ModelIntegrityError, match="failed signature verification"):
        load_model(path, manifest)
    signing.signature_path(path).write_bytes(b'{"unsigned": true}')
    with pytest.raises(ModelIntegrityError, match="unsigned"):
        load_model(path, manifest)


def test_a_model_re_signed_with_a_foreign_key_is_refused(saved, tmp_path):
    path, manifest = saved
    flip_byte(path)
    forge_manifest(path, manifest)
    private, public, _ = signing.generate_keys(tmp_path / "attacker")
    signing.sign(path, signing.Keys(tmp_path / "attacker", private, public))
    with pytest.raises(ModelIntegrityError, match="Key mismatch"):
        load_model(path, manifest)


def test_a_deleted_signature_is_refused(saved):
    path, manifest = saved
    signing.signature_path(path).unlink()
    with pytest.raises(ModelIntegrityError, match="no signature"):
        load_model(path, manifest)


def test_a_pickle_swapped_in_is_refused_before_it_is_parsed(saved, model):
    path, manifest = saved
    path.write_bytes(pickle.dumps(model))
    forge_manifest(path, manifest)
    with pytest.raises(ModelIntegrityError, match="failed signature verification"):
        load_model(path, manifest)


def double(values):
    return values * 2


def test_a_signed_model_holding_an_untrusted_type_is_refused(tmp_path, keys, frames):
    train = frames[0]
    custom = make_pipeline(
        FunctionTransformer(double), build_model({"C": 1.0, "max_iter": 200, "seed": 0})
    )
    custom.fit(train.drop(columns=[LABEL]), train[LABEL])
    path, manifest = tmp_path / "custom.skops", tmp_path / "custom.json"
    save_model(custom, path, manifest)
    with pytest.raises(ModelIntegrityError, match="not trusted"):
        load_model(path, manifest)


def test_without_keys_the_digest_manifest_guards_the_model_and_says_so(
    model, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv(signing.KEY_DIR_ENV, str(tmp_path / "no-keys"))
    path, manifest = tmp_path / "model.skops", tmp_path / "model.json"
    with caplog.at_level(logging.WARNING):
        record = save_model(model, path, manifest)
        assert record["signature"].startswith("none")
        assert signing.is_unsigned(signing.signature_path(path))
        load_model(path, manifest)
    assert "SHA-256 manifest only" in caplog.text
    flip_byte(path)
    with pytest.raises(ModelIntegrityError, match="its manifest says"):
        load_model(path, manifest)


def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path):
    private, public, new = signing.generate_keys(tmp_path / "k")
    assert new and stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o700
    assert signing.generate_keys(tmp_path / "k") == (private, public, False)
    assert b"PRIVATE KEY" in private.read_bytes() and b"PUBLIC KEY" in public.read_bytes()

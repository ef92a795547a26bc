"""Attacks on the model file: tampering, swapped signatures, a foreign or missing key, a
swapped key folder, rollback to an older signed model, pickles, odd types.

Every load goes through model_io.load_model (Predictor and the service use it), which checks
the model-signing signature with the pinned key, then the SHA-256 manifest, then the digest
dvc.lock records for the pipeline's model, then the types skops would build; each attack must
be refused with one whole line that says what is wrong.
"""

from __future__ import annotations

import json
import logging
import pickle  # nosec B403 - the test plants a pickle to show it is refused, never loads one
import re
import shutil
import stat

import pytest
import yaml
from serve_support import (
    copy_root,
    lock_model,
    make_root,
    other_model,
    rows_of,
    save_like_the_pipeline,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from {{ cookiecutter.package_name }} import signing
from {{ cookiecutter.package_name }}.data import LABEL, feature_types, task_of
from {{ cookiecutter.package_name }}.inference import Predictor
from {{ cookiecutter.package_name }}.model_io import ModelIntegrityError, load_model, save_model
from {{ cookiecutter.package_name }}.train import build_model, fit

HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
HEX32 = re.compile(r"\b[0-9a-f]{32}\b")


@pytest.fixture(scope="module")
def model(frames, params, profile):
    return fit(frames[0], params["train"], profile)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, frames, params):
    """A project root as make setup + make pipeline leave it: pinned key pair, signed model,
    dvc.lock naming the model (made once; each test attacks a copy of its own)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(signing.KEY_DIR_ENV, raising=False)
        patch.delenv("PROJECT_ROOT", raising=False)
        return make_root(tmp_path_factory.mktemp("trained"), frames[0], params)


@pytest.fixture
def root(tmp_path, trained, monkeypatch):
    """A copy of `trained` for this test."""
    monkeypatch.delenv(signing.KEY_DIR_ENV, raising=False)
    monkeypatch.delenv("PROJECT_ROOT", raising=False)
    return copy_root(trained, tmp_path / "project")


@pytest.fixture
def saved(root):
    return root.model, root.model_manifest


def refused(root, match):
    """The attack is refused by load_model and by Predictor (what the service builds)."""
    with pytest.raises(ModelIntegrityError, match=match) as caught:
        load_model(root.model, root.model_manifest)
    message = str(caught.value)
    assert "\n" not in message, message
    with pytest.raises(ModelIntegrityError, match=match):
        Predictor(root)
    return message


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


def test_a_signed_model_verifies_and_loads(root, frames, model):
    assert signing.signature_path(root.model).is_file()
    assert json.loads(root.model_manifest.read_text())["signature"] == "model.sig"
    features = frames[1].drop(columns=[LABEL])
    loaded = load_model(root.model, root.model_manifest)
    assert (loaded.predict(features) == model.predict(features)).all()
    predictor = Predictor(root)
    count = min(2, predictor.max_rows)
    assert len(predictor.predict(rows_of(frames[1], count))) == count


def test_a_one_byte_change_is_refused(root):
    flip_byte(root.model)
    refused(root, "failed signature verification")


def test_a_one_byte_change_with_a_forged_manifest_is_still_refused(root):
    flip_byte(root.model)
    forge_manifest(root.model, root.model_manifest)
    refused(root, "refusing to load")


def test_integrity_messages_are_whole_lines_naming_the_file_and_both_digests(root):
    """Not a cut-off repr ('Expected 'Digest(algorithm=...'): one line, file and digests."""
    signed = json.loads(root.model_manifest.read_text())["sha256"]
    flip_byte(root.model)
    forge_manifest(root.model, root.model_manifest)
    message = refused(root, "the signature is for SHA-256")
    assert str(root.model) in message and signed in message
    assert len(set(HEX64.findall(message))) == 2, message
    assert "Digest(" not in message and message.endswith(")")


def test_a_signature_swapped_in_from_another_model_is_refused(
    root, frames, params, profile, tmp_path
):
    other = tmp_path / "other" / "model.skops"
    save_model(other_model(frames[0], params, profile), other, other.with_suffix(".json"))
    signing.signature_path(root.model).write_bytes(signing.signature_path(other).read_bytes())
    refused(root, "failed signature verification")
    signing.signature_path(root.model).write_bytes(b'{"unsigned": true}')
    refused(root, "unsigned")


def test_a_model_re_signed_with_a_foreign_key_is_refused(root, tmp_path):
    flip_byte(root.model)
    forge_manifest(root.model, root.model_manifest)
    private, public, _ = signing.generate_keys(tmp_path / "attacker")
    signing.sign(root.model, signing.Keys(tmp_path / "attacker", private, public))
    lock_model(root)
    refused(root, "Key mismatch: signed with key")


def test_a_swapped_key_folder_that_re_signed_the_model_is_refused(
    root, frames, params, profile, tmp_path, monkeypatch
):
    """The attacker replaces keys/ with a pair of their own, signs a model of their own with
    it and fixes manifest and even dvc.lock: the pinned fingerprint refuses their key."""
    shutil.rmtree(root.root / "keys")
    private, public, _ = signing.generate_keys(root.root / "keys")
    attacker = signing.Keys(root.root / "keys", private, public)
    import skops.io as sio

    sio.dump(other_model(frames[0], params, profile), root.model)
    signing.sign(root.model, attacker)
    forge_manifest(root.model, root.model_manifest)
    lock_model(root)
    message = refused(root, "pins")
    assert signing.fingerprint(public) in message
    assert signing.read_pin(root.root) in message
    # the same pair reached through MODEL_SIGNING_KEY_DIR
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(root.root / "keys", elsewhere)
    monkeypatch.setenv(signing.KEY_DIR_ENV, str(elsewhere))
    refused(root, "pins")


def test_a_deleted_public_key_with_a_replaced_model_and_manifest_is_refused(
    root, frames, params, profile
):
    """No key to check with is a refusal, not a warning and a digest-only load."""
    (root.root / "keys" / signing.PUBLIC_NAME).unlink()
    (root.root / "keys" / signing.PRIVATE_NAME).unlink()
    import skops.io as sio

    sio.dump(other_model(frames[0], params, profile), root.model)
    forge_manifest(root.model, root.model_manifest)
    lock_model(root)
    message = refused(root, "no public key")
    assert "make setup" in message


def test_a_key_folder_pointing_at_an_empty_folder_is_refused(root, tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv(signing.KEY_DIR_ENV, str(tmp_path / "empty"))
    message = refused(root, "no public key")
    assert signing.KEY_DIR_ENV in message


def test_without_a_pinned_fingerprint_no_key_is_trusted(root):
    signing.pin_path(root.root).unlink()
    refused(root, "no pinned signing key")


def test_an_older_validly_signed_model_put_back_is_refused_naming_both_digests(
    root, frames, params, profile, tmp_path
):
    """Rollback: the previous run's model, manifest and signature, all valid, are restored."""
    old = tmp_path / "previous-run"
    shutil.copytree(root.models, old)
    # the current pipeline state
    save_like_the_pipeline(other_model(frames[0], params, profile), root)
    for name in ("model.skops", "model.json", "model.sig"):
        shutil.copy2(old / name, root.models / name)
    message = refused(root, "dvc.lock records md5")
    assert len(set(HEX32.findall(message))) == 2, message
    assert "dvc checkout" in message


def test_a_model_that_dvc_lock_does_not_name_is_refused(root):
    (root.root / "dvc.lock").unlink()
    refused(root, "dvc.lock records no digest")


def test_a_deleted_signature_is_refused(root):
    signing.signature_path(root.model).unlink()
    refused(root, "no signature")


def test_a_pickle_swapped_in_is_refused_before_it_is_parsed(root, model):
    root.model.write_bytes(pickle.dumps(model))
    forge_manifest(root.model, root.model_manifest)
    refused(root, "failed signature verification")


def unchanged(values):
    return values


def test_a_signed_model_holding_an_untrusted_type_is_refused(root, frames, params, profile):
    train = frames[0]
    custom = make_pipeline(
        FunctionTransformer(unchanged),
        build_model(params["train"], feature_types(profile), task_of(profile)),
    )
    custom.fit(train.drop(columns=[LABEL]), train[LABEL])
    save_like_the_pipeline(custom, root)
    refused(root, "not trusted")


def test_training_refuses_to_sign_without_the_pinned_private_key(root, model, tmp_path):
    shutil.rmtree(root.root / "keys")
    with pytest.raises(ModelIntegrityError, match="no private signing key"):
        save_model(model, root.model, root.model_manifest)
    signing.generate_keys(root.root / "keys")  # a pair, but not the pinned one
    with pytest.raises(ModelIntegrityError, match="is not the one"):
        save_model(model, root.model, root.model_manifest)


def test_require_signature_false_is_explicit_loud_and_keeps_the_other_checks(root, model, caplog):
    params = yaml.safe_load(root.params.read_text())
    params["model"] = {"require_signature": False}
    root.params.write_text(yaml.safe_dump(params))
    shutil.rmtree(root.root / "keys")
    with caplog.at_level(logging.WARNING):
        record = save_like_the_pipeline(model, root)
        assert record["signature"].startswith("none")
        assert signing.is_unsigned(signing.signature_path(root.model))
        Predictor(root)
    assert "require_signature is false" in caplog.text and "NOT" in caplog.text
    flip_byte(root.model)
    refused(root, "its manifest says")
    params["model"] = {"require_signature": "no"}
    root.params.write_text(yaml.safe_dump(params))
    refused(root, "write true")


def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path):
    private, public, new = signing.generate_keys(tmp_path / "k")
    assert new and stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o700
    assert signing.generate_keys(tmp_path / "k") == (private, public, False)
    assert b"PRIVATE KEY" in private.read_bytes() and b"PUBLIC KEY" in public.read_bytes()


def test_keygen_pins_a_new_key_and_never_replaces_a_pin(tmp_path, monkeypatch, capsys):
    (tmp_path / "params.yaml").write_text("{}\n")
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    monkeypatch.delenv(signing.KEY_DIR_ENV, raising=False)
    monkeypatch.delenv(signing.EPHEMERAL_ENV, raising=False)
    assert signing.main() == 0
    pin = signing.read_pin(tmp_path)
    assert pin == signing.fingerprint(tmp_path / "keys" / signing.PUBLIC_NAME)
    assert "commit it" in capsys.readouterr().out
    assert signing.main() == 0 and signing.read_pin(tmp_path) == pin  # idempotent
    shutil.rmtree(tmp_path / "keys")  # a fresh clone: the pin is committed, the key is not
    assert signing.main() == 1
    assert "holds no key" in capsys.readouterr().out
    assert signing.read_pin(tmp_path) == pin and not (tmp_path / "keys").exists()
    signing.generate_keys(tmp_path / "keys")  # a swapped pair never rewrites the pin
    assert signing.main() == 1 and signing.read_pin(tmp_path) == pin
    shutil.rmtree(tmp_path / "keys")
    monkeypatch.setenv(signing.EPHEMERAL_ENV, "1")  # CI: a throw-away pair, pinned locally
    assert signing.main() == 0
    assert signing.read_pin(tmp_path) == signing.fingerprint(
        tmp_path / "keys" / signing.PUBLIC_NAME
    )

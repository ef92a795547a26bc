"""Save and load models without pickle; refuse any file whose signature or digest is wrong.

Models are written with skops, whose loader builds objects only from an allow-list of
types. Beside the model: a manifest with its SHA-256 (model.json) and a model-signing
signature (model.sig, see signing.py). `load_model` checks the signature, then the digest,
then the types, before it builds a single object; any mismatch is refused with a clear error.
Without a configured public key the signature cannot be checked: the load then relies on the
digest manifest alone and logs a warning saying so.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import skops.io as sio

from . import signing

# Types beyond skops' defaults that this project's models may contain: one list, kept beside
# the model choices in train.py. Keep it short: every entry is a type you trust to be rebuilt
# from a file.
from .train import TRUSTED_TYPES  # noqa: E402

log = logging.getLogger(__name__)


class ModelIntegrityError(RuntimeError):
    """The model file does not match its signature or manifest, or holds untrusted types."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model(model: Any, path: Path, manifest: Path, **extra: Any) -> dict[str, Any]:
    """Write the model with skops, sign it, and write its manifest (size, SHA-256, facts).

    Without a private key the signature file says 'unsigned' and the manifest records it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(model, path)
    keys = signing.find_keys()
    signature = signing.sign(path, keys)
    if keys.private is None:
        log.warning(
            "no signing key (%s): %s is protected by its SHA-256 manifest only; "
            "run 'make setup' to create a key pair",
            keys.describe(),
            path.name,
        )
    record = {
        "file": path.name,
        "format": "skops",
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "signature": signature.name if keys.private else "none (unsigned: no private key)",
        **extra,
    }
    manifest.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return record


def verify_signature(path: Path, data: bytes | None = None) -> bool:
    """Check the model's signature when a public key is configured; False when none is.

    The bytes (`data`, or the file read once) are checked from a private copy, so the bytes
    that pass are the bytes the caller loads, even if another process swaps the file.
    """
    keys = signing.find_keys()
    if keys.public is None:
        log.warning(
            "no public key (%s): the signature of %s is not checked; relying on the "
            "SHA-256 manifest only (run 'make setup' to create a key pair)",
            keys.describe(),
            Path(path).name,
        )
        return False
    data = Path(path).read_bytes() if data is None else data
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / Path(path).name
        copy.write_bytes(data)
        try:
            signing.verify(copy, keys, signature=signing.signature_path(path))
        except signing.SignatureError as error:
            raise ModelIntegrityError(str(error).replace(str(copy), str(path))) from error
    return True


def load_model(path: Path, manifest: Path) -> Any:
    """Verify signature and digest, then load with skops trusting only its defaults plus
    TRUSTED_TYPES. The file is read once: every check and the load use the same bytes."""
    data = Path(path).read_bytes()
    verify_signature(path, data)
    if not manifest.is_file():
        raise ModelIntegrityError(f"no manifest {manifest}: refusing to load {path} unverified")
    record = json.loads(manifest.read_text(encoding="utf-8"))
    actual = hashlib.sha256(data).hexdigest()
    if not hmac.compare_digest(actual, str(record.get("sha256", ""))):
        raise ModelIntegrityError(
            f"{path} has SHA-256 {actual[:16]}..., its manifest says "
            f"{str(record.get('sha256'))[:16]}...: the file was changed; refusing to load it "
            "(restore it with 'dvc checkout' or retrain with 'make pipeline')"
        )
    try:
        untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in TRUSTED_TYPES]
    except (zipfile.BadZipFile, KeyError, ValueError) as error:  # not a skops archive at all
        raise ModelIntegrityError(f"{path} is not a skops model file ({error})") from error
    if untrusted:
        raise ModelIntegrityError(
            f"{path} holds types that are not trusted: {', '.join(untrusted)}"
        )
    return sio.loads(data, trusted=TRUSTED_TYPES)

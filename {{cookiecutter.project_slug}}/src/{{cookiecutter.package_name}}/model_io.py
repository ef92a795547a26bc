"""Save and load models without pickle, and refuse any file whose digest changed.

Models are written with skops, whose loader builds objects only from an allow-list of
types; a manifest beside the model records its SHA-256. `load_model` checks the digest
before it parses a byte, so a tampered or swapped file is refused with a clear error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import skops.io as sio

# Types beyond skops' defaults that this project's models may contain. Keep it short:
# every entry is a type you trust to be rebuilt from a file.
TRUSTED_TYPES: list[str] = []


class ModelIntegrityError(RuntimeError):
    """The model file does not match its manifest, or holds types we do not trust."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model(model: Any, path: Path, manifest: Path, **extra: Any) -> dict[str, Any]:
    """Write the model with skops and its manifest (name, size, SHA-256, extra facts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(model, path)
    record = {
        "file": path.name,
        "format": "skops",
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        **extra,
    }
    manifest.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return record


def verify_model(path: Path, manifest: Path) -> dict[str, Any]:
    """Return the manifest if the file's digest matches it; raise ModelIntegrityError if not."""
    if not manifest.is_file():
        raise ModelIntegrityError(f"no manifest {manifest}: refusing to load {path} unverified")
    record = json.loads(manifest.read_text(encoding="utf-8"))
    actual = sha256_file(path)
    if not hmac.compare_digest(actual, str(record.get("sha256", ""))):
        raise ModelIntegrityError(
            f"{path} has SHA-256 {actual[:16]}..., its manifest says "
            f"{str(record.get('sha256'))[:16]}...: the file was changed; refusing to load it "
            "(restore it with 'dvc checkout' or retrain with 'make pipeline')"
        )
    return record


def load_model(path: Path, manifest: Path) -> Any:
    """Verify, then load with skops trusting only its defaults plus TRUSTED_TYPES."""
    verify_model(path, manifest)
    untrusted = [t for t in sio.get_untrusted_types(file=path) if t not in TRUSTED_TYPES]
    if untrusted:
        raise ModelIntegrityError(f"{path} holds types that are not trusted: {', '.join(untrusted)}")
    return sio.load(path, trusted=TRUSTED_TYPES)

"""Save and load models without pickle; refuse any file that is not the signed, pinned one.

Models are written with skops, whose loader builds objects only from an allow-list of
types. Beside the model: a manifest with its SHA-256 (model.json) and a model-signing
signature (model.sig, see signing.py). `load_model` reads the file once and, before it
builds a single object, checks in order:

1. the signature, with the public key pinned by reference/model-signing-key.sha256 (no key,
   no pin or a foreign key: refused);
2. the SHA-256 manifest;
3. for the pipeline's model (models/model.skops of a project), the digest dvc.lock records
   for the current pipeline state: an older model, validly signed, is refused (rollback);
4. the types skops would build.

`model.require_signature: false` in params.yaml skips step 1 for local experiments, with a
warning on every load; `make controls` reports the control as weakened.
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
import yaml

from . import signing
from .config import locked_md5

# Types beyond skops' defaults that this project's models may contain: load_model and MLflow's
# copy of the model trust exactly these, never "whatever the file holds". A new model choice of
# train.py adds its types here, reviewed (the models gate reads this literal list too).
TRUSTED_TYPES: list[str] = [
    "numpy.dtype",  # SimpleImputer records the dtype it was fitted on
    "numpy.median",  # train.median_imputer: SimpleImputer's strategy (a function, no state)
    "sklearn.tree._tree.Tree",  # random_forest
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # hist_gradient_boosting
]
MODEL_RELPATH = "models/model.skops"  # the pipeline's model (config.Paths.model)


log = logging.getLogger(__name__)


class ModelIntegrityError(RuntimeError):
    """The model file does not match its signature or manifest, or holds untrusted types."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def project_of(path: Path) -> Path:
    """The project a model file belongs to: the folder above models/ when it holds
    params.yaml, else the current project (PROJECT_ROOT or the folders around cwd)."""
    folder = Path(path).resolve().parent.parent
    if (folder / "params.yaml").is_file():
        return folder
    return signing.project_root()


def require_signature(root: Path) -> bool:
    """params.yaml `model.require_signature` (default true). Only an explicit false turns the
    signature check off; anything but a boolean is refused."""
    params = root / "params.yaml"
    data = yaml.safe_load(params.read_text(encoding="utf-8")) if params.is_file() else None
    setting = ((data or {}).get("model") or {}).get("require_signature", True)
    if not isinstance(setting, bool):
        raise ModelIntegrityError(
            f"params.yaml model.require_signature is {setting!r}: write true (default) or false"
        )
    return setting


def save_model(model: Any, path: Path, manifest: Path, **extra: Any) -> dict[str, Any]:
    """Write the model with skops, sign it with the pinned key, and write its manifest
    (size, SHA-256, facts). Without a usable key this refuses before writing anything,
    unless params.yaml sets model.require_signature: false (then model.sig says 'unsigned')."""
    root = project_of(path)
    keys = signing.find_keys(root)
    required = require_signature(root)
    try:
        signing.check_private_key(keys, root)
        usable = True
    except signing.SignatureError as error:
        if required:
            raise ModelIntegrityError(str(error)) from error
        usable = False
        log.warning("model.require_signature is false: %s is saved unsigned (%s)", path.name, error)
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(model, path)
    if usable:
        signature = signing.sign(path, keys)
    else:
        signature = signing.write_unsigned(path, "model.require_signature is false")
    record = {
        "file": path.name,
        "format": "skops",
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "signature": signature.name if usable else "none (unsigned: model.require_signature)",
        **extra,
    }
    manifest.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return record


def verify_signature(path: Path, data: bytes | None = None, root: Path | None = None) -> bool:
    """Check the model's signature with the pinned key (ModelIntegrityError otherwise).
    Returns False, with a warning, only when params.yaml sets model.require_signature: false.

    The bytes (`data`, or the file read once) are checked from a private copy, so the bytes
    that pass are the bytes the caller loads, even if another process swaps the file.
    """
    root = root or project_of(path)
    if not require_signature(root):
        log.warning(
            "model.require_signature is false in params.yaml: the signature of %s is NOT "
            "checked (a weakened control, for local experiments only)",
            Path(path).name,
        )
        return False
    keys = signing.find_keys(root)
    data = Path(path).read_bytes() if data is None else data
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / Path(path).name
        copy.write_bytes(data)
        try:
            signing.verify(copy, keys, signature=signing.signature_path(path), root=root)
        except signing.SignatureError as error:
            raise ModelIntegrityError(str(error).replace(str(copy), str(path))) from error
    return True


def check_pinned_digest(path: Path, data: bytes, root: Path) -> None:
    """The pipeline's model must be the one dvc.lock records for the current pipeline state."""
    relpath = Path(path).resolve().relative_to(root.resolve()).as_posix()
    locked = locked_md5(root / "dvc.lock", relpath)
    if locked is None:
        raise ModelIntegrityError(
            f"dvc.lock records no digest for {relpath}: refusing to load a model the pipeline "
            "state does not name (run make pipeline, or git checkout the dvc.lock it belongs to)"
        )
    actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if not hmac.compare_digest(actual, locked):
        raise ModelIntegrityError(
            f"{relpath} has md5 {actual}, but dvc.lock records md5 {locked} for the current "
            f"pipeline state: an older or other model was put back; refusing to load it "
            f"(restore it with 'dvc checkout {relpath}' or retrain with 'make pipeline')"
        )


def load_model(path: Path, manifest: Path) -> Any:
    """Verify signature, digest and (for the pipeline's model) the dvc.lock pin, then load
    with skops trusting only its defaults plus TRUSTED_TYPES. The file is read once: every
    check and the load use the same bytes."""
    data = Path(path).read_bytes()
    root = project_of(path)
    verify_signature(path, data, root)
    if not manifest.is_file():
        raise ModelIntegrityError(f"no manifest {manifest}: refusing to load {path} unverified")
    record = json.loads(manifest.read_text(encoding="utf-8"))
    actual = hashlib.sha256(data).hexdigest()
    if not hmac.compare_digest(actual, str(record.get("sha256", ""))):
        raise ModelIntegrityError(
            f"{path} has SHA-256 {actual}, its manifest says {record.get('sha256')}: "
            "the file was changed; refusing to load it "
            "(restore it with 'dvc checkout' or retrain with 'make pipeline')"
        )
    if Path(path).resolve() == (root / MODEL_RELPATH).resolve():
        check_pinned_digest(path, data, root)
    try:
        untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in TRUSTED_TYPES]
    except (zipfile.BadZipFile, KeyError, ValueError) as error:  # not a skops archive at all
        raise ModelIntegrityError(f"{path} is not a skops model file ({error})") from error
    if untrusted:
        raise ModelIntegrityError(
            f"{path} holds types that are not trusted: {', '.join(untrusted)}"
        )
    return sio.loads(data, trusted=TRUSTED_TYPES)

"""Sign model files with model-signing and a local elliptic-curve key; verify before loading.

Where the keys live:
- `keys/model-signing.key` (private, mode 0600) and `keys/model-signing.pub` (public) in the
  project root. `make setup` creates them once with `python -m PACKAGE keygen`; `/keys/` is
  in .gitignore, so they never reach git or DVC.
- `MODEL_SIGNING_KEY_DIR` points to another folder (a team's shared public key, a CI secret
  mounted as a file). A folder holding only the public key can verify but not sign.

Policy (see model_io.load_model):
- a public key is configured: every model must carry a valid signature made with the matching
  private key; a missing, unsigned, foreign or broken signature is refused.
- no public key: the signature cannot be checked; loading relies on the SHA-256 manifest alone
  and says so in a warning. Run `make setup` (or `python -m PACKAGE keygen`) to turn signing on.

Signatures are Sigstore bundles written by model-signing with a local key: no network, no
transparency log.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

KEY_DIR_ENV = "MODEL_SIGNING_KEY_DIR"
PRIVATE_NAME = "model-signing.key"
PUBLIC_NAME = "model-signing.pub"
UNSIGNED = "unsigned"


class SignatureError(RuntimeError):
    """A model's signature is missing, foreign, or does not match the file."""


@dataclass(frozen=True)
class Keys:
    folder: Path
    private: Path | None
    public: Path | None

    def describe(self) -> str:
        if self.public is None:
            what = "only a private key" if self.private else "no key pair"
            return f"{what} in {self.folder}"
        return f"key pair in {self.folder}" if self.private else f"public key {self.public}"


def key_folder(root: Path | None = None) -> Path:
    configured = os.environ.get(KEY_DIR_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    if root is None:
        from .config import find_root

        try:
            root = find_root()
        except FileNotFoundError:
            root = Path.cwd()
    return root / "keys"


def find_keys(root: Path | None = None) -> Keys:
    """The signing keys that exist: private and/or public (None when absent)."""
    folder = key_folder(root)
    private, public = folder / PRIVATE_NAME, folder / PUBLIC_NAME
    return Keys(
        folder, private if private.is_file() else None, public if public.is_file() else None
    )


def generate_keys(folder: Path) -> tuple[Path, Path, bool]:
    """Create an ECDSA P-256 key pair in folder unless one exists: (private, public, new)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private, public = folder / PRIVATE_NAME, folder / PUBLIC_NAME
    if private.is_file() and public.is_file():
        return private, public, False
    if private.exists() or public.exists():
        raise SignatureError(
            f"{folder} holds only half of a key pair; move it away, then run keygen again"
        )
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public, True


def signature_path(model: Path) -> Path:
    return Path(model).with_suffix(".sig")


def sign(model: Path, keys: Keys) -> Path:
    """Sign the model file with the private key, or write an 'unsigned' marker without one."""
    target = signature_path(model)
    if keys.private is None:
        note = {UNSIGNED: True, "reason": f"no private key in {keys.folder}; run make setup"}
        target.write_text(json.dumps(note) + "\n", encoding="utf-8")
        return target
    import model_signing

    model_signing.signing.Config().use_elliptic_key_signer(private_key=keys.private).sign(
        Path(model), target
    )
    return target


def is_unsigned(signature: Path) -> bool:
    try:
        return bool(json.loads(signature.read_text(encoding="utf-8")).get(UNSIGNED))
    except (ValueError, AttributeError, UnicodeDecodeError):
        return False


def verify(model: Path, keys: Keys, signature: Path | None = None) -> None:
    """Raise SignatureError unless the model's signature (default: model.sig beside it)
    verifies with the public key."""
    if keys.public is None:
        raise SignatureError(f"no public key to verify {model} with ({keys.describe()})")
    signature = signature or signature_path(model)
    fix = "restore the files with 'dvc checkout' or retrain with 'make pipeline'"
    if not signature.is_file():
        raise SignatureError(
            f"{model} has no signature {signature.name}: refusing to load it ({fix})"
        )
    if is_unsigned(signature):
        raise SignatureError(
            f"{model} is unsigned but a public key is configured ({keys.public}): refusing to "
            f"load it ({fix})"
        )
    import model_signing

    try:
        model_signing.verifying.Config().use_elliptic_key_verifier(public_key=keys.public).verify(
            Path(model), signature
        )
    except Exception as error:  # noqa: BLE001 - any failure to verify means refuse
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise SignatureError(
            f"{model} failed signature verification with {keys.public} ({reason}): "
            f"refusing to load it ({fix})"
        ) from error


def main() -> int:
    """`python -m PACKAGE keygen`: create the signing key pair once (make setup calls this)."""
    folder = key_folder()
    private, public, new = generate_keys(folder)
    state = "created" if new else "kept the existing"
    print(f"keygen: {state} model-signing key pair {private} (private, 0600) and {public.name}")
    return 0

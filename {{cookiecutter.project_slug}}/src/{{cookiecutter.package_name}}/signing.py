"""Sign model files with model-signing and a local elliptic-curve key; verify before loading.

Where the keys live:
- `keys/model-signing.key` (private, mode 0600) and `keys/model-signing.pub` (public) in the
  project root. `make setup` creates them once with `python -m PACKAGE keygen`; `/keys/` is
  in .gitignore, so they never reach git or DVC.
- `MODEL_SIGNING_KEY_DIR` points to another folder (a team's shared public key, a CI secret
  mounted as a file). A folder holding only the public key can verify but not sign.

Which key is trusted: only the one whose fingerprint (SHA-256 of its PEM public key, the
same hash model-signing records in each signature) is committed in
`reference/model-signing-key.sha256`. keygen writes that file when it creates the pair;
changing it is a key rotation and goes through review like any other commit. A key folder
swapped for another pair, or an environment variable pointing at one, is refused.

Policy (see model_io.load_model), fail closed:
- a model loads only when its signature verifies with the pinned public key; no key, no pin,
  a foreign key, a missing, unsigned or broken signature: refused, with one line saying how
  to fix it.
- `model.require_signature: false` in params.yaml (local experiments only) loads without the
  signature check and says so; `make controls` reports the control as weakened.

Rotation: move keys/ away, delete reference/model-signing-key.sha256, run `make setup`,
commit the new fingerprint, then `dvc repro --force train` to sign the model again.

Signatures are Sigstore bundles written by model-signing with a local key: no network, no
transparency log.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

KEY_DIR_ENV = "MODEL_SIGNING_KEY_DIR"
# CI checkouts have no key (keys/ never leaves a machine): with this set to 1, keygen makes a
# throw-away pair and pins it in that checkout only, for models that are built and thrown away.
EPHEMERAL_ENV = "MODEL_SIGNING_EPHEMERAL"
PRIVATE_NAME = "model-signing.key"
PUBLIC_NAME = "model-signing.pub"
PIN_FILE = "reference/model-signing-key.sha256"
UNSIGNED = "unsigned"
ROTATE = f"move keys/ away, delete {PIN_FILE}, run make setup and commit the new fingerprint"


class SignatureError(RuntimeError):
    """A model's signature is missing, foreign, or does not match the file; or the key that
    should check it is missing or not the pinned one."""


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


def project_root(root: Path | None = None) -> Path:
    if root is not None:
        return root
    from .config import find_root

    try:
        return find_root()
    except FileNotFoundError:
        return Path.cwd()


def key_folder(root: Path | None = None) -> Path:
    configured = os.environ.get(KEY_DIR_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return project_root(root) / "keys"


def find_keys(root: Path | None = None) -> Keys:
    """The signing keys that exist: private and/or public (None when absent)."""
    folder = key_folder(root)
    private, public = folder / PRIVATE_NAME, folder / PUBLIC_NAME
    return Keys(
        folder, private if private.is_file() else None, public if public.is_file() else None
    )


def _fingerprint_of(public_key: object) -> str:
    from cryptography.hazmat.primitives import serialization

    pem = public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


def fingerprint(public: Path) -> str:
    """SHA-256 of the public key in canonical PEM form: the hint model-signing writes into
    every signature it makes with the matching private key."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(Path(public).read_bytes())
    except (ValueError, TypeError) as error:
        raise SignatureError(f"{public} is not a PEM public key ({error})") from error
    return _fingerprint_of(key)


def private_fingerprint(private: Path) -> str:
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(Path(private).read_bytes(), password=None)
    except (ValueError, TypeError) as error:
        raise SignatureError(
            f"{private} is not an unencrypted PEM private key ({error})"
        ) from error
    return _fingerprint_of(key.public_key())


def pin_path(root: Path | None = None) -> Path:
    return project_root(root) / PIN_FILE


def read_pin(root: Path | None = None) -> str | None:
    """The committed fingerprint of the trusted public key, or None without the file."""
    path = pin_path(root)
    if not path.is_file():
        return None
    for line in path.read_text(encoding="utf-8").splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            return words[0].lower().removeprefix("sha256:")
    return ""


def write_pin(value: str, root: Path | None = None) -> Path:
    path = pin_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# SHA-256 of the public key that signs this project's models (keys/model-signing.pub).\n"
        "# Models signed with any other key are refused. Written by `make setup`; a change of\n"
        "# this line is a key rotation: review it like code.\n"
        f"{value}\n",
        encoding="utf-8",
    )
    return path


def require_pin(root: Path | None = None) -> str:
    pin = read_pin(root)
    if not pin:
        raise SignatureError(
            f"no pinned signing key ({PIN_FILE} is missing or empty): refusing to trust any "
            "key; run make setup (it pins the key it creates) and commit that file"
        )
    return pin


def check_public_key(keys: Keys, root: Path | None = None) -> Path:
    """The public key, if it is the pinned one; else SignatureError saying how to fix it."""
    where = f"{KEY_DIR_ENV}={keys.folder}" if os.environ.get(KEY_DIR_ENV) else str(keys.folder)
    if keys.public is None:
        raise SignatureError(
            f"no public key {PUBLIC_NAME} in {where} ({keys.describe()}): refusing to load any "
            "model unverified; run make setup, or point MODEL_SIGNING_KEY_DIR at the folder "
            "holding the pinned public key"
        )
    pin = require_pin(root)
    actual = fingerprint(keys.public)
    if not hmac.compare_digest(actual, pin):
        raise SignatureError(
            f"{keys.public} has fingerprint {actual}, but {PIN_FILE} pins {pin}: the key "
            f"folder was swapped or the key rotated without a reviewed commit; restore the "
            f"pinned key (to rotate: {ROTATE})"
        )
    return keys.public


def check_private_key(keys: Keys, root: Path | None = None) -> Path:
    """The private key, if its public half is the pinned one (so what it signs will load)."""
    if keys.private is None:
        raise SignatureError(
            f"no private signing key {PRIVATE_NAME} in {keys.folder}: cannot sign the model; "
            f"run make setup, or set {KEY_DIR_ENV} to the folder holding the pinned pair "
            "(e.g. for dvc exp run --temp), or set model.require_signature: false in "
            "params.yaml for a local experiment"
        )
    pin = require_pin(root)
    actual = private_fingerprint(keys.private)
    if not hmac.compare_digest(actual, pin):
        raise SignatureError(
            f"the private key {keys.private} (fingerprint {actual}) is not the one {PIN_FILE} "
            f"pins ({pin}): a model it signs would be refused; use the pinned key pair "
            f"(to rotate: {ROTATE})"
        )
    return keys.private


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


def write_unsigned(model: Path, reason: str) -> Path:
    """The marker written instead of a signature when signing is switched off."""
    target = signature_path(model)
    target.write_text(json.dumps({UNSIGNED: True, "reason": reason}) + "\n", encoding="utf-8")
    return target


def sign(model: Path, keys: Keys) -> Path:
    """Sign the model file with the private key (model.sig beside it)."""
    if keys.private is None:
        raise SignatureError(f"no private key in {keys.folder}: run make setup")
    import model_signing

    target = signature_path(model)
    model_signing.signing.Config().use_elliptic_key_signer(private_key=keys.private).sign(
        Path(model), target
    )
    return target


def is_unsigned(signature: Path) -> bool:
    try:
        return bool(json.loads(signature.read_text(encoding="utf-8")).get(UNSIGNED))
    except (ValueError, AttributeError, UnicodeDecodeError):
        return False


def _signed_claims(signature: Path) -> tuple[str | None, str | None]:
    """(file SHA-256, key hint) the bundle claims; read only to word an error message."""
    try:
        bundle = json.loads(signature.read_text(encoding="utf-8"))
        hint = bundle.get("verificationMaterial", {}).get("publicKey", {}).get("hint")
        payload = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        digests = [r.get("digest") for r in payload["predicate"]["resources"]]
        return (str(digests[0]) if len(digests) == 1 else None), hint
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return None, None


def verify(
    model: Path, keys: Keys, signature: Path | None = None, root: Path | None = None
) -> None:
    """Raise SignatureError unless the model's signature (default: model.sig beside it)
    verifies with the pinned public key. Every message is one whole line naming the file."""
    public = check_public_key(keys, root)
    signature = signature or signature_path(model)
    fix = "restore the files with 'dvc checkout' or retrain with 'make pipeline'"
    if not signature.is_file():
        raise SignatureError(
            f"{model} has no signature {signature.name}: refusing to load it ({fix})"
        )
    if is_unsigned(signature):
        raise SignatureError(
            f"{model} is unsigned but signatures are required (pinned key {public}): refusing "
            f"to load it ({fix})"
        )
    import model_signing

    try:
        # model-signing prints a warning for old bundle formats: keep stdout clean.
        with contextlib.redirect_stdout(io.StringIO()):
            model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public).verify(
                Path(model), signature
            )
    except Exception as error:  # noqa: BLE001 - any failure to verify means refuse
        signed, hint = _signed_claims(signature)
        actual = hashlib.sha256(Path(model).read_bytes()).hexdigest()
        pinned = fingerprint(public)
        if str(error).startswith("Signature mismatch") and signed and signed != actual:
            reason = f"the signature is for SHA-256 {signed}, the file has SHA-256 {actual}"
        elif hint and hint != pinned:
            reason = f"Key mismatch: signed with key {hint}, the pinned key is {pinned}"
        else:
            reason = " ".join(str(error).split()) or type(error).__name__
        raise SignatureError(
            f"{model} failed signature verification with {public} ({reason}): "
            f"refusing to load it ({fix})"
        ) from error


def main() -> int:
    """`python -m PACKAGE keygen`: create the signing key pair once and pin its fingerprint
    (make setup calls this). An existing pin is never replaced: that is a rotation."""
    root = project_root()
    folder = key_folder(root)
    pin = read_pin(root)
    keys = find_keys(root)
    if (
        pin
        and keys.public is None
        and keys.private is None
        and os.environ.get(EPHEMERAL_ENV) == "1"
    ):
        private, public, _ = generate_keys(folder)
        write_pin(fingerprint(public), root)
        print(
            f"keygen: {EPHEMERAL_ENV}=1: created a throw-away key pair in {folder} and pinned it "
            f"in this checkout's {PIN_FILE} (for CI runs whose models are never served; never "
            "commit that change)"
        )
        return 0
    if pin and keys.public is None and keys.private is None:
        print(
            f"keygen: {PIN_FILE} pins key {pin}, but {folder} holds no key: copy the team's key "
            f"pair there (or set {KEY_DIR_ENV}); for a key of your own: {ROTATE}"
        )
        return 1
    private, public, new = generate_keys(folder)
    state = "created" if new else "kept the existing"
    print(f"keygen: {state} model-signing key pair {private} (private, 0600) and {public.name}")
    actual = fingerprint(public)
    if not pin:
        written = write_pin(actual, root)
        print(
            f"keygen: pinned its fingerprint {actual[:16]}... in {PIN_FILE}: commit it "
            f"(git add {written.relative_to(root)} && git commit); only this key's models load"
        )
    elif pin != actual:
        print(
            f"keygen: {public} has fingerprint {actual}, but {PIN_FILE} pins {pin}: models it "
            f"signs will be refused; restore the pinned pair (to rotate: {ROTATE})"
        )
        return 1
    return 0

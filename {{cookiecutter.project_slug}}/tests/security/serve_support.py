"""Helpers for the guarded-inference and integrity tests: a scratch project root holding a
model saved, signed and locked as the pipeline leaves it, rows in the form POST /predict
takes, and the feature an attack aims at, all derived from params.yaml and the profile."""

from __future__ import annotations

import hashlib
import math
import shutil
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import yaml

from {{ cookiecutter.package_name }} import signing
from {{ cookiecutter.package_name }}.config import Paths
from {{ cookiecutter.package_name }}.data import LABEL, load_profile
from {{ cookiecutter.package_name }}.model_io import save_model
from {{ cookiecutter.package_name }}.train import fit

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789abcdef"  # noqa: S105 - a throw-away token for local tests


def trust_root(root: Path) -> signing.Keys:
    """A key pair in root/keys, pinned in root's reference/model-signing-key.sha256, as
    `make setup` leaves a project (the test's own pair: the project's key is not needed)."""
    _, public, _ = signing.generate_keys(root / "keys")
    signing.write_pin(signing.fingerprint(public), root)
    return signing.find_keys(root)


def lock_model(paths: Paths) -> None:
    """Record the model files' md5 in paths.root/dvc.lock, as `dvc repro` does after train."""
    lock_path = paths.root / "dvc.lock"
    lock = yaml.safe_load(lock_path.read_text()) if lock_path.is_file() else None
    lock = lock or {"schema": "2.0", "stages": {}}
    outs = []
    for file in (paths.model, paths.model_manifest, paths.model.with_suffix(".sig")):
        data = file.read_bytes()
        outs.append(
            {
                "path": file.relative_to(paths.root).as_posix(),
                "hash": "md5",
                "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
                "size": len(data),
            }
        )
    lock["stages"]["train"] = {"cmd": "python -m {{ cookiecutter.package_name }} train", "outs": outs}
    lock_path.write_text(yaml.safe_dump(lock, sort_keys=False))


def _copied_pin_only(paths: Paths) -> bool:
    """The root holds a pin (copied with reference/) but no keys/, and models are signed."""
    params = yaml.safe_load(paths.params.read_text()) if paths.params.is_file() else None
    signs = ((params or {}).get("model") or {}).get("require_signature", True) is not False
    return signs and not (paths.root / "keys").is_dir()


def save_like_the_pipeline(model, paths: Paths) -> dict:
    """Save, sign and lock `model` at paths.model the way the train stage and DVC do (keys
    and a pin are created in paths.root first when it has none: a scratch root that copied
    only the project's pin, without its keys/, gets the test's own pinned pair)."""
    if signing.read_pin(paths.root) is None or _copied_pin_only(paths):
        trust_root(paths.root)
    record = save_model(model, paths.model, paths.model_manifest)
    lock_model(paths)
    return record


def make_root(target: Path, train: pd.DataFrame, params: dict, **serve) -> Paths:
    """Copy params.yaml (with `serve` overrides) and the reference profile into `target`,
    and save a freshly trained model there, signed and locked, as the pipeline would."""
    target.mkdir(parents=True, exist_ok=True)
    changed = {**params, "serve": {**params.get("serve", {}), **serve}}
    (target / "params.yaml").write_text(yaml.safe_dump(changed), encoding="utf-8")
    shutil.copytree(
        ROOT / "reference",
        target / "reference",
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(Path(signing.PIN_FILE).name),
    )
    paths = Paths(target)
    save_like_the_pipeline(fit(train, params["train"], load_profile(paths)), paths)
    return paths


def copy_root(source: Paths, target: Path, **serve) -> Paths:
    """A copy of the project root `source` at `target` (params.yaml with these `serve`
    overrides): the same signed, locked model, keys, pin and profile, without training and
    signing a model again."""
    shutil.copytree(source.root, target)
    if serve:
        params = yaml.safe_load((target / "params.yaml").read_text(encoding="utf-8"))
        params["serve"] = {**(params.get("serve") or {}), **serve}
        (target / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    return Paths(target)


@contextmanager
def logging_kept():
    """This process's logging set-up as it was before the block: for code run in-process
    that configures logging for a whole process (serve.main calls logging.config.dictConfig
    and logging.captureWarnings)."""
    import logging
    import warnings

    def loggers() -> list[logging.Logger]:
        known = logging.Logger.manager.loggerDict.values()
        return [logging.getLogger(), *(x for x in known if isinstance(x, logging.Logger))]

    saved = {x: (list(x.handlers), x.level, x.propagate, x.disabled) for x in loggers()}
    shown = warnings.showwarning
    try:
        yield
    finally:
        logging.captureWarnings(False)
        warnings.showwarning = shown
        for logger in loggers():
            handlers, level, propagate, disabled = saved.get(logger, ([], 0, True, False))
            for handler in list(logger.handlers):
                if handler not in handlers:
                    logger.removeHandler(handler)
                    handler.close()
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate, logger.disabled = propagate, disabled


def other_model(train: pd.DataFrame, params: dict, profile: dict):
    """A model other than the pipeline's for any configured estimator: trained on half the rows."""
    return fit(train.head(max(len(train) // 2, 10)), params["train"], profile)


def json_value(value, kind: str):
    """One cell as JSON carries it in a request: missing as null, booleans as true/false,
    integers whole, numbers as floats, categories as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    value = value.item() if hasattr(value, "item") else value
    if kind == "boolean":
        return bool(value)
    if kind == "integer":
        return int(value)
    return value


def rows_of(frame: pd.DataFrame, count: int, profile: dict | None = None) -> list[dict]:
    """The first `count` rows without the label, as the body of POST /predict holds them."""
    profile = profile or load_profile(Paths(ROOT))
    kinds = {name: entry["type"] for name, entry in profile["features"].items()}
    records = frame.drop(columns=[LABEL]).head(count).to_dict("records")
    return [{k: json_value(v, kinds[k]) for k, v in record.items()} for record in records]


def probe_feature(profile: dict) -> str:
    """The feature range probes and bad values aim at: the first numeric (or integer)
    feature that never misses a value (pytest skips when the data has none)."""
    import pytest

    from conftest import numeric_features

    names = numeric_features(profile)
    if not names:
        pytest.skip("the profile has no numeric feature without missing values to probe")
    return names[0]


def far_outside(profile: dict, name: str, sign: int = 1) -> float:
    """A whole number far outside the reference range of feature `name` (above, or below
    with sign=-1), past any margin params.yaml allows."""
    entry = profile["features"][name]
    width = max(abs(float(entry["max"])), abs(float(entry["min"])), 1.0)
    return float(sign * round(width * 1000 + 1000))


REDIS_MISSING = (
    "redis-server is not installed: install it (Debian/Ubuntu: sudo apt-get install "
    "redis-server; macOS: brew install redis) to test the shared rate-limit store"
)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def redis_server(folder: Path):
    """A real redis-server on 127.0.0.1 on a free port, nothing persisted, stopped on exit:
    yields its URI (pytest skips, saying how to install it, when it is not installed)."""
    import socket
    import subprocess
    import time

    import pytest

    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip(REDIS_MISSING)
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [executable, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    command += ["--appendonly", "no", "--dir", str(folder), "--protected-mode", "yes"]
    with (folder / "redis.log").open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 20
            while True:
                assert process.poll() is None, (folder / "redis.log").read_text()
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "redis-server did not start in 20 s"
                    time.sleep(0.01)
            yield f"redis://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

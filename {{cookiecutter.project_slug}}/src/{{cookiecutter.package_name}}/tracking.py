"""MLflow set-up and the lineage every run records.

Local mode (default): a SQLite store `mlflow.db` and artifacts in `mlartifacts/`, both in
the project and kept out of git. Team mode: set MLFLOW_TRACKING_URI (or
`mlflow.tracking_uri` in params.yaml) to your server.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess  # nosec B404 - runs git with fixed arguments
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

import mlflow  # noqa: E402
import yaml  # noqa: E402

from .config import Paths  # noqa: E402

KEY_PACKAGES = ("scikit-learn", "pandas", "numpy", "mlflow", "dvc", "skops", "pandera")


def tracking_uri(paths: Paths, params: dict[str, Any]) -> str:
    """MLFLOW_TRACKING_URI wins, then params.yaml, then the project's SQLite store."""
    configured = os.environ.get("MLFLOW_TRACKING_URI") or params.get("mlflow", {}).get("tracking_uri")
    return configured or f"sqlite:///{paths.root / 'mlflow.db'}"


def start(paths: Paths, params: dict[str, Any]) -> str:
    """Point MLflow at the store and select the experiment; returns the experiment id."""
    uri = tracking_uri(paths, params)
    mlflow.set_tracking_uri(uri)
    name = params["mlflow"]["experiment"]
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = (paths.root / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None
    return mlflow.create_experiment(name, artifact_location=location)


def git(paths: Paths, *args: str) -> str:
    try:
        done = subprocess.run(  # nosec B603 B607 - fixed git command, no shell
            ["git", *args], cwd=paths.root, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def dvc_hash(paths: Paths, relpath: str) -> str:
    """The md5 DVC recorded for an output in dvc.lock (empty when not yet locked)."""
    if not paths.dvc_lock.is_file():
        return ""
    lock = yaml.safe_load(paths.dvc_lock.read_text(encoding="utf-8")) or {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs", []):
            if out.get("path") == relpath:
                return str(out.get("md5", ""))
    return ""


def md5_file(path: Path) -> str:
    """The same md5 DVC 3 computes for a file output."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def lineage_tags(paths: Paths) -> dict[str, str]:
    """Tags that tie a run to its code, data and environment."""
    commit = git(paths, "rev-parse", "HEAD")
    # dvc.lock changes while `dvc repro` runs, so it does not make the tree dirty.
    dirty = git(paths, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock")
    lock = paths.root / "requirements" / "lock.txt"
    tags = {
        "git.commit": commit or "unknown (not a git repository)",
        "git.dirty": str(bool(dirty)).lower() if commit else "unknown",
        "data.train.path": str(paths.train_csv.relative_to(paths.root)),
        "data.train.md5": md5_file(paths.train_csv),
        "data.train.dvc_md5": dvc_hash(paths, "data/prepared/train.csv") or "not locked",
        "env.python": platform.python_version(),
        "env.platform": platform.platform(),
        "env.lock.sha256": hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else "",
    }
    for package in KEY_PACKAGES:
        try:
            tags[f"env.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            tags[f"env.{package}"] = "not installed"
    return tags


def display_uri(uri: str) -> str:
    """The URI without any user:password part, safe to print."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def flat_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def record_run(
    paths: Paths,
    params: dict[str, Any],
    model: Any,
    metrics: dict[str, float],
    figures: list[Path],
    example: Any,
) -> str:
    """Log one pipeline run: params, metrics, lineage tags, the model files, the registered model.

    MLflow's copy of the model is written in skops format too (no pickle). Writes the run id
    to reports/mlflow_run.json and returns it.
    """
    import json

    import mlflow.sklearn

    experiment_id = start(paths, params)
    manifest = json.loads(paths.model_manifest.read_text(encoding="utf-8"))
    tags = lineage_tags(paths)
    tags.update({"model.sha256": manifest["sha256"], "model.format": manifest["format"]})
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as run:
        mlflow.log_params(flat_params({k: params[k] for k in params if k != "mlflow"}))
        mlflow.log_metric("train_accuracy", manifest.get("train_accuracy", float("nan")))
        mlflow.log_metrics({f"test_{name}": value for name, value in metrics.items()})
        for path in (paths.model, paths.model_manifest):
            mlflow.log_artifact(str(path), artifact_path="model-file")
        for figure in figures:
            mlflow.log_artifact(str(figure), artifact_path="figures")
        mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="skops",
            registered_model_name=params["mlflow"]["registered_model"],
            pip_requirements=[f"scikit-learn=={tags['env.scikit-learn']}", f"skops=={tags['env.skops']}"],
            input_example=example.head(2),
        )
        run_id = run.info.run_id
    record = {"run_id": run_id, "experiment_id": experiment_id,
              "tracking_uri": display_uri(mlflow.get_tracking_uri())}
    (paths.reports / "mlflow_run.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return run_id

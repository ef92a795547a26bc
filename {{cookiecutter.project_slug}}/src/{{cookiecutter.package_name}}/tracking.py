"""MLflow set-up and the lineage every run records.

Local mode (default): a SQLite store `mlflow.db` and artifacts in `mlartifacts/`, both in
the project and kept out of git. Team mode: set MLFLOW_TRACKING_URI (or
`mlflow.tracking_uri` in params.yaml) to your server; credentials come from the environment
(MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN), never from a
committed file. A server that does not answer, or refuses the credentials, stops the run
before any logging, with one line naming the URI; there is no fall-back to the local store.
`python -m PACKAGE.tracking` runs that check alone (`make pipeline` runs it first).
MLflow itself is imported only where a run is recorded, so the check costs no MLflow import.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess  # nosec B404 - runs git with fixed arguments
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


from .config import Paths, locked_md5, md5_file  # noqa: E402

KEY_PACKAGES = ("scikit-learn", "pandas", "numpy", "mlflow", "dvc", "skops", "pandera")


class TrackingError(SystemExit):
    """The tracking server cannot be used: exits with one line saying why and what to do."""


def tracking_uri(paths: Paths, params: dict[str, Any]) -> str:
    """MLFLOW_TRACKING_URI wins, then params.yaml, then (local mode only) the SQLite store."""
    settings = params.get("mlflow", {})
    committed = settings.get("tracking_uri") or ""
    if urlsplit(committed).password:
        raise TrackingError(
            "tracking: mlflow.tracking_uri in params.yaml holds a password and params.yaml is "
            "committed: remove it and set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD "
            "in .env (gitignored) instead, then rotate that password"
        )
    configured = os.environ.get("MLFLOW_TRACKING_URI") or committed
    if configured:
        return configured
    if settings.get("require_server"):
        raise TrackingError(
            "tracking: this project logs to a team tracking server (mlflow.require_server in "
            "params.yaml) but MLFLOW_TRACKING_URI is not set: put it in .env or export it "
            "(see docs/team-stack.md); runs never fall back to a local store"
        )
    return f"sqlite:///{paths.root / 'mlflow.db'}"


def check_server(uri: str, timeout: float = 5.0) -> None:
    """Fail fast unless an http(s) tracking server answers an authenticated request.

    One GET of the experiments search API with the credentials MLflow would send. Other
    stores (sqlite, file) are not checked here. Raises TrackingError with the URI, never
    the credentials, and the fix.
    """
    import base64
    import ssl
    import urllib.error
    import urllib.request

    if not uri.startswith(("http://", "https://")):
        return
    shown = display_uri(uri)
    parts = urlsplit(uri)
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    base = urlunsplit(parts._replace(netloc=netloc)).rstrip("/")
    # http(s) only (checked above): no file: or custom scheme reaches urlopen.
    search = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
    request = urllib.request.Request(search)  # noqa: S310
    user = os.environ.get("MLFLOW_TRACKING_USERNAME") or parts.username or ""
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD") or parts.password or ""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN", "")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    elif user and password:
        pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {pair}")
    context = None
    if parts.scheme == "https":
        insecure = os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true"
        context = ssl.create_default_context(
            cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None
        )
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        client_cert = os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH")
        if client_cert:
            context.load_cert_chain(client_cert)
    try:
        # B310 is safe here: the URL's scheme was checked to be http or https above.
        opened = urllib.request.urlopen(request, timeout=timeout, context=context)  # noqa: S310  # nosec B310
        with opened as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise TrackingError(
            f"tracking: the server {shown} is unreachable ({reason}): start it, or fix "
            "MLFLOW_TRACKING_URI (.env); runs never fall back to a local store"
        ) from None
    if status in (401, 403):
        fix = (
            "check MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) "
            "in .env, or ask the server's admin for an account"
            if token or (user and password)
            else "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in .env"
        )
        raise TrackingError(
            f"tracking: the server {shown} refused our credentials (HTTP {status}): {fix}"
        )
    if status != 200:
        raise TrackingError(
            f"tracking: the server {shown} answered HTTP {status} to an experiments search: "
            "check that MLFLOW_TRACKING_URI names an MLflow tracking server"
        )


def preflight(paths: Paths | None = None) -> str:
    """Resolve the tracking URI and check its server; returns the URI."""
    from .config import load_params

    paths = paths or Paths()
    uri = tracking_uri(paths, load_params(paths))
    check_server(uri)
    return uri


def start(paths: Paths, params: dict[str, Any]) -> str:
    """Check the store, point MLflow at it and select the experiment; returns its id."""
    import mlflow

    uri = tracking_uri(paths, params)
    check_server(uri)
    mlflow.set_tracking_uri(uri)
    name = params["mlflow"]["experiment"]
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = (paths.root / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException as error:
        # Another pipeline created it between our lookup and our create: use theirs.
        experiment = mlflow.get_experiment_by_name(name)
        if error.error_code != "RESOURCE_ALREADY_EXISTS" or experiment is None:
            raise
        return experiment.experiment_id


def git(paths: Paths, *args: str) -> str:
    try:
        done = subprocess.run(  # nosec B603 B607 - fixed git command, no shell
            ["git", *args], cwd=paths.root, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def lineage_tags(paths: Paths) -> dict[str, str]:
    """Tags that tie a run to its code, data and environment."""
    commit = git(paths, "rev-parse", "HEAD")
    # dvc.lock changes while `dvc repro` runs, so it does not make the tree dirty.
    dirty = git(paths, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock")
    lock = paths.root / "requirements" / "lock.txt"
    tags = {
        "git.commit": commit or "unknown (not a git repository)",
        "git.dirty": str(bool(dirty)).lower() if commit else "unknown",
        "data.train.path": str(paths.train_data.relative_to(paths.root)),
        "data.train.md5": md5_file(paths.train_data),
        "data.train.dvc_md5": locked_md5(
            paths.dvc_lock, paths.train_data.relative_to(paths.root).as_posix()
        )
        or "not locked",
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


def data_source(paths: Paths, params: dict[str, Any]) -> dict[str, str]:
    """Where the raw data came from and its hash: the md5 of its `dvc add` file when there is
    one (data/raw/FILE.dvc), else the file's own md5; a bundled example names its loader."""
    import yaml

    from .data import LOADERS, raw_path_setting

    data = params.get("data") or {}
    raw = raw_path_setting(data)
    if not raw:
        name = data.get("dataset") or "breast_cancer"
        source = f"bundled example {name} ({LOADERS.get(name, '?')})"
        digest = locked_md5(
            paths.dvc_lock, paths.train_data.relative_to(paths.root).as_posix()
        ) or md5_file(paths.train_data)
        return {"name": name, "source": source, "md5": digest, "hash_from": "prepared train split"}
    path = paths.root / raw
    dvc_file = path.with_name(path.name + ".dvc")
    if dvc_file.is_file():
        outs = (yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}).get("outs") or [{}]
        digest, origin = str(outs[0].get("md5", "")), f"{dvc_file.relative_to(paths.root)}"
    else:
        digest, origin = (md5_file(path) if path.is_file() else ""), "file md5 (not dvc-added)"
    return {"name": path.stem, "source": raw, "md5": digest, "hash_from": origin}


def run_name(stage: str, tags: dict[str, str], params: dict[str, Any], source: dict) -> str:
    """What ran: the stage, the model and data, the short commit (e.g. 'evaluate logistic on
    breast_cancer @ 1a2b3c4')."""
    commit = tags.get("git.commit", "")
    short = commit[:7] if len(commit) >= 7 and " " not in commit else "no-commit"
    dirty = "+dirty" if tags.get("git.dirty") == "true" else ""
    model = (params.get("train") or {}).get("model") or "model"
    return f"{stage} {model} on {source['name']} @ {short}{dirty}"


def display_uri(uri: str) -> str:
    """The URI without any user:password part, safe to print."""
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


@contextmanager
def _requirements_check_on_our_modules() -> Iterator[None]:
    """Spare `log_model` its scan of every installed distribution (~1.4 s per run).

    MLflow checks the model's pip requirements against this environment by first mapping
    every installed distribution to its modules. Ours are only scikit-learn and skops (plus
    mlflow), pinned from the lock this environment was installed from, so for this one call
    we hand MLflow that small map; the check itself still runs, and the full map is rebuilt
    by whatever asks for it later. A private attribute of the pinned MLflow: if it is gone,
    nothing changes but the speed.
    """
    from mlflow.utils import requirements_utils as known

    unbuilt = hasattr(known, "_MODULES_TO_PACKAGES") and known._MODULES_TO_PACKAGES is None
    if not unbuilt:  # already built (then it is fast), or this MLflow no longer has it
        yield
        return
    known._MODULES_TO_PACKAGES = {
        "sklearn": ["scikit-learn"],
        "skops": ["skops"],
        "mlflow": ["mlflow"],
    }
    try:
        yield
    finally:
        known._MODULES_TO_PACKAGES = None
        known._PACKAGES_TO_MODULES = None


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

    import mlflow
    import mlflow.sklearn
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    experiment_id = start(paths, params)
    manifest = json.loads(paths.model_manifest.read_text(encoding="utf-8"))
    tags = lineage_tags(paths)
    source = data_source(paths, params)
    tags.update(
        {
            "model.sha256": manifest["sha256"],
            "model.format": manifest["format"],
            "model.name": str(manifest.get("estimator", "")),
            "task": str(manifest.get("task", "")),
            "data.source": source["source"],
            "data.md5": source["md5"],
            "data.hash_from": source["hash_from"],
        }
    )
    logged = {k: params[k] for k in params if k != "mlflow"}
    if not source["source"].startswith("bundled"):
        # Own data: the bundled example's name is not the data set of this run.
        logged["data"] = {k: v for k, v in logged["data"].items() if k != "dataset"}
    name = run_name("evaluate", tags, params, source)
    with mlflow.start_run(experiment_id=experiment_id, tags=tags, run_name=name) as run:
        mlflow.log_params(flat_params(logged))
        where = (
            (paths.root / source["source"]).as_uri()
            if not source["source"].startswith("bundled")
            else (paths.root / "data").as_uri()
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the source registry warns about its own lookup
            dataset = MetaDataset(
                resolve_dataset_source(where), name=source["name"], digest=source["md5"][:36]
            )
        mlflow.log_input(
            dataset,
            context="training",
            tags={"source": source["source"], "dvc_md5": source["md5"]},
        )
        for key, value in manifest.items():
            if key.startswith("train_") and isinstance(value, int | float):
                mlflow.log_metric(key, value)
        mlflow.log_metrics({f"test_{name}": value for name, value in metrics.items()})
        # The model file with its digest manifest and, when signed, its signature: a copy
        # fetched from the server verifies exactly like the local one.
        for path in (paths.model, paths.model_manifest, paths.model.with_suffix(".sig")):
            if path.is_file():
                mlflow.log_artifact(str(path), artifact_path="model-file")
        for figure in figures:
            mlflow.log_artifact(str(figure), artifact_path="figures")
        from .model_io import TRUSTED_TYPES

        with warnings.catch_warnings(), _requirements_check_on_our_modules():
            # The predicted label is an integer column by design; MLflow's hint about
            # integer columns and missing values does not apply to an output.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                serialization_format="skops",
                registered_model_name=params["mlflow"]["registered_model"],
                pip_requirements=[
                    f"scikit-learn=={tags['env.scikit-learn']}",
                    f"skops=={tags['env.skops']}",
                ],
                input_example=example.head(2),
                skops_trusted_types=TRUSTED_TYPES,
            )
        run_id = run.info.run_id
    tag_registered_version(params, info, tags)
    record = {
        "run_id": run_id,
        "experiment_id": experiment_id,
        "tracking_uri": display_uri(mlflow.get_tracking_uri()),
    }
    (paths.reports / "mlflow_run.json").write_text(
        json.dumps(record, indent=2) + "\n", encoding="utf-8"
    )
    return run_id


SERVING_ALIAS = "serving"


def tag_registered_version(params: dict[str, Any], info: Any, tags: dict[str, str]) -> None:
    """Tag the new registered version with its commit and data hash, and point the `serving`
    alias at it: the version `make serve` serves is the one the last pipeline run wrote."""
    from mlflow.tracking import MlflowClient

    version = getattr(info, "registered_model_version", None)
    if version is None:
        return
    client = MlflowClient()
    name = params["mlflow"]["registered_model"]
    for key in ("git.commit", "data.md5", "data.source", "model.sha256"):
        client.set_model_version_tag(name, str(version), key, tags[key])
    client.set_registered_model_alias(name, SERVING_ALIAS, str(version))


def add_metrics(run_id: str, metrics: dict[str, float]) -> None:
    """Add metrics to a run `record_run` made (in the store it pointed MLflow at)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    for name, value in metrics.items():
        client.log_metric(run_id, name, value)


if __name__ == "__main__":
    from .config import check_params, load_params

    check_params(load_params())
    checked = preflight()
    if checked.startswith(("http://", "https://")):
        print(f"tracking: {display_uri(checked)} answers and accepts our credentials")

"""Team mode (`tracking=server`) against real services on 127.0.0.1.

The module starts, once, a throw-away PostgreSQL cluster (Debian's `postgresql` package), moto's
server mode as the S3 endpoint (no MinIO is packaged for this machine's registries; the compose
file uses MinIO) and the MLflow tracking server through the generated `deploy/mlflow/serve.sh`,
installed from the generated `deploy/mlflow/requirements.txt`: the same script and lock the
Docker image uses. A generated `tracking=server` project is set up once and connected to them
through its `.env`, as a user would. Every process and the cluster are stopped and deleted by
the fixtures' finalizers, even when a test fails.

Measurements (server ready time and memory) are printed and written to
build/team-mode-measurements.json.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest
import yaml

from conftest import TEMPLATE, scratch_copy

SLUG = "team-probe"
PACKAGE = "team_probe"
SLOW = [pytest.mark.slow, pytest.mark.xdist_group("team-mode")]
MEASURED: dict = {}
# Variables of the developer's or CI's own environment that must not leak into the project.
LEAKY = re.compile(r"^(MLFLOW_|AWS_|DVC_|PG)")


# ------------------------------------------------------------------------------ helpers
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not LEAKY.match(k)}
    env.update(extra)
    return env


def sh(args, cwd, env=None, timeout=900, check=True):
    done = subprocess.run(args, cwd=cwd, env=env or clean_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check:
        assert done.returncode == 0, (
            f"{args} exited {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


def wait_for(check, what: str, timeout: float, log: Path | None = None) -> float:
    """Poll check() until it is true; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        with contextlib.suppress(Exception):
            if check():
                return time.monotonic() - start
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    raise AssertionError(f"{what} not ready after {timeout} s\n{tail}")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_group(proc: subprocess.Popen, grace: float = 15) -> None:
    """TERM the process group, then KILL what is left of it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def group_rss_mb(pgid: int) -> float:
    """Resident memory of every process of a process group, in MB."""
    total = 0
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # field 5 of stat: the process group
                continue
            status = Path(stat).with_name("status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        total += int(found.group(1)) if found else 0
    return round(total / 1024, 1)


def get(url: str, user: str = "", password: str = "", timeout: float = 10) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if user:
        request.add_header("Authorization", "Basic " + b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def digests(project: Path, folders=("data", "models", "reports")) -> dict[str, str]:
    found = {}
    for folder in folders:
        for path in sorted((project / folder).rglob("*")):
            if path.is_file():
                found[str(path.relative_to(project))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


# ------------------------------------------------------------------------------ services
def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]))
    assert found, ("PostgreSQL is not installed: apt-get install -y postgresql "
                   "(.ci/run does this on a fresh machine)")
    return Path(found[-1]).parent


@pytest.fixture(scope="module")
def postgres():
    """A throw-away cluster in a temp folder on 127.0.0.1, with databases mlflow and mlflow_auth."""
    bindir = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="team-mode-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port, password = free_port(), secrets.token_hex(16)
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    if as_user:
        shutil.chown(pwfile, "postgres", "postgres")
    data = root / "data"
    try:
        sh([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "mlflow",
            f"--pwfile={pwfile}", "--auth=scram-sha-256", "--no-locale", "--encoding=UTF8",
            "--no-sync"], root, timeout=120)
        pwfile.unlink()
        start = time.monotonic()
        sh([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w",
            "-t", "60", "-o", f"-k {root} -p {port} -h 127.0.0.1 -F", "start"], root, timeout=90)
        MEASURED["postgres_ready_s"] = round(time.monotonic() - start, 2)
        env = clean_env(PGPASSWORD=password)
        for name in ("mlflow", "mlflow_auth"):
            sh([str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow",
                "-d", "postgres", "-q", "-c", f"CREATE DATABASE {name}"], root, env=env)
        yield {"port": port, "password": password}
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                            "-w", "-t", "20", "stop"], capture_output=True, timeout=60, check=False)
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on 127.0.0.1 with the buckets of the compose file: mlflow and dvc."""
    import boto3

    port, log = free_port(), tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=clean_env(),
                                start_new_session=True)
    try:
        MEASURED["s3_ready_s"] = round(wait_for(lambda: port_open(port), "moto", 60, log), 2)
        keys = {"AWS_ACCESS_KEY_ID": "team-" + secrets.token_hex(4),
                "AWS_SECRET_ACCESS_KEY": secrets.token_hex(20)}
        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                              aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"])
        for bucket in ("mlflow", "dvc"):
            client.create_bucket(Bucket=bucket)
        yield {"url": f"http://127.0.0.1:{port}", "client": client, **keys}
    finally:
        stop_group(proc, grace=5)


@pytest.fixture(scope="module")
def team_project(tmp_path_factory):
    """A generated tracking=server project, set up once (make setup) for this module."""
    out = tmp_path_factory.mktemp("team")
    sh([sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(out), str(TEMPLATE),
        "tracking=server", f"project_slug={SLUG}"], out)
    project = out / SLUG
    sh(["make", "setup"], project, timeout=900)
    return project


@pytest.fixture(scope="module")
def server_venv(team_project, tmp_path_factory):
    """The server's environment, from the project's own deploy/mlflow/requirements.txt."""
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    venv = tmp_path_factory.mktemp("server") / "venv"
    sh([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], venv.parent)
    sh([uv, "pip", "sync", "--quiet", "--python", str(venv / "bin/python"), "--require-hashes",
        str(team_project / "deploy/mlflow/requirements.txt")], venv.parent, timeout=900)
    return venv


class Server:
    """The MLflow server of the team stack, started by the project's deploy/mlflow/serve.sh."""

    def __init__(self, project, venv, postgres, s3, log):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_hex(16)
        self.log = log
        db = f"postgresql+psycopg://mlflow:{postgres['password']}@127.0.0.1:{postgres['port']}"
        self.env = clean_env(
            PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
            MLFLOW_BACKEND_STORE_URI=f"{db}/mlflow",
            MLFLOW_AUTH_DATABASE_URI=f"{db}/mlflow_auth",
            MLFLOW_ARTIFACTS_DESTINATION="s3://mlflow/artifacts",
            MLFLOW_S3_ENDPOINT_URL=s3["url"],
            AWS_ACCESS_KEY_ID=s3["AWS_ACCESS_KEY_ID"],
            AWS_SECRET_ACCESS_KEY=s3["AWS_SECRET_ACCESS_KEY"],
            AWS_DEFAULT_REGION="us-east-1",
            MLFLOW_AUTH_ADMIN_PASSWORD=self.password,
            MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16),
            MLFLOW_HOST="127.0.0.1",
            MLFLOW_PORT=str(self.port),
        )
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.script = project / "deploy/mlflow/serve.sh"
        self.proc = None

    def start(self):
        with self.log.open("a") as out:
            self.proc = subprocess.Popen([str(self.script)], stdout=out, stderr=subprocess.STDOUT,
                                         env=self.env, start_new_session=True)
        seconds = wait_for(lambda: get(f"{self.url}/health", timeout=2)[0] == 200,
                           "mlflow server", 180, self.log)
        MEASURED.setdefault("mlflow_server_ready_s", []).append(round(seconds, 2))
        return self

    def stop(self):
        if self.proc is not None:
            stop_group(self.proc)


@pytest.fixture(scope="module")
def server(team_project, server_venv, postgres, s3, tmp_path_factory):
    srv = Server(team_project, server_venv, postgres, s3,
                 tmp_path_factory.mktemp("mlflow") / "server.log")
    try:
        yield srv.start()
    finally:
        srv.stop()
        out = TEMPLATE / "build" / "team-mode-measurements.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(MEASURED, indent=2) + "\n")
        print(f"\nteam mode measurements: {json.dumps(MEASURED)}")


@pytest.fixture(scope="module")
def connected(team_project, server, s3):
    """The project connected to the stack through its gitignored .env, as docs/team-stack.md says."""
    (team_project / ".env").write_text(
        f"MLFLOW_TRACKING_URI={server.url}\n"
        "MLFLOW_TRACKING_USERNAME=admin\n"
        f"MLFLOW_TRACKING_PASSWORD={server.password}\n"
        f"AWS_ENDPOINT_URL_S3={s3['url']}\n"
        f"AWS_ACCESS_KEY_ID={s3['AWS_ACCESS_KEY_ID']}\n"
        f"AWS_SECRET_ACCESS_KEY={s3['AWS_SECRET_ACCESS_KEY']}\n"
    )
    return team_project


@pytest.fixture(scope="module")
def piped(connected, server):
    """The connected project after one `make pipeline` against the server.

    A fixture, not a test, so that every test needing the run gets it whatever order the
    test runner picks (pytest-xdist does not keep file order inside a group)."""
    start = time.monotonic()
    done = sh(["make", "pipeline"], connected, timeout=900)
    MEASURED["first_pipeline_s"] = round(time.monotonic() - start, 1)
    return done


def env_of(project: Path, **extra: str) -> dict:
    """The project's .env as an environment (for commands run without make)."""
    pairs = dict(line.split("=", 1) for line in (project / ".env").read_text().splitlines()
                 if "=" in line and not line.startswith("#"))
    path = f"{project / '.venv/bin'}{os.pathsep}{os.environ['PATH']}"
    return clean_env(**{"PATH": path, **pairs, **extra})


def in_project(project: Path, code: str, **extra: str) -> dict:
    """Run Python in the project's venv with its .env; the code prints one JSON line."""
    done = sh([str(project / ".venv/bin/python"), "-c", code], project, env=env_of(project, **extra))
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ fast checks
def test_compose_file_parses_and_needs_only_what_team_env_writes(bake, tmp_path):
    project = bake(tracking="server")
    compose = yaml.safe_load((project / "deploy/compose.yaml").read_text())
    assert set(compose["services"]) == {"postgres", "minio", "minio-init", "mlflow"}
    text = (project / "deploy/compose.yaml").read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    env_file = tmp_path / "team.env"
    done = sh(["bash", str(project / "deploy/team-env.sh"), str(env_file)], project)
    assert "wrote" in done.stdout
    written = dict(line.split("=", 1) for line in env_file.read_text().splitlines()
                   if line and not line.startswith("#"))
    assert used and used <= set(written), used - set(written)
    # No default password: every secret is required (`:?`), none has a fallback (`:-`).
    assert ":-" not in text
    for name in ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD"):
        assert re.search(rf"\$\{{{name}:\?", text), name
        assert len(written[name]) >= 32 and re.fullmatch(r"[0-9a-f]+", written[name])
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    # Images pinned by tag and digest; the MLflow image is built from the hash-pinned lock.
    for name, service in compose["services"].items():
        if "image" in service and "build" not in service:
            assert re.search(r":[\w.-]+@sha256:[0-9a-f]{64}$", service["image"]), name
    dockerfile = (project / "deploy/mlflow/Dockerfile").read_text()
    assert re.search(r"^FROM \S+:[\w.-]+@sha256:[0-9a-f]{64}$", dockerfile, re.M)
    assert "--require-hashes" in dockerfile
    assert "--app-name basic-auth" in (project / "deploy/mlflow/serve.sh").read_text()
    assert compose["services"]["mlflow"]["environment"]["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    # A second run never overwrites the file.
    before = env_file.read_bytes()
    again = sh(["bash", str(project / "deploy/team-env.sh"), str(env_file)], project, check=False)
    assert again.returncode != 0 and "not overwriting" in again.stderr
    assert env_file.read_bytes() == before


def test_team_repo_tracks_no_credential_and_ignores_env(bake):
    project = bake(tracking="server")
    assert "s3://dvc/" in (project / ".dvc/config").read_text()
    tracked = sh(["git", "ls-files"], project).stdout.split()
    assert ".env" not in tracked and ".env.example" in tracked
    assert sh(["git", "check-ignore", "-q", ".env"], project, check=False).returncode == 0
    assert sh(["git", "check-ignore", "-q", ".dvc/config.local"], project, check=False).returncode == 0
    for name in tracked:
        text = (project / name).read_text(errors="replace")
        for line in text.splitlines():
            # KEY=value with a non-empty secret value outside docs and the writer of .env.
            assert not re.search(r"(PASSWORD|SECRET_ACCESS_KEY|SECRET_KEY)=[0-9A-Za-z]{8,}", line), (name, line)
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["mlflow"]["require_server"] is True and params["mlflow"]["tracking_uri"] == ""


def test_local_projects_have_no_team_files(bake):
    project = bake(tracking="local")
    assert not (project / "deploy").exists() and not (project / "docs/team-stack.md").exists()
    assert "s3://" not in (project / ".dvc/config").read_text()
    assert yaml.safe_load((project / "params.yaml").read_text())["mlflow"]["require_server"] is False


# ------------------------------------------------------------------------------ secrets gate
@pytest.mark.slow
@pytest.mark.xdist_group("team-mode")
def test_a_committed_env_is_blocked_by_pre_commit_and_fails_make_security(team_project, tmp_path):
    """The clean team repo passes the secrets gate; the .env of make team-env, committed by
    mistake, is refused by the pre-commit hook and, when forced in, fails the gate."""
    copy = scratch_copy(team_project, tmp_path / "leak")
    (copy / ".env").unlink(missing_ok=True)
    python = str(copy / ".venv/bin/python")
    clean = sh([python, "scripts/security/gates.py", "secrets"], copy, check=False)
    assert clean.returncode == 0 and re.search(r"PASS\s+secrets", clean.stdout), clean.stdout[-3000:]
    sh(["bash", "deploy/team-env.sh", ".env"], copy)
    sh(["git", "add", "--force", ".env"], copy)
    blocked = sh(["git", "commit", "-qm", "add settings"], copy, check=False)
    assert blocked.returncode != 0 and "detect-secrets" in blocked.stdout + blocked.stderr
    sh(["git", "commit", "-qm", "add settings", "--no-verify"], copy)
    assert ".env" in sh(["git", "ls-files"], copy).stdout.split()
    done = sh([python, "scripts/security/gates.py", "secrets"], copy, check=False)
    assert done.returncode != 0 and re.search(r"FAIL\s+secrets", done.stdout), done.stdout[-3000:]
    assert ".env:" in done.stdout


# ------------------------------------------------------------------------------ real services
@pytest.mark.slow
@pytest.mark.xdist_group("team-mode")
def test_server_refuses_requests_without_valid_credentials(server):
    search = f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert get(search)[0] == 401
    assert get(search, "admin", "not-the-password")[0] == 401
    assert get(search, "admin", server.password)[0] == 200
    MEASURED["mlflow_server_rss_mb"] = group_rss_mb(server.proc.pid)


@pytest.mark.slow
@pytest.mark.xdist_group("team-mode")
def test_pipeline_records_run_model_and_artifacts_on_the_server(connected, piped, server, s3):
    done = piped
    assert f"tracking: {server.url} answers" in done.stdout
    record = json.loads((connected / "reports/mlflow_run.json").read_text())
    assert record["tracking_uri"] == server.url
    found = in_project(connected, f"""
import json
from mlflow.tracking import MlflowClient
client = MlflowClient()
run = client.get_run({record['run_id']!r})
versions = client.search_model_versions("name='{SLUG}'")
print(json.dumps({{
    "status": run.info.status, "metrics": run.data.metrics, "tags": run.data.tags,
    "artifact_uri": run.info.artifact_uri,
    "files": [f.path for f in client.list_artifacts(run.info.run_id, "model-file")],
    "model": [f.path for f in client.list_artifacts(run.info.run_id, "model")],
    "versions": [v.run_id for v in versions],
}}))
""")
    assert found["status"] == "FINISHED"
    metrics = json.loads((connected / "reports/metrics.json").read_text())
    assert found["metrics"]["test_accuracy"] == pytest.approx(metrics["accuracy"])
    manifest = json.loads((connected / "models/model.json").read_text())
    tags = found["tags"]
    assert tags["model.sha256"] == manifest["sha256"]
    for name in ("git.commit", "git.dirty", "data.train.md5", "data.train.dvc_md5", "env.python",
                 "env.lock.sha256", "env.mlflow", "env.scikit-learn", "model.format"):
        assert tags.get(name) not in (None, "", "unknown"), name
    assert found["artifact_uri"].startswith("mlflow-artifacts:/")
    assert {"model-file/model.skops", "model-file/model.json"} <= set(found["files"])
    assert "model/MLmodel" in found["model"]
    assert record["run_id"] in found["versions"]
    # The artifacts are in the bucket, byte for byte.
    keys = [o["Key"] for o in s3["client"].list_objects_v2(Bucket="mlflow", Prefix="artifacts/")["Contents"]]
    key = next(k for k in keys if k.endswith(f"{record['run_id']}/artifacts/model-file/model.skops"))
    stored = s3["client"].get_object(Bucket="mlflow", Key=key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == manifest["sha256"]
    # MLflow 3 keeps a logged model's files under the experiment's models/ folder.
    assert any(k.endswith("/MLmodel") for k in keys), keys


@pytest.mark.slow
@pytest.mark.xdist_group("team-mode")
def test_model_from_the_server_loads_and_verifies(connected, piped, server, tmp_path):
    record = json.loads((connected / "reports/mlflow_run.json").read_text())
    out = tmp_path / "download"
    found = in_project(connected, f"""
import json
from pathlib import Path
import mlflow
import pandas as pd
from {PACKAGE}.model_io import load_model
folder = mlflow.artifacts.download_artifacts(run_id={record['run_id']!r}, artifact_path="model-file",
                                             dst_path={str(out)!r})
model = load_model(Path(folder) / "model.skops", Path(folder) / "model.json")
frame = pd.read_parquet("data/prepared/test.parquet")
print(json.dumps({{"predictions": len(model.predict(frame.drop(columns=["target"]).head(5)))}}))
""")
    assert found["predictions"] == 5
    # A tampered download is refused before it is loaded.
    (out / "model-file/model.skops").write_bytes((out / "model-file/model.skops").read_bytes() + b"x")
    done = sh([str(connected / ".venv/bin/python"), "-c",
               f"from pathlib import Path; from {PACKAGE}.model_io import load_model; "
               f"load_model(Path({str(out / 'model-file/model.skops')!r}), "
               f"Path({str(out / 'model-file/model.json')!r}))"],
              connected, env=env_of(connected), check=False)
    assert done.returncode != 0


@pytest.mark.slow
@pytest.mark.xdist_group("team-mode")
def test_dvc_push_then_pull_restores_identical_files(connected, piped, s3):
    uncached = set()  # outputs DVC keeps in git, not in its cache: push/pull skip them
    for stage in yaml.safe_load((connected / "dvc.yaml").read_text())["stages"].values():
        for item in [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]:
            if isinstance(item, dict):
                uncached |= {path for path, opts in item.items() if (opts or {}).get("cache") is False}
    before = {path: digest for path, digest in digests(connected).items() if path not in uncached}
    assert "models/model.skops" in before and "data/prepared/train.parquet" in before
    dvc = str(connected / ".venv/bin/dvc")
    sh([dvc, "push"], connected, env=env_of(connected))
    listed = s3["client"].list_objects_v2(Bucket="dvc", Prefix=f"{SLUG}/files/md5/")
    assert listed.get("KeyCount", 0) >= 5
    for folder in ("data", "models", "reports"):
        shutil.rmtree(connected / folder)
    shutil.rmtree(connected / ".dvc/cache")
    # A team member's clone has git's files there (data/raw/README.md); DVC brings the rest.
    tracked = sh(["git", "ls-files", "--", "data", "models", "reports"], connected).stdout.split()
    if tracked:
        sh(["git", "checkout", "--", *tracked], connected)
    sh([dvc, "pull"], connected, env=env_of(connected))
    assert digests(connected) == before


@pytest.mark.slow
@pytest.mark.xdist_group("team-mode")
def test_two_pipelines_logging_at_once_both_keep_their_runs(connected, piped, server, tmp_path):
    copies = []
    for number, C in ((1, "0.5"), (2, "2.0")):
        copy = scratch_copy(connected, tmp_path / f"member{number}")
        params = copy / "params.yaml"
        params.write_text(params.read_text().replace("  C: 1.0", f"  C: {C}", 1))
        copies.append(copy)
    start = time.monotonic()
    procs = [subprocess.Popen(["make", "pipeline"], cwd=copy, env=clean_env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for copy in copies]
    try:
        outputs = [proc.communicate(timeout=900)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    MEASURED["two_concurrent_pipelines_s"] = round(time.monotonic() - start, 1)
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output[-4000:]
    runs = [json.loads((copy / "reports/mlflow_run.json").read_text())["run_id"] for copy in copies]
    assert len(set(runs)) == 2
    found = in_project(connected, f"""
import json
from mlflow.tracking import MlflowClient
client = MlflowClient()
out = {{}}
for run_id in {runs!r}:
    run = client.get_run(run_id)
    out[run_id] = {{"status": run.info.status, "C": run.data.params.get("train.C"),
                   "files": [f.path for f in client.list_artifacts(run_id, "model-file")]}}
out["versions"] = [v.run_id for v in client.search_model_versions("name='{SLUG}'")]
print(json.dumps(out))
""")
    assert {found[r]["C"] for r in runs} == {"0.5", "2.0"}
    for run_id in runs:
        assert found[run_id]["status"] == "FINISHED"
        assert "model-file/model.skops" in found[run_id]["files"]
        assert run_id in found["versions"]


@pytest.mark.slow
@pytest.mark.xdist_group("team-mode")
def test_a_team_member_account_as_docs_describe_can_log_and_register(connected, piped, server, server_venv):
    """docs/team-stack.md's account snippet (run with the server's packages, as in the container):
    the new user passes the pipeline's check, logs a run and registers a version; a user
    without grants only reads."""
    record = json.loads((connected / "reports/mlflow_run.json").read_text())
    docs = (connected / "docs/team-stack.md").read_text()
    snippet = re.search(r"mlflow python - <<'EOF'\n(.*?)\nEOF\n", docs, re.S).group(1)
    member = "member-" + secrets.token_hex(3)
    admin = clean_env(MLFLOW_TRACKING_URI=server.url, MLFLOW_TRACKING_USERNAME="admin",
                      MLFLOW_TRACKING_PASSWORD=server.password, NEW_USER=member,
                      EXPERIMENT_ID=record["experiment_id"])
    done = sh([str(server_venv / "bin/python"), "-c", snippet], connected, env=admin)
    password = re.search(rf"created {member}; initial password .*: ([0-9a-f]+)$", done.stdout, re.M).group(1)
    as_member = {"MLFLOW_TRACKING_USERNAME": member, "MLFLOW_TRACKING_PASSWORD": password}
    done = sh([str(connected / ".venv/bin/python"), "-m", f"{PACKAGE}.tracking"], connected,
              env=env_of(connected, **as_member))
    assert "accepts our credentials" in done.stdout
    found = in_project(connected, f"""
import json
from mlflow.tracking import MlflowClient
client = MlflowClient()
run = client.create_run({record['experiment_id']!r})
client.log_metric(run.info.run_id, "x", 1.0)
client.set_terminated(run.info.run_id)
version = client.create_model_version({SLUG!r}, f"runs:/{{run.info.run_id}}/model", run.info.run_id)
print(json.dumps({{"version": version.version}}))
""", **as_member)
    assert int(found["version"]) >= 2
    # Without the grants a signed-in user only reads (default_permission = READ in serve.sh).
    reader, reader_password = "reader-" + secrets.token_hex(3), secrets.token_hex(12)
    sh([str(server_venv / "bin/python"), "-c",
        "import os, sys; from mlflow.server.auth.client import AuthServiceClient; "
        "AuthServiceClient(os.environ['MLFLOW_TRACKING_URI']).create_user(sys.argv[1], sys.argv[2])",
        reader, reader_password], connected, env=admin)
    found = in_project(connected, f"""
import json
from mlflow.tracking import MlflowClient
client = MlflowClient()
client.get_experiment({record['experiment_id']!r})
try:
    client.create_run({record['experiment_id']!r})
    outcome = "created"
except Exception as error:
    outcome = str(error)[:300]
print(json.dumps({{"outcome": outcome}}))
""", MLFLOW_TRACKING_USERNAME=reader, MLFLOW_TRACKING_PASSWORD=reader_password)
    assert found["outcome"] != "created", found
    assert "403" in found["outcome"] or "PERMISSION" in found["outcome"].upper(), found


@pytest.mark.slow
@pytest.mark.xdist_group("team-mode")
def test_bad_credentials_or_missing_uri_stop_the_pipeline_naming_the_fix(connected, server):
    done = sh(["make", "pipeline"], connected, env=clean_env(MLFLOW_TRACKING_PASSWORD="wrong-password"),
              check=False, timeout=60)
    assert done.returncode != 0
    assert f"{server.url} refused our credentials (HTTP 401)" in done.stderr
    assert "MLFLOW_TRACKING_PASSWORD" in done.stderr and server.password not in done.stdout + done.stderr
    done = sh(["make", "pipeline"], connected, env=clean_env(MLFLOW_TRACKING_URI=""), check=False,
              timeout=60)
    assert done.returncode != 0 and "MLFLOW_TRACKING_URI is not set" in done.stderr
    assert "never fall back" in done.stderr


@pytest.mark.slow
@pytest.mark.xdist_group("team-mode")
def test_a_server_that_hangs_is_given_up_within_seconds(connected):
    """A port that accepts connections but never answers: the check times out (5 s)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        done = sh(["make", "pipeline"], connected, env=clean_env(MLFLOW_TRACKING_URI=uri),
                  check=False, timeout=60)
        elapsed = time.monotonic() - start
    assert done.returncode != 0 and f"the server {uri} is unreachable" in done.stderr, done.stderr
    assert elapsed < 15, elapsed


@pytest.mark.slow
@pytest.mark.xdist_group("team-mode")
def test_with_the_server_stopped_the_pipeline_fails_fast_naming_the_uri(connected, piped, server):
    """Stops the server, then starts it again and restores the outputs, whatever runs next."""
    try:
        server.stop()
        assert not port_open(server.port)
        # Through make (the check runs before any stage) ...
        start = time.monotonic()
        done = sh(["make", "pipeline"], connected, check=False, timeout=60)
        elapsed = time.monotonic() - start
        assert done.returncode != 0
        assert f"the server {server.url} is unreachable" in done.stderr, done.stderr
        assert "Running stage" not in done.stdout
        assert elapsed < 15, elapsed
        MEASURED["fail_fast_make_pipeline_s"] = round(elapsed, 2)
        # ... and through dvc directly: the stage checks the server before any work.
        start = time.monotonic()
        done = sh([str(connected / ".venv/bin/dvc"), "repro", "--force", "--single-item", "evaluate"],
                  connected, env=env_of(connected), check=False, timeout=120)
        assert done.returncode != 0
        assert f"the server {server.url} is unreachable" in done.stdout + done.stderr
        assert server.password not in done.stdout + done.stderr
        MEASURED["fail_fast_evaluate_stage_s"] = round(time.monotonic() - start, 2)
    finally:
        server.start()
        sh([str(connected / ".venv/bin/dvc"), "checkout"], connected, env=env_of(connected))

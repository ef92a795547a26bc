"""The first hour of a new user, after generation: next steps, comparing runs against HEAD,
offline plots of two revisions, `make ui PORT=`, and `make team-up` without Compose.

The pipeline tests work on a scratch copy of the shared piped project (its .venv linked).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import TEMPLATE, run, scratch_copy

GIT_ID = {"GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com",
          "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.com"}


def generate(out: Path, *answers: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(out), str(TEMPLATE),
                *answers], out.parent, env=GIT_ID)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(("tracking", "team"), [("local", False), ("server", True)])
def test_generation_ends_with_the_next_steps_of_the_chosen_options(tmp_path, tracking, team):
    done = generate(tmp_path / "out", f"tracking={tracking}")
    project = tmp_path / "out" / "secure-ml-project"
    steps = done.stdout.partition("Next steps:")[2]
    assert f"cd {project}" in steps
    assert steps.index("make setup") < steps.index("make pipeline") < steps.index("make check")
    assert "git add dvc.lock" in steps
    for target in ("make team-env", "make team-up", "make team-check"):
        assert (target in steps) is team, (target, steps)
    if team:
        assert steps.index("make team-env") < steps.index("make team-up") < steps.index(
            "make team-check")


def test_team_up_without_the_compose_plugin_says_how_to_get_it(tmp_path):
    if subprocess.run(["docker", "compose", "version"], capture_output=True,
                      check=False).returncode == 0 if shutil.which("docker") else False:
        pytest.skip("docker compose works here: nothing to refuse")
    generate(tmp_path / "out", "tracking=server")
    project = tmp_path / "out" / "secure-ml-project"
    (project / ".env").write_text("MLFLOW_TRACKING_URI=http://127.0.0.1:5000\n", encoding="utf-8")
    done = run(["make", "team-up"], project, check=False)
    assert done.returncode != 0
    assert "unknown flag" not in done.stderr
    line = [ln for ln in done.stderr.splitlines() if ln.startswith("team-up:")]
    assert line and "docker compose" in line[0] and "https://docs.docker.com/compose/install/" \
        in done.stderr, done.stderr


@pytest.fixture
def committed_copy(piped_project, tmp_path):
    """A scratch copy of the piped project whose first run (dvc.lock) is committed."""
    copy = scratch_copy(piped_project, tmp_path / "p")
    run(["git", "add", "dvc.lock"], copy)
    run(["git", "commit", "-q", "--no-verify", "-m", "First run"], copy, env=GIT_ID)
    return copy


@pytest.mark.slow
@pytest.mark.xdist_group("installed-project")
def test_a_parameter_change_is_compared_with_head_without_hashes(committed_copy):
    copy = committed_copy
    params = copy / "params.yaml"
    text = params.read_text(encoding="utf-8")
    assert re.search(r"^  C: 1\.0\b", text, re.M)
    params.write_text(re.sub(r"^  C: 1\.0\b", "  C: 0.05", text, flags=re.M), encoding="utf-8")
    done = run(["make", "pipeline"], copy)
    for hint in ("To track the changes with git", "core.autostage", "Use `dvc push`"):
        assert hint not in done.stdout + done.stderr, hint
    assert "make compare" in done.stdout
    bin_dir = str(copy / ".venv" / "bin")
    env = {"PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    metrics = run(["dvc", "metrics", "diff", "--json"], copy, env=env)
    assert "reports/metrics.json" in json.loads(metrics.stdout)
    compare = run(["make", "compare"], copy).stdout
    assert "Changes from HEAD to the workspace:" in compare
    assert re.search(r"train\.C\s+1(\.0)? -> 0\.05", compare), compare
    assert "metrics: reports/metrics.json" in compare
    assert not re.search(r"\b[0-9a-f]{32}\b", compare), "no dependency hashes"
    # An experiment of HEAD is compared too.
    run(["dvc", "exp", "run", "-q", "-S", "train.C=3", "-n", "c3"], copy, env=env, timeout=900)
    compare = run(["make", "compare"], copy).stdout
    assert "Experiment c3 against HEAD:" in compare
    assert re.search(r"train\.C\s+1(\.0)? -> 3", compare.partition("Experiment c3")[2]), compare


@pytest.mark.slow
@pytest.mark.xdist_group("installed-project")
def test_plots_diff_against_head_renders_offline_with_both_revisions(committed_copy, tmp_path):
    """Plain `dvc plots diff HEAD` uses the offline template (.dvc/config): no CDN script, both
    revisions drawn by the inlined vega in headless Chromium; PNG plots and a JSON plot (a
    test-only declaration, as the pipeline's own JSON plots would be)."""
    copy = committed_copy
    curve = copy / "reports" / "curve-test.json"
    def write_curve(slope):
        curve.write_text(json.dumps([{"step": i, "loss": 1 - slope * i} for i in range(10)]))
    write_curve(0.05)
    pipeline = yaml.safe_load((copy / "dvc.yaml").read_text(encoding="utf-8"))
    pipeline["plots"] = [{"reports/curve-test.json": {"x": "step", "y": "loss"}}]
    (copy / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False), encoding="utf-8")
    run(["git", "add", "-f", "dvc.yaml", "reports/curve-test.json"], copy)
    run(["git", "commit", "-q", "--no-verify", "-m", "A JSON plot"], copy, env=GIT_ID)
    write_curve(0.08)
    env = {"PATH": str(copy / ".venv" / "bin") + os.pathsep + os.environ["PATH"]}
    run(["dvc", "plots", "diff", "HEAD"], copy, env=env)
    html = (copy / "dvc_plots" / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=", html), "no script is loaded from anywhere"
    assert "cdn.jsdelivr" not in html
    assert "vega@6.4.0" in html and "Content-Security-Policy" in html
    assert '"rev": "HEAD"' in html and '"rev": "workspace"' in html
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    probe = (copy / "dvc_plots" / "probe.html")
    head, end, tail = html.rpartition("</body>")  # the inlined vega code holds one too
    probe.write_text(head + "<script>setInterval(() => document.body.dataset.drawn = document"
                     ".querySelectorAll('.vega-embed canvas, .vega-embed svg').length, 100);"
                     "</script>" + end + tail, encoding="utf-8")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = run([*flags, "--virtual-time-budget=8000", "--dump-dom", probe.as_uri()], tmp_path,
              timeout=180).stdout
    drawn = re.search(r'data-drawn="(\d+)"', dom)
    assert drawn and int(drawn.group(1)) >= 1, dom[-2000:]
    shot = TEMPLATE / "build" / "artifacts" / "plots-diff-head.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    run([*flags, "--window-size=1280,1600", "--virtual-time-budget=8000",
         f"--screenshot={shot}", (copy / "dvc_plots" / "index.html").as_uri()], tmp_path,
        timeout=180)
    assert shot.stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.xdist_group("installed-project")
def test_make_ui_serves_on_the_port_given(piped_project):
    port = free_port()
    ui = subprocess.Popen(["make", "ui", f"PORT={port}"], cwd=piped_project,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
    try:
        deadline = time.monotonic() + 300  # a loaded 2-core machine: MLflow starts slowly
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                    assert answer.status == 200
                    assert b"MLflow" in answer.read()
                break
            except OSError:
                assert ui.poll() is None, "make ui exited"
                assert time.monotonic() < deadline, f"nothing answered on {port} within 300 s"
                time.sleep(0.5)
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)

"""The real service: uvicorn on 127.0.0.1 in a subprocess, real HTTP requests, then stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from serve_support import ROOT, TOKEN, make_root, rows_of


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(tmp_path, frames, params):
    root = make_root(tmp_path / "served", frames[0], params, rate_limit="3/minute")
    port = free_port()
    env = {
        **os.environ,
        "PROJECT_ROOT": str(root.root),
        "MODEL_API_TOKEN": TOKEN,
        "PYTHONPATH": str(ROOT / "src"),
    }
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "{{ cookiecutter.package_name }}", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:  # a TCP connect, not a request: no request may use up the rate limit
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not start in 60 s"
                time.sleep(0.2)
        yield url, tmp_path / "server.log"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_real_server_enforces_token_input_and_rate_limit(server, frames):
    url, log = server
    auth = {"Authorization": f"Bearer {TOKEN}"}
    rows = rows_of(frames[1], 2)
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/predict", json={"rows": rows}).status_code == 401
        bad = client.post("/predict", json={"rows": [{**rows[0], "mean_area": -5e6}]}, headers=auth)
        assert bad.status_code == 422 and bad.json()["field"] == "mean_area"
        good = client.post("/predict", json={"rows": rows}, headers=auth)
        assert good.status_code == 200 and len(good.json()["predictions"]) == 2
        flooded = client.post("/predict", json={"rows": rows}, headers=auth)
        assert flooded.status_code == 429 and int(flooded.headers["retry-after"]) >= 1
        assert "server" not in flooded.headers
    deadline = time.monotonic() + 10  # the audit line is written just after the answer is sent
    while '"status": 429' not in (text := log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert text.count('"status": 429') == 1 and text.count('"status": 401') == 1
    assert str(rows[0]["mean_radius"]) not in text

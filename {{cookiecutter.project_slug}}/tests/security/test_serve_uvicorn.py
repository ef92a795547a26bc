"""The real service: uvicorn on 127.0.0.1 in a subprocess, real sockets, then stopped.

Attacks that only exist on a real server run here: forged X-Forwarded-For from a local
client, a flood of connections that never finish their headers, a body trickled in byte by
byte, garbage on the wire (whose warning must still be a JSON line), and a model the
integrity checks refuse (the service must not start). Two worker processes share a real
redis-server for the rate limit; workers without a shared store, or a store that does not
answer, keep the service from starting."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import httpx
import pytest
import yaml
from serve_support import (
    ROOT,
    TOKEN,
    far_outside,
    free_port,
    make_root,
    other_model,
    probe_feature,
    redis_server,
    rows_of,
    save_like_the_pipeline,
)

from conftest import batch_limit
from {{ cookiecutter.package_name }} import signing

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def service_env(root) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != signing.KEY_DIR_ENV}
    env.update(PROJECT_ROOT=str(root.root), MODEL_API_TOKEN=TOKEN, PYTHONPATH=str(ROOT / "src"))
    return env


def serve_command(port: int) -> list[str]:
    return [sys.executable, "-m", "{{ cookiecutter.package_name }}", "serve", "--port", str(port)]


@contextmanager
def running_service(target, frames, params, **serve):
    """(url, port, log) of a service over a fresh project root at `target` with these
    settings, stopped on exit."""
    root = make_root(target / "served", frames[0], params, **serve)
    port = free_port()
    log_path = target / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            serve_command(port), cwd=ROOT, env=service_env(root), stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, log_path.read_text()
                try:  # a TCP connect, not a request: no request may use up the rate limit
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "server did not start in 120 s"
                    time.sleep(0.2)
            yield f"http://127.0.0.1:{port}", port, log_path
        finally:
            stop(process)


@pytest.fixture
def start(tmp_path, frames, params):
    """start(**serve) -> (url, port, log): a service of this test's own."""
    with ExitStack() as stack:
        yield lambda **serve: stack.enter_context(
            running_service(tmp_path, frames, params, **serve)
        )


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, frames, params):
    """One service with short deadlines for the slow-client tests (it starts in seconds)."""
    with running_service(
        tmp_path_factory.mktemp("guarded"),
        frames,
        params,
        header_timeout_seconds=2,
        body_timeout_seconds=1,
        rate_limit="1000/minute",
    ) as service:
        yield service


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for(log, text: str, seconds: float = 10) -> str:
    """The log once it holds `text` (audit lines are written just after the answer)."""
    deadline = time.monotonic() + seconds
    while text not in (content := log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return content


def audit_records(log) -> list[dict]:
    return [r for r in map(json.loads, log.read_text().splitlines()) if "status" in r]


def test_real_server_enforces_token_input_and_rate_limit(start, frames, profile, params):
    probe = probe_feature(profile)
    planted = far_outside(profile, probe, sign=-1) - 0.25
    url, _, log = start(rate_limit="3/minute")
    rows = rows_of(frames[1], min(2, batch_limit(params)))
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/predict", json={"rows": rows}).status_code == 401
        bad = client.post("/predict", json={"rows": [{**rows[0], probe: planted}]}, headers=AUTH)
        assert bad.status_code == 422 and bad.json()["field"] == probe
        good = client.post("/predict", json={"rows": rows}, headers=AUTH)
        assert good.status_code == 200 and len(good.json()["predictions"]) == len(rows)
        flooded = client.post("/predict", json={"rows": rows}, headers=AUTH)
        assert flooded.status_code == 429 and int(flooded.headers["retry-after"]) >= 1
        assert "server" not in flooded.headers
    text = wait_for(log, '"status": 429')
    assert text.count('"status": 429') == 1 and text.count('"status": 401') == 1
    assert str(planted) not in text
    for value in rows[0].values():  # values distinctive enough to be found if logged
        if isinstance(value, float) and len(repr(value)) >= 5:
            assert repr(value) not in text


def test_forged_forwarded_for_from_a_local_client_does_not_raise_its_limit(start, frames):
    """uvicorn believes X-Forwarded-For from 127.0.0.1 by default; this service believes it
    only from serve.trusted_proxies (none), so the limit and the audit log see the real peer."""
    url, _, log = start(rate_limit="5/minute")
    body = {"rows": rows_of(frames[1], 1)}
    with httpx.Client(base_url=url, timeout=30) as client:
        codes = [
            client.post(
                "/predict",
                json=body,
                headers={**AUTH, "X-Forwarded-For": f"198.51.100.{i}", "X-Real-IP": "1.2.3.4"},
            ).status_code
            for i in range(12)
        ]
    assert codes == [200] * 5 + [429] * 7
    wait_for(log, '"status": 429')
    time.sleep(0.3)
    assert {r["client"] for r in audit_records(log)} == {"127.0.0.1"}


def test_a_flood_of_unfinished_headers_neither_locks_out_a_client_nor_stays_open(guarded, frames):
    """200 connections that send half a request and wait: a normal client is still answered
    within 1 s, and every half-open connection is cut at serve.header_timeout_seconds."""
    url, port, log = guarded
    with ExitStack() as stack:
        slow = []
        for _ in range(200):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1")
            slow.append(sock)
        time.sleep(0.5)  # the service has taken the flood in; now a normal client calls
        took = []
        with httpx.Client(base_url=url, timeout=1.0) as client:
            for _ in range(3):  # best of three: one slow answer on a busy machine is no lock-out
                started = time.monotonic()
                answer = client.post("/predict", json={"rows": rows_of(frames[1], 1)}, headers=AUTH)
                took.append(time.monotonic() - started)
                assert answer.status_code == 200
                if took[-1] < 1.0:
                    break
        assert min(took) < 1.0, took
        deadline = time.monotonic() + 10
        open_ones = list(slow)
        while open_ones and time.monotonic() < deadline:
            for sock in list(open_ones):
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                try:
                    if sock.recv(1024) == b"":
                        open_ones.remove(sock)
                except (ConnectionResetError, BrokenPipeError):
                    open_ones.remove(sock)
                except TimeoutError:
                    break
        assert not open_ones, f"{len(open_ones)} half-open connections still open after 10 s"
    rules = {r.get("rule") for r in audit_records(log)}
    assert {"header_timeout", "max_connections"} & rules, rules


def test_a_body_trickled_in_is_cut_off_with_408(guarded, frames):
    url, port, _ = guarded
    body = json.dumps({"rows": rows_of(frames[1], 1)}).encode()
    head = (
        f"POST /predict HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        answer = b""
        for byte in body[:40]:  # one byte every 0.1 s: the whole body would take minutes
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.1)
        try:
            while chunk := sock.recv(4096):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < 6
    with httpx.Client(base_url=url, timeout=5) as client:  # and the service still answers
        assert client.get("/health").status_code == 200


def test_headers_past_the_size_cap_are_431_and_the_connection_closed(guarded):
    """Request line and headers over MAX_HEADER_BYTES: 431, closed, audited (rule
    header_size), however fast they come (the header deadline bounds time, not bytes)."""
    from {{ cookiecutter.package_name }}.serve import MAX_HEADER_BYTES

    url, port, log = guarded
    filler = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
        try:
            for _ in range(MAX_HEADER_BYTES // len(filler) + 8):
                sock.sendall(filler)
                time.sleep(0.005)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while chunk := sock.recv(4096):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert "header_size" in wait_for(log, '"header_size"')
    with httpx.Client(base_url=url, timeout=5) as client:
        assert client.get("/health").status_code == 200


def test_a_body_trickled_after_an_early_answer_is_cut_off(guarded, frames):
    """A request answered before its body arrived (here 401): bytes of that body trickling in
    (each one would restart the keep-alive time) cannot keep the connection open past
    serve.body_timeout_seconds (1 s here)."""
    _, port, _ = guarded
    head = (
        b"POST /predict HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer wrong\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        started, closed = time.monotonic(), False
        sock.settimeout(0.2)
        while time.monotonic() - started < 8:
            try:
                sock.sendall(b" ")
                if sock.recv(4096) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        assert closed and time.monotonic() - started < 4, time.monotonic() - started


def test_every_line_the_service_writes_is_json(guarded, frames):
    """Audit lines, uvicorn's own warnings (here: a request that is not HTTP), start-up,
    cut connections: the stdout and stderr of the service hold JSON lines only."""
    url, port, log = guarded
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
        sock.recv(1024)
    with httpx.Client(base_url=url, timeout=30) as client:
        client.post("/predict", json={"rows": rows_of(frames[1], 1)}, headers=AUTH)
        client.post("/predict", content=b"rows=1", headers=AUTH)
    text = wait_for(log, '"status": 415')
    text = wait_for(log, "Invalid HTTP request")
    lines = text.splitlines()
    assert len(lines) >= 4
    for line in lines:
        json.loads(line)  # raises on the first line that is not JSON
    assert any("Invalid HTTP request" in json.loads(line).get("message", "") for line in lines)


def swap_keys(root, frames, params, profile):
    """keys/ replaced by the attacker's own pair, a model of theirs signed with it."""
    from {{ cookiecutter.package_name }} import model_io

    shutil.rmtree(root.root / "keys")
    signing.generate_keys(root.root / "keys")
    model_io.sio.dump(other_model(frames[0], params, profile), root.model)
    signing.sign(root.model, signing.find_keys(root.root))
    record = json.loads(root.model_manifest.read_text())
    record["sha256"] = model_io.sha256_file(root.model)
    root.model_manifest.write_text(json.dumps(record))


def roll_back(root, frames, params, profile):
    old = root.root / "old"
    shutil.copytree(root.models, old)
    save_like_the_pipeline(other_model(frames[0], params, profile), root)
    for name in ("model.skops", "model.json", "model.sig"):
        shutil.copy2(old / name, root.models / name)


def delete_public_key(root, frames, params, profile):
    shutil.rmtree(root.root / "keys")


@pytest.mark.parametrize(
    ("attack", "expected"),
    [
        (delete_public_key, "no public key"),
        (swap_keys, "pins"),
        (roll_back, "dvc.lock records md5"),
        ("empty key folder", "no public key"),
    ],
    ids=["deleted-public-key", "swapped-key-folder", "rollback", "empty-key-folder"],
)
def test_the_service_refuses_to_start_on_a_model_it_cannot_trust(
    tmp_path, frames, params, profile, attack, expected
):
    root = make_root(tmp_path / "served", frames[0], params)
    env = service_env(root)
    if attack == "empty key folder":
        (tmp_path / "empty").mkdir()
        env[signing.KEY_DIR_ENV] = str(tmp_path / "empty")
    else:
        attack(root, frames, params, profile)
    done = subprocess.run(
        serve_command(free_port()),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,  # a bound, not a speed test: loaded CI machines are slow
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def worker_processes(port: int) -> int:
    """How many worker processes (multiprocessing spawn children, not its resource tracker)
    the service listening on `port` runs (Linux /proc)."""
    from pathlib import Path

    parents, workers = set(), []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes()
            status = (cmdline.parent / "status").read_text()
        except OSError:
            continue
        words = command.split(b"\0")
        if b"serve" in words and str(port).encode() in words:
            parents.add(cmdline.parent.name)
        if b"spawn_main" in command:
            ppid = next(line.split()[1] for line in status.splitlines() if line[:5] == "PPid:")
            workers.append(ppid)
    return sum(workers.count(pid) for pid in parents)


def test_two_workers_sharing_redis_allow_one_client_the_limit_in_total(start, frames, tmp_path):
    """Requests on new connections (any worker may take one) in rounds until both workers
    have answered: one client gets `rate_limit` answers in total, whichever worker it hits."""
    import redis

    if not os.path.isdir("/proc"):
        pytest.skip("counting worker processes reads /proc (Linux)")
    body = {"rows": rows_of(frames[1], 1)}
    with redis_server(tmp_path / "redis") as uri:
        url, port, log = start(workers=2, rate_limit_storage=uri, rate_limit="8/minute")
        store = redis.Redis.from_url(uri)
        # each process that built the app holds a connection: the parent, then both workers
        # (each imports scikit-learn and verifies the model: slow on a loaded machine)
        deadline = time.monotonic() + 300
        while len(store.client_list()) < 4:
            assert time.monotonic() < deadline, f"the workers did not start: {log.read_text()}"
            time.sleep(0.2)
        assert worker_processes(port) == 2, log.read_text()

        def call(_):
            with httpx.Client(timeout=60) as client:  # a new connection: any worker may take it
                return client.post(f"{url}/predict", json=body, headers=AUTH).status_code

        codes: list[int] = []
        for _ in range(6):
            with ThreadPoolExecutor(8) as pool:
                codes += pool.map(call, range(8))
            wait_for(log, '"status": 429', 5)
            workers = {r["worker"] for r in audit_records(log) if r.get("path") == "/predict"}
            if len(workers) == 2:
                break
        assert len(workers) == 2, f"one worker took every connection: {workers}"
        assert codes.count(200) == 8 and codes.count(429) == len(codes) - 8, codes


def test_workers_without_a_shared_store_or_with_a_silent_one_do_not_start(tmp_path, frames, params):
    root = make_root(tmp_path / "served", frames[0], params)
    for serve, expected in (
        ({"workers": 2}, "serve.rate_limit_storage: redis://"),
        (
            {"workers": 2, "rate_limit_storage": f"redis://127.0.0.1:{free_port()}"},
            "does not answer",
        ),
    ):
        changed = {**params, "serve": {**params["serve"], **serve}}
        root.params.write_text(yaml.safe_dump(changed), encoding="utf-8")
        done = subprocess.run(
            serve_command(free_port()),
            cwd=ROOT,
            env=service_env(root),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stdout + done.stderr
        assert expected in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr

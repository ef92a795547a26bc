"""Attacks on the HTTP service through Starlette's TestClient: no token, a flood, bad input,
an oversized body. Each must be refused with the right status, and audited without values."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings

import pytest
from serve_support import ROOT, TOKEN, make_root, rows_of

with warnings.catch_warnings():  # starlette 1.x suggests httpx2; httpx is the pinned client
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from {{ cookiecutter.package_name }}.config import load_params
from {{ cookiecutter.package_name }}.serve import ServeConfigError, create_app

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def root(tmp_path_factory, frames, params):
    return make_root(
        tmp_path_factory.mktemp("http"),
        frames[0],
        params,
        rate_limit="1000/minute",
        max_body_bytes=20000,
        max_batch_rows=10,
    )


@pytest.fixture
def client(root):
    """A fresh app per test, so each starts with an empty rate-limit window."""
    with TestClient(create_app(root, token=TOKEN)) as test_client:
        yield test_client


@pytest.fixture
def audit_lines():
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    handler = Keep()
    logging.getLogger("audit").addHandler(handler)
    yield lines
    logging.getLogger("audit").removeHandler(handler)


def test_valid_request_with_the_token_is_answered_coarsely(client, frames):
    done = client.post("/predict", json={"rows": rows_of(frames[1], 3)}, headers=AUTH)
    assert done.status_code == 200, done.text
    answers = done.json()["predictions"]
    assert len(answers) == 3
    assert all(set(a) == {"label", "confidence"} for a in answers)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789abcdef"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ],
)
def test_missing_or_wrong_token_is_401(client, frames, headers):
    done = client.post("/predict", json={"rows": rows_of(frames[1], 1)}, headers=headers)
    assert done.status_code == 401
    assert done.headers["www-authenticate"] == "Bearer"
    assert "predictions" not in done.json()


def test_a_flood_is_cut_at_the_limit_with_retry_after(root, frames):
    params = load_params(root)
    app = create_app(
        root, {**params, "serve": {**params["serve"], "rate_limit": "5/minute"}}, token=TOKEN
    )
    client = TestClient(app)
    body = {"rows": rows_of(frames[1], 1)}
    codes = [client.post("/predict", json=body, headers=AUTH).status_code for _ in range(8)]
    assert codes == [200] * 5 + [429] * 3
    refused = client.post("/predict", json=body, headers=AUTH)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        (lambda row: row.update(mean_radius=1e6), "mean_radius", "range"),
        (lambda row: row.update(mean_radius="big"), "mean_radius", "type"),
        (lambda row: row.update(mean_radius=None), "mean_radius", "type"),
        (lambda row: row.pop("mean_radius"), "mean_radius", "missing_field"),
        (lambda row: row.update(extra=1.0), "extra", "unknown_field"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_rule(client, frames, change, field, rule):
    rows = rows_of(frames[1], 2)
    change(rows[1])
    done = client.post("/predict", json={"rows": rows}, headers=AUTH)
    assert done.status_code == 422
    answer = done.json()
    assert (answer["field"], answer["rule"], answer["row"]) == (field, rule, 1)
    assert field in answer["message"]


def test_nan_infinity_broken_json_and_big_batches_are_422(client, frames):
    row = rows_of(frames[1], 1)[0]
    for literal, rule in (("NaN", "nan"), ("Infinity", "infinite"), ("-Infinity", "infinite")):
        text = json.dumps({"rows": [row]}).replace(str(row["mean_area"]), literal, 1)
        done = client.post(
            "/predict", content=text, headers={**AUTH, "content-type": "application/json"}
        )
        assert (done.status_code, done.json()["rule"]) == (422, rule), text[:80]
    for broken in (b"{not json", b"\xff\xfe", b"[" * 9000 + b"]" * 9000):
        done = client.post("/predict", content=broken, headers=AUTH)
        assert (done.status_code, done.json()["rule"]) == (422, "json"), broken[:10]
    done = client.post("/predict", json={"rows": [row] * 11}, headers=AUTH)
    assert (done.status_code, done.json()["rule"]) == (422, "batch_size")
    done = client.post("/predict", json={"instances": [row]}, headers=AUTH)
    assert (done.status_code, done.json()["field"]) == (422, "rows")


def test_an_oversized_body_is_413_even_without_content_length(client, frames):
    big = json.dumps({"rows": rows_of(frames[1], 1), "pad": "x" * 30000}).encode()
    assert client.post("/predict", content=big, headers=AUTH).status_code == 413

    def chunks():
        for _ in range(40):
            yield b" " * 1000

    assert client.post("/predict", content=chunks(), headers=AUTH).status_code == 413


def test_every_request_is_audited_without_input_values(client, frames, audit_lines):
    rows = rows_of(frames[1], 2)
    client.post("/predict", json={"rows": rows}, headers=AUTH)
    client.post("/predict", json={"rows": rows})
    client.post("/predict", json={"rows": [{**rows[0], "mean_radius": 123456.789}]}, headers=AUTH)
    client.get("/health")
    records = [json.loads(line) for line in audit_lines]
    assert [r["status"] for r in records] == [200, 401, 422, 200]
    assert [r["rows"] for r in records] == [2, 0, 0, 0]
    for record in records:
        assert {"time", "client", "status", "rows", "latency_ms"} <= set(record)
    assert (records[2]["rule"], records[2]["field"]) == ("range", "mean_radius")
    text = "\n".join(audit_lines)
    for value in [*rows[0].values(), 123456.789]:
        assert str(value) not in text
    assert TOKEN not in text


def test_audit_lines_can_go_to_a_file_instead_of_stderr(root, frames, tmp_path):
    params = load_params(root)
    target = tmp_path / "audit.jsonl"
    app = create_app(
        root, {**params, "serve": {**params["serve"], "audit_log": str(target)}}, token=TOKEN
    )
    with TestClient(app) as client:
        client.post("/predict", json={"rows": rows_of(frames[1], 1)}, headers=AUTH)
        client.post("/predict", json={"rows": rows_of(frames[1], 1)})
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [line["status"] for line in lines] == [200, 401]


def test_service_refuses_to_start_without_a_strong_token(root, monkeypatch):
    params = load_params(root)
    monkeypatch.delenv("MODEL_API_TOKEN", raising=False)
    with pytest.raises(ServeConfigError, match="MODEL_API_TOKEN is not set"):
        create_app(root, params)
    monkeypatch.setenv("MODEL_API_TOKEN", "short")
    with pytest.raises(ServeConfigError, match="shorter than"):
        create_app(root, params)
    env = {"PATH": "/usr/bin:/bin", "PROJECT_ROOT": str(root.root), "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "{{ cookiecutter.package_name }}", "serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "MODEL_API_TOKEN is not set" in done.stderr and "Traceback" not in done.stderr


def test_service_refuses_a_public_address_unless_asked(root):
    env = {
        "PATH": "/usr/bin:/bin",
        "PROJECT_ROOT": str(root.root),
        "MODEL_API_TOKEN": TOKEN,
        "PYTHONPATH": str(ROOT / "src"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "{{ cookiecutter.package_name }}", "serve", "--host", "0.0.0.0"],  # noqa: S104
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--allow-remote" in done.stderr

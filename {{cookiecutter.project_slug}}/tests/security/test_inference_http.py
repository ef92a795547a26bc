"""Attacks on the HTTP service through Starlette's TestClient: no token, a flood, bad input,
an oversized body, duplicate keys, a body not sent as JSON, forged proxy headers, probing for
the allowed ranges. Each must be refused with the right status, and audited without values.
The rows sent and the feature attacked come from the configured data and its profile."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import warnings

import pytest
from serve_support import (
    ROOT,
    TOKEN,
    far_outside,
    free_port,
    make_root,
    probe_feature,
    redis_server,
    rows_of,
)

with warnings.catch_warnings():  # starlette 1.x suggests httpx2; httpx is the pinned client
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from {{ cookiecutter.package_name }}.config import load_params
from {{ cookiecutter.package_name }}.serve import ServeConfigError, create_app

AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {**AUTH, "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def root(tmp_path_factory, frames, params):
    return make_root(
        tmp_path_factory.mktemp("http"),
        frames[0],
        params,
        rate_limit="1000/minute",
        max_body_bytes=20000,
        max_batch_rows=10,
        explain_ranges=False,  # the closed answers; a test opens them explicitly
    )


@pytest.fixture(scope="module")
def probe(profile):
    """The numeric feature the attacks aim at."""
    return probe_feature(profile)


@pytest.fixture(scope="module")
def predictor(root):
    """The verified model and schema, as create_app builds them (loaded and verified once)."""
    from {{ cookiecutter.package_name }}.inference import Predictor

    return Predictor(root)


@pytest.fixture
def client(root, predictor):
    """A fresh app per test, so each starts with an empty rate-limit window."""
    with TestClient(create_app(root, token=TOKEN, predictor=predictor)) as test_client:
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


def test_valid_request_with_the_token_is_answered_coarsely(client, frames, task, params):
    done = client.post("/predict", json={"rows": rows_of(frames[1], 3)}, headers=AUTH)
    assert done.status_code == 200, done.text
    answers = done.json()["predictions"]
    assert len(answers) == 3
    if task == "regression":
        assert all(set(a) == {"value"} and isinstance(a["value"], float) for a in answers)
        return
    keys = {"band": {"label", "confidence"}, "rounded": {"label", "confidence"}}
    keys.update(none={"label"}, full={"label", "probabilities"})
    assert all(set(a) == keys[params["serve"].get("confidence", "band")] for a in answers)


def test_the_example_request_of_the_pipeline_is_answered(client):
    """reports/example-request.json (written by evaluate) is a body the service accepts."""
    example = ROOT / "reports" / "example-request.json"
    if not example.is_file():
        pytest.skip("reports/example-request.json is written by make pipeline")
    done = client.post("/predict", content=example.read_bytes(), headers=JSON)
    assert done.status_code == 200, done.text
    assert len(done.json()["predictions"]) == len(json.loads(example.read_text())["rows"])


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
    ("change", "rule"),
    [
        (lambda row, name, far: row.update({name: far}), "range"),
        (lambda row, name, far: row.update({name: "big"}), "type"),
        (lambda row, name, far: row.update({name: None}), "type"),
        (lambda row, name, far: row.pop(name), "missing_field"),
        (lambda row, name, far: row.update(extra=1.0), "unknown_field"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_rule(client, frames, profile, probe, change, rule):
    rows = rows_of(frames[1], 2)
    change(rows[1], probe, far_outside(profile, probe))
    field = "extra" if rule == "unknown_field" else probe
    done = client.post("/predict", json={"rows": rows}, headers=AUTH)
    assert done.status_code == 422
    answer = done.json()
    assert (answer["field"], answer["rule"], answer["row"]) == (field, rule, 1)
    assert field in answer["message"]


def test_nan_infinity_broken_json_and_big_batches_are_422(client, frames, probe):
    row = rows_of(frames[1], 1)[0]
    marked = json.dumps({"rows": [{**row, probe: "@value@"}]})
    for literal, rule in (("NaN", "nan"), ("Infinity", "infinite"), ("-Infinity", "infinite")):
        text = marked.replace('"@value@"', literal, 1)
        done = client.post(
            "/predict", content=text, headers={**AUTH, "content-type": "application/json"}
        )
        assert (done.status_code, done.json()["rule"]) == (422, rule), text[:80]
    for broken in (b"{not json", b"\xff\xfe", b"[" * 9000 + b"]" * 9000):
        done = client.post("/predict", content=broken, headers=JSON)
        assert (done.status_code, done.json()["rule"]) == (422, "json"), broken[:10]
    done = client.post("/predict", json={"rows": [row] * 11}, headers=AUTH)
    assert (done.status_code, done.json()["rule"]) == (422, "batch_size")
    done = client.post("/predict", json={"instances": [row]}, headers=AUTH)
    assert (done.status_code, done.json()["field"]) == (422, "rows")


def test_an_oversized_body_is_413_even_without_content_length(client, frames):
    big = json.dumps({"rows": rows_of(frames[1], 1), "pad": "x" * 30000}).encode()
    assert client.post("/predict", content=big, headers=JSON).status_code == 413

    def chunks():
        for _ in range(40):
            yield b" " * 1000

    assert client.post("/predict", content=chunks(), headers=JSON).status_code == 413


def test_every_request_is_audited_without_input_values(client, frames, profile, probe, audit_lines):
    rows = rows_of(frames[1], 2)
    planted = far_outside(profile, probe) + 0.789
    client.post("/predict", json={"rows": rows}, headers=AUTH)
    client.post("/predict", json={"rows": rows})
    client.post("/predict", json={"rows": [{**rows[0], probe: planted}]}, headers=AUTH)
    client.get("/health")
    records = [json.loads(line) for line in audit_lines]
    assert [r["status"] for r in records] == [200, 401, 422, 200]
    assert [r["rows"] for r in records] == [2, 0, 0, 0]
    for record in records:
        assert {"time", "client", "status", "rows", "latency_ms"} <= set(record)
    assert (records[2]["rule"], records[2]["field"]) == ("range", probe)
    text = "\n".join(audit_lines)
    # Values distinctive enough to be found if logged: numbers with several digits, long text.
    sent = [v for v in rows[0].values() if isinstance(v, float) and len(repr(v)) >= 5]
    sent += [v for v in rows[0].values() if isinstance(v, str) and len(v) >= 6]
    for value in [*sent, planted]:
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


def test_a_key_given_twice_is_422_whichever_would_win(client, frames, probe, audit_lines):
    """`"feature": 1e300, ..., "feature": <a good value>`: parsers disagree on which one
    counts, so neither does."""
    row = rows_of(frames[1], 1)[0]
    inner = json.dumps(row)[1:-1]
    key, good = json.dumps(probe), json.dumps(row[probe])
    bodies = (
        '{"rows": [{' + key + ": 1e300, " + inner + "}]}",
        '{"rows": [{' + inner + ", " + key + ": " + good + "}]}",
        '{"rows": [], "rows": [{' + inner + "}]}",
    )
    for body in bodies:
        done = client.post("/predict", content=body, headers=JSON)
        assert done.status_code == 422, body[:60]
        assert done.json()["rule"] == "duplicate_key"
        assert done.json()["field"] in {probe, "rows"}
    assert json.loads(audit_lines[0])["rule"] == "duplicate_key"


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=utf-16"],
)
def test_a_body_not_sent_as_json_is_415(client, frames, content_type):
    body = json.dumps({"rows": rows_of(frames[1], 1)})
    headers = dict(AUTH)
    if content_type:
        headers["Content-Type"] = content_type
    done = client.post("/predict", content=body, headers=headers)
    assert done.status_code == 415, done.text
    assert "application/json" in done.json()["message"]
    ok = client.post(
        "/predict",
        content=body,
        headers={**JSON, "Content-Type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 200


def test_a_422_names_field_and_rule_but_keeps_the_range_for_the_audit_log(
    root, client, frames, profile, probe, audit_lines
):
    """Probing out-of-range values must not read the reference profile off the answers."""
    row = {**rows_of(frames[1], 1)[0], probe: far_outside(profile, probe)}
    done = client.post("/predict", json={"rows": [row]}, headers=AUTH)
    answer = done.json()
    assert done.status_code == 422 and (answer["field"], answer["rule"]) == (probe, "range")
    assert probe in answer["message"] and "range" in answer["message"]
    assert not re.search(r"\d\.\d|\[", answer["message"]), answer["message"]
    audited = json.loads(audit_lines[-1])
    assert audited["rule"] == "range" and "[" in audited["reason"], audited
    params = load_params(root)
    explained = create_app(
        root, {**params, "serve": {**params["serve"], "explain_ranges": True}}, token=TOKEN
    )
    with TestClient(explained) as open_client:
        done = open_client.post("/predict", json={"rows": [row]}, headers=AUTH)
    assert re.search(r"\[-?\d", done.json()["message"]), done.json()


def test_an_unknown_category_is_422_without_the_category_list(client, frames, profile):
    """Guessing categories must not read the reference's list off the answers."""
    categorical = [n for n, e in profile["features"].items() if e["type"] == "categorical"]
    if not categorical:
        pytest.skip("the profile has no categorical feature")
    name = categorical[0]
    row = {**rows_of(frames[1], 1)[0], name: "no-such-category-0"}
    done = client.post("/predict", json={"rows": [row]}, headers=AUTH)
    answer = done.json()
    assert done.status_code == 422 and (answer["field"], answer["rule"]) == (name, "category")
    for category in profile["features"][name]["categories"]:
        assert f"{category}," not in answer["message"] and "allowed:" not in answer["message"]
    typed = client.post("/predict", json={"rows": [{**row, name: 3.5}]}, headers=AUTH)
    assert (typed.status_code, typed.json()["rule"]) == (422, "type")


def test_forged_forwarded_for_counts_only_from_a_listed_proxy(root, frames, audit_lines):
    params = load_params(root)
    body = {"rows": rows_of(frames[1], 1)}
    limited = {**params["serve"], "rate_limit": "3/minute"}
    app = create_app(root, {**params, "serve": limited}, token=TOKEN)
    client = TestClient(app, client=("127.0.0.1", 50000))
    codes = [
        client.post(
            "/predict", json=body, headers={**AUTH, "X-Forwarded-For": f"203.0.113.{i}"}
        ).status_code
        for i in range(6)
    ]
    assert codes == [200] * 3 + [429] * 3
    assert {json.loads(line)["client"] for line in audit_lines} == {"127.0.0.1"}
    audit_lines.clear()
    proxied = {**limited, "trusted_proxies": ["10.0.0.0/8"]}
    app = create_app(root, {**params, "serve": proxied}, token=TOKEN)
    via_proxy = TestClient(app, client=("10.1.2.3", 50000))
    for i in range(2):
        headers = {**AUTH, "X-Forwarded-For": f"203.0.113.{i}"}
        assert via_proxy.post("/predict", json=body, headers=headers).status_code == 200
    assert [json.loads(line)["client"] for line in audit_lines] == ["203.0.113.0", "203.0.113.1"]


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("trusted_proxies", ["*"]),
        ("trusted_proxies", "10.0.0.1"),
        ("header_timeout_seconds", 0),
        ("max_connections", 0),
        ("explain_ranges", "yes"),
        ("workers", 0),
        ("workers", "many"),
        ("workers", 2),  # with the in-memory store, each worker would allow the whole limit
        ("rate_limit_storage", "mongodb://127.0.0.1:27017"),
        ("rate_limit_storage", "redis://:secret@127.0.0.1:6379"),
    ],
)
def test_unsafe_or_broken_serve_settings_are_refused(root, setting, value):
    params = load_params(root)
    with pytest.raises(ServeConfigError, match=f"serve.{setting}"):
        create_app(root, {**params, "serve": {**params["serve"], setting: value}}, token=TOKEN)


def test_replicas_sharing_redis_allow_one_client_the_limit_in_total(root, frames, tmp_path):
    """Two services (as two replicas or workers: each its own limiter) sharing a real Redis
    let one client through `rate_limit` times in total; with memory://, each lets it through
    that often (why more than one worker needs the shared store)."""
    params = load_params(root)
    body = {"rows": rows_of(frames[1], 1)}
    allowed = {}
    with redis_server(tmp_path / "redis") as uri:
        for store in ("memory://", uri):
            serve = {**params["serve"], "rate_limit": "5/minute", "rate_limit_storage": store}
            apps = [create_app(root, {**params, "serve": serve}, token=TOKEN) for _ in range(2)]
            clients = [TestClient(app) for app in apps]
            codes = [
                clients[i % 2].post("/predict", json=body, headers=AUTH).status_code
                for i in range(14)
            ]
            assert set(codes) == {200, 429}, codes
            allowed[store] = codes.count(200)
    assert allowed == {"memory://": 10, uri: 5}


def test_a_shared_store_that_stops_answering_turns_requests_into_503(root, frames, tmp_path):
    params = load_params(root)
    body = {"rows": rows_of(frames[1], 1)}
    with redis_server(tmp_path / "redis") as uri:
        serve = {**params["serve"], "rate_limit_storage": uri}
        client = TestClient(create_app(root, {**params, "serve": serve}, token=TOKEN))
        assert client.post("/predict", json=body, headers=AUTH).status_code == 200
    refused = client.post("/predict", json=body, headers=AUTH)
    assert refused.status_code == 503 and refused.json()["error"] == "unavailable"
    assert client.get("/health").status_code == 503


def test_a_shared_store_that_does_not_answer_at_start_is_refused(root):
    params = load_params(root)
    serve = {**params["serve"], "rate_limit_storage": f"redis://127.0.0.1:{free_port()}"}
    with pytest.raises(ServeConfigError, match="does not answer") as refused:
        create_app(root, {**params, "serve": serve}, token=TOKEN)
    assert "\n" not in str(refused.value)

"""`make bench-serve`: the guarded service under load, beside a bare endpoint (performance test).

Two servers on 127.0.0.1, started together by this script (each is measured while the other
idles) and stopped by it, both on the pipeline's verified model (models/model.skops, or
--project's) and with the same number of uvicorn workers:

  guarded  the service exactly as `make serve` runs it (python -m PACKAGE serve), every guard
           on: token, rate limit (raised to a count the load never reaches: every request is
           still counted), body and schema checks, coarse answers, the JSON audit log
           (written to a scratch file)
  bare     a minimal Starlette app: the posted rows into a DataFrame, the model's own
           predict_proba (predict for regression), the labels back; no token, no checks, no
           limit, no log

Each takes batches of 1 and 100 rows (100 lowered to serve.max_batch_rows where that is
smaller; the pipeline's reports/example-request.json rows, repeated) over 1 and 8 keep-alive
HTTP/1.1 connections for --seconds per case. The load generator is `wrk` when it is on PATH,
else a small asyncio client of this script (the table says which ran). In process, the
guarded `Predictor.predict` on one row is timed against the model's own call on the same row
(a one-row DataFrame built beforehand): medians.

The table (throughput, p50 and p99 latency, errors), the machine and the command go to
benchmarks/RESULTS.md (its bench-serve section; bench-scale keeps its own) and are printed.
Goals (params.yaml `bench:` serve_*, predict_ratio) are reported met or MISSED, not enforced:
timings depend on the machine. Workers: serve.workers as the service resolves it (auto with
the in-memory store: 1); --workers N > 1 starts a scratch redis-server (loopback, nothing
persisted) as the shared rate-limit store, so it needs redis-server on PATH.

  python benchmarks/serve.py                          # 5 s per case
  python benchmarks/serve.py --seconds 1 --batches 1 --connections 1,2 --output /tmp/r.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess  # nosec B404 - starts this project's own service, wrk and redis-server
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from results import machine, write_section  # benchmarks/results.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
PACKAGE = "{{ cookiecutter.package_name }}"
GOALS = {
    "serve_requests_per_second": 1000,
    "serve_p99_ms": 20,
    "serve_share_of_bare": 0.5,
    "predict_ratio": 1.5,
}
TOKEN = "bench-serve-" + os.urandom(12).hex()  # a throw-away token for this run only
SECTION = "bench-serve"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(port: int, process: subprocess.Popen, log: Path, seconds: float = 180):
    """Until GET /health answers 200 (every worker may still be loading: one answer is enough
    to start; the warm-up of each case lets the others join), asked every 20 ms."""
    deadline = time.monotonic() + seconds
    request = b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    while True:
        if process.poll() is not None:
            raise SystemExit(f"bench-serve: a server did not start:\n{log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(request)
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"bench-serve: no server on port {port} after {seconds:.0f} s")
        time.sleep(0.02)


@contextmanager
def running(command: list[str], env: dict[str, str], port: int, log: Path):
    """A server started (not waited for: see wait_until_serving), stopped on exit."""
    with log.open("w") as out:
        # this project's interpreter and script, an argument list, no shell
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)  # nosec B603
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def redis_store(folder: Path):
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit(
            "bench-serve: --workers above 1 needs a shared rate-limit store and redis-server "
            "is not installed (sudo apt-get install redis-server), or use --workers 1"
        )
    port = free_port()
    command = [executable, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    command += ["--appendonly", "no", "--dir", str(folder)]
    with (folder / "redis.log").open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out)  # nosec B603 - fixed args
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise SystemExit("bench-serve: redis-server did not start") from None
                    time.sleep(0.01)
            yield f"redis://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=20)


def scratch_root(folder: Path, serve: dict[str, Any], project: Path) -> Path:
    """A copy of what the service reads (params.yaml with these serve settings, the profile,
    the model and dvc.lock), so the benchmark never edits the project's params.yaml."""
    import yaml

    root = folder / "project"
    root.mkdir()
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    params["serve"] = {**(params.get("serve") or {}), **serve}
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    shutil.copytree(project / "reference", root / "reference")
    shutil.copytree(project / "models", root / "models")
    shutil.copy2(project / "dvc.lock", root / "dvc.lock")
    return root


def request_bytes(rows: list[dict[str, Any]], token: str | None) -> bytes:
    body = json.dumps({"rows": rows}).encode()
    head = [
        "POST /predict HTTP/1.1",
        "Host: bench",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if token:
        head.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def one_connection(port: int, request: bytes, stop: float, record: list, errors: list):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            record.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n", 1)[0].decode(errors="replace"))
            if re.search(rb"(?i)connection:\s*close", head):
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def asyncio_load(port: int, request: bytes, connections: int, seconds: float):
    record: list[float] = []
    errors: list[str] = []
    stop = time.perf_counter() + seconds
    started = time.perf_counter()
    await asyncio.gather(
        *(one_connection(port, request, stop, record, errors) for _ in range(connections))
    )
    return len(record) / (time.perf_counter() - started), record, errors


def python_client(port: int, request: bytes, connections: int, seconds: float) -> dict[str, Any]:
    asyncio.run(asyncio_load(port, request, connections, min(seconds, 0.5)))  # warm-up
    rate, record, errors = asyncio.run(asyncio_load(port, request, connections, seconds))
    quantiles = statistics.quantiles(record, n=100, method="inclusive") if len(record) > 1 else []
    return {
        "rps": rate,
        "p50_ms": statistics.median(record) * 1000 if record else float("nan"),
        "p99_ms": quantiles[98] * 1000 if quantiles else float("nan"),
        "requests": len(record),
        "errors": len(errors),
    }


WRK_SCRIPT = """
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("BENCH_TOKEN")
if token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
done = function(summary, latency, requests)
  io.write(string.format("BENCH %d %d %d %f %f\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_client(
    port: int, body: bytes, token: str | None, connections: int, seconds: float, folder: Path
) -> dict[str, Any]:
    script, payload = folder / "bench.lua", folder / "body.json"
    script.write_text(WRK_SCRIPT, encoding="utf-8")
    payload.write_bytes(body)
    env = {**os.environ, "BENCH_BODY": str(payload), "BENCH_TOKEN": token or ""}
    url = f"http://127.0.0.1:{port}/predict"

    def run(duration: float) -> str:
        command = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{max(1, round(duration))}s"]
        command += ["-s", str(script), url]
        done = subprocess.run(  # nosec B603 - wrk from PATH, an argument list, no shell
            command, env=env, capture_output=True, text=True, check=False, timeout=600
        )
        if done.returncode:
            raise SystemExit(f"bench-serve: wrk failed: {done.stderr.strip()[-500:]}")
        return done.stdout

    run(1)  # warm-up
    line = next(x for x in run(seconds).splitlines() if x.startswith("BENCH "))
    requests, errors, duration_us, p50_us, p99_us = line.split()[1:]
    return {
        "rps": int(requests) / (int(duration_us) / 1e6),
        "p50_ms": float(p50_us) / 1000,
        "p99_ms": float(p99_us) / 1000,
        "requests": int(requests),
        "errors": int(errors),
    }


def model_frame(rows: list[dict[str, Any]], columns: list[str]) -> Any:
    """The rows as a DataFrame of the model's columns, JSON booleans as the 0/1 numbers the
    model was trained on (its imputer takes no bool dtype)."""
    import pandas as pd

    frame = pd.DataFrame(rows)[columns]
    flags = [c for c in columns if frame[c].dtype == bool]
    if flags:
        frame[flags] = frame[flags].astype(float)
    return frame


def bare_app() -> Any:
    """The bare endpoint: the same verified model, none of the service's guards."""
    import numpy as np
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from {{ cookiecutter.package_name }}.config import Paths
    from {{ cookiecutter.package_name }}.model_io import load_model

    paths = Paths()
    model = load_model(paths.model, paths.model_manifest)
    columns = [str(c) for c in model.feature_names_in_]
    classes = list(getattr(model, "classes_", []))

    async def predict(request: Request) -> JSONResponse:
        frame = model_frame((await request.json())["rows"], columns)
        if not classes:
            return JSONResponse({"predictions": [float(v) for v in model.predict(frame)]})
        best = np.argmax(model.predict_proba(frame), axis=1)
        labels = [classes[i].item() if hasattr(classes[i], "item") else classes[i] for i in best]
        return JSONResponse({"predictions": labels})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)]
    )


def bare_protocol() -> type:
    """uvicorn's own HTTP protocol, with TCP_NODELAY set as the guarded service sets it:
    uvicorn's socket for more than one worker lacks it (each response would then wait ~40 ms
    on a delayed acknowledgement), a transport fault, not a cost of the guards."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from {{ cookiecutter.package_name }}.serve import no_delay

    class NoDelayHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            no_delay(transport)

    return NoDelayHttpToolsProtocol


def __getattr__(name: str) -> Any:
    """serve:NoDelayHttpToolsProtocol, which uvicorn imports by name in each bare worker."""
    if name == "NoDelayHttpToolsProtocol":
        return bare_protocol()
    raise AttributeError(name)


def serve_bare(port: int, workers: int) -> int:
    import uvicorn

    uvicorn.run(
        "serve:bare_app" if workers > 1 else bare_app(),
        factory=workers > 1,
        workers=workers,
        host="127.0.0.1",
        port=port,
        http="serve:NoDelayHttpToolsProtocol",
        log_level="warning",
        access_log=False,
    )
    return 0


def predict_ratio(rows: list[dict[str, Any]], predictor: Any) -> dict[str, Any]:
    """Guarded Predictor.predict on one row against the model's own call on the same row."""
    import timeit

    row = rows[:1]
    frame = model_frame(row, predictor.columns)
    model = predictor.model
    own = model.predict if predictor.task == "regression" else model.predict_proba
    for _ in range(20):  # warm-up
        predictor.predict(row), own(frame)
    guarded = statistics.median(timeit.repeat(lambda: predictor.predict(row), number=1, repeat=300))
    bare = statistics.median(timeit.repeat(lambda: own(frame), number=1, repeat=300))
    return {
        "guarded_ms": guarded * 1000,
        "model_ms": bare * 1000,
        "ratio": guarded / bare,
        "fast_path": predictor.fast is not None,
    }


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(results, ratio, args, workers, store, client, command, budget) -> list[str]:
    lines = [
        "# Serve benchmark (make bench-serve)",
        "",
        f"Machine: {machine()}. Command: `{command}`. Load generator: {client}; "
        f"{args.seconds:g} s per case after a warm-up; {workers} uvicorn worker(s) per server "
        f"(rate-limit store of the guarded service: {store}).",
        "",
        "| server | rows per request | connections | requests/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (server, batch, connections), r in results.items():
        lines.append(
            f"| {server} | {batch} | {connections} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['errors']} |"
        )
    lines += [
        "",
        f"In process: guarded `Predictor.predict` on one row {ratio['guarded_ms']:.3f} ms, the "
        f"model's own call on the same row {ratio['model_ms']:.3f} ms: {ratio['ratio']:.2f}x "
        f"(fast path {'on' if ratio['fast_path'] else 'off'}).",
        "",
        "Goals (params.yaml `bench:`; reported, not enforced):",
        "",
    ]
    connections, batch = max(args.connections), min(args.batches)
    guarded = results.get(("guarded", batch, connections))
    bare = results.get(("bare", batch, connections))
    if guarded and bare:
        rps, p99 = budget["serve_requests_per_second"], budget["serve_p99_ms"]
        share = guarded["rps"] / bare["rps"] if bare["rps"] else float("nan")
        least = budget["serve_share_of_bare"]
        clean = guarded["errors"] == 0
        lines += [
            f"- guarded, {batch} row(s), {connections} connections: {guarded['rps']:,.0f} "
            f"requests/s (goal >= {rps:,.0f}): {verdict(guarded['rps'] >= rps and clean)}",
            f"- its p99 latency {guarded['p99_ms']:.2f} ms (goal <= {p99:g} ms): "
            f"{verdict(guarded['p99_ms'] <= p99 and clean)}",
            f"- its throughput {share:.2f}x the bare endpoint's (goal >= "
            f"{least:g}x): {verdict(share >= least)}",
        ]
    lines.append(
        f"- guarded predict on one row {ratio['ratio']:.2f}x the model's own call (goal <= "
        f"{budget['predict_ratio']:g}x): {verdict(ratio['ratio'] <= budget['predict_ratio'])}"
    )
    return [*lines, ""]


def numbers(text: str) -> list[int]:
    """Whole numbers >= 1 from "1,8" (empty when the text is not that)."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        return []
    return values if values and min(values) >= 1 else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])

    def refuse(message: str) -> None:  # one line, not argparse's usage block
        print(f"bench-serve: {message}", file=sys.stderr)
        raise SystemExit(2)

    parser.error = refuse  # type: ignore[method-assign]
    parser.add_argument("--seconds", type=float, default=5.0, help="per case (default 5)")
    batches = "rows per request (default 1,100; 100 capped at serve.max_batch_rows)"
    parser.add_argument("--batches", default="", help=batches)
    parser.add_argument("--connections", default="1,8", help="keep-alive connections (1,8)")
    parser.add_argument("--workers", default="auto", help="uvicorn workers (default serve.workers)")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--project", default=str(ROOT), help="the project whose model is served")
    parser.add_argument("--bare-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_port:
        return serve_bare(args.bare_port, int(args.workers))
    if not args.seconds > 0:
        parser.error("--seconds: give a duration above 0")
    for flag in ("batches", "connections"):
        if flag == "batches" and not args.batches:
            continue  # the default needs serve.max_batch_rows, read below
        values = numbers(getattr(args, flag))
        if not values:
            parser.error(f"--{flag} {getattr(args, flag)!r}: give whole numbers >= 1, e.g. 1,8")
        setattr(args, flag, values)
    if args.workers != "auto" and (not args.workers.isdigit() or int(args.workers) < 1):
        parser.error("--workers: auto or a whole number >= 1")
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    elif client == "wrk" and not shutil.which("wrk"):
        parser.error("--client wrk: wrk is not on PATH (sudo apt-get install wrk)")
    import yaml

    project = Path(args.project).resolve()
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    budget = {**GOALS, **(params.get("bench") or {})}
    example = project / "reports" / "example-request.json"
    if not (project / "models" / "model.skops").is_file() or not example.is_file():
        raise SystemExit("bench-serve: no model or reports/example-request.json: run make pipeline")
    examples = json.loads(example.read_text(encoding="utf-8"))["rows"]
    from {{ cookiecutter.package_name }}.serve import settings_from

    settings = settings_from(params)
    batch_limit = int(settings["max_batch_rows"])
    if not args.batches:
        args.batches = sorted({1, min(100, batch_limit)})
    if max(args.batches) > batch_limit:
        parser.error(f"--batches: at most serve.max_batch_rows ({batch_limit}) rows per request")
    auto = args.workers == "auto"
    workers = int(settings["workers"]) if auto else int(args.workers)
    if os.environ.get("MODEL_SIGNING_KEY_DIR") is None:
        os.environ["MODEL_SIGNING_KEY_DIR"] = str(project / "keys")
    results: dict[tuple[str, int, int], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch, ExitStack() as stack:
        folder = Path(scratch)
        # one worker counts in memory; more share a scratch Redis (never the project's store)
        store = stack.enter_context(redis_store(folder)) if workers > 1 else "memory://"
        shown = "redis:// (a scratch redis-server)" if workers > 1 else "memory://"
        root = scratch_root(
            folder,
            {
                "rate_limit": "100000000/minute",
                "audit_log": str(folder / "audit.jsonl"),
                "workers": workers,
                "rate_limit_storage": store,
            },
            project,
        )
        env = {**os.environ, "PROJECT_ROOT": str(root), "MODEL_API_TOKEN": TOKEN}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "benchmarks")])
        servers = {
            "guarded": [sys.executable, "-m", PACKAGE, "serve", "--port"],
            "bare": [
                sys.executable,
                str(ROOT / "benchmarks" / "serve.py"),
                "--workers",
                str(workers),
                "--bare-port",
            ],
        }
        # Both servers start together, while this process loads the model for the in-process
        # timing; every measurement waits until both serve, and each server is measured
        # while the other idles.
        started = {}
        for server, command in servers.items():
            port, log = free_port(), folder / f"{server}.log"
            process = stack.enter_context(running([*command, str(port)], env, port, log))
            started[server] = port, log, process
        from {{ cookiecutter.package_name }}.config import Paths
        from {{ cookiecutter.package_name }}.inference import Predictor

        predictor = Predictor(Paths(project))
        for port, log, process in started.values():
            wait_until_serving(port, process, log)
        ratio = predict_ratio(examples, predictor)
        for server, (port, _, _) in started.items():
            for batch in args.batches:
                rows = (examples * batch)[:batch]
                token = TOKEN if server == "guarded" else None
                for connections in args.connections:
                    if client == "wrk":
                        body = json.dumps({"rows": rows}).encode()
                        result = wrk_client(port, body, token, connections, args.seconds, folder)
                    else:
                        request = request_bytes(rows, token)
                        result = python_client(port, request, connections, args.seconds)
                    results[(server, batch, connections)] = result
                    print(
                        f"bench-serve: {server:<7} {batch:>3} row(s) {connections} conn "
                        f"{result['rps']:8,.0f} req/s p50 {result['p50_ms']:6.2f} ms "
                        f"p99 {result['p99_ms']:6.2f} ms errors {result['errors']}",
                        flush=True,
                    )
    command = "python benchmarks/serve.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = report(results, ratio, args, workers, shown, client, command.strip(), budget)
    write_section(Path(args.output), SECTION, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

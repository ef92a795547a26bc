"""Performance tests: a smoke-sized run of `make bench-serve` (benchmarks/serve.py).

The full benchmark (5 s per case, batches of 1 and 100 rows, 1 and 8 connections) is a
measurement, not a test: its table is in benchmarks/RESULTS.md. Here the same script runs
once, for a tenth of a second per case on a scratch project with a freshly trained, signed
model, so a change that breaks the guarded service under load (errors, a server that does
not start) or the benchmark itself is caught by `make test`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import batch_limit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "security"))


def scratch_project(tmp_path, frames, params):
    from serve_support import make_root, rows_of

    paths = make_root(tmp_path / "project", frames[0], params)
    (paths.root / "reports").mkdir(exist_ok=True)
    example = {"rows": rows_of(frames[1], min(3, batch_limit(params)))}
    (paths.root / "reports" / "example-request.json").write_text(json.dumps(example))
    return paths.root


def bench(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "benchmarks" / "serve.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)


def test_the_serve_benchmark_runs_and_writes_its_own_section(tmp_path, frames, params):
    """One run, 0.1 s per case: it rewrites its own section of the results file (an older
    one is there) and keeps the other benchmarks' sections."""
    project = scratch_project(tmp_path, frames, params)
    output = tmp_path / "RESULTS.md"
    kept = "<!-- bench-scale:begin -->\nthe scale table\n<!-- bench-scale:end -->\n"
    older = "<!-- bench-serve:begin -->\nan older serve table\n<!-- bench-serve:end -->\n"
    output.write_text(kept + "\n" + older, encoding="utf-8")
    batches = sorted({1, min(3, batch_limit(params))})  # the second within serve.max_batch_rows
    done = bench(
        "--project", str(project), "--seconds", "0.1", "--batches", ",".join(map(str, batches)),
        "--connections", "1,2", "--client", "python", "--workers", "1", "--output", str(output),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    text = output.read_text(encoding="utf-8")
    assert text.startswith(kept), "the bench-scale section must be kept"
    assert text.count("<!-- bench-serve:begin -->") == 1 and "an older serve table" not in text
    assert "Machine:" in text and "Command:" in text and "Load generator: python" in text
    rows = [line.split("|") for line in text.splitlines() if line.startswith("| guarded")]
    rows += [line.split("|") for line in text.splitlines() if line.startswith("| bare")]
    assert len(rows) == 2 * len(batches) * 2, text
    assert all(cells[-2].strip() == "0" for cells in rows), "requests failed under load"
    assert all(float(cells[4].replace(",", "")) > 0 for cells in rows)
    assert "fast path on" in text and text.count(": met") + text.count(": MISSED") == 4


def test_bad_arguments_are_refused_with_one_line(tmp_path):
    output = tmp_path / "r.md"
    for args in (["--connections", "eight"], ["--batches", "0"], ["--workers", "0"]):
        done = bench(*args, "--output", str(output))
        assert done.returncode == 2, done
        assert args[0] in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not output.exists()

"""Performance tests: a smoke-sized run of `make bench-scale` (benchmarks/scale.py).

The full benchmark (10k, 100k and 1M rows) is a measurement, not a test: its table is in
benchmarks/RESULTS.md. Here the same script runs on small tables, so a change that breaks it
or makes validate grow much faster than the rows is caught by `make test`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scale():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import scale

    return scale


def test_the_scale_benchmark_runs_and_writes_its_table(tmp_path):
    """The command line end to end: a worker process per size, the table, its growth ratio
    (one stage: every stage's own code is run by the next test, in this process)."""
    output = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "scale.py"),
            "--sizes",
            "1000,2000",
            "--stages",
            "validate",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = output.read_text(encoding="utf-8")
    assert "| 1,000 |" in table and "| 2,000 |" in table
    assert "t(2,000)/t(1,000)" in table and "Machine:" in table and "Command:" in table
    assert "validate on 2,000 rows" in table


def test_each_stage_of_the_scale_benchmark_runs(scale):
    """What a worker process of the benchmark runs for each stage, on a small table (the
    synthetic table is not meant to pass validate: a verdict is all the smoke test needs)."""
    for stage in scale.STAGES:
        result = scale.worker(stage, 500, 0, warm_up=False)
        assert result["seconds"] > 0 and result["peak_rss_mb"] > 0, stage
        if stage == "validate":
            assert isinstance(result["passed"], bool) and result["rejected"] >= 0, result


def test_a_bad_size_is_refused_with_one_line(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "scale.py"),
            "--sizes",
            "ten",
            "--output",
            str(tmp_path / "r.md"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2 and "--sizes" in done.stderr
    assert not (tmp_path / "r.md").exists()


def test_validate_cost_grows_about_linearly(scale, paths, params):
    """validate on 4x the rows takes well under 16x the time (quadratic would be 16x)."""
    from {{ cookiecutter.package_name }} import quality
    from {{ cookiecutter.package_name }}.data import LABEL, load_profile
    from {{ cookiecutter.package_name }}.validate import validate_frame

    profile = load_profile(paths)
    timings = []
    for rows in (300, 5_000, 20_000):
        frame = scale.synthetic(profile, rows, 0, LABEL, quality)
        started = time.perf_counter()
        validate_frame(frame, profile, params["validate"])
        timings.append(time.perf_counter() - started)
    assert timings[2] / timings[1] < 10, timings

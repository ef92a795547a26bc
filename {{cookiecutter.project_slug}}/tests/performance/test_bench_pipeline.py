"""Performance tests: a smoke-sized run of `make bench-pipeline` (benchmarks/scale.py
--pipeline): the synthetic raw table in a scratch copy, `dvc repro` there, its section of the
results table. It runs the stages up to validate (`--until validate`); the whole pipeline runs
in tests/integration/test_pipeline.py and, on a million rows, in `make bench-pipeline`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scale.py"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


@pytest.mark.integration
def test_the_pipeline_benchmark_runs_dvc_repro_on_a_synthetic_raw_table(tmp_path, profile):
    """--pipeline ROWS: dvc repro in a scratch copy; its section is added to the table and
    an earlier stage table is kept."""
    if {entry["type"] for entry in profile["features"].values()} - {"numeric"}:
        pytest.skip(
            "integer, boolean or categorical features: the synthetic table (each feature drawn "
            "on its own per label) holds conflicting near-duplicates by chance; validate stops it"
        )
    output = tmp_path / "RESULTS.md"
    output.write_text("# Scale benchmark (make bench-scale)\n\n| rows |\n", encoding="utf-8")
    done = bench("--pipeline", "3000", "--until", "validate", "--output", str(output))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    table = output.read_text(encoding="utf-8")
    assert table.startswith("# Scale benchmark") and "| rows |\n" in table
    assert "# Whole pipeline" in table and "| 3,000 |" in table
    assert "| prepare s | validate s | total s |" in table
    assert "the pipeline up to validate on 3,000 rows" in table


def test_a_stage_the_pipeline_does_not_have_is_refused_with_one_line(tmp_path):
    done = bench("--pipeline", "3000", "--until", "tune", "--output", str(tmp_path / "r.md"))
    assert done.returncode == 2 and "--until 'tune'" in done.stderr and "validate" in done.stderr
    assert not (tmp_path / "r.md").exists()

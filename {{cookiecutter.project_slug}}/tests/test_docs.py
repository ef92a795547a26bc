"""The generated docs say what the registry and the last run say, and go stale loudly.

`make docs` writes docs/generated/ with scripts/gen_docs.py; these tests render the same
pages into a temporary folder and compare.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gen_docs.py"
GENERATED = ROOT / "docs" / "generated"
# Words and template syntax that mean "not filled in" (braces built so no template engine
# mistakes this file for a template).
PLACEHOLDERS = "|".join(
    [
        r"\bTODO\b",
        r"\bTBD\b",
        r"\bFIXME\b",
        r"\bXXX\b",
        "lorem ipsum",
        re.escape("{" + "{"),
        re.escape("{" + "%"),
    ]
)


def load_gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_docs = load_gen_docs()


def control_ids() -> list[str]:
    registry = yaml.safe_load((ROOT / "controls.yaml").read_text(encoding="utf-8"))
    return [str(control["id"]) for control in registry["controls"]]


def scratch_root(tmp_path: Path) -> Path:
    """A copy of the files the generator reads, without reports or an MLflow run."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("controls.yaml", "params.yaml", "dvc.yaml", "reference"):
        source = ROOT / name
        if not source.exists():
            continue
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            shutil.copy2(source, root / name)
    return root


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_generated_pages_match_the_registry_and_the_last_run(capsys):
    if not GENERATED.is_dir():
        pytest.skip("docs/generated/ does not exist yet: make docs writes it")
    code = gen_docs.main(["--check"])
    assert code == 0, capsys.readouterr().out


def test_every_control_is_in_the_matrix_and_the_threat_model(tmp_path):
    pages = gen_docs.render(ROOT)
    matrix = pages["controls-matrix.md"]
    threats = pages["parts/threat-model-controls.md"]
    for ident in control_ids():
        assert f"[{ident}](#" in matrix, ident
        assert f"### {ident}" in matrix, ident
        assert f"**{ident}**" in threats, ident


def test_a_changed_or_extra_page_is_reported_stale(tmp_path, capsys):
    pages = gen_docs.render(ROOT)
    out = tmp_path / "generated"
    gen_docs.write(pages, out)
    assert gen_docs.stale(pages, out) == []
    matrix = out / "controls-matrix.md"
    matrix.write_text(
        matrix.read_text(encoding="utf-8").replace(control_ids()[0], "RENAMED"), encoding="utf-8"
    )
    (out / "old-page.md").write_text("left over\n", encoding="utf-8")
    (out / "parts" / "data-card-facts.md").unlink()
    assert gen_docs.stale(pages, out) == [
        "controls-matrix.md",
        "parts/data-card-facts.md (missing)",
        "old-page.md (no longer generated)",
    ]
    capsys.readouterr()
    assert gen_docs.main(["--check", "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "stale: docs/generated/controls-matrix.md" in printed
    assert "run make docs" in printed


def test_a_new_control_makes_the_pages_stale(tmp_path):
    root = scratch_root(tmp_path)
    out = tmp_path / "generated"
    gen_docs.write(gen_docs.render(root), out)
    registry = yaml.safe_load((root / "controls.yaml").read_text(encoding="utf-8"))
    registry["controls"].append(
        {
            "id": "NEW-CONTROL",
            "title": "A control added later",
            "guide_risk": "Input manipulation (evasion)",
            "exchange": "RATE LIMIT",
            "files": [],
            "tests": [],
        }
    )
    (root / "controls.yaml").write_text(yaml.safe_dump(registry), encoding="utf-8")
    pages = gen_docs.render(root)
    assert "controls-matrix.md" in gen_docs.stale(pages, out)
    assert "NEW-CONTROL" in pages["controls-matrix.md"]
    assert "https://owaspai.org/goto/ratelimit/" in pages["controls-matrix.md"]


def test_model_card_is_filled_from_the_reports(tmp_path):
    root = scratch_root(tmp_path)
    pages = gen_docs.render(root)
    assert "No run recorded yet" in pages["parts/model-card-facts.md"]
    (root / "reports").mkdir()
    (root / "reports" / "metrics.json").write_text(json.dumps({"accuracy": 0.123457}))
    (root / "reports" / "robustness.json").write_text(
        json.dumps(
            {"attack": "hop-skip-jump", "adversarial_accuracy": 0.654321, "rows": [1, 2] * 20}
        )
    )
    card = gen_docs.render(root)["parts/model-card-facts.md"]
    assert "| accuracy | 0.123457 |" in card
    assert "| adversarial_accuracy | 0.654321 |" in card
    assert "| rows | 40 item(s) |" in card  # row-level detail is summarised, not copied
    assert "`reports/privacy.json` is absent" in card


def test_model_card_shows_the_last_mlflow_run():
    record_file = ROOT / "reports" / "mlflow_run.json"
    if not record_file.is_file():
        pytest.skip("no pipeline run yet: make pipeline writes reports/mlflow_run.json")
    record = json.loads(record_file.read_text(encoding="utf-8"))
    card = gen_docs.render(ROOT)["parts/model-card-facts.md"]
    assert f"| MLflow run | {record['run_id']} |" in card
    metrics = gen_docs.flatten(
        json.loads((ROOT / "reports" / "metrics.json").read_text(encoding="utf-8"))
    )
    for name, value in metrics:
        assert f"| {name} | {gen_docs.cell(value)} |" in card, name
    if (ROOT / "mlflow.db").is_file() and record.get("tracking_uri", "").startswith("sqlite:"):
        # The local store is here: the card must carry the run's own facts, not a warning.
        assert "MLflow run not readable" not in card, card
        assert re.search(r"\| Git commit \| ([0-9a-f]{40}|unknown[^|]*) \|", card), card
        for name, value in metrics:
            assert f"| test_{name} | {gen_docs.cell(value)} |" in card, name


def test_data_card_renders_the_schema_and_data_hashes(tmp_path):
    root = scratch_root(tmp_path)
    profile = json.loads((root / "reference" / "data_profile.json").read_text(encoding="utf-8"))
    card = gen_docs.render(root)["parts/data-card-facts.md"]
    for column, entry in profile["features"].items():
        assert f"| `{column}` | {entry['type']} |" in card, column
    assert "No data output is locked yet" in card
    (root / "dvc.lock").write_text(
        yaml.safe_dump(
            {
                "schema": "2.0",
                "stages": {
                    "prepare": {
                        "outs": [
                            {
                                "path": "data/prepared/train.csv",
                                "md5": "0123456789abcdef0123456789abcdef",
                                "size": 10,
                            }
                        ]
                    }
                },
            }
        )
    )
    card = gen_docs.render(root)["parts/data-card-facts.md"]
    assert "0123456789abcdef0123456789abcdef" in card


def test_a_broken_registry_is_one_clear_line_and_writes_nothing(tmp_path):
    root = scratch_root(tmp_path)
    (root / "controls.yaml").write_text("controls: [\n", encoding="utf-8")
    out = tmp_path / "out"
    done = run_script("--root", str(root), "--out", str(out))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "controls.yaml" in lines[0] and "YAML" in lines[0], done.stderr
    assert not out.exists()


def test_pages_hold_no_placeholders_besides_the_team_blanks():
    pages = sorted((ROOT / "docs").glob("*.md"))
    assert len(pages) >= 8
    for page in pages:
        text = page.read_text(encoding="utf-8")
        found = re.findall(PLACEHOLDERS, text, re.IGNORECASE)
        assert not found, f"{page.name}: {found}"
    card = (ROOT / "docs" / "model-card.md").read_text(encoding="utf-8")
    assert '!!! note "Team to fill: intended use"' in card
    assert '!!! note "Team to fill: limitations"' in card

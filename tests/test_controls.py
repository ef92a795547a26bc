"""Slow: `make controls` on the installed default project, then on copies with planted gaps.

The shared project is never changed: every test works on a copy (its .venv is a symlink).
"""

from __future__ import annotations

import re
import shutil

import pytest
import yaml
from conftest import run, scratch_copy

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("installed-project")]

PACKAGE = "secure_ml_project"


def scratch(project, tmp_path):
    return scratch_copy(project, tmp_path / project.name)


def rows(output):
    """control id -> status column of the printed table."""
    table = {}
    for line in output.splitlines():
        match = re.match(r"^([A-Z][A-Z0-9-]+)\s{2,}([A-Z][A-Z /-]+?)\s{2,}(.+)$", line)
        if match:
            table[match.group(1)] = match.group(3)
    return table


def test_make_controls_passes_on_a_fresh_project(installed_project, tmp_path):
    copy = scratch(installed_project, tmp_path)
    done = run(["make", "controls"], copy, timeout=900)
    registry = yaml.safe_load((copy / "controls.yaml").read_text())["controls"]
    table = rows(done.stdout)
    assert set(table) == {c["id"] for c in registry}, done.stdout
    assert all(status == "ok" for status in table.values()), table
    assert f"{len(registry)}/{len(registry)} controls proven" in done.stdout
    for control in registry:  # the AI Exchange name is printed beside each control
        assert re.search(rf"^{control['id']}\s+{control['exchange']}\s+ok$", done.stdout, re.M)


def test_make_controls_names_the_control_whose_file_or_test_is_gone_or_failing(
    installed_project, tmp_path
):
    copy = scratch(installed_project, tmp_path)
    # Keep the controls proven by fast tests (the full registry already ran in the test above).
    data = yaml.safe_load((copy / "controls.yaml").read_text())
    fast = ("tests/unit/", "tests/security/test_inference_")
    for control in data["controls"]:  # a control proven also by a slow test keeps its fast ones
        control["tests"] = [t for t in control["tests"] if t.startswith(fast)]
    data["controls"] = [c for c in data["controls"] if c["tests"]]
    assert {"ACCESS-CONTROL", "AUDIT-LOG", "ANOMALY-GUARD", "CONFIDENCE-OBSCURE"} <= {
        c["id"] for c in data["controls"]}
    (copy / "controls.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (copy / f"src/{PACKAGE}/serve.py").unlink()                      # a file removed
    http = copy / "tests/security/test_inference_http.py"            # a test removed
    http.write_text(http.read_text().replace(
        "def test_every_request_is_audited_without_input_values", "def test_renamed"))
    inference = copy / f"src/{PACKAGE}/inference.py"                 # a flaw planted
    text = inference.read_text()
    assert "if math.isnan(value):" in text
    inference.write_text(text.replace("if math.isnan(value):", "if False:"))
    done = run(["make", "controls"], copy, timeout=900, check=False)
    assert done.returncode != 0
    table = rows(done.stdout)
    assert table["ACCESS-CONTROL"] == f"MISSING: file src/{PACKAGE}/serve.py"
    assert "test tests/security/test_inference_http.py::test_every_request_is_audited" \
        in table["AUDIT-LOG"]
    assert table["ANOMALY-GUARD"].startswith("FAILED: ")
    assert "test_nan_and_infinity_are_rejected (failed)" in table["ANOMALY-GUARD"]
    # Controls whose evidence is intact are still proven in the same run.
    assert table["CONFIDENCE-OBSCURE"] == "ok", table
    for ident in ("ACCESS-CONTROL", "AUDIT-LOG", "ANOMALY-GUARD"):
        assert f"control {ident} is not proven" in done.stderr


@pytest.mark.parametrize(("change", "words"), [
    (lambda c: c[1].update(exchange="MODEL SAFETY"), ["entry 2", "exchange", "MODEL SAFETY"]),
    (lambda c: c[2].update(id=c[0]["id"]), ["entry 3", "already used", "entry 1"]),
    (lambda c: c[0].pop("tests"), ["entry 1", "'tests' is missing"]),
    (lambda c: c[0].update(test=["x"]), ["entry 1", "'test' is not one of"]),
    (lambda c: c[0].update(files=["../outside.py"]), ["entry 1", "../outside.py"]),
    (lambda c: c[0].update(tests=["tests/unit/test_data.py"]), ["entry 1", "node id"]),
])
def test_a_broken_registry_is_refused_naming_entry_and_field(installed_project, tmp_path,
                                                             change, words):
    copy = tmp_path / "p"
    copy.mkdir()
    shutil.copy(installed_project / "controls.yaml", copy / "controls.yaml")
    data = yaml.safe_load((copy / "controls.yaml").read_text())
    change(data["controls"])
    (copy / "controls.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    python = str(installed_project / ".venv/bin/python")
    script = str(installed_project / "scripts/controls.py")
    done = run([python, script, "--root", str(copy), "--no-tests"], copy, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    first = done.stderr.splitlines()[0]
    for word in words:
        assert word in first, first
    assert "Traceback" not in done.stderr


def test_the_matrix_is_rendered_from_the_registry(installed_project):
    python = str(installed_project / ".venv/bin/python")
    script = str(installed_project / "scripts/controls.py")
    matrix = run([python, script, "--matrix"], installed_project).stdout
    registry = yaml.safe_load((installed_project / "controls.yaml").read_text())["controls"]
    lines = [line for line in matrix.splitlines() if line.startswith("| `")]
    assert len(lines) == len(registry)
    for line, control in zip(lines, registry, strict=True):
        assert control["id"] in line and control["exchange"] in line
    code = ("import runpy, sys; from pathlib import Path; "
            f"print(runpy.run_path({script!r})['render_matrix'](Path({str(installed_project)!r})))")
    assert run([python, "-c", code], installed_project).stdout.strip() == matrix.strip()


def test_only_a_passing_test_proves_a_control(installed_project, tmp_path):
    """A skipped, an expected-to-fail or a failing test proves nothing; a pass does."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "impl.py").write_text("X = 1\n")
    (tmp_path / "tests/test_x.py").write_text(
        "import pytest\n\n"
        "def test_pass():\n    assert True\n\n"
        "@pytest.mark.parametrize('n', [1, 2])\ndef test_param(n):\n    assert n\n\n"
        "@pytest.mark.skip(reason='not today')\ndef test_skipped():\n    assert True\n\n"
        "@pytest.mark.xfail(reason='known')\ndef test_xfail():\n    assert False\n\n"
        "def test_fail():\n    assert False\n"
    )
    entries = {"PASSING": ["test_pass", "test_param"], "SKIPPING": ["test_pass", "test_skipped"],
               "XFAILING": ["test_xfail"], "FAILING": ["test_fail"]}
    registry = {"controls": [
        {"id": ident, "title": "t", "guide_risk": "Data poisoning",
         "exchange": "DATA QUALITY CONTROL", "files": ["impl.py"],
         "tests": [f"tests/test_x.py::{name}" for name in names]}
        for ident, names in entries.items()]}
    (tmp_path / "controls.yaml").write_text(yaml.safe_dump(registry, sort_keys=False))
    python = str(installed_project / ".venv/bin/python")
    script = str(installed_project / "scripts/controls.py")
    done = run([python, script, "--root", str(tmp_path)], tmp_path, check=False)
    table = rows(done.stdout)
    assert done.returncode == 1
    assert table["PASSING"] == "ok", done.stdout
    assert table["SKIPPING"] == "FAILED: tests/test_x.py::test_skipped (skipped)"
    assert table["XFAILING"] == "FAILED: tests/test_x.py::test_xfail (skipped)"
    assert table["FAILING"] == "FAILED: tests/test_x.py::test_fail (failed)"


def test_controls_take_outcomes_from_the_test_report_and_run_only_what_it_lacks(
    installed_project, tmp_path
):
    """`make check` runs each test once: controls.py reads reports/junit.xml of `make test`;
    a proving test missing from it runs here; a stale report (older than a listed file) is
    not trusted; a failure in the report fails the control without a second run."""
    import os
    import time

    (tmp_path / "tests").mkdir()
    (tmp_path / "impl.py").write_text("X = 1\n")
    (tmp_path / "tests/test_x.py").write_text(
        "from pathlib import Path\n\n"
        "def mark(name):\n"
        "    with open(Path(__file__).parent.parent / 'runs.txt', 'a') as out:\n"
        "        out.write(name + '\\n')\n\n"
        "def test_pass():\n    mark('pass')\n\n"
        "def test_other():\n    mark('other')\n\n"
        "def test_fail():\n    mark('fail')\n    assert False\n"
    )
    registry = {"controls": [
        {"id": ident, "title": "t", "guide_risk": "Data poisoning",
         "exchange": "DATA QUALITY CONTROL", "files": ["impl.py"],
         "tests": [f"tests/test_x.py::{name}" for name in names]}
        for ident, names in {"PASSING": ["test_pass", "test_other"],
                             "FAILING": ["test_fail"]}.items()]}
    (tmp_path / "controls.yaml").write_text(yaml.safe_dump(registry, sort_keys=False))
    python = str(installed_project / ".venv/bin/python")
    script = str(installed_project / "scripts/controls.py")
    runs = tmp_path / "runs.txt"

    def controls():
        runs.unlink(missing_ok=True)
        done = run([python, script, "--root", str(tmp_path)], tmp_path, check=False)
        ran = sorted(runs.read_text().split()) if runs.is_file() else []
        return done, rows(done.stdout), ran

    # The report of a test run that left out test_other: only test_other runs again.
    (tmp_path / "reports").mkdir()
    run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "not other",
         "--junitxml=reports/junit.xml", "tests"], tmp_path, check=False)
    done, table, ran = controls()
    assert ran == ["other"], done.stdout
    assert "2 proving test(s) taken from reports/junit.xml" in done.stdout
    assert "running 1 proving test(s) here (not in the report)" in done.stdout
    assert table == {"PASSING": "ok", "FAILING": "FAILED: tests/test_x.py::test_fail (failed)"}
    assert done.returncode == 1

    # A listed file changed after the report: nothing is taken from it, everything runs.
    later = time.time() + 5
    os.utime(tmp_path / "impl.py", (later, later))
    done, table, ran = controls()
    assert ran == ["fail", "other", "pass"], done.stdout
    assert "reports/junit.xml is older than impl.py" in done.stdout
    assert table["PASSING"] == "ok"

    # No report at all: the same, and the line says how to reuse one.
    (tmp_path / "reports/junit.xml").unlink()
    done, table, ran = controls()
    assert ran == ["fail", "other", "pass"]
    assert "no reports/junit.xml: run make test first" in done.stdout

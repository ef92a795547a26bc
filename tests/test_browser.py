"""The generated project's docs, end to end: after `make pipeline`, `make docs` builds with
--strict, the model card carries the run's real metrics and commit, and the controls matrix,
served on 127.0.0.1 and loaded in headless Chromium, shows every control of the registry.

The screenshot is kept in build/artifacts/ of the template.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import TEMPLATE, run, scratch_copy

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("installed-project")]

ARTIFACTS = TEMPLATE / "build" / "artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-default-apps", "--hide-scrollbars"]
PLACEHOLDERS = "|".join([r"\bTODO\b", r"\bTBD\b", r"\bFIXME\b", "lorem ipsum",
                         re.escape("{" + "{"), re.escape("{" + "%")])


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed: .ci/run installs it (apt-get install chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium); CI installs it")


@pytest.fixture(scope="module")
def docs_project(piped_project, tmp_path_factory):
    """A copy of the piped project (its .venv linked, not copied) after `make docs`."""
    copy = scratch_copy(piped_project, tmp_path_factory.mktemp("docs") / "project", skip=("site",))
    done = run(["make", "docs"], copy, timeout=600)
    (copy / ".make-docs.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    return copy


def page(project: Path, name: str) -> str:
    return (project / "site" / name / "index.html").read_text(encoding="utf-8")


def test_model_card_shows_the_runs_metrics_and_commit(docs_project):
    html = page(docs_project, "model-card")
    metrics = json.loads((docs_project / "reports" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics
    for name, value in metrics.items():
        assert f"<td>{name}</td>" in html and f"<td>{value:.6g}</td>" in html, name
    record = json.loads((docs_project / "reports" / "mlflow_run.json").read_text(encoding="utf-8"))
    assert record["run_id"] in html
    commit = run(["git", "rev-parse", "HEAD"], docs_project).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    assert f"<td>{commit}</td>" in html
    assert "MLflow run not readable" not in html and "No run recorded yet" not in html
    assert html.count("Team to fill") >= 2


def test_no_page_has_placeholders_or_loads_from_third_parties(docs_project):
    site = docs_project / "site"
    pages = [p for p in site.rglob("*.html") if "code" not in p.relative_to(site).parts]
    assert len(pages) >= 9
    external = re.compile(r"<(?:script|img|iframe|source)\b[^>]*\bsrc=\"(?:https?:)?//"
                          r"|<link\b[^>]*\bhref=\"(?:https?:)?//|@import\s+url\((?:https?:)?//")
    for path in pages:
        html = path.read_text(encoding="utf-8")
        text = re.sub(r"<[^>]+>", " ", html)
        assert not re.findall(PLACEHOLDERS, text, re.IGNORECASE), path
        assert not external.search(html), path
    threat = page(docs_project, "threat-model")
    assert "flowchart LR" in threat and 'class="mermaid"' not in threat


def test_controls_matrix_in_headless_chromium(docs_project, tmp_path):
    browser = chromium()
    registry = yaml.safe_load((docs_project / "controls.yaml").read_text(encoding="utf-8"))
    ids = [str(control["id"]) for control in registry["controls"]]
    assert ids
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(docs_project / "site")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, "http.server exited"
                assert time.monotonic() < deadline, "http.server did not listen within 15 s"
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/generated/controls-matrix/"
        flags = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
        dom = run([*flags, "--dump-dom", url], tmp_path, timeout=180).stdout
        assert "Security controls matrix" in dom, dom[:2000]
        missing = [ident for ident in ids if ident not in dom]
        assert not missing, f"controls not on the page: {missing}"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "controls-matrix.png"
        shot.unlink(missing_ok=True)
        run([*flags, "--window-size=1400,2400", f"--screenshot={shot}", url], tmp_path, timeout=180)
        assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size > 10_000
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_stale_docs_fail_the_projects_own_test(docs_project):
    python = str(docs_project / ".venv" / "bin" / "python")
    check = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "tests/test_docs.py::test_generated_pages_match_the_registry_and_the_last_run"]
    metrics = docs_project / "reports" / "metrics.json"
    original = metrics.read_text(encoding="utf-8")
    try:
        changed = {**json.loads(original), "accuracy": 0.5}
        metrics.write_text(json.dumps(changed), encoding="utf-8")
        done = run(check, docs_project, check=False)
        assert done.returncode == 1, done.stdout
        assert "stale: docs/generated/parts/model-card-facts.md" in done.stdout
    finally:
        metrics.write_text(original, encoding="utf-8")
    run(check, docs_project)


MEASURE = """<script>
window.addEventListener('load', () => {
  const content = document.querySelector('.md-content').getBoundingClientRect();
  const cells = [...document.querySelectorAll('.md-content table td')];
  const codes = [...document.querySelectorAll('.md-content code')];
  document.body.dataset.layout = JSON.stringify({
    viewport: window.innerWidth,
    pageWidth: document.documentElement.scrollWidth,
    narrowestCell: Math.min(...cells.map(c => c.getBoundingClientRect().width)),
    cells: cells.length,
    codes: codes.length,
    // a path or test id (no spaces) drawn on more than one line was cut mid-word
    broken: codes.filter(c => !/\\s/.test(c.textContent.trim()) && c.getClientRects().length > 1)
                 .map(c => c.textContent),
    overflowing: codes.filter(c => c.getBoundingClientRect().right > content.right + 1)
                      .map(c => c.textContent),
  });
});
</script>"""


def test_template_controls_map_is_readable_at_1280_px(tmp_path):
    """The template site's guide-to-controls map at 1280 px: no table cell squeezed to a few
    characters, no evidence line running past the content column; a screenshot is kept."""
    browser = chromium()
    out = tmp_path / "site"
    run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)], TEMPLATE,
        env={"NO_MKDOCS_2_WARNING": "1"}, timeout=300)
    page_file = out / "controls" / "index.html"
    measured = page_file.with_name("measured.html")
    measured.write_text(page_file.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"),
                        encoding="utf-8")
    flags = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
             "--window-size=1280,2400"]
    dom = run([*flags, "--virtual-time-budget=5000", "--dump-dom", measured.as_uri()], tmp_path,
              timeout=180).stdout
    found = re.search(r'data-layout="([^"]+)"', dom)
    assert found, dom[:2000]
    layout = json.loads(found.group(1).replace("&quot;", '"'))
    assert layout["viewport"] == 1280, layout
    assert layout["cells"] >= 14 and layout["codes"] >= 14, layout
    assert layout["narrowestCell"] >= 80, layout
    assert layout["pageWidth"] <= 1280, layout
    assert layout["broken"] == [], layout
    assert layout["overflowing"] == [], layout
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "template-controls-map-1280.png"
    shot.unlink(missing_ok=True)
    run([*flags, f"--screenshot={shot}", page_file.as_uri()], tmp_path, timeout=180)
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000

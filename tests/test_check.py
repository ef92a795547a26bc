"""`secure-ml check`: every control present on a fresh project, each detection fails on a
planted flaw, it never writes, its formats and exit codes; the wheel carries the template."""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import TEMPLATE, run

SRC = TEMPLATE / "src"
ENV = {"PYTHONPATH": str(SRC)}


def check(path, *args, env=ENV, ok=True):
    return run([sys.executable, "-m", "secure_ml_template", "check", str(path), *args],
               cwd=TEMPLATE, env=env, check=ok)


def report(path) -> dict:
    return json.loads(check(path, "--format", "json").stdout)


def statuses(path) -> dict[str, str]:
    return {row["id"]: row["status"] for row in report(path)["controls"]}


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("answers", [{}, {"ci_provider": "gitlab"}], ids=["github", "gitlab"])
def test_fresh_project_has_every_control_present(bake, answers):
    project = bake(**answers)
    data = report(project)
    missing = [f"{r['control']}: {r['status']} ({r['evidence']})" for r in data["controls"] if r["status"] != "present"]
    assert not missing
    assert data["score"] == 100 and data["present"] == data["total"] >= 16


def test_check_never_writes_and_formats_agree(bake):
    project = bake()
    before = snapshot(project)
    table = check(project).stdout
    markdown = check(project, "--format", "markdown").stdout
    data = report(project)
    assert snapshot(project) == before
    assert f"score {data['score']}%" in table
    assert markdown.startswith("| Control | Status | Evidence |\n| --- | --- | --- |\n")
    for row in data["controls"]:
        assert row["control"] in table and f"| {row['control']} | {row['status']} |" in markdown


def test_min_score_sets_the_exit_code(tmp_path):
    (tmp_path / "LICENSE").write_text("MIT\n")
    data = report(tmp_path)
    assert 0 < data["score"] < 100
    assert check(tmp_path, "--min-score", str(data["score"])).returncode == 0
    low = check(tmp_path, "--min-score", str(data["score"] + 1), ok=False)
    assert low.returncode == 1 and "below --min-score" in low.stdout


@pytest.mark.parametrize("bad, words", [("nowhere", ["no such folder"]), ("file.txt", ["not a folder"])])
def test_bad_path_is_one_line_and_exit_2(tmp_path, bad, words):
    (tmp_path / "file.txt").write_text("x\n")
    done = check(tmp_path / bad, ok=False)
    assert done.returncode == 2 and done.stdout == ""
    assert "\n" not in done.stderr.strip() and all(w in done.stderr for w in words)


# Each detection rule, tested on a planted flaw: (control id, flaw, status expected after it).
def _workflows(root):
    return sorted((root / ".github" / "workflows").glob("*.yml"))


def unpin_an_action(root):
    for path in _workflows(root):
        text = path.read_text()
        if "uses: actions/checkout@" in text:
            start = text.index("uses: actions/checkout@") + len("uses: actions/checkout@")
            end = start + 40
            path.write_text(text[:start] + "v4" + text[end:])
            return
    raise AssertionError("no pinned checkout step to unpin")


def write_permissions(root):
    path = _workflows(root)[0]
    text = path.read_text()
    assert "\npermissions:" in text
    path.write_text(text.replace("\npermissions:", "\npermissions: write-all\nx-old-permissions:", 1))


def persist_credentials(root):
    for path in _workflows(root):
        text = path.read_text()
        if "persist-credentials: false" in text:
            path.write_text(text.replace("persist-credentials: false", "persist-credentials: true"))
            return
    raise AssertionError("no persist-credentials: false to flip")


def pickle_a_model(root):
    package = next((root / "src").iterdir())
    (package / "export.py").write_text("import pickle\n\n\ndef export(model, f):\n    pickle.dump(model, f)\n")


def drop_hashes(root):
    for path in (root / "requirements").glob("*.txt"):
        lines = [line.split(" \\")[0] for line in path.read_text().splitlines() if "--hash" not in line]
        path.write_text("\n".join(lines) + "\n")


def drop_bandit_hook(root):
    import yaml
    path = root / ".pre-commit-config.yaml"
    data = yaml.safe_load(path.read_text())
    for repo in data["repos"]:
        repo["hooks"] = [h for h in repo["hooks"] if "bandit" not in f"{h.get('id')} {h.get('entry')}"]
    path.write_text(yaml.safe_dump(data))


def remove(rel):
    def flaw(root):
        path = root / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return flaw


def drop_pandera(root):
    for path in (root / "src").rglob("*.py"):
        text = path.read_text()
        if "pandera" in text:
            path.write_text("\n".join(line for line in text.splitlines() if "import pandera" not in line
                                      and not line.startswith("from pandera")) + "\n")


FLAWS = {
    "unpinned-action": ("ci-hardened", unpin_an_action, "partial"),
    "write-permissions": ("ci-hardened", write_permissions, "partial"),
    "persisted-credentials": ("ci-hardened", persist_credentials, "partial"),
    "pickle-dump": ("safe-model-format", pickle_a_model, "partial"),
    "no-hashes": ("lock-hashes", drop_hashes, "partial"),
    "no-bandit-hook": ("scan-bandit", drop_bandit_hook, "partial"),
    "no-ci": ("scan-pip-audit", remove(".github"), "partial"),
    "no-dvc-pipeline": ("dvc-pipeline", remove("dvc.yaml"), "partial"),
    "no-security-md": ("security-policy", remove("SECURITY.md"), "missing"),
    "no-license": ("license", remove("LICENSE"), "missing"),
    "no-registry": ("controls-registry", remove("controls.yaml"), "missing"),
    "no-pandera": ("data-validation", drop_pandera, "missing"),
    "no-tests": ("tests", remove("tests"), "missing"),
}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    out = tmp_path_factory.mktemp("fresh")
    run([sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(out), str(TEMPLATE)], out)
    return out / "secure-ml-project"


@pytest.mark.parametrize("flaw", FLAWS)
def test_each_detection_fails_on_a_planted_flaw(fresh, tmp_path, flaw):
    control, plant, expected = FLAWS[flaw]
    project = tmp_path / "p"
    shutil.copytree(fresh, project, symlinks=True)
    assert statuses(project)[control] == "present"
    plant(project)
    after = statuses(project)
    assert after[control] == expected, report(project)
    done = check(project, "--min-score", "100", ok=False)
    assert done.returncode == 1


def test_the_wheel_carries_the_template_and_runs_without_a_clone(tmp_path, bake):
    """Build the wheel offline (hatchling from the dev venv), unpack it, and run from it alone."""
    run([str(TEMPLATE / ".venv/bin/uv"), "build", "--quiet", "--wheel", "--no-build-isolation",
         "--python", sys.executable, "-o", str(tmp_path / "dist"), str(TEMPLATE)], TEMPLATE)
    wheel = next((tmp_path / "dist").glob("secure_ml_template-*.whl"))
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(site)
    bundled = "secure_ml_template/template/"
    assert bundled + "cookiecutter.json" in names and bundled + "hooks/pre_gen_project.py" in names
    # Every file of the template that git does not ignore (tracked or new) is in the wheel.
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--",
                  "{{cookiecutter.project_slug}}", "hooks", "cookiecutter.json"], TEMPLATE).stdout.splitlines()
    files = [rel for rel in listed if (TEMPLATE / rel).is_file()]
    assert len(files) > 30
    missing = [rel for rel in files if bundled + rel not in names]
    assert not missing
    entry = (site / next(n for n in names if n.endswith("entry_points.txt"))).read_text()
    assert "secure-ml = secure_ml_template.cli:main" in entry
    env = {"PYTHONPATH": str(site)}
    where = run([sys.executable, "-c", "from secure_ml_template.template import template_dir; print(template_dir())"],
                tmp_path, env=env)
    assert where.stdout.strip() == str(site / "secure_ml_template" / "template")
    project = bake()
    assert json.loads(check(project, "--format", "json", env=env).stdout)["score"] == report(project)["score"]
    repo = tmp_path / "repo"
    repo.mkdir()
    done = run([sys.executable, "-m", "secure_ml_template", "retrofit", str(repo)], tmp_path, env=env)
    assert "add      dvc.yaml" in done.stdout and (repo / "dvc.yaml").is_file()


@pytest.mark.parametrize("args, words", [
    ([], ["required", "command"]),
    (["check"], ["required", "path"]),
    (["check", ".", "--min-score", "x"], ["--min-score", "x"]),
    (["retrofit", ".", "--ci", "jenkins"], ["--ci", "jenkins"]),
])
def test_bad_arguments_are_one_line_and_exit_2(args, words):
    done = run([sys.executable, "-m", "secure_ml_template", *args], TEMPLATE, env=ENV, check=False)
    assert done.returncode == 2 and done.stdout == ""
    line = done.stderr.strip()
    assert "\n" not in line and all(w in line for w in words) and "--help" in line


def test_fresh_project_without_ci_has_its_scanners_partial_and_the_rest_present(bake):
    rows = report(bake(ci_provider="none"))["controls"]
    partial = {r["id"] for r in rows if r["status"] == "partial"}
    assert partial == {"scan-bandit", "scan-secrets", "scan-pip-audit", "scan-model-files", "scan-ruff"}
    assert {r["id"] for r in rows if r["status"] == "missing"} == {"ci-hardened"}

"""`secure-ml check`: every control present on a fresh project, each detection fails on a
planted flaw, it never writes, its formats and exit codes; the wheel carries the template."""

from __future__ import annotations

import json
import re
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
    """No validation library left: pandera (validate) and pydantic (the params schema)."""
    for path in list((root / "src").rglob("*.py")) + list((root / "tests").rglob("*.py")):
        text = path.read_text()
        if "pandera" in text or "pydantic" in text:
            path.write_text("\n".join(line for line in text.splitlines()
                                      if not re.match(r"\s*(import|from)\s+(pandera|pydantic)\b", line)) + "\n")


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
    assert "secure_ml_template/program/SECURITY.md" in names
    # No bytecode in the wheel; and bytecode an installer compiles beside the packaged template
    # (pip does, by default) never travels into a repository.
    assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n]
    # (files with Jinja in them do not compile; pip skips those too)
    run([sys.executable, "-m", "compileall", "-q", str(site)], tmp_path, check=False)
    assert list((site / "secure_ml_template" / "template").rglob("*.pyc"))
    repo = tmp_path / "repo"
    repo.mkdir()
    done = run([sys.executable, "-m", "secure_ml_template", "retrofit", str(repo), "--with-pipeline", "pipe"],
               tmp_path, env=env)
    assert "add      SECURITY.md" in done.stdout and (repo / "pipe" / "dvc.yaml").is_file()
    assert not [p for p in repo.rglob("*") if p.suffix == ".pyc" or p.name == "__pycache__"]


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


# ---------------------------------------------------------------- check judges the repository's own code


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def rows(root: Path) -> dict[str, dict]:
    return {row["id"]: row for row in report(root)["controls"]}


@pytest.mark.parametrize("files, control, status, cited", [
    ({"train.py": "import dvclive\n"}, "experiment-tracking", "present", "train.py:1"),
    ({"src/fit.py": "x = 1\nimport wandb\n"}, "experiment-tracking", "present", "src/fit.py:2"),
    ({"MLproject": "name: x\n"}, "experiment-tracking", "partial", "MLproject:1"),
    ({"tests/test_data.py": "import great_expectations as gx\n"}, "data-validation", "present", "tests/test_data.py:1"),
    ({"schema.py": "from pydantic import BaseModel\n"}, "data-validation", "present", "schema.py:1"),
    ({"io.py": "import torch\n\ntorch.load('m.pt')\n"}, "safe-model-format", "missing", "io.py:3"),
    ({"io.py": "import torch\n\ntorch.load('m.pt', weights_only=True)\n"}, "safe-model-format", "missing", None),
    ({"io.py": "import joblib\nimport skops.io\njoblib.dump(m, 'm.joblib')\n"}, "safe-model-format", "partial", "io.py:3"),
    ({"io.py": "import onnxruntime\n"}, "safe-model-format", "present", "io.py:1"),
    ({"io.py": "from safetensors.torch import save_file\n"}, "safe-model-format", "present", "io.py:1"),
    ({"nb.ipynb": json.dumps({"cells": [{"cell_type": "code", "source": ["import cloudpickle\n", "cloudpickle.load(f)\n"]}]})},
     "safe-model-format", "missing", "nb.ipynb:2"),
    ({"requirements.txt": "numpy==2.0.0 \\\n    --hash=sha256:" + "a" * 64 + "\n"}, "lock-hashes", "present", "requirements.txt:2"),
    ({"requirements.txt": "numpy==2.0.0\n"}, "lock-hashes", "partial", "requirements.txt:1"),
    ({"conda.yaml": "dependencies:\n  - pip:\n    - mlflow>=1.0\n"}, "lock-hashes", "missing", "conda.yaml:1"),
    ({"uv.lock": 'version = 1\n[[package]]\nname = "x"\nsdist = { hash = "sha256:' + "b" * 64 + '" }\n'},
     "lock-hashes", "present", "uv.lock:4"),
])
def test_each_row_judges_the_repository_code_and_cites_file_and_line(tmp_path, files, control, status, cited):
    write(tmp_path, files)
    row = rows(tmp_path)[control]
    assert row["status"] == status, row
    if cited:
        assert cited in row["where"] and cited in row["evidence"], row


def test_files_retrofit_added_are_not_evidence_and_unfilled_stubs_are_partial(tmp_path):
    env = {**ENV, "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1"}
    (tmp_path / "gitconfig").write_text("[user]\n\tname = T\n\temail = t@example.com\n")
    repo = tmp_path / "repo"
    write(repo, {"train.py": "import pickle\n\npickle.dump(model, open('m.pkl', 'wb'))\n", "LICENSE.txt": "Apache\n"})
    run(["git", "init", "-q"], repo, env=env)
    run(["git", "add", "-A"], repo, env=env)
    run(["git", "commit", "-qm", "repo"], repo, env=env)
    before = rows(repo)
    run([sys.executable, "-m", "secure_ml_template", "retrofit", str(repo), "--with-pipeline", "pipeline"],
        TEMPLATE, env=env)
    after = rows(repo)
    # The sub-project's DVC, MLflow, pandera, skops, lock and tests belong to it, not to the repository.
    for control in ("dvc-pipeline", "experiment-tracking", "tests", "lock-hashes", "safe-model-format", "data-validation"):
        assert after[control]["status"] == before[control]["status"], (control, after[control])
    assert "train.py:3" in after["safe-model-format"]["where"]
    # Stubs count once someone fills them in; the gates are a real gain.
    assert after["security-policy"]["status"] == "partial" and after["docs"]["status"] == "partial"
    assert after["scan-bandit"]["status"] == "present" and after["controls-registry"]["status"] == "present"
    with open(repo / "SECURITY.md", "a", encoding="utf-8") as f:
        f.write("Contact: security@example.org\n")
    assert rows(repo)["security-policy"]["status"] == "present"
    # Every row that found something cites file:line.
    for row in after.values():
        if row["status"] != "missing":
            assert row["where"] and all(re.search(r":\d+$", w) for w in row["where"]), row

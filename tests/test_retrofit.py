"""`secure-ml retrofit` on repositories shaped like real ones (a DVC example project, an MLflow
example project, a course repository with nested conftest files), built here under tmp_path,
and on a clone of this repository. Each invariant of the retrofit is checked with the real
tools it names (git check-ignore, dvc stage list --all, the repository's own pytest)."""

from __future__ import annotations

import json
import re
import shutil
import stat
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import TEMPLATE, run

SRC = TEMPLATE / "src"
GENERATED = TEMPLATE / "{{cookiecutter.project_slug}}"
sys.path.insert(0, str(SRC))
from secure_ml_template import merge, program, retrofit  # noqa: E402

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def template_copy(tmp_path_factory):
    """A copy of the template and the package, taken once: every run of the module renders the same
    template even while the working tree changes. The package finds the template beside itself."""
    copy = tmp_path_factory.mktemp("template") / "secure-ml-template"
    ignore = shutil.ignore_patterns(".venv", "__pycache__", "*.pyc")
    for name in ("src", "hooks", GENERATED.name):
        shutil.copytree(TEMPLATE / name, copy / name, ignore=ignore)
    for name in ("cookiecutter.json",):
        shutil.copy2(TEMPLATE / name, copy / name)
    return copy


@pytest.fixture
def env(tmp_path, template_copy):
    """Environment for the command and git: the package on the path, a throw-away git identity."""
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("[user]\n\tname = Retrofit Test\n\temail = retrofit@example.com\n"
                         "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n")
    return {"PYTHONPATH": str(template_copy / "src"), "GIT_CONFIG_GLOBAL": str(gitconfig),
            "GIT_CONFIG_NOSYSTEM": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def secure_ml(args, env, check=True, cwd=None):
    return run([sys.executable, "-m", "secure_ml_template", *args], cwd=cwd or TEMPLATE, env=env, check=check)


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def git_repo(root: Path, env, message="the team's repository") -> None:
    run(["git", "init", "--quiet"], root, env=env)
    commit(root, env, message)


def commit(root: Path, env, message="work") -> None:
    run(["git", "add", "--all"], root, env=env)
    run(["git", "commit", "--quiet", "--no-verify", "--allow-empty", "-m", message], root, env=env)


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(root).parts}


def modes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(root).parts}


def parse_plan(output: str) -> dict:
    plan = {"add": set(), "merge": set(), "propose": [], "appended": {}}
    current = None
    for line in output.split("\ncheck before:")[0].splitlines():
        if m := re.match(r"^  add      (\S.*)$", line):
            plan["add"].add(m.group(1))
        elif m := re.match(r"^  merge    (\S+): ", line):
            current = m.group(1)
            plan["merge"].add(current)
            plan["appended"][current] = []
        elif m := re.match(r"^             \+ (.*)$", line):
            if current:
                plan["appended"][current].append(m.group(1))
        elif m := re.match(r"^  propose  (\S+): (.*)$", line):
            plan["propose"].append((m.group(1), m.group(2)))
            current = None
        else:
            current = None
    return plan


def report(root: Path, env) -> dict:
    return {r["id"]: r for r in json.loads(secure_ml(["check", str(root), "--format", "json"], env).stdout)["controls"]}


def own_tests(root: Path, env, *args) -> tuple[list[str], str]:
    """The repository's own pytest: the ids it collects, and the summary of a real run."""
    base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    collected = run([*base, "--collect-only", "-q"], root, env={**env, "PYTHONPATH": ""}, check=False)
    ids = sorted(line for line in collected.stdout.splitlines() if "::" in line)
    done = run([*base, "-q"], root, env={**env, "PYTHONPATH": ""}, check=False)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    return ids, re.sub(r" in [0-9.]+s", "", summary)


def dvc_stages(root: Path) -> list[str]:
    done = run([str(BIN / "dvc"), "stage", "list", "--all"], root, env={"DVC_NO_ANALYTICS": "1"})
    return sorted(line.split()[0] for line in done.stdout.splitlines() if line.strip())


# ---------------------------------------------------------------- fixtures shaped like real repositories


def dvc_project(root: Path) -> None:
    """Like iterative/example-get-started: dvc.yaml, params.yaml, a data/*.dvc import,
    .gitlab-ci.yml beside a GitHub workflow, src/ scripts that pickle their model."""
    write(root, {
        ".dvc/config": "[core]\n    remote = storage\n['remote \"storage\"']\n    url = /tmp/dvc-storage\n",
        ".dvc/.gitignore": "/config.local\n/tmp\n/cache\n",
        ".dvcignore": "# Add patterns of files dvc should ignore\n",
        ".gitignore": ".venv/\n/model.pkl\n/eval\n",
        "data/.gitignore": "/data.xml\n",
        "data/data.xml.dvc": (
            "md5: f5ea021eddd7b1df6de80b904cba1da6\nfrozen: true\ndeps:\n- path: get-started/data.xml\n"
            "  repo:\n    url: https://github.com/iterative/dataset-registry\n"
            "    rev_lock: f59388cd04276e75d70b2136597aaa27e7937cc3\nouts:\n"
            "- md5: 22a1a2931c8370d3aeedd7183606fd7f\n  size: 14445097\n  hash: md5\n  path: data.xml\n"),
        "params.yaml": "prepare:\n  split: 0.20\n  seed: 20170428\ntrain:\n  seed: 20170428\n  n_est: 50\n",
        "dvc.yaml": (
            "stages:\n  prepare:\n    cmd: python src/prepare.py data/data.xml\n    deps:\n    - data/data.xml\n"
            "    - src/prepare.py\n    params:\n    - prepare.seed\n    - prepare.split\n    outs:\n    - data/prepared\n"
            "  featurize:\n    cmd: python src/featurization.py data/prepared data/features\n    deps:\n"
            "    - data/prepared\n    - src/featurization.py\n    outs:\n    - data/features\n"
            "  train:\n    cmd: python src/train.py data/features model.pkl\n    deps:\n    - data/features\n"
            "    - src/train.py\n    params:\n    - train.seed\n    - train.n_est\n    outs:\n    - model.pkl\n"
            "  evaluate:\n    cmd: python src/evaluate.py model.pkl data/features\n    deps:\n    - data/features\n"
            "    - model.pkl\n    - src/evaluate.py\n    outs:\n    - eval\n"),
        "src/requirements.txt": "dvclive>=3.0\npandas\nscikit-learn\n",
        "src/prepare.py": "import random\n\n\ndef split(rows, ratio, seed):\n    random.seed(seed)\n    return rows\n",
        "src/train.py": ("import pickle\nimport sys\n\n\ndef save(model, path):\n    with open(path, 'wb') as fd:\n"
                         "        pickle.dump(model, fd)\n\n\nif __name__ == '__main__':\n    save({}, sys.argv[2])\n"),
        "src/evaluate.py": ("import pickle\n\nfrom dvclive import Live\n\n\ndef load(path):\n"
                            "    with open(path, 'rb') as fd:\n        return pickle.load(fd)\n"),
        ".gitlab-ci.yml": ("stages:\n  - train\n  - report\n\ntrain-model:\n  stage: train\n  image: iterativeai/cml:0-dvc2-base1\n"
                           "  script:\n    - pip install -r src/requirements.txt\n    - dvc repro\n"),
        ".github/workflows/cml.yaml": (
            "name: CML\non: [push]\njobs:\n  train:\n    runs-on: ubuntu-latest\n    steps:\n"
            "      - uses: actions/checkout@v3\n      - run: pip install -r src/requirements.txt && dvc repro\n"),
        # A tracked, non-secret .env: the ignore line `.env` must not hide it.
        ".env": "DVC_NO_ANALYTICS=1\n",
        "README.md": "# DVC get started\n",
    })


def mlflow_project(root: Path) -> None:
    """Like mlflow/mlflow-example: top-level train.py, MLproject, conda.yaml, an Apache LICENSE.txt."""
    write(root, {
        "MLproject": ("name: tutorial\n\nconda_env: conda.yaml\n\nentry_points:\n  main:\n    parameters:\n"
                      "      alpha: float\n    command: \"python train.py {alpha}\"\n"),
        "conda.yaml": ("name: tutorial\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.8\n  - pip\n"
                       "  - pip:\n    - scikit-learn==0.23.2\n    - mlflow>=1.0\n    - pandas\n"),
        "train.py": ("import sys\n\nimport mlflow\nimport mlflow.sklearn\n\n\ndef main(alpha):\n"
                     "    with mlflow.start_run():\n        mlflow.log_param('alpha', alpha)\n\n\n"
                     "if __name__ == '__main__':\n    main(float(sys.argv[1]))\n"),
        "LICENSE.txt": "                                 Apache License\n                           Version 2.0, January 2004\n",
        "README.md": "# mlflow-example\n",
        "wine-quality.csv": "fixed acidity,quality\n7.4,5\n",
    })


COURSE_PRECOMMIT = """repos:
-   repo: https://github.com/pre-commit/pre-commit-hooks
    rev: v4.0.1
    hooks:
    -   id: trailing-whitespace
    -   id: end-of-file-fixer
-   repo: https://github.com/psf/black
    rev: 22.3.0
    hooks:
    -   id: black
        args: []
        files: .
-   repo: https://gitlab.com/PyCQA/flake8
    rev: 3.9.2
    hooks:
    -   id: flake8
-   repo: https://github.com/PyCQA/isort
    rev: 5.10.1
    hooks:
    -   id: isort
        args: []
        files: .
"""


def course_repo(root: Path) -> None:
    """Like a course repository: a top-level package, tests/ with nested conftest.py files and
    `from conftest import ...`, a Makefile, pre-commit in the `-   repo:` style, black/flake8/isort."""
    write(root, {
        "tagifai/__init__.py": "",
        "tagifai/main.py": ("import torch\n\n\ndef load(path):\n    return torch.load(path)\n\n\n"
                            "def clean(text):\n    return ' '.join(text.lower().split())\n"),
        "tagifai/data.py": "def tags(rows):\n    return sorted({t for row in rows for t in row})\n",
        "config/config.py": "SEED = 1234\n",
        "tests/conftest.py": "import pytest\n\n\n@pytest.fixture\ndef rows():\n    return [['a', 'b'], ['b']]\n",
        "tests/code/conftest.py": "def helper():\n    return 'nested'\n",
        "tests/code/test_data.py": ("from conftest import helper\n\nfrom tagifai import data\n\n\n"
                                    "def test_tags(rows):\n    assert data.tags(rows) == ['a', 'b']\n\n\n"
                                    "def test_helper_is_the_nested_one():\n    assert helper() == 'nested'\n"),
        "tests/code/test_main.py": ("import sys\nimport types\n\nsys.modules.setdefault('torch', types.ModuleType('torch'))\n"
                                    "from tagifai import main  # noqa: E402\n\n\ndef test_clean():\n"
                                    "    assert main.clean('  Hello   World ') == 'hello world'\n"),
        "Makefile": ".PHONY: style test\nstyle:\n\tblack .\n\tflake8\n\tisort .\n\ntest:\n\tpython -m pytest -m \"not training\"\n",
        ".pre-commit-config.yaml": COURSE_PRECOMMIT,
        "pyproject.toml": ("[tool.black]\nline-length = 100\ninclude = '\\.pyi?$'\n\n[tool.isort]\nprofile = \"black\"\n"
                           "line_length = 100\n\n[tool.pytest.ini_options]\ntestpaths = [\"tests\"]\n"
                           "python_files = \"test_*.py\"\nmarkers = [\"training: tests that train models\"]\n"),
        "setup.cfg": "[flake8]\nexclude = venv\nmax-line-length = 100\n",
        "setup.py": "from setuptools import setup\n\nsetup(name='tagifai', version='0.1', packages=['tagifai'])\n",
        "requirements.txt": "numpy==1.19.5\ntorch==1.8.0\n",
        "LICENSE": "MIT License\n\nCopyright (c) 2021 the course\n",
    })


def pipeline_free_checks(output: str) -> list[str]:
    return [line.strip() for line in output.split("invariants (checked before writing):")[1].split("\n\ncheck before")[0].splitlines()]


# ---------------------------------------------------------------- the three shapes, end to end


@pytest.mark.parametrize("shape", ["dvc", "mlflow", "course"])
def test_retrofit_keeps_every_byte_and_behaviour_and_a_second_run_has_nothing_to_do(tmp_path, env, shape):
    root = tmp_path / shape
    root.mkdir()
    {"dvc": dvc_project, "mlflow": mlflow_project, "course": course_repo}[shape](root)
    git_repo(root, env)
    stages_before = dvc_stages(root) if shape == "dvc" else None  # (writes DVC's own .dvc/tmp)
    ids_before, result_before = own_tests(root, env)
    before, before_modes = snapshot(root), modes(root)

    dry = secure_ml(["retrofit", str(root), "--dry-run"], env)
    assert snapshot(root) == before, "--dry-run changed the repository"
    done = secure_ml(["retrofit", str(root)], env)
    plan = parse_plan(done.stdout)
    assert parse_plan(dry.stdout) == plan
    after = snapshot(root)

    # Every pre-existing byte kept: files are unchanged, or (the merges) the old text with lines added.
    changed = {p for p in before if after[p] != before[p]}
    assert changed == plan["merge"]
    for rel in changed:
        old, new = before[rel].decode(), after[rel].decode()
        assert merge.keeps_lines(old, new)
        # The plan listed each line it appended: exactly the lines the file gained.
        assert Counter(new.splitlines()) - Counter(old.splitlines()) == Counter(plan["appended"][rel]), rel
    assert {p: m for p, m in modes(root).items() if p in before} == before_modes
    created = set(after) - set(before)
    assert created == plan["add"] | {program.MANIFEST}
    # No second licence, no bytecode; Python only in the program's own folder (the gates script).
    assert not [p for p in created if re.match(r"(?i)(licen[cs]e|copying)", Path(p).name)]
    assert not [p for p in created if p.endswith(".pyc") or "__pycache__" in p]
    python = [p for p in created if p.endswith(".py")]
    assert f"{program.GATES_DIR}/gates.py" in python and all(p.startswith(f"{program.GATES_DIR}/") for p in python)
    # The repository's behaviour: same test ids and results, same DVC stages, nothing newly ignored.
    assert own_tests(root, env) == (ids_before, result_before)
    if shape == "dvc":
        assert dvc_stages(root) == stages_before and len(stages_before) == 5
        assert "ok  dvc stage list --all unchanged (5 stages, in a scratch copy)" in done.stdout
    tracked = run(["git", "ls-files"], root).stdout.split()
    newly = run(["git", "check-ignore", "--no-index", *tracked, "data/new.dvc"], root, check=False).stdout.split()
    assert newly == [], newly
    # The gates' hooks and CI job of its own name were added; the repository's own CI is untouched.
    config = yaml.safe_load((root / ".pre-commit-config.yaml").read_text())
    ids = [h["id"] for r in config["repos"] for h in r["hooks"]]
    assert {"secure-ml-bandit", "secure-ml-secrets", "secure-ml-models", "secure-ml-audit"} <= set(ids)
    assert ".github/workflows/secure-ml.yml" in created
    for rel in (".gitlab-ci.yml", ".github/workflows/cml.yaml", "Makefile", "LICENSE.txt", "pyproject.toml"):
        if rel in before:
            assert after[rel] == before[rel], rel

    # A second run after committing, and on a fresh clone, has nothing to do.
    commit(root, env, "retrofit")
    second = secure_ml(["retrofit", str(root)], env)
    assert "nothing to do" in second.stdout and snapshot(root) == after
    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", str(root), str(clone)], tmp_path, env=env)
    fresh = secure_ml(["retrofit", str(clone)], env)
    assert "nothing to do" in fresh.stdout, fresh.stdout
    assert run(["git", "status", "--porcelain"], clone).stdout == ""


def test_dvc_project_a_tracked_file_is_never_made_ignored_and_dvc_files_stay_addable(tmp_path, env):
    root = tmp_path / "dvc"
    root.mkdir()
    dvc_project(root)
    git_repo(root, env)
    done = secure_ml(["retrofit", str(root)], env)
    # `.env` is tracked here: its ignore line is left out, with the reason, and the others go in.
    assert "propose  .gitignore: line '.env' would make tracked .env ignored; not appended" in done.stdout
    text = (root / ".gitignore").read_text()
    assert "/reports/pip-audit.json" in text and "\n.env\n" not in text
    # The registry points at the repository's real files, and what is missing is a to-do.
    controls = {c["id"]: c for c in yaml.safe_load((root / program.REGISTRY).read_text())["controls"]}
    assert controls["MODEL-FORMAT"]["status"] == "to do" and "src/train.py:7" in controls["MODEL-FORMAT"]["evidence"]
    assert controls["DATA-VALIDATE"]["todo"] and controls["SEC-GATES"]["status"] == "in place"
    assert "dvc.yaml:1" in controls["SE-VERSIONING"]["evidence"]
    for control in controls.values():
        for where in control["evidence"]:
            if re.match(r"^[\w./-]+:\d+$", where):
                assert (root / where.split(":")[0]).is_file(), where
    # The filter itself, asked for the line that broke the real project: `/data/` hides the import.
    tracked = run(["git", "ls-files"], root).stdout.split()
    from secure_ml_template import invariants
    kept, dropped = retrofit.filter_ignore_lines(
        root, ".venv/\n", ["/data/", "*.secret"], sorted(set(tracked + invariants.probes(root, tracked))))
    assert kept == ["*.secret"]
    assert [line for line, _ in dropped] == ["/data/"]
    hidden = invariants.ignored(root, ["data/data.xml.dvc", "data/new.dvc"], {".gitignore": ".venv/\n/data/\n"})
    assert set(hidden) == {"data/data.xml.dvc", "data/new.dvc"}
    assert snapshot(root)[".gitignore"] == text.encode()  # the check wrote nothing


def test_dvc_stage_list_is_compared_and_a_change_becomes_a_proposal(tmp_path):
    """The DVC invariant on its own: an ignore line that hides the import changes the stages."""
    from secure_ml_template import invariants
    root = tmp_path / "dvc"
    root.mkdir()
    dvc_project(root)
    run(["git", "init", "--quiet"], root)
    base = (root / ".gitignore").read_text()
    assert len(invariants.dvc_stages(root, {}, {})) == 5
    assert len(invariants.dvc_stages(root, {".gitignore": base + "/data/\n"}, {})) == 4


def test_course_repo_precommit_in_the_four_space_style_is_merged_not_proposed(tmp_path, env):
    root = tmp_path / "course"
    root.mkdir()
    course_repo(root)
    git_repo(root, env)
    done = secure_ml(["retrofit", str(root)], env)
    assert "merge    .pre-commit-config.yaml: add hooks secure-ml-bandit" in done.stdout
    text = (root / ".pre-commit-config.yaml").read_text()
    assert text.startswith(COURSE_PRECOMMIT)
    assert "\n-   repo: local\n    hooks:\n    -   id: \"secure-ml-bandit\"\n" in text
    data = yaml.safe_load(text)
    assert data["repos"][:4] == yaml.safe_load(COURSE_PRECOMMIT)["repos"]
    # The gates job runs on the repository's own package: bandit is wired to `secure-ml gates`.
    assert report(root, env)["scan-bandit"]["status"] == "present"


# ---------------------------------------------------------------- --with-pipeline


def test_with_pipeline_adds_a_self_contained_sub_project_the_repository_tests_never_see(tmp_path, env):
    root = tmp_path / "mlflow"
    root.mkdir()
    mlflow_project(root)
    write(root, {"tests/test_train.py": "def test_train_module_exists():\n    import train  # noqa: F401\n"})
    git_repo(root, env)
    ids_before, result_before = own_tests(root, env)
    checks_before = report(root, env)
    done = secure_ml(["retrofit", str(root), "--with-pipeline", "ml-pipeline"], env)
    sub = root / "ml-pipeline"
    assert (sub / "dvc.yaml").is_file() and (sub / "src" / "ml_pipeline" / "train.py").is_file()
    assert (sub / "conftest.py").is_file()
    assert not (sub / "LICENSE").exists() and "skip     ml-pipeline/LICENSE: the licence is the repository's own" in done.stdout
    assert not list(sub.rglob("__pycache__")) and not (sub / ".git").exists()
    assert "ok  the repository's pytest collects the same 1 test ids" in done.stdout
    assert own_tests(root, env) == (ids_before, result_before)
    # The sub-project's own tests are collected from its folder (its pyproject.toml, its conftest).
    collected = run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                     "tests/unit/test_validate.py"], sub, env={**env, "PYTHONPATH": "src"}, check=False)
    assert "rootdir: " + str(sub) in collected.stdout or collected.returncode in (0, 2), collected.stdout
    # check judges the repository: the sub-project's DVC, skops and pandera are not its evidence.
    after = report(root, env)
    for control in ("dvc-pipeline", "safe-model-format", "data-validation", "lock-hashes", "tests"):
        assert after[control]["status"] == checks_before[control]["status"], control


def test_with_pipeline_is_refused_when_its_package_or_conftest_would_shadow_the_repository(tmp_path, env):
    root = tmp_path / "course"
    root.mkdir()
    course_repo(root)
    git_repo(root, env)
    before = snapshot(root)
    shadow = secure_ml(["retrofit", str(root), "--dry-run", "--with-pipeline", "pipeline", "--package", "tagifai"], env)
    assert "VIOLATED  tagifai is a module the repository has or imports" in shadow.stdout
    assert "propose  pipeline/: not written: an invariant would break (above)" in shadow.stdout
    done = secure_ml(["retrofit", str(root), "--with-pipeline", "pipeline"], env)
    assert "VIOLATED  the repository imports `conftest` by name" in done.stdout
    assert not (root / "pipeline").exists()
    assert all(snapshot(root)[p] == before[p] or p in (".pre-commit-config.yaml", ".gitignore") for p in before)


# ---------------------------------------------------------------- untrusted input stays data


PAYLOAD = "{{ cycler.__init__.__globals__.os.system('touch %s') }}"


def attack_repo(root: Path, marker: Path) -> None:
    shell = f"$(touch {marker}-shell); `touch {marker}-tick`"
    write(root, {
        "pyproject.toml": (f'[project]\nname = "{PAYLOAD % marker}"\ndescription = "{shell}"\n'
                           f'authors = [{{name = "{PAYLOAD % (str(marker) + "-author")}"}}]\n'),
        "setup.cfg": f"[metadata]\nname = {PAYLOAD % (str(marker) + '-cfg')}\ndescription = {shell}\n",
        "MLproject": f"name: \"{PAYLOAD % (str(marker) + '-mlproject')}\"\n",
        f"$(touch {marker.name}-file).py": "x = 1\n",
        "{{ 7 * 7 }}.md": "# {{ 7 * 7 }}\n",
        "src/{% if true %}pkg{% endif %}/__init__.py": "",
        "docs/; touch marker-semicolon.md": "text\n",
    })


def test_a_repository_crafted_to_attack_the_tool_runs_nothing(tmp_path, env):
    root = tmp_path / "attack"
    root.mkdir()
    marker = tmp_path / "MARKER"
    attack_repo(root, marker)
    git_repo(root, env)
    secure_ml(["check", str(root)], env, cwd=root)
    secure_ml(["retrofit", str(root), "--dry-run"], env, cwd=root)
    done = secure_ml(["retrofit", str(root)], env, cwd=root)
    commit(root, env)
    pipeline = secure_ml(["retrofit", str(root), "--with-pipeline", "pipe"], env, cwd=root)
    assert (root / "pipe" / "dvc.yaml").is_file(), pipeline.stdout
    assert not list(tmp_path.glob("MARKER*")) and not list(root.rglob("marker-*")) and not (root / "pipe" / "49.md").exists()
    assert "add      SECURITY.md" in done.stdout
    assert yaml.safe_load((root / program.REGISTRY).read_text())["controls"]
    assert not list(tmp_path.rglob("MARKER*"))


@pytest.mark.parametrize("package, why", [
    ("1bad", "starts with a digit"), ("../evil", "is not a Python identifier"),
    ("numpy", "shadows a dependency"), ("import", "is a Python keyword"), ("json", "shadows a standard-library module"),
    ("{{7*7}}", "is not a Python identifier"),
])
def test_an_invalid_package_is_refused_with_one_line_not_rewritten(tmp_path, env, package, why):
    root = tmp_path / "repo"
    root.mkdir()
    mlflow_project(root)
    before = snapshot(root)
    done = secure_ml(["retrofit", str(root), "--with-pipeline", "pipe", "--package", package], env, check=False)
    assert done.returncode == 2 and done.stdout == ""
    line = done.stderr.strip()
    assert "\n" not in line and why in line and repr(package) in line
    assert snapshot(root) == before


@pytest.mark.parametrize("args, words", [
    (["--with-pipeline", "../outside"], "give a new folder inside the repository"),
    (["--with-pipeline", "/abs"], "give a new folder inside the repository"),
    (["--with-pipeline", "pipe", "--name", "{{ 7*7 }}"], "--name="),
    (["--author-email", "not-an-email"], "--author-email="),
    (["--package", "fine"], "use them with --with-pipeline"),
])
def test_bad_values_are_refused_with_one_line_and_exit_2(tmp_path, env, args, words):
    root = tmp_path / "repo"
    root.mkdir()
    mlflow_project(root)
    before = snapshot(root)
    done = secure_ml(["retrofit", str(root), *args], env, check=False)
    assert done.returncode == 2 and done.stdout == "" and words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert snapshot(root) == before and not (tmp_path / "outside").exists()


# ---------------------------------------------------------------- modes, links, refusals


def test_a_read_only_file_is_not_modified_even_by_root(tmp_path, env):
    root = tmp_path / "repo"
    root.mkdir()
    mlflow_project(root)
    write(root, {".gitignore": "*.csv.bak\n"})
    git_repo(root, env)
    (root / ".gitignore").chmod(0o444)
    done = secure_ml(["retrofit", str(root)], env)
    assert (root / ".gitignore").read_text() == "*.csv.bak\n"
    assert stat.S_IMODE((root / ".gitignore").stat().st_mode) == 0o444
    assert re.search(r"propose  \.gitignore: not changed, it is read-only \(mode -r--r--r--\)", done.stdout)
    assert "             + .env" in done.stdout  # the plan lists the lines to add by hand
    assert (root / "SECURITY.md").is_file()


def test_nothing_is_written_through_a_link_out_of_the_repository(tmp_path, env):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "linked"
    root.mkdir()
    (root / "train.py").write_text("print('train')\n")
    (root / "docs").symlink_to(outside, target_is_directory=True)
    done = secure_ml(["retrofit", str(root)], env)
    assert "skip     docs/threat-model.md: a file or a link stands where its folder would go" in done.stdout
    assert list(outside.iterdir()) == []
    assert (root / "SECURITY.md").is_file()


def test_an_uncommitted_repository_is_refused_with_exit_1_then_force_keeps_the_work(tmp_path, env):
    root = tmp_path / "dirty"
    root.mkdir()
    mlflow_project(root)
    git_repo(root, env)
    with open(root / "train.py", "a", encoding="utf-8") as f:
        f.write("# work in progress\n")
    before = snapshot(root)
    refused = secure_ml(["retrofit", str(root)], env, check=False)
    assert refused.returncode == 1 and refused.stdout == ""
    message = refused.stderr.strip()
    assert "\n" not in message and "uncommitted" in message and "--force" in message
    assert snapshot(root) == before
    dry = secure_ml(["retrofit", str(root), "--dry-run"], env)
    assert "the real run needs them committed, or --force" in dry.stdout and snapshot(root) == before
    forced = secure_ml(["retrofit", str(root), "--force"], env)
    assert "add      SECURITY.md" in forced.stdout and (root / "train.py").read_bytes() == before["train.py"]


def test_bad_path_is_one_line_and_exit_2(tmp_path, env):
    (tmp_path / "a-file.txt").write_text("x\n")
    for bad, words in (("missing-folder", "no such folder"), ("a-file.txt", "not a folder")):
        done = secure_ml(["retrofit", str(tmp_path / bad)], env, check=False)
        assert done.returncode == 2 and done.stdout == "" and words in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_gitlab_repository_gets_a_job_file_included_from_its_ci(tmp_path, env):
    root = tmp_path / "gl"
    root.mkdir()
    write(root, {".gitlab-ci.yml": "stages:\n  - build\n\nbuild:\n  stage: build\n  script:\n    - echo hi\n",
                 "model.py": "import joblib\n\n\ndef save(m):\n    joblib.dump(m, 'm.joblib')\n"})
    git_repo(root, env)
    before = (root / ".gitlab-ci.yml").read_text()
    secure_ml(["retrofit", str(root)], env)
    text = (root / ".gitlab-ci.yml").read_text()
    assert text.startswith(before) and yaml.safe_load(text)["include"] == [{"local": program.GITLAB_JOB}]
    job = yaml.safe_load((root / program.GITLAB_JOB).read_text())["secure-ml-gates"]
    assert job["stage"] == "build" and "@sha256:" in job["image"] and job["script"] == ["sh .secure-ml/run"]
    rows = report(root, env)
    assert rows["scan-bandit"]["status"] == "present" and rows["ci-hardened"]["status"] == "present"


def test_a_clone_of_this_repository_keeps_its_own_tests(tmp_path, env):
    """A real repository: this one (committed work only), with its own pyproject, Makefile,
    tests/conftest.py, src/ package and pre-commit config."""
    root = tmp_path / "clone"
    run(["git", "clone", "--quiet", "--no-hardlinks", str(TEMPLATE), str(root)], tmp_path)
    before = snapshot(root)
    tests = ["tests/test_retrofit.py::test_precommit_merge_keeps_every_line_in_any_indentation"]
    args = ["-p", "no:cacheprovider", "-q", "--template=.", *tests]
    first = run([sys.executable, "-m", "pytest", *args], root, env={**env, "PYTHONPATH": "src"}, check=False)
    secure_ml(["retrofit", str(root)], env)
    after = snapshot(root)
    assert all(after[p] == before[p] or merge.keeps_lines(before[p].decode(), after[p].decode()) for p in before)
    again = run([sys.executable, "-m", "pytest", *args], root, env={**env, "PYTHONPATH": "src"}, check=False)
    assert again.returncode == first.returncode


# ---------------------------------------------------------------- the gates entry point


def test_gates_entry_point_reports_findings_in_the_repository_own_code(tmp_path, env):
    root = tmp_path / "repo"
    write(root, {"pyproject.toml": "[project]\nname = 'repo'\n",
                 "scripts/run.py": "print('run')\n",
                 "src/repo/__init__.py": "",
                 "src/repo/load.py": "import pickle\n\n\ndef load(blob):\n    return pickle.loads(blob)\n"})
    git_repo(root, env)
    secure_ml(["retrofit", str(root)], env)
    done = secure_ml(["gates", str(root), "bandit"], env, check=False)
    assert done.returncode == 1, done.stdout
    assert re.search(r"src/repo/load\.py:5: B301", done.stdout)
    (root / "src/repo/load.py").write_text("import json\n\n\ndef load(blob):\n    return json.loads(blob)\n")
    clean = secure_ml(["gates", str(root), "bandit", "secrets"], env, check=False)
    assert clean.returncode == 0, clean.stdout
    assert "PASS bandit" in clean.stdout and "PASS secrets" in clean.stdout
    write(root, {"src/repo/keys.py": 'AWS_KEY = "AKIAIOSFODNN7EXAMPLF"\n'})
    leaked = secure_ml(["gates", str(root), "secrets"], env, check=False)
    assert leaked.returncode == 1 and "src/repo/keys.py:1" in leaked.stdout
    unknown = secure_ml(["gates", str(root), "nonsense"], env, check=False)
    assert unknown.returncode == 2


DVC_LOCK = """schema: '2.0'
stages:
  prepare:
    cmd: python src/repo/load.py
    deps:
    - path: src/repo/load.py
      hash: md5
      md5: f09ea0c15980b43010257ccb9f0055e2
      size: 1576
    outs:
    - path: data/prepared
      hash: md5
      md5: 153aad06d376b6595932470e459ef42a.dir
      size: 8437363
      nfiles: 2
"""
DATA_DVC = "outs:\n- md5: 22a1a2931c8370d3aeedd7183606fd7f\n  size: 14445097\n  hash: md5\n  path: data.xml\n"


def gates_repo(root: Path, env) -> None:
    """A small repository with DVC files (digests on every other line) and its own code."""
    write(root, {"pyproject.toml": "[project]\nname = 'repo'\n", "scripts/run.py": "print('run')\n",
                 "src/repo/__init__.py": "", "src/repo/load.py": "import json\n\n\ndef load(b):\n    return json.loads(b)\n",
                 "dvc.lock": DVC_LOCK, "data/data.xml.dvc": DATA_DVC})
    git_repo(root, env)
    secure_ml(["retrofit", str(root)], env)
    commit(root, env, "retrofit")


def test_the_runner_installs_the_pinned_scanners_and_runs_the_gates_in_the_repository(tmp_path, env):
    """`sh .secure-ml/run` is all CI and the hooks need: it creates .secure-ml/.venv from the
    hash-pinned requirements (uv from PATH here; pip without it), runs the copied gates script on
    the repository, and leaves nothing git sees; a changed hash is refused before any gate runs."""
    root = tmp_path / "repo"
    gates_repo(root, env)
    assert (root / program.GATES_DIR / "gates.py").read_bytes() == (GENERATED / "scripts/security/gates.py").read_bytes()
    assert not (root / program.GATES_DIR / "block_dvc_outs.py").exists()
    assert run(["git", "ls-files", "--", ".secure-ml"], root).stdout.split() == sorted(
        [*program.gates_files(), program.MANIFEST, program.REGISTRY])
    runner_env = {**env, "PATH": f"{BIN}:/usr/bin:/bin", "PYTHONPATH": "", "SECURE_ML_PYTHON": sys.executable}
    done = run(["sh", str(root / program.RUNNER), "bandit", "secrets"], tmp_path, env=runner_env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS bandit" in done.stdout and "PASS secrets" in done.stdout
    venv = root / ".secure-ml" / ".venv"
    assert "uv = " in (venv / "pyvenv.cfg").read_text()  # uv from PATH made it
    installed = run([str(venv / "bin" / "python"), "-m", "pip", "freeze"], root, check=False).stdout
    assert "detect-secrets==1.5.0" in installed and "bandit==" in installed, installed
    assert run(["git", "status", "--porcelain", "--ignored", "--", ".secure-ml"], root).stdout == "!! .secure-ml/.venv/\n"
    # A finding in the repository's own code fails the run; a second run reuses the environment.
    write(root, {"src/repo/load.py": "import pickle\n\n\ndef load(blob):\n    return pickle.loads(blob)\n"})
    found = run(["sh", ".secure-ml/run", "bandit"], root, env=runner_env, check=False)
    assert found.returncode == 1 and re.search(r"src/repo/load\.py:5: B301", found.stdout), found.stdout
    assert "installing the scanners" not in found.stderr
    # The repository's check does not count the pinned requirements as its own lock.
    assert report(root, env)["lock-hashes"]["status"] == "missing"
    # Retrofit again after the runner ran: nothing to do.
    run(["git", "checkout", "--", "src"], root)
    assert "nothing to do" in secure_ml(["retrofit", str(root)], env).stdout
    # Tampered requirements: the install is refused, no gate runs, the run fails.
    lock = root / program.REQUIREMENTS
    text = lock.read_text()
    block = re.search(r"(?m)^bandit==.*\n(    --hash=sha256:[0-9a-f]{64}.*\n)+", text).group(0)
    lock.write_text(text.replace(block, re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, block)))
    tampered = run(["sh", ".secure-ml/run", "bandit"], root, env=runner_env, check=False)
    assert tampered.returncode != 0 and "== bandit" not in tampered.stdout, tampered.stdout + tampered.stderr
    assert "hash" in tampered.stderr.lower(), tampered.stderr


@pytest.mark.slow
def test_the_runner_falls_back_to_pip_without_uv(tmp_path, env):
    root = tmp_path / "repo"
    gates_repo(root, env)
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    no_uv = {**env, "PATH": "/usr/bin:/bin", "PYTHONPATH": "", "SECURE_ML_PYTHON": python}
    assert shutil.which("uv", path=no_uv["PATH"]) is None
    done = run(["sh", ".secure-ml/run", "secrets"], root, env=no_uv, check=False)
    assert done.returncode == 0 and "PASS secrets" in done.stdout, done.stdout + done.stderr
    assert "uv = " not in (root / ".secure-ml/.venv/pyvenv.cfg").read_text()  # python -m venv + pip


def test_the_secrets_gate_accepts_dvc_digests_and_still_finds_a_secret_in_dvc_files(tmp_path, env):
    root = tmp_path / "repo"
    gates_repo(root, env)
    clean = secure_ml(["gates", str(root), "secrets"], env, check=False)
    assert clean.returncode == 0 and "PASS secrets" in clean.stdout, clean.stdout
    # The filter is what makes them pass: without it the `.dvc` digest is reported.
    baseline = root / ".secrets.baseline"
    data = json.loads(baseline.read_text())
    kept = baseline.read_text()
    for entry in data["filters_used"]:
        if entry["path"].endswith("should_exclude_line"):
            entry["pattern"] = []
    baseline.write_text(json.dumps(data))
    unfiltered = secure_ml(["gates", str(root), "secrets"], env, check=False)
    assert unfiltered.returncode == 1 and "data/data.xml.dvc:2" in unfiltered.stdout, unfiltered.stdout
    # A secret on a digest line, or on another line of a `.dvc` file, is still reported. (detect-secrets
    # never reads `*.lock` files, dvc.lock included: its digests cannot be reported either.)
    baseline.write_text(kept)
    key = "AKIA" + "IOSFODNN7EXAMPLF"
    write(root, {"data/data.xml.dvc": DATA_DVC.replace("6fd7f\n", f"6fd7f {key}\n")})
    leaked = secure_ml(["gates", str(root), "secrets"], env, check=False)
    assert leaked.returncode == 1 and "data/data.xml.dvc:2" in leaked.stdout, leaked.stdout
    write(root, {"data/data.xml.dvc": DATA_DVC + f"  remote_url: https://{key}@example.com/data\n"})
    leaked = secure_ml(["gates", str(root), "secrets"], env, check=False)
    assert leaked.returncode == 1 and "data/data.xml.dvc:6" in leaked.stdout, leaked.stdout


# ---------------------------------------------------------------- the merges on their own

HOOKS = [{"id": "secure-ml-bandit", "name": "bandit", "entry": "secure-ml gates . bandit",
          "language": "system", "pass_filenames": False}]


@pytest.mark.parametrize("old", [
    COURSE_PRECOMMIT,
    "repos:\n- repo: local\n  hooks:\n  - id: mine\n    name: mine\n    entry: 'true'\n    language: system\n",
    "repos:\n    - repo: https://example.org/hooks\n      rev: v1\n      hooks:\n          - id: trailing-whitespace\nci:\n  autofix_prs: false\n",
    ("default_stages: [pre-commit]\nrepos:\n  - repo: local\n    hooks:\n      - id: mine\n        name: m\n"
     "        entry: 'true'\n        language: system\n\n# the end\n\nminimum_pre_commit_version: '3.0'"),
    "# top\nrepos:\n  - repo: a\n    rev: v1\n    hooks:\n      - id: b  # trailing comment",
])
def test_precommit_merge_keeps_every_line_in_any_indentation(old):
    merged, _ = merge.precommit(old, HOOKS, {"secure-ml-bandit": "bandit"})
    assert merge.keeps_lines(old, merged)
    data, before = yaml.safe_load(merged), yaml.safe_load(old)
    assert data["repos"][:-1] == before["repos"] and data["repos"][-1]["hooks"][0]["id"] == "secure-ml-bandit"
    assert {k: v for k, v in data.items() if k != "repos"} == {k: v for k, v in before.items() if k != "repos"}
    assert merge.precommit(merged, HOOKS, {"secure-ml-bandit": "bandit"}) is None


def test_precommit_merge_skips_a_tool_the_config_already_runs_and_refuses_flow_style():
    old = "repos:\n  - repo: https://github.com/PyCQA/bandit\n    rev: 1.7.0\n    hooks:\n      - id: bandit\n"
    assert merge.precommit(old, HOOKS, {"secure-ml-bandit": "bandit"}) is None
    with pytest.raises(merge.MergeError):
        merge.precommit("repos: [{repo: local, hooks: [{id: x, name: x, entry: x, language: system}]}]\n", HOOKS)
    with pytest.raises(merge.MergeError):
        merge.precommit("repos: [\n", HOOKS)


def test_gitignore_merge_appends_only_missing_lines():
    merged, _ = merge.gitignore("data/\n*.pkl", ["*.pkl", "/models/", ".env"])
    assert merged == "data/\n*.pkl\n\n" + merge.MARK + "\n/models/\n.env\n"
    assert merge.gitignore(merged, ["*.pkl", "/models/", ".env"]) is None


def test_help_states_the_exit_codes(env):
    for args in (["--help"], ["retrofit", "--help"], ["check", "--help"], ["gates", "--help"]):
        text = secure_ml(args, env).stdout
        assert "0  done" in text and "1  findings or refusal" in text and "2  usage or bad input" in text
    assert "0  done" in (TEMPLATE / "docs" / "retrofit.md").read_text()


def test_rendering_never_evaluates_a_value(tmp_path):
    """The escape used for every value cookiecutter renders gives the value back unchanged."""
    from jinja2 import Environment
    from secure_ml_template.template import literal
    for value in ["{{ 7*7 }}", "{% raw %}x{% endraw %}", "{#c#}", "a{b}c", "{{{", PAYLOAD % (tmp_path / "M")]:
        assert Environment().from_string(literal(value)).render() == value
    assert not list(tmp_path.glob("M*"))


def test_the_added_workflow_passes_zizmor_and_the_workflow_schema(tmp_path):
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "secure-ml.yml").write_bytes(program.workflow())
    for persona in ("regular", "auditor"):
        done = run([str(BIN / "zizmor"), "--offline", "--format=json", f"--persona={persona}", ".github/"], tmp_path,
                   check=False)
        assert done.returncode == 0 and json.loads(done.stdout) == [], done.stdout
    run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflows / "secure-ml.yml")],
        tmp_path)
    data = yaml.safe_load((workflows / "secure-ml.yml").read_text())
    assert data["permissions"] == {} and data["jobs"]["gates"]["steps"][-1]["run"] == "sh .secure-ml/run"


def test_the_added_ci_installs_nothing_unpinned():
    """The workflow and the GitLab job run the repository's own runner: no package is installed
    by name (which would need it published, and trust whatever the index serves), every action is
    pinned by commit, and the runner installs only with --require-hashes."""
    steps = yaml.safe_load(program.workflow())["jobs"]["gates"]["steps"]
    gitlab = yaml.safe_load(program.gitlab_job(None))["secure-ml-gates"]
    commands = [s["run"] for s in steps if "run" in s] + gitlab["before_script"] + gitlab["script"]
    assert commands and not [c for c in commands if re.search(r"\bpip3?\b|\buv\b|install\s+(?!-y)", c)], commands
    assert all(re.fullmatch(r"[\w./-]+@[0-9a-f]{40}", s["uses"]) for s in steps if "uses" in s), steps
    assert re.search(r"@sha256:[0-9a-f]{64}$", gitlab["image"])
    runner = program.gates_files()[program.RUNNER].decode()
    installs = [line for line in runner.splitlines() if re.search(r"pip (install|sync)", line)]
    assert len(installs) == 2 and all("--require-hashes" in line for line in installs), installs
    pinned = program.gates_files()[program.REQUIREMENTS].decode()
    names = re.findall(r"(?m)^([A-Za-z0-9_.-]+)==\S+ \\$", pinned)
    assert {"bandit", "detect-secrets", "pip-audit", "picklescan", "zizmor"} <= set(names)
    assert pinned.count("--hash=sha256:") >= len(names)
    # It is the root pyproject's [gates] extra, resolved (`make lock` re-resolves it).
    import tomllib
    extra = tomllib.loads((TEMPLATE / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gates"]
    missing = [pin for pin in extra if not re.search(rf"(?mi)^{re.escape(pin)} \\$", pinned)]
    assert not missing, f"{missing}: run make lock"


def test_with_pipeline_in_a_dvc_project_keeps_its_stages(tmp_path, env):
    """The sub-project has a .dvc folder of its own: DVC reads it as a sub-repository, so the
    enclosing project's `dvc stage list --all` stays the same (checked by retrofit, and here)."""
    root = tmp_path / "dvc"
    root.mkdir()
    dvc_project(root)
    git_repo(root, env)
    before = dvc_stages(root)
    done = secure_ml(["retrofit", str(root), "--with-pipeline", "ml"], env)
    assert "ok  dvc stage list --all unchanged (5 stages, in a scratch copy)" in done.stdout
    assert (root / "ml" / "dvc.yaml").is_file() and dvc_stages(root) == before


def test_merges_keep_every_byte_of_crlf_files_and_leave_non_utf8_files_alone(tmp_path, env):
    old = "repos:\r\n-   repo: a\r\n    rev: v1\r\n    hooks:\r\n    -   id: b\r\nci:\r\n  x: 1\r\n"
    merged, _ = merge.precommit(old, HOOKS, {})
    head = "repos:\r\n-   repo: a\r\n    rev: v1\r\n    hooks:\r\n    -   id: b\r\n"
    assert merged.startswith(head) and merged.endswith("ci:\r\n  x: 1\r\n") and "\n" not in merged.replace("\r\n", "")
    assert merge.gitignore("a\r\nb", [".env"])[0] == "a\r\nb\r\n\r\n" + merge.MARK + "\r\n.env\r\n"
    root = tmp_path / "repo"
    root.mkdir()
    (root / ".gitignore").write_bytes(b"caf\xe9/\r\n*.log\r\n")
    (root / ".pre-commit-config.yaml").write_bytes(old.encode())
    (root / "train.py").write_text("print('x')\n")
    before = snapshot(root)
    done = secure_ml(["retrofit", str(root)], env)
    after = snapshot(root)
    assert after[".gitignore"] == before[".gitignore"]
    assert "propose  .gitignore: not changed, it is not UTF-8 text; add by hand:" in done.stdout
    assert after[".pre-commit-config.yaml"].startswith(head.encode())
    assert after[".pre-commit-config.yaml"].endswith(b"ci:\r\n  x: 1\r\n")

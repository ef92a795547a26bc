"""`secure-ml retrofit` on repositories shaped like real ones, built here under tmp_path.

For each: the plan is printed and matches what is done; every pre-existing file is
byte-for-byte unchanged except the documented merges, which keep all original lines in
order; the repository's own tests still pass; `check` scores higher; a second run is a no-op.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from conftest import TEMPLATE, run

SRC = TEMPLATE / "src"
GENERATED = TEMPLATE / "{{cookiecutter.project_slug}}"
sys.path.insert(0, str(SRC))
from secure_ml_template import merge

MERGED_FILES = {".gitignore", ".pre-commit-config.yaml", "pyproject.toml", ".dvc/.gitignore"}


@pytest.fixture(scope="module")
def template_copy(tmp_path_factory):
    """A copy of the template and the package, taken once: every run of the module renders the same
    template even while the working tree changes. The package finds the template beside itself."""
    copy = tmp_path_factory.mktemp("template") / "secure-ml-template"
    ignore = shutil.ignore_patterns(".venv", "__pycache__", "*.pyc")
    for name in ("src", "hooks", GENERATED.name):
        shutil.copytree(TEMPLATE / name, copy / name, ignore=ignore)
    shutil.copy2(TEMPLATE / "cookiecutter.json", copy / "cookiecutter.json")
    return copy


@pytest.fixture
def env(tmp_path, template_copy):
    """Environment for the command and git: the package on the path, a throw-away git identity."""
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("[user]\n\tname = Retrofit Test\n\temail = retrofit@example.com\n"
                         "[init]\n\tdefaultBranch = main\n")
    return {"PYTHONPATH": str(template_copy / "src"), "GIT_CONFIG_GLOBAL": str(gitconfig),
            "GIT_CONFIG_NOSYSTEM": "1"}


def secure_ml(args, env, check=True):
    return run([sys.executable, "-m", "secure_ml_template", *args], cwd=TEMPLATE, env=env, check=check)


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def git_commit(root: Path, env, message="work") -> None:
    run(["git", "add", "--all"], root, env=env)
    run(["git", "commit", "--quiet", "--no-verify", "--allow-empty", "-m", message], root, env=env)


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(root).parts}


def parse_plan(output: str) -> dict:
    plan = {"add": set(), "merge": set(), "propose": {}}
    for line in output.splitlines():
        if m := re.match(r"^  add      (\S.*)$", line):
            plan["add"].add(m.group(1))
        elif m := re.match(r"^  merge    (\S+): ", line):
            plan["merge"].add(m.group(1))
        elif m := re.match(r"^  propose  (\S+) exists: the template's version goes to (\S+) ", line):
            plan["propose"][m.group(1)] = m.group(2)
    return plan


def plan_section(output: str) -> str:
    return output.split("\ncheck before:")[0].split("\n", 1)[1]


def score(root: Path, env) -> int:
    return json.loads(secure_ml(["check", str(root), "--format", "json"], env).stdout)["score"]


def in_order(old: str, new: str) -> bool:
    """Every line of old is in new, in the same order."""
    remaining = iter(new.splitlines())
    return all(any(line == candidate for candidate in remaining) for line in old.splitlines())


# ---------------------------------------------------------------- the fixtures

NOTEBOOK = json.dumps({
    "cells": [{"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {}, "outputs": [],
               "source": ["import pandas as pd\n", "df = pd.read_csv('data/iris.csv')\n", "df.describe()"]}],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4, "nbformat_minor": 5,
}, indent=1) + "\n"


def sklearn_repo(root: Path) -> list[str]:
    """A plain scikit-learn repo: requirements.txt, a notebook, train.py (pickles its model), a test."""
    write(root, {
        "requirements.txt": "scikit-learn==1.9.1\npandas==3.1.1\njupyter\n",
        "README.md": "# Iris classifier\n\nRun `python train.py`.\n",
        "notebooks/explore.ipynb": NOTEBOOK,
        "features.py": "def scale(values):\n    top = max(values)\n    return [v / top for v in values]\n",
        "train.py": (
            "import pickle\n\nfrom sklearn.datasets import load_iris\nfrom sklearn.linear_model import "
            "LogisticRegression\n\n\ndef main():\n    x, y = load_iris(return_X_y=True)\n"
            "    model = LogisticRegression(max_iter=200).fit(x, y)\n"
            "    with open('model.pkl', 'wb') as f:\n        pickle.dump(model, f)\n\n\n"
            "if __name__ == '__main__':\n    main()\n"),
        "tests/test_features.py": (
            "from features import scale\n\n\ndef test_scale_maps_the_largest_value_to_one():\n"
            "    assert scale([1, 2, 4]) == [0.25, 0.5, 1.0]\n"),
        # No newline at the end: the merge must keep the last line intact.
        ".gitignore": "*.pkl\n.ipynb_checkpoints/\ndata/",
    })
    return ["tests/test_features.py"]


def pyproject_repo(root: Path) -> list[str]:
    """A packaged repo with its own pyproject.toml, pre-commit config and GitHub workflow."""
    write(root, {
        "pyproject.toml": (
            '[project]\nname = "Fraud Detector"\nversion = "1.2.0"\ndependencies = ["scikit-learn"]\n\n'
            '[tool.ruff]\nline-length = 120\n# a comment the merge must keep\n'
            '[tool.ruff.lint]\nselect = ["E", "F"]\n'),
        ".pre-commit-config.yaml": (
            "# our hooks\nrepos:\n  - repo: local\n    hooks:\n      - id: unit-tests\n"
            "        name: unit tests\n        entry: python -m pytest -q\n        language: system\n"
            "        pass_filenames: false\n"),
        ".github/workflows/ci.yml": (
            "name: ci\non: [push]\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n"
            "      - uses: actions/checkout@v4\n      - run: pip install -e . && pytest\n"),
        "src/frauddet/__init__.py": '"""Fraud detection."""\n\n__version__ = "1.2.0"\n',
        "src/frauddet/score.py": "def risk(amount: float) -> str:\n    return 'high' if amount > 1000 else 'low'\n",
        "tests/test_score.py": (
            "from frauddet.score import risk\n\n\ndef test_risk():\n    assert risk(5000) == 'high'\n"
            "    assert risk(10) == 'low'\n"),
        "README.md": "# Fraud detector\n",
        "LICENSE": "Copyright the fraud team. All rights reserved.\n",
    })
    return ["tests/test_score.py"]


def dvc_mlflow_repo(root: Path) -> list[str]:
    """A repo that already uses DVC and MLflow."""
    write(root, {
        "dvc.yaml": (
            "stages:\n  featurize:\n    cmd: python pipeline/featurize.py\n    deps:\n"
            "      - pipeline/featurize.py\n    outs:\n      - data/features.csv\n"),
        "params.yaml": "featurize:\n  window: 7\n",
        ".dvc/config": "[core]\n    remote = storage\n['remote \"storage\"']\n    url = /tmp/dvc-storage\n",
        ".dvc/.gitignore": "/config.local\n/tmp\n",
        ".dvcignore": "# DVC ignores\n",
        ".gitignore": "/data/\n__pycache__/\n",
        "pipeline/featurize.py": (
            "import mlflow\n\n\ndef window_mean(values, window):\n    tail = values[-window:]\n"
            "    return sum(tail) / len(tail)\n\n\nif __name__ == '__main__':\n"
            "    mlflow.log_metric('mean', window_mean([1, 2, 3], 2))\n"),
        "tests/test_featurize.py": (
            "import sys\nimport types\n\nsys.modules.setdefault('mlflow', types.ModuleType('mlflow'))\n"
            "sys.path.insert(0, 'pipeline')\nfrom featurize import window_mean  # noqa: E402\n\n\n"
            "def test_window_mean():\n    assert window_mean([1, 2, 3, 4], 2) == 3.5\n"),
    })
    return ["tests/test_featurize.py"]


def plain_folder(root: Path) -> list[str]:
    """A folder that is not a git repository: two scripts and a notes file."""
    write(root, {"analysis.py": "print('hello')\n", "NOTES.txt": "to do: everything\n"})
    return []


def this_repository(root: Path) -> list[str]:
    """A real repository: a clone of this one (committed work only), with its own pyproject.toml,
    Makefile, README, tests/conftest.py and src/ package. Its own fast unit tests must still pass."""
    run(["git", "clone", "--quiet", "--no-hardlinks", str(TEMPLATE), str(root)], root.parent)
    return ["tests/test_retrofit.py::test_gitignore_merge_appends_only_missing_lines",
            "tests/test_retrofit.py::test_pyproject_merge_skips_tools_already_configured_even_by_dotted_keys"]


FIXTURES = {
    "sklearn": (sklearn_repo, True),
    "pyproject-precommit-workflow": (pyproject_repo, True),
    "dvc-mlflow": (dvc_mlflow_repo, True),
    "not-git": (plain_folder, False),
    "this-repository": (this_repository, True),
}


def own_tests_pass(root: Path, tests: list[str], env) -> None:
    if tests:
        # No __pycache__ left behind: these fixtures, like some real repos, ignore nothing,
        # and stray bytecode would read as the team's uncommitted work.
        run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], root,
            env={**env, "PYTHONPATH": "src", "PYTHONDONTWRITEBYTECODE": "1"})


@pytest.mark.parametrize("name", FIXTURES)
def test_retrofit_adds_merges_and_proposes_exactly_what_it_plans(tmp_path, env, name):
    build, is_git = FIXTURES[name]
    root = tmp_path / name
    root.mkdir()
    own_tests = build(root)
    if is_git:
        run(["git", "init", "--quiet"], root, env=env)
        git_commit(root, env, "the team's repository")
    own_tests_pass(root, own_tests, env)
    before = snapshot(root)

    dry = secure_ml(["retrofit", str(root), "--dry-run"], env)
    assert snapshot(root) == before, "--dry-run changed the repository"
    planned = parse_plan(dry.stdout)
    assert planned["add"], dry.stdout

    done = secure_ml(["retrofit", str(root)], env)
    assert plan_section(done.stdout) == plan_section(dry.stdout).replace(" (dry run: nothing is changed)", "")
    assert "check before:" in done.stdout and "check after:" in done.stdout
    after = snapshot(root)

    # The plan matches what was done.
    created = set(after) - set(before)
    changed = {p for p in before if after.get(p) != before[p]}
    assert set(before) <= set(after), "a file was deleted"
    assert created == planned["add"] | set(planned["propose"].values())
    assert changed == planned["merge"]
    assert changed <= MERGED_FILES
    # Merges only add lines: every original line is kept, in order.
    for rel in changed:
        old, new = before[rel].decode(), after[rel].decode()
        assert in_order(old, new), rel
        assert len(new.splitlines()) > len(old.splitlines())
    # Proposals are the template's version of a file the repository already had.
    for rel, proposal in planned["propose"].items():
        assert rel in before and proposal not in before
    # What was added is the template's rendering: spot-check one file per kind.
    assert "dvc.yaml" in before or "dvc.yaml" in created
    assert any(p.startswith("src/") and p.endswith("/model_io.py") for p in created)

    own_tests_pass(root, own_tests, env)
    # The run ends with the check table before and after: the score went up, and it is what
    # `check` itself says.
    scores = [int(m) for m in re.findall(r"^score (\d+)% ", done.stdout, re.MULTILINE)]
    assert len(scores) == 2 and scores[1] > scores[0], done.stdout
    assert score(root, env) == scores[1]

    # A second run is a no-op (commit first in a git repository: the first run left changes).
    if is_git:
        git_commit(root, env, "retrofit")
    second = secure_ml(["retrofit", str(root)], env)
    assert "nothing to do" in second.stdout
    assert snapshot(root) == after


def test_pyproject_fixture_merges_tool_tables_and_hooks_and_proposes_the_rest(tmp_path, env):
    root = tmp_path / "repo"
    root.mkdir()
    pyproject_repo(root)
    run(["git", "init", "--quiet"], root, env=env)
    git_commit(root, env)
    old_pyproject = (root / "pyproject.toml").read_bytes()
    done = secure_ml(["retrofit", str(root)], env)
    plan = parse_plan(done.stdout)
    assert "answers: project_name=Fraud Detector, project_slug=fraud-detector, package_name=frauddet" in done.stdout
    new_pyproject = (root / "pyproject.toml").read_bytes()
    # Appended text only: the original bytes are a prefix; [tool.ruff] is the team's, not ours.
    assert new_pyproject.startswith(old_pyproject)
    added = new_pyproject[len(old_pyproject):].decode()
    assert "[tool.bandit]" in added and "[tool.ruff" not in added and "[project" not in added
    assert "[tool.pytest" not in added  # the team's tests keep running as they did
    assert (root / "src/frauddet/__init__.py").read_text() == '"""Fraud detection."""\n\n__version__ = "1.2.0"\n'
    assert plan["propose"]["src/frauddet/__init__.py"] == "src/frauddet/__init__.py.template"
    assert plan["propose"]["README.md"] == "README.md.template"
    assert plan["propose"]["LICENSE"] == "LICENSE.template"
    if (GENERATED / ".pre-commit-config.yaml").is_file():
        assert ".pre-commit-config.yaml" in plan["merge"]
        import yaml
        config = yaml.safe_load((root / ".pre-commit-config.yaml").read_text())
        ids = [h["id"] for r in config["repos"] for h in r["hooks"]]
        assert ids[0] == "unit-tests" and len(ids) > 1
    if (GENERATED / ".github/workflows/ci.yml").is_file():
        assert plan["propose"][".github/workflows/ci.yml"] == ".github/workflows/ci.yml.template"


def test_dirty_repo_is_refused_then_force_keeps_the_uncommitted_work(tmp_path, env):
    root = tmp_path / "dirty"
    root.mkdir()
    sklearn_repo(root)
    run(["git", "init", "--quiet"], root, env=env)
    git_commit(root, env)
    with open(root / "train.py", "a", encoding="utf-8") as f:
        f.write("# work in progress\n")
    before = snapshot(root)
    refused = secure_ml(["retrofit", str(root)], env, check=False)
    assert refused.returncode == 1
    message = refused.stderr.strip()
    assert "\n" not in message and "uncommitted" in message and "--force" in message
    assert snapshot(root) == before
    dry = secure_ml(["retrofit", str(root), "--dry-run"], env)  # reads only: allowed, with a note
    assert "the real run needs them committed, or --force" in dry.stdout
    assert snapshot(root) == before
    forced = secure_ml(["retrofit", str(root), "--force"], env)
    assert "add      dvc.yaml" in forced.stdout
    assert (root / "train.py").read_bytes() == before["train.py"]
    assert (root / "dvc.yaml").is_file()


@pytest.mark.parametrize("bad, words", [
    ("missing-folder", ["no such folder"]),
    ("a-file.txt", ["not a folder"]),
])
def test_bad_path_is_one_line_and_exit_2(tmp_path, env, bad, words):
    (tmp_path / "a-file.txt").write_text("x\n")
    done = secure_ml(["retrofit", str(tmp_path / bad)], env, check=False)
    assert done.returncode == 2
    line = done.stderr.strip()
    assert "\n" not in line and all(w in line for w in words)
    assert done.stdout == ""


def test_flags_override_inferred_answers_and_bad_ones_are_refused(tmp_path, env):
    root = tmp_path / "My Repo!"
    root.mkdir()
    plain_folder(root)
    dry = secure_ml(["retrofit", str(root), "--dry-run", "--ci", "gitlab", "--package", "Risk-Model"], env)
    assert "project_slug=my-repo, package_name=risk_model, ci_provider=gitlab" in dry.stdout
    assert "add      .gitlab-ci.yml" in dry.stdout or not (GENERATED / ".gitlab-ci.yml").exists()
    assert "add      src/risk_model/model_io.py" in dry.stdout
    bad = secure_ml(["retrofit", str(root), "--author-email", "not-an-email"], env, check=False)
    assert bad.returncode == 2
    assert "author_email" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in root.iterdir()) == ["NOTES.txt", "analysis.py"]


# ---------------------------------------------------------------- the merges on their own

PRECOMMIT_TEMPLATE = """repos:
  - repo: local
    hooks:
      - id: bandit
        name: bandit
        entry: bandit -q -r src
        language: system
        pass_filenames: false
      - id: ruff
        name: ruff
        entry: ruff check
        language: system
        types: [python]
"""


@pytest.mark.parametrize("old", [
    "repos:\n- repo: local\n  hooks:\n  - id: ruff\n    name: mine\n    entry: ruff check --fix\n    language: system\n",
    (
        "repos:\n    - repo: https://example.org/hooks\n      rev: v1\n      hooks:\n"
        "          - id: trailing-whitespace\nci:\n  autofix_prs: false\n"
    ),
    (
        "default_stages: [pre-commit]\nrepos:\n  - repo: local\n    hooks:\n      - id: mine\n        name: m\n"
        "        entry: 'true'\n        language: system\n\n\nminimum_pre_commit_version: '3.0'"
    ),
])
def test_precommit_merge_keeps_every_line_and_adds_missing_hooks(old):
    import yaml
    merged, _ = merge.precommit(old, PRECOMMIT_TEMPLATE)
    assert in_order(old, merged)
    data = yaml.safe_load(merged)
    ids = [h["id"] for r in data["repos"] for h in r["hooks"]]
    assert "bandit" in ids and ids.count("ruff") == 1
    assert {k: v for k, v in data.items() if k != "repos"} == {
        k: v for k, v in yaml.safe_load(old).items() if k != "repos"}
    assert merge.precommit(merged, PRECOMMIT_TEMPLATE) is None


def test_precommit_merge_refuses_what_it_cannot_merge_safely():
    with pytest.raises(merge.MergeError):
        merge.precommit("repos: [{repo: local, hooks: [{id: x, name: x, entry: x, language: system}]}]\n",
                        PRECOMMIT_TEMPLATE)
    with pytest.raises(merge.MergeError):
        merge.precommit("repos: [\n", PRECOMMIT_TEMPLATE)


def test_pyproject_merge_skips_tools_already_configured_even_by_dotted_keys():
    template = "[project]\nname='t'\n\n[tool.ruff]\nline-length = 100\n\n[tool.ruff.lint]\nselect = ['S']\n\n[tool.bandit]\nexclude_dirs = ['tests']\n"
    old = "[project]\nname = 'mine'\n[tool.ruff]\nlint.select = ['E']"
    merged, _ = merge.pyproject(old, template)
    assert merged.startswith(old) and "[tool.bandit]" in merged and "[tool.ruff" not in merged[len(old):]
    assert merge.pyproject(merged, template) is None
    with pytest.raises(merge.MergeError):
        merge.pyproject("[project\n", template)


def test_gitignore_merge_appends_only_missing_lines():
    merged, _ = merge.gitignore("data/\n*.pkl", "# c\n*.pkl\n/models/\n.env\n")
    assert merged == "data/\n*.pkl\n\n" + merge.MARK + "\n/models/\n.env\n"
    assert merge.gitignore(merged, "# c\n*.pkl\n/models/\n.env\n") is None


def test_precommit_merge_skips_a_tool_the_config_already_runs_from_elsewhere():
    old = ("repos:\n  - repo: https://github.com/astral-sh/ruff-pre-commit\n    rev: v0.6.0\n"
           "    hooks:\n      - id: ruff\n")
    merged, description = merge.precommit(old, PRECOMMIT_TEMPLATE)
    assert description == "add hooks bandit"
    assert merged.startswith(old)


def test_pyproject_merge_skips_a_tool_configured_in_its_own_file():
    template = "[tool.ruff]\nline-length = 100\n\n[tool.bandit]\nexclude_dirs = ['tests']\n"
    _, description = merge.pyproject("[project]\nname = 'x'\n", template, frozenset({"ruff"}))
    assert description == "append [tool.bandit]"


def test_nothing_is_written_through_a_link_out_of_the_repository(tmp_path, env):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "linked"
    root.mkdir()
    (root / "train.py").write_text("print('train')\n")
    (root / "docs").symlink_to(outside, target_is_directory=True)
    done = secure_ml(["retrofit", str(root)], env)
    assert "skip     docs/index.md: a file or a link stands where its folder would go" in done.stdout
    assert list(outside.iterdir()) == []
    assert (root / "dvc.yaml").is_file()

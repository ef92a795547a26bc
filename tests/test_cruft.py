"""Generated repos take later template improvements with cruft.

Works on a clone of this repository (committed refs only, never the working tree):
`cruft create` gives the files `cookiecutter` gives, `cruft check` tells an outdated project
from an up-to-date one, and `cruft update` from an older commit of this repository's history
to HEAD applies cleanly and gives what a fresh `cruft create` at HEAD gives.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import TEMPLATE, run

BIN = Path(sys.executable).parent
SLUG = "secure-ml-project"
# The first commit whose generated pyproject.toml tells cruft to skip the render's .git
# folder (the post-generation hook makes one); older commits cannot be updated from.
CRUFT_READY = "[tool.cruft]"


@pytest.fixture
def env(tmp_path):
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("[user]\n\tname = Cruft Test\n\temail = cruft@example.com\n"
                         "[init]\n\tdefaultBranch = main\n")
    return {"GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_CONFIG_NOSYSTEM": "1"}


@pytest.fixture
def clone(tmp_path, env):
    """A clone of this repository: only committed work is used."""
    target = tmp_path / "template"
    run(["git", "clone", "--quiet", "--no-hardlinks", str(TEMPLATE), str(target)], tmp_path, env=env)
    return target


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(root).parts and p.name != ".cruft.json"}


def cruft_create(clone: Path, out: Path, env, checkout: str | None = None, extra=()) -> Path:
    args = [str(BIN / "cruft"), "create", "--no-input", "--output-dir", str(out), *extra]
    if checkout:
        args += ["--checkout", checkout]
    run([*args, str(clone)], out.parent, env=env)
    return out / SLUG


def test_cruft_create_gives_the_same_files_as_cookiecutter(tmp_path, clone, env):
    project = cruft_create(clone, tmp_path / "cruft", env)
    run([str(BIN / "cookiecutter"), "--no-input", "-o", str(tmp_path / "cc"), str(clone)], tmp_path, env=env)
    assert tree(project) == tree(tmp_path / "cc" / SLUG)
    state = json.loads((project / ".cruft.json").read_text())
    head = run(["git", "rev-parse", "HEAD"], clone, env=env).stdout.strip()
    assert state["commit"] == head
    assert run([str(BIN / "cruft"), "check"], project, env=env, check=False).returncode == 0


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_generated_ci_runs_cruft_check(bake, ci):
    project = bake(ci_provider=ci)
    files = [project / ".gitlab-ci.yml"] if ci == "gitlab" else (project / ".github" / "workflows").glob("*.yml")
    assert ".venv/bin/cruft check" in "\n".join(p.read_text() for p in files)
    assert "cruft==" in (project / "pyproject.toml").read_text()
    assert "cruft==" in (project / "requirements" / "lock.txt").read_text()


@pytest.mark.parametrize("start", ["first-cruft-ready-commit", "foundation-commit"])
def test_cruft_update_from_an_older_commit_applies_cleanly(tmp_path, clone, env, start):
    """From the first commit whose pyproject.toml tells cruft to skip .git, as a user of plain
    `cruft create` gets it; and from the very first commit of this repository, whose projects
    need `cruft create --skip .git` (their pyproject.toml predates [tool.cruft])."""
    if start == "foundation-commit":
        old = run(["git", "rev-list", "--max-parents=0", "HEAD"], clone, env=env).stdout.split()[0]
        skip = ["--skip", ".git"]
    else:
        log = run(["git", "log", "--reverse", "--format=%H", "-S", CRUFT_READY, "--",
                   "{{cookiecutter.project_slug}}/pyproject.toml"], clone, env=env).stdout.split()
        assert log, "no commit of the template has [tool.cruft] in the generated pyproject.toml"
        old, skip = log[0], []
    new = run(["git", "rev-parse", "HEAD"], clone, env=env).stdout.strip()
    assert old != new, "HEAD is the first cruft-ready commit: there is no older commit to update from"
    changed = run(["git", "diff", "--name-only", old, new, "--", "{{cookiecutter.project_slug}}",
                   "hooks", "cookiecutter.json"], clone, env=env).stdout.split()
    assert changed, f"the template did not change between {old[:8]} and {new[:8]}"

    project = cruft_create(clone, tmp_path / "old", env, checkout=old, extra=skip)
    run(["git", "add", ".cruft.json"], project, env=env)
    run(["git", "commit", "--quiet", "--no-verify", "-m", "Link to the template with cruft"], project, env=env)
    outdated = run([str(BIN / "cruft"), "check"], project, env=env, check=False)
    assert outdated.returncode != 0, outdated.stdout

    done = run([str(BIN / "cruft"), "update", "--checkout", new, "--skip-apply-ask",
                "--allow-untracked-files"], project, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rejects = [p.name for p in project.rglob("*.rej")]
    assert not rejects, rejects
    status = run(["git", "status", "--porcelain"], project, env=env).stdout
    assert "UU " not in status and "AA " not in status, status
    assert json.loads((project / ".cruft.json").read_text())["commit"] == new

    fresh = cruft_create(clone, tmp_path / "new", env, checkout=new)
    assert tree(project) == tree(fresh)
    run(["git", "add", "--all"], project, env=env)
    run(["git", "commit", "--quiet", "--no-verify", "-m", "Template update"], project, env=env)
    assert run([str(BIN / "cruft"), "check"], project, env=env, check=False).returncode == 0

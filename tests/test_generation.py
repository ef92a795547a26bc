"""Generation: the exact files of each option set, fully rendered, with parseable config."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from options import BY_ANSWER, COMMON_FILES, OPTION_SETS

CHOICE_DEFAULTS = {"ci_provider": "github", "tracking": "local"}


def generated_files(project: Path) -> set[str]:
    return {
        str(p.relative_to(project)) for p in project.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(project).parts
    }


def expected_files(answers: dict, package: str) -> set[str]:
    files = {f.format(package=package) for f in COMMON_FILES}
    for key, default in CHOICE_DEFAULTS.items():
        files |= {f.format(package=package) for f in BY_ANSWER[(key, answers.get(key, default))]}
    return files


@pytest.mark.parametrize("name", OPTION_SETS)
def test_option_set_produces_exactly_its_files(bake, name):
    answers = OPTION_SETS[name]
    project = bake(**answers)
    package = project.name.replace("-", "_")
    assert generated_files(project) == expected_files(answers, package)


@pytest.mark.parametrize("name", OPTION_SETS)
def test_nothing_is_left_unrendered(bake, name):
    project = bake(**OPTION_SETS[name])
    leftovers = []
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.relative_to(project).parts:
            text = path.read_text(encoding="utf-8", errors="replace")
            # GitHub Actions expressions `${{ ... }}` are meant to stay; the lock names the
            # cookiecutter package (cruft needs it), which is not a template variable.
            if re.search(r"(?<!\$)\{\{|\{%|\bcookiecutter\.(?!json\b)", text):
                leftovers.append(str(path.relative_to(project)))
    assert not leftovers


@pytest.mark.parametrize("name", OPTION_SETS)
def test_every_config_file_parses(bake, name):
    project = bake(**OPTION_SETS[name])
    parsed = 0
    for path in project.rglob("*"):
        if not path.is_file() or ".git" in path.relative_to(project).parts:
            continue
        if path.suffix == ".toml":
            tomllib.loads(path.read_text(encoding="utf-8"))
        elif path.suffix in (".yaml", ".yml"):
            # mkdocs.yml may carry python tags; everything else must be plain YAML.
            yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        else:
            continue
        parsed += 1
    assert parsed >= 6


def test_unicode_and_quotes_survive_in_every_format(bake):
    answers = OPTION_SETS["unicode-names"]
    project = bake(**answers)
    assert project.name == "detection-d-anomalies"
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert meta["authors"][0]["name"] == answers["author_name"]
    assert meta["description"] == answers["description"]
    site = yaml.safe_load((project / "mkdocs.yml").read_text(encoding="utf-8"))
    assert site["site_name"] == answers["project_name"]
    assert (project / "README.md").read_text(encoding="utf-8").startswith(
        f"# {answers['project_name']}\n"
    )
    assert answers["author_name"] in (project / "LICENSE").read_text(encoding="utf-8")


@pytest.mark.parametrize("license_name", ["MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary"])
def test_license_file_matches_the_answer(bake, license_name):
    project = bake(license=license_name, author_name="Ada Lovelace")
    text = (project / "LICENSE").read_text(encoding="utf-8")
    marker = {"MIT": "MIT License", "Apache-2.0": "Apache License, Version 2.0",
              "BSD-3-Clause": "BSD 3-Clause License", "Proprietary": "All rights reserved"}
    assert marker[license_name] in text and "Ada Lovelace" in text
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert meta["license"] == (
        "LicenseRef-Proprietary" if license_name == "Proprietary" else license_name
    )


def test_python_version_answer_reaches_the_project(bake):
    project = bake(python_version="3.12")
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert meta["project"]["requires-python"] == ">=3.12"
    assert meta["tool"]["ruff"]["target-version"] == "py312"
    assert (project / ".python-version").read_text().strip() == "3.12"


def test_first_commit_is_made_and_tree_is_clean(bake):
    project = bake()
    log = subprocess.run(["git", "log", "--oneline"], cwd=project, capture_output=True, text=True)
    assert log.returncode == 0 and len(log.stdout.splitlines()) == 1
    status = subprocess.run(["git", "status", "--porcelain"], cwd=project,
                            capture_output=True, text=True)
    assert status.stdout == ""


def cookiecutter_cli(out: Path, env: dict) -> subprocess.CompletedProcess:
    template = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(out),
                           str(template)], capture_output=True, text=True, env=env, check=False)


def test_without_a_git_identity_the_files_are_staged_and_the_hook_says_so(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home), GIT_CONFIG_NOSYSTEM="1")
    done = cookiecutter_cli(tmp_path / "out", env)
    assert done.returncode == 0, done.stderr
    assert "git has no user.name/user.email: files are staged" in done.stdout
    project = tmp_path / "out" / "secure-ml-project"
    status = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True,
                            text=True, env=env).stdout.splitlines()
    assert status and all(line.startswith("A ") for line in status)
    assert "pyproject.toml" in "".join(status)


def test_without_git_the_project_is_still_generated_and_the_hook_says_so(tmp_path):
    empty = tmp_path / "bin"  # a PATH on which there is no git (the hooks run with Python)
    empty.mkdir()
    done = cookiecutter_cli(tmp_path / "out", {**os.environ, "PATH": str(empty)})
    assert done.returncode == 0, done.stderr
    assert "git is not installed" in done.stdout
    project = tmp_path / "out" / "secure-ml-project"
    assert (project / "pyproject.toml").is_file() and not (project / ".git").exists()
    assert not (project / ".gitlab-ci.yml").exists(), "the removals ran before the git step"


def test_generation_writes_nothing_into_the_home_folder(tmp_path):
    """A generator writes only where it is told: with HOME (and the XDG folders under it)
    pointing at an empty folder, that folder is still empty afterwards."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        env.pop(name, None)
    # git reads its identity from HOME: give it one through the environment instead.
    env.update(GIT_AUTHOR_NAME="T", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="T", GIT_COMMITTER_EMAIL="t@example.com")
    template = str(Path(__file__).resolve().parents[1])

    def generate(out, extra=None):
        done = subprocess.run([sys.executable, "-m", "cookiecutter", "--no-input", "-o",
                               str(out), template], capture_output=True, text=True,
                              env={**env, **(extra or {})}, check=False)
        assert done.returncode == 0, done.stderr
        assert (out / "secure-ml-project" / "pyproject.toml").is_file()
        return sorted(p.relative_to(home).as_posix() for p in home.rglob("*"))

    # No cache, no config; cookiecutter's replay record of the answers (~/.cookiecutter_replay)
    # is taken back by the post-generation hook, unless a cookiecutter config asks for one.
    assert generate(tmp_path / "out1") == []
    (home / ".cookiecutter_replay").mkdir()
    (home / ".cookiecutter_replay" / "other.json").write_text('{"cookiecutter": {}}')
    assert generate(tmp_path / "out2") == [".cookiecutter_replay", ".cookiecutter_replay/other.json"]
    config = tmp_path / "cookiecutter.yaml"
    config.write_text(f"replay_dir: {tmp_path / 'replay'}\n", encoding="utf-8")
    generate(tmp_path / "out3", {"COOKIECUTTER_CONFIG": str(config)})
    assert any((tmp_path / "replay").iterdir()), "a configured replay_dir keeps its record"


def test_lock_pins_every_dependency_with_hashes(bake):
    project = bake()
    lock = (project / "requirements" / "lock.txt").read_text(encoding="utf-8")
    pins = re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==", lock, flags=re.M)
    assert len(pins) > 100
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.split("\n", 2)[2])
    assert all("--hash=sha256:" in block for block in blocks if "==" in block)
    declared = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for requirement in declared["dependencies"] + declared["optional-dependencies"]["dev"]:
        name, version = requirement.split("==")
        assert f"{name.lower()}=={version}" in lock.lower(), requirement

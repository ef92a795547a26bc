"""Fixtures for the template's tests: `bake(**answers)` and one installed project per session."""

from __future__ import annotations

import os
import re
import shutil
import sys
import subprocess
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[1]


@pytest.fixture
def bake(cookies):
    """Generate a project from the template with the given answers; fail on any error."""

    def _bake(**answers):
        result = cookies.bake(extra_context=answers)
        assert result.exception is None, f"{answers}: {result.exception!r}"
        assert result.exit_code == 0
        return Path(result.project_path)

    return _bake


def scratch_copy(source: Path, dest: Path, skip=()) -> Path:
    """A copy of a set-up project to plant flaws in; its .venv is linked, not copied."""
    shutil.copytree(source, dest, symlinks=True,
                    ignore=shutil.ignore_patterns(".venv", "__pycache__", ".pytest_cache", *skip))
    (dest / ".venv").symlink_to(source / ".venv")
    return dest


def run(args, cwd, timeout=900, env=None, check=True):
    """Run a command; on failure show its output in the assertion message."""
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, **(env or {})},
    )
    if check:
        assert done.returncode == 0, f"{args} exited {done.returncode}\n{failure_report(done)}"
    return done


def failure_report(done):
    """The end of a failed command's output, after pytest's FAILED/ERROR lines from anywhere in it
    (a generated project's `make check` prints its test failures minutes before its last line)."""
    out = done.stdout + "\n" + done.stderr
    named = [line for line in out.splitlines() if re.match(r"(FAILED|ERROR) \S", line)]
    first = out.find("= FAILURES =")
    head = out[first:first + 6000] if first >= 0 else ""
    return "\n".join(named) + "\n" + head + "\n...\n" + done.stdout[-4000:] + "\n" + done.stderr[-3000:]


@pytest.fixture(scope="session")
def installed_project(tmp_path_factory):
    """The default project, generated with the real cookiecutter CLI and set up once per session.

    Slow tests share it (one install, not one per test). They must not change its files;
    a test that needs to change something copies it with `scratch_copy`.
    """
    out = tmp_path_factory.mktemp("installed")
    run([sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(out), str(TEMPLATE)], out)
    project = out / "secure-ml-project"
    run(["make", "setup"], project)
    return project


@pytest.fixture(scope="session")
def piped_project(installed_project):
    """The installed project after one `make pipeline` (shared; read-only for tests)."""
    done = run(["make", "pipeline"], installed_project)
    installed_project.joinpath(".first-pipeline.log").write_text(done.stdout + done.stderr)
    return installed_project

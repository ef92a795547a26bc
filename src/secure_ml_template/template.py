"""Find the template (bundled in the wheel, or this repository) and render it with cookiecutter."""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# Bytecode an installer compiled next to the packaged template must never travel into a repository.
NOT_TEMPLATE = ("__pycache__", "*.pyc", "*.pyo")


class UsageError(Exception):
    """Bad input: the message is one line saying what is wrong and how to fix it (exit 2)."""


class Refusal(Exception):
    """The command will not do it (uncommitted work, a write it cannot make): one line (exit 1)."""


def template_dir() -> Path:
    """The template's root: `template/` inside the installed package, else this repository."""
    for candidate in (PACKAGE_DIR / "template", PACKAGE_DIR.parents[1]):
        if (candidate / "cookiecutter.json").is_file() and (candidate / "hooks").is_dir():
            return candidate
    raise UsageError("the template is not bundled with this installation; reinstall secure-ml-template")


def project_dir() -> Path:
    """The template's project folder (unrendered): files listed in _copy_without_render are usable as they are."""
    return template_dir() / "{{cookiecutter.project_slug}}"


def gates_script() -> Path:
    return project_dir() / "scripts" / "security" / "gates.py"


def literal(value: str) -> str:
    """`value` written so that Jinja renders it back unchanged: every `{` (which starts each Jinja
    tag) becomes an expression printing `{`. Cookiecutter renders every extra_context value."""
    return re.sub(r"\{", "{{ '{' }}", str(value))


class _Captured:
    """Capture file descriptors 1 and 2: the template's hooks run as child processes."""

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self.file = tempfile.TemporaryFile(mode="w+b")
        self.saved = [os.dup(1), os.dup(2)]
        os.dup2(self.file.fileno(), 1)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)
            os.close(saved)
        self.file.seek(0)
        self.text = self.file.read().decode("utf-8", "replace")
        self.file.close()
        return False


def render(answers: dict, output_dir: Path) -> Path:
    """Render the template with `answers` (no prompts) into output_dir; return the project folder.

    Every answer is passed through `literal()`, so a value is never evaluated as a template.
    The template is rendered from a copy without bytecode (an installer compiles the packaged
    `.py` files; those `__pycache__` folders would otherwise be copied into the project)."""
    from cookiecutter.exceptions import CookiecutterException
    from cookiecutter.main import cookiecutter

    source = Path(output_dir) / "template"
    shutil.copytree(template_dir(), source, ignore=shutil.ignore_patterns(*NOT_TEMPLATE, ".git", ".venv"))
    out = Path(output_dir) / "rendered"
    out.mkdir()
    captured = _Captured()
    # The post-generation hook commits in the throw-away render: never ask for a signing key.
    saved = {k: os.environ.get(k) for k in ("GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0")}
    os.environ.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="commit.gpgsign", GIT_CONFIG_VALUE_0="false")
    try:
        with captured:
            project = cookiecutter(
                str(source), no_input=True, extra_context={k: literal(v) for k, v in answers.items()},
                output_dir=str(out), default_config=True,
            )
    except CookiecutterException as exc:
        errors = [line for line in captured.text.splitlines() if line.startswith("ERROR")]
        raise UsageError(
            (errors[-1] if errors else f"the template could not be rendered: {exc}")
            + " (change the value with a flag, e.g. --name/--package)"
        ) from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return Path(project)

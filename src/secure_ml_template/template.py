"""Find the template (bundled in the wheel, or this repository) and render it with cookiecutter."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


class UsageError(Exception):
    """Bad input: the message is one line saying what is wrong and how to fix it."""


def template_dir() -> Path:
    """The template's root: `template/` inside the installed package, else this repository."""
    for candidate in (PACKAGE_DIR / "template", PACKAGE_DIR.parents[1]):
        if (candidate / "cookiecutter.json").is_file() and (candidate / "hooks").is_dir():
            return candidate
    raise UsageError("the template is not bundled with this installation; reinstall secure-ml-template")


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
    """Render the template with `answers` (no prompts) into output_dir; return the project folder."""
    from cookiecutter.exceptions import CookiecutterException
    from cookiecutter.main import cookiecutter

    captured = _Captured()
    # The post-generation hook commits in the throw-away render: never ask for a signing key.
    saved = {k: os.environ.get(k) for k in ("GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0")}
    os.environ.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="commit.gpgsign", GIT_CONFIG_VALUE_0="false")
    try:
        with captured:
            project = cookiecutter(
                str(template_dir()), no_input=True, extra_context=answers,
                output_dir=str(output_dir), default_config=True,
            )
    except CookiecutterException as exc:
        errors = [line for line in captured.text.splitlines() if line.startswith("ERROR")]
        raise UsageError(
            (errors[-1] if errors else f"the template could not be rendered: {exc}")
            + " (override the inferred answer with a flag, e.g. --name/--package)"
        ) from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return Path(project)

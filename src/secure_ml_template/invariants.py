"""What retrofit checks before it writes anything. Nothing here touches the repository's files:
git, DVC and pytest are asked about scratch copies in a temporary folder. The repository's code
is never imported by this process; the only code of the repository that ever runs is its own
test collection (`pytest --collect-only`), in a child process, on a scratch copy, and only
when retrofit would add Python files (--with-pipeline)."""

from __future__ import annotations

import ast
import os
import re
import shutil
import stat
import subprocess  # nosec B404 - git, dvc and pytest with argument lists, never a shell
import sys
import tempfile
from pathlib import Path

# Folders that are not the repository's own work: environments, caches, stores, build output.
SKIP_DIRS = {
    ".git", ".venv", "venv", "env", ".env", "node_modules", "site-packages", "__pycache__",
    ".tox", ".nox", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".ipynb_checkpoints",
    "mlruns", "mlartifacts", ".secure-ml",
}
DVC_STORES = {".dvc/cache", ".dvc/tmp"}
LICENCE = re.compile(r"^(un)?licen[cs]e|^copying|^copyright|^notice$", re.IGNORECASE)
TIMEOUT = 300


def git(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True,  # nosec B603 B607
                          check=False, timeout=TIMEOUT,
                          env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"})


def files(root: Path) -> list[str]:
    """Every file of the repository (relative, POSIX), outside environments and stores; no links followed."""
    out = []
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        rel_here = here.relative_to(root).as_posix()
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not (here / d).is_symlink()
                         and (f"{rel_here}/{d}" if rel_here != "." else d) not in DVC_STORES
                         and not (here / d / "pyvenv.cfg").is_file())
        for name in names:
            path = here / name
            if not path.is_symlink():
                out.append(path.relative_to(root).as_posix())
    return sorted(out)


def tracked(root: Path) -> list[str] | None:
    """The files git tracks under root, or None outside a git work tree."""
    if shutil.which("git") is None:
        return None
    top = git(["rev-parse", "--show-prefix"], root)
    if top.returncode != 0:
        return None
    done = git(["ls-files", "-z", "--", "."], root)
    return sorted(p for p in done.stdout.split("\0") if p) if done.returncode == 0 else None


def licence_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_file() and LICENCE.match(p.name))


def read_only(path: Path) -> bool:
    """A file or folder nobody may write by its mode bits. Root passes os.access, so the mode is
    read instead: a file the team made read-only is not modified, whoever runs this."""
    try:
        return not (path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    except OSError:
        return True


# ---------------------------------------------------------------- git check-ignore


def _ignore_scratch(root: Path, gitignores: list[str], changed: dict[str, str], scratch: Path) -> None:
    git(["init", "--quiet"], scratch)
    for rel in gitignores:
        target = scratch / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((root / rel).read_bytes())
    for rel, text in changed.items():
        target = scratch / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    exclude = root / ".git" / "info" / "exclude"
    if exclude.is_file():
        (scratch / ".git" / "info").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(exclude, scratch / ".git" / "info" / "exclude")


def ignored(root: Path, paths: list[str], changed: dict[str, str] | None = None) -> dict[str, tuple[str, int]]:
    """path -> (ignore file, line number) for each path git would ignore, with the repository's
    ignore files (and `changed`: rel -> new text in place of a file). Asked in a scratch repository
    holding copies of the ignore files only; the repository itself is never touched."""
    if not paths:
        return {}
    gitignores = [p for p in files(root) if Path(p).name == ".gitignore"]
    with tempfile.TemporaryDirectory(prefix="secure-ml-ignore-") as tmp:
        scratch = Path(tmp)
        _ignore_scratch(root, gitignores, changed or {}, scratch)
        done = git(["check-ignore", "-v", "-z", "--no-index", "--stdin"], scratch, "\0".join(paths) + "\0")
        if done.returncode not in (0, 1):
            raise RuntimeError(f"git check-ignore failed: {done.stderr.strip()[:200]}")
        fields = done.stdout.split("\0")
    out = {}
    for i in range(0, len(fields) - 3, 4):
        source, line, pattern, path = fields[i:i + 4]
        if pattern and not pattern.startswith("!"):
            out[path] = (source, int(line or 0))
    return out


def probes(root: Path, all_files: list[str]) -> list[str]:
    """Paths that must stay committable: every .dvc file and DVC pipeline file, and a new `.dvc`
    file in each folder (`dvc add` / `dvc import` write one there)."""
    folders = {str(Path(p).parent.as_posix()) for p in all_files}
    out = [p for p in all_files if p.endswith(".dvc") or Path(p).name in ("dvc.yaml", "dvc.lock", ".dvcignore")]
    out += [(f"{d}/" if d != "." else "") + "secure-ml-probe.dvc" for d in sorted(folders)]
    return out


# ---------------------------------------------------------------- DVC


def dvc_command(root: Path) -> list[str] | None:
    for candidate in (root / ".venv" / "bin" / "dvc", root / "venv" / "bin" / "dvc"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    found = shutil.which("dvc")
    if found:
        return [found]
    beside = Path(sys.executable).parent / "dvc"
    return [str(beside)] if beside.is_file() else None


def dvc_stages(root: Path, changed: dict[str, str], added: dict[str, bytes]) -> list[str]:
    """`dvc stage list --all` in a scratch copy of the repository's DVC files (config, pipeline
    files, .dvc files, ignore files), with `changed` and `added` applied."""
    command = dvc_command(root)
    if command is None:
        raise RuntimeError("dvc is not installed (pip install dvc, or in the repository's .venv)")
    keep = [p for p in files(root) if Path(p).name in (".gitignore", ".dvcignore", "dvc.yaml", "dvc.lock")
            or p.endswith(".dvc") or p == ".dvc/config" or (p.startswith(".dvc/") and p.count("/") == 1
                                                              and Path(p).name in ("config", ".gitignore"))]
    with tempfile.TemporaryDirectory(prefix="secure-ml-dvc-") as tmp:
        scratch = Path(tmp)
        git(["init", "--quiet"], scratch)
        for rel in keep:
            (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, scratch / rel)
        (scratch / ".dvc").mkdir(exist_ok=True)
        for rel, text in changed.items():
            (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
            (scratch / rel).write_text(text, encoding="utf-8")
        for rel, data in added.items():
            if Path(rel).name in (".gitignore", ".dvcignore", "dvc.yaml", "dvc.lock", "config") or rel.endswith(".dvc"):
                (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
                (scratch / rel).write_bytes(data)
        done = subprocess.run([*command, "stage", "list", "--all"], cwd=scratch, capture_output=True, text=True,  # nosec B603
                              check=False, timeout=TIMEOUT,
                              env={**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(scratch / ".dvc-site")})
    if done.returncode != 0:
        raise RuntimeError(f"dvc stage list --all failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return sorted(line.split()[0] for line in done.stdout.splitlines() if line.strip())


# ---------------------------------------------------------------- Python modules and pytest


def top_level_modules(root: Path, all_files: list[str]) -> set[str]:
    """Names `import X` could find in the repository: top-level modules and packages, and those
    under src/ and the test folders (pytest puts those on sys.path)."""
    names = set()
    for rel in all_files:
        parts = rel.split("/")
        if not rel.endswith(".py"):
            continue
        for base in range(len(parts)):
            if base == 0 or parts[base - 1] in ("src", "tests", "test", "lib") or parts[0] in ("src",):
                head = parts[base]
                names.add(head[:-3] if head.endswith(".py") else head)
    return {n for n in names if n.isidentifier()}


def imported_names(root: Path, all_files: list[str]) -> set[str]:
    """The top-level names the repository's Python files import (parsed with ast, never run)."""
    names = set()
    for rel in all_files:
        if not rel.endswith(".py"):
            continue
        try:
            tree = ast.parse((root / rel).read_bytes()[:2_000_000])
        except (SyntaxError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def repo_python(root: Path) -> str:
    """The repository's own Python when it has a virtualenv with pytest, else this one."""
    for venv in (".venv", "venv", "env"):
        python = root / venv / "bin" / "python"
        if python.is_file() and (root / venv / "pyvenv.cfg").is_file():
            found = list((root / venv).glob("lib/python3*/site-packages/pytest"))
            if found:
                return str(python)
    return sys.executable


def collect(root: Path, added: dict[str, bytes], python: str) -> tuple[list[str], list[str]]:
    """(test ids, collection errors) of the repository's pytest in a scratch copy with `added`."""
    with tempfile.TemporaryDirectory(prefix="secure-ml-pytest-") as tmp:
        scratch = Path(tmp) / root.name
        scratch.mkdir()
        for rel in files(root):
            target = scratch / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copy2(root / rel, target)
            except OSError:
                continue
        for rel, data in added.items():
            (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
            (scratch / rel).write_bytes(data)
        done = subprocess.run(  # nosec B603 - the repository's test runner on a scratch copy, no shell
            [python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
            cwd=scratch, capture_output=True, text=True, check=False, timeout=TIMEOUT,
            env={**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")},
                 "PYTHONDONTWRITEBYTECODE": "1"})
    lines = done.stdout.splitlines()
    ids = sorted(line.strip() for line in lines if "::" in line and not line.startswith(("ERROR", "FAILED")))
    errors = sorted(line.strip() for line in lines if line.startswith("ERROR "))
    return ids, errors

"""The security gates of this project: `python scripts/security/gates.py [--root PATH] [GATE ...]`.

Gates: bandit, secrets, audit, models, sbom, ci (default: all, in that order). Each gate says
what it checked and ends with one verdict line: PASS, FAIL or NOT RUN. The command exits 0 when
every gate passed, 1 when any gate failed or did not run, 2 on a usage error; a gate whose tool
could not do its job never reports PASS. The tools are the ones pinned in requirements/lock.txt,
taken from the same environment as the Python running this file (make security uses .venv).

`--root PATH` runs the gates on any git repository (default: the project holding this file).
The files a gate reads are git's own answer to "what could reach a commit" (tracked, or
untracked and not ignored), whatever their names or folders, minus virtualenvs; the model-file
scan reads ignored files too (data/, models/, MLflow's stores), by content, not by name.

What each gate checks and how to read its output: docs/security-gates.md.
"""

from __future__ import annotations

import argparse
import ast
import bz2
import configparser
import functools
import gzip
import io
import json
import lzma
import os
import pickletools  # nosec B403  # parses pickle opcodes to find pickles; never loads one
import re
import shutil
import struct
import subprocess  # nosec B404  # runs the pinned scanners of this venv, argument lists only
import sys
import tarfile
import tempfile
import tokenize
import tomllib
import zipfile
import zlib
from hashlib import sha256
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The documented opt-out for machines that cannot reach the vulnerability service.
AUDIT_OPT_OUT = "SECURITY_AUDIT_OFFLINE_OK"
# Files under models/ that describe the model rather than being it (manifest, signature).
NOT_MODELS = {".json", ".sig", ".md", ".txt"}

PASS, FAIL, NOT_RUN, SKIPPED = "PASS", "FAIL", "NOT RUN", "SKIPPED"


class ToolMissing(Exception):
    pass


class UsageError(Exception):
    pass


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        raise ToolMissing(f"{name} is not installed in {BIN.parent}: run 'make setup'")
    return str(path)


def say(line: str = "") -> None:
    print(line, flush=True)


# --------------------------------------------------------------------------- the repository
class Repo:
    """The repository a run looks at: its root, and git's list of files that could be committed."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self._files: list[Path] | None = None
        self._venvs: set[Path] | None = None

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def run(
        self, args: list[str], env: dict | None = None, **kwargs
    ) -> subprocess.CompletedProcess:
        return subprocess.run(  # noqa: S603  # nosec B603  # fixed tool paths and argument lists, no shell
            args,
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **(env or {})},
            **kwargs,
        )

    def venvs(self) -> set[Path]:
        """Virtualenvs and conda environments anywhere in the tree (known by their marker file)."""
        if self._venvs is None:
            found = set()
            for folder, dirs, files in os.walk(self.root):
                here = Path(folder)
                if "pyvenv.cfg" in files or "conda-meta" in dirs:
                    found.add(here)
                    dirs[:] = []
                elif ".git" in dirs:
                    dirs.remove(".git")
            self._venvs = found
        return self._venvs

    def in_venv(self, path: Path) -> bool:
        return any(path.is_relative_to(v) for v in self.venvs())

    def committable(self) -> list[Path]:
        """Files that could reach a commit: git ls-files --cached --others --exclude-standard."""
        if self._files is None:
            done = subprocess.run(  # nosec B603 B607  # fixed git command, no shell
                ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                cwd=self.root,
                capture_output=True,
                check=False,
            )
            if done.returncode != 0:
                why = done.stderr.decode(errors="replace").strip()
                raise UsageError(f"{self.root} is not a git work tree ({why})")
            names = {n for n in done.stdout.decode("utf-8", "surrogateescape").split("\0") if n}
            paths = [self.root / n for n in sorted(names)]
            self._files = [
                p for p in paths if (p.is_symlink() or p.is_file()) and not self.in_venv(p)
            ]
        return self._files

    def regular(self) -> list[Path]:
        """The committable files that are files of their own (git commits a symlink as a link)."""
        return [p for p in self.committable() if p.is_file() and not p.is_symlink()]

    def everything(self) -> list[Path]:
        """Every file and symlink of the work tree, ignored or not, minus .git and virtualenvs."""
        found = []
        for folder, dirs, files in os.walk(self.root):
            here = Path(folder)
            keep = []
            for name in sorted(dirs):
                path = here / name
                if name == ".git" or path in self.venvs():
                    continue
                if path.is_symlink():
                    if not (path / "pyvenv.cfg").is_file():  # a linked virtualenv is one too
                        found.append(path)
                else:
                    keep.append(name)
            dirs[:] = keep
            found += [here / name for name in sorted(files)]
        return found


def python_sources(repo: Repo) -> tuple[list[Path], list[Path]]:
    """(Python files, notebooks) that could reach a commit; scripts with a python #! count."""
    sources, notebooks = [], []
    for path in repo.regular():
        if path.suffix in (".py", ".pyi", ".pyw"):
            sources.append(path)
        elif path.suffix == ".ipynb":
            notebooks.append(path)
        elif not path.suffix:
            with path.open("rb") as handle:
                first = handle.readline(200)
            if re.match(rb"#!.*\bpython[\d.]*\b", first):
                sources.append(path)
    return sources, notebooks


def is_test_file(path: str) -> bool:
    parts = path.split("/")
    name = parts[-1]
    return (
        any(p in ("tests", "test") for p in parts[:-1])
        or name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
    )


# --------------------------------------------------------------------------- notebooks
class Notebook:
    """A notebook's code cells as one Python text, with each line mapped back to its cell."""

    def __init__(self, repo: Repo, path: Path):
        self.path = path
        self.name = repo.rel(path)
        self.lines: list[str] = []
        self.where: list[tuple[int, int]] = []  # (cell number, line in cell), 1-based
        self.error = ""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            self.error = f"{self.name}: not a readable notebook ({error})"
            return
        meta = data.get("metadata", {}) if isinstance(data, dict) else {}
        language = (meta.get("kernelspec", {}) or {}).get("language") or (
            meta.get("language_info", {}) or {}
        ).get("name", "python")
        self.python = str(language).lower() == "python"
        cells = data.get("cells", []) if isinstance(data, dict) else []
        for number, cell in enumerate(cells, 1):
            if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                continue
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else str(source)
            lines = text.splitlines()
            # A cell magic (%%bash, %%html, ...) makes the whole cell another language.
            other = bool(lines) and lines[0].lstrip().startswith("%%")
            for index, line in enumerate(lines, 1):
                stripped = line.lstrip()
                if other or stripped.startswith(("%", "!", "?")) or stripped.endswith("?"):
                    # IPython syntax: keep the line count, and the block valid.
                    line = line[: len(line) - len(stripped)] + "pass  # IPython: " + stripped[:40]
                self.lines.append(line)
                self.where.append((number, index))
            self.lines.append("")
            self.where.append((number, len(lines) + 1))

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def locate(self, line: int) -> str:
        if 1 <= line <= len(self.where):
            cell, row = self.where[line - 1]
            return f"{self.name}:cell {cell}:{row}"
        return f"{self.name}:{line}"


def notebooks_as_python(repo: Repo, notebooks: list[Path], folder: Path):
    """Write each Python notebook's cells to folder/N.py; return ({path: Notebook}, problems)."""
    mapping, problems = {}, []
    for index, path in enumerate(notebooks):
        book = Notebook(repo, path)
        if book.error:
            problems.append(book.error)
            continue
        if not book.python:
            say(f"  {book.name}: not a Python notebook, not read")
            continue
        target = folder / f"nb{index}.py"
        target.write_text(book.text, encoding="utf-8")
        mapping[str(target)] = book
    return mapping, problems


def nosec_lines(text: str) -> list[int]:
    """Lines whose '# nosec' does not name its rule ids and a reason: '# nosec B603  # why'."""
    bad = []
    lines = text.splitlines()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return bad  # bandit reports the file as unparseable
    for token in tokens:
        found = re.search(r"#\s*nosec\b(?P<rest>.*)$", token.string)
        if token.type != tokenize.COMMENT or not found:
            continue
        # '# nosec B603  # reason' (or '# nosec B603 - reason'): rule ids, then why;
        # the reason may also be a whole-line comment right above the line.
        ids, reason = (re.split(r"#| - ", found.group("rest"), maxsplit=1) + [""])[:2]
        above = lines[token.start[0] - 2].strip() if token.start[0] > 1 else ""
        explained = len(reason.strip()) >= 5 or (above.startswith("#") and len(above) > 6)
        if not re.search(r"\b(B\d{3}|SML\d{3})\b", ids) or not explained:
            bad.append(token.start[0])
    return bad


# --------------------------------------------------------------------------- bandit settings
# Settings that switch a rule off, in any file bandit reads (INI, TOML, YAML) or in its flags.
WEAKENING_KEYS = ("skips", "tests", "exclude", "exclude_dirs")
WEAKENING_FLAGS = ("-s", "--skip", "-t", "--tests", "-x", "--exclude", "--exclude-dirs")
# In test files (tests/**, test_*.py, *_test.py, conftest.py) these rules describe how tests
# are written (assert, running the project's tools with argument lists, fake tokens, binding a
# test server, temporary paths, crafting pickles to prove a scanner): they are not reported
# there. Every other rule (shell=True, eval, pickle.loads, yaml.load, ...) is, everywhere.
TEST_FILE_RULES = {
    "B101", "B104", "B105", "B106", "B107", "B108", "B311", "B403", "B404", "B603", "B607",
}  # fmt: skip


def weakening(node, prefix: str) -> list[str]:
    """'key = value' for every weakening key with a value, at any depth of a parsed config."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{prefix}.{key}" if prefix else str(key)
            if str(key).lower() in WEAKENING_KEYS and value not in (None, "", [], {}):
                found.append(f"{where} = {value!r}")
            else:
                found += weakening(value, where)
    return found


def bandit_settings(repo: Repo) -> list[str]:
    """Every bandit setting in the repository that skips or excludes a rule or a file."""
    problems = []
    for path in repo.everything():
        name = path.name
        if path.is_symlink() or not path.is_file():
            continue
        if name not in (
            ".bandit",
            "setup.cfg",
            "tox.ini",
            "pyproject.toml",
            ".pre-commit-config.yaml",
        ) and not re.fullmatch(r"\.?bandit[\w.-]*\.(ya?ml|toml|ini|cfg)", name):
            continue
        where = repo.rel(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            problems.append(f"{where}: cannot be read ({error}): bandit may read it")
            continue
        found: list[str] = []
        if name == "pyproject.toml" or name.endswith(".toml"):
            try:
                config = tomllib.loads(text)
            except tomllib.TOMLDecodeError as error:
                problems.append(f"{where}: does not parse ({error})")
                continue
            section = config.get("tool", {}).get("bandit") if name == "pyproject.toml" else config
            found = weakening(section or {}, "[tool.bandit]" if name == "pyproject.toml" else "")
        elif name in (".bandit", "setup.cfg", "tox.ini") or re.search(r"\.(ini|cfg)$", name):
            parser = configparser.ConfigParser(interpolation=None, strict=False)
            try:
                parser.read_string(
                    text if name != ".bandit" or "[" in text else "[bandit]\n" + text
                )
            except configparser.Error as error:
                problems.append(f"{where}: does not parse ({error}): bandit may read it")
                continue
            for section in parser.sections():
                if section == "bandit" or section.startswith("bandit."):
                    for key in WEAKENING_KEYS:
                        if parser.get(section, key, fallback="").strip():
                            found.append(f"[{section}] {key} = {parser.get(section, key)!r}")
        else:
            try:
                import yaml  # in the lock
            except ImportError:
                problems.append(f"{where}: PyYAML is missing, so this bandit file was not read")
                continue
            try:
                config = yaml.safe_load(text)
            except yaml.YAMLError as error:
                problems.append(f"{where}: does not parse ({error})")
                continue
            if name == ".pre-commit-config.yaml":
                for repo_entry in (config or {}).get("repos", []) or []:
                    for hook in repo_entry.get("hooks", []) or []:
                        if "bandit" not in f"{hook.get('id', '')} {hook.get('entry', '')}":
                            continue
                        words = [str(a) for a in hook.get("args", []) or []]
                        words += str(hook.get("entry", "")).split()
                        for word in words:
                            if word.split("=")[0] in WEAKENING_FLAGS:
                                found.append(f"hook {hook.get('id')}: argument {word}")
            else:
                found = weakening(config if isinstance(config, dict) else {}, "")
        problems += [f"{where}: {item}" for item in found]
    return problems


# --------------------------------------------------------------------------- unsafe loaders
YAML_WHY = "builds any Python object the YAML names"
SAFE_MODELS = "save models with skops (skops.io.load with named trusted types) or safetensors"
# Calls that unpickle (or build arbitrary objects) whatever their arguments.
ALWAYS_UNSAFE = {
    "yaml.unsafe_load": ("SML301", YAML_WHY, "use yaml.safe_load"),
    "yaml.unsafe_load_all": ("SML301", YAML_WHY, "use yaml.safe_load_all"),
    "joblib.load": ("SML302", "unpickles the file: loading runs any code in it", SAFE_MODELS),
    "pandas.read_pickle": ("SML304", "unpickles the file: loading runs any code in it",
                           "store tables as Parquet or CSV (pandas.read_parquet, read_csv)"),
    "cloudpickle.load": ("SML307", "unpickles: loading runs any code in it", SAFE_MODELS),
    "cloudpickle.loads": ("SML307", "unpickles: loading runs any code in it", SAFE_MODELS),
    "dill.load": ("SML307", "unpickles: loading runs any code in it", SAFE_MODELS),
    "dill.loads": ("SML307", "unpickles: loading runs any code in it", SAFE_MODELS),
    "dill.load_session": ("SML307", "unpickles: loading runs any code in it", SAFE_MODELS),
    "dill.load_module": ("SML307", "unpickles: loading runs any code in it", SAFE_MODELS),
}  # fmt: skip
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


class LoaderRules(ast.NodeVisitor):
    """Calls that deserialise untrusted bytes into code, resolved through the module's imports."""

    def __init__(self):
        self.aliases: dict[str, str] = {}
        self.untrusted_names: set[str] = set()
        self.findings: list[tuple[int, str, str]] = []

    def scan(self, tree: ast.AST) -> list[tuple[int, str, str]]:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for item in node.names:
                    if item.asname:
                        self.aliases[item.asname] = item.name
                    else:
                        self.aliases.setdefault(item.name.split(".")[0], item.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for item in node.names:
                    self.aliases[item.asname or item.name] = f"{node.module}.{item.name}"
            elif (
                isinstance(node, (ast.Assign, ast.AnnAssign))
                and node.value is not None
                and any(self.is_get_untrusted(n) for n in ast.walk(node.value))
            ):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                self.untrusted_names |= {t.id for t in targets if isinstance(t, ast.Name)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                self.check(node)
        return sorted(self.findings)

    def dotted(self, node) -> str:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return ""
        parts.append(self.aliases.get(node.id, node.id))
        return ".".join(reversed(parts))

    def is_get_untrusted(self, node) -> bool:
        return isinstance(node, ast.Call) and self.dotted(node.func).endswith("get_untrusted_types")

    @staticmethod
    def argument(call: ast.Call, keyword: str, position: int):
        for item in call.keywords:
            if item.arg == keyword:
                return item.value
        if len(call.args) > position and not any(isinstance(a, ast.Starred) for a in call.args):
            return call.args[position]
        return None

    def add(self, call, rule, name, why, instead):
        self.findings.append((call.lineno, rule, f"{name}(...) {why}: {instead}"))

    def check(self, call: ast.Call) -> None:
        name = self.dotted(call.func)
        name = name.replace("yaml.main.", "yaml.").replace("skops.io._persist.", "skops.io.")
        if name in ALWAYS_UNSAFE:
            self.add(call, *(ALWAYS_UNSAFE[name][:1]), name, *ALWAYS_UNSAFE[name][1:])
        elif name in ("yaml.load", "yaml.load_all"):
            loader = self.argument(call, "Loader", 1)
            loader_name = self.dotted(loader).rsplit(".", 1)[-1] if loader is not None else ""
            if loader_name not in SAFE_YAML_LOADERS:
                self.add(
                    call,
                    "SML301",
                    name,
                    f"with Loader={loader_name or 'its default'} "
                    "builds any Python object the YAML names",
                    "use yaml.safe_load (or Loader=yaml.SafeLoader)",
                )
        elif name == "numpy.load":
            allow = self.argument(call, "allow_pickle", 2)
            if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                self.add(
                    call,
                    "SML303",
                    name,
                    "with allow_pickle unpickles object arrays: loading runs any code in them",
                    "keep allow_pickle=False (the default): numeric arrays, or safetensors",
                )
        elif name in ("torch.load", "torch.serialization.load"):
            weights = self.argument(call, "weights_only", 3)
            if not (isinstance(weights, ast.Constant) and weights.value is True):
                self.add(
                    call,
                    "SML305",
                    name,
                    "without weights_only=True unpickles the checkpoint: "
                    "loading runs any code in it",
                    "pass weights_only=True, or save tensors with safetensors",
                )
        elif name in ("skops.io.load", "skops.io.loads"):
            trusted = self.argument(call, "trusted", 1)
            if trusted is None:
                return
            blanket = isinstance(trusted, ast.Constant) and trusted.value is True
            from_file = any(self.is_get_untrusted(n) for n in ast.walk(trusted)) or (
                isinstance(trusted, ast.Name) and trusted.id in self.untrusted_names
            )
            if blanket or from_file:
                what = "trusted=True" if blanket else "trusted=get_untrusted_types(...)"
                self.add(
                    call,
                    "SML306",
                    name,
                    f"with {what} trusts whatever types the file names",
                    "pass trusted= a fixed list of the type names you reviewed",
                )


def loader_findings(name: str, text: str, locate=None) -> tuple[list[str], str]:
    """(findings, parse error) of the unsafe-loader rules for one Python text."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError) as error:
        return [], f"{name}: does not parse as Python ({error})"
    lines = text.splitlines()
    found = []
    for line, rule, message in LoaderRules().scan(tree):
        source = lines[line - 1] if line <= len(lines) else ""
        hushed = re.search(r"#\s*nosec\b([^#]*)", source)
        if hushed and rule in hushed.group(1) and line not in nosec_lines(text):
            continue
        found.append(f"{locate(line) if locate else f'{name}:{line}'}: {rule} {message}")
    return found, ""


# --------------------------------------------------------------------------- bandit
class CleanScans:
    """Which files a scanner found clean, by their SHA-256, so that an unchanged file is not
    read again while everything else its verdict depends on (the scanner's version, its
    settings, this script) stays the same: a changed byte, a new setting or an upgraded
    scanner means a new scan. Kept inside git's own folder (`git rev-parse --git-path`),
    which is never committed nor scanned; deleting the file makes the next run read all."""

    def __init__(self, repo: Repo, scanner: str, *settings: str):
        from importlib import metadata

        self.repo, self.path, self.clean = repo, None, {}
        try:
            version = metadata.version(scanner)
        except metadata.PackageNotFoundError:
            return  # the scanner's version is unknown here: no verdict is reused
        done = repo.run(["git", "rev-parse", "--git-path", f"secure-ml/clean-{scanner}.json"])
        if done.returncode or not done.stdout.strip():
            return
        self.path = repo.root / done.stdout.strip()
        parts = [version, sha256(Path(__file__).read_bytes()).hexdigest(), *settings]
        self.config = sha256("\0".join(parts).encode()).hexdigest()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        clean = data.get("clean") if isinstance(data, dict) else None
        if isinstance(clean, dict) and data.get("config") == self.config:
            self.clean = {n: e for n, e in clean.items() if isinstance(e, dict)}

    def unchanged(self, digests: dict[str, str]) -> set[str]:
        """The names whose bytes are as at their last clean scan."""
        return {n for n, digest in digests.items() if self.clean.get(n, {}).get("sha256") == digest}

    def note(self, count: int, what: str) -> None:
        if count and self.path:
            say(
                f"  {count} {what} byte for byte as at their last clean scan (same scanner and "
                f"settings) and not read again (delete {self.repo.rel(self.path)} to read all)"
            )

    def remember(self, clean: dict[str, dict]) -> None:
        """Record the files found clean now, {name: {"sha256": ..., more}} (the others are
        forgotten)."""
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            part = self.path.with_suffix(".tmp")
            part.write_text(json.dumps({"config": self.config, "clean": clean}), "utf-8")
            part.replace(self.path)
        except OSError:
            pass  # no record: the next run reads every file again


def digests_of(repo: Repo, paths: list[Path]) -> dict[str, str]:
    return {repo.rel(p): sha256(p.read_bytes()).hexdigest() for p in paths}


def gate_bandit(repo: Repo) -> tuple[str, str]:
    sources, notebooks = python_sources(repo)
    pyproject = repo.root / "pyproject.toml"
    settings = {}
    if pyproject.is_file():
        try:
            settings = (
                tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("bandit")
            )
        except tomllib.TOMLDecodeError:
            settings = None
    say(
        f"Static analysis of {len(sources)} Python file(s) and {len(notebooks)} notebook(s) that "
        "could reach a commit (git ls-files, minus virtualenvs) with bandit"
        + (" (settings: [tool.bandit] in pyproject.toml)" if settings else "")
        + " and the unsafe-loader rules SML301-SML307"
    )
    say(
        "  in test files these bandit rules are not reported: " + ", ".join(sorted(TEST_FILE_RULES))
    )
    weakened = bandit_settings(repo)
    for line in weakened:
        say(f"  {line}: a setting that switches bandit rules or files off hides findings")
    if weakened:
        return (
            FAIL,
            f"{len(weakened)} bandit setting(s) skip or exclude rules or files "
            f"({weakened[0]}); remove them, and put '# nosec BXXX  # reason' on one line instead",
        )
    findings, bad_nosec, unreadable = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        books, problems = notebooks_as_python(repo, notebooks, Path(tmp))
        unreadable += problems
        texts = []
        for path in sources:
            try:
                texts.append((repo.rel(path), path.read_text(encoding="utf-8"), None))
            except UnicodeDecodeError as error:
                unreadable.append(f"{repo.rel(path)}: not UTF-8 ({error})")
        texts += [(book.name, book.text, book.locate) for book in books.values()]
        flagged = {line.partition(":")[0] for line in unreadable}  # not clean, whatever bandit says
        for name, text, locate in texts:  # the loader rules and nosec: every file, every run
            bad_nosec += [locate(n) if locate else f"{name}:{n}" for n in nosec_lines(text)]
            found, error = loader_findings(name, text, locate)
            findings += found
            if error:
                unreadable.append(error)
            if found or error or nosec_lines(text):
                flagged.add(name)
        if not sources and not books:
            return NOT_RUN, "no Python file or notebook could reach a commit: nothing was checked"
        bandit = tool("bandit")  # missing: the gate did not run, even with every file known
        scans = CleanScans(repo, "bandit", json.dumps(settings, sort_keys=True, default=str))
        digests = digests_of(repo, sources)
        unchanged = scans.unchanged(digests)
        scans.note(len(unchanged), "Python file(s) are")
        targets = [name for name in digests if name not in unchanged] + list(books)
        config = ["-c", "pyproject.toml"] if settings else []
        lines_of_code = sum(int(scans.clean[name].get("loc", 0)) for name in unchanged)
        loc: dict[str, int] = {}
        for start in range(0, len(targets), 300):
            done = repo.run(
                [bandit, "-q", *config, "-f", "json", "--", *targets[start : start + 300]]
            )
            try:
                report = json.loads(done.stdout)
            except json.JSONDecodeError:
                report = None
            if report is None or done.returncode not in (0, 1):
                output = (done.stderr or done.stdout).strip()[-500:]
                return NOT_RUN, f"bandit exited {done.returncode}: {output}"
            metrics = report.get("metrics", {})
            lines_of_code += metrics.get("_totals", {}).get("loc", 0)
            files = {n: m for n, m in metrics.items() if n != "_totals"}
            loc |= {Path(n).as_posix(): m.get("loc", 0) for n, m in files.items()}
            for error in report.get("errors", []):
                book = books.get(error["filename"])
                where = book.name if book else Path(error["filename"]).as_posix()
                unreadable.append(f"{where}: bandit: {error['reason']}")
                flagged.add(Path(error["filename"]).as_posix())
            for result in report.get("results", []):
                book = books.get(result["filename"])
                where = Path(result["filename"]).as_posix()
                if book is None and result["test_id"] in TEST_FILE_RULES and is_test_file(where):
                    continue
                place = (
                    book.locate(result["line_number"])
                    if book
                    else f"{where}:{result['line_number']}"
                )
                findings.append(
                    f"{place}: {result['test_id']} [{result['issue_severity']}/"
                    f"{result['issue_confidence']}] {result['issue_text']}"
                )
                flagged.add(where)
    # bandit ran on every target: the files it did not flag are clean as they are now
    now = {n: {"sha256": digests[n], "loc": loc.get(n, 0)} for n in targets if n in digests}
    kept = {n: scans.clean[n] for n in unchanged} | now
    scans.remember({n: entry for n, entry in kept.items() if n not in flagged})
    for line in findings:
        say("  " + line)
    for where in bad_nosec:
        say(f"  {where}: '# nosec' must name its rule and a reason: '# nosec B603  # why'")
    for line in unreadable:
        say(f"  {line}: not analysed")
    if findings or bad_nosec:
        return FAIL, f"{len(findings)} finding(s), {len(bad_nosec)} unexplained nosec"
    if unreadable:
        return NOT_RUN, f"{len(unreadable)} file(s) could not be analysed: {unreadable[0]}"[:500]
    if not lines_of_code:
        return NOT_RUN, "bandit scanned nothing"
    return PASS, f"0 findings in {lines_of_code} lines of code ({len(digests) + len(books)} files)"


# --------------------------------------------------------------------------- secrets
# detect-secrets drops every secret on a line that names an id before it (`is_likely_id_string`)
# or that assigns the result of a call (`is_indirect_reference`), and with them the usual
# one-line `s3 = boto3.client(..., aws_access_key_id="AKIA...", aws_secret_access_key="...")`:
# the gate always runs without those two filters (so does the pre-commit hook, through
# .secrets.baseline, which does not list them).
DROPPED_FILTERS = (
    "detect_secrets.filters.heuristic.is_likely_id_string",
    "detect_secrets.filters.heuristic.is_indirect_reference",
)


def gate_secrets(repo: Repo) -> tuple[str, str]:
    baseline = repo.root / ".secrets.baseline"
    files = [p for p in repo.regular() if p != baseline]
    notebooks = [p for p in files if p.suffix == ".ipynb"]
    held = sha256(baseline.read_bytes()).hexdigest() if baseline.is_file() else "no baseline"
    scans = CleanScans(repo, "detect-secrets", held, *DROPPED_FILTERS)
    digests = digests_of(repo, files)
    unchanged = scans.unchanged(digests)
    say(
        f"Secret scan of {len(files)} files that could reach a commit (git ls-files: tracked, "
        "or untracked and not ignored; nothing skipped by folder name; notebooks' code cells "
        "also as Python) with detect-secrets"
        + (" against .secrets.baseline" if baseline.is_file() else " (no .secrets.baseline)")
    )
    scans.note(len(unchanged), "of them are")
    confirmed = []
    if baseline.is_file():
        data = json.loads(baseline.read_text(encoding="utf-8"))
        confirmed = [
            f"{name}:{item.get('line_number')} ({item.get('type')})"
            for name, items in data.get("results", {}).items()
            for item in items
            if item.get("is_secret") is True
        ]
    # detect-secrets-hook rewrites the baseline it is given: give it a copy.
    with tempfile.TemporaryDirectory() as tmp:
        books, _ = notebooks_as_python(repo, notebooks, Path(tmp))
        args = [tool("detect-secrets-hook")]
        if baseline.is_file():
            copy = Path(tmp) / "baseline.json"
            shutil.copyfile(baseline, copy)
            args += ["--baseline", str(copy)]
        for name in DROPPED_FILTERS:
            args += ["--disable-filter", name]
        output, codes = [], set()
        scanned = [repo.rel(p) for p in files if repo.rel(p) not in unchanged]
        names = scanned + list(books)
        for start in range(0, len(names), 400):
            done = repo.run([*args, *names[start : start + 400]])
            codes.add(done.returncode)
            output.append(done.stdout + done.stderr)
    text = "\n".join(output)
    found, flagged = [], set()
    for kind, where in re.findall(r"Secret Type: (.+)\n\s*Location:\s+(\S+)", text):
        path, _, line = where.rpartition(":")
        book = books.get(path)
        found.append((book.locate(int(line)) if book else where, kind))
        flagged.add(path)
    for where, kind in found:
        say(f"  {where}: {kind}")
    for item in confirmed:
        say(f"  {item}: marked as a real secret in .secrets.baseline")
    if 3 in codes and "baseline file was updated" in text:
        # Exit 3: known secrets moved to other lines (the hook updated its copy); not a finding.
        say(
            "  note: line numbers in .secrets.baseline are stale; refresh them with "
            "'.venv/bin/detect-secrets scan --baseline .secrets.baseline'"
        )
        codes.discard(3)
    if codes - {0, 1} or (1 in codes and not found):
        return NOT_RUN, f"detect-secrets-hook failed: {text.strip()[-500:]}"
    # the scan ran: the files it did not flag are clean as they are now
    now = {n: {"sha256": digests[n]} for n in scanned if n not in flagged}
    scans.remember({n: scans.clean[n] for n in unchanged} | now)
    if found or confirmed:
        return (
            FAIL,
            f"{len(found) + len(confirmed)} secret(s): remove them and rotate them "
            "(a false positive: '# pragma: allowlist secret' or audit the baseline)",
        )
    if not files:
        return NOT_RUN, "no file to scan: nothing was checked"
    return PASS, f"no new secret in {len(files)} files"


# --------------------------------------------------------------------------- audit
OTHER_LOCKS = ("poetry.lock", "uv.lock", "Pipfile.lock", "pdm.lock", "pixi.lock", "conda-lock.yml")


def audit_ignores(repo: Repo) -> tuple[Path, list[str], list[str]]:
    path = repo.root / "scripts" / "security" / "audit-ignores.txt"
    ids, bad = [], []
    if path.is_file():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            entry, _, reason = line.partition("#")
            if not entry.strip():
                continue
            if len(reason.strip()) < 10:
                bad.append(f"{repo.rel(path)}:{number}: '{entry.strip()}' has no reason")
            ids.append(entry.strip())
    return path, ids, bad


def dependency_files(repo: Repo) -> list[Path]:
    """The pinned dependency list(s) to audit: this project's lock, else requirements*.txt."""
    lock = repo.root / "requirements" / "lock.txt"
    if lock.is_file():
        return [lock]
    return [
        p
        for p in repo.regular()
        if p.suffix == ".txt"
        and (p.name.startswith("requirements") or p.parent.name == "requirements")
    ]


def audit_causes(text: str) -> list[str]:
    """pip-audit's errors, one line each, saying which package and why."""
    causes = []
    for package, version in re.findall(
        r"Dependency not found on PyPI and could not be audited: (\S+) \(([^)]*)\)", text
    ):
        causes.append(
            f"{package} {version}: the package index answered that it has no such package "
            "(HTTP 404), so it was not audited"
        )
    if re.search(r"timed out|Timeout", text):
        causes.append("the vulnerability service did not answer in time (timeout)")
    if re.search(
        r"ConnectionError|ProxyError|Max retries|Name or service not known|"
        r"Temporary failure in name resolution|Connection refused|SSLError|Network is unreachable",
        text,
    ):
        package = re.search(
            r"(?:ERROR:\S+:)?\s*([A-Za-z0-9_.\-]+): (?:Connection|HTTPSConnectionPool|Max retries)",
            text,
        )
        causes.append(
            "the vulnerability service could not be reached (connection refused, proxy or DNS)"
            + (f", first while auditing {package.group(1)}" if package else "")
        )
    if re.search(r"HTTPError|status code 5\d\d", text) and not causes:
        causes.append("the vulnerability service answered with an HTTP error")
    return causes


def gate_audit(repo: Repo) -> tuple[str, str]:
    files = dependency_files(repo)
    if not files:
        others = [repo.rel(p) for p in repo.regular() if p.name in OTHER_LOCKS]
        return (
            NOT_RUN,
            "no requirements*.txt or requirements/lock.txt to audit"
            + (
                f" ({', '.join(others)} found: export it, e.g. 'uv export --format "
                "requirements-txt > requirements.txt' or 'poetry export', and commit that)"
                if others
                else "; pin the dependencies in requirements.txt (with hashes) to audit them"
            ),
        )
    packages = sum(
        1
        for f in files
        for line in f.read_text(encoding="utf-8").splitlines()
        if re.match(r"^[A-Za-z0-9]", line)
    )
    names = ", ".join(repo.rel(f) for f in files)
    say(
        f"Dependency audit of {packages} pinned packages in {names} with pip-audit --strict "
        "(vulnerability service: PyPI)"
    )
    ignores_file, ignores, bad = audit_ignores(repo)
    for line in bad:
        say("  " + line)
    if bad:
        return FAIL, f"every ignored vulnerability in {repo.rel(ignores_file)} needs a reason"
    reports = repo.root / "reports"
    reports.mkdir(exist_ok=True)
    vulns, failures = [], []
    for index, requirements in enumerate(files):
        out = reports / ("pip-audit.json" if index == 0 else f"pip-audit-{index}.json")
        out.unlink(missing_ok=True)
        hashed = "--hash=" in requirements.read_text(encoding="utf-8")
        with tempfile.TemporaryDirectory() as cache:  # a fresh cache: every run asks the service
            args = [tool("pip-audit"), "--strict", "--disable-pip"] if hashed else [
                tool("pip-audit"), "--strict", "--no-deps", "--disable-pip"]  # fmt: skip
            if hashed:
                args.append("--require-hashes")
            args += ["-r", str(requirements), "--progress-spinner", "off", "--cache-dir", cache]
            args += ["-f", "json", "-o", str(out)]
            for vuln in ignores:
                args += ["--ignore-vuln", vuln]
                if index == 0:
                    say(f"  ignoring {vuln} (reason in {repo.rel(ignores_file)})")
            done = repo.run(args)
        report = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else None
        for dep in (report or {}).get("dependencies", []):
            for vuln in dep.get("vulns", []):
                fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version"
                where = f"{dep['name']}=={dep.get('version')}"
                vulns.append(f"{where}: {vuln['id']} (fixed in {fixes})")
        if done.returncode != 0 or report is None:
            failures.append((requirements, done))
    for line in vulns:
        say("  " + line)
    if vulns:
        return (
            FAIL,
            f"{len(vulns)} known vulnerability(ies): bump the pin in pyproject.toml "
            "and run make lock, or record a reasoned ignore in " + repo.rel(ignores_file),
        )
    if not failures:
        return PASS, f"no known vulnerability in {packages} packages"
    causes, unexplained = [], []
    for requirements, done in failures:
        text = (done.stderr + done.stdout).strip()
        found = audit_causes(text)
        if found:
            causes += found
        else:
            reason = next(
                (line for line in reversed(text.splitlines()) if line.strip()), "no output"
            )
            unexplained.append(
                f"pip-audit exited {done.returncode} on {repo.rel(requirements)}: {reason[-400:]}"
            )
    if unexplained:
        return FAIL, unexplained[0]
    for cause in causes:
        say(f"  not audited: {cause}")
    summary = "; ".join(dict.fromkeys(causes))
    if os.environ.get(AUDIT_OPT_OUT) == "1":
        banner = "!" * 78
        say(banner)
        say(f"!! WARNING: {AUDIT_OPT_OUT}=1 is set and the audit could not get its answers.")
        say(f"!! NOT CHECKED: the {packages} packages pinned in {names} were NOT checked")
        say("!! for known vulnerabilities. Run 'make security' where PyPI's JSON API answers.")
        say(banner)
        return SKIPPED, f"dependency audit skipped by {AUDIT_OPT_OUT}=1 ({summary})"[:600]
    return (
        NOT_RUN,
        f"the audit is incomplete: {summary}; fix the network/proxy or the index, or set "
        f"{AUDIT_OPT_OUT}=1 to accept skipping it"[:800],
    )


# --------------------------------------------------------------------------- models
# Model files are found by their bytes, never by name or folder.
PICKLE_OPCODES = {op.code.encode("latin-1") for op in pickletools.opcodes}
NUMPY_MAGIC = b"\x93NUMPY"
COMPRESSED = {  # magic bytes -> how to open the stream (joblib's compressors included)
    b"\x1f\x8b": ("gzip", lambda f: gzip.GzipFile(fileobj=f)),
    b"BZh": ("bz2", bz2.BZ2File),
    b"\xfd7zXZ\x00": ("xz", lzma.LZMAFile),
    b"\x5d\x00\x00": ("lzma", functools.partial(lzma.LZMAFile, format=lzma.FORMAT_ALONE)),
}
ZLIB_HEADERS = (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")
NESTED_LIMIT = 512 * 1024 * 1024  # a zip inside a zip is read into memory up to this size


class ZlibFile(io.RawIOBase):
    """A zlib stream (joblib's default compressor) read as a file, without inflating it all."""

    def __init__(self, raw):
        self.raw, self.inflate, self.buffer, self.position = raw, zlib.decompressobj(), b"", 0

    def readable(self):
        return True

    def tell(self):  # pickletools.genops asks for positions
        return self.position

    def close(self):
        self.raw.close()
        super().close()

    def readinto(self, target):
        while not self.buffer and not self.inflate.eof:
            chunk = self.raw.read(1 << 16)
            if not chunk:
                break
            self.buffer = self.inflate.decompress(chunk)
        size = min(len(target), len(self.buffer))
        target[:size], self.buffer = self.buffer[:size], self.buffer[size:]
        self.position += size
        return size


def is_pickle(opener) -> bool:
    """The stream parses as pickle opcodes up to STOP (parsing runs nothing)."""
    with opener() as stream:
        head = stream.read(1)
    if head not in PICKLE_OPCODES or head == b".":
        return False
    count = 0
    try:
        with opener() as stream:
            for op, _, _ in pickletools.genops(stream):
                count += 1
                if op.name == "STOP":
                    return count > 1
    except Exception:  # noqa: BLE001  # any parse error: not a pickle
        return False
    return False


def npy_payload(stream) -> tuple[bool, str]:
    """(object dtype?, problem) of a stream starting with NumPy's magic; reads past the header."""
    magic = stream.read(8)
    try:
        size = struct.unpack(
            "<H" if magic[6] == 1 else "<I", stream.read(2 if magic[6] == 1 else 4)
        )[0]
        header = ast.literal_eval(stream.read(size).decode("latin-1"))
        descr = header["descr"]
    except Exception as error:  # noqa: BLE001
        return False, f"a NumPy header that does not parse ({type(error).__name__})"

    def has_object(d) -> bool:
        if isinstance(d, str):
            return d.lstrip("<>|=").startswith("O")
        if isinstance(d, (list, tuple)):
            return any(has_object(f[1]) for f in d if isinstance(f, (list, tuple)) and len(f) > 1)
        return True  # an unknown descriptor: treat as able to hold objects

    return has_object(descr), ""


class Finder:
    """Collects the pickle streams in one file (itself, or inside a zip, tar, npy or compressed
    stream) and what cannot be verified."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.streams: list[tuple[str, Path]] = []  # (label, extracted pickle)
        self.findings: list[str] = []
        self.skops: list[tuple[str, Path]] = []  # (label, file) of top-level skops archives
        self.current: Path | None = None

    def extract(self, label: str, opener, skip: int = 0) -> None:
        target = self.folder / f"{len(self.streams)}.pkl"
        with opener() as stream, target.open("wb") as out:
            if skip:
                stream.read(skip)
            shutil.copyfileobj(stream, out)
        self.streams.append((label, target))

    def look(self, label: str, opener, depth: int = 0) -> None:
        with opener() as stream:
            head = stream.read(512)
        if head.startswith(NUMPY_MAGIC):
            with opener() as stream:
                holds_objects, problem = npy_payload(stream)
                offset = stream.tell() if holds_objects else 0
            if problem:
                self.findings.append(f"{label}: {problem}: cannot verify it")
            elif holds_objects:
                self.findings.append(
                    f"{label}: NumPy array of dtype object: it holds a pickle, and loading it "
                    "needs allow_pickle=True, which runs code; store numeric arrays or safetensors"
                )
                self.extract(label, opener, skip=offset)
            return
        if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
            self.look_zip(label, opener, depth)
            return
        if head[257:262] == b"ustar":
            self.look_tar(label, opener, depth)
            return
        for magic, (kind, wrap) in COMPRESSED.items():
            if head.startswith(magic):
                self.look_compressed(label, kind, lambda o=opener, w=wrap: w(o()), depth)
                return
        if head[:2] in ZLIB_HEADERS:
            self.look_compressed(
                label, "zlib", lambda: io.BufferedReader(ZlibFile(opener())), depth
            )
            return
        if head.startswith(b"\x04\x22\x4d\x18"):
            self.findings.append(f"{label}: lz4-compressed: cannot verify what it holds")
            return
        if is_pickle(opener):
            self.extract(label, opener)

    def look_compressed(self, label, kind, opener, depth):
        try:
            with opener() as stream:
                inner = stream.read(512)
        except (OSError, EOFError, lzma.LZMAError, zlib.error):
            return  # not really that format: nothing a loader could read either
        if inner.startswith(NUMPY_MAGIC) or inner[:1] in PICKLE_OPCODES or inner.startswith(b"PK"):
            try:
                self.look(f"{label} ({kind})", opener, depth + 1)
            except (OSError, EOFError, lzma.LZMAError, zlib.error) as error:
                self.findings.append(
                    f"{label}: {kind} stream breaks off ({error}): cannot verify it"
                )

    def look_zip(self, label, opener, depth):
        try:
            with opener() as raw:
                data = raw if raw.seekable() else io.BytesIO(raw.read(NESTED_LIMIT + 1))
                with zipfile.ZipFile(data) as archive:
                    members = [m for m in archive.infolist() if not m.is_dir()]
                    names = {m.filename for m in members}
                    if "schema.json" in names and depth == 0 and self.current is not None:
                        self.skops.append((label, self.current))
                    for member in members:
                        where = f"{label} ({member.filename})"
                        if member.flag_bits & 1:
                            self.findings.append(f"{where}: encrypted zip member: cannot verify it")
                            continue
                        if depth > 3 or member.file_size > NESTED_LIMIT:
                            with archive.open(member) as handle:
                                head = handle.read(8)
                            if head.startswith(b"PK") or head[:1] in PICKLE_OPCODES:
                                self.findings.append(f"{where}: too deep or too large to verify")
                                continue
                        self.look(where, lambda a=archive, m=member: a.open(m), depth + 1)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as error:
            self.findings.append(
                f"{label}: a zip archive that does not open ({error}): cannot verify it"
            )

    def look_tar(self, label, opener, depth):
        try:
            with opener() as raw, tarfile.open(fileobj=raw, mode="r:") as archive:
                for member in archive.getmembers():
                    if member.isfile():
                        where = f"{label} ({member.name})"
                        content = archive.extractfile(member).read(NESTED_LIMIT)
                        self.look(where, lambda c=content: io.BytesIO(c), depth + 1)
        except (tarfile.TarError, EOFError) as error:
            self.findings.append(
                f"{label}: a tar archive that does not open ({error}): cannot verify it"
            )


def trusted_types(repo: Repo) -> list[str]:
    """TRUSTED_TYPES of the project's model_io.py (a literal list), read as data, never imported."""
    for path in sorted(repo.root.glob("src/*/model_io.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in tree.body:
            target = (
                node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
            )
            if (
                isinstance(target, ast.Name)
                and target.id == "TRUSTED_TYPES"
                and node.value is not None
            ):
                try:
                    return [str(t) for t in ast.literal_eval(node.value)]
                except ValueError:
                    return []
    return []


SKOPS_BUILTINS = {
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.str",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "builtins.NoneType",
    "builtins.complex",
    "builtins.bytes",
    "builtins.bytearray",
    "builtins.set",
    "builtins.frozenset",
    "builtins.slice",
    "collections.OrderedDict",
    "collections.defaultdict",
}
SKOPS_PACKAGES = ("sklearn.", "numpy", "scipy.", "skops.")


def skops_types(path: Path) -> tuple[set[str], str]:
    """The types a skops archive declares in its schema.json that are not the usual safe ones.

    Importing skops to ask it costs 5-10 s (it imports scikit-learn); the loader (model_io.py)
    asks skops itself before every load, so here the schema is read as data.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        return set(), f"a skops archive whose schema.json does not read ({error})"
    found, todo = set(), [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            if "__module__" in node:
                name = f"{node['__module__']}.{node.get('__class__', '')}"
                if name not in SKOPS_BUILTINS and not name.startswith(SKOPS_PACKAGES):
                    found.add(name)
            todo += node.values()
        elif isinstance(node, list):
            todo += node
    return found, ""


def run_pickle_scanners(repo: Repo, label: str, path: Path, report: Path) -> list[str]:
    problems = []
    scan = repo.run([tool("picklescan"), "-p", str(path)])
    hits = re.findall(r"(dangerous import '[^']+'|suspicious import '[^']+')", scan.stdout)
    if scan.returncode == 1:
        problems.append(f"{label}: picklescan: {'; '.join(hits) or scan.stdout.strip()[-200:]}")
    elif scan.returncode != 0 or "Scanned files: 1" not in scan.stdout:
        error = (scan.stderr or scan.stdout).strip().splitlines()
        problems.append(
            f"{label}: picklescan could not parse it (exit {scan.returncode}: "
            f"{error[-1][-200:] if error else 'no output'}): an unverifiable pickle is no pass"
        )
    check = repo.run([tool("fickling"), "--check-safety", "--json-output", str(report), str(path)])
    text = check.stdout + check.stderr
    if check.returncode == 1:
        detail = ""
        if report.is_file():
            try:
                data = json.loads(report.read_text(encoding="utf-8"))
                detail = f"{data.get('severity')}: " + "; ".join(
                    f"{k} {v}"
                    for k, v in data.get("detailed_results", {}).get("AnalysisResult", {}).items()
                )
            except ValueError:
                detail = ""
        problems.append(f"{label}: fickling: {detail or text.strip()[-200:]}")
    elif check.returncode != 0:
        first = text.strip().splitlines()[0] if text.strip() else "no output"
        problems.append(
            f"{label}: fickling could not analyse it (exit {check.returncode}: {first[:200]}): "
            "an unverifiable pickle is no pass"
        )
    return problems


def gate_models(repo: Repo) -> tuple[str, str]:
    files = repo.everything()
    say(
        f"Model-file scan of {len(files)} files of the work tree (git's and the ignored ones, such "
        "as data/, models/, mlartifacts/, mlruns/; minus .git and virtualenvs), classified by "
        "content: pickles (protocol 0-5, any name), torch/zip archives, NumPy object arrays, "
        "joblib and gzip/bz2/xz/lzma/zlib-compressed pickles, tar, skops; every pickle stream "
        "through picklescan and fickling"
    )
    problems, skops = [], []
    root = repo.root
    committable = set(repo.committable())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        finder = Finder(folder)
        scanned = 0
        for path in files:
            label = repo.rel(path)
            if path.is_symlink():
                target = path.resolve()
                outside = not target.is_relative_to(root)
                if outside and path in committable:
                    problems.append(
                        f"{label}: a symlink to {target}, outside the repository: refused "
                        "(copy the file in, or keep it out of the work tree)"
                    )
                    continue
                if not target.is_file():
                    # A folder inside the repo is walked itself; an ignored link to a folder
                    # outside (a data mount) is not followed; a dangling link holds nothing.
                    continue
                label = f"{label} -> {repo.rel(target)}"
            elif not path.is_file():
                continue
            scanned += 1
            finder.current = path
            try:
                finder.look(label, lambda p=path: p.open("rb"))
            except OSError as error:
                problems.append(f"{label}: cannot be read ({error}): cannot verify it")
        problems += finder.findings
        for index, (label, stream) in enumerate(finder.streams):
            problems += run_pickle_scanners(repo, label, stream, folder / f"fickling-{index}.json")
        skops = finder.skops
        trusted = set(trusted_types(repo))
        for label, path in skops:
            untrusted, problem = skops_types(path)
            if problem:
                problems.append(f"{label}: {problem}: cannot verify it")
            untrusted = sorted(t for t in untrusted if t not in trusted)
            if untrusted:
                problems.append(
                    f"{label}: skops archive declares types beyond scikit-learn, NumPy, SciPy, "
                    f"plain containers and TRUSTED_TYPES: {', '.join(untrusted)}; "
                    "review them before trusting any (never trusted=get_untrusted_types(...))"
                )
    for line in problems:
        say("  " + line)
    streams = len(finder.streams)
    if problems:
        return (
            FAIL,
            f"{len(problems)} unsafe or unverifiable model file finding(s): do not load them; "
            "save models with skops or safetensors",
        )
    return PASS, (
        f"{scanned} file(s) read, {streams} pickle stream(s) clean, {len(skops)} skops archive(s)"
    )


# --------------------------------------------------------------------------- sbom
def digest(path: Path) -> str:
    h = sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def artifact(repo: Repo, path: Path, kind: str, description: str) -> dict:
    name = repo.rel(path)
    return {
        "type": kind,
        "bom-ref": f"file:{name}",
        "name": name,
        "description": description,
        "hashes": [{"alg": "SHA-256", "content": digest(path)}],
    }


def files_in(folder: Path, skip: set[str] = frozenset()) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*") if p.is_file() and p.suffix not in skip)


def gate_sbom(repo: Repo) -> tuple[str, str]:
    root = repo.root
    reports = root / "reports"
    out = reports / "sbom.cdx.json"
    pipeline = (root / "params.yaml").is_file() and (root / "dvc.yaml").is_file()
    environment = BIN.parent if root == PROJECT else root / ".venv"
    requirements = dependency_files(repo)
    if root == PROJECT or (environment / "bin" / "python").exists():
        source = f"the installed environment ({environment.name})"
    elif requirements:
        source = "the pinned requirements (" + ", ".join(repo.rel(p) for p in requirements) + ")"
    else:
        return NOT_RUN, "no .venv and no requirements*.txt: nothing to list the packages from"
    say(f"CycloneDX SBOM of {source}, the model(s) and the data -> {repo.rel(out)}")
    models = files_in(root / "models", NOT_MODELS)
    data = files_in(root / "data" / "prepared")
    dataset = "data set"
    if pipeline:
        import yaml  # in the lock; imported here so the other gates do not need it

        params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8")) or {}
        dataset = (params.get("data") or {}).get("dataset", "data set")
        if not models or not data:
            return (
                NOT_RUN,
                "no trained model in models/ or no data in data/prepared/: "
                "run make pipeline, then make security",
            )
    reports.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "env.json"
        if "environment" in source:
            python = BIN / "python" if root == PROJECT else environment / "bin" / "python"
            args = ["environment", "--no-validate"]
            if (root / "pyproject.toml").is_file():
                args += ["--pyproject", "pyproject.toml"]
            args += ["--output-format", "JSON", "--output-file", str(raw), str(python)]
        else:
            args = ["requirements", "--no-validate", "--output-format", "JSON"]
            args += ["--output-file", str(raw), str(requirements[0])]
        done = repo.run([tool("cyclonedx-py"), *args])
        if done.returncode != 0 or not raw.is_file():
            return NOT_RUN, f"cyclonedx-py exited {done.returncode}: {done.stderr.strip()[-300:]}"
        bom = json.loads(raw.read_text(encoding="utf-8"))
    packages = [c for c in bom.get("components", []) if c.get("type") == "library"]
    if bom.get("bomFormat") != "CycloneDX" or not packages:
        return FAIL, "cyclonedx-py wrote no package components"
    added = [
        artifact(repo, p, "machine-learning-model", "trained model (DVC out of the train stage)")
        for p in models
    ]
    added += [
        artifact(repo, p, "data", f"data set '{dataset}' (DVC out of the prepare stage)")
        for p in data
    ]
    bom.setdefault("components", []).extend(added)
    tmp_out = out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(bom, indent=2) + "\n", encoding="utf-8")
    tmp_out.replace(out)  # never a half-written SBOM
    for item in added:
        say(f"  {item['type']}: {item['name']} sha256:{item['hashes'][0]['content'][:16]}...")
    return PASS, f"{len(packages)} packages, {len(added)} model/data components -> {repo.rel(out)}"


# --------------------------------------------------------------------------- ci
def images(node) -> list[str]:
    """Every `image:` of a GitLab CI file (a string or a mapping with `name`)."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image":
                found.append(value.get("name", "") if isinstance(value, dict) else str(value))
            else:
                found += images(value)
    elif isinstance(node, list):
        for value in node:
            found += images(value)
    return found


def gate_ci(repo: Repo) -> tuple[str, str]:
    workflows = repo.root / ".github" / "workflows"
    gitlab = repo.root / ".gitlab-ci.yml"
    say(
        "CI files: GitHub workflows with zizmor --offline (regular and auditor personas) and "
        "check-jsonschema; .gitlab-ci.yml parsed, images pinned by digest"
    )
    problems, checked = [], []
    files = [repo.rel(p) for p in sorted(workflows.glob("*.y*ml"))] if workflows.is_dir() else []
    if files:
        checked += files
        for persona in ("regular", "auditor"):
            # JSON output: plain output changes with the terminal and CI variables (colours).
            done = repo.run(
                [tool("zizmor"), "--offline", "--format=json", f"--persona={persona}", ".github/"]
            )
            try:
                findings = json.loads(done.stdout or "[]")
            except json.JSONDecodeError:
                findings = None
            if (
                findings is None
                # 10-14: findings, by the highest severity found; anything else: no verdict
                or done.returncode not in (0, 10, 11, 12, 13, 14)
                or (done.returncode != 0 and not findings)
            ):
                return NOT_RUN, f"zizmor exited {done.returncode}: {done.stderr.strip()[-300:]}"
            for finding in findings:
                if finding.get("ignored"):
                    continue
                where = ""
                for location in finding.get("locations", [])[:1]:
                    path = location["symbolic"]["key"].get("Local", {}).get("verbatim_path", "")
                    row = location["concrete"]["location"]["start_point"]["row"] + 1
                    where = f"{path}:{row}"
                problems.append(
                    f"zizmor ({persona}): {finding['ident']}: {finding['desc']} {where}".rstrip()
                )
        schema = repo.run(
            [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files]
        )
        if schema.returncode != 0:
            problems.append("check-jsonschema: " + (schema.stdout + schema.stderr).strip()[-400:])
    if gitlab.is_file():
        import yaml  # in the lock

        checked.append(repo.rel(gitlab))
        try:
            config = yaml.safe_load(gitlab.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            config = None
            problems.append(f"{repo.rel(gitlab)} does not parse: {error}")
        if config is not None and not isinstance(config, dict):
            problems.append(f"{repo.rel(gitlab)} is not a mapping of jobs")
        elif config is not None:
            for image in images(config):
                if "@sha256:" not in image:
                    problems.append(f"{repo.rel(gitlab)}: image {image} is not pinned by digest")
    for line in problems:
        say("  " + line)
    if problems:
        return FAIL, f"{len(problems)} problem(s) in the CI files"
    if not checked:
        return PASS, "no CI files in this repository (ci_provider=none)"
    return PASS, "no findings in " + ", ".join(checked)


GATES = {
    "bandit": gate_bandit,
    "secrets": gate_secrets,
    "audit": gate_audit,
    "models": gate_models,
    "sbom": gate_sbom,
    "ci": gate_ci,
}


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, as for an unknown gate
        print(f"gates.py: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str]) -> int:
    parser = Parser(prog="gates.py", description="Run the security gates.")
    parser.add_argument(
        "--root",
        type=Path,
        default=PROJECT,
        help="the git repository to scan (default: this project)",
    )
    parser.add_argument("gates", nargs="*", metavar="GATE", help=", ".join(GATES))
    args = parser.parse_args(argv)
    names = args.gates or list(GATES)
    unknown = [n for n in names if n not in GATES]
    if unknown:
        print(
            f"gates.py: unknown gate {', '.join(unknown)}; choose from {', '.join(GATES)}",
            file=sys.stderr,
        )
        return 2
    repo = Repo(args.root)
    try:
        if not repo.root.is_dir():
            raise UsageError(f"--root {args.root} is not a folder")
        repo.committable()
    except UsageError as error:
        print(f"gates.py: {error}; pass --root a git repository", file=sys.stderr)
        return 2
    verdicts = []
    for name in names:
        say(f"== {name}")
        try:
            verdict, detail = GATES[name](repo)
        except ToolMissing as error:
            verdict, detail = NOT_RUN, str(error)
        except Exception as error:  # a gate that crashed did not run: never a pass
            verdict, detail = NOT_RUN, f"{type(error).__name__}: {error}"
        say(f"{verdict} {name}: {detail}")
        say()
        verdicts.append((name, verdict, detail))
    say("== summary")
    for name, verdict, _ in verdicts:
        say(f"  {verdict:8} {name}")
    failed = [n for n, v, _ in verdicts if v in (FAIL, NOT_RUN)]
    if failed:
        say(f"security gates FAILED: {', '.join(failed)}")
        return 1
    say(
        "security gates passed"
        + (
            " (with a skipped audit: see the warning above)"
            if any(v == SKIPPED for _, v, _ in verdicts)
            else ""
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

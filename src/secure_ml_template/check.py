"""Audit a repository against the template's controls. Reads only: it never writes to the repo.

Each control gets a status (present / partial / missing) and the evidence found or missing.
The score is the share of controls that are present, in percent.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

PRESENT, PARTIAL, MISSING = "present", "partial", "missing"
SKIP_DIRS = {
    ".git", ".venv", "venv", "env", ".env", "node_modules", "site-packages", "__pycache__",
    ".tox", ".nox", ".mypy_cache", ".ruff_cache", ".pytest_cache", "build", "dist", "site",
    ".dvc", "mlruns", "mlartifacts", ".ipynb_checkpoints",
}
MAX_FILES = 20000
MAX_BYTES = 2_000_000

# Scanners that must run both before a commit (pre-commit) and in CI: (id, title, pattern).
SCANNERS = [
    ("scan-bandit", "Static analysis (bandit)", r"\bbandit\b"),
    ("scan-secrets", "Secret detection (detect-secrets)", r"\bdetect-secrets\b|\bdetect_secrets\b"),
    ("scan-pip-audit", "Dependency audit (pip-audit)", r"\bpip-audit\b|\bpip_audit\b"),
    ("scan-model-files", "Model file scan (picklescan / fickling)",
     r"\bpicklescan\b|\bfickling\b|\bmodelscan\b"),
    ("scan-ruff", "Lint (ruff)", r"\bruff\b"),
]
SAFE_FORMATS = r"^\s*(?:import|from)\s+(skops|safetensors)\b"
UNSAFE_DUMPS = r"\b(pickle|cPickle|joblib|cloudpickle|dill)\.dump\(|\btorch\.save\("
VALIDATORS = r"^\s*(?:import|from)\s+(pandera|great_expectations|deepchecks|tensorflow_data_validation|evidently|frictionless|pandas_schema)\b"
SHA = re.compile(r"@[0-9a-f]{40}$")


@dataclass
class Row:
    id: str
    control: str
    status: str
    evidence: str


class Repo:
    """Lazy, read-only views of the files of one repository."""

    def __init__(self, root: Path):
        self.root = root
        self._files: list[Path] | None = None
        self._texts: dict[Path, str] = {}

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    @property
    def files(self) -> list[Path]:
        if self._files is None:
            found: list[Path] = []
            stack = [self.root]
            while stack and len(found) < MAX_FILES:
                folder = stack.pop()
                try:
                    entries = sorted(folder.iterdir())
                except OSError:
                    continue
                for entry in entries:
                    if entry.is_symlink():
                        continue
                    if entry.is_dir():
                        if entry.name not in SKIP_DIRS and not entry.name.endswith(".egg-info"):
                            stack.append(entry)
                    elif entry.is_file():
                        found.append(entry)
            self._files = sorted(found)
        return self._files

    def text(self, path: Path) -> str:
        if path not in self._texts:
            try:
                data = path.read_bytes()[:MAX_BYTES] if path.stat().st_size else b""
                self._texts[path] = data.decode("utf-8", "replace")
            except OSError:
                self._texts[path] = ""
            if path.suffix == ".ipynb":
                self._texts[path] = notebook_code(self._texts[path])
        return self._texts[path]

    def code_files(self, with_tests: bool = True) -> list[Path]:
        out = []
        for path in self.files:
            if path.suffix not in (".py", ".ipynb"):
                continue
            if not with_tests and is_test_path(self.rel(path)):
                continue
            out.append(path)
        return out

    def grep(self, pattern: str, files: list[Path], flags=re.MULTILINE) -> list[tuple[str, str]]:
        """(relative path, matched text) for each file with a match, first match only."""
        regex = re.compile(pattern, flags)
        hits = []
        for path in files:
            match = regex.search(self.text(path))
            if match:
                hits.append((self.rel(path), match.group(0).strip()))
        return hits

    def yaml(self, path: Path):
        try:
            return yaml.safe_load(self.text(path))
        except yaml.YAMLError:
            return None


def notebook_code(text: str) -> str:
    """The code cells of a notebook, as plain lines (the raw JSON quotes every line)."""
    try:
        cells = json.loads(text).get("cells", [])
    except (ValueError, AttributeError):
        return ""
    out = []
    for cell in cells if isinstance(cells, list) else []:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            out.append("".join(source) if isinstance(source, list) else str(source))
    return "\n".join(out)


def is_test_path(rel: str) -> bool:
    parts = rel.split("/")
    name = parts[-1]
    return (any(p in ("tests", "test", "testing") for p in parts[:-1])
            or name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py")


def listing(hits: list[tuple[str, str]], limit: int = 3) -> str:
    shown = ", ".join(path for path, _ in hits[:limit])
    return shown + (f" (+{len(hits) - limit} more)" if len(hits) > limit else "")


# ---------------------------------------------------------------- Makefile expansion


def make_rules(repo: Repo) -> dict[str, tuple[list[str], str]]:
    """target -> (prerequisites, recipe text) of the repository's Makefile."""
    makefile = repo.root / "Makefile"
    if not makefile.is_file():
        return {}
    rules: dict[str, tuple[list[str], str]] = {}
    current: list[str] = []
    for line in repo.text(makefile).splitlines():
        if line.startswith("\t"):
            for target in current:
                deps, recipe = rules[target]
                rules[target] = (deps, recipe + line + "\n")
            continue
        header = re.match(r"^([A-Za-z0-9_.%/-]+(?:[ \t]+[A-Za-z0-9_.%/-]+)*)[ \t]*:(?![=:])(.*)$", line)
        if header and not line.startswith("."):
            current = header.group(1).split()
            deps = header.group(2).split("##")[0].split(";")[0].split()
            for target in current:
                rules.setdefault(target, ([], ""))
                rules[target] = (rules[target][0] + deps, rules[target][1])
        elif line.strip() and not line.startswith("#"):
            current = []
    return rules


def expand(repo: Repo, text: str, scripts: bool = True) -> str:
    """Text of commands plus the Makefile targets (and, with scripts, the repository scripts)
    they call."""
    rules = make_rules(repo)
    seen_targets: set[str] = set()
    seen_scripts: set[str] = set()
    out = [text]
    queue = [text]
    while queue:
        chunk = queue.pop()
        targets = []
        for match in re.finditer(r"(?:\bmake|\$\(MAKE\))((?:[ \t]+-[-\w=]+)*)((?:[ \t]+[A-Za-z][\w.-]*)+)", chunk):
            targets += match.group(2).split()
        for target in targets:
            if target in rules and target not in seen_targets:
                seen_targets.add(target)
                deps, recipe = rules[target]
                extra = recipe + "\n" + " ".join(f"make {d}" for d in deps)
                out.append(extra)
                queue.append(extra)
        for match in re.finditer(r"(?:\./)?((?:scripts|bin|ci|\.ci)/[\w./-]+\.(?:sh|py))", chunk):
            script = match.group(1)
            path = repo.root / script
            if scripts and script not in seen_scripts and path.is_file():
                seen_scripts.add(script)
                out.append(repo.text(path))
                queue.append(repo.text(path))
    return "\n".join(out)


def strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


# ---------------------------------------------------------------- the controls


def ci_files(repo: Repo) -> list[Path]:
    workflows = repo.root / ".github" / "workflows"
    found = sorted(p for p in workflows.glob("*.y*ml") if p.is_file()) if workflows.is_dir() else []
    gitlab = repo.root / ".gitlab-ci.yml"
    if gitlab.is_file():
        found.append(gitlab)
    return found


def ci_commands(repo: Repo, path: Path) -> str:
    """The commands a CI file runs: GitHub steps' `run` and `uses` (with their inputs),
    GitLab `script` / `before_script` / `after_script`. Names and comments do not count."""
    data = repo.yaml(path)
    if not isinstance(data, dict):
        return strip_comments(repo.text(path))
    out: list[str] = []
    if path.name == ".gitlab-ci.yml":
        def walk(node):
            if isinstance(node, dict):
                for key, value in node.items():
                    if key in ("script", "before_script", "after_script"):
                        out.extend(value if isinstance(value, list) else [value])
                    else:
                        walk(value)
            elif isinstance(node, list):
                for item in node:
                    walk(item)
        walk(data)
    else:
        jobs = data.get("jobs")
        for job in (jobs.values() if isinstance(jobs, dict) else []):
            if not isinstance(job, dict):
                continue
            if isinstance(job.get("uses"), str):
                out.append(job["uses"])
            steps = job.get("steps")
            for step in (steps if isinstance(steps, list) else []):
                if isinstance(step, dict):
                    out += [str(step.get(k)) for k in ("run", "uses") if step.get(k)]
                    if isinstance(step.get("with"), dict):
                        out += [str(v) for v in step["with"].values()]
    return "\n".join(str(line) for line in out)


def precommit_text(repo: Repo) -> str:
    config = repo.root / ".pre-commit-config.yaml"
    if not config.is_file():
        return ""
    data = repo.yaml(config)
    if not isinstance(data, dict) or not isinstance(data.get("repos"), list):
        return ""
    parts = []
    for entry in data["repos"]:
        if not isinstance(entry, dict):
            continue
        for hook in entry.get("hooks") or []:
            if isinstance(hook, dict):
                args = hook.get("args") or []
                fields = [hook.get("id"), hook.get("name"), hook.get("entry"),
                          *(args if isinstance(args, list) else [])]
                if entry.get("repo") not in ("local", "meta"):
                    fields.append(entry.get("repo"))
                parts.append(" ".join(str(f) for f in fields if f))
    # A hook counts for the tools it names; a script it runs may run other tools only on demand.
    return expand(repo, "\n".join(parts), scripts=False)


def check_dvc(repo: Repo) -> Row:
    title = "Pipeline versioned with DVC"
    dvc_yaml = repo.root / "dvc.yaml"
    if dvc_yaml.is_file():
        data = repo.yaml(dvc_yaml)
        stages = data.get("stages") if isinstance(data, dict) else None
        if isinstance(stages, dict) and stages:
            names = ", ".join(list(stages)[:6])
            return Row("dvc-pipeline", title, PRESENT, f"dvc.yaml: {len(stages)} stages ({names})")
        return Row("dvc-pipeline", title, PARTIAL, "dvc.yaml has no stages")
    tracked = [p for p in repo.files if p.suffix == ".dvc"]
    if (repo.root / ".dvc").is_dir() or tracked:
        return Row("dvc-pipeline", title, PARTIAL, "DVC is initialised but there is no dvc.yaml pipeline")
    return Row("dvc-pipeline", title, MISSING, "no dvc.yaml with stages")


def dependency_texts(repo: Repo) -> list[Path]:
    return [p for p in repo.files if p.parent == repo.root and (
        p.name in ("pyproject.toml", "setup.py", "setup.cfg", "environment.yml", "Pipfile")
        or (p.name.startswith("requirements") and p.suffix in (".txt", ".in")))
    ] + [p for p in repo.files if p.parent.name == "requirements" and p.suffix in (".txt", ".in")]


def check_tracking(repo: Repo) -> Row:
    title = "Experiment tracking (MLflow)"
    hits = repo.grep(r"^\s*(?:import|from)\s+mlflow\b", repo.code_files())
    if hits:
        return Row("experiment-tracking", title, PRESENT, f"mlflow used in {listing(hits)}")
    deps = repo.grep(r"^\s*\"?mlflow\b", dependency_texts(repo))
    if deps:
        return Row("experiment-tracking", title, PARTIAL, f"mlflow is a dependency ({listing(deps)}) but no code imports it")
    return Row("experiment-tracking", title, MISSING, "no code imports mlflow")


def check_tests(repo: Repo) -> Row:
    title = "Tests (pytest)"
    tests = [p for p in repo.files if p.suffix == ".py" and (p.name.startswith("test_") or p.name.endswith("_test.py"))]
    if tests:
        return Row("tests", title, PRESENT, f"{len(tests)} test files ({listing([(repo.rel(p), '') for p in tests])})")
    return Row("tests", title, MISSING, "no test_*.py files")


def check_scanner(repo: Repo, ident: str, title: str, pattern: str, hooks: str, ci: str, ci_names: str) -> Row:
    in_hooks = bool(re.search(pattern, hooks))
    in_ci = bool(re.search(pattern, ci))
    found = []
    if in_hooks:
        found.append("pre-commit hook")
    if in_ci:
        found.append(f"CI ({ci_names})")
    missing = []
    if not in_hooks:
        missing.append("not in .pre-commit-config.yaml")
    if not in_ci:
        missing.append("not run by CI" if ci_names else "no CI configuration")
    status = PRESENT if in_hooks and in_ci else PARTIAL if (in_hooks or in_ci) else MISSING
    evidence = "; ".join(
        ([("runs in " + " and ".join(found))] if found else []) + missing)
    return Row(ident, title, status, evidence)


def check_ci_hardening(repo: Repo) -> Row:
    title = "Hardened CI (GitHub Actions / GitLab)"
    workflows = [p for p in ci_files(repo) if p.name != ".gitlab-ci.yml"]
    gitlab = repo.root / ".gitlab-ci.yml"
    if not workflows:
        if gitlab.is_file():
            data = repo.yaml(gitlab)
            images = []

            def walk(node):
                if isinstance(node, dict):
                    for key, value in node.items():
                        if key == "image":
                            images.append(value.get("name") if isinstance(value, dict) else value)
                        else:
                            walk(value)
                elif isinstance(node, list):
                    for item in node:
                        walk(item)

            walk(data)
            loose = [str(i) for i in images if i and "@sha256:" not in str(i)]
            if images and not loose:
                return Row("ci-hardened", title, PRESENT, f".gitlab-ci.yml: {len(images)} images pinned by digest")
            return Row("ci-hardened", title, PARTIAL,
                       ".gitlab-ci.yml: " + (f"images not pinned by digest: {', '.join(loose[:3])}" if loose else "no pinned image"))
        return Row("ci-hardened", title, MISSING, "no CI workflows")
    problems: list[str] = []
    good = 0
    for path in workflows:
        name = repo.rel(path)
        data = repo.yaml(path)
        if not isinstance(data, dict):
            problems.append(f"{name}: not valid YAML")
            continue
        perms = data.get("permissions", "<absent>")
        if perms == {} or perms == "read-all" or (
                isinstance(perms, dict) and all(v in ("read", "none") for v in perms.values())):
            good += 1
        else:
            problems.append(f"{name}: top-level permissions not read-only")
        unpinned, persisting = [], 0
        jobs = data.get("jobs")
        for job in (jobs.values() if isinstance(jobs, dict) else []):
            if not isinstance(job, dict):
                continue
            uses = [job["uses"]] if isinstance(job.get("uses"), str) else []
            steps = job.get("steps")
            for step in (steps if isinstance(steps, list) else []):
                if isinstance(step, dict) and isinstance(step.get("uses"), str):
                    uses.append(step["uses"])
                    if step["uses"].startswith("actions/checkout"):
                        options = step.get("with") if isinstance(step.get("with"), dict) else {}
                        if str(options.get("persist-credentials", "true")).lower() != "false":
                            persisting += 1
            unpinned += [u for u in uses if not u.startswith(("./", "docker://")) and not SHA.search(u)]
        if unpinned:
            problems.append(f"{name}: actions not pinned by SHA ({', '.join(sorted(set(unpinned))[:3])})")
        else:
            good += 1
        if persisting:
            problems.append(f"{name}: checkout without persist-credentials: false")
        else:
            good += 1
    if not problems:
        return Row("ci-hardened", title, PRESENT,
                   f"{len(workflows)} workflow(s): read-only permissions, actions pinned by SHA, credentials not persisted")
    return Row("ci-hardened", title, PARTIAL if good else MISSING, "; ".join(problems[:4]))


def check_lock(repo: Repo) -> Row:
    title = "Dependencies locked with hashes"
    for name in ("uv.lock", "poetry.lock", "Pipfile.lock", "pdm.lock", "conda-lock.yml"):
        if (repo.root / name).is_file():
            return Row("lock-hashes", title, PRESENT, f"{name}")
    candidates = [p for p in repo.files if p.suffix == ".txt" and (
        p.parent == repo.root or p.parent.name == "requirements")]
    hashed = repo.grep(r"--hash=sha256:[0-9a-f]{64}", candidates)
    if hashed:
        return Row("lock-hashes", title, PRESENT, f"hash-pinned: {listing(hashed)}")
    pinned = repo.grep(r"^[A-Za-z0-9_.\[\]-]+==\S+", candidates)
    if pinned:
        return Row("lock-hashes", title, PARTIAL, f"pinned without hashes: {listing(pinned)}")
    return Row("lock-hashes", title, MISSING, "no lock file with hashes")


def check_model_format(repo: Repo) -> Row:
    title = "Safe model format (skops / safetensors)"
    safe = repo.grep(SAFE_FORMATS, repo.code_files())
    unsafe = repo.grep(UNSAFE_DUMPS, repo.code_files(with_tests=False))
    unsafe_text = "; ".join(f"{path}: {text}" for path, text in unsafe[:3])
    if safe and not unsafe:
        return Row("safe-model-format", title, PRESENT, f"{', '.join(sorted({t.split()[1] for _, t in safe}))} used in {listing(safe)}; no pickle-based dumps outside tests")
    if safe:
        return Row("safe-model-format", title, PARTIAL, f"skops/safetensors used, but also {unsafe_text}")
    if unsafe:
        return Row("safe-model-format", title, MISSING, f"pickle-based dumps: {unsafe_text}")
    return Row("safe-model-format", title, MISSING, "no skops or safetensors use found")


def check_data_validation(repo: Repo) -> Row:
    title = "Data validation (pandera or similar)"
    hits = repo.grep(VALIDATORS, repo.code_files(with_tests=False))
    if hits:
        tools = sorted({re.split(r"[\s.]", t)[1] for _, t in hits})
        return Row("data-validation", title, PRESENT, f"{', '.join(tools)} used in {listing(hits)}")
    weak = repo.grep(r"^\s*(?:import|from)\s+pydantic\b", repo.code_files(with_tests=False))
    if weak:
        return Row("data-validation", title, PARTIAL, f"pydantic in {listing(weak)}; no data-set schema (pandera or similar)")
    return Row("data-validation", title, MISSING, "no pandera, great_expectations or similar")


def check_docs(repo: Repo) -> Row:
    title = "Docs (site, threat model, model card)"
    docs = [p for p in repo.files if p.suffix == ".md" and (
        repo.rel(p).startswith("docs/") or p.parent == repo.root)]
    site = (repo.root / "mkdocs.yml").is_file() or (repo.root / "docs").is_dir()

    def find(pattern: str) -> str | None:
        regex = re.compile(pattern, re.IGNORECASE)
        for path in docs:
            head = "\n".join(repo.text(path).splitlines()[:5])
            if regex.search(path.stem) or re.search(r"^#\s.*(" + pattern + ")", head, re.IGNORECASE | re.MULTILINE):
                return repo.rel(path)
        return None

    threat = find(r"threat[-_ ]?model")
    card = find(r"model[-_ ]?card")
    found = [f for f in ("mkdocs.yml" if (repo.root / "mkdocs.yml").is_file() else "docs/" if site else None,
                         threat, card) if f]
    missing = [name for name, ok in (("docs site (mkdocs.yml or docs/)", site), ("threat model", threat),
                                     ("model card", card)) if not ok]
    if not missing:
        return Row("docs", title, PRESENT, ", ".join(found))
    if found:
        return Row("docs", title, PARTIAL, f"found {', '.join(found)}; missing {', '.join(missing)}")
    return Row("docs", title, MISSING, "missing " + ", ".join(missing))


def check_file(repo: Repo, ident: str, title: str, names: tuple[str, ...], where=("", ".github/", "docs/")) -> Row:
    for folder in where:
        for name in names:
            for path in sorted((repo.root / folder).glob(name)) if (repo.root / folder).is_dir() else []:
                if path.is_file() and path.stat().st_size > 0:
                    return Row(ident, title, PRESENT, repo.rel(path))
    return Row(ident, title, MISSING, f"no {names[0]}")


def check_registry(repo: Repo) -> Row:
    title = "Controls registry (controls.yaml)"
    path = repo.root / "controls.yaml"
    if not path.is_file():
        return Row("controls-registry", title, MISSING, "no controls.yaml")
    data = repo.yaml(path)
    controls = data.get("controls") if isinstance(data, dict) else None
    if isinstance(controls, list) and controls and all(isinstance(c, dict) and c.get("id") for c in controls):
        return Row("controls-registry", title, PRESENT, f"controls.yaml: {len(controls)} controls")
    return Row("controls-registry", title, PARTIAL, "controls.yaml has no list of controls with ids")


def audit(root: Path) -> list[Row]:
    repo = Repo(root)
    try:
        hooks = precommit_text(repo)
    except Exception:  # an unreadable config counts as no hooks  # noqa: BLE001
        hooks = ""
    cis = ci_files(repo)
    ci = expand(repo, "\n".join(_safe(ci_commands, repo, p) for p in cis))
    if re.search(r"\bpre-commit(?:\s+-\S+)*\s+run\b", ci):
        ci += "\n" + hooks  # CI runs the pre-commit hooks
    ci_names = ", ".join(repo.rel(p) for p in cis)
    checks = [
        ("dvc-pipeline", "Pipeline versioned with DVC", lambda: check_dvc(repo)),
        ("experiment-tracking", "Experiment tracking (MLflow)", lambda: check_tracking(repo)),
        ("tests", "Tests (pytest)", lambda: check_tests(repo)),
    ]
    checks += [(i, t, (lambda i=i, t=t, pat=pat: check_scanner(repo, i, t, pat, hooks, ci, ci_names)))
               for i, t, pat in SCANNERS]
    checks += [
        ("ci-hardened", "Hardened CI (GitHub Actions / GitLab)", lambda: check_ci_hardening(repo)),
        ("lock-hashes", "Dependencies locked with hashes", lambda: check_lock(repo)),
        ("safe-model-format", "Safe model format (skops / safetensors)", lambda: check_model_format(repo)),
        ("data-validation", "Data validation (pandera or similar)", lambda: check_data_validation(repo)),
        ("docs", "Docs (site, threat model, model card)", lambda: check_docs(repo)),
        ("security-policy", "Security policy (SECURITY.md)", lambda: check_file(
            repo, "security-policy", "Security policy (SECURITY.md)", ("SECURITY.md", "SECURITY.rst", "SECURITY"))),
        ("license", "License", lambda: check_file(
            repo, "license", "License", ("LICENSE", "LICENSE.*", "LICENCE", "COPYING"), where=("",))),
        ("controls-registry", "Controls registry (controls.yaml)", lambda: check_registry(repo)),
    ]
    rows = []
    for ident, title, run_check in checks:
        try:
            rows.append(run_check())
        except Exception as exc:  # an odd file must not hide the other controls; never a pass  # noqa: BLE001
            rows.append(Row(ident, title, MISSING, f"could not be checked: {type(exc).__name__}: {exc}"[:200]))
    return rows


def _safe(function, *args) -> str:
    try:
        return function(*args)
    except Exception:  # an unreadable CI file counts as running nothing  # noqa: BLE001
        return ""


def score(rows: list[Row]) -> int:
    return round(100 * sum(r.status == PRESENT for r in rows) / len(rows)) if rows else 0


def render(rows: list[Row], fmt: str, path: Path) -> str:
    total = len(rows)
    present = sum(r.status == PRESENT for r in rows)
    summary = f"score {score(rows)}% ({present}/{total} controls present)"
    if fmt == "json":
        return json.dumps({"path": str(path), "score": score(rows), "present": present, "total": total,
                           "controls": [asdict(r) for r in rows]}, indent=2)
    if fmt == "markdown":
        lines = ["| Control | Status | Evidence |", "| --- | --- | --- |"]
        for r in rows:
            lines.append(f"| {r.control} | {r.status} | {r.evidence.replace('|', '/')} |")
        return "\n".join(lines + ["", f"**{summary}**"])
    width = max(len(r.control) for r in rows)
    lines = [f"{'control'.ljust(width)}  {'status':8}  evidence", f"{'-' * width}  {'-' * 8}  {'-' * 8}"]
    lines += [f"{r.control.ljust(width)}  {r.status:8}  {r.evidence}" for r in rows]
    return "\n".join(lines + [summary])

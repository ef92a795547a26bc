"""Audit a repository against the template's controls. Reads only: it never writes to the repo.

Each control gets a status (present / partial / missing) and the evidence found or missing.
The score is the share of controls that are present, in percent.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
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
# Formats that run no code when a model is loaded, and calls that save or load through pickle.
SAFE_FORMATS = (r"^\s*(?:import|from)\s+(skops|safetensors|onnx|onnxruntime|skl2onnx|tf2onnx)\b"
                r"|\btorch\.onnx\.export\(|\bsave_file\(|\.save_pretrained\([^)]*safe_serialization\s*=\s*True")
# (`pickle.dumps` alone makes bytes in memory, e.g. an attack demo's payload: not a saved model.)
UNSAFE_CALLS = (r"\b(?:pickle|cPickle|_pickle|joblib|cloudpickle|dill)\.(?:dump|load|loads)\("
                r"|\b(?:pd|pandas)\.read_pickle\(|\.to_pickle\("
                r"|\btorch\.save\(|\btorch\.load\((?![^)\n]*weights_only\s*=\s*True)"
                r"|\b(?:np|numpy)\.load\([^)\n]*allow_pickle\s*=\s*True|\byaml\.unsafe_load\("
                r"|^\s*from\s+(?:pickle|joblib|cloudpickle|dill)\s+import\s+[^\n]*\b(?:load|loads|dump)\b")
VALIDATORS = (r"^\s*(?:import|from)\s+(pandera|great_expectations|pydantic|deepchecks|tensorflow_data_validation|"
              r"evidently|frictionless|pandas_schema|cerberus|jsonschema)\b")
TRACKERS = r"^\s*(?:import|from)\s+(mlflow|dvclive|wandb|neptune|comet_ml|clearml|aim|tensorboardX)\b"
# `secure-ml gates [PATH] [GATE ...]` runs these tools (scripts/security/gates.py of the template).
GATE_TOOLS = {"bandit": "bandit", "secrets": "detect-secrets", "audit": "pip-audit",
              "models": "picklescan fickling", "sbom": "cyclonedx", "ci": "zizmor"}
MANIFEST = ".secure-ml/manifest.yaml"
# A call of the gates: the command, or the runner `secure-ml retrofit` puts in the repository.
GATE_CALL = r"(?:\bsecure-ml\s+gates\b|(?<![\w.-])\.secure-ml/run\b)"
PERMISSIONS = r"^permissions\s*:"
SHA = re.compile(r"@[0-9a-f]{40}$")


@dataclass
class Row:
    id: str
    control: str
    status: str
    evidence: str
    where: list[str] = field(default_factory=list)  # file:line of each piece of evidence


class Repo:
    """Lazy, read-only views of the files of one repository."""

    def __init__(self, root: Path):
        self.root = root
        self._files: list[Path] | None = None
        self._texts: dict[Path, str] = {}
        self.added, self.appended = read_manifest(root)

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
                        if entry.name not in SKIP_DIRS and not entry.name.endswith(".egg-info") \
                                and not (entry / "pyvenv.cfg").is_file():
                            stack.append(entry)
                    elif entry.is_file():
                        found.append(entry)
            self._files = sorted(found)
        return self._files

    @property
    def own_files(self) -> list[Path]:
        """The repository's own files: not the ones `secure-ml retrofit` added (its manifest)."""
        return [p for p in self.files if self.rel(p) not in self.added]

    def is_stub(self, path: Path) -> bool:
        """A file retrofit added that nobody has changed since."""
        rel = self.rel(path)
        if rel not in self.added:
            return False
        try:
            return hashlib.sha256(path.read_bytes()).hexdigest() == self.added[rel]
        except OSError:
            return True

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
        for path in self.own_files:
            if path.suffix not in (".py", ".ipynb"):
                continue
            if not with_tests and is_test_path(self.rel(path)):
                continue
            out.append(path)
        return out

    def grep(self, pattern: str, files: list[Path], flags=re.MULTILINE, every: bool = False) -> list[tuple[str, str]]:
        """(path:line, matched text) for each file with a match: the first match, or every one."""
        regex = re.compile(pattern, flags)
        hits = []
        for path in files:
            text = self.text(path)
            for match in regex.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                hits.append((f"{self.rel(path)}:{line}", match.group(0).strip()))
                if not every:
                    break
        return hits

    def yaml(self, path: Path):
        try:
            return yaml.safe_load(self.text(path))
        except yaml.YAMLError:
            return None


def read_manifest(root: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(added file -> sha256, appended file -> lines) from the manifest `secure-ml retrofit` writes."""
    try:
        data = yaml.safe_load((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return {}, {}
    added = data.get("added") if isinstance(data, dict) else None
    appended = data.get("appended") if isinstance(data, dict) else None
    return ({str(k): str(v) for k, v in added.items()} if isinstance(added, dict) else {},
            {str(k): [str(x) for x in v] for k, v in appended.items() if isinstance(v, list)}
            if isinstance(appended, dict) else {})


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


def gate_expansion(text: str) -> str:
    """`secure-ml gates . bandit` (or `sh .secure-ml/run bandit`) runs bandit: name the tools each call runs."""
    out = []
    for match in re.finditer(GATE_CALL + r"([^\n;&|#]*)", text):
        words = [w for w in match.group(1).split() if w in GATE_TOOLS]
        out += [GATE_TOOLS[w] for w in (words or list(GATE_TOOLS))]
    return text + ("\n" + " ".join(out) if out else "")


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


def line_of(repo: Repo, path: Path, pattern: str) -> str:
    """path:line of the first line matching pattern (line 1 when none does)."""
    regex = re.compile(pattern)
    for number, line in enumerate(repo.text(path).splitlines(), 1):
        if regex.search(line) and not line.lstrip().startswith("#"):
            return f"{repo.rel(path)}:{number}"
    return f"{repo.rel(path)}:1"


def ci_files(repo: Repo) -> list[Path]:
    workflows = repo.root / ".github" / "workflows"
    found = sorted(p for p in workflows.glob("*.y*ml") if p.is_file()) if workflows.is_dir() else []
    gitlab = repo.root / ".gitlab-ci.yml"
    if gitlab.is_file():
        found.append(gitlab)
        data = repo.yaml(gitlab)
        include = data.get("include") if isinstance(data, dict) else None
        for item in include if isinstance(include, list) else [include] if include else []:
            local = item if isinstance(item, str) else item.get("local") if isinstance(item, dict) else None
            if isinstance(local, str) and "*" not in local and ".." not in local:
                path = repo.root / local.lstrip("/")
                if path.is_file() and path not in found:
                    found.append(path)
    return found


def ci_commands(repo: Repo, path: Path) -> str:
    """The commands a CI file runs: GitHub steps' `run` and `uses` (with their inputs),
    GitLab `script` / `before_script` / `after_script`. Names and comments do not count."""
    data = repo.yaml(path)
    if not isinstance(data, dict):
        return strip_comments(repo.text(path))
    out: list[str] = []
    if ".github" not in repo.rel(path).split("/"):
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
    return gate_expansion("\n".join(str(line) for line in out))


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
    return gate_expansion(expand(repo, "\n".join(parts), scripts=False))


def check_dvc(repo: Repo) -> Row:
    title = "Pipeline versioned with DVC"
    pipelines = [p for p in repo.own_files if p.name == "dvc.yaml"]
    stages, where = [], []
    for path in pipelines:
        data = repo.yaml(path)
        found = data.get("stages") if isinstance(data, dict) else None
        if isinstance(found, dict) and found:
            stages += list(found)
            where.append(line_of(repo, path, r"^stages\s*:"))
    if stages:
        return Row("dvc-pipeline", title, PRESENT, f"{', '.join(where)}: {len(stages)} stages ({', '.join(stages[:6])})", where)
    tracked = [p for p in repo.own_files if p.suffix == ".dvc"]
    if pipelines:
        return Row("dvc-pipeline", title, PARTIAL, f"{repo.rel(pipelines[0])}:1 has no stages", [f"{repo.rel(pipelines[0])}:1"])
    if tracked:
        where = [f"{repo.rel(p)}:1" for p in tracked[:3]]
        return Row("dvc-pipeline", title, PARTIAL, f"data versioned with DVC ({', '.join(where)}) but no dvc.yaml pipeline", where)
    if (repo.root / ".dvc" / "config").is_file():
        return Row("dvc-pipeline", title, PARTIAL, "DVC is initialised (.dvc/config:1) but there is no dvc.yaml pipeline",
                   [".dvc/config:1"])
    return Row("dvc-pipeline", title, MISSING, "no dvc.yaml with stages and no .dvc file")


def dependency_files(repo: Repo) -> list[Path]:
    """The repository's own dependency declarations (not the ones retrofit added)."""
    names = ("pyproject.toml", "setup.py", "setup.cfg", "environment.yml", "environment.yaml", "conda.yaml",
             "conda.yml", "Pipfile", "Pipfile.lock", "uv.lock", "poetry.lock", "pdm.lock", "conda-lock.yml")
    return [p for p in repo.own_files if p.relative_to(repo.root).parts[0] not in SKIP_DIRS and (
        (p.parent == repo.root and p.name in names)
        or (p.name.startswith("requirements") and p.suffix in (".txt", ".in"))
        or (p.parent.name == "requirements" and p.suffix in (".txt", ".in")))]


def check_tracking(repo: Repo) -> Row:
    title = "Experiment tracking (MLflow, DVCLive, W&B...)"
    hits = repo.grep(TRACKERS, repo.code_files())
    if hits:
        tools = sorted({re.split(r"[\s.]", t)[1] for _, t in hits})
        return Row("experiment-tracking", title, PRESENT, f"{', '.join(tools)} used in {listing(hits)}", [w for w, _ in hits])
    deps = repo.grep(r"^\s*[\"'-]?\s*(mlflow|dvclive|wandb)\b", dependency_files(repo))
    projects = [f"{repo.rel(p)}:1" for p in repo.own_files if p.name == "MLproject"]
    if deps or projects:
        where = [w for w, _ in deps] + projects
        return Row("experiment-tracking", title, PARTIAL,
                   f"a tracker is declared ({', '.join(where[:3])}) but no code imports one", where)
    return Row("experiment-tracking", title, MISSING, "no code imports mlflow, dvclive, wandb or similar")


def check_tests(repo: Repo) -> Row:
    title = "Tests (pytest)"
    tests = [p for p in repo.own_files if p.suffix == ".py" and (p.name.startswith("test_") or p.name.endswith("_test.py"))]
    if tests:
        where = [f"{repo.rel(p)}:1" for p in tests]
        return Row("tests", title, PRESENT, f"{len(tests)} test files ({listing([(w, '') for w in where])})", where[:10])
    return Row("tests", title, MISSING, "no test_*.py files of the repository's own")


def _cite(repo: Repo, files: list[Path], pattern: str) -> list[str]:
    out = []
    for path in files:
        where = line_of(repo, path, pattern + "|" + GATE_CALL)
        out.append(where)
    return out


def check_scanner(repo: Repo, ident: str, title: str, pattern: str, hooks: str, ci: dict[Path, str]) -> Row:
    in_hooks = bool(re.search(pattern, hooks))
    ci_hits = [path for path, text in ci.items() if re.search(pattern, text)]
    where = (_cite(repo, [repo.root / ".pre-commit-config.yaml"], pattern) if in_hooks else []) + _cite(repo, ci_hits, pattern)
    found, missing = [], []
    if in_hooks:
        found.append(f"pre-commit hook ({where[0]})")
    if ci_hits:
        found.append(f"CI ({', '.join(where[1 if in_hooks else 0:])})")
    if not in_hooks:
        missing.append("not in .pre-commit-config.yaml")
    if not ci_hits:
        missing.append("not run by CI" if ci else "no CI configuration")
    status = PRESENT if in_hooks and ci_hits else PARTIAL if (in_hooks or ci_hits) else MISSING
    evidence = "; ".join(([("runs in " + " and ".join(found))] if found else []) + missing)
    return Row(ident, title, status, evidence, where)


def check_ci_hardening(repo: Repo) -> Row:
    title = "Hardened CI (GitHub Actions / GitLab)"
    workflows = [p for p in ci_files(repo) if ".github" in repo.rel(p).split("/")]
    gitlab = [p for p in ci_files(repo) if p not in workflows]
    if not workflows:
        if gitlab:
            images, loose = [], []
            for path in gitlab:
                data = repo.yaml(path)

                def walk(node, path=path):
                    if isinstance(node, dict):
                        for key, value in node.items():
                            if key == "image":
                                name = str(value.get("name") if isinstance(value, dict) else value)
                                images.append(name)
                                if "@sha256:" not in name:
                                    loose.append(line_of(repo, path, re.escape(name)) + f" {name}")
                            else:
                                walk(value)
                    elif isinstance(node, list):
                        for item in node:
                            walk(item)

                walk(data)
            where = [w.split()[0] for w in loose] or [f"{repo.rel(p)}:1" for p in gitlab]
            if images and not loose:
                return Row("ci-hardened", title, PRESENT, f"{', '.join(where)}: {len(images)} images pinned by digest", where)
            return Row("ci-hardened", title, PARTIAL,
                       (f"images not pinned by digest: {', '.join(loose[:3])}" if loose else f"{where[0]}: no pinned image"), where)
        return Row("ci-hardened", title, MISSING, "no CI workflows")
    problems: list[str] = []
    where: list[str] = []
    good = 0
    for path in workflows:
        name = repo.rel(path)
        data = repo.yaml(path)
        if not isinstance(data, dict):
            problems.append(f"{name}:1: not valid YAML")
            continue
        perms = data.get("permissions", "<absent>")
        if perms == {} or perms == "read-all" or (
                isinstance(perms, dict) and all(v in ("read", "none") for v in perms.values())):
            good += 1
            where.append(line_of(repo, path, PERMISSIONS))
        else:
            problems.append(line_of(repo, path, PERMISSIONS) + ": top-level permissions not read-only")
        unpinned, persisting = [], []
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
                            persisting.append(step["uses"])
            unpinned += [u for u in uses if not u.startswith(("./", "docker://")) and not SHA.search(u)]
        if unpinned:
            first = sorted(set(unpinned))
            problems.append(f"{line_of(repo, path, re.escape(first[0]))}: actions not pinned by SHA ({', '.join(first[:3])})")
        else:
            good += 1
        if persisting:
            problems.append(f"{line_of(repo, path, re.escape(persisting[0]))}: checkout without persist-credentials: false")
        else:
            good += 1
    if not problems:
        return Row("ci-hardened", title, PRESENT,
                   f"{len(workflows)} workflow(s): read-only permissions ({', '.join(where[:3])}), actions pinned by SHA, "
                   "credentials not persisted", where)
    cited = [p.split(": ")[0] for p in problems]
    return Row("ci-hardened", title, PARTIAL if good else MISSING, "; ".join(problems[:4]), cited)


def check_lock(repo: Repo) -> Row:
    title = "The repository's own dependencies locked with hashes"
    deps = dependency_files(repo)
    locks = [p for p in deps if p.name in ("uv.lock", "poetry.lock", "Pipfile.lock", "pdm.lock", "conda-lock.yml")]
    hashed_locks = repo.grep(r"sha256[:=\"]", locks)
    requirements = [p for p in deps if p.suffix in (".txt",)]
    hashed = repo.grep(r"--hash[= ]sha256:[0-9a-f]{64}", requirements)
    if hashed_locks or hashed:
        where = [w for w, _ in hashed_locks + hashed]
        return Row("lock-hashes", title, PRESENT, f"hash-pinned: {listing(hashed_locks + hashed)}", where)
    pinned = repo.grep(r"^\s*-?\s*[A-Za-z0-9_.\[\]-]+\s*==\s*[0-9]\S*", deps)
    if pinned:
        return Row("lock-hashes", title, PARTIAL, f"pinned without hashes: {listing(pinned)}", [w for w, _ in pinned])
    if deps:
        where = [f"{repo.rel(p)}:1" for p in deps]
        return Row("lock-hashes", title, MISSING, f"dependencies not pinned: {', '.join(where[:3])}", where)
    return Row("lock-hashes", title, MISSING, "no dependency file of the repository's own")


def check_model_format(repo: Repo) -> Row:
    title = "Safe model format (skops / safetensors / ONNX)"
    safe = repo.grep(SAFE_FORMATS, repo.code_files())
    unsafe = repo.grep(UNSAFE_CALLS, repo.code_files(with_tests=False), every=True)
    unsafe_text = "; ".join(f"{where}: {text}" for where, text in unsafe[:3]) + (
        f" (+{len(unsafe) - 3} more)" if len(unsafe) > 3 else "")
    where = [w for w, _ in safe] + [w for w, _ in unsafe]
    if safe and not unsafe:
        return Row("safe-model-format", title, PRESENT, f"{listing(safe)}; no pickle-based save or load outside tests", where)
    if safe:
        return Row("safe-model-format", title, PARTIAL, f"safe format in {listing(safe)}, but also {unsafe_text}", where)
    if unsafe:
        return Row("safe-model-format", title, MISSING, f"pickle-based save/load: {unsafe_text}", where)
    return Row("safe-model-format", title, MISSING, "no skops, safetensors or ONNX use found")


def check_data_validation(repo: Repo) -> Row:
    title = "Data validation (pandera, great_expectations, pydantic...)"
    hits = repo.grep(VALIDATORS, repo.code_files())
    if hits:
        tools = sorted({re.split(r"[\s.]", t)[1] for _, t in hits})
        return Row("data-validation", title, PRESENT, f"{', '.join(tools)} used in {listing(hits)}", [w for w, _ in hits])
    return Row("data-validation", title, MISSING, "no pandera, great_expectations, pydantic or similar in the code or tests")


def check_docs(repo: Repo) -> Row:
    title = "Docs (threat model, model card, data card)"
    docs = [p for p in repo.files if p.suffix.lower() in (".md", ".rst", ".txt", ".ipynb", ".html")
            and not is_test_path(repo.rel(p))]

    def find(pattern: str) -> tuple[str | None, bool]:
        regex = re.compile(pattern, re.IGNORECASE)
        hits = [p for p in docs if regex.search(p.stem)]
        own = [p for p in hits if not repo.is_stub(p)]
        if own:
            return f"{repo.rel(own[0])}:1", True
        return (f"{repo.rel(hits[0])}:1", False) if hits else (None, False)

    found = {name: find(pattern) for name, pattern in (("threat model", r"threat[-_ ]?model"),
                                                        ("model card", r"model[-_ ]?card"),
                                                        ("data card", r"data[-_ ]?(card|sheet)"))}
    where = [w for w, _ in found.values() if w]
    filled = [f"{name} ({w})" for name, (w, own) in found.items() if own]
    stubs = [f"{name} ({w}, the stub retrofit added: fill it in)" for name, (w, own) in found.items() if w and not own]
    missing = [name for name, (w, _) in found.items() if not w]
    if len(filled) == len(found):
        return Row("docs", title, PRESENT, ", ".join(filled), where)
    parts = ([f"found {', '.join(filled)}"] if filled else []) + stubs + ([f"missing {', '.join(missing)}"] if missing else [])
    return Row("docs", title, PARTIAL if where else MISSING, "; ".join(parts), where)


def check_file(repo: Repo, ident: str, title: str, pattern: str, where=("", ".github/", "docs/"), name="") -> Row:
    regex = re.compile(pattern, re.IGNORECASE)
    stub = None
    for folder in where:
        base = repo.root / folder
        for path in sorted(base.iterdir()) if base.is_dir() else []:
            if path.is_file() and regex.match(path.name) and path.stat().st_size > 0:
                if repo.is_stub(path):
                    stub = stub or path
                    continue
                return Row(ident, title, PRESENT, f"{repo.rel(path)}:1", [f"{repo.rel(path)}:1"])
    if stub is not None:
        return Row(ident, title, PARTIAL, f"{repo.rel(stub)}:1 is the stub retrofit added: fill it in", [f"{repo.rel(stub)}:1"])
    return Row(ident, title, MISSING, f"no {name} file" + (f" (searched {', '.join(w or './' for w in where)})"))


def check_registry(repo: Repo) -> Row:
    title = "Controls registry"
    for rel in ("controls.yaml", ".secure-ml/controls.yaml"):
        path = repo.root / rel
        if not path.is_file():
            continue
        data = repo.yaml(path)
        controls = data.get("controls") if isinstance(data, dict) else None
        if isinstance(controls, list) and controls and all(isinstance(c, dict) and c.get("id") for c in controls):
            todo = sum(1 for c in controls if c.get("status") in ("to do", "partial"))
            cited = line_of(repo, path, r"^controls\s*:")
            return Row("controls-registry", title, PRESENT, f"{cited}: {len(controls)} controls"
                       + (f", {todo} with work to do" if todo else ""), [cited])
        return Row("controls-registry", title, PARTIAL, f"{rel}:1 has no list of controls with ids", [f"{rel}:1"])
    return Row("controls-registry", title, MISSING, "no controls.yaml or .secure-ml/controls.yaml")


def audit(root: Path) -> list[Row]:
    repo = Repo(root)
    try:
        hooks = precommit_text(repo)
    except Exception:  # an unreadable config counts as no hooks  # noqa: BLE001
        hooks = ""
    ci = {}
    for path in ci_files(repo):
        text = expand(repo, _safe(ci_commands, repo, path))
        if re.search(r"\bpre-commit(?:\s+-\S+)*\s+run\b", text):
            text += "\n" + hooks  # CI runs the pre-commit hooks
        ci[path] = text
    checks = [
        ("dvc-pipeline", "Pipeline versioned with DVC", lambda: check_dvc(repo)),
        ("experiment-tracking", "Experiment tracking (MLflow, DVCLive, W&B...)", lambda: check_tracking(repo)),
        ("tests", "Tests (pytest)", lambda: check_tests(repo)),
    ]
    checks += [(i, t, (lambda i=i, t=t, pat=pat: check_scanner(repo, i, t, pat, hooks, ci)))
               for i, t, pat in SCANNERS]
    checks += [
        ("ci-hardened", "Hardened CI (GitHub Actions / GitLab)", lambda: check_ci_hardening(repo)),
        ("lock-hashes", "The repository's own dependencies locked with hashes", lambda: check_lock(repo)),
        ("safe-model-format", "Safe model format (skops / safetensors / ONNX)", lambda: check_model_format(repo)),
        ("data-validation", "Data validation (pandera, great_expectations, pydantic...)", lambda: check_data_validation(repo)),
        ("docs", "Docs (threat model, model card, data card)", lambda: check_docs(repo)),
        ("security-policy", "Security policy (SECURITY.md)", lambda: check_file(
            repo, "security-policy", "Security policy (SECURITY.md)", r"^SECURITY(\.(md|rst|txt|adoc))?$", name="SECURITY.md")),
        ("license", "License", lambda: check_file(
            repo, "license", "License", r"^(LICEN[CS]E|COPYING)(\.\w+)?$", where=("",), name="LICENSE")),
        ("controls-registry", "Controls registry", lambda: check_registry(repo)),
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

"""Add the security program to an existing repository, keeping every byte it has and its behaviour.

1. plan what to add (gates hooks, a CI job of its own name, a secrets baseline, SECURITY.md and
   docs stubs when absent, a controls registry) and what to append (.gitignore lines,
   .pre-commit-config.yaml hooks, a GitLab `include:`);
2. with --with-pipeline DIR, also the template's pipeline, rendered with cookiecutter, as a
   sub-project in DIR;
3. check the invariants on scratch copies, before writing: a change that would break one
   becomes a proposal (printed, not written) with the reason;
4. write (unless --dry-run), and record what was added in .secure-ml/manifest.json so that
   `check` never counts retrofit's own files as the repository's evidence.

Nothing read from the repository is rendered as a template, given to a shell, or imported.
"""

from __future__ import annotations

import hashlib
import json
import keyword
import os
import re
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from secure_ml_template import check, invariants, merge, program
from secure_ml_template.template import Refusal, UsageError, render

# Names a package of the template's pipeline must not take (the template's own dependencies).
DEPENDENCIES = {
    "art", "dvc", "mlflow", "numpy", "pandas", "pandera", "sklearn", "scipy", "skops", "model_signing",
    "starlette", "uvicorn", "limits", "pytest", "setuptools", "yaml", "joblib", "torch", "tensorflow",
}
SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}$")
SECURITY_NAMES = re.compile(r"^security(\.(md|rst|txt|adoc))?$", re.IGNORECASE)
SPHINX = ("docs/conf.py", "doc/conf.py", "docs/source/conf.py")
PIPELINE_GUARD = '''"""Keeps this sub-project's tests out of the enclosing repository's pytest run (added by
secure-ml retrofit): they run only from here (cd into this folder, then `make test`)."""

from pathlib import Path

HERE = Path(__file__).resolve().parent


def pytest_ignore_collect(collection_path, config):
    if Path(str(config.rootpath)).resolve() != HERE:
        return True
    return None
'''


# ---------------------------------------------------------------- names (refused, never rewritten)


def validate_package(name: str) -> str:
    why = None
    if not name.isascii() or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        why = ("starts with a digit" if name[:1].isdigit() else
               "is not a Python identifier (letters, digits, underscores)")
    elif keyword.iskeyword(name) or keyword.issoftkeyword(name):
        why = "is a Python keyword"
    elif name in sys.stdlib_module_names or name == "test":
        why = "shadows a standard-library module"
    elif name in DEPENDENCIES:
        why = "shadows a dependency"
    elif name != name.lower() or len(name) > 64:
        why = "must be lowercase and at most 64 characters"
    if why:
        raise UsageError(f"--package={name!r} {why}; pass a lowercase identifier such as 'ml_pipeline'")
    return name


def validate_name(name: str) -> str:
    if not SAFE_NAME.match(name):
        raise UsageError(f"--name={name!r}: use letters, digits, spaces, '.', '_' and '-' (at most 64)")
    return name


def validate_email(email: str) -> str:
    if not EMAIL.match(email):
        raise UsageError(f"--author-email={email!r} is not an e-mail address (name@example.org)")
    return email


def validate_dir(root: Path, value: str) -> str:
    parts = Path(value).parts
    if not parts or Path(value).is_absolute() or any(not SAFE_PART.match(p) for p in parts):
        raise UsageError(f"--with-pipeline={value!r}: give a new folder inside the repository, "
                         "as a relative path of letters, digits, '_' and '-' (e.g. 'ml-pipeline')")
    target = root / value
    if os.path.lexists(target) and (not target.is_dir() or target.is_symlink() or any(target.iterdir())):
        raise UsageError(f"--with-pipeline={value!r}: {value} already exists; choose a new folder")
    return Path(value).as_posix()


def validate_root(path: str) -> Path:
    root = Path(path)
    if not root.exists():
        raise UsageError(f"{path}: no such folder; pass the path of the repository")
    if not root.is_dir():
        raise UsageError(f"{path}: not a folder; pass the path of the repository, not a file in it")
    return root.resolve()


def uncommitted(root: Path) -> list[str] | None:
    """The uncommitted paths under root, or None when root is not inside a git work tree."""
    if invariants.tracked(root) is None:
        return None
    done = invariants.git(["status", "--porcelain", "--untracked-files=all", "--", "."], root)
    return [line[3:] for line in done.stdout.splitlines() if line.strip()]


# ---------------------------------------------------------------- the plan


@dataclass
class Plan:
    answers: dict
    add: dict[str, bytes] = field(default_factory=dict)
    merge: dict[str, tuple[str, str, list[str]]] = field(default_factory=dict)  # rel -> (description, text, new lines)
    propose: list[tuple[str, str, list[str]]] = field(default_factory=list)      # (rel, why, lines to add by hand)
    skip: list[tuple[str, str]] = field(default_factory=list)                    # (rel, why)
    checks: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.add or self.merge)

    def lines(self) -> list[str]:
        out = ["answers: " + ", ".join(f"{k}={v}" for k, v in self.answers.items())]
        if self.empty:
            out.append("nothing to do: the repository already has everything retrofit adds")
        out += [f"  add      {shown(p)}" for p in self.add]
        for rel, (description, _, added) in self.merge.items():
            out.append(f"  merge    {shown(rel)}: {description}")
            out += [f"             + {shown(line)}" for line in added]
        for rel, why, lines in self.propose:
            out.append(f"  propose  {shown(rel)}: not changed, {why}; add by hand:" if lines
                       else f"  propose  {shown(rel)}: {why}")
            out += [f"             + {shown(line)}" for line in lines]
        out += [f"  skip     {shown(p)}: {why}" for p, why in self.skip]
        if self.checks:
            out.append("invariants (checked before writing):")
            out += [f"  {line}" for line in self.checks]
        out += [f"to do: {line}" for line in self.todo]
        return out


def shown(text: str) -> str:
    """A path or line for the terminal: control characters made visible."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", str(text))


def _has(all_files: list[str], pattern: str) -> str | None:
    regex = re.compile(pattern, re.IGNORECASE)
    return next((p for p in all_files if regex.search(p)), None)


def _mode_ok(root: Path, rel: str) -> str | None:
    """Why rel cannot be created or changed, or None."""
    target = root / rel
    parents = [p for p in target.parents if root in p.parents or p == root]
    for parent in parents:
        if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
            return "a file or a link stands where its folder would go (nothing is written outside the repository)"
    if os.path.lexists(target) and target.is_symlink():
        return "it is a link (nothing is written through a link)"
    if os.path.lexists(target) and invariants.read_only(target):
        return f"it is read-only (mode {stat.filemode(target.stat().st_mode)}): the mode is respected"
    existing = next(p for p in [target, *parents] if p.exists())
    if existing != target and invariants.read_only(existing):
        return f"{existing.relative_to(root).as_posix() or '.'}/ is read-only: the mode is respected"
    return None


def build(root: Path, options: dict) -> Plan:
    answers = {"ci": options["ci"]}
    if options.get("with_pipeline"):
        answers.update(pipeline=options["with_pipeline"], package=options["package"], name=options["name"])
    plan = Plan(answers)
    all_files = invariants.files(root)
    tracked = invariants.tracked(root)
    rows = check.audit(root)
    candidates: dict[str, bytes] = {}
    merges: dict[str, tuple[str, str, list[str]]] = {}
    gained: dict[str, str] = {}

    # Hooks: merged into the repository's config, or a config of their own.
    config = root / ".pre-commit-config.yaml"
    if not os.path.lexists(config):
        candidates[".pre-commit-config.yaml"] = merge.precommit_config(program.HOOKS).encode()
    elif config.is_file() and not config.is_symlink():
        old = _text(config)
        try:
            if old is None:
                raise merge.MergeError("it is not UTF-8 text")
            result = merge.precommit(old, program.HOOKS, program.HOOK_TOOLS)
        except merge.MergeError as exc:
            wanted = [h for h in program.HOOKS if not merge.runs_tool(program.HOOK_TOOLS[h["id"]], _safe_yaml(old or ""))]
            plan.propose.append((".pre-commit-config.yaml", str(exc), merge._entry(wanted, 2, 2)))
            result = None
        if result:
            text, description = result
            merges[".pre-commit-config.yaml"] = (description, text, _new_lines(old, text))
    if not (root / ".secrets.baseline").exists():
        candidates[".secrets.baseline"] = program.secrets_baseline()

    # The gates themselves, self-contained in .secure-ml/ (the hooks and the CI job call its runner).
    for rel, data in program.gates_files().items():
        if not os.path.lexists(root / rel):
            candidates[rel] = data

    # CI: a job of its own name.
    if options["ci"] == "github":
        if not os.path.lexists(root / program.WORKFLOW):
            candidates[program.WORKFLOW] = program.workflow()
        gained["ci"] = program.WORKFLOW
    elif options["ci"] == "gitlab":
        gitlab = root / ".gitlab-ci.yml"
        data = _safe_yaml(_text(gitlab) or "") if gitlab.is_file() else None
        stages = data.get("stages") if isinstance(data, dict) and isinstance(data.get("stages"), list) else None
        if not os.path.lexists(root / program.GITLAB_JOB):
            candidates[program.GITLAB_JOB] = program.gitlab_job(stages)
        include = ["include:", f"  - local: {json.dumps(program.GITLAB_JOB)}"]
        if not gitlab.is_file():
            candidates[".gitlab-ci.yml"] = ("\n".join([f"{merge.MARK}: the security gates job.", *include]) + "\n").encode()
        else:
            old = _text(gitlab)
            try:
                if old is None:
                    raise merge.MergeError("it is not UTF-8 text")
                result = merge.gitlab_include(old, program.GITLAB_JOB)
            except merge.MergeError as exc:
                plan.propose.append((".gitlab-ci.yml", str(exc), include))
                result = None
            if result:
                merges[".gitlab-ci.yml"] = (result[1], result[0], _new_lines(old, result[0]))

    # Policy and docs stubs, only when the repository has none.
    if not any(SECURITY_NAMES.match(Path(p).name) and p.count("/") <= 1 for p in all_files):
        candidates["SECURITY.md"] = program.stub("SECURITY.md", options.get("author_email"))
    docs = "security-docs" if any(p in all_files for p in SPHINX) else "docs"
    for stem, pattern in (("threat-model", r"threat[-_ ]?model"), ("model-card", r"model[-_ ]?card"),
                          ("data-card", r"data[-_ ]?(card|sheet)")):
        if not _has([p for p in all_files if p.lower().endswith((".md", ".rst", ".txt", ".ipynb"))],
                    rf"(^|/)[^/]*{pattern}[^/]*$"):
            candidates[f"{docs}/{stem}.md"] = program.stub(f"docs/{stem}.md")
    if docs != "docs":
        plan.checks.append(f"ok  docs stubs go to {docs}/: docs/ is a Sphinx project, whose build they must not change")

    # .gitignore: security lines only, each checked.
    gitignore = root / ".gitignore"
    old_ignore = _text(gitignore) if gitignore.is_file() else ""
    wanted = merge.gitignore_missing(old_ignore, program.IGNORE_LINES) if old_ignore is not None else []
    if old_ignore is None:
        plan.propose.append((".gitignore", "it is not UTF-8 text", program.IGNORE_LINES))
        old_ignore = ""

    # The pipeline sub-project, only when asked.
    pipeline_files: dict[str, bytes] = {}
    if options.get("with_pipeline"):
        pipeline_files = _pipeline(root, options, plan)

    # ---- invariants, before anything is written
    # 1. nothing outside the repository, modes respected
    for rel in list(candidates) + list(pipeline_files):
        why = _mode_ok(root, rel)
        if why:
            plan.skip.append((rel, why))
            candidates.pop(rel, None)
            pipeline_files.pop(rel, None)
    for rel in list(merges):
        why = _mode_ok(root, rel)
        if why:
            plan.propose.append((rel, why, merges.pop(rel)[2]))
    if wanted:
        why = _mode_ok(root, ".gitignore")
        if why:
            plan.propose.append((".gitignore", why, wanted))
            wanted = []
    plan.checks.append("ok  nothing is written outside the repository, through a link, or into a read-only file")

    # 2. no tracked file, no .dvc file, nothing retrofit adds becomes ignored
    must_stay = sorted(set((all_files if tracked is None else tracked) + invariants.probes(root, all_files)))
    before = invariants.ignored(root, must_stay)
    wanted, dropped = filter_ignore_lines(root, old_ignore, wanted, must_stay, before)
    for line, path in dropped:
        plan.propose.append((".gitignore", f"line {line!r} would make {'tracked ' if path in (tracked or []) else ''}"
                             f"{path} ignored; not appended", []))
    new_ignore = merge.gitignore(old_ignore, wanted)[0] if wanted else None
    if new_ignore is not None:
        if gitignore.is_file():
            merges[".gitignore"] = (f"append {len(wanted)} ignore line(s)", new_ignore, _new_lines(old_ignore, new_ignore))
        else:
            candidates[".gitignore"] = new_ignore.encode()
    final_ignore = {".gitignore": new_ignore} if new_ignore is not None else {}
    added_paths = sorted(set(candidates) | set(pipeline_files) | {program.MANIFEST, program.REGISTRY})
    hidden = invariants.ignored(root, added_paths, final_ignore)
    program_files = [rel for rel in candidates if rel.startswith(f"{program.STATE}/") and rel != program.REGISTRY]
    if any(rel in hidden for rel in program_files):
        # The runner without its gates script (or the reverse) is of no use: all or nothing.
        hidden.update({rel: ("", 0) for rel in program_files})
    for rel in hidden:
        if rel in candidates or rel in pipeline_files:
            plan.skip.append((rel, "the repository's .gitignore ignores it, so it would never be committed"))
            candidates.pop(rel, None)
            pipeline_files.pop(rel, None)
    plan.checks.append(f"ok  no tracked file and no .dvc file becomes ignored (git check-ignore on a scratch copy, "
                       f"{len(must_stay)} paths{', ' + str(len(dropped)) + ' line(s) left out' if dropped else ''})")

    # 3. no second licence
    licences = invariants.licence_files(root)
    plan.checks.append("ok  no licence file is added" + (f" (the repository has {', '.join(licences)})" if licences else ""))

    # 4. no module or conftest shadowing, the same test ids, the same DVC stages
    if pipeline_files:
        ok, lines = _pipeline_invariants(root, all_files, pipeline_files, options)
        plan.checks += lines
        if not ok:
            plan.propose.append((options["with_pipeline"] + "/", "not written: an invariant would break (above)", []))
            pipeline_files = {}
    else:
        plan.checks.append(f"ok  the repository's test collection cannot change: retrofit adds no conftest or pytest "
                           f"setting, and Python files only in {program.STATE}/ (not an importable name, a dot "
                           "folder pytest does not enter)")
    dvc_present = (root / ".dvc").is_dir() or any(Path(p).name == "dvc.yaml" or p.endswith(".dvc") for p in all_files)
    if dvc_present:
        ok, line = _dvc_invariant(root, final_ignore, merges, {**candidates, **pipeline_files}, plan)
        plan.checks.append(line)
        if not ok and pipeline_files:
            plan.propose.append((options["with_pipeline"] + "/", "not written: dvc stage list --all would change", []))
            pipeline_files = {}

    # The registry, from check's audit of the repository's own files (before retrofit).
    for rel in candidates:
        if rel.endswith(("threat-model.md", "model-card.md", "data-card.md")):
            gained["docs"] = ", ".join(sorted(filter(None, [gained.get("docs"), rel])))
        if rel == "SECURITY.md":
            gained["security-policy"] = rel
    if ".pre-commit-config.yaml" in candidates or ".pre-commit-config.yaml" in merges or program.WORKFLOW in candidates:
        hooked = ".pre-commit-config.yaml" + (f", {program.WORKFLOW}" if options["ci"] == "github" else
                                              f", {program.GITLAB_JOB}" if options["ci"] == "gitlab" else "")
        for row_id in ("scan-bandit", "scan-secrets", "scan-pip-audit", "scan-model-files"):
            gained[row_id] = hooked
    if not (root / program.REGISTRY).exists() and not (root / "controls.yaml").exists() and (candidates or merges):
        candidates[program.REGISTRY] = program.registry(rows, gained)
    plan.add = {**candidates, **pipeline_files}
    plan.merge = merges
    return plan


def filter_ignore_lines(root: Path, old: str, wanted: list[str], must_stay: list[str],
                        before: dict | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """The wanted .gitignore lines that make none of `must_stay` newly ignored, and the others with
    the path each would hide. git check-ignore answers, on a scratch copy of the ignore files."""
    before = invariants.ignored(root, must_stay) if before is None else before
    dropped: list[tuple[str, str]] = []
    while wanted:
        text = merge.gitignore(old, wanted)[0]
        after = invariants.ignored(root, must_stay, {".gitignore": text})
        start = len(text.splitlines()) - len(wanted)
        culprits: dict[str, str] = {}
        for path, (source, line) in sorted(after.items()):
            if path not in before and source == ".gitignore" and line > start:
                culprits.setdefault(wanted[line - start - 1], path)
        if not culprits:
            break
        dropped += sorted(culprits.items())
        wanted = [w for w in wanted if w not in culprits]
    return wanted, dropped


def _text(path: Path) -> str | None:
    """The file's text exactly as stored (no newline translation), or None when it is not UTF-8."""
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _safe_yaml(text: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _new_lines(old: str, new: str) -> list[str]:
    old_lines = old.splitlines()
    new_lines = new.splitlines()
    if new_lines[: len(old_lines)] == old_lines:
        return new_lines[len(old_lines):]
    remaining = list(old_lines)
    out = []
    for line in new_lines:
        if remaining and line == remaining[0]:
            remaining.pop(0)
        else:
            out.append(line)
    return out


def _pipeline(root: Path, options: dict, plan: Plan) -> dict[str, bytes]:
    """The template rendered as a self-contained sub-project in DIR (files by path under root)."""
    folder = options["with_pipeline"]
    answers = {"project_name": options["name"], "project_slug": re.sub(r"[^a-z0-9]+", "-", options["name"].lower()).strip("-"),
               "package_name": options["package"], "ci_provider": "none", "tracking": options.get("tracking") or "local"}
    for key in ("python_version", "author_name", "author_email"):
        if options.get(key):
            answers[key] = options[key]
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="secure-ml-retrofit-") as tmp:
        project = render(answers, Path(tmp))
        for path in sorted(project.rglob("*")):
            rel = path.relative_to(project)
            if path.is_file() and not path.is_symlink() and ".git" not in rel.parts and "__pycache__" not in rel.parts:
                out[f"{folder}/{rel.as_posix()}"] = path.read_bytes()
    licence = [rel for rel in out if rel.count("/") == folder.count("/") + 1 and invariants.LICENCE.match(Path(rel).name)]
    for rel in licence:
        out.pop(rel)
        plan.skip.append((rel, "the licence is the repository's own: no second licence is added"))
    out[f"{folder}/conftest.py"] = PIPELINE_GUARD.encode()
    return out


def _pipeline_invariants(root: Path, all_files: list[str], added: dict[str, bytes], options: dict) -> tuple[bool, list[str]]:
    lines, ok = [], True
    folder, package = options["with_pipeline"], options["package"]
    modules = invariants.top_level_modules(root, all_files)
    imported = invariants.imported_names(root, all_files)
    head = folder.split("/")[0]
    clash = sorted({package, head.replace("-", "_")} & (modules | imported))
    if clash:
        ok = False
        lines.append(f"VIOLATED  {', '.join(clash)} is a module the repository has or imports: the sub-project "
                     "would shadow it (choose another --package or --with-pipeline)")
    elif "conftest" in imported:
        ok = False
        lines.append("VIOLATED  the repository imports `conftest` by name: the sub-project's conftest.py could be "
                     "the one it gets; add the pipeline by hand")
    else:
        lines.append(f"ok  no added module or conftest shadows the repository's ({package}, {head}/ are new names)")
    python = invariants.repo_python(root)
    try:
        ids_before, errors_before = invariants.collect(root, {}, python)
        ids_after, errors_after = invariants.collect(root, added, python)
    except (OSError, invariants.subprocess.SubprocessError) as exc:
        return False, [*lines, f"VIOLATED  the repository's test collection could not be compared ({exc}): nothing of the pipeline is written"]
    if (ids_before, errors_before) != (ids_after, errors_after):
        ok = False
        new = sorted(set(ids_after) - set(ids_before))[:3] + sorted(set(errors_after) - set(errors_before))[:3]
        lines.append(f"VIOLATED  the repository's pytest would collect differently ({'; '.join(new) or 'ids lost'})")
    else:
        lines.append(f"ok  the repository's pytest collects the same {len(ids_before)} test ids"
                     f"{f' and {len(errors_before)} collection errors' if errors_before else ''} "
                     f"(pytest --collect-only in a scratch copy, {Path(python).parent.parent.name or python})")
    return ok, lines


def _dvc_invariant(root: Path, ignore: dict, merges: dict, added: dict, plan: Plan) -> tuple[bool, str]:
    """Compare `dvc stage list --all` before and after, on scratch copies of the DVC files.
    A change that would alter it is turned into a proposal (ignore files) or refused (the rest)."""
    changed = {rel: text for rel, (_, text, _) in merges.items()} | {k: v for k, v in ignore.items() if v is not None}
    relevant = bool(changed.keys() & {".gitignore", ".dvcignore"}) or any(
        Path(r).name in ("dvc.yaml", ".dvcignore", ".gitignore", "config") or r.endswith(".dvc") for r in added)
    if not relevant:
        return True, "ok  dvc stage list --all cannot change: retrofit adds no DVC or ignore file"
    try:
        before = invariants.dvc_stages(root, {}, {})
        after = invariants.dvc_stages(root, changed, added)
    except (RuntimeError, OSError, invariants.subprocess.SubprocessError) as exc:
        for rel in [r for r in list(merges) if r in (".gitignore", ".dvcignore")]:
            plan.propose.append((rel, f"dvc stage list --all could not be compared ({exc})", merges.pop(rel)[2]))
        return False, f"VIOLATED  dvc stage list --all could not be compared ({exc}): ignore files left as they are"
    if before != after:
        for rel in [r for r in list(merges) if r in (".gitignore", ".dvcignore")]:
            plan.propose.append((rel, f"dvc stage list --all would change ({len(before)} -> {len(after)} stages)",
                                 merges.pop(rel)[2]))
        return False, f"VIOLATED  dvc stage list --all would change ({len(before)} -> {len(after)} stages)"
    return True, f"ok  dvc stage list --all unchanged ({len(before)} stages, in a scratch copy)"


# ---------------------------------------------------------------- apply


def apply(root: Path, plan: Plan) -> None:
    """Write the plan. New files never replace anything (each is created exclusively); every
    target is checked first, so a refusal leaves nothing half-written."""
    for rel in [*plan.add, *plan.merge]:
        why = _mode_ok(root, rel)
        if why:
            raise Refusal(f"cannot write {rel}: {why}; nothing was changed")
    for rel, (_, text, _) in plan.merge.items():
        if not merge.keeps_lines(_text(root / rel) or "", text) or not _prefix_kept(_text(root / rel) or "", text):
            raise Refusal(f"refusing to write {rel}: the merge would drop a line; nothing was changed")
    for rel, data in plan.add.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as out:  # "x": fails rather than overwrite
            out.write(data)
        if rel.endswith((".sh",)) or rel == program.RUNNER or (data.startswith(b"#!") and "/scripts/" in f"/{rel}"):
            target.chmod(0o755)
    for rel, (_, text, _) in plan.merge.items():
        with open(root / rel, "r+b") as out:  # same file, same mode: rewritten in place
            out.truncate(0)
            out.write(text.encode("utf-8"))
    record(root, plan)


def _prefix_kept(old: str, new: str) -> bool:
    """Every byte of old is in new: old is new with a block inserted."""
    cut = len(os.path.commonprefix([old, new]))
    return len(new) >= len(old) and new.endswith(old[cut:])


def record(root: Path, plan: Plan) -> None:
    """.secure-ml/manifest.yaml: the files retrofit added (with their digest, so `check` can tell a
    stub nobody filled in) and the lines it appended. `check` never counts these as evidence."""
    path = root / program.MANIFEST
    data = check.read_manifest(root)
    added, appended = dict(data[0]), {k: list(v) for k, v in data[1].items()}
    for rel, content in plan.add.items():
        added[rel] = hashlib.sha256(content).hexdigest()
    for rel, (_, _, lines) in plan.merge.items():
        appended.setdefault(rel, []).extend(lines)
    text = ["# Written by secure-ml retrofit: the files it added (SHA-256 when added; `secure-ml check`",
            "# reads an unchanged one as a stub still to fill in) and the lines it appended. `check` never",
            "# counts them as the repository's own evidence of a control.",
            "tool: secure-ml retrofit", "added:"]
    # JSON strings are YAML scalars; the digests are marked for the secret scan.
    text += [f"  {json.dumps(rel)}: {json.dumps(digest)}  # pragma: allowlist secret" for rel, digest in sorted(added.items())]
    text.append("appended:" + ("" if appended else " {}"))
    for rel, lines in sorted(appended.items()):
        text.append(f"  {json.dumps(rel)}:" + ("" if lines else " []"))
        text += [f"    - {json.dumps(line)}" for line in lines]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(text) + "\n", encoding="utf-8")


def infer_ci(root: Path) -> str:
    if (root / ".gitlab-ci.yml").is_file() and not (root / ".github" / "workflows").is_dir():
        return "gitlab"
    return "github"


def default_package(folder: str) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", Path(folder).name.lower()).strip("_")
    return name if name and not name[0].isdigit() else f"pipeline_{name}".strip("_")

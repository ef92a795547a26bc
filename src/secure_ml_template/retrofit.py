"""Add what the template would give an existing repository, without overwriting a byte.

1. infer the answers (name, package, CI) from the repository, overridable by flags;
2. render the template with them into a temporary folder (cookiecutter's API);
3. plan: files to add (absent), files to merge (.gitignore, .pre-commit-config.yaml,
   pyproject.toml: only appended or inserted text), files it will not touch (the template's
   version goes beside them as `<name>.template`, unless identical);
4. apply the plan (unless --dry-run).
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
import subprocess  # nosec B404 - runs git with fixed arguments
import sys
import tempfile
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from secure_ml_template import merge
from secure_ml_template.template import UsageError, render

MERGERS = {".gitignore", ".pre-commit-config.yaml", "pyproject.toml"}
PROPOSAL_SUFFIX = ".template"
# Same rule as the template's pre-generation hook: names that would shadow a dependency.
DEPENDENCIES = {
    "art", "dvc", "mlflow", "numpy", "pandas", "pandera", "sklearn", "scipy",
    "skops", "model_signing", "starlette", "uvicorn", "limits", "pytest", "setuptools",
}
NOT_PACKAGES = {"tests", "test", "docs", "scripts", "notebooks", "data", "build", "dist", "src", "site"}


@dataclass
class Plan:
    answers: dict
    add: list[str] = field(default_factory=list)
    merge: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (description, new text)
    propose: list[tuple[str, str]] = field(default_factory=list)     # (path, proposal path)
    unchanged: list[tuple[str, str]] = field(default_factory=list)   # (path, why)

    @property
    def empty(self) -> bool:
        return not (self.add or self.merge or self.propose)

    def lines(self) -> list[str]:
        out = ["answers: " + ", ".join(f"{k}={v}" for k, v in self.answers.items())]
        if self.empty:
            out.append("nothing to do: the repository already has everything the template adds")
        out += [f"  add      {p}" for p in self.add]
        out += [f"  merge    {p}: {d}" for p, (d, _) in self.merge.items()]
        out += [f"  propose  {p} exists: the template's version goes to {q} (review and merge it by hand)"
                for p, q in self.propose]
        routine = ("identical", "proposal already present", "already has what the template would merge")
        kept = [p for p, why in self.unchanged if why in routine]
        if kept:
            out.append(f"  keep     {len(kept)} existing files left as they are (identical to the template, "
                       "already merged, or their proposal is already there)")
        out += [f"  skip     {p}: {why}" for p, why in self.unchanged if why not in routine]
        return out


# ---------------------------------------------------------------- answers


def ascii_fold(text: str) -> str:
    """'Détection' -> 'Detection': drop accents, then anything that is not ASCII."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).encode("ascii", "ignore").decode()


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_fold(text).lower()).strip("-")
    slug = re.sub(r"-+", "-", slug)[:64].strip("-")
    if not slug or not slug[0].isalpha():
        slug = ("ml-" + slug).strip("-") if slug else "ml-project"
    return slug


def package_from(text: str) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", ascii_fold(text).lower()).strip("_") or "ml_project"
    if name[0].isdigit():
        name = "pkg_" + name
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in sys.stdlib_module_names \
            or name == "test" or name in DEPENDENCIES:
        name += "_project"
    return name


def infer_answers(root: Path, name: str | None, package: str | None, ci: str | None) -> dict:
    project_name = name
    if project_name is None:
        pyproject = root / "pyproject.toml"
        if pyproject.is_file():
            try:
                meta = tomllib.loads(pyproject.read_text(encoding="utf-8"))
                project_name = (meta.get("project", {}).get("name")
                                or meta.get("tool", {}).get("poetry", {}).get("name"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError, AttributeError):
                project_name = None
        project_name = project_name or root.resolve().name
    slug = slugify(str(project_name))
    if package is None:
        found = sorted(p.parent.name for p in root.glob("src/*/__init__.py"))
        if not found:
            found = sorted(p.parent.name for p in root.glob("*/__init__.py")
                           if p.parent.name not in NOT_PACKAGES and not p.parent.name.startswith("."))
        package = found[0] if found else slug
    package = package_from(package)
    if ci is None:
        ci = "gitlab" if (root / ".gitlab-ci.yml").is_file() and not (root / ".github" / "workflows").is_dir() else "github"
    # The template refuses '<', '>', control characters and characters outside the BMP.
    display = re.sub(r"[<>\x00-\x1f\x7f\ud800-\udfff\U00010000-\U0010ffff]", " ", str(project_name))
    display = re.sub(r"\s+", " ", display).strip() or slug
    return {"project_name": display, "project_slug": slug, "package_name": package, "ci_provider": ci}


# ---------------------------------------------------------------- git


def uncommitted(root: Path) -> list[str] | None:
    """The uncommitted paths under root, or None when root is not inside a git work tree."""
    if shutil.which("git") is None:
        return None
    inside = subprocess.run(["git", "-C", str(root), "rev-parse", "--is-inside-work-tree"],  # nosec B603 B607
                            capture_output=True, text=True, check=False)
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return None
    status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=all", "--", "."],  # nosec B603 B607
                            capture_output=True, text=True, check=False)
    return [line[3:] for line in status.stdout.splitlines() if line.strip()]


# ---------------------------------------------------------------- plan and apply


def rendered_files(project: Path) -> list[str]:
    return sorted(p.relative_to(project).as_posix() for p in project.rglob("*")
                  if p.is_file() and ".git" not in p.relative_to(project).parts)


def make_plan(root: Path, rendered: Path, answers: dict) -> Plan:
    plan = Plan(answers)
    configured_elsewhere = frozenset(tool for tool, names in merge.OWN_CONFIG_FILES.items()
                                     if any((root / n).is_file() for n in names))
    for rel in rendered_files(rendered):
        source, target = rendered / rel, root / rel
        parents = [p for p in target.parents if root in p.parents]
        if any(p.is_symlink() or (p.exists() and not p.is_dir()) for p in parents):
            # Never write through a link: it may lead out of the repository.
            plan.unchanged.append((rel, "a file or a link stands where its folder would go"))
            continue
        if not os.path.lexists(target):
            plan.add.append(rel)
            continue
        if target.is_symlink() or not target.is_file():
            plan.unchanged.append((rel, "a folder or a link of that name exists"))
            continue
        new, old = source.read_bytes(), target.read_bytes()
        if new == old:
            plan.unchanged.append((rel, "identical"))
            continue
        if rel in MERGERS or Path(rel).name == ".gitignore":
            try:
                old_text, new_text = old.decode("utf-8"), new.decode("utf-8")
                if Path(rel).name == ".gitignore":
                    result = merge.gitignore(old_text, new_text)
                elif rel == ".pre-commit-config.yaml":
                    result = merge.precommit(old_text, new_text)
                else:
                    result = merge.pyproject(old_text, new_text, configured_elsewhere)
            except (merge.MergeError, UnicodeDecodeError):
                result = False
            if result is None:
                plan.unchanged.append((rel, "already has what the template would merge"))
                continue
            if result:
                text, description = result
                plan.merge[rel] = (description, text)
                continue
        proposal = rel + PROPOSAL_SUFFIX
        existing = root / proposal
        if os.path.lexists(existing):
            plan.unchanged.append((rel, "proposal already present" if existing.is_file() and existing.read_bytes() == new
                                   else f"{proposal} exists and differs: left as it is"))
            continue
        plan.propose.append((rel, proposal))
    return plan


def apply(root: Path, rendered: Path, plan: Plan) -> None:
    """Write the plan. New files never replace anything: each is created exclusively.
    Every target is checked for write access first, so a refusal leaves nothing half-written."""
    for rel in [*plan.add, *(q for _, q in plan.propose), *plan.merge]:
        target = root / rel
        probe = target if rel in plan.merge else next(p for p in target.parents if p.exists())
        if not os.access(probe, os.W_OK):
            raise UsageError(f"cannot write {rel} ({probe} is not writable); nothing was changed")
    for rel, (_, text) in plan.merge.items():
        if not merge.keeps_lines((root / rel).read_text(encoding="utf-8"), text):
            raise UsageError(f"refusing to write {rel}: the merge would drop a line; nothing was changed")
    for rel in plan.add:
        _create(root / rel, rendered / rel)
    for rel, proposal in plan.propose:
        _create(root / proposal, rendered / rel)
    for rel, (_, text) in plan.merge.items():
        (root / rel).write_bytes(text.encode("utf-8"))


def _create(target: Path, source: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb") as out:  # "x": fails rather than overwrite
        out.write(source.read_bytes())
    shutil.copymode(source, target)


def retrofit(root: Path, answers: dict, dry_run: bool = False) -> Plan:
    """Render, plan and (unless dry_run) apply. Returns the plan."""
    with tempfile.TemporaryDirectory(prefix="secure-ml-retrofit-") as tmp:
        rendered = render(answers, Path(tmp))
        plan = make_plan(root, rendered, answers)
        if not dry_run:
            apply(root, rendered, plan)
    return plan


def validate_root(path: str) -> Path:
    root = Path(path)
    if not root.exists():
        raise UsageError(f"{path}: no such folder; pass the path of the repository")
    if not root.is_dir():
        raise UsageError(f"{path}: not a folder; pass the path of the repository, not a file in it")
    return root.resolve()

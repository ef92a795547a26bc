"""Merges that keep every existing byte: each returns the new text (the old text plus an
appended or inserted block) and a description, or None when there is nothing to add.

Every merge is verified by parsing the result; when the result does not parse, or does not
keep what the old file said, the caller writes a `.template` proposal instead.
"""

from __future__ import annotations

import re
import tomllib

import yaml

MARK = "# Added by secure-ml retrofit"
# [tool.*] tables that configure development tools only. Tables that change how the
# package is built (setuptools, hatch, poetry, ...) are never merged, and neither is pytest's:
# testpaths, addopts or --strict-markers would change how the repository's own tests run.
MERGEABLE_TOOLS = ("ruff", "bandit", "coverage", "mypy", "cruft")
# A tool configured in its own file ignores pyproject.toml: do not add a table it would not read.
OWN_CONFIG_FILES = {
    "ruff": ("ruff.toml", ".ruff.toml"),
    "bandit": (".bandit",),
    "coverage": (".coveragerc",),
    "mypy": ("mypy.ini", ".mypy.ini"),
}


class MergeError(Exception):
    """The file cannot be merged safely; propose the template's version beside it."""


def keeps_lines(old: str, new: str) -> bool:
    """Every line of old appears in new, in the same order."""
    remaining = iter(new.splitlines())
    return all(any(line == candidate for candidate in remaining) for line in old.splitlines())


def _joined(old: str, block: str) -> str:
    if old and not old.endswith("\n"):
        old += "\n"
    return old + block


def gitignore(old: str, template: str) -> tuple[str, str] | None:
    """Append the template's ignore lines that the file does not have, in the template's order."""
    have = {line.strip() for line in old.splitlines()}
    missing = [line for line in template.splitlines()
               if line.strip() and not line.lstrip().startswith("#") and line.strip() not in have]
    if not missing:
        return None
    block = ("\n" if old.strip() else "") + MARK + "\n" + "\n".join(missing) + "\n"
    return _joined(old, block), f"append {len(missing)} ignore lines"


def _hooks(data) -> list[tuple[str, dict]]:
    out = []
    if isinstance(data, dict) and isinstance(data.get("repos"), list):
        for entry in data["repos"]:
            if isinstance(entry, dict):
                for hook in entry.get("hooks") or []:
                    if isinstance(hook, dict) and "id" in hook:
                        out.append((entry.get("repo"), hook))
    return out


def precommit(old: str, template: str) -> tuple[str, str] | None:
    """Add the template's local hooks whose id the config does not have, as a new `repo: local`
    entry inserted at the end of the `repos:` list (text, so every existing line stays)."""
    try:
        old_data = yaml.safe_load(old)
    except yaml.YAMLError as exc:
        raise MergeError(f"does not parse as YAML ({exc.__class__.__name__})") from None
    if not isinstance(old_data, dict) or not isinstance(old_data.get("repos"), list):
        raise MergeError("has no `repos:` list")
    have = {hook["id"] for _, hook in _hooks(old_data)}
    # What the existing hooks run: ids, entries and remote repositories.
    existing = " ".join(f"{repo} {hook.get('id')} {hook.get('entry', '')}" for repo, hook in _hooks(old_data))
    template_hooks = {hook["id"]: hook for _, hook in _hooks(yaml.safe_load(template))}
    lines = template.splitlines()
    # Cut the template's local hooks out as text: each starts at `- id:` inside a local repo.
    blocks: list[tuple[str, list[str]]] = []
    in_local = False
    for line in lines:
        repo_line = re.match(r"^(\s*)- repo:\s*(\S+)", line)
        if repo_line:
            in_local = repo_line.group(2) == "local"
            continue
        hook_line = re.match(r"^(\s*)- id:\s*(\S+)", line)
        if in_local and hook_line:
            blocks.append((hook_line.group(2), [line]))
        elif in_local and blocks and (line.startswith(" " * (len(_indent(blocks[-1][1][0])) + 1)) or not line.strip()):
            blocks[-1][1].append(line)
        elif line.strip() and not line.startswith(" "):
            in_local = False
    new = [(hook_id, body) for hook_id, body in blocks
           if hook_id not in have and not _tool_present(template_hooks.get(hook_id, {}), existing)]
    if not new:
        return None
    # Indentation of the existing list: `repos:` items and their hooks.
    old_lines = old.splitlines()
    item = next((re.match(r"^(\s*)- ", line).group(1) for line in old_lines
                 if re.match(r"^\s*- repo:", line)), "  ")
    hook_indent = item + "    "
    text = [f"{item}{MARK}: the template's hooks this config did not have",
            f"{item}- repo: local", f"{item}  hooks:"]
    for _, body in new:
        base = len(_indent(body[0]))
        while body and not body[-1].strip():
            body = body[:-1]
        text += [(hook_indent + line[base:]) if line.strip() else "" for line in body]
    # Insert after the last line of the `repos:` block (the next top-level key ends it).
    start = next(i for i, line in enumerate(old_lines) if re.match(r"^repos\s*:", line))
    end = len(old_lines)
    for i in range(start + 1, len(old_lines)):
        if old_lines[i].strip() and not old_lines[i][0].isspace() and not old_lines[i].startswith(("-", "#")):
            end = i
            break
    while end > start + 1 and not old_lines[end - 1].strip():
        end -= 1
    merged_lines = old_lines[:end] + text + old_lines[end:]
    merged = "\n".join(merged_lines) + ("\n" if old.endswith("\n") or end == len(old_lines) else "")
    # Verify: parses, keeps every old hook in order, has the new ones.
    try:
        merged_data = yaml.safe_load(merged)
    except yaml.YAMLError:
        raise MergeError("the merged config would not parse") from None
    after = _hooks(merged_data)
    before = _hooks(old_data)
    if after[: len(before)] != before or {h["id"] for _, h in after} != have | {i for i, _ in new}:
        raise MergeError("the merged config would not keep the existing hooks as they are")
    if {k: v for k, v in merged_data.items() if k != "repos"} != {k: v for k, v in old_data.items() if k != "repos"}:
        raise MergeError("the merged config would change other settings")
    return merged, "add hooks " + ", ".join(i for i, _ in new)


def _tool_present(hook: dict, existing: str) -> bool:
    """True when an existing hook already runs the tool this template hook runs
    (e.g. a remote `ruff` hook and the template's `ruff-lint`)."""
    words = str(hook.get("entry", "")).split()
    if not words:
        return False
    tool = words[0].rsplit("/", 1)[-1]
    if tool.startswith("python"):
        return False  # a project script: only its id can match
    tool = tool.removesuffix("-hook")
    return re.search(rf"(?<![\w-]){re.escape(tool)}(?![\w])", existing) is not None


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _tool_sections(template: str) -> dict[str, str]:
    """Text of each [tool.X] table and its sub-tables in the template, by X."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in template.splitlines():
        header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$", line)
        if header:
            name = header.group(1)
            parts = name.split(".")
            current = parts[1].strip('"') if parts[0] == "tool" and len(parts) > 1 else None
            if current:
                sections.setdefault(current, [])
        if current:
            sections[current].append(line)
    return {k: "\n".join(v).rstrip() + "\n" for k, v in sections.items()}


def pyproject(old: str, template: str, configured_elsewhere: frozenset = frozenset()) -> tuple[str, str] | None:
    """Append the template's [tool.X] tables for development tools the file does not configure."""
    try:
        old_data = tomllib.loads(old)
    except tomllib.TOMLDecodeError as exc:
        raise MergeError(f"does not parse as TOML ({exc})") from None
    tools = old_data.get("tool", {})
    sections = _tool_sections(template)
    add = [name for name in MERGEABLE_TOOLS if name in sections and name not in tools
           and name not in configured_elsewhere]
    if not add:
        return None
    block = "\n" + MARK + ": development tools this file did not configure.\n"
    block += "\n".join(sections[name] for name in add)
    merged = _joined(old, block)
    try:
        new_data = tomllib.loads(merged)
    except tomllib.TOMLDecodeError:
        raise MergeError("the merged file would not parse") from None
    new_tools = dict(new_data.get("tool", {}))
    for name in add:
        new_tools.pop(name, None)
    if {**new_data, "tool": new_tools} != {**old_data, "tool": old_data.get("tool", {})} and not (
            "tool" not in old_data and not new_tools):
        raise MergeError("the merged file would change existing settings")
    return merged, "append " + ", ".join(f"[tool.{n}]" for n in add)

"""Merges that keep every existing byte: each returns the new text (the old text with a block
appended or inserted) and a description, or None when there is nothing to add.

Every merge is verified by parsing the result with PyYAML: when the result does not parse, or
does not keep what the old file said, MergeError is raised and the caller writes a proposal.
"""

from __future__ import annotations

import json
import re

import yaml

MARK = "# Added by secure-ml retrofit"


class MergeError(Exception):
    """The file cannot be merged safely; propose the template's version beside it."""


def keeps_lines(old: str, new: str) -> bool:
    """Every line of old appears in new, in the same order."""
    remaining = iter(new.splitlines())
    return all(any(line == candidate for candidate in remaining) for line in old.splitlines())


def newline(text: str) -> str:
    """The file's own line ending, used for the lines a merge adds."""
    return "\r\n" if "\r\n" in text else "\n"


def _joined(old: str, block: str) -> str:
    """old, byte for byte, then block (written with old's line ending)."""
    nl = newline(old)
    if old and not old.endswith(("\n", "\r")):
        old += nl
    return old + block.replace("\n", nl)


# ---------------------------------------------------------------- .gitignore


def gitignore_missing(old: str, wanted: list[str]) -> list[str]:
    """The wanted ignore lines the file does not have yet, in order."""
    have = {line.strip() for line in old.splitlines()}
    return [line for line in wanted if line.strip() and line.strip() not in have]


def gitignore(old: str, lines: list[str]) -> tuple[str, str] | None:
    """Append the given ignore lines that the file does not have."""
    missing = gitignore_missing(old, lines)
    if not missing:
        return None
    block = ("\n" if old.strip() else "") + MARK + "\n" + "\n".join(missing) + "\n"
    return _joined(old, block), f"append {len(missing)} ignore line(s): " + ", ".join(missing)


# ---------------------------------------------------------------- .pre-commit-config.yaml


def hook_entries(data) -> list[tuple[object, dict]]:
    """(repo, hook) for every hook of a parsed pre-commit config."""
    out = []
    if isinstance(data, dict) and isinstance(data.get("repos"), list):
        for entry in data["repos"]:
            if isinstance(entry, dict):
                for hook in entry.get("hooks") or []:
                    if isinstance(hook, dict) and "id" in hook:
                        out.append((entry.get("repo"), hook))
    return out


def runs_tool(tool: str, data) -> bool:
    """True when an existing hook already runs `tool` (its id, entry or remote repository names it)."""
    pattern = re.compile(rf"(?<![\w-]){re.escape(tool)}(?![\w])")
    return any(pattern.search(f"{repo} {hook.get('id')} {hook.get('entry', '')}") for repo, hook in hook_entries(data))


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(str(v)) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a YAML double-quoted scalar


def precommit_config(hooks: list[dict]) -> str:
    """A whole config holding the given hooks (for a repository that has none)."""
    lines = [MARK + ": the security gates (.secure-ml/) as local hooks.", "repos:"]
    lines += _entry(hooks, item=2, offset=2)
    return "\n".join(lines) + "\n"


def _entry(hooks: list[dict], item: int, offset: int) -> list[str]:
    """A `- repo: local` entry in the indentation style of the file: `item` is the column of the
    dash of each `repos:` item, `offset` the distance from that dash to the item's keys."""
    pad, key = " " * item, " " * (item + offset)
    hook_dash = " " * (item + offset + item)
    hook_key = " " * (item + offset + item + offset)
    out = [f"{pad}-{' ' * (offset - 1)}repo: local", f"{key}hooks:"]
    for hook in hooks:
        first = True
        for name, value in hook.items():
            prefix = f"{hook_dash}-{' ' * (offset - 1)}" if first else hook_key
            out.append(f"{prefix}{name}: {_scalar(value)}")
            first = False
    return out


def precommit(old: str, hooks: list[dict], tools: dict[str, str] | None = None) -> tuple[str, str] | None:
    """Insert the given hooks, minus those whose id the config has or whose tool (`tools`: id ->
    tool name) an existing hook already runs, as one `repo: local` entry at the end of `repos:`.
    Works for any block indentation (`- repo:`, `  - repo:`, `-   repo:`); the text is inserted,
    never re-dumped, so every existing byte stays."""
    try:
        old_data = yaml.safe_load(old)
        tree = yaml.compose(old)
    except yaml.YAMLError as exc:
        raise MergeError(f"does not parse as YAML ({exc.__class__.__name__})") from None
    if not isinstance(old_data, dict) or not isinstance(old_data.get("repos"), list):
        raise MergeError("has no `repos:` list")
    have = {hook["id"] for _, hook in hook_entries(old_data)}
    new = [h for h in hooks if h["id"] not in have and not ((tools or {}).get(h["id"]) and runs_tool(tools[h["id"]], old_data))]
    if not new:
        return None
    repos = next(value for key, value in tree.value if key.value == "repos")
    if not isinstance(repos, yaml.SequenceNode) or repos.flow_style or not repos.value:
        raise MergeError("its `repos:` list is not a block list (- repo: ...): merge the hooks by hand")
    lines = old.splitlines()
    first = repos.value[0].start_mark
    dash = re.match(r"^(\s*)-(\s+)", lines[first.line])
    if not dash or len(dash.group(0)) != first.column:
        raise MergeError("the layout of its `repos:` list is not recognised: merge the hooks by hand")
    item, offset = len(dash.group(1)), 1 + len(dash.group(2))
    end = repos.end_mark.line + (1 if repos.end_mark.column else 0)
    end = min(end, len(lines))
    # Comments and blank lines at the left margin after the list belong to what follows it.
    while end > first.line + 1 and (not lines[end - 1].strip() or (lines[end - 1].startswith("#"))):
        end -= 1
    block = [f"{' ' * item}{MARK}: the security gates (.secure-ml/) as local hooks.", *_entry(new, item, offset)]
    # Old text byte for byte around the inserted block (in the file's own line ending).
    nl, keep = newline(old), old.splitlines(keepends=True)
    head = keep[:end]
    if head and not head[-1].endswith(("\n", "\r")):
        head[-1] += nl
    merged = "".join(head) + "".join(line + nl for line in block) + "".join(keep[end:])
    try:
        merged_data = yaml.safe_load(merged)
    except yaml.YAMLError:
        raise MergeError("the merged config would not parse") from None
    if not isinstance(merged_data, dict) or merged_data.get("repos", [])[:-1] != old_data["repos"] or \
            {k: v for k, v in merged_data.items() if k != "repos"} != {k: v for k, v in old_data.items() if k != "repos"}:
        raise MergeError("the merged config would not keep the existing settings as they are")
    if [h["id"] for h in (merged_data["repos"][-1].get("hooks") or [])] != [h["id"] for h in new]:
        raise MergeError("the merged config would not hold the new hooks")
    if not keeps_lines(old, merged):
        raise MergeError("the merge would drop a line")
    return merged, "add hooks " + ", ".join(h["id"] for h in new)


# ---------------------------------------------------------------- .gitlab-ci.yml


def gitlab_include(old: str, path: str) -> tuple[str, str] | None:
    """Append `include: - local: PATH` to a GitLab CI file that includes nothing yet."""
    try:
        data = yaml.safe_load(old)
    except yaml.YAMLError as exc:
        raise MergeError(f"does not parse as YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise MergeError("is not a mapping of jobs")
    if "include" in data:
        included = data["include"] if isinstance(data["include"], list) else [data["include"]]
        if any(path in (i if isinstance(i, str) else str(i.get("local", ""))) for i in included):
            return None
        raise MergeError(f"already has an `include:`: add '- local: {path}' to it by hand")
    block = f"\n{MARK}: the security gates job.\ninclude:\n  - local: {json.dumps(path)}\n"
    merged = _joined(old, block)
    try:
        new = yaml.safe_load(merged)
    except yaml.YAMLError:
        raise MergeError("the merged file would not parse") from None
    if {k: v for k, v in new.items() if k != "include"} != data or new.get("include") != [{"local": path}]:
        raise MergeError("the merged file would change existing settings")
    return merged, f"include {path}"

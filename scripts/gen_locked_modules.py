"""Rewrite the LOCKED_MODULES block of hooks/pre_gen_project.py from the generated project's lock.

A package_name equal to a top-level module of any locked dependency (`yaml`, `matplotlib`,
`joblib`, `cryptography`, ...) would shadow it on import and break `make setup` or the
pipeline. The list is found, not guessed: for each distribution pinned in
`{{cookiecutter.project_slug}}/requirements/lock.txt`, the top-level names it installs
(`top_level.txt`, else the first part of each path in its RECORD), read from a set-up
generated project's venv. The hook cannot read a file of the template when it runs (cookiecutter
runs a rendered copy from a temporary folder), so the data lives in the hook, between markers.

    python scripts/gen_locked_modules.py PROJECT   # a generated project after `make setup`

Run it after `make lock`; tests/test_hooks.py checks the block against the lock.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOOK = ROOT / "hooks" / "pre_gen_project.py"
LOCK = ROOT / "{{cookiecutter.project_slug}}" / "requirements" / "lock.txt"
BEGIN = "# BEGIN LOCKED_MODULES (scripts/gen_locked_modules.py; do not edit)\n"
END = "# END LOCKED_MODULES\n"

# Runs inside the project's venv: the top-level import names of the named distributions.
PROBE = r"""
import json, re, sys
from importlib import metadata
names = {}
for wanted in json.load(sys.stdin):
    try:
        dist = metadata.distribution(wanted)
    except metadata.PackageNotFoundError:
        continue
    top = set((dist.read_text("top_level.txt") or "").split())
    for path in dist.files or []:
        first = path.parts[0]
        if first.endswith((".dist-info", ".data", ".egg-info")) or first in ("..", "__pycache__"):
            continue
        top.add(re.split(r"[.]", first, maxsplit=1)[0])
    names[wanted] = sorted(n for n in top if n.isidentifier())
print(json.dumps(names))
"""


def locked_distributions() -> list[str]:
    text = LOCK.read_text(encoding="utf-8")
    return sorted({m.lower() for m in re.findall(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)==", text, re.M)})


def modules(project: Path) -> dict[str, list[str]]:
    python = project / ".venv" / "bin" / "python"
    done = subprocess.run(  # noqa: S603  # fixed interpreter and script
        [str(python), "-c", PROBE], input=json.dumps(locked_distributions()),
        capture_output=True, text=True, check=True,
    )
    return json.loads(done.stdout)


def block(found: dict[str, list[str]]) -> str:
    names = sorted({n.lower() for items in found.values() for n in items})
    lines = [BEGIN, f"# {len(found)} distributions of requirements/lock.txt, {len(names)} top-level modules.\n"]
    lines.append("LOCKED_MODULES = frozenset(\n    \"\"\"\n")
    row = "   "
    for name in names:
        if len(row) + len(name) + 1 > 95:
            lines.append(row + "\n")
            row = "   "
        row += " " + name
    lines.append(row + "\n    \"\"\".split()\n)\n")
    lines.append(END)
    return "".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not (Path(argv[0]) / ".venv" / "bin" / "python").exists():
        print("usage: gen_locked_modules.py PROJECT (a generated project after make setup)", file=sys.stderr)
        return 2
    found = modules(Path(argv[0]))
    missing = sorted(set(locked_distributions()) - set(found))
    for name in missing:  # pinned for another platform (markers): its name is the best guess
        print(f"note: {name} is not installed in {argv[0]}; using its name as the module name")
        found[name] = [name.replace("-", "_").replace(".", "_")]
    text = HOOK.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    HOOK.write_text(text[:start] + block(found) + text[end:], encoding="utf-8")
    print(f"updated {HOOK.relative_to(ROOT)}: {len(found)} distributions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

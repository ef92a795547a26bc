"""`make compare`: the params and metrics that changed, without DVC's dependency hashes.

    python scripts/compare.py            # workspace against HEAD, then each experiment of HEAD
    python scripts/compare.py REV        # workspace against REV (a commit, tag or branch)
    python scripts/compare.py REV OTHER  # OTHER (a commit or an experiment name) against REV

Only values that differ are shown (from `dvc exp diff --json`, which reads params.yaml and the
metrics files of each revision through dvc.lock). Comparing against a commit needs that
commit's dvc.lock: commit it after each run you accept.
"""

from __future__ import annotations

import json
import shutil
import subprocess  # nosec B404 - runs dvc with fixed arguments
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def dvc(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    return subprocess.run(  # nosec B603 - fixed arguments
        [executable, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def number(value: Any) -> str:
    if isinstance(value, float):  # 1.0 stays 1.0; long fractions are rounded
        return repr(value) if len(repr(value)) <= 10 else f"{value:.6g}"
    return "-" if value is None else str(value)


def diff(old: str, new: str | None) -> dict[str, Any] | None:
    """{'params': {file: {key: {old, new, diff}}}, 'metrics': {...}}; None when DVC failed."""
    done = dvc("exp", "diff", old, *([new] if new else []), "--json")
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"compare: dvc exp diff {old} {new or ''} failed: {reason}", file=sys.stderr)
        if "dvc.lock" in done.stderr or "failed to load" in done.stderr:
            print(
                "compare: commit dvc.lock after a run you accept, then compare against it",
                file=sys.stderr,
            )
        return None
    return json.loads(done.stdout or "{}")


def show(title: str, changes: dict[str, Any]) -> None:
    print(title)
    rows = [
        (kind, path, key, values)
        for kind in ("params", "metrics")
        for path, keys in sorted((changes.get(kind) or {}).items())
        for key, values in sorted(keys.items())
    ]
    if not rows:
        print("  no param or metric changed")
        return
    width = max(len(key) for _, _, key, _ in rows)
    last = None
    for kind, path, key, values in rows:
        if (kind, path) != last:
            print(f"  {kind}: {path}")
            last = (kind, path)
        change = values.get("diff")
        delta = f"  ({change:+.6g})" if isinstance(change, (int, float)) else ""
        print(
            f"    {key:<{width}}  {number(values.get('old'))} -> {number(values.get('new'))}{delta}"
        )


def main(argv: list[str]) -> int:
    if len(argv) > 2 or any(a.startswith("-") for a in argv):
        print("usage: compare.py [REV [OTHER]]  (REV defaults to HEAD)", file=sys.stderr)
        return 2
    base = argv[0] if argv else "HEAD"
    other = argv[1] if len(argv) > 1 else None
    changes = diff(base, other)
    if changes is None:
        return 1
    show(f"Changes from {base} to {other or 'the workspace'}:", changes)
    if other is None:
        listed = dvc("exp", "list", "--rev", base, "--name-only")
        names = [n for n in listed.stdout.split() if n] if listed.returncode == 0 else []
        for name in names:
            found = diff(base, name)
            if found is None:
                return 1
            print()
            show(f"Experiment {name} against {base}:", found)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

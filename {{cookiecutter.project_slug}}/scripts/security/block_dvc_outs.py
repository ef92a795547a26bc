"""Pre-commit hook: refuse to commit a file that DVC tracks (an out of dvc.yaml or a .dvc file).

Data, models and reports go to DVC storage (`dvc push`), never into git. Usage (pre-commit
passes the staged files): python scripts/security/block_dvc_outs.py FILE ...
"""

from __future__ import annotations

import sys
from pathlib import Path, PurePosixPath

import yaml

ROOT = Path(__file__).resolve().parents[2]


def outs_of(entry) -> list[str]:
    """The paths of a stage's outs/metrics/plots list (strings or one-key mappings)."""
    paths = []
    for item in entry or []:
        if isinstance(item, str):
            paths.append(item)
        elif isinstance(item, dict):
            paths.extend(str(key) for key in item)
    return paths


def tracked_by_dvc() -> list[str]:
    tracked = []
    pipeline = ROOT / "dvc.yaml"
    if pipeline.is_file():
        stages = (yaml.safe_load(pipeline.read_text(encoding="utf-8")) or {}).get("stages", {})
        for stage in stages.values():
            for key in ("outs", "metrics", "plots"):
                tracked += outs_of(stage.get(key))
    for pointer in ROOT.glob("**/*.dvc"):
        if ".venv" in pointer.parts or ".dvc" in pointer.parts:
            continue
        data = yaml.safe_load(pointer.read_text(encoding="utf-8")) or {}
        base = pointer.parent.relative_to(ROOT)
        outs = data.get("outs", [])
        tracked += [(base / out["path"]).as_posix() for out in outs if "path" in out]
    return [PurePosixPath(p).as_posix().rstrip("/") for p in tracked]


def main(files: list[str]) -> int:
    tracked = tracked_by_dvc()
    blocked = []
    for name in files:
        path = PurePosixPath(Path(name).as_posix())
        for out in tracked:
            if path.as_posix() == out or PurePosixPath(out) in path.parents:
                blocked.append((path.as_posix(), out))
                break
    for path, out in blocked:
        print(
            f"{path}: DVC tracks {out}; do not commit it to git: "
            f"'git rm --cached {path}', then 'dvc commit' and 'dvc push'"
        )
    return 1 if blocked else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`make controls`: check every control in controls.yaml has its evidence, and prove it.

For each control: every listed file must exist and every listed test must exist and pass.
Prints one table row per control and exits 1 when any control is missing or failing.
"""

from __future__ import annotations

import subprocess  # nosec B404 - runs pytest from this venv with fixed arguments
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def load_registry(root: Path = ROOT) -> list[dict]:
    return yaml.safe_load((root / "controls.yaml").read_text(encoding="utf-8"))["controls"]


def missing_evidence(control: dict, root: Path = ROOT) -> list[str]:
    missing = [f"file {f}" for f in control.get("files", []) if not (root / f).exists()]
    for test in control.get("tests", []):
        path, _, name = test.partition("::")
        source = root / path
        if not source.is_file():
            missing.append(f"test file {path}")
        elif name and f"def {name.split('[')[0]}(" not in source.read_text(encoding="utf-8"):
            missing.append(f"test {test}")
    if not control.get("tests"):
        missing.append("a proving test")
    return missing


def main() -> int:
    controls = load_registry()
    rows, failed = [], False
    runnable = []
    for control in controls:
        missing = missing_evidence(control)
        control["status"] = "MISSING: " + ", ".join(missing) if missing else "pending"
        if not missing:
            runnable.extend(control["tests"])
    results: dict[str, bool] = {}
    if runnable:
        done = subprocess.run(  # nosec B603 - fixed pytest invocation on registry node ids
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", *runnable],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )
        for line in done.stdout.splitlines():
            for word, ok in (("PASSED ", True), ("FAILED ", False), ("ERROR ", False)):
                if line.startswith(word):
                    results[line[len(word):].split(" ")[0]] = ok
        if done.returncode not in (0, 1):
            print(done.stdout[-2000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
    for control in controls:
        if control["status"] == "pending":
            states = [results.get(test) for test in control["tests"]]
            if all(states):
                control["status"] = "ok"
            else:
                bad = [t for t, s in zip(control["tests"], states, strict=True) if not s]
                control["status"] = "FAILED: " + ", ".join(
                    f"{t} ({'did not run' if results.get(t) is None else 'failed'})" for t in bad)
        failed |= control["status"] != "ok"
        rows.append((control["id"], control["exchange"], control["status"]))
    width = max(len(r[0]) for r in rows)
    exwidth = max(len(r[1]) for r in rows)
    print(f"{'control':<{width}}  {'AI Exchange control':<{exwidth}}  status")
    for ident, exchange, status in rows:
        print(f"{ident:<{width}}  {exchange:<{exwidth}}  {status}")
    print(f"\n{sum(r[2] == 'ok' for r in rows)}/{len(rows)} controls proven")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

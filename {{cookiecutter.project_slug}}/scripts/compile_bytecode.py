"""Compile, on every core, the bytecode of the installed files the pipeline imports.

`make setup` runs this once, so that no pipeline stage spends its first run compiling
scikit-learn, pandas or MLflow. The files are listed in requirements/bytecode.txt (paths
inside site-packages, found by running the pipeline; the template's `make lock` refreshes
it). A stale list costs only speed: an unlisted file is compiled on its first import, a
listed file that is not installed is skipped. Compiling all ~14,000 installed files instead
would take twice as long.
"""

from __future__ import annotations

import compileall
import py_compile
import sys
import sysconfig
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path


def compile_one(path: str) -> bool:
    # Timestamp-checked like the files the interpreter writes itself (SOURCE_DATE_EPOCH would
    # otherwise make them hash-checked: every import would hash its source again).
    return bool(
        compileall.compile_file(
            path, quiet=2, invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP
        )
    )


def main(listing: Path = Path("requirements/bytecode.txt")) -> int:
    if not listing.is_file():
        print(f"setup: {listing} is missing; skipping the bytecode warm-up", file=sys.stderr)
        return 0
    site = Path(sysconfig.get_paths()["purelib"])
    names = [
        line.strip()
        for line in listing.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    files = [str(site / name) for name in names if (site / name).is_file()]
    try:
        with ProcessPoolExecutor() as pool:
            done = sum(pool.map(compile_one, files, chunksize=32))
    except (OSError, ImportError, BrokenProcessPool):  # no worker processes here: one by one
        done = sum(map(compile_one, files))
    print(f"setup: bytecode ready for {done} of the pipeline's {len(names)} installed files")
    return 0


if __name__ == "__main__":
    sys.exit(main(*(Path(arg) for arg in sys.argv[1:2])))

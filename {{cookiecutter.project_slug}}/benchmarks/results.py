"""What the benchmark scripts share: benchmarks/RESULTS.md holds one section per benchmark,
each between its own markers, so `make bench-scale`, `make bench-pipeline` and
`make bench-serve` each rewrite only their own table; and the line that names the machine."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def write_section(path: Path, name: str, text: str) -> None:
    """Replace the section `name` of the file at `path` with `text` (appended when the file
    has no such section yet; everything outside the markers is kept)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{text.strip()}\n{end}\n"
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        new = head + block + ("\n" + tail if tail else "")
    else:
        new = (old.rstrip("\n") + "\n\n" if old.strip() else "") + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new, encoding="utf-8")


def machine(with_load: bool = True) -> str:
    """System, cores, CPU model, memory, Python and (with_load) the 1-minute load average."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total = int(meminfo.read_text().split()[1]) / 1024**2
        memory = f", {total:.0f} GB RAM"
    load = (
        f", 1-minute load average {os.getloadavg()[0]:.1f} at the end"
        if hasattr(os, "getloadavg") and with_load
        else ""
    )
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores "
        f"({model or 'unknown CPU'})"
        f"{memory}, Python {platform.python_version()}{load}"
    )

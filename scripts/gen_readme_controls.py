"""Keep the README's controls table in step with the generated repository's registry.

`python scripts/gen_readme_controls.py` rewrites the table between the two markers in
README.md from `{{cookiecutter.project_slug}}/controls.yaml` (default answers);
`--check` exits 1 when the README is stale. The registry stays the single source.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mkdocs_hooks import load_registry  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- controls table: start -->", "<!-- controls table: end -->"


def table() -> str:
    rows = ["| control | guide risk | AI Exchange control | what it does |", "|---|---|---|---|"]
    for control in load_registry():
        rows.append(f"| {control['id']} | {control['guide_risk']} | {control['exchange']} "
                    f"| {control['title']} |")
    return "\n".join(rows)


def rendered(text: str) -> str:
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    if not rest or END not in rest:
        raise SystemExit(f"README.md lacks the markers {START} ... {END}")
    return f"{head}{START}\n{table()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    new = rendered(text)
    if "--check" in argv:
        if new != text:
            print("README.md controls table is stale: run python scripts/gen_readme_controls.py")
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

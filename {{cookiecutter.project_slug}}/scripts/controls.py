"""`make controls`: check the controls registry (controls.yaml), then prove every control.

1. The registry itself is checked: every entry has exactly the fields id, title, guide_risk,
   exchange, files and tests; ids are unique; `exchange` is an OWASP AI Exchange control name.
2. Every listed file must exist, and every listed test must exist in its test file.
3. The proving tests' outcomes come from the JUnit report of the last `make test`
   (reports/junit.xml), so `make check` runs each test once. The report is used only when it
   is newer than every test file, source file and listed file it covers; a proving test that
   is missing from it (or every test, when the report is stale or absent) runs here, in ONE
   pytest session. A control is `ok` only when each of its tests ran and passed (a skipped or
   unrun test proves nothing).
4. A table (control, AI Exchange name, status) is printed; the exit code is 0 only when every
   control is ok (1 when a control fails or misses evidence, 2 when the registry is invalid).

Other code (the docs) renders the same file with `render_matrix()`:

    import runpy; runpy.run_path("scripts/controls.py")["render_matrix"](root)

`python scripts/controls.py --matrix` prints that Markdown table without running any test.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys
import xml.etree.ElementTree as ElementTree  # nosec B405 - our own pytest report
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = "controls.yaml"
JUNIT = "reports/junit.xml"  # written by `make test` (pytest --junitxml)
FIELDS = ("id", "title", "guide_risk", "exchange", "files", "tests")
# Optional: `weakened_when: {params.dotted.key: value}`: the params.yaml settings that switch
# the control (partly) off; `make controls` names the control as weakened when one is set.
OPTIONAL = ("weakened_when",)
ID_PATTERN = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*$")
# Control names of the OWASP AI Exchange (https://owaspai.org/goto/periodictable/).
EXCHANGE_CONTROLS = frozenset(
    {
        # governance and general
        "AI PROGRAM",
        "SEC PROGRAM",
        "SEC DEV PROGRAM",
        "DEV PROGRAM",
        "CHECK COMPLIANCE",
        "SEC EDUCATE",
        # limiting data and unwanted behaviour
        "DATA MINIMIZE",
        "ALLOWED DATA",
        "SHORT RETAIN",
        "OBFUSCATE TRAINING DATA",
        "DISCRETE",
        "OVERSIGHT",
        "LEAST MODEL PRIVILEGE",
        "AI TRANSPARENCY",
        "CONTINUOUS VALIDATION",
        "EXPLAINABILITY",
        "UNWANTED BIAS TESTING",
        # threats through use
        "MONITOR USE",
        "RATE LIMIT",
        "MODEL ACCESS CONTROL",
        "ANOMALOUS INPUT HANDLING",
        "UNWANTED INPUT SERIES HANDLING",
        "OBSCURE CONFIDENCE",
        "EVASION INPUT HANDLING",
        "EVASION ROBUST MODEL",
        "TRAIN ADVERSARIAL",
        "INPUT DISTORTION",
        "ADVERSARIAL ROBUST DISTILLATION",
        "PROMPT INJECTION I/O HANDLING",
        "MODEL ALIGNMENT",
        "FILTER SENSITIVE MODEL OUTPUT",
        "SMALL MODEL",
        "DOS INPUT VALIDATION",
        "LIMIT RESOURCES",
        # development time
        "DEV SECURITY",
        "SEGREGATE DATA",
        "CONF COMPUTE",
        "FEDERATED LEARNING",
        "SUPPLY CHAIN MANAGE",
        "MORE TRAINING DATA",
        "DATA QUALITY CONTROL",
        "TRAIN DATA DISTORTION",
        "POISON ROBUST MODEL",
        # runtime application security
        "RUNTIME MODEL INTEGRITY",
        "RUNTIME MODEL IO INTEGRITY",
        "RUNTIME MODEL CONFIDENTIALITY",
        "MODEL OBFUSCATION",
        "ENCODE MODEL OUTPUT",
        "MODEL INPUT CONFIDENTIALITY",
    }
)


class RegistryError(ValueError):
    """controls.yaml breaks its own schema. The message names the entry and the field."""


def _where(index: int, entry: Any) -> str:
    ident = entry.get("id") if isinstance(entry, dict) else None
    return f"{REGISTRY} entry {index + 1}" + (f" ({ident})" if isinstance(ident, str) else "")


def _relative_path(value: Any) -> bool:
    if not isinstance(value, str) or not value.strip() or "\\" in value:
        return False
    path = PurePosixPath(value)
    return not path.is_absolute() and ".." not in path.parts


def check_registry(data: Any) -> list[str]:
    """Every schema problem of the parsed registry, one readable line each (empty: valid)."""
    if not isinstance(data, dict) or not isinstance(data.get("controls"), list):
        return [f"{REGISTRY} must be a mapping with a 'controls' list"]
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(data["controls"]):
        where = _where(index, entry)
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a mapping with the fields {', '.join(FIELDS)}")
            continue
        problems += [f"{where}: field '{f}' is missing" for f in FIELDS if f not in entry]
        problems += [
            f"{where}: field '{f}' is not one of {', '.join(FIELDS + OPTIONAL)}"
            for f in entry
            if f not in FIELDS + OPTIONAL
        ]
        if "weakened_when" in entry and not isinstance(entry["weakened_when"], dict):
            problems.append(f"{where}: field 'weakened_when' must map params keys to values")
        ident = entry.get("id")
        if "id" in entry and (not isinstance(ident, str) or not ID_PATTERN.match(ident)):
            problems.append(f"{where}: field 'id' must be UPPER-CASE-WITH-DASHES, got {ident!r}")
        elif isinstance(ident, str):
            if ident in seen:
                problems.append(f"{where}: id {ident} is already used by entry {seen[ident] + 1}")
            seen.setdefault(ident, index)
        for field in ("title", "guide_risk"):
            if field in entry and (not isinstance(entry[field], str) or not entry[field].strip()):
                problems.append(f"{where}: field '{field}' must be a non-empty text")
        exchange = entry.get("exchange")
        if "exchange" in entry and exchange not in EXCHANGE_CONTROLS:
            problems.append(
                f"{where}: field 'exchange' is {exchange!r}, not an OWASP AI Exchange control "
                "name (e.g. DATA QUALITY CONTROL, RATE LIMIT; see EXCHANGE_CONTROLS)"
            )
        for field in ("files", "tests"):
            values = entry.get(field)
            if field not in entry:
                continue
            if not isinstance(values, list) or not values:
                problems.append(f"{where}: field '{field}' must be a non-empty list")
                continue
            for value in values:
                path = value.partition("::")[0] if isinstance(value, str) else value
                if not _relative_path(path):
                    problems.append(
                        f"{where}: {field} entry {value!r} must be a path inside "
                        "the project (relative, no '..')"
                    )
                elif field == "tests" and (
                    "::" not in value or not path.startswith("tests/") or not path.endswith(".py")
                ):
                    problems.append(
                        f"{where}: test {value!r} must be a pytest node id "
                        "like tests/unit/test_x.py::test_name"
                    )
    return problems


def load_registry(root: Path = ROOT) -> list[dict[str, Any]]:
    """The registry's controls, after the schema check (RegistryError lists every problem)."""
    source = root / REGISTRY
    if not source.is_file():
        raise RegistryError(f"{source} not found: the controls registry is required")
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise RegistryError(f"{REGISTRY} is not valid YAML: {error}") from error
    problems = check_registry(data)
    if problems:
        raise RegistryError("\n".join(problems))
    return data["controls"]


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_matrix(root: Path = ROOT, status: dict[str, str] | None = None) -> str:
    """The registry as a Markdown table (one row per control), for the docs and the README.
    `status` (control id -> text) adds a Status column, e.g. from the last `make controls`."""
    controls = load_registry(root)
    head = ["Control", "What it does", "Guide risk", "AI Exchange control", "Files", "Proved by"]
    if status is not None:
        head.append("Status")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for control in controls:
        cells = [
            f"`{control['id']}`",
            control["title"],
            control["guide_risk"],
            control["exchange"],
            "<br>".join(f"`{f}`" for f in control["files"]),
            "<br>".join(f"`{t.split('::')[-1]}`" for t in control["tests"]),
        ]
        if status is not None:
            cells.append(status.get(control["id"], "not checked"))
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _defined_tests(source: Path) -> set[str]:
    """Node-id tails defined in a test file: 'test_x' and 'TestClass::test_y'."""
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    names: set[str] = set()
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        if isinstance(node, functions):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            names.update(
                f"{node.name}::{item.name}" for item in node.body if isinstance(item, functions)
            )
    return names


def missing_evidence(control: dict[str, Any], root: Path = ROOT) -> list[str]:
    """Files and tests of one control that do not exist."""
    missing = [f"file {f}" for f in control["files"] if not (root / f).exists()]
    cache: dict[str, set[str] | None] = {}
    for test in control["tests"]:
        path, _, name = test.partition("::")
        if path not in cache:
            source = root / path
            try:
                cache[path] = _defined_tests(source) if source.is_file() else None
            except SyntaxError:
                cache[path] = set()
        if cache[path] is None:
            missing.append(f"test file {path}")
        elif name.split("[")[0] not in cache[path]:
            missing.append(f"test {test}")
    return missing


def _covers(node: str, item: str) -> bool:
    """Does the registry's node id `node` name the collected test `item`?"""
    return item == node or item.startswith((node + "[", node + "::"))


class _Outcomes:
    """pytest plugin: keeps only the listed tests, records every outcome by node id."""

    def __init__(self, wanted: list[str]) -> None:
        self.wanted = wanted
        self.items: dict[str, str] = {}
        self.broken: list[str] = []
        self._rank = {"passed": 0, "skipped": 1, "failed": 2}

    def pytest_collection_modifyitems(self, config: Any, items: list[Any]) -> None:
        keep = [i for i in items if any(_covers(n, i.nodeid) for n in self.wanted)]
        dropped = [i for i in items if i not in keep]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep

    def pytest_runtest_logreport(self, report: Any) -> None:
        outcome = "skipped" if getattr(report, "wasxfail", None) else report.outcome
        if report.when == "call" or outcome != "passed":
            before = self.items.get(report.nodeid, "passed")
            if self._rank[outcome] >= self._rank[before]:
                self.items[report.nodeid] = outcome

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.broken.append(report.nodeid)


def run_tests(node_ids: list[str], root: Path = ROOT) -> dict[str, str]:
    """Run every node id in ONE pytest session; return node id -> passed/failed/skipped/
    'did not run'. A listed id covers its parametrized cases (id[...])."""
    import pytest

    unique = list(dict.fromkeys(node_ids))
    outcomes = _Outcomes(unique)
    # Whole files are collected (a file that fails to import then fails only its own tests);
    # the plugin keeps the listed tests.
    files = list(dict.fromkeys(node.partition("::")[0] for node in unique))
    here = Path.cwd()
    os.chdir(root)
    # Test this project's own code, even when the venv's editable install points elsewhere.
    sys.path.insert(0, str(root / "src"))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(root / "src"), os.environ.get("PYTHONPATH", "")) if p
    )
    try:
        code = pytest.main(
            [
                "-q",
                "--no-header",
                "-p",
                "no:cacheprovider",
                "-rfEs",
                "--continue-on-collection-errors",
                *files,
            ],
            plugins=[outcomes],
        )
    finally:
        os.chdir(here)
    results = {}
    for node in unique:
        found = [state for item, state in outcomes.items.items() if _covers(node, item)]
        if not found:
            broken = node.partition("::")[0] in outcomes.broken
            results[node] = "did not run: its file failed to import" if broken else "did not run"
        elif "failed" in found:
            results[node] = "failed"
        elif "skipped" in found:
            results[node] = "skipped"
        else:
            results[node] = "passed"
    if int(code) not in (0, 1) and all(r == "passed" for r in results.values()):
        # pytest itself failed (usage, internal error, interrupted): prove nothing.
        results = dict.fromkeys(unique, f"did not run (pytest exit {int(code)})")
    return results


def _report_inputs(controls: list[dict[str, Any]], root: Path) -> list[Path]:
    """The files whose change makes a test report stale: every test and source file, the
    project's settings, and each control's listed files."""
    found: list[Path] = []
    for folder in ("tests", "src", "scripts"):
        found += (root / folder).rglob("*.py")
    found += [root / name for name in ("pyproject.toml", "params.yaml", REGISTRY)]
    for control in controls:
        found += [root / f for f in control["files"]]
    return [p for p in found if p.is_file()]


def _node_id(case: ElementTree.Element, root: Path) -> str | None:
    """The pytest node id of a JUnit <testcase>: classname 'tests.unit.test_x[.Class]' and
    name 'test_y[param]' become 'tests/unit/test_x.py[::Class]::test_y[param]'."""
    classname, name = case.get("classname") or "", case.get("name") or ""
    parts = classname.split(".") if classname else []
    for cut in range(len(parts), 0, -1):
        path = "/".join(parts[:cut]) + ".py"
        if (root / path).is_file():
            return "::".join([path, *parts[cut:], name])
    return None


def report_outcomes(
    node_ids: list[str], controls: list[dict[str, Any]], root: Path = ROOT
) -> tuple[dict[str, str], str]:
    """Outcomes of the wanted node ids read from the last `make test` report, and why the
    report was used or not. Only tests the report holds are returned; none when it is stale."""
    report = root / JUNIT
    if not report.is_file():
        return {}, f"no {JUNIT}: run make test first to reuse its results"
    written = report.stat().st_mtime
    newer = [p for p in _report_inputs(controls, root) if p.stat().st_mtime > written]
    if newer:
        name = newer[0].relative_to(root).as_posix()
        return {}, f"{JUNIT} is older than {name}" + (
            f" and {len(newer) - 1} more file(s)" if len(newer) > 1 else ""
        )
    try:
        tree = ElementTree.parse(report)  # noqa: S314  # nosec B314 - our own make test wrote it
    except ElementTree.ParseError as error:
        return {}, f"{JUNIT} is not valid XML ({error})"
    rank = {"passed": 0, "skipped": 1, "failed": 2}
    seen: dict[str, str] = {}
    for case in tree.iter("testcase"):
        node = _node_id(case, root)
        if node is None:
            continue
        tags = {child.tag for child in case}
        outcome = (
            "failed"
            if tags & {"failure", "error"}
            else "skipped"
            if "skipped" in tags
            else "passed"
        )
        if rank[outcome] >= rank[seen.get(node, "passed")]:
            seen[node] = outcome
    results = {}
    for node in dict.fromkeys(node_ids):
        found = [state for item, state in seen.items() if _covers(node, item)]
        if found:
            results[node] = max(found, key=rank.__getitem__)
    when = datetime.fromtimestamp(written).strftime("%Y-%m-%d %H:%M:%S")
    return results, f"make test of {when}"


def check(root: Path = ROOT, run: bool = True) -> list[tuple[dict[str, Any], str]]:
    """(control, status) for every control; status 'ok' or what is wrong."""
    controls = load_registry(root)
    missing = {c["id"]: missing_evidence(c, root) for c in controls}
    runnable = [t for c in controls if not missing[c["id"]] for t in c["tests"]]
    results: dict[str, str] = {}
    if run and runnable:
        results, why = report_outcomes(runnable, controls, root)
        left = [t for t in dict.fromkeys(runnable) if t not in results]
        if results:
            print(f"controls: {len(results)} proving test(s) taken from {JUNIT} ({why})")
        if left:
            reason = why if not results else "not in the report"
            print(f"controls: running {len(left)} proving test(s) here ({reason})", flush=True)
            results.update(run_tests(left, root))
    rows = []
    for control in controls:
        if missing[control["id"]]:
            rows.append((control, "MISSING: " + ", ".join(missing[control["id"]])))
            continue
        if not run:
            rows.append((control, "evidence present (tests not run)"))
            continue
        bad = [
            (t, results.get(t, "did not run"))
            for t in control["tests"]
            if results.get(t) != "passed"
        ]
        rows.append(
            (
                control,
                "ok" if not bad else "FAILED: " + ", ".join(f"{t} ({state})" for t, state in bad),
            )
        )
    return rows


def weakened(controls: list[dict[str, Any]], root: Path = ROOT) -> list[str]:
    """One line per control that params.yaml weakens (its `weakened_when` settings are set)."""
    source = root / "params.yaml"
    params = yaml.safe_load(source.read_text(encoding="utf-8")) if source.is_file() else {}
    lines = []
    for control in controls:
        for key, value in (control.get("weakened_when") or {}).items():
            current: Any = params
            for part in str(key).split("."):
                current = current.get(part) if isinstance(current, dict) else None
            if current == value and type(current) is type(value):
                lines.append(
                    f"control {control['id']} is WEAKENED: params.yaml sets {key}: "
                    f"{yaml.safe_dump(value).splitlines()[0]} (for local experiments only)"
                )
    return lines


def print_table(rows: list[tuple[dict[str, Any], str]]) -> None:
    width = max([len("control")] + [len(c["id"]) for c, _ in rows])
    exwidth = max([len("AI Exchange control")] + [len(c["exchange"]) for c, _ in rows])
    print(f"\n{'control':<{width}}  {'AI Exchange control':<{exwidth}}  status")
    print(f"{'-' * width}  {'-' * exwidth}  ------")
    for control, status in rows:
        print(f"{control['id']:<{width}}  {control['exchange']:<{exwidth}}  {status}")
    proven = sum(status == "ok" for _, status in rows)
    print(f"\n{proven}/{len(rows)} controls proven")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--matrix",
        action="store_true",
        help="print the registry as a Markdown table and exit (no tests)",
    )
    parser.add_argument(
        "--no-tests",
        action="store_true",
        help="check the registry and that the evidence exists; run no test",
    )
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.matrix:
            print(render_matrix(args.root), end="")
            return 0
        rows = check(args.root, run=not args.no_tests)
    except RegistryError as error:
        for line in str(error).splitlines():
            print(f"controls: {line}", file=sys.stderr)
        print(
            f"controls: fix controls.yaml; every entry needs {', '.join(FIELDS)}", file=sys.stderr
        )
        return 2
    print_table(rows)
    for line in weakened([control for control, _ in rows], args.root):
        print(line)
    failed = [
        (c["id"], s)
        for c, s in rows
        if s.startswith("MISSING") or (s != "ok" and not args.no_tests)
    ]
    for ident, status in failed:
        print(f"control {ident} is not proven: {status}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Write the generated parts of the docs from the registry, the data profile and the last run.

`make docs` runs this before `mkdocs build --strict`. Everything under docs/generated/ is
output of this script (gitignored, like site/): edit controls.yaml, params.yaml or
reference/ and run the pipeline, never the generated pages. The hand-written pages
(docs/*.md) include the generated parts and hold the blanks only the team can fill.

    python scripts/gen_docs.py            # (re)write docs/generated/
    python scripts/gen_docs.py --check    # exit 1 and name the stale pages, write nothing
    python scripts/gen_docs.py --out DIR  # write somewhere else (tests; --root for another project)

Sources: controls.yaml; params.yaml; reference/data_profile.json; dvc.yaml and dvc.lock;
reports/mlflow_run.json and the MLflow run it names; reports/metrics.json and, when
present, reports/robustness.json, privacy.json, pii.json and validation.json;
models/model.json. The output depends only on these files: no clock, no random order.
"""

from __future__ import annotations

import argparse
import filecmp
import functools
import importlib
import json
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = Path("docs") / "generated"
# Pages included into hand-written pages (pymdownx.snippets); not built on their own.
PARTS = "parts"
# Copies of the registry's files as pages, so the docs can link code and tests offline.
CODE = "code"
CODE_MAX_BYTES = 200_000
# Optional reports of later pipeline stages: (file, heading).
OPTIONAL_REPORTS = (
    ("robustness.json", "Robustness (evasion attack)"),
    ("privacy.json", "Privacy (membership inference)"),
    ("pii.json", "PII scan"),
)
# The AI-specific risks the OWASP AI Security and Privacy Guide names, with words that
# place a registry entry's `guide_risk` under one of them.
GUIDE_RISKS = (
    (
        "Data and data processing protection",
        ("data protection", "privacy", "minimi", "pii", "processing"),
    ),
    ("Data poisoning", ("poison",)),
    ("Input manipulation (evasion)", ("evasion", "input manipulation", "adversarial")),
    (
        "Data reverse engineering (model inversion, membership inference)",
        ("reverse", "inversion", "membership"),
    ),
    ("Model theft", ("theft", "steal", "extraction", "tamper")),
)
GUIDE = "https://owasp.org/www-project-ai-security-and-privacy-guide/"
LANGUAGES = {
    ".py": "python",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".toml": "toml",
    ".sh": "bash",
    ".md": "markdown",
    ".txt": "text",
    ".cfg": "ini",
}


class InputError(Exception):
    """A source file is missing or malformed: one line says which and how to fix it."""


# ----------------------------------------------------------------------------- helpers


def read_yaml(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise InputError(f"{path.name} is missing: {what}") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise InputError(
            f"{path.name}{where} is not valid YAML: fix it, then run make docs"
        ) from error


def read_json(path: Path) -> Any | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(
            f"{path} is not valid JSON ({error.msg}, line {error.lineno}): re-run make pipeline"
        ) from error


def cell(value: Any) -> str:
    """A value as a markdown table cell."""
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif value is None or value == "":
        text = "-"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(cell(v) if not isinstance(v, Raw) else v for v in row) + " |"
        for row in rows
    ]
    return "\n".join(lines) + "\n"


class Raw(str):
    """Markdown that goes into a table cell as is (links)."""


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Scalar leaves of nested JSON as (dotted key, value); lists are summarised by length,
    so row-level details (which may hold data values) never reach the docs."""
    if isinstance(value, dict):
        items: list[tuple[str, Any]] = []
        for key in sorted(value, key=str):
            items += flatten(value[key], f"{prefix}{key}.")
        return items
    if isinstance(value, list):
        if all(isinstance(v, str | int | float | bool) for v in value) and len(value) <= 10:
            return [(prefix[:-1], ", ".join(str(v) for v in value) or "none")]
        return [(prefix[:-1], f"{len(value)} item(s)")]
    return [(prefix[:-1], value)]


def rel_link(target: str, page_dir: str) -> str:
    """A relative link from a page in `page_dir` (relative to docs/) to `target`."""
    return os.path.relpath(target, page_dir).replace(os.sep, "/")


def code_page(path: str) -> str:
    """Where the page holding a copy of a repository file lives, relative to docs/."""
    return f"generated/{CODE}/{path}.md"


def package_name(root: Path) -> str:
    """The project's package: the folder under src/ that holds __init__.py."""
    found = sorted(p.parent.name for p in (root / "src").glob("*/__init__.py"))
    return found[0] if found else "PACKAGE"


def exchange_link(name: str) -> str:
    slug = "".join(ch for ch in name.lower() if ch.isalnum())
    return f"[{name}](https://owaspai.org/goto/{slug}/)" if slug else "-"


def guide_risks_of(text: str) -> list[str]:
    """The guide's AI risks a registry entry's `guide_risk` text names (may be several)."""
    lowered = text.lower()
    return [risk for risk, words in GUIDE_RISKS if any(word in lowered for word in words)]


def guide_risk_of(text: str) -> str | None:
    found = guide_risks_of(text)
    return found[0] if found else None


# ----------------------------------------------------------------------------- registry


def load_controls(root: Path) -> list[dict[str, Any]]:
    data = read_yaml(root / "controls.yaml", "restore it from git (git checkout -- controls.yaml)")
    controls = (data or {}).get("controls") if isinstance(data, dict) else None
    if not isinstance(controls, list) or not controls:
        raise InputError("controls.yaml has no 'controls:' list: add at least one control")
    for number, control in enumerate(controls, 1):
        if not isinstance(control, dict) or not control.get("id"):
            raise InputError(f"controls.yaml entry {number} has no 'id': give every control an id")
    return controls


def evidence_links(control: dict[str, Any], page_dir: str, root: Path) -> tuple[str, str]:
    """Links to the copies of a control's files and proving tests."""
    files = []
    for path in control.get("files") or []:
        if (root / path).is_file() and (root / path).stat().st_size <= CODE_MAX_BYTES:
            files.append(f"[`{path}`]({rel_link(code_page(path), page_dir)})")
        else:
            files.append(f"`{path}`")
    tests = []
    for node in control.get("tests") or []:
        path, _, name = str(node).partition("::")
        label = f"`{name or path}`"
        if (root / path).is_file():
            tests.append(f"[{label}]({rel_link(code_page(path), page_dir)}) in `{path}`")
        else:
            tests.append(f"{label} in `{path}` (missing)")
    return "<br>".join(files) or "none listed", "<br>".join(tests) or "none listed"


def controls_matrix(controls: list[dict[str, Any]], root: Path) -> str:
    known = {"id", "title", "guide_risk", "exchange", "files", "tests"}
    rows = []
    for control in controls:
        evidence = (
            f"{len(control.get('files') or [])} file(s), {len(control.get('tests') or [])} test(s)"
        )
        rows.append(
            (
                Raw(f"[{cell(control['id'])}](#{anchor(control['id'])})"),
                control.get("title"),
                control.get("guide_risk"),
                Raw(exchange_link(str(control.get("exchange") or ""))),
                evidence,
            )
        )
    out = [
        "# Security controls matrix\n",
        "Rendered by `scripts/gen_docs.py` from `controls.yaml`, the single registry that "
        "`make controls` also checks (every file present, every proving test passing). "
        "Change the registry, never this page.\n",
        f"{len(controls)} controls. The names in the AI Exchange column are controls of the "
        "[OWASP AI Exchange](https://owaspai.org/); the guide risks are those of the "
        f"[OWASP AI Security and Privacy Guide]({GUIDE}).\n",
        table(("Control", "What it does", "Guide risk", "AI Exchange control", "Evidence"), rows),
        "## Controls in detail\n",
        "Each control links to copies of the files that implement it and of the tests that "
        "prove it stops its attack.\n",
    ]
    for control in controls:
        files, tests = evidence_links(control, "generated", root)
        out.append(f"### {cell(control['id'])}\n")
        out.append(f"{cell(control.get('title'))}\n")
        facts = [
            ("Guide risk", control.get("guide_risk")),
            ("AI Exchange control", Raw(exchange_link(str(control.get("exchange") or "")))),
        ]
        facts += [
            (
                key.replace("_", " ").capitalize(),
                Raw(cell(json.dumps(value))) if isinstance(value, dict | list) else value,
            )
            for key, value in control.items()
            if key not in known
        ]
        facts += [("Implemented in", Raw(files)), ("Proved by", Raw(tests))]
        out.append(table(("fact", "value"), facts))
    out.append(
        "Check it yourself: `make controls` runs every proving test and prints the "
        "status of each control.\n"
    )
    return "\n".join(out)


def anchor(ident: str) -> str:
    """The id mkdocs' toc gives a `### ID` heading."""
    import re

    slug = re.sub(r"[^\w\s-]", "", str(ident).lower()).strip()
    return re.sub(r"[-\s]+", "-", slug)


def threat_model_controls(controls: list[dict[str, Any]], root: Path) -> str:
    """Per AI risk of the guide, the controls answering it (included in threat-model.md)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for control in controls:
        groups.setdefault(str(control.get("guide_risk") or "Unassigned"), []).append(control)
    order = {risk: n for n, (risk, _) in enumerate(GUIDE_RISKS)}

    def rank(name: str) -> tuple[int, str]:
        placed = guide_risk_of(name)
        return (order[placed] if placed else len(order), name)

    out = ["### Coverage of the guide's AI-specific risks\n"]
    rows = []
    for risk, _ in GUIDE_RISKS:
        answering = [
            c["id"] for c in controls if risk in guide_risks_of(str(c.get("guide_risk") or ""))
        ]
        rows.append(
            (
                risk,
                ", ".join(answering)
                if answering
                else "NOT COVERED: no registered control answers this risk",
            )
        )
    out.append(table(("Guide risk", "Controls in controls.yaml"), rows))
    for name in sorted(groups, key=rank):
        out.append(f"### {cell(name)}\n")
        for control in groups[name]:
            files, tests = evidence_links(control, ".", root)
            out.append(
                f"- **{cell(control['id'])}** ({exchange_link(str(control.get('exchange') or ''))})"
                f": {cell(control.get('title'))}  \n"
                f"  implemented in {files.replace('<br>', ', ')};  \n"
                f"  proved by {tests.replace('<br>', ', ')}"
            )
        out.append("")
    return "\n".join(out) + "\n"


def code_pages(controls: list[dict[str, Any]], root: Path) -> dict[str, str]:
    """A page per text file the registry names, holding a copy of it."""
    paths: set[str] = set()
    for control in controls:
        paths.update(str(p) for p in control.get("files") or [])
        paths.update(str(node).partition("::")[0] for node in control.get("tests") or [])
    pages = {}
    for path in sorted(paths):
        source = root / path
        if not source.is_file() or source.stat().st_size > CODE_MAX_BYTES:
            continue
        try:
            text = source.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        fence = "````" if "```" in text else "```"
        language = LANGUAGES.get(PurePosixPath(path).suffix, "text")
        pages[f"{CODE}/{path}.md"] = (
            f"# `{path}`\n\nA copy of the repository file, made by `make docs` so the controls "
            f"matrix can link to it. Edit the file itself, not this page.\n\n"
            f"{fence}{language}\n{text.rstrip()}\n{fence}\n"
        )
    return pages


# ----------------------------------------------------------------------------- model card


def tracking_uri(root: Path, params: dict[str, Any], recorded: str) -> str:
    """The URI the project's own tracking module would use; the recorded one as fall-back."""
    for init in sorted((root / "src").glob("*/tracking.py")):
        sys.path.insert(0, str(root / "src"))
        try:
            module = importlib.import_module(f"{init.parent.name}.tracking")
            config = importlib.import_module(f"{init.parent.name}.config")
            return module.tracking_uri(config.Paths(root), params)
        except (ImportError, AttributeError, TypeError, SystemExit):
            # SystemExit: team mode without MLFLOW_TRACKING_URI (tracking.TrackingError).
            break
        finally:
            sys.path.pop(0)
    return os.environ.get("MLFLOW_TRACKING_URI") or recorded


def display_uri(uri: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        netloc += f":{parts.port}" if parts.port else ""
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


@functools.lru_cache(maxsize=8)
def fetch_run(uri: str, run_id: str) -> tuple[dict[str, Any] | None, str]:
    """The MLflow run as plain data, or None and why it could not be read."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    try:
        import mlflow
        from mlflow.tracking import MlflowClient
    except ImportError:
        return None, "mlflow is not installed (run make setup)"
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        return None, f"the local store {uri[len('sqlite:///') :]} does not exist"
    try:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        run = client.get_run(run_id)
        versions = client.search_model_versions(f"run_id = '{run_id}'")
    except mlflow.exceptions.MlflowException as error:
        return None, str(error).splitlines()[0][:200]
    except OSError as error:
        return None, f"{type(error).__name__}: {error}"[:200]
    return {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "status": run.info.status,
        "start": datetime.fromtimestamp(run.info.start_time / 1000, UTC).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        ),
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
        "versions": sorted((v.name, str(v.version)) for v in versions),
    }, ""


def report_section(heading: str, name: str, data: Any) -> str:
    if data is None:
        return (
            f"### {heading}\n\nNot measured: `reports/{name}` is absent "
            "(the stage that writes it has not run).\n"
        )
    return f"### {heading}\n\nFrom `reports/{name}`.\n\n" + table(
        ("measure", "value"), flatten(data)
    )


def model_card_facts(root: Path, params: dict[str, Any]) -> str:
    reports = root / "reports"
    record = read_json(reports / "mlflow_run.json")
    metrics = read_json(reports / "metrics.json")
    manifest = read_json(root / "models" / "model.json")
    out = []
    if record is None:
        out.append(
            '!!! warning "No run recorded yet"\n    `reports/mlflow_run.json` is absent: '
            "run `make pipeline`, then `make docs`, and this card fills itself.\n"
        )
        run, why = None, "no run recorded"
    else:
        uri = tracking_uri(root, params, str(record.get("tracking_uri", "")))
        run, why = fetch_run(uri, str(record.get("run_id", "")))
        if run is None:
            out.append(
                f'!!! warning "MLflow run not readable"\n    Run `{record.get("run_id")}` could '
                f"not be read from `{display_uri(uri)}`: {why}. The facts below come from "
                "`reports/` only.\n"
            )
    tags = run["tags"] if run else {}
    profile = read_json(root / "reference" / "data_profile.json") or {}
    target = profile.get("target") or {}
    out.append("### Model and task\n")
    out.append(
        table(
            ("fact", "value"),
            [
                (
                    "Model (`train.model`)",
                    (manifest or {}).get(
                        "estimator", (params.get("train") or {}).get("model", "-")
                    ),
                ),
                ("Task (reference profile)", target.get("task", "-")),
                ("Target column", Raw(f"`{target.get('name', 'target')}`")),
                ("Classes", ", ".join(map(str, target.get("classes") or {})) or "-"),
                ("Features", len(profile.get("features") or {})),
                ("Data source", tags.get("data.source", "-")),
                ("Data md5", tags.get("data.md5", "-")),
            ],
        )
    )
    digest = tags.get("model.sha256") or (manifest or {}).get("sha256")
    if manifest and digest and manifest.get("sha256") != digest:
        digest_note = (
            f"{digest} (the MLflow run; `models/model.json` now says {manifest.get('sha256')})"
        )
    else:
        digest_note = digest or "unknown"
    facts = [
        ("MLflow run", (run or {}).get("run_id") or (record or {}).get("run_id")),
        ("Experiment", (run or {}).get("experiment_id") or (record or {}).get("experiment_id")),
        ("Tracking store", display_uri(str((record or {}).get("tracking_uri", ""))) or None),
        ("Run started", (run or {}).get("start")),
        ("Run status", (run or {}).get("status")),
        (
            "Registered model",
            ", ".join(f"{n} version {v}" for n, v in (run or {}).get("versions", [])) or None,
        ),
        ("Git commit", tags.get("git.commit")),
        ("Uncommitted changes at run time", tags.get("git.dirty")),
        ("Training data (md5)", tags.get("data.train.md5")),
        ("Training data in dvc.lock (md5)", tags.get("data.train.dvc_md5")),
        ("Model file SHA-256", digest_note),
        ("Model format", tags.get("model.format") or (manifest or {}).get("format")),
        ("Python", tags.get("env.python")),
        ("Lock file SHA-256", tags.get("env.lock.sha256")),
    ]
    out.append("### Provenance\n")
    out.append(table(("fact", "value"), facts))
    packages = sorted(
        (k[4:], v)
        for k, v in tags.items()
        if k.startswith("env.") and k not in ("env.python", "env.platform", "env.lock.sha256")
    )
    if packages:
        out.append("### Environment\n")
        out.append(table(("package", "version"), packages))
    out.append("### Evaluation metrics\n")
    if metrics is None:
        out.append("Not measured: `reports/metrics.json` is absent.\n")
    else:
        limits = [
            f"`evaluate.{key}` = {value}"
            for key, value in sorted((params.get("evaluate") or {}).items())
            if value is not None and key[4:] in metrics  # min_accuracy -> accuracy
        ]
        out.append(
            "On the held-out test split, from `reports/metrics.json`"
            + (f"; the pipeline fails past {', '.join(limits)}." if limits else ".")
            + "\n"
        )
        out.append(table(("metric", "value"), flatten(metrics)))
    if run and run["metrics"]:
        out.append("### Metrics recorded in MLflow\n")
        out.append(table(("metric", "value"), sorted(run["metrics"].items())))
    out.append("### Training parameters\n")
    if run and run["params"]:
        out.append("As logged to the MLflow run.\n")
        out.append(table(("parameter", "value"), sorted(run["params"].items())))
    else:
        out.append("From `params.yaml` (no MLflow run read).\n")
        out.append(
            table(
                ("parameter", "value"), flatten({k: v for k, v in params.items() if k != "mlflow"})
            )
        )
    for name, heading in OPTIONAL_REPORTS:
        out.append(report_section(heading, name, read_json(reports / name)))
    validation = read_json(reports / "validation.json")
    out.append(report_section("Data validation", "validation.json", validation))
    commit = tags.get("git.commit", "")
    if len(commit) == 40 and all(ch in "0123456789abcdef" for ch in commit):
        out.append("### Reproduce this run\n")
        out.append(
            "```bash\n"
            f"git switch --detach {commit}   # the code and dvc.lock of this run\n"
            "dvc checkout                  # its data and model (dvc pull if not cached)\n"
            "make pipeline                 # re-runs only what changed\n"
            "```\n"
        )
        if tags.get("git.dirty") == "true":
            out.append(
                "The tree had uncommitted changes when this run was made: the commit "
                "alone does not reproduce it.\n"
            )
    return "\n".join(out)


# ----------------------------------------------------------------------------- model-card plots
IMAGE_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg"}


def declared_plots(root: Path) -> list[str]:
    """Every plot file dvc.yaml declares (stage `plots:` and top-level `plots:`), in order."""
    pipeline = read_yaml(root / "dvc.yaml", "restore it from git") or {}
    entries = [
        entry
        for stage in (pipeline.get("stages") or {}).values()
        if isinstance(stage, dict)
        for entry in stage.get("plots") or []
    ] + list(pipeline.get("plots") or [])
    names = []
    for entry in entries:
        for name in (
            [entry] if isinstance(entry, str) else list(entry) if isinstance(entry, dict) else []
        ):
            folder = root / name
            found = sorted(folder.rglob("*")) if folder.is_dir() else [folder]
            names += [p.relative_to(root).as_posix() for p in found if p.is_file() or p == folder]
    return list(dict.fromkeys(names))


def model_card_plots(root: Path) -> str:
    """The last run's plots for the model card: images inline (data URIs, so the page needs
    nothing else); data plots (JSON/CSV, drawn by vega) named with the command that draws them."""
    import base64

    images, data = [], []
    for name in declared_plots(root):
        path = root / name
        kind = IMAGE_TYPES.get(path.suffix.lower())
        if not path.is_file():
            data.append(f"- `{name}`: not written yet (run `make pipeline`)")
        elif kind:
            encoded = base64.b64encode(path.read_bytes()).decode("ascii")
            images.append(f"![{name}](data:{kind};base64,{encoded})\n\n*`{name}`*\n")
        else:
            data.append(f"- `{name}`: drawn by `make plots` (and `make plots-diff REV=...`)")
    if not images and not data:
        return ""
    out = ["\n### Plots of the last run\n"]
    out += images
    if data:
        out.append(
            "Data plots, drawn offline with every revision or experiment side by side by "
            "`make plots` (`dvc plots show`) and `make plots-diff` (`dvc plots diff`):\n"
        )
        out.append("\n".join(data) + "\n")
    return "\n".join(out)


# ----------------------------------------------------------------------------- data card


def data_card_facts(root: Path, params: dict[str, Any]) -> str:
    data = params.get("data") or {}
    validate = params.get("validate") or {}
    out = ["### Source\n"]
    pipeline = (read_yaml(root / "dvc.yaml", "") if (root / "dvc.yaml").is_file() else None) or {}
    prepare = (pipeline.get("stages") or {}).get("prepare") or {}
    raw = data.get("raw_path") or data.get("raw_csv")
    source = (
        ("Raw data file (`data.raw_path`)", Raw(f"`{raw}`"))
        if raw
        else (
            "Data set (`data.dataset`)",
            f"{data.get('dataset')} (bundled with scikit-learn, no download)",
        )
    )
    out.append(
        table(
            ("fact", "value"),
            [
                source,
                ("Loaded by", Raw(f"`{prepare.get('cmd', '-')}` (DVC stage `prepare`)")),
                ("Test share (`data.test_size`)", data.get("test_size")),
                ("Split seed (`data.seed`)", data.get("seed")),
                *[
                    (f"`data.{k}`", v)
                    for k, v in sorted(data.items())
                    if k not in ("dataset", "test_size", "seed", "raw_csv", "raw_path")
                ],
            ],
        )
    )
    out.append("### Schema\n")
    profile = read_json(root / "reference" / "data_profile.json")
    if profile is None:
        out.append(
            "`reference/data_profile.json` is absent: rebuild it with "
            f"`python -m {package_name(root)} profile` and review it.\n"
        )
    else:
        margin = float(validate.get("range_margin", 0) or 0)
        out.append(
            "Rendered from the reviewed reference `reference/data_profile.json` and the "
            "`validate` parameters: a number must be finite and within the reference range "
            f"widened by `validate.range_margin` = {margin} of the range on each side, never "
            "below a natural bound of 0 (a feature never negative in the reference) and whole "
            "for integers; a category must be one of the reference's; a value may be missing "
            "only where the reference had missing values; no other column is accepted.\n"
        )
        rows = []
        for name, stats in (profile.get("features") or {}).items():
            kind = stats.get("type", "numeric")
            missing = stats.get("missing_share", 0)
            if kind == "categorical":
                allowed = ", ".join(f"`{c}`" for c in stats.get("categories", {}))
                rows.append((Raw(f"`{name}`"), kind, "-", "-", Raw(allowed or "-"), missing))
                continue
            if kind == "boolean":
                rows.append((Raw(f"`{name}`"), kind, 0, 1, "true / false", missing))
                continue
            low, high = float(stats["min"]), float(stats["max"])
            pad = margin * (high - low)
            allowed_low = low - pad if "natural_min" not in stats else max(low - pad, 0.0)
            rows.append(
                (
                    Raw(f"`{name}`"),
                    kind,
                    low,
                    high,
                    f"{allowed_low:.6g} to {high + pad:.6g}",
                    missing,
                )
            )
        out.append(
            table(
                ("column", "type", "reference min", "reference max", "allowed", "missing share"),
                rows,
            )
        )
        target = profile.get("target") or {"name": "target", "task": "binary"}
        labels = target.get("classes") or profile.get("labels") or {}
        if target.get("task") == "regression":
            out.append(
                f"Target `{target.get('name', 'target')}` (regression): reference range "
                f"{target.get('min')} to {target.get('max')}; its quantiles may move by at most "
                f"`validate.max_target_shift` = {validate.get('max_target_shift', '-')} of the "
                "reference 10-90% spread.\n"
            )
            out.append(
                table(
                    ("quantile", "reference value"), sorted((target.get("quantiles") or {}).items())
                )
            )
        else:
            out.append(
                f"Target `{target.get('name', 'target')}` ({target.get('task', 'binary')}): one "
                f"of {', '.join(f'`{k}`' for k in labels)}; the share of any label may move by at "
                f"most `validate.max_label_shift` = {validate.get('max_label_shift', '-')} "
                "against the reference.\n"
            )
            out.append(table(("label", "reference share"), sorted(labels.items())))
        out.append(f"Reference rows: {profile.get('rows', '-')}.\n")
        extra = [
            (f"`validate.{k}`", v)
            for k, v in sorted(validate.items())
            if k not in ("range_margin", "max_label_shift")
        ]
        if extra:
            out.append("Further validation thresholds from `params.yaml`:\n")
            out.append(table(("parameter", "value"), extra))
    out.append("### Data versions (dvc.lock)\n")
    lock = read_yaml(root / "dvc.lock", "") if (root / "dvc.lock").is_file() else None
    rows = []
    for stage, body in ((lock or {}).get("stages") or {}).items():
        for item in (body or {}).get("outs") or []:
            if str(item.get("path", "")).startswith("data"):
                rows.append((Raw(f"`{item['path']}`"), stage, item.get("md5"), item.get("size")))
    if rows:
        out.append(
            "The hashes DVC recorded for the data outputs; `dvc status` says whether "
            "the files on disk still match.\n"
        )
        out.append(table(("file", "stage", "md5", "bytes"), sorted(rows, key=str)))
    else:
        out.append("No data output is locked yet: run `make pipeline`.\n")
    out.append(report_section("PII findings", "pii.json", read_json(root / "reports" / "pii.json")))
    return "\n".join(out)


# ----------------------------------------------------------------------------- driver


def render(root: Path) -> dict[str, str]:
    """Every generated file: path relative to docs/generated/ -> text."""
    controls = load_controls(root)
    params = read_yaml(root / "params.yaml", "restore it from git") or {}
    header = "<!-- Written by scripts/gen_docs.py (make docs). Do not edit. -->\n\n"
    pages = {
        "controls-matrix.md": controls_matrix(controls, root),
        f"{PARTS}/threat-model-controls.md": threat_model_controls(controls, root),
        f"{PARTS}/model-card-facts.md": model_card_facts(root, params) + model_card_plots(root),
        f"{PARTS}/data-card-facts.md": data_card_facts(root, params),
        **code_pages(controls, root),
    }
    return {
        name: (header + text if not name.startswith(CODE + "/") else text)
        for name, text in pages.items()
    }


def write(pages: dict[str, str], out: Path) -> None:
    """Write all pages into a fresh folder, then swap it in: never half-written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".generated-", dir=out.parent))
    try:
        for name, text in pages.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def stale(pages: dict[str, str], out: Path) -> list[str]:
    """Generated pages (code copies aside) that differ from, or are missing in, `out`."""
    problems = []
    with tempfile.TemporaryDirectory() as fresh:
        write(pages, Path(fresh) / "generated")
        for name in sorted(pages):
            if name.startswith(CODE + "/"):
                continue
            current = out / name
            if not current.is_file():
                problems.append(f"{name} (missing)")
            elif not filecmp.cmp(current, Path(fresh) / "generated" / name, shallow=False):
                problems.append(name)
        if out.is_dir():
            for current in sorted(out.rglob("*.md")):
                name = current.relative_to(out).as_posix()
                if name not in pages and not name.startswith(CODE + "/"):
                    problems.append(f"{name} (no longer generated)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="project root (this project)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (docs/generated)")
    parser.add_argument("--check", action="store_true", help="name stale pages, write nothing")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    out = args.out or root / OUT
    try:
        pages = render(root)
    except InputError as error:
        print(f"gen_docs: {error}", file=sys.stderr)
        return 2
    if args.check:
        problems = stale(pages, out)
        for name in problems:
            print(f"stale: {OUT / name}")
        if problems:
            print("the generated docs do not match the registry or the last run: run make docs")
            return 1
        print(f"{len(pages)} generated pages are current")
        return 0
    write(pages, out)
    print(f"gen_docs: wrote {len(pages)} pages to {os.path.relpath(out, Path.cwd())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

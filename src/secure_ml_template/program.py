"""The security program retrofit adds to a repository: hooks, a CI job, policy and docs stubs,
a secrets baseline and a controls registry. No value read from the repository is ever put into
these files except as data (paths in the registry, written by yaml.safe_dump)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from secure_ml_template.template import UsageError, gates_script, project_dir

PROGRAM = Path(__file__).resolve().parent / "program"
STATE = ".secure-ml"
MANIFEST = f"{STATE}/manifest.yaml"
REGISTRY = f"{STATE}/controls.yaml"
WORKFLOW = ".github/workflows/secure-ml.yml"
GITLAB_JOB = ".gitlab/secure-ml-ci.yml"
# Security-relevant ignore lines only: local secrets and the gates' own reports. The template's
# data/model/tracking lines are the pipeline's business and are never added to a repository.
IGNORE_LINES = [".env", "/reports/pip-audit.json", "/reports/sbom.cdx.json"]

MODEL_FILES = r"\.(pkl|pickle|joblib|pt|pth|bin|ckpt|h5|keras|npy|npz)$"
DEPENDENCY_FILES = (r"(^|/)(requirements[^/]*\.(txt|in)|pyproject\.toml|setup\.(py|cfg)|Pipfile(\.lock)?|"
                    r"poetry\.lock|uv\.lock|environment\.ya?ml|conda\.ya?ml)$")
# The security program is self-contained in the repository: a copy of the template's gates
# script (and the rule files beside it), the scanners' hash-pinned requirements and a runner that
# installs them into a git-ignored .secure-ml/.venv. CI and the hooks call the runner, so
# nothing needs `secure-ml` installed or a package index holding it.
RUNNER = f"{STATE}/run"
RUN = f"sh {RUNNER}"
GATES_DIR = f"{STATE}/gates"
REQUIREMENTS = f"{STATE}/requirements.txt"
STATE_IGNORE = f"{STATE}/.gitignore"
# Files of the template's scripts/security/ that only a generated project uses.
NOT_GATES = {"block_dvc_outs.py"}
HOOKS = [
    {"id": "secure-ml-bandit", "name": "bandit on the repository's Python and notebooks",
     "entry": f"{RUN} bandit", "language": "system", "pass_filenames": False,
     "types_or": ["python", "jupyter"]},
    {"id": "secure-ml-secrets", "name": "detect-secrets against .secrets.baseline",
     "entry": f"{RUN} secrets", "language": "system", "pass_filenames": False},
    {"id": "secure-ml-models", "name": "scan model files for code execution",
     "entry": f"{RUN} models", "language": "system", "pass_filenames": False,
     "files": MODEL_FILES},
    {"id": "secure-ml-audit", "name": "audit the dependencies when they change",
     "entry": f"{RUN} audit", "language": "system", "pass_filenames": False,
     "files": DEPENDENCY_FILES},
]
HOOK_TOOLS = {"secure-ml-bandit": "bandit", "secure-ml-secrets": "detect-secrets",
              "secure-ml-models": "picklescan", "secure-ml-audit": "pip-audit"}


def gates_files() -> dict[str, bytes]:
    """The files of the self-contained program, by path in the repository: the template's
    scripts/security/ copied byte for byte (never rendered: it is in _copy_without_render),
    the hash-pinned requirements built by the template's `make lock`, the runner and the
    folder's own .gitignore for the runner's virtualenv."""
    source = gates_script().parent
    out = {}
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if (path.is_file() and not path.is_symlink() and rel.parts[0] not in NOT_GATES
                and "__pycache__" not in rel.parts and path.suffix not in (".pyc", ".pyo")):
            out[f"{GATES_DIR}/{rel.as_posix()}"] = path.read_bytes()
    if f"{GATES_DIR}/gates.py" not in out:
        raise UsageError(f"the template has no scripts/security/gates.py ({source}); reinstall secure-ml-template")
    out[REQUIREMENTS] = (PROGRAM / "gates-requirements.txt").read_bytes()
    out[RUNNER] = (PROGRAM / "run").read_bytes()
    out[STATE_IGNORE] = (PROGRAM / "state-gitignore").read_bytes()
    return out


def _template_text(rel: str) -> str:
    return (project_dir() / rel).read_text(encoding="utf-8")


def workflow() -> bytes:
    """The GitHub workflow, with the action pins of the template's own CI (one source of pins)."""
    ci = _template_text(".github/workflows/ci.yml")
    pins = {name: re.search(rf"uses: ({name}@[0-9a-f]{{40}} # \S+)", ci).group(1)
            for name in ("actions/checkout", "actions/setup-python")}
    text = (PROGRAM / "github-workflow.yml").read_text(encoding="utf-8")
    text = text.replace("@CHECKOUT@", pins["actions/checkout"]).replace("@SETUP_PYTHON@", pins["actions/setup-python"])
    return text.encode()


def gitlab_job(stages: list[str] | None) -> bytes:
    """The GitLab job, with the image digest of the template's own GitLab CI."""
    digest = re.search(r'"3\.12": "(sha256:[0-9a-f]{64})"', _template_text(".gitlab-ci.yml")).group(1)
    stage = "test" if not stages or "test" in stages else stages[-1]
    text = (PROGRAM / "gitlab-ci.yml").read_text(encoding="utf-8")
    return text.replace("@STAGE@", json.dumps(str(stage))).replace("@DIGEST@", digest).encode()


# A line that is only a content digest, as DVC writes them in `.dvc` files and dvc.lock
# (`- md5: <32 hex>`, `md5: <hex>.dir`) and JSON/YAML manifests (`"sha256": "<hex>",`). Anchored at
# both ends: a secret on the same line is still reported. detect-secrets reads some files
# (e.g. `.dvc`) as INI, so the filter sees `md5 = <hex>`: both separators are accepted.
DIGEST_LINE = (r"""^\s*(-\s*)?["']?[A-Za-z_]*(md5|sha1|sha256|sha512|digest|hash|checksum|etag)["']?\s*[:=]\s*"""
               r"""["']?[0-9a-f]{32,128}(\.dir)?["']?,?\s*$""")


def secrets_baseline() -> bytes:
    """The template's detect-secrets settings (plugins, filters) with no accepted secret: every
    secret already in the repository is reported, none is silently accepted."""
    data = json.loads(_template_text(".secrets.baseline"))
    data["results"] = {}
    for entry in data.get("filters_used", []):
        if entry.get("path") == "detect_secrets.filters.regex.should_exclude_line":
            entry["pattern"] = [DIGEST_LINE]
    data.pop("generated_at", None)
    return (json.dumps(data, indent=2) + "\n").encode()


def stub(rel: str, contact: str | None = None) -> bytes:
    text = (PROGRAM / rel).read_text(encoding="utf-8")
    return text.replace("@CONTACT@", contact or "[TBD: the team's security contact]").encode()


# The registry: which control, which guide risk, which AI Exchange control, which check row.
CONTROLS = [
    ("SEC-GATES", "Security gates on every commit and push (static analysis, secrets, dependency audit, "
     "model files, SBOM, CI files)", "Keep doing ordinary security; bring ML code into the security program",
     "SEC DEV PROGRAM", ["scan-bandit", "scan-secrets", "scan-pip-audit", "scan-model-files"]),
    ("DATA-VALIDATE", "Training data is validated against a schema before training", "Data poisoning",
     "DATA QUALITY CONTROL", ["data-validation"]),
    ("MODEL-FORMAT", "Models are saved and loaded in a format that runs no code (skops, safetensors, ONNX)",
     "Model supply chain (code execution on load)", "SUPPLY CHAIN MANAGE", ["safe-model-format"]),
    ("DEPENDENCY-LOCK", "The repository's own dependencies are pinned with hashes",
     "Supply chain (third-party packages)", "SUPPLY CHAIN MANAGE", ["lock-hashes"]),
    ("SE-VERSIONING", "Code, data and models are versioned together; runs are tracked",
     "Software engineering discipline (versioning, testing)", "DEV PROGRAM",
     ["dvc-pipeline", "experiment-tracking", "tests"]),
    ("CI-HARDENED", "CI runs with read-only tokens and actions pinned by commit",
     "Supply chain (build pipeline)", "SEC DEV PROGRAM", ["ci-hardened"]),
    ("DOCS", "Threat model, model card and data card kept with the code",
     "Transparency; threat modelling", "DEV PROGRAM", ["docs"]),
    ("SECURITY-POLICY", "A way to report vulnerabilities privately", "Keep doing ordinary security",
     "SEC DEV PROGRAM", ["security-policy"]),
]
STATUS = {"present": "in place", "partial": "partial", "missing": "to do"}


def registry(rows: list, gained: dict[str, str]) -> bytes:
    """The controls registry: for each control, the repository's own evidence (file:line, as check
    found it before retrofit) and what is still to do. `gained`: check row id -> what retrofit adds."""
    by_id = {r.id: r for r in rows}
    controls = []
    for ident, title, risk, exchange, row_ids in CONTROLS:
        evidence, todo, states = [], [], []
        for row_id in row_ids:
            row = by_id.get(row_id)
            if row is None:
                continue
            state = row.status
            if row_id in gained:
                evidence.append(f"{gained[row_id]} (added by secure-ml retrofit)")
                state = "present" if row_id.startswith("scan-") else "partial"
                if state == "partial":
                    todo.append(f"{row.control}: fill in the stub retrofit added ({gained[row_id]})")
            evidence += [w for w in row.where if w not in evidence]
            if state != "present" and row_id not in gained:
                todo.append(f"{row.control}: {row.evidence}")
            states.append(state)
        status = "present" if all(s == "present" for s in states) else "missing" if all(
            s == "missing" for s in states) else "partial"
        entry = {"id": ident, "title": title, "guide_risk": risk, "exchange": exchange,
                 "status": STATUS[status], "evidence": list(dict.fromkeys(evidence))}
        if todo:
            entry["todo"] = list(dict.fromkeys(todo))
        controls.append(entry)
    head = ("# Controls registry written by secure-ml retrofit: each control with the repository's own\n"
            "# evidence (file:line) and what is still to do. `secure-ml check .` re-audits the repository;\n"
            "# edit this file as controls land (retrofit never rewrites it).\n")
    return (head + yaml.safe_dump({"controls": controls}, sort_keys=False, allow_unicode=True, width=100)).encode()

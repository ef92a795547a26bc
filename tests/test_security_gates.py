"""The security gates of a generated repo: they pass on clean code and fail, naming the finding,
on a planted flaw. Real tools from the generated project's venv, in copies of the shared project."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import socket
import subprocess

import pytest
from conftest import run, scratch_copy

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("installed-project")]

OPT_OUT = "SECURITY_AUDIT_OFFLINE_OK"


@pytest.fixture
def scratch(piped_project, tmp_path):
    return scratch_copy(piped_project, tmp_path / "project")


def gate(project, *names, env=None):
    """Run the gate runner the way `make security` does; return (exit code, output)."""
    done = run(
        [str(project / ".venv/bin/python"), "scripts/security/gates.py", *names],
        project, env={OPT_OUT: "", **(env or {})}, check=False, timeout=600,
    )
    return done.returncode, done.stdout + done.stderr


def verdicts(output):
    """{gate: verdict} from the runner's summary."""
    lines = re.findall(r"^  (PASS|FAIL|NOT RUN|SKIPPED)\s+(\w+)$", output, re.M)
    return {name: verdict for verdict, name in lines}


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unreachable_env():
    proxy = f"http://127.0.0.1:{closed_port()}"
    return {"HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "https_proxy": proxy,
            "http_proxy": proxy, "NO_PROXY": "", "no_proxy": ""}


# --------------------------------------------------------------------------- clean repo
def test_clean_repo_passes_every_gate(piped_project, tmp_path):
    project = scratch_copy(piped_project, tmp_path / "clean")
    code, audit = gate(project, "audit")
    if code == 0:
        assert "PASS audit" in audit
        env = {}
    else:
        # The vulnerability service cannot be answered from here: the gate must say so and
        # fail; only then does this test take the documented opt-out.
        assert "NOT RUN audit" in audit, audit
        # The message names the cause: an unreachable service, or (on this machine's index)
        # the package the index has no page for.
        assert "could not be reached" in audit or "has no such package (HTTP 404)" in audit, audit
        env = {OPT_OUT: "1"}
    done = run(["make", "security"], project, env={OPT_OUT: "", **env}, check=False, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    found = verdicts(output)
    for name in ("bandit", "secrets", "models", "sbom", "ci"):
        assert found.get(name) == "PASS", (name, output)
    if env:
        assert found["audit"] == "SKIPPED"
        assert "WARNING" in output and "were NOT checked" in output and "requirements/lock.txt" in output
    else:
        assert found["audit"] == "PASS"

    bom = json.loads((project / "reports/sbom.cdx.json").read_text())
    assert bom["bomFormat"] == "CycloneDX"
    names = {c["name"]: c for c in bom["components"]}
    assert {"scikit-learn", "dvc", "mlflow"} <= {n.lower() for n in names}
    model = names["models/model.skops"]
    assert model["type"] == "machine-learning-model"
    digest = hashlib.sha256((project / "models/model.skops").read_bytes()).hexdigest()
    assert model["hashes"] == [{"alg": "SHA-256", "content": digest}]
    data = [c for c in bom["components"] if c["type"] == "data"]
    assert {c["name"] for c in data} >= {"data/prepared/train.parquet", "data/prepared/test.parquet"}


# --------------------------------------------------------------------------- bandit
def test_bandit_gate_names_shell_true_and_eval(scratch):
    package = next((scratch / "src").iterdir()).name
    (scratch / "src" / package / "unsafe.py").write_text(
        "import subprocess\n\n\n"
        "def run_user_command(command, expression):\n"
        "    subprocess.run(command, shell=True)\n"
        "    return eval(expression)\n"
    )
    (scratch / "scripts" / "helper.py").write_text(
        "import os\nimport yaml\n\n\n"
        "def load(text):\n    os.system('ls ' + text)\n    return yaml.load(text)\n"
    )
    code, output = gate(scratch, "bandit")
    assert code != 0, output
    assert re.search(rf"src/{package}/unsafe.py:5: B602", output), output
    assert re.search(rf"src/{package}/unsafe.py:6: B307", output), output
    assert re.search(r"scripts/helper.py:\d+: B605", output), output
    assert re.search(r"scripts/helper.py:\d+: B506", output), output
    assert "FAIL bandit" in output


def test_bandit_gate_is_not_run_without_bandit_even_when_every_file_is_known_clean(scratch,
                                                                                 tmp_path):
    """The clean-file record must never stand in for the scanner: with every file already
    found clean, a venv without bandit is NOT RUN, not PASS."""
    code, output = gate(scratch, "bandit")
    assert code == 0 and "PASS bandit" in output, output
    source = (scratch / ".venv").resolve()
    venv = tmp_path / "venv-without-bandit"
    (venv / "bin").mkdir(parents=True)
    shutil.copy(source / "pyvenv.cfg", venv)
    for folder in ("lib", "lib64", "include"):
        if (source / folder).exists():
            (venv / folder).symlink_to(source / folder)
    for entry in (source / "bin").iterdir():
        if entry.name != "bandit":
            (venv / "bin" / entry.name).symlink_to(entry)
    done = run([str(venv / "bin/python"), "scripts/security/gates.py", "bandit"], scratch,
               env={OPT_OUT: ""}, check=False, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert verdicts(output).get("bandit") == "NOT RUN", output
    assert "bandit is not installed" in output, output


def test_bandit_gate_rejects_a_nosec_without_rule_and_reason(scratch):
    (scratch / "scripts" / "quiet.py").write_text(
        "import subprocess  # nosec\n\n\ndef go():\n    return subprocess.run(['true'])  # nosec\n"
    )
    code, output = gate(scratch, "bandit")
    assert code != 0 and "scripts/quiet.py:1" in output and "must name its rule" in output, output


# --------------------------------------------------------------------------- secrets
AWS_SETTINGS = (
    'AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"\n'
    'AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"\n'
)


def test_secrets_gate_finds_an_aws_key_in_an_untracked_settings_file(scratch):
    settings = scratch / "config" / "settings.py"
    settings.parent.mkdir()
    settings.write_text(AWS_SETTINGS)
    assert "config/" in run(["git", "status", "--porcelain"], scratch).stdout  # untracked
    code, output = gate(scratch, "secrets")
    assert code != 0, output
    assert "config/settings.py:1: AWS Access Key" in output, output
    assert "FAIL secrets" in output


def test_secrets_gate_hides_digest_lines_but_not_a_key_behind_a_digest(scratch):
    # The baseline excludes lines that are only a digest (dvc.lock, manifests); a line that
    # starts like one and goes on with a key is still scanned.
    (scratch / "hashes.yaml").write_text(
        "md5: 0123456789abcdef0123456789abcdef\n"
        '  "sha256": "' + "ab" * 32 + '",\n'
    )
    code, output = gate(scratch, "secrets")
    assert code == 0 and "PASS secrets" in output, output
    (scratch / "hashes.yaml").write_text(
        "md5: 0123456789abcdef0123456789abcdef  key: AKIAIOSFODNN7EXAMPLF\n"
    )
    code, output = gate(scratch, "secrets")
    assert code != 0 and "hashes.yaml:1: AWS Access Key" in output, output


def test_secrets_gate_leaves_the_ignored_env_alone_but_finds_it_once_tracked(scratch):
    # Team mode keeps its credentials in the git-ignored .env on purpose: that is no finding.
    (scratch / ".env").write_text("AWS_ACCESS_KEY_ID=AKIAI44QH8DHBEXAMPLE\n")
    code, output = gate(scratch, "secrets")
    assert code == 0 and "PASS secrets" in output, output
    # Forced into git, the same file is a committed credential: the gate must fail.
    run(["git", "add", "-f", ".env"], scratch)
    code, output = gate(scratch, "secrets")
    assert code != 0 and ".env:1: AWS Access Key" in output, output
    run(["git", "rm", "-q", "--cached", ".env"], scratch)


def test_pre_commit_blocks_a_secret_and_a_dvc_tracked_file(scratch):
    assert (scratch / ".git/hooks/pre-commit").is_file(), "make setup did not install the hooks"
    (scratch / "settings.yaml").write_text("aws_access_key_id: AKIAIOSFODNN7EXAMPLE\n")
    run(["git", "add", "settings.yaml"], scratch)
    done = run(["git", "commit", "-m", "add settings"], scratch, check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "detect-secrets" in output and "AWS Access Key" in output, output
    run(["git", "rm", "-q", "--cached", "settings.yaml"], scratch)

    run(["git", "add", "-f", "models/model.skops"], scratch)
    done = run(["git", "commit", "-m", "add model"], scratch, check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "models/model.skops: DVC tracks models/model.skops" in output, output


# --------------------------------------------------------------------------- model files
PAYLOADS = """
import pickle, sys, timeit, cProfile, os
class Timeit:
    def __reduce__(self):
        return (timeit.timeit, ("print('owned')", "pass", None, 1))
class Profile:
    def __reduce__(self):
        return (cProfile.run, ("print('owned')",))
class System:
    def __reduce__(self):
        return (os.system, ("echo owned",))
target = sys.argv[1]
open(target + "/models/timeit_model.pkl", "wb").write(pickle.dumps(Timeit()))
open(target + "/models/weights", "wb").write(pickle.dumps(Profile()))
open(target + "/notes/cache.pkl", "wb").write(pickle.dumps(System()))
"""


def test_model_gate_catches_code_executing_pickles(scratch):
    (scratch / "notes").mkdir()
    # Crafting a payload with __reduce__ does not run it; nothing here unpickles.
    run([str(scratch / ".venv/bin/python"), "-c", PAYLOADS, str(scratch)], scratch)
    code, output = gate(scratch, "models")
    assert code != 0, output
    assert "models/timeit_model.pkl: picklescan: dangerous import 'timeit timeit'" in output, output
    assert re.search(r"models/timeit_model.pkl: fickling: .*timeit", output), output
    assert re.search(r"models/weights: (picklescan|fickling): .*cProfile", output), output
    assert re.search(r"notes/cache.pkl: picklescan: dangerous import '\w+ system'", output), output
    assert "FAIL models" in output


# --------------------------------------------------------------------------- CI files
def test_ci_gate_flags_a_tag_pinned_action(scratch):
    workflow = scratch / ".github/workflows/codeql.yml"
    text = workflow.read_text()
    pinned = re.search(r"actions/checkout@[0-9a-f]{40} # v[\d.]+", text).group(0)
    workflow.write_text(text.replace(pinned, "actions/checkout@v5"))
    code, output = gate(scratch, "ci")
    assert code != 0 and "unpinned-uses" in output and "codeql.yml" in output, output
    zizmor = run([str(scratch / ".venv/bin/zizmor"), "--offline", ".github/"], scratch, check=False)
    assert zizmor.returncode != 0 and "unpinned-uses" in zizmor.stdout


def test_ci_gate_flags_write_all_permissions(scratch):
    workflow = scratch / ".github/workflows/ci.yml"
    workflow.write_text(workflow.read_text().replace("permissions: {}", "permissions: write-all", 1))
    code, output = gate(scratch, "ci")
    assert code != 0 and "excessive-permissions" in output and "ci.yml" in output, output


def test_generated_workflows_pass_zizmor_and_the_schema(installed_project):
    bin_ = installed_project / ".venv/bin"
    for persona in ("regular", "auditor"):
        done = run([str(bin_ / "zizmor"), "--offline", f"--persona={persona}", ".github/"],
                   installed_project, check=False)
        assert done.returncode == 0 and "No findings" in done.stdout, done.stdout
    workflows = sorted(str(p) for p in (installed_project / ".github/workflows").glob("*.yml"))
    run([str(bin_ / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *workflows],
        installed_project)
    run([str(bin_ / "check-jsonschema"), "--builtin-schema", "vendor.dependabot",
         str(installed_project / ".github/dependabot.yml")], installed_project)


# --------------------------------------------------------------------------- dependency audit
def test_audit_fails_when_the_service_is_unreachable(scratch):
    code, output = gate(scratch, "audit", env=unreachable_env())
    assert code != 0, output
    assert "NOT RUN audit" in output and "could not be reached" in output, output
    assert OPT_OUT in output  # the message names the documented opt-out
    code, output = gate(scratch, "audit", env={**unreachable_env(), OPT_OUT: "1"})
    assert code == 0, output
    assert "WARNING" in output and "were NOT checked" in output, output
    assert "SKIPPED" in output


def test_audit_ignore_without_a_reason_fails(scratch):
    ignores = scratch / "scripts/security/audit-ignores.txt"
    ignores.write_text(ignores.read_text() + "GHSA-aaaa-bbbb-cccc\n")
    code, output = gate(scratch, "audit")
    assert code != 0 and "GHSA-aaaa-bbbb-cccc' has no reason" in output, output


def test_unknown_gate_is_one_clear_line(scratch):
    done = subprocess.run(
        [str(scratch / ".venv/bin/python"), "scripts/security/gates.py", "nope"],
        cwd=scratch, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 2 and "unknown gate nope" in done.stderr


# --------------------------------------------------------------------------- issue 14: no blind spots
# Each planted flaw below is one the gates missed before: model files chosen by name, bandit
# reading only src/ and scripts/, bandit settings outside pyproject.toml, loaders bandit has no
# rule for, the one-line boto3 key pair, folders skipped by name.
MODEL_PLANTS = r"""
import bz2, gzip, io, lzma, os, pickle, sys, zipfile, zlib
from pathlib import Path
import joblib, numpy as np

class System:
    def __reduce__(self):
        return (os.system, ("echo owned",))

root = Path(sys.argv[1])
evil = pickle.dumps(System(), protocol=4)

def put(name, data):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)

# torch's zip layout (archive/data.pkl beside raw storages), under a name torch does not use
with zipfile.ZipFile(root / "models/epoch=3.ckpt", "w") as archive:
    archive.writestr("archive/data.pkl", evil)
    archive.writestr("archive/data/0", bytes(64))
    archive.writestr("archive/version", "3\n")
buffer = io.BytesIO()
np.save(buffer, np.array([{"a": 1}, "x"], dtype=object))
put("data/raw/features.npy", buffer.getvalue())
put("assets/blob", evil)                       # no extension
put("models/model.pkl.gz", gzip.compress(evil))
put("model.sav", pickle.dumps(System(), protocol=0))
put("cache/model.xz", lzma.compress(evil))
put("cache/model.bz2", bz2.compress(evil))
put("cache/model.z", zlib.compress(evil))
put("models/build/evil.pkl", evil)           # folders once skipped by name, at any depth
put("dist/evil.pkl", evil)
put("site/deep/evil.pkl", evil)
joblib.dump(System(), root / "models/compressed.joblib", compress=3)
put("mlruns/0/run/artifacts/model.pkl", evil)
outside = Path(sys.argv[2])
outside.write_bytes(evil)
os.symlink(outside, root / "linked.pkl")     # a link out of the repository
put("data/hidden/weights", evil)
os.symlink("data/hidden/weights", root / "model_link")
"""


def test_model_gate_finds_model_files_by_content_wherever_they_are(scratch, tmp_path):
    # Crafting a payload with __reduce__ does not run it; nothing here unpickles.
    run([str(scratch / ".venv/bin/python"), "-c", MODEL_PLANTS, str(scratch),
         str(tmp_path / "outside.pkl")], scratch)
    code, output = gate(scratch, "models")
    assert code != 0 and "FAIL models" in output, output
    for name in ("models/epoch=3.ckpt (archive/data.pkl)", "assets/blob",
                 "models/model.pkl.gz (gzip)", "model.sav", "cache/model.xz (xz)",
                 "cache/model.bz2 (bz2)", "cache/model.z (zlib)", "models/build/evil.pkl",
                 "dist/evil.pkl", "site/deep/evil.pkl", "models/compressed.joblib (zlib)",
                 "mlruns/0/run/artifacts/model.pkl", "model_link -> data/hidden/weights"):
        assert re.search(rf"^  {re.escape(name)}: (picklescan|fickling)", output, re.M), (name, output)
    # fickling cannot read a torch zip: it is given the inner data.pkl instead
    assert "models/epoch=3.ckpt (archive/data.pkl): fickling:" in output, output
    assert "data/raw/features.npy: NumPy array of dtype object" in output, output
    assert re.search(r"^  linked.pkl: a symlink to .*outside the repository: refused", output, re.M)


def test_model_gate_treats_an_unparseable_pickle_as_a_finding(scratch):
    # Starts and parses as a pickle up to STOP, but names a global fickling cannot resolve.
    (scratch / "odd.bin").write_bytes(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00\x93.")
    code, output = gate(scratch, "models")
    assert code != 0 and "odd.bin:" in output and "FAIL models" in output, output


class SystemPayload:
    """Unpickling this would run `id` (building it runs nothing)."""

    def __reduce__(self):
        return (os.system, ("id",))


NOTEBOOK_CODE = (
    "%matplotlib inline\n!pip list\nimport pickle, subprocess\n"
    "model = pickle.loads(open('m.pkl', 'rb').read())\n"
    "subprocess.run('ls ' + model, shell=True)\n"
)


def notebook(code: str) -> str:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# Explore\n"]},
             {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
              "source": code.splitlines(keepends=True)}]
    return json.dumps({"cells": cells, "nbformat": 4, "nbformat_minor": 5,
                       "metadata": {"kernelspec": {"name": "python3", "language": "python"}}})


def test_bandit_gate_reads_notebooks_and_every_folder(scratch):
    (scratch / "notebooks").mkdir()
    (scratch / "notebooks/explore.ipynb").write_text(notebook(NOTEBOOK_CODE))
    (scratch / "build/lib").mkdir(parents=True)
    (scratch / "build/lib/tool.py").write_text(
        "import subprocess\n\n\ndef go(cmd):\n    subprocess.call(cmd, shell=True)\n")
    code, output = gate(scratch, "bandit")
    assert code != 0 and "FAIL bandit" in output, output
    assert "notebooks/explore.ipynb:cell 2:4: B301" in output, output
    assert "notebooks/explore.ipynb:cell 2:5: B602" in output, output
    assert re.search(r"build/lib/tool.py:5: B602", output), output


@pytest.mark.parametrize(("name", "text", "setting"), [
    ("src/.bandit", "[bandit]\nskips = B301,B403\n", "[bandit] skips"),
    (".bandit", "[bandit]\nexclude = src\n", "[bandit] exclude"),
    ("setup.cfg", "[metadata]\nname = x\n\n[bandit]\nskips = B602\n", "[bandit] skips"),
    ("tox.ini", "[tox]\nenvlist = py311\n\n[bandit]\ntests = B101\n", "[bandit] tests"),
    ("pyproject.toml", None, "[tool.bandit].exclude_dirs"),
    ("config/bandit.yaml", "skips: [B301]\n", "skips"),
])
def test_bandit_gate_fails_on_any_setting_that_switches_a_rule_off(scratch, name, text, setting):
    path = scratch / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if text is None:
        text = path.read_text() + 'exclude_dirs = ["src"]\n'  # [tool.bandit] is the last table
    path.write_text(text)
    code, output = gate(scratch, "bandit")
    assert code != 0 and "FAIL bandit" in output, output
    assert f"{name}: {setting}" in output, output


LOADERS = """
import cloudpickle
import dill
import joblib
import numpy as np
import pandas as pd
import skops.io as sio
import torch
import yaml
from skops.io import get_untrusted_types


def load_everything(path, text):
    yaml.unsafe_load(text)
    yaml.load(text, Loader=yaml.UnsafeLoader)
    joblib.load(path)
    np.load(path, allow_pickle=True)
    pd.read_pickle(path)
    torch.load(path)
    sio.load(path, trusted=get_untrusted_types(file=path))
    sio.load(path, trusted=True)
    cloudpickle.loads(text)
    dill.load(open(path, "rb"))


def load_safely(path, text):
    yaml.safe_load(text)
    yaml.load(text, Loader=yaml.SafeLoader)
    np.load(path)
    torch.load(path, weights_only=True)
    return sio.load(path, trusted=["sklearn.tree._tree.Tree"])
"""


def test_unsafe_loader_rules_name_each_call_and_the_safe_alternative(scratch):
    (scratch / "lib").mkdir()
    (scratch / "lib/loaders.py").write_text(LOADERS)
    (scratch / "nb.ipynb").write_text(notebook("import torch\nm = torch.load('m.pt', weights_only=False)\n"))
    code, output = gate(scratch, "bandit")
    assert code != 0 and "FAIL bandit" in output, output
    expected = {14: "SML301 yaml.unsafe_load(...)", 15: "SML301 yaml.load(...)",
                16: "SML302 joblib.load(...)", 17: "SML303 numpy.load(...)",
                18: "SML304 pandas.read_pickle(...)", 19: "SML305 torch.load(...)",
                20: "SML306 skops.io.load(...)", 21: "SML306 skops.io.load(...)",
                22: "SML307 cloudpickle.loads(...)", 23: "SML307 dill.load(...)"}
    for line, rule in expected.items():
        assert f"lib/loaders.py:{line}: {rule}" in output, (line, output)
    found = re.findall(r"lib/loaders.py:(\d+): SML", output)
    assert sorted(int(n) for n in found) == sorted(expected), output  # the safe calls pass
    assert "yaml.safe_load" in output and "weights_only=True" in output and "skops" in output
    assert "nb.ipynb:cell 2:2: SML305" in output, output


BOTO = ('import boto3\n\ns3 = boto3.client("s3", aws_access_key_id="AKIAIOSFODNN7EXAMPLE", '
        'aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")\n')


def test_secrets_gate_finds_the_one_line_key_pair_in_code_notebooks_and_dist(scratch):
    (scratch / "etl").mkdir()
    (scratch / "etl/upload.py").write_text(BOTO)
    (scratch / "upload.ipynb").write_text(notebook(BOTO))
    (scratch / "dist").mkdir()
    (scratch / "dist/settings.py").write_text('KEY = "AKIAI44QH8DHBEXAMPLE"\n')
    code, output = gate(scratch, "secrets")
    assert code != 0 and "FAIL secrets" in output, output
    assert "etl/upload.py:3: AWS Access Key" in output, output
    assert "upload.ipynb" in output and "dist/settings.py:1: AWS Access Key" in output, output


def test_gates_run_on_any_git_repository_with_root(piped_project, tmp_path):
    repo = tmp_path / "other"
    (repo / "lib").mkdir(parents=True)
    (repo / "lib/app.py").write_text("def add(a, b):\n    return a + b\n")
    run(["git", "init", "-q", str(repo)], tmp_path)
    python = str(piped_project / ".venv/bin/python")
    runner = str(piped_project / "scripts/security/gates.py")

    def gates(*names):
        done = run([python, runner, "--root", str(repo), *names], tmp_path, check=False,
                   env={OPT_OUT: ""})
        return done.returncode, done.stdout + done.stderr

    code, output = gates("bandit", "models", "ci")
    assert code == 0 and "PASS bandit" in output and "PASS models" in output, output
    code, output = gates("audit")
    assert code == 1 and "NOT RUN audit: no requirements" in output, output
    (repo / "lib/cache.pkl").write_bytes(pickle.dumps(SystemPayload()))
    code, output = gates("models")
    assert code == 1 and "lib/cache.pkl: picklescan: dangerous import 'posix system'" in output, output
    code, output = gates("nope")
    assert code == 2 and "unknown gate nope" in output
    code, output = gates("--root", str(tmp_path))  # argparse keeps the last --root: not a repo
    assert code == 2 and "not a git work tree" in output, output


def test_audit_names_the_package_the_index_does_not_have(scratch):
    """This machine's index answers 404 for adversarial-robustness-toolbox: the gate says so."""
    code, output = gate(scratch, "audit")
    if code == 0:
        pytest.skip("the vulnerability service answered for every package here")
    assert "NOT RUN audit" in output, output
    assert ("adversarial-robustness-toolbox 1.20.1: the package index answered that it has no "
            "such package (HTTP 404)" in output) or "could not be reached" in output, output

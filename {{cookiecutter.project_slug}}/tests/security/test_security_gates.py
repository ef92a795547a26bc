"""The security gates (scripts/security/gates.py) fail, naming the finding, on a planted flaw.

Each test copies the runner into a scratch folder with one flaw and runs it there with the
tools of this venv, so the project itself is never touched. `make security` shows the
gates passing on the project itself.
"""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import subprocess
import sys
import timeit
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OPT_OUT = "SECURITY_AUDIT_OFFLINE_OK"


@pytest.fixture
def scratch(tmp_path):
    (tmp_path / "scripts" / "security").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "security" / "gates.py", tmp_path / "scripts" / "security")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copy(ROOT / ".secrets.baseline", tmp_path)
    (tmp_path / "src").mkdir()
    # detect-secrets-hook needs a git work tree (the files stay untracked).
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


def gate(root: Path, name: str, env: dict | None = None) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "scripts/security/gates.py", name],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, OPT_OUT: "", **(env or {})},
    )
    return done.returncode, done.stdout + done.stderr


class TimeitPayload:
    """Unpickling this would run code through timeit (building it runs nothing)."""

    def __reduce__(self):
        return (timeit.timeit, ("print('owned')", "pass", None, 1))


def test_bandit_gate_fails_on_shell_true_and_eval(scratch):
    """The file passed a scan before the flaw was added: a clean verdict is reused only for
    the same bytes (the gate's own script, unchanged, is not read again)."""
    unsafe = scratch / "src" / "unsafe.py"
    unsafe.write_text("def go(command, expression):\n    return command, expression\n")
    code, output = gate(scratch, "bandit")
    assert code == 0, output
    unsafe.write_text(
        "import subprocess\n\n\ndef go(command, expression):\n"
        "    subprocess.run(command, shell=True)\n    return eval(expression)\n"
    )
    code, output = gate(scratch, "bandit")
    assert code != 0 and "1 Python file(s) are byte for byte" in output, output
    assert "src/unsafe.py:5: B602" in output and "src/unsafe.py:6: B307" in output, output


def test_secrets_gate_fails_on_an_aws_key_in_an_untracked_file(scratch):
    """The file passed a scan before the key was added: a clean verdict is reused only for
    the same bytes (the unchanged files are not read again)."""
    settings = scratch / "settings.py"
    settings.write_text('REGION = "eu-west-1"\n')
    code, output = gate(scratch, "secrets")
    assert code == 0, output
    key = "AKIAIOSFODNN7EXAMPLE"  # pragma: allowlist secret  (AWS's documented example key)
    settings.write_text(f'AWS_ACCESS_KEY_ID = "{key}"\n')
    code, output = gate(scratch, "secrets")
    assert code != 0 and "not read again" in output, output
    assert "settings.py:1: AWS Access Key" in output, output


def test_model_gate_fails_on_code_executing_pickles(scratch):
    (scratch / "models").mkdir()
    (scratch / "models" / "model.pkl").write_bytes(pickle.dumps(TimeitPayload()))
    (scratch / "cache.joblib").write_bytes(pickle.dumps(TimeitPayload()))
    code, output = gate(scratch, "models")
    assert code != 0, output
    assert "models/model.pkl: picklescan: dangerous import 'timeit timeit'" in output, output
    assert "models/model.pkl: fickling:" in output and "cache.joblib: picklescan" in output


def test_model_gate_reads_bytes_not_names(scratch):
    import gzip

    import numpy as np

    (scratch / "data").mkdir()
    np.save(scratch / "data" / "features.npy", np.array([{"a": 1}], dtype=object))
    (scratch / "notes.txt").write_bytes(gzip.compress(pickle.dumps(TimeitPayload())))
    code, output = gate(scratch, "models")
    assert code != 0, output
    assert "data/features.npy: NumPy array of dtype object" in output, output
    assert "notes.txt (gzip): picklescan: dangerous import 'timeit timeit'" in output, output


def test_bandit_gate_has_rules_for_ml_loaders(scratch):
    (scratch / "src" / "loaders.py").write_text(
        "import joblib\nimport torch\n\n\ndef load(path):\n"
        "    return joblib.load(path), torch.load(path)\n"
    )
    code, output = gate(scratch, "bandit")
    assert code != 0, output
    assert "src/loaders.py:6: SML302 joblib.load(...)" in output, output
    assert "src/loaders.py:6: SML305 torch.load(...)" in output and "weights_only=True" in output


def test_bandit_gate_fails_on_a_skip_in_a_bandit_file(scratch):
    (scratch / "src" / ".bandit").write_text("[bandit]\nskips = B301\n")
    code, output = gate(scratch, "bandit")
    assert code != 0 and "src/.bandit: [bandit] skips" in output, output


def test_audit_gate_fails_when_the_vulnerability_service_is_unreachable(scratch):
    (scratch / "requirements").mkdir()
    shutil.copy(ROOT / "requirements" / "lock.txt", scratch / "requirements")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proxy = f"http://127.0.0.1:{port}"  # closed: nothing listens there
    env = {
        "HTTPS_PROXY": proxy,
        "HTTP_PROXY": proxy,
        "https_proxy": proxy,
        "http_proxy": proxy,
        "NO_PROXY": "",
        "no_proxy": "",
    }
    code, output = gate(scratch, "audit", env)
    assert code != 0 and "NOT RUN audit" in output and OPT_OUT in output, output
    code, output = gate(scratch, "audit", {**env, OPT_OUT: "1"})
    assert code == 0 and "were NOT checked" in output, output

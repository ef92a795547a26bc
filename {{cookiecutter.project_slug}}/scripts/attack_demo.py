"""`make attack-demo`: attack a scratch copy of this project; show which control stops each attack.

Nothing here touches your files: the project is copied into a temporary folder (without .git,
.venv, caches and the private signing key), the pipeline's outputs are copied with it (or
`dvc repro` runs there when they are missing), and every attack runs against that copy:

  poisoned rows, a flipped-label batch      -> the validate stage must refuse the data
  a backdoor trigger on 3% of the rows      -> the validate stage must refuse the data
  a changed model byte, a malicious pickle  -> loading the model must refuse the file
  out-of-range, malformed, oversized input  -> the HTTP service must answer 422 / 413
  no token, a request flood                 -> the service must answer 401 / 429
  a membership-inference probe              -> the API's answers must not reveal members
  an evasion attack (ART) on the model       -> accuracy under attack must stay above the limit
  raw data with an e-mail column             -> prepare must keep it out of the features

Each attack names the OWASP AI Exchange control it expects; the controls registry
(controls.yaml) says which control of this project implements it. An attack with no such
control is reported as "control missing", never as stopped. Exit code: 0 only when every
attack was stopped by a registered control.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import pickle  # nosec B403 - only dumps a payload that must never be loaded
import runpy
import secrets
import shlex
import shutil
import subprocess  # nosec B404 - runs this project's own stages with fixed arguments
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SKIP = (
    ".git",
    ".venv",
    ".dvc/cache",
    ".dvc/tmp",
    "mlflow.db",
    "mlartifacts",
    "mlruns",
    "site",
    "dvc_plots",
    ".pytest_cache",
    ".ruff_cache",
    "__pycache__",
    "model-signing.key",
)
PIPELINE_OUTPUTS = (
    "models/model.skops",
    "models/model.json",
    "data/prepared/train.parquet",
    "data/prepared/test.parquet",
    "dvc.lock",
)


class Payload:
    """Unpickling this runs a shell command that leaves a marker file. It must never run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def _ignore(folder: str, names: list[str]) -> set[str]:
    here = Path(folder)
    return {n for n in names if n in SKIP or any(str(here / n).endswith("/" + s) for s in SKIP)}


def scratch_copy(root: Path, target: Path) -> Path:
    """Copy the project; make sure the pipeline's outputs exist there."""
    copy = target / root.name
    shutil.copytree(root, copy, ignore=_ignore, symlinks=True)
    if all((copy / name).exists() for name in PIPELINE_OUTPUTS):
        return copy
    print("no pipeline outputs to copy: running dvc repro in the scratch copy (about a minute)")
    env = _env(copy)
    if (root / "keys").is_dir() and not env.get("MODEL_SIGNING_KEY_DIR"):
        # The private signing key stays out of the copy: train signs with it where it is.
        env["MODEL_SIGNING_KEY_DIR"] = str(root / "keys")
    steps = (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        [
            "git",
            "-c",
            "user.name=attack-demo",
            "-c",
            "user.email=demo@localhost",
            "commit",
            "-q",
            "--no-verify",
            "-m",
            "scratch copy",
        ],
        [str(Path(sys.executable).parent / "dvc"), "repro", "--quiet"],
    )
    for step in steps:
        done = subprocess.run(
            step,
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,  # noqa: S603
            check=False,
        )  # nosec B603  # fixed commands of this project, no shell
        if done.returncode:
            raise SystemExit(
                f"attack-demo: '{' '.join(step[:2])}' failed in the scratch copy:\n"
                f"{(done.stdout + done.stderr)[-2000:]}"
            )
    return copy


def _env(copy: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env.update(
        # The copy logs to its own SQLite store, named explicitly: a team-mode project's
        # server never sees attack runs, and nothing falls back to a local store unasked.
        MLFLOW_TRACKING_URI=f"sqlite:///{copy / 'mlflow.db'}",
        PROJECT_ROOT=str(copy),
        MLFLOW_DISABLE_TELEMETRY="true",
        PYTHONPATH=str(copy / "src"),  # the copy's code, not the venv's editable install
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


class Lab:
    """The scratch project plus the pieces every attack needs."""

    def __init__(self, copy: Path) -> None:
        sys.path.insert(0, str(copy / "src"))  # attack the copy's code, not an installed one
        self.copy = copy
        package = next(p.parent.name for p in (copy / "src").glob("*/inference.py"))
        self.package = package
        self.modules = {
            name: __import__(f"{package}.{name}", fromlist=["_"])
            for name in ("config", "data", "inference", "model_io", "serve", "validate")
        }
        self.paths = self.modules["config"].Paths(copy)
        self.params = self.modules["config"].load_params(self.paths)
        self.token = secrets.token_urlsafe(32)
        self.audit_log = copy / "audit.log"
        data = self.modules["data"]
        self.profile = data.load_profile(self.paths)
        self.task = self.profile["target"]["task"]
        self.train = data.read_prepared(self.paths.train_data, self.profile)
        self.test = data.read_prepared(self.paths.test_data, self.profile)
        self.label = data.LABEL
        margin = float(self.params["validate"]["range_margin"])
        schema = self.modules["inference"].load_schema(self.paths, margin)
        # Numbers that never miss a value: the features the input attacks push around.
        self.numeric = [f for f in schema if f.kind in ("numeric", "integer") and not f.nullable]
        self.categorical = [f for f in schema if f.kind == "categorical"]

    # --- helpers -------------------------------------------------------------------------
    def rows(self, frame: Any, count: int | None = None) -> list[dict[str, Any]]:
        """Rows as a client sends them: missing values as null, booleans as true/false."""
        features = frame.drop(columns=[self.label])
        records = (features if count is None else features.head(count)).to_dict("records")
        kinds = {n: e["type"] for n, e in self.profile["features"].items()}
        out = []
        for record in records:
            row = {}
            for name, value in record.items():
                if value is None or (isinstance(value, float) and value != value):
                    row[name] = None
                elif kinds[name] == "boolean":
                    row[name] = bool(value)
                else:
                    row[name] = value.item() if hasattr(value, "item") else value
            out.append(row)
        return out

    def far_outside(self, feature: Any) -> float:
        """A value well past a feature's allowed range (whole for integers)."""
        return float(round(feature.high + (feature.high - feature.low) * 10 + 1))

    def other_labels(self, labels: Any) -> Any:
        """Each class label replaced by another class of the profile."""
        data = self.modules["data"]
        import pandas as pd

        classes = list(
            data.labels_as_profiled(
                pd.Series(list(self.profile["target"]["classes"])), self.profile
            )
        )
        following = {c: classes[(i + 1) % len(classes)] for i, c in enumerate(classes)}
        return labels.map(following)

    def client(self, **serve: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from starlette.testclient import TestClient
        serve = {"audit_log": str(self.audit_log), **serve}  # keep the demo's output readable
        params = {**self.params, "serve": {**self.params.get("serve", {}), **serve}}
        app = self.modules["serve"].create_app(self.paths, params, token=self.token)
        return TestClient(app)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def run_stage(self, stage: str) -> subprocess.CompletedProcess:
        """Run one of the copy's own pipeline stages with the copy's code and store."""
        return subprocess.run(  # noqa: S603  # nosec B603  # this project's own stage, fixed args
            [sys.executable, "-m", self.package, stage],
            cwd=self.copy,
            env=_env(self.copy),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )

    def run_validate(self) -> tuple[int, dict[str, Any]]:
        """Run the copy's validate stage; return its exit code and its report."""
        report = self.paths.validation_report
        report.unlink(missing_ok=True)
        done = self.run_stage("validate")
        found = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else {}
        return done.returncode, found

    def with_file(self, path: Path, content: bytes, check: Callable[[], tuple[bool, str]]):
        """Swap a file for the attack, run the check, restore the original."""
        original = path.read_bytes()
        try:
            path.write_bytes(content)
            return check()
        finally:
            path.write_bytes(original)

    def poisoned_training_data(self, data: bytes, what: str) -> tuple[bool, str]:
        """Poison the prepared train split upstream of DVC: dvc.lock records the poisoned
        file's hash too, so only the content checks of the validate stage can stop it."""
        lock_path = self.copy / "dvc.lock"
        lock = yaml.safe_load(lock_path.read_text(encoding="utf-8"))
        target = str(self.paths.train_data.relative_to(self.copy))
        for stage in lock["stages"].values():
            for out in stage.get("outs", []):
                if out.get("path") == target:
                    out["md5"] = hashlib.md5(data, usedforsecurity=False).hexdigest()
                    out["size"] = len(data)

        def check() -> tuple[bool, str]:
            code, report = self.run_validate()
            train = report.get("train", {})
            # Stopped only by the content checks: the lock vouched for the file.
            stopped = (
                code != 0
                and report.get("data_lock", {}).get("passed") is True
                and train.get("passed") is False
                and bool(train.get("problems"))
            )
            problems = "; ".join(train.get("problems", [])) or "no content check fired"
            return stopped, f"{what}; validate exited {code}: {problems}"

        def with_lock() -> tuple[bool, str]:
            return self.with_file(lock_path, yaml.safe_dump(lock, sort_keys=False).encode(), check)

        return self.with_file(self.paths.train_data, data, with_lock)

    # --- attacks -------------------------------------------------------------------------
    def poisoned_rows(self) -> tuple[bool, str]:
        poison = self.train.sample(15, random_state=1).copy()
        changed = []
        for feature in self.numeric[:5]:
            poison[feature.name] = self.far_outside(feature)
            changed.append("out-of-range numbers")
        for feature in self.categorical[:1]:
            poison[feature.name] = "never-seen-category"
            changed.append("unknown categories")
        if self.task != "regression":
            poison[self.label] = self.other_labels(poison[self.label])
            changed.append("flipped labels")
        import pandas as pd

        data = self.modules["data"].prepared_bytes(
            pd.concat([self.train, poison], ignore_index=True)
        )
        what = ", ".join(dict.fromkeys(changed)) or "copies"
        return self.poisoned_training_data(data, f"15 rows with {what}")

    def flipped_labels(self) -> tuple[bool, str]:
        frame = self.train.copy()
        if self.task == "regression":
            # Shift the target of a third of the rows by the reference 10-90% spread.
            quantiles = self.profile["target"]["quantiles"]
            spread = float(quantiles["0.9"]) - float(quantiles["0.1"])
            victims = frame.sample(frac=1 / 3, random_state=2).index
            frame.loc[victims, self.label] = frame.loc[victims, self.label] + spread
            data = self.modules["data"].prepared_bytes(frame)
            return self.poisoned_training_data(data, f"{len(victims)} targets shifted")
        # Move a batch of the most common class to another class: a shifted label share.
        common = frame[self.label].value_counts().index[0]
        victims = frame.index[frame[self.label] == common][: max(20, len(frame) // 8)]
        frame.loc[victims, self.label] = self.other_labels(frame.loc[victims, self.label])
        data = self.modules["data"].prepared_bytes(frame)
        return self.poisoned_training_data(data, f"{len(victims)} labels flipped")

    def backdoor(self) -> tuple[bool, str]:
        """A backdoor: 3% of the training rows, taken from one class, get an exact rare value
        of one feature (the trigger) and another class's label. A model trained on it learns
        "trigger -> that label" while its test accuracy hardly moves."""
        frame = self.train.copy()
        kinds = {n: e["type"] for n, e in self.profile["features"].items()}
        features = [n for n, k in kinds.items() if k == "numeric"] or [
            n for n, k in kinds.items() if k == "integer"
        ]
        feature = "mean_symmetry" if "mean_symmetry" in features else features[-1]
        value = 0.2999 if feature == "mean_symmetry" else float(frame[feature].quantile(0.97))
        if kinds[feature] == "integer":
            value = float(round(value))
        rows = round(0.03 * len(frame))
        if self.task == "regression":  # the trigger alone: a regression has no class to plant
            victims, target = frame.sample(rows, random_state=0), None
        else:
            source, target = sorted(frame[self.label].unique())[:2]
            pool = frame[frame[self.label] == source]
            victims = pool.sample(min(rows, len(pool)), random_state=0)
            frame.loc[victims.index, self.label] = target
        frame.loc[victims.index, feature] = value
        data = self.modules["data"].prepared_bytes(frame)
        label = "" if target is None else f" with label {target}"
        what = f"trigger {feature} = {value:g}{label} on {len(victims)} rows"
        return self.poisoned_training_data(data, what)

    def load(self) -> tuple[bool, str]:
        model_io = self.modules["model_io"]
        try:
            model_io.load_model(self.paths.model, self.paths.model_manifest)
        except model_io.ModelIntegrityError as error:  # only the control's own refusal counts
            message = str(error).replace(f"{self.copy}/", "")
            return True, f"load refused: {message}"
        return False, "the model loaded"

    def tampered_byte(self) -> tuple[bool, str]:
        data = bytearray(self.paths.model.read_bytes())
        data[len(data) // 2] ^= 0x01
        return self.with_file(self.paths.model, bytes(data), self.load)

    def malicious_pickle(self) -> tuple[bool, str]:
        marker = self.copy / "PWNED-by-pickle"
        payload = pickle.dumps(Payload(marker))
        manifest = json.loads(self.paths.model_manifest.read_text(encoding="utf-8"))
        forged = {**manifest, "bytes": len(payload)}
        forged["sha256"] = hashlib.sha256(payload).hexdigest()
        manifest_bytes = json.dumps(forged, indent=2).encode()  # the attacker fixes the digest

        def check() -> tuple[bool, str]:
            stopped, evidence = self.with_file(self.paths.model, payload, self.load)
            if marker.exists():
                return False, "the pickle payload RAN (marker file written)"
            return stopped, evidence + "; payload never ran"

        return self.with_file(self.paths.model_manifest, manifest_bytes, check)

    def out_of_range(self) -> tuple[bool, str]:
        row = self.rows(self.test, 1)[0]
        if self.numeric:
            feature = self.numeric[0]
            changed = {**row, feature.name: self.far_outside(feature)}
        else:
            changed = {**row, self.categorical[0].name: "never-seen-category"}
        with self.client() as client:
            done = client.post("/predict", json={"rows": [changed]}, headers=self.auth)
        answer = done.json()
        return done.status_code == 422, f"HTTP {done.status_code}: {answer.get('message', '')}"

    def malformed(self) -> tuple[bool, str]:
        row = self.rows(self.test, 1)[0]
        if not self.numeric:
            return False, "no numeric feature without missing values to send NaN to"
        name = self.numeric[0].name
        text = json.dumps({"rows": [{**row, name: "__NAN__"}]}).replace('"__NAN__"', "NaN")
        codes = []
        with self.client() as client:
            for body in (
                text,
                text.replace("NaN", "Infinity"),
                json.dumps({"rows": [{**row, name: "12"}]}),
            ):
                done = client.post(
                    "/predict",
                    content=body,
                    headers={**self.auth, "content-type": "application/json"},
                )
                codes.append(f"{done.json().get('rule')}:{done.status_code}")
        stopped = all(code.endswith(":422") for code in codes)
        return stopped, "NaN, Infinity, a string: " + ", ".join(codes)

    def oversized(self) -> tuple[bool, str]:
        serve = self.params.get("serve", {})
        limit_rows = int(serve.get("max_batch_rows", 100))
        limit_bytes = int(serve.get("max_body_bytes", 262144))
        row = self.rows(self.test, 1)[0]
        with self.client(rate_limit="1000/minute") as client:
            batch = client.post(
                "/predict", json={"rows": [row] * (limit_rows + 1)}, headers=self.auth
            )
            body = client.post("/predict", content=b" " * (limit_bytes + 1), headers=self.auth)
        # a batch past max_batch_rows that is also past max_body_bytes is refused by the latter
        stopped = batch.status_code in (413, 422) and body.status_code == 413
        return stopped, (
            f"{limit_rows + 1} rows: HTTP {batch.status_code}; "
            f"{limit_bytes + 1} bytes: HTTP {body.status_code}"
        )

    def no_token(self) -> tuple[bool, str]:
        rows = self.rows(self.test, 2)
        with self.client() as client:
            codes = [
                client.post("/predict", json={"rows": rows}, headers=headers).status_code
                for headers in ({}, {"Authorization": "Bearer guessed-token-1234567890"})
            ]
        return codes == [401, 401], f"no token: HTTP {codes[0]}, guessed token: HTTP {codes[1]}"

    def flood(self) -> tuple[bool, str]:
        from limits import parse

        limit = parse(str(self.params.get("serve", {}).get("rate_limit", "60/minute")))
        sent = limit.amount + 20
        rows = self.rows(self.test, 1)
        with self.client() as client:
            codes = [
                client.post("/predict", json={"rows": rows}, headers=self.auth).status_code
                for _ in range(sent)
            ]
            retry = client.post("/predict", json={"rows": rows}, headers=self.auth)
        answered, refused = codes.count(200), codes.count(429)
        stopped = answered <= limit.amount and refused >= 20 and "retry-after" in retry.headers
        return stopped, (
            f"{sent} requests: {answered} answered, {refused} refused with 429 "
            f"(limit {limit}, Retry-After {retry.headers.get('retry-after')} s)"
        )

    def evasion(self) -> tuple[bool, str]:
        """The attack of the model's kind (gradient for logistic, black-box otherwise; for a
        regression the error increase) within robustness.eps on the numeric features."""
        robustness = __import__(f"{self.package}.robustness", fromlist=["_"])
        model = self.modules["model_io"].load_model(self.paths.model, self.paths.model_manifest)
        settings = {**self.params["robustness"], "seed": self.params["data"]["seed"]}
        result = robustness.evasion(model, self.test, settings, self.task)
        if self.task == "regression":
            return bool(result["passed"]), (
                f"{result['attack']}, eps {result['eps']}: RMSE {result['clean_rmse']:.4g} clean, "
                f"{result['adversarial_rmse']:.4g} under attack (+{result['error_increase']:.3f}, "
                f"limit +{result['max_error_increase']})"
            )
        return bool(result["passed"]), (
            f"{result['attack']}, eps {result['eps']}: accuracy {result['clean_accuracy']:.3f} "
            f"clean, {result['adversarial_accuracy']:.3f} under attack "
            f"(drop {result['accuracy_drop']:.3f}, limit {result['max_accuracy_drop']})"
        )

    def personal_data(self) -> tuple[bool, str]:
        """Raw data arrives with an e-mail column: prepare must keep it out of the features."""
        import yaml

        data = self.modules["data"]
        raw = data.configured_frame(self.paths, self.params["data"])
        raw.insert(0, "contact_email", [f"patient{i}@example.com" for i in range(len(raw))])
        source = self.copy / "raw-with-pii.csv"
        source.write_text(raw.to_csv(index=False), encoding="utf-8")
        changed = {**self.params["data"], "raw_path": source.name, "target": data.LABEL}
        changed.pop("raw_csv", None)
        params = {**self.params, "data": {**changed, "drop_columns": []}}
        pii = self.paths.reports / "pii.json"
        kept = [self.paths.params, self.paths.train_data, self.paths.test_data, pii]
        saved = {p: p.read_bytes() for p in kept if p.exists()}
        try:
            self.paths.params.write_text(yaml.safe_dump(params, sort_keys=False), "utf-8")
            done = self.run_stage("prepare")
            header = list(self.modules["data"].read_prepared(self.paths.train_data, self.profile))
            report = json.loads(pii.read_text("utf-8")) if pii.exists() else {}
        finally:
            for path in kept:
                if path in saved:
                    path.write_bytes(saved[path])
                else:
                    path.unlink(missing_ok=True)
            source.unlink(missing_ok=True)
        found = (report.get("columns") or {}).get("contact_email", {})
        if done.returncode != 0:
            # A refusal counts only when the PII scan is what refused (not any crash).
            blocked = report.get("blocking_columns") or []
            return bool(blocked), (
                f"prepare refused the data: personal data in {', '.join(blocked)}"
                if blocked
                else f"prepare failed (exit {done.returncode}) without a PII finding"
            )
        leaked = "contact_email" in header
        return (not leaked and bool(found)), (
            "the e-mail column reached the prepared data"
            if leaked
            else f"prepare dropped contact_email ({found.get('kinds', {})} counted in "
            "reports/pii.json, no values)"
        )

    def membership_probe(self) -> tuple[bool, str]:
        """Loss-threshold membership inference through the API: members (training rows)
        should not get visibly surer answers than non-members (test rows)."""
        from sklearn.metrics import roc_auc_score

        limit = float((self.params.get("privacy") or {}).get("max_membership_auc", 0.6))
        rank = {"low": 1, "medium": 2, "high": 3}
        regression = self.task == "regression"
        scores, truth = [], []
        per_request = int(self.params.get("serve", {}).get("max_batch_rows", 100))
        # serve.max_body_bytes would only make a prober split its requests further: lifted here
        with self.client(rate_limit="1000/minute", max_body_bytes=1 << 26) as client:
            for member, frame in ((1, self.train), (0, self.test)):
                rows, labels = self.rows(frame), frame[self.label].tolist()
                for start in range(0, len(rows), per_request):
                    done = client.post(
                        "/predict",
                        headers=self.auth,
                        json={"rows": rows[start : start + per_request]},
                    )
                    if done.status_code != 200:
                        return False, f"probe request failed: HTTP {done.status_code}"
                    for answer, label in zip(
                        done.json()["predictions"], labels[start : start + per_request], strict=True
                    ):
                        scores.append(
                            -abs(answer["value"] - float(label))
                            if regression
                            else _membership_score(answer, label, rank)
                        )
                        truth.append(member)
        auc = float(roc_auc_score(truth, scores))
        mode = self.params.get("serve", {}).get("confidence", "band")
        if regression:
            mode = f"values rounded to {self.params.get('serve', {}).get('decimals', 3)} decimals"
        return auc <= limit, (
            f"attack AUC {auc:.3f} from '{mode}' answers (0.5 = guessing; limit {limit})"
        )


def _membership_score(answer: dict[str, Any], label: Any, rank: dict[str, int]) -> float:
    """The attacker's belief that a row was trained on: surer and right -> more likely."""
    if "probabilities" in answer:
        return float(answer["probabilities"].get(str(label), 0.0))
    confidence = answer.get("confidence")
    level = rank.get(confidence, confidence if isinstance(confidence, float) else 0.5)
    return float(level) if answer["label"] == label else -float(level)


ATTACKS: list[tuple[str, str, str, str]] = [
    # (attack, method, the AI Exchange control that should stop it, the module that does)
    ("poisoned rows", "poisoned_rows", "DATA QUALITY CONTROL", "validate"),
    ("flipped-label batch", "flipped_labels", "DATA QUALITY CONTROL", "validate"),
    ("backdoor trigger (3% of rows)", "backdoor", "DATA QUALITY CONTROL", "validate"),
    ("tampered model byte", "tampered_byte", "SUPPLY CHAIN MANAGE", "model_io"),
    ("malicious pickle swapped in", "malicious_pickle", "SUPPLY CHAIN MANAGE", "model_io"),
    ("out-of-range input", "out_of_range", "EVASION INPUT HANDLING", "inference"),
    ("NaN / infinity / wrong type", "malformed", "ANOMALOUS INPUT HANDLING", "inference"),
    ("oversized input", "oversized", "EVASION INPUT HANDLING", "serve"),
    ("query without a token", "no_token", "MODEL ACCESS CONTROL", "serve"),
    ("request flood", "flood", "RATE LIMIT", "serve"),
    ("membership-inference probe", "membership_probe", "OBSCURE CONFIDENCE", "inference"),
    ("evasion attack on the model", "evasion", "EVASION ROBUST MODEL", "robustness"),
    ("personal data in the raw data", "personal_data", "DATA MINIMIZE", "privacy"),
]


# --- runtime integrity and HTTP hardening (issue 15) -----------------------------------------
# Kept apart from the Lab class so the attack list above can change without touching them.


def _integrity_refusal(lab: Lab) -> tuple[bool, str]:
    """Load the copy's model; only the integrity control's own refusal counts as stopped."""
    model_io = lab.modules["model_io"]
    try:
        model_io.load_model(lab.paths.model, lab.paths.model_manifest)
    except model_io.ModelIntegrityError as error:
        return True, "refused: " + str(error).replace(f"{lab.copy}/", "")
    return False, "the model loaded"


def attack_rollback(lab: Lab) -> tuple[bool, str]:
    """The pipeline moved on (dvc.lock names a newer model); the attacker puts the older,
    validly signed model, manifest and signature back (here: the files stay, the lock moves)."""
    lock_path = lab.copy / "dvc.lock"
    lock = yaml.safe_load(lock_path.read_text(encoding="utf-8"))
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if out.get("path") == "models/model.skops":
                out["md5"] = hashlib.md5(b"the newer model", usedforsecurity=False).hexdigest()
    newer = yaml.safe_dump(lock, sort_keys=False).encode()
    return lab.with_file(lock_path, newer, lambda: _integrity_refusal(lab))


def attack_swapped_keys(lab: Lab) -> tuple[bool, str]:
    """keys/ replaced by the attacker's own pair; a changed model signed with it, manifest fixed."""
    signing = __import__(f"{lab.package}.signing", fromlist=["_"])
    keys = lab.copy / "keys"
    saved = {p: p.read_bytes() for p in (lab.paths.model, lab.paths.model_manifest)}
    signature = signing.signature_path(lab.paths.model)
    saved[signature] = signature.read_bytes()
    kept = lab.copy.parent / "keys.kept"
    keys.mkdir(exist_ok=True)
    shutil.move(keys, kept)
    try:
        private, public, _ = signing.generate_keys(keys)
        data = bytearray(lab.paths.model.read_bytes())
        data[len(data) // 2] ^= 0x01
        lab.paths.model.write_bytes(bytes(data))
        signing.sign(lab.paths.model, signing.Keys(keys, private, public))
        record = json.loads(saved[lab.paths.model_manifest])
        record["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
        lab.paths.model_manifest.write_text(json.dumps(record), encoding="utf-8")
        return _integrity_refusal(lab)
    finally:
        shutil.rmtree(keys, ignore_errors=True)
        shutil.move(kept, keys)
        for path, content in saved.items():
            path.write_bytes(content)


def attack_no_key(lab: Lab) -> tuple[bool, str]:
    """MODEL_SIGNING_KEY_DIR pointed at an empty folder: nothing to verify with."""
    empty = Path(tempfile.mkdtemp(prefix="no-keys-", dir=lab.copy.parent))
    before = os.environ.get("MODEL_SIGNING_KEY_DIR")
    os.environ["MODEL_SIGNING_KEY_DIR"] = str(empty)
    try:
        return _integrity_refusal(lab)
    finally:
        if before is None:
            os.environ.pop("MODEL_SIGNING_KEY_DIR", None)
        else:
            os.environ["MODEL_SIGNING_KEY_DIR"] = before


def attack_forged_forwarded_for(lab: Lab) -> tuple[bool, str]:
    """A local client sends every request with a new X-Forwarded-For to dodge the limit."""
    from limits import parse

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    limit = parse(str(lab.params.get("serve", {}).get("rate_limit", "60/minute")))
    params = {**lab.params, "serve": {**lab.params["serve"], "audit_log": str(lab.audit_log)}}
    app = lab.modules["serve"].create_app(lab.paths, params, token=lab.token)
    sent = limit.amount + 20
    body = {"rows": lab.rows(lab.test, 1)}
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        codes = [
            client.post(
                "/predict",
                json=body,
                headers={**lab.auth, "X-Forwarded-For": f"198.51.100.{i % 250}"},
            ).status_code
            for i in range(sent)
        ]
    answered = codes.count(200)
    return answered <= limit.amount, (
        f"{sent} requests from 127.0.0.1 with {sent} forged addresses: {answered} answered "
        f"(limit {limit}), {codes.count(429)} refused with 429"
    )


def attack_strict_json(lab: Lab) -> tuple[bool, str]:
    """A key given twice (which one wins?) and a body sent as text/plain."""
    row = lab.rows(lab.test, 1)[0]
    name = next(iter(row))
    twice = '{"rows": [{"' + name + '": 1e300, ' + json.dumps(row)[1:-1] + "}]}"
    with lab.client() as client:
        dup = client.post(
            "/predict", content=twice, headers={**lab.auth, "content-type": "application/json"}
        )
        plain = client.post(
            "/predict",
            content=json.dumps({"rows": [row]}),
            headers={**lab.auth, "content-type": "text/plain"},
        )
    rule = dup.json().get("rule")
    stopped = dup.status_code == 422 and rule == "duplicate_key" and plain.status_code == 415
    return stopped, (
        f"'{name}' given twice: HTTP {dup.status_code} ({rule}); "
        f"text/plain body: HTTP {plain.status_code}"
    )


def attack_range_probe(lab: Lab) -> tuple[bool, str]:
    """Out-of-range probes (and an unknown category) to read the allowed ranges and the
    category lists, the reference profile, off the 422s."""
    if not lab.numeric and not lab.categorical:
        return True, "no numeric or categorical feature to probe"
    row = lab.rows(lab.test, 1)[0]
    probes = [(f, lab.far_outside(f), "range") for f in lab.numeric[:1]]
    probes += [(f, "no-such-category-0", "category") for f in lab.categorical[:1]]
    stopped, seen = True, []
    with lab.client() as client:
        for feature, value, rule in probes:
            done = client.post(
                "/predict", json={"rows": [{**row, feature.name: value}]}, headers=lab.auth
            )
            message = str(done.json().get("message", ""))
            profile_text = (
                [f"{feature.low:.6g}", f"{feature.high:.6g}"]
                if rule == "range"
                else [f"{c}," for c in feature.categories] + ["allowed:"]
            )
            leaked = any(text in message for text in profile_text)
            stopped &= done.status_code == 422 and done.json().get("rule") == rule and not leaked
            seen.append(f"HTTP {done.status_code}: {message}")
    return stopped, "; ".join(seen)


def attack_slow_headers(lab: Lab) -> tuple[bool, str]:
    """200 connections that never finish their headers, against the real service (uvicorn on
    loopback): a normal client must still be answered within 1 s."""
    import socket

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**_env(lab.copy), "MODEL_API_TOKEN": lab.token}
    env.pop("MODEL_SIGNING_KEY_DIR", None)
    server = subprocess.Popen(  # noqa: S603  # nosec B603  # this project's own service
        [sys.executable, "-m", lab.package, "serve", "--port", str(port)],
        cwd=lab.copy,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sockets: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                return False, "the service did not start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1")
            sockets.append(sock)
        time.sleep(0.5)  # the service has taken the flood in; now a normal client calls
        code, took = 0, math.inf
        for _ in range(3):  # best of three: one slow answer on a busy machine is no lock-out
            started = time.monotonic()
            try:
                with httpx.Client(timeout=1.0) as client:
                    code = client.get(f"http://127.0.0.1:{port}/health").status_code
            except httpx.HTTPError as error:
                code, error_name = 0, type(error).__name__
                continue
            took = min(took, time.monotonic() - started)
            if code == 200 and took < 1.0:
                break
        if code == 0:
            return False, f"200 half-open connections: a normal client got {error_name}"
        return code == 200 and took < 1.0, (
            f"200 half-open connections: a normal client got HTTP {code} in {took:.2f} s"
        )
    finally:
        for sock in sockets:
            sock.close()
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


for _name, _attack in {
    "rolled_back_model": attack_rollback,
    "swapped_key_folder": attack_swapped_keys,
    "empty_key_folder": attack_no_key,
    "forged_forwarded_for": attack_forged_forwarded_for,
    "strict_json": attack_strict_json,
    "range_probe": attack_range_probe,
    "slow_headers": attack_slow_headers,
}.items():
    setattr(Lab, _name, _attack)

ATTACKS.extend(
    [
        ("older signed model put back", "rolled_back_model", "RUNTIME MODEL INTEGRITY", "model_io"),
        (
            "key folder swapped, model re-signed",
            "swapped_key_folder",
            "RUNTIME MODEL INTEGRITY",
            "signing",
        ),
        (
            "key folder pointed at an empty one",
            "empty_key_folder",
            "RUNTIME MODEL INTEGRITY",
            "signing",
        ),
        ("forged X-Forwarded-For", "forged_forwarded_for", "RATE LIMIT", "serve"),
        ("duplicate keys / not JSON", "strict_json", "ANOMALOUS INPUT HANDLING", "serve"),
        ("probing for the allowed ranges", "range_probe", "FILTER SENSITIVE MODEL OUTPUT", "serve"),
        ("slow-header connection flood", "slow_headers", "LIMIT RESOURCES", "serve"),
    ]
)


def credited(registry: list[dict[str, Any]], exchange: str, module: str) -> list[str]:
    """The registered controls with this AI Exchange name; when several, those that list
    the module that stopped the attack among their files."""
    named = [c for c in registry if c["exchange"] == exchange]
    listing = [c for c in named if any(f.endswith(f"/{module}.py") for f in c["files"])]
    return [c["id"] for c in (listing or named)]


def load_controls(copy: Path) -> list[dict[str, Any]]:
    try:
        registry = runpy.run_path(str(copy / "scripts" / "controls.py"))["load_registry"](copy)
    except ValueError as error:  # RegistryError: controls.yaml breaks its schema
        raise SystemExit(
            f"attack-demo: controls.yaml is invalid, fix it first "
            f"(python scripts/controls.py --no-tests):\n{error}"
        ) from error
    return registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy and say where")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="attack-demo-"))
    try:
        copy = scratch_copy(ROOT, workdir)
        os.environ["PROJECT_ROOT"] = str(copy)  # every lookup of the project root: the copy
        registry = load_controls(copy)
        lab = Lab(copy)
        results = []
        for title, method, exchange, module in ATTACKS:
            try:
                stopped, evidence = getattr(lab, method)()
            except Exception as error:  # an attack that crashed proves nothing
                stopped, evidence = False, f"attack crashed: {type(error).__name__}: {error}"
            controls = credited(registry, exchange, module)
            if not controls:
                status = "control missing"
            else:
                status = f"stopped by {'/'.join(controls)}" if stopped else "FAILED"
            results.append((title, status, exchange, evidence))
            print(f"- {title}: {status} ({evidence})", flush=True)
        audit = lab.audit_log.read_text() if lab.audit_log.exists() else ""
        sent = [str(v) for v in lab.rows(lab.test, 1)[0].values() if not isinstance(v, bool)]
        sent += [str(lab.far_outside(f)) for f in lab.numeric[:1]]
        # Short values ("9.0", "red") also occur in the log's own fields: check distinctive ones.
        leaked = [v for v in sent if len(v) >= 5 and v != "None" and v in audit]
        print(
            f"- the service wrote {len(audit.splitlines())} audit lines (MONITOR USE); "
            + (f"LEAKED input values {leaked[:3]}" if leaked else "no input value in them")
        )
    finally:
        if args.keep:
            print(f"scratch copy kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    width = max(len(r[0]) for r in results)
    swidth = max(len(r[1]) for r in results)
    print(f"\n{'attack':<{width}}  {'result':<{swidth}}  AI Exchange control")
    print(f"{'-' * width}  {'-' * swidth}  -------------------")
    for title, status, exchange, _ in results:
        print(f"{title:<{width}}  {status:<{swidth}}  {exchange}")
    bad = [r for r in results if not r[1].startswith("stopped by")]
    print(
        f"\n{len(results) - len(bad)}/{len(results)} attacks stopped "
        f"in {time.perf_counter() - started:.1f} s (your files were not touched)"
    )
    for title, status, exchange, _ in bad:
        print(
            f"attack-demo: '{title}' was not stopped ({status}); add or fix the {exchange} control",
            file=sys.stderr,
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Tune a generated project the way users do, then run its own tests.

Each configuration edits params.yaml of a copy of ONE installed project (the session's
`installed_project`), runs `make pipeline`, commits, and runs the generated tests: the whole
`make check` (docs, `make test`, security gates, controls) for one configuration, a
selection of the generated tests that read the configuration for the others.

The valid ranges come from one source, the generated project's params.yaml schema
(`config.params_json_schema()`, printed by the project's own python): hypothesis draws a few
configurations from them (printed with the seed; TUNING_SEED=N reproduces or varies a run),
and a fixed set of configurations changes every knob at least once. Where the documented range
also holds values that legitimately stop the pipeline (C near 0 fits a constant model that the
accuracy gate refuses, max_psi near 0 refuses any sample), the draws stay in `PASSING`, a
part of the range checked to lie inside it; the refusals themselves are asserted below. A
draw that evaluate's own gates still refuse (an attack budget and a model that together cross
the robustness limit) is drawn again, at most twice a session (`gate_refusal`).
"""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, note, reject, seed, settings
from hypothesis import strategies as st

from conftest import failure_report, run, scratch_copy

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("TUNING_SEED", "20261202"))
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
OFFLINE = {"SECURITY_AUDIT_OFFLINE_OK": "1"}

# The generated tests that read the configuration (params, thresholds, serving limits), run
# for every configuration but the one that runs `make check` (which runs all of them, the
# integration tests that re-run the pipeline in a copy among them: minutes, so only there).
SELECTED = [
    "tests/unit/test_params.py",
    "tests/unit/test_train.py",
    "tests/unit/test_validate.py",
    "tests/security/test_inference_predict.py",
    "tests/security/test_inference_http.py",
    "tests/security/test_robustness.py",
    "tests/security/test_privacy_pii.py",
    "tests/test_docs.py",
]

# Knobs the fixed set leaves alone, with the reason.
UNCHANGED = {
    "data.raw_path": "the data source: tests/test_own_data.py brings a user's table",
    "data.target": "the data source (tests/test_own_data.py)",
    "data.task": "the data source (tests/test_own_data.py)",
    "data.drop_columns": "the data source (tests/test_own_data.py)",
    "validate.require_locked_data": "a weakening switch, not a tuning knob (make controls)",
    "model.require_signature": "a weakening switch, not a tuning knob (make controls)",
    "serve.host": "another address needs --allow-remote (tests/security/test_serve_uvicorn.py)",
    "serve.token_env": "names where the secret lives, not a limit",
    "serve.audit_log": "where the audit lines go, not a limit",
    "serve.trusted_proxies": "the deployment's proxies (tests/security/test_inference_http.py)",
    "serve.rate_limit_storage": "a shared store needs a Redis server (tests/security/test_serve_uvicorn.py)",
}

# Parts of documented ranges where the bundled breast_cancer data passes every gate.
PASSING = {
    "data.test_size": (0.15, 0.35),
    "train.C": (0.05, 10.0),
    "train.max_iter": (100, 2000),
    "robustness.eps": (0.01, 0.08),
    "robustness.tries": (1, 40),
    "robustness.sample": (50, 3000),
    "privacy.sample": (100, 6000),
    "validate.max_psi": (0.2, 5.0),
    "validate.range_margin": (0.1, 1.0),
    "validate.max_label_shift": (0.1, 1.0),
    "serve.max_body_bytes": (65_536, 67_108_864),
    "serve.rate_limit": (5, 100_000),  # the COUNT of COUNT/PERIOD
}
DRAWN = [
    "data.test_size",
    "data.seed",
    "train.seed",
    "train.C",
    "train.max_iter",
    "robustness.attack",
    "robustness.eps",
    "robustness.tries",
    "robustness.sample",
    "privacy.sample",
    "validate.max_psi",
    "validate.range_margin",
    "validate.max_label_shift",
    "serve.confidence",
    "serve.decimals",
    "serve.rate_limit",
    "serve.max_batch_rows",
    "serve.max_body_bytes",
    "serve.explain_ranges",
]

TUNED = {  # every validation threshold, evaluate threshold, budget and limit; `make check`
    "data.test_size": 0.25,
    "data.seed": 7,
    "train.seed": 3,
    "train.C": 0.3,
    "train.max_iter": 300,
    "validate.range_margin": 0.2,
    "validate.max_label_shift": 0.15,
    "validate.max_category_shift": 0.2,
    "validate.max_missing_shift": 0.2,
    "validate.max_target_shift": 0.3,
    "validate.max_duplicate_share": 0.02,
    "validate.duplicate_decimals": 6,
    "validate.near_duplicate_distance": 0.01,
    "validate.near_duplicate_max_pairs": 20_000_000,
    "validate.max_conflict_excess_share": 0.02,
    "validate.max_label_noise_share": 0.02,
    "validate.label_noise_p": 0.0005,
    "validate.label_noise_min_expected": 1.0,
    "validate.trigger_p": 0.0005,
    "validate.trigger_min_rows": 4,
    "validate.label_noise_min_rows": 6,
    "validate.label_noise_folds": 4,
    "validate.label_noise_fit_rows": 5000,
    "validate.max_value_spike_share": 0.01,
    "validate.value_spike_p": 0.00005,
    "validate.value_spike_label_p": 0.02,
    "validate.value_spike_min_rows": 5,
    "validate.max_outside_range_share": 0.01,
    "validate.outside_range_min_rows": 4,
    "validate.max_psi": 0.25,
    "validate.shift_p": 0.0000001,
    "validate.max_label_bin_shift": 0.2,
    "validate.max_listed": 3,
    "evaluate.min_accuracy": 0.9,
    "evaluate.min_f1_macro": 0.6,
    "evaluate.min_r2": 0.2,
    "evaluate.max_rmse": 100.0,
    "robustness.attack": "pgd",
    "robustness.eps": 0.05,
    "robustness.tries": 10,
    "robustness.sample": 100,
    "robustness.max_accuracy_drop": 0.2,
    "robustness.max_error_increase": 0.6,
    "privacy.max_membership_auc": 0.65,
    "privacy.sample": 300,
    "bench.validate_seconds": 90,
    "bench.validate_rss_mb": 3000,
    "bench.max_growth": 15,
    "bench.pipeline_seconds": 400,
    "bench.serve_requests_per_second": 800,
    "bench.serve_p99_ms": 30,
    "bench.serve_share_of_bare": 0.4,
    "bench.predict_ratio": 2.0,
    "data.pii_scan_values": 50_000,
    "serve.workers": 1,
    "serve.port": 8123,
    "serve.rate_limit": "30/minute",
    "serve.max_body_bytes": 131_072,
    "serve.max_batch_rows": 2,
    "serve.confidence": "rounded",
    "serve.explain_ranges": True,
    "serve.header_timeout_seconds": 3,
    "serve.body_timeout_seconds": 8,
    "serve.keep_alive_seconds": 4,
    "serve.max_connections": 50,
}
FOREST = {  # another model, no confidence in the answers, a per-second limit
    "train.model": "random_forest",
    "train.random_forest.n_estimators": 40,
    "train.random_forest.max_depth": 6,
    "train.random_forest.min_samples_leaf": 3,
    "data.seed": 0,
    "serve.confidence": "none",
    "serve.rate_limit": "10/second",
    "serve.max_batch_rows": 20,
}
REGRESSION = {  # a regression: its thresholds, error budget, rounding; boosting, full answers
    "data.dataset": "diabetes",
    "train.model": "hist_gradient_boosting",
    # boosting memorises the 353 training rows quickly (at the defaults, membership AUC ~0.67):
    # fewer, smaller trees, and a looser documented privacy limit
    "train.hist_gradient_boosting.max_iter": 30,
    "train.hist_gradient_boosting.learning_rate": 0.08,
    "train.hist_gradient_boosting.max_leaf_nodes": 4,
    "privacy.max_membership_auc": 0.7,
    "train.ridge.alpha": 2.0,
    "evaluate.min_r2": 0.1,
    "evaluate.max_rmse": 90.0,
    "robustness.max_error_increase": 0.8,
    "validate.residual_z": 3.0,
    "serve.decimals": 1,
    "serve.confidence": "full",
}
FIXED = {"tuned": TUNED, "forest": FOREST, "regression": REGRESSION}


# ---- the schema, from the generated project ---------------------------------------------------


@pytest.fixture(scope="session")
def schema(installed_project):
    code = "import json, sys; from {}.config import params_json_schema; print(json.dumps(params_json_schema()))"
    done = run([str(installed_project / ".venv/bin/python"), "-c", code.format(package(installed_project))],
               installed_project)
    return json.loads(done.stdout)


def package(project):
    return next(p.name for p in (project / "src").iterdir() if (p / "config.py").is_file())


def entry(schema, key):
    """The JSON schema of a dotted key, with $ref and nullable unions resolved."""
    node = schema
    for part in key.split("."):
        while "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        node = node["properties"][part]
    options = [o for o in node.get("anyOf", [node]) if o.get("type") != "null"]
    return options[0]


def bounds(spec):
    """(low, high, low_open, high_open) of a number's schema; None where unbounded."""
    low, high = spec.get("minimum"), spec.get("maximum")
    low_open, high_open = spec.get("exclusiveMinimum"), spec.get("exclusiveMaximum")
    return (low if low_open is None else low_open, high if high_open is None else high_open,
            low_open is not None, high_open is not None)


def valid(schema, key, value):
    """Whether the schema's documented range holds `value` (the test's own check of a config)."""
    spec = entry(schema, key)
    if "enum" in spec:
        return value in spec["enum"]
    if spec.get("type") == "boolean":
        return isinstance(value, bool)
    if "pattern" in spec:
        return isinstance(value, str) and re.match(spec["pattern"], value) is not None
    low, high, low_open, high_open = bounds(spec)
    return (low is None or value > low or (value == low and not low_open)) and (
        high is None or value < high or (value == high and not high_open))


def knob(schema, key):
    """A hypothesis strategy for one knob: its documented range, within PASSING."""
    spec = entry(schema, key)
    if "enum" in spec:
        return st.sampled_from([v for v in spec["enum"] if v != ""])
    if spec.get("type") == "boolean":
        return st.booleans()
    if "pattern" in spec:  # serve.rate_limit: drawn from its pattern, the count kept in PASSING
        low, high = PASSING[key]
        pattern = st.from_regex(spec["pattern"], fullmatch=True)
        return pattern.filter(lambda s: low <= int(re.match(r"\d+", s)[0]) <= high)
    low, high, low_open, high_open = bounds(spec)
    region = PASSING.get(key)
    if region:
        assert valid(schema, key, region[0]) and valid(schema, key, region[1]), (key, region, spec)
        low, high, low_open, high_open = region[0], region[1], False, False
    if spec["type"] == "integer":
        return st.integers(low, low + 10_000 if high is None else high)
    assert low is not None and high is not None, f"{key}: give it a PASSING region"
    draws = st.floats(low, high, exclude_min=low_open, exclude_max=high_open)
    return draws.map(lambda x: float(f"{x:.4g}")).filter(lambda x: valid(schema, key, x))


# ---- a user's steps ----------------------------------------------------------------------------


def leaves(params, prefix=""):
    for name, value in params.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def tune(project, changes):
    """Edit params.yaml as a user does: each key's value on its own line, the comment kept."""
    path = project / "params.yaml"
    lines = path.read_text().splitlines(keepends=True)
    stack: list[tuple[int, str]] = []
    done = set()
    for number, line in enumerate(lines):
        found = re.match(r"^( *)([A-Za-z_]\w*):( *)([^#\n]*?)( *#.*)?$", line.rstrip("\n"))
        if not found:
            continue
        indent = len(found[1])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, found[2]))
        key = ".".join(name for _, name in stack)
        if key in changes and found[4]:
            value = yaml.safe_dump(changes[key], default_flow_style=True).splitlines()[0]
            lines[number] = f"{found[1]}{found[2]}:{found[3] or ' '}{value}{found[5] or ''}\n"
            done.add(key)
    assert done == set(changes), f"params.yaml has no {sorted(set(changes) - done)}"
    path.write_text("".join(lines))
    current = dict(leaves(yaml.safe_load(path.read_text())))
    for key, value in changes.items():
        assert current[key] == value, (key, current[key], value)


def commit(project, message):
    run(["git", "add", "-A"], project)
    run([*GIT, "commit", "-q", "--no-verify", "-m", message], project)


def tuned_project(installed_project, dest, changes, refused=None):
    """A copy tuned with `changes`, its pipeline run and committed. `refused(log)` is called
    instead of failing when the pipeline stops (the drawn configurations' gate refusals)."""
    project = scratch_copy(installed_project, dest, skip=("mlflow.db", "mlartifacts"))
    if "data.dataset" in changes:  # a bundled example brings its reviewed profile
        example = project / "reference" / "examples" / f"{changes['data.dataset']}.json"
        shutil.copy(example, project / "reference" / "data_profile.json")
    tune(project, changes)
    commit(project, f"tune: {', '.join(changes)}")
    done = run(["make", "pipeline"], project, timeout=900, check=refused is None)
    log = done.stdout + done.stderr
    if done.returncode != 0:
        refused(log)
    assert "Running stage" in log, log[-2000:]
    commit(project, "pipeline outputs")
    return project, log


def generated_tests(project, *selection):
    run([str(project / ".venv/bin/pytest"), "-x", "-q", *selection],
        project, timeout=1800)


# ---- the tests -----------------------------------------------------------------------------------


def test_the_fixed_set_changes_every_knob_to_a_valid_value(installed_project, schema):
    defaults = dict(leaves(yaml.safe_load((installed_project / "params.yaml").read_text())))
    changed = set()
    for name, changes in FIXED.items():
        for key, value in changes.items():
            assert key in defaults, f"{name}: params.yaml has no {key}"
            assert valid(schema, key, value), f"{name}: {key}={value!r} is outside its range"
            if value != defaults[key]:
                changed.add(key)
    for key in DRAWN:
        entry(schema, key)  # each drawn knob is in the schema
    known = set(schema["properties"])
    untouched = {k for k in defaults if k.split(".")[0] in known} - changed - set(UNCHANGED)
    assert not untouched, f"no fixed configuration changes {sorted(untouched)}"


@pytest.mark.parametrize("name", list(FIXED))
def test_a_tuned_project_passes_its_own_tests(installed_project, schema, tmp_path, name):
    changes = FIXED[name]
    print(f"configuration {name}: {changes}")
    project, log = tuned_project(installed_project, tmp_path / "project", changes)
    if name == "tuned":
        done = run(["make", "check"], project, timeout=1800, env=OFFLINE, check=False)
        assert done.returncode == 0, failure_report(done)
        assert "WEAKENED" in done.stdout  # serve.explain_ranges: true is reported
    else:
        generated_tests(project, *SELECTED)


@settings(max_examples=2, database=None, deadline=None, phases=[Phase.generate],
          suppress_health_check=list(HealthCheck), print_blob=True)
@seed(SEED)
@given(data=st.data())
def test_drawn_configurations_pass_the_projects_tests(installed_project, schema,
                                                      tmp_path_factory, data):
    changes = {key: data.draw(knob(schema, key), label=key) for key in DRAWN}
    print(f"TUNING_SEED={SEED} configuration: {changes}")
    note(f"TUNING_SEED={SEED}")
    project, _ = tuned_project(
        installed_project, tmp_path_factory.mktemp("drawn") / "p", changes, refused=gate_refusal
    )
    generated_tests(project, *SELECTED)


REFUSALS: list[str] = []


def gate_refusal(log):
    """A drawn configuration the pipeline's own gates refuse is drawn again, at most twice a
    session: evaluate's thresholds (accuracy under attack, membership AUC) measure the model a
    configuration trains, and a high C with a large eps can cross them, which is the gate
    working, not a test failing. Any other stop, or a third refusal, fails the test."""
    gates = [line for line in log.splitlines() if "(params.yaml; reports/)" in line]
    assert gates and "Running stage 'evaluate'" in log, log[-4000:]
    REFUSALS.append(gates[0])
    assert len(REFUSALS) <= 2, f"PASSING is too wide: the gates refused {REFUSALS}"
    note(f"refused by a gate, drawn again: {gates[0]}")
    reject()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("train.C", 0),  # a number bound
        ("robustness.attack", "magic"),  # an allowed value
        ("serve.rate_limit", "sixty per minute"),  # a pattern
        ("validate.shift_p", "1e-6"),  # YAML reads it as a string: not a number
    ],
)
def test_a_value_outside_its_range_stops_the_pipeline_before_any_stage(
    installed_project, schema, tmp_path, key, value
):
    project = scratch_copy(installed_project, tmp_path / "project", skip=("mlflow.db", "data"))
    (project / "data" / "raw").mkdir(parents=True)
    tune(project, {key: value})
    done = run(["make", "pipeline"], project, check=False)
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("make")]
    assert done.returncode != 0 and len(lines) == 1, done.stdout + done.stderr
    assert "Running stage" not in done.stdout and not (project / "data" / "prepared").exists()
    spec = entry(schema, key)
    low, high, low_open, high_open = bounds(spec) if "type" in spec else (None,) * 4
    assert lines[0].startswith(f"params.yaml {key} is {value!r}"), lines[0]
    if "enum" in spec:
        assert all(v in lines[0] for v in spec["enum"] if v), lines[0]
    elif "pattern" in spec:
        assert spec["description"] in lines[0], lines[0]
    else:
        assert f"> {low:g}" in lines[0] if low_open else f"{low:g}" in lines[0], lines[0]
        assert high is None or f"{high:g}" in lines[0], lines[0]

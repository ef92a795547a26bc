"""params.yaml has one schema, checked before any stage: the current file passes, a value
outside a documented range is refused with one line naming the key and its range, and the
range written beside each knob is the schema's."""

import copy
import re

import pytest

from {{ cookiecutter.package_name }}.config import (
    ParamsError,
    check_params,
    params_json_schema,
    range_text,
    schema_entry,
)

OUTSIDE = [
    ("data", "test_size", 1.5),
    ("data", "task", "ranking"),
    ("validate", "range_margin", -0.1),
    ("validate", "label_noise_folds", 1),
    ("validate", "near_duplicate_distance", 0),
    ("validate", "max_psi", 0),
    ("train", "model", "svm"),
    ("train", "C", 0),
    ("evaluate", "min_accuracy", 1.5),
    ("robustness", "eps", 0),
    ("robustness", "attack", "magic"),
    ("privacy", "max_membership_auc", 0.2),
    ("privacy", "sample", -1),
    ("bench", "max_growth", 0),
    ("serve", "confidence", "exact"),
    ("serve", "max_batch_rows", 0),
    ("serve", "max_body_bytes", 100),
    ("serve", "rate_limit", "sixty a minute"),
    ("serve", "explain_ranges", "yes"),
    ("validate", "shift_p", "1e-6"),  # YAML reads 1e-6 as a string
    ("model", "require_signature", "no"),
]


def test_the_current_params_pass(params, paths, tmp_path):
    check_params(params, paths)


@pytest.mark.parametrize(("section", "key", "value"), OUTSIDE)
def test_a_value_outside_its_range_is_refused_naming_the_key(params, tmp_path, section, key, value):
    from {{ cookiecutter.package_name }}.config import Paths

    (tmp_path / "params.yaml").write_text("{}\n")  # no memo of an earlier pass applies
    changed = copy.deepcopy(params)
    changed.setdefault(section, {})[key] = value
    with pytest.raises(ParamsError) as refused:
        check_params(changed, Paths(tmp_path))
    message = str(refused.value)
    assert f"params.yaml {section}.{key}" in message and "\n" not in message
    valid = range_text(schema_entry(params_json_schema(), (section, key)))
    assert f"valid: {valid}" in message


def documented_knobs(text: str):
    """(key path, comment) of every leaf key in params.yaml, e.g. (("train", "C"), "... > 0")."""
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
        found = re.match(r"^( *)([A-Za-z_]\w*):(.*)$", line)
        if not found:
            continue
        indent, key, rest = len(found[1]), found[2], found[3]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        value, _, comment = rest.partition(" #")
        if value.strip():
            yield tuple(k for _, k in stack), comment


def test_the_range_beside_each_knob_is_the_schemas(paths):
    schema = params_json_schema()
    knobs = list(documented_knobs(paths.params.read_text(encoding="utf-8")))
    if sum(bool(comment.strip()) for _, comment in knobs) < 50:
        pytest.skip("params.yaml lost its comments (rewritten by a tool): nothing to compare")
    checked = 0
    for key, comment in knobs:
        if key[0] not in schema["properties"] or not comment.strip():
            continue  # a section the schema leaves alone (mlflow), or a knob without a comment
        entry = schema_entry(schema, key)
        assert entry is not None, f"params.yaml {'.'.join(key)} is not in the schema (config.py)"
        values = entry.get("enum") or [
            c.get("const") for c in entry.get("anyOf", []) if "const" in c
        ]
        if values:
            missing = [
                v for v in values if v and not re.search(rf"\b{re.escape(str(v))}\b", comment)
            ]
            assert not missing, f"params.yaml {'.'.join(key)}: the comment misses {missing}"
        elif range_text(entry):
            assert range_text(entry) in comment, (
                f"params.yaml {'.'.join(key)}: the comment should say {range_text(entry)!r}"
            )
        checked += bool(range_text(entry))
    assert checked >= 50

"""params.yaml has one schema, checked before any stage: the current file passes, and a value
outside a documented range is refused with one line naming the key."""

import copy

import pytest

from {{ cookiecutter.package_name }}.config import ParamsError, check_params

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

"""quality.py on its own: every feature type, every task, and the near-duplicate search's
promise that it misses no pair (checked against brute force)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import quality


def mixed(rows: int = 2000, seed: int = 7) -> pd.DataFrame:
    """Numeric, integer (with missing values), categorical (with missing), boolean; string
    labels of three classes, some overlap between them."""
    rng = np.random.default_rng(seed)
    size = rng.normal(50, 10, rows)
    count = rng.integers(0, 20, rows).astype(float)
    count[rng.random(rows) < 0.1] = np.nan
    colour = rng.choice(
        np.array(["red", "green", "blue", None], dtype=object), rows, p=[0.4, 0.3, 0.2, 0.1]
    )
    flag = rng.random(rows) < 0.3
    score = (size - 50) / 10 + (colour == "red") - flag + rng.normal(0, 0.5, rows)
    label = np.where(score > 0.5, "yes", np.where(score < -0.5, "no", "maybe"))
    return pd.DataFrame(
        {
            "size": size,
            "count": count,
            "colour": pd.Series(colour, dtype="string"),
            "flag": flag,
            "target": label,
        }
    )


def profile_of(frame: pd.DataFrame, task: str) -> dict:
    features = {}
    for name in frame.columns.drop("target"):
        if quality.is_categorical({}, frame[name]):
            features[name] = {"type": "categorical"}
        else:
            features[name] = {
                "type": "numeric",
                "min": float(frame[name].min()),
                "max": float(frame[name].max()),
            }
    return {"features": features, "distributions": quality.reference_stats(frame, "target", task)}


def halves(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    return shuffled.iloc[: len(frame) // 2].reset_index(drop=True), shuffled.iloc[
        len(frame) // 2 :
    ].reset_index(drop=True)


def plant_trigger(frame, task, rows, column, value, source, target, seed):
    """The profile of `frame` and the half of it that gets a trigger: `rows` rows of class
    `source` set `column` to `value` and relabelled `target` (the clean other half passes
    first). Returns the profile, the poisoned half and the rows planted."""
    profile = profile_of(frame, task)
    part, other = halves(frame)
    assert quality.check_frame(other, "target", None, profile, {})[2] == []
    victims = part[part["target"] == source].sample(rows, random_state=seed).index
    part.loc[victims, column] = value
    part.loc[victims, "target"] = target
    return profile, part, victims


def test_a_clean_mixed_type_table_passes_and_flipped_labels_do_not():
    frame = mixed()
    profile = profile_of(frame, "multiclass")
    first, second = halves(frame)
    for part in (first, second):
        _, _, problems, _ = quality.check_frame(part, "target", None, profile, {})
        assert problems == []
    victims = first.sample(frac=0.1, random_state=1).index
    first.loc[victims, "target"] = first.loc[victims, "target"].map(
        {"yes": "no", "no": "yes", "maybe": "yes"}
    )
    rows, count, problems, metrics = quality.check_frame(first, "target", None, profile, {})
    assert any("out-of-fold" in p for p in problems), problems
    assert all({"row", "column", "rule", "value"} == set(r) for r in rows) and count >= len(rows)


def test_a_category_planted_on_many_rows_is_a_value_spike():
    frame = mixed()
    profile = profile_of(frame, "multiclass")
    part, _ = halves(frame)
    part.loc[part.sample(frac=0.05, random_state=2).index, "colour"] = "purple"
    rows, _, problems, _ = quality.check_frame(part, "target", None, profile, {})
    assert any(p.startswith("colour = purple") for p in problems), problems
    assert {r["column"] for r in rows if r["rule"].startswith("value-frequency")} == {"colour"}


def test_regression_target_shift_is_caught_and_a_clean_half_passes():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 4))
    frame = pd.DataFrame(x, columns=list("abcd")).assign(
        target=x @ [1.0, 2.0, 0.5, 0.0] + rng.normal(0, 0.1, 3000)
    )
    profile = profile_of(frame, "regression")
    first, _ = halves(frame)
    assert quality.check_frame(first, "target", None, profile, {})[2] == []
    shifted = first.assign(target=first["target"] + 2.0)
    _, _, problems, metrics = quality.check_frame(shifted, "target", None, profile, {})
    assert any(p.startswith("target:") for p in problems), problems
    assert metrics["psi"]["target"] > 0.2


def test_a_one_percent_backdoor_is_named_by_its_labels():
    """Ten rows (1%) of one class get a new exact `size` and another label: too few for a
    frequency spike, but nearly all rows carrying that value are contradicted out of fold."""
    profile, part, victims = plant_trigger(
        mixed(), "multiclass", 10, "size", 61.2345, "no", "yes", 4
    )
    rows, _, problems, metrics = quality.check_frame(part, "target", None, profile, {})
    assert any(p.startswith("size = 61.2345") and "backdoor" in p for p in problems), problems
    named = {r["row"] for r in rows if r["column"] == "size"}
    assert len(named & set(victims)) >= 8


def test_a_regression_backdoor_is_named_by_its_out_of_fold_residuals():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2000, 4))
    frame = pd.DataFrame(x, columns=list("abcd")).assign(
        target=x @ [1.0, 2.0, 0.5, 0.0] + rng.normal(0, 0.3, 2000)
    )
    profile = profile_of(frame, "regression")
    first, _ = halves(frame)
    assert quality.check_frame(first, "target", None, profile, {})[2] == []
    victims = first.sample(10, random_state=6).index  # 1% of the rows
    first.loc[victims, "d"] = 0.4321
    first.loc[victims, "target"] = first.loc[victims, "target"] + 3.0
    rows, _, problems, metrics = quality.check_frame(first, "target", None, profile, {})
    assert any(p.startswith("d = 0.4321") for p in problems), problems
    assert metrics["residual_outlier_share"] > 0
    assert set(victims) <= {r["row"] for r in rows if r["column"] == "d"}


def test_the_label_noise_limit_follows_the_reference_curve_at_the_split_size():
    dist = {"rows": 1000, "label_noise_by_rows": [[1000, 0.002], [500, 0.004], [100, 0.02]]}
    assert quality.expected_noise_share(dist, 1000) == pytest.approx(0.002)
    assert quality.expected_noise_share(dist, 5000) == pytest.approx(0.002)  # clamped
    assert quality.expected_noise_share(dist, 50) == pytest.approx(0.02)
    assert 0.004 < quality.expected_noise_share(dist, 300) < 0.02
    # an older profile without the curve: the full share scaled up for a smaller split
    assert quality.expected_noise_share({"rows": 1000, "label_noise_share": 0.002}, 500) == (
        pytest.approx(0.004)
    )


def test_the_reference_measures_its_label_noise_at_split_sizes():
    frame = mixed(rows=600)
    stats = quality.reference_stats(frame, "target", "multiclass")
    sizes = [rows for rows, _ in stats["label_noise_by_rows"]]
    assert sizes == [600, 480, 120]
    assert all(0 <= share <= 1 for _, share in stats["label_noise_by_rows"])


def test_three_percent_of_labels_flipped_fail_a_split_whose_reference_is_clean():
    """A table whose reference has few label issues: 3% of one class flipped in one half
    exceed the reference's issue count at that size; the clean other half passes. (A table
    with much natural overlap hides so few flips: docs/data-card.md.)"""
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2000, 4))
    frame = pd.DataFrame(x, columns=list("abcd")).assign(
        target=np.where(x @ [2.0, -1.0, 1.0, 0.0] + rng.normal(0, 0.3, 2000) > 0, "up", "down")
    )
    profile = profile_of(frame, "binary")
    part, other = halves(frame)
    assert quality.check_frame(other, "target", None, profile, {})[2] == []
    victims = part[part["target"] == "up"].sample(30, random_state=8).index
    part.loc[victims, "target"] = "down"  # 3%, all from one class
    _, _, problems, metrics = quality.check_frame(part, "target", None, profile, {})
    assert any("flipped labels" in p for p in problems), metrics
    assert metrics["label_noise_p"] < quality.DEFAULTS["label_noise_p"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_near_duplicate_grid_finds_exactly_what_brute_force_finds(seed):
    rng = np.random.default_rng(seed)
    points = rng.random((1500, 6)) * [1, 1, 0.2, 0.2, 0.05, 0.05]
    labels = rng.integers(0, 2, len(points))
    distance = 0.03
    found, _ = quality.near_duplicate_pairs(
        points, labels, np.zeros(len(points), np.uint64), distance, 10**8, seed
    )
    gaps = ((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=2) <= distance**2
    conflict = gaps & (labels[:, None] != labels[None, :])
    assert set(found) == set(np.flatnonzero(conflict.any(axis=1)))
    assert len(found) > 0


def test_the_near_duplicate_search_refuses_rather_than_miss_pairs():
    points = np.zeros((2000, 3))
    labels = np.arange(2000) % 2
    assert (
        quality.near_duplicate_pairs(points, labels, np.zeros(2000, np.uint64), 0.02, 1000) is None
    )


def test_the_poisson_binomial_tail_is_exact():
    p = np.array([0.1, 0.5, 0.02, 0.9, 0.3])
    outcomes = np.array(np.meshgrid(*[[0, 1]] * len(p))).reshape(len(p), -1).T
    chance = np.prod(np.where(outcomes == 1, p, 1 - p), axis=1)
    for k in range(len(p) + 1):
        expected = chance[outcomes.sum(axis=1) >= k].sum()
        assert quality._poisson_binomial_tail(p, k) == pytest.approx(expected)


def test_tarone_counts_only_hypotheses_that_can_reach_the_limit():
    # two can reach 0.001 / 2; a thousand others can never go below 0.5: they do not count
    least = np.log(np.r_[[1e-9, 1e-8], np.full(1000, 0.5)])
    assert quality._tarone_tests(least, 0.001) == 2
    assert quality._tarone_tests(np.log(np.full(10, 1e-9)), 0.001) == 10


def test_a_lone_row_beyond_the_reference_extremes_is_refused():
    """One row a little beyond the reference max (inside any margin) is refused on its own;
    the reference's own extreme is not."""
    frame = mixed()
    profile = profile_of(frame, "multiclass")
    part, _ = halves(frame)
    gap = profile["distributions"]["features"]["size"]["tail_gaps"][1]
    assert gap > 0
    top = profile["features"]["size"]["max"]
    part.loc[0, "size"] = top
    assert quality.check_frame(part, "target", None, profile, {})[2] == []
    part.loc[1, "size"] = top + 1.01 * gap
    rows, _, problems, _ = quality.check_frame(part, "target", None, profile, {})
    assert any("beyond the reference range" in p for p in problems), problems
    assert {r["row"] for r in rows if r["column"] == "size"} == {1}


def test_a_category_the_reference_never_had_is_refused_on_one_row():
    frame = mixed()
    profile = profile_of(frame, "multiclass")
    part, _ = halves(frame)
    part["colour"] = part["colour"].astype(object)
    part.loc[3, "colour"] = "purple"
    rows, _, problems, _ = quality.check_frame(part, "target", None, profile, {})
    assert any("never had" in p for p in problems), problems
    assert {r["row"] for r in rows if r["rule"].startswith("category")} == {3}


def test_a_backdoor_on_three_rows_of_a_small_table_is_named_by_its_label_purity():
    """150 rows of three well separated classes; 3 rows (2%) of one class get a new exact
    value and another class's label: too few for a frequency spike or a count of label
    issues, but three rows of one value all carrying a label the out-of-fold discriminant
    gives a small chance are a trigger. The clean half passes."""
    rng = np.random.default_rng(11)
    centres = np.array([[0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 3.0, 0.0], [0.0, 3.0, 0.0, 3.0]])
    labels = np.repeat(["a", "b", "c"], 100)
    x = centres[np.repeat(np.arange(3), 100)] + rng.normal(0, 0.7, (300, 4))
    frame = pd.DataFrame(np.round(x, 3), columns=list("wxyz")).assign(target=labels)
    profile, part, victims = plant_trigger(frame, "multiclass", 3, "x", 1.2345, "a", "c", 1)
    rows, _, problems, metrics = quality.check_frame(part, "target", None, profile, {})
    assert any(p.startswith("x = 1.2345") and "backdoor" in p for p in problems), metrics
    assert set(victims) <= {r["row"] for r in rows if r["column"] == "x"}

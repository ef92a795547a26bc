"""Attacks on the predict API: evasion-style inputs are refused, confidences stay coarse."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from serve_support import make_root, rows_of

from conftest import batch_limit, numeric_features
from {{ cookiecutter.package_name }}.config import load_params
from {{ cookiecutter.package_name }}.inference import InputError, Predictor, SettingsError
from {{ cookiecutter.package_name }}.model_io import ModelIntegrityError


@pytest.fixture(scope="module")
def root(tmp_path_factory, frames, params):
    return make_root(tmp_path_factory.mktemp("predict"), frames[0], params)


@pytest.fixture(scope="module")
def predictor(root):
    return Predictor(root)


@pytest.fixture
def good(frames, predictor):
    """Five test rows, or as many as serve.max_batch_rows lets one request hold."""
    return rows_of(frames[1], min(5, predictor.max_rows))


@pytest.fixture(scope="module")
def numeric(predictor, profile):
    """Schema entries of numeric features that never miss a value (range and NaN rules)."""
    names = set(numeric_features(profile))
    return [f for f in predictor.schema if f.name in names]


def reject(predictor, rows, field, rule):
    with pytest.raises(InputError) as caught:
        predictor.predict(rows)
    assert (caught.value.field, caught.value.rule) == (field, rule), str(caught.value)
    return caught.value


def test_valid_rows_get_a_coarse_answer(predictor, good, frames, params, task):
    answers = predictor.predict(good)
    assert len(answers) == len(good)
    if task == "regression":
        decimals = params["serve"].get("decimals", 3)
        for answer in answers:
            assert set(answer) == {"value"}
            assert answer["value"] == round(answer["value"], decimals)
        return
    mode = params["serve"]["confidence"]
    keys = {"band": {"label", "confidence"}, "rounded": {"label", "confidence"}}
    keys.update(none={"label"}, full={"label", "probabilities"})
    classes = {str(c) for c in predictor.classes}
    for answer in answers:
        assert set(answer) == keys[mode]
        assert str(answer["label"]) in classes
        if mode == "band":
            assert answer["confidence"] in {"low", "medium", "high"}
    # most labels right, on 20 test rows sent in batches of at most serve.max_batch_rows
    rows, step = rows_of(frames[1], 20), predictor.max_rows
    batches = [rows[i : i + step] for i in range(0, len(rows), step)]
    labels = [answer["label"] for batch in batches for answer in predictor.predict(batch)]
    truth = frames[1]["target"].head(len(rows)).tolist()
    assert sum(a == t for a, t in zip(labels, truth, strict=True)) * 2 > len(rows)


def test_unknown_categories_are_rejected_naming_the_allowed_ones(predictor, good):
    categorical = [f for f in predictor.schema if f.kind == "categorical"]
    if not categorical:
        pytest.skip("the profile has no categorical feature")
    feature = categorical[0]
    error = reject(predictor, [{**good[0], feature.name: "never-seen"}], feature.name, "category")
    assert feature.categories[0] in str(error)
    reject(predictor, [{**good[0], feature.name: 3.5}], feature.name, "type")


def test_out_of_range_values_are_rejected(predictor, good, numeric):
    feature = numeric[0]
    for value in (feature.high * 1.01 + 1e-9, feature.low - abs(feature.low) * 0.01 - 1e-3, 1e9):
        row = {**good[0], feature.name: value}
        rows = [*good[1:2], row]  # behind a valid row where serve.max_batch_rows allows two
        error = reject(predictor, rows, feature.name, "range")
        assert error.row == len(rows) - 1 and str(value) not in str(error)


def test_values_at_the_widened_edge_are_accepted(predictor, good, numeric):
    feature = numeric[0]
    assert predictor.predict([{**good[0], feature.name: feature.high}])
    assert predictor.predict([{**good[0], feature.name: feature.low}])


@pytest.mark.parametrize(
    ("value", "rule"), [(math.nan, "nan"), (math.inf, "infinite"), (-math.inf, "infinite")]
)
def test_nan_and_infinity_are_rejected(predictor, good, numeric, value, rule):
    name = numeric[-1].name
    reject(predictor, [{**good[0], name: value}], name, rule)


@pytest.mark.parametrize("value", ["12.5", None, True, [1.0], {"x": 1}])
def test_values_that_are_not_numbers_are_rejected(predictor, good, numeric, value):
    name = numeric[len(numeric) // 2].name
    reject(predictor, [{**good[0], name: value}], name, "type")


def test_unknown_and_missing_fields_are_rejected(predictor, good):
    reject(predictor, [{**good[0], "is_admin": 1.0}], "is_admin", "unknown_field")
    name = predictor.schema[-1].name
    partial = {k: v for k, v in good[0].items() if k != name}
    reject(predictor, [partial], name, "missing_field")


def test_batches_over_the_limit_and_empty_batches_are_rejected(predictor, good):
    limit = predictor.max_rows
    reject(predictor, [good[0]] * (limit + 1), "rows", "batch_size")
    reject(predictor, [], "rows", "batch_size")
    reject(predictor, "not rows", "rows", "type")
    assert len(predictor.predict([good[0]] * limit)) == limit


def test_full_probabilities_only_when_configured(root, good, task):
    if task == "regression":
        pytest.skip("a regression answers a value, never probabilities")
    params = load_params(root)
    for mode, check in (
        (
            "full",
            lambda a: (
                set(a) == {"label", "probabilities"}
                and math.isclose(sum(a["probabilities"].values()), 1.0)
            ),
        ),
        ("rounded", lambda a: a["confidence"] in {x / 10 for x in range(11)}),
        ("none", lambda a: set(a) == {"label"}),
    ):
        answers = Predictor(root, {**params, "serve": {**params["serve"], "confidence": mode}})
        assert all(check(a) for a in answers.predict(good)), mode
    with pytest.raises(SettingsError, match="serve.confidence"):
        Predictor(root, {**params, "serve": {**params["serve"], "confidence": "exact"}})


def test_predictor_refuses_a_tampered_model(tmp_path, frames, params):
    root = make_root(tmp_path / "p", frames[0], params)
    data = bytearray(root.model.read_bytes())
    data[len(data) // 2] ^= 0x01
    root.model.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError):
        Predictor(root)


def test_a_profile_that_does_not_match_the_model_is_refused(tmp_path, frames, params):
    root = make_root(tmp_path / "p", frames[0], params)
    profile = root.root / "reference" / "data_profile.json"
    data = json.loads(profile.read_text())
    data["features"]["extra_feature"] = {"type": "numeric", "min": 0.0, "max": 1.0}
    profile.write_text(json.dumps(data))
    with pytest.raises(SettingsError, match="other features"):
        Predictor(root)


def test_margin_comes_from_params(root, good, numeric):
    params = yaml.safe_load(root.params.read_text())
    index = next(i for i, f in enumerate(Predictor(root).schema) if f.name == numeric[0].name)
    wide = Predictor(root, {**params, "validate": {**params["validate"], "range_margin": 1.0}})
    feature = wide.schema[index]
    narrow = Predictor(root, {**params, "validate": {**params["validate"], "range_margin": 0.0}})
    edge = narrow.schema[index].high
    outside = (
        edge + (edge - narrow.schema[index].low) * 0.05 + (1 if feature.kind == "integer" else 0)
    )
    outside = float(round(outside)) if feature.kind == "integer" else outside
    assert feature.high > edge
    assert wide.predict([{**good[0], feature.name: outside}])
    reject(narrow, [{**good[0], feature.name: outside}], feature.name, "range")


@pytest.fixture(scope="module")
def prepared():
    """{data set: (profile text, train, test)}: each bundled data set profiled and split once
    for the models trained on it."""
    return {}


def project_on(root, params: dict, dataset: str, model: str, prepared: dict):
    """A scratch project on a bundled data set with its own profile and a model trained by
    train.fit, saved, signed and locked as the pipeline does. Tree ensembles are kept small
    (at most 10 trees or boosting rounds): the fast path replays the preprocessing and hands
    its matrix to the estimator itself, so the number of trees changes nothing it proves."""
    from serve_support import save_like_the_pipeline

    from {{ cookiecutter.package_name }}.config import Paths
    from {{ cookiecutter.package_name }}.data import PROFILE, load_profile, prepared_frames, write_profile
    from {{ cookiecutter.package_name }}.train import fit

    data = {**params["data"], "dataset": dataset, "raw_path": "", "target": "target", "task": ""}
    train = {**params["train"], "model": model}
    for name, key in (("random_forest", "n_estimators"), ("hist_gradient_boosting", "max_iter")):
        settings = train.get(name) or {}
        train[name] = {**settings, key: min(settings.get(key, 10), 10)}
    changed = {**params, "data": data, "train": train}
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(changed), encoding="utf-8")
    paths = Paths(root)
    if dataset not in prepared:
        write_profile(paths)
        text = (root / PROFILE).read_text(encoding="utf-8")
        prepared[dataset] = (text, *prepared_frames(paths, data))
    text, train_rows, test = prepared[dataset]
    (root / PROFILE).parent.mkdir(parents=True, exist_ok=True)
    (root / PROFILE).write_text(text, encoding="utf-8")
    profile = load_profile(paths)
    fitted = fit(train_rows, changed["train"], profile)
    save_like_the_pipeline(fitted, paths)
    return paths, profile, fitted, test


@pytest.mark.parametrize("model", ["logistic", "random_forest", "hist_gradient_boosting"])
@pytest.mark.parametrize("dataset", ["breast_cancer", "mixed"])
def test_the_fast_path_answers_exactly_as_the_model(tmp_path, params, prepared, dataset, model):
    """Rows checked straight into the estimator's matrix give the model's own outputs, to
    the bit, for numbers only and for booleans, categories and missing values (mixed)."""
    import numpy as np

    from {{ cookiecutter.package_name }}.data import LABEL

    paths, profile, fitted, test = project_on(tmp_path / "p", params, dataset, model, prepared)
    predictor = Predictor(paths)
    assert predictor.fast is not None, "the fast path was not proven for the pipeline's model"
    if model == "logistic":  # its predict_proba is replayed too (and so compared below)
        assert predictor.fast.linear is not None, "the linear replay was not proven"
    rows = rows_of(test, len(test), profile)
    features = test.drop(columns=[LABEL])[predictor.columns]
    # the same batches on both sides (BLAS may round a 50-row product unlike a 114-row one),
    # within the configured batch limit
    for size in (1, min(50, batch_limit(params))):
        for start in range(0, len(rows) if size > 1 else 10, size):
            got = predictor.raw(rows[start : start + size])
            own = fitted.predict_proba(features.iloc[start : start + size])
            assert np.array_equal(got, own), (size, start)


def test_a_preprocessing_the_fast_path_would_get_wrong_is_not_used(tmp_path, frames, params):
    """The probe rows catch a replay that differs from the model (here a scaler that does
    not centre), and one the fast path cannot replay: both answer through the whole model."""
    import numpy as np
    from serve_support import save_like_the_pipeline
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    from {{ cookiecutter.package_name }}.data import LABEL

    root = make_root(tmp_path / "p", frames[0], params)
    features = frames[0].drop(columns=[LABEL])
    numbers = list(features.select_dtypes("number").columns)
    if len(numbers) != features.shape[1]:
        pytest.skip("the profile has non-numeric features")
    regression = Predictor(root).task == "regression"
    for scaler in (StandardScaler(with_mean=False), MinMaxScaler()):
        steps = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", scaler)])
        model = Pipeline(
            [
                ("prepare", ColumnTransformer([("numeric", steps, numbers)])),
                ("model", Ridge() if regression else LogisticRegression(max_iter=500)),
            ]
        ).fit(features, frames[0][LABEL])
        save_like_the_pipeline(model, root)
        predictor = Predictor(root)
        assert predictor.fast is None, type(scaler).__name__
        count = min(5, predictor.max_rows)
        rows = rows_of(frames[1], count)
        method = model.predict if regression else model.predict_proba
        expected = method(frames[1].drop(columns=[LABEL]).head(count))
        assert np.array_equal(predictor.raw(rows), expected)

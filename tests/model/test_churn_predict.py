"""Scoring with a fitted churn model: the probability is the boosters' mean raw score blended with
the linear part and calibrated, whatever form the frame's categoricals arrive in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from models.churn.model import (
    ChurnModel,
    LinearScorer,
    ModelError,
    PlattCalibrator,
    coerce_features,
    fit_churn_model_cv,
    fit_logistic_baseline,
)

FEATURES = ["usage_drop", "tickets", "seats", "tier", "region"]
CATEGORICAL = ["tier", "region"]


def _frame(n: int, seed: int, *, unseen: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tiers = ["gold", "silver", "bronze"] + (["platinum"] if unseen else [])
    regions = ["emea", "na", "apac"] + (["mars"] if unseen else [])
    tier = rng.choice(tiers, n).astype(object)
    region = rng.choice(regions, n).astype(object)
    tier[rng.random(n) < 0.08] = None
    region[rng.random(n) < 0.08] = None
    tickets = rng.poisson(2, n).astype(float)
    tickets[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "usage_drop": rng.normal(0, 1, n),
        "tickets": tickets,
        "seats": rng.integers(1, 200, n),          # an integer column: scored as float64
        "tier": tier,
        "region": region,
    })


def _label(frame: pd.DataFrame, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = (-1.2 + 1.5 * frame["usage_drop"] + 0.3 * np.nan_to_num(frame["tickets"])
         - 0.9 * (frame["tier"] == "gold") + 0.6 * (frame["region"] == "apac"))
    return (rng.random(len(frame)) < expit(z.to_numpy(dtype=float))).astype(int)


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return _frame(1_600, seed=3)


@pytest.fixture(scope="module")
def pipeline(train):
    """The logistic regression behind the model's linear part, as scikit-learn fits it."""
    return fit_logistic_baseline(train, features=FEATURES, categorical=CATEGORICAL, y=_label(train, seed=4))


@pytest.fixture(scope="module")
def model(train, pipeline) -> ChurnModel:
    """Fold boosters (several), a linear part with weight, a calibrator that is not the identity."""
    fitted = fit_churn_model_cv(train, _label(train, seed=4), categorical=CATEGORICAL, seed=0, tuning_budget=1)
    assert len(fitted.boosters) > 1
    fitted.linear = LinearScorer.from_pipeline(pipeline, coerce_features(train, FEATURES, fitted.categorical))
    assert fitted.linear.indicators, "a numeric feature with missing values has an indicator term"
    fitted.blend_weight = 0.6
    fitted.calibrator = PlattCalibrator(a=0.8, b=-0.3)
    return fitted


@pytest.fixture(scope="module")
def live() -> pd.DataFrame:
    """Rows to score: unseen levels and missing values in both categoricals and in a number."""
    frame = _frame(3_000, seed=9, unseen=True).set_axis(pd.Index([f"a{i}" for i in range(3_000)]))
    assert frame["tier"].eq("platinum").any() and frame["tier"].isna().any()
    assert frame["region"].eq("mars").any() and frame["region"].isna().any()
    return frame


def _by_value(values: pd.Series, levels: list[str]) -> pd.Categorical:
    """The coercion spelled out: each value's text, kept when it is a training level."""
    text = values.astype(str).where(values.notna(), np.nan)
    return pd.Categorical(text.where(text.isin(levels)), categories=levels)


def _expected(model: ChurnModel, frame: pd.DataFrame) -> np.ndarray:
    """calibrator(w * mean of the boosters' raw scores + (1 - w) * linear), from the coerced frame
    through LightGBM's own reading of a pandas frame."""
    Xc = coerce_features(frame, model.feature_names, model.categorical)
    gbm = np.mean([b.predict(Xc, raw_score=True) for b in model.boosters], axis=0)
    linear = model.linear.decision_function(Xc)
    return expit(model.calibrator.a * (model.blend_weight * gbm + (1 - model.blend_weight) * linear)
                 + model.calibrator.b)


def _forms(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {
        "object": frame,
        "string": frame.astype({c: "string" for c in CATEGORICAL}),
        # as `models.churn.features.feature_matrix` hands them over: the live frame's own categories
        "category": frame.astype({c: "category" for c in CATEGORICAL}),
        # categories in another order, with a level no row uses
        "category_reordered": frame.astype({
            c: pd.CategoricalDtype(["zzz", *sorted(frame[c].dropna().unique(), reverse=True)]) for c in CATEGORICAL}),
    }


@pytest.mark.parametrize("form", ["object", "string", "category", "category_reordered"])
def test_predict_proba_is_the_blended_calibrated_booster_mean(model, pipeline, live, form):
    X = _forms(live)[form]
    expected = _expected(model, live)
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=0, atol=1e-12)
    # and the linear part is scikit-learn's regression on the coerced rows (unseen levels missing)
    Xc = coerce_features(live, FEATURES, model.categorical)
    linear = (model.decision_function(X) - model.blend_weight * np.mean(
        [b.predict(Xc, raw_score=True) for b in model.boosters], axis=0)) / (1 - model.blend_weight)
    np.testing.assert_allclose(linear, pipeline.decision_function(Xc.astype({c: object for c in CATEGORICAL})),
                               rtol=0, atol=1e-9)
    assert model.linear is not None and 0 < model.blend_weight < 1 and model.calibrator.method == "platt"
    # the blend matters: the boosters alone score differently
    gbm_only = expit(model.calibrator.a * np.mean(
        [b.predict(coerce_features(live, FEATURES, model.categorical), raw_score=True) for b in model.boosters],
        axis=0) + model.calibrator.b)
    assert np.abs(model.predict_proba(X) - gbm_only).max() > 1e-3


@pytest.mark.parametrize("form", ["object", "string", "category", "category_reordered"])
def test_contributions_sum_to_the_score_in_every_form(model, live, form):
    X = _forms(live)[form]
    contribs = model.contributions(X)
    assert list(contribs.index) == list(live.index)
    reference = model.contributions(live)
    np.testing.assert_allclose(contribs.to_numpy(), reference.to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(contribs.sum(axis=1), model.decision_function(X), rtol=0, atol=1e-9)


def test_unseen_levels_score_as_missing(model, live):
    unseen = live.assign(tier="platinum", region="mars")
    missing = live.assign(tier=None, region=None)
    np.testing.assert_array_equal(model.predict_proba(unseen), model.predict_proba(missing))
    np.testing.assert_array_equal(model.predict_proba(unseen.astype({c: "category" for c in CATEGORICAL})),
                                  model.predict_proba(missing))


@pytest.mark.parametrize("form", ["object", "string", "category", "category_reordered"])
def test_coerce_features_keeps_a_training_level_by_its_text(model, live, form):
    Xc = coerce_features(_forms(live)[form], FEATURES, model.categorical)
    for c in CATEGORICAL:
        expected = _by_value(live[c], model.categorical[c])
        assert Xc[c].dtype == expected.dtype
        np.testing.assert_array_equal(Xc[c].cat.codes.to_numpy(), expected.codes)
        assert (Xc[c].cat.codes < 0).sum() > (live[c].isna()).sum()   # unseen levels are missing too
    assert Xc["seats"].dtype == np.float64


@pytest.mark.parametrize("column", [
    pd.Categorical.from_codes([1, 0, -1, 2], categories=[1, 3, 7]),    # numbers, one missing
    pd.Categorical([3, 1, 7, 3]),
    pd.Categorical(["3", "1", None, "7"]),
    pd.Series(["3", "1", None, "7"], dtype="string").astype("category"),
])
def test_categories_are_matched_as_their_values_text_is(column):
    frame = pd.DataFrame({"n": [1.0, 2.0, 3.0, 4.0], "k": column})
    levels = ["1", "3"]
    Xc = coerce_features(frame, ["n", "k"], {"k": levels})
    np.testing.assert_array_equal(Xc["k"].cat.codes.to_numpy(), _by_value(frame["k"], levels).codes)
    assert list(Xc["k"].cat.categories) == levels


def test_text_categories_keep_their_levels():
    frame = pd.DataFrame({"n": [1.0, 2.0, 3.0, 4.0], "k": pd.Categorical(["3", "1", None, "7"])})
    Xc = coerce_features(frame, ["n", "k"], {"k": ["1", "3"]})
    np.testing.assert_array_equal(Xc["k"].cat.codes.to_numpy(), [1, 0, -1, -1])


def test_an_empty_frame_is_refused(model, live):
    with pytest.raises(ValueError):
        model.predict_proba(live.iloc[:0])


def test_a_text_column_not_declared_categorical_is_named(model, live):
    with pytest.raises(ModelError, match="'tickets'"):
        model.predict_proba(live.assign(tickets="many"))

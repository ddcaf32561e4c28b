"""Weighted sampling of non-churning training rows: what is kept, what it weighs, and that a
model fitted on the sample ranks and calibrates like the one fitted on every row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.churn import capacity
from models.churn.fallback import RulesRiskModel
from models.churn.generated import interaction_table
from models.churn.labels import observation_dates
from models.churn.model import fit_churn_model, fit_churn_model_cv
from models.churn.sampling import NEGATIVE_SAMPLE_ROWS, WEIGHT, negative_rate, sample_negatives, sampling_summary
from models.churn.training import build_training_set, time_split
from tests.factories import random_tables

ROWS_PER_DATE = 3_000
DATES = 8
SHARE = 0.2


def _dated(rows_per_date: int, *, seed: int) -> pd.DataFrame:
    """A generated table (4.5% churners) cut into observation dates, as a training set."""
    X, y = interaction_table(rows_per_date * DATES, 10, seed=seed, shift=-7.0)
    return X.assign(observation_date=np.repeat(pd.date_range("2026-01-05", periods=DATES, freq="28D"), rows_per_date),
                    account_id=np.tile(np.arange(rows_per_date), DATES), label=y)


def _target(frame: pd.DataFrame, share: float, valid_dates: int = 2) -> int:
    train = frame[frame["observation_date"] < sorted(frame["observation_date"].unique())[-valid_dates]]
    positives = int(train["label"].sum())
    return int(round(positives + share * (len(train) - positives)))


FEATURES = [f"x{i}" for i in range(9)] + ["plan"]


# ------------------------------------------------------------------------------- the sample


def test_every_churn_row_and_every_validation_row_is_kept_and_weighted_counts_are_the_full_sets():
    frame = _dated(2_000, seed=1)
    sampled = sample_negatives(frame, target_rows=_target(frame, SHARE), valid_dates=2, seed=0)
    dates = sorted(frame["observation_date"].unique())
    valid = sampled[sampled["observation_date"] >= dates[-2]]
    full_valid = frame[frame["observation_date"] >= dates[-2]]
    assert len(valid) == len(full_valid) and (valid[WEIGHT] == 1.0).all()
    assert sampled["label"].sum() == frame["label"].sum()
    assert (sampled.loc[sampled["label"] == 1, WEIGHT] == 1.0).all()
    for d in dates[:-2]:
        full_neg = int(((frame["observation_date"] == d) & (frame["label"] == 0)).sum())
        kept = sampled[(sampled["observation_date"] == d) & (sampled["label"] == 0)]
        assert len(kept) == pytest.approx(SHARE * full_neg, abs=1)  # stratified: each date its share
        assert kept[WEIGHT].sum() == pytest.approx(full_neg, rel=1e-12)
    assert len(sampled) == pytest.approx(_target(frame, SHARE) + len(full_valid), abs=len(dates))
    summary = sampling_summary(sampled[sampled["observation_date"] < dates[-2]])
    assert summary["sampled"] and summary["weighted_rows"] == pytest.approx(len(frame) - len(full_valid))
    assert all(r == pytest.approx(SHARE, abs=1e-3) for r in summary["negative_rate_by_date"].values())
    # the kept rows are the original rows, unchanged
    merged = sampled.merge(frame, on=["observation_date", "account_id"], suffixes=("", "_full"))
    assert len(merged) == len(sampled) and (merged["x0"].fillna(0) == merged["x0_full"].fillna(0)).all()


def test_sampling_is_seeded_and_below_the_target_nothing_changes():
    frame = _dated(1_000, seed=2)
    target = _target(frame, 0.3)
    a = sample_negatives(frame, target_rows=target, valid_dates=2, seed=5)
    b = sample_negatives(frame, target_rows=target, valid_dates=2, seed=5)
    c = sample_negatives(frame, target_rows=target, valid_dates=2, seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert not a["account_id"].equals(c["account_id"])
    whole = sample_negatives(frame, target_rows=6 * 1_000, valid_dates=2, seed=5)
    pd.testing.assert_frame_equal(whole.drop(columns=WEIGHT), frame)
    assert (whole[WEIGHT] == 1.0).all() and not sampling_summary(whole)["sampled"]
    assert negative_rate(1_000, 50, None) == 1.0 and negative_rate(1_000, 50, 1_000) == 1.0
    assert negative_rate(1_000, 50, 525) == pytest.approx(0.5)


def test_the_default_target_leaves_a_100k_account_world_whole_and_samples_a_1m_one():
    # about 83,000 accounts alive per date, 6 training dates, 4% churn rows
    assert negative_rate(6 * 83_000, 20_000, NEGATIVE_SAMPLE_ROWS) == 1.0
    rate = negative_rate(6 * 830_000, 200_000, NEGATIVE_SAMPLE_ROWS)
    assert 0.15 < rate < 0.2


def test_the_training_set_samples_before_features_and_the_kept_rows_have_the_full_sets_features():
    t = random_tables(n_accounts=300, seed=8)
    usage = t["usage_daily"]
    start, end = usage["date"].min(), usage["date"].max() + pd.Timedelta(days=1)
    dates = observation_dates(start, end, horizon_days=90, n_dates=5)

    def build(target):
        return build_training_set(t["accounts"], t["renewals"], t["tickets"],
                                  lambda a, b: usage[(usage["date"] >= a) & (usage["date"] < b)],
                                  dates, horizon_days=90, data_end=end, negative_sample_rows=target,
                                  valid_dates=2, seed=0)

    full = build(None)
    assert (full[WEIGHT] == 1.0).all()
    train_rows = int((full["observation_date"] < sorted(full["observation_date"].unique())[-2]).sum())
    sampled = build(train_rows // 2)
    assert (sampled[WEIGHT] != 1.0).any() and full["label"].sum() == sampled["label"].sum() > 0
    assert sampled[WEIGHT].sum() == pytest.approx(len(full))
    assert len(sampled) == pytest.approx(train_rows // 2 + (len(full) - train_rows), abs=len(dates))
    key = ["observation_date", "account_id"]
    same = full.set_index(key).loc[sampled.set_index(key).index].reset_index()
    pd.testing.assert_frame_equal(sampled.drop(columns=WEIGHT), same.drop(columns=WEIGHT), check_like=True)
    # the rules fallback calibrated on the sample keeps the population's churn rate
    base = {name: RulesRiskModel.fit(data).metadata["base_rate"] for name, data in
            (("full", full), ("sampled", sampled), ("unweighted", sampled.drop(columns=WEIGHT)))}
    assert base["sampled"] == pytest.approx(base["full"], rel=1e-9)
    assert base["unweighted"] > 1.2 * base["full"]


# ------------------------------------------------------------------------------- the model


def test_weights_of_one_give_exactly_the_unweighted_model():
    frame = _dated(400, seed=3)
    train, valid = time_split(frame)
    plain = fit_churn_model(train, valid, label="label", features=FEATURES, categorical=["plan"], tuning_budget=2)
    ones = fit_churn_model(train.assign(**{WEIGHT: 1.0}), valid.assign(**{WEIGHT: 1.0}), label="label",
                           features=FEATURES, categorical=["plan"], tuning_budget=2, weight=WEIGHT)
    np.testing.assert_array_equal(ones.predict_proba(valid), plain.predict_proba(valid))
    X, y = train[FEATURES], train["label"].to_numpy()
    cv_plain = fit_churn_model_cv(X, y, categorical=["plan"], tuning_budget=2)
    cv_ones = fit_churn_model_cv(X, y, categorical=["plan"], tuning_budget=2, sample_weight=np.ones(len(y)))
    np.testing.assert_array_equal(cv_ones.predict_proba(valid), cv_plain.predict_proba(valid))
    # the weighted code paths themselves agree with the unweighted ones on weights of one
    np.testing.assert_array_equal(capacity.weights(y, np.ones(len(y))), capacity.weights(y))
    score = np.random.default_rng(0).normal(size=len(y))
    assert capacity.auc(y, score, np.ones(len(y))) == capacity.auc(y, score)


@pytest.fixture(scope="module")
def side_by_side():
    frame = _dated(ROWS_PER_DATE, seed=3)
    sampled = sample_negatives(frame, target_rows=_target(frame, SHARE), valid_dates=2, seed=0)
    test_X, test_y = interaction_table(20_000, 10, seed=4, shift=-7.0)  # unseen rows, never sampled
    fits = {}
    for name, data in (("full", frame), ("sampled", sampled)):
        train, valid = time_split(data)
        fits[name] = (fit_churn_model(train, valid, label="label", features=FEATURES, categorical=["plan"],
                                      weight=WEIGHT if name == "sampled" else None), train, valid)
    return fits, test_X, test_y


def test_the_sampled_fit_ranks_the_full_validation_window_like_the_full_fit(side_by_side):
    fits, test_X, test_y = side_by_side
    (full, _, valid), (sampled, train, sampled_valid) = fits["full"], fits["sampled"]
    assert len(sampled_valid) == len(valid) and (sampled_valid[WEIGHT] == 1.0).all()
    assert len(train) < 0.3 * 6 * ROWS_PER_DATE
    y = valid["label"].to_numpy()
    auc_full, auc_sampled = (roc_auc_score(y, m.predict_proba(valid)) for m in (full, sampled))
    # measured: 0.9785 full, 0.9758 sampled (18,000 training rows against 4,100)
    assert auc_full > 0.95 and abs(auc_sampled - auc_full) < 0.005
    assert abs(roc_auc_score(test_y, sampled.predict_proba(test_X))
               - roc_auc_score(test_y, full.predict_proba(test_X))) < 0.005
    assert sampled.metadata["positive_rate"] == pytest.approx(_weighted_rate(train, sampled_valid), rel=1e-9)


def _weighted_rate(train: pd.DataFrame, valid: pd.DataFrame) -> float:
    both = pd.concat([train, valid])
    return float(np.average(both["label"], weights=both[WEIGHT]))


def test_the_sampled_fit_is_calibrated_on_the_population(side_by_side):
    fits, test_X, test_y = side_by_side
    full, sampled = fits["full"][0], fits["sampled"][0]
    valid = fits["full"][2]
    observed = valid["label"].mean()
    # on the unsampled validation rows and on unseen rows: mean predicted against observed
    # (binomial standard error of the unseen rate: 0.0015)
    assert abs(sampled.predict_proba(valid).mean() - observed) < 0.002
    assert abs(sampled.predict_proba(test_X).mean() - test_y.mean()) < 0.006
    assert abs(sampled.predict_proba(test_X).mean() - full.predict_proba(test_X).mean()) < 0.003


def test_without_its_weights_a_sample_calibrates_to_the_sample_not_the_population(side_by_side):
    """Inner folds of one table: the held-out rows that calibrate are themselves sampled, so only
    the weights bring the probabilities back to the population's churn rate."""
    fits, test_X, test_y = side_by_side
    train = fits["sampled"][1]
    X, y, w = train[FEATURES], train["label"].to_numpy(), train[WEIGHT].to_numpy()
    weighted = fit_churn_model_cv(X, y, categorical=["plan"], sample_weight=w).predict_proba(test_X).mean()
    ignored = fit_churn_model_cv(X, y, categorical=["plan"]).predict_proba(test_X).mean()
    # measured: 0.042 weighted, 0.088 without the weights, for an observed 0.046
    assert abs(weighted - test_y.mean()) < 0.006
    assert ignored > 1.5 * test_y.mean()

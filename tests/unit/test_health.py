"""The composite health score: bounds, monotonicity, bands, and the rules-only baseline."""

import numpy as np
import pandas as pd
import pytest

from models.churn.features import account_features
from models.churn.health import WEIGHTS, band, health_scores, rules_risk
from tests.factories import random_tables


@pytest.fixture(scope="module")
def feats():
    t = random_tables(n_accounts=60, seed=11)
    return account_features(t["accounts"], t["renewals"], t["tickets"], t["usage_daily"], pd.Timestamp("2025-09-01"))


def test_scores_and_components_are_bounded(feats):
    h = health_scores(feats, np.full(len(feats), 0.3))
    for col in ("usage", "support", "relationship", "model_risk", "health_score"):
        assert h[col].between(0, 100).all(), col
    assert set(h["health_band"]) <= {"healthy", "watch", "at_risk", "critical"}


def test_score_is_the_weighted_sum_of_components(feats):
    h = health_scores(feats, np.linspace(0, 1, len(feats)))
    expected = sum(h[k] * w for k, w in WEIGHTS.items())
    assert np.allclose(h["health_score"], expected, atol=0.2)


def test_higher_churn_risk_never_raises_health(feats):
    low = health_scores(feats, np.full(len(feats), 0.1))["health_score"]
    high = health_scores(feats, np.full(len(feats), 0.9))["health_score"]
    assert (high < low).all()


def test_worse_support_lowers_health_and_raises_rules_risk(feats):
    worse = feats.copy()
    worse["open_urgent_tickets"] += 3
    worse["oldest_open_urgent_hours"] += 120
    assert (health_scores(worse, np.zeros(len(feats)))["support"] <= health_scores(feats, np.zeros(len(feats)))["support"]).all()
    assert (rules_risk(worse) >= rules_risk(feats)).all()
    assert (rules_risk(worse) > rules_risk(feats)).any()


def test_declining_usage_lowers_the_usage_component(feats):
    worse = feats.copy()
    worse["wau_trend"] = -0.7
    assert (health_scores(worse, np.zeros(len(feats)))["usage"] <= health_scores(feats, np.zeros(len(feats)))["usage"]).all()


def test_band_edges():
    assert list(band(np.array([100, 70, 69.9, 50, 49.9, 30, 29.9, 0]))) == [
        "healthy", "healthy", "watch", "watch", "at_risk", "at_risk", "critical", "critical",
    ]


def test_intervention_status_names_the_open_case_and_its_plays():
    from models.churn.health import intervention_status

    ids = pd.Index(["a", "b", "c"])
    cases = pd.DataFrame({"account_id": ["a", "b"], "case_id": ["RC-1", "RC-2"], "status": ["in_progress", "open"],
                          "priority": ["P1", "P3"], "team": ["rescue_squad", "csm"], "assignee": ["maya", None]})
    plays = pd.DataFrame({"case_id": ["RC-1", "RC-1"], "play": ["executive_sponsor_call", "adoption_workshop"]})
    out = intervention_status(ids, cases, plays)
    assert out["a"] == "rescue case RC-1 in_progress (P1, rescue_squad, maya, 2 plays logged)"
    assert out["b"] == "rescue case RC-2 open (P3, csm)"
    assert out["c"] is None
    assert intervention_status(ids, cases.iloc[0:0], plays).isna().all()


def test_explain_mask_covers_the_floor_and_the_riskiest_share():
    from models.churn.scoring import EXPLAIN_MIN_RISK, explain_mask

    risk = np.concatenate([np.full(90, 0.001), np.linspace(0.003, 0.01, 5), [EXPLAIN_MIN_RISK, 0.3, 0.5, 0.7, 0.9]])
    mask = explain_mask(risk)
    assert mask[risk >= EXPLAIN_MIN_RISK].all()
    assert mask.sum() >= 0.2 * len(risk)
    assert mask.sum() == 20 and mask[:90].sum() == 10  # ties at the edge fill the share, the bulk is not explained
    assert explain_mask(np.array([])).size == 0

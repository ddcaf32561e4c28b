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


# ------------------------------------------------------------------------------ fitting the company


def test_rules_terms_add_up_to_the_rules_risk(feats):
    from models.churn.health import HealthConfig, rules_terms

    worse = feats.copy()
    worse["open_urgent_tickets"] = 3.0
    worse["oldest_open_urgent_hours"] = 200.0
    worse["low_csat_180d"] = 3.0  # support penalty above 1: clipped, shared out
    for frame in (feats, worse):
        for config in (None, HealthConfig(weights={"usage": 0.5, "support": 0.0, "relationship": 0.15, "model_risk": 0.35})):
            assert np.allclose(rules_terms(frame, config).sum(axis=1), rules_risk(frame, config), atol=1e-12)


@pytest.fixture(scope="module")
def backwards_company():
    """A few hundred accounts where engaged accounts (open urgent tickets, escalations) churn less."""
    from tests.factories import company_training_set

    return company_training_set(400, seed=1, support_backwards=True, churn_rate=0.06)


def test_a_component_that_predicts_backwards_gets_a_warning_and_weight_zero(backwards_company):
    from models.churn.health import RULE_WEIGHTS, component_aucs, fit_health_config

    t = backwards_company
    aucs = component_aucs(t, t["label"])
    assert aucs["support"] < 0.45 and aucs["usage"] > 0.52
    config = fit_health_config(t, t["label"])
    assert config.source == "checked"
    assert config.checks["support"]["status"] == "backwards" and config.weights["support"] == 0.0
    assert config.checks["usage"]["status"] == "ok"
    assert config.warnings == (f"health component support predicts backwards on this company (ROC-AUC "
                               f"{aucs['support']:.3f} < 0.48): its weight is set to 0",)
    # the others share its weight: the rules keep their share of the score, model risk is untouched
    assert sum(config.rule_weights.values()) == pytest.approx(sum(RULE_WEIGHTS.values()))
    assert config.weights["usage"] / config.weights["relationship"] == pytest.approx(0.30 / 0.15)
    assert config.weights["model_risk"] == 0.35
    # and the rules-only risk no longer reads support at all
    quieter = t.assign(open_urgent_tickets=0.0, escalated_90d=0.0, low_csat_180d=0.0)
    assert np.allclose(rules_risk(t, config), rules_risk(quieter, config))
    assert not np.allclose(rules_risk(t), rules_risk(quieter))


def test_fitted_weights_need_enough_churn_labels_and_stay_non_negative(backwards_company):
    from models.churn.health import fit_health_config
    from tests.factories import company_training_set

    t = backwards_company
    early = t[t["observation_date"] < sorted(t["observation_date"].unique())[3]]  # 3 dates
    assert early["label"].sum() < 200
    few = fit_health_config(early, early["label"], weights="fitted")
    assert few.source == "checked" and any("not fitted" in w for w in few.warnings)
    big = company_training_set(1500, seed=2, support_backwards=True, churn_rate=0.06)
    fitted = fit_health_config(big, big["label"], weights="fitted")
    assert fitted.source == "fitted" and int(big["label"].sum()) >= 200
    assert fitted.weights["support"] == 0.0 and fitted.weights["usage"] > 0
    assert all(w >= 0 for w in fitted.weights.values())
    assert sum(fitted.rule_weights.values()) == pytest.approx(0.65)
    with pytest.raises(ValueError, match="checked"):
        fit_health_config(big, big["label"], weights="tuned")


def test_band_edges_can_be_quantiles_of_the_company_scores(feats):
    from models.churn.health import DEFAULT_CONFIG, HealthConfig, with_quantile_bands

    scores = np.linspace(0, 100, 1001)
    config = with_quantile_bands(DEFAULT_CONFIG, scores, [0.5, 0.2, 0.05])
    assert config.thresholds == (50.0, 20.0, 5.0) and config.band_quantiles == (0.5, 0.2, 0.05)
    shares = pd.Series(band(scores, config.thresholds)).value_counts(normalize=True)
    assert shares["critical"] == pytest.approx(0.05, abs=0.002) and shares["healthy"] == pytest.approx(0.5, abs=0.002)
    h = health_scores(feats, np.full(len(feats), 0.3), config)
    assert (h["health_band"] == band(h["health_score"], (50.0, 20.0, 5.0))).all()
    # the configuration travels as plain data and comes back the same
    assert HealthConfig.from_dict(config.to_dict()) == config
    assert HealthConfig.from_dict(None) == DEFAULT_CONFIG
    with pytest.raises(ValueError, match="decreasing"):
        with_quantile_bands(DEFAULT_CONFIG, scores, [0.05, 0.2, 0.5])

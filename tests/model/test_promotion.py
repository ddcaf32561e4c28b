"""Champion/challenger gate."""

from __future__ import annotations

from models.churn.promotion import decide_promotion

BASELINES = {"logistic_regression": {"roc_auc": 0.80, "brier": 0.15}, "health_score": {"roc_auc": 0.70}}


def test_better_challenger_is_promoted():
    decision = decide_promotion({"roc_auc": 0.85}, {"roc_auc": 0.84}, BASELINES)
    assert decision.promote
    assert len(decision.reasons) == 3


def test_worse_challenger_is_refused():
    decision = decide_promotion({"roc_auc": 0.83}, {"roc_auc": 0.84}, BASELINES)
    assert not decision.promote
    assert any("worse than champion" in r for r in decision.reasons)


def test_challenger_that_does_not_beat_a_baseline_is_refused_even_without_champion():
    decision = decide_promotion({"roc_auc": 0.79}, None, BASELINES)
    assert not decision.promote
    assert any("does not beat baseline logistic_regression" in r for r in decision.reasons)
    tie = decide_promotion({"roc_auc": 0.80}, None, BASELINES)
    assert not tie.promote  # beating a baseline is strict


def test_tolerance_and_lower_is_better_metrics():
    assert decide_promotion({"roc_auc": 0.835}, {"roc_auc": 0.84}, BASELINES, tolerance=0.01).promote
    assert decide_promotion({"brier": 0.12}, {"brier": 0.13}, {"lr": {"brier": 0.15}}, metric="brier").promote
    assert not decide_promotion({"brier": 0.14}, {"brier": 0.13}, {"lr": {"brier": 0.15}}, metric="brier").promote


def test_missing_metric_refuses():
    decision = decide_promotion({"pr_auc": 0.6}, None, BASELINES)
    assert not decision.promote and decision.reasons == ["challenger has no finite roc_auc"]

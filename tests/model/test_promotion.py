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


# ------------------------------------------------------------------------------- with intervals


def _intervals(churners=60, model=(0.85, 0.81, 0.89), diffs=None):
    common = {"churners": churners, "confidence": 0.95, "resamples": 1000}
    out = {"model": {"roc_auc": model[0], "low": model[1], "high": model[2], **common}}
    for name, (diff, lo, hi) in (diffs or {"logistic_regression": (0.05, 0.01, 0.09),
                                           "health_score": (0.15, 0.10, 0.20)}).items():
        out[name] = {"roc_auc": model[0] - diff, "low": 0.0, "high": 1.0, "diff": diff, "diff_low": lo,
                     "diff_high": hi, **common}
    return out


def test_a_challenger_whose_paired_differences_clear_zero_is_promoted():
    decision = decide_promotion({"roc_auc": 0.85}, None, BASELINES, intervals=_intervals())
    assert decision.promote and decision.verdict == "promoted" and decision.enough_evidence
    assert decision.interval["low"] == 0.81
    assert "challenger roc_auc 0.850 (95% CI 0.810-0.890) beats baseline logistic_regression (0.800): " \
           "difference +0.050 (95% CI +0.010 to +0.090)" in decision.reasons


def test_a_win_the_interval_does_not_carry_is_not_enough_evidence():
    shaky = _intervals(diffs={"logistic_regression": (0.05, -0.01, 0.11), "health_score": (0.15, 0.1, 0.2)})
    decision = decide_promotion({"roc_auc": 0.85}, None, BASELINES, intervals=shaky)
    assert not decision.promote and decision.verdict == "not enough evidence"
    assert any("is not shown to beat baseline logistic_regression" in r and "-0.010 to +0.110" in r
               for r in decision.reasons)


def test_too_few_churners_is_not_enough_evidence_whatever_the_point_estimates():
    for challenger in ({"roc_auc": 0.85}, {"roc_auc": 0.75}):
        decision = decide_promotion(challenger, None, BASELINES, intervals=_intervals(churners=12))
        assert not decision.promote and decision.verdict == "not enough evidence"
        assert decision.reasons[0] == "12 churning accounts in the validation window, at least 30 needed"
    assert decide_promotion({"roc_auc": 0.85}, None, BASELINES, intervals=_intervals(churners=12),
                            min_churners=10).promote


def test_with_enough_churners_a_clear_loss_is_still_a_refusal():
    worse = decide_promotion({"roc_auc": 0.83}, {"roc_auc": 0.84}, BASELINES, intervals=_intervals())
    assert worse.verdict == "refused" and any("worse than champion" in r for r in worse.reasons)
    below = decide_promotion({"roc_auc": 0.79}, None, BASELINES, intervals=_intervals())
    assert below.verdict == "refused"
    assert any("does not beat baseline logistic_regression" in r for r in below.reasons)

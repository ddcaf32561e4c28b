"""Metrics on inputs whose answers are known, and plots that render."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.churn import evaluation as mx


def test_ece_is_zero_when_every_bin_matches_its_rate_and_known_otherwise():
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0, 0, 0])
    assert mx.expected_calibration_error(y, np.full(10, 0.4)) == pytest.approx(0.0)
    # all predictions 0.9 in one bin where the observed rate is 0.4
    assert mx.expected_calibration_error(y, np.full(10, 0.9)) == pytest.approx(0.5)
    # two bins: 0.15 with rate 0/5 (gap 0.15), 0.85 with rate 4/5 (gap 0.05): weighted 0.10
    y2 = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 0])
    p2 = np.array([0.15] * 5 + [0.85] * 5)
    assert mx.expected_calibration_error(y2, p2) == pytest.approx(0.10)


def test_top_decile_lift_and_recall_at_k():
    y = np.array([1] * 10 + [0] * 90)
    perfect = np.linspace(1, 0, 100)
    assert mx.top_decile_lift(y, perfect) == pytest.approx(10.0)
    assert mx.recall_at_k(y, perfect, 5) == pytest.approx(0.5)
    assert mx.recall_at_k(y, perfect, 20) == pytest.approx(1.0)
    reversed_scores = -perfect
    assert mx.top_decile_lift(y, reversed_scores) == pytest.approx(0.0)


def test_evaluate_reports_probability_metrics_only_for_probabilities():
    y = np.array([0, 1, 0, 1, 1, 0])
    probs = np.array([0.1, 0.8, 0.3, 0.7, 0.9, 0.2])
    result = mx.evaluate(y, probs, capacity_k=3)
    assert result["roc_auc"] == pytest.approx(1.0)
    assert result["brier"] == pytest.approx(np.mean((probs - y) ** 2))
    assert result["recall_at_k"] == pytest.approx(1.0)
    assert {"pr_auc", "log_loss", "ece", "top_decile_lift"} <= set(result)
    scores = mx.evaluate(y, probs * 100)
    assert "brier" not in scores and scores["roc_auc"] == pytest.approx(1.0)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in length"):
        mx.evaluate([0, 1], [0.5])


def test_plots_render_png():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    scores = {"model": p, "baseline": rng.random(200)}
    for png in (mx.roc_plot(y, scores), mx.calibration_plot(y, scores), mx.gains_plot(y, scores),
                mx.importance_plot(pd.Series({"a": 0.3, "b": 0.1}))):
        assert png.startswith(b"\x89PNG") and len(png) > 1000


# ------------------------------------------------------------------------------- uncertainty


def _scored(n: int, signal: float, seed: int, rate: float = 0.1):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(int)
    return y, signal * y + rng.normal(size=n)


def test_a_weighted_resample_gives_the_auc_of_the_resampled_rows():
    from scipy import sparse
    from sklearn.metrics import roc_auc_score

    y, s = _scored(400, 1.0, seed=1)
    s = np.round(s, 1)  # ties are counted half, as sklearn does
    rng = np.random.default_rng(2)
    picks = rng.integers(0, len(y), (3, len(y)))
    counts = np.stack([np.bincount(p, minlength=len(y)) for p in picks]).astype(float)
    got = mx._Ranks(y.astype(float), s).aucs(sparse.csr_matrix(counts))
    want = [roc_auc_score(y[p], s[p]) for p in picks]
    assert got == pytest.approx(want)


def test_auc_intervals_are_seeded_paired_and_cover_the_point_estimate():
    y, strong = _scored(1500, 1.2, seed=3)
    rng = np.random.default_rng(4)
    scores = {"model": strong, "close": strong + 0.6 * rng.normal(size=len(y)), "noise": rng.normal(size=len(y))}
    out = mx.auc_intervals(y, scores, reference="model", resamples=400)
    again = mx.auc_intervals(y, scores, reference="model", resamples=400)
    assert out == again  # seeded: the same rows give the same interval
    for name, row in out.items():
        assert row["low"] < row["roc_auc"] < row["high"], name
        assert row["churners"] == y.sum() and row["rows"] == len(y) and row["resamples"] == 400
    assert "diff" not in out["model"]
    close = out["close"]
    assert close["diff"] == pytest.approx(out["model"]["roc_auc"] - close["roc_auc"])
    # paired: the difference of two correlated scorers is known much better than either AUC
    assert close["diff_high"] - close["diff_low"] < close["high"] - close["low"]
    # ... so it can tell two scorers apart whose intervals side by side overlap
    assert close["high"] > out["model"]["low"] and close["diff_low"] > 0
    assert out["noise"]["diff_low"] > 0.15
    assert out["noise"]["low"] < 0.5 < out["noise"]["high"]


def test_resampling_whole_accounts_counts_each_churning_account_once():
    y, s = _scored(600, 1.0, seed=5)
    accounts = np.arange(600) % 300  # every account seen twice, e.g. at two observation dates
    y = y[accounts % 300]            # ... with the same label at both: no new evidence
    s = s[accounts % 300] + 0.01 * np.random.default_rng(6).normal(size=600)
    rows = mx.auc_intervals(y, {"m": s}, reference="m", resamples=500)["m"]
    grouped = mx.auc_intervals(y, {"m": s}, reference="m", groups=accounts, resamples=500)["m"]
    assert grouped["churners"] == rows["churners"] / 2 and grouped["churn_rows"] == rows["churn_rows"]
    assert (grouped["high"] - grouped["low"]) > 1.2 * (rows["high"] - rows["low"])


def test_auc_intervals_refuse_a_single_class_and_an_unknown_reference():
    with pytest.raises(ValueError, match="both churners and non-churners"):
        mx.auc_intervals(np.zeros(10), {"m": np.arange(10)}, reference="m")
    with pytest.raises(ValueError, match="reference"):
        mx.auc_intervals(np.array([0, 1]), {"m": np.arange(2)}, reference="x")


def test_a_large_window_gets_the_m_out_of_n_interval_of_the_full_bootstrap_width():
    """Above `max_rows` the resamples come from a sample of whole accounts, their deviations
    rescaled: the intervals are as wide as the full bootstrap's (within sampling noise), around
    the ROC-AUC of every row, paired differences included."""
    y, strong = _scored(60_000, 1.0, seed=8)
    accounts = np.arange(len(y)) % 40_000  # a third of the accounts seen twice
    rng = np.random.default_rng(9)
    scores = {"model": strong, "close": strong + 0.5 * rng.normal(size=len(y))}
    full = mx.auc_intervals(y, scores, reference="model", groups=accounts, resamples=300)
    small = mx.auc_intervals(y, scores, reference="model", groups=accounts, resamples=300, max_rows=8_000)
    assert full["model"]["bootstrap_rows"] == len(y) and 7_000 < small["model"]["bootstrap_rows"] < 9_000
    for name in scores:
        assert small[name]["roc_auc"] == full[name]["roc_auc"]  # the point estimate reads every row
        assert small[name]["low"] < small[name]["roc_auc"] < small[name]["high"]
        ratio = (small[name]["high"] - small[name]["low"]) / (full[name]["high"] - full[name]["low"])
        assert 0.75 < ratio < 1.33, (name, ratio)
    diff = (small["close"]["diff_high"] - small["close"]["diff_low"]) / (full["close"]["diff_high"] - full["close"]["diff_low"])
    assert 0.75 < diff < 1.33 and small["close"]["diff_low"] > 0
    # unscaled, the sample's own intervals would be sqrt(60,000 / 8,000) = 2.7 times as wide
    assert small["model"]["high"] - small["model"]["low"] < 1.5 * (full["model"]["high"] - full["model"]["low"])

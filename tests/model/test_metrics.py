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

"""Population stability index."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.churn.drift import drift_table, psi, status


def test_identical_distributions_have_zero_psi():
    values = np.random.default_rng(0).normal(size=5000)
    assert psi(values, values) == pytest.approx(0.0, abs=1e-12)
    levels = pd.Series(["a", "b", "b", "c", None] * 100)
    assert psi(levels, levels) == pytest.approx(0.0, abs=1e-12)


def test_shifted_distributions_have_large_psi():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, 5000)
    assert psi(base, rng.normal(0, 1, 5000)) < 0.02          # same distribution, new sample
    assert psi(base, rng.normal(1.5, 1, 5000)) > 0.5          # shifted by 1.5 sd
    cats_before = pd.Series(["a"] * 800 + ["b"] * 200)
    cats_after = pd.Series(["a"] * 200 + ["b"] * 700 + ["new"] * 100)
    assert psi(cats_before, cats_after) > 0.5


def test_missing_values_count_as_their_own_bin():
    before = pd.Series(np.r_[np.arange(1000.0), [np.nan] * 10])
    after = pd.Series(np.r_[np.arange(1000.0), [np.nan] * 500])
    assert psi(before, after) > 0.25


def test_drift_table_orders_worst_first_with_status():
    rng = np.random.default_rng(2)
    train = pd.DataFrame({"stable": rng.normal(size=3000), "moved": rng.normal(size=3000)})
    current = pd.DataFrame({"stable": rng.normal(size=3000), "moved": rng.normal(2, 1, 3000)})
    table = drift_table(train, current, ["stable", "moved"])
    assert table["feature"].tolist() == ["moved", "stable"]
    assert table["status"].tolist() == ["drift", "ok"]
    assert [status(0.05), status(0.2), status(0.3)] == ["ok", "watch", "drift"]
    with pytest.raises(ValueError, match="'absent' missing from the train frame"):
        drift_table(train, current, ["absent"])

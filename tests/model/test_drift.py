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


def _json_round_trip(profile):
    import json

    from models.churn.drift import Profile

    return Profile.from_dict(json.loads(json.dumps(profile.to_dict())))


@pytest.mark.parametrize("seed", range(6))
def test_a_kept_profile_gives_the_psi_of_the_reference_values_themselves(seed):
    """What the registry keeps of a reference (bin edges and counts, through JSON) measures any
    snapshot exactly as the reference rows would: numeric with missing values and ties, integer,
    bool, and categorical with levels the reference never saw and levels it had that are gone."""
    from models.churn.drift import Profile

    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(50, 3000)), int(rng.integers(1, 3000))
    numeric = pd.Series(np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2.0, 3.0, n).round(int(rng.integers(0, 3)))))
    current = pd.Series(np.where(rng.random(m) < 0.2, np.nan, rng.gamma(2.5, 3.0, m).round(1)))
    counts = pd.Series(rng.poisson(1.5, n)), pd.Series(rng.poisson(2.5, m))
    flags = pd.Series(rng.random(n) < 0.3), pd.Series(rng.random(m) < 0.6)
    levels = (pd.Series(rng.choice(["smb", "mid_market", "enterprise", None], n), dtype=object),
              pd.Series(rng.choice(["smb", "enterprise", "public_sector", None], m), dtype=object))
    for expected, actual in ((numeric, current), counts, flags, levels):
        kept = _json_round_trip(Profile.of(expected))
        assert kept.psi(actual) == psi(expected, actual)


def test_the_drift_reference_reports_the_training_sets_drift_table_exactly():
    from models.churn.drift import DriftReference, drift_report
    from models.churn.features import FEATURE_NAMES
    from tests.factories import company_training_set

    training = company_training_set(300, seed=4, churn_rate=0.1)

    class _Model:  # any model: the score is a fixed function of the features
        @staticmethod
        def predict_proba(X):
            return 1 / (1 + np.exp(-X[FEATURE_NAMES[0]].fillna(0).to_numpy(dtype=float) / 10))

    current = training[training["observation_date"] == training["observation_date"].min()].reset_index(drop=True)
    risk = pd.Series(_Model.predict_proba(current)) * 1.3
    kept = DriftReference.from_dict(__import__("json").loads(__import__("json").dumps(
        DriftReference.from_training(_Model, training).to_dict())))
    pd.testing.assert_frame_equal(kept.report(current, risk), drift_report(_Model, training, current, risk))
    with pytest.raises(ValueError, match="missing from the current frame"):
        kept.report(current.drop(columns=[FEATURE_NAMES[1]]), risk)

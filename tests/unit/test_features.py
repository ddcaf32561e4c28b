"""Account features: correct windows, and no feature sees the future."""

import numpy as np
import pandas as pd
import pytest

from models.churn.features import FEATURE_NAMES, account_features, describe_driver, feature_matrix
from tests.factories import random_tables

AS_OF = pd.Timestamp("2025-09-01")


def _features(t, as_of=AS_OF):
    return account_features(t["accounts"], t["renewals"], t["tickets"], t["usage_daily"], as_of)


def _scramble_after(t: dict, as_of: pd.Timestamp, seed: int) -> dict:
    """Change everything that happens on or after ``as_of``, leave the past alone."""
    rng = np.random.default_rng(seed)
    u = t["usage_daily"].copy()
    future = u["date"] >= as_of
    u.loc[future, "active_users"] = rng.integers(0, 500, future.sum())
    u.loc[future, "events"] = rng.integers(0, 5000, future.sum())
    # and add brand-new future rows for a day that had none
    extra = u[future].head(50).assign(date=as_of + pd.Timedelta(days=3), active_users=999)
    u = pd.concat([u, extra], ignore_index=True)

    tk = t["tickets"].copy()
    later = tk["created_at"] >= as_of
    tk.loc[later, "priority"] = "urgent"
    tk.loc[later, "category"] = "compliance"
    # tickets created before as_of but solved / answered / rated after it
    for col in ("solved_at", "first_response_at"):
        after = tk[col] >= as_of
        tk.loc[after, col] = tk.loc[after, col] + pd.Timedelta(days=int(rng.integers(1, 30)))
    solved_after = tk["solved_at"] >= as_of
    tk.loc[solved_after, "csat"] = 1.0
    new = tk.head(30).assign(created_at=as_of + pd.Timedelta(hours=1), ticket_id=lambda d: d["ticket_id"] + "-new")
    tk = pd.concat([tk, new], ignore_index=True)

    r = t["renewals"].copy()
    closed_after = r["closed_at"] >= as_of
    r.loc[closed_after, "outcome"] = np.where(r.loc[closed_after, "outcome"] == "churned", "renewed", "churned")
    return {**t, "usage_daily": u, "tickets": tk, "renewals": r}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_feature_uses_data_from_after_the_observation_date(seed):
    t = random_tables(seed=seed)
    before = _features(t)
    after = _features(_scramble_after(t, AS_OF, seed))
    pd.testing.assert_frame_equal(before, after)


def _as_seen_at(t: dict, as_of: pd.Timestamp) -> dict:
    """What the systems of record showed at ``as_of``: the future simply does not exist yet."""
    u = t["usage_daily"][t["usage_daily"]["date"] < as_of]
    tk = t["tickets"][t["tickets"]["created_at"] < as_of].copy()
    for col in ("first_response_at", "solved_at"):
        tk[col] = tk[col].where(tk[col] < as_of)
    tk["csat"] = tk["csat"].where(tk["solved_at"].notna())
    tk["status"] = np.where(tk["solved_at"].notna(), "solved", "open")
    r = t["renewals"].copy()
    unknown = ~(r["closed_at"] < as_of)
    r.loc[unknown, "closed_at"] = pd.NaT
    r.loc[unknown, "outcome"] = "open"
    return {**t, "usage_daily": u, "tickets": tk, "renewals": r}


@pytest.mark.parametrize("seed", [0, 5])
@pytest.mark.parametrize("days_back", [0, 45, 200])
def test_features_equal_those_computed_from_only_the_past(seed, days_back):
    t = random_tables(seed=seed)
    as_of = AS_OF - pd.Timedelta(days=days_back)
    pd.testing.assert_frame_equal(_features(t, as_of), _features(_as_seen_at(t, as_of), as_of))


def test_scrambling_the_past_does_change_features():
    """Guard for the leakage test: the same scrambling before as_of must move features."""
    t = random_tables(seed=3)
    earlier = AS_OF - pd.Timedelta(days=60)
    moved = _features(_scramble_after(t, earlier, 3))
    assert not moved[FEATURE_NAMES].equals(_features(t)[FEATURE_NAMES])


def test_usage_window_means_count_missing_days_as_zero():
    t = random_tables(n_accounts=2, seed=4)
    u = t["usage_daily"]
    aid = "A000"
    u = u[u["account_id"] != aid]
    days = pd.date_range(AS_OF - pd.Timedelta(days=7), periods=7, freq="D")
    mine = pd.DataFrame({"account_id": aid, "date": days[:3], "active_users": 7, "events": 10, "core_events": 5, "advanced_events": 1})
    t = {**t, "usage_daily": pd.concat([u, mine], ignore_index=True)}
    f = _features(t)
    assert f.loc[aid, "au_7d"] == pytest.approx(3 * 7 / 7)
    assert f.loc[aid, "au_90d"] == pytest.approx(3 * 7 / 90)
    assert f.loc[aid, "days_since_active"] == (AS_OF - days[2]).days


def test_open_urgent_tickets_are_open_as_of_the_date():
    t = random_tables(n_accounts=3, seed=5)
    aid = "A001"
    tk = t["tickets"][t["tickets"]["account_id"] != aid]
    rows = pd.DataFrame(
        {
            "ticket_id": ["X1", "X2", "X3"],
            "account_id": aid,
            "created_at": [AS_OF - pd.Timedelta(days=4), AS_OF - pd.Timedelta(days=2), AS_OF - pd.Timedelta(days=1)],
            "first_response_at": pd.NaT,
            # X1 is solved after the date: it was open at the date
            "solved_at": [AS_OF + pd.Timedelta(days=1), AS_OF - pd.Timedelta(days=1), pd.NaT],
            "priority": ["urgent", "urgent", "normal"],
            "category": ["bug", "bug", "compliance"],
            "status": ["solved", "solved", "open"],
            "csat": [5.0, np.nan, np.nan],
            "escalated": [True, False, False],
        }
    )
    t = {**t, "tickets": pd.concat([tk, rows.astype(tk.dtypes.to_dict())], ignore_index=True)}
    f = _features(t)
    assert f.loc[aid, "open_urgent_tickets"] == 1
    assert f.loc[aid, "oldest_open_urgent_hours"] == pytest.approx(96.0)
    assert f.loc[aid, "open_compliance_tickets"] == 1
    assert f.loc[aid, "open_tickets"] == 2
    assert pd.isna(f.loc[aid, "csat_avg_180d"])  # the 5-star rating arrived after the date


def test_days_to_renewal_ignores_renewals_decided_before_the_date():
    t = random_tables(seed=6)
    f = _features(t)
    r = t["renewals"]
    pending = r[(r["closed_at"].isna()) | (r["closed_at"] >= AS_OF)]
    expected = (pending.groupby("account_id")["renewal_date"].min() - AS_OF).dt.days
    got = f["days_to_renewal"].dropna()
    pd.testing.assert_series_equal(got.sort_index(), expected.reindex(got.index).astype("float64").sort_index(), check_names=False)


def test_feature_matrix_has_fixed_columns_and_categoricals():
    f = _features(random_tables(seed=7))
    X = feature_matrix(f)
    assert list(X.columns) == FEATURE_NAMES
    assert isinstance(X["segment"].dtype, pd.CategoricalDtype)


def test_driver_phrases_are_plain_words():
    assert describe_driver("wau_trend", -0.38, 0.4) == "weekly active users down 38% vs 90-day average"
    assert describe_driver("oldest_open_urgent_hours", 80.0, 0.2) == "oldest urgent ticket open 3.3 days"
    assert describe_driver("unknown_feature", 3, 0.1) == "unknown_feature = 3"


def test_headline_reason_prefers_an_actionable_risk_driver():
    from models.churn.features import headline_reason

    drivers = [
        {"feature": "days_to_renewal", "phrase": "renewal in 12 days", "contribution": 1.2},
        {"feature": "open_urgent_tickets", "phrase": "2 urgent tickets open", "contribution": -0.1},
        {"feature": "wau_trend", "phrase": "weekly active users down 38% vs 90-day average", "contribution": 0.4},
    ]
    assert headline_reason(drivers) == "weekly active users down 38% vs 90-day average"
    assert headline_reason(drivers[:2]) == "renewal in 12 days"
    assert headline_reason([]) == ""

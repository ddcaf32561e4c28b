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


FIXED_ATTRIBUTES = {"tenure_days", "days_to_renewal", "renewals_done", "segment", "industry", "region", "plan",
                    "arr", "seats", "arr_per_seat"}


def test_every_model_feature_is_classified_fixed_or_changeable():
    from models.churn.features import CHANGEABLE, FEATURE_INDEX, FEATURE_KIND_VALUES, FEATURE_KINDS, FIXED

    assert set(FEATURE_KINDS) == set(FEATURE_NAMES)
    assert set(FEATURE_KINDS.values()) <= set(FEATURE_KIND_VALUES)
    # what a CSM cannot change: who the account is, what it bought, when it renews
    assert {f for f, kind in FEATURE_KINDS.items() if kind == FIXED} == FIXED_ATTRIBUTES
    for name, kind in FEATURE_KINDS.items():
        spec = FEATURE_INDEX[name]
        if kind == CHANGEABLE:
            assert spec.warns is not None, f"{name}: a changeable feature says when its value is a warning sign"
        else:
            assert spec.label and spec.warns is None, f"{name}: a fixed feature has a label and is never a warning sign"


def test_no_tickets_is_never_phrased_as_a_slow_response():
    from models.churn.features import is_warning_sign

    nan = float("nan")
    no_tickets = {"tickets_90d": 0.0}
    assert describe_driver("median_first_response_hours", nan, 0.3, no_tickets) == "no support tickets in the last 90 days"
    assert not is_warning_sign("median_first_response_hours", nan, no_tickets)
    unanswered = {"tickets_90d": 3.0}
    assert describe_driver("median_first_response_hours", nan, 0.3, unanswered) == (
        "none of 3 tickets in the last 90 days has a first response yet")
    assert is_warning_sign("median_first_response_hours", nan, unanswered)
    assert describe_driver("median_first_response_hours", 14.0, 0.3, unanswered) == "median first response 14.0 h (90 days)"
    assert describe_driver("median_first_response_hours", nan, 0.3) == "no ticket answered in the last 90 days"
    assert describe_driver("tickets_90d", 0.0, 0.2) == "no support tickets in the last 90 days"
    assert not is_warning_sign("tickets_90d", 0.0)
    assert describe_driver("open_urgent_tickets", 1.0, 0.2) == "1 urgent ticket open"
    for feature in ("urgent_tickets_90d", "open_urgent_tickets", "open_tickets", "escalated_90d", "low_csat_180d"):
        assert "first response" not in describe_driver(feature, 0.0, 0.2)
        assert not is_warning_sign(feature, 0.0)


def test_a_phrase_heads_a_reason_only_when_its_value_is_a_warning_sign():
    from models.churn.features import is_warning_sign

    assert describe_driver("events_30d_trend", 0.02, 0.3) == "product activity (30 days) up 2% vs the 60 days before"
    assert not is_warning_sign("events_30d_trend", 0.02)
    assert not is_warning_sign("wau_trend", -0.02)  # noise, not a fall
    assert is_warning_sign("wau_trend", -0.3)
    assert describe_driver("wau_trend", float("nan"), 0.3) == "no active users in the last 90 days"
    assert describe_driver("days_since_active", 91.0, 0.3) == "no product activity in the last 90 days"
    assert not is_warning_sign("days_since_active", 1.0)
    assert not is_warning_sign("seat_utilization", 0.9) and is_warning_sign("seat_utilization", 0.2)
    assert not is_warning_sign("csat_avg_180d", 4.6) and is_warning_sign("csat_avg_180d", 2.5)
    assert not is_warning_sign("csat_avg_180d", float("nan"))
    assert is_warning_sign("au_7d", 2.0, {"au_90d": 5.0}) and not is_warning_sign("au_7d", 6.0, {"au_90d": 5.0})
    for fixed in FIXED_ATTRIBUTES:
        assert not is_warning_sign(fixed, 1.0)
    assert not is_warning_sign("unknown_feature", 1.0)


def _driver(feature, phrase, contribution, warning=True):
    from models.churn.features import FEATURE_KINDS

    return {"feature": feature, "phrase": phrase, "contribution": contribution,
            "kind": FEATURE_KINDS[feature], "warning": warning}


def test_headline_reason_is_the_strongest_changeable_warning_sign_never_a_fixed_attribute():
    from models.churn.features import headline_reason

    drivers = [
        _driver("industry", "industry Mining", 1.5, warning=False),
        _driver("days_to_renewal", "renewal in 12 days", 1.2, warning=False),
        _driver("events_30d_trend", "product activity (30 days) up 2% vs the 60 days before", 0.6, warning=False),
        _driver("wau_trend", "weekly active users down 38% vs 90-day average", 0.4),
        _driver("open_urgent_tickets", "2 urgent tickets open", 0.3),
        _driver("seat_utilization", "20% of licensed seats active (30 days)", -0.1),
    ]
    assert headline_reason(drivers) == "weekly active users down 38% vs 90-day average"
    assert headline_reason(drivers[:3]) == (
        "risk from account profile (industry, renewal timing); no changeable warning sign")
    assert headline_reason(drivers[-1:]) == "no changeable warning sign among the risk drivers"
    assert headline_reason([]) == "no changeable warning sign among the risk drivers"
    # without kind and warning (an older driver list): the feature's own kind, and no warning sign
    assert headline_reason([{"feature": "arr", "phrase": "ARR 90,000", "contribution": 0.9}]) == (
        "risk from account profile (ARR); no changeable warning sign")


def test_explain_drivers_finds_the_changeable_driver_below_the_fixed_ones():
    from models.churn.features import explain_drivers

    X = pd.DataFrame({"industry": ["Mining", "Retail"], "arr": [400_000.0, 9_000.0], "tenure_days": [900.0, 30.0],
                      "tickets_90d": [0.0, 0.0], "median_first_response_hours": [float("nan"), float("nan")],
                      "wau_trend": [-0.45, 0.12]})
    contribs = pd.DataFrame({"industry": [1.4, 0.9], "arr": [0.8, 0.7], "tenure_days": [0.5, 0.4],
                             "tickets_90d": [0.3, 0.2], "median_first_response_hours": [0.25, 0.6],
                             "wau_trend": [0.2, 0.3], "bias": [-3.0, -3.0]})
    rows, headlines = explain_drivers(contribs, X, k=3)
    assert [d["feature"] for d in rows[0]] == ["industry", "arr", "tenure_days", "wau_trend"]  # appended
    assert [d["kind"] for d in rows[0]] == ["fixed", "fixed", "fixed", "changeable"]
    assert headlines[0] == "weekly active users down 45% vs 90-day average"
    # the second account: no tickets and usage up; its only "risk" beyond the profile is no warning sign
    assert [d["feature"] for d in rows[1]] == ["industry", "arr", "median_first_response_hours"]
    assert rows[1][2]["phrase"] == "no support tickets in the last 90 days" and rows[1][2]["warning"] is False
    assert headlines[1] == "risk from account profile (industry, ARR); no changeable warning sign"


def _support_by_groupby(t: pd.DataFrame, as_of: pd.Timestamp, ids: pd.Index) -> pd.DataFrame:
    """The support features stated plainly, one pandas group-by each: the oracle for
    `models.churn.tickets.support_features`, which computes them on integer codes."""
    from models.churn.tickets import COMPLIANCE_CATEGORIES, CSAT_WINDOW_DAYS, SUPPORT_WINDOW_DAYS

    day, out = pd.Timedelta(days=1), pd.DataFrame(index=ids)
    recent = t[t["created_at"] >= as_of - SUPPORT_WINDOW_DAYS * day]
    open_t = t[t["solved_at"].isna()]
    urgent_open = open_t[open_t["priority"] == "urgent"]
    size = lambda f: f.groupby("account_id").size().reindex(ids).fillna(0).astype("float64")  # noqa: E731
    out["tickets_90d"] = size(recent)
    out["urgent_tickets_90d"] = size(recent[recent["priority"] == "urgent"])
    out["open_urgent_tickets"] = size(urgent_open)
    oldest = urgent_open.groupby("account_id")["created_at"].min().reindex(ids)
    out["oldest_open_urgent_hours"] = ((as_of - oldest).dt.total_seconds() / 3600.0).fillna(0.0)
    out["open_tickets"] = size(open_t)
    out["open_compliance_tickets"] = size(open_t[open_t["category"].astype("string").str.lower()
                                                 .isin(COMPLIANCE_CATEGORIES).fillna(False)])
    responded = recent[recent["first_response_at"].notna()]
    frt = (responded["first_response_at"] - responded["created_at"]).dt.total_seconds() / 3600.0
    out["median_first_response_hours"] = frt.groupby(responded["account_id"]).median().reindex(ids)
    out["escalated_90d"] = size(recent[recent["escalated"].astype(bool)])
    rated = t[t["csat"].notna() & (t["solved_at"] >= as_of - CSAT_WINDOW_DAYS * day)]
    out["csat_avg_180d"] = rated.groupby("account_id")["csat"].mean().reindex(ids)
    out["low_csat_180d"] = size(rated[rated["csat"] <= 2])
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_support_features_equal_one_group_by_each(seed):
    from models.churn.features import as_known_at
    from models.churn.tickets import support_features

    t = random_tables(80, seed=seed)
    tickets = t["tickets"].copy()
    rng = np.random.default_rng(seed)
    tickets.loc[rng.random(len(tickets)) < 0.05, "priority"] = None
    tickets.loc[rng.random(len(tickets)) < 0.05, "category"] = None
    tickets.loc[rng.random(len(tickets)) < 0.05, "category"] = "Security"
    tickets.loc[rng.random(len(tickets)) < 0.05, "first_response_at"] = pd.NaT
    tickets["created_at"] += pd.to_timedelta(rng.integers(0, 10**9, len(tickets)), unit="ns")
    tickets.loc[rng.random(len(tickets)) < 0.02, "account_id"] = "not-an-account"  # not among ids: ignored
    ids = pd.Index(t["accounts"]["account_id"].sample(frac=0.7, random_state=seed), name="account_id")
    for as_of in (pd.Timestamp("2025-04-01"), pd.Timestamp("2025-09-01"), pd.Timestamp("2026-03-01")):
        _, known, _ = as_known_at(as_of, renewals=t["renewals"], tickets=tickets)
        expected = _support_by_groupby(known, as_of, ids)
        found = pd.DataFrame(support_features(known, as_of, ids), index=ids)
        assert found["open_tickets"].sum() > 0 and found["csat_avg_180d"].notna().any()
        pd.testing.assert_frame_equal(found[expected.columns], expected, check_exact=False, rtol=1e-12, atol=1e-9)

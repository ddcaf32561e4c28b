"""Book percentiles: a policy threshold that transfers between companies with different base rates."""

from __future__ import annotations

import math

import pandas as pd

from models.contracts import book_percentiles
from models.policy.loader import parse_policy
from pathlib import Path

POLICY = (Path(__file__).resolve().parents[2] / "policies" / "default.yaml").read_text()


def test_the_riskiest_account_is_1_ties_share_the_higher_rank_and_a_missing_risk_has_none():
    frame = pd.DataFrame({"account_id": list("abcde"), "churn_risk": [0.01, 0.02, 0.02, 0.9, None],
                          "arr": [10.0, 20.0, 30.0, 40.0, 50.0]})
    out = book_percentiles(frame)
    assert out["churn_risk_percentile"].tolist()[:4] == [0.25, 0.75, 0.75, 1.0]
    assert math.isnan(out["churn_risk_percentile"].iloc[4])
    assert out["arr_percentile"].tolist() == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert "churn_risk_percentile" not in frame.columns  # the caller's frame is untouched


def test_the_same_percentile_picks_the_same_share_of_two_books_with_different_base_rates():
    low = pd.DataFrame({"churn_risk": [i / 1000 for i in range(100)], "arr": 1.0})
    high = pd.DataFrame({"churn_risk": [0.3 + i / 500 for i in range(100)], "arr": 1.0})
    for book in (low, high):
        assert (book_percentiles(book)["churn_risk_percentile"] > 0.95).sum() == 5  # the top 5% of each book


def test_present_columns_are_kept_and_a_policy_may_threshold_on_them():
    frame = pd.DataFrame({"churn_risk": [0.1, 0.2], "arr": [1.0, 2.0], "churn_risk_percentile": [0.7, 0.9]})
    assert book_percentiles(frame)["churn_risk_percentile"].tolist() == [0.7, 0.9]
    text = POLICY.replace("field: churn_risk\n  enter_threshold: 0.20\n  exit_threshold: 0.12",
                          "field: churn_risk_percentile\n  enter_threshold: 0.95\n  exit_threshold: 0.90")
    assert text != POLICY
    assert parse_policy(text).hysteresis.field == "churn_risk_percentile"


def test_a_percentile_hysteresis_puts_the_same_share_of_two_books_at_risk():
    """The default policy's churn_risk gate (enter at 0.20) puts 0 accounts of a low-risk book
    and every account of a high-risk one at risk; on churn_risk_percentile (enter above 0.95) both
    books have their riskiest 5% at risk, whatever the model's base rate."""
    import datetime as dt
    from models.routing.route import route
    from tests.unit.test_policy import candidates

    text = POLICY.replace("field: churn_risk\n  enter_threshold: 0.20\n  exit_threshold: 0.12",
                          "field: churn_risk_percentile\n  enter_threshold: 0.951\n  exit_threshold: 0.90")
    percentile, absolute = parse_policy(text), parse_policy(POLICY)
    now = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
    quiet = {"churn_risk_delta": 0.0, "days_to_renewal": 300.0, "health_band": "watch", "oldest_open_urgent_hours": 0.0,
             "open_compliance_tickets": 0, "open_urgent_tickets": 0, "vip": False, "wau_trend": 0.0}
    low = candidates([(f"low-{i}", "smb", 0.001 + i / 2000, 10_000.0) for i in range(200)]).assign(**quiet)
    high = candidates([(f"high-{i}", "smb", 0.30 + i / 1000, 10_000.0) for i in range(200)]).assign(**quiet)

    def at_risk(book, policy) -> int:
        states = route(book, policy, now=now).account_states
        return int((states["state"] == "at_risk").sum())

    assert (at_risk(low, absolute), at_risk(high, absolute)) == (0, 200)
    assert at_risk(low, percentile) == at_risk(high, percentile) == 10

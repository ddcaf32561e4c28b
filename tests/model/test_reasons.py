"""Case headlines a CSM can act on, on a world shaped unlike the demo.

A model is trained on synthetic accounts whose churn is driven mostly by what they *are*
(industry Mining, a large ARR), a little by what they do (falling usage, stuck urgent tickets),
and also by two things that read badly in words: having no tickets at all, and activity that is
flat. A hand-made scoring frame then holds accounts whose strongest driver is industry or ARR,
accounts without tickets, an account whose usage rose and one whose usage fell. Their headlines
are checked as the queue writes them (rule description, then the driver) after routing through
the default policy: never a fixed attribute, never a first response without tickets, never a
rise under a rule about falling usage.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from connectors.queue.decisions import headline_reason as queue_headline
from models.churn.features import (
    CATEGORICAL_FEATURES,
    FEATURE_INDEX,
    FEATURE_KINDS,
    FEATURE_NAMES,
    FIXED,
    explain_drivers,
    feature_matrix,
)
from models.churn.health import health_scores
from models.churn.model import fit_churn_model
from models.churn.scoring import build_candidates, score_accounts
from models.policy.loader import load_policy
from models.routing.route import route

POLICY = load_policy(Path(__file__).resolve().parents[2] / "policies" / "default.yaml")
AS_OF = pd.Timestamp("2026-03-02")
NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
INDUSTRIES = ["Mining", "Retail", "Media", "Health"]

#: Phrases of fixed attributes, as `FEATURES` writes them: none may head a reason.
FIXED_PHRASE = re.compile(r"^(industry|segment|region|plan|ARR|price|customer for|renewal in|no renewal|\d+ seats?\b|"
                          r"\d+ renewals? so far)")


def _accounts(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    f = pd.DataFrame(index=pd.Index([f"T{seed}-{i:04d}" for i in range(n)], name="account_id"))
    f["industry"] = rng.choice(INDUSTRIES, n)
    f["segment"] = rng.choice(["smb", "mid_market", "enterprise"], n, p=[0.5, 0.35, 0.15])
    f["region"] = rng.choice(["emea", "amer", "apac"], n)
    f["plan"] = rng.choice(["team", "business"], n)
    f["arr"] = np.exp(rng.normal(11.0, 1.0, n))
    f["seats"] = np.maximum(3.0, (f["arr"] / rng.uniform(400, 1200, n)).round())
    f["arr_per_seat"] = f["arr"] / f["seats"]
    f["tenure_days"] = rng.uniform(60, 1800, n)
    f["renewals_done"] = (f["tenure_days"] // 365).astype(float)
    f["days_to_renewal"] = rng.uniform(0, 365, n).round()
    f["au_90d"] = rng.uniform(1, 40, n)
    f["wau_trend"] = rng.normal(0, 0.25, n).clip(-0.95, 1.5)
    f["au_7d"] = f["au_90d"] * (1 + f["wau_trend"])
    f["au_30d_trend"] = 0.8 * f["wau_trend"] + rng.normal(0, 0.05, n)
    f["events_30d_trend"] = 0.7 * f["wau_trend"] + rng.normal(0, 0.1, n)
    f["advanced_share_30d"] = rng.uniform(0.05, 0.6, n)
    f["days_since_active"] = rng.choice([0.0, 1.0, 2.0, 3.0, 10.0, 30.0], n, p=[0.4, 0.2, 0.15, 0.1, 0.1, 0.05])
    f["seat_utilization"] = rng.uniform(0.1, 1.0, n)
    tickets = rng.poisson(2.0, n).astype(float)
    tickets[rng.random(n) < 0.35] = 0.0
    f["tickets_90d"] = tickets
    f["urgent_tickets_90d"] = rng.binomial(tickets.astype(int), 0.2).astype(float)
    f["open_urgent_tickets"] = rng.binomial(f["urgent_tickets_90d"].astype(int), 0.4).astype(float)
    f["oldest_open_urgent_hours"] = np.where(f["open_urgent_tickets"] > 0, rng.uniform(1, 200, n), 0.0)
    f["open_tickets"] = f["open_urgent_tickets"] + rng.binomial(tickets.astype(int), 0.2)
    f["open_compliance_tickets"] = 0.0
    f["median_first_response_hours"] = np.where(tickets > 0, rng.gamma(2.0, 4.0, n), np.nan)
    f["escalated_90d"] = rng.binomial(tickets.astype(int), 0.1).astype(float)
    f["csat_avg_180d"] = np.where(tickets > 0, rng.uniform(2.5, 5.0, n), np.nan)
    f["low_csat_180d"] = np.where(tickets > 0, rng.binomial(2, 0.15, n), 0).astype(float)
    logit = (-3.2 + 2.4 * (f["industry"] == "Mining") + 1.6 * (f["arr"] > 150_000)
             + 1.3 * (f["wau_trend"] < -0.3) + 0.9 * (f["open_urgent_tickets"] >= 1)
             + 0.7 * (f["tickets_90d"] == 0) + 0.8 * (f["events_30d_trend"].abs() < 0.05))
    f["churned"] = (rng.random(n) < expit(logit)).astype(int)
    return f


HEALTHY = {
    "segment": "mid_market", "region": "emea", "plan": "business", "seats": 40.0, "tenure_days": 900.0,
    "renewals_done": 2.0, "days_to_renewal": 75.0, "au_90d": 20.0, "wau_trend": 0.05, "au_30d_trend": 0.04,
    "events_30d_trend": 0.1, "advanced_share_30d": 0.4, "days_since_active": 0.0, "seat_utilization": 0.85,
    "tickets_90d": 0.0, "urgent_tickets_90d": 0.0, "open_urgent_tickets": 0.0, "oldest_open_urgent_hours": 0.0,
    "open_tickets": 0.0, "open_compliance_tickets": 0.0, "median_first_response_hours": np.nan,
    "escalated_90d": 0.0, "csat_avg_180d": np.nan, "low_csat_180d": 0.0,
}

#: The scoring frame: (account, what differs from a healthy account without tickets).
SCORING = {
    # the model's strongest driver is industry or ARR, and nothing the CSM can change is wrong
    "mining_flat": {"industry": "Mining", "arr": 600_000.0, "events_30d_trend": 0.02},
    "big_retail": {"industry": "Retail", "arr": 900_000.0, "segment": "enterprise", "events_30d_trend": 0.01},
    "mining_big": {"industry": "Mining", "arr": 450_000.0, "wau_trend": 0.12, "events_30d_trend": 0.03},
    # usage rose (and activity is flat-ish, which this model reads as risk)
    "usage_rose": {"industry": "Mining", "arr": 300_000.0, "wau_trend": 0.6, "au_30d_trend": 0.5,
                   "events_30d_trend": 0.02},
    # usage fell hard
    "usage_fell": {"industry": "Mining", "arr": 400_000.0, "wau_trend": -0.55, "au_30d_trend": -0.45,
                   "events_30d_trend": -0.4, "seat_utilization": 0.3},
    # stuck urgent tickets on a large account
    "stuck_urgent": {"industry": "Media", "arr": 700_000.0, "tickets_90d": 6.0, "urgent_tickets_90d": 3.0,
                     "open_urgent_tickets": 2.0, "oldest_open_urgent_hours": 96.0, "open_tickets": 3.0,
                     "median_first_response_hours": 20.0, "csat_avg_180d": 3.0, "events_30d_trend": 0.03},
    # tickets but none answered yet
    "unanswered": {"industry": "Mining", "arr": 200_000.0, "tickets_90d": 3.0, "open_tickets": 3.0,
                   "events_30d_trend": 0.0},
}


#: Risk up since the previous snapshot: the account whose usage rose also jumped in risk, the
#: shape that used to land on "usage falling fast" with a rising-activity phrase.
RISK_DELTA = {"usage_rose": 0.15}


def _scoring_frame() -> pd.DataFrame:
    rows = []
    for account_id, changes in SCORING.items():
        row = {**HEALTHY, **changes, "account_id": account_id}
        row["au_7d"] = row["au_90d"] * (1 + row["wau_trend"])
        row["arr_per_seat"] = row["arr"] / row["seats"]
        rows.append(row)
    f = pd.DataFrame(rows).set_index("account_id")
    f["renewal_date"] = AS_OF + pd.to_timedelta(f["days_to_renewal"], unit="D")
    return f


def train_model():
    train, valid = _accounts(2500, seed=11), _accounts(1000, seed=12)
    return fit_churn_model(train, valid, label="churned", features=FEATURE_NAMES,
                           categorical=CATEGORICAL_FEATURES, tuning_budget=1)


def score(model, explain=explain_drivers):
    """(features, scores by account, contributions) of the scoring frame."""
    features = _scoring_frame()
    scores, contribs = score_accounts(model, features, explain=explain)
    return features, scores.set_index("account_id"), contribs


def queue_rows(features: pd.DataFrame, scores: pd.DataFrame, policy=POLICY) -> pd.DataFrame:
    """The decisions of `policy` on the scored frame, with the headline the queue writes."""
    accounts = features.reset_index()[["account_id", "segment", "industry", "region", "plan", "arr"]].assign(
        name=lambda d: d["account_id"].str.title(), csm_owner="csm_amara")
    risk = scores["churn_risk"].reindex(features.index).to_numpy()
    health = health_scores(features, risk)
    scores = scores.reset_index().assign(model_version="t")
    scores["churn_risk_delta"] = scores["account_id"].map(RISK_DELTA).fillna(0.0)
    cands = build_candidates(features, accounts, scores, health, snapshot_date=AS_OF)
    states = pd.DataFrame({"account_id": cands["account_id"], "state": "at_risk", "since": AS_OF - pd.Timedelta(days=10)})
    decisions = route(cands, policy, now=NOW, account_states=states, as_of=AS_OF.date()).decisions
    rows = decisions.merge(cands[["account_id", "top_reason", "wau_trend", "churn_risk", "health_band"]], on="account_id")
    rows["headline"] = [queue_headline(r) for r in rows.to_dict("records")]
    return rows.set_index("account_id")


@pytest.fixture(scope="module")
def scored():
    return score(train_model())


@pytest.fixture(scope="module")
def queue(scored):
    features, scores, _ = scored
    return queue_rows(features, scores)


def test_the_frame_has_the_shapes_it_is_meant_to_have(scored):
    features, scores, contribs = scored
    assert scores["explained"].all()
    top = contribs.drop(columns="bias").idxmax(axis=1)
    profile_led = top[top.isin(["industry", "arr"])].index
    assert {"mining_flat", "big_retail", "mining_big"} <= set(profile_led), top.to_dict()
    assert (features.loc[["mining_flat", "big_retail", "usage_rose"], "tickets_90d"] == 0).all()
    assert contribs.loc["usage_rose", "events_30d_trend"] > 0  # the model reads "activity up 2%" as risk


def test_a_fixed_attribute_never_heads_a_reason(scored):
    _, scores, _ = scored
    for account_id, reason in scores["top_reason"].items():
        assert not FIXED_PHRASE.match(reason), (account_id, reason)
        fixed = [d["phrase"] for d in scores.loc[account_id, "drivers"] if d["kind"] == FIXED]
        assert reason not in fixed, (account_id, reason)


def test_fixed_attributes_stay_in_the_drivers_as_context(scored):
    _, scores, _ = scored
    for account_id in ("mining_flat", "big_retail", "mining_big"):
        drivers = scores.loc[account_id, "drivers"]
        assert drivers[0]["feature"] in ("industry", "arr") and drivers[0]["kind"] == FIXED
        assert all(d["kind"] == FEATURE_KINDS[d["feature"]] for d in drivers)


def test_without_a_changeable_warning_sign_the_headline_says_so(scored):
    _, scores, _ = scored
    for account_id in ("mining_flat", "big_retail", "mining_big"):
        reason = scores.loc[account_id, "top_reason"]
        assert reason.startswith("risk from account profile (") and reason.endswith("; no changeable warning sign")
        assert "industry" in reason or "ARR" in reason, reason


def test_no_tickets_is_never_a_first_response(scored):
    features, scores, _ = scored
    for account_id in features.index[features["tickets_90d"] == 0]:
        reason = scores.loc[account_id, "top_reason"]
        assert "response" not in reason and "ticket" not in reason, (account_id, reason)
        for d in scores.loc[account_id, "drivers"]:
            assert "first response" not in d["phrase"], (account_id, d)
    unanswered = scores.loc["unanswered", "drivers"]
    phrases = [d["phrase"] for d in unanswered if d["feature"] == "median_first_response_hours"]
    assert all(p == "none of 3 tickets in the last 90 days has a first response yet" for p in phrases)


def test_a_rise_in_usage_never_reads_as_a_fall(scored, queue):
    _, scores, _ = scored
    reason = scores.loc["usage_rose", "top_reason"]
    assert " up " not in reason and "down" not in reason and "falling" not in reason, reason
    # its risk jumped: the risk-jump rule takes it, not the rule about falling usage
    assert queue.loc["usage_rose", "rule_id"] == "high_risk_jump"
    assert queue.loc["usage_rose", "headline"].startswith("Churn risk at least 35% and up at least 10 points")
    for account_id, reason in scores["top_reason"].items():
        assert not re.search(r"\bup \d+%", reason), (account_id, reason)


def test_falling_usage_and_stuck_tickets_head_their_reasons(scored):
    _, scores, _ = scored
    assert re.search(r"(weekly active users|active users \(30 days\)|product activity \(30 days\)) down \d+%|"
                     r"seats active", scores.loc["usage_fell", "top_reason"])
    assert re.search(r"urgent ticket|first response|CSAT|tickets? open", scores.loc["stuck_urgent", "top_reason"])


def test_queue_headlines_name_the_rule_and_a_changeable_driver(queue):
    eligible = queue[queue["rule_id"].notna()]
    assert len(eligible) >= 4, queue[["action", "churn_risk", "rule_id"]]
    for account_id, row in eligible.iterrows():
        assert row["headline"] == f"{row['rule_description']}: {row['reason_driver']}"
        driver = row["reason_driver"]
        assert not FIXED_PHRASE.match(driver), (account_id, driver)
        if "usage" in row["rule_description"] or "active users" in row["rule_description"]:
            assert row["wau_trend"] <= -0.3, (account_id, row["headline"])
            assert not re.search(r"\bup \d+%", driver)
    fell = queue.loc["usage_fell"]
    if fell["rule_id"] == "high_risk_fast_decline":
        assert fell["headline"].startswith("Churn risk at least 35% and weekly active users down at least 30%: ")


def test_every_phrase_in_the_frame_agrees_with_its_value(scored):
    """A trend phrase says "down" only for a negative value and "up" only for a positive one."""
    features, scores, _ = scored
    X = feature_matrix(features)
    for account_id, drivers in scores["drivers"].items():
        for d in drivers:
            if FEATURE_INDEX[d["feature"]].kind == FIXED or "trend" not in d["feature"]:
                continue
            value = X.loc[account_id, d["feature"]]
            if " down " in d["phrase"]:
                assert value < 0, (account_id, d)
            if " up " in d["phrase"]:
                assert value > 0, (account_id, d)

"""Plausibility rules (`models.plausibility`) on a company's own, differently shaped data: a
history in 2023-2024 (not the demo world), made dirty one way at a time."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from models.contracts import USAGE_DAILY, conform
from models.plausibility import (
    RULE_THRESHOLDS,
    Thresholds,
    ThresholdError,
    as_of,
    contradictory_outcomes,
    history_reactivations,
    newest,
    quiet_limit_days,
    recent_rate,
    rows_before_signup,
    staleness,
    threshold_docs,
    threshold_specs,
    thresholds_from,
    thresholds_text,
    usage_after_churn,
)
from tests.factories import company_history

T = pd.Timestamp


@pytest.fixture(scope="module")
def clean() -> dict[str, pd.DataFrame]:
    return company_history()


def test_a_clean_company_passes_every_rule(clean):
    for finding in (rows_before_signup(clean["tickets"], "tickets", "created_at", clean["accounts"], key="ticket_id"),
                    rows_before_signup(clean["usage_daily"], "usage_daily", "date", clean["accounts"]),
                    usage_after_churn(clean["usage_daily"], clean["renewals"]),
                    contradictory_outcomes(clean["renewals"])):
        assert finding.bad == 0 and finding.passed, finding.message
        assert finding.total > 0


def test_tickets_and_usage_before_signup(clean):
    # the export's signups were a year late for most accounts: 54% of tickets land before signup
    accounts = clean["accounts"].copy()
    late = accounts.index[: int(len(accounts) * 0.6)]
    accounts.loc[late, "created_at"] = accounts.loc[late, "created_at"] + pd.Timedelta(days=400)
    tickets = rows_before_signup(clean["tickets"], "tickets", "created_at", accounts, key="ticket_id")
    usage = rows_before_signup(clean["usage_daily"], "usage_daily", "date", accounts)
    for finding in (tickets, usage):
        assert not finding.passed and finding.share > 0.3, finding.message
    assert tickets.message.startswith(f"tickets.created_at: {tickets.bad:,} of {tickets.total:,} row(s) (")
    assert "more than 30 days before the account's signup (accounts.created_at) (allowed 2.0%), e.g. ticket_id Z" in tickets.message
    # a trial a few weeks before signup is within the grace days
    trial = clean["tickets"].copy()
    trial["created_at"] = trial["created_at"] - pd.Timedelta(days=20)
    assert rows_before_signup(trial, "tickets", "created_at", clean["accounts"]).bad == 0
    # one odd row among many is allowed; the threshold is a company's to tune
    odd = clean["tickets"].copy()
    odd.loc[0, "created_at"] = T("2020-01-01")
    single = rows_before_signup(odd, "tickets", "created_at", clean["accounts"], key="ticket_id")
    assert single.bad == 1 and single.passed
    strict = rows_before_signup(odd, "tickets", "created_at", clean["accounts"], thresholds_from({"max_share_before_signup": 0}))
    assert not strict.passed


def test_usage_after_churn(clean):
    renewals = clean["renewals"]
    churned = renewals[renewals["outcome"] == "churned"]
    assert len(churned) >= 3
    # usage that goes on for months after the churned terms ended
    extra = []
    for row in churned.itertuples():
        for day in pd.date_range(row.renewal_date + pd.Timedelta(days=10), "2024-12-31", freq="D"):
            extra.append({"account_id": row.account_id, "date": day, "active_users": 2, "events": 9,
                          "core_events": 4, "advanced_events": 1})
    usage = pd.concat([clean["usage_daily"], conform(pd.DataFrame(extra), USAGE_DAILY)], ignore_index=True)
    finding = usage_after_churn(usage, renewals)
    assert finding.bad == len(extra) and not finding.passed
    assert "usage_daily.date:" in finding.message and "after the account churned" in finding.message
    assert "churned" in finding.examples[0] and "account_id C-" in finding.examples[0]
    # within the grace days after the term's end, or after the account came back: fine
    grace = usage_after_churn(usage, renewals, thresholds_from({"churn_grace_days": 400}))
    assert grace.bad == 0
    back = pd.DataFrame({"account_id": churned["account_id"], "reactivated_at": churned["renewal_date"] + pd.Timedelta(days=9)})
    assert usage_after_churn(usage, renewals, reactivations=back).bad == 0
    # a churn known weeks before the term ends: usage until the end is the customer's right
    assert usage_after_churn(clean["usage_daily"], renewals).bad == 0


def test_contradictory_outcomes(clean):
    renewals = clean["renewals"].copy()
    renewed = renewals[renewals["outcome"] == "renewed"].head(3)
    # the same term both churned and renewed
    twin = renewed.head(1).assign(renewal_id=lambda d: d["renewal_id"] + "-lost", outcome="churned")
    # a churned term, then a later one renewed, no reactivation
    churned = renewals[renewals["outcome"] == "churned"].head(2)
    ghost = churned.assign(renewal_id=lambda d: d["renewal_id"] + "-next", renewal_date=lambda d: d["renewal_date"] + pd.Timedelta(days=365),
                           closed_at=lambda d: d["closed_at"] + pd.Timedelta(days=365), outcome="renewed")
    dirty = pd.concat([renewals, twin, ghost], ignore_index=True)
    finding = contradictory_outcomes(dirty)
    assert finding.bad == 2 + 2, finding.examples  # both rows of the twin term, both renewals after a churn
    assert not finding.passed
    assert any("is both churned and renewed" in e for e in finding.examples)
    assert any("after account" in e and "no reactivation" in e for e in finding.examples)
    # a reactivation between the churn and the later term explains it
    back = pd.DataFrame({"account_id": churned["account_id"], "reactivated_at": churned["renewal_date"] + pd.Timedelta(days=30)})
    assert contradictory_outcomes(dirty, reactivations=back).bad == 2
    # open renewals are not outcomes: the next opportunity a CRM opens after a churn is no contradiction
    opened = churned.assign(renewal_id=lambda d: d["renewal_id"] + "-open", renewal_date=lambda d: d["renewal_date"] + pd.Timedelta(days=365),
                            closed_at=pd.NaT, outcome="open")
    assert contradictory_outcomes(pd.concat([renewals, opened], ignore_index=True)).bad == 0


def test_a_stale_source_is_one_line_naming_the_table_and_its_age(clean):
    at = T("2024-06-03 06:00")
    tickets = as_of(clean["tickets"], "created_at", at)
    assert tickets["created_at"].max() <= at
    fresh = staleness("tickets", newest(tickets["created_at"], at), at, Thresholds().tickets_max_age_days)
    # the export stopped on 2024-05-01: a month old at the snapshot
    stopped = tickets[tickets["created_at"] < T("2024-05-01")]
    stale = staleness("tickets", newest(stopped["created_at"], at), at, 3)
    assert not fresh.stale and fresh.message.startswith("tickets: fresh, newest row 2024-06-02 09:00 UTC is 0.9 days old")
    assert stale.stale
    assert stale.message.startswith("tickets: stale, newest row 2024-04-")
    assert "days old at the run's instant 2024-06-03 06:00 UTC (allowed 3 days)" in stale.message
    # rows after the run's instant do not make an old snapshot fresh, nor a missing source
    assert newest([T("2024-06-01"), T("2024-07-01")], at) == T("2024-06-01")
    empty = staleness("usage_daily", newest([], at), at, 3)
    assert empty.stale and "no row at or before the run's instant" in empty.message
    load = staleness("crm", T("2024-06-02 23:00"), at, 7, basis="load")
    assert not load.stale and load.message.startswith("crm: fresh, load 2024-06-02 23:00 UTC is 0.3 days old")


def test_a_sparse_source_is_allowed_its_own_quiet_spells_and_no_more():
    at = T("2024-06-03 06:00")
    # a CRM of 200 accounts: about two changes every three days; nine quiet days are ordinary there
    sparse = pd.Series(pd.date_range("2024-03-05", "2024-05-25", periods=60))
    rate = recent_rate(sparse, at)
    assert 0.6 < rate < 0.7
    assert quiet_limit_days(7, rate, 0.001) == pytest.approx(math.log(1000) / rate)
    quiet = staleness("crm", newest(sparse, at), at, 7, rate_per_day=rate, quiet_odds=0.001)
    assert not quiet.stale and 8 < quiet.age_days < 10
    assert "(allowed 10.5 days: 7, or longer for a source of 0.66 rows a day over the last 90 days)" in quiet.message
    # ... but a month without a change is an outage, however small the CRM
    stopped = sparse[sparse < T("2024-05-01")]
    assert staleness("crm", newest(stopped, at), at, 7, rate_per_day=recent_rate(stopped, at), quiet_odds=0.001).stale
    # a busy source keeps its table's limit; a source with nothing in 90 days is stale at 90 days
    assert quiet_limit_days(3, 50.0, 0.001) == 3
    assert quiet_limit_days(7, 0.0, 0.001) == 90
    assert quiet_limit_days(7, 0.001, 0.001) == 90
    # quiet_odds 0 turns the allowance off: the table's limit only
    assert quiet_limit_days(7, 0.5, 0) == 7


def test_thresholds_have_documented_defaults_and_take_overrides():
    docs = threshold_docs()
    assert docs["max_share_before_signup"][0] == 0.02 and docs["signup_grace_days"][0] == 30
    assert docs["churn_grace_days"][0] == 7 and docs["max_share_contradictory"][0] == 0.01
    assert (docs["tickets_max_age_days"][0], docs["usage_max_age_days"][0], docs["crm_max_age_days"][0]) == (3, 3, 7)
    assert docs["quiet_odds"][0] == 0.001
    assert all(text for _, text in docs.values())
    tuned = thresholds_from({"max_share_after_churn": "0.1", "crm_max_age_days": 14, "signup_grace_days": 60.0})
    assert (tuned.max_share_after_churn, tuned.crm_max_age_days, tuned.signup_grace_days) == (0.1, 14.0, 60)
    assert thresholds_from({}) == Thresholds() == thresholds_from(None)
    for bad, words in (({"max_share": 0.1}, "unknown plausibility threshold 'max_share'"),
                       ({"max_share_before_signup": 5}, "a share of rows, at most 1"),
                       ({"churn_grace_days": -1}, "at least 0"),
                       ({"churn_grace_days": 2.5}, "whole number of days"),
                       ({"tickets_max_age_days": "soon"}, "is not a number")):
        with pytest.raises(ThresholdError, match=words):
            thresholds_from(bad)


def test_each_rule_names_its_thresholds_and_they_read_in_one_line():
    names = {spec.name for spec in threshold_specs()}
    assert {name for used in RULE_THRESHOLDS.values() for name in used} == names   # every threshold has a rule
    assert all(used[0].startswith(("max_share_", "tickets_", "usage_", "crm_")) for used in RULE_THRESHOLDS.values())
    assert [spec.share for spec in threshold_specs() if spec.name.startswith("max_share_")] == [True] * 3
    assert {spec.name: spec.kind for spec in threshold_specs()}["signup_grace_days"] is int
    tuned = thresholds_from({"max_share_before_signup": 0.25})
    assert thresholds_text(tuned, RULE_THRESHOLDS["before_signup"], {"max_share_before_signup": "mapping"}) == \
        "max_share_before_signup 0.25 (mapping), signup_grace_days 30"
    assert thresholds_text(Thresholds()).startswith("signup_grace_days 30, max_share_before_signup 0.02, churn_grace_days 7")


def test_a_return_in_the_account_history_is_a_reactivation_the_rules_accept(clean):
    renewals = clean["renewals"]
    churned = renewals[renewals["outcome"] == "churned"].head(1)
    account, lost_at = churned["account_id"].iloc[0], churned["closed_at"].iloc[0]
    later = churned.assign(renewal_id=lambda d: d["renewal_id"] + "-next", renewal_date=lost_at + pd.Timedelta(days=400),
                           closed_at=lost_at + pd.Timedelta(days=400), outcome="renewed")
    dirty = pd.concat([renewals, later], ignore_index=True)
    assert contradictory_outcomes(dirty).bad == 1
    # the account history: ARR to 0 at the churn, back to positive 60 days later
    history = pd.DataFrame({"account_id": [account] * 3, "arr": [1000.0, 0.0, 1200.0],
                            "valid_from": [lost_at - pd.Timedelta(days=300), lost_at, lost_at + pd.Timedelta(days=60)]})
    back = history_reactivations(dirty, history)
    assert back.to_dict("records") == [{"account_id": account, "reactivated_at": lost_at + pd.Timedelta(days=60)}]
    assert contradictory_outcomes(dirty, reactivations=back).bad == 0
    assert history_reactivations(dirty, None).empty

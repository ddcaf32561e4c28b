"""The stages of `route`, one at a time, and the structured headline reason of a decision."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from models.contracts import DECISION_COLUMNS
from models.routing.decisions import Headline, actions, headline, reasons, sla_due_times
from models.routing.inputs import States, hysteresis, prepare_inputs
from models.routing.route import route
from models.routing.selection import (
    Budget,
    Cooldown,
    Severity,
    Updates,
    assignment,
    budget_ranking,
    cooldown,
    holdout,
    open_case_updates,
    remaining_budget,
    severity,
)
from tests.unit.test_policy import NOW, at_risk_since, candidates, small

CLOCK = pd.Timestamp("2026-11-20 16:30")  # NOW as naive UTC


def ids(*names: str) -> pd.Series:
    return pd.Series(list(names), dtype="str")


def mask(*bits: int) -> np.ndarray:
    return np.array(bits, dtype=bool)


def objects(*values) -> np.ndarray:
    return np.array(values, dtype=object)


# -- hysteresis -------------------------------------------------------------------------------


def test_hysteresis_enters_stays_exits_and_counts_days():
    spec = small(**{"min_days_in_state: 0": "min_days_in_state: 2"}).hysteresis  # enter 0.5, exit 0.3
    previous = pd.DataFrame({
        "account_id": ["stays", "exits", "young", "gone"],
        "state": ["at_risk", "at_risk", "at_risk", "at_risk"],
        "since": pd.to_datetime(["2026-11-15 00:00", "2026-11-01 00:00", "2026-11-19 22:00", "2026-11-02 00:00"]),
    })
    states = hysteresis(ids("new", "stays", "exits", "young", "calm"), pd.Series([0.6, 0.4, 0.2, 0.9, 0.45]),
                        previous, spec, clock=CLOCK)
    assert isinstance(states, States)
    assert states.at_risk.tolist() == [True, True, False, True, False]
    assert states.days_in_state.tolist() == [0, 5, 0, 1, 0]
    assert states.settled.tolist() == [False, True, False, False, False]
    table = states.table.set_index("account_id")
    assert list(table.index) == ["new", "stays", "exits", "young", "calm", "gone"]  # untouched kept, last
    assert table.loc["new"].tolist() == ["at_risk", CLOCK]
    assert table.loc["exits"].tolist() == ["ok", CLOCK]
    assert table.loc["stays", "since"] == pd.Timestamp("2026-11-15")


def test_hysteresis_reads_aware_previous_dates_as_utc():
    spec = small().hysteresis
    previous = pd.DataFrame({"account_id": ["a"], "state": ["at_risk"],
                             "since": pd.to_datetime(["2026-11-18T01:00:00+02:00"])})
    states = hysteresis(ids("a"), pd.Series([0.6]), previous, spec, clock=CLOCK)
    assert states.table.loc[0, "since"] == pd.Timestamp("2026-11-17 23:00")
    assert states.days_in_state.tolist() == [3]


# -- severity ---------------------------------------------------------------------------------


def test_severity_first_match_wins_and_only_settled_accounts_are_eligible():
    policy = small()
    frame = candidates([("e", "enterprise", 0.9, 1), ("h", "smb", 0.55, 1), ("young", "enterprise", 0.9, 1)])
    sev = severity(frame, policy.severity_rules, mask(1, 1, 0))
    assert isinstance(sev, Severity)
    assert sev.matched.tolist() == [True, True, True]
    assert sev.rule_idx.tolist() == [0, 1, 0]
    assert sev.eligible.tolist() == [True, True, False]
    assert sev.rule_id.tolist() == ["enterprise_high", "high", None]
    assert sev.priority.tolist() == ["P1", "P2", None]
    assert sev.team.tolist() == ["squad", "csm", None]


def test_severity_without_a_matching_rule():
    policy = small(**{"value: 0.0}": "value: 0.4}"})
    sev = severity(candidates([("low", "smb", 0.1, 1)]), policy.severity_rules, mask(1))
    assert sev.matched.tolist() == [False]
    assert sev.rule_idx.tolist() == [-1]
    assert sev.eligible.tolist() == [False]
    assert sev.rule_id.tolist() == [None]


# -- open cases, cooldown, holdout ------------------------------------------------------------


def test_open_case_updates_take_the_case_id_and_its_priority():
    cases = pd.DataFrame({"case_id": ["K-1", "K-2"], "priority": ["P2", "P3"]}, index=pd.Index(["a", "c"], name="account_id"))
    updates = open_case_updates(ids("a", "b", "c"), mask(1, 1, 0), cases)
    assert isinstance(updates, Updates)
    assert updates.update.tolist() == [True, False, False]  # c has a case but is not eligible
    assert updates.case_id.tolist() == ["K-1", None, None]
    assert updates.previous_priority.tolist() == ["P2", None, None]


def test_cooldown_counts_days_from_the_latest_resolution():
    resolutions = pd.DataFrame({"account_id": ["recent", "old", "old", "edge", "other"],
                                "resolved_at": pd.to_datetime(["2026-11-15 00:00", "2026-11-01 00:00", "2026-11-05 00:00",
                                                               "2026-11-10 16:30", "2026-11-19 00:00"])})
    out = cooldown(ids("recent", "old", "edge", "never", "other"), mask(1, 1, 1, 1, 0), resolutions,
                   now=CLOCK, days=10)
    assert isinstance(out, Cooldown)
    assert out.cooling.tolist() == [True, False, False, False, False]  # exactly 10 days ago: over
    assert pd.Timestamp(out.last_resolved[1]) == pd.Timestamp("2026-11-05")
    assert pd.isna(out.last_resolved[3])


def test_holdout_draws_only_among_the_considered_accounts():
    names = [f"acc{i}" for i in range(300)]
    spec = small(**{"fraction: 0.0": "fraction: 0.5"}).holdout
    considered = np.arange(300) % 2 == 0
    held = holdout(ids(*names), considered, spec)
    assert not held[~considered].any()
    assert 0.35 < held[considered].mean() < 0.65
    assert np.array_equal(held, holdout(ids(*names), considered, spec))  # reproducible
    assert not holdout(ids(*names), considered, small().holdout).any()   # fraction 0


# -- budget, assignment, actions, SLA ---------------------------------------------------------


def test_remaining_budget_counts_cases_opened_on_the_teams_local_day():
    policy = small()  # csm: 2 a day on London time, squad: 3 a day on UTC
    cases = pd.DataFrame({
        "team": ["csm", "csm", "squad", "squad"],
        "opened_at": pd.to_datetime(["2026-11-20 08:00", "2026-11-19 23:30", "2026-11-20 00:10", "2026-11-19 23:50"]),
    })
    assert remaining_budget(cases, policy, pd.Timestamp(NOW)) == {"csm": 1, "squad": 2}
    assert remaining_budget(cases.iloc[:0], policy, pd.Timestamp(NOW)) == {"csm": 2, "squad": 3}
    many = pd.DataFrame({"team": ["csm"] * 5, "opened_at": [pd.Timestamp("2026-11-20 10:00")] * 5})
    assert remaining_budget(many, policy, pd.Timestamp(NOW))["csm"] == 0


def test_budget_ranking_ranks_by_arr_at_risk_per_team_and_admits_the_budget():
    out = budget_ranking(ids("a", "b", "c", "d", "e", "out"), mask(1, 1, 1, 1, 1, 0),
                         objects("csm", "csm", "csm", "squad", "csm", "csm"),
                         np.array([10.0, 30.0, 30.0, 5.0, 20.0, 99.0]), {"csm": 2, "squad": 0})
    assert isinstance(out, Budget)
    assert out.rank.tolist() == [4, 1, 2, 1, 3, 0]  # b before c: equal ARR at risk, by account id
    assert out.admitted.tolist() == [False, True, True, False, False, False]
    assert out.left == {"csm": 2, "squad": 0}


def test_assignment_goes_up_the_path_and_reports_who_found_nobody():
    policy = small()
    frame = candidates([("p2", "smb", 0.55, 100), ("e1", "enterprise", 0.9, 900), ("e2", "enterprise", 0.8, 800)])
    sev = severity(frame, policy.severity_rules, mask(1, 1, 1))
    out = assignment(ids("p2", "e1", "e2"), mask(1, 1, 1), sev, np.array([55.0, 810.0, 640.0]), policy,
                     {"c1": 2, "c2": 2})
    assert out.assignee.tolist() == [None, "s1", None]  # e1 first (P1), takes the squad's only seat
    assert out.routed.tolist() == [False, True, False]
    assert out.no_capacity.tolist() == [True, False, True]
    assert out.team.tolist() == ["csm", "squad", "squad"]

    alone = assignment(ids("p2"), mask(1), severity(frame.iloc[:1], policy.severity_rules, mask(1)),
                       np.array([55.0]), policy, {"c1": 2, "c2": 2})
    assert alone.assignee.tolist() == ["s1"]
    assert alone.team.tolist() == ["squad"]  # the receiving team, not the rule's


def test_assignment_of_nothing_admitted():
    policy = small()
    sev = severity(candidates([("a", "smb", 0.55, 1)]), policy.severity_rules, mask(1))
    out = assignment(ids("a"), mask(0), sev, np.array([1.0]), policy, {})
    assert out.assignee.tolist() == [None]
    assert not out.routed.any() and not out.no_capacity.any()


def test_actions_give_each_account_exactly_one_action():
    out = actions(update=mask(1, 0, 0, 0, 0, 0), cooling=mask(0, 1, 0, 0, 0, 0), held=mask(0, 0, 1, 0, 0, 0),
                  pool=mask(0, 0, 0, 1, 1, 0), routed=mask(0, 0, 0, 1, 0, 0))
    assert out.tolist() == ["update", "cooldown", "holdout", "route", "overflow", "not_eligible"]


def test_sla_due_times_only_for_routed_cases_on_the_receiving_calendar():
    policy = small()
    first, resolution = sla_due_times(mask(1, 1, 0), objects("squad", "csm", "csm"), objects("P1", "P2", "P2"),
                                      policy, pd.Timestamp(NOW))
    assert first[0] == np.datetime64("2026-11-20T17:00")        # 24x7: 30 minutes
    assert first[1] == np.datetime64("2026-11-23T10:30")        # London office hours, over the weekend
    assert resolution[0] == np.datetime64("2026-11-21T00:30")
    assert np.isnat(first[2]) and np.isnat(resolution[2])


# -- headline and reasons ---------------------------------------------------------------------


def test_headline_names_the_rule_and_the_strongest_driver_of_eligible_accounts():
    policy = small()
    frame = candidates([("e", "enterprise", 0.9, 1), ("h", "smb", 0.55, 1), ("x", "smb", 0.9, 1), ("n", "smb", 0.1, 1)])
    frame["top_reason"] = pd.Series(["usage fell 38%", "", None, "too healthy"], dtype="string")
    sev = severity(frame, policy.severity_rules, mask(1, 1, 1, 0))
    head = headline(frame, policy.severity_rules, sev)
    assert isinstance(head, Headline)
    assert head.rule_id.tolist() == ["enterprise_high", "high", "high", None]
    assert head.rule_description.tolist() == ["Enterprise with high risk", "High risk", "High risk", None]
    assert head.reason_driver.tolist() == ["usage fell 38%", None, None, None]  # empty and missing: none
    assert all(type(v) is str for v in head.reason_driver[:1])

    without = headline(frame.drop(columns="top_reason"), policy.severity_rules, sev)
    assert without.reason_driver.tolist() == [None, None, None, None]


def test_reasons_explain_the_action_then_the_rule_then_the_driver():
    policy = small(**{"min_days_in_state: 0": "min_days_in_state: 2"})
    frame = candidates([("r", "smb", 0.55, 100), ("calm", "smb", 0.1, 100), ("young", "smb", 0.6, 100)])
    run = prepare_inputs(frame, policy, now=NOW, account_states=at_risk_since(["r", "young"]).assign(
        since=pd.to_datetime(["2026-11-01", "2026-11-19"])))
    states = hysteresis(run.ids, run.frame["churn_risk"], run.account_states, policy.hysteresis, clock=run.state_clock)
    sev = severity(run.frame, policy.severity_rules, states.settled)
    none = np.zeros(3, dtype=bool)
    updates = Updates(none, objects(None, None, None), objects(None, None, None))
    cooling = Cooldown(none, np.full(3, np.datetime64("NaT"), dtype="datetime64[ns]"))
    budget = Budget(np.array([1, 0, 0]), mask(1, 0, 0), {"csm": 2, "squad": 3})
    assigned = assignment(run.ids, budget.admitted, sev, run.arr_at_risk, policy, {})
    action = actions(update=none, cooling=none, held=none, pool=mask(1, 0, 0), routed=assigned.routed)
    out = reasons(policy, action=action, states=states, sev=sev, updates=updates, cooling=cooling,
                  budget=budget, assigned=assigned, head=headline(run.frame, policy.severity_rules, sev))
    assert out == [
        ["routed to csm as P2", "high: High risk", "top driver: usage fell 38% over 90 days"],
        ["not at risk: churn_risk has not reached 0.5"],
        ["at risk for less than 2 day(s)"],
    ]


def test_decisions_carry_the_structured_headline_reason():
    policy = small()
    frame = candidates([("b", "enterprise", 0.9, 5000), ("a", "smb", 0.55, 1000), ("c", "smb", 0.1, 10),
                        ("d", "smb", 0.6, 10)])
    frame.loc[frame["account_id"] == "d", "top_reason"] = None
    decisions = route(frame, policy, now=NOW, account_states=at_risk_since(["a", "b", "d"])).decisions
    assert {"rule_id", "rule_description", "reason_driver", "reasons"} <= set(DECISION_COLUMNS)
    assert list(decisions.columns) == list(DECISION_COLUMNS)
    rows = decisions.set_index("account_id")
    assert rows.loc["b", ["rule_id", "rule_description", "reason_driver"]].tolist() == [
        "enterprise_high", "Enterprise with high risk", "usage fell 38% over 90 days"]
    assert rows.loc["d", ["rule_id", "rule_description", "reason_driver"]].tolist() == ["high", "High risk", None]
    assert rows.loc["c", ["rule_id", "rule_description", "reason_driver"]].isna().all()
    # `reasons` stays the display text, and says the same in words
    assert rows.loc["b", "reasons"][1:] == ["enterprise_high: Enterprise with high risk",
                                            "top driver: usage fell 38% over 90 days"]
    assert rows.loc["d", "reasons"][1:] == ["high: High risk"]
    for column in ("rule_id", "rule_description", "reason_driver"):
        assert decisions[column].dtype == object


def test_a_rule_description_with_a_colon_survives_intact():
    policy = small(**{"description: High risk": "description: 'High risk: act this week'"})
    decisions = route(candidates([("a", "smb", 0.55, 1000)]), policy, now=NOW,
                      account_states=at_risk_since(["a"])).decisions
    assert decisions.loc[0, "rule_description"] == "High risk: act this week"
    assert decisions.loc[0, "reason_driver"] == "usage fell 38% over 90 days"


def test_prepare_inputs_keeps_the_latest_open_case_per_account_and_dates_states_by_as_of():
    policy = small()
    cases = pd.DataFrame({"account_id": ["a", "a"], "case_id": ["K-old", "K-new"], "priority": ["P3", "P2"],
                          "team": ["csm", "csm"], "opened_at": pd.to_datetime(["2026-11-01", "2026-11-10"])})
    run = prepare_inputs(candidates([("a", "smb", 0.55, 1)]), policy, now=NOW, open_cases=cases,
                         as_of=dt.date(2026, 11, 18))
    assert run.open_cases.loc["a", "case_id"] == "K-new"
    assert run.state_clock == pd.Timestamp("2026-11-18")
    assert run.now_naive == CLOCK
    with pytest.raises(ValueError, match="timezone-aware"):
        prepare_inputs(candidates([("a", "smb", 0.55, 1)]), policy, now=dt.datetime(2026, 11, 20))

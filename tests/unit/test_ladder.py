"""Escalation ladders at the exact minute, on business time, and RACI resolution."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from models.cases.ladder import LadderError, due_escalations, resolve_raci
from models.policy.loader import load_policy

POLICY = load_policy(Path(__file__).resolve().parents[2] / "policies" / "default.yaml")
UTC = dt.timezone.utc
OPENED = dt.datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # Wednesday 10:00 in London and UTC


def case(**overrides) -> pd.DataFrame:
    row = {"case_id": "K-1", "team": "legal", "priority": "P1", "opened_at": OPENED.replace(tzinfo=None),
           "first_touch_at": None, "assignee": "lg_tom", "csm_owner": "csm_amara"}
    return pd.DataFrame([row | overrides])


def step_ids(steps) -> list[str]:
    return [s.step_id for s in steps]


def test_after_minutes_without_first_touch_fires_at_the_exact_minute():
    # Legal runs on a 24x7 calendar: 15 minutes untouched -> notify, 30 -> reassign upward.
    assert step_ids(due_escalations(case(), POLICY, OPENED + dt.timedelta(minutes=14))) == []
    at_15 = due_escalations(case(), POLICY, OPENED + dt.timedelta(minutes=15))
    assert step_ids(at_15) == ["legal_p1_untouched_15m"]
    assert at_15[0].step_key == "K-1:legal_p1_untouched_15m"
    assert at_15[0].threshold_minutes == 15 and at_15[0].elapsed_minutes == 15
    assert step_ids(due_escalations(case(), POLICY, OPENED + dt.timedelta(minutes=29))) == ["legal_p1_untouched_15m"]
    at_30 = due_escalations(case(), POLICY, OPENED + dt.timedelta(minutes=30))
    assert step_ids(at_30) == ["legal_p1_untouched_15m", "legal_p1_untouched_reassign"]
    assert (at_30[1].action, at_30[1].team, at_30[1].to_team) == ("reassign", "legal", "leadership")


def test_pre_breach_warning_at_exactly_its_share_of_the_sla_on_business_time():
    # csm P1: first touch 30 business minutes, pre-breach at 75% = 22.5 minutes, London hours.
    friday = dt.datetime(2026, 11, 20, 17, 20, tzinfo=UTC)  # 10 minutes before closing
    frame = case(team="csm", opened_at=friday, assignee="csm_jonas")
    monday = dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    one_minute_before = monday + dt.timedelta(minutes=11, seconds=30)
    assert due_escalations(frame, POLICY, one_minute_before) == []
    assert due_escalations(frame, POLICY, dt.datetime(2026, 11, 22, 12, 0, tzinfo=UTC)) == []  # weekend
    warned = due_escalations(frame, POLICY, monday + dt.timedelta(minutes=12, seconds=30))
    assert step_ids(warned) == ["p1_first_touch_warning"]
    assert warned[0].action == "warn"
    assert warned[0].threshold_minutes == 22.5
    assert "at 75% of its 30-minute P1 target" in warned[0].message


def test_reassignment_after_x_minutes_and_re_escalation_on_breach():
    frame = case(team="csm", assignee="csm_jonas")
    untouched = due_escalations(frame, POLICY, OPENED + dt.timedelta(minutes=30))
    assert step_ids(untouched) == ["p1_first_touch_warning", "p1_untouched_reassign"]
    assert untouched[1].to_team == "rescue_squad"
    # After a first touch, first-touch steps stop; the resolution clock keeps running.
    touched = case(team="rescue_squad", assignee="rs_omar",
                   first_touch_at=(OPENED + dt.timedelta(minutes=20)).replace(tzinfo=None))
    # rescue_squad works 08:00-18:00 New York (13:00-23:00 UTC): 960 minutes is 16 business hours.
    opened_ny = dt.datetime(2026, 11, 18, 13, 0, tzinfo=UTC)
    touched = touched.assign(opened_at=opened_ny)
    breach = dt.datetime(2026, 11, 19, 19, 0, tzinfo=UTC)  # 10h Wednesday + 6h Thursday
    before = due_escalations(touched, POLICY, breach - dt.timedelta(minutes=1))
    assert step_ids(before) == ["p1_resolution_warning"]
    at_breach = due_escalations(touched, POLICY, breach)
    assert step_ids(at_breach) == ["p1_resolution_warning", "p1_resolution_breach"]
    assert (at_breach[1].action, at_breach[1].to_team) == ("reassign", "leadership")


def test_pauses_stop_the_clock():
    pause = [(OPENED + dt.timedelta(minutes=5), OPENED + dt.timedelta(minutes=15))]
    now = OPENED + dt.timedelta(minutes=20)
    assert step_ids(due_escalations(case(), POLICY, now)) == ["legal_p1_untouched_15m"]
    assert due_escalations(case(), POLICY, now, pauses={"K-1": pause}) == []
    still_paused = [(OPENED + dt.timedelta(minutes=5), None)]
    assert due_escalations(case(), POLICY, OPENED + dt.timedelta(hours=5), pauses={"K-1": still_paused}) == []


def test_step_keys_are_stable_and_applied_steps_are_left_out():
    now = OPENED + dt.timedelta(minutes=45)
    first = due_escalations(case(), POLICY, now)
    again = due_escalations(case(), POLICY, now + dt.timedelta(minutes=1))
    assert [s.step_key for s in first] == [s.step_key for s in again]
    applied = {s.step_key for s in first}
    assert due_escalations(case(), POLICY, now + dt.timedelta(minutes=2), already_applied=applied) == []


def test_reassignments_name_the_receiving_person_when_loads_are_given():
    frame = pd.concat([case(case_id="K-1", team="csm", assignee="csm_jonas", required_skills=["enterprise"]),
                       case(case_id="K-2", team="csm", assignee="csm_dev", required_skills=["technical"])])
    now = OPENED + dt.timedelta(minutes=30)
    assert all(s.to_assignee is None for s in due_escalations(frame, POLICY, now))
    steps = [s for s in due_escalations(frame, POLICY, now, member_load={"rs_omar": 8})
             if s.action == "reassign"]
    # K-1: least loaded squad member with the skill; K-2 needs "technical": Omar is full.
    assert [(s.case_id, s.to_team, s.to_assignee) for s in steps] == [
        ("K-1", "rescue_squad", "rs_lead_maya"), ("K-2", "rescue_squad", "rs_sofia")]
    # Nobody in the squad has room: the case goes further up the escalation path.
    full = {"rs_lead_maya": 4, "rs_omar": 8, "rs_sofia": 8}
    step = [s for s in due_escalations(frame.iloc[:1], POLICY, now, member_load=full) if s.action == "reassign"][0]
    assert (step.to_team, step.to_assignee) == ("leadership", "ld_vp_ruth")


def test_reassign_at_the_top_tier_notifies_instead():
    frame = case(team="leadership", assignee="ld_vp_ruth")
    steps = due_escalations(frame, POLICY, OPENED + dt.timedelta(minutes=30))
    top = [s for s in steps if s.step_id == "p1_untouched_reassign"][0]
    assert (top.action, top.to_team) == ("notify", None)
    assert "top tier" in top.message


def test_raci_resolves_roles_members_teams_and_channels():
    frame = case(team="csm", assignee="csm_jonas")
    steps = {s.step_id: s for s in due_escalations(frame, POLICY, OPENED + dt.timedelta(minutes=30))}
    assert steps["p1_untouched_reassign"].raci == {
        "responsible": ["rs_lead_maya"],                  # target_escalation_manager (rescue squad)
        "accountable": ["rs_lead_maya"],                  # escalation_manager of csm
        "consulted": ["csm_amara"],                       # csm_owner of the account
        "informed": ["slack:RESCUE_SLACK_CSM", "email:cs-team@example.com",
                     "slack:RESCUE_SLACK_SQUAD", "email:rescue-squad@example.com"],
    }
    legal_step = POLICY.ladder_for("legal", "P1")[0]
    raci = resolve_raci(legal_step, {"case_id": "K-1", "team": "legal", "assignee": None}, POLICY)
    assert raci["responsible"] == []                      # no assignee yet: left out
    assert raci["accountable"] == ["lg_counsel_ines"]     # a member id
    assert raci["informed"] == ["slack:RESCUE_SLACK_LEGAL", "email:legal-escalations@example.com",
                                "email:security-officer@example.com"]  # a team key and a literal channel


def test_priorities_without_a_ladder_and_input_errors():
    assert due_escalations(case(priority="P9"), POLICY, OPENED + dt.timedelta(days=30)) == []
    with pytest.raises(LadderError, match="lacks column\\(s\\) opened_at"):
        due_escalations(case().drop(columns="opened_at"), POLICY, OPENED)
    with pytest.raises(LadderError, match="unknown team 'nope'"):
        due_escalations(case(team="nope"), POLICY, OPENED)
    with pytest.raises(LadderError, match="timezone-aware"):
        due_escalations(case(), POLICY, OPENED.replace(tzinfo=None))

"""Queue-operations metrics on a hand-built queue history with known touch and resolution times."""

from __future__ import annotations

import datetime as dt
import json
import math

import pandas as pd
import pytest

from models.policy.calendar import BusinessCalendar
from models.cases.metrics import QueueMetricsError, charts, queue_metrics

T = pd.Timestamp
NOW = T("2026-01-14 12:00")  # a Wednesday; weeks 2026-W02 (Jan 5-11) and 2026-W03 (Jan 12-18)


def case(case_id, team, priority, opened, ft_due, res_due, *, ack=None, resolved=None, outcome=None,
         account_id=None):
    return {"case_id": case_id, "account_id": account_id or "A-" + case_id, "team": team,
            "priority": priority, "status": outcome or ("acknowledged" if ack else "open"),
            "opened_at": T(opened), "acknowledged_at": T(ack) if ack else None,
            "resolved_at": T(resolved) if resolved else None, "outcome": outcome,
            "sla_first_touch_due": T(ft_due), "sla_resolution_due": T(res_due)}


def event(case_id, at, kind, from_status=None, to_status=None, **payload):
    return {"case_id": case_id, "at": T(at), "kind": kind, "from_status": from_status,
            "to_status": to_status, "payload": payload}


CASES = pd.DataFrame([
    # csm / P2, week 2026-W02
    case("C1", "csm", "P2", "2026-01-05 09:00", "2026-01-05 13:00", "2026-01-09 09:00",
         ack="2026-01-05 10:00", resolved="2026-01-07 09:00", outcome="resolved_saved"),   # 1 h, 48 h
    case("C2", "rescue_squad", "P2", "2026-01-05 09:00", "2026-01-05 13:00", "2026-01-09 09:00",
         ack="2026-01-05 15:00", resolved="2026-01-12 09:00", outcome="resolved_churned"),  # 6 h late, 168 h late
    case("C3", "csm", "P2", "2026-01-06 09:00", "2026-01-06 13:00", "2026-01-16 09:00"),  # touched by event: 2 h
    case("C4", "rescue_squad", "P2", "2026-01-06 12:00", "2026-01-06 16:00", "2026-01-20 12:00"),  # untouched, late
    # rescue_squad / P1, week 2026-W03
    case("C5", "rescue_squad", "P1", "2026-01-12 10:00", "2026-01-12 10:30", "2026-01-14 10:00",
         ack="2026-01-12 10:20", resolved="2026-01-13 10:00", outcome="resolved_saved"),
])

EVENTS = pd.DataFrame([
    event("C1", "2026-01-05 09:00", "opened", None, "open"),
    event("C1", "2026-01-05 10:00", "claimed", "open", "acknowledged"),
    event("C1", "2026-01-05 12:00", "escalated", "acknowledged", "acknowledged", action="notify"),
    event("C2", "2026-01-05 14:00", "handoff", "open", "open", from_team="csm", to_team="csm",
          to_assignee="csm_jonas"),
    event("C2", "2026-01-05 15:00", "claimed", "open", "acknowledged"),
    event("C2", "2026-01-06 09:00", "escalated", "acknowledged", "acknowledged", action="reassign",
          from_team="csm", to_team="rescue_squad"),
    event("C3", "2026-01-06 11:00", "claimed", "open", "acknowledged"),
    event("C4", "2026-01-06 16:00", "escalated", "open", "open", action="reassign",
          from_team="csm", to_team="rescue_squad"),
    event("C5", "2026-01-12 10:20", "claimed", "open", "acknowledged"),
])


@pytest.fixture(scope="module")
def metrics():
    return queue_metrics(CASES, EVENTS, now=NOW)


def row(frame, **keys):
    mask = pd.Series(True, index=frame.index)
    for key, value in keys.items():
        mask &= frame[key] == value
    assert mask.sum() == 1, f"expected one row for {keys}, got {mask.sum()}"
    return frame[mask].iloc[0]


def test_per_case_first_touch_resolution_and_sla_states(metrics):
    cases = metrics.cases.set_index("case_id")
    assert cases["hours_to_first_touch"].to_dict() == pytest.approx(
        {"C1": 1.0, "C2": 6.0, "C3": 2.0, "C4": math.nan, "C5": 1 / 3}, nan_ok=True)
    assert cases.loc["C3", "first_touch_at"] == T("2026-01-06 11:00")  # from the claim event
    assert cases["hours_to_resolution"].dropna().to_dict() == {"C1": 48.0, "C2": 168.0, "C5": 24.0}
    assert cases["first_touch_sla"].to_dict() == {
        "C1": "met", "C2": "breached", "C3": "met", "C4": "breached", "C5": "met"}
    assert cases["resolution_sla"].to_dict() == {
        "C1": "met", "C2": "breached", "C3": "pending", "C4": "pending", "C5": "met"}
    assert cases["reassignments"].to_dict() == {"C1": 0, "C2": 2, "C3": 0, "C4": 1, "C5": 0}
    # Reassigned cases count for the team they were routed to.
    assert cases["team"].to_dict() == {"C1": "csm", "C2": "csm", "C3": "csm", "C4": "csm", "C5": "rescue_squad"}
    assert cases.loc["C4", "current_team"] == "rescue_squad"
    assert cases["week"].to_dict() == {"C1": "2026-W02", "C2": "2026-W02", "C3": "2026-W02",
                                       "C4": "2026-W02", "C5": "2026-W03"}


def test_weekly_medians_attainment_breaches_and_bounces(metrics):
    assert len(metrics.weekly) == 2
    csm = row(metrics.weekly, team="csm", priority="P2", week="2026-W02")
    assert csm["cases_opened"] == 4 and csm["first_touched"] == 3 and csm["resolved"] == 2
    assert csm["first_touch_median_h"] == pytest.approx(2.0)
    assert csm["first_touch_p90_h"] == pytest.approx(5.2)  # [1, 2, 6]: 2 + 0.8 * (6 - 2)
    assert csm["resolution_median_h"] == pytest.approx(108.0)
    assert csm["resolution_p90_h"] == pytest.approx(156.0)  # [48, 168]: 48 + 0.9 * 120
    assert csm["first_touch_attainment"] == pytest.approx(0.5)   # C1, C3 met; C2, C4 breached
    assert csm["first_touch_breach_rate"] == pytest.approx(0.5)
    assert csm["resolution_attainment"] == pytest.approx(0.5)    # C1 met, C2 breached, C3/C4 pending
    assert csm["resolution_breach_rate"] == pytest.approx(0.5)
    assert csm["reassignments"] == 3 and csm["bounced_cases"] == 1
    assert csm["bounced_share"] == pytest.approx(0.25)

    squad = row(metrics.weekly, team="rescue_squad", priority="P1", week="2026-W03")
    assert squad["cases_opened"] == 1
    assert squad["first_touch_median_h"] == pytest.approx(1 / 3)
    assert squad["first_touch_attainment"] == 1.0 and squad["resolution_breach_rate"] == 0.0
    assert squad["reassignments"] == 0 and squad["bounced_share"] == 0.0


def test_overall_aggregates_weeks_per_team_and_priority():
    later = pd.DataFrame([case("C6", "csm", "P2", "2026-01-13 09:00", "2026-01-13 13:00", "2026-01-23 09:00",
                               ack="2026-01-13 17:00")])  # touched after 8 h: breached
    metrics = queue_metrics(pd.concat([CASES, later], ignore_index=True), EVENTS, now=NOW)
    assert len(metrics.weekly) == 3
    csm = row(metrics.overall, team="csm", priority="P2")
    assert csm["cases_opened"] == 5
    assert csm["first_touch_median_h"] == pytest.approx(4.0)  # [1, 2, 6, 8]
    assert csm["first_touch_attainment"] == pytest.approx(2 / 5)


def test_a_case_inside_its_clock_is_pending_until_it_is_late():
    one = pd.DataFrame([case("C4", "csm", "P2", "2026-01-06 12:00", "2026-01-06 16:00", "2026-01-20 12:00")])
    empty = EVENTS.iloc[0:0]
    before = queue_metrics(one, empty, now=T("2026-01-06 15:59"))
    assert before.cases.loc[0, "first_touch_sla"] == "pending"
    assert math.isnan(before.weekly.loc[0, "first_touch_attainment"])
    after = queue_metrics(one, empty, now=dt.datetime(2026, 1, 6, 16, 1, tzinfo=dt.timezone.utc))
    assert after.cases.loc[0, "first_touch_sla"] == "breached"
    assert after.weekly.loc[0, "first_touch_breach_rate"] == 1.0


def test_business_hours_skip_nights_and_weekends():
    # Opened Friday 16:00, touched Monday 10:00, on a 09:00-17:00 weekday calendar: 2 business hours.
    one = pd.DataFrame([case("C9", "csm", "P3", "2026-01-09 16:00", "2026-01-12 16:00", "2026-01-30 16:00",
                             ack="2026-01-12 10:00")])
    office = BusinessCalendar("UTC", ["mon", "tue", "wed", "thu", "fri"], "09:00", "17:00", None)
    metrics = queue_metrics(one, EVENTS.iloc[0:0], now=NOW, calendars={"csm": office})
    assert metrics.business_hours
    assert metrics.cases.loc[0, "hours_to_first_touch"] == pytest.approx(2.0)
    wall = queue_metrics(one, EVENTS.iloc[0:0], now=NOW)
    assert wall.cases.loc[0, "hours_to_first_touch"] == pytest.approx(66.0)
    with pytest.raises(QueueMetricsError, match="no business calendar for team.*csm"):
        queue_metrics(one, EVENTS.iloc[0:0], now=NOW, calendars={"legal": office})


def test_holdout_vs_treated_save_rates():
    holdout = pd.DataFrame({"account_id": ["H1", "H2", "H3", "X1"],
                            "action": ["holdout", "holdout", "holdout", "overflow"]})
    outcomes = pd.DataFrame({"account_id": ["H1", "H2", "H3", "X1"],
                             "outcome": ["saved", "churned", "churned", "saved"]})
    metrics = queue_metrics(CASES, EVENTS, now=NOW, holdout=holdout, outcomes=outcomes)
    rates = metrics.save_rates.set_index("arm")
    assert rates.loc["treated", ["accounts", "saved", "churned"]].tolist() == [3, 2, 1]  # C1, C5 saved; C2 churned
    assert rates.loc["treated", "save_rate"] == pytest.approx(2 / 3)
    assert rates.loc["holdout", ["accounts", "saved", "churned"]].tolist() == [3, 1, 2]  # overflow row ignored
    assert rates.loc["holdout", "save_rate"] == pytest.approx(1 / 3)
    assert queue_metrics(CASES, EVENTS, now=NOW).save_rates.empty
    bad = outcomes.assign(outcome=["saved", "renewed", "churned", "saved"])
    with pytest.raises(QueueMetricsError, match="unknown outcome.*renewed"):
        queue_metrics(CASES, EVENTS, now=NOW, holdout=holdout, outcomes=bad)


def test_missing_columns_are_named():
    with pytest.raises(QueueMetricsError, match="cases: missing column.*sla_first_touch_due"):
        queue_metrics(CASES.drop(columns=["sla_first_touch_due"]), EVENTS, now=NOW)
    with pytest.raises(QueueMetricsError, match="events: missing column.*payload"):
        queue_metrics(CASES, EVENTS.drop(columns=["payload"]), now=NOW)


def test_payload_may_be_json_text():
    as_text = EVENTS.assign(payload=EVENTS["payload"].map(json.dumps))
    metrics = queue_metrics(CASES, as_text, now=NOW)
    assert metrics.cases["reassignments"].tolist() == [0, 2, 0, 1, 0]


def test_charts_are_png(metrics):
    images = charts(metrics)
    assert set(images) == {"sla_attainment", "time_to_first_touch"}
    for png in images.values():
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000
    empty = queue_metrics(CASES.iloc[0:0], EVENTS.iloc[0:0], now=NOW)
    assert empty.weekly.empty and empty.cases.empty
    assert all(png.startswith(b"\x89PNG") for png in charts(empty).values())


def test_the_frames_index_does_not_matter(metrics):
    shuffled = CASES.set_axis([70, 30, 90, 10, 50]).iloc[::-1]
    again = queue_metrics(shuffled, EVENTS.set_axis(range(100, 100 + len(EVENTS))), now=NOW)
    pd.testing.assert_frame_equal(again.cases.set_index("case_id").sort_index(),
                                  metrics.cases.set_index("case_id").sort_index())
    pd.testing.assert_frame_equal(again.weekly, metrics.weekly)

"""The SLA wording (`models.cases.sla_text`): due times in the reader's zone, business days left,
overdue by the real amount, never "0m"; and the escalation badge and the manager's sentence."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from models.cases.ladder import escalation_badge
from models.cases.sla import BREACHED, DUE, PAUSED, WARNING
from models.cases.sla_text import (
    TimeZoneError,
    business_span,
    describe_sla,
    local_time,
    sla_overview,
)
from models.policy.calendar import BusinessCalendar
from models.policy.loader import load_policy

POLICY = load_policy(Path(__file__).resolve().parents[2] / "policies" / "default.yaml")
#: Monday to Friday, 09:00-17:00 UTC: one business day is 8 hours.
OFFICE = BusinessCalendar("UTC", ["mon", "tue", "wed", "thu", "fri"], "09:00", "17:00", None)
FRIDAY_AFTERNOON = dt.datetime(2026, 12, 4, 15, 0)  # Friday 4 December 2026, 15:00 UTC


def case(opened: dt.datetime, due: dt.datetime, **extra) -> dict:
    """An untouched open case (its first-touch clock runs) with a stored due time."""
    return {"case_id": "RC-1", "status": "open", "priority": "P2", "team": "nobody_the_policy_knows",
            "opened_at": opened, "sla_first_touch_due": due, "sla_resolution_due": due + dt.timedelta(days=30),
            **extra}


def test_a_case_opened_friday_afternoon_is_due_after_the_weekend_in_business_days() -> None:
    # Eight business hours from Friday 15:00: two on Friday, six on Monday (the weekend does not count).
    due = OFFICE.add_business_minutes(FRIDAY_AFTERNOON.replace(tzinfo=dt.timezone.utc), 8 * 60)
    assert due.replace(tzinfo=None) == dt.datetime(2026, 12, 7, 15, 0)
    text = describe_sla(case(FRIDAY_AFTERNOON, due.replace(tzinfo=None)), None, FRIDAY_AFTERNOON, calendar=OFFICE)
    assert text.state == DUE and text.due_text == "Mon 7 Dec 15:00 UTC"
    assert text.label == "first touch due Mon 7 Dec 15:00 UTC, 1 business day left"
    assert text.business_minutes_left == 480

    # Saturday noon: the clock stood still since Friday 17:00; six business hours are left.
    saturday = dt.datetime(2026, 12, 5, 12, 0)
    text = describe_sla(case(FRIDAY_AFTERNOON, due.replace(tzinfo=None)), None, saturday, calendar=OFFICE)
    assert text.label == "first touch due Mon 7 Dec 15:00 UTC, 6 business hours left"


def test_five_business_days_read_as_five_business_days_not_as_twenty_four_hour_days() -> None:
    opened = dt.datetime(2026, 12, 1, 15, 0)  # Tuesday
    due = dt.datetime(2026, 12, 8, 15, 0)  # Tuesday next week: 7 calendar days, 5 business days
    text = describe_sla(case(opened, due), None, opened, calendar=OFFICE)
    assert text.label == "first touch due Tue 8 Dec 15:00 UTC, 5 business days left"
    # 10 business hours: one business day of 8 hours, then 2 hours.
    later = describe_sla(case(opened, dt.datetime(2026, 12, 2, 17, 0)), None, opened, calendar=OFFICE)
    assert later.left_text == "1 business day 2 h left"


def test_the_business_day_is_the_calendars_working_hours_per_day() -> None:
    long_days = BusinessCalendar("UTC", range(5), "09:00", "17:30", None)  # 8.5 h a day
    assert business_span(510, long_days) == "1 business day"
    assert business_span(480, long_days) == "8 business hours"
    assert business_span(510 + 125, long_days) == "1 business day 2 h"
    assert business_span(61, OFFICE) == "1 business hour 1 min"
    assert business_span(45.9, OFFICE) == "45 business minutes"
    assert business_span(0.4, OFFICE) == "under a minute"
    assert business_span(3 * 1440 + 90, OFFICE, business_time=False) == "3 days 1 h"


def test_overdue_reads_the_real_business_time_past_the_due_time() -> None:
    due = dt.datetime(2026, 12, 4, 17, 0)  # Friday 17:00
    opened = dt.datetime(2026, 12, 4, 9, 0)
    # Monday and Tuesday (8 h each) and Wednesday 09:00-12:00: 2 business days 3 h overdue.
    wednesday = dt.datetime(2026, 12, 9, 12, 0)
    text = describe_sla(case(opened, due), None, wednesday, calendar=OFFICE)
    assert text.state == BREACHED and text.breached
    assert text.label == "first touch overdue by 2 business days 3 h (due Fri 4 Dec 17:00 UTC)"
    assert text.minutes_left == -(2 * 480 + 180)


def test_overdue_is_never_zero_minutes() -> None:
    due = dt.datetime(2026, 12, 4, 17, 0)
    opened = dt.datetime(2026, 12, 4, 9, 0)
    # Saturday: no business minute has passed since the due time, but the case is overdue.
    weekend = describe_sla(case(opened, due), None, dt.datetime(2026, 12, 5, 10, 0), calendar=OFFICE)
    assert weekend.state == BREACHED
    assert weekend.label == "first touch overdue since Fri 4 Dec 17:00 UTC, outside business hours"
    # Thirty seconds late, inside business hours.
    due_noon = dt.datetime(2026, 12, 4, 12, 0)
    just = describe_sla(case(opened, due_noon), None, due_noon + dt.timedelta(seconds=30), calendar=OFFICE)
    assert just.label == "first touch overdue by under a minute (due Fri 4 Dec 12:00 UTC)"
    for text in (weekend, just):
        assert "0m" not in text.label and " 0 " not in text.label


def test_the_due_time_is_shown_in_the_readers_time_zone() -> None:
    due = dt.datetime(2026, 12, 7, 15, 0)  # Monday 15:00 UTC
    text = describe_sla(case(FRIDAY_AFTERNOON, due), None, FRIDAY_AFTERNOON, calendar=OFFICE, tz="America/New_York")
    assert text.due_text == "Mon 7 Dec 10:00 EST" and text.tz == "America/New_York"
    # In Tokyo it is already Tuesday; the business time left does not depend on the reader.
    tokyo = describe_sla(case(FRIDAY_AFTERNOON, due), None, FRIDAY_AFTERNOON, calendar=OFFICE, tz="Asia/Tokyo")
    assert tokyo.label == "first touch due Tue 8 Dec 00:00 JST, 1 business day left"
    assert local_time(dt.datetime(2027, 1, 4, 9, 0), "UTC", now=FRIDAY_AFTERNOON) == "Mon 4 Jan 2027 09:00 UTC"
    assert local_time(dt.datetime(2026, 7, 1, 12, 0), "Europe/Berlin", now=FRIDAY_AFTERNOON) == "Wed 1 Jul 14:00 CEST"
    with pytest.raises(TimeZoneError, match="unknown time zone 'Mars/Olympus'"):
        describe_sla(case(FRIDAY_AFTERNOON, due), None, FRIDAY_AFTERNOON, calendar=OFFICE, tz="Mars/Olympus")


def test_a_team_of_the_policy_reads_on_its_own_calendar() -> None:
    # csm works on emea_office: London, 09:00-17:30 (8.5 h days), English bank holidays.
    opened = dt.datetime(2026, 12, 4, 15, 0)
    row = {**case(opened, dt.datetime(2026, 12, 11, 15, 0)), "team": "csm", "priority": "P2"}
    text = describe_sla(row, POLICY, opened, tz="Europe/London")
    assert text.business_time and text.due_text == "Fri 11 Dec 15:00 GMT"
    assert text.left_text == "5 business days left" and text.business_minutes_left == 5 * 510


def test_near_breach_paused_and_closed_states_are_worded() -> None:
    opened = dt.datetime(2026, 12, 7, 9, 0)
    row = {**case(opened, dt.datetime(2026, 12, 7, 13, 0)), "team": "csm", "priority": "P2"}  # 240 min target
    near = describe_sla(row, POLICY, dt.datetime(2026, 12, 7, 12, 30))
    assert near.state == WARNING and near.near_breach and near.left_text == "30 business minutes left"
    snoozed = {**row, "status": "snoozed", "snoozed_until": dt.datetime(2026, 12, 8, 9, 0)}
    paused = describe_sla(snoozed, POLICY, dt.datetime(2026, 12, 7, 10, 0),
                          [(dt.datetime(2026, 12, 7, 10, 0), None)])
    assert paused.state == PAUSED and paused.label == ("first touch clock paused until Tue 8 Dec 09:00 UTC, "
                                                       "3 business hours left")
    closed = {**row, "status": "resolved_saved", "acknowledged_at": opened, "resolved_at": opened}
    assert describe_sla(closed, POLICY, opened).label == "closed; resolution SLA met"


def test_the_escalation_badge_names_the_ladder_step() -> None:
    # P1 on the default ladder escalates twice: untouched -> reassign, resolution breach -> reassign.
    assert escalation_badge({"escalation_level": 0, "team": "csm", "priority": "P1"}, POLICY) is None
    assert escalation_badge({"escalation_level": 1, "team": "rescue_squad", "priority": "P1"}, POLICY) == \
        "escalated: step 1 of 2 (moved to Rescue Squad)"
    # P3: one notify step, accountable is the team's escalation manager.
    assert escalation_badge({"escalation_level": 1, "team": "csm", "priority": "P3"}, POLICY) == \
        "escalated: step 1 of 1 (escalation manager)"
    assert escalation_badge({"escalation_level": 3, "team": "csm", "priority": "P3"}, POLICY) == \
        "escalated: step 3 of 3"


def test_the_managers_sentence_follows_the_real_states() -> None:
    assert sla_overview([DUE, DUE, PAUSED]) == "3 open cases: every open case is within its SLA (1 paused)."
    assert sla_overview([BREACHED, WARNING, DUE]) == "3 open cases: 1 breached, 1 near breach, 1 within their SLA."
    said = sla_overview([DUE, DUE], escalated=1)
    assert "within its SLA" not in said and said.endswith("; 1 escalated by the ladder.")
    assert sla_overview([]) == "No open cases."

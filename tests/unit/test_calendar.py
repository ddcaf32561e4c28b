"""Business-hours arithmetic across nights, weekends, holidays, DST and timezones."""

from __future__ import annotations

import datetime as dt

import holidays
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from models.policy.calendar import UTC, BusinessCalendar, CalendarError, parse_clock, parse_weekday

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def london() -> BusinessCalendar:
    return BusinessCalendar("Europe/London", WEEKDAYS, "09:00", "17:30", "GB", subdiv="ENG")


def new_york() -> BusinessCalendar:
    return BusinessCalendar("America/New_York", WEEKDAYS, "08:00", "18:00", "US", subdiv="NY")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def local(calendar: BusinessCalendar, *args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=calendar.tz)


def test_within_one_day():
    cal = london()
    start = local(cal, 2026, 11, 18, 10, 0)  # Wednesday
    assert cal.add_business_minutes(start, 90) == local(cal, 2026, 11, 18, 11, 30).astimezone(UTC)
    assert cal.business_minutes_between(start, local(cal, 2026, 11, 18, 11, 30)) == 90


def test_across_a_night_and_a_weekend():
    cal = london()
    friday = local(cal, 2026, 11, 20, 17, 0)
    # 30 minutes on Friday, 30 on Monday morning.
    assert cal.add_business_minutes(friday, 60) == local(cal, 2026, 11, 23, 9, 30).astimezone(UTC)
    assert cal.business_minutes_between(friday, local(cal, 2026, 11, 23, 9, 30)) == 60
    assert cal.business_minutes_between(local(cal, 2026, 11, 21, 10), local(cal, 2026, 11, 22, 16)) == 0


def test_a_bank_holiday_is_skipped():
    cal = london()
    friday = local(cal, 2026, 8, 28, 17, 0)  # Monday 31 August 2026 is the summer bank holiday
    assert cal.is_holiday(dt.date(2026, 8, 31))
    assert cal.add_business_minutes(friday, 60) == local(cal, 2026, 9, 1, 9, 30).astimezone(UTC)
    assert cal.business_minutes_between(local(cal, 2026, 8, 31, 9), local(cal, 2026, 8, 31, 17)) == 0


def test_subdivision_holidays_differ():
    scotland = BusinessCalendar("Europe/London", WEEKDAYS, "09:00", "17:30", "GB", subdiv="SCT")
    # 2 January is a bank holiday in Scotland, not in England.
    assert scotland.is_holiday(dt.date(2026, 1, 2))
    assert not london().is_holiday(dt.date(2026, 1, 2))


def test_result_exactly_at_closing_time_stays_at_closing_time():
    cal = london()
    start = local(cal, 2026, 11, 18, 17, 0)
    assert cal.add_business_minutes(start, 30) == local(cal, 2026, 11, 18, 17, 30).astimezone(UTC)
    assert cal.add_business_minutes(start, 31) == local(cal, 2026, 11, 19, 9, 1).astimezone(UTC)


def test_start_before_opening_counts_from_opening():
    cal = london()
    early = local(cal, 2026, 11, 18, 6, 45)
    assert cal.add_business_minutes(early, 15) == local(cal, 2026, 11, 18, 9, 15).astimezone(UTC)


def test_daylight_saving_change_keeps_local_hours():
    cal = london()
    # Clocks go forward on Sunday 29 March 2026: Friday is GMT (UTC+0), Monday BST (UTC+1).
    friday = local(cal, 2026, 3, 27, 17, 0)
    due = cal.add_business_minutes(friday, 60)
    assert due == utc(2026, 3, 30, 8, 30)  # 09:30 BST
    assert cal.business_minutes_between(friday, due) == 60
    # A whole working day is 8.5 hours on both sides of the change.
    assert cal.business_minutes_between(local(cal, 2026, 3, 27, 0), local(cal, 2026, 3, 28, 0)) == 510
    assert cal.business_minutes_between(local(cal, 2026, 3, 30, 0), local(cal, 2026, 3, 31, 0)) == 510


def test_the_same_instant_on_calendars_in_different_timezones():
    start = utc(2026, 11, 18, 16, 0)  # 16:00 London, 11:00 New York
    assert london().add_business_minutes(start, 120) == utc(2026, 11, 19, 9, 30)  # 90 today, 30 tomorrow
    assert new_york().add_business_minutes(start, 120) == utc(2026, 11, 18, 18, 0)
    # Thanksgiving (26 Nov 2026) is a New York holiday, a normal Thursday in London.
    thursday = (utc(2026, 11, 26, 0), utc(2026, 11, 27, 0))
    assert new_york().business_minutes_between(*thursday) == 0
    assert london().business_minutes_between(*thursday) == 510


def test_pauses_stop_the_clock_and_may_overlap_or_spill_over():
    cal = london()
    a, b = local(cal, 2026, 11, 18, 9), local(cal, 2026, 11, 18, 17, 30)
    pauses = [
        (local(cal, 2026, 11, 18, 10), local(cal, 2026, 11, 18, 11)),
        (local(cal, 2026, 11, 18, 10, 30), local(cal, 2026, 11, 18, 12)),  # overlaps the first
        (local(cal, 2026, 11, 18, 17), local(cal, 2026, 11, 19, 12)),  # runs past b
    ]
    assert cal.business_minutes_between(a, b, pauses) == 510 - 120 - 30


def test_a_24x7_calendar_counts_wall_clock_minutes():
    always = BusinessCalendar("UTC", range(7), "00:00", "24:00", None)
    start = utc(2026, 12, 24, 23, 50)
    assert always.add_business_minutes(start, 20) == utc(2026, 12, 25, 0, 10)
    assert always.business_minutes_between(start, utc(2026, 12, 27, 23, 50)) == 3 * 24 * 60


def test_zero_minutes_and_reversed_intervals():
    cal = london()
    saturday = local(cal, 2026, 11, 21, 12)
    assert cal.add_business_minutes(saturday, 0) == saturday
    assert cal.business_minutes_between(saturday, saturday - dt.timedelta(days=3)) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"working_days": []}, "at least one working day"),
        ({"working_days": ["funday"]}, "unknown weekday 'funday'"),
        ({"start": "18:00", "end": "09:00"}, "must end after they start"),
        ({"start": "9h"}, "HH:MM"),
        ({"end": "24:30"}, "out of range"),
        ({"holidays_country": "XX"}, "unknown holiday calendar 'XX'"),
    ],
)
def test_invalid_definitions_are_rejected(kwargs, message):
    args = {"timezone": "UTC", "working_days": WEEKDAYS, "start": "09:00", "end": "17:00",
            "holidays_country": "GB"} | kwargs
    with pytest.raises(CalendarError, match=message):
        BusinessCalendar(**args)


def test_naive_datetimes_and_negative_minutes_are_rejected():
    cal = london()
    with pytest.raises(CalendarError, match="timezone-aware"):
        cal.add_business_minutes(dt.datetime(2026, 11, 18, 10), 5)
    with pytest.raises(CalendarError, match="pauses\\[0\\]\\[1\\]"):
        cal.business_minutes_between(utc(2026, 11, 18), utc(2026, 11, 19),
                                     [(utc(2026, 11, 18, 10), dt.datetime(2026, 11, 18, 11))])
    with pytest.raises(CalendarError, match=">= 0"):
        cal.add_business_minutes(utc(2026, 11, 18), -1)


def test_parsers():
    assert parse_clock("24:00") == 1440
    assert parse_clock(dt.time(9, 30)) == 570
    assert parse_weekday("Friday") == 4
    assert parse_weekday(6) == 6


# -- properties -------------------------------------------------------------------------------

CALENDARS = [london(), new_york(), BusinessCalendar("Asia/Kolkata", ["mon", "tue", "wed", "thu", "fri", "sat"],
                                                   "10:00", "19:00", "IN")]
instants = st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2027, 12, 31),
                        timezones=st.just(UTC))
minutes = st.integers(min_value=1, max_value=20_000)
calendars = st.sampled_from(CALENDARS)


@settings(max_examples=60, deadline=None)
@given(cal=calendars, start=instants, m=minutes)
def test_adding_then_measuring_round_trips(cal, start, m):
    assert cal.business_minutes_between(start, cal.add_business_minutes(start, m)) == pytest.approx(m)


@settings(max_examples=60, deadline=None)
@given(cal=calendars, start=instants, m1=minutes, m2=minutes)
def test_adding_is_monotone_and_additive(cal, start, m1, m2):
    lo, hi = sorted((m1, m2))
    assert cal.add_business_minutes(start, lo) <= cal.add_business_minutes(start, hi)
    assert cal.add_business_minutes(cal.add_business_minutes(start, lo), hi) == \
        cal.add_business_minutes(start, lo + hi)


@settings(max_examples=60, deadline=None)
@given(cal=calendars, start=instants, m=minutes)
def test_a_due_time_is_inside_working_hours_or_exactly_at_closing(cal, start, m):
    due = cal.add_business_minutes(start, m)
    window = cal.window(due.astimezone(cal.tz).date())
    assert window is not None
    assert window[0] < due <= window[1]


@settings(max_examples=60, deadline=None)
@given(cal=calendars, a=instants, b=instants, c=instants)
def test_measuring_is_additive_over_a_split_point(cal, a, b, c):
    a, b, c = sorted((a, b, c))
    total = cal.business_minutes_between(a, c)
    assert total == pytest.approx(cal.business_minutes_between(a, b) + cal.business_minutes_between(b, c))
    assert 0 <= total <= (c - a).total_seconds() / 60


@settings(max_examples=40, deadline=None)
@given(cal=calendars, year=st.integers(2025, 2027), data=st.data())
def test_minutes_inside_a_holiday_are_zero(cal, year, data):
    days = sorted(holidays.country_holidays(cal.holidays_country, subdiv=cal.subdiv, years=year))
    assume(days)
    day = data.draw(st.sampled_from(days))
    midnight = dt.datetime.combine(day, dt.time(0), tzinfo=cal.tz)
    assert cal.business_minutes_between(midnight, midnight + dt.timedelta(days=1)) == 0

"""Business-hours calendars: the clock that SLA targets and escalation ladders run on.

A `BusinessCalendar` is one daily window of working hours (`start` to `end`, local wall-clock
time) on a set of working days in one IANA timezone, minus the public holidays of a country
(and optionally a subdivision) from the `holidays` package. An SLA of "60 business minutes"
opened on Friday at 16:30 in London with hours 09:00-17:30 is due on Monday at 09:30, or on
Tuesday if Monday is a bank holiday.

Every input and output instant is a timezone-aware `datetime`; outputs are in UTC. Local
windows are computed on the wall clock, so a 09:00-17:00 day stays 09:00-17:00 across daylight
saving changes. `end` may be `24:00` for a window that runs to midnight (a 24x7 calendar is
working days Monday-Sunday, 00:00-24:00, no holiday country). Windows never cross midnight.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from holidays import HolidayBase

UTC = dt.timezone.utc
DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MINUTES_PER_DAY = 24 * 60

Interval = tuple[dt.datetime, dt.datetime]


class CalendarError(ValueError):
    """A calendar definition or a call is invalid (unknown timezone, naive datetime, ...)."""


def parse_clock(value: str | dt.time) -> int:
    """`"09:30"` (or a `time`) as minutes after midnight; `"24:00"` is 1440."""
    if isinstance(value, dt.time):
        return value.hour * 60 + value.minute
    text = str(value).strip()
    try:
        hours, minutes = (int(part) for part in text.split(":"))
    except ValueError:
        raise CalendarError(f"expected a time of day as HH:MM, got {value!r}") from None
    if not (0 <= minutes < 60 and (0 <= hours < 24 or (hours == 24 and minutes == 0))):
        raise CalendarError(f"time of day out of range: {value!r}")
    return hours * 60 + minutes


def parse_weekday(value: int | str) -> int:
    """`"mon"`/`"monday"` or 0-6 (Monday = 0) as a weekday number."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 6:
            return value
        raise CalendarError(f"weekday number must be 0 (Monday) to 6 (Sunday), got {value}")
    key = str(value).strip().lower()
    for number, (short, full) in enumerate(zip(DAY_NAMES, _FULL_DAY_NAMES)):
        if key in (short, full):
            return number
    raise CalendarError(f"unknown weekday {value!r}; expected one of {', '.join(DAY_NAMES)}")


def _require_aware(name: str, value: dt.datetime) -> None:
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise CalendarError(f"{name} must be a timezone-aware datetime, got {value!r}")


class BusinessCalendar:
    """Working hours in one timezone, with public holidays.

    Parameters
    ----------
    timezone: IANA name, e.g. ``"Europe/Berlin"``.
    working_days: weekdays as names (``"mon"``) or numbers (Monday = 0).
    start, end: daily window as ``"HH:MM"`` (or `datetime.time`); ``end`` may be ``"24:00"``.
    holidays_country: ISO country code for the `holidays` package, or None for no holidays.
    subdiv: optional subdivision (state, province, ``"ENG"``...).
    """

    def __init__(
        self,
        timezone: str,
        working_days: Iterable[int | str],
        start: str | dt.time,
        end: str | dt.time,
        holidays_country: str | None,
        subdiv: str | None = None,
    ) -> None:
        try:
            self.tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CalendarError(f"unknown timezone {timezone!r}") from None
        self.timezone = timezone
        self.working_days = frozenset(parse_weekday(d) for d in working_days)
        if not self.working_days:
            raise CalendarError("a calendar needs at least one working day")
        self.start_minute = parse_clock(start)
        self.end_minute = parse_clock(end)
        if self.end_minute <= self.start_minute:
            raise CalendarError(f"working hours must end after they start, got {start!r}-{end!r}")
        self.holidays_country = holidays_country
        self.subdiv = subdiv
        self._holidays: HolidayBase | None = None
        if holidays_country:
            import holidays  # its country tables load with the first calendar that has holidays

            try:
                self._holidays = holidays.country_holidays(holidays_country, subdiv=subdiv)
            except NotImplementedError:
                raise CalendarError(
                    f"unknown holiday calendar {holidays_country!r}"
                    + (f" subdivision {subdiv!r}" if subdiv else "")
                ) from None
        self._window_cache = lru_cache(maxsize=4096)(self._window_uncached)

    def __repr__(self) -> str:
        days = ",".join(DAY_NAMES[d] for d in sorted(self.working_days))
        return (
            f"BusinessCalendar({self.timezone!r}, {days}, "
            f"{self.start_minute // 60:02d}:{self.start_minute % 60:02d}-"
            f"{self.end_minute // 60:02d}:{self.end_minute % 60:02d}, "
            f"holidays={self.holidays_country!r}, subdiv={self.subdiv!r})"
        )

    # -- days ---------------------------------------------------------------------------------

    def is_holiday(self, day: dt.date) -> bool:
        return self._holidays is not None and day in self._holidays

    def is_working_day(self, day: dt.date) -> bool:
        return day.weekday() in self.working_days and not self.is_holiday(day)

    def window(self, day: dt.date) -> Interval | None:
        """The working window of a local calendar day in UTC, or None on a day off."""
        return self._window_cache(day)

    def _window_uncached(self, day: dt.date) -> Interval | None:
        if not self.is_working_day(day):
            return None
        midnight = dt.datetime.combine(day, dt.time(0), tzinfo=self.tz)
        # Wall-clock arithmetic: adding to an aware datetime keeps the local time of day.
        opens = (midnight + dt.timedelta(minutes=self.start_minute)).astimezone(UTC)
        closes = (midnight + dt.timedelta(minutes=self.end_minute)).astimezone(UTC)
        return opens, closes

    def _windows_from(self, instant: dt.datetime) -> Iterator[Interval]:
        """Working windows (UTC) that end after `instant`, in order, forever."""
        day = instant.astimezone(self.tz).date() - dt.timedelta(days=1)
        idle_days = 0
        while True:
            window = self.window(day)
            day += dt.timedelta(days=1)
            if window is None:
                idle_days += 1
                if idle_days > 366:
                    raise CalendarError(f"{self!r} has no working day in a whole year")
                continue
            idle_days = 0
            if window[1] > instant:
                yield window

    # -- arithmetic ---------------------------------------------------------------------------

    def add_business_minutes(self, start: dt.datetime, minutes: float) -> dt.datetime:
        """The UTC instant `minutes` business minutes after `start`.

        A result that completes exactly at the close of a window is that close (not the next
        opening). `minutes == 0` returns `start` unchanged.
        """
        _require_aware("start", start)
        if minutes < 0:
            raise CalendarError(f"minutes must be >= 0, got {minutes}")
        start = start.astimezone(UTC)
        remaining = dt.timedelta(minutes=minutes)
        if not remaining:
            return start
        for opens, closes in self._windows_from(start):
            begin = max(opens, start)
            available = closes - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        raise AssertionError("unreachable: _windows_from never ends")  # pragma: no cover

    def business_minutes_between(
        self,
        a: dt.datetime,
        b: dt.datetime,
        pauses: Sequence[Interval] = (),
    ) -> float:
        """Business minutes from `a` to `b` (0 when `b <= a`), not counting `pauses`.

        `pauses` are `(from, to)` intervals during which the clock stops (a snoozed case, a case
        waiting on the customer); they may overlap each other and extend outside `[a, b]`.
        """
        _require_aware("a", a)
        _require_aware("b", b)
        a, b = a.astimezone(UTC), b.astimezone(UTC)
        if b <= a:
            return 0.0
        stops = _merge(
            [(max(p0.astimezone(UTC), a), min(p1.astimezone(UTC), b)) for p0, p1 in _checked(pauses)]
        )
        total = dt.timedelta(0)
        for opens, closes in self._windows_from(a):
            if opens >= b:
                break
            lo, hi = max(opens, a), min(closes, b)
            total += hi - lo
            for s0, s1 in stops:
                overlap = min(hi, s1) - max(lo, s0)
                if overlap > dt.timedelta(0):
                    total -= overlap
        return total.total_seconds() / 60.0

    def is_open(self, instant: dt.datetime) -> bool:
        """Is `instant` inside a working window (start inclusive, end exclusive)?"""
        _require_aware("instant", instant)
        instant = instant.astimezone(UTC)
        window = self.window(instant.astimezone(self.tz).date())
        return window is not None and window[0] <= instant < window[1]


def _checked(pauses: Sequence[Interval]) -> Iterator[Interval]:
    for i, (p0, p1) in enumerate(pauses):
        _require_aware(f"pauses[{i}][0]", p0)
        _require_aware(f"pauses[{i}][1]", p1)
        yield p0, p1


def _merge(intervals: list[Interval]) -> list[Interval]:
    """Non-empty intervals merged into disjoint, sorted ones."""
    merged: list[Interval] = []
    for lo, hi in sorted(i for i in intervals if i[1] > i[0]):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged

"""How an SLA clock reads to people: its due time in the reader's time zone, and the business time
left (or overdue) in business days and hours of the team's calendar.

`describe_sla(case, policy, now, pauses, tz=...)` words the one SLA rule
(`models.cases.sla.sla_state`) for the desk's pages, the JSON API, the CLI and the pipeline's
metadata, so a case reads the same everywhere:

| state      | label                                                                          |
|------------|--------------------------------------------------------------------------------|
| due        | `resolution due Tue 8 Dec 15:00 UTC, 5 business days left`                     |
| warning    | `first touch due Mon 7 Dec 09:30 UTC, 1 business day 2 h left`                 |
| breached   | `first touch overdue by 2 business days 3 h (due Fri 4 Dec 17:00 UTC)`         |
| paused     | `resolution clock paused until Mon 7 Dec 09:00 UTC, 3 business days left`      |
| closed     | `closed; resolution SLA met` / `closed; resolution SLA breached`               |

- **The due time** is the rule's `due_at` (a wall-clock instant) shown in the reader's zone
  (`tz`, an IANA name; UTC by default) with the zone's abbreviation; the year is added when it is
  not the year of `now` there.
- **Time left** is the rule's `minutes_left` (business minutes on the team's calendar) in
  business days of that calendar (one business day = its working hours per day: 8 h for
  09:00-17:00), then hours; under a day, hours and minutes. Whole minutes, rounded down. A clock
  without a business calendar (a team the policy does not know, no policy) counts every minute,
  and reads in plain days and hours.
- **Overdue** reads the real amount: the business time past the due time. Less than a business
  minute reads `overdue by under a minute` when the due time is under a minute ago, and
  `overdue since <due>, outside business hours` when it passed outside the calendar's hours
  (nothing has been counted since, but it is not "0 minutes" late). Never "0m".

Pure: no clock is read, nothing is written.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from models.cases.lifecycle import ACTIVE_STATUSES, SNOOZED
from models.cases.sla import BREACHED, PAUSED, WARNING, Pause, SlaState, calendar_of, sla_state
from models.clock import utc_naive
from models.policy.calendar import BusinessCalendar

if TYPE_CHECKING:
    from models.policy.schema import Policy

DEFAULT_TZ = "UTC"
_UTC = dt.timezone.utc


class TimeZoneError(ValueError):
    """A reader's time zone that is not an IANA name (e.g. `Europe/Berlin`)."""


@dataclass(frozen=True)
class SlaText:
    """The running clock of a case as people read it (see the module docstring)."""

    state: str | None  # the rule's state: due, warning, paused, breached, met; None without a target
    clock: str | None  # "first touch", "resolution", or None (closed, or no target)
    due_at: dt.datetime | None  # naive UTC
    minutes_left: float | None  # business minutes when `business_time`, negative once overdue
    business_time: bool
    breached: bool
    near_breach: bool
    paused: bool
    due_text: str  # "Tue 8 Dec 15:00 UTC", "" without a due time
    left_text: str  # "5 business days left", "overdue by 2 business days 3 h", ""
    tz: str
    label: str

    @property
    def business_minutes_left(self) -> float | None:
        return self.minutes_left if self.business_time else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "business_minutes_left": self.business_minutes_left}


def zone(name: str | None) -> ZoneInfo:
    """The reader's zone: an IANA name, UTC when None or empty. Raises TimeZoneError."""
    key = (name or "").strip() or DEFAULT_TZ
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise TimeZoneError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin or "
                            f"America/New_York") from None


def local_time(instant: Any, tz: str | ZoneInfo | None = None, *, now: Any | None = None) -> str:
    """`instant` (naive UTC or aware) in the reader's zone: `Tue 8 Dec 15:00 UTC`; the year is added
    when it differs from the year of `now` there (or always, without `now`: never)."""
    at = utc_naive(instant)
    if at is None:
        return ""
    where = tz if isinstance(tz, ZoneInfo) else zone(tz)
    local = at.replace(tzinfo=_UTC).astimezone(where)
    year = ""
    ref = utc_naive(now) if now is not None else None
    if ref is not None and ref.replace(tzinfo=_UTC).astimezone(where).year != local.year:
        year = f" {local.year}"
    name = "UTC" if where.key in ("UTC", "Etc/UTC") else (local.tzname() or where.key)
    return f"{local:%a} {local.day} {local:%b}{year} {local:%H:%M} {name}"


def day_minutes(calendar: BusinessCalendar) -> int:
    """The length of one business day of `calendar` in minutes (its daily working hours)."""
    return calendar.end_minute - calendar.start_minute


def business_span(minutes: float, calendar: BusinessCalendar, *, business_time: bool = True) -> str:
    """`minutes` (>= 0) as business days and hours of `calendar`: `5 business days`,
    `1 business day 2 h`, `3 business hours 20 min`, `45 business minutes`, `under a minute`; in
    plain days (24 h) and hours without `business_time`: `2 days 3 h`, `3 h 20 min`, `45 min`."""
    total = int(math.floor(abs(minutes) + 1e-9))
    if total < 1:
        return "under a minute"
    per_day = day_minutes(calendar) if business_time else 24 * 60
    days, rest = divmod(total, per_day)
    hours, mins = divmod(rest, 60)
    word = "business " if business_time else ""
    if days:
        return f"{days} {word}day{'s' if days != 1 else ''}" + (f" {hours} h" if hours else "")
    if hours:
        unit = f"{word}hour{'s' if hours != 1 else ''}" if business_time else "h"
        return f"{hours} {unit}" + (f" {mins} min" if mins else "")
    return f"{mins} business minute{'s' if mins != 1 else ''}" if business_time else f"{mins} min"


def word_sla(state: SlaState | None, calendar: BusinessCalendar, *, now: Any, status: str | None,
             snoozed_until: Any = None, tz: str | None = None) -> SlaText:
    """`state` (from `sla_state`, on `calendar`) in words, for a case in `status` at `now`."""
    where = zone(tz)
    key = where.key
    closed = status is not None and status not in ACTIVE_STATUSES
    if state is None:
        return SlaText(None, None, None, None, False, False, False, False, "", "", key,
                       "closed" if closed else "no SLA target")
    clock = state.clock.replace("_", " ")
    due = local_time(state.due_at, where, now=now)
    breached = state.state == BREACHED
    base = dict(state=state.state, clock=clock, due_at=state.due_at, minutes_left=state.minutes_left,
                business_time=state.business_time, breached=breached, due_text=due, tz=key)
    if closed:
        verdict = "breached" if breached else "met"
        return SlaText(**base, near_breach=False, paused=False, left_text="",
                       label=f"closed; {clock} SLA {verdict}")
    left = state.minutes_left

    def span(minutes: float) -> str:
        return business_span(minutes, calendar, business_time=state.business_time)

    if breached:
        at = utc_naive(now)
        late_wall = (at - state.due_at).total_seconds() / 60.0 if at is not None else 0.0
        if -left >= 1:
            left_text = f"overdue by {span(-left)}"
            label = f"{clock} {left_text} (due {due})"
        elif late_wall >= 1:
            left_text = f"overdue since {due}, outside business hours"
            label = f"{clock} {left_text}"
        else:
            left_text = "overdue by under a minute"
            label = f"{clock} {left_text} (due {due})"
    elif state.state == PAUSED:
        left_text = f"{span(max(left, 0.0))} left"
        until = utc_naive(snoozed_until) if status == SNOOZED else None
        label = (f"{clock} clock paused " + (f"until {local_time(until, where, now=now)}" if until else
                                             "(waiting on customer)") + f", {left_text}")
    else:
        left_text = f"{span(max(left, 0.0))} left"
        label = f"{clock} due {due}, {left_text}"
    return SlaText(**base, near_breach=state.state == WARNING, paused=state.state == PAUSED,
                   left_text=left_text, label=label)


def describe_sla(case: Mapping[str, Any], policy: Policy | None, now: Any, pauses: Iterable[Pause] | None = None,
                 *, tz: str | None = None, calendar: BusinessCalendar | None = None) -> SlaText:
    """The running clock of `case` at `now` in words, in the reader's zone `tz` (UTC by default):
    `sla_state` on the case's team calendar, worded by `word_sla`."""
    state = sla_state(case, policy, now, pauses, calendar=calendar)
    cal, _ = calendar_of(case, policy, calendar)
    return word_sla(state, cal, now=now, status=case.get("status"), snoozed_until=case.get("snoozed_until"), tz=tz)


def sla_overview(states: Iterable[str | None], escalated: int = 0) -> str:
    """One sentence on where the open cases stand, from their SLA states (and how many the
    ladder has escalated): `12 open cases: 2 breached, 1 near breach, 3 paused, 6 within their
    SLA; 2 escalated.` Only a queue with no breached, near-breach or escalated case reads
    `every open case is within its SLA`."""
    counts: dict[str | None, int] = {}
    for s in states:
        counts[s] = counts.get(s, 0) + 1
    total = sum(counts.values())
    if total == 0:
        return "No open cases."
    breached, near, paused = counts.get(BREACHED, 0), counts.get(WARNING, 0), counts.get(PAUSED, 0)
    within = total - breached - near - paused
    opened = f"{total} open case{'s' if total != 1 else ''}"
    if not (breached or near or escalated):
        tail = f" ({paused} paused)" if paused else ""
        return f"{opened}: every open case is within its SLA{tail}."
    parts = [f"{n} {word}" for n, word in ((breached, "breached"), (near, "near breach"), (paused, "paused"),
                                          (within, "within their SLA")) if n]
    tail = f"; {escalated} escalated by the ladder" if escalated else ""
    return f"{opened}: {', '.join(parts)}{tail}."

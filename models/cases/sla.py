"""Where a case stands on its SLA clocks: the one rule every view of the queue answers with.

`sla_state(case, policy, now, pauses)` answers, for one clock of one case, one of:

| state      | meaning                                                                       |
|------------|-------------------------------------------------------------------------------|
| `due`      | the clock runs and its due time is ahead                                      |
| `warning`  | the clock runs and has used the policy's pre-breach share of its target       |
| `paused`   | the case is snoozed or waiting on the customer; the clock stands still        |
| `breached` | not done by its due time (running past it, or done after it)                  |
| `met`      | done (touched, resolved) at or before its due time                            |

The rule:

- **Which clock.** First touch until the case is touched (`acknowledged_at`), then resolution; a
  closed case is judged on its resolution clock. A caller may ask for one clock (`clock=`).
- **The target.** The due time routing stored on the case (`sla_first_touch_due`,
  `sla_resolution_due`, computed from the policy's target on the team's business calendar when
  the case was opened). A case without one is measured against the policy's target for its
  priority; with neither, the clock has no target and the answer is None.
- **Business time.** Clocks run on the business calendar of the case's team in the policy
  (working hours, working days, public holidays). Without a policy, or for a team it does not
  know, a `calendar` given by the caller, else the wall clock (every minute counts).
- **Pauses.** Time the case spent paused (snoozed, waiting on the customer: intervals from its
  audit trail, see `paused_intervals`) does not count: it pushes the due time out by the business
  minutes it covered. A snooze ends at its wake-up time even before anyone resumes the case. A
  pause that is still running is assumed to end at `now` (or at the snooze's wake-up time), so
  the due time of a paused case is when it would fall due if work resumed then.
- **Breached** when `now` (or the time the clock was done) is past the due time. A case that
  breached and was paused afterwards stays breached: pauses shift the due time, they never undo
  a breach that happened while the clock ran.
- **Warning** when the clock runs, is not breached, and its elapsed business minutes reached the
  priority's `pre_breach_pct` of the target (the same threshold the ladder's `pre_breach` steps
  use).

Instants in and out are naive UTC (aware values are converted); `due_at` is a wall-clock
instant, `minutes_left` business minutes (negative once overdue).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.cases.lifecycle import PAUSED_STATUSES, SNOOZED, TERMINAL_STATUSES
from models.clock import utc_naive
from models.policy.calendar import BusinessCalendar

if TYPE_CHECKING:  # the clock reads a policy it is given; loading one is the caller's
    from models.policy.schema import Policy

FIRST_TOUCH = "first_touch"
RESOLUTION = "resolution"
CLOCKS: tuple[str, ...] = (FIRST_TOUCH, RESOLUTION)

DUE, WARNING, BREACHED, PAUSED, MET = "due", "warning", "breached", "paused", "met"
SLA_STATES: tuple[str, ...] = (DUE, WARNING, BREACHED, PAUSED, MET)

#: Every minute counts: the clock of cases no policy calendar applies to.
WALL_CLOCK = BusinessCalendar("UTC", range(7), "00:00", "24:00", None)

#: `(paused_at, resumed_at)`, naive UTC; `resumed_at` None while the pause runs.
Pause = tuple[dt.datetime, dt.datetime | None]

_DUE_COLUMN = {FIRST_TOUCH: "sla_first_touch_due", RESOLUTION: "sla_resolution_due"}
_UTC = dt.timezone.utc


class SlaError(ValueError):
    """A case cannot be measured (no opening time, unknown clock)."""


@dataclass(frozen=True)
class SlaState:
    """One clock of one case at one instant (see the module docstring)."""

    state: str
    clock: str
    due_at: dt.datetime
    minutes_left: float
    elapsed_minutes: float
    target_minutes: float
    business_time: bool
    done_at: dt.datetime | None = None
    pre_breach_pct: float | None = None

    @property
    def breached(self) -> bool:
        return self.state == BREACHED

    @property
    def paused(self) -> bool:
        return self.state == PAUSED

    @property
    def done(self) -> bool:
        return self.done_at is not None

    def reached(self, pct: float) -> bool:
        """Has the clock reached `pct` percent of its target? 100 is the breach itself."""
        if pct == 100:
            return self.breached
        return self.elapsed_minutes >= self.target_minutes * pct / 100.0


def sla_state(
    case: Mapping[str, Any],
    policy: Policy | None,
    now: Any,
    pauses: Iterable[Pause] | None = None,
    *,
    clock: str | None = None,
    calendar: BusinessCalendar | None = None,
) -> SlaState | None:
    """Where `case` stands on its running clock (or on `clock`) at `now`; None without a target.

    `case` is a queue row (status, team, priority, opened_at, acknowledged_at or first_touch_at,
    resolved_at, sla_first_touch_due, sla_resolution_due, snoozed_until); `pauses` its paused
    intervals (`paused_intervals`). See the module docstring for the rule.
    """
    at = _time(now)
    if at is None:
        raise SlaError(f"now must be an instant, got {now!r}")
    status = case.get("status")
    terminal = status in TERMINAL_STATUSES
    touched = _time(case.get("acknowledged_at"))
    if touched is None:
        touched = _time(case.get("first_touch_at"))
    resolved = _time(case.get("resolved_at"))
    if clock is None:
        clock = RESOLUTION if (terminal or touched is not None or resolved is not None) else FIRST_TOUCH
    if clock not in CLOCKS:
        raise SlaError(f"unknown SLA clock {clock!r}; expected one of: {', '.join(CLOCKS)}")
    done = touched if clock == FIRST_TOUCH else resolved
    if clock == FIRST_TOUCH and done is None:
        done = resolved  # closed before anyone touched it: the clock stopped then
    if done is None and terminal:
        return None  # a closed case without a closing time cannot be judged

    priority = case.get("priority")
    target_of_policy = _policy_target(policy, priority, clock)
    stored_due = _time(case.get(_DUE_COLUMN[clock]))
    if stored_due is None and target_of_policy is None:
        return None
    opened = _time(case.get("opened_at"))
    if opened is None:
        raise SlaError(f"case {case.get('case_id')!r} has no opened_at: its SLA clocks cannot be measured")

    cal, business = calendar_of(case, policy, calendar)
    horizon = max(done if done is not None else at, opened)
    wake = _time(case.get("snoozed_until")) if status == SNOOZED else None
    spans = _normalized(pauses or (), wake)

    counted = [(a, min(b, horizon) if b is not None else horizon) for a, b in spans if a < horizon]
    elapsed = cal.business_minutes_between(_aware(opened), _aware(horizon), [(_aware(a), _aware(b)) for a, b in counted])
    if stored_due is not None:
        target = cal.business_minutes_between(_aware(opened), _aware(stored_due))
    else:
        target = float(target_of_policy)  # type: ignore[arg-type]
    resumes = [(a, b if b is not None else max(horizon, a)) for a, b in spans]
    due_at = _due_instant(cal, opened, target, resumes, stored_due)
    pct = _pre_breach_pct(policy, priority)

    if done is not None:
        state = MET if done <= due_at else BREACHED
    elif at >= due_at:
        state = BREACHED
    elif _paused_at(at, spans, status, wake):
        state = PAUSED
    elif pct is not None and elapsed >= target * pct / 100.0:
        state = WARNING
    else:
        state = DUE
    return SlaState(state=state, clock=clock, due_at=due_at, minutes_left=target - elapsed,
                    elapsed_minutes=elapsed, target_minutes=target, business_time=business,
                    done_at=done, pre_breach_pct=pct)


def paused_intervals(events: Iterable[Mapping[str, Any]], *, now: Any | None = None,
                     snoozed_until: Any | None = None) -> list[Pause]:
    """The intervals a case spent paused, from its audit trail (oldest event first).

    `events` are `case_events` rows with `at`, `from_status` and `to_status` (others are
    ignored). A pause starts when the case enters a paused status and ends when it leaves them;
    snoozed -> waiting_customer and back is one pause. The last pause is open-ended (None) while
    it runs, except that a snooze whose wake-up time (`snoozed_until`, the case's current one)
    has passed at `now` ends at that time.
    """
    intervals: list[Pause] = []
    started: dt.datetime | None = None
    status: str | None = None
    for event in events:
        to_status = event.get("to_status")
        if to_status is None:
            continue
        was, paused = event.get("from_status") in PAUSED_STATUSES, to_status in PAUSED_STATUSES
        at = _time(event.get("at"))
        if paused and not was:
            started = at
        elif was and not paused and started is not None:
            intervals.append((started, at))
            started = None
        status = to_status
    if started is not None:
        wake, at = _time(snoozed_until), _time(now)
        if status == SNOOZED and wake is not None and at is not None and wake <= at:
            intervals.append((started, max(wake, started)))  # the snooze is over: the clocks run again
        else:
            intervals.append((started, None))
    return intervals


def status_before_snooze(events: Sequence[Mapping[str, Any]], default: str) -> str:
    """The status a snoozed case had before its current snooze (from its audit trail)."""
    for event in reversed(events):
        if event.get("to_status") == SNOOZED and event.get("from_status") not in (None, SNOOZED):
            return str(event["from_status"])
    return default


# ---------------------------------------------------------------------------------------------


def _due_instant(cal: BusinessCalendar, opened: dt.datetime, target: float, pauses: Sequence[tuple[dt.datetime, dt.datetime]],
                 stored_due: dt.datetime | None) -> dt.datetime:
    """The instant `target` business minutes of running clock after `opened` (pauses skipped)."""
    cursor, remaining, shifted = opened, target, False
    for p0, p1 in _merged(pauses):
        if p1 <= cursor:
            continue
        if p0 > cursor:
            available = cal.business_minutes_between(_aware(cursor), _aware(p0))
            if remaining <= available:
                break
            remaining -= available
        if cal.business_minutes_between(_aware(max(cursor, p0)), _aware(p1)) > 0:
            shifted = True
        cursor = max(cursor, p1)
    if not shifted and stored_due is not None:
        return stored_due  # nothing paused before it: the due time routing stored stands
    return _naive(cal.add_business_minutes(_aware(cursor), max(remaining, 0.0)))


def _paused_at(at: dt.datetime, spans: Sequence[Pause], status: Any, wake: dt.datetime | None) -> bool:
    """Is the clock standing still at `at`? (A snooze whose wake-up time passed is over.)"""
    if any(a <= at and (b is None or b > at) for a, b in spans):
        return True
    return status in PAUSED_STATUSES and (wake is None or wake > at) and not spans

def _normalized(pauses: Iterable[Pause], wake: dt.datetime | None) -> list[Pause]:
    """Pauses as naive UTC, sorted; an open-ended one on a snoozed case ends at its wake-up time."""
    out: list[Pause] = []
    for start, end in pauses:
        a, b = _time(start), _time(end)
        if a is None:
            continue
        if b is None and wake is not None:
            b = max(wake, a)
        out.append((a, b))
    return sorted(out, key=lambda p: p[0])


def _merged(pauses: Sequence[tuple[dt.datetime, dt.datetime]]) -> list[tuple[dt.datetime, dt.datetime]]:
    merged: list[tuple[dt.datetime, dt.datetime]] = []
    for lo, hi in sorted(p for p in pauses if p[1] > p[0]):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def calendar_of(case: Mapping[str, Any], policy: Policy | None,
                calendar: BusinessCalendar | None = None) -> tuple[BusinessCalendar, bool]:
    """The calendar a case's clocks run on, and whether it is business time (not the wall clock):
    its team's in the policy, else `calendar`, else `WALL_CLOCK`."""
    team = case.get("team")
    if policy is not None and isinstance(team, str) and team in policy.teams:
        return policy.team_calendar(team), True
    if calendar is not None:
        return calendar, True
    return WALL_CLOCK, False


def _policy_target(policy: Policy | None, priority: Any, clock: str) -> float | None:
    if policy is None or not isinstance(priority, str) or priority not in policy.sla:
        return None
    target = policy.sla[priority]  # type: ignore[index]
    return float(target.first_touch_minutes if clock == FIRST_TOUCH else target.resolution_minutes)


def _pre_breach_pct(policy: Policy | None, priority: Any) -> float | None:
    if policy is None or not isinstance(priority, str) or priority not in policy.sla:
        return None
    return float(policy.sla[priority].pre_breach_pct)  # type: ignore[index]


def _time(value: Any) -> dt.datetime | None:
    try:
        return utc_naive(value)
    except TypeError:
        return None


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=_UTC)


def _naive(value: dt.datetime) -> dt.datetime:
    return value.astimezone(_UTC).replace(tzinfo=None)

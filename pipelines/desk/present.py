"""How the desk shows the queue: SLA countdowns, breach states, figures and the usage sparkline.

Pure functions over case rows (as the queue store returns them) and the escalation policy; the
pages and the JSON API both use them, so a countdown reads the same everywhere.

Where a case stands on its SLA clock is `models.cases.sla.sla_state`, the rule the CLI, the
breaching filter, the ladder and the metrics use too; this module only words it. Countdowns are in
business time when the case's team has a calendar in the policy, wall-clock time otherwise. A
case is *near breach* in the rule's `warning` state: its running clock has used the policy's
pre-breach share of the target (e.g. with `pre_breach_pct: 75`, the last 25% of the clock).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from markupsafe import Markup, escape

from models.cases.lifecycle import ACTIVE_STATUSES, SNOOZED
from models.cases.sla import BREACHED, PAUSED, WARNING, Pause, sla_state
from models.policy.schema import Policy

PRIORITY_ORDER: dict[str, int] = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}


@dataclass(frozen=True)
class SlaStatus:
    """Where a case stands on its running SLA clock."""

    clock: str | None  # "first touch", "resolution", or None (closed, or no target)
    due_at: datetime | None
    minutes_left: float | None  # business minutes when `business_time`, negative once breached
    business_time: bool
    breached: bool
    near_breach: bool
    paused: bool
    label: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def value(v: Any) -> Any:
    """None for NaN / NaT / NA, the value otherwise (frames give NaN where the database had NULL)."""
    if v is None or isinstance(v, (list, dict, tuple)):
        return v
    try:
        return None if pd.isna(v) else v
    except (TypeError, ValueError):
        return v


def as_datetime(v: Any) -> datetime | None:
    v = value(v)
    if v is None:
        return None
    stamp = pd.Timestamp(v)
    return (stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp).to_pydatetime()


def duration(minutes: float) -> str:
    """`3h 10m`, `2d 4h`, `45m` (whole minutes, rounded towards zero)."""
    total = int(abs(minutes))
    days, rest = divmod(total, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins:02d}m"
    return f"{mins}m"


def money(v: Any) -> str:
    v = value(v)
    return "" if v is None else f"{float(v):,.0f}"


def pct(v: Any, digits: int = 0) -> str:
    v = value(v)
    return "" if v is None else f"{float(v):.{digits}%}"


def when(v: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    stamp = as_datetime(v)
    return "" if stamp is None else stamp.strftime(fmt)


def sla_status(case: Mapping[str, Any], policy: Policy, now: datetime,
               pauses: Iterable[Pause] | None = None) -> SlaStatus:
    """The running clock of a case as the desk shows it: `models.cases.sla.sla_state`, worded.
    A closed case shows whether its resolution clock was met or breached."""
    state = sla_state(case, policy, now, pauses)
    closed = case["status"] not in ACTIVE_STATUSES
    if state is None:
        return SlaStatus(None, None, None, False, False, False, False, "closed" if closed else "no SLA target")
    clock = state.clock.replace("_", " ")
    if closed:
        verdict = "breached" if state.state == BREACHED else "met"
        return SlaStatus(clock, state.due_at, state.minutes_left, state.business_time, state.state == BREACHED,
                         False, False, f"closed; {clock} SLA {verdict}")
    business = " (business time)" if state.business_time else ""
    left = state.minutes_left
    if state.state == BREACHED:
        label = f"{clock} overdue by {duration(-left)}{business}"
    elif state.state == PAUSED:
        until = as_datetime(case.get("snoozed_until")) if case["status"] == SNOOZED else None
        label = f"{clock} clock paused" + (f" until {until:%Y-%m-%d %H:%M} UTC" if until else " (waiting on customer)") \
            + f", {duration(left)} left"
    else:
        label = f"{clock} due in {duration(left)}{business}"
    return SlaStatus(clock, state.due_at, left, state.business_time, state.state == BREACHED,
                     state.state == WARNING, state.state == PAUSED, label)


def sort_queue(cases: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Priority first, then the due time of the running clock (none last), then case id."""
    if cases.empty:
        return cases
    acked = cases["acknowledged_at"].notna()
    due = pd.to_datetime(cases["sla_resolution_due"].where(acked, cases["sla_first_touch_due"]))
    order = cases.assign(
        _p=cases["priority"].map(PRIORITY_ORDER).fillna(99),
        _due=due.fillna(pd.Timestamp.max),
    ).sort_values(["_p", "_due", "case_id"], kind="stable")
    return order.drop(columns=["_p", "_due"])


def segment_of(case: Mapping[str, Any]) -> str | None:
    account = (value(case.get("context")) or {}).get("account") or {}
    return account.get("segment")


def sparkline_svg(values: Sequence[float], *, width: int = 240, height: int = 48,
                  label: str = "weekly active users") -> Markup:
    """An inline SVG line chart of `values` (oldest first) with the last point marked."""
    points = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if len(points) < 2:
        return Markup('<p class="muted">Not enough usage history for a trend.</p>')
    pad = 4
    top, bottom = max(points), min(points)
    span = (top - bottom) or 1.0
    step = (width - 2 * pad) / (len(points) - 1)
    xy = [(pad + i * step, pad + (top - p) / span * (height - 2 * pad)) for i, p in enumerate(points)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    falling = points[-1] < points[0]
    last_x, last_y = xy[-1]
    title = f"{label}: {points[0]:.1f} to {points[-1]:.1f} over {len(points)} weeks"
    return Markup(
        f'<svg class="spark {"down" if falling else "up"}" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<polyline fill="none" stroke-width="2" points="{path}"/>'
        f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="3"/></svg>'
    )



"""How the desk shows the queue: SLA countdowns, breach states, figures and the usage sparkline.

Pure functions over case rows (as the queue store returns them) and the escalation policy; the
pages and the JSON API both use them, so a countdown reads the same everywhere.

Where a case stands on its SLA clock is `models.cases.sla.sla_state`, the rule the CLI, the
breaching filter, the ladder and the metrics use too, and its words are
`models.cases.sla_text.describe_sla` (the due time in the reader's zone, business days and hours
left on the team's calendar); the order is `models.cases.ordering`. A case is *near breach* in
the rule's `warning` state: its running clock has used the policy's pre-breach share of the
target (e.g. with `pre_breach_pct: 75`, the last 25% of the clock).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from markupsafe import Markup, escape

from models.cases import ordering
from models.cases.sla import Pause
from models.cases.sla_text import SlaText, describe_sla
from models.policy.schema import Policy

PRIORITY_ORDER: dict[str, int] = ordering.PRIORITY_RANK


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
               pauses: Iterable[Pause] | None = None, *, tz: str | None = None) -> SlaText:
    """The running clock of a case as the desk shows it, in the reader's zone `tz`:
    `models.cases.sla_text.describe_sla` (the one rule, worded once for every view)."""
    return describe_sla(case, policy, now, pauses, tz=tz)


def sort_queue(cases: pd.DataFrame) -> pd.DataFrame:
    """The queue's one order (`models.cases.ordering.sort_queue`); `cases` carry the SLA columns."""
    return ordering.sort_queue(cases)


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



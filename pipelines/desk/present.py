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
from dataclasses import dataclass
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


def overflow_cause_text(cause: str | None) -> str:
    """Why an overflow account got no case, in words (`models.routing.decisions.OVERFLOW_CAUSES`)."""
    from models.routing.decisions import OVERFLOW_CAUSES

    return OVERFLOW_CAUSES.get(cause or "", "not routed")


def signed(v: Any, *, scale: float = 1.0, digits: int = 0, unit: str = "") -> str:
    """A change as shown: `v * scale` rounded to `digits`, signed only when it is not zero after
    rounding ("+12", "-3", "0"; never "-0" nor "+0"), then `unit`; "" when there is none."""
    v = value(v)
    if v is None:
        return ""
    shown = round(float(v) * scale, digits)
    if shown == 0:
        return f"{0:.{digits}f}{unit}"
    return f"{shown:+.{digits}f}{unit}"


def sign_of(v: Any, *, scale: float = 1.0, digits: int = 0) -> int:
    """-1, 0 or 1: the sign of the change `signed` shows (0 when it rounds to zero)."""
    v = value(v)
    if v is None:
        return 0
    shown = round(float(v) * scale, digits)
    return (shown > 0) - (shown < 0)


@dataclass(frozen=True)
class Bar:
    """One labelled bar of the case page: what it measures, its value in words, how full it is
    (0-100) and which way is good (`kind`: "health" fills with health, "risk" with risk)."""

    key: str
    label: str
    text: str
    fill: float
    kind: str


#: What each health component measures, as the case page labels its bar.
COMPONENT_LABELS: dict[str, str] = {"usage": "Usage health", "support": "Support health",
                                    "relationship": "Relationship health"}


def health_bars(components: Mapping[str, Any] | None, churn_risk: Any) -> list[Bar]:
    """The case page's bars: each rules component of the health score as health points (0-100,
    fuller is healthier), and the model's part as what it is, the churn risk (fuller is riskier;
    the `model_risk` component is 100 at no risk and 0 at `RISK_AT_ZERO_HEALTH` or more, so an
    empty health bar there would read as "no risk" when it means the opposite)."""
    bars = []
    for key, points in (components or {}).items():
        if key == "model_risk":
            continue
        points = value(points)
        fill = 0.0 if points is None else min(100.0, max(0.0, float(points)))
        bars.append(Bar(key, COMPONENT_LABELS.get(key, f"{key.replace('_', ' ').capitalize()} health"),
                        "" if points is None else f"{fill:.0f} / 100", fill, "health"))
    risk = value(churn_risk)
    if risk is not None or "model_risk" in (components or {}):
        fill = 0.0 if risk is None else min(100.0, max(0.0, 100.0 * float(risk)))
        bars.append(Bar("churn_risk", "Churn risk (model)", "" if risk is None else f"{fill:.0f}%", fill, "risk"))
    return bars


def axis_number(v: float) -> str:
    """A chart label: whole numbers from 100 up, else one decimal (two below 1), without a
    trailing zero ("42", "24.5", "0.14", "0")."""
    if abs(v) >= 100:
        return f"{v:,.0f}"
    text = f"{v:.1f}" if abs(v) >= 1 else f"{v:.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def sparkline_svg(values: Sequence[float], *, width: int = 220, height: int = 90,
                  label: str = "weekly active users", unit: str = "week") -> Markup:
    """An inline SVG line chart of `values` (oldest first, one per `unit`) on a scale from 0 to
    the largest value, with the y axis labelled (0 and the maximum) and the first and last values
    written, so a flat or tiny series (0.1 users) reads as a value, not as a broken chart. The first value is written under the x axis's
    start, the last beside its point. Scales with its box (no fixed pixel width)."""
    points = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if len(points) < 2:
        return Markup('<p class="muted">Not enough usage history for a trend.</p>')
    left, right, top_pad, bottom_pad = 34, 40, 10, 18
    top = max(max(points), 0.0) or 1.0
    plot_w, plot_h = width - left - right, height - top_pad - bottom_pad
    step = plot_w / (len(points) - 1)
    xy = [(left + i * step, top_pad + (1 - max(p, 0.0) / top) * plot_h) for i, p in enumerate(points)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    falling = points[-1] < points[0]
    (first_x, first_y), (last_x, last_y) = xy[0], xy[-1]
    base = top_pad + plot_h
    title = (f"{label}: {axis_number(points[0])} to {axis_number(points[-1])} over {len(points)} {unit}s "
             f"(highest {axis_number(max(points))})")
    text = 'font-size="10" fill="currentColor"'
    return Markup(
        f'<svg class="spark {"down" if falling else "up"}" role="img" viewBox="0 0 {width} {height}" '
        f'preserveAspectRatio="xMinYMin meet" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<line class="axis" x1="{left}" y1="{top_pad}" x2="{left}" y2="{base:.1f}"/>'
        f'<line class="axis" x1="{left}" y1="{base:.1f}" x2="{left + plot_w}" y2="{base:.1f}"/>'
        f'<text class="y-max" x="{left - 4}" y="{top_pad + 4}" text-anchor="end" {text}>{axis_number(top)}</text>'
        f'<text class="y-min" x="{left - 4}" y="{base:.1f}" text-anchor="end" {text}>0</text>'
        f'<polyline fill="none" stroke-width="2" points="{path}"/>'
        f'<circle cx="{first_x:.1f}" cy="{first_y:.1f}" r="2.5"/><circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="3"/>'
        f'<text class="last" x="{last_x + 5:.1f}" y="{last_y + 4:.1f}" {text}>{axis_number(points[-1])}</text>'
        f'<text x="{left}" y="{height - 4}" {text}>{len(points)} {unit}s ago: '
        f'<tspan class="first">{axis_number(points[0])}</tspan></text>'
        f'<text x="{left + plot_w}" y="{height - 4}" text-anchor="end" {text}>last {unit}</text></svg>'
    )

"""Queue-operations metrics: how fast the rescue team touches and resolves cases, and how often
cases meet their SLAs or bounce between teams.

`queue_metrics(cases, events, now=...)` reads the queue store's `rescue_cases` and `case_events`
tables (as frames) and measures every case:

- **first touch**: `acknowledged_at`, or else the first audit event that moved the case out of
  `open` (a claim, an acknowledgement, a triage close);
- **resolution**: `resolved_at`, or else the first audit event that moved it to a terminal status;
- **SLA state** of each clock, by `models.cases.sla.sla_state` (the rule the desk, the CLI, the
  breaching filter and the ladder use: business time on the team's calendar when `calendars` is
  given, paused time not counted): `met` (done at or before the due time), `breached` (done after
  it, or not done and already past it at `now`), `pending` (not done, not yet due: running,
  near breach or paused) or `no_target` (no due time on the case). Attainment is met / (met + breached) and the breach rate its
  complement: a case still inside its clock counts for neither yet;
- **reassignments**: hand-offs (`handoff` events) and SLA escalations that moved the case to
  another team (`escalated` events whose payload action is `reassign`). A case with two or more
  has bounced.

Durations are hours from opening; wall-clock hours by default, business hours when `calendars`
maps each team to its `BusinessCalendar`. A case counts for the team it was routed to (the team
before its first reassignment), in the ISO week it was opened.

Optionally, holdout accounts from the routing log and their later outcomes give the save rate of
treated vs held-out accounts, with the experiment's definition of the two arms
(`models.experiment.outcomes.arm_save_rates`: each account once, in the arm of its first
decision), so the headline agrees with the `play_effectiveness` asset, which measures the effect
of the plays with confidence intervals (`models.experiment.effectiveness`).

`charts(metrics)` draws SLA attainment per team and week and the time-to-first-touch
distribution as PNG bytes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from models.charts import figure_png
import pandas as pd
from matplotlib.figure import Figure

from models.clock import naive_utc_series
from models.experiment.outcomes import SAVE_RATE_COLUMNS, arm_save_rates, rescue_outcome_frame
from models.policy.calendar import BusinessCalendar
from models.cases.lifecycle import OPEN, SNOOZED, TERMINAL_STATUSES
from models.cases.sla import BREACHED, FIRST_TOUCH, MET, RESOLUTION, WALL_CLOCK, paused_intervals, sla_state

CASE_COLUMNS: tuple[str, ...] = (
    "case_id", "team", "priority", "opened_at", "acknowledged_at", "resolved_at",
    "sla_first_touch_due", "sla_resolution_due",
)
EVENT_COLUMNS: tuple[str, ...] = ("case_id", "at", "kind", "from_status", "to_status", "payload")

#: Audit-event kinds that always move a case to another team or person.
HANDOFF_KINDS: frozenset[str] = frozenset({"handoff"})
#: Audit-event kind of an SLA ladder step; it moves the case when its payload action is reassign.
ESCALATION_KIND = "escalated"

SLA_STATES: tuple[str, ...] = ("met", "breached", "pending", "no_target")
#: A case with at least this many reassignments has bounced between teams.
BOUNCE_THRESHOLD = 2

#: Columns of `QueueMetrics.weekly` and `QueueMetrics.overall` after their group keys.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "cases_opened",
    "first_touched",
    "first_touch_median_h",
    "first_touch_p90_h",
    "resolved",
    "resolution_median_h",
    "resolution_p90_h",
    "first_touch_attainment",
    "first_touch_breach_rate",
    "resolution_attainment",
    "resolution_breach_rate",
    "reassignments",
    "bounced_cases",
    "bounced_share",
)

class QueueMetricsError(ValueError):
    """The frames cannot be measured (missing column, unknown team calendar, bad outcome)."""


@dataclass(frozen=True)
class QueueMetrics:
    """Queue-operations metrics at `now`.

    - `cases`: one row per case: case_id, team (routed to), current_team, priority, week (ISO,
      e.g. ``2026-W03``), opened_at, first_touch_at, resolved_at, hours_to_first_touch,
      hours_to_resolution, first_touch_sla, resolution_sla (one of `SLA_STATES`), reassignments;
    - `weekly`: one row per team x priority x week with `SUMMARY_COLUMNS`;
    - `overall`: the same per team x priority over the whole period;
    - `save_rates`: one row per arm (treated, holdout): accounts, saved, churned, save_rate;
      empty when no holdout was given.
    """

    now: pd.Timestamp
    business_hours: bool
    cases: pd.DataFrame
    weekly: pd.DataFrame
    overall: pd.DataFrame
    save_rates: pd.DataFrame


def queue_metrics(
    cases: pd.DataFrame,
    events: pd.DataFrame,
    *,
    now: dt.datetime | pd.Timestamp,
    calendars: Mapping[str, BusinessCalendar] | None = None,
    holdout: pd.DataFrame | None = None,
    outcomes: pd.DataFrame | None = None,
) -> QueueMetrics:
    """Measure the queue at `now`.

    `cases` has the `rescue_cases` columns in `CASE_COLUMNS` (account_id and status are needed
    only for save rates; evidence, when present, dates each case's decision); `events` has the `case_events` columns in `EVENT_COLUMNS` (payload a
    mapping or its JSON text). Timestamps are naive UTC or timezone-aware.

    `calendars` maps every team key to its business calendar (e.g. ``{t: policy.team_calendar(t)
    for t in policy.teams}``); durations are then business hours.

    `holdout` holds routing-log rows (account_id, action, optionally snapshot_date); rows with
    action ``holdout`` are the control group. `outcomes` (account_id, outcome ``saved`` |
    ``churned``, optionally held_out_at) says what became of held-out accounts; treated accounts
    take the outcome of their first case. An account counts once, in the arm of its first decision
    (`models.experiment.outcomes`).
    """
    _require(cases, CASE_COLUMNS, "cases")
    _require(events, EVENT_COLUMNS, "events")
    at = _naive_utc_scalar(now, "now")
    frame = cases.reset_index(drop=True)
    for column in ("opened_at", "acknowledged_at", "resolved_at", "sla_first_touch_due", "sla_resolution_due"):
        frame[column] = _naive_utc(frame[column], column)
    if frame["opened_at"].isna().any():
        missing = frame.loc[frame["opened_at"].isna(), "case_id"].astype(str).head(5).tolist()
        raise QueueMetricsError(f"cases: opened_at is missing for case(s) {', '.join(missing)}")
    frame["case_id"] = frame["case_id"].astype(str)
    ev = events.copy()
    ev["case_id"] = ev["case_id"].astype(str)
    ev["at"] = _naive_utc(ev["at"], "at")
    ev = ev.sort_values(["at"], kind="stable")

    per_case = _per_case(frame, ev, at, calendars)
    weekly = _summarize(per_case, ["team", "priority", "week"])
    overall = _summarize(per_case, ["team", "priority"])
    save_rates = _save_rates(frame, holdout, outcomes)
    return QueueMetrics(now=at, business_hours=calendars is not None, cases=per_case, weekly=weekly,
                        overall=overall, save_rates=save_rates)


# ------------------------------------------------------------------------------------ per case


def _per_case(
    cases: pd.DataFrame,
    events: pd.DataFrame,
    now: pd.Timestamp,
    calendars: Mapping[str, BusinessCalendar] | None,
) -> pd.DataFrame:
    left_open = events[(events["from_status"] == OPEN) & (events["to_status"].fillna(OPEN) != OPEN)]
    first_left_open = left_open.groupby("case_id")["at"].min()
    terminal = events[events["to_status"].isin(TERMINAL_STATUSES)]
    first_terminal = terminal.groupby("case_id")["at"].min()

    payloads = events["payload"].map(_payload)
    moves = events["kind"].isin(HANDOFF_KINDS) | (
        (events["kind"] == ESCALATION_KIND) & (payloads.map(lambda p: p.get("action")) == "reassign")
    )
    move_events = events.loc[moves, ["case_id"]].assign(from_team=payloads[moves].map(lambda p: p.get("from_team")))
    reassignments = move_events.groupby("case_id").size()
    routed_team = move_events.dropna(subset=["from_team"]).groupby("case_id")["from_team"].first()

    ids = cases["case_id"]
    out = pd.DataFrame({
        "case_id": ids.to_numpy(),
        "team": _lookup(routed_team, ids).fillna(cases["team"]).astype(str),
        "current_team": cases["team"].astype(str).to_numpy(),
        "priority": cases["priority"].astype(str).to_numpy(),
    })
    out["opened_at"] = cases["opened_at"].to_numpy()
    out["week"] = _iso_week(out["opened_at"])
    out["first_touch_at"] = cases["acknowledged_at"].fillna(_lookup(first_left_open, ids))
    out["resolved_at"] = cases["resolved_at"].fillna(_lookup(first_terminal, ids))
    out["hours_to_first_touch"] = _hours(out, "first_touch_at", calendars)
    out["hours_to_resolution"] = _hours(out, "resolved_at", calendars)
    out["first_touch_sla"], out["resolution_sla"] = _sla_states(out, cases, events, now, calendars)
    out["reassignments"] = _lookup(reassignments, ids).fillna(0).astype(int)
    return out


def _lookup(values: pd.Series, keys: pd.Series) -> pd.Series:
    """`values[key]` for every key (missing keys give NaN/NaT), on the 0..n-1 index of the cases."""
    return values.reindex(keys.to_numpy()).reset_index(drop=True)


def _payload(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise QueueMetricsError(f"events: payload is not JSON ({exc}): {value[:80]!r}") from None
        if isinstance(parsed, Mapping):
            return parsed
    return {}


def _iso_week(stamps: pd.Series) -> pd.Series:
    iso = stamps.dt.isocalendar()
    return iso["year"].astype(str) + "-W" + iso["week"].astype(int).map("{:02d}".format)


def _hours(frame: pd.DataFrame, end_column: str, calendars: Mapping[str, BusinessCalendar] | None) -> pd.Series:
    start, end = frame["opened_at"], frame[end_column]
    if calendars is None:
        return (end - start).dt.total_seconds() / 3600.0
    unknown = sorted(set(frame["team"]) - set(calendars))
    if unknown:
        raise QueueMetricsError(
            f"no business calendar for team(s) {', '.join(unknown)}; calendars given for: "
            f"{', '.join(sorted(calendars)) or 'none'}"
        )
    hours = [
        np.nan if pd.isna(b) else calendars[team].business_minutes_between(
            a.tz_localize("UTC").to_pydatetime(), b.tz_localize("UTC").to_pydatetime()) / 60.0
        for team, a, b in zip(frame["team"], start, end)
    ]
    return pd.Series(hours, index=frame.index, dtype=float)


def _sla_states(out: pd.DataFrame, cases: pd.DataFrame, events: pd.DataFrame, now: pd.Timestamp,
                calendars: Mapping[str, BusinessCalendar] | None) -> tuple[list[str], list[str]]:
    """Each case's first-touch and resolution SLA state by `models.cases.sla.sla_state` (the rule
    the queue's views use), folded into met / breached / pending / no_target."""
    trails = {case_id: part.to_dict("records") for case_id, part in
              events[["case_id", "at", "from_status", "to_status"]].groupby("case_id", sort=False)}
    at = now.to_pydatetime()
    first, resolution = [], []
    for i, row in enumerate(cases.to_dict("records")):
        status = row.get("status") if isinstance(row.get("status"), str) else None
        wake = row.get("snoozed_until") if status == SNOOZED else None
        case = {**row, "status": status, "acknowledged_at": out.at[i, "first_touch_at"],
                "resolved_at": out.at[i, "resolved_at"], "snoozed_until": wake}
        pauses = paused_intervals(trails.get(row["case_id"], []), now=at, snoozed_until=wake)
        calendar = (calendars or {}).get(str(row["team"]), WALL_CLOCK)
        for clock, column in ((FIRST_TOUCH, first), (RESOLUTION, resolution)):
            state = sla_state(case, None, at, pauses, clock=clock, calendar=calendar)
            column.append("no_target" if state is None else
                          state.state if state.state in (MET, BREACHED) else "pending")
    return first, resolution


# ----------------------------------------------------------------------------------- summaries


def _summarize(per_case: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if per_case.empty:
        return pd.DataFrame(columns=[*keys, *SUMMARY_COLUMNS])
    rows = []
    for group, part in per_case.groupby(keys, sort=True):
        touch = part["hours_to_first_touch"].dropna()
        resolution = part["hours_to_resolution"].dropna()
        bounced = int((part["reassignments"] >= BOUNCE_THRESHOLD).sum())
        rows.append({
            **dict(zip(keys, group)),
            "cases_opened": len(part),
            "first_touched": len(touch),
            "first_touch_median_h": _quantile(touch, 0.5),
            "first_touch_p90_h": _quantile(touch, 0.9),
            "resolved": len(resolution),
            "resolution_median_h": _quantile(resolution, 0.5),
            "resolution_p90_h": _quantile(resolution, 0.9),
            **_attainment(part["first_touch_sla"], "first_touch"),
            **_attainment(part["resolution_sla"], "resolution"),
            "reassignments": int(part["reassignments"].sum()),
            "bounced_cases": bounced,
            "bounced_share": bounced / len(part),
        })
    return pd.DataFrame(rows, columns=[*keys, *SUMMARY_COLUMNS])


def _quantile(values: pd.Series, q: float) -> float:
    """The q-quantile (linear interpolation between order statistics), NaN for no values."""
    return float(np.quantile(values.to_numpy(dtype=float), q)) if len(values) else float("nan")


def _attainment(states: pd.Series, clock: str) -> dict[str, float]:
    met, breached = int((states == "met").sum()), int((states == "breached").sum())
    decided = met + breached
    return {
        f"{clock}_attainment": met / decided if decided else float("nan"),
        f"{clock}_breach_rate": breached / decided if decided else float("nan"),
    }


def _save_rates(cases: pd.DataFrame, holdout: pd.DataFrame | None, outcomes: pd.DataFrame | None) -> pd.DataFrame:
    """Treated vs holdout save rates, with the experiment's units (`models.experiment.outcomes`):
    each account once, in the arm of its first decision, so this agrees with `play_effectiveness`."""
    if holdout is None:
        return pd.DataFrame(columns=SAVE_RATE_COLUMNS)
    if outcomes is None:
        raise QueueMetricsError("holdout given without outcomes: the held-out accounts' outcomes are needed")
    _require(cases, ("account_id", "status"), "cases")
    _require(holdout, ("account_id", "action"), "holdout")
    _require(outcomes, ("account_id", "outcome"), "outcomes")
    unknown = sorted(set(outcomes["outcome"].dropna().astype(str)) - {"saved", "churned"})
    if unknown:
        raise QueueMetricsError(f"outcomes: unknown outcome(s) {', '.join(unknown)}; expected saved or churned")
    log = _dated(holdout, ("snapshot_date",))
    known = _dated(outcomes.dropna(subset=["outcome"]), ("held_out_at", "renewal_date"))
    return arm_save_rates(rescue_outcome_frame(cases, None, log, known))


def _dated(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """`frame` with those of `columns` it has as naive UTC."""
    out = frame.copy()
    for column in columns:
        if column in out.columns:
            out[column] = naive_utc_series(out[column])
    return out


# ---------------------------------------------------------------------------------------- charts


def charts(metrics: QueueMetrics) -> dict[str, bytes]:
    """PNG charts: ``sla_attainment`` (first-touch and resolution attainment per team and week)
    and ``time_to_first_touch`` (distribution of hours to first touch per priority)."""
    return {
        "sla_attainment": _attainment_chart(metrics),
        "time_to_first_touch": _first_touch_chart(metrics),
    }


def _attainment_chart(metrics: QueueMetrics) -> bytes:
    fig = Figure(figsize=(9, 4.2))
    axes = fig.subplots(1, 2, sharey=True)
    per_case = metrics.cases
    weeks = sorted(per_case["week"].unique())
    for ax, clock, title in zip(axes, ("first_touch", "resolution"), ("First touch", "Resolution")):
        decided = per_case[per_case[f"{clock}_sla"].isin(("met", "breached"))]
        rate = (decided[f"{clock}_sla"] == "met").groupby([decided["team"], decided["week"]]).mean()
        for team in sorted(rate.index.get_level_values(0).unique()):
            series = rate.loc[team].reindex(weeks)
            ax.plot(range(len(weeks)), series.to_numpy() * 100, marker="o", label=team)
        ax.set_title(f"{title} SLA attainment")
        ax.set_xticks(range(len(weeks)), weeks, rotation=45, ha="right", fontsize=8)
        ax.set_ylim(-5, 105)
        ax.grid(alpha=0.3)
        if rate.empty:
            ax.text(0.5, 0.5, "no case past its clock yet", transform=ax.transAxes, ha="center", va="center")
    axes[0].set_ylabel("% of cases within SLA")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8, title="team", title_fontsize=8)
    return figure_png(fig)


def _first_touch_chart(metrics: QueueMetrics) -> bytes:
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    touched = metrics.cases.dropna(subset=["hours_to_first_touch"])
    priorities = sorted(touched["priority"].unique())
    if priorities:
        data = [touched.loc[touched["priority"] == p, "hours_to_first_touch"].to_numpy() for p in priorities]
        ax.boxplot(data, tick_labels=[f"{p}\n(n={len(d)})" for p, d in zip(priorities, data)],
                   showfliers=True, whis=(10, 90))
    else:
        ax.text(0.5, 0.5, "no case touched yet", transform=ax.transAxes, ha="center", va="center")
    unit = "business hours" if metrics.business_hours else "hours"
    ax.set_title("Time to first touch (whiskers: p10-p90)")
    ax.set_ylabel(unit)
    ax.grid(axis="y", alpha=0.3)
    return figure_png(fig)





# ---------------------------------------------------------------------------------------- inputs


def _require(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise QueueMetricsError(
            f"{name}: missing column(s) {', '.join(missing)}; got {', '.join(map(str, frame.columns))}"
        )


def _naive_utc(series: pd.Series, name: str) -> pd.Series:
    try:
        stamps = pd.to_datetime(series)
    except (TypeError, ValueError) as exc:
        raise QueueMetricsError(f"column {name!r} is not a timestamp column: {exc}") from exc
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps.astype("datetime64[us]")


def _naive_utc_scalar(value: dt.datetime | pd.Timestamp, name: str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        raise QueueMetricsError(f"{name} must be a timestamp, got {value!r}")
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp

"""What each decision says: the action, the SLA deadlines, the headline reason and the frame.

`actions` turns the stage masks into one action per candidate (`ACTIONS`), `sla_due_times` dates
the new cases on the receiving team's calendar, `headline` and `reasons` explain each decision,
and `decision_frame` assembles the `models.contracts.DECISION_COLUMNS` frame from the stages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.contracts import DECISION_COLUMNS
from models.policy.schema import Policy, SeverityRule
from models.routing.inputs import RoutingInputs, States
from models.routing.selection import Assignment, Budget, Cooldown, Severity, Updates

ACTIONS: tuple[str, ...] = ("route", "update", "holdout", "overflow", "cooldown", "not_eligible")

#: Why an eligible account overflowed: its team's daily budget was spent, or nobody (in the team
#: or up its escalation path) had the skills and room. `overflow_cause` reads it back from the
#: decision's first reason, which `reasons` words with `overflow_budget_reason` /
#: `overflow_capacity_reason`.
OVERFLOW_BUDGET = "budget"
OVERFLOW_CAPACITY = "capacity"
OVERFLOW_CAUSES: dict[str, str] = {
    OVERFLOW_BUDGET: "over the team's daily budget",
    OVERFLOW_CAPACITY: "no one with the skills and room",
}
_CAPACITY_PREFIX = "overflow: no member of "
_BUDGET_PREFIX = "overflow: rank "


def overflow_capacity_reason(team: str) -> str:
    return f"{_CAPACITY_PREFIX}{team} or the teams above it has the skills and capacity"


def overflow_budget_reason(rank: int, team: str, left: int) -> str:
    return f"{_BUDGET_PREFIX}{rank} is over team {team}'s remaining daily budget of {left}"


def overflow_cause(reasons: Sequence[str] | None) -> str | None:
    """`OVERFLOW_BUDGET` or `OVERFLOW_CAPACITY` for an overflow decision's reasons (the first
    one says which), None for any other decision."""
    first = next(iter(reasons or ()), "")
    if first.startswith(_CAPACITY_PREFIX):
        return OVERFLOW_CAPACITY
    if first.startswith(_BUDGET_PREFIX):
        return OVERFLOW_BUDGET
    return None


def actions(
    *,
    update: np.ndarray,
    cooling: np.ndarray,
    held: np.ndarray,
    pool: np.ndarray,
    routed: np.ndarray,
) -> np.ndarray:
    """The action per candidate (`ACTIONS`); the masks are disjoint except `routed` within `pool`."""
    action = np.full(len(update), "not_eligible", dtype=object)
    action[update] = "update"
    action[cooling] = "cooldown"
    action[held] = "holdout"
    action[pool] = "overflow"
    action[routed] = "route"
    return action


def sla_due_times(
    routed: np.ndarray,
    team: np.ndarray,
    priority: np.ndarray,
    policy: Policy,
    now: pd.Timestamp,
) -> tuple[np.ndarray, np.ndarray]:
    """First-touch and resolution deadlines (naive UTC; NaT unless routed) of new cases, from
    `now` (tz-aware) on the receiving team's business calendar."""
    first_due = np.full(len(routed), np.datetime64("NaT"), dtype="datetime64[ns]")
    resolution_due = first_due.copy()
    routed_pos = np.flatnonzero(routed)
    for (team_key, prio), group in pd.Series(routed_pos).groupby([team[routed_pos], priority[routed_pos]]):
        calendar, target = policy.team_calendar(team_key), policy.sla[prio]
        first_due[group.to_numpy()] = _naive64(calendar.add_business_minutes(now, target.first_touch_minutes))
        resolution_due[group.to_numpy()] = _naive64(calendar.add_business_minutes(now, target.resolution_minutes))
    return first_due, resolution_due


@dataclass(frozen=True)
class Headline:
    """The structured headline reason of each decision (None where not eligible)."""

    rule_id: np.ndarray           # object: the matched severity rule's id
    rule_description: np.ndarray  # object: its description
    reason_driver: np.ndarray     # object: the strongest changeable risk driver in words (`top_reason`)


def headline(frame: pd.DataFrame, rules: Sequence[SeverityRule], sev: Severity) -> Headline:
    """Rule id, rule description and strongest driver of every eligible candidate.

    The driver is the candidate's `top_reason` when it is a non-empty string, else None (also
    when the frame has no `top_reason` column). Scoring writes `top_reason` as the strongest
    changeable warning sign raising risk, never a fixed attribute, or as a plain statement that
    there is none (`models.churn.features.headline_reason`).
    """
    descriptions = np.array([r.description for r in rules] + [None], dtype=object)
    driver = np.full(len(frame), None, dtype=object)
    if "top_reason" in frame.columns:
        pos = np.flatnonzero(sev.eligible)
        values = frame["top_reason"].to_numpy(dtype=object)[pos]
        keep = np.array([isinstance(v, str) and v != "" for v in values], dtype=bool)
        driver[pos[keep]] = [str(v) for v in values[keep]]
    return Headline(
        rule_id=sev.rule_id,
        rule_description=np.where(sev.eligible, descriptions[sev.rule_idx], None),
        reason_driver=driver,
    )


def reasons(
    policy: Policy,
    *,
    action: np.ndarray,
    states: States,
    sev: Severity,
    updates: Updates,
    cooling: Cooldown,
    budget: Budget,
    assigned: Assignment,
    head: Headline,
) -> list[list[str]]:
    """Human-readable reasons per decision, for display.

    The first explains the action; eligible decisions then read "<rule id>: <rule description>"
    and, when there is one, "top driver: <driver>" (the `head` columns in words).
    """
    hyst = policy.hysteresis
    not_at_risk = f"not at risk: {hyst.field} has not reached {hyst.enter_threshold:g}"
    no_rule = "no severity rule matched"
    too_new = f"at risk for less than {hyst.min_days_in_state} day(s)"
    why_not = np.select([~states.at_risk, ~sev.matched], [not_at_risk, no_rule], default=too_new)
    out: list[list[str]] = [[str(text)] for text in why_not]

    team, routed_team, priority = sev.team, assigned.team, sev.priority
    for pos in np.flatnonzero(action != "not_eligible"):
        act = action[pos]
        if act == "route":
            first = f"routed to {routed_team[pos]} as {priority[pos]}"
            if routed_team[pos] != team[pos]:
                first += f" (team {team[pos]} had no member with the skills and capacity)"
        elif act == "update":
            first = f"open case {updates.case_id[pos]} gains evidence"
            if updates.previous_priority[pos] != priority[pos]:
                first += f"; priority {updates.previous_priority[pos]} -> {priority[pos]}"
        elif act == "cooldown":
            day = pd.Timestamp(cooling.last_resolved[pos]).date().isoformat()
            first = f"cooldown: a case was resolved on {day} ({policy.cooldown_days}-day cooldown)"
        elif act == "holdout":
            first = f"holdout: control group ({policy.holdout.fraction:.0%} of eligible accounts)"
        elif assigned.no_capacity[pos]:
            first = overflow_capacity_reason(team[pos])
        else:
            first = overflow_budget_reason(budget.rank[pos], team[pos], budget.left[team[pos]])
        entry = [first, f"{head.rule_id[pos]}: {head.rule_description[pos]}"]
        if head.reason_driver[pos] is not None:
            entry.append(f"top driver: {head.reason_driver[pos]}")
        out[pos] = entry
    return out


def decision_frame(
    run: RoutingInputs,
    rules: Sequence[SeverityRule],
    *,
    sev: Severity,
    action: np.ndarray,
    head: Headline,
    why: list[list[str]],
    pool: np.ndarray,
    budget: Budget,
    assigned: Assignment,
    updates: Updates,
    first_due: np.ndarray,
    resolution_due: np.ndarray,
) -> pd.DataFrame:
    """The `DECISION_COLUMNS` frame, one row per candidate in the candidates' order (`why`: the
    `reasons` lists)."""
    empty_skills: list[str] = []
    decisions = pd.DataFrame({
        "account_id": run.ids,
        "action": pd.Series(action, dtype="str"),
        "priority": pd.Series(sev.priority, dtype=object),
        "team": pd.Series(assigned.team, dtype=object),
        "required_skills": [list(rules[i].required_skills) if e else empty_skills.copy()
                            for i, e in zip(sev.rule_idx, sev.eligible)],
        "rule_id": pd.Series(head.rule_id, dtype=object),
        "rule_description": pd.Series(head.rule_description, dtype=object),
        "reason_driver": pd.Series(head.reason_driver, dtype=object),
        "reasons": why,
        "expected_arr_at_risk": run.arr_at_risk,
        "rank": _ranks(budget.rank, pool),
        "assignee": pd.Series(assigned.assignee, dtype=object),
        "sla_first_touch_due": first_due,
        "sla_resolution_due": resolution_due,
        "case_id": pd.Series(updates.case_id, dtype=object),
        "previous_priority": pd.Series(updates.previous_priority, dtype=object),
    })
    return decisions[list(DECISION_COLUMNS)]


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


def _ranks(rank: np.ndarray, ranked: np.ndarray) -> pd.arrays.IntegerArray:
    """Budget ranks as nullable integers: missing for rows that never entered the budget."""
    return pd.arrays.IntegerArray(rank.astype(np.int64), mask=~ranked)


def _naive64(instant: dt.datetime) -> np.datetime64:
    return pd.Timestamp(instant).tz_convert("UTC").tz_localize(None).to_datetime64()

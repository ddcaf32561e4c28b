"""Escalation ladders: which steps are due on which open cases, and who each step involves.

A ladder (see `LadderStep` in `models.policy.schema`) is an ordered list of time-bound triggers for a
priority, optionally overridden per team. `due_escalations` measures each open case's clocks with
`models.cases.sla.sla_state` (business minutes on its team's calendar, snoozed / waiting-on-customer
intervals paused, due times as routing stored them):

- `after_minutes: X` is due once X business minutes have passed without a first touch;
- `at_sla_pct: Y` on the `first_touch` clock is due at Y% of the first-touch target while the
  case is still untouched; on the `resolution` clock at Y% of the resolution target. 100% is
  the breach (re-escalation: due exactly when `sla_state` says `breached`), `pre_breach` the
  priority's warning share.

A step is due from the minute its threshold is reached (one minute before: not due). Every due
step has a stable `step_key` (`<case_id>:<step_id>`), so a caller that records the keys it has
applied can run this every minute and never apply a step twice.

`resolve_raci` turns a step's RACI lists (roles, member ids, team keys, literal channels) into
the people and channels for one case.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from models.routing.assignment import assign
from models.cases.sla import FIRST_TOUCH, Pause, SlaState, sla_state
from models.policy.schema import CHANNEL_PREFIXES, LadderStep, Policy

RACI_KEYS: tuple[str, ...] = ("responsible", "accountable", "consulted", "informed")


class LadderError(ValueError):
    """Open cases cannot be evaluated (missing column, unknown team, naive timestamp)."""


@dataclass(frozen=True)
class EscalationStep:
    """One ladder step that is due on one case."""

    step_key: str
    case_id: str
    step_id: str
    action: str
    priority: str
    team: str
    to_team: str | None
    clock: str
    threshold_minutes: float
    elapsed_minutes: float
    message: str
    raci: dict[str, list[str]] = field(default_factory=dict)
    to_assignee: str | None = None


def target_team(step: LadderStep, team: str, policy: Policy) -> str | None:
    """The team a reassign step moves a case of `team` to; None for other actions or at the top."""
    if step.action != "reassign":
        return None
    to = policy.next_tier_team(team) if step.target == "next_tier" else step.target
    return None if to == team else to


def resolve_raci(step: LadderStep, case_row: Mapping[str, Any], policy: Policy) -> dict[str, list[str]]:
    """The step's RACI lists resolved for one case.

    Entries become member ids (people in the policy), the account's `csm_owner` value, or channel
    addresses (`slack:<ENV_VAR>`, `email:<address>`). Roles with no value on this case (no
    assignee yet, no CSM owner) are left out; duplicates are removed, order kept.
    """
    team_key = str(case_row["team"])
    if team_key not in policy.teams:
        raise LadderError(f"case {case_row.get('case_id')!r} has unknown team {team_key!r}")
    team = policy.teams[team_key]
    receiving = policy.teams[target_team(step, team_key, policy) or team_key]

    def value(name: str) -> list[str]:
        raw = case_row.get(name)
        return [] if raw is None or pd.isna(raw) or raw == "" else [str(raw)]

    roles: dict[str, list[str]] = {
        "assignee": value("assignee"),
        "csm_owner": value("csm_owner"),
        "escalation_manager": [team.escalation_manager],
        "team_channel": team.channels.addresses(),
        "target_escalation_manager": [receiving.escalation_manager],
        "target_team_channel": receiving.channels.addresses(),
    }
    resolved: dict[str, list[str]] = {}
    for key in RACI_KEYS:
        out: list[str] = []
        for entry in getattr(step.raci, key):
            if entry in roles:
                out += roles[entry]
            elif entry in policy.teams:
                out += policy.teams[entry].channels.addresses()
            elif entry in policy.members_by_id or entry.startswith(CHANNEL_PREFIXES):
                out.append(entry)
            else:  # parse_policy rejects these; a hand-built policy might not
                raise LadderError(f"step {step.id!r}: unknown RACI entry {entry!r}")
        resolved[key] = list(dict.fromkeys(out))
    return resolved


def due_escalations(
    open_cases: pd.DataFrame,
    policy: Policy,
    now: dt.datetime,
    pauses: Mapping[str, Sequence[Pause]] | None = None,
    *,
    already_applied: Collection[str] = (),
    member_load: Mapping[str, int] | None = None,
) -> list[EscalationStep]:
    """Ladder steps due at `now`, ordered by case then ladder position.

    `open_cases` needs case_id, team, priority, opened_at and may have status, first_touch_at
    (or acknowledged_at), sla_first_touch_due, sla_resolution_due, snoozed_until, assignee,
    csm_owner and required_skills; timestamps are naive UTC or tz-aware. `pauses` maps a case id
    to its pause intervals. Each clock is measured by `models.cases.sla.sla_state`, the rule every
    view of the queue uses, so a step at 100% fires exactly when the desk, the CLI and the
    metrics call the case breached. Steps whose `step_key` is in `already_applied` are left out.

    With `member_load` (open cases per member id), reassign steps also name the receiving
    person (`to_assignee`), chosen by `models.routing.assignment.assign` in the receiving team or
    further up its escalation path (`to_team` then names the team that has room); without it,
    or when nobody has room, `to_assignee` is None and the case waits in the team's queue.
    """
    if now.tzinfo is None:
        raise LadderError(f"now must be timezone-aware, got {now!r}")
    required = {"case_id", "team", "priority", "opened_at"}
    missing = sorted(required - set(open_cases.columns))
    if missing:
        raise LadderError(f"open_cases lacks column(s) {', '.join(missing)}; "
                          f"columns: {', '.join(map(str, open_cases.columns))}")
    pauses = pauses or {}
    applied = set(already_applied)
    now = now.astimezone(dt.timezone.utc)

    due: list[EscalationStep] = []
    for row in open_cases.to_dict("records"):
        case_id, team, priority = str(row["case_id"]), str(row["team"]), str(row["priority"])
        if team not in policy.teams:
            raise LadderError(f"case {case_id!r} has unknown team {team!r}; "
                              f"teams: {', '.join(policy.teams)}")
        ladder = policy.ladder_for(team, priority)
        if not ladder:
            continue
        if priority not in policy.sla:
            raise LadderError(f"case {case_id!r} has priority {priority!r} with no sla target")
        case = {k: (None if _missing(v) else v) for k, v in row.items()}
        case["opened_at"] = _aware(row["opened_at"], "opened_at", case_id)
        case["first_touch_at"] = _aware(row.get("first_touch_at"), "first_touch_at", case_id)
        case_pauses = [(_aware(a, "pause start", case_id), _aware(b, "pause end", case_id))
                       for a, b in pauses.get(case_id, ())]
        clocks: dict[str, SlaState | None] = {}

        def clock_state(clock: str) -> SlaState | None:
            if clock not in clocks:
                clocks[clock] = sla_state(case, policy, now, case_pauses, clock=clock)
            return clocks[clock]

        for step in ladder:
            step_key = f"{case_id}:{step.id}"
            if step_key in applied:
                continue
            state = clock_state(FIRST_TOUCH if step.after_minutes is not None else step.clock)
            if state is None or state.done:
                continue
            elapsed = state.elapsed_minutes
            if step.after_minutes is not None:
                if elapsed < step.after_minutes:
                    continue
                threshold = step.after_minutes
                message = f"{elapsed:g} business minutes without a first touch (limit {threshold:g})"
            else:
                pct = policy.sla_pct(step, priority)
                if not state.reached(pct):
                    continue
                goal = state.target_minutes
                threshold = goal * pct / 100.0
                what = "breached" if pct >= 100 else f"at {pct:g}% of"
                message = (f"{step.clock.replace('_', ' ')} clock {what} its {goal:g}-minute "
                           f"{priority} target ({elapsed:g} business minutes elapsed)")
            action, to_team = step.action, target_team(step, team, policy)
            if action == "reassign" and to_team is None:
                action = "notify"
                message += f"; team {team!r} is the top tier, so the step notifies instead"
            due.append(EscalationStep(
                step_key=step_key, case_id=case_id, step_id=step.id, action=action,
                priority=priority, team=team, to_team=to_team, clock=step.clock,
                threshold_minutes=float(threshold), elapsed_minutes=elapsed, message=message,
                raci=resolve_raci(step, row, policy),
            ))
    if member_load is None:
        return due
    return _with_assignees(due, open_cases, policy, member_load)


def _with_assignees(
    due: list[EscalationStep],
    open_cases: pd.DataFrame,
    policy: Policy,
    member_load: Mapping[str, int],
) -> list[EscalationStep]:
    """Name the receiving person of each reassignment: one per (case, receiving team)."""
    moves = list(dict.fromkeys((s.case_id, s.to_team) for s in due if s.action == "reassign"))
    if not moves:
        return due
    skills_by_case: dict[str, Any] = {}
    if "required_skills" in open_cases.columns:
        skills_by_case = dict(zip(open_cases["case_id"].astype(str), open_cases["required_skills"]))
    frame = pd.DataFrame({
        "team": [to for _, to in moves],
        "required_skills": [skills_by_case.get(case_id) for case_id, _ in moves],
    })
    who = assign(frame, policy.assignable_members(), member_load,
                 escalation_paths=policy.escalation_paths())
    chosen = dict(zip(moves, who))
    out = []
    for step in due:
        person = chosen.get((step.case_id, step.to_team))
        if person is not None:
            step = replace(step, to_assignee=person, to_team=policy.member_team[person])
        out.append(step)
    return out


def _missing(value: Any) -> bool:
    """None, NaN or NaT (a frame's empty cell); collections are values."""
    if value is None:
        return True
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _aware(value: Any, name: str, case_id: str) -> dt.datetime | None:
    """A timestamp as an aware UTC datetime (naive values are UTC); None when missing."""
    if value is None or (not isinstance(value, dt.datetime) and pd.isna(value)):
        return None
    stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        return None
    try:
        return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()
    except (TypeError, ValueError) as exc:
        raise LadderError(f"case {case_id!r}: cannot read {name} {value!r}: {exc}") from exc


def escalation_badge(case: Mapping[str, Any], policy: Policy | None) -> str | None:
    """`escalated: step 2 of 2 (moved to Rescue Squad)` for a case the ladder escalated, else None.

    The case's `escalation_level` counts the steps that escalated it (`notify` and `reassign`;
    `warn` steps only warn, see `models.cases.escalation`). The ladder is the one of its current
    team and priority (`Policy.ladder_for`): step N of the M escalating steps in it, with what
    step N does: a reassignment names the team the case is with now, a notification who is
    accountable (the escalation manager, or the people the step names).
    """
    level = case.get("escalation_level")
    try:
        level = int(level) if level is not None and not _missing(level) else 0
    except (TypeError, ValueError):
        level = 0
    if level <= 0:
        return None
    team, priority = case.get("team"), case.get("priority")
    ladder = policy.ladder_for(str(team), str(priority)) if policy is not None else []
    escalating = [s for s in ladder if s.action != "warn"]
    total = max(level, len(escalating))
    badge = f"escalated: step {level} of {total}"
    if level > len(escalating):
        return badge
    step = escalating[level - 1]
    if step.action == "reassign" and policy is not None and str(team) in policy.teams:
        who = f"moved to {policy.teams[str(team)].name}"
    else:
        names = []
        for entry in step.raci.accountable or step.raci.responsible:
            if entry == "escalation_manager":
                names.append("escalation manager")
            elif policy is not None and entry in policy.members_by_id:
                names.append(policy.members_by_id[entry].name)
            else:
                names.append(entry.replace("_", " "))
        who = ", ".join(dict.fromkeys(names)) or "notified"
    return f"{badge} ({who})"

"""The SLA clock's side of the queue store: what the clock reads, and the escalations it writes.

`SlaStore.sla_inputs` reads what `models.cases.ladder.due_escalations` needs in one transaction;
`SlaStore.apply_escalations` writes the steps it found due, each once (idempotent by step key).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from connectors.queue.database import QueueDatabase
from connectors.queue.outbox import enqueue_rows, notice_rows
from connectors.queue.schema import case_events, escalation_steps_applied, rescue_actions, rescue_cases
from connectors.queue.values import frame, jsonable, str_list
from models.cases.context import reassigned_context
from models.cases.lifecycle import ACTIVE_STATUSES, PAUSED_STATUSES, SNOOZED, TERMINAL_STATUSES, CaseConflict
from models.cases.notices import case_notices
from models.clock import now_or

#: Actor recorded on changes made by the SLA clock.
SLA_ACTOR = "sla-clock"


@dataclass(frozen=True)
class SlaInputs:
    """The SLA clock's view of the queue (the arguments of `models.cases.ladder.due_escalations`).

    - `open_cases`: active cases with case_id, account_id, status, team, priority, opened_at,
      first_touch_at (= acknowledged_at), assignee, csm_owner (from the context package),
      required_skills, escalation_level, snoozed_until; timestamps naive UTC;
    - `pauses`: case_id -> [(paused_at, resumed_at or None)] from the audit trail (snoozed and
      waiting on the customer); a snooze whose wake-up time has passed ends at that time;
    - `applied_step_keys`: ladder steps already applied to these cases;
    - `member_load`: number of active cases per assignee.
    """

    open_cases: pd.DataFrame
    pauses: dict[str, list[tuple[datetime, datetime | None]]]
    applied_step_keys: frozenset[str]
    member_load: dict[str, int]


class SlaStore(QueueDatabase):
    """What the SLA clock reads from and writes to the queue."""

    def sla_inputs(self, *, now: datetime | None = None) -> SlaInputs:
        """What `models.cases.ladder.due_escalations` needs, read in one transaction (see SlaInputs)."""
        now = now_or(now)
        with self.reading() as conn:
            cases = conn.execute(
                sa.select(rescue_cases).where(rescue_cases.c.status.in_(ACTIVE_STATUSES)).order_by(rescue_cases.c.case_id)
            ).mappings().all()
            ids = [c["case_id"] for c in cases]
            events: list[Mapping[str, Any]] = []
            applied: set[str] = set()
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                events += conn.execute(
                    sa.select(case_events.c.case_id, case_events.c.at, case_events.c.from_status,
                              case_events.c.to_status)
                    .where(case_events.c.case_id.in_(chunk), case_events.c.from_status.is_distinct_from(case_events.c.to_status))
                    .order_by(case_events.c.event_id)
                ).mappings().all()
                applied.update(conn.execute(
                    sa.select(escalation_steps_applied.c.step_key).where(escalation_steps_applied.c.case_id.in_(chunk))
                ).scalars())
        by_case: dict[str, list[Mapping[str, Any]]] = {}
        for event in events:
            by_case.setdefault(event["case_id"], []).append(event)
        pauses: dict[str, list[tuple[datetime, datetime | None]]] = {}
        for case in cases:
            intervals = _paused_intervals(by_case.get(case["case_id"], []))
            wake = case["snoozed_until"]
            if intervals and intervals[-1][1] is None and case["status"] == SNOOZED and wake is not None and wake <= now:
                intervals[-1] = (intervals[-1][0], wake)  # the snooze is over: the clocks run again
            if intervals:
                pauses[case["case_id"]] = intervals
        rows = [
            {
                "case_id": c["case_id"], "account_id": c["account_id"], "status": c["status"], "team": c["team"],
                "priority": c["priority"], "opened_at": c["opened_at"], "first_touch_at": c["acknowledged_at"],
                "assignee": c["assignee"], "csm_owner": ((c["context"] or {}).get("account") or {}).get("csm_owner"),
                "required_skills": c["required_skills"], "escalation_level": c["escalation_level"],
                "snoozed_until": c["snoozed_until"],
            }
            for c in cases
        ]
        columns = ["case_id", "account_id", "status", "team", "priority", "opened_at", "first_touch_at", "assignee",
                   "csm_owner", "required_skills", "escalation_level", "snoozed_until"]
        open_cases = frame(rows, columns)
        load = open_cases["assignee"].dropna().value_counts()
        return SlaInputs(open_cases=open_cases, pauses=pauses, applied_step_keys=frozenset(applied),
                         member_load={str(k): int(v) for k, v in load.items()})

    def apply_escalations(self, steps: Iterable[Any], *, now: datetime | None = None,
                          actor: str = SLA_ACTOR) -> int:
        """Apply SLA ladder steps once each; returns how many were applied now.

        A step (an object or a mapping) has `step_key`, `case_id`, `action` (warn | reassign |
        notify), `to_team`, `to_assignee`, `raci` (role -> destinations), `message` and, for a
        reassignment, optionally the regenerated `context` package. Each step is recorded in
        `escalation_steps_applied` in the same transaction as its effects, so applying the same
        steps again (the next sensor tick) does nothing. `warn` audits and notifies; `reassign`
        moves the case to another team / person; both `reassign` and `notify` raise the case's
        escalation level. Steps for closed or unknown cases are skipped.
        """
        now = now_or(now)
        applied = 0
        with self.transaction() as conn:
            for step in steps:
                key = str(_step_field(step, "step_key"))
                action = str(_step_field(step, "action"))
                if action not in ("warn", "reassign", "notify"):
                    raise ValueError(f"escalation step {key}: unknown action {action!r}; expected warn, reassign or notify")
                if conn.execute(sa.select(escalation_steps_applied.c.step_key)
                                .where(escalation_steps_applied.c.step_key == key)).first():
                    continue
                case = conn.execute(
                    sa.select(rescue_cases).where(rescue_cases.c.case_id == str(_step_field(step, "case_id"))).with_for_update()
                ).mappings().first()
                if case is None or case["status"] in TERMINAL_STATUSES:
                    continue
                conn.execute(escalation_steps_applied.insert().values(step_key=key, case_id=case["case_id"],
                                                                      action=action, applied_at=now))
                message = _step_field(step, "message", "") or ""
                values: dict[str, Any] = {}
                payload: dict[str, Any] = {"step_key": key, "action": action, "message": message}
                if action in ("reassign", "notify"):
                    values["escalation_level"] = case["escalation_level"] + 1
                if action == "reassign":
                    to_team = _step_field(step, "to_team", None) or case["team"]
                    to_assignee = _step_field(step, "to_assignee", None)
                    values.update(team=to_team, assignee=to_assignee)
                    payload.update(from_team=case["team"], to_team=to_team,
                                   from_assignee=case["assignee"], to_assignee=to_assignee)
                    context = _step_field(step, "context", None)
                    if context is None:
                        plays, moves = case_history(conn, case["case_id"])
                        context = reassigned_context(
                            case["context"], team=to_team, assignee=to_assignee,
                            escalation_level=values["escalation_level"], plays=plays, moves=moves, at=now,
                            handoff={"at": now, "actor": actor, "note": message, **payload},
                        )
                    values["context"] = jsonable(context)
                result = conn.execute(
                    rescue_cases.update()
                    .where(rescue_cases.c.case_id == case["case_id"], rescue_cases.c.version == case["version"])
                    .values(**values, updated_at=now, version=case["version"] + 1)
                )
                if result.rowcount != 1:
                    raise CaseConflict(f"case {case['case_id']} was changed by someone else")
                kind = "sla_warning" if action == "warn" else "escalated"
                conn.execute(case_events.insert(), [{
                    "case_id": case["case_id"], "at": now, "actor": actor, "kind": kind, "from_status": case["status"],
                    "to_status": case["status"], "reason": message, "payload": jsonable(payload)}])
                raci = _step_field(step, "raci", None) or {}
                recipients: dict[str, list[str]] = {}
                for role, who in raci.items():
                    for dest in str_list(who):
                        recipients.setdefault(dest, []).append(str(role))
                if action == "reassign" and values.get("assignee"):
                    recipients.setdefault(values["assignee"], []).append("responsible")
                notice = {**dict(case), **values}
                enqueue_rows(conn, notice_rows(case_notices(
                    notice, kind, f"{kind}:{key}", list(recipients) or [f"log:{notice['team']}"],
                    extra={"message": message, "roles": recipients, "step_key": key}), now))
                applied += 1
        return applied


def case_history(conn: sa.Connection, case_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(plays logged on a case, its audit events that moved it), oldest first."""
    plays = conn.execute(
        sa.select(rescue_actions).where(rescue_actions.c.case_id == case_id).order_by(rescue_actions.c.action_id)
    ).mappings().all()
    moves = conn.execute(
        sa.select(case_events).where(case_events.c.case_id == case_id, case_events.c.kind.in_(("handoff", "escalated")))
        .order_by(case_events.c.event_id)
    ).mappings().all()
    return [dict(p) for p in plays], [dict(m) for m in moves]


def _paused_intervals(events: list[Mapping[str, Any]]) -> list[tuple[datetime, datetime | None]]:
    """Intervals a case spent paused, from its status changes in order (open-ended if still paused)."""
    intervals: list[tuple[datetime, datetime | None]] = []
    started: datetime | None = None
    for event in events:
        was, now_paused = event["from_status"] in PAUSED_STATUSES, event["to_status"] in PAUSED_STATUSES
        if now_paused and not was:
            started = event["at"]
        elif was and not now_paused and started is not None:
            intervals.append((started, event["at"]))
            started = None
    if started is not None:
        intervals.append((started, None))
    return intervals


def _step_field(step: Any, name: str, *default: Any) -> Any:
    if isinstance(step, Mapping):
        if name in step:
            return step[name]
    elif hasattr(step, name):
        return getattr(step, name)
    if default:
        return default[0]
    raise ValueError(f"escalation step {step!r} has no {name!r}")

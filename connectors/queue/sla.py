"""The SLA clock's side of the queue store: what the clock reads, and the escalations it writes.

`SlaStore.sla_inputs` reads what `models.cases.ladder.due_escalations` needs in one transaction;
`SlaStore.apply_escalations` writes the steps it found due, each once (idempotent by step key);
`SlaStore.wake_snoozed` puts snoozed cases back to work at their wake-up time. `SlaStore.sla_states`
answers "where does each case stand" with `models.cases.sla.sla_state`, the one rule the desk,
the CLI, the breaching filter, the ladder and the metrics share.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa

from connectors.queue.database import QueueDatabase
from connectors.queue.transaction import CaseTransaction
from connectors.queue.schema import case_events, escalation_steps_applied, rescue_cases
from connectors.queue.values import frame, jsonable
from models.cases.context import reassigned_context
from models.cases.lifecycle import ACTIVE_STATUSES, IN_PROGRESS, SNOOZED, TERMINAL_STATUSES
from models.cases.escalation import step_effect, step_field
from models.cases.notices import WOKEN, case_notices
from models.cases.sla import Pause, SlaState, paused_intervals, sla_state
from models.clock import now_or

if TYPE_CHECKING:
    from models.policy.schema import Policy

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
    pauses: dict[str, list[Pause]]
    applied_step_keys: frozenset[str]
    member_load: dict[str, int]


class SlaStore(QueueDatabase):
    """What the SLA clock reads from and writes to the queue."""

    @property
    def policy(self) -> Policy | None:
        """The policy whose calendars and targets SLA clocks run on (None: wall clock, stored due
        times); `QueueStore` sets it."""
        return None

    def _note_wall_clock(self) -> None:
        """Called when SLA clocks run without a policy (`QueueStore` says why, once)."""

    def pauses_of(self, case_ids: Iterable[str], *, now: datetime | None = None,
                  conn: sa.Connection | None = None) -> dict[str, list[Pause]]:
        """case_id -> its paused intervals (`models.cases.sla.paused_intervals`), for cases that
        have any; read from the audit trail in one transaction (or in `conn`'s)."""
        now = now_or(now)
        if conn is None:
            with self.reading() as reading:
                return self.pauses_of(case_ids, now=now, conn=reading)
        ids = list(dict.fromkeys(str(c) for c in case_ids))
        wakes: dict[str, Any] = {}
        events: dict[str, list[Mapping[str, Any]]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            wakes.update((case_id, wake) for case_id, wake in conn.execute(
                sa.select(rescue_cases.c.case_id, rescue_cases.c.snoozed_until)
                .where(rescue_cases.c.case_id.in_(chunk), rescue_cases.c.status == SNOOZED)
            ))
            for event in conn.execute(
                sa.select(case_events.c.case_id, case_events.c.at, case_events.c.from_status, case_events.c.to_status)
                .where(case_events.c.case_id.in_(chunk), case_events.c.from_status.is_distinct_from(case_events.c.to_status))
                .order_by(case_events.c.event_id)
            ).mappings():
                events.setdefault(event["case_id"], []).append(event)
        out: dict[str, list[Pause]] = {}
        for case_id, trail in events.items():
            intervals = paused_intervals(trail, now=now, snoozed_until=wakes.get(case_id))
            if intervals:
                out[case_id] = intervals
        return out

    def sla_states(self, cases: pd.DataFrame, *, now: datetime | None = None) -> dict[str, SlaState | None]:
        """case_id -> where each case stands on its running SLA clock at `now`
        (`models.cases.sla.sla_state` on the store's policy, pauses from the audit trail)."""
        now = now_or(now)
        if cases.empty:
            return {}
        pauses = self.pauses_of(cases["case_id"], now=now)
        policy = self.policy
        if policy is None:
            self._note_wall_clock()
        return {
            str(row["case_id"]): sla_state(row, policy, now, pauses.get(str(row["case_id"])))
            for row in _records(cases)
        }

    def sla_inputs(self, *, now: datetime | None = None) -> SlaInputs:
        """What `models.cases.ladder.due_escalations` needs, read in one transaction (see SlaInputs)."""
        now = now_or(now)
        with self.reading() as conn:
            cases = conn.execute(
                sa.select(rescue_cases).where(rescue_cases.c.status.in_(ACTIVE_STATUSES)).order_by(rescue_cases.c.case_id)
            ).mappings().all()
            ids = [c["case_id"] for c in cases]
            pauses = self.pauses_of(ids, now=now, conn=conn)
            applied: set[str] = set()
            for start in range(0, len(ids), 500):
                applied.update(conn.execute(
                    sa.select(escalation_steps_applied.c.step_key)
                    .where(escalation_steps_applied.c.case_id.in_(ids[start:start + 500]))
                ).scalars())
        columns = ["case_id", "account_id", "status", "team", "priority", "opened_at", "first_touch_at", "assignee",
                   "csm_owner", "required_skills", "escalation_level", "snoozed_until", "sla_first_touch_due",
                   "sla_resolution_due"]
        rows = [
            {**{k: c[k] for k in columns if k in c}, "first_touch_at": c["acknowledged_at"],
             "csm_owner": ((c["context"] or {}).get("account") or {}).get("csm_owner")}
            for c in cases
        ]
        open_cases = frame(rows, columns)
        load = open_cases["assignee"].dropna().value_counts()
        return SlaInputs(open_cases=open_cases, pauses=pauses, applied_step_keys=frozenset(applied),
                         member_load={str(k): int(v) for k, v in load.items()})

    def wake_snoozed(self, *, now: datetime | None = None, actor: str = SLA_ACTOR) -> list[str]:
        """Put every snoozed case whose wake-up time has come back to work (`in_progress`).

        The audit trail records the wake-up at the case's `snoozed_until` (when its clocks started
        running again), by `actor`; the assignee (else the team's log) is told. Returns the ids
        of the cases woken. Idempotent: a woken case is no longer snoozed.
        """
        now = now_or(now)
        woken: list[str] = []
        with self.transaction() as conn:
            due = conn.execute(
                sa.select(rescue_cases).where(rescue_cases.c.status == SNOOZED, rescue_cases.c.snoozed_until <= now)
                .order_by(rescue_cases.c.case_id).with_for_update()
            ).mappings().all()
            for case in due:
                wake = case["snoozed_until"]
                tx = CaseTransaction(conn, dict(case))
                tx.update({"status": IN_PROGRESS, "snoozed_until": None}, now)
                reason = f"snooze ended at {wake:%Y-%m-%d %H:%M} UTC"
                tx.record(WOKEN, actor=actor, at=wake, reason=reason, payload={"snoozed_until": wake.isoformat()},
                          from_status=SNOOZED, to_status=IN_PROGRESS)
                tx.notify(case_notices(tx.case, WOKEN, f"{WOKEN}:{case['case_id']}:v{tx.case['version']}",
                                       [case["assignee"]] if case["assignee"] else [f"log:{case['team']}"],
                                       extra={"message": reason}), now)
                woken.append(case["case_id"])
        return woken

    def apply_escalations(self, steps: Iterable[Any], *, now: datetime | None = None,
                          actor: str = SLA_ACTOR) -> int:
        """Apply SLA ladder steps once each; returns how many were applied now.

        What a step changes is `models.cases.escalation.step_effect`; this writes it. A step (an
        object or a mapping) has `step_key`, `case_id`, `action` (warn | reassign | notify),
        `to_team`, `to_assignee`, `raci` (role -> destinations), `message` and, for a
        reassignment, optionally the regenerated `context` package (else it is rebuilt here from
        the case's history). Each step is recorded in `escalation_steps_applied` in the same
        transaction as its effects, so applying the same steps again (the next sensor tick) does
        nothing. Steps for closed or unknown cases are skipped.
        """
        now = now_or(now)
        applied = 0
        with self.transaction() as conn:
            for step in steps:
                key = str(step_field(step, "step_key"))
                # The case row first: a second tick applying the same step waits here, then sees
                # the step recorded by the first and skips it.
                row = conn.execute(
                    sa.select(rescue_cases).where(rescue_cases.c.case_id == str(step_field(step, "case_id"))).with_for_update()
                ).mappings().first()
                if row is None or row["status"] in TERMINAL_STATUSES:
                    continue
                if conn.execute(sa.select(escalation_steps_applied.c.step_key)
                                .where(escalation_steps_applied.c.step_key == key)).first():
                    continue
                tx = CaseTransaction(conn, dict(row))
                effect = step_effect(step, tx.case)
                conn.execute(escalation_steps_applied.insert().values(step_key=key, case_id=row["case_id"],
                                                                      action=effect.action, applied_at=now))
                values = dict(effect.values)
                if effect.moves:
                    context = step_field(step, "context", None)
                    if context is None:
                        plays, moves = tx.history()
                        context = reassigned_context(
                            row["context"], team=values["team"], assignee=values["assignee"],
                            escalation_level=values["escalation_level"], plays=plays, moves=moves, at=now,
                            handoff={"at": now, "actor": actor, "note": effect.message, **effect.payload},
                        )
                    values["context"] = jsonable(context)
                tx.update(values, now)
                tx.record(effect.kind, actor=actor, at=now, reason=effect.message, payload=effect.payload)
                tx.notify(case_notices(
                    tx.case, effect.kind, f"{effect.kind}:{key}", effect.destinations(tx.case["team"]),
                    extra={"message": effect.message, "roles": effect.recipients, "step_key": key}), now)
                applied += 1
        return applied


#: Columns `QueueStore.list_cases(sla=True)` adds: the running clock, its state (`models.cases.sla`
#: SLA_STATES, None without a target), its due instant (naive UTC), business minutes left.
SLA_COLUMNS: tuple[str, ...] = ("sla_clock", "sla_state", "sla_due_at", "sla_minutes_left")


def with_sla_columns(cases: pd.DataFrame, states: Mapping[str, SlaState | None]) -> pd.DataFrame:
    """`cases` with `SLA_COLUMNS` from `states` (case_id -> SlaState or None)."""
    out = cases.copy()
    got = [states.get(str(c)) for c in out["case_id"]]
    out["sla_clock"] = pd.Series([s.clock if s else None for s in got], index=out.index, dtype=object)
    out["sla_state"] = pd.Series([s.state if s else None for s in got], index=out.index, dtype=object)
    out["sla_due_at"] = pd.Series([s.due_at if s else None for s in got], index=out.index, dtype=object)
    out["sla_minutes_left"] = pd.Series([s.minutes_left if s else None for s in got], index=out.index, dtype=float)
    return out


def _records(cases: pd.DataFrame) -> list[dict[str, Any]]:
    """Frame rows as dicts with None for NaN / NaT (a frame's NULL)."""
    out = []
    for row in cases.to_dict("records"):
        out.append({k: (None if not isinstance(v, (list, dict, tuple)) and pd.isna(v) else v) for k, v in row.items()})
    return out

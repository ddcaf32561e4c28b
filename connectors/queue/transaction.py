"""One write transaction on one case: the locked row, its optimistic update, its audit events
and its outbox rows, committed together (`QueueStore.locked_case` opens it; hand-offs, desk
actions and the SLA clock's steps build their changes from it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from connectors.queue.outbox import enqueue_rows, notice_rows
from connectors.queue.schema import case_events, rescue_actions, rescue_cases
from connectors.queue.values import fit_row, jsonable, require_actor
from models.cases.lifecycle import (
    OPEN,
    SNOOZED,
    TERMINAL_STATUSES,
    CaseConflict,
    check_snooze_until,
    check_transition,
)
from models.cases.notices import Notice
from models.clock import utc_naive


class CaseTransaction:
    """One write transaction holding one case row (locked), for a change built from its parts.

    `case` is the row as read (it follows `update`). Every change goes through `update`
    (optimistic: CaseConflict when someone changed the case since it was read), `record` (an
    audit event) and `notify` (outbox rows), all committed together when the block ends.
    """

    def __init__(self, conn: sa.Connection, case: dict[str, Any]) -> None:
        self.conn = conn
        self.case = case

    def update(self, values: Mapping[str, Any], now: datetime) -> None:
        """Set `values` on the case, only if its version is still the one read. Display text is
        cut to its column's size (`fit_row`)."""
        case = self.case
        values = fit_row(rescue_cases, values)
        stored = {k: jsonable(v) if k in ("context", "evidence", "required_skills") else v for k, v in values.items()}
        result = self.conn.execute(
            rescue_cases.update()
            .where(rescue_cases.c.case_id == case["case_id"], rescue_cases.c.version == case["version"])
            .values(**stored, updated_at=now, version=case["version"] + 1)
        )
        if result.rowcount != 1:
            current = self.conn.execute(
                sa.select(rescue_cases.c.assignee, rescue_cases.c.status).where(rescue_cases.c.case_id == case["case_id"])
            ).first()
            who = f"; now {current.status}, assigned to {current.assignee or 'nobody'}" if current else ""
            raise CaseConflict(f"case {case['case_id']} was changed by someone else{who}")
        self.case = {**case, **values, "updated_at": now, "version": case["version"] + 1}

    def record(self, kind: str, *, actor: str, at: datetime, reason: str | None = None,
               payload: Mapping[str, Any] | None = None, from_status: str | None = None,
               to_status: str | None = None) -> None:
        """Append an audit event (statuses default to the case's current one: no change)."""
        status = self.case["status"]
        self.conn.execute(case_events.insert(), [event_row(
            self.case["case_id"], at, actor, kind, from_status or status, to_status or status, reason, payload or {})])

    def notify(self, notices: Iterable[Notice], now: datetime) -> int:
        """Queue the notices in the outbox (those already queued are skipped)."""
        return enqueue_rows(self.conn, notice_rows(notices, now))

    def history(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(plays logged on the case, its audit events that moved it to another team or person)."""
        return case_history(self.conn, self.case["case_id"])

    def transition(self, to_status: str, *, actor: str, reason: str | None, now: datetime,
                   snooze_until: datetime | None = None, expected_version: int | None = None,
                   kind: str = "status_changed", payload: Mapping[str, Any] | None = None) -> None:
        """Move the case to `to_status` (validated by models.cases.lifecycle) and audit it."""
        actor = require_actor(actor)
        case = self.case
        if expected_version is not None and expected_version != case["version"]:
            raise CaseConflict(
                f"case {case['case_id']} is at version {case['version']}, not {expected_version}: "
                "it changed since you looked; reload it"
            )
        from_status = case["status"]
        check_transition(from_status, to_status, case_id=case["case_id"])
        values: dict[str, Any] = {"status": to_status, "snoozed_until": None}
        if to_status == SNOOZED:
            values["snoozed_until"] = check_snooze_until(utc_naive(snooze_until), now, case_id=case["case_id"],
                                                         from_status=from_status)
        if from_status == OPEN and case["acknowledged_at"] is None:
            values["acknowledged_at"] = now
        if to_status in TERMINAL_STATUSES:
            values["resolved_at"] = now
            values["outcome"] = to_status
        self.update(values, now)
        wake = {"snoozed_until": values["snoozed_until"].isoformat()} if values["snoozed_until"] else {}
        self.record(kind, actor=actor, at=now, reason=reason, payload={**(payload or {}), **wake},
                    from_status=from_status, to_status=to_status)


def event_row(case_id: str, at: datetime, actor: str, kind: str, from_status: str | None, to_status: str | None,
              reason: str | None, payload: Mapping[str, Any]) -> dict[str, Any]:
    """A `case_events` row."""
    return {"case_id": case_id, "at": at, "actor": actor, "kind": kind, "from_status": from_status,
            "to_status": to_status, "reason": reason, "payload": jsonable(payload)}


def case_history(conn: sa.Connection, case_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(plays logged on a case, its audit events that moved it to another team or person), oldest first."""
    plays = conn.execute(
        sa.select(rescue_actions).where(rescue_actions.c.case_id == case_id).order_by(rescue_actions.c.action_id)
    ).mappings().all()
    moves = conn.execute(
        sa.select(case_events).where(case_events.c.case_id == case_id, case_events.c.kind.in_(("handoff", "escalated")))
        .order_by(case_events.c.event_id)
    ).mappings().all()
    return [dict(p) for p in plays], [dict(m) for m in moves]

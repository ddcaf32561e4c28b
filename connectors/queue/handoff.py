"""Hand a rescue case to another person or team, with the note the next owner reads first.

A handoff is a reassignment done by a person (the SLA clock's reassignments go through
`QueueStore.apply_escalations`). It runs in one transaction on the queue store's tables, with the
same guarantees as every other change to a case:

- the case row is locked and updated only if its `version` is unchanged (a concurrent change
  makes the handoff fail with `CaseConflict`, never overwrite);
- a `handoff` row is appended to the `case_events` audit trail, carrying the note and the
  previous and new team and assignee;
- the new owner and any other recipients are told through the outbox, in the same transaction.

Lifecycle rules (models.cases.lifecycle): a closed case cannot be handed off; the status does not
change; a case handed to a team without naming a person must still be claimable (open or
acknowledged), otherwise nobody could take it, so an in-progress or paused case needs a person.
Who may hand off what (roles, teams) is the caller's business: this module only stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from connectors.queue.store import QueueStore, case_events, channel_for, outbox, reassigned_context, rescue_cases
from models.cases.lifecycle import CLAIMABLE_STATUSES, TERMINAL_STATUSES, CaseConflict, CaseNotFound, InvalidTransition

__all__ = ["HANDOFF_KIND", "handoff"]

#: `case_events.kind` and outbox `kind` of a handoff.
HANDOFF_KIND = "handoff"


def handoff(
    store: QueueStore,
    case_id: str,
    *,
    actor: str,
    to_team: str,
    to_assignee: str | None,
    note: str,
    notify: Sequence[str] = (),
    now: datetime | None = None,
) -> dict[str, Any]:
    """Reassign `case_id` to `to_team` (and `to_assignee`, or nobody) with a required `note`.

    `notify` are extra outbox destinations (`slack:...`, `email:...`, handles); the new assignee
    is always told. Returns the case as `QueueStore.get_case` does. Raises CaseNotFound,
    InvalidTransition (closed case, or team-only handoff of a case that is being worked),
    CaseConflict (changed concurrently, or no change at all) and ValueError (empty actor, team
    or note).
    """
    if not actor or not actor.strip():
        raise ValueError("a handoff needs an actor (who is handing the case off)")
    if not to_team or not to_team.strip():
        raise ValueError("a handoff needs a team to hand the case to")
    if not note or not note.strip():
        raise ValueError("a handoff needs a note for the next owner: what was done, what is next")
    to_team, note = to_team.strip(), note.strip()
    to_assignee = to_assignee.strip() if to_assignee and to_assignee.strip() else None
    at = _utc_naive(now)
    wanted = case_id.strip().upper() if isinstance(case_id, str) else ""
    if not wanted:
        raise CaseNotFound(f"invalid case id {case_id!r}")

    with store.engine.connect() as conn, conn.begin():
        case = conn.execute(
            sa.select(rescue_cases).where(rescue_cases.c.case_id == wanted).with_for_update()
        ).mappings().first()
        if case is None:
            raise CaseNotFound(f"no rescue case {wanted!r} in the queue at {store.display_url}")
        status = case["status"]
        if status in TERMINAL_STATUSES:
            raise InvalidTransition(wanted, status, status, "a closed case cannot be handed off")
        if to_assignee is None and status not in CLAIMABLE_STATUSES:
            raise InvalidTransition(wanted, status, status,
                                    "a case that is being worked needs a person to hand it to, not only a team")
        if (case["team"], case["assignee"]) == (to_team, to_assignee):
            owner = f"{to_assignee} in team {to_team}" if to_assignee else f"team {to_team}"
            raise CaseConflict(f"case {wanted} is already with {owner}")
        move = {"from_team": case["team"], "to_team": to_team, "from_assignee": case["assignee"], "to_assignee": to_assignee}
        context = reassigned_context(conn, case, team=to_team, assignee=to_assignee,
                                     escalation_level=case["escalation_level"], at=at,
                                     handoff={"at": at, "actor": actor, "note": note, **move})
        result = conn.execute(
            rescue_cases.update()
            .where(rescue_cases.c.case_id == wanted, rescue_cases.c.version == case["version"])
            .values(team=to_team, assignee=to_assignee, context=context, updated_at=at, version=case["version"] + 1)
        )
        if result.rowcount != 1:
            raise CaseConflict(f"case {wanted} was changed by someone else; reload it")
        payload = {"from_team": case["team"], "to_team": to_team, "from_assignee": case["assignee"],
                   "to_assignee": to_assignee}
        conn.execute(case_events.insert().values(
            case_id=wanted, at=at, actor=actor, kind=HANDOFF_KIND, from_status=status, to_status=status,
            reason=note, payload=payload,
        ))
        recipients = [*notify, *([to_assignee] if to_assignee else [])] or [f"log:{to_team}"]
        _enqueue_notices(conn, dict(case), actor=actor, note=note, payload=payload, recipients=recipients,
                         version=case["version"] + 1, at=at)
    return store.get_case(wanted)


def _enqueue_notices(conn: sa.Connection, case: dict[str, Any], *, actor: str, note: str, payload: dict[str, Any],
                     recipients: Sequence[str], version: int, at: datetime) -> None:
    """One outbox row per distinct destination, keyed by case version so a retry adds none."""
    name = case["account_name"] or case["account_id"]
    owner = f"{payload['to_assignee']} ({payload['to_team']})" if payload["to_assignee"] else f"team {payload['to_team']}"
    text = f"{actor} handed {case['priority']} rescue case {case['case_id']} ({name}) to {owner}: {note}"
    message = {"kind": HANDOFF_KIND, "case_id": case["case_id"], "account_id": case["account_id"],
               "account_name": case["account_name"], "priority": case["priority"], "team": payload["to_team"],
               "assignee": payload["to_assignee"], "arr": case["arr"], "churn_risk": case["churn_risk"],
               "reason": case["reason"], "note": note, "actor": actor, "text": text, **payload}
    rows: dict[str, dict[str, Any]] = {}
    for recipient in recipients:
        channel, destination = channel_for(recipient)
        key = f"{HANDOFF_KIND}:{case['case_id']}:v{version}:{channel}:{destination}"
        rows.setdefault(key, {
            "created_at": at, "case_id": case["case_id"], "channel": channel, "destination": destination,
            "kind": HANDOFF_KIND, "dedupe_key": key, "payload": message, "status": "pending", "attempts": 0,
            "last_error": None, "next_attempt_at": at, "delivered_at": None,
        })
    existing = set(conn.execute(sa.select(outbox.c.dedupe_key).where(outbox.c.dedupe_key.in_(list(rows)))).scalars())
    fresh = [row for key, row in rows.items() if key not in existing]
    if fresh:
        conn.execute(outbox.insert(), fresh)


def _utc_naive(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc).replace(tzinfo=None)
    return now.astimezone(timezone.utc).replace(tzinfo=None) if now.tzinfo else now

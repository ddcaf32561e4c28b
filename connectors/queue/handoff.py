"""Hand a rescue case to another person or team, with the note the next owner reads first.

A handoff is a reassignment done by a person (the SLA clock's reassignments go through
`QueueStore.apply_escalations`). It runs in the queue store's case transaction
(`QueueStore.locked_case`), with the same guarantees as every other change to a case:

- the case row is locked and updated only if its `version` is unchanged (a concurrent change
  makes the handoff fail with `CaseConflict`, never overwrite);
- a `handoff` row is appended to the `case_events` audit trail, carrying the note and the
  previous and new team and assignee;
- the new owner and any other recipients are told through the outbox, in the same transaction.

Lifecycle rules (`models.cases.lifecycle.check_handoff`): a closed case cannot be handed off; the status does not
change; a case handed to a team without naming a person must still be claimable (open or
acknowledged), otherwise nobody could take it, so an in-progress or paused case needs a person.
Who may hand off what (roles, teams) is the caller's business: this module only stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from connectors.queue.store import QueueStore
from connectors.queue.values import clean_text, require_actor, require_id
from models.cases.context import reassigned_context
from models.cases.lifecycle import check_handoff
from models.cases.notices import HANDOFF, handoff_notices
from models.clock import now_or

__all__ = ["HANDOFF_KIND", "handoff"]

#: `case_events.kind` and outbox `kind` of a handoff.
HANDOFF_KIND = HANDOFF


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
    CaseConflict (changed concurrently, or no change at all) and ValueError (an actor, team,
    assignee or note that is empty or not plain text: `connectors.queue.values`).
    """
    actor = require_actor(actor)
    if not to_team or not to_team.strip():
        raise ValueError("a handoff needs a team to hand the case to")
    to_team = require_id(to_team, "team")
    to_assignee = require_id(to_assignee, "assignee") if to_assignee and to_assignee.strip() else None
    if not note or not note.strip():
        raise ValueError("a handoff needs a note for the next owner: what was done, what is next")
    note = clean_text(note, "note", required=True)
    at = now_or(now)

    with store.locked_case(case_id) as tx:
        case = dict(tx.case)
        check_handoff(case["status"], team=case["team"], assignee=case["assignee"], to_team=to_team,
                      to_assignee=to_assignee, case_id=case["case_id"])
        move = {"from_team": case["team"], "to_team": to_team, "from_assignee": case["assignee"], "to_assignee": to_assignee}
        plays, moves = tx.history()
        context = reassigned_context(case["context"], team=to_team, assignee=to_assignee,
                                     escalation_level=case["escalation_level"], plays=plays, moves=moves, at=at,
                                     handoff={"at": at, "actor": actor, "note": note, **move})
        tx.update({"team": to_team, "assignee": to_assignee, "context": context}, at)
        tx.record(HANDOFF_KIND, actor=actor, at=at, reason=note, payload=move)
        tx.notify(handoff_notices(case, actor=actor, note=note, move=move, recipients=notify,
                                  version=tx.case["version"]), at)
    return store.get_case(case["case_id"])

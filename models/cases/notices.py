"""Who is told about a change to a rescue case, and in what words.

Pure: the queue store turns each `Notice` into an outbox row in the same transaction as the
change that causes it (`connectors.queue.outbox`), and the notifiers deliver them later.

Recipients are written as the policy's RACI lists and the routing config write them: `slack:#x`
or `#x` (Slack), `email:a@b.c` or `a@b.c` (e-mail), `log:x` or anything else, such as a person's
handle or a team key (the log channel, which the embedded notifier writes to the log).
`channel_for` turns one into its outbox (channel, destination).

Every notice has a `dedupe_key` (the change's key + channel + destination), so the same change
enqueued twice is told once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Outbox kinds of the notices this module words.
CASE_OPENED, SLA_WARNING, ESCALATED, HANDOFF = "case_opened", "sla_warning", "escalated", "handoff"
#: A snoozed case whose wake-up time came: back to work, its clocks running again.
WOKEN = "woken"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Notice:
    """One message to one destination about one case."""

    case_id: str | None
    channel: str
    destination: str
    kind: str
    dedupe_key: str
    payload: Mapping[str, Any] = field(default_factory=dict)


def channel_for(destination: str) -> tuple[str, str]:
    """The outbox (channel, destination) of a RACI recipient.

    `slack:#x` or `#x` -> Slack; `email:a@b.c` or `a@b.c` -> e-mail; `log:x` or anything else
    (a person's handle, a team key) -> the log channel, which the embedded notifier writes to the
    log. Deployments reach people by declaring Slack channels or addresses in the policy's RACI.
    """
    dest = destination.strip()
    if not dest:
        raise ValueError("empty notification destination")
    scheme, sep, rest = dest.partition(":")
    if sep and scheme in ("slack", "email", "log") and rest:
        return scheme, rest
    if dest.startswith("#"):
        return "slack", dest
    if _EMAIL.match(dest):
        return "email", dest
    return "log", dest


def case_message(case: Mapping[str, Any], kind: str, extra: Mapping[str, Any]) -> str:
    """The one-paragraph text of a notice about `case` (what happened, figures, why, owner)."""
    name = case.get("account_name") or case["account_id"]
    arr = case.get("arr")
    risk = case.get("churn_risk")
    figures = ", ".join(
        part for part in (
            f"ARR {arr:,.0f}" if arr is not None else "",
            f"churn risk {risk:.0%}" if risk is not None else "",
        ) if part
    )
    owner = f"team {case['team']}, assignee {case.get('assignee') or 'unassigned'}"
    head = {
        CASE_OPENED: f"New {case['priority']} rescue case {case['case_id']} for {name}",
        SLA_WARNING: f"SLA warning on {case['priority']} rescue case {case['case_id']} ({name})",
        ESCALATED: f"Escalated {case['priority']} rescue case {case['case_id']} ({name})",
        WOKEN: f"Snooze over: {case['priority']} rescue case {case['case_id']} ({name}) is back in progress",
    }.get(kind, f"{kind} on rescue case {case['case_id']} ({name})")
    why = extra.get("message") or case.get("reason") or ""
    return f"{head}" + (f" ({figures})" if figures else "") + (f": {why}" if why else "") + f". {owner.capitalize()}."


def case_notices(case: Mapping[str, Any], kind: str, key_prefix: str, recipients: Sequence[str],
                 extra: Mapping[str, Any] | None = None) -> list[Notice]:
    """One notice per distinct destination, deduplicated by `key_prefix` + channel + destination."""
    extra = extra or {}
    payload = {
        "kind": kind,
        "case_id": case["case_id"],
        "account_id": case["account_id"],
        "account_name": case.get("account_name"),
        "priority": case["priority"],
        "team": case["team"],
        "assignee": case.get("assignee"),
        "reason": case.get("reason"),
        "arr": case.get("arr"),
        "churn_risk": case.get("churn_risk"),
        "expected_arr_at_risk": case.get("expected_arr_at_risk"),
        "text": case_message(case, kind, extra),
        **extra,
    }
    return _per_destination(case["case_id"], kind, key_prefix, recipients, payload)


def opened_notices(case: Mapping[str, Any], team_recipients: Sequence[str]) -> list[Notice]:
    """Who hears of a new case: its team's destinations and its assignee (else the team's log)."""
    recipients = list(team_recipients)
    if case.get("assignee"):
        recipients.append(case["assignee"])
    return case_notices(case, CASE_OPENED, f"{CASE_OPENED}:{case['case_id']}", recipients or [f"log:{case['team']}"])


def handoff_notices(case: Mapping[str, Any], *, actor: str, note: str, move: Mapping[str, Any],
                    recipients: Sequence[str], version: int) -> list[Notice]:
    """The notices of a handoff, keyed by the case version it created so a retry adds none.

    `move` has from_team, to_team, from_assignee and to_assignee; the new assignee is told
    besides `recipients`, and the receiving team's log when nobody else is."""
    to_team, to_assignee = move["to_team"], move["to_assignee"]
    everyone = [*recipients, *([to_assignee] if to_assignee else [])] or [f"log:{to_team}"]
    name = case["account_name"] or case["account_id"]
    owner = f"{to_assignee} ({to_team})" if to_assignee else f"team {to_team}"
    text = f"{actor} handed {case['priority']} rescue case {case['case_id']} ({name}) to {owner}: {note}"
    payload = {"kind": HANDOFF, "case_id": case["case_id"], "account_id": case["account_id"],
               "account_name": case["account_name"], "priority": case["priority"], "team": to_team,
               "assignee": to_assignee, "arr": case["arr"], "churn_risk": case["churn_risk"],
               "reason": case["reason"], "note": note, "actor": actor, "text": text, **move}
    return _per_destination(case["case_id"], HANDOFF, f"{HANDOFF}:{case['case_id']}:v{version}", everyone, payload)


def _per_destination(case_id: str, kind: str, key_prefix: str, recipients: Sequence[str],
                     payload: Mapping[str, Any]) -> list[Notice]:
    notices: dict[str, Notice] = {}
    for recipient in recipients:
        channel, destination = channel_for(recipient)
        key = f"{key_prefix}:{channel}:{destination}"
        notices.setdefault(key, Notice(case_id, channel, destination, kind, key, payload))
    return list(notices.values())

"""The rescue case lifecycle: statuses, allowed transitions and the errors the queue raises.

A case is opened by routing and then worked by a person::

    open -> acknowledged -> in_progress <-> (snoozed | waiting_customer)
                                        -> resolved_saved | resolved_churned | closed_no_action

- *open*: created by the pipeline, nobody has touched it yet (the first-touch SLA clock runs).
- *acknowledged*: a person has seen it (first touch); `claim` on an open case acknowledges it
  and makes the claimer its assignee.
- *in_progress*: someone is working it (a play was logged or work was resumed).
- *snoozed* / *waiting_customer*: paused; SLA clocks do not run. Work resumes with
  *in_progress*. Snoozing a snoozed case moves its wake-up time; a snooze wakes at most
  `MAX_SNOOZE_DAYS` days ahead.
- *resolved_saved*, *resolved_churned*, *closed_no_action*: terminal. A terminal case is never
  reopened; after the policy's cooldown a new case may be opened for the account.

An open case may be closed without action directly (a false positive triaged at first sight), but
it cannot be resolved as saved or churned before anyone has worked it.

This module is pure: the queue store (`connectors.queue.store`) calls it to validate every change
before writing it, and the CLI shows its error messages as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

OPEN = "open"
ACKNOWLEDGED = "acknowledged"
IN_PROGRESS = "in_progress"
SNOOZED = "snoozed"
WAITING_CUSTOMER = "waiting_customer"
RESOLVED_SAVED = "resolved_saved"
RESOLVED_CHURNED = "resolved_churned"
CLOSED_NO_ACTION = "closed_no_action"

#: Every status, in lifecycle order.
STATUSES: tuple[str, ...] = (
    OPEN,
    ACKNOWLEDGED,
    IN_PROGRESS,
    SNOOZED,
    WAITING_CUSTOMER,
    RESOLVED_SAVED,
    RESOLVED_CHURNED,
    CLOSED_NO_ACTION,
)
TERMINAL_STATUSES: frozenset[str] = frozenset({RESOLVED_SAVED, RESOLVED_CHURNED, CLOSED_NO_ACTION})
#: Statuses of a case that still needs work: at most one such case exists per account.
ACTIVE_STATUSES: tuple[str, ...] = tuple(s for s in STATUSES if s not in TERMINAL_STATUSES)
#: Statuses during which SLA clocks are paused.
PAUSED_STATUSES: frozenset[str] = frozenset({SNOOZED, WAITING_CUSTOMER})
#: Statuses from which `claim` may take a case.
CLAIMABLE_STATUSES: frozenset[str] = frozenset({OPEN, ACKNOWLEDGED})
#: The furthest a snooze may reach: a case snoozed longer is a case nobody works.
MAX_SNOOZE_DAYS = 365

_RESOLUTIONS = (RESOLVED_SAVED, RESOLVED_CHURNED, CLOSED_NO_ACTION)

TRANSITIONS: dict[str, frozenset[str]] = {
    OPEN: frozenset({ACKNOWLEDGED, CLOSED_NO_ACTION}),
    ACKNOWLEDGED: frozenset({IN_PROGRESS, SNOOZED, WAITING_CUSTOMER, *_RESOLUTIONS}),
    IN_PROGRESS: frozenset({SNOOZED, WAITING_CUSTOMER, *_RESOLUTIONS}),
    SNOOZED: frozenset({IN_PROGRESS, SNOOZED, WAITING_CUSTOMER, *_RESOLUTIONS}),
    WAITING_CUSTOMER: frozenset({IN_PROGRESS, SNOOZED, *_RESOLUTIONS}),
    RESOLVED_SAVED: frozenset(),
    RESOLVED_CHURNED: frozenset(),
    CLOSED_NO_ACTION: frozenset(),
}

Outcome = Literal["saved", "churned", "no_action"]
#: `resolve --outcome X` -> the terminal status it moves the case to.
OUTCOME_STATUS: dict[str, str] = {
    "saved": RESOLVED_SAVED,
    "churned": RESOLVED_CHURNED,
    "no_action": CLOSED_NO_ACTION,
}


class CaseError(Exception):
    """Base class of every error about one rescue case; the message is meant for people."""


class CaseNotFound(CaseError, LookupError):
    """No case has this id."""


class InvalidTransition(CaseError, ValueError):
    """The requested status change is not allowed from the case's current status."""

    def __init__(self, case_id: str | None, from_status: str, to_status: str, detail: str = "") -> None:
        self.case_id = case_id
        self.from_status = from_status
        self.to_status = to_status
        allowed = sorted(TRANSITIONS.get(from_status, ()))
        subject = f"case {case_id}" if case_id else "case"
        msg = f"{subject}: cannot go from {from_status} to {to_status}"
        if detail:
            msg += f" ({detail})"
        msg += "; allowed from " + from_status + ": " + (", ".join(allowed) if allowed else "none (terminal)")
        super().__init__(msg)


class CaseConflict(CaseError):
    """Someone else changed the case first (already claimed, or a stale version)."""


def validate_status(status: str) -> str:
    """Return `status` if it is a known status, else raise ValueError naming the known ones."""
    if status not in TRANSITIONS:
        raise ValueError(f"unknown case status {status!r}; expected one of: {', '.join(STATUSES)}")
    return status


def allowed_transitions(status: str) -> frozenset[str]:
    """The statuses a case in `status` may move to."""
    return TRANSITIONS[validate_status(status)]


def is_terminal(status: str) -> bool:
    return validate_status(status) in TERMINAL_STATUSES


def check_transition(from_status: str, to_status: str, *, case_id: str | None = None) -> None:
    """Raise InvalidTransition unless `from_status -> to_status` is allowed."""
    validate_status(from_status)
    validate_status(to_status)
    if to_status not in TRANSITIONS[from_status]:
        raise InvalidTransition(case_id, from_status, to_status)


def check_snooze_until(until: datetime | None, now: datetime, *, case_id: str | None = None,
                       from_status: str = ACKNOWLEDGED) -> datetime:
    """`until` if a case may be snoozed until then: in the future (InvalidTransition otherwise)
    and at most `MAX_SNOOZE_DAYS` days ahead (ValueError naming the limit otherwise)."""
    if until is None or until <= now:
        raise InvalidTransition(case_id, from_status, SNOOZED, "snoozing needs a wake-up time in the future")
    latest = now + timedelta(days=MAX_SNOOZE_DAYS)
    if until > latest:
        subject = f"case {case_id}: " if case_id else ""
        raise ValueError(f"{subject}cannot snooze until {until:%Y-%m-%d %H:%M}: a snooze lasts at most "
                         f"{MAX_SNOOZE_DAYS} days (MAX_SNOOZE_DAYS), until {latest:%Y-%m-%d %H:%M} UTC at the latest")
    return until


def resolution_status(outcome: str) -> str:
    """The terminal status of a resolution outcome (saved / churned / no_action)."""
    try:
        return OUTCOME_STATUS[outcome]
    except KeyError:
        raise ValueError(
            f"unknown outcome {outcome!r}; expected one of: {', '.join(OUTCOME_STATUS)}"
        ) from None


def status_after_play(status: str, *, case_id: str | None = None) -> str:
    """Logging a play means the case is being worked: the status it moves to (or keeps).

    A play on an acknowledged or paused case resumes work (in_progress); on an open case it is
    refused (claim or acknowledge it first, so first touch and ownership are recorded); on a
    terminal case it is refused.
    """
    validate_status(status)
    if status == IN_PROGRESS:
        return IN_PROGRESS
    if status == OPEN:
        raise InvalidTransition(case_id, status, IN_PROGRESS, "claim or acknowledge it before logging a play")
    check_transition(status, IN_PROGRESS, case_id=case_id)
    return IN_PROGRESS


@dataclass(frozen=True)
class ClaimDecision:
    """What a claim does to a case: its new status and assignee, or nothing (already yours)."""

    status: str
    assignee: str
    changed: bool
    first_touch: bool


def decide_claim(status: str, assignee: str | None, actor: str, *, case_id: str | None = None) -> ClaimDecision:
    """Decide the effect of `actor` claiming a case in `status` currently assigned to `assignee`.

    - An open case can be claimed by anyone (the assignee proposed by routing is a suggestion
      until someone touches the case); it becomes acknowledged and the claimer's.
    - An acknowledged case with no assignee (acknowledged by a triager) can be claimed.
    - A case already owned by `actor` is theirs: nothing changes.
    - Otherwise the case is someone else's (CaseConflict) or terminal (InvalidTransition).
    """
    validate_status(status)
    if not actor or not actor.strip():
        raise ValueError("claim needs a non-empty actor")
    if status in TERMINAL_STATUSES:
        raise InvalidTransition(case_id, status, ACKNOWLEDGED, "the case is closed")
    subject = f"case {case_id}" if case_id else "case"
    if status == OPEN:
        return ClaimDecision(ACKNOWLEDGED, actor, changed=True, first_touch=True)
    if assignee == actor:
        return ClaimDecision(status, actor, changed=False, first_touch=False)
    if status in CLAIMABLE_STATUSES and assignee is None:
        return ClaimDecision(status, actor, changed=True, first_touch=False)
    if assignee is None:
        raise InvalidTransition(case_id, status, ACKNOWLEDGED, "only open or acknowledged cases can be claimed")
    raise CaseConflict(f"{subject} already claimed by {assignee} (status {status})")


def check_handoff(status: str, *, team: str, assignee: str | None, to_team: str, to_assignee: str | None,
                  case_id: str | None = None) -> None:
    """Raise unless a case in `status`, owned by `team` / `assignee`, may be handed to `to_team` /
    `to_assignee`: a closed case cannot be handed off (InvalidTransition); a case handed to a
    team without naming a person must still be claimable, otherwise nobody could take it
    (InvalidTransition); handing a case to its current owner is no handoff (CaseConflict)."""
    validate_status(status)
    if status in TERMINAL_STATUSES:
        raise InvalidTransition(case_id, status, status, "a closed case cannot be handed off")
    if to_assignee is None and status not in CLAIMABLE_STATUSES:
        raise InvalidTransition(case_id, status, status,
                                "a case that is being worked needs a person to hand it to, not only a team")
    if (team, assignee) == (to_team, to_assignee):
        owner = f"{to_assignee} in team {to_team}" if to_assignee else f"team {to_team}"
        raise CaseConflict(f"case {case_id} is already with {owner}")

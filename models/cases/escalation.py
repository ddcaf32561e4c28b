"""What one due escalation step does to one case: the pure half of the SLA clock's write.

`models.cases.ladder.due_escalations` finds the steps due; `step_effect` says what applying one
changes (escalation level, team, assignee), what the audit trail records and who is told, so
the queue store (`connectors.queue.sla.SlaStore.apply_escalations`) only writes it:

- `warn` records an `sla_warning` and tells the step's RACI recipients;
- `notify` raises the case's escalation level, records `escalated` and tells them;
- `reassign` raises the level and moves the case to the step's team and person (the new
  assignee is told as responsible besides the RACI recipients).

Nobody to tell means the team's log channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ACTIONS: tuple[str, ...] = ("warn", "reassign", "notify")
SLA_WARNING_KIND, ESCALATED_KIND = "sla_warning", "escalated"


class EscalationError(ValueError):
    """A step cannot be applied (unknown action, missing field)."""


@dataclass(frozen=True)
class StepEffect:
    """The change one step makes to one case."""

    step_key: str
    action: str
    kind: str
    message: str
    values: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)
    recipients: dict[str, list[str]] = field(default_factory=dict)

    @property
    def moves(self) -> bool:
        return self.action == "reassign"

    def destinations(self, team: str) -> list[str]:
        return list(self.recipients) or [f"log:{team}"]


def step_field(step: Any, name: str, *default: Any) -> Any:
    """`name` of a step given as an object (`EscalationStep`) or a mapping."""
    if isinstance(step, Mapping):
        if name in step:
            return step[name]
    elif hasattr(step, name):
        return getattr(step, name)
    if default:
        return default[0]
    raise EscalationError(f"escalation step {step!r} has no {name!r}")


def step_effect(step: Any, case: Mapping[str, Any]) -> StepEffect:
    """What applying `step` (step_key, action, message, to_team, to_assignee, raci) does to `case`."""
    key = str(step_field(step, "step_key"))
    action = str(step_field(step, "action"))
    if action not in ACTIONS:
        raise EscalationError(f"escalation step {key}: unknown action {action!r}; expected {', '.join(ACTIONS)}")
    message = step_field(step, "message", "") or ""
    values: dict[str, Any] = {}
    payload: dict[str, Any] = {"step_key": key, "action": action, "message": message}
    if action in ("reassign", "notify"):
        values["escalation_level"] = int(case["escalation_level"]) + 1
    if action == "reassign":
        to_team = step_field(step, "to_team", None) or case["team"]
        to_assignee = step_field(step, "to_assignee", None)
        values.update(team=to_team, assignee=to_assignee)
        payload.update(from_team=case["team"], to_team=to_team, from_assignee=case["assignee"], to_assignee=to_assignee)
    recipients: dict[str, list[str]] = {}
    for role, who in (step_field(step, "raci", None) or {}).items():
        for dest in ([who] if isinstance(who, str) else list(who or ())):
            if dest:
                recipients.setdefault(str(dest), []).append(str(role))
    if action == "reassign" and values.get("assignee"):
        recipients.setdefault(values["assignee"], []).append("responsible")
    kind = SLA_WARNING_KIND if action == "warn" else ESCALATED_KIND
    return StepEffect(step_key=key, action=action, kind=kind, message=message, values=values, payload=payload,
                      recipients=recipients)

"""The desk's operations, shared by the web pages and the JSON API.

`Desk` holds the queue store, the desk users and the escalation policy. Every change goes
through the queue store (`claim`, `transition`, `log_play`, `resolve`) or `connectors.queue.handoff`,
so the lifecycle rules of `models.cases.lifecycle`, the audit trail and the outbox apply exactly as
they do for `rescue queue ...`; this module adds only who may do it (`pipelines.desk.auth`) and
the policy checks of a handoff (known team, known person, capacity).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal


from connectors.queue.users import DeskUser, DeskUsers
from connectors.queue.handoff import handoff
from connectors.queue.store import QueueStore
from connectors.queue.values import require_id
from models.cases.lifecycle import ACTIVE_STATUSES, SNOOZED, STATUSES
from models.policy.schema import Policy
from models.cases.metrics import queue_metrics
from models.cases.ladder import escalation_badge
from models.cases.ordering import urgency_key
from models.cases.sla import Pause, paused_intervals
from models.cases.sla_text import sla_overview, zone
from pipelines.desk import present
from pipelines.desk.auth import can_manage, check_can_act, check_can_hand_off, require_manager

Scope = Literal["mine", "team", "all"]
#: Status filter values: a status, every active status, or everything.
STATUS_FILTERS: tuple[str, ...] = ("active", "all", *STATUSES)


@dataclass(frozen=True)
class QueueFilters:
    scope: Scope = "mine"
    priority: str | None = None
    status: str = "active"
    breaching: bool | None = None
    segment: str | None = None


class Desk:
    """The rescue desk over one queue database and one escalation policy."""

    def __init__(self, store: QueueStore, users: DeskUsers, policy: Policy) -> None:
        self.store = store
        self.users = users
        self.policy = policy

    # -- reading -------------------------------------------------------------------------------

    def queue(self, user: DeskUser, filters: QueueFilters, now: datetime, *, tz: str | None = None) -> list[dict[str, Any]]:
        """The cases a queue view shows, in the queue's one order (`models.cases.ordering`:
        priority, breach state, ARR at risk, SLA due, case id); SLA times in the zone `tz`."""
        if filters.status not in STATUS_FILTERS:
            raise ValueError(f"unknown status filter {filters.status!r}; expected one of: {', '.join(STATUS_FILTERS)}")
        statuses = {"active": list(ACTIVE_STATUSES), "all": None}.get(filters.status, [filters.status])
        zone(tz)  # an unknown zone is refused before anything is read
        cases = self.store.list_cases(
            team=user.team if filters.scope == "team" else None,
            assignee=user.user_id if filters.scope == "mine" else None,
            priority=filters.priority or None,
            status=statuses,
            breaching=filters.breaching,
            now=now,
            sla=True,
        )
        pauses = self.store.pauses_of(cases["case_id"], now=now)
        rows = [self.summary(case, now, pauses.get(case["case_id"]), tz=tz)
                for case in present.sort_queue(cases).to_dict("records")]
        if filters.segment:
            rows = [r for r in rows if r["segment"] == filters.segment]
        return rows

    def summary(self, case: Mapping[str, Any], now: datetime, pauses: Iterable[Pause] | None = None, *,
                tz: str | None = None) -> dict[str, Any]:
        """The fields of a case shown in a queue row (and returned by the API); `pauses` are its
        paused intervals (`QueueStore.pauses_of`), for its SLA clock, worded in the zone `tz`."""
        v = present.value
        sla = present.sla_status(case, self.policy, now, pauses, tz=tz)
        return {
            "case_id": case["case_id"],
            "account_id": case["account_id"],
            "account_name": v(case.get("account_name")),
            "segment": present.segment_of(case),
            "status": case["status"],
            "priority": case["priority"],
            "team": case["team"],
            "assignee": v(case.get("assignee")),
            "arr": _float(case.get("arr")),
            "churn_risk": _float(case.get("churn_risk")),
            "health_score": _float(case.get("health_score")),
            "expected_arr_at_risk": _float(case.get("expected_arr_at_risk")),
            "reason": v(case.get("reason")),
            "opened_at": present.as_datetime(case.get("opened_at")),
            "acknowledged_at": present.as_datetime(case.get("acknowledged_at")),
            "resolved_at": present.as_datetime(case.get("resolved_at")),
            "snoozed_until": present.as_datetime(case.get("snoozed_until")),
            "outcome": v(case.get("outcome")),
            "escalation_level": int(case.get("escalation_level") or 0),
            "escalation": escalation_badge(case, self.policy),
            "version": int(case["version"]),
            "due_at": sla.due_at,
            "business_minutes_left": sla.business_minutes_left,
            "sla": sla.as_dict(),
        }

    def case(self, case_id: str, now: datetime, *, tz: str | None = None) -> dict[str, Any]:
        """One case with its context package, evidence, plays and audit trail. Raises CaseNotFound."""
        zone(tz)
        case = self.store.get_case(case_id)
        events = self.store.case_events(case["case_id"])
        trail = [{k: present.value(val) for k, val in row.items()} for row in events.to_dict("records")]
        for row in trail:
            row["at"] = present.as_datetime(row["at"])
            row["payload"] = row["payload"] or {}
        return {
            **self.summary(case, now, paused_intervals(
                events.to_dict("records"), now=now,
                snoozed_until=case["snoozed_until"] if case["status"] == SNOOZED else None), tz=tz),
            "policy_version": case["policy_version"],
            "model_version": case["model_version"],
            "rule_id": case["rule_id"],
            "required_skills": list(case["required_skills"] or []),
            "context": dict(case["context"] or {}),
            "evidence": list(case["evidence"] or []),
            "plays": [{k: a[k] for k in ("action_id", "at", "actor", "play", "note", "outcome")} for a in case["actions"]],
            "events": trail,
        }

    def handoff_targets(self, user: DeskUser) -> list[dict[str, Any]]:
        """Teams (and their members) a user may hand a case to: their own team, or all for managers."""
        load = self.member_load()
        return [
            {"team": key, "name": team.name,
             "members": [{"id": m.id, "name": m.name, "capacity": m.capacity, "open": load.get(m.id, 0)}
                         for m in team.members]}
            for key, team in self.policy.teams.items()
            if can_manage(user) or key == user.team
        ]

    def member_load(self) -> dict[str, int]:
        """Active cases per assignee."""
        return self.store.routing_state().member_load

    def manager_view(self, now: datetime, *, tz: str | None = None) -> dict[str, Any]:
        """Team load vs capacity, SLA attainment per team and priority, the cases near or past
        breach (in the queue's one order) and one sentence on where every open case stands."""
        zone(tz)
        active = self.store.list_cases(status="active")
        load = active["assignee"].dropna().value_counts().to_dict()
        open_by_team = active["team"].value_counts().to_dict()
        unassigned = active.loc[active["assignee"].isna(), "team"].value_counts().to_dict()
        teams = []
        for key, team in self.policy.teams.items():
            members = [{"id": m.id, "name": m.name, "capacity": m.capacity, "open": int(load.get(m.id, 0))}
                       for m in team.members]
            capacity = sum(m["capacity"] for m in members)
            teams.append({
                "team": key, "name": team.name, "tier": team.tier, "capacity": capacity,
                "open_cases": int(open_by_team.get(key, 0)), "unassigned": int(unassigned.get(key, 0)),
                "load_pct": (int(open_by_team.get(key, 0)) / capacity) if capacity else None,
                "members": members,
            })
        pauses = self.store.pauses_of(active["case_id"], now=now)
        summaries = [self.summary(c, now, pauses.get(c["case_id"]), tz=tz) for c in active.to_dict("records")]
        summaries.sort(key=_order_key)
        near = [s for s in summaries if s["sla"]["breached"] or s["sla"]["near_breach"]]
        overview = sla_overview([s["sla"]["state"] for s in summaries],
                                escalated=sum(1 for s in summaries if s["escalation_level"] > 0))
        return {"teams": teams, "attainment": self._attainment(now), "near_breach": near, "overview": overview}

    def _attainment(self, now: datetime) -> list[dict[str, Any]]:
        cases = self.store.list_cases()
        events = self.store.audit_events()
        known = set(cases["team"]) <= set(self.policy.teams)
        calendars = {key: self.policy.team_calendar(key) for key in self.policy.teams} if known else None
        overall = queue_metrics(cases, events, now=now, calendars=calendars).overall
        keep = ["team", "priority", "cases_opened", "first_touch_median_h", "first_touch_attainment",
                "resolution_median_h", "resolution_attainment", "reassignments", "bounced_cases"]
        return [{k: present.value(row[k]) for k in keep} for row in overall.to_dict("records")]

    def overflow(self, user: DeskUser) -> list[dict[str, Any]]:
        """The latest snapshot's overflow accounts (`QueueStore.overflow`), riskiest first:
        account, team, priority, rule, churn risk, ARR, expected ARR at risk, why it was not
        routed (`cause`: budget or capacity, in words and as routing worded it) and the case
        opened for it since, if any. Managers only."""
        require_manager(user, "see the overflow accounts")
        rows = []
        for r in self.store.overflow().to_dict("records"):
            v = present.value
            rows.append({
                "account_id": r["account_id"], "account_name": v(r.get("account_name")),
                "snapshot_date": present.as_datetime(r["snapshot_date"]),
                "team": v(r.get("team")), "priority": v(r.get("priority")), "rule_id": v(r.get("rule_id")),
                "churn_risk": _float(r.get("churn_risk")), "arr": _float(r.get("arr")),
                "expected_arr_at_risk": _float(r.get("expected_arr_at_risk")),
                "rank": None if v(r.get("rank")) is None else int(r["rank"]),
                "cause": v(r.get("cause")), "cause_text": present.overflow_cause_text(v(r.get("cause"))),
                "reason": v(r.get("reason")), "case_id": v(r.get("case_id")),
            })
        return rows

    def open_overflow(self, user: DeskUser, account_id: str) -> tuple[str, str, bool]:
        """Open the case of an overflow account by hand (managers only; audited with their id;
        a second request opens nothing and says where the case is): (message, case id, whether
        this request opened it)."""
        require_manager(user, "open a case for an overflow account")
        account_id = require_id(_text(account_id) or "", "account")
        case, opened = self.store.open_overflow_case(account_id, actor=user.user_id, policy=self.policy)
        if opened:
            message = (f"{case['case_id']} opened for {case['account_name'] or account_id}: team {case['team']}, "
                       f"{case['assignee'] or 'unassigned'}.")
        else:
            message = f"{account_id} already has an active case, {case['case_id']}; nothing opened."
        return message, case["case_id"], opened

    # -- acting --------------------------------------------------------------------------------

    def _case_for(self, user: DeskUser, case_id: str) -> dict[str, Any]:
        case = self.store.get_case(case_id)
        check_can_act(user, case)
        return case

    def claim(self, user: DeskUser, case_id: str) -> str:
        case = self._case_for(user, case_id)
        self.store.claim(case["case_id"], user.user_id)
        return f"{case['case_id']} is yours."

    def acknowledge(self, user: DeskUser, case_id: str, reason: str | None) -> str:
        case = self._case_for(user, case_id)
        self.store.transition(case["case_id"], "acknowledged", actor=user.user_id, reason=_text(reason))
        return f"{case['case_id']} acknowledged."

    def snooze(self, user: DeskUser, case_id: str, until: datetime, reason: str | None) -> str:
        case = self._case_for(user, case_id)
        try:
            wake = until.astimezone(timezone.utc).replace(tzinfo=None) if until.tzinfo else until
        except (OverflowError, ValueError):
            raise ValueError(f"snooze until {until.isoformat()} is not a usable time") from None
        self.store.transition(case["case_id"], "snoozed", actor=user.user_id, reason=_text(reason), snooze_until=wake)
        return f"{case['case_id']} snoozed until {wake:%Y-%m-%d %H:%M} UTC."

    def log_play(self, user: DeskUser, case_id: str, play: str, note: str | None) -> str:
        """Log a play of the policy's catalogue (the queue store refuses any other)."""
        case = self._case_for(user, case_id)
        if not play or not play.strip():
            raise ValueError(f"name the play you ran, one of: {', '.join(self.policy.plays)}")
        action = self.store.log_play(case["case_id"], actor=user.user_id, play=play.strip(), note=_text(note))
        return f"Play {action['play']} logged on {case['case_id']}."

    def play_choices(self, team: str) -> list[dict[str, Any]]:
        """The policy's plays for a case of `team`: those that suit the team first."""
        suited = self.policy.plays_for(team)
        order = suited + [key for key in self.policy.plays if key not in suited]
        return [{"id": key, "description": self.policy.plays[key].description, "suits": key in suited}
                for key in order]

    def resolve(self, user: DeskUser, case_id: str, outcome: str, note: str | None) -> str:
        case = self._case_for(user, case_id)
        resolved = self.store.resolve(case["case_id"], actor=user.user_id, outcome=outcome, note=_text(note))
        return f"{case['case_id']} closed: {resolved['status']}."

    def hand_off(self, user: DeskUser, case_id: str, *, to_team: str | None, to_assignee: str | None,
                 note: str) -> str:
        """Reassign a case after the policy and role checks (see module docstring)."""
        to_team, to_assignee = _text(to_team), _text(to_assignee)
        to_team = require_id(to_team, "team") if to_team is not None else None  # plain text before any lookup
        to_assignee = require_id(to_assignee, "assignee") if to_assignee is not None else None
        if not note or not note.strip():
            raise ValueError("a handoff needs a note for the next owner: what was done, what is next")
        if to_assignee is not None:
            member_team = self.policy.member_team.get(to_assignee)
            if member_team is None:
                raise ValueError(f"unknown person {to_assignee!r}: hand off to a member of the policy's teams")
            if to_team is not None and to_team != member_team:
                raise ValueError(f"{to_assignee} is in team {member_team}, not {to_team}")
            to_team = member_team
        if to_team is None:
            raise ValueError("choose a team or a person to hand the case to")
        if to_team not in self.policy.teams:
            raise ValueError(f"unknown team {to_team!r}; teams: {', '.join(self.policy.teams)}")
        case = self.store.get_case(case_id)
        check_can_hand_off(user, case, to_team)
        if to_assignee is not None and not can_manage(user):
            member = self.policy.members_by_id[to_assignee]
            open_cases = self.member_load().get(to_assignee, 0)
            if open_cases >= member.capacity:
                raise CapacityReached(f"{member.name} ({to_assignee}) is at capacity ({open_cases} of "
                                      f"{member.capacity} open cases); choose someone else or ask a manager")
        notify = self.policy.teams[to_team].channels.addresses() if to_team != case["team"] else []
        handoff(self.store, case["case_id"], actor=user.user_id, to_team=to_team, to_assignee=to_assignee,
                note=note, notify=notify)
        owner = f"{to_assignee} ({to_team})" if to_assignee else f"team {to_team}"
        return f"{case['case_id']} handed off to {owner}."


class CapacityReached(Exception):
    """The person a case is handed to already has as many open cases as the policy allows."""


def _order_key(summary: Mapping[str, Any]) -> tuple:
    """The queue's one order (`models.cases.ordering.urgency_key`) of a summary row."""
    sla = summary["sla"]
    return urgency_key(summary["priority"], sla["state"], summary["expected_arr_at_risk"], sla["due_at"],
                       summary["case_id"], summary["status"])


def _text(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _float(v: Any) -> float | None:
    v = present.value(v)
    return None if v is None else float(v)

"""The handoff context package: everything a rescuer needs to act in thirty seconds.

Built for each routed account and stored as JSON on its case (and regenerated on every
reassignment): account facts (ARR, segment, owner, renewal date), health score with its
components and trend, churn risk with its top drivers in words, the last three tickets, the
weekly usage trend, and the plays already tried with their outcomes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from models.policy.schema import SeverityRule

USAGE_TREND_WEEKS = 12
LAST_TICKETS = 3


def _compliance(tickets: pd.DataFrame) -> pd.Series:
    from models.churn.tickets import COMPLIANCE_CATEGORIES  # the queue reads packages without the model

    return tickets["category"].astype("string").str.lower().isin(COMPLIANCE_CATEGORIES).fillna(False).astype(bool)


def _urgent(tickets: pd.DataFrame) -> pd.Series:
    return (tickets["priority"].astype("string") == "urgent").fillna(False).astype(bool)


#: Candidate fields counted from open tickets (`models.churn.features`), with the tickets each
#: counts: a severity rule that tests one of them is triggered by a ticket.
TICKET_FIELDS: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "open_compliance_tickets": _compliance,
    "open_urgent_tickets": _urgent,
    "oldest_open_urgent_hours": _urgent,
}


def ticket_fields(rule: SeverityRule) -> list[str]:
    """The ticket fields (`TICKET_FIELDS`) a severity rule's condition tests, sorted."""
    from models.policy.conditions import referenced_fields
    return sorted(referenced_fields(rule.when) & set(TICKET_FIELDS))


def triggering_tickets(rules: Mapping[str, SeverityRule], tickets: pd.DataFrame,
                       snapshot_date: pd.Timestamp) -> dict[str, dict[str, Any]]:
    """The ticket that made each account's ticket-triggered rule match (account -> ticket row):
    the oldest of its tickets open at the snapshot and counted by every ticket field the rule
    tests. Accounts whose rule tests no ticket field, or with no such ticket open, are absent."""
    by_fields: dict[tuple[str, ...], list[str]] = {}
    fields_of: dict[str, tuple[str, ...]] = {}
    for account, rule in rules.items():
        if rule.id not in fields_of:
            fields_of[rule.id] = tuple(ticket_fields(rule))
        if fields_of[rule.id]:
            by_fields.setdefault(fields_of[rule.id], []).append(account)
    if not by_fields or tickets is None or tickets.empty:
        return {}
    t = tickets[(tickets["created_at"] < snapshot_date)
                & (tickets["solved_at"].isna() | (tickets["solved_at"] >= snapshot_date))]
    found: dict[str, dict[str, Any]] = {}
    for fields, accounts in by_fields.items():
        counted = t[t["account_id"].isin(accounts)]
        for field in fields:
            counted = counted[TICKET_FIELDS[field](counted).to_numpy()]
        first = counted.sort_values(["created_at", "ticket_id"], kind="stable").drop_duplicates("account_id")
        found.update({str(r["account_id"]): r for r in first.to_dict("records")})
    return found


def triggering_ticket(rule: SeverityRule, tickets: pd.DataFrame, snapshot_date: pd.Timestamp) -> dict[str, Any] | None:
    """`triggering_tickets` for one account's `tickets`: its ticket row, or None."""
    if tickets is None or tickets.empty:
        return None
    accounts = tickets["account_id"].unique()
    found = triggering_tickets({str(a): rule for a in accounts}, tickets, snapshot_date)
    return next(iter(found.values()), None)


def case_headline(rule_description: str | None, driver: str | None, trigger: Mapping[str, Any] | None = None) -> str | None:
    """A case's one-line reason, from the severity rule that matched: "<rule description>: <what>".

    For a rule triggered by a ticket (`trigger["ticket"]`, see `build_context_packages`) the what
    is that ticket ("ticket T-9 (legal, urgent, open since 2025-05-30)"); otherwise the strongest
    changeable risk driver, when there is one."""
    ticket = (trigger or {}).get("ticket") if isinstance(trigger, Mapping) else None
    if ticket:
        details = [str(v) for v in (ticket.get("category"), ticket.get("priority")) if v]
        opened = _iso(ticket.get("created_at"))
        if opened:
            details.append(f"open since {opened[:10]}")
        what: str | None = f"ticket {ticket.get('ticket_id')}" + (f" ({', '.join(details)})" if details else "")
    else:
        what = driver or None
    parts = [str(p) for p in (rule_description, what) if p]
    return ": ".join(parts) if parts else None


def _iso(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return pd.Timestamp(value).isoformat()


def _num(value: Any, digits: int = 2) -> float | None:
    if value is None or pd.isna(value):
        return None
    return round(float(value), digits)


def build_context_packages(
    candidates: pd.DataFrame,
    *,
    health: pd.DataFrame,
    tickets: pd.DataFrame,
    usage_daily: pd.DataFrame,
    plays: pd.DataFrame | None = None,
    snapshot_date: pd.Timestamp,
    rules: Mapping[str, SeverityRule] | None = None,
) -> dict[str, dict[str, Any]]:
    """One JSON-ready package per row of ``candidates`` (keyed by account_id).

    ``health`` is indexed by account_id with the component columns; ``usage_daily`` should cover
    at least the last `USAGE_TREND_WEEKS` weeks before the snapshot; ``plays`` (account_id, at,
    play, note, outcome, actor) are rescue actions already logged for these accounts. ``rules``
    maps an account to the severity rule it matched: the package's ``trigger`` names the rule
    and, for a rule triggered by a ticket, the ticket (`triggering_ticket`), which is then among
    ``last_tickets`` (added when older than the last three) and marked ``trigger: true``.
    The daily run passes the tickets of its snapshot's window (created or solved in the 180 days
    before it, or open: `models.churn.tickets.relevant_tickets`), so ``last_tickets`` are the
    last three of those: an account whose last ticket was solved longer ago shows none, and a
    triggering ticket is open, so always among them.
    """
    snapshot_date = pd.Timestamp(snapshot_date)
    ids = list(candidates["account_id"])
    wanted = set(ids)
    rules = {aid: rule for aid, rule in (rules or {}).items() if aid in wanted}

    before = tickets[tickets["account_id"].isin(wanted) & (tickets["created_at"] < snapshot_date)]
    t = before.sort_values("created_at", ascending=False).groupby("account_id").head(LAST_TICKETS)
    tickets_by = _records_by_account(t)
    triggers = triggering_tickets(rules, before, snapshot_date)

    start = snapshot_date - pd.Timedelta(weeks=USAGE_TREND_WEEKS)
    u = usage_daily[usage_daily["account_id"].isin(wanted) & (usage_daily["date"] >= start) & (usage_daily["date"] < snapshot_date)]
    u = u.assign(week=((u["date"] - start).dt.days // 7).astype("int64"))
    weekly = u.groupby(["account_id", "week"])["active_users"].sum() / 7.0
    no_usage = [0.0] * USAGE_TREND_WEEKS
    usage_by: dict[Any, list[float]] = {}
    if len(weekly):
        grid = weekly.unstack("week").reindex(columns=range(USAGE_TREND_WEEKS)).fillna(0.0)
        usage_by = {aid: [round(float(v), 2) for v in values] for aid, values in zip(grid.index, grid.to_numpy())}

    plays_by: dict[Any, list[dict[str, Any]]] = {}
    if plays is not None and len(plays):
        plays_by = _records_by_account(plays[plays["account_id"].isin(wanted)].sort_values("at"))

    comps = [c for c in ("usage", "support", "relationship", "model_risk") if c in health.columns]
    health_by = health[health.index.isin(wanted)].to_dict("index")
    packages: dict[str, dict[str, Any]] = {}
    for row in candidates.itertuples(index=False):
        aid = row.account_id
        h = health_by.get(aid)
        tk = tickets_by.get(aid, [])
        rule = rules.get(aid)
        trigger_row = triggers.get(str(aid))
        trigger_id = None if trigger_row is None else trigger_row["ticket_id"]
        if trigger_row is not None and trigger_id not in {r["ticket_id"] for r in tk}:
            tk = [*tk, trigger_row]
        packages[aid] = {
            "account": {
                "account_id": aid,
                "name": row.name,
                "segment": row.segment,
                "arr": _num(row.arr, 0),
                "csm_owner": None if pd.isna(row.csm_owner) else row.csm_owner,
                "renewal_date": _iso(row.renewal_date),
                "days_to_renewal": _num(row.days_to_renewal, 0),
            },
            "health": {
                "score": _num(row.health_score, 1),
                "band": row.health_band,
                "components": {c: _num(h[c], 1) for c in comps} if h is not None else {},
                "delta": _num(h["health_delta"], 1) if h is not None and "health_delta" in h else None,
                "intervention": h.get("intervention") if h is not None else None,
            },
            "risk": {
                "churn_risk": _num(row.churn_risk, 3),
                "churn_risk_delta": _num(row.churn_risk_delta, 3),
                "expected_arr_at_risk": _num(row.expected_arr_at_risk, 0),
                "top_drivers": list(row.drivers) if isinstance(row.drivers, (list, tuple)) else [],
                "changed_since_last_snapshot": list(row.movers) if isinstance(row.movers, (list, tuple)) else [],
                "model_version": row.model_version,
            },
            "last_tickets": [_ticket(r, snapshot_date, trigger_id) for r in tk],
            "trigger": None if rule is None else {
                "rule_id": rule.id,
                "description": rule.description,
                "ticket": None if trigger_row is None else {
                    "ticket_id": trigger_id,
                    "created_at": _iso(trigger_row["created_at"]),
                    "priority": trigger_row["priority"],
                    "category": None if pd.isna(trigger_row["category"]) else trigger_row["category"],
                },
            },
            "usage_trend": {
                "weekly_active_users": list(usage_by.get(aid, no_usage)),
                "weeks": USAGE_TREND_WEEKS,
                "wau_trend": _num(row.wau_trend, 3),
            },
            "plays_tried": [
                {"at": _iso(r["at"]), "play": r["play"], "note": r["note"], "outcome": r.get("outcome"), "actor": r["actor"]}
                for r in plays_by.get(aid, [])
            ],
            "snapshot_date": _iso(snapshot_date),
        }
    return packages


def _records_by_account(frame: pd.DataFrame) -> dict[Any, list[dict[str, Any]]]:
    """The rows of `frame` as dicts, by account, in the frame's order."""
    out: dict[Any, list[dict[str, Any]]] = {}
    for record in frame.to_dict("records"):
        out.setdefault(record["account_id"], []).append(record)
    return out


def _ticket(r: Mapping[str, Any], snapshot_date: pd.Timestamp, trigger_id: Any) -> dict[str, Any]:
    solved = r["solved_at"]
    solved_before = pd.notna(solved) and solved < snapshot_date
    return {
        "ticket_id": r["ticket_id"],
        "created_at": _iso(r["created_at"]),
        "priority": r["priority"],
        "category": None if pd.isna(r["category"]) else r["category"],
        "status": "solved" if solved_before else "open",
        "csat": _num(r["csat"], 0) if solved_before else None,
        "escalated": bool(r["escalated"]),
        "trigger": trigger_id is not None and r["ticket_id"] == trigger_id,
    }


def refresh_context(
    context: dict[str, Any] | None,
    *,
    team: str,
    assignee: str | None,
    escalation_level: int,
    plays: list[dict[str, Any]],
    handoffs: list[dict[str, Any]],
    at: Any,
) -> dict[str, Any]:
    """The context package regenerated for a new owner (every reassignment or handoff).

    The account facts (tickets, usage, health, drivers) come from the latest snapshot and are
    refreshed by the daily run; what changes between runs is who owns the case and what has been
    done, so those parts are rebuilt from the queue's own records: the current assignment, every
    play tried with its outcome, and the chain of handoffs with their notes.
    """
    out = dict(context or {})
    out["assignment"] = {"team": team, "assignee": assignee, "escalation_level": int(escalation_level), "since": _iso(at)}
    out["plays_tried"] = [
        {"at": _iso(p.get("at")), "play": p.get("play"), "note": p.get("note"), "outcome": p.get("outcome"), "actor": p.get("actor")}
        for p in plays
    ]
    out["handoffs"] = [
        {
            "at": _iso(h.get("at")),
            "by": h.get("actor"),
            "from": " / ".join(x for x in (h.get("from_team"), h.get("from_assignee")) if x),
            "to": " / ".join(x for x in (h.get("to_team"), h.get("to_assignee")) if x),
            "note": h.get("note"),
        }
        for h in handoffs
    ]
    out["regenerated_at"] = _iso(at)
    return out


def reassigned_context(
    context: Any,
    *,
    team: str,
    assignee: str | None,
    escalation_level: int,
    plays: list[dict[str, Any]],
    moves: list[dict[str, Any]],
    handoff: dict[str, Any],
    at: Any,
) -> dict[str, Any]:
    """The context package of a case moved to `team` / `assignee` by `handoff`.

    `plays` are the case's rescue actions, `moves` its earlier audit events that moved it (kind
    handoff or escalated; those whose payload names a `to_team`), oldest first; `handoff` is the
    move being made (at, actor, note, from/to team and assignee). `context` may be the stored
    JSON text.
    """
    handoffs = []
    for event in moves:
        payload = _mapping(event.get("payload"))
        if "to_team" in payload:
            handoffs.append({"at": event.get("at"), "actor": event.get("actor"), "note": event.get("reason"), **payload})
    handoffs.append(handoff)
    return refresh_context(_mapping(context), team=team, assignee=assignee, escalation_level=escalation_level,
                           plays=plays, handoffs=handoffs, at=at)


def _mapping(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        return json.loads(value)
    return dict(value or {})

"""From one snapshot's routing decisions to queue rows: new cases, refreshed fields, evidence
entries, routing-log rows and hysteresis states (used by `QueueStore.apply_decisions`).

The decisions frame follows `models.contracts.DECISION_COLUMNS`. Display text (the account name,
reasons, the context package) is cut to its column's size before it is written (`fit_row`), so a
source row with a huge name opens a case like any other, on every database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from connectors.queue.schema import CASE_ACTIONS, KNOWN_ACTIONS, account_states, rescue_cases, routing_log
from connectors.queue.transaction import event_row
from connectors.queue.values import as_float, fit, fit_row, jsonable, scalar, str_list
from models.cases.context import case_headline
from models.cases.lifecycle import OPEN
from models.cases.notices import Notice, opened_notices
from models.clock import utc_naive
from models.contracts import DECISION_COLUMNS

@dataclass(frozen=True)
class ApplySummary:
    """What `apply_decisions` did: cases opened and updated, decisions logged, rows unchanged."""

    opened: int
    updated: int
    logged: int
    unchanged: int


def case_id_for(account_id: str, snapshot_date: datetime) -> str:
    """The stable id of the case opened for `account_id` at `snapshot_date` ("RC-" + 10 hex)."""
    digest = hashlib.sha1(f"{account_id}|{snapshot_date.date().isoformat()}".encode()).hexdigest()
    return "RC-" + digest[:10].upper()


def checked_decisions(decisions: pd.DataFrame) -> pd.DataFrame:
    """The decisions frame, validated."""
    missing = [c for c in DECISION_COLUMNS if c not in decisions.columns]
    if missing:
        raise ValueError(f"decisions frame is missing column(s): {', '.join(missing)}")
    dupes = decisions["account_id"][decisions["account_id"].duplicated()]
    if len(dupes):
        raise ValueError(f"decisions have {len(dupes)} duplicate account_id(s), e.g. {', '.join(map(str, dupes.head(5)))}")
    unknown = sorted(set(decisions["action"].dropna().astype(str)) - KNOWN_ACTIONS)
    if unknown or decisions["action"].isna().any():
        shown = ", ".join(unknown) if unknown else "null"
        raise ValueError(f"decisions.action has unknown value(s): {shown}; expected one of: {', '.join(sorted(KNOWN_ACTIONS))}")
    routed = decisions["action"].isin(CASE_ACTIONS)
    for column in ("priority", "team"):
        bad = decisions.loc[routed & decisions[column].isna(), "account_id"]
        if len(bad):
            raise ValueError(f"decisions.{column} is null for {len(bad)} routed account(s), e.g. {', '.join(map(str, bad.head(5)))}")
    return decisions


def checked_candidates(candidates: pd.DataFrame) -> pd.DataFrame:
    required = ["account_id", "churn_risk", "health_score", "arr"]
    missing = [c for c in required if c not in candidates.columns]
    if missing:
        raise ValueError(f"candidates frame is missing column(s): {', '.join(missing)}")
    dupes = candidates["account_id"][candidates["account_id"].duplicated()]
    if len(dupes):
        raise ValueError(f"candidates have {len(dupes)} duplicate account_id(s), e.g. {', '.join(map(str, dupes.head(5)))}")
    keep = [c for c in ("account_id", "name", "churn_risk", "health_score", "arr", "top_reason") if c in candidates.columns]
    return candidates[keep].rename(columns={"name": "account_name"})


def evidence_entry(row: Mapping[str, Any], snapshot: datetime) -> dict[str, Any]:
    return {
        "snapshot_date": snapshot.date().isoformat(),
        "churn_risk": as_float(row.get("churn_risk")),
        "health": as_float(row.get("health_score")),
        "priority": scalar(row.get("priority")),
        "reasons": str_list(row.get("reasons")),
    }


def headline_reason(row: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> str | None:
    """The case's one-line reason (`models.cases.context.case_headline`): the severity rule that
    matched, then the ticket that triggered it (the context package's `trigger`) or else the top
    risk driver ("Health in the at-risk band: weekly active users down 38% vs 90-day average")."""
    top = scalar(row.get("top_reason"))
    reasons = str_list(row.get("reasons"))
    rule = scalar(row.get("rule_description")) or next((r.split(": ", 1)[1] for r in reasons[1:2] if ": " in r), None)
    trigger = (context or {}).get("trigger") if isinstance(context, Mapping) else None
    headline = case_headline(rule, top, trigger)
    if headline:
        return headline
    return reasons[0] if reasons else None


def refreshed_fields(row: Mapping[str, Any], snapshot: datetime, meta: Mapping[str, Any],
                     context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Case fields that follow the latest snapshot confirming the case (`context`: its context
    package, for the headline)."""
    return {
        "priority": str(row["priority"]),
        "rule_id": scalar(row.get("rule_id")),
        "reason": headline_reason(row, context),
        "required_skills": str_list(row.get("required_skills")),
        "churn_risk": as_float(row.get("churn_risk")),
        "health_score": as_float(row.get("health_score")),
        "arr": as_float(row.get("arr")),
        "expected_arr_at_risk": as_float(row.get("expected_arr_at_risk")),
        "snapshot_date": snapshot,
        **meta,
    }


def stored_context(context: Mapping[str, Any] | None) -> dict[str, Any]:
    """A context package as a case stores it: JSON-ready, the account's name cut like the case's
    `account_name`, every other string to the context column's size."""
    doc = jsonable(context or {})
    account = doc.get("account")
    if isinstance(account, dict) and "name" in account:
        doc = {**doc, "account": {**account, "name": fit(rescue_cases.c.account_name, account["name"])}}
    return fit(rescue_cases.c.context, doc)


def new_case(case_id: str, row: Mapping[str, Any], entry: dict[str, Any], context: Mapping[str, Any] | None,
             snapshot: datetime, now: datetime, meta: Mapping[str, Any]) -> dict[str, Any]:
    return fit_row(rescue_cases, {
        "case_id": case_id,
        "account_id": str(row["account_id"]),
        "account_name": scalar(row.get("account_name")),
        "status": OPEN,
        "team": str(row["team"]),
        "assignee": scalar(row.get("assignee")),
        "evidence": [entry],
        "opened_at": now,
        "updated_at": now,
        "acknowledged_at": None,
        "resolved_at": None,
        "outcome": None,
        "sla_first_touch_due": utc_naive(scalar(row.get("sla_first_touch_due"))),
        "sla_resolution_due": utc_naive(scalar(row.get("sla_resolution_due"))),
        "escalation_level": 0,
        "snoozed_until": None,
        "context": stored_context(context),
        "version": 1,
        **refreshed_fields(row, snapshot, meta, context),
    })


def opening(case_id: str, row: Mapping[str, Any], context: Mapping[str, Any] | None, snapshot: datetime,
            now: datetime, meta: Mapping[str, Any], *, actor: str, notify: Sequence[str] = (),
            audit: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any], list[Notice]]:
    """A new case for a decision row: (the case row, its "opened" audit event by `actor`, the
    notices telling its assignee and `notify`). Routing opens its cases with it, and so does a
    manager opening an overflow account by hand (`audit`: what the event adds, e.g. the
    overflow it came from)."""
    entry = evidence_entry(row, snapshot)
    new = new_case(case_id, row, entry, context, snapshot, now, meta)
    event = event_row(case_id, now, actor, "opened", None, OPEN, new["reason"],
                      {"snapshot_date": entry["snapshot_date"], "priority": new["priority"], "team": new["team"],
                       "assignee": new["assignee"], "rule_id": new["rule_id"], **(audit or {})})
    return new, event, opened_notices(new, notify)


def upsert_routing_log(conn: sa.Connection, rows: pd.DataFrame, snapshot: datetime, now: datetime,
                       meta: Mapping[str, Any], contexts: Mapping[str, Mapping[str, Any]] | None = None) -> int:
    """Write one routing_log row per account for this snapshot, with the account's name, figures
    and context package (`contexts`, where there is one: what opening its case later needs);
    returns rows inserted or changed."""
    contexts = contexts or {}
    if rows.empty:
        return 0
    existing = {
        r["account_id"]: dict(r)
        for r in conn.execute(sa.select(routing_log).where(routing_log.c.snapshot_date == snapshot)).mappings()
    }
    inserts: list[dict[str, Any]] = []
    written = 0
    compared = ("action", "priority", "team", "rule_id", "rank", "policy_hash")
    for row in rows.to_dict("records"):
        values = fit_row(routing_log, {
            "snapshot_date": snapshot,
            "account_id": str(row["account_id"]),
            "action": str(row["action"]),
            "priority": scalar(row.get("priority")),
            "team": scalar(row.get("team")),
            "rule_id": scalar(row.get("rule_id")),
            "reasons": str_list(row.get("reasons")),
            "churn_risk": as_float(row.get("churn_risk")),
            "expected_arr_at_risk": as_float(row.get("expected_arr_at_risk")),
            "rank": None if scalar(row.get("rank")) is None else int(row["rank"]),
            "account_name": scalar(row.get("account_name")),
            "arr": as_float(row.get("arr")),
            "health_score": as_float(row.get("health_score")),
            "required_skills": str_list(row.get("required_skills")),
            "context": stored_context(contexts[str(row["account_id"])]) if str(row["account_id"]) in contexts else None,
            "logged_at": now,
            **meta,
        })
        old = existing.get(values["account_id"])
        if old is None:
            inserts.append(values)
            written += 1
        elif any(old[c] != values[c] for c in compared):
            conn.execute(routing_log.update().where(routing_log.c.log_id == old["log_id"]).values(**values))
            written += 1
    if inserts:
        conn.execute(routing_log.insert(), inserts)
    forget_older_contexts(conn)
    return written


def forget_older_contexts(conn: sa.Connection) -> None:
    """Drop the context packages of routing-log rows older than the latest snapshot: only the
    latest snapshot's overflow can be opened by hand, so the log does not grow a package per
    account and day."""
    latest = conn.execute(sa.select(sa.func.max(routing_log.c.snapshot_date))).scalar()
    if latest is not None:
        conn.execute(routing_log.update()
                     .where(routing_log.c.snapshot_date < latest, routing_log.c.context.is_not(None))
                     .values(context=None))


def upsert_account_states(conn: sa.Connection, states: pd.DataFrame, now: datetime) -> None:
    """Store the policy's hysteresis states, writing only rows that are new or changed."""
    missing = [c for c in ("account_id", "state", "since") if c not in states.columns]
    if missing:
        raise ValueError(f"account_states frame is missing column(s): {', '.join(missing)}")
    states = states.dropna(subset=["state"])
    if states.empty:
        return
    current = {aid: (state, since) for aid, state, since in conn.execute(
        sa.select(account_states.c.account_id, account_states.c.state, account_states.c.since))}
    inserts, changes = [], []
    for account_id, state, since in zip(states["account_id"].astype(str), states["state"].astype(str), states["since"]):
        since = utc_naive(since) or now
        if account_id not in current:
            inserts.append({"account_id": account_id, "state": state, "since": since, "updated_at": now})
        elif current[account_id] != (state, since):
            changes.append({"b_account_id": account_id, "b_state": state, "b_since": since, "b_updated_at": now})
    if inserts:
        conn.execute(account_states.insert(), inserts)
    if changes:
        conn.execute(
            account_states.update()
            .where(account_states.c.account_id == sa.bindparam("b_account_id"))
            .values(state=sa.bindparam("b_state"), since=sa.bindparam("b_since"), updated_at=sa.bindparam("b_updated_at")),
            changes,
        )

"""Overflow accounts and a ticket-triggered case on top of the desk's seeded queue.

`seed_overflow(store)` writes, through `QueueStore.apply_decisions` at the seeded snapshot:

- three overflow decisions (`OVERFLOW`), two over a team's daily budget and one with nobody who
  had the skills and room, worded by the routing's own reason functions; their context packages
  are built by `models.cases.context.build_context_packages` like the pipeline builds them;
- one routed case (`TICKET_CASE`) matched by the default policy's `open_compliance_ticket`
  rule, whose package names the open legal ticket that triggered it (older than the three
  newest tickets of the account).

Nothing here replaces the desk fixtures; test modules use both.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from connectors.queue.store import QueueStore
from models.cases.context import build_context_packages
from models.contracts import CANDIDATE_COLUMNS, DECISION_COLUMNS
from models.policy.loader import load_policy
from models.routing.decisions import overflow_budget_reason, overflow_capacity_reason
from tests.integration.desk_fixtures import POLICY, SNAPSHOT, utc_now

#: account -> (name, team of the rule, priority, rule id, churn risk, ARR, cause)
OVERFLOW: dict[str, dict] = {
    "EMBR-005": {"name": "Ember Analytics", "team": "rescue_squad", "priority": "P1", "rule": "enterprise_renewal_at_risk",
                 "risk": 0.88, "arr": 350_000.0, "cause": "budget", "rank": 13, "left": 0},
    "FERN-006": {"name": "Fern Outdoor", "team": "csm", "priority": "P3", "rule": "at_risk_band",
                 "risk": 0.55, "arr": 60_000.0, "cause": "capacity"},
    "GLOW-007": {"name": "Glow Studios", "team": "csm", "priority": "P2", "rule": "critical_band",
                 "risk": 0.72, "arr": 90_000.0, "cause": "budget", "rank": 41, "left": 0},
}
#: Riskiest first, as the overflow list reads.
OVERFLOW_ORDER = ["EMBR-005", "GLOW-007", "FERN-006"]

TICKET_CASE = "HALO-008"
TRIGGER_TICKET = "HALO-008-LEGAL"
USAGE_DRIVER = "advanced features are 0% of activity"


def _candidate(account_id: str, name: str, risk: float, arr: float, **extra) -> dict:
    row = {c: None for c in CANDIDATE_COLUMNS}
    row.update({
        "account_id": account_id, "name": name, "segment": "enterprise", "industry": "retail", "region": "emea",
        "plan": "enterprise", "csm_owner": "csm_amara", "arr": arr, "vip": False, "churn_risk": risk,
        "churn_risk_delta": 0.004, "health_score": 100 * (1 - risk), "health_band": "at_risk",
        "expected_arr_at_risk": risk * arr, "renewal_date": pd.Timestamp("2025-08-15"), "days_to_renewal": 74.0,
        "open_urgent_tickets": 0, "oldest_open_urgent_hours": 0.0, "open_compliance_tickets": 0, "wau_trend": -0.0004,
        "top_reason": USAGE_DRIVER, "drivers": [
            {"feature": "advanced_share_30d", "phrase": USAGE_DRIVER, "contribution": 0.3, "kind": "changeable",
             "warning": True}],
        "movers": [], "model_version": "m1", "snapshot_date": SNAPSHOT,
    })
    row.update(extra)
    return row


def _tickets() -> pd.DataFrame:
    """HALO-008's tickets: an open legal ticket from April, then three newer routine ones."""
    rows = [
        (TRIGGER_TICKET, "2025-04-10 09:00", None, "high", "legal", False),
        ("HALO-008-T1", "2025-05-05 10:00", "2025-05-06 10:00", "normal", "how_to", False),
        ("HALO-008-T2", "2025-05-15 10:00", "2025-05-16 10:00", "low", "feature_request", False),
        ("HALO-008-T3", "2025-05-28 10:00", "2025-05-29 10:00", "normal", "bug", False),
    ]
    return pd.DataFrame([
        {"ticket_id": t, "account_id": TICKET_CASE, "created_at": pd.Timestamp(c),
         "solved_at": pd.Timestamp(s) if s else pd.NaT, "priority": p, "category": cat, "csat": 4.0 if s else None,
         "escalated": e}
        for t, c, s, p, cat, e in rows
    ])


def _usage(ids: list[str]) -> pd.DataFrame:
    """Tiny usage: 0.7 active users a day the first weeks, none lately (a "0.1 users" line)."""
    days = pd.date_range(SNAPSHOT - pd.Timedelta(weeks=12), SNAPSHOT - pd.Timedelta(days=1), freq="D")
    return pd.DataFrame([
        {"account_id": a, "date": d, "active_users": 1 if (i % 10 == 0 and i < 60) else 0}
        for a in ids for i, d in enumerate(days)
    ])


def overflow_frames() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict]]:
    """(decisions, candidates, contexts) of the overflow accounts and the ticket-triggered case."""
    policy = load_policy(POLICY)
    rules = {r.id: r for r in policy.severity_rules}
    candidates, decisions, matched = [], [], {}
    for account_id, spec in OVERFLOW.items():
        rule = rules[spec["rule"]]
        candidates.append(_candidate(account_id, spec["name"], spec["risk"], spec["arr"]))
        first = (overflow_budget_reason(spec["rank"], spec["team"], spec["left"]) if spec["cause"] == "budget"
                 else overflow_capacity_reason(spec["team"]))
        decision = {c: None for c in DECISION_COLUMNS}
        decision.update({
            "account_id": account_id, "action": "overflow", "priority": spec["priority"], "team": spec["team"],
            "required_skills": list(rule.required_skills), "rule_id": rule.id, "rule_description": rule.description,
            "reason_driver": USAGE_DRIVER, "reasons": [first, f"{rule.id}: {rule.description}", f"top driver: {USAGE_DRIVER}"],
            "expected_arr_at_risk": spec["risk"] * spec["arr"], "rank": spec.get("rank"),
        })
        decisions.append(decision)
        matched[account_id] = rule
    rule = rules["open_compliance_ticket"]
    candidates.append(_candidate(TICKET_CASE, "Halo Security", 0.41, 200_000.0, open_compliance_tickets=1))
    now = utc_now()
    cal = policy.team_calendar("legal")
    due = cal.add_business_minutes(pd.Timestamp(now).tz_localize("UTC"), policy.sla["P1"].first_touch_minutes)
    decision = {c: None for c in DECISION_COLUMNS}
    decision.update({
        "account_id": TICKET_CASE, "action": "route", "priority": "P1", "team": "legal",
        "required_skills": list(rule.required_skills), "rule_id": rule.id, "rule_description": rule.description,
        "reason_driver": USAGE_DRIVER,
        "reasons": ["routed to legal as P1", f"{rule.id}: {rule.description}", f"top driver: {USAGE_DRIVER}"],
        "expected_arr_at_risk": 0.41 * 200_000.0, "rank": 1, "assignee": "lg_tom",
        "sla_first_touch_due": pd.Timestamp(due).tz_convert("UTC").tz_localize(None),
        "sla_resolution_due": pd.Timestamp(due).tz_convert("UTC").tz_localize(None) + timedelta(days=2),
    })
    decisions.append(decision)
    matched[TICKET_CASE] = rule
    frame = pd.DataFrame(candidates)
    health = pd.DataFrame({"usage": 12.0, "support": 40.0, "relationship": 55.0, "model_risk": 0.0,
                           "health_delta": -0.3}, index=frame["account_id"])
    contexts = build_context_packages(frame, health=health, tickets=_tickets(), usage_daily=_usage(list(frame["account_id"])),
                                      snapshot_date=SNAPSHOT, rules=matched)
    return pd.DataFrame(decisions), frame, contexts


def seed_overflow(store: QueueStore) -> str:
    """Write the overflow rows and the ticket-triggered case; returns that case's id."""
    decisions, candidates, contexts = overflow_frames()
    store.apply_decisions(decisions, candidates, contexts=contexts, policy_version="2026.11.0", policy_hash="hash-1",
                          model_version="m1", snapshot_date=SNAPSHOT, now=utc_now())
    cases = store.list_cases()
    return str(cases.loc[cases["account_id"] == TICKET_CASE, "case_id"].iloc[0])

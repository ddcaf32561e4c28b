"""Shared fixtures of the rescue desk tests: a seeded queue, desk users and a live server.

`desk_env` is a temporary SQLite queue filled through `QueueStore.apply_decisions` (frames in
the columns of `models.contracts`) with four cases of the default policy's teams, plus four desk
users (two CSM agents, a CSM-team agent of another member, and a rescue-squad manager) and the
desk app over them. `live_desk` serves that app with uvicorn on a free local port in a
background thread. Test modules import the fixtures they use from here.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI

from connectors.queue.users import DeskUsers
from connectors.queue.store import QueueStore
from models.contracts import CANDIDATE_COLUMNS, DECISION_COLUMNS
from models.policy.loader import load_policy
from pipelines.desk import create_app

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "policies" / "default.yaml"
SNAPSHOT = pd.Timestamp("2025-06-02")

#: Desk users: member id -> (role, team). Members and teams are those of policies/default.yaml.
USERS: dict[str, tuple[str, str]] = {
    "csm_amara": ("agent", "csm"),
    "csm_jonas": ("agent", "csm"),
    "csm_lucia": ("agent", "csm"),
    "rs_lead_maya": ("manager", "rescue_squad"),
}

#: The seeded cases: account -> what differs between them. `first_touch_in` is business time
#: (the team's calendar) from the test's instant; the margins keep every label the same on any
#: day, holidays of one office but not the other included.
ACCOUNTS: dict[str, dict] = {
    "ACME-001": {"name": "Acme Logistics", "segment": "enterprise", "priority": "P1", "team": "csm",
                 "arr": 480_000.0, "churn_risk": 0.81, "first_touch_in": timedelta(hours=60)},
    "BOLT-002": {"name": "Bolt Robotics", "segment": "mid_market", "priority": "P2", "team": "csm",
                 "arr": 120_000.0, "churn_risk": 0.66, "first_touch_in": timedelta(hours=-3)},
    "CORA-003": {"name": "Cora Health", "segment": "enterprise", "priority": "P1", "team": "rescue_squad",
                 "arr": 910_000.0, "churn_risk": 0.74, "first_touch_in": timedelta(hours=40)},
    "DUNE-004": {"name": "Dune Foods", "segment": "smb", "priority": "P3", "team": "csm",
                 "arr": 24_000.0, "churn_risk": 0.61, "first_touch_in": timedelta(hours=80),
                 # routed while usage was stale, freshness only warning (`connectors.freshness`)
                 "data_warnings": ["routed on stale data: usage_daily 6.1 days old (newest row 2025-05-27 00:00 UTC, "
                                   "allowed 3 days)"]},
}


def _due(spec: dict, now: datetime, opened: datetime | None) -> datetime:
    if opened is None:  # a calendar-time seed (frames for tests that pick their own instants)
        return now + spec["first_touch_in"]
    return business_after(spec["team"], opened, OPENED_BUSINESS_AGO + spec["first_touch_in"])


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _context(account_id: str, spec: dict) -> dict:
    """A context package shaped like `models.cases.context.build_context_packages` makes."""
    weekly = [42.0, 41.5, 43.0, 40.0, 38.5, 36.0, 33.0, 31.5, 29.0, 27.5, 26.0, 24.5]
    return {
        "account": {"account_id": account_id, "name": spec["name"], "segment": spec["segment"], "arr": spec["arr"],
                    "csm_owner": "csm_amara", "renewal_date": "2025-08-15T00:00:00", "days_to_renewal": 74.0},
        "health": {"score": 100 * (1 - spec["churn_risk"]), "band": "at_risk",
                   "components": {"usage": 31.0, "support": 48.0, "relationship": 62.0, "model_risk": 19.0},
                   "delta": -12.0},
        "risk": {"churn_risk": spec["churn_risk"], "churn_risk_delta": 0.14,
                 "expected_arr_at_risk": spec["churn_risk"] * spec["arr"],
                 "top_drivers": [
                     {"feature": "wau_trend", "phrase": "weekly active users down 42% in 12 weeks", "contribution": 0.41,
                      "kind": "changeable", "warning": True},
                     {"feature": "open_urgent_tickets", "phrase": "2 urgent tickets open, oldest 30 hours", "contribution": 0.22,
                      "kind": "changeable", "warning": True},
                     {"feature": "days_to_renewal", "phrase": "renewal in 74 days", "contribution": 0.12,
                      "kind": "fixed", "warning": False},
                 ],
                 "model_version": "m1"},
        "last_tickets": [
            {"ticket_id": f"{account_id}-T3", "created_at": "2025-05-30T10:00:00", "priority": "urgent",
             "category": "bug", "status": "open", "csat": None, "escalated": True},
            {"ticket_id": f"{account_id}-T2", "created_at": "2025-05-21T09:00:00", "priority": "high",
             "category": "billing", "status": "solved", "csat": 2.0, "escalated": False},
            {"ticket_id": f"{account_id}-T1", "created_at": "2025-05-02T15:00:00", "priority": "normal",
             "category": "how_to", "status": "solved", "csat": 4.0, "escalated": False},
        ],
        "usage_trend": {"weekly_active_users": weekly, "weeks": len(weekly), "wau_trend": -0.42},
        "plays_tried": [],
        "snapshot_date": SNAPSHOT.isoformat(),
        **({"data_warnings": spec["data_warnings"]} if "data_warnings" in spec else {}),
    }


#: The seeded cases were opened this much business time before the test's instant.
OPENED_BUSINESS_AGO = timedelta(hours=6)


def business_before(team: str, instant: datetime, span: timedelta) -> datetime:
    """The naive-UTC instant `span` of business time (the team's calendar in `POLICY`) before
    `instant`: the latest x with business time x -> instant equal to `span` (bisection; business
    time is monotone in x). The seed's clocks are set in business time, so a test reads the same
    SLA labels at any hour of any day of the week."""
    cal = load_policy(POLICY).team_calendar(team)
    end = instant.replace(tzinfo=timezone.utc)
    want = span.total_seconds() / 60.0
    lo, hi = end - timedelta(days=60), end
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if cal.business_minutes_between(mid, end) >= want:
            lo = mid
        else:
            hi = mid
    return lo.replace(tzinfo=None, microsecond=0)


def business_after(team: str, instant: datetime, span: timedelta) -> datetime:
    """The naive-UTC instant `span` of business time after `instant` (the team's calendar)."""
    cal = load_policy(POLICY).team_calendar(team)
    later = cal.add_business_minutes(instant.replace(tzinfo=timezone.utc), span.total_seconds() / 60.0)
    return later.astimezone(timezone.utc).replace(tzinfo=None)


def seed_frames(now: datetime, opened: datetime | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict]]:
    """(decisions, candidates, contexts) routing the seeded accounts, in the contracts' columns.
    Each first-touch due lies `first_touch_in` business time after `now` (before, when negative),
    counted from `opened` (business time before `now`) in the case's team calendar."""
    decisions, candidates = [], []
    for account_id, spec in ACCOUNTS.items():
        risk, arr = spec["churn_risk"], spec["arr"]
        candidate = {c: None for c in CANDIDATE_COLUMNS}
        candidate.update({
            "account_id": account_id, "name": spec["name"], "segment": spec["segment"], "industry": "retail",
            "region": "emea", "plan": "enterprise", "csm_owner": "csm_amara", "arr": arr, "vip": False,
            "churn_risk": risk, "churn_risk_delta": 0.14, "health_score": 100 * (1 - risk), "health_band": "at_risk",
            "expected_arr_at_risk": risk * arr, "renewal_date": pd.Timestamp("2025-08-15"), "days_to_renewal": 74.0,
            "open_urgent_tickets": 2, "oldest_open_urgent_hours": 30.0, "open_compliance_tickets": 0,
            "wau_trend": -0.42, "top_reason": "weekly active users down 42% in 12 weeks",
            "drivers": _context(account_id, spec)["risk"]["top_drivers"], "model_version": "m1",
            "snapshot_date": SNAPSHOT,
        })
        decision = {c: None for c in DECISION_COLUMNS}
        decision.update({
            "account_id": account_id, "action": "route", "priority": spec["priority"], "team": spec["team"],
            "required_skills": ["renewals"], "rule_id": "enterprise_renewal_at_risk",
            "reasons": ["churn risk at least 60%", "weekly active users down 42% in 12 weeks"],
            "expected_arr_at_risk": risk * arr, "rank": 1, "assignee": None,
            "sla_first_touch_due": _due(spec, now, opened),
            "sla_resolution_due": _due(spec, now, opened) + timedelta(days=5),
        })
        decisions.append(decision)
        candidates.append(candidate)
    contexts = {account_id: _context(account_id, spec) for account_id, spec in ACCOUNTS.items()}
    return pd.DataFrame(decisions), pd.DataFrame(candidates), contexts


@dataclass
class DeskEnv:
    """A seeded queue with desk users, and the desk app over it."""

    queue_url: str
    store: QueueStore
    users: DeskUsers
    app: FastAPI
    tokens: dict[str, str] = field(default_factory=dict)
    case_ids: dict[str, str] = field(default_factory=dict)

    def auth(self, user_id: str) -> dict[str, str]:
        """The Authorization header of a desk user."""
        return {"Authorization": f"Bearer {self.tokens[user_id]}"}


def seed(store: QueueStore) -> dict[str, str]:
    """Route the seeded accounts into a migrated queue (opened six hours ago); account -> case id."""
    now = utc_now()
    opened = business_before("csm", now, OPENED_BUSINESS_AGO)
    decisions, candidates, contexts = seed_frames(now, opened)
    store.apply_decisions(decisions, candidates, contexts=contexts, policy_version="2026.11.0", policy_hash="hash-1",
                          model_version="m1", snapshot_date=SNAPSHOT, now=opened)
    cases = store.list_cases()
    return dict(zip(cases["account_id"], cases["case_id"]))


def add_users(users: DeskUsers) -> dict[str, str]:
    """Create the `USERS`; user id -> token."""
    tokens = {}
    for user_id, (role, team) in USERS.items():
        _, tokens[user_id] = users.create_user(user_id, name=user_id.split("_")[-1].title(), role=role, team=team)
    return tokens


@pytest.fixture
def desk_env(tmp_path: Path) -> Iterator[DeskEnv]:
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    store = QueueStore(url)
    store.migrate()
    case_ids = seed(store)
    users = DeskUsers(store)
    env = DeskEnv(queue_url=url, store=store, users=users,
                  app=create_app(url, POLICY, secret_key="test-secret-key-not-for-production"),
                  tokens=add_users(users), case_ids=case_ids)
    try:
        yield env
    finally:
        store.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_desk(desk_env: DeskEnv) -> Iterator[tuple[DeskEnv, str]]:
    """The seeded desk served by uvicorn on 127.0.0.1 in a background thread: (env, base URL)."""
    port = _free_port()
    config = uvicorn.Config(desk_env.app, host="127.0.0.1", port=port, log_level="info", log_config=None,
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="desk-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the desk server did not start on port {port}")
        time.sleep(0.05)
    try:
        yield desk_env, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

"""`rescue queue ...` end to end on a real SQLite queue, through the installed command tree."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from typer.testing import CliRunner

from connectors.queue.store import QueueStore
from pipelines.cli.main import app

runner = CliRunner()


@pytest.fixture
def queue(tmp_path, monkeypatch, frames) -> tuple[str, dict[str, str]]:
    """A queue with three cases; returns its URL and account -> case id."""
    monkeypatch.setenv("COLUMNS", "220")
    monkeypatch.delenv("RESCUE_ACTOR", raising=False)
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    store = QueueStore(url)
    store.migrate()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    decisions, candidates = frames([
        {"account_id": "A1", "priority": "P1", "team": "enterprise", "assignee": "zoe",
         "sla_first_touch_due": now - timedelta(minutes=5)},
        {"account_id": "A2", "priority": "P3", "team": "csm", "arr": 20_000.0,
         "sla_first_touch_due": now + timedelta(days=1)},
        {"account_id": "A3", "priority": "P2", "team": "csm", "arr": 400_000.0},
    ])
    context = {
        "account": {"account_id": "A1", "name": "Company A1", "segment": "enterprise", "arr": 100000,
                    "csm_owner": "ana", "renewal_date": "2025-09-01T00:00:00", "days_to_renewal": 91},
        "health": {"score": 30.0, "band": "at_risk", "components": {"usage": 22.5, "support": 40.0}},
        "risk": {"churn_risk": 0.7, "top_drivers": [{"feature": "wau_trend", "phrase": "weekly active users down 38%",
                                                     "contribution": 0.41, "kind": "changeable"},
                                                    {"feature": "industry", "phrase": "industry Mining",
                                                     "contribution": 0.3, "kind": "fixed"}]},
        "last_tickets": [{"ticket_id": "T-9", "created_at": "2025-05-30T10:00:00", "priority": "urgent",
                          "category": "outage", "status": "open", "csat": None, "escalated": True}],
        "usage_trend": {"weekly_active_users": [40.0, 38.0, 30.0, 22.0], "weeks": 4, "wau_trend": -0.38},
        "plays_tried": [],
        "snapshot_date": "2025-06-02T00:00:00",
        "data_warnings": ["routed on stale data: tickets 4.2 days old (newest row 2025-05-29 02:00 UTC, allowed 3 days)"],
    }
    store.apply_decisions(decisions, candidates, contexts={"A1": context}, policy_version="2025.1",
                          policy_hash="abcdef123456", model_version="m1", snapshot_date=pd.Timestamp("2025-06-02"),
                          now=now - timedelta(hours=1), notify={"enterprise": ["#enterprise-rescue"]})
    ids = dict(zip(store.list_cases()["account_id"], store.list_cases()["case_id"]))
    store.close()
    return url, ids


def run(url: str, *args: str):
    return runner.invoke(app, ["queue", *args, "--queue-url", url])


def test_list_ranks_cases_and_filters(queue) -> None:
    url, ids = queue
    result = run(url, "list")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "RC-" in line]
    assert [next(a for a, c in ids.items() if c in line) for line in lines] == ["A1", "A3", "A2"]
    assert "Company A1" in lines[0] and "100,000" in lines[0] and "70%" in lines[0] and "BREACHED" in lines[0]
    assert "weekly active users down 38%" in lines[0]

    breaching = run(url, "list", "--breaching")
    assert ids["A1"] in breaching.output and ids["A2"] not in breaching.output

    as_json = run(url, "list", "--team", "csm", "--json")
    assert as_json.exit_code == 0
    rows = json.loads(as_json.output)
    assert [r["account_id"] for r in rows] == ["A3", "A2"]
    assert rows[0]["priority"] == "P2" and "context" not in rows[0]

    assert json.loads(run(url, "list", "--assignee", "zoe", "--json").output)[0]["account_id"] == "A1"
    assert json.loads(run(url, "list", "--priority", "P3", "--json").output)[0]["account_id"] == "A2"
    assert json.loads(run(url, "list", "--status", "resolved_saved", "--json").output) == []


def test_a_case_is_worked_from_the_command_line(queue, monkeypatch) -> None:
    url, ids = queue
    case = ids["A1"]
    claimed = run(url, "claim", case, "--as", "ana")
    assert claimed.exit_code == 0, claimed.output
    assert f"{case} is ana's (acknowledged)" in claimed.output

    taken = run(url, "claim", case, "--as", "bob")
    assert taken.exit_code == 2
    assert taken.output.strip() == f"error: case {case} already claimed by ana (status acknowledged)"

    monkeypatch.setenv("RESCUE_ACTOR", "ana")
    played = run(url, "act", case, "--play", "executive_sponsor_call", "--note", "CFO call booked")
    assert played.exit_code == 0 and "play executive_sponsor_call logged by ana (case in_progress)" in played.output
    until = (datetime.now(timezone.utc) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    snoozed = run(url, "snooze", case, "--until", until, "--reason", "customer offsite")
    assert snoozed.exit_code == 0 and f"snoozed until {until.replace('T', ' ')} UTC by ana" in snoozed.output
    resolved = run(url, "resolve", case, "--outcome", "saved", "--note", "renewed")
    assert resolved.exit_code == 0 and f"{case} resolved_saved by ana" in resolved.output

    shown = run(url, "show", case)
    assert shown.exit_code == 0, shown.output
    out = shown.output
    for expected in ("Company A1", "resolved_saved", "100,000", "2025-09-01  (in 91 days)", "usage 22.5",
                     "weekly active users down 38%", "account profile", "T-9", "outage", "██▆▅ 40.0 -> 22.0  (trend -38%)", "executive_sponsor_call",
                     "CFO call booked", "claimed", "play_logged", "customer offsite", "2025.1 (abcdef12) / m1"):
        assert expected in out, expected
    # the case was routed while the tickets were stale (freshness warning only): one line says so
    assert "warning: routed on stale data: tickets 4.2 days old (newest row 2025-05-29 02:00 UTC, allowed 3 days)" in out
    assert "data_warnings" not in out   # not dumped again with the package's other keys
    trail = out[out.index("Audit trail"):]
    assert trail.index("opened") < trail.index("claimed") < trail.index("play_logged") < trail.index("resolved")

    outbox = run(url, "outbox")
    assert outbox.exit_code == 0 and "case_opened" in outbox.output and "#enterprise-rescue" in outbox.output
    assert "rescue_action" in outbox.output and "case_outcome" in outbox.output
    assert "No dead rows in the outbox." in run(url, "outbox", "--status", "dead").output


def test_ack_without_claiming_then_claim_by_someone_else(queue) -> None:
    url, ids = queue
    case = ids["A3"]
    acked = run(url, "ack", case, "--as", "triager")
    assert acked.exit_code == 0 and f"{case} acknowledged by triager" in acked.output
    assert run(url, "claim", case, "--as", "carl").exit_code == 0
    assert json.loads(run(url, "list", "--assignee", "carl", "--json").output)[0]["status"] == "acknowledged"


@pytest.mark.parametrize(("args", "message"), [
    (["show", "RC-DOESNOTEXIST"], "error: no rescue case 'RC-DOESNOTEXIST' in the queue at sqlite:///"),
    (["resolve", "{A2}", "--outcome", "saved", "--as", "ana"],
     "error: case {A2}: cannot go from open to resolved_saved; allowed from open: acknowledged, closed_no_action"),
    (["act", "{A2}", "--play", "success_plan", "--as", "ana"], "claim or acknowledge it before logging a play"),
    (["snooze", "{A2}", "--until", "2001-01-01", "--as", "ana"], "cannot go from open to snoozed"),
])
def test_errors_are_one_clear_line_with_exit_status_2(queue, args: list[str], message: str) -> None:
    url, ids = queue
    args = [a.format(**ids) for a in args]
    result = run(url, *args)
    assert result.exit_code == 2
    assert message.format(**ids) in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_a_database_without_the_schema_is_reported_not_created(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = run(url, "list")
    assert result.exit_code == 2
    assert "has no tables yet; run the pipeline first" in result.output


def test_the_actor_defaults_to_the_login_name(queue, monkeypatch) -> None:
    url, ids = queue
    monkeypatch.setenv("USER", "login-name")
    result = run(url, "claim", ids["A2"])
    assert result.exit_code == 0 and "is login-name's" in result.output


def test_outbox_as_json(queue) -> None:
    url, ids = queue
    result = run(url, "outbox", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows and {r["kind"] for r in rows} == {"case_opened"}
    first = rows[0]
    assert {"outbox_id", "created_at", "kind", "channel", "destination", "case_id", "status", "attempts",
            "next_attempt_at", "last_error", "payload"} <= set(first)
    assert first["status"] == "pending" and first["case_id"] in set(ids.values())
    assert any(r["destination"] == "#enterprise-rescue" for r in rows)
    assert isinstance(first["created_at"], str) and first["last_error"] is None
    assert [r["outbox_id"] for r in rows] == sorted(r["outbox_id"] for r in rows)
    assert len(json.loads(run(url, "outbox", "--json", "--limit", "1").output)) == 1
    assert json.loads(run(url, "outbox", "--status", "dead", "--json").output) == []

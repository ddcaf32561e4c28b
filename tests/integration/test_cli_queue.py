"""`rescue queue ...` end to end on a real SQLite queue, through the installed command tree."""

from __future__ import annotations


import json
from datetime import datetime, timedelta

import pandas as pd
import pytest
from typer.testing import CliRunner

from connectors.queue.store import QueueStore
from pipelines.cli.main import app

runner = CliRunner()

#: The commands' clock: a winter Wednesday afternoon (New York on EST), inside every calendar's
#: business hours, so an SLA due 5 or 90 minutes earlier is overdue by business minutes (outside
#: them it would read "overdue since ...": the suite runs at any hour, on any date).
NOW = datetime(2026, 12, 2, 16, 0)


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch):
    monkeypatch.setattr("models.clock.utcnow", lambda: NOW)


@pytest.fixture
def queue(tmp_path, monkeypatch, frames) -> tuple[str, dict[str, str]]:
    """A queue with three cases; returns its URL and account -> case id."""
    monkeypatch.setenv("COLUMNS", "220")
    monkeypatch.delenv("RESCUE_ACTOR", raising=False)
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    store = QueueStore(url)
    store.migrate()
    now = NOW
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
    # ARR at risk (70% of 100,000) in the one-line view; ARR and risk with --wide
    assert "Company A1" in lines[0] and "70,000" in lines[0] and "BREACHED overdue by 5 min" in lines[0]
    assert "weekly active users down 38%" in lines[0]
    wide = [line for line in run(url, "list", "--wide").output.splitlines() if ids["A1"] in line][0]
    assert "100,000" in wide and "70%" in wide and "first touch overdue by 5 min (due " in wide

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
    until = (NOW + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    snoozed = run(url, "snooze", case, "--until", until, "--reason", "customer offsite")
    assert snoozed.exit_code == 0 and f"snoozed until {until.replace('T', ' ')} UTC by ana" in snoozed.output
    resolved = run(url, "resolve", case, "--outcome", "saved", "--note", "renewed")
    assert resolved.exit_code == 0 and f"{case} resolved_saved by ana" in resolved.output

    shown = run(url, "show", case)
    assert shown.exit_code == 0, shown.output
    out = shown.output
    assert "closed; resolution SLA" in out  # the SLA in the words of every other view
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
    slack = {r["outbox_id"] for r in rows if r["channel"] == "slack"}
    assert slack and {r["outbox_id"] for r in json.loads(run(url, "outbox", "--channel", "slack", "--json").output)} == slack
    assert json.loads(run(url, "outbox", "--channel", "ticketing", "--json").output) == []


@pytest.fixture
def busy_queue(tmp_path, monkeypatch, frames) -> str:
    """55 active cases with long names and reasons, one of them breached, on the default policy's
    teams (their calendars); returns the queue URL."""
    monkeypatch.delenv("RESCUE_ACTOR", raising=False)
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    store = QueueStore(url)
    store.migrate()
    now = NOW
    specs = []
    for i in range(55):
        specs.append({
            "account_id": f"ACC-{i:03d}", "priority": ("P1", "P2", "P3")[i % 3], "team": ("csm", "rescue_squad")[i % 2],
            "arr": 10_000.0 * (i + 1), "name": f"A company with a very long legal name number {i} Holdings GmbH\nline two",
            "reasons": [f"churn risk at least 60% and weekly active users down {i}% in 12 weeks",
                        "renewal in 45 days, two urgent tickets open, the oldest for 30 hours\nand more"],
            "sla_first_touch_due": now + (timedelta(minutes=-90) if i == 7 else timedelta(days=3 + i % 5)),
            "sla_resolution_due": now + timedelta(days=10),
        })
    decisions, candidates = frames(specs)
    store.apply_decisions(decisions, candidates, policy_version="2025.1", policy_hash="abcdef123456",
                          model_version="m1", snapshot_date=pd.Timestamp("2025-06-02"), now=now - timedelta(days=1))
    store.close()
    return url


def test_the_list_fits_120_columns_one_line_per_case_and_counts_what_it_shows(busy_queue, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    result = run(busy_queue, "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 120, "\n".join(line for line in lines if len(line) > 120)
    assert lines[0].rstrip() == "Rescue queue: 50 of 55 active cases (--limit 50), times in UTC"
    case_lines = [line for line in lines if line.startswith("RC-")]
    assert len(case_lines) == 50  # one line per case shown: nothing wraps onto a second line
    assert len(lines) == 50 + 3  # the title, the header, the rule under it
    assert all("…" in line for line in case_lines)  # the long reasons are cut, visibly
    priorities = [line.split()[1] for line in case_lines]
    assert priorities == sorted(priorities)  # P1s, then P2s, then P3s
    first_p2_line = case_lines[priorities.index("P2")]
    assert "BREACHED overdue by" in first_p2_line  # the breached P2 before the other P2s, whatever its ARR
    assert sum("BREACHED" in line for line in case_lines) == 1
    ordered = json.loads(run(busy_queue, "list", "--json", "--limit", "100").output)
    assert len(ordered) == 55
    shown_ids = [line.split()[0] for line in case_lines]
    assert shown_ids == [r["case_id"] for r in ordered[:50]]  # the table and --json in the one order
    first_p2 = next(r for r in ordered if r["priority"] == "P2")
    assert first_p2["sla_state"] == "breached" and first_p2["sla_label"].startswith("first touch overdue by")
    assert first_p2["due_at"] and first_p2["business_minutes_left"] < 0

    everything = run(busy_queue, "list", "--limit", "100")
    assert "Rescue queue: 55 active cases, times in UTC" in everything.output

    wide = run(busy_queue, "list", "--wide", "--limit", "1", "--tz", "America/New_York")
    assert wide.exit_code == 0, wide.output
    first = json.loads(run(busy_queue, "list", "--json", "--limit", "1", "--tz", "America/New_York").output)[0]
    wide_lines = wide.output.splitlines()
    assert wide_lines[0].rstrip() == "Rescue queue: 1 of 55 active cases (--limit 1), times in America/New_York"
    row = next(line for line in wide_lines if line.startswith("RC-"))
    assert len([line for line in wide_lines if line.startswith("RC-")]) == 1 and len(wide_lines) == 4
    assert "…" not in row and first["sla_label"] in row and first["reason"] in row
    assert "A company with a very long legal name number" in row and " EST" in row  # December in New York

    bad = run(busy_queue, "list", "--tz", "Mars/Olympus")
    assert bad.exit_code == 2 and "unknown time zone 'Mars/Olympus'" in bad.output

    monkeypatch.setenv("COLUMNS", "80")  # a narrower terminal: still one line per case, cut to fit
    narrow = run(busy_queue, "list").output.splitlines()
    assert max(len(line) for line in narrow) <= 80 and len([line for line in narrow if line.startswith("RC-")]) == 50
    assert len(narrow) == 50 + 3

    monkeypatch.setenv("COLUMNS", "220")
    first_id = ordered[0]["case_id"]
    shown = run(busy_queue, "show", first_id, "--tz", "Asia/Tokyo")
    assert shown.exit_code == 0, shown.output
    assert next(r for r in ordered if r["case_id"] == first_id)["sla_left"] in shown.output and " JST," in shown.output


def test_the_list_at_width_120_in_a_rich_console(busy_queue, monkeypatch) -> None:
    """The table `rescue queue list` prints, rendered by rich at exactly 120 columns."""
    import io

    from rich.console import Console

    from pipelines.cli import queue as cli

    recorder = Console(width=120, record=True, file=io.StringIO(), highlight=False, markup=False)
    monkeypatch.setattr(cli, "_console", lambda stderr=False: recorder)
    result = run(busy_queue, "list", "--limit", "55")
    assert result.exit_code == 0, result.output
    lines = recorder.export_text().splitlines()
    assert max(len(line) for line in lines) <= 120
    case_lines = [line for line in lines if line.startswith("RC-")]
    assert len(case_lines) == 55 and len(lines) == 55 + 3  # exactly one line per case
    assert lines[0].rstrip() == "Rescue queue: 55 active cases, times in UTC"
    assert all(line.split()[0].startswith("RC-") and "…" not in line.split()[0] for line in case_lines)  # ids whole

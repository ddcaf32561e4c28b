"""Notes on the account's open escalation: Freshdesk private notes, Jira internal comments, ServiceNow
work notes, each written exactly once under lost answers, rate limits and 30% injected failures.

The ticketing systems are the HTTP fakes of tests/fakes/ticket_notes_fake.py; the canonical
tickets are a real DuckDB warehouse table; the queue is a real SQLite database. Nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
import responses

from assets.feedback import crm_writeback
from connectors.http_retry import RetryPolicy
from connectors.queue.outbox import Backoff
from connectors.queue.resource import QueueStoreResource
from connectors.queue.store import QueueStore
from connectors.settings import SettingError, current
from connectors.ticket_notes import (
    FreshdeskNotes,
    JiraComments,
    ServiceNowWorkNotes,
    TicketFinder,
    TicketNoteSender,
    TicketNotesResource,
    deliver_ticket_notes,
    marker,
    queue_ticket_notes,
)
from connectors.warehouse import Warehouse, WarehouseResource
from connectors.writeback import CRMWriterResource
from pipelines.resources import ticket_notes_resource
from tests.conftest import snapshot_frames
from tests.fakes.salesforce_fake import FaultInjector
from tests.fakes.ticket_notes_fake import FreshdeskNotesFake, JiraCommentsFake, ServiceNowNotesFake

T0 = datetime(2026, 6, 1, 9, 0)
FD_KEY, JIRA_TOKEN, SN_PASSWORD = "fd-key-Secret-0001", "jira-token-Secret-0002", "sn-pw-Secret-0003"
SYSTEMS = ("freshdesk", "jira", "servicenow")
VARIABLE = {"freshdesk": "FRESHDESK_API_KEY", "jira": "JIRA_API_TOKEN", "servicenow": "SERVICENOW_PASSWORD"}


def ticket_id(system: str, n: int) -> str:
    return {"freshdesk": str(100 + n), "jira": f"SUP-{n}", "servicenow": f"{n:032x}"}[system]


def make(system: str, tickets: list[str], *, faults: FaultInjector | None = None, secret: str | None = None):
    """(fake, client) of one system; `secret` overrides the client's credential (a wrong one)."""
    if system == "freshdesk":
        return (FreshdeskNotesFake(FD_KEY, tickets=tickets, faults=faults),
                FreshdeskNotes("acme", secret or FD_KEY))
    if system == "jira":
        return (JiraCommentsFake("ops@example.com", JIRA_TOKEN, tickets=tickets, faults=faults),
                JiraComments("https://acme.atlassian.net", "ops@example.com", secret or JIRA_TOKEN))
    return (ServiceNowNotesFake("rescue", SN_PASSWORD, tickets=tickets, faults=faults),
            ServiceNowWorkNotes("acme", "rescue", secret or SN_PASSWORD))


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def store(tmp_path) -> Iterator[QueueStore]:
    queue = QueueStore(f"sqlite:///{tmp_path / 'queue.db'}")
    queue.migrate()
    yield queue
    queue.close()


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    return Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")


def land_tickets(warehouse: Warehouse, rows: list[dict]) -> None:
    """Canonical tickets (the contract's columns) in the warehouse's tickets table."""
    base = {"first_response_at": None, "solved_at": None, "priority": "high", "category": "incident", "csat": None}
    frame = pd.DataFrame([{**base, **r} for r in rows])
    frame["created_at"] = pd.to_datetime(frame["created_at"])
    warehouse.write_table("raw_support_tickets", frame)


def open_case(store: QueueStore, accounts: list[str], *, priority: str = "P2", snapshot: str = "2026-06-01",
              now: datetime = T0) -> None:
    decisions, candidates = snapshot_frames([{"account_id": a, "priority": priority} for a in accounts])
    store.apply_decisions(decisions, candidates, policy_version="t", policy_hash="h", model_version="m",
                          snapshot_date=snapshot, now=now)


def sender_for(client, warehouse: Warehouse, *, attempts: int = 4) -> tuple[TicketNoteSender, list[float]]:
    client.page_size = 2  # several pages of notes per ticket
    slept: list[float] = []
    return TicketNoteSender(client, TicketFinder(warehouse), retry_policy=RetryPolicy(max_attempts=attempts),
                            sleep=slept.append), slept


def run(store: QueueStore, sender: TicketNoteSender, now: datetime, *, max_attempts: int = 8):
    queue_ticket_notes(store, now=now)
    return deliver_ticket_notes(store, sender, now=now, backoff=Backoff(max_attempts=max_attempts))


def note_rows(store: QueueStore, status: str | None = None) -> pd.DataFrame:
    rows = store.outbox(status)
    return rows[rows["channel"] == "ticketing"].reset_index(drop=True)


@pytest.mark.parametrize("system", SYSTEMS)
def test_a_case_lifecycle_is_one_note_each_on_the_newest_open_escalated_ticket(store, warehouse, rsps, system):
    t = [ticket_id(system, n) for n in range(1, 6)]
    land_tickets(warehouse, [
        {"ticket_id": t[0], "account_id": "ACC-1", "created_at": "2026-05-01", "status": "open", "escalated": True},
        {"ticket_id": t[1], "account_id": "ACC-1", "created_at": "2026-05-20", "status": "open", "escalated": False},
        {"ticket_id": t[2], "account_id": "ACC-1", "created_at": "2026-05-25", "status": "closed", "escalated": True},
        {"ticket_id": t[3], "account_id": "ACC-1", "created_at": "2026-04-01", "status": "pending", "escalated": True},
        {"ticket_id": t[4], "account_id": "ACC-2", "created_at": "2026-05-30", "status": "open", "escalated": True},
    ])
    fake, client = make(system, t)
    fake.install(rsps)
    sender, _ = sender_for(client, warehouse)
    open_case(store, ["ACC-1"])
    (case_id,) = store.list_cases()["case_id"]

    assert run(store, sender, T0).delivered == 1
    store.claim(case_id, "bob", now=T0 + timedelta(hours=1))
    run(store, sender, T0 + timedelta(hours=1))
    open_case(store, ["ACC-1"], priority="P1", snapshot="2026-06-02", now=T0 + timedelta(days=1))
    assert store.get_case(case_id)["priority"] == "P1"
    run(store, sender, T0 + timedelta(days=1))
    store.resolve(case_id, actor="bob", outcome="saved", now=T0 + timedelta(days=2))
    run(store, sender, T0 + timedelta(days=2))

    notes = fake.texts(t[0])
    assert [n.count("[rescue-note ") for n in notes] == [1] * len(notes)
    assert "opened for Company ACC-1 (P2, team csm)" in notes[0]
    assert any("owner changed from unassigned to bob" in n for n in notes)
    assert any("severity changed from P2 to P1" in n for n in notes)
    assert "resolved: resolved_saved" in notes[-1]
    keys = list(note_rows(store)["dedupe_key"])
    assert len(notes) == len(keys) == len(set(keys)) and [marker(k) in n for k, n in zip(keys, notes)] == [True] * len(keys)
    assert sum(fake.written.values()) == len(keys)  # nothing on any other ticket
    if system == "freshdesk":
        assert all(n["private"] for n in fake.notes[t[0]])
    if system == "jira":
        assert not any(c["jsdPublic"] for c in fake.notes[t[0]])
    assert (note_rows(store)["status"] == "delivered").all() and sender.stats.posted == len(keys)

    gets = fake.requests["GET"]
    assert run(store, sender, T0 + timedelta(days=3)).attempted == 0 and fake.requests["GET"] == gets


@pytest.mark.parametrize("system,loss", [("freshdesk", "timeout"), ("jira", "503"), ("servicenow", "timeout"),
                                         ("servicenow", "503")])
def test_a_lost_answer_is_retried_without_a_second_note(store, warehouse, rsps, system, loss):
    t = ticket_id(system, 1)
    land_tickets(warehouse, [{"ticket_id": t, "account_id": "ACC-1", "created_at": "2026-05-01", "status": "open",
                              "escalated": True}])
    fake, client = make(system, [t])
    fake.install(rsps)
    fake.notes[t].extend([] if system != "freshdesk" else [
        {"id": 1, "body": "<p>Customer wrote in</p>", "body_text": "Customer wrote in", "private": False}])
    if loss == "timeout":
        fake.faults.applies_to = lambda request: request.method != "GET"
        fake.faults.queue.append("lost")  # written, then the client times out
    else:
        fake.lost_503 = 1  # written, then answered 503
    sender, slept = sender_for(client, warehouse)
    open_case(store, ["ACC-1"])

    report = run(store, sender, T0)

    assert report.delivered == 1 and fake.written[t] == 1 and len(slept) == 1
    assert sender.stats.already_there == 1 and sender.stats.posted == 0  # the retry found it there


def test_429_waits_what_retry_after_says(store, warehouse, rsps):
    land_tickets(warehouse, [{"ticket_id": "101", "account_id": "ACC-1", "created_at": "2026-05-01",
                              "status": "open", "escalated": False}])
    fake, client = make("freshdesk", ["101"])
    fake.install(rsps)
    fake.faults.retry_after = "9"
    fake.faults.queue.extend(["429", "429"])
    sender, slept = sender_for(client, warehouse)
    open_case(store, ["ACC-1"])

    assert run(store, sender, T0).delivered == 1
    assert slept == [9.0, 9.0] and fake.written["101"] == 1


@pytest.mark.parametrize("system", SYSTEMS)
def test_a_refused_credential_is_one_secret_free_line_naming_the_variable_then_dead(store, warehouse, rsps, system):
    t = ticket_id(system, 1)
    land_tickets(warehouse, [{"ticket_id": t, "account_id": "ACC-1", "created_at": "2026-05-01", "status": "open",
                              "escalated": True}])
    wrong = f"wrong-{system}-secret-9"
    fake, client = make(system, [t], secret=wrong)
    fake.install(rsps)
    sender, slept = sender_for(client, warehouse)
    open_case(store, ["ACC-1"])

    assert run(store, sender, T0, max_attempts=2).failed == 1
    error = note_rows(store)["last_error"].iloc[0]
    assert VARIABLE[system] in error and "\n" not in error and wrong not in error
    assert fake.requests["GET"] == 1 and not slept  # not retried in the client: only a fix helps
    run(store, sender, T0 + timedelta(days=1), max_attempts=2)
    dead = note_rows(store, "dead")
    assert len(dead) == 1 and VARIABLE[system] in dead["last_error"].iloc[0] and not fake.written


@pytest.mark.parametrize("system", SYSTEMS)
def test_30_percent_injected_failures_each_note_written_exactly_once(store, warehouse, rsps, system):
    accounts = [f"ACC-{i}" for i in range(12)]
    tickets = [ticket_id(system, i + 1) for i in range(12)]
    land_tickets(warehouse, [{"ticket_id": t, "account_id": a, "created_at": "2026-05-01", "status": "open",
                              "escalated": True} for a, t in zip(accounts, tickets)])
    fake, client = make(system, tickets, faults=FaultInjector(rate=0.3, seed=20260604))
    fake.install(rsps)
    sender, _ = sender_for(client, warehouse, attempts=2)  # short client retries: the outbox retries too
    open_case(store, accounts)
    cases = store.list_cases().set_index("account_id")["case_id"]

    def drain(now: datetime) -> datetime:
        for _ in range(40):
            run(store, sender, now, max_attempts=60)
            if note_rows(store, "pending").empty:
                return now
            now += timedelta(days=1)
        raise AssertionError("the outbox did not drain")

    now = drain(T0)
    for a in accounts[:8]:
        store.claim(cases[a], "bob", now=now)
    now = drain(now + timedelta(hours=1))
    for a in accounts[:4]:
        store.resolve(cases[a], actor="bob", outcome="churned", now=now)
    drain(now + timedelta(hours=1))

    rows = note_rows(store)
    assert len(rows) == 12 + 8 + 4 and (rows["status"] == "delivered").all()
    for account, ticket in zip(accounts, tickets):
        keys = list(rows[rows["destination"] == account]["dedupe_key"])
        notes = fake.texts(ticket)
        assert len(notes) == len(keys) and all(sum(marker(k) in n for n in notes) == 1 for k in keys)
    assert fake.faults.injected["lost"] > 0 and rows["attempts"].max() > 1
    assert sender.stats.already_there > 0  # lost writes were found by their marker, not posted again
    assert sender.stats.posted + sender.stats.already_there >= len(rows)


def test_no_open_ticket_is_delivered_as_no_record(store, warehouse, rsps):
    land_tickets(warehouse, [
        {"ticket_id": "101", "account_id": "ACC-1", "created_at": "2026-05-01", "status": "solved", "escalated": True},
        {"ticket_id": "102", "account_id": "ACC-2", "created_at": "2026-05-01", "status": "open", "escalated": False},
        {"ticket_id": "103", "account_id": "ACC-2", "created_at": "2026-05-09", "status": "new", "escalated": False},
    ])
    fake, client = make("freshdesk", ["101", "102", "103"])
    fake.install(rsps)
    sender, _ = sender_for(client, warehouse)
    open_case(store, ["ACC-1", "ACC-2", "ACC-3"])

    report = run(store, sender, T0)

    assert report.delivered == 3 and report.failed == 0
    assert len(sender.stats.no_record) == 2 and dict(fake.written) == {"103": 1}  # no escalation: the newest open
    assert (note_rows(store)["status"] == "delivered").all()


def test_the_delivery_asset_writes_the_notes_the_setting_names(store, tmp_path, rsps, monkeypatch):
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    land_tickets(Warehouse(url), [{"ticket_id": "101", "account_id": "ACC-1", "created_at": "2026-05-01",
                                   "status": "open", "escalated": True}])
    fake, _ = make("freshdesk", ["101"])
    fake.install(rsps)
    open_case(store, ["ACC-1"])
    notes = TicketNotesResource(target="freshdesk", freshdesk_domain="acme", freshdesk_api_key=FD_KEY)
    resources = {"queue": QueueStoreResource(url=f"sqlite:///{tmp_path / 'queue.db'}"),
                 "crm_writer": CRMWriterResource(warehouse=WarehouseResource(url=url), ticket_notes=notes)}

    result = dg.materialize([crm_writeback], resources=resources, run_config={
        "ops": {"crm_writeback": {"config": {"now": "2026-06-01T09:00:00+00:00"}}}})

    assert result.success and fake.written["101"] == 1
    (materialization,) = result.asset_materializations_for_node("crm_writeback")
    assert materialization.metadata["ticket_notes"].value.startswith("1 posted, 0 already there")
    assert FD_KEY not in str(materialization.metadata)

    monkeypatch.setenv("RESCUE_TICKET_WRITEBACK", "jira")
    monkeypatch.setenv("JIRA_API_TOKEN", JIRA_TOKEN)
    bound = ticket_notes_resource(current())
    assert bound.target == "jira" and isinstance(bound.jira_api_token, dg.EnvVar)
    with pytest.raises(ValueError, match="JIRA_BASE_URL, JIRA_EMAIL"):
        TicketNotesResource(target="jira", jira_api_token=JIRA_TOKEN).system()
    monkeypatch.setenv("RESCUE_TICKET_WRITEBACK", "zendesk")
    with pytest.raises(SettingError, match="RESCUE_TICKET_WRITEBACK"):
        ticket_notes_resource(current())
    monkeypatch.delenv("RESCUE_TICKET_WRITEBACK")
    assert ticket_notes_resource(current()) is None

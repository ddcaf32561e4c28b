"""CRM write-back from the outbox: exactly-once records under faults, backoff, dead letters, no secrets.

Salesforce is the HTTP fake of tests/fakes/salesforce_fake.py (simple-salesforce runs unchanged
on top of it); the demo CRM is a real DuckDB warehouse; the queue is a real SQLite database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

import pandas as pd
import pytest
import responses

from connectors.writeback import (
    CRMWriterResource,
    SalesforceCRMWriter,
    WarehouseCRMWriter,
    action_task_key,
    case_task_key,
    dead_letters,
    deliver_crm_outbox,
    queue_case_syncs,
)
from connectors.http_retry import RetryPolicy
from connectors.queue.store import QueueStore
from connectors.salesforce.client import SalesforceClient, SalesforceConnection, SalesforceCredentials
from connectors.salesforce.writer import SalesforceWriter
from connectors.warehouse import Warehouse, WarehouseResource
from tests.conftest import snapshot_frames
from tests.fakes.salesforce_fake import FaultInjector, SalesforceFake

USERNAME = "integration@example.com"
PASSWORD = "Wr1teBack-Secret-Pa55"
TOKEN = "TOKENwb4242"
T0 = datetime(2026, 6, 1, 9, 0)


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


def open_cases(store: QueueStore, n: int, *, snapshot: str = "2026-06-01") -> list[str]:
    decisions, candidates = snapshot_frames([{"account_id": f"ACC-{i:04d}", "assignee": "ana"} for i in range(n)])
    store.apply_decisions(decisions, candidates, policy_version="t", policy_hash="h", model_version="m",
                          snapshot_date=snapshot, now=T0)
    return list(store.list_cases()["case_id"])


def crm_rows(store: QueueStore, status: str | None = None) -> pd.DataFrame:
    rows = store.outbox(status)
    return rows[rows["channel"] == "crm"].reset_index(drop=True)


def salesforce(rsps: responses.RequestsMock, *, rate: float = 0.0, attempts: int = 8) -> tuple[SalesforceFake, SalesforceCRMWriter]:
    fake = SalesforceFake(username=USERNAME, password=PASSWORD, security_token=TOKEN,
                          faults=FaultInjector(rate=rate, seed=20260601)).install(rsps)
    fake.add("User", Name="Ana Souza", Email="ana@example.com", Username="ana@example.com", Alias="ana", IsActive=True)
    client = SalesforceClient(SalesforceCredentials(username=USERNAME, password=PASSWORD, security_token=TOKEN),
                              retry_policy=RetryPolicy(max_attempts=attempts), sleep=lambda _s: None)
    connection = SalesforceConnection(username=USERNAME, password=PASSWORD, security_token=TOKEN)
    return fake, SalesforceCRMWriter(SalesforceWriter(connection=connection).use_client(client))


def deliver_until_done(store: QueueStore, writer, *, max_attempts: int, runs: int = 40) -> tuple[int, datetime]:
    """Delivery runs a day apart (past any backoff) until nothing is pending; returns the runs used."""
    now = T0
    for run in range(1, runs + 1):
        while deliver_crm_outbox(store, writer, now=now, max_attempts=max_attempts, batch=200).attempted:
            pass
        if crm_rows(store, "pending").empty:
            return run, now
        now += timedelta(days=1)
    raise AssertionError(f"still {len(crm_rows(store, 'pending'))} pending rows after {runs} runs")


def test_fault_injection_1000_actions_each_reach_salesforce_exactly_once(store, rsps):
    cases = open_cases(store, 100)
    plays = list(store.policy.plays)  # the catalogue of the deployment's policy
    for case_id in cases:
        store.claim(case_id, "ana", now=T0)
        for k in range(10):
            store.log_play(case_id, actor="ana", play=plays[k % len(plays)], now=T0 + timedelta(minutes=k))
    actions = store.plays()
    assert len(actions) == 1000 and len(crm_rows(store, "pending")) == 1000
    fake, writer = salesforce(rsps, rate=0.3, attempts=2)  # short client retries: the outbox retries too

    runs, _ = deliver_until_done(store, writer, max_attempts=50)

    keys = [action_task_key(a) for a in actions["action_id"]]
    tasks = fake.by_key("Task", "Rescue_Key__c")
    assert sorted(tasks) == sorted(keys) and len(fake.records["Task"]) == 1000
    assert {fake.creates[("Task", k)] for k in keys} == {1}  # one record per action, whatever the retries
    assert sum(fake.upsert_calls[("Task", k)] for k in keys) > 1000  # ...and there were retries
    assert fake.faults.injected["lost"] > 0 and fake.faults.injected["429"] > 0
    outbox = crm_rows(store)
    assert (outbox["status"] == "delivered").all() and outbox["delivered_at"].notna().all()
    assert runs > 1 and outbox["attempts"].max() > 1  # some rows needed a later run (backoff)
    assert tasks[keys[0]]["Status"] == "Completed" and tasks[keys[0]]["OwnerId"] == fake.by_key("User", "Alias")["ana"]["Id"]

    calls_before = sum(fake.upsert_calls.values())
    rerun = deliver_crm_outbox(store, writer, now=T0 + timedelta(days=90), max_attempts=50)
    assert rerun.attempted == 0 and sum(fake.upsert_calls.values()) == calls_before


def test_a_refused_write_backs_off_then_becomes_a_dead_letter_without_secrets(store, rsps, caplog):
    caplog.set_level(logging.DEBUG)
    (case_id,) = open_cases(store, 1)
    store.claim(case_id, "ana", now=T0)
    store.log_play(case_id, actor="ana", play="commercial_concession", now=T0)
    store.log_play(case_id, actor="ana", play="success_plan", now=T0)
    store.enqueue([{"case_id": None, "channel": "crm", "destination": "x", "kind": "mystery", "dedupe_key": "m:1",
                    "payload": {}}], now=T0)
    fake, writer = salesforce(rsps)
    fake.add_validation_rule("Task", "Subject", lambda s: "commercial_concession" not in s, "Plays must be approved")

    first = deliver_crm_outbox(store, writer, now=T0, max_attempts=3, base_delay=timedelta(minutes=10))
    assert (first.delivered, first.failed, first.dead) == (1, 1, 1)  # unknown kind: dead at once
    refused = crm_rows(store, "pending").iloc[0]
    assert refused["attempts"] == 1 and refused["next_attempt_at"] == T0 + timedelta(minutes=10)
    assert "Plays must be approved" in refused["last_error"]
    assert deliver_crm_outbox(store, writer, now=T0 + timedelta(minutes=5), max_attempts=3).attempted == 0  # backing off
    second = deliver_crm_outbox(store, writer, now=T0 + timedelta(minutes=10), max_attempts=3, base_delay=timedelta(minutes=10))
    assert second.failed == 1
    assert crm_rows(store, "pending").iloc[0]["next_attempt_at"] == T0 + timedelta(minutes=30)  # doubled
    third = deliver_crm_outbox(store, writer, now=T0 + timedelta(hours=1), max_attempts=3)
    assert third.dead == 1 and crm_rows(store, "pending").empty

    dead = dead_letters(store)
    assert sorted(dead["kind"]) == ["mystery", "rescue_action"]
    assert dead.set_index("kind").loc["rescue_action", "attempts"] == 3
    assert "unknown CRM outbox kind 'mystery'" in dead.set_index("kind").loc["mystery", "last_error"]
    texts = [*crm_rows(store)["last_error"].dropna(), *(r.getMessage() for r in caplog.records), repr(writer)]
    blob = "\n".join(texts)
    assert "Plays must be approved" in blob
    for secret in (PASSWORD, TOKEN, PASSWORD + TOKEN, "00Dfake!session"):
        assert secret not in blob


def test_case_syncs_keep_one_task_per_case_with_its_latest_state(store, tmp_path):
    warehouse = Warehouse(f"duckdb:///{tmp_path / 'crm.duckdb'}")
    writer = WarehouseCRMWriter(warehouse)
    cases = open_cases(store, 3)
    assert queue_case_syncs(store, now=T0) == 3
    assert queue_case_syncs(store, now=T0) == 0  # the same state is queued once
    assert deliver_crm_outbox(store, writer, now=T0).delivered == 3

    store.claim(cases[0], "ana", now=T0)
    store.log_play(cases[0], actor="ana", play="success_plan", now=T0)
    assert queue_case_syncs(store, now=T0) == 1  # only the changed case
    store.resolve(cases[0], actor="ana", outcome="saved", now=T0 + timedelta(days=1))
    report = deliver_crm_outbox(store, writer, now=T0 + timedelta(days=1))
    assert report.delivered == 3 and report.attempted == 3  # play, sync and outcome

    tasks = writer.tasks().set_index("external_id")
    assert sorted(tasks.index) == sorted([*(case_task_key(c) for c in cases), action_task_key(1)])
    worked = tasks.loc[case_task_key(cases[0])]
    assert worked["status"] == "completed" and worked["outcome"] == "resolved_saved"
    assert "Plays: success_plan" in worked["description"]
    assert worked["writes"] == 2  # the sync and the outcome in one batch were written once
    assert tasks.loc[case_task_key(cases[1]), "status"] == "not_started"
    health = writer.account_health().set_index("account_id")
    worked_account, other_account = (store.get_case(c)["account_id"] for c in cases[:2])
    assert len(health) == 3 and health.loc[worked_account, "rescue_status"] == "resolved_saved"
    assert health.loc[other_account, "rescue_status"] == "open"
    assert health.loc[other_account, "churn_risk"] == pytest.approx(0.7)
    assert queue_case_syncs(store, now=T0 + timedelta(days=2)) == 0  # terminal cases are not re-synced


def test_an_unassigned_case_syncs_with_no_owner_and_stops_no_other_case(store, tmp_path):
    writer = WarehouseCRMWriter(Warehouse(f"duckdb:///{tmp_path / 'crm.duckdb'}"))
    decisions, candidates = snapshot_frames([  # one handed to a person, one to the whole team
        {"account_id": "ACC-0001", "assignee": "ana"}, {"account_id": "ACC-0002", "assignee": None}])
    store.apply_decisions(decisions, candidates, policy_version="t", policy_hash="h", model_version="m",
                          snapshot_date="2026-06-01", now=T0)
    cases = store.list_cases().set_index("account_id")["case_id"]
    assert queue_case_syncs(store, now=T0) == 2
    assert queue_case_syncs(store, now=T0) == 0
    syncs = crm_rows(store, "pending").set_index("case_id")
    assert syncs.loc[cases["ACC-0002"], "payload"]["assignee"] is None
    assert syncs.loc[cases["ACC-0002"], "dedupe_key"].split(":")[3] == "-"

    resource = CRMWriterResource(warehouse=WarehouseResource(url=f"duckdb:///{tmp_path / 'crm.duckdb'}"))
    report = resource.deliver(store, now=T0, writer=writer)  # queues the syncs again (nothing new), delivers
    assert (report.delivered, report.failed, report.dead) == (2, 0, 0)
    tasks = writer.tasks().set_index("case_id")
    assert tasks.loc[cases["ACC-0001"], "owner"] == "ana"
    assert pd.isna(tasks.loc[cases["ACC-0002"], "owner"])  # no owner: NULL in the CRM


def test_a_late_retry_never_puts_an_older_case_state_back(store, tmp_path):
    warehouse = Warehouse(f"duckdb:///{tmp_path / 'crm.duckdb'}")
    (case_id,) = open_cases(store, 1)
    queue_case_syncs(store, now=T0)

    class Flaky(WarehouseCRMWriter):
        fail = True

        def upsert_task(self, task):
            if self.fail:
                raise ConnectionError("CRM unreachable")
            super().upsert_task(task)

    writer = Flaky(warehouse)
    assert deliver_crm_outbox(store, writer, now=T0).failed == 1  # the "open" sync fails
    store.claim(case_id, "ana", now=T0)
    store.log_play(case_id, actor="ana", play="success_plan", now=T0)
    store.resolve(case_id, actor="ana", outcome="churned", now=T0)
    writer.fail = False
    deliver_crm_outbox(store, writer, now=T0 + timedelta(hours=1))
    task = writer.tasks().set_index("external_id").loc[case_task_key(case_id)]
    assert task["status"] == "completed" and task["outcome"] == "resolved_churned"


def test_a_case_row_for_a_case_not_in_the_queue_is_dead_at_once_and_stops_nothing(store, tmp_path):
    writer = WarehouseCRMWriter(Warehouse(f"duckdb:///{tmp_path / 'crm.duckdb'}"))
    store.enqueue([{"case_id": "RC-GONE", "channel": "crm", "destination": "ACC-9", "kind": "case_sync",
                    "dedupe_key": "case_sync:RC-GONE", "payload": {}}], now=T0)
    (case_id,) = open_cases(store, 1)
    queue_case_syncs(store, now=T0)
    report = deliver_crm_outbox(store, writer, now=T0)
    assert (report.attempted, report.delivered, report.failed, report.dead) == (2, 1, 0, 1)
    (error,) = dead_letters(store)["last_error"]
    assert error == "Undeliverable: case RC-GONE is not in the queue"
    assert list(writer.tasks()["external_id"]) == [case_task_key(case_id)]


def test_the_resource_picks_the_demo_crm_and_delivers_pending_rows_only(store, tmp_path):
    resource = CRMWriterResource(warehouse=WarehouseResource(url=f"duckdb:///{tmp_path / 'crm.duckdb'}"))
    open_cases(store, 2)
    first = resource.deliver(store, now=T0)
    again = resource.deliver(store, now=T0 + timedelta(hours=1))
    assert (first.delivered, again.attempted) == (2, 0)
    assert isinstance(resource.get_writer(), WarehouseCRMWriter)
    sf = CRMWriterResource(warehouse=resource.warehouse, target="salesforce", salesforce=SalesforceConnection(
        username=USERNAME, password=PASSWORD, security_token=TOKEN))
    assert isinstance(sf.get_writer(), SalesforceCRMWriter) and PASSWORD not in repr(sf.get_writer())
    with pytest.raises(ValueError, match="no salesforce connection is bound"):
        CRMWriterResource(warehouse=resource.warehouse, target="salesforce").get_writer()
    with pytest.raises(ValueError, match="target must be 'warehouse', 'salesforce' or 'hubspot', got 'pipedrive'"):
        CRMWriterResource(warehouse=resource.warehouse, target="pipedrive").get_writer()
    assert pd.Timestamp(crm_rows(store, "delivered")["delivered_at"].max()) == pd.Timestamp(T0)

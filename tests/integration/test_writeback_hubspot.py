"""HubSpot as the CRM write-back target: a case's task and its company's health, exactly once under faults.

HubSpot is the HTTP fake of tests/fakes/hubspot_fake.py; the queue is a real SQLite database.
Nothing sleeps: the writer's retry sleep is recorded instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
import responses

from connectors.http_retry import RetryPolicy
from connectors.hubspot_writer import HubSpotCRMWriter
from connectors.queue.store import QueueStore
from connectors.settings import HubSpotWritebackSettings, SettingError, crm_target, current
from connectors.writeback import action_task_key, case_task_key, deliver_crm_outbox, queue_case_syncs
from pipelines.resources import crm_writer_resource
from connectors.warehouse import WarehouseResource
from tests.conftest import snapshot_frames
from tests.fakes.hubspot_fake import HubSpotFake
from tests.fakes.salesforce_fake import FaultInjector

TOKEN = "pat-eu1-0000-hubspot-secret-4242"
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


def open_cases(store: QueueStore, n: int, *, snapshot: str = "2026-06-01", priority: str = "P2") -> list[str]:
    decisions, candidates = snapshot_frames([{"account_id": str(5000 + i), "priority": priority} for i in range(n)])
    store.apply_decisions(decisions, candidates, policy_version="t", policy_hash="h", model_version="m",
                          snapshot_date=snapshot, now=T0)
    return list(store.list_cases().sort_values("account_id")["case_id"])


def hubspot(rsps, n: int, *, rate: float = 0.0, attempts: int = 5, token: str = TOKEN,
            properties: HubSpotWritebackSettings | None = None) -> tuple[HubSpotFake, HubSpotCRMWriter, list[float]]:
    fake = HubSpotFake(TOKEN, faults=FaultInjector(rate=rate, seed=20260604)).install(rsps)
    for i in range(n):
        fake.add_company(str(5000 + i), name=f"Company {5000 + i}", crm_account_id=f"ACC-{i:04d}")
    slept: list[float] = []
    writer = HubSpotCRMWriter(token, properties=properties, retry_policy=RetryPolicy(max_attempts=attempts),
                              sleep=slept.append, clock=lambda: datetime(2026, 6, 1, 9))
    return fake, writer, slept


def deliver(store: QueueStore, writer, now: datetime, *, max_attempts: int = 8):
    queue_case_syncs(store, now=now)
    return deliver_crm_outbox(store, writer, now=now, max_attempts=max_attempts)


def crm_rows(store: QueueStore, status: str | None = None) -> pd.DataFrame:
    rows = store.outbox(status)
    return rows[rows["channel"] == "crm"].reset_index(drop=True)


def test_a_case_lifecycle_is_one_task_on_its_company_and_the_company_health(store, rsps):
    (case_id,) = open_cases(store, 1)
    fake, writer, _ = hubspot(rsps, 1)
    key = case_task_key(case_id)

    first = deliver(store, writer, T0)
    task = fake.task_by_key(key)
    assert first.delivered == 1 and task["hs_task_status"] == "NOT_STARTED" and task["hs_task_priority"] == "HIGH"
    assert (task["hs_object_id"], "5000") in fake.associations
    company = fake.companies["5000"]
    assert company["rescue_status"] == "open" and company["rescue_churn_risk"] == pytest.approx(0.7)
    assert company["rescue_health_score"] == pytest.approx(30) and "weekly active users" in company["rescue_top_reason"]

    store.claim(case_id, "bob", now=T0 + timedelta(hours=1))
    deliver(store, writer, T0 + timedelta(hours=1))
    play = store.log_play(case_id, actor="bob", play=list(store.policy.plays)[0], now=T0 + timedelta(hours=2))
    store.resolve(case_id, actor="bob", outcome="saved", now=T0 + timedelta(hours=3))
    deliver(store, writer, T0 + timedelta(hours=3))

    task = fake.task_by_key(key)
    assert fake.creates[key] == 1 and fake.upserts[key] == 3  # opened, claimed, resolved: one task
    assert task["hs_task_status"] == "COMPLETED" and "Owner: bob" in task["hs_task_body"]
    assert "Outcome: resolved_saved" in task["hs_task_body"]
    action = fake.task_by_key(action_task_key(play["action_id"]))
    assert action["hs_task_status"] == "COMPLETED" and (action["hs_object_id"], "5000") in fake.associations
    assert len(fake.tasks) == 2 and fake.companies["5000"]["rescue_status"] == "resolved_saved"
    assert (crm_rows(store)["status"] == "delivered").all()

    calls = sum(fake.requests.values())
    assert deliver(store, writer, T0 + timedelta(days=1)).attempted == 0 and sum(fake.requests.values()) == calls


@pytest.mark.parametrize("loss", ["timeout", "503"])
def test_a_lost_answer_is_retried_without_a_second_task(store, rsps, loss):
    (case_id,) = open_cases(store, 1)
    fake, writer, slept = hubspot(rsps, 1)
    if loss == "timeout":
        fake.faults.queue.append("lost")  # applied by HubSpot, then the client times out
    else:
        fake.lost_503 = 1  # applied by HubSpot, then answered 503

    report = deliver(store, writer, T0)

    key = case_task_key(case_id)
    assert report.delivered == 1 and fake.upserts[key] == 2 and fake.creates[key] == 1 and len(fake.tasks) == 1
    assert len(slept) == 1  # one retry, in the client


def test_429_waits_what_retry_after_says(store, rsps):
    open_cases(store, 1)
    fake, writer, slept = hubspot(rsps, 1)
    fake.faults.retry_after = "7"
    fake.faults.queue.extend(["429", "429"])

    report = deliver(store, writer, T0)

    assert report.delivered == 1 and slept == [7.0, 7.0] and len(fake.tasks) == 1


def test_a_refused_token_is_one_secret_free_line_naming_the_variable_then_dead(store, rsps):
    open_cases(store, 1)
    fake, writer, _ = hubspot(rsps, 1, token="pat-wrong-token-123")

    first = deliver(store, writer, T0, max_attempts=2)
    error = crm_rows(store)["last_error"].iloc[0]
    assert first.failed == 1 and "HUBSPOT_ACCESS_TOKEN" in error and "\n" not in error
    assert "pat-wrong-token-123" not in error and TOKEN not in error
    assert not fake.tasks and fake.requests["POST"] == 1  # an auth failure is not retried in the client

    deliver(store, writer, T0 + timedelta(days=1), max_attempts=2)
    assert crm_rows(store, "dead")["last_error"].str.contains("HUBSPOT_ACCESS_TOKEN").all()
    assert "pat-wrong-token-123" not in repr(writer)


def test_30_percent_injected_failures_each_task_and_company_written_exactly_once(store, rsps):
    cases = open_cases(store, 40)
    plays = list(store.policy.plays)
    for i, case_id in enumerate(cases[:20]):
        store.claim(case_id, "ana", now=T0)
        store.log_play(case_id, actor="ana", play=plays[i % len(plays)], now=T0)
    fake, writer, _ = hubspot(rsps, 40, rate=0.3, attempts=2)  # short client retries: the outbox retries too

    now, runs = T0, 0
    while not crm_rows(store, "pending").empty:
        runs += 1
        assert runs < 40, "the outbox did not drain"
        deliver(store, writer, now, max_attempts=60)
        now += timedelta(days=1)

    keys = [case_task_key(c) for c in cases] + [action_task_key(a) for a in store.plays()["action_id"]]
    assert len(keys) == 60 and len(fake.tasks) == 60 and {fake.creates[k] for k in keys} == {1}
    assert sum(fake.upserts[k] for k in keys) > 60 and fake.faults.injected["lost"] > 0  # there were retries
    assert runs > 1 and (crm_rows(store)["status"] == "delivered").all()
    statuses = store.list_cases().set_index("account_id")["status"]
    assert {a: fake.companies[a].get("rescue_status") for a in statuses.index} == statuses.to_dict()
    assert set(statuses) == {"open", "in_progress"}
    for case_id in cases:  # every case task is on its account's company
        task = fake.task_by_key(case_task_key(case_id))
        assert any(t == task["hs_object_id"] for t, _ in fake.associations)


def test_companies_found_by_a_unique_property_and_an_unknown_one_named(store, rsps):
    decisions, candidates = snapshot_frames([{"account_id": "ACC-0000"}, {"account_id": "ACC-9999"}])
    store.apply_decisions(decisions, candidates, policy_version="t", policy_hash="h", model_version="m",
                          snapshot_date="2026-06-01", now=T0)
    fake, writer, _ = hubspot(rsps, 1, properties=HubSpotWritebackSettings(company_key="crm_account_id"))

    report = deliver(store, writer, T0)

    assert report.delivered == 1 and report.failed == 1
    assert fake.companies["5000"]["rescue_status"] == "open"
    (task,) = fake.tasks.values()
    assert (task["hs_object_id"], "5000") in fake.associations
    error = crm_rows(store, "pending")["last_error"].iloc[0]
    assert "ACC-9999" in error and "RESCUE_HUBSPOT_COMPANY_KEY" in error


def test_rescue_crm_chooses_hubspot_with_the_token_bound_by_name(monkeypatch, tmp_path):
    monkeypatch.setenv("RESCUE_CRM", "hubspot")
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("RESCUE_HUBSPOT_TASK_KEY", "rescue_task_key")
    resource = crm_writer_resource(WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}"), current())
    assert resource.target == "hubspot" and isinstance(resource.hubspot_access_token, dg.EnvVar)
    assert resource.hubspot_access_token.env_var_name == "HUBSPOT_ACCESS_TOKEN"
    assert resource.hubspot_properties["task_key"] == "rescue_task_key"
    with dg.build_resources({"crm_writer": resource}) as bound:
        writer = bound.crm_writer.get_writer()
    assert isinstance(writer, HubSpotCRMWriter) and writer.properties.task_key == "rescue_task_key"
    assert writer.secrets() == (TOKEN,) and TOKEN not in repr(writer)

    monkeypatch.setenv("RESCUE_CRM", "pipedrive")
    with pytest.raises(SettingError, match="RESCUE_CRM"):
        crm_target(current())
    monkeypatch.delenv("RESCUE_CRM")
    assert crm_target(current()) == "warehouse"

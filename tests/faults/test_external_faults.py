"""External systems that are down: the CRM, Salesforce over HTTP, a Slack webhook. The day goes
on: after a few consecutive failures the rest of the batch is deferred to the outbox (pending,
attempts unchanged), the report says which circuit opened, and nothing leaks a secret.
Storage runs on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pandas as pd
import pytest
import requests
import responses

from connectors.http_retry import RetryPolicy
from connectors.notify import ChannelNotifier, LogNotifier, SlackWebhookNotifier, deliver_outbox
from connectors.queue.outbox import BREAKER_THRESHOLD, CircuitBreaker
from connectors.queue.store import QueueStore
from connectors.salesforce.client import SalesforceClient, SalesforceConnection, SalesforceCredentials
from connectors.salesforce.writer import SalesforceWriter
from connectors.writeback import SalesforceCRMWriter, deliver_all
from tests.conftest import snapshot_frames
from tests.faults.conftest import assert_clean_failure

T0 = datetime(2026, 6, 1, 9, 0)
PASSWORD, TOKEN = "hunter2-sf-password", "sk-test-secret-sf-token"


class DownCRM:
    """A CRM writer whose system is unreachable (or back up, when `up`)."""

    def __init__(self) -> None:
        self.calls = 0
        self.up = False
        self.written: list[str] = []

    def _call(self, key: str) -> None:
        self.calls += 1
        if not self.up:
            raise requests.ConnectionError(f"connect to crm.example.com:443 failed (password={PASSWORD})")
        self.written.append(key)

    def upsert_task(self, task) -> None:
        self._call(task.external_id)

    def upsert_account_health(self, health) -> None:
        self._call(f"health:{health.account_id}")

    def secrets(self) -> list[str]:
        return [PASSWORD, TOKEN]


def _queue_with_plays(store: QueueStore, n: int) -> None:
    decisions, candidates = snapshot_frames([{"account_id": f"ACC-{i:03d}", "assignee": "ana"} for i in range(n)])
    store.apply_decisions(decisions, candidates, policy_version="t", policy_hash="h", model_version="m",
                          snapshot_date="2026-06-01", now=T0)
    for case_id in store.list_cases()["case_id"]:
        store.claim(case_id, "ana", now=T0)
        store.log_play(case_id, actor="ana", play="executive_sponsor_call", now=T0 + timedelta(minutes=1))


def _crm(store: QueueStore, status: str | None = None) -> pd.DataFrame:
    rows = store.outbox(status)
    return rows[rows["channel"] == "crm"].reset_index(drop=True)


def test_an_unreachable_crm_costs_a_few_calls_and_defers_the_rest_until_it_is_back(queue_store) -> None:
    _queue_with_plays(queue_store, 30)
    crm = DownCRM()
    total = len(_crm(queue_store, "pending"))
    assert total >= 30

    report = deliver_all(queue_store, crm, now=T0 + timedelta(hours=1))
    assert crm.calls == BREAKER_THRESHOLD
    assert report.open_circuits == ("crm",)
    assert (report.failed, report.deferred, report.delivered, report.dead) == \
        (BREAKER_THRESHOLD, total - BREAKER_THRESHOLD, 0, 0)
    pending = _crm(queue_store, "pending")
    assert len(pending) == total  # nothing lost, nothing dead
    deferred = pending[pending["last_error"].str.startswith("deferred:")]
    assert len(deferred) == total - BREAKER_THRESHOLD and set(deferred["attempts"]) == {0}
    for error in pending["last_error"]:
        assert_clean_failure(error, names=["crm"] if error.startswith("deferred") else ["ConnectionError"],
                             secrets=[PASSWORD, TOKEN])

    crm.up = True
    later = deliver_all(queue_store, crm, now=T0 + timedelta(days=1))
    assert later.open_circuits == () and later.delivered == total
    assert _crm(queue_store, "pending").empty and _crm(queue_store, "dead").empty


def test_one_row_the_crm_refuses_does_not_open_the_circuit(queue_store) -> None:
    from connectors.queue.outbox import Undeliverable

    class Picky(DownCRM):
        def _call(self, key: str) -> None:
            self.calls += 1
            if self.calls <= BREAKER_THRESHOLD + 2:
                raise Undeliverable(f"record {key} refused")  # about the row, not the system
            self.written.append(key)

    _queue_with_plays(queue_store, 12)
    crm = Picky()
    report = deliver_all(queue_store, crm, now=T0 + timedelta(hours=1))
    assert report.open_circuits == () and report.deferred == 0
    assert report.dead == BREAKER_THRESHOLD + 2 and report.delivered == len(_crm(queue_store, "delivered"))


def test_a_success_between_failures_keeps_the_circuit_closed() -> None:
    breaker = CircuitBreaker(threshold=3)
    for _ in range(2):
        breaker.failed("crm", "timeout")
    breaker.succeeded("crm")
    breaker.failed("crm", "timeout")
    assert not breaker.is_open("crm") and breaker.open_channels() == ()
    with pytest.raises(ValueError, match="threshold must be >= 1"):
        CircuitBreaker(threshold=0)


def test_salesforce_down_over_http_is_bounded_and_tells_no_secret(queue_store) -> None:
    _queue_with_plays(queue_store, 20)
    total = len(_crm(queue_store, "pending"))
    credentials = SalesforceCredentials(username="ops@example.com", password=PASSWORD, security_token=TOKEN)
    client = SalesforceClient(credentials, retry_policy=RetryPolicy(max_attempts=3), sleep=lambda _s: None)
    connection = SalesforceConnection(username="ops@example.com", password=PASSWORD, security_token=TOKEN)
    writer = SalesforceCRMWriter(SalesforceWriter(connection=connection).use_client(client))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method in (responses.GET, responses.POST, responses.PATCH):
            mock.add(method, re.compile(r"https://.*"), body=requests.ConnectionError("connection refused"))
        report = deliver_all(queue_store, writer, now=T0 + timedelta(hours=1))
        calls = len(mock.calls)
    assert report.open_circuits == ("crm",) and report.deferred == total - BREAKER_THRESHOLD
    # Each failed send costs at most the client's attempts (login included): bounded by the breaker.
    assert calls <= BREAKER_THRESHOLD * 3 * 2
    for error in _crm(queue_store, "pending")["last_error"]:
        assert_clean_failure(error, secrets=[PASSWORD, TOKEN, PASSWORD + TOKEN])


@responses.activate
def test_a_slack_webhook_that_is_down_opens_only_its_own_circuit(queue_store) -> None:
    webhook = "https://hooks.slack.example/services/T000/B000/sk-test-secret-hook"
    responses.add(responses.POST, webhook, status=500, body="upstream down")
    decisions, candidates = snapshot_frames([{"account_id": f"S-{i}", "team": "csm"} for i in range(8)])
    queue_store.apply_decisions(decisions, candidates, policy_version="t", policy_hash="h", model_version="m",
                                snapshot_date="2026-06-01", now=T0,
                                notify={"csm": ["#csm-rescue", "log:csm"]})
    notifier = ChannelNotifier({"slack": SlackWebhookNotifier(webhook, fallback=LogNotifier(), timeout=1)},
                               fallback=LogNotifier())
    report = deliver_outbox(queue_store, notifier, now=T0 + timedelta(minutes=5), batch=100)
    rows = queue_store.outbox()
    slack, log = rows[rows["channel"] == "slack"], rows[rows["channel"] == "log"]
    assert report.open_circuits == ("slack",)
    assert len(responses.calls) == BREAKER_THRESHOLD
    assert set(log["status"]) == {"delivered"} and set(slack["status"]) == {"pending"}
    for error in slack["last_error"]:
        assert_clean_failure(error, secrets=["sk-test-secret-hook", webhook])

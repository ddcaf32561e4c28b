"""The ticketing connector against an HTTP fake of a Zendesk-style API."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
import requests
import responses

from connectors.http_retry import RetryPolicy, TransientHTTPError, parse_retry_after
from connectors.zendesk import (
    EXPORT_PATH,
    JsonFileCursorStore,
    SqlCursorStore,
    TicketMirror,
    ZendeskAPIError,
    ZendeskClient,
    ZendeskTicketing,
    sync_tickets,
)
from models.contracts import TICKETS
from tests.fakes.salesforce_fake import FaultInjector
from tests.fakes.zendesk_fake import ZendeskFake

EMAIL = "bot@example.com"
TOKEN = "zd-S3cret-T0ken"
START = int(datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp())


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def make_fake(rsps: responses.RequestsMock, **kwargs) -> ZendeskFake:
    fake = ZendeskFake(email=EMAIL, token=TOKEN, **kwargs).install(rsps)
    fake.add_organization(1, external_id="acc-1")
    fake.add_organization(2, external_id=None, account_id="acc-2")
    fake.put_ticket(101, updated_at="2025-02-01T10:00:00Z", created_at="2025-02-01T09:00:00Z", organization_id=1,
                    status="open", priority="urgent", type="incident", tags=["escalated", "vip"],
                    metrics={"reply_time_in_minutes": {"calendar": 45, "business": 30}, "solved_at": None})
    fake.put_ticket(102, updated_at="2025-02-02T10:00:00Z", created_at="2025-02-01T12:00:00Z", organization_id=1,
                    status="solved", priority=None, type="question", satisfaction_rating={"score": "good"},
                    metrics={"reply_time_in_minutes": {"calendar": 5}, "solved_at": "2025-02-02T09:59:00Z"})
    fake.put_ticket(103, updated_at="2025-02-03T10:00:00Z", created_at="2025-02-03T08:00:00Z", organization_id=2,
                    status="hold", priority="high", type="problem", satisfaction_rating={"score": "bad"})
    fake.put_ticket(104, updated_at="2025-02-04T10:00:00Z", created_at="2025-02-04T08:00:00Z", organization_id=1,
                    status="closed", priority="low", satisfaction_rating={"score": "offered"})
    fake.put_ticket(105, updated_at="2025-02-05T10:00:00Z", created_at="2025-02-05T08:00:00Z", organization_id=None,
                    status="new", priority="normal")
    return fake


def make_client(sleeps: list[float] | None = None, *, token: str = TOKEN, attempts: int = 8) -> ZendeskClient:
    return ZendeskClient("https://acme.zendesk.com", EMAIL, token, page_size=2,
                         retry_policy=RetryPolicy(max_attempts=attempts),
                         sleep=(sleeps if sleeps is not None else []).append)


def export_calls(fake: ZendeskFake) -> list[dict[str, str]]:
    return [params for path, params in fake.calls if path == EXPORT_PATH]


@pytest.fixture(params=["json", "sql"])
def cursor_store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "json":
        return JsonFileCursorStore(tmp_path / "state" / "cursors.json")
    return SqlCursorStore(f"sqlite:///{tmp_path / 'cursors.db'}")


def test_cursor_export_pages_persist_the_cursor_and_resume(rsps, cursor_store, tmp_path):
    fake = make_fake(rsps)
    mirror = TicketMirror(f"sqlite:///{tmp_path / 'mirror.db'}")
    client = make_client()

    first = sync_tickets(client, cursor_store, mirror, stream="tickets@acme", start_time=START,
                         org_account_field="external_id")
    calls = export_calls(fake)
    assert [("start_time" in c, "cursor" in c) for c in calls] == [(True, False), (False, True), (False, True)]
    assert calls[0]["start_time"] == str(START) and calls[0]["include"] == "metric_sets"
    assert first.pages == 3 and first.tickets_changed == 5 and not first.resumed
    assert cursor_store.get("tickets@acme") == first.cursor
    assert mirror.count() == 5

    # between runs: one ticket changes, one is created, one is deleted
    fake.put_ticket(102, updated_at="2025-03-01T10:00:00Z", status="closed")
    fake.put_ticket(106, updated_at="2025-03-02T10:00:00Z", created_at="2025-03-02T09:00:00Z", organization_id=1,
                    status="open", priority="high")
    fake.put_ticket(105, updated_at="2025-03-03T10:00:00Z", status="deleted")
    second = sync_tickets(make_client(), cursor_store, mirror, stream="tickets@acme", start_time=START)
    resumed_calls = export_calls(fake)[3:]
    assert resumed_calls[0] == {"cursor": first.cursor, "per_page": "2", "include": "metric_sets"}
    assert second.resumed and second.tickets_changed == 2 and second.tickets_deleted == 1
    tickets = mirror.load().set_index("ticket_id")
    assert sorted(tickets.index) == ["101", "102", "103", "104", "106"]
    assert tickets.loc["102", "status"] == "closed"

    third = sync_tickets(make_client(), cursor_store, mirror, stream="tickets@acme", start_time=START)
    assert third.tickets_changed == 0 and mirror.count() == 5


def test_tickets_map_into_the_contract(rsps, tmp_path):
    make_fake(rsps)
    mirror = TicketMirror(f"sqlite:///{tmp_path / 'mirror.db'}")
    sync_tickets(make_client(), JsonFileCursorStore(tmp_path / "c.json"), mirror, stream="s", start_time=START)
    t = mirror.load().set_index("ticket_id")
    assert t.loc["101", "account_id"] == "acc-1"
    assert t.loc["101", "priority"] == "urgent" and bool(t.loc["101", "escalated"]) is True
    assert t.loc["101", "first_response_at"] == pd.Timestamp("2025-02-01 09:45:00")
    assert t.loc["102", "priority"] == "normal"  # unset priority
    assert t.loc["102", "csat"] == 5.0 and t.loc["103", "csat"] == 1.0 and pd.isna(t.loc["104", "csat"])
    assert t.loc["102", "solved_at"] == pd.Timestamp("2025-02-02 09:59:00")
    assert t.loc["103", "status"] == "pending"  # hold
    assert pd.isna(t.loc["103", "account_id"])  # organization 2 has no external_id
    assert t.loc["104", "solved_at"] == pd.Timestamp("2025-02-04 10:00:00")  # no metrics: updated_at
    assert pd.isna(t.loc["105", "account_id"]) and bool(t.loc["105", "escalated"]) is False
    assert t.loc["101", "category"] == "incident"


def test_organization_field_maps_accounts_and_lookups_are_batched_and_cached(rsps, tmp_path):
    fake = make_fake(rsps)
    mirror = TicketMirror(f"sqlite:///{tmp_path / 'mirror.db'}")
    client = make_client()
    sync_tickets(client, JsonFileCursorStore(tmp_path / "c.json"), mirror, stream="s", start_time=START,
                 org_account_field="organization_fields.account_id")
    assert mirror.load().set_index("ticket_id").loc["103", "account_id"] == "acc-2"
    org_calls = [p for path, p in fake.calls if path.endswith("show_many.json")]
    assert [c["ids"] for c in org_calls] == ["1", "2"]  # page 1 asks for org 1; page 2 only the new org 2


def test_429_waits_for_retry_after_and_500_backs_off(rsps):
    fake = make_fake(rsps, faults=FaultInjector(queue=["429", "500"], retry_after="7"))
    sleeps: list[float] = []
    client = make_client(sleeps)
    page = next(client.export_pages(start_time=START))
    assert [t["id"] for t in page.tickets] == [101, 102]
    assert len(export_calls(fake)) == 3
    assert sleeps[0] == 7.0
    assert 0.5 <= sleeps[1] <= 1.0  # second attempt: base 0.5 x 2, half of it jitter
    assert client.retrier.stats.by_reason == {"HTTP 429": 1, "HTTP 500": 1}


def test_retry_after_is_capped_and_read_as_a_date():
    assert parse_retry_after("Wed, 01 Jan 2025 00:01:00 GMT", now=datetime(2025, 1, 1, tzinfo=timezone.utc)) == 60.0
    assert parse_retry_after("soon") is None
    throttled = TransientHTTPError("GET /x", 429, retry_after=3600.0)
    assert RetryPolicy(max_retry_after=30).wait_for(throttled, 1, random.Random(0)) == 30


def test_exhausted_retries_name_the_endpoint_and_never_the_token(rsps, caplog):
    caplog.set_level(logging.DEBUG)
    make_fake(rsps, faults=FaultInjector(queue=["503", "timeout", "500"]))
    with pytest.raises(ZendeskAPIError) as err:
        next(make_client(attempts=3).export_pages(start_time=START))
    message = str(err.value)
    assert message.startswith(f"GET {EXPORT_PATH}: gave up after 3 attempt(s)")
    assert "HTTP 500" in message
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert "retrying" in logs
    for text in (message, logs, repr(make_client())):
        assert TOKEN not in text


def test_bad_token_fails_at_once_with_a_clear_message(rsps):
    fake = make_fake(rsps)
    with pytest.raises(ZendeskAPIError, match="authentication failed \\(HTTP 401\\); check the email and API token"):
        next(make_client(token="wrong").export_pages(start_time=START))
    assert len(fake.calls) == 1


def test_resource_returns_the_whole_table_on_every_run(rsps, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fake = make_fake(rsps)
    resource = ZendeskTicketing(base_url="https://acme.zendesk.com", email=EMAIL, api_token=TOKEN,
                                cursor_store=str(tmp_path / "cursors.json"),
                                mirror_url=f"sqlite:///{tmp_path / 'mirror.db'}", history_days=36500)
    first = resource.tickets()
    assert list(first.columns) == TICKETS.column_names and len(first) == 5
    assert first["created_at"].dtype == "datetime64[ns]" and first["escalated"].dtype == bool

    fake.put_ticket(101, updated_at="2025-04-01T00:00:00Z", status="solved",
                    metrics={"reply_time_in_minutes": {"calendar": 45}, "solved_at": "2025-03-31T23:00:00Z"})
    second = resource.tickets()
    assert len(second) == 5  # the full table, not only the change
    assert second.set_index("ticket_id").loc["101", "status"] == "solved"
    assert "cursor" in export_calls(fake)[-1]
    assert TOKEN not in repr(resource) and TOKEN not in "\n".join(r.getMessage() for r in caplog.records)


def test_transport_errors_are_retried_like_timeouts(rsps):
    fake = make_fake(rsps)
    calls = {"n": 0}
    original = requests.Session.get

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise requests.ConnectionError("connection reset")
        return original(self, *args, **kwargs)

    client = make_client()
    client.session.get = flaky.__get__(client.session)
    assert len(next(client.export_pages(start_time=START)).tickets) == 2
    assert calls["n"] == 2 and len(export_calls(fake)) == 1

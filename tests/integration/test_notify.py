"""Outbox delivery on real databases: flaky channels lose and duplicate nothing, secrets stay secret."""

from __future__ import annotations

import json
import logging
import random
import smtplib
import threading
from collections import Counter
from datetime import datetime, timedelta

import pandas as pd
import pytest
import requests
import responses

from connectors.notify import (
    NOTIFICATION_CHANNELS,
    ChannelNotifier,
    DeliveryError,
    EmailNotifier,
    LogNotifier,
    Notification,
    NotifierResource,
    SlackWebhookNotifier,
    deliver_outbox,
)
from connectors.queue.outbox import backoff_delay
from connectors.queue.store import QueueStore

NOW = datetime(2025, 6, 2, 8, 0)
WEBHOOK = "https://hooks.slack.com/services/T0001/B0002/sEcReTt0KeN"
PASSWORD = "hunter2-smtp-password"


def fill(store: QueueStore, frames, n_accounts: int, notify: dict[str, list[str]]) -> None:
    decisions, candidates = frames([{"account_id": f"A{i}", "assignee": f"agent{i % 3}"} for i in range(n_accounts)])
    store.apply_decisions(decisions, candidates, policy_version="1", policy_hash="h", model_version="m",
                          snapshot_date=pd.Timestamp("2025-06-02"), now=NOW, notify=notify)


class FlakyChannel:
    """Fails about half of the sends (before anything is received) and records the rest."""

    channels = frozenset({"slack", "email", "log"})

    def __init__(self, seed: int, failure_rate: float = 0.5) -> None:
        self.rng = random.Random(seed)
        self.failure_rate = failure_rate
        self.received: Counter[str] = Counter()
        self.failures = 0
        self.lock = threading.Lock()

    def send(self, notification: Notification) -> None:
        with self.lock:
            if self.rng.random() < self.failure_rate:
                self.failures += 1
                raise DeliveryError("channel unavailable (HTTP 503)")
            self.received[notification.dedupe_key] += 1

    def secrets(self) -> tuple[str, ...]:
        return ()


def test_a_channel_failing_half_the_time_delivers_every_item_exactly_once(queue_store: QueueStore, frames) -> None:
    fill(queue_store, frames, 12, {"csm": ["#csm-rescue", "lead@example.com"]})
    queue_store.log_play(queue_store.claim(queue_store.list_cases()["case_id"].iloc[0], "ana")["case_id"],
                         actor="ana", play="success_plan")  # a CRM write, which notifiers must leave alone
    expected = set(queue_store.outbox().query("channel != 'crm'")["dedupe_key"])
    assert len(expected) == 12 * 3

    channel = FlakyChannel(seed=7)
    now = NOW
    for _ in range(60):
        report = deliver_outbox(queue_store, channel, now=now, max_attempts=50, batch=10)
        assert report.dead == 0
        if queue_store.pending_outbox(100, channels=channel.channels).empty:
            break
        now += timedelta(hours=2)  # past every backoff
    assert channel.failures > 10  # the channel really failed, often
    assert set(channel.received) == expected
    assert max(channel.received.values()) == 1
    box = queue_store.outbox()
    notes = box[box["channel"] != "crm"]
    assert set(notes["status"]) == {"delivered"} and notes["delivered_at"].notna().all()
    assert (notes["attempts"] >= 1).all() and (notes["attempts"] > 1).any()
    assert set(box.loc[box["channel"] == "crm", "status"]) == {"pending"}


def test_two_deliverers_at_once_never_send_a_row_twice(queue_store: QueueStore, queue_url: str, frames) -> None:
    fill(queue_store, frames, 10, {"csm": ["#csm-rescue", "#managers"]})
    channel = FlakyChannel(seed=1, failure_rate=0.0)
    barrier = threading.Barrier(2)

    def deliverer() -> None:
        store = QueueStore(queue_url)
        try:
            barrier.wait()
            for _ in range(5):
                deliver_outbox(store, channel, now=NOW, batch=7)
        finally:
            store.close()

    threads = [threading.Thread(target=deliverer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(channel.received) == set(queue_store.outbox()["dedupe_key"])
    assert max(channel.received.values()) == 1


def test_a_row_that_keeps_failing_backs_off_then_dies_and_is_kept(queue_store: QueueStore, frames) -> None:
    fill(queue_store, frames, 1, {"csm": ["#csm-rescue"]})
    always_down = FlakyChannel(seed=0, failure_rate=1.0)
    slack_row = lambda: queue_store.outbox().query("channel == 'slack'").iloc[0]  # noqa: E731

    assert deliver_outbox(queue_store, always_down, now=NOW, max_attempts=3).failed == 2
    row = slack_row()
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["next_attempt_at"] == NOW + timedelta(seconds=30)
    assert row["last_error"] == "DeliveryError: channel unavailable (HTTP 503)"
    # Not due yet: nothing is attempted.
    assert deliver_outbox(queue_store, always_down, now=NOW + timedelta(seconds=29), max_attempts=3).attempted == 0
    deliver_outbox(queue_store, always_down, now=NOW + timedelta(seconds=30), max_attempts=3)
    assert slack_row()["next_attempt_at"] == NOW + timedelta(seconds=90)
    report = deliver_outbox(queue_store, always_down, now=NOW + timedelta(seconds=90), max_attempts=3)
    assert report.dead == 2
    row = slack_row()
    assert (row["status"], row["attempts"]) == ("dead", 3)
    assert deliver_outbox(queue_store, always_down, now=NOW + timedelta(days=1), max_attempts=3).attempted == 0
    assert len(queue_store.outbox("dead")) == 2


def test_backoff_doubles_up_to_its_cap() -> None:
    base, cap = timedelta(seconds=30), timedelta(minutes=5)
    assert [backoff_delay(n, base=base, cap=cap).total_seconds() for n in range(1, 7)] == [30, 60, 120, 240, 300, 300]


@responses.activate
def test_slack_gets_incoming_webhook_json_and_never_leaks_the_webhook_url(queue_store: QueueStore, frames,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fill(queue_store, frames, 2, {"csm": ["#csm-rescue"]})
    notifier = ChannelNotifier({"slack": SlackWebhookNotifier(WEBHOOK, environ={})})
    responses.add(responses.POST, WEBHOOK, body="no_service", status=404)
    responses.add(responses.POST, WEBHOOK, body=requests.ConnectionError(f"cannot reach {WEBHOOK}"))
    report = deliver_outbox(queue_store, notifier, now=NOW, max_attempts=5)
    assert (report.attempted, report.delivered, report.failed) == (4, 2, 2)  # 2 Slack failures, 2 log lines

    errors = sorted(queue_store.outbox().query("channel == 'slack'")["last_error"])
    assert errors == ["DeliveryError: Slack webhook answered HTTP 404: no_service",
                      "DeliveryError: Slack webhook request failed (ConnectionError)"]
    assert "sEcReTt0KeN" not in caplog.text and "B0002" not in caplog.text

    responses.replace(responses.POST, WEBHOOK, body="ok", status=200)
    assert deliver_outbox(queue_store, notifier, now=NOW + timedelta(minutes=1)).delivered == 2
    body = json.loads(responses.calls[-1].request.body)
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith("New P2 rescue case RC-")
    assert body["blocks"][0] == {"type": "section", "text": {"type": "mrkdwn", "text": body["text"]}}
    field_texts = [f["text"] for f in body["blocks"][1]["fields"]]
    assert "*Priority*\nP2" in field_texts and "*ARR*\n100,000" in field_texts
    assert "#csm-rescue" in body["blocks"][2]["elements"][0]["text"]
    assert set(queue_store.outbox()["status"]) == {"delivered"}
    assert "sEcReTt0KeN" not in caplog.text


class FakeSMTP:
    """Stands in for smtplib.SMTP: records the conversation, optionally refuses the login."""

    sessions: list[FakeSMTP] = []

    def __init__(self, host: str, port: int, timeout: float, refuse_login: bool = False) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.refuse_login = refuse_login
        self.calls: list[tuple] = []
        self.messages = []
        FakeSMTP.sessions.append(self)

    def __enter__(self) -> FakeSMTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.calls.append(("quit",))

    def starttls(self) -> None:
        self.calls.append(("starttls",))

    def login(self, user: str, password: str) -> None:
        self.calls.append(("login", user, password))
        if self.refuse_login:
            raise smtplib.SMTPAuthenticationError(535, f"authentication failed for {user}".encode())

    def send_message(self, message) -> None:
        self.calls.append(("send_message",))
        self.messages.append(message)


def test_email_goes_over_smtp_with_starttls_login_and_a_stable_message_id(queue_store: QueueStore, frames,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    FakeSMTP.sessions = []
    fill(queue_store, frames, 1, {"csm": ["lead@example.com"]})
    refusing = EmailNotifier("smtp.example.com", port=2525, username="rescue", password=PASSWORD,
                             sender="rescue@example.com",
                             smtp_factory=lambda h, p, timeout: FakeSMTP(h, p, timeout, refuse_login=True))
    deliver_outbox(queue_store, ChannelNotifier({"email": refusing}), now=NOW)
    error = queue_store.outbox().query("channel == 'email'")["last_error"].iloc[0]
    assert error == ("DeliveryError: SMTP smtp.example.com:2525 refused the message "
                     "(SMTPAuthenticationError, code 535)")
    assert PASSWORD not in caplog.text

    working = EmailNotifier("smtp.example.com", port=2525, username="rescue", password=PASSWORD,
                            sender="rescue@example.com", smtp_factory=FakeSMTP)
    assert deliver_outbox(queue_store, ChannelNotifier({"email": working}), now=NOW + timedelta(minutes=5)).delivered == 1
    session = FakeSMTP.sessions[-1]
    assert (session.host, session.port) == ("smtp.example.com", 2525)
    assert session.calls == [("starttls",), ("login", "rescue", PASSWORD), ("send_message",), ("quit",)]
    (message,) = session.messages
    assert message["To"] == "lead@example.com" and message["From"] == "rescue@example.com"
    assert message["Subject"] == "[P2] case opened Company A0"
    assert "New P2 rescue case" in message.get_content()
    row = queue_store.outbox().query("channel == 'email'").iloc[0]
    assert row["status"] == "delivered"
    again = working.message(Notification.from_row(row))
    assert again["Message-ID"] == message["Message-ID"]  # receivers can drop a duplicate
    assert PASSWORD not in caplog.text


@responses.activate
def test_a_slack_destination_naming_an_environment_variable_uses_its_webhook(queue_store: QueueStore, frames,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    team_hook = "https://hooks.slack.com/services/T0001/B0003/t3amT0ken"
    fill(queue_store, frames, 1, {"csm": ["slack:RESCUE_SLACK_CSM", "slack:RESCUE_SLACK_UNSET"]})
    responses.add(responses.POST, team_hook, body="ok", status=200)
    slack = SlackWebhookNotifier(None, environ={"RESCUE_SLACK_CSM": team_hook}, fallback=LogNotifier())
    report = deliver_outbox(queue_store, ChannelNotifier({"slack": slack}), now=NOW)
    assert report.delivered == 3 and len(responses.calls) == 1
    assert responses.calls[0].request.url == team_hook
    assert "no Slack webhook for RESCUE_SLACK_UNSET" in caplog.text
    assert "notify slack RESCUE_SLACK_UNSET [case_opened]" in caplog.text
    assert "t3amT0ken" not in caplog.text

    strict = SlackWebhookNotifier(None, environ={})
    with pytest.raises(DeliveryError, match="no Slack webhook for 'RESCUE_SLACK_CSM'"):
        strict.send(Notification(1, "slack", "RESCUE_SLACK_CSM", "case_opened", "k", {"text": "hi"}))


def test_the_resource_sends_unconfigured_channels_to_the_log(queue_store: QueueStore, frames,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="connectors.notify")
    fill(queue_store, frames, 1, {"csm": ["#csm-rescue", "lead@example.com"]})
    resource = NotifierResource()
    notifier = resource.get_notifier()
    assert set(notifier.by_channel) == {"slack"} and isinstance(notifier.fallback, LogNotifier)
    report = resource.deliver(queue_store, now=NOW)
    assert report.delivered == 3
    assert "notify slack #csm-rescue [case_opened]: New P2 rescue case" in caplog.text
    assert "notify email lead@example.com [case_opened]" in caplog.text

    configured = NotifierResource(slack_webhook_url=WEBHOOK, smtp_host="smtp.example.com", smtp_password=PASSWORD)
    channels = configured.get_notifier()
    assert isinstance(channels.by_channel["slack"], SlackWebhookNotifier)
    assert isinstance(channels.by_channel["email"], EmailNotifier)
    assert set(channels.secrets()) == {WEBHOOK, PASSWORD}


def test_the_resource_delivers_batch_after_batch_until_nothing_is_due(queue_store: QueueStore, frames) -> None:
    fill(queue_store, frames, 5, {"csm": ["#csm-rescue", "lead@example.com"]})
    report = NotifierResource().deliver_all(queue_store, now=NOW, batch=4)
    assert (report.attempted, report.delivered, report.failed, report.dead) == (15, 15, 0, 0)
    assert queue_store.pending_outbox(100, channels=NOTIFICATION_CHANNELS).empty

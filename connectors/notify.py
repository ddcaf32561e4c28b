"""Notifications: Slack incoming webhooks, e-mail over SMTP, and the log, fed by the outbox.

Nothing in the product sends a notification directly. The queue store writes each one to its
`outbox` table in the same transaction as the change that causes it; `deliver_outbox()` then sends
the rows that are due through a `Notifier`, each of its channels an outbox sender
(`NotificationSender`) of the one delivery loop, `connectors.queue.outbox.deliver`:

- delivered rows are marked `delivered` and never sent again;
- a failed attempt is recorded with a secret-free error and retried on a later run after an
  exponential backoff (`NOTIFICATION_BACKOFF`: 30 s doubling up to an hour); after
  `max_attempts` (5) the row is `dead` (kept, visible with `rescue queue outbox --status dead`,
  never silently dropped);
- rows are leased before sending, so two deliverers running at once never send the same row.

Channels: `slack` (incoming-webhook JSON with `text` and Block Kit `blocks`; a destination that
is an environment variable name posts to the webhook URL held in that variable), `email`
(`EmailMessage` over `smtplib.SMTP`, STARTTLS and login when configured, a `Message-ID` derived
from the outbox row so receivers can drop duplicates) and `log` (the embedded default: one log
line per notification). A channel that is not configured falls back to the log, so the embedded
demo needs no credentials.

Secrets (the webhook URL, which embeds its token, and the SMTP password) never appear in logs,
exceptions or the outbox's `last_error`: notifiers raise `DeliveryError` with messages built from
status codes and exception types only, and the delivery loop redacts every secret the notifier
declares as a second line of defence.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import smtplib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any, Protocol

import dagster as dg
import requests

from connectors.http_retry import redact
from connectors.queue.outbox import Backoff, DeliveryReport, deliver, deliver_until_drained
from connectors.queue.store import QueueStore

log = logging.getLogger(__name__)

NOTIFICATION_CHANNELS = frozenset({"slack", "email", "log"})


class DeliveryError(RuntimeError):
    """A notification could not be delivered. The message never contains a secret."""


@dataclass(frozen=True)
class Notification:
    """One outbox row to deliver."""

    outbox_id: int
    channel: str
    destination: str
    kind: str
    dedupe_key: str
    payload: Mapping[str, Any]
    attempts: int = 0

    @property
    def text(self) -> str:
        return str(self.payload.get("text") or f"{self.kind} {self.payload.get('case_id', '')}".strip())

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Notification:
        return cls(
            outbox_id=int(row["outbox_id"]),
            channel=str(row["channel"]),
            destination=str(row["destination"]),
            kind=str(row["kind"]),
            dedupe_key=str(row["dedupe_key"]),
            payload=row["payload"] or {},
            attempts=int(row["attempts"]),
        )


class Notifier(Protocol):
    """Sends notifications of some channels."""

    channels: frozenset[str]

    def send(self, notification: Notification) -> None:
        """Deliver one notification or raise (DeliveryError, ideally)."""

    def secrets(self) -> tuple[str, ...]:
        """Strings that must never be written to logs or errors."""


class LogNotifier:
    """Writes each notification as one log line: the embedded default, needs nothing."""

    channels = NOTIFICATION_CHANNELS

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or log

    def send(self, notification: Notification) -> None:
        self.logger.info("notify %s %s [%s]: %s", notification.channel, notification.destination,
                         notification.kind, notification.text)

    def secrets(self) -> tuple[str, ...]:
        return ()


def slack_message(notification: Notification) -> dict[str, Any]:
    """The incoming-webhook JSON of a notification: a plain-text fallback and Block Kit blocks."""
    p = notification.payload
    fields = [
        ("Priority", p.get("priority")),
        ("Team", p.get("team")),
        ("Assignee", p.get("assignee") or "unassigned"),
        ("ARR", f"{p['arr']:,.0f}" if isinstance(p.get("arr"), (int, float)) else None),
        ("Churn risk", f"{p['churn_risk']:.0%}" if isinstance(p.get("churn_risk"), (int, float)) else None),
        ("Case", p.get("case_id")),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": notification.text}},
    ]
    shown = [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in fields if value is not None]
    if shown:
        blocks.append({"type": "section", "fields": shown[:10]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"{notification.kind} for {notification.destination}"},
    ]})
    return {"text": notification.text, "blocks": blocks}


_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class SlackWebhookNotifier:
    """Posts notifications to Slack incoming webhooks (`{text, blocks}` JSON).

    Each Slack channel has its own webhook, and a webhook URL embeds its token, so the policy
    names channels by the environment variable that holds their webhook: the destination
    `RESCUE_SLACK_ENTERPRISE` posts to the URL in that variable. Any other destination (e.g.
    `#cs-escalations`) posts to `default_webhook_url`. With no webhook for a destination the
    notification goes to `fallback` (the log, in the embedded setup), or fails when there is none.
    """

    channels = frozenset({"slack"})

    def __init__(
        self,
        default_webhook_url: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        fallback: Notifier | None = None,
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self._default_url = default_webhook_url or None
        self._environ = os.environ if environ is None else environ
        self._used: set[str] = set()
        self._warned: set[str] = set()
        self.fallback = fallback
        self.timeout = timeout
        self.session = session or requests.Session()

    def _webhook_for(self, destination: str) -> str | None:
        if _ENV_NAME.match(destination):
            return self._environ.get(destination) or None
        return self._default_url

    def send(self, notification: Notification) -> None:
        url = self._webhook_for(notification.destination)
        if url is None:
            if self.fallback is None:
                raise DeliveryError(f"no Slack webhook for {notification.destination!r} (set the environment "
                                    "variable it names, or a default webhook URL)")
            if notification.destination not in self._warned:
                self._warned.add(notification.destination)
                log.warning("no Slack webhook for %s; its notifications go to the fallback channel instead",
                            notification.destination)
            self.fallback.send(notification)
            return
        self._used.add(url)
        try:
            response = self.session.post(url, json=slack_message(notification), timeout=self.timeout)
        except requests.RequestException as exc:
            raise DeliveryError(f"Slack webhook request failed ({type(exc).__name__})") from None
        if response.status_code >= 300:
            body = redact(response.text[:200], (url,))
            raise DeliveryError(f"Slack webhook answered HTTP {response.status_code}: {body}")

    def secrets(self) -> tuple[str, ...]:
        return tuple(u for u in {self._default_url, *self._used} if u)


SMTPFactory = Callable[..., smtplib.SMTP]


class EmailNotifier:
    """Sends notifications as plain-text e-mails over SMTP (`smtplib.SMTP`, STARTTLS optional)."""

    channels = frozenset({"email"})

    def __init__(
        self,
        host: str,
        *,
        port: int = 587,
        username: str | None = None,
        password: str | None = None,
        sender: str = "churn-rescue@localhost",
        starttls: bool = True,
        timeout: float = 10.0,
        smtp_factory: SMTPFactory = smtplib.SMTP,
    ) -> None:
        if not host:
            raise ValueError("EmailNotifier needs an SMTP host")
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.sender = sender
        self.starttls = starttls
        self.timeout = timeout
        self.smtp_factory = smtp_factory

    def message(self, notification: Notification) -> EmailMessage:
        p = notification.payload
        msg = EmailMessage()
        subject_bits = [f"[{p['priority']}]" if p.get("priority") else "", notification.kind.replace("_", " "),
                        str(p.get("account_name") or p.get("account_id") or "")]
        msg["Subject"] = " ".join(bit for bit in subject_bits if bit)
        msg["From"] = self.sender
        msg["To"] = notification.destination
        digest = hashlib.sha256(notification.dedupe_key.encode()).hexdigest()[:32]
        msg["Message-ID"] = f"<{digest}@churn-rescue>"
        lines = [notification.text, ""]
        for key in ("case_id", "account_id", "priority", "team", "assignee", "reason"):
            if p.get(key) is not None:
                lines.append(f"{key}: {p[key]}")
        msg.set_content("\n".join(lines) + "\n")
        return msg

    def send(self, notification: Notification) -> None:
        message = self.message(notification)
        try:
            with self.smtp_factory(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self._password or "")
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"SMTP {self.host}:{self.port} refused the message ({type(exc).__name__}, code {exc.smtp_code})"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {self.host}:{self.port} delivery failed ({type(exc).__name__})") from None

    def secrets(self) -> tuple[str, ...]:
        return (self._password,) if self._password else ()


class ChannelNotifier:
    """Sends each notification through the notifier of its channel, the log when there is none."""

    channels = NOTIFICATION_CHANNELS

    def __init__(self, by_channel: Mapping[str, Notifier] | None = None, *, fallback: Notifier | None = None) -> None:
        self.by_channel = dict(by_channel or {})
        self.fallback = fallback or LogNotifier()

    def send(self, notification: Notification) -> None:
        self.by_channel.get(notification.channel, self.fallback).send(notification)

    def secrets(self) -> tuple[str, ...]:
        found: list[str] = list(self.fallback.secrets())
        for notifier in self.by_channel.values():
            found.extend(notifier.secrets())
        return tuple(s for s in found if s)


class NotificationSender:
    """One notification channel of a `Notifier` as an outbox sender
    (`connectors.queue.outbox.ChannelSender`): each row is sent alone, as a `Notification`."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def send(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            self.notifier.send(Notification.from_row(row))

    def secrets(self) -> tuple[str, ...]:
        return tuple(self.notifier.secrets())


def notification_senders(notifier: Notifier) -> dict[str, NotificationSender]:
    """The outbox senders of the notifier's channels (channel -> sender)."""
    sender = NotificationSender(notifier)
    return {channel: sender for channel in sorted(notifier.channels)}


#: Retries of a notification: 30 s, doubling up to an hour; dead after 5 attempts.
NOTIFICATION_BACKOFF = Backoff(max_attempts=5, base_delay=timedelta(seconds=30), max_delay=timedelta(hours=1))
#: Notification rows leased per delivery batch.
NOTIFICATION_BATCH = 100


def deliver_outbox(
    store: QueueStore,
    notifier: Notifier,
    *,
    now: datetime | None = None,
    max_attempts: int = NOTIFICATION_BACKOFF.max_attempts,
    batch: int = NOTIFICATION_BATCH,
    base_delay: timedelta = NOTIFICATION_BACKOFF.base_delay,
    max_delay: timedelta = NOTIFICATION_BACKOFF.max_delay,
) -> DeliveryReport:
    """Send the outbox rows of the notifier's channels that are due at `now` (one batch), through
    `connectors.queue.outbox.deliver`.

    Each row is leased, sent, then marked delivered, or failed with a backoff of `base_delay`
    doubling per attempt up to `max_delay` (dead after `max_attempts` attempts). Errors are
    redacted of the notifier's secrets before they are stored or logged; one failing row never
    stops the others.
    """
    return deliver(store, notification_senders(notifier), now=now,
                   backoff=Backoff(max_attempts=max_attempts, base_delay=base_delay, max_delay=max_delay),
                   batch=batch)


class NotifierResource(dg.ConfigurableResource):
    """Where notifications go. Everything is optional: unconfigured channels go to the log.

    Slack destinations that name an environment variable (`slack:RESCUE_SLACK_CSM` in the
    policy) use the webhook in that variable; others use `slack_webhook_url`.

    Pass secrets with `dg.EnvVar`, e.g.
    `NotifierResource(slack_webhook_url=dg.EnvVar("RESCUE_SLACK_WEBHOOK_URL"),
    smtp_host="smtp.example.com", smtp_user="rescue", smtp_password=dg.EnvVar("RESCUE_SMTP_PASSWORD"))`.
    """

    slack_webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_sender: str = "churn-rescue@localhost"
    smtp_starttls: bool = True
    timeout_seconds: float = 10.0
    max_attempts: int = NOTIFICATION_BACKOFF.max_attempts

    def get_notifier(self) -> ChannelNotifier:
        fallback = LogNotifier()
        by_channel: dict[str, Notifier] = {
            "slack": SlackWebhookNotifier(self.slack_webhook_url, fallback=fallback, timeout=self.timeout_seconds),
        }
        if self.smtp_host:
            by_channel["email"] = EmailNotifier(
                self.smtp_host,
                port=self.smtp_port,
                username=self.smtp_user,
                password=self.smtp_password,
                sender=self.smtp_sender,
                starttls=self.smtp_starttls,
                timeout=self.timeout_seconds,
            )
        return ChannelNotifier(by_channel, fallback=fallback)

    def deliver(self, store: QueueStore, *, now: datetime | None = None,
                batch: int = NOTIFICATION_BATCH) -> DeliveryReport:
        """Deliver one batch of due notifications from `store`'s outbox."""
        return deliver_outbox(store, self.get_notifier(), now=now, max_attempts=self.max_attempts, batch=batch)

    def deliver_all(self, store: QueueStore, *, now: datetime | None = None, batch: int = NOTIFICATION_BATCH,
                    max_batches: int = 1_000) -> DeliveryReport:
        """Deliver due notifications batch after batch until none is due at `now` (or `max_batches`)."""
        return deliver_until_drained(store, notification_senders(self.get_notifier()), now=now,
                                     backoff=replace(NOTIFICATION_BACKOFF, max_attempts=self.max_attempts),
                                     batch=batch, max_batches=max_batches)

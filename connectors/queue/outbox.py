"""The transactional outbox: every notification and external write, queued with its cause and
delivered later by one loop for every channel.

Queuing (`enqueue_rows`, `notice_rows`): a row is inserted in the same transaction as the change
that causes it, so a crash never loses one nor sends one for a change that rolled back. Rows are
keyed by a unique `dedupe_key`: queuing the same row twice queues it once.

Delivery (`deliver`: one batch; `deliver_until_drained`: batch after batch until none is due):
due rows of the given channels are leased (pushed a few minutes into the future, so concurrent
deliverers never send the same row), handed to their channel's sender and marked delivered; or,
when the sender raises, marked failed with an exponential backoff and dead after
`max_attempts` attempts (kept, visible with `rescue queue outbox --status dead`, never silently
dropped). A sender raising `Undeliverable` makes the row dead at once. Errors are redacted of
every secret the sender declares before they are stored in `last_error` or logged. A sender may
group rows that write the same thing (`target`): each group is sent once. The notification
channels (`connectors.notify`) and the CRM channel (`connectors.writeback`) are such senders.

`OutboxStore` holds the queue store's outbox methods (`connectors.queue.store.QueueStore` has
them all).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import pandas as pd
import sqlalchemy as sa

from connectors.queue.database import QueueDatabase
from connectors.queue.schema import CRM_CHANNEL, OUTBOX_STATUSES, outbox, rescue_actions
from connectors.queue.values import fit, frame
from models.cases.notices import Notice
from models.clock import now_or, utc_naive

log = logging.getLogger(__name__)

#: `last_error` is cut to this many characters.
MAX_ERROR_CHARS = 2000


# ---------------------------------------------------------------------------------------------
# Queuing
# ---------------------------------------------------------------------------------------------


def outbox_row(now: datetime, case_id: str | None, channel: str, destination: str, kind: str, dedupe_key: str,
               payload: Mapping[str, Any]) -> dict[str, Any]:
    """A pending outbox row, due at `now`; every string of its payload (the notification text, a
    note) cut to the payload column's size."""
    return {"created_at": now, "case_id": case_id, "channel": channel, "destination": destination, "kind": kind,
            "dedupe_key": dedupe_key, "payload": fit(outbox.c.payload, payload), "status": "pending", "attempts": 0,
            "last_error": None, "next_attempt_at": now, "delivered_at": None}


def notice_rows(notices: Iterable[Notice], now: datetime) -> list[dict[str, Any]]:
    """The outbox rows of notices (`models.cases.notices`)."""
    return [outbox_row(now, n.case_id, n.channel, n.destination, n.kind, n.dedupe_key, n.payload) for n in notices]


def enqueue_rows(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert outbox rows whose dedupe_key is new, in the caller's transaction; returns how many."""
    if not rows:
        return 0
    keys = [r["dedupe_key"] for r in rows]
    existing: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        existing.update(conn.execute(sa.select(outbox.c.dedupe_key).where(outbox.c.dedupe_key.in_(chunk))).scalars())
    fresh: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["dedupe_key"] not in existing:
            fresh.setdefault(row["dedupe_key"], row)
    if fresh:
        conn.execute(outbox.insert(), list(fresh.values()))
    return len(fresh)


class OutboxStore(QueueDatabase):
    """The outbox of the queue database: queue, read, lease and mark rows."""

    def enqueue(self, items: Iterable[Mapping[str, Any]], *, now: datetime | None = None) -> int:
        """Queue outbox rows that no case change of this store produces (e.g. CRM syncs of a
        case's current state). Each item has case_id (or None), channel, destination, kind,
        dedupe_key and payload; items whose dedupe_key is already queued are skipped, so queuing
        the same items twice queues them once. Returns how many rows were queued."""
        now = now_or(now)
        rows = [outbox_row(now, item.get("case_id"), str(item["channel"]), str(item["destination"]),
                           str(item["kind"]), str(item["dedupe_key"]), item["payload"]) for item in items]
        with self.transaction() as conn:
            return enqueue_rows(conn, rows)

    def feedback_watermark(self) -> tuple[int, int]:
        """(latest rescue action id, latest pending outbox id of the CRM channel), 0 when none:
        what a sensor compares with its cursor to notice new work for the CRM write-back."""
        with self.reading() as conn:
            action = conn.execute(sa.select(sa.func.max(rescue_actions.c.action_id))).scalar()
            pending = conn.execute(
                sa.select(sa.func.max(outbox.c.outbox_id))
                .where(outbox.c.channel == CRM_CHANNEL, outbox.c.status == "pending")
            ).scalar()
        return int(action or 0), int(pending or 0)

    def outbox(self, status: str | None = None) -> pd.DataFrame:
        """Outbox rows (all, or those in `status`: pending, delivered, dead), oldest first."""
        query = sa.select(outbox).order_by(outbox.c.outbox_id)
        if status is not None:
            if status not in OUTBOX_STATUSES:
                raise ValueError(f"unknown outbox status {status!r}; expected one of: {', '.join(OUTBOX_STATUSES)}")
            query = query.where(outbox.c.status == status)
        with self.reading() as conn:
            rows = conn.execute(query).mappings().all()
        return frame(rows, [c.name for c in outbox.columns])

    def pending_outbox(self, limit: int, *, now: datetime | None = None,
                       channels: Iterable[str] | None = None) -> pd.DataFrame:
        """Pending rows due at `now` (all pending rows when `now` is None), oldest first."""
        query = sa.select(outbox).where(outbox.c.status == "pending").order_by(outbox.c.outbox_id).limit(limit)
        if now is not None:
            query = query.where(outbox.c.next_attempt_at <= now_or(now))
        if channels is not None:
            query = query.where(outbox.c.channel.in_(list(channels)))
        with self.reading() as conn:
            rows = conn.execute(query).mappings().all()
        return frame(rows, [c.name for c in outbox.columns])

    def lease_outbox(self, limit: int, *, now: datetime | None = None, channels: Iterable[str] | None = None,
                     lease: timedelta = timedelta(minutes=5)) -> list[dict[str, Any]]:
        """Take up to `limit` due rows for delivery: each row taken is pushed `lease` into the
        future, so concurrent deliverers never send the same row; a deliverer that dies before
        marking it lets it become due again when the lease ends."""
        now = now_or(now)
        due = self.pending_outbox(limit, now=now, channels=channels)
        leased: list[dict[str, Any]] = []
        with self.transaction() as conn:
            for row in due.to_dict("records"):
                result = conn.execute(
                    outbox.update()
                    .where(outbox.c.outbox_id == row["outbox_id"], outbox.c.status == "pending",
                           outbox.c.next_attempt_at <= now)
                    .values(next_attempt_at=now + lease)
                )
                if result.rowcount == 1:
                    leased.append(row)
        return leased

    def mark_delivered(self, outbox_id: int, *, now: datetime | None = None) -> None:
        now = now_or(now)
        with self.transaction() as conn:
            conn.execute(
                outbox.update().where(outbox.c.outbox_id == outbox_id, outbox.c.status == "pending")
                .values(status="delivered", delivered_at=now, attempts=outbox.c.attempts + 1, last_error=None)
            )

    def mark_failed(self, outbox_id: int, *, attempts: int, last_error: str, next_attempt_at: datetime,
                    dead_after: int) -> str:
        """Record a failed attempt; the row is dead once `attempts` reaches `dead_after`. Returns
        the row's new status. `last_error` must already be free of secrets."""
        status = "dead" if attempts >= dead_after else "pending"
        with self.transaction() as conn:
            conn.execute(
                outbox.update().where(outbox.c.outbox_id == outbox_id, outbox.c.status == "pending")
                .values(status=status, attempts=attempts, last_error=last_error[:MAX_ERROR_CHARS],
                        next_attempt_at=utc_naive(next_attempt_at))
            )
        return status


# ---------------------------------------------------------------------------------------------
# Delivery
# ---------------------------------------------------------------------------------------------


class Undeliverable(Exception):
    """An outbox row no retry can deliver (unknown kind, incomplete payload): dead at once."""


class ChannelSender(Protocol):
    """Delivers the outbox rows of one channel.

    A sender may also have `target(row) -> Hashable`: rows with the same target in one batch are
    sent together, in one `send` (a row it raises `Undeliverable` for is dead at once). Without
    it every row is sent alone.
    """

    def send(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Deliver rows that share one target (see `target`), or raise."""

    def secrets(self) -> Iterable[str]:
        """Strings that must never appear in logs or in the outbox's last_error."""


@dataclass(frozen=True)
class Backoff:
    """Retries of a failed row: `base_delay`, doubling per attempt up to `max_delay`; the row is
    dead after `max_attempts` attempts."""

    max_attempts: int = 5
    base_delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")

    def delay(self, attempts: int) -> timedelta:
        return backoff_delay(attempts, base=self.base_delay, cap=self.max_delay)


@dataclass(frozen=True)
class DeliveryReport:
    """What one delivery run did. `deferred` rows were not tried because their channel's circuit
    was open (`open_circuits`); they stay pending, their attempts unchanged."""

    attempted: int
    delivered: int
    failed: int
    dead: int
    deferred: int = 0
    open_circuits: tuple[str, ...] = ()

    def __add__(self, other: DeliveryReport) -> DeliveryReport:
        return DeliveryReport(self.attempted + other.attempted, self.delivered + other.delivered,
                              self.failed + other.failed, self.dead + other.dead, self.deferred + other.deferred,
                              tuple(dict.fromkeys((*self.open_circuits, *other.open_circuits))))


#: Consecutive failed sends on one channel after which the rest of the run defers that channel.
BREAKER_THRESHOLD = 5


@dataclass
class CircuitBreaker:
    """Stops hammering a system that is down: after `threshold` consecutive failed sends on a
    channel (a failure that is about the system, not one row: `Undeliverable` does not count),
    the channel is open for the rest of the run and its remaining rows are deferred to a later
    run (still pending, attempts unchanged). A success closes the count again."""

    threshold: int = BREAKER_THRESHOLD
    failures: dict[str, int] = field(default_factory=dict)
    last_error: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError(f"threshold must be >= 1, got {self.threshold}")

    def is_open(self, channel: str) -> bool:
        return self.failures.get(channel, 0) >= self.threshold

    def open_channels(self) -> tuple[str, ...]:
        return tuple(sorted(c for c in self.failures if self.is_open(c)))

    def failed(self, channel: str, error: str) -> None:
        self.failures[channel] = self.failures.get(channel, 0) + 1
        self.last_error[channel] = error

    def succeeded(self, channel: str) -> None:
        self.failures[channel] = 0


def backoff_delay(attempts: int, *, base: timedelta, cap: timedelta) -> timedelta:
    """Wait before the next attempt after `attempts` failures: base, 2 x base, 4 x base ... <= cap."""
    return min(base * (2 ** max(attempts - 1, 0)), cap)


def deliver(
    store: OutboxStore,
    senders: Mapping[str, ChannelSender],
    *,
    now: datetime | None = None,
    backoff: Backoff = Backoff(),
    batch: int = 100,
    label: str = "outbox",
    breaker: CircuitBreaker | None = None,
) -> DeliveryReport:
    """Deliver one batch of due rows of the channels in `senders` (channel -> its sender).

    Rows are leased, grouped by their sender's `target(row)` when it has one (each row alone
    otherwise), sent group by group, and marked delivered, or failed with `backoff` (dead after
    its `max_attempts`, or at once for `Undeliverable`). One failing group never stops the others;
    a channel that keeps failing trips `breaker` (a fresh `CircuitBreaker` when None; pass one
    to share it across batches) and its remaining rows are deferred, not tried.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    now = now_or(now)
    breaker = breaker if breaker is not None else CircuitBreaker()
    channels = [c for c in senders if not breaker.is_open(c)]
    rows = store.lease_outbox(batch, now=now, channels=channels) if channels else []
    groups: dict[tuple[str, Hashable], list[dict[str, Any]]] = {}
    delivered = failed = dead = deferred = 0

    def defer(row: Mapping[str, Any], channel: str) -> None:
        nonlocal deferred
        attempts = int(row["attempts"])
        error = (f"deferred: the {channel} channel failed {breaker.threshold} times in a row in this run "
                 f"(last: {breaker.last_error.get(channel, '')})")
        store.mark_failed(int(row["outbox_id"]), attempts=attempts, last_error=error,
                          next_attempt_at=now + backoff.delay(max(attempts, 1)), dead_after=attempts + 1)
        deferred += 1

    def fail(row: Mapping[str, Any], error: str, *, permanent: bool) -> None:
        nonlocal failed, dead
        attempts = int(row["attempts"]) + 1
        status = store.mark_failed(int(row["outbox_id"]), attempts=attempts, last_error=error,
                                   next_attempt_at=now + backoff.delay(attempts),
                                   dead_after=attempts if permanent else backoff.max_attempts)
        log.warning("%s %s (%s to %s) attempt %d failed%s: %s", label, row["outbox_id"], row["kind"],
                    row["destination"], attempts, " (dead letter)" if status == "dead" else "", error)
        if status == "dead":
            dead += 1
        else:
            failed += 1

    for row in rows:
        sender = senders[row["channel"]]
        target = getattr(sender, "target", None)
        try:
            key: Hashable = target(row) if target is not None else row["outbox_id"]
        except Undeliverable as exc:
            fail(row, _error(exc, sender, with_type=False), permanent=True)
            continue
        groups.setdefault((row["channel"], key), []).append(row)

    for (channel, _), members in groups.items():
        if breaker.is_open(channel):
            for row in members:
                defer(row, channel)
            continue
        sender = senders[channel]
        try:
            sender.send(members)
        except Exception as exc:  # noqa: BLE001 - any channel failure is recorded and retried
            error = _error(exc, sender)
            permanent = isinstance(exc, Undeliverable)
            for row in members:
                fail(row, error, permanent=permanent)
            if not permanent:
                breaker.failed(channel, error)
                if breaker.is_open(channel):
                    log.warning("%s: the %s channel failed %d times in a row; deferring the rest of this run",
                                label, channel, breaker.threshold)
            continue
        breaker.succeeded(channel)
        for row in members:
            store.mark_delivered(int(row["outbox_id"]), now=now)
            delivered += 1
    return DeliveryReport(attempted=len(rows) - deferred, delivered=delivered, failed=failed, dead=dead,
                          deferred=deferred, open_circuits=breaker.open_channels())


def deliver_until_drained(
    store: OutboxStore,
    senders: Mapping[str, ChannelSender],
    *,
    now: datetime | None = None,
    backoff: Backoff = Backoff(),
    batch: int = 100,
    label: str = "outbox",
    max_batches: int = 1_000,
    breaker: CircuitBreaker | None = None,
) -> DeliveryReport:
    """`deliver` batch after batch until no row of these channels is due at `now` (a batch
    shorter than `batch`), every channel's circuit is open, or `max_batches` batches; the totals
    of every batch. One breaker spans the batches, so a system that is down costs
    `breaker.threshold` failed sends per run, not per batch."""
    now = now_or(now)
    breaker = breaker if breaker is not None else CircuitBreaker()
    totals = DeliveryReport(0, 0, 0, 0)
    for _ in range(max_batches):
        report = deliver(store, senders, now=now, backoff=backoff, batch=batch, label=label, breaker=breaker)
        totals += report
        if report.attempted + report.deferred < batch or all(breaker.is_open(c) for c in senders):
            break
    return totals


def _error(exc: BaseException, sender: ChannelSender, *, with_type: bool = True) -> str:
    from connectors.http_retry import redact  # requests and tenacity, only once a delivery failed

    text = f"{type(exc).__name__}: {exc}" if with_type else str(exc)
    return redact(text, sender.secrets())[:MAX_ERROR_CHARS]

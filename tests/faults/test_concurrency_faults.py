"""Concurrency faults: two SLA ticks, two deliverers, two daily runs, many claimers at once.
Each change happens once, nobody gets a traceback, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa

from connectors.queue.outbox import deliver
from connectors.queue.store import QueueStore
from tests.conftest import snapshot_frames

T0 = datetime(2026, 6, 1, 9, 0)


def _race(n: int, queue_url: str, work: Callable[[QueueStore, int], object]) -> list[object]:
    """Run `work(store, i)` in `n` threads, each with its own store, released together."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        store = QueueStore(queue_url)
        try:
            store.engine.connect().close()
            barrier.wait()
            try:
                results[i] = work(store, i)
            except Exception as exc:  # noqa: BLE001 - the test inspects what each racer got
                results[i] = exc
        finally:
            store.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def _open(store: QueueStore, n: int, **extra) -> list[str]:
    decisions, candidates = snapshot_frames([{"account_id": f"C-{i:02d}", **extra} for i in range(n)])
    store.apply_decisions(decisions, candidates, policy_version="t", policy_hash="h", model_version="m",
                          snapshot_date="2026-06-01", now=T0)
    return list(store.list_cases()["case_id"])


def _count(store: QueueStore, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def test_two_sla_ticks_at_once_apply_each_step_once(queue_store, queue_url) -> None:
    cases = _open(queue_store, 6)
    steps = [{"step_key": f"{c}:warn", "case_id": c, "action": "warn", "raci": {"informed": ["log:csm"]},
              "message": "at 75% of its first-touch target"} for c in cases]
    steps += [{"step_key": f"{c}:notify", "case_id": c, "action": "notify", "raci": {}, "message": "breached"}
              for c in cases]
    events_before = _count(queue_store, "case_events")
    results = _race(4, queue_url, lambda store, _i: store.apply_escalations(steps, now=T0 + timedelta(hours=1)))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(results) == len(steps)  # type: ignore[arg-type]
    assert _count(queue_store, "escalation_steps_applied") == len(steps)
    assert _count(queue_store, "case_events") == events_before + len(steps)
    levels = queue_store.list_cases()["escalation_level"]
    assert set(levels) == {1}  # each notify raised the level once


def test_two_wake_ups_at_once_wake_each_case_once(queue_store, queue_url) -> None:
    cases = _open(queue_store, 5, assignee="ana")
    for c in cases:
        queue_store.claim(c, "ana", now=T0)
        queue_store.transition(c, "snoozed", actor="ana", reason="wait", snooze_until=T0 + timedelta(days=1), now=T0)
    results = _race(3, queue_url, lambda store, _i: store.wake_snoozed(now=T0 + timedelta(days=2)))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(c for r in results for c in r) == sorted(cases)  # type: ignore[union-attr]
    events = queue_store.audit_events()
    assert (events["kind"] == "woken").sum() == len(cases)
    assert set(queue_store.list_cases()["status"]) == {"in_progress"}


class CountingSender:
    def __init__(self, sent: list[int], lock: threading.Lock) -> None:
        self.sent, self.lock = sent, lock

    def send(self, rows) -> None:
        with self.lock:
            self.sent.extend(int(r["outbox_id"]) for r in rows)

    def secrets(self) -> list[str]:
        return []


def test_two_deliverers_at_once_send_every_row_once(queue_store, queue_url) -> None:
    _open(queue_store, 12)
    rows = queue_store.outbox("pending")
    log_rows = rows[rows["channel"] == "log"]
    assert len(log_rows) >= 12
    sent: list[int] = []
    lock = threading.Lock()
    results = _race(3, queue_url, lambda store, _i: deliver(store, {"log": CountingSender(sent, lock)},
                                                           now=T0 + timedelta(minutes=1), batch=5))
    assert not [r for r in results if isinstance(r, Exception)], results
    while deliver(queue_store, {"log": CountingSender(sent, lock)}, now=T0 + timedelta(minutes=1)).attempted:
        pass
    assert sorted(sent) == sorted(log_rows["outbox_id"])  # each once, none lost
    assert set(queue_store.outbox()["status"].loc[lambda s: s.index.isin(log_rows.index)]) == {"delivered"}


def test_two_daily_runs_of_one_snapshot_at_once_open_each_case_once(queue_store, queue_url) -> None:
    decisions, candidates = snapshot_frames([{"account_id": f"D-{i:02d}"} for i in range(10)])

    def run(store: QueueStore, _i: int):
        return store.apply_decisions(decisions, candidates, policy_version="t", policy_hash="h", model_version="m",
                                     snapshot_date="2026-06-01", now=T0)

    results = _race(3, queue_url, run)
    # The runs take turns: one opens the cases, the others find them and change nothing.
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(r.opened for r in results) == [0, 0, 10]  # type: ignore[union-attr]
    assert sorted(r.unchanged for r in results) == [0, 10, 10]  # type: ignore[union-attr]
    cases = queue_store.list_cases()
    assert len(cases) == 10 and cases["account_id"].is_unique
    assert (queue_store.audit_events()["kind"] == "opened").sum() == 10
    assert pd.Series(queue_store.outbox()["dedupe_key"]).is_unique

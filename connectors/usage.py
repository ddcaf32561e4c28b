"""The ``usage_daily`` build: raw product events aggregated per account and day, in the warehouse.

A full build (`rebuild_usage_daily`) aggregates every event into a staging table and swaps it in.
The daily run calls `update_usage_daily`, which treats ``usage_daily`` as partitioned by day and
re-aggregates only the recent ones:

- **The window.** The days from the last aggregated day minus ``lookback_days`` (default
  `DEFAULT_LOOKBACK_DAYS`) onward are deleted and aggregated again from the raw events, in one
  transaction with the state row below: a rerun on the same events gives the same table, a crash
  leaves the old table and the old state. The last aggregated day is always re-done (it may have
  been a day in progress); the lookback is how many whole days before it events may still arrive
  late and be picked up.
- **The frozen past.** Each build records in ``usage_daily_state`` a fingerprint of the raw events
  dated before the next build's window (rows, newest ``occurred_at``, total ``quantity``, events
  with no ``occurred_at`` included), read in the same snapshot as the aggregate. The next build
  reads the same fingerprint first; if it moved (events arrived later than the lookback, old
  events were deleted, re-dated past the newest one, or their quantities changed) the past no
  longer matches the table and the build is a full one, saying why. It costs one scan of two
  columns of the raw table, no join against the aggregate. What it cannot see: an edit in place
  that keeps the count, the newest timestamp and the quantity sum of the past (an account id
  corrected, a row moved between two old days); `full=True` (the asset's ``full_rebuild``) is for
  that.
- **Anything else unexpected is a full build too**: no state (the first build, or a table built
  before the state existed), a missing target, a target whose columns are not the usage
  columns, a target whose row count is not what the last build left (someone else wrote it), a
  state table of another shape, a last build that read another raw table or aggregated no day.
  `rescue data load` drops the state with the tables it replaces (`connectors.mapping.land`).

A window ends with the data: new days, late rows of the window and rows deleted from it all
count. On PostgreSQL the build runs in one REPEATABLE READ transaction, so events inserted while
it runs are either in the aggregate and the fingerprint alike or in neither (the next build
picks them up); DuckDB's transactions are snapshots already, and on SQLite the build's write lock
keeps other writers out. Two builds at once should not interleave either: the second to delete
the window's rows fails (PostgreSQL's serialization error under REPEATABLE READ, DuckDB's write
conflict, SQLite's lock) and rolls back; that follows from the databases' rules and is not
exercised by the tests.

Cost: the incremental build reads the raw table's ``occurred_at`` and ``quantity`` (the
fingerprints, the window's filter) and aggregates only the window's events; the full build
aggregates everything. On PostgreSQL an index on ``raw_product_events (occurred_at)`` serves the
window's read; ``usage_daily`` gets an index on ``date`` there and on SQLite (`_Build.index_dates`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from connectors.warehouse import (
    ADVANCED_FEATURE,
    CORE_FEATURE,
    RAW_EVENTS_TABLE,
    USAGE_DAILY_TABLE,
    Warehouse,
    WarehouseError,
    _check_name,
    _staging_name,
)
from connectors.settings import DEFAULT_USAGE_LOOKBACK_DAYS, MAX_USAGE_LOOKBACK_DAYS
from models.clock import utcnow
from models.contracts import USAGE_DAILY

#: Whole days before the last aggregated day that each build aggregates again (late events), and
#: the longest lookback accepted (the deployment sets it: `RESCUE_USAGE_LOOKBACK_DAYS`).
DEFAULT_LOOKBACK_DAYS = DEFAULT_USAGE_LOOKBACK_DAYS
MAX_LOOKBACK_DAYS = MAX_USAGE_LOOKBACK_DAYS
#: One row per target table: what its last build did and the fingerprint of the frozen past.
USAGE_STATE_TABLE = "usage_daily_state"
#: Columns the raw events must have.
EVENT_COLUMNS = ("account_id", "user_id", "occurred_at", "feature", "quantity")

#: Raw events per batch of the full build. Above it the full build aggregates runs of whole days
#: one at a time, oldest first: the per-user groups of every account and day at once (hundreds of
#: millions at a million accounts) would spill past the warehouse's memory limit to disk, tens of
#: GB of it. A day's rows are the same whichever batch aggregates it.
FULL_BUILD_BATCH_EVENTS = 50_000_000

Mode = Literal["full", "incremental"]


@dataclass(frozen=True)
class UsageBuild:
    """What one build of ``usage_daily`` did."""

    mode: Mode
    reason: str                 # why full, or which window, in words
    rows: int                   # rows of the table after the build
    rows_replaced: int          # rows of the window deleted (all rows of the old table for a full build)
    rows_written: int           # rows aggregated and inserted
    window_start: date | None   # first day re-aggregated (None: every day)
    last_day: date | None       # last aggregated day after the build
    days: int                   # days aggregated (distinct dates written)
    lookback_days: int


def _state_table(name: str = USAGE_STATE_TABLE) -> sa.Table:
    return sa.Table(
        name, sa.MetaData(),
        sa.Column("target", sa.Text), sa.Column("source", sa.Text), sa.Column("build", sa.BigInteger),
        sa.Column("built_at", sa.DateTime), sa.Column("mode", sa.Text), sa.Column("reason", sa.Text),
        sa.Column("lookback_days", sa.BigInteger), sa.Column("window_start", sa.Date), sa.Column("last_day", sa.Date),
        sa.Column("boundary", sa.Date), sa.Column("past_rows", sa.BigInteger), sa.Column("past_max_at", sa.Text),
        sa.Column("past_quantity", sa.Text), sa.Column("target_rows", sa.BigInteger),
    )


@dataclass(frozen=True)
class _Fingerprint:
    rows: int
    max_at: str
    quantity: str

    def differs(self, state: dict[str, Any]) -> str | None:
        """What moved since the state's fingerprint, in words, or None."""
        was = _Fingerprint(int(state["past_rows"]), str(state["past_max_at"]), str(state["past_quantity"]))
        changes = [f"{label} {old} -> {new}" for label, old, new in (
            ("rows", f"{was.rows:,}", f"{self.rows:,}"), ("newest occurred_at", was.max_at, self.max_at),
            ("total quantity", was.quantity, self.quantity)) if old != new]
        return "; ".join(changes) or None


class _Build:
    """One build on one connection (one transaction)."""

    def __init__(self, wh: Warehouse, conn: sa.Connection, source: str, target: str, lookback: int):
        self.wh, self.conn, self.source, self.target, self.lookback = wh, conn, source, target, lookback
        self.sqlite = wh.dialect == "sqlite"
        self.ev = sa.table(_check_name(source), *(sa.column(c) for c in EVENT_COLUMNS))
        self.usage = sa.table(_check_name(target), sa.column("date", sa.Date))
        self.state = _state_table()
        # DATE() is SQLite's spelling; CAST(... AS DATE) is standard (DuckDB, PostgreSQL, ...).
        occurred = self.ev.c.occurred_at
        self.day = sa.func.date(occurred) if self.sqlite else sa.cast(occurred, sa.Date)

    # -- reading ------------------------------------------------------------------------------

    def columns(self, name: str) -> list[str] | None:
        if not sa.inspect(self.conn).has_table(name):
            return None
        # (the result's keys: DuckDB's SQLAlchemy dialect cannot inspect columns)
        return list(self.conn.execute(sa.text(f"SELECT * FROM {self.wh._quote(name)} WHERE 1 = 0")).keys())

    def read_state(self) -> tuple[dict[str, Any] | None, str | None]:
        """The target's state row, or None with the reason there is none to use."""
        have = self.columns(USAGE_STATE_TABLE)
        if have is None:
            return None, f"no record of an earlier build ({USAGE_STATE_TABLE} is missing)"
        if set(have) != set(self.state.c.keys()):
            return None, f"{USAGE_STATE_TABLE} has other columns than this version writes"
        row = self.conn.execute(sa.select(self.state).where(self.state.c.target == self.target)).mappings().first()
        if row is None:
            return None, f"no record of an earlier build of {self.target}"
        return dict(row), None

    def before(self, boundary: date) -> sa.ColumnElement:
        """Events dated before ``boundary`` (and events with no date: a change to them is a change
        of the past too)."""
        occurred = self.ev.c.occurred_at
        if self.sqlite:  # text timestamps: compare days, as the aggregate groups them
            early = self.day < boundary.isoformat()
        else:  # the column itself (an index or a partition on occurred_at can be used)
            early = occurred < sa.bindparam(None, datetime.combine(boundary, datetime.min.time()), sa.DateTime)
        return sa.or_(early, occurred.is_(None))

    def since(self, start: date) -> sa.ColumnElement:
        occurred = self.ev.c.occurred_at
        if self.sqlite:
            return self.day >= start.isoformat()
        return occurred >= sa.bindparam(None, datetime.combine(start, datetime.min.time()), sa.DateTime)

    def fingerprint(self, boundary: date) -> _Fingerprint:
        query = sa.select(sa.func.count(), sa.func.max(self.ev.c.occurred_at),
                          sa.func.coalesce(sa.func.sum(self.ev.c.quantity), 0)).where(self.before(boundary))
        rows, max_at, quantity = self.conn.execute(query).one()
        return _Fingerprint(int(rows), str(max_at), str(quantity))

    def count(self, where: sa.ColumnElement | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(self.usage)
        if where is not None:
            query = query.where(where)
        return int(self.conn.execute(query).scalar_one())

    def span(self, where: sa.ColumnElement | None = None) -> tuple[int, date | None, int]:
        """(rows, last day, number of days) of the target's rows (within ``where``)."""
        usage = self.usage
        query = sa.select(sa.func.count(), sa.func.max(usage.c.date), sa.func.count(sa.distinct(usage.c.date)))
        if where is not None:
            query = query.where(where)
        rows, last, days = self.conn.execute(query).one()
        return int(rows), _as_date(last), int(days)

    # -- the aggregate ------------------------------------------------------------------------

    def day_batches(self) -> list[sa.ColumnElement | None]:
        """The full build's batches, as predicates on the events' day: runs of whole days of at
        most `FULL_BUILD_BATCH_EVENTS` events (a day above it is a batch alone), oldest first;
        ``[None]``: one batch, every event. Events without a time are a batch of their own."""
        ev = self.ev
        events = int(self.conn.execute(sa.select(sa.func.count()).select_from(ev)).scalar() or 0)
        if events <= FULL_BUILD_BATCH_EVENTS:
            return [None]
        per_day = self.conn.execute(sa.select(self.day, sa.func.count()).where(ev.c.occurred_at.is_not(None))
                                    .group_by(self.day).order_by(self.day)).all()
        runs: list[tuple[date, date]] = []  # (first day, day after the last)
        first, size = None, 0
        for day, n in per_day:
            day = _as_date(day)
            if first is not None and size + int(n) > FULL_BUILD_BATCH_EVENTS:
                runs.append((first, day))
                first, size = None, 0
            if first is None:
                first = day
            size += int(n)
        if first is not None:
            runs.append((first, None))
        batches: list[sa.ColumnElement | None] = [
            self.since(a) if b is None else sa.and_(self.since(a), ~self.since(b)) for a, b in runs]
        if self.conn.execute(sa.select(sa.func.count()).select_from(ev).where(ev.c.occurred_at.is_(None))).scalar():
            batches.append(ev.c.occurred_at.is_(None))
        return batches

    def aggregate(self, start: date | None = None, events: sa.ColumnElement | None = None) -> sa.Select:
        """One row per account and day (of the days from ``start``, or all; of the events
        ``events`` selects, or all), in order of day on DuckDB (see `full`)."""
        ev = self.ev

        def quantity_of(feature: str) -> sa.ColumnElement:
            return sa.func.sum(sa.case((ev.c.feature == feature, ev.c.quantity), else_=0))

        # Two GROUP BYs instead of COUNT(DISTINCT user_id): first one row per user and day, then
        # one per account and day. Same result, and much cheaper than per-group distinct sets.
        per_user = sa.select(
            ev.c.account_id.label("account_id"),
            self.day.label("date"),
            ev.c.user_id.label("user_id"),
            sa.func.sum(ev.c.quantity).label("events"),
            quantity_of(CORE_FEATURE).label("core_events"),
            quantity_of(ADVANCED_FEATURE).label("advanced_events"),
        )
        if start is not None:
            per_user = per_user.where(self.since(start))
        if events is not None:
            per_user = per_user.where(events)
        per_user = per_user.group_by(ev.c.account_id, self.day, ev.c.user_id).subquery("per_user")

        def total(column: sa.ColumnElement) -> sa.ColumnElement:
            return sa.cast(sa.func.coalesce(sa.func.sum(column), 0), sa.BigInteger)

        query = sa.select(
            per_user.c.account_id,
            per_user.c.date,
            sa.cast(sa.func.count(per_user.c.user_id), sa.BigInteger).label("active_users"),
            total(per_user.c.events).label("events"),
            total(per_user.c.core_events).label("core_events"),
            total(per_user.c.advanced_events).label("advanced_events"),
        ).group_by(per_user.c.account_id, per_user.c.date)
        if self.wh.dialect == "duckdb":
            query = query.order_by(per_user.c.date, per_user.c.account_id)
        return query

    # -- writing ------------------------------------------------------------------------------

    def index_dates(self, name: str) -> None:
        """An index on ``date`` on PostgreSQL and SQLite, where the window's delete and counts
        would otherwise read the whole table (and reads by date range gain too). Not on DuckDB:
        its zone maps do that job, and an ART index would slow every insert and delete."""
        if self.wh.dialect in ("postgresql", "sqlite"):
            index = f"{name}__date_{uuid.uuid4().hex[:8]}"
            self.conn.execute(sa.text(f"CREATE INDEX {self.wh._quote(index)} ON {self.wh._quote(name)} ({self.wh._quote('date')})"))

    def full(self, reason: str) -> UsageBuild:
        old = self.count() if self.columns(self.target) is not None else 0
        staging = _staging_name(self.target)
        # Day by day on DuckDB (each batch in order of day, the batches oldest first, the daily
        # runs appending the newest days): the days a daily run rewrites are then the table's
        # last row groups, and its DELETE of them touches nothing else. With the rows in any
        # other order every row group holds some of the recent days, and at a million accounts
        # (274 M rows) that DELETE ran out of DuckDB's 2 GB (the same at 100k with 200 MB).
        first, *rest = self.day_batches()
        self.conn.execute(sa.CreateTableAs(self.aggregate(events=first), staging))
        into = sa.table(staging, *(sa.column(c) for c in USAGE_DAILY.column_names))
        for batch in rest:
            self.conn.execute(sa.insert(into).from_select(list(USAGE_DAILY.column_names), self.aggregate(events=batch)))
        self.wh._swap(self.conn, {staging: self.target})
        self.index_dates(self.target)
        rows, last, days = self.span()
        return self.finish("full", reason, rows=rows, replaced=old, written=rows, start=None, last=last, days=days)

    def incremental(self, state: dict[str, Any], start: date, reason: str) -> UsageBuild:
        window = self.usage.c.date >= start
        replaced = self.count(window)
        self.conn.execute(sa.delete(self.usage).where(window))
        self.conn.execute(sa.insert(sa.table(self.target, *(sa.column(c) for c in USAGE_DAILY.column_names)))
                          .from_select(list(USAGE_DAILY.column_names), self.aggregate(start)))
        written, last, days = self.span(window)
        rows = int(state["target_rows"]) - replaced + written
        # Nothing at or after the window (its events were deleted): the days before it are the
        # aggregated ones, so the next window starts at the latest one this build can vouch for.
        return self.finish("incremental", reason, rows=rows, replaced=replaced, written=written, start=start,
                           last=last or start - timedelta(days=1), days=days)

    def finish(self, mode: Mode, reason: str, *, rows: int, replaced: int, written: int, start: date | None,
               last: date | None, days: int) -> UsageBuild:
        """Record the state for the next build, in this transaction, and say what was done."""
        boundary = (last - timedelta(days=self.lookback)) if last is not None else None
        past = self.fingerprint(boundary) if boundary is not None else _Fingerprint(0, "None", "0")
        record_state(self.conn, {
            "target": self.target, "source": self.source, "built_at": utcnow(), "mode": mode, "reason": reason,
            "lookback_days": self.lookback, "window_start": start, "last_day": last, "boundary": boundary,
            "past_rows": past.rows, "past_max_at": past.max_at, "past_quantity": past.quantity, "target_rows": rows,
        })
        return UsageBuild(mode=mode, reason=reason, rows=rows, rows_replaced=replaced, rows_written=written,
                          window_start=start, last_day=last, days=days, lookback_days=self.lookback)


def record_state(conn: sa.Connection, row: dict[str, Any]) -> None:
    """Replace the target's state row (the table is created, or re-created when its shape is
    another version's)."""
    state = _state_table()
    have = sa.inspect(conn).has_table(USAGE_STATE_TABLE)
    if have and set(conn.execute(sa.text(f"SELECT * FROM {USAGE_STATE_TABLE} WHERE 1 = 0")).keys()) != set(state.c.keys()):
        state.drop(conn)
        have = False
    if not have:
        state.create(conn)
    previous = conn.execute(sa.select(sa.func.max(state.c.build)).where(state.c.target == row["target"])).scalar()
    conn.execute(sa.delete(state).where(state.c.target == row["target"]))
    conn.execute(sa.insert(state).values(**row, build=int(previous or 0) + 1))


def check_lookback(lookback_days: object) -> int:
    if isinstance(lookback_days, bool) or not isinstance(lookback_days, int) or not 0 <= lookback_days <= MAX_LOOKBACK_DAYS:
        raise WarehouseError(f"usage lookback_days must be a whole number of days from 0 to {MAX_LOOKBACK_DAYS}; "
                             f"got {lookback_days!r}")
    return lookback_days


def _check_source(wh: Warehouse, conn: sa.Connection, source: str) -> None:
    if not sa.inspect(conn).has_table(_check_name(source)):
        raise WarehouseError(f"table {source!r} does not exist in the warehouse {wh.display_url}")
    have = set(conn.execute(sa.text(f"SELECT * FROM {wh._quote(source)} WHERE 1 = 0")).keys())
    missing = [c for c in EVENT_COLUMNS if c not in have]
    if missing:
        raise WarehouseError(f"table {source!r} lacks the raw event column(s) {', '.join(missing)} "
                             f"(it needs {', '.join(EVENT_COLUMNS)})")


@contextmanager
def _transaction(wh: Warehouse) -> Iterator[sa.Connection]:
    """One connection in one transaction: committed when the block ends, rolled back on any error."""
    conn = wh.engine.connect()
    if wh.dialect == "postgresql":
        # One snapshot for the fingerprint, the aggregate and the next fingerprint.
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    with conn, conn.begin():
        if wh.dialect == "duckdb":
            # Row order of an aggregate is undefined anyway; not preserving it saves memory.
            conn.exec_driver_sql("SET preserve_insertion_order = false")
        yield conn


def rebuild_usage_daily(wh: Warehouse, *, source: str = RAW_EVENTS_TABLE, target: str = USAGE_DAILY_TABLE,
                        lookback_days: int = DEFAULT_LOOKBACK_DAYS, reason: str = "full rebuild requested") -> UsageBuild:
    """Aggregate every raw event into ``target`` (replaced atomically) and record the state an
    incremental build starts from."""
    lookback = check_lookback(lookback_days)
    with _transaction(wh) as conn:
        _check_source(wh, conn, source)
        return _Build(wh, conn, source, _check_name(target), lookback).full(reason)


def update_usage_daily(wh: Warehouse, *, source: str = RAW_EVENTS_TABLE, target: str = USAGE_DAILY_TABLE,
                       lookback_days: int = DEFAULT_LOOKBACK_DAYS, full: bool = False) -> UsageBuild:
    """Bring ``target`` up to date with the raw events: only the days of the window when the
    state allows it, else a full build (the module docs say when, and `UsageBuild.reason` why)."""
    lookback = check_lookback(lookback_days)
    with _transaction(wh) as conn:
        _check_source(wh, conn, source)
        build = _Build(wh, conn, source, _check_name(target), lookback)
        if full:
            return build.full("full rebuild requested")
        state, why = build.read_state()
        if state is None:
            return build.full(f"first build: {why}")
        if state["source"] != source:
            return build.full(f"the last build of {target} read {state['source']}, this one reads {source}")
        have = build.columns(target)
        if have is None:
            return build.full(f"{target} is missing")
        if list(have) != list(USAGE_DAILY.column_names):
            return build.full(f"{target} has columns ({', '.join(have)}), not the usage columns "
                              f"({', '.join(USAGE_DAILY.column_names)})")
        rows = build.count()
        if rows != int(state["target_rows"]):
            return build.full(f"{target} holds {rows:,} rows, the last build left {int(state['target_rows']):,}: "
                              "it was changed by something else")
        last, boundary = _as_date(state["last_day"]), _as_date(state["boundary"])
        if last is None or boundary is None:
            return build.full("the last build aggregated no day")
        moved = build.fingerprint(boundary).differs(state)
        if moved:
            return build.full(f"raw events dated before {boundary} changed since the last build ({moved}): "
                              f"later than the {int(state['lookback_days'])}-day lookback, or rewritten")
        # A longer lookback than the last build's applies now; a shorter one from the next build
        # on (the days between were not fingerprinted).
        start = min(boundary, last - timedelta(days=lookback))
        return build.incremental(state, start, f"days from {start} (the last aggregated day {last} minus the "
                                               f"{(last - start).days}-day lookback) re-aggregated")


def _as_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value)
    if text in ("", "None", "NaT"):
        return None
    return date.fromisoformat(text[:10])

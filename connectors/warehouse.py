"""The warehouse: any SQLAlchemy database that holds the raw source tables and usage.

`Warehouse` is a plain-Python client (usable without Dagster); `WarehouseResource` is the thin
Dagster resource around it. The embedded default is a DuckDB file under the project home
(`connectors.settings.default_warehouse_url`); SQLite and PostgreSQL work through the same code,
and so does any other SQLAlchemy dialect with transactional DDL.

Design points:

- **Heavy work stays in the warehouse.** `build_usage_daily` aggregates the raw per-user
  product events to one row per account per day with one ``CREATE TABLE ... AS SELECT ... GROUP
  BY`` statement; pandas only ever sees the aggregate. The daily run re-aggregates only the
  recent days (`connectors.usage`).
- **Replacing a table is atomic.** A replacement is written under a staging name and swapped in
  (drop old, rename new) inside one transaction, so a failure at any point leaves the previous
  table untouched and readers never see half a table. `promote` does the same swap for several
  tables at once.
- **DuckDB is a file that allows one writer process.** The engine uses ``NullPool`` for DuckDB so
  that no connection stays open between calls, and frames are loaded by registering them with
  DuckDB (a zero-copy scan) instead of row-by-row inserts.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.pool import NullPool

from connectors.settings import default_warehouse_url
from models.churn.features import LAST_ACTIVE, USAGE_AGGREGATES, USAGE_SUMS, USAGE_WINDOW_DAYS
from models.contracts import USAGE_DAILY, TableContract, conform, series_kind

#: Raw per-user product events, as a product-analytics pipeline lands them.
RAW_EVENTS_TABLE = "raw_product_events"
#: The daily per-account aggregate built from them (contract `models.contracts.USAGE_DAILY`).
USAGE_DAILY_TABLE = "usage_daily"
#: Values of ``raw_product_events.feature`` counted in ``core_events`` / ``advanced_events``.
CORE_FEATURE = "core"
ADVANCED_FEATURE = "advanced"

#: DuckDB's memory cap unless the URL sets one (``duckdb:///file.duckdb?memory_limit=8GB``): large
#: aggregations spill to disk instead of taking most of the machine's memory.
DEFAULT_DUCKDB_MEMORY_LIMIT = "2GB"

_IF_EXISTS = ("replace", "append", "fail")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TO_SQL_CHUNK_ROWS = 50_000
#: Seconds a probe (`probe_engine`) may take to connect to a server warehouse, and seconds its
#: queries may take (PostgreSQL), before its caller falls back to what it does without the answer.
PROBE_TIMEOUT_SECONDS = 5
PROBE_QUERY_SECONDS = 10


class WarehouseError(RuntimeError):
    """A warehouse operation could not be carried out (missing table, bad name, bad option)."""


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise WarehouseError(
            f"invalid table name {name!r}: use letters, digits and underscores, not starting with a digit"
        )
    return name


def _staging_name(name: str) -> str:
    return f"{name}__staging_{uuid.uuid4().hex[:8]}"


class Warehouse:
    """A client for one warehouse database.

    >>> wh = Warehouse("duckdb:///warehouse.duckdb")      # doctest: +SKIP
    >>> wh.write_table("raw_crm_accounts", accounts)      # doctest: +SKIP
    >>> wh.build_usage_daily()                            # doctest: +SKIP
    """

    def __init__(self, url: str | None = None):
        self.url = url or default_warehouse_url()

    def __repr__(self) -> str:
        return f"Warehouse({self.display_url!r})"

    # -- connection ---------------------------------------------------------------------------

    @cached_property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (created once). DuckDB engines keep no pooled connections."""
        url = sa.make_url(self.url)
        if url.get_backend_name() == "duckdb":
            config = {} if "memory_limit" in url.query else {"memory_limit": DEFAULT_DUCKDB_MEMORY_LIMIT}
            engine = sa.create_engine(url, poolclass=NullPool, connect_args={"config": config})
            _quiet_duckdb(engine)
            return engine
        engine = sa.create_engine(url)
        if url.get_backend_name() == "sqlite" and url.get_driver_name() == "pysqlite":
            _enable_sqlite_transactional_ddl(engine)
        return engine

    @property
    def dialect(self) -> str:
        """The SQLAlchemy dialect name: ``duckdb``, ``sqlite``, ``postgresql``..."""
        return self.engine.dialect.name

    @property
    def display_url(self) -> str:
        """The URL with any password masked, safe for logs and metadata."""
        return sa.make_url(self.url).render_as_string(hide_password=True)

    def _quote(self, name: str) -> str:
        return self.engine.dialect.identifier_preparer.quote(_check_name(name))

    # -- inspection ---------------------------------------------------------------------------

    def table_exists(self, name: str) -> bool:
        """Whether a table called ``name`` exists."""
        with self.engine.connect() as conn:
            return sa.inspect(conn).has_table(_check_name(name))

    def _require(self, name: str) -> None:
        if not self.table_exists(name):
            raise WarehouseError(f"table {name!r} does not exist in the warehouse {self.display_url}")

    def row_count(self, name: str) -> int:
        """Number of rows in table ``name``."""
        self._require(name)
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {self._quote(name)}")).scalar_one())

    # -- writing ------------------------------------------------------------------------------

    def write_table(self, name: str, df: pd.DataFrame, *, if_exists: str = "replace") -> int:
        """Write ``df`` as table ``name`` and return the number of rows written.

        ``if_exists``: ``replace`` (atomic: staged under a temporary name and swapped in within
        one transaction), ``append`` (see `append_table`) or ``fail`` (raise if it exists).
        """
        _check_name(name)
        if if_exists not in _IF_EXISTS:
            raise WarehouseError(f"if_exists must be one of {', '.join(_IF_EXISTS)}; got {if_exists!r}")
        if if_exists == "append":
            return self.append_table(name, df)
        if if_exists == "fail" and self.table_exists(name):
            raise WarehouseError(f"table {name!r} already exists (if_exists='fail')")
        staging = _staging_name(name)
        with self.engine.begin() as conn:
            self._create_from_frame(conn, staging, df)
            self._swap(conn, {staging: name})
        return len(df)

    def append_table(self, name: str, df: pd.DataFrame) -> int:
        """Append the rows of ``df`` to table ``name`` (created if missing), matching columns by
        name. Returns the number of rows appended."""
        _check_name(name)
        exists = self.table_exists(name)
        with self.engine.begin() as conn:
            if not exists:
                self._create_from_frame(conn, name, df)
            else:
                self._insert(conn, name, df)
        return len(df)

    def _insert(self, conn: sa.Connection, name: str, df: pd.DataFrame) -> None:
        """Insert the rows of ``df`` into the existing table ``name``, matching columns by name."""
        if self.dialect == "duckdb":
            with self._registered(conn, df) as (raw, view):
                raw.execute(f"INSERT INTO {self._quote(name)} BY NAME SELECT {self._select_list(df)} FROM {view}")
        else:
            _portable(df).to_sql(name, conn, if_exists="append", index=False, chunksize=_TO_SQL_CHUNK_ROWS)

    def replace_partition(self, name: str, df: pd.DataFrame, column: str, value: Any) -> int:
        """Replace the rows of table ``name`` whose ``column`` equals ``value`` by ``df``, in one
        transaction (the table is created from ``df`` if missing). Re-running a partition
        therefore never duplicates its rows. Every row of ``df`` must carry ``value``."""
        _check_name(name)
        if column not in df.columns:
            raise WarehouseError(f"replace_partition({name!r}): the frame has no {column!r} column")
        if len(df) and not (df[column] == value).all():
            raise WarehouseError(f"replace_partition({name!r}): rows with {column} != {value!r}")
        if not self.table_exists(name):
            return self.write_table(name, df)
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"DELETE FROM {self._quote(name)} WHERE {self._quote(column)} = :v"), {"v": value})
            if len(df):
                self._insert(conn, name, df)
        return len(df)

    def drop_table(self, name: str) -> None:
        """Drop table ``name`` if it exists."""
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {self._quote(name)}"))

    def promote(
        self,
        renames: Mapping[str, str],
        *,
        drop: Sequence[str] = (),
        append: Mapping[str, pd.DataFrame] | None = None,
    ) -> None:
        """Move tables over their targets in one transaction: for each ``source -> target``, drop
        ``target`` if it exists and rename ``source`` to it. Either every target is replaced or
        none is (the databases this project supports have transactional DDL). In the same
        transaction, tables in ``drop`` are dropped and the rows in ``append`` are appended (each
        table created if missing, and given any column of the rows it lacks, empty in its earlier
        rows), e.g. a manifest row saying what was promoted."""
        for source in renames:
            self._require(source)
        with self.engine.begin() as conn:
            self._swap(conn, renames)
            for name in drop:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {self._quote(name)}"))
            for name, df in (append or {}).items():
                if sa.inspect(conn).has_table(_check_name(name)):
                    self._add_missing_columns(conn, name, df)
                    self._insert(conn, name, df)
                else:
                    self._create_from_frame(conn, name, df)

    def _add_missing_columns(self, conn: sa.Connection, name: str, df: pd.DataFrame) -> None:
        """Give table ``name`` the columns of ``df`` it does not have (NULL in its rows)."""
        # (the result's keys: DuckDB's SQLAlchemy dialect cannot inspect columns)
        have = set(conn.execute(sa.text(f"SELECT * FROM {self._quote(name)} WHERE 1 = 0")).keys())
        for column in df.columns:
            if column not in have:
                conn.execute(sa.text(f"ALTER TABLE {self._quote(name)} ADD COLUMN {self._quote(column)} "
                                     f"{_column_type(df[column])}"))

    def _swap(self, conn: sa.Connection, renames: Mapping[str, str]) -> None:
        for source, target in renames.items():
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {self._quote(target)}"))
            conn.execute(sa.text(f"ALTER TABLE {self._quote(source)} RENAME TO {self._quote(target)}"))

    def _create_from_frame(self, conn: sa.Connection, name: str, df: pd.DataFrame) -> None:
        if self.dialect == "duckdb":
            with self._registered(conn, df) as (raw, view):
                raw.execute(f"CREATE TABLE {self._quote(name)} AS SELECT {self._select_list(df)} FROM {view}")
        else:
            _portable(df).to_sql(name, conn, if_exists="fail", index=False, chunksize=_TO_SQL_CHUNK_ROWS)

    @contextmanager
    def _registered(self, conn: sa.Connection, df: pd.DataFrame) -> Iterator[tuple[object, str]]:
        """Expose ``df`` to DuckDB as a view on the connection's own transaction."""
        raw = conn.connection.driver_connection
        view = f"frame_{uuid.uuid4().hex[:12]}"
        raw.register(view, df)
        try:
            yield raw, view
        finally:
            # After a failed statement DuckDB refuses everything until rollback; the view dies
            # with the connection then, and the original error is the one worth raising.
            with suppress(duckdb.Error):
                raw.unregister(view)

    def _select_list(self, df: pd.DataFrame) -> str:
        """Column list for loading a frame into DuckDB with portable column types: categoricals
        (which DuckDB reads as ENUM) become VARCHAR, nanosecond timestamps become TIMESTAMP."""
        parts = []
        quote = self.engine.dialect.identifier_preparer.quote_identifier
        for col, dtype in df.dtypes.items():
            q = quote(str(col))
            if isinstance(dtype, pd.CategoricalDtype):
                parts.append(f"CAST({q} AS VARCHAR) AS {q}")
            elif pd.api.types.is_datetime64_any_dtype(dtype):
                parts.append(f"CAST({q} AS TIMESTAMP) AS {q}")
            else:
                parts.append(q)
        return ", ".join(parts) if parts else "*"

    # -- reading ------------------------------------------------------------------------------

    def read_sql(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        """Run a query (named parameters as ``:name``) and return the result as a frame."""
        clause = sa.text(sql)
        if params:
            clause = clause.bindparams(**params)
        return self._fetch_frame(clause)

    def _fetch_frame(self, clause: sa.Executable) -> pd.DataFrame:
        with self.engine.connect() as conn:
            if self.dialect == "duckdb":
                # DuckDB hands results to pandas column-wise, far faster than fetching rows.
                compiled = clause.compile(dialect=self.engine.dialect, compile_kwargs={"render_postcompile": True})
                names = compiled.positiontup or []
                args = [compiled.params[n] for n in names]
                return conn.connection.driver_connection.execute(compiled.string, args).df()
            return pd.read_sql_query(clause, conn)

    def read_contract_table(self, table: str, contract: TableContract) -> pd.DataFrame:
        """``SELECT *`` from ``table`` conformed to ``contract`` (`models.contracts.ContractError`
        names any missing column or unreadable type)."""
        self._require(table)
        return conform(self._fetch_frame(sa.text(f"SELECT * FROM {self._quote(table)}")), contract)

    def column_types(self, table: str) -> dict[str, str]:
        """Column name -> the warehouse's lower-cased type name of ``table``'s columns."""
        self._require(table)
        with self.engine.connect() as conn:
            if self.dialect == "duckdb":
                rows = conn.exec_driver_sql(f"DESCRIBE SELECT * FROM {self._quote(table)}").fetchall()
                return {str(r[0]): str(r[1]).lower() for r in rows}
            return {c["name"]: str(c["type"]).lower() for c in sa.inspect(conn).get_columns(table)}

    def read_recent(self, table: str, columns: Sequence[str], since: Any) -> pd.DataFrame | None:
        """The rows of ``table`` where any of ``columns`` is NULL or at or after ``since``, filtered
        in the warehouse; None when that cannot be pushed down (a column that is not a timestamp
        column, or SQLite, whose dates are text): the caller then reads the table whole. A row
        whose date is NULL comes back, so a check downstream still sees it."""
        types = self.column_types(table)
        if self.dialect == "sqlite" or not all(types.get(c, "").startswith(("timestamp", "date")) for c in columns):
            return None
        where = " OR ".join(f"{self._quote(c)} IS NULL OR {self._quote(c)} >= :since" for c in columns)
        return self.read_sql(f"SELECT * FROM {self._quote(table)} WHERE {where}", {"since": pd.Timestamp(since).to_pydatetime()})

    # -- usage --------------------------------------------------------------------------------

    def build_usage_daily(self, *, source: str = RAW_EVENTS_TABLE, target: str = USAGE_DAILY_TABLE) -> int:
        """Aggregate raw product events into one row per account per day, inside the warehouse.

        ``source`` needs columns account_id, user_id, occurred_at (timestamp), feature and
        quantity. ``target`` gets the `USAGE_DAILY` columns: account_id, date, active_users
        (distinct users), events (sum of quantity), core_events and advanced_events (sum of
        quantity for the core / advanced feature). The target is replaced atomically. Returns
        the number of rows of the new table. This is the full build; the daily run only
        re-aggregates recent days (`connectors.usage.update_usage_daily`).
        """
        from connectors.usage import rebuild_usage_daily  # (it builds on this module)

        return rebuild_usage_daily(self, source=source, target=target).rows

    def read_usage_daily(
        self,
        start: date | None = None,
        end: date | None = None,
        account_ids: Sequence[str] | None = None,
        *,
        table: str = USAGE_DAILY_TABLE,
    ) -> pd.DataFrame:
        """Rows of the daily usage table with ``start <= date < end`` (either bound optional),
        optionally for some accounts only, ordered by account and date, conformed to
        `USAGE_DAILY`."""
        self._require(table)
        t = sa.table(_check_name(table), *(sa.column(c) for c in USAGE_DAILY.column_names))
        day = sa.column("date", sa.Date)
        query = sa.select(*(t.c[c] for c in USAGE_DAILY.column_names))
        if start is not None:
            query = query.where(day >= pd.Timestamp(start).date())
        if end is not None:
            query = query.where(day < pd.Timestamp(end).date())
        if account_ids is not None:
            query = query.where(t.c.account_id.in_([str(a) for a in account_ids]))
        query = query.order_by(t.c.account_id, t.c.date)
        return conform(self._fetch_frame(query), USAGE_DAILY)

    def read_usage_aggregates(
        self,
        as_of: date | pd.Timestamp,
        account_ids: Sequence[str] | None = None,
        *,
        table: str = USAGE_DAILY_TABLE,
    ) -> pd.DataFrame:
        """`models.churn.features.usage_aggregates` of the daily usage table as of ``as_of``,
        computed in the warehouse: one ``GROUP BY account_id`` over the `USAGE_WINDOW_DAYS` days
        before ``as_of`` with one conditional sum per `USAGE_SUMS` window and the newest day with
        events, so one row per account comes back instead of every account's days (optionally
        for some accounts only). Index ``account_id``; the sums as float64 (0 where a window has
        no value), `LAST_ACTIVE` as a timestamp (NaT without an active day)."""
        self._require(table)
        as_of = pd.Timestamp(as_of).normalize()
        t = sa.table(_check_name(table), *(sa.column(c) for c in USAGE_DAILY.column_names))
        day = sa.column("date", sa.Date)

        def before(days: int) -> date:
            return (as_of - pd.Timedelta(days=days)).date()

        sums = [sa.func.sum(sa.case((sa.and_(day >= before(u.first_day), day < before(u.last_day)), t.c[u.column])))
                .label(u.name) for u in USAGE_SUMS]
        active = sa.func.max(sa.case((t.c.events > 0, t.c.date))).label(LAST_ACTIVE)  # as stored: read below
        query = (sa.select(t.c.account_id, *sums, active)
                 .where(day >= before(USAGE_WINDOW_DAYS), day < as_of.date())
                 .group_by(t.c.account_id))
        if account_ids is not None:
            query = query.where(t.c.account_id.in_([str(a) for a in account_ids]))
        frame = self._fetch_frame(query)
        out = pd.DataFrame(index=pd.Index(frame["account_id"].astype("string"), name="account_id"))
        for u in USAGE_SUMS:
            out[u.name] = pd.to_numeric(frame[u.name], errors="coerce").fillna(0.0).astype("float64").to_numpy()
        out[LAST_ACTIVE] = pd.to_datetime(frame[LAST_ACTIVE]).to_numpy()
        return out[list(USAGE_AGGREGATES)]


def probe_engine(url: str) -> sa.Engine | None:
    """An engine that reads the warehouse at `url` without creating or locking anything (for a
    look while the Definitions load), or None when the warehouse is a file that does not exist:
    a DuckDB file is opened read-only, a server gets short connection and query timeouts. The
    caller disposes of it."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("duckdb", "sqlite"):
        database = parsed.database or ""
        if not database or database == ":memory:" or not Path(database).is_file():
            return None
        args: dict[str, Any] = {"read_only": True} if backend == "duckdb" else {}
        return sa.create_engine(parsed, poolclass=NullPool, connect_args=args)
    args = {}
    if backend in ("postgresql", "mysql", "mariadb"):
        args["connect_timeout"] = PROBE_TIMEOUT_SECONDS
    if backend == "postgresql":  # a scan of a huge unindexed table: the caller's fallback, not a long wait
        args["options"] = f"-c statement_timeout={PROBE_QUERY_SECONDS * 1000}"
    return sa.create_engine(parsed, poolclass=NullPool, connect_args=args)


def _quiet_duckdb(engine: sa.Engine) -> None:
    """No progress bar on the terminal for long DuckDB queries (a session setting)."""

    @sa.event.listens_for(engine, "connect")
    def _no_progress_bar(dbapi_connection, _record) -> None:  # noqa: ANN001
        dbapi_connection.execute("SET enable_progress_bar = false")


def _enable_sqlite_transactional_ddl(engine: sa.Engine) -> None:
    """Make SQLAlchemy transactions cover DDL on the standard-library SQLite driver.

    By default the driver only opens a transaction before INSERT/UPDATE/DELETE, so a failed
    table swap could not be rolled back. Following the SQLAlchemy documentation's recipe, the
    driver's own transaction handling is turned off and SQLAlchemy emits BEGIN itself.
    """

    @sa.event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection, _record) -> None:  # noqa: ANN001
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _explicit_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN")


_SQL_TYPES = {"bool": "BOOLEAN", "int": "BIGINT", "float": "DOUBLE PRECISION", "datetime": "TIMESTAMP", "str": "TEXT"}


def _column_type(values: pd.Series) -> str:
    """A portable SQL type for a column of ``values`` (DuckDB, SQLite and PostgreSQL read it)."""
    return _SQL_TYPES[series_kind(values)]


def _portable(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` that `pandas.DataFrame.to_sql` writes with plain column types."""
    cats = [c for c, d in df.dtypes.items() if isinstance(d, pd.CategoricalDtype)]
    if not cats:
        return df
    out = df.copy()
    for c in cats:
        out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse as a Dagster resource (any SQLAlchemy URL).

    Leave ``url`` unset for the embedded DuckDB file (or whatever ``RESCUE_WAREHOUSE_URL``
    points at); the Definitions pass ``dg.EnvVar("RESCUE_WAREHOUSE_URL")`` when it is set.
    """

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the warehouse; unset = the embedded DuckDB file under RESCUE_HOME.",
    )

    def get_client(self) -> Warehouse:
        return Warehouse(self.url or default_warehouse_url())

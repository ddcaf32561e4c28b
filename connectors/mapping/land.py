"""Checking and landing a mapping in the warehouse.

`check_mapping` builds the typed and canonical tables as temporary tables on one connection,
profiles them (`connectors.mapping.check`) and rolls everything back: nothing is written.

`land_mapping` builds the same tables, refuses on any blocking problem, copies the canonical
tables into staging tables (``<target>__landing_<token>``) and then, in one transaction
(`Warehouse.promote`), moves every staging table over its target and appends the manifest row
(`connectors.mapping.manifest`, with the thresholds the mapping's ``checks:`` block set). A
failure at any step leaves the warehouse as it was (staging tables are dropped; a killed run's
leftovers are dropped by the next load).

The canonical tables land where the source assets read them, so the pipeline runs on them
unchanged: ``raw_crm_accounts``, ``raw_crm_renewals``, ``raw_support_tickets`` (the embedded
`connectors.sources` tables), ``usage_daily``, ``churn_outcomes`` and ``account_history``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from connectors.mapping.check import Checker
from connectors.mapping.compile import CANONICAL_PREFIX, Plan
from connectors.mapping.dialect import Dialect, DialectError, dialect_for
from connectors.mapping.loader import LoadedMapping, MappingError
from connectors.mapping.manifest import MANIFEST_TABLE, manifest_row, read_manifest
from connectors.sources import RAW_TABLES
from connectors.usage import USAGE_STATE_TABLE
from connectors.warehouse import USAGE_DAILY_TABLE, Warehouse
from models.clock import utcnow
from models.mapping.problems import Report

#: Canonical table -> the warehouse table it lands in.
TARGETS = {
    "accounts": RAW_TABLES["accounts"],
    "renewals": RAW_TABLES["renewals"],
    "tickets": RAW_TABLES["tickets"],
    "usage_daily": USAGE_DAILY_TABLE,
    "churn_outcomes": "churn_outcomes",
    "account_history": RAW_TABLES["account_history"],  # read by the CRM source (`WarehouseCRM.account_history`)
}
#: Tables the pipeline derives itself (replacing them loses nothing).
DERIVED = ("usage_daily", "churn_outcomes")
STAGING_MARK = "__landing_"

Progress = Callable[[str], None]


class LandError(RuntimeError):
    """The mapping was not landed; the message is one line, and the warehouse is unchanged."""


@dataclass
class Built:
    conn: sa.Connection
    plan: Plan
    data_end: pd.Timestamp
    report: Report
    counts: dict[str, int]
    first_date: pd.Timestamp | None


@contextmanager
def build(loaded: LoadedMapping, warehouse: Warehouse, *, now: pd.Timestamp | None = None,
          progress: Progress | None = None) -> Iterator[Built]:
    """Materialize the typed and canonical tables as temporary tables and check them; the
    connection's transaction is left open for the caller (rolled back when the block ends)."""
    say = progress or (lambda _msg: None)
    dialect = dialect_for(warehouse.engine)
    temps: list[str] = []
    step = f"connecting to {warehouse.display_url}"
    try:
        conn = warehouse.engine.connect()
    except sa.exc.SQLAlchemyError as exc:
        raise LandError(f"{loaded.path}: {step}: {_first_line(exc)}") from None
    with conn:
        try:
            dialect.session_setup(conn)
            step = "reading the sources"
            plan = Plan(loaded, dialect, conn)
            for name, sp in plan.sections.items():
                step = f"{name}: reading {sp.source.describe()}"
                _create_temp(dialect, conn, sp.table, sp.select, temps)
                rows = dialect.run(conn, f"SELECT COUNT(*) FROM {sp.table}").scalar()
                say(f"read {name} from {sp.source.describe()}: {rows:,} rows")
            data_end = plan.fixed_data_end() or _timestamp(dialect.run(conn, plan.data_end_sql()).scalar())
            if data_end is None:
                raise MappingError(str(loaded.path), [("", "the sources hold no dated rows: nothing to land")])
            counts = {}
            for table, sql in plan.canonical(data_end).items():
                step = f"building {table}"
                _create_temp(dialect, conn, CANONICAL_PREFIX + table, sql, temps)
                if table.startswith("_"):
                    continue  # a working table, not landed
                counts[table] = int(dialect.run(conn, f"SELECT COUNT(*) FROM {CANONICAL_PREFIX}{table}").scalar())
                say(f"built {table}: {counts[table]:,} rows")
            first = _timestamp(dialect.run(conn, f"SELECT MIN(created_at) FROM {CANONICAL_PREFIX}accounts").scalar())
            step = "checking"
            report = Checker(plan, conn, data_end, pd.Timestamp(now or utcnow())).run()
            if "usage" not in plan.sections:
                report.profile.append("no usage section: usage_daily will come from raw_product_events, if the warehouse has them")
            step = "writing the staging tables"
            yield Built(conn, plan, data_end, report, counts, first)
        except (MappingError, DialectError, LandError):
            raise
        except sa.exc.SQLAlchemyError as exc:
            raise LandError(f"{loaded.path}: {step}: the warehouse failed: {_first_line(exc)}") from None
        finally:
            if conn.in_transaction():
                conn.rollback()
            for name in reversed(temps):  # pooled connections keep temporary tables
                try:
                    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
                    conn.commit()
                except sa.exc.DBAPIError:
                    conn.rollback()


def _create_temp(dialect: Dialect, conn: sa.Connection, name: str, select: str, temps: list[str]) -> None:
    dialect.run(conn, f"CREATE TEMPORARY TABLE {name} AS {select}")
    temps.append(name)


def _timestamp(value: object) -> pd.Timestamp | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    ts = pd.Timestamp(value)
    return None if pd.isna(ts) else ts


def check_mapping(loaded: LoadedMapping, warehouse: Warehouse, *, now: pd.Timestamp | None = None,
                  progress: Progress | None = None) -> Report:
    """Profile and validate a mapping; nothing is written."""
    with build(loaded, warehouse, now=now, progress=progress) as built:
        return built.report


@dataclass(frozen=True)
class Landed:
    tables: dict[str, int]          # target table -> rows
    report: Report
    data_end: pd.Timestamp
    seconds: float


def land_mapping(loaded: LoadedMapping, warehouse: Warehouse, *, now: pd.Timestamp | None = None,
                 progress: Progress | None = None, replaceable: Iterable[str] = (),
                 drop: Iterable[str] = (), replace: bool = False) -> Landed:
    """Check the mapping and land its canonical tables atomically (see the module docs).

    Existing target tables are replaced only when a previous load or the pipeline wrote them,
    or they are listed in ``replaceable`` (the caller knows the demo wrote them), or ``replace``
    is set; ``drop`` names tables to drop in the same transaction (a demo world's leftovers).
    """
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    now = pd.Timestamp(now or utcnow())
    _refuse_foreign_tables(warehouse, set(replaceable), replace)
    token = uuid.uuid4().hex[:8]
    staging: dict[str, str] = {}
    _drop_leftovers(warehouse)
    try:
        with build(loaded, warehouse, now=now, progress=progress) as built:
            report = built.report
            if report.blocking:
                first = report.errors[0].line(severity=False)
                more = len(report.errors) - 1
                raise LandError(f"{loaded.path}: not loaded: {first}"
                                + (f" (and {more} more blocking problem{'s' * (more != 1)}: run `rescue data check`)" if more else ""))
            for table, rows in built.counts.items():
                name = f"{TARGETS[table]}{STAGING_MARK}{token}"
                built.plan.d.run(built.conn, f"CREATE TABLE {warehouse.engine.dialect.identifier_preparer.quote(name)} "
                                             f"AS SELECT * FROM {CANONICAL_PREFIX}{table}")
                staging[name] = TARGETS[table]
            built.conn.commit()
            counts = {TARGETS[t]: n for t, n in built.counts.items()}
            row = manifest_row(
                mapping_path=str(loaded.path.resolve()), mapping_name=loaded.mapping.name, mapping_hash=loaded.content_hash,
                landed_at=now, row_counts=counts, first_date=built.first_date, last_date=built.data_end,
                usage_daily="usage_daily" in built.counts, sources=_source_stamps(loaded),
                checks=loaded.mapping.threshold_overrides(),
            )
            data_end = built.data_end
        say(f"landing {len(staging)} tables in one transaction: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
        # The usage build's state describes a usage_daily this load replaces (or leaves to be
        # rebuilt): dropped with it, so the next build from raw events is a full one.
        dropped = [*(t for t in drop if t not in staging.values()), USAGE_STATE_TABLE]
        warehouse.promote(staging, drop=dropped, append={MANIFEST_TABLE: row})
    except BaseException:
        for name in staging:
            try:
                warehouse.drop_table(name)
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
        raise
    return Landed(counts, report, data_end, time.perf_counter() - started)


def _refuse_foreign_tables(warehouse: Warehouse, replaceable: set[str], replace: bool) -> None:
    if replace:
        return
    meta = read_manifest(warehouse)
    landed = set(meta["tables"]) if meta else set()
    allowed = landed | replaceable | {TARGETS[t] for t in DERIVED}
    foreign = [t for t in TARGETS.values() if t not in allowed and warehouse.table_exists(t)]
    if foreign:
        raise LandError(f"the warehouse already has {', '.join(foreign)}, which no `rescue data load` wrote: "
                        "pass --replace to replace it with the mapping's data")


def _drop_leftovers(warehouse: Warehouse) -> None:
    """Staging tables of a load that was killed half-way."""
    with warehouse.engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
    for name in names:
        if STAGING_MARK in name and name.split(STAGING_MARK)[0] in TARGETS.values():
            warehouse.drop_table(name)


def _source_stamps(loaded: LoadedMapping) -> dict[str, dict]:
    """What each source was at load time: files with size and modification time."""
    out = {}
    for name in loaded.mapping.sections():
        source_name, source = loaded.mapping.source_of(name)
        if source.file is not None:
            path = loaded.file_path(source)
            stat = path.stat()
            out[name] = {"file": str(path), "bytes": stat.st_size,
                         "modified": pd.Timestamp(stat.st_mtime, unit="s").isoformat()}
        else:
            out[name] = {source.kind: source.table or "query"}
    return out


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""The SQL that differs between warehouses, for the mapping's compiled queries.

DuckDB (the embedded default) does everything: it reads CSV and Parquet files in place
(``read_csv`` / ``read_parquet``), parses text dates with strptime formats and converts named time
zones. PostgreSQL reads tables and queries, ISO dates and named zones. SQLite reads tables and
queries with ISO dates in UTC. Anything a warehouse cannot do is refused when compiling, naming
the key path, never half-done.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import pandas as pd
import sqlalchemy as sa

from models.mapping.dates import is_date_only

#: Source column types (lower-cased prefixes) that already hold timestamps or dates.
_TEMPORAL = ("timestamp", "date", "datetime")
#: An offset at the end of a timestamp text: Z, +02:00, -0500.
_OFFSET_RE = r"(Z|[+-][0-9]{2}:?[0-9]{2})$"
#: The same, where the text is anchored as a whole timestamp: also an hours-only offset (+00).
_PG_OFFSET_RE = r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}


class DialectError(ValueError):
    """The warehouse cannot run what the mapping asks for (e.g. read files outside DuckDB)."""


class Dialect:
    """ANSI-ish SQL shared by the supported warehouses; subclasses override what differs."""

    name = "generic"
    text_type = "VARCHAR"
    double_type = "DOUBLE PRECISION"
    reads_files = False
    supports_formats = False
    supports_zones = False

    def __init__(self, preparer: sa.sql.compiler.IdentifierPreparer | None = None) -> None:
        self._preparer = preparer

    def run(self, conn: sa.Connection, sql: str) -> sa.CursorResult:
        """Execute compiled mapping SQL as it is (no bind parameters)."""
        return conn.exec_driver_sql(sql)

    def quote(self, name: str) -> str:
        if self._preparer is not None:
            return self._preparer.quote_identifier(name)
        return '"' + name.replace('"', '""') + '"'

    def literal(self, value: object) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "NULL"
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, pd.Timestamp):
            return self.timestamp_literal(value)
        return "'" + str(value).replace("'", "''") + "'"

    def timestamp_literal(self, ts: pd.Timestamp) -> str:
        return f"CAST('{pd.Timestamp(ts).strftime('%Y-%m-%d %H:%M:%S')}' AS TIMESTAMP)"

    def text(self, expr: str) -> str:
        return f"NULLIF(TRIM(CAST({expr} AS {self.text_type})), '')"

    def to_double(self, expr: str, source_type: str = "") -> str:
        return f"CAST({expr} AS {self.double_type})"

    def to_bigint(self, expr: str, source_type: str = "") -> str:
        number = self.to_double(expr, source_type)
        return f"CASE WHEN {number} = FLOOR({number}) THEN CAST({number} AS BIGINT) END"

    def cast(self, expr: str, kind: str) -> str:
        """``expr`` as the warehouse type of a field kind (str, float, int, datetime, bool)."""
        types = {"str": self.text_type, "float": self.double_type, "int": "BIGINT",
                 "datetime": "TIMESTAMP", "bool": "BOOLEAN"}
        return f"CAST({expr} AS {types[kind]})"

    def parse_datetime(self, expr: str, formats: Sequence[str], zone: str, source_type: str = "") -> str:
        raise NotImplementedError

    def add_seconds(self, ts: str, seconds: str) -> str:
        raise NotImplementedError

    def add_duration(self, ts: str, amount: str, unit: str) -> str:
        return self.add_seconds(ts, f"({amount}) * {_SECONDS[unit]}")

    def add_days(self, ts: str, days: int | str) -> str:
        return self.add_seconds(ts, f"({days}) * 86400")

    def add_months(self, ts: str, months: str) -> str:
        raise NotImplementedError

    def months_between(self, start: str, end: str) -> str:
        raise NotImplementedError

    def day(self, ts: str) -> str:
        return f"CAST(CAST({ts} AS DATE) AS TIMESTAMP)"

    def greatest(self, *exprs: str) -> str:
        return f"GREATEST({', '.join(exprs)})"

    def least(self, *exprs: str) -> str:
        return f"LEAST({', '.join(exprs)})"

    def is_distinct(self, a: str, b: str) -> str:
        return f"{a} IS DISTINCT FROM {b}"

    def int_div(self, a: str, b: str) -> str:
        return f"CAST(FLOOR(CAST({a} AS {self.double_type}) / {b}) AS BIGINT)"

    def like_lower(self, expr: str, pattern: str) -> str:
        return f"LOWER({expr}) LIKE {self.literal(pattern.lower())} ESCAPE '\\'"

    def file_relation(self, path: str, *, file_format: str, delimiter: str | None, header: bool,
                      null_values: Iterable[str], varchar: Iterable[str] = (), all_varchar: bool = False) -> str:
        raise DialectError(f"files are read by DuckDB; this warehouse is {self.name}: "
                           "load the file into a table first, or use a DuckDB warehouse")

    def describe(self, conn: sa.Connection, relation: str) -> dict[str, str]:
        """Column name -> lower-cased type name ('' when the driver does not say)."""
        result = conn.execute(sa.text(f"SELECT * FROM {relation} AS probe WHERE 1 = 0"))
        return {name: "" for name in result.keys()}

    def session_setup(self, conn: sa.Connection) -> None:
        """Per-connection settings the compiled SQL relies on."""


class DuckDBDialect(Dialect):
    name = "duckdb"
    double_type = "DOUBLE"
    reads_files = True
    supports_formats = True
    supports_zones = True

    def to_double(self, expr: str, source_type: str = "") -> str:
        return f"TRY_CAST({expr} AS DOUBLE)"

    def timestamp_literal(self, ts: pd.Timestamp) -> str:
        return f"TIMESTAMP '{pd.Timestamp(ts).strftime('%Y-%m-%d %H:%M:%S.%f')}'"

    def parse_datetime(self, expr: str, formats: Sequence[str], zone: str, source_type: str = "") -> str:
        local = (lambda ts: ts) if zone == "UTC" else (lambda ts: f"timezone('UTC', timezone({self.literal(zone)}, {ts}))")
        if source_type.startswith("timestamp with time zone") or source_type == "timestamptz":
            return f"timezone('UTC', {expr})"
        if source_type.startswith(_TEMPORAL):
            return local(f"CAST({expr} AS TIMESTAMP)")
        text = self.text(expr)
        dated = [f for f in formats if is_date_only(f)]
        timed = [f for f in formats if not is_date_only(f)]
        fmt_list = lambda fs: "[" + ", ".join(self.literal(f) for f in fs) + "]"  # noqa: E731
        parts = []
        if timed:
            parts.append(local(f"try_strptime({text}, {fmt_list(timed)})"))
        if dated:
            parts.append(f"try_strptime({text}, {fmt_list(dated)})")
        offset = f"CASE WHEN regexp_matches({text}, '{_OFFSET_RE}') THEN timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ)) END"
        iso_date = f"CASE WHEN length({text}) <= 10 THEN TRY_CAST({text} AS TIMESTAMP) END"
        iso_time = local(f"TRY_CAST({text} AS TIMESTAMP)")
        return f"COALESCE({', '.join([*parts, offset, iso_date, iso_time])})"

    def add_seconds(self, ts: str, seconds: str) -> str:
        return f"({ts} + to_microseconds(CAST(ROUND(({seconds}) * 1000000) AS BIGINT)))"

    def add_days(self, ts: str, days: int | str) -> str:
        return f"({ts} + to_days(CAST({days} AS INTEGER)))"

    def add_months(self, ts: str, months: str) -> str:
        return f"({ts} + to_months(CAST({months} AS INTEGER)))"

    def months_between(self, start: str, end: str) -> str:
        return f"date_diff('month', {start}, {end})"

    def file_relation(self, path: str, *, file_format: str, delimiter: str | None, header: bool,
                      null_values: Iterable[str], varchar: Iterable[str] = (), all_varchar: bool = False) -> str:
        if file_format == "parquet":
            return f"read_parquet({self.literal(path)})"
        options = [f"header = {self.literal(header)}"]
        if delimiter:
            options.append(f"delim = {self.literal(delimiter)}")
        nulls = ["", *null_values]
        options.append("nullstr = [" + ", ".join(self.literal(v) for v in nulls) + "]")
        if all_varchar:
            options.append("all_varchar = true")
        elif varchar:
            options.append("types = {" + ", ".join(f"{self.literal(c)}: 'VARCHAR'" for c in varchar) + "}")
        return f"read_csv({self.literal(path)}, {', '.join(options)})"

    def describe(self, conn: sa.Connection, relation: str) -> dict[str, str]:
        rows = conn.exec_driver_sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        return {str(r[0]): str(r[1]).lower() for r in rows}

    def session_setup(self, conn: sa.Connection) -> None:
        conn.exec_driver_sql("SET TimeZone = 'UTC'")


class PostgresDialect(Dialect):
    name = "postgresql"
    text_type = "TEXT"
    supports_zones = True

    def run(self, conn: sa.Connection, sql: str) -> sa.CursorResult:
        # psycopg reads % as a placeholder even without parameters (LIKE patterns, modulo)
        return conn.exec_driver_sql(sql.replace("%", "%%"))

    def to_double(self, expr: str, source_type: str = "") -> str:
        text = self.text(expr)
        return f"CASE WHEN {text} ~ '^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$' THEN CAST({text} AS DOUBLE PRECISION) END"

    def parse_datetime(self, expr: str, formats: Sequence[str], zone: str, source_type: str = "") -> str:
        text = self.text(expr)
        naive = f"CAST({text} AS TIMESTAMP)"
        if zone != "UTC":
            naive = f"(({naive}) AT TIME ZONE {self.literal(zone)}) AT TIME ZONE 'UTC'"
        # a timestamptz column reads as text with an hours-only offset ('2026-06-01 10:43:00+00')
        return (f"CASE WHEN {text} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}([ T][0-9:.]+)?{_PG_OFFSET_RE}' "
                f"THEN CAST({text} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' "
                f"WHEN {text} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}([ T][0-9]{{2}}:[0-9]{{2}}(:[0-9]{{2}}([.][0-9]+)?)?)?$' "
                f"THEN {naive} END")

    def add_seconds(self, ts: str, seconds: str) -> str:
        return f"({ts} + ({seconds}) * INTERVAL '1 second')"

    def add_months(self, ts: str, months: str) -> str:
        return f"({ts} + ({months}) * INTERVAL '1 month')"

    def months_between(self, start: str, end: str) -> str:
        return (f"CAST((EXTRACT(YEAR FROM {end}) - EXTRACT(YEAR FROM {start})) * 12 "
                f"+ EXTRACT(MONTH FROM {end}) - EXTRACT(MONTH FROM {start}) AS BIGINT)")


class SQLiteDialect(Dialect):
    name = "sqlite"
    text_type = "TEXT"
    double_type = "REAL"

    def to_double(self, expr: str, source_type: str = "") -> str:
        text = self.text(expr)
        # SQLite casts any text to a number (garbage becomes 0): only number-shaped text counts.
        return (f"CASE WHEN {text} GLOB '*[0-9]*' AND {text} NOT GLOB '*[^0-9.eE+-]*' "
                f"THEN CAST({text} AS REAL) END")

    def to_bigint(self, expr: str, source_type: str = "") -> str:
        number = self.to_double(expr, source_type)
        return f"CASE WHEN {number} = CAST({number} AS INTEGER) THEN CAST({number} AS INTEGER) END"

    def cast(self, expr: str, kind: str) -> str:
        # SQLite keeps timestamps as ISO text and booleans as 0/1: only text and numbers are cast.
        types = {"str": "TEXT", "float": "REAL", "int": "INTEGER"}
        return f"CAST({expr} AS {types[kind]})" if kind in types else expr

    def timestamp_literal(self, ts: pd.Timestamp) -> str:
        return f"'{pd.Timestamp(ts).strftime('%Y-%m-%d %H:%M:%S')}'"

    def parse_datetime(self, expr: str, formats: Sequence[str], zone: str, source_type: str = "") -> str:
        text = self.text(expr)
        return f"datetime(REPLACE({text}, 'T', ' '))"

    def add_seconds(self, ts: str, seconds: str) -> str:
        return f"datetime({ts}, '+' || (({seconds})) || ' seconds')"

    def add_days(self, ts: str, days: int | str) -> str:
        return f"datetime({ts}, '+' || ({days}) || ' days')"

    def add_months(self, ts: str, months: str) -> str:
        # SQLite rolls 31 January + 1 month over to 3 March; clamp to the month's end as the others do
        moved = f"datetime({ts}, '+' || ({months}) || ' months')"
        return (f"CASE WHEN strftime('%d', {moved}) <> strftime('%d', {ts}) "
                f"THEN datetime({moved}, '-' || CAST(strftime('%d', {moved}) AS INTEGER) || ' days') ELSE {moved} END")

    def months_between(self, start: str, end: str) -> str:
        return (f"((CAST(strftime('%Y', {end}) AS INTEGER) - CAST(strftime('%Y', {start}) AS INTEGER)) * 12 "
                f"+ CAST(strftime('%m', {end}) AS INTEGER) - CAST(strftime('%m', {start}) AS INTEGER))")

    def day(self, ts: str) -> str:
        return f"datetime(date({ts}))"

    def greatest(self, *exprs: str) -> str:
        return f"MAX({', '.join(exprs)})"

    def least(self, *exprs: str) -> str:
        return f"MIN({', '.join(exprs)})"

    def is_distinct(self, a: str, b: str) -> str:
        return f"{a} IS NOT {b}"

    def int_div(self, a: str, b: str) -> str:
        return f"CAST(({a}) / {b} AS INTEGER)"


def dialect_for(engine: sa.Engine) -> Dialect:
    """The dialect of a SQLAlchemy engine (`DialectError` for warehouses the mapping cannot use)."""
    name = engine.dialect.name
    classes = {"duckdb": DuckDBDialect, "postgresql": PostgresDialect, "sqlite": SQLiteDialect}
    if name not in classes:
        raise DialectError(f"the mapping runs on DuckDB, PostgreSQL or SQLite warehouses, not {name}")
    return classes[name](engine.dialect.identifier_preparer)

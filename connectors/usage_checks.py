"""The usage source checks, computed in the warehouse: counts and a few examples, never the table.

``usage_daily`` is the one source that grows with accounts times days (120 M rows in the checks'
120 days at a million accounts), so its blocking checks run as SQL aggregates where it lives and
only counts and at most `models.quality.EXAMPLES` example rows per problem come back:

- `check_usage_contract`: the usage contract (`models.contracts.USAGE_DAILY`) as the GX suite of
  `models.quality` states it: an empty table, missing columns, values that cannot be read as the
  column's type, nulls, values outside their range, over-long ids, dates after the current
  instant, duplicate (account_id, date) keys. One scan computes every count; a failing rule
  fetches its examples (a filtered, ordered ``LIMIT``).
- `check_usage_consistency`: every account reference is a known account, and the usage rules of
  `models.plausibility` (usage days before the account's signup, usage after a churn with no
  return since).

Why not GX's SQL datasource on the warehouse's engine: GX 1.x (1.24 here) knows no DuckDB
dialect (`great_expectations.execution_engine.sqlalchemy_dialect.GXSqlDialect` lists PostgreSQL
and SQLite, not DuckDB), and through ``duckdb_engine`` every expectation fails with GX's own
``MetricResolutionError: list index out of range`` (the known failure of great_expectations issue
10738), on the embedded default warehouse. Where its SQL path does work (PostgreSQL, SQLite), the
reference check would be an ``IN`` list of every account id, the type check compares the
column's declared type (not whether each value reads as one), and the cross-table rules are not
expectations at all. So the same rules are written once as SQL here, with the wording, the
thresholds and the share arithmetic kept in `models.quality` and `models.plausibility`: a problem
found here reads exactly as the pandas suite would say it of the same row (a test holds the two
side by side).

The cross-table rules need the accounts' signups and the churned terms and returns: frames of
about one row per account, which the run already holds (the source assets pulled them, and the
checks must judge what the run read, from whichever CRM). They are put next to the usage as
temporary relations of the check's own connection (on DuckDB a registered view of the frame,
zero-copy; elsewhere a ``TEMPORARY`` table), so nothing is left behind and two runs never see
each other's. The warehouse's canonical tables are not used for this: the CRM the run read may
not be the warehouse.

The rows judged are the run's window: the `USAGE_CHECK_DAYS` days up to the newest day at or
before the run's instant, any row after the current day (impossible: the contract names it) and
any row without a readable date (the contract names it too); rows between the run's instant and
the current day are not this snapshot's and are counted in a note. Columns of the warehouse's own
types (what `Warehouse.build_usage_daily` writes) are compared as they are; any other column is
read with the dialect's safe casts (`connectors.mapping.dialect`), and a value that does not read
as its type is that column's one problem, as in the pandas suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa

from connectors.mapping.dialect import Dialect, dialect_for
from connectors.warehouse import USAGE_DAILY_TABLE, Warehouse
from models.contracts import USAGE_DAILY, Column, day_month_text
from models.plausibility import (
    Finding,
    Thresholds,
    after_churn_example,
    after_churn_finding,
    before_signup_example,
    before_signup_finding,
    churn_limits,
    signup_limits,
)
from models.quality import (
    EXAMPLES,
    MISSING_COLUMN,
    NULL_IN_REQUIRED,
    TABLE,
    Failure,
    QualityResult,
    allowed_problem,
    duplicate_problem,
    empty_problem,
    example_ids,
    example_values,
    future_problem,
    key_columns,
    length_problem,
    mistyped_problem,
    range_problem,
    unknown_account_problem,
)

#: Usage is validated over the most recent days before the run's instant: the window every
#: snapshot reads (the 90-day feature window, and a margin).
USAGE_CHECK_DAYS = 120

#: Warehouse column types (lower-cased prefixes) that already hold each kind.
_NATIVE = {
    "str": ("varchar", "text", "character varying", "string", "char"),
    "int": ("bigint", "integer", "int", "smallint", "hugeint", "ubigint", "uinteger", "tinyint"),
    "float": ("double", "real", "float", "numeric", "decimal"),
    "datetime": ("date", "timestamp"),
}
_DAY = pd.Timedelta(days=1)


@dataclass
class _Rule:
    """One expectation on the judged rows: its SQL predicate (a row that breaks it) and words."""

    expectation: str
    column: str
    problem: str
    bad: str
    value: str | None = None  # the expression an example shows (None: the row's key only)


@dataclass
class UsageRows:
    """The usage rows a run judges, as a SQL relation (``u``) with each present column readable as
    its contract's kind, and what was noted on the way."""

    warehouse: Warehouse
    now: pd.Timestamp
    wall: pd.Timestamp
    dialect: Dialect = field(init=False)
    types: dict[str, str] = field(init=False)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dialect = dialect_for(self.warehouse.engine)
        self.sqlite = self.dialect.name == "sqlite"
        with self.warehouse.engine.connect() as conn:
            self.types = self._describe(conn)
        self.columns = {c.name: c for c in USAGE_DAILY.columns if c.name in self.types}
        self.native = {name: self._is_native(col) for name, col in self.columns.items()}

    # -- SQL pieces ---------------------------------------------------------------------------

    def _describe(self, conn: sa.Connection) -> dict[str, str]:
        """Column name -> lower-cased declared type ('' when unknown)."""
        table = self.dialect.quote(USAGE_DAILY_TABLE)
        if self.dialect.name == "duckdb":
            return self.dialect.describe(conn, table)
        return {c["name"]: str(c["type"]).lower() for c in sa.inspect(conn).get_columns(USAGE_DAILY_TABLE)}

    def _is_native(self, col: Column) -> bool:
        if self.sqlite and col.kind != "str":  # SQLite's types are per value: always read them
            return False
        return self.types[col.name].startswith(_NATIVE[col.kind])

    def q(self, name: str) -> str:
        return self.dialect.quote(name)

    def raw(self, name: str) -> str:
        return self.q(f"{name}__raw")

    def _readable(self, col: Column) -> str:
        """The column read as its kind; NULL where a value does not read as it."""
        expr, source = self.q(col.name), self.types[col.name]
        if self.native[col.name]:
            return expr
        if col.kind == "str":
            return f"CAST({expr} AS {self.dialect.text_type})"
        if col.kind == "datetime":
            return self.dialect.parse_datetime(expr, (), "UTC", source)
        if col.kind == "float":
            return self.dialect.to_double(expr, source)
        if self.sqlite:
            return self.dialect.to_bigint(expr, source)
        number = self.dialect.to_double(expr, source)
        return f"CASE WHEN {number} = FLOOR({number}) AND ABS({number}) < 9.0e18 THEN CAST({number} AS BIGINT) END"

    def param(self, ts: pd.Timestamp) -> Any:
        """An instant as the dialect compares it with the readable date (SQLite: ISO text)."""
        return f"{ts:%Y-%m-%d %H:%M:%S}" if self.sqlite else ts.to_pydatetime()

    @property
    def relation(self) -> str:
        return self.relation_as("u")

    def relation_as(self, alias: str) -> str:
        """``(SELECT ...) AS <alias>``: the judged rows, every present column readable (and its
        raw value as ``<column>__raw`` where it is read through a cast)."""
        select = []
        for name, col in self.columns.items():
            select.append(f"{self._readable(col)} AS {self.q(name)}")
            if not self.native[name]:
                select.append(f"{self.q(name)} AS {self.raw(name)}")
        inner = f"SELECT {', '.join(select)} FROM {self.q(USAGE_DAILY_TABLE)}"
        if "date" not in self.columns:  # its own check says it is missing; every row is judged
            return f"({inner}) AS {alias}"
        return (f"(SELECT * FROM ({inner}) AS r WHERE (r.{self.q('date')} >= :start AND r.{self.q('date')} < :after_until) "
                f"OR r.{self.q('date')} >= :after_today OR r.{self.q('date')} IS NULL) AS {alias}")

    # -- the window ---------------------------------------------------------------------------

    def window(self, conn: sa.Connection) -> dict[str, Any]:
        """The bind parameters of `relation`, and the note on rows after the run's instant."""
        until, today = self.now.normalize(), self.wall.normalize()
        params = {"after_until": self.param(until + _DAY), "after_today": self.param(today + _DAY),
                  "now": self.param(self.now), "wall": self.param(self.wall)}
        if "date" not in self.columns:
            return params
        day = self.q("date")
        readable = f"(SELECT {self._readable(self.columns['date'])} AS {day} FROM {self.q(USAGE_DAILY_TABLE)}) AS r"
        last = conn.execute(sa.text(f"SELECT MAX({day}) FROM {readable} WHERE {day} < :after_until"),
                            params).scalar()
        start = until if last is None else pd.Timestamp(last).normalize() - pd.Timedelta(days=USAGE_CHECK_DAYS - 1)
        params["start"] = self.param(start)
        if self.now < self.wall:
            later = conn.execute(sa.text(f"SELECT COUNT(*) FROM {readable} WHERE {day} >= :after_until "
                                         f"AND {day} < :after_today"), params).scalar()
            if later:
                self.notes.append(f"usage_daily.date: {int(later)} row(s) after the run's instant "
                                  f"({self.now:%Y-%m-%d %H:%M} UTC), not this snapshot's: ignored")
        return params

    # -- examples -----------------------------------------------------------------------------

    def keys(self, mistyped: set[str]) -> list[str]:
        """The primary key the examples name, when every one of its columns reads as its kind."""
        keys = [c for c in USAGE_DAILY.primary_key if c in self.columns and c not in mistyped]
        return keys if len(keys) == len(USAGE_DAILY.primary_key) else []

    def shown(self, name: str, value: Any) -> Any:
        """A fetched value as the pandas suite would hold it (a readable date as a timestamp)."""
        if value is not None and name in self.columns and self.columns[name].kind == "datetime":
            return pd.Timestamp(value)
        return value


def _fetch(conn: sa.Connection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in conn.execute(sa.text(sql), params)]


def _count(predicate: str) -> str:
    return f"SUM(CASE WHEN {predicate} THEN 1 ELSE 0 END)"


def _rules(rows: UsageRows) -> list[_Rule]:
    """The value rules of the usage contract on the present columns, in the suite's order (a
    column that does not read as its type gets its type rule; the others are dropped for it
    once its values are known not to read)."""
    rules: list[_Rule] = []
    for name, col in rows.columns.items():
        c = rows.q(name)
        if not rows.native[name]:
            rules.append(_Rule("expect_column_values_to_be_in_type_list", name, "", f"{rows.raw(name)} IS NOT NULL AND {c} IS NULL",
                               rows.raw(name)))
        if not col.nullable:
            rules.append(_Rule("expect_column_values_to_not_be_null", name, NULL_IN_REQUIRED, f"{c} IS NULL"))
        if col.allowed:
            allowed = ", ".join(rows.dialect.literal(v) for v in col.allowed)
            rules.append(_Rule("expect_column_values_to_be_in_set", name, allowed_problem(col), f"{c} NOT IN ({allowed})", c))
        if col.numeric and (col.min_value is not None or col.max_value is not None):
            outside = [f"{c} < {col.min_value!r}" if col.min_value is not None else "",
                       f"{c} > {col.max_value!r}" if col.max_value is not None else ""]
            rules.append(_Rule("expect_column_values_to_be_between", name, range_problem(col),
                               " OR ".join(x for x in outside if x), c))
        if col.max_length is not None:
            rules.append(_Rule("expect_column_value_lengths_to_be_between", name, length_problem(col),
                               f"LENGTH({c}) > {int(col.max_length)}", c))
        if col.kind == "datetime" and not col.may_be_future:
            rules.append(_Rule("expect_column_values_to_be_between", name, future_problem(rows.wall), f"{c} > :wall", c))
    return rules


def check_usage_contract(warehouse: Warehouse, now: pd.Timestamp, wall: pd.Timestamp) -> QualityResult:
    """The usage contract on the rows a run at `now` judges (the current instant `wall`), in the
    warehouse: every problem with its count and examples, as `models.quality.validate_frame`
    reports them."""
    rows = UsageRows(warehouse, now, wall)
    contract = USAGE_DAILY
    failures: list[Failure] = []
    with warehouse.engine.connect() as conn:
        params = rows.window(conn)
        rules = _rules(rows)
        counts = conn.execute(sa.text(
            f"SELECT COUNT(*) AS n{''.join(f', {_count(r.bad)} AS bad_{i}' for i, r in enumerate(rules))} FROM {rows.relation}"),
            params).one()
        total = int(counts[0])
        if total == 0 and not contract.may_be_empty:
            return QualityResult(contract.name, 0, 1, [Failure("expect_table_row_count_to_be_between", TABLE, 0, [],
                                                               problem=empty_problem(contract), table=contract.name)],
                                 notes=rows.notes)
        bad = {i: int(counts[i + 1] or 0) for i in range(len(rules))}
        mistyped = {r.column for i, r in enumerate(rules) if r.expectation.endswith("in_type_list") and bad[i]}
        keys = rows.keys(mistyped)
        order = ", ".join(rows.q(k) for k in keys)
        evaluated = 0
        for col in contract.columns:  # in the suite's order: existence, then the column's rules
            evaluated += 1
            if col.name not in rows.columns:
                failures.append(Failure("expect_column_to_exist", col.name, 0, [], MISSING_COLUMN, problem=MISSING_COLUMN,
                                        table=contract.name, key_columns=key_columns(keys)))
                continue
            evaluated += 1 if rows.native[col.name] else 0  # the type of a native column is its declared one
            for i, rule in enumerate(rules):
                if rule.column != col.name or (col.name in mistyped and not rule.expectation.endswith("in_type_list")):
                    continue
                evaluated += 1
                if bad[i]:
                    failures.append(_failure(conn, rows, rule, bad[i], keys, order, params))
        pk = [c for c in contract.primary_key if c in rows.columns]
        if pk and len(pk) == len(contract.primary_key):
            evaluated += 1
            duplicate = _duplicates(conn, rows, pk, keys, params)
            if duplicate is not None:
                failures.append(duplicate)
    return QualityResult(contract.name, total, evaluated, failures, notes=rows.notes)


def _failure(conn: sa.Connection, rows: UsageRows, rule: _Rule, count: int, keys: list[str], order: str,
             params: dict[str, Any]) -> Failure:
    """One failing rule with its examples: the first rows breaking it, by key."""
    shown = [*(rows.q(k) for k in keys), *([f"{rule.value} AS example_value"] if rule.value else [])]
    by = order or (rule.value or "1")
    found = _fetch(conn, f"SELECT {', '.join(shown) or '1 AS one'} FROM {rows.relation} WHERE {rule.bad} "
                         f"ORDER BY {by} LIMIT {EXAMPLES}", params)
    values = [row.get("example_value") for row in found] if rule.value else []
    problem = rule.problem
    if rule.expectation.endswith("in_type_list"):
        kind = rows.columns[rule.column].kind
        ambiguous = (day_month_text(pd.Series(values, dtype=object)) if kind == "datetime"
                     else pd.Series(False, index=range(len(values))))
        problem = mistyped_problem(kind, unreadable=bool((~ambiguous).any()) or count > len(values),
                                   ambiguous=bool(ambiguous.any()))
    elif rule.value:
        values = [rows.shown(rule.column, v) for v in values]
    if rule.expectation == "expect_column_values_to_not_be_null":
        values = []  # the value is null: the row's key is the example
    ids = example_ids([{k: rows.shown(k, row[k]) for k in keys} for row in found], keys) if keys else []
    return Failure(rule.expectation, rule.column, count, example_values(values), ids=ids, problem=problem,
                   table=USAGE_DAILY.name, key_columns=key_columns(keys))


def _duplicates(conn: sa.Connection, rows: UsageRows, pk: list[str], keys: list[str],
                params: dict[str, Any]) -> Failure | None:
    """Rows sharing a primary key (every one of them counted, as GX counts them), with the
    first duplicated keys as examples."""
    cols = ", ".join(rows.q(c) for c in pk)
    groups = (f"SELECT {cols}, COUNT(*) AS n FROM {rows.relation} "
              f"WHERE NOT ({' AND '.join(f'{rows.q(c)} IS NULL' for c in pk)}) GROUP BY {cols} HAVING COUNT(*) > 1")
    count = int(conn.execute(sa.text(f"SELECT COALESCE(SUM(n), 0) FROM ({groups}) AS d"), params).scalar() or 0)
    if not count:
        return None
    found = _fetch(conn, f"SELECT {cols} FROM ({groups}) AS d ORDER BY {cols} LIMIT {EXAMPLES}", params)
    shown = [{c: rows.shown(c, row[c]) for c in pk} for row in found]
    return Failure("expect_compound_columns_to_be_unique", ",".join(pk), count, example_values(shown),
                   ids=example_ids(shown, keys) if keys else [], problem=duplicate_problem(pk), table=USAGE_DAILY.name,
                   key_columns=key_columns(keys))


# --------------------------------------------------------------------------- consistency


@dataclass
class UsageConsistency:
    """What `check_usage_consistency` found: the account references (as a `QualityResult`) and
    the two usage rules' `Finding`s."""

    references: QualityResult
    before_signup: Finding
    after_churn: Finding


@contextmanager
def _relations(warehouse: Warehouse, conn: sa.Connection, frames: dict[str, pd.DataFrame],
               sqlite: bool) -> Iterator[None]:
    """`frames` as relations of `conn` only: DuckDB views of the frames (zero-copy), else
    temporary tables (gone with the connection)."""
    if warehouse.dialect == "duckdb":
        raw = conn.connection.driver_connection
        for name, frame in frames.items():
            raw.register(name, frame)
        try:
            yield
        finally:
            for name in frames:
                raw.unregister(name)
        return
    for name, frame in frames.items():
        columns = [sa.Column(c, sa.Text if (sqlite or not pd.api.types.is_datetime64_any_dtype(frame[c])) else sa.DateTime)
                   for c in frame.columns]
        table = sa.Table(name, sa.MetaData(), *columns, prefixes=["TEMPORARY"])
        table.create(conn)
        records = _records(frame, sqlite)
        if records:
            conn.execute(table.insert(), records)
    yield


def _records(frame: pd.DataFrame, sqlite: bool) -> list[dict[str, Any]]:
    out = frame.astype(object).where(frame.notna(), None)
    for c in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[c]):
            out[c] = [None if v is None else (f"{pd.Timestamp(v):%Y-%m-%d %H:%M:%S}" if sqlite else pd.Timestamp(v).to_pydatetime())
                      for v in out[c]]
    return out.to_dict("records")


def check_usage_consistency(warehouse: Warehouse, now: pd.Timestamp, wall: pd.Timestamp, accounts: pd.DataFrame,
                            renewals: pd.DataFrame, thresholds: Thresholds = Thresholds(), *,
                            reactivations: pd.DataFrame | None = None) -> UsageConsistency:
    """The usage rows a run at `now` judges (dated at or before it, or not dated) against the
    accounts (`accounts`: every account reference known; no usage before a signup beyond the
    grace days) and the churns (`renewals`, closed at or before `now`, and the returns
    `reactivations`: no usage after a churn beyond the grace days, with no return since), in the
    warehouse."""
    rows = UsageRows(warehouse, now, wall)
    q = rows.q
    signups = signup_limits(accounts, thresholds)
    churns, returns = churn_limits(renewals, thresholds, reactivations=reactivations)
    frames = {"rescue_check_signups": signups,
              "rescue_check_churns": churns[["account_id", "renewal_id", "churn_start", "churn_end", "late_after"]],
              "rescue_check_returns": returns[["account_id", "reactivated_at"]]}
    has_ids, has_dates = "account_id" in rows.columns, "date" in rows.columns
    with warehouse.engine.connect() as conn, _relations(warehouse, conn, frames, rows.sqlite):
        params = rows.window(conn)
        judged = f"(SELECT * FROM {rows.relation} WHERE {q('date')} IS NULL OR {q('date')} <= :now) AS j" if has_dates \
            else rows.relation_as("j")
        if not has_ids:
            total = int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {judged}"), params).scalar())
            references = QualityResult(USAGE_DAILY.name, total, 0, notes=[
                "account_id references not checked: the column is missing (its own check says so)"])
            empty = (before_signup_finding("usage_daily", "date", 0, 0, thresholds),
                     after_churn_finding(0, 0, thresholds))
            return UsageConsistency(references, *empty)
        day = f"j.{q('date')}" if has_dates else "NULL"
        ids = q("account_id")
        late = (f"c.account_id = j.{q('account_id')} AND {day} > c.late_after AND NOT EXISTS ("
                "SELECT 1 FROM rescue_check_returns AS r WHERE r.account_id = c.account_id "
                f"AND r.reactivated_at > c.churn_start AND r.reactivated_at <= {day})")
        counts = conn.execute(sa.text(
            f"SELECT COUNT(*), "
            f"{_count(f'j.{ids} IS NOT NULL AND s.account_id IS NULL')}, "
            f"{_count(f's.signup IS NOT NULL AND {day} IS NOT NULL')}, "
            f"{_count(f'{day} < s.earliest')}, "
            f"{_count(f'{day} IS NOT NULL')} "
            f"FROM {judged} LEFT JOIN rescue_check_signups AS s ON s.account_id = j.{q('account_id')}"), params).one()
        total, unknown, signup_judged, early, dated = (int(x or 0) for x in counts)
        # only the rows of churned accounts after their earliest limit can be late: the correlated
        # test runs on those alone (on every row it would cost the warehouse a hash of them all)
        candidates = (f"(SELECT * FROM {judged} WHERE {day} > (SELECT MIN(late_after) FROM rescue_check_churns) "
                      f"AND j.{ids} IN (SELECT account_id FROM rescue_check_churns)) AS j")
        after = int(conn.execute(sa.text(
            f"SELECT COUNT(*) FROM {candidates} WHERE EXISTS (SELECT 1 FROM rescue_check_churns AS c WHERE {late})"),
            params).scalar() or 0)
        references = _references(conn, judged, q, total, unknown, len(signups), params)
        early_examples = [] if not early else [
            before_signup_example(f"account_id {row['account_id']}", rows.shown("date", row["day"]), row["signup"])
            for row in _fetch(conn, f"SELECT j.{q('account_id')} AS account_id, {day} AS day, s.signup AS signup "
                                    f"FROM {judged} JOIN rescue_check_signups AS s ON s.account_id = j.{q('account_id')} "
                                    f"WHERE {day} < s.earliest ORDER BY {day}, j.{q('account_id')} LIMIT {EXAMPLES}", params)]
        after_examples: list[str] = []
        if after:
            seen: set[tuple[Any, Any]] = set()
            for row in _fetch(conn, f"SELECT j.{q('account_id')} AS account_id, {day} AS day, c.churn_end AS churn_end, "
                                    f"c.renewal_id AS renewal_id FROM {judged} JOIN rescue_check_churns AS c ON {late} "
                                    f"ORDER BY {day}, j.{q('account_id')}, c.churn_end, c.renewal_id "
                                    f"LIMIT {EXAMPLES * 20}", params):
                if (row["account_id"], row["day"]) not in seen and len(after_examples) < EXAMPLES:
                    seen.add((row["account_id"], row["day"]))
                    after_examples.append(after_churn_example(row["account_id"], rows.shown("date", row["day"]),
                                                              row["churn_end"], row["renewal_id"]))
    references.notes += rows.notes
    return UsageConsistency(references,
                            before_signup_finding("usage_daily", "date", early, signup_judged, thresholds, early_examples),
                            after_churn_finding(after, dated, thresholds, after_examples))


def _references(conn: sa.Connection, judged: str, q: Any, total: int, unknown: int, known: int,
                params: dict[str, Any]) -> QualityResult:
    """The account references as the reference-only suite reports them (values as examples)."""
    ref = USAGE_DAILY.references[0]
    if not known:
        notes = [f"{ref.column} references not checked: {ref.table} has no {ref.target} (its own check says why)"] if total else []
        return QualityResult(USAGE_DAILY.name, total, 0, notes=notes)
    if not unknown:
        return QualityResult(USAGE_DAILY.name, total, 1)
    ids = q("account_id")
    found = _fetch(conn, f"SELECT DISTINCT j.{ids} AS account_id FROM {judged} LEFT JOIN rescue_check_signups AS s "
                         f"ON s.account_id = j.{ids} WHERE j.{ids} IS NOT NULL AND s.account_id IS NULL "
                         f"ORDER BY j.{ids} LIMIT {EXAMPLES}", params)
    failure = Failure("expect_column_values_to_be_in_set", ref.column, unknown,
                      example_values([row["account_id"] for row in found]), problem=unknown_account_problem(ref),
                      table=USAGE_DAILY.name)
    return QualityResult(USAGE_DAILY.name, total, 1, [failure])


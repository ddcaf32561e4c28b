"""Great Expectations suites for the source tables, generated from the data contracts.

One suite per contract (GX 1.x, ephemeral context, in code, offline, progress bars off). A
source table that is empty fails on that alone ("source table tickets is empty"), before any
other expectation, so nothing downstream reads it and no cross-table check blames another table
for it. Otherwise the suite checks, for every column of the contract: that it exists, its type,
non-null where the contract says so, allowed values, the declared range of every number (which
also refuses infinities), the declared length of ids; uniqueness of the primary key; that every
account reference is a known account (skipped, with a note, when the accounts have no ids: their
own check says why); and that no timestamp is impossible (after the current time, or a
response/solve before the ticket was created; a timestamp after the run's instant but not after
the current time is not this snapshot's data and is only noted, so a replay of an old snapshot
reads today's tables without failing on them). Text dates whose day/month order is ambiguous
are refused as unreadable, with that reason (`models.contracts.conform`). `validate_frame` runs a suite and returns the failures, each with
a one-line message naming the table, the column, the number of bad rows and an example row's id
and value, ready for asset-check metadata.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from models.clock import utc_timestamp, utcnow
from models.contracts import BOOLEAN_TEXT, Column, Reference, TableContract, day_month_text
from models.text import preview

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

_TYPE_LISTS = {
    "str": ["string", "str", "StringDtype", "object"],
    "float": ["float64", "Float64", "float32", "int64", "Int64", "Int64Dtype"],
    "int": ["int64", "Int64", "int32", "Int32", "Int64Dtype"],  # GX names pandas' nullable ints Int64Dtype
    "datetime": ["datetime64[ns]", "datetime64[us]", "datetime64[ms]", "datetime64[s]"],
    "bool": ["bool", "boolean"],
}

#: (later column, earlier column) pairs that must be ordered when both are present.
_ORDERED_PAIRS = (
    ("first_response_at", "created_at"),
    ("solved_at", "created_at"),
)

#: The column of a failure about the whole table (it is empty).
TABLE = "(table)"
#: Examples kept per failure, and the characters an example value is shown with.
EXAMPLES, EXAMPLE_CHARS = 10, 60


@dataclass
class Failure:
    expectation: str
    column: str
    unexpected_count: int
    examples: list[Any]
    detail: str = ""
    #: The example rows' keys ("ticket_id T00001"), aligned with `examples` when known.
    ids: list[str] = field(default_factory=list)
    #: What is wrong, in words ("outside its range (0 to 10,000,000,000)").
    problem: str = ""
    table: str = ""
    #: The columns `ids` name (the table's primary key).
    key_columns: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        """One line: table, column, how many rows, what is wrong and the first example."""
        if self.column == TABLE:
            return self.problem
        where = f"{self.table}.{self.column}" if self.table else self.column
        if self.expectation == "expect_column_to_exist":
            return f"{where}: {self.problem}"
        head = f"{where}: {self.unexpected_count} row(s) {self.problem}"
        if self.detail and self.expectation == "expect_column_values_to_be_in_type_list" and not self.examples:
            head += f" ({self.detail})"
        if not self.examples and not self.ids:
            return head
        example = self.ids[0] if self.ids else ""
        if self.examples and not self.keyed:
            value = preview(self.examples[0], EXAMPLE_CHARS)
            example = f"{example} = {value}" if example else value
        return f"{head}, e.g. {example}"

    @property
    def keyed(self) -> bool:
        """The failing column is the row's key: its id is the example."""
        return bool(self.ids) and self.column in self.key_columns

    def as_row(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation,
            "column": self.column,
            "bad_rows": self.unexpected_count,
            "examples": ", ".join(preview(x, EXAMPLE_CHARS) for x in self.examples[:5]),
            "detail": self.detail,
            "message": self.message,
        }


@dataclass
class QualityResult:
    table: str
    rows: int
    evaluated: int
    failures: list[Failure] = field(default_factory=list)
    #: What was not checked and why (e.g. references to a table without ids).
    notes: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        notes = "".join(f"; {n}" for n in self.notes)
        if self.success:
            return f"{self.table}: {self.evaluated} expectations passed on {self.rows} rows{notes}"
        if [f.column for f in self.failures] == [TABLE]:
            return self.failures[0].message + notes
        parts = [f.message for f in self.failures]
        return f"{self.table}: {len(self.failures)} expectation(s) failed: " + "; ".join(parts) + notes

    def markdown(self) -> str:
        if self.success:
            return self.summary()
        lines = ["| column | problem | bad rows | examples |", "|---|---|---|---|"]
        for f in self.failures:
            if f.ids and (f.keyed or not f.examples):
                shown = f.ids[:5]
            else:
                shown = [f"{i} = {preview(x, EXAMPLE_CHARS)}" if i else preview(x, EXAMPLE_CHARS)
                         for i, x in zip(f.ids or [""] * len(f.examples), f.examples[:5])]
            ex = ", ".join(shown).replace("|", "/")
            lines.append(f"| {f.column} | {f.problem.replace('|', '/')} | {f.unexpected_count} | {ex} |")
        lines += [f"\n{n}" for n in self.notes]
        return "\n".join(lines)


# The problem of each expectation, in words: the GX suite's and the warehouse-side usage check's
# (`connectors.usage_checks`), so both say the same thing about the same row.

MISSING_COLUMN = "column is missing"
NULL_IN_REQUIRED = "null in a required column"


def empty_problem(contract: TableContract) -> str:
    return f"source table {contract.name} is empty"


def type_problem(kind: str) -> str:
    return f"not readable as {kind}"


def allowed_problem(col: Column) -> str:
    return f"not one of {', '.join(col.allowed)}"


def range_problem(col: Column) -> str:
    return f"outside its range ({col.range_text()})"


def length_problem(col: Column) -> str:
    return f"longer than {col.max_length} characters (the longest {col.name} the rescue queue stores)"


def future_problem(now: pd.Timestamp) -> str:
    return f"in the future (after {now:%Y-%m-%d %H:%M} UTC, the current time)"


def duplicate_problem(pk: list[str] | tuple[str, ...]) -> str:
    return f"with a duplicate {' + '.join(pk)}"


def unknown_account_problem(ref: Reference) -> str:
    return f"not a known account (no such {ref.table}.{ref.target})"


def mistyped_problem(kind: str, unreadable: bool, ambiguous: bool) -> str:
    """A column's values that cannot be read as `kind`: unreadable ones, text dates with an
    ambiguous day/month order, or both."""
    if ambiguous:
        return AMBIGUOUS_DATES if not unreadable else f"not readable as datetime, or {AMBIGUOUS_DATES}"
    return type_problem(kind)


def key_columns(keys: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The columns a failure's example ids name, and their joined form (the column of a
    compound-key failure)."""
    return tuple(keys) + ((",".join(keys),) if len(keys) > 1 else ())


def example_ids(rows: list[dict[str, Any]], keys: list[str] | tuple[str, ...]) -> list[str]:
    """Example rows' keys as the failures show them ("account_id A1, date 2024-01-02 00:00:00")."""
    return [_key_text(row, list(keys)) for row in rows][:EXAMPLES]


def example_values(values: list[Any]) -> list[Any]:
    """Example values as the failures show them (instants to the second, numpy scalars plain)."""
    return [_plain(v) for v in values][:EXAMPLES]



@lru_cache(maxsize=1)
def _context():
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    # GX fingerprints every pandas batch under HASH_THRESHOLD bytes (1 GB) by hashing all of it, a
    # batch marker nothing here reads: 2.6 s a pass per million tickets, and a validation gets its
    # batch twice. Off (a test holds the knob, so an upgrade that drops it is seen).
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0
    ctx = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except ImportError:  # pragma: no cover - older GX layouts
        pass
    return ctx


#: The problem of a text date column whose values have no day/month order of their own.
AMBIGUOUS_DATES = ("with an ambiguous day/month order (day first or month first): declare the column's "
                   "date format or day_first")


def _mistyped(df: pd.DataFrame, contract: TableContract,
              problems: dict[str, str] | None = None) -> dict[str, pd.Series]:
    """Columns whose dtype is not the contract's, with the values that cannot be read as it
    (for an int column: also fractions and infinities; for a datetime column: also day/month
    text dates, which `models.contracts.conform` refuses without a declared order). `problems`
    receives the words for a column whose bad values are not simply unreadable."""
    bad: dict[str, pd.Series] = {}
    for col in contract.columns:
        if col.name not in df.columns or str(df[col.name].dtype) in _TYPE_LISTS[col.kind]:
            continue
        raw = df[col.name]
        if col.kind in ("float", "int"):
            parsed = pd.to_numeric(raw, errors="coerce")
            unreadable = parsed.isna() & raw.notna()
            if col.kind == "int":
                number = parsed.to_numpy(dtype="float64", na_value=np.nan)
                with np.errstate(invalid="ignore"):
                    unreadable |= pd.Series(~np.isnan(number) & ~(np.isfinite(number) & (np.mod(number, 1) == 0)),
                                            index=raw.index)
        elif col.kind == "datetime":
            parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
            unreadable = parsed.isna() & raw.notna()
            ambiguous = day_month_text(raw) & ~unreadable
            if ambiguous.any() and problems is not None:
                problems[col.name] = mistyped_problem(col.kind, bool(unreadable.any()), True)
            unreadable |= ambiguous
        elif col.kind == "bool":
            text = raw.astype("string").str.strip().str.lower()
            unreadable = ~text.isin(list(BOOLEAN_TEXT)).fillna(False) & raw.notna()
        else:
            unreadable = pd.Series(False, index=raw.index)
        bad[col.name] = raw[unreadable]
    return bad


def _problem(text: str) -> dict[str, str]:
    return {"problem": text}


def build_suite(
    contract: TableContract,
    frame_columns: list[str],
    *,
    now: pd.Timestamp,
    mistyped: set[str] = frozenset(),
    rows: int | None = None,
):
    """The expectation suite for ``contract``; each expectation carries its problem in words
    (`meta["problem"]`).

    An empty table that must not be (``rows == 0``) gets only the row-count check. Columns that
    are missing get only the existence check; columns of the wrong type get only the type check
    (value checks on them would be meaningless). Account references are not in the suite: they
    are `unknown_references`, run beside it (see there). ``now`` is
    the instant past which a timestamp is in the future (`validate_frame` passes the current
    instant, not the run's).
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=f"{contract.name}_contract")
    if rows == 0 and not contract.may_be_empty:
        suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(
            min_value=1, meta=_problem(empty_problem(contract))))
        return suite
    present = set(frame_columns)
    for col in contract.columns:
        suite.add_expectation(gxe.ExpectColumnToExist(column=col.name, meta=_problem(MISSING_COLUMN)))
        if col.name not in present:
            continue
        suite.add_expectation(gxe.ExpectColumnValuesToBeInTypeList(
            column=col.name, type_list=_TYPE_LISTS[col.kind], meta=_problem(type_problem(col.kind))))
        if col.name in mistyped:
            continue
        if not col.nullable:
            suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(
                column=col.name, meta=_problem(NULL_IN_REQUIRED)))
        if col.allowed:
            suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(
                column=col.name, value_set=list(col.allowed), meta=_problem(allowed_problem(col))))
        if col.numeric and (col.min_value is not None or col.max_value is not None):
            suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(
                column=col.name, min_value=col.min_value, max_value=col.max_value,
                meta=_problem(range_problem(col))))
        if col.max_length is not None:
            suite.add_expectation(gxe.ExpectColumnValueLengthsToBeBetween(
                column=col.name, max_value=col.max_length,
                meta=_problem(length_problem(col))))
        if col.kind == "datetime" and not col.may_be_future:
            suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(
                column=col.name, max_value=now.to_pydatetime(),
                meta=_problem(future_problem(now))))
    pk = [c for c in contract.primary_key if c in present]
    if pk and len(pk) == len(contract.primary_key):
        duplicate = _problem(duplicate_problem(pk))
        if len(pk) == 1:
            suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column=pk[0], meta=duplicate))
        else:
            suite.add_expectation(gxe.ExpectCompoundColumnsToBeUnique(column_list=pk, meta=duplicate))
    for later, earlier in _ORDERED_PAIRS:
        if {later, earlier} <= present - set(mistyped):
            suite.add_expectation(
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=later, column_B=earlier, or_equal=True, ignore_row_if="either_value_is_missing",
                    meta=_problem(f"with {later} before {earlier}"),
                )
            )
    return suite


#: The expectation an unknown account reference fails, as the results name it.
REFERENCE_EXPECTATION = "expect_column_values_to_be_in_set"


def unknown_references(df: pd.DataFrame, contract: TableContract, known: pd.Index, keys: list[str],
                       mistyped: set[str] | frozenset[str] = frozenset()) -> tuple[int, list[Failure]]:
    """Every account reference of ``df`` that is not a known account: (references checked, the
    failures), each failure as GX's ``expect_column_values_to_be_in_set`` would report it (nulls
    are not references; the count, the first examples and their rows' keys).

    Run beside the suite rather than in it: an in-set expectation carries its whole value set in
    its configuration, which GX 1.x copies on every access (pydantic), so with 100,000 known
    accounts it cost 98 of the 118 s of the tickets' suite. This is the same rule as one
    vectorized ``isin`` over a hashed index of the known ids."""
    failures: list[Failure] = []
    checked = 0
    for ref in contract.references:
        if ref.column not in df.columns or ref.column in mistyped:
            continue
        checked += 1
        values = df[ref.column]
        present = values.notna()
        unknown = present & ~values.astype("string").isin(known)
        count = int(unknown.sum())
        if not count:
            continue
        bad = df.loc[unknown]
        ids = [_key_text(row, keys) for row in bad[keys].head(EXAMPLES).to_dict("records")] if keys else []
        failures.append(Failure(REFERENCE_EXPECTATION, ref.column, count,
                                [_plain(v) for v in bad[ref.column].head(EXAMPLES)], ids=ids,
                                problem=unknown_account_problem(ref), table=contract.name,
                                key_columns=key_columns(keys)))
    return checked, failures


def _key_text(row: dict[str, Any], keys: list[str]) -> str:
    """``account_id 'A1', date '2024-01-02 00:00:00'``; a missing key value reads ``null``."""
    return ", ".join(f"{k} {_key_value(row.get(k))}" for k in keys if k in row)


def _key_value(value: Any) -> str:
    if value is None or (not isinstance(value, (list, tuple, dict)) and bool(pd.isna(value))):
        return "null"
    return preview(_plain(value), EXAMPLE_CHARS)


def _plain(value: Any) -> Any:
    """A metadata-ready example: numbers and strings as they are, instants to the second, pairs
    and compound keys joined."""
    if isinstance(value, (pd.Timestamp, np.datetime64)) or hasattr(value, "isoformat"):
        stamp = pd.Timestamp(value)
        return "NaT" if pd.isna(stamp) else stamp.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (int, float, str)) or value is None:
        return value
    if isinstance(value, dict):
        return ", ".join(str(_plain(v)) for v in value.values())
    if isinstance(value, (tuple, list)):
        return " / ".join(str(_plain(v)) for v in value)
    return str(value)


def _failure_from(result, table: str, keys: list[str]) -> Failure:
    cfg = result.expectation_config
    kwargs = cfg.kwargs
    column = kwargs.get("column") or ",".join(
        x for x in (kwargs.get("column_A"), kwargs.get("column_B")) if x
    ) or ",".join(kwargs.get("column_list", []) or [])
    res = result.result or {}
    examples = list(res.get("partial_unexpected_list") or [])
    count = res.get("unexpected_count")
    detail = ""
    problem = str((cfg.meta or {}).get("problem", "")) or cfg.type
    if cfg.type == "expect_table_row_count_to_be_between":
        column, count = TABLE, 0
    elif cfg.type == "expect_column_to_exist":
        count = count or 0
        detail = "column is missing"
    elif cfg.type == "expect_column_values_to_be_in_type_list":
        detail = f"observed type {res.get('observed_value')}, expected one of {kwargs.get('type_list')}"
        count = count if count is not None else 0
    exc = result.exception_info or {}
    if isinstance(exc, dict) and exc.get("raised_exception"):
        detail = (detail + " " + str(exc.get("exception_message", ""))).strip()
    if cfg.type == "expect_column_values_to_not_be_null":
        examples = []  # the value is null: the row's key is the example
    ids = [_key_text(row, keys) for row in (res.get("partial_unexpected_index_list") or [])
           if isinstance(row, dict)][:EXAMPLES]
    # Timestamps and numpy scalars become plain strings/numbers for metadata.
    examples = [_plain(x) for x in examples][:EXAMPLES]
    if cfg.type == "expect_compound_columns_to_be_unique":
        column = ",".join(keys) or column
    return Failure(cfg.type, column or "", int(count or 0), examples, detail, ids=ids, problem=problem, table=table,
                   key_columns=key_columns(keys))


def _after_the_run(df: pd.DataFrame, contract: TableContract, now: pd.Timestamp, wall: pd.Timestamp) -> list[str]:
    """Notes on the rows dated after the run's instant but not after the current instant: not
    this snapshot's data, so not faults (a replay of an old snapshot reads today's tables)."""
    notes: list[str] = []
    if now >= wall:
        return notes
    for col in contract.columns:
        if col.kind != "datetime" or col.may_be_future or col.name not in df.columns:
            continue
        if not pd.api.types.is_datetime64_any_dtype(df[col.name]):
            continue
        later = int(((df[col.name] > now) & (df[col.name] <= wall)).sum())
        if later:
            notes.append(f"{contract.name}.{col.name}: {later} row(s) after the run's instant "
                         f"({now:%Y-%m-%d %H:%M} UTC), not this snapshot's: ignored")
    return notes


def validate_frame(
    df: pd.DataFrame,
    contract: TableContract,
    *,
    known_accounts: pd.Series | list[str] | None = None,
    now: pd.Timestamp | None = None,
    wall_clock: pd.Timestamp | None = None,
) -> QualityResult:
    """Run the contract's suite on ``df`` and return every failure.

    ``known_accounts`` are the account ids references must point to (None: references are not
    checked; empty: not checked either, with a note, since the accounts' own check fails).
    ``now`` is the run's instant (default: the current one) and ``wall_clock`` the current
    instant (default: the real one): a timestamp after ``wall_clock`` is impossible ("in the
    future"); one after ``now`` only is not this snapshot's and is ignored, with a note."""
    wall = utc_timestamp(wall_clock) if wall_clock is not None else pd.Timestamp(utcnow())
    now = utc_timestamp(now) if now is not None else wall
    ctx = _context()
    name = f"{contract.name}_{id(df)}"
    known = None if known_accounts is None else pd.Index(pd.Series(known_accounts).dropna().astype(str).unique())
    notes = []
    if known is not None and not len(known) and len(df):
        notes += [f"{ref.column} references not checked: {ref.table} has no {ref.target} (its own check says why)"
                  for ref in contract.references]
    type_problems: dict[str, str] = {}
    mistyped = _mistyped(df, contract, type_problems)
    keys = [c for c in contract.primary_key if c in df.columns and c not in mistyped]
    keys = keys if len(keys) == len(contract.primary_key) else []
    source = ctx.data_sources.add_or_update_pandas(name="frames")
    asset = source.add_dataframe_asset(name=name)
    try:
        batch_def = asset.add_batch_definition_whole_dataframe("all")
        batch = batch_def.get_batch(batch_parameters={"dataframe": df})
        suite = build_suite(contract, list(df.columns), now=wall, mistyped=set(mistyped), rows=len(df))
        # Two passes: every expectation's verdict alone (GX's BOOLEAN_ONLY computes no counts,
        # examples or row keys: a third of the time on a large frame), then the failing ones
        # again for their counts, examples and keys. A table that passes pays the first only.
        verdicts = batch.validate(suite, result_format={"result_format": "BOOLEAN_ONLY"})
        evaluated = len(verdicts.results)
        failing = [r.expectation_config for r in verdicts.results if not r.success]
        results = []
        if failing:
            import great_expectations as gx

            again = gx.ExpectationSuite(name=f"{suite.name}_failing")
            for cfg in failing:
                again.add_expectation(cfg.to_domain_obj())
            result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": EXAMPLES}
            if keys:
                result_format["unexpected_index_column_names"] = keys
            results = batch.validate(again, result_format=result_format).results
    finally:
        source.delete_asset(name=name)
    failures = [_failure_from(r, contract.name, keys) for r in results if not r.success]
    empty_table = len(df) == 0 and not contract.may_be_empty
    if known is not None and len(known) and not empty_table:
        checked, unknown = unknown_references(df, contract, known, keys, set(mistyped))
        evaluated += checked
        failures += unknown
    for f in failures:
        if f.expectation == "expect_column_values_to_be_in_type_list" and f.column in mistyped:
            values = mistyped[f.column]
            f.problem = type_problems.get(f.column, f.problem)
            f.unexpected_count = int(len(values))
            f.examples = [_plain(v) for v in values.head(EXAMPLES)]
            f.ids = [_key_text(row, keys) for row in df.loc[values.index[:EXAMPLES], keys].to_dict("records")] if keys else []
    notes += _after_the_run(df, contract, now, wall)
    return QualityResult(table=contract.name, rows=len(df), evaluated=evaluated, failures=failures, notes=notes)

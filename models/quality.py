"""Great Expectations suites for the source tables, generated from the data contracts.

One suite per contract (GX 1.x, ephemeral context, in code, offline, progress bars off). Each
suite checks, for every column of the contract: that it exists, its type, non-null where the
contract says so, allowed values, minimum values; uniqueness of the primary key; that every
account reference is a known account; and that no timestamp is impossible (in the future, or a
response/solve before the ticket was created). `validate_frame` runs a suite and returns the
failures with the column, the number of bad rows and a few examples, ready for asset-check
metadata.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pandas as pd

from models.clock import utc_timestamp, utcnow
from models.contracts import TableContract

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


@dataclass
class Failure:
    expectation: str
    column: str
    unexpected_count: int
    examples: list[Any]
    detail: str = ""

    def as_row(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation,
            "column": self.column,
            "bad_rows": self.unexpected_count,
            "examples": ", ".join(str(x) for x in self.examples[:5]),
            "detail": self.detail,
        }


@dataclass
class QualityResult:
    table: str
    rows: int
    evaluated: int
    failures: list[Failure] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        if self.success:
            return f"{self.table}: {self.evaluated} expectations passed on {self.rows} rows"
        parts = [f"{f.column} ({f.expectation}: {f.unexpected_count} bad)" for f in self.failures]
        return f"{self.table}: {len(self.failures)} expectation(s) failed: " + "; ".join(parts)

    def markdown(self) -> str:
        if self.success:
            return self.summary()
        lines = ["| column | expectation | bad rows | examples |", "|---|---|---|---|"]
        for f in self.failures:
            ex = ", ".join(str(x) for x in f.examples[:5]).replace("|", "/")
            lines.append(f"| {f.column} | {f.expectation} | {f.unexpected_count} | {ex} |")
        return "\n".join(lines)


@lru_cache(maxsize=1)
def _context():
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    ctx = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except ImportError:  # pragma: no cover - older GX layouts
        pass
    return ctx


def _mistyped(df: pd.DataFrame, contract: TableContract) -> dict[str, pd.Series]:
    """Columns whose dtype is not the contract's, with the values that cannot be read as it."""
    bad: dict[str, pd.Series] = {}
    for col in contract.columns:
        if col.name not in df.columns or str(df[col.name].dtype) in _TYPE_LISTS[col.kind]:
            continue
        raw = df[col.name]
        if col.kind in ("float", "int"):
            parsed = pd.to_numeric(raw, errors="coerce")
        elif col.kind == "datetime":
            parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
        else:
            parsed = raw
        bad[col.name] = raw[parsed.isna() & raw.notna()]
    return bad


def build_suite(
    contract: TableContract,
    frame_columns: list[str],
    *,
    known_accounts: list[str] | None,
    now: pd.Timestamp,
    mistyped: set[str] = frozenset(),
):
    """The expectation suite for ``contract``.

    Columns that are missing get only the existence check; columns of the wrong type get only
    the type check (value checks on them would be meaningless).
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=f"{contract.name}_contract")
    present = set(frame_columns)
    for col in contract.columns:
        suite.add_expectation(gxe.ExpectColumnToExist(column=col.name))
        if col.name not in present:
            continue
        suite.add_expectation(gxe.ExpectColumnValuesToBeInTypeList(column=col.name, type_list=_TYPE_LISTS[col.kind]))
        if col.name in mistyped:
            continue
        if not col.nullable:
            suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=col.name))
        if col.allowed:
            suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=col.name, value_set=list(col.allowed)))
        if col.min_value is not None:
            suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=col.name, min_value=col.min_value))
        if col.kind == "datetime" and not col.may_be_future:
            suite.add_expectation(
                gxe.ExpectColumnValuesToBeBetween(column=col.name, max_value=now.to_pydatetime())
            )
    pk = [c for c in contract.primary_key if c in present]
    if len(pk) == len(contract.primary_key):
        if len(pk) == 1:
            suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column=pk[0]))
        else:
            suite.add_expectation(gxe.ExpectCompoundColumnsToBeUnique(column_list=pk))
    if known_accounts is not None:
        for ref in contract.references:
            if ref.column in present:
                suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=ref.column, value_set=known_accounts))
    for later, earlier in _ORDERED_PAIRS:
        if {later, earlier} <= present - set(mistyped):
            suite.add_expectation(
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=later, column_B=earlier, or_equal=True, ignore_row_if="either_value_is_missing"
                )
            )
    return suite


def _failure_from(result) -> Failure:
    cfg = result.expectation_config
    kwargs = cfg.kwargs
    column = kwargs.get("column") or ",".join(
        x for x in (kwargs.get("column_A"), kwargs.get("column_B")) if x
    ) or ",".join(kwargs.get("column_list", []) or [])
    res = result.result or {}
    examples = list(res.get("partial_unexpected_list") or [])
    count = res.get("unexpected_count")
    detail = ""
    if cfg.type == "expect_column_to_exist":
        count = count or 0
        detail = "column is missing"
    elif cfg.type == "expect_column_values_to_be_in_type_list":
        detail = f"observed type {res.get('observed_value')}, expected one of {kwargs.get('type_list')}"
        count = count if count is not None else 0
    exc = result.exception_info or {}
    if isinstance(exc, dict) and exc.get("raised_exception"):
        detail = (detail + " " + str(exc.get("exception_message", ""))).strip()
    # Timestamps and numpy scalars become plain strings/numbers for metadata.
    examples = [str(x) if not isinstance(x, (int, float, str)) else x for x in examples][:10]
    return Failure(cfg.type, column or "", int(count or 0), examples, detail)


def validate_frame(
    df: pd.DataFrame,
    contract: TableContract,
    *,
    known_accounts: pd.Series | list[str] | None = None,
    now: pd.Timestamp | None = None,
) -> QualityResult:
    """Run the contract's suite on ``df`` and return every failure."""
    now = utc_timestamp(now) if now is not None else pd.Timestamp(utcnow())
    ctx = _context()
    name = f"{contract.name}_{id(df)}"
    source = ctx.data_sources.add_or_update_pandas(name="frames")
    asset = source.add_dataframe_asset(name=name)
    try:
        batch_def = asset.add_batch_definition_whole_dataframe("all")
        batch = batch_def.get_batch(batch_parameters={"dataframe": df})
        known = None if known_accounts is None else sorted(set(pd.Series(known_accounts).dropna().astype(str)))
        mistyped = _mistyped(df, contract)
        suite = build_suite(contract, list(df.columns), known_accounts=known, now=now, mistyped=set(mistyped))
        res = batch.validate(suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 10})
    finally:
        source.delete_asset(name=name)
    failures = [_failure_from(r) for r in res.results if not r.success]
    for f in failures:
        if f.expectation == "expect_column_values_to_be_in_type_list" and f.column in mistyped:
            values = mistyped[f.column]
            f.unexpected_count = int(len(values))
            f.examples = [str(v) for v in values.head(10)]
    return QualityResult(table=contract.name, rows=len(df), evaluated=len(res.results), failures=failures)

"""The usage checks computed in the warehouse (`connectors.usage_checks`) find every planted
problem, and say of it what the pandas suite (`models.quality.validate_frame`) and the pandas
rules (`models.plausibility`) say of the same rows: the same column, count, words and example.
On DuckDB for every fault, and on SQLite and PostgreSQL for a table holding many at once."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from connectors.usage_checks import USAGE_CHECK_DAYS, check_usage_consistency, check_usage_contract
from connectors.warehouse import USAGE_DAILY_TABLE, Warehouse
from models import plausibility
from models.contracts import USAGE_DAILY, Column, TableContract, conform
from models.plausibility import Thresholds, churn_limits, rows_before_signup, usage_after_churn
from models.quality import AMBIGUOUS_DATES, validate_frame
from tests.factories import random_tables

#: The run's instant: the morning after the random company's last usage day (2026-02-04).
NOW = pd.Timestamp("2026-02-05 06:00")
LATER = pd.Timestamp("2026-03-01")


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    tables = random_tables(n_accounts=12, seed=5)
    usage = tables["usage_daily"]
    start = usage["date"].max() - pd.Timedelta(days=USAGE_CHECK_DAYS - 1)
    # the rows the check judges (its window), so the pandas suite sees the very same rows
    return {**tables, "usage_daily": usage[usage["date"] >= start].reset_index(drop=True)}


def _set(rows: list[int], column: str, value) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def make(usage: pd.DataFrame) -> pd.DataFrame:
        out = usage.copy()
        out[column] = out[column].astype(object)
        for row in rows:
            out.at[row, column] = value
        return out
    return make


def _as_text_dates(odd: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def make(usage: pd.DataFrame) -> pd.DataFrame:
        out = usage.copy()
        out["date"] = out["date"].dt.strftime("%Y-%m-%d").astype(object)
        out.at[3, "date"] = odd
        return out
    return make


#: fault -> (the usage frame with it, the column that fails, what its line names)
FAULTS = {
    "missing-column": (lambda u: u.drop(columns=["active_users"]), "active_users", ["column is missing"]),
    "null-events": (_set([4, 9], "events", None), "events", ["2 row(s)", "null in a required column", "e.g. account_id 'A000', date '2025-"]),
    "fraction-in-int": (_set([7], "events", 2.5), "events", ["1 row(s)", "not readable as int", "= 2.5"]),
    "inf-in-int": (_set([9], "events", np.inf), "events", ["1 row(s)", "not readable as int", "= inf"]),
    "negative-active_users": (_set([3, 4], "active_users", -3), "active_users", ["2 row(s)", "outside its range", "= -3"]),
    "absurd-active_users": (_set([10], "active_users", 10**12), "active_users",
                            ["1 row(s)", "outside its range (0 to 10,000,000)"]),
    "negative-core_events": (_set([6], "core_events", -1), "core_events", ["1 row(s)", "outside its range"]),
    "future-date": (_set([0], "date", LATER), "date", ["1 row(s)", "in the future", "2026-03-01 00:00:00"]),
    "duplicate-key": (lambda u: pd.concat([u, u.head(2)], ignore_index=True), "account_id,date",
                      ["4 row(s)", "with a duplicate account_id + date", "e.g. account_id 'A000', date '2025-"]),
    "over-long-id": (_set([5], "account_id", "A" * 200), "account_id", ["1 row(s)", "longer than 128 characters",
                                                                       "(200 characters)"]),
    "null-account": (_set([2], "account_id", None), "account_id", ["1 row(s)", "null in a required column",
                                                                    "e.g. account_id null, date '2025-"]),
    "ambiguous-text-date": (_as_text_dates("03/04/2026"), "date", ["1 row(s)", AMBIGUOUS_DATES, "'03/04/2026'"]),
    "unreadable-text-date": (_as_text_dates("next tuesday"), "date", ["1 row(s)", "not readable as datetime",
                                                                      "'next tuesday'"]),
}


def _duckdb(tmp_path) -> Warehouse:
    return Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")


@pytest.mark.parametrize("case", list(FAULTS))
def test_the_warehouse_finds_each_planted_usage_problem_as_the_pandas_suite_says_it(tmp_path, tables, case):
    fault, column, names = FAULTS[case]
    usage = fault(tables["usage_daily"])
    wh = _duckdb(tmp_path)
    wh.write_table(USAGE_DAILY_TABLE, usage)
    found = check_usage_contract(wh, NOW, NOW)
    assert not found.success
    line = next(f.message for f in found.failures if f.column == column)
    assert line.startswith(f"usage_daily.{column}: ") and "\n" not in line
    for name in names:
        assert name in line, line
    # the pandas suite on the same rows: the same problems, counts and lines
    suite = validate_frame(conform(usage, USAGE_DAILY, lenient=True), USAGE_DAILY, now=NOW, wall_clock=NOW)
    assert [f.message for f in found.failures] == [f.message for f in suite.failures]
    assert (found.rows, found.evaluated) == (suite.rows, suite.evaluated)
    if case == "duplicate-key":
        # GX lists every row of a duplicated key (each key twice here); the warehouse each key once
        shown = found.markdown().splitlines()[-1]
        assert shown.endswith("| account_id 'A000', date '2025-10-08 00:00:00', account_id 'A000', "
                              "date '2025-10-09 00:00:00' |"), shown
    else:
        assert found.markdown() == suite.markdown()


def test_clean_usage_passes_every_expectation(tmp_path, tables):
    wh = _duckdb(tmp_path)
    wh.write_table(USAGE_DAILY_TABLE, tables["usage_daily"])
    found = check_usage_contract(wh, NOW, NOW)
    suite = validate_frame(tables["usage_daily"], USAGE_DAILY, now=NOW, wall_clock=NOW)
    assert found.success and suite.success
    assert found.summary() == suite.summary() == f"usage_daily: 25 expectations passed on {len(tables['usage_daily'])} rows"


def test_the_window_is_the_last_days_before_the_run_plus_impossible_rows_and_a_note_on_later_ones(tmp_path, tables):
    usage = tables["usage_daily"]
    old = usage.head(3).assign(date=pd.Timestamp("2024-01-01"), events=-1)   # outside the window: not judged
    later = usage.head(2).assign(date=pd.Timestamp("2026-02-10"))            # after the run, before the wall clock
    future = usage.head(1).assign(date=pd.Timestamp("2027-01-01"))           # after the wall clock: impossible
    wh = _duckdb(tmp_path)
    wh.write_table(USAGE_DAILY_TABLE, pd.concat([usage, old, later, future], ignore_index=True))
    found = check_usage_contract(wh, NOW, pd.Timestamp("2026-02-20 12:00"))
    assert [f.message.split(",")[0] for f in found.failures] == [
        "usage_daily.date: 1 row(s) in the future (after 2026-02-20 12:00 UTC"]
    assert found.rows == len(usage) + 1
    assert found.notes == ["usage_daily.date: 2 row(s) after the run's instant (2026-02-05 06:00 UTC), "
                           "not this snapshot's: ignored"]


def test_an_empty_usage_table_fails_by_name_alone(tmp_path, tables):
    wh = _duckdb(tmp_path)
    wh.write_table(USAGE_DAILY_TABLE, tables["usage_daily"].head(0))
    found = check_usage_contract(wh, NOW, NOW)
    assert found.summary() == "source table usage_daily is empty"


# --------------------------------------------------------------------------- consistency


def _implausible(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Three accounts' signups dated late (their usage comes before), one usage row of an
    unknown account; the random company's usage after its churns is already there."""
    accounts = tables["accounts"].copy()
    accounts.loc[[1, 4, 7], "created_at"] = pd.Timestamp("2026-01-20")
    usage = tables["usage_daily"].copy()
    usage.loc[11, "account_id"] = "GHOST-3"
    return {**tables, "accounts": accounts, "usage_daily": usage}


def _consistency(wh: Warehouse, t: dict[str, pd.DataFrame]):
    wh.write_table(USAGE_DAILY_TABLE, t["usage_daily"])
    return check_usage_consistency(wh, NOW, NOW, t["accounts"], t["renewals"], Thresholds())


def _same_as_pandas(found, t: dict[str, pd.DataFrame], monkeypatch) -> None:
    usage = t["usage_daily"]
    line = found.references.failures[0].message
    assert line == "usage_daily.account_id: 1 row(s) not a known account (no such accounts.account_id), e.g. 'GHOST-3'"
    reference_only = TableContract("usage_daily", "", (Column("account_id", "str", nullable=True),), primary_key=(),
                                   references=USAGE_DAILY.references, may_be_empty=True)
    suite_refs = validate_frame(usage[["account_id"]], reference_only, known_accounts=t["accounts"]["account_id"], now=NOW)
    assert [f.message for f in found.references.failures] == [f.message for f in suite_refs.failures]
    monkeypatch.setattr(plausibility, "EXAMPLES", 10**6)  # every implausible row, to check the examples against
    before = rows_before_signup(usage, "usage_daily", "date", t["accounts"], Thresholds())
    after = usage_after_churn(usage, t["renewals"], Thresholds())
    for sql, pandas in ((found.before_signup, before), (found.after_churn, after)):
        assert (sql.rule, sql.bad, sql.total, sql.problem) == (pandas.rule, pandas.bad, pandas.total, pandas.problem)
        assert sql.bad > 0 and sql.examples and set(sql.examples) <= set(pandas.examples)
    # the same first rows, by day: the examples a failing line shows
    assert found.after_churn.examples == after.examples[: len(found.after_churn.examples)]


def test_the_warehouse_finds_unknown_accounts_usage_before_signup_and_after_churn(tmp_path, tables, monkeypatch):
    t = _implausible(tables)
    found = _consistency(_duckdb(tmp_path), t)
    assert not found.before_signup.passed and not found.after_churn.passed
    assert "usage_daily.date: " in found.before_signup.message and "before the account's signup" in found.before_signup.message
    assert "e.g. account_id A00" in found.before_signup.message and "signup 2026-01-20" in found.before_signup.message
    assert "after the account churned" in found.after_churn.message and "churned 20" in found.after_churn.message
    _same_as_pandas(found, t, monkeypatch)


def test_a_return_excuses_usage_after_churn_and_the_grace_days_are_the_thresholds(tmp_path, tables):
    t = tables
    churns, _ = churn_limits(t["renewals"])
    wh = _duckdb(tmp_path)
    base = _consistency(wh, t).after_churn
    assert base.bad > 0
    # every churned account came back the day after its churn: nothing is late any more
    back = churns.assign(reactivated_at=churns["churn_end"] + pd.Timedelta(days=1))[["account_id", "reactivated_at"]]
    excused = check_usage_consistency(wh, NOW, NOW, t["accounts"], t["renewals"], reactivations=back).after_churn
    assert excused.bad == 0 and excused.total == base.total
    # a grace of 1,000 days covers every usage day of the window since the first churn
    graced = check_usage_consistency(wh, NOW, NOW, t["accounts"], t["renewals"],
                                     Thresholds(churn_grace_days=1000)).after_churn
    assert graced.bad == 0 and graced.problem.startswith("of usage more than 1000 days after")


def test_no_accounts_is_a_note_not_a_failure_of_the_usage(tmp_path, tables):
    wh = _duckdb(tmp_path)
    wh.write_table(USAGE_DAILY_TABLE, tables["usage_daily"])
    found = check_usage_consistency(wh, NOW, NOW, tables["accounts"].head(0), tables["renewals"])
    assert found.references.success
    assert found.references.notes == ["account_id references not checked: accounts has no account_id "
                                      "(its own check says why)"]


# --------------------------------------------------------------------------- other warehouses


def _many_faults(usage: pd.DataFrame) -> pd.DataFrame:
    """One table holding several faults at once, each in its own rows."""
    out = usage.copy().astype({"active_users": object, "events": object})
    out.loc[3, "active_users"] = -3
    out.loc[7, "events"] = 2.5
    out.loc[0, "date"] = LATER
    out.loc[5, "account_id"] = "A" * 200
    return pd.concat([out, out.iloc[[20, 21]]], ignore_index=True)


#: what each line of the many-faults table names
MANY = {
    "active_users": ["1 row(s)", "outside its range", "= -3"],
    "events": ["1 row(s)", "not readable as int", "2.5"],
    "date": ["1 row(s)", "in the future", "2026-03-01"],
    "account_id": ["1 row(s)", "longer than 128 characters"],
    "account_id,date": ["4 row(s)", "with a duplicate account_id + date"],
}


def _every_planted_problem(wh: Warehouse, tables: dict[str, pd.DataFrame], monkeypatch) -> None:
    usage = _many_faults(tables["usage_daily"])
    wh.write_table(USAGE_DAILY_TABLE, usage)
    found = check_usage_contract(wh, NOW, NOW)
    lines = {f.column: f.message for f in found.failures}
    assert set(lines) == set(MANY), found.summary()
    for column, names in MANY.items():
        assert all(name in lines[column] for name in names), lines[column]
    assert found.rows == len(usage)
    t = _implausible(tables)
    _same_as_pandas(_consistency(wh, t), t, monkeypatch)


def test_every_planted_problem_on_sqlite(tmp_path, tables, monkeypatch):
    _every_planted_problem(Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}"), tables, monkeypatch)


@pytest.mark.postgres
def test_every_planted_problem_on_postgresql(pg_database_url, tables, monkeypatch):
    _every_planted_problem(Warehouse(pg_database_url), tables, monkeypatch)


def test_every_planted_problem_on_duckdb(tmp_path, tables, monkeypatch):
    _every_planted_problem(_duckdb(tmp_path), tables, monkeypatch)


@pytest.mark.parametrize("backend", ["duckdb", "sqlite"])
def test_usage_built_in_the_warehouse_is_judged_as_built(tmp_path, tables, backend):
    """`Warehouse.build_usage_daily`'s own table (DuckDB: DATE and BIGINT columns; SQLite: text
    days): clean, every row of the window judged, and an impossible event count found."""
    from connectors.warehouse import RAW_EVENTS_TABLE
    from tests.data.source_runs import raw_events

    url = f"duckdb:///{tmp_path / 'w.duckdb'}" if backend == "duckdb" else f"sqlite:///{tmp_path / 'w.db'}"
    wh = Warehouse(url)
    events = raw_events(tables["accounts"], NOW.normalize(), days=5)
    wh.write_table(RAW_EVENTS_TABLE, events)
    built = wh.build_usage_daily()
    found = check_usage_contract(wh, NOW, NOW)
    assert found.success, found.summary()
    assert found.rows == built == len(tables["accounts"]) * 5
    wh.write_table(RAW_EVENTS_TABLE, pd.concat([events, events.head(1).assign(quantity=-50)], ignore_index=True))
    wh.build_usage_daily()
    lines = [f.message for f in check_usage_contract(wh, NOW, NOW).failures]
    events_range = next(c for c in USAGE_DAILY.columns if c.name == "events").range_text()
    assert [line.split(", e.g.")[0] for line in lines] == [
        f"usage_daily.events: 1 row(s) outside its range ({events_range})",
        f"usage_daily.core_events: 1 row(s) outside its range ({events_range})"], lines
    assert lines[0].endswith(f"e.g. account_id 'A000', date '{NOW - pd.Timedelta(days=5):%Y-%m-%d} 00:00:00' = -47")


def test_only_counts_and_a_few_examples_leave_the_warehouse(tmp_path, tables, monkeypatch):
    """Every row bad, in every way the checks count: what comes back stays a handful of rows."""
    from connectors import usage_checks

    fetched: list[int] = []
    real = usage_checks._fetch
    monkeypatch.setattr(usage_checks, "_fetch", lambda *a: (lambda rows: fetched.append(len(rows)) or rows)(real(*a)))
    usage = tables["usage_daily"].assign(active_users=-1, events=10**12, account_id="GHOST-1")
    wh = _duckdb(tmp_path)
    wh.write_table(USAGE_DAILY_TABLE, pd.concat([usage, usage], ignore_index=True))
    contract = check_usage_contract(wh, NOW, NOW)
    assert {f.column: f.unexpected_count for f in contract.failures} == {
        "active_users": 2 * len(usage), "events": 2 * len(usage), "account_id,date": 2 * len(usage)}
    consistency = check_usage_consistency(wh, NOW, NOW, tables["accounts"], tables["renewals"])
    assert consistency.references.failures[0].unexpected_count == 2 * len(usage)
    assert fetched and max(fetched) <= 10 < len(usage)

"""Source faults: every bad source row fails its table's blocking check with one line naming the
table, the column, the number of bad rows and an example; an empty source table fails its own
check by name; nothing downstream runs; and a number outside its range that reaches routing
anyway is refused there, with nothing written to the queue.

Source frames are built as tests/data/test_source_quality.py builds them (`random_tables`, then
one fault), leniently conformed as the source connectors return them. The runs through Dagster
land a company's own history instead (`tests.factories.company_history`, 2023-2024, plausible
and fresh at its run's instant) and run every source check on it (`tests.data.source_runs`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from assets import stages
from assets.quality import source_checks
from connectors.warehouse import Warehouse
from models.contracts import ACCOUNTS, RENEWALS, TICKETS, USAGE_DAILY, conform, empty_frame
from models.policy.loader import load_policy
from models.quality import QualityResult, validate_frame
from models.routing.route import RoutingError, route
from tests.data.source_runs import RUN_AT, company_sources, run_sources
from tests.factories import company_history, random_tables
from tests.faults.conftest import assert_clean_failure
from tests.unit.test_policy import POLICIES

NOW = pd.Timestamp("2026-06-01")
LATER = NOW + pd.Timedelta(days=30)
CONTRACTS = {"accounts": ACCOUNTS, "renewals": RENEWALS, "tickets": TICKETS, "usage_daily": USAGE_DAILY}


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return random_tables(n_accounts=20, seed=5)


def _validate(tables: dict[str, pd.DataFrame], name: str, frame: pd.DataFrame) -> QualityResult:
    """The table's suite as its blocking check runs it: leniently conformed, accounts known, on
    a run at NOW, the current time."""
    contract = CONTRACTS[name]
    known = None if name == "accounts" else tables["accounts"]["account_id"]
    return validate_frame(conform(frame, contract, lenient=True), contract, known_accounts=known, now=NOW,
                          wall_clock=NOW)


def _set(table: str, rows: list[int], column: str, value) -> Callable[[dict], pd.DataFrame]:
    """A fault: `value` in `column` of `rows` (the column as objects when the value needs it)."""
    def make(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
        df = t[table].copy()
        df[column] = df[column].astype(object)
        for row in rows:
            df.at[row, column] = value
        return df
    return make


def _drop(table: str, column: str) -> Callable[[dict], pd.DataFrame]:
    return lambda t: t[table].drop(columns=[column])


def _duplicate(table: str, n: int = 2) -> Callable[[dict], pd.DataFrame]:
    return lambda t: pd.concat([t[table], t[table].head(n)], ignore_index=True)


def _solved_before_created(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    df = t["tickets"].copy()
    df.loc[3, "solved_at"] = df.loc[3, "created_at"] - pd.Timedelta(days=2)
    df.loc[3, "first_response_at"] = pd.NaT
    return df


#: (table, fault, what the message must name besides "<table>.<column>", column)
FAULTS = {
    # a missing column, per column type
    "missing-str-segment": ("accounts", _drop("accounts", "segment"), ["column is missing"], "segment"),
    "missing-float-arr": ("accounts", _drop("accounts", "arr"), ["column is missing"], "arr"),
    "missing-int-active_users": ("usage_daily", _drop("usage_daily", "active_users"), ["column is missing"], "active_users"),
    "missing-datetime-created_at": ("tickets", _drop("tickets", "created_at"), ["column is missing"], "created_at"),
    "missing-bool-escalated": ("tickets", _drop("tickets", "escalated"), ["column is missing"], "escalated"),
    # a value of the wrong type, per column type
    "wrong-type-float-arr": ("accounts", _set("accounts", [1, 4], "arr", "lots"), ["2 row(s)", "not readable as float", "'lots'"], "arr"),
    "wrong-type-int-seats": ("accounts", _set("accounts", [2], "seats", "twelve"), ["1 row(s)", "not readable as int", "'twelve'"], "seats"),
    "wrong-type-int-fraction": ("usage_daily", _set("usage_daily", [7], "events", 2.5), ["1 row(s)", "not readable as int", "2.5"], "events"),
    "wrong-type-bool-escalated": ("tickets", _set("tickets", [5], "escalated", "maybe"), ["1 row(s)", "not readable as bool", "'maybe'"], "escalated"),
    # unparseable dates
    "unparseable-created_at": ("accounts", _set("accounts", [3], "created_at", "not a date"), ["not readable as datetime", "'not a date'", "A003"], "created_at"),
    "unparseable-renewal_date": ("renewals", _set("renewals", [0], "renewal_date", "31/31/2025"), ["not readable as datetime", "31/31/2025"], "renewal_date"),
    "ambiguous-day-month-created_at": ("tickets", _set("tickets", [1, 2], "created_at", "03/04/2026"),
                                       ["2 row(s)", "ambiguous day/month order", "declare the column's date format or day_first", "T00001", "'03/04/2026'"], "created_at"),
    "unparseable-nullable-solved_at": ("tickets", _set("tickets", [2], "solved_at", "yesterday"), ["not readable as datetime", "'yesterday'", "T00002"], "solved_at"),
    # nulls in a required column, per column type
    "null-str-name": ("accounts", _set("accounts", [6], "name", None), ["1 row(s)", "null in a required column", "A006"], "name"),
    "null-float-amount": ("renewals", _set("renewals", [1], "amount", np.nan), ["1 row(s)", "null in a required column"], "amount"),
    "null-int-seats": ("accounts", _set("accounts", [7, 8], "seats", None), ["2 row(s)", "null in a required column", "A007"], "seats"),
    "null-datetime-created_at": ("tickets", _set("tickets", [4], "created_at", pd.NaT), ["1 row(s)", "null in a required column", "T00004"], "created_at"),
    "null-str-outcome": ("renewals", _set("renewals", [2], "outcome", None), ["1 row(s)", "null in a required column"], "outcome"),
    # duplicate ids
    "duplicate-account_id": ("accounts", _duplicate("accounts"), ["4 row(s)", "duplicate account_id", "A000"], "account_id"),
    "duplicate-renewal_id": ("renewals", _duplicate("renewals"), ["4 row(s)", "duplicate renewal_id"], "renewal_id"),
    "duplicate-ticket_id": ("tickets", _duplicate("tickets", 1), ["2 row(s)", "duplicate ticket_id", "T00000"], "ticket_id"),
    "duplicate-usage-key": ("usage_daily", _duplicate("usage_daily"), ["4 row(s)", "duplicate account_id + date", "A000"], "account_id,date"),
    # dates in the future, beyond the snapshot
    "future-account-created_at": ("accounts", _set("accounts", [9], "created_at", LATER), ["1 row(s)", "in the future", "A009", "2026-07-01"], "created_at"),
    "future-ticket-created_at": ("tickets", _set("tickets", [6], "created_at", LATER), ["in the future", "T00006"], "created_at"),
    "future-usage-date": ("usage_daily", _set("usage_daily", [0], "date", LATER), ["1 row(s)", "in the future", "2026-07-01"], "date"),
    "future-renewal-closed_at": ("renewals", _set("renewals", [0], "closed_at", LATER), ["1 row(s)", "in the future"], "closed_at"),
    # negative counts and money
    "negative-seats": ("accounts", _set("accounts", [10], "seats", -1), ["1 row(s)", "outside its range (0 to 10,000,000)", "A010", "-1"], "seats"),
    "negative-active_users": ("usage_daily", _set("usage_daily", [3, 4], "active_users", -3), ["2 row(s)", "outside its range", "-3"], "active_users"),
    "negative-events": ("usage_daily", _set("usage_daily", [5], "events", -5), ["1 row(s)", "outside its range", "-5"], "events"),
    "negative-core_events": ("usage_daily", _set("usage_daily", [6], "core_events", -1), ["1 row(s)", "outside its range"], "core_events"),
    "negative-advanced_events": ("usage_daily", _set("usage_daily", [8], "advanced_events", -2), ["1 row(s)", "outside its range"], "advanced_events"),
    "negative-amount": ("renewals", _set("renewals", [3], "amount", -100.0), ["1 row(s)", "outside its range (0 to 10,000,000,000)", "-100"], "amount"),
    # NaN, infinities and absurd numbers
    "inf-arr": ("accounts", _set("accounts", [11], "arr", np.inf), ["1 row(s)", "outside its range (0 to 10,000,000,000)", "A011", "inf"], "arr"),
    "minus-inf-arr": ("accounts", _set("accounts", [12], "arr", -np.inf), ["1 row(s)", "outside its range", "A012", "-inf"], "arr"),
    "absurd-arr": ("accounts", _set("accounts", [13], "arr", 1e18), ["1 row(s)", "outside its range", "A013", "1e+18"], "arr"),
    "nan-arr": ("accounts", _set("accounts", [14], "arr", np.nan), ["1 row(s)", "null in a required column", "A014"], "arr"),
    "inf-amount": ("renewals", _set("renewals", [4], "amount", np.inf), ["1 row(s)", "outside its range", "inf"], "amount"),
    "inf-csat": ("tickets", _set("tickets", [7], "csat", np.inf), ["1 row(s)", "outside its range (1 to 5)", "T00007", "inf"], "csat"),
    "csat-above-five": ("tickets", _set("tickets", [8], "csat", 9.0), ["1 row(s)", "outside its range (1 to 5)", "T00008", "9"], "csat"),
    "inf-int-events": ("usage_daily", _set("usage_daily", [9], "events", np.inf), ["1 row(s)", "not readable as int", "inf"], "events"),
    "inf-int-seats": ("accounts", _set("accounts", [15], "seats", np.inf), ["1 row(s)", "not readable as int", "A015", "inf"], "seats"),
    "absurd-active_users": ("usage_daily", _set("usage_daily", [10], "active_users", 10**12), ["1 row(s)", "outside its range (0 to 10,000,000)"], "active_users"),
    # unknown accounts, impossible orders, values outside their set
    "unknown-account-ticket": ("tickets", _set("tickets", [0], "account_id", "GHOST-1"), ["1 row(s)", "not a known account", "'GHOST-1'"], "account_id"),
    "unknown-account-renewal": ("renewals", _set("renewals", [1], "account_id", "GHOST-2"), ["1 row(s)", "not a known account", "'GHOST-2'"], "account_id"),
    "solved-before-created": ("tickets", _solved_before_created, ["1 row(s)", "solved_at before created_at", "T00003"], "solved_at,created_at"),
    "unknown-segment": ("accounts", _set("accounts", [16], "segment", "galactic"), ["1 row(s)", "not one of enterprise, mid_market, smb", "'galactic'"], "segment"),
    "unknown-priority": ("tickets", _set("tickets", [9], "priority", "whenever"), ["1 row(s)", "not one of urgent", "'whenever'"], "priority"),
}


@pytest.mark.parametrize("case", list(FAULTS))
def test_a_bad_source_row_fails_its_check_naming_table_column_count_and_example(tables, case):
    table, fault, names, column = FAULTS[case]
    res = _validate(tables, table, fault(tables))
    assert not res.success
    failing = {f.column for f in res.failures}
    assert column in failing, res.summary()
    assert_clean_failure(res.summary(), names=[f"{table}.{column}", *names])
    # the check's metadata shows the same line
    assert any(f.message in res.summary() for f in res.failures if f.column == column)


@pytest.mark.parametrize("table", list(CONTRACTS))
def test_an_empty_source_table_fails_its_own_check_by_name_and_nothing_else(tables, table):
    res = _validate(tables, table, tables[table].head(0))
    assert not res.success
    assert res.summary() == f"source table {table} is empty"
    assert len(res.failures) == 1 and res.failures[0].column == "(table)"
    assert_clean_failure(res.markdown(), names=[f"source table {table} is empty"])


@pytest.mark.parametrize("table", ["renewals", "tickets", "usage_daily"])
def test_empty_accounts_are_not_blamed_on_the_tables_that_reference_them(tables, table):
    contract = CONTRACTS[table]
    res = validate_frame(tables[table], contract, known_accounts=tables["accounts"]["account_id"].head(0), now=NOW)
    assert res.success, res.summary()
    assert "account_id" not in {f.column for f in res.failures}
    assert "account_id references not checked: accounts has no account_id" in res.summary()
    # the accounts' own check is the one that fails
    assert _validate(tables, "accounts", tables["accounts"].head(0)).summary() == "source table accounts is empty"


def test_a_scheduled_renewal_in_the_future_is_not_a_fault(tables):
    renewals = tables["renewals"].copy()
    renewals.loc[0, "renewal_date"] = LATER + pd.Timedelta(days=300)
    assert _validate(tables, "renewals", renewals).success


# ---------------------------------------------------------------------------------------------
# The checks as Dagster runs them: a failing source check blocks everything downstream
# ---------------------------------------------------------------------------------------------


def _blank(table: str) -> Callable[[dict], dict]:
    def make(t: dict) -> dict:
        if table == "events":
            return {**t, "events": t["events"].head(0)}
        return {**t, table: t[table].head(0)}
    return make


def _account(column: str, value) -> Callable[[dict], dict]:
    def make(t: dict) -> dict:
        accounts = t["accounts"].astype({column: object})
        accounts.at[0, column] = value
        return {**t, "accounts": accounts}
    return make


#: fault -> (the one check that fails, what its summary names)
DAGSTER_FAULTS = {
    "empty-tickets": (_blank("tickets"), "support_tickets_contract", ["source table tickets is empty"]),
    "empty-renewals": (_blank("renewals"), "crm_renewals_contract", ["source table renewals is empty"]),
    "empty-accounts": (_blank("accounts"), "crm_accounts_contract", ["source table accounts is empty"]),
    "empty-usage": (_blank("events"), "product_usage_daily_contract", ["source table usage_daily is empty"]),
    "infinite-arr": (_account("arr", np.inf), "crm_accounts_contract", ["accounts.arr", "1 row(s)", "C-0000", "inf"]),
    "account-id-too-long": (_account("account_id", "A" * 200), "crm_accounts_contract",
                            ["accounts.account_id", "longer than 128 characters", "200 characters"]),
    "empty-account-history": (lambda t: {**t, "account_history": _history(t).head(0)}, "crm_account_history_contract",
                              ["source table account_history is empty"]),
    "history-of-an-unknown-account": (lambda t: {**t, "account_history": _history(t).pipe(
                                          lambda h: h.assign(account_id=["GHOST-9", *h["account_id"].iloc[1:]]))},
                                      "crm_account_history_consistent", ["account_history.account_id", "GHOST-9"]),
}
#: The checks that read the accounts: they wait for the accounts' checks.
NEED_ACCOUNTS = {"crm_renewals_consistent", "support_tickets_consistent", "product_usage_daily_consistent",
                 "crm_renewals_fresh", "crm_account_history_consistent"}


def _history(t: dict) -> pd.DataFrame:
    """One row per account from its creation: the account history as a CRM would land it."""
    accounts = t["accounts"]
    return accounts[["account_id", "created_at", "arr", "plan", "seats", "segment", "csm_owner"]].rename(
        columns={"created_at": "valid_from"})



@pytest.fixture(scope="module")
def source_tables() -> dict[str, pd.DataFrame]:
    """A company's own history (2023-2024), its exports as they stood on the run's day."""
    return company_sources(company_history())


@pytest.mark.parametrize("history", ["none landed", "landed"])
def test_clean_sources_pass_every_check_and_run_downstream(tmp_path, source_tables, history):
    tables = source_tables if history == "none landed" else {**source_tables, "account_history": _history(source_tables)}
    run = run_sources(tmp_path, tables, tags={"rescue/now": RUN_AT})
    assert run.result.success, [c.metadata["summary"].value for c in run.evals.values() if not c.passed]
    assert set(run.evals) == {key.name for c in source_checks for key in c.check_keys} and len(run.evals) == 12
    assert all(c.passed for c in run.evals.values())
    assert run.ran == ["downstream_of_sources"]
    check = run.evals["crm_account_history_contract"]
    if history == "none landed":
        assert "attributes assumed constant" in check.description
    else:
        assert check.metadata["rows"].value == len(source_tables["accounts"])


@pytest.mark.parametrize("case", list(DAGSTER_FAULTS))
def test_a_failing_source_check_blocks_downstream_and_names_the_problem(tmp_path, source_tables, case):
    fault, check, names = DAGSTER_FAULTS[case]
    run = run_sources(tmp_path, fault(source_tables), tags={"rescue/now": RUN_AT})
    assert not run.result.success
    assert run.ran == [], "a step downstream of a failing source check ran"
    # only the faulty table's check fails; every other table's own check ran and passed, and with
    # the accounts failing, the checks that look accounts up do not run, so none blames its table
    assert run.failed() == [check]
    own = {"crm_accounts_contract", "crm_renewals_contract", "support_tickets_contract", "product_usage_daily_contract"}
    assert own <= set(run.evals)
    if check == "crm_accounts_contract":
        assert not NEED_ACCOUNTS & set(run.evals)
    assert_clean_failure(run.summary(check), names=names)
    # Dagster's own line for the check carries the same findings (`dagster job execute` prints it)
    assert_clean_failure(run.evals[check].description, names=names)


# ---------------------------------------------------------------------------------------------
# Numbers out of range that reach routing anyway
# ---------------------------------------------------------------------------------------------

ROUTE_NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.timezone.utc)


def _candidates(frames, **overrides) -> pd.DataFrame:
    """One mid-market account at 31% risk (the default policy's P3, CSMs), one healthy one."""
    spec = {"account_id": "A1", "segment": "mid_market", "churn_risk": 0.31, "arr": 80_000.0,
            "health_band": "at_risk", "health_score": 42.0, "open_urgent_tickets": 0, "wau_trend": -0.1}
    _, cands = frames([{**spec, **overrides}, {"account_id": "A2", "segment": "smb", "churn_risk": 0.02,
                                               "health_band": "healthy", "health_score": 88.0,
                                               "open_urgent_tickets": 0, "wau_trend": 0.0}])
    if "expected_arr_at_risk" not in overrides:
        cands["expected_arr_at_risk"] = cands["churn_risk"] * cands["arr"]
    cands["movers"] = [[], []]
    return cands


def _policy():
    return load_policy(POLICIES / "default.yaml")


def test_a_sane_account_at_31_percent_risk_is_a_p3_for_the_csms(frames):
    states = pd.DataFrame({"account_id": ["A1"], "state": ["at_risk"], "since": [pd.Timestamp("2026-11-01")]})
    decisions = route(_candidates(frames), _policy(), now=ROUTE_NOW, account_states=states).decisions
    row = decisions.set_index("account_id").loc["A1"]
    assert (row["action"], row["priority"], row["team"]) == ("route", "P3", "csm")


#: column -> (value, how the message shows it)
OUT_OF_RANGE = {
    "arr-inf": ("arr", np.inf, "inf"),
    "arr-absurd": ("arr", 1e18, "1e+18"),
    "arr-negative": ("arr", -5.0, "-5"),
    "arr-nan": ("arr", np.nan, "nan"),
    "risk-inf": ("churn_risk", np.inf, "inf"),
    "risk-above-one": ("churn_risk", 1.5, "1.5"),
    "risk-nan": ("churn_risk", np.nan, "nan"),
    "expected-arr-at-risk-inf": ("expected_arr_at_risk", np.inf, "inf"),
    "health-above-100": ("health_score", 250.0, "250"),
    "negative-urgent-tickets": ("open_urgent_tickets", -1, "-1"),
    "negative-ticket-age": ("oldest_open_urgent_hours", -3.0, "-3"),
}


@pytest.mark.parametrize("case", list(OUT_OF_RANGE))
def test_routing_refuses_a_number_outside_its_range(frames, case):
    column, value, shown = OUT_OF_RANGE[case]
    with pytest.raises(RoutingError) as caught:
        route(_candidates(frames, **{column: value}), _policy(), now=ROUTE_NOW)
    assert_clean_failure(str(caught.value), names=[f"candidates.{column}", "1 value(s)", "account_id 'A1'", f"= {shown}",
                                                   "nothing routed"])


def test_an_infinite_arr_reaching_the_queue_stage_writes_nothing(queue_store, tmp_path, frames):
    warehouse = Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    warehouse.write_table("usage_daily", empty_frame(USAGE_DAILY))
    health = pd.DataFrame(index=pd.Index([], name="account_id"))
    with pytest.raises(RoutingError, match=r"candidates\.arr: 1 value\(s\) outside its range .* account_id 'A1' = inf"):
        stages.rescue_queue(queue_store, warehouse, _policy(), _candidates(frames, arr=np.inf), health,
                            empty_frame(TICKETS), now=ROUTE_NOW, as_of=pd.Timestamp("2026-11-20"))
    assert queue_store.list_cases().empty
    assert queue_store.outbox().empty
    assert queue_store.routing_state().account_states.empty

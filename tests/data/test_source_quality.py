"""The GX suites behind the blocking source checks, on clean and dirty frames."""

import dagster as dg
import pandas as pd
import pytest

from assets.quality import (
    SourceChecksResource,
    crm_accounts_contract,
    crm_renewals_contract,
    support_tickets_consistent,
    support_tickets_contract,
)
from models.contracts import ACCOUNTS, TICKETS, USAGE_DAILY, ContractError, conform
from models.quality import validate_frame
from tests.factories import random_tables

NOW = pd.Timestamp("2026-06-01")


@pytest.fixture(scope="module")
def tables():
    return random_tables(n_accounts=30, seed=21)


def _failures(res):
    return {(f.column, f.expectation): f for f in res.failures}


def test_clean_sources_pass(tables):
    for name, contract in (("accounts", ACCOUNTS), ("tickets", TICKETS), ("usage_daily", USAGE_DAILY)):
        res = validate_frame(tables[name], contract, known_accounts=tables["accounts"]["account_id"], now=NOW)
        assert res.success, res.summary()


def test_duplicate_ids_are_named_with_count_and_examples(tables):
    acc = pd.concat([tables["accounts"], tables["accounts"].head(2)], ignore_index=True)
    res = validate_frame(acc, ACCOUNTS, now=NOW)
    f = _failures(res)[("account_id", "expect_column_values_to_be_unique")]
    assert f.unexpected_count == 4
    assert set(f.examples) == set(tables["accounts"]["account_id"].head(2))


def test_missing_column_is_named(tables):
    res = validate_frame(tables["accounts"].drop(columns=["arr"]), ACCOUNTS, now=NOW)
    assert ("arr", "expect_column_to_exist") in _failures(res)


def test_wrong_types_are_counted_with_examples(tables):
    raw = tables["accounts"].astype({"arr": "object"})
    raw.loc[[1, 4], "arr"] = ["lots", "n/a"]
    lenient = conform(raw, ACCOUNTS, lenient=True)
    with pytest.raises(ContractError, match="accounts.arr"):
        conform(raw, ACCOUNTS)
    f = _failures(validate_frame(lenient, ACCOUNTS, now=NOW))[("arr", "expect_column_values_to_be_in_type_list")]
    assert f.unexpected_count == 2
    assert set(f.examples) == {"lots", "n/a"}


def test_unknown_accounts_negative_counts_and_impossible_dates(tables):
    tk = tables["tickets"].copy()
    tk.loc[0, "account_id"] = "GHOST-1"
    tk.loc[1, "solved_at"] = tk.loc[1, "created_at"] - pd.Timedelta(days=2)
    tk.loc[2, "created_at"] = NOW + pd.Timedelta(days=30)
    res = validate_frame(tk, TICKETS, known_accounts=tables["accounts"]["account_id"], now=NOW, wall_clock=NOW)
    f = _failures(res)
    assert f[("account_id", "expect_column_values_to_be_in_set")].examples == ["GHOST-1"]
    assert ("solved_at,created_at", "expect_column_pair_values_a_to_be_greater_than_b") in f
    assert f[("created_at", "expect_column_values_to_be_between")].unexpected_count >= 1

    u = tables["usage_daily"].copy()
    u.loc[[3, 7, 9], "events"] = -5
    res = validate_frame(u, USAGE_DAILY, known_accounts=tables["accounts"]["account_id"], now=NOW)
    assert _failures(res)[("events", "expect_column_values_to_be_between")].unexpected_count == 3


def test_asset_checks_called_directly(tables):
    context, checks = dg.build_asset_check_context, SourceChecksResource()
    assert crm_accounts_contract(context(), tables["accounts"]).passed
    renewals = tables["renewals"].copy()
    assert crm_renewals_contract(context(), renewals).passed
    renewals.loc[0, "outcome"] = "maybe"
    res = crm_renewals_contract(context(), renewals)
    assert not res.passed
    assert "outcome" in res.metadata["failing_columns"].value
    assert res.description == res.metadata["summary"].value and "renewals.outcome: 1 row(s)" in res.description
    # a table's own check needs no other table; the references are the consistency check's
    tk = tables["tickets"].copy()
    tk.loc[:4, "account_id"] = "NOPE"
    assert support_tickets_contract(context(), tk).passed
    res = support_tickets_consistent(context(), checks, tk, tables["accounts"])
    assert not res.passed and "account_id" in res.metadata["failures"].value
    assert "tickets.account_id: 5 row(s) not a known account" in res.description


def test_a_replay_ignores_rows_after_its_instant_and_fails_only_rows_after_the_current_time(tables):
    """A replay of an old snapshot reads today's tables: rows dated after the snapshot's instant
    are not its data (noted, not failed); a row dated after the current time is impossible."""
    replay_at, today = pd.Timestamp("2025-06-01 06:00"), pd.Timestamp("2026-06-01 12:00")
    tk = tables["tickets"].copy()
    later = tk["created_at"] > replay_at
    assert later.sum() > 10
    res = validate_frame(tk, TICKETS, now=replay_at, wall_clock=today)
    assert res.success, res.summary()
    assert f"tickets.created_at: {int(later.sum())} row(s) after the run's instant (2025-06-01 06:00 UTC)" in res.summary()
    tk.loc[3, "created_at"] = today + pd.Timedelta(days=2)
    res = validate_frame(tk, TICKETS, now=replay_at, wall_clock=today)
    f = _failures(res)[("created_at", "expect_column_values_to_be_between")]
    assert f.unexpected_count == 1 and "in the future (after 2026-06-01 12:00 UTC, the current time)" in f.message


def test_ambiguous_day_month_dates_fail_the_check_with_the_reason(tables):
    raw = tables["accounts"].astype({"created_at": object})
    raw.loc[[0, 5], "created_at"] = ["03/04/2024", "11/12/2023"]
    res = validate_frame(conform(raw, ACCOUNTS, lenient=True), ACCOUNTS, now=NOW)
    f = _failures(res)[("created_at", "expect_column_values_to_be_in_type_list")]
    assert f.unexpected_count == 2
    assert "ambiguous day/month order" in f.message and "'03/04/2024'" in f.message

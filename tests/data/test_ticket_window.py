"""The daily run pulls a window of the tickets, and its features are those of their whole history.

A snapshot's support features read tickets created in the support window, rated in the CSAT
window, or open at the snapshot (`models.churn.features.account_features`). The daily path pulls
only the tickets created or solved in `TICKET_WINDOW_DAYS` before it, or not solved
(`relevant_tickets`), pushed down to the warehouse where the tickets' dates are timestamps. These
tests hold the features from the window equal to those from every ticket, the warehouse's
filter equal to the pandas rule (DuckDB, PostgreSQL, an aware instant read as UTC; SQLite and text dates read whole and cut
after), and a window too late for a snapshot refused with a message naming both dates.
"""

from __future__ import annotations

import pandas as pd
import pytest

from connectors.sources import WarehouseTicketing
from connectors.warehouse import Warehouse, WarehouseResource
from models.churn.features import account_features
from models.churn.tickets import TICKET_WINDOW_DAYS, TICKETS_SINCE, relevant_tickets, ticket_window_start
from tests.factories import random_tables

AS_OF = [pd.Timestamp("2025-09-01"), pd.Timestamp("2026-01-15"), pd.Timestamp("2026-03-01")]


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    t = random_tables(50, seed=5)
    tickets = t["tickets"].copy()
    # a ticket open for a year (created long before any window) and one without a readable date
    tickets.loc[0, ["created_at", "solved_at", "status"]] = [pd.Timestamp("2025-01-02"), pd.NaT, "open"]
    tickets.loc[1, "created_at"] = pd.NaT
    t["tickets"] = tickets
    return t


def _ids(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["ticket_id"].astype(str))


@pytest.mark.parametrize("as_of", AS_OF)
def test_features_from_the_window_equal_those_from_every_ticket(tables, as_of) -> None:
    cut = relevant_tickets(tables["tickets"], ticket_window_start(as_of))
    assert 0 < len(cut) < len(tables["tickets"])  # old solved tickets are left out
    full = account_features(tables["accounts"], tables["renewals"], tables["tickets"], tables["usage_daily"], as_of)
    windowed = account_features(tables["accounts"], tables["renewals"], cut, tables["usage_daily"], as_of)
    pd.testing.assert_frame_equal(windowed, full)
    assert full["open_tickets"].sum() > 0 and full["csat_avg_180d"].notna().any()


def test_the_window_keeps_open_and_undated_tickets_and_states_its_start(tables) -> None:
    since = ticket_window_start(AS_OF[1])
    assert since == AS_OF[1] - pd.Timedelta(days=TICKET_WINDOW_DAYS)
    cut = relevant_tickets(tables["tickets"], since)
    kept = set(cut["ticket_id"])
    assert {tables["tickets"].loc[0, "ticket_id"], tables["tickets"].loc[1, "ticket_id"]} <= kept
    old = tables["tickets"][(tables["tickets"]["created_at"] < since) & (tables["tickets"]["solved_at"] < since)]
    assert len(old) and not (set(old["ticket_id"]) & kept)
    assert cut.attrs[TICKETS_SINCE] == since
    assert TICKETS_SINCE not in tables["tickets"].attrs  # the caller's frame is untouched


def test_a_window_that_starts_after_a_snapshot_reads_is_refused(tables) -> None:
    cut = relevant_tickets(tables["tickets"], ticket_window_start(AS_OF[1]))
    with pytest.raises(ValueError, match=r"relevant since 2025-07-19 .* a snapshot at 2025-09-01 reads tickets since "
                                         r"2025-03-05: materialize support_tickets in the same run as the training set"):
        account_features(tables["accounts"], tables["renewals"], cut, tables["usage_daily"], AS_OF[0])
    # a later snapshot is covered: the same window serves it
    account_features(tables["accounts"], tables["renewals"], cut, tables["usage_daily"], AS_OF[2])


def test_dates_that_do_not_read_keep_every_ticket(tables) -> None:
    text = tables["tickets"].astype({"created_at": "string"})
    assert len(relevant_tickets(text, ticket_window_start(AS_OF[1]))) == len(text)


def _raw(tables) -> pd.DataFrame:
    return tables["tickets"].astype({"csat": "float64"})


@pytest.mark.parametrize("kind", ["duckdb", "postgresql"])
def test_the_warehouse_filters_the_window_as_the_rule_does(request, tmp_path, tables, kind) -> None:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}" if kind == "duckdb" else request.getfixturevalue("pg_database_url")
    wh = Warehouse(url)
    wh.write_table("raw_support_tickets", _raw(tables))
    source = WarehouseTicketing(warehouse=WarehouseResource(url=url))
    for as_of in AS_OF:
        since = ticket_window_start(as_of)
        pushed = wh.read_recent("raw_support_tickets", ("created_at", "solved_at"), since)
        assert pushed is not None
        expected = relevant_tickets(source.tickets(), since)
        assert _ids(pushed) == _ids(expected)
        assert _ids(source.tickets(since=since.to_pydatetime())) == _ids(expected)
        # an aware instant is UTC (landed timestamps are naive UTC, `models.clock`)
        assert _ids(source.tickets(since=since.tz_localize("UTC").to_pydatetime())) == _ids(expected)


def test_sqlite_and_text_dates_are_read_whole_and_cut_after(tmp_path, tables) -> None:
    sqlite = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    sqlite.write_table("raw_support_tickets", _raw(tables))
    since = ticket_window_start(AS_OF[1])
    assert sqlite.read_recent("raw_support_tickets", ("created_at", "solved_at"), since) is None
    duck = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    duck.write_table("raw_support_tickets", _raw(tables).astype({"created_at": "string", "solved_at": "string"}))
    assert duck.read_recent("raw_support_tickets", ("created_at", "solved_at"), since) is None
    for wh in (sqlite, duck):
        source = WarehouseTicketing(warehouse=WarehouseResource(url=wh.url))
        got = relevant_tickets(source.tickets(since=since.to_pydatetime()), since)
        assert _ids(got) == _ids(relevant_tickets(tables["tickets"], since))

"""The incremental usage_daily build on DuckDB, SQLite and PostgreSQL: after any sequence of
appended days, late events and reruns the table equals a full rebuild of the same events; a
rewrite of the aggregated past, a missing or foreign target and a crash are each met as the
module `connectors.usage` says."""

from __future__ import annotations


import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

import connectors.usage as usage_mod
from connectors.demo.world import DemoWorldConfig, generate_demo_world
from connectors.usage import USAGE_STATE_TABLE, rebuild_usage_daily, update_usage_daily
from connectors.warehouse import RAW_EVENTS_TABLE, Warehouse, WarehouseError

LOOKBACK = 3


@pytest.fixture(scope="module")
def world_events(tmp_path_factory) -> pd.DataFrame:
    """The raw events of a small demo world (60 accounts, 150 days), sorted by time."""
    wh = Warehouse(f"duckdb:///{tmp_path_factory.mktemp('world') / 'world.duckdb'}")
    generate_demo_world(DemoWorldConfig(n_accounts=60, seed=5, history_days=150), wh)
    events = wh.read_sql(f"SELECT * FROM {RAW_EVENTS_TABLE}")
    for col in ("account_id", "user_id", "feature"):
        events[col] = events[col].astype(str)
    events["occurred_at"] = pd.to_datetime(events["occurred_at"])
    return events.sort_values("occurred_at", kind="stable").reset_index(drop=True)


@pytest.fixture(params=["duckdb", "sqlite", "postgresql"])
def wh(request, tmp_path) -> Warehouse:
    if request.param == "postgresql":
        return Warehouse(request.getfixturevalue("pg_database_url"))
    suffix = "duckdb" if request.param == "duckdb" else "db"
    return Warehouse(f"{request.param}:///{tmp_path / f'wh.{suffix}'}")


def _day(events: pd.DataFrame) -> pd.Series:
    return events["occurred_at"].dt.normalize()


def _last_day(events: pd.DataFrame) -> pd.Timestamp:
    return _day(events).max()


def _reference(wh: Warehouse) -> pd.DataFrame:
    """A full rebuild of the same events, in another table of the same warehouse."""
    rebuild_usage_daily(wh, target="usage_reference")
    return wh.read_usage_daily(table="usage_reference")


def _assert_equals_full_rebuild(wh: Warehouse) -> pd.DataFrame:
    got = wh.read_usage_daily()
    pd.testing.assert_frame_equal(got, _reference(wh))
    return got


def _split(events: pd.DataFrame, days_held_back: int) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """The events up to the last ``days_held_back`` days, and each held-back day's events."""
    days = _day(events)
    cut = days.max() - pd.Timedelta(days=days_held_back - 1)
    later = [events[days == cut + pd.Timedelta(days=i)] for i in range(days_held_back)]
    return events[days < cut], later


def test_appended_days_then_late_events_equal_a_full_rebuild(wh, world_events):
    first, later = _split(world_events, 4)
    wh.write_table(RAW_EVENTS_TABLE, first)
    built = update_usage_daily(wh, lookback_days=LOOKBACK)
    assert built.mode == "full" and built.reason.startswith("first build: no record of an earlier build")
    assert built.rows == wh.row_count("usage_daily") > 1_000
    assert built.last_day == _last_day(first).date()
    _assert_equals_full_rebuild(wh)
    seen = first
    for i, day_events in enumerate(later):
        # the new day, plus a few events of the day before it that arrive a day late
        last = _last_day(seen)
        late = seen[_day(seen) == last].head(5).assign(occurred_at=last + pd.Timedelta(hours=12))
        oldest = last - pd.Timedelta(days=LOOKBACK)
        if i == 2:  # and on one day, late events for the oldest day of the lookback, of a new user
            late = pd.concat([late, seen[_day(seen) == oldest].head(3).assign(user_id="USR-LATE")])
        users_before = wh.read_usage_daily(oldest.date(), (oldest + pd.Timedelta(days=1)).date())["active_users"].sum()
        arriving = pd.concat([day_events, late])
        wh.append_table(RAW_EVENTS_TABLE, arriving)
        old_window_rows = len(wh.read_usage_daily(oldest.date()))
        built = update_usage_daily(wh, lookback_days=LOOKBACK)
        seen = pd.concat([seen, arriving])
        assert built.mode == "incremental", built.reason
        assert built.window_start == oldest.date() and built.last_day == _last_day(seen).date()
        assert built.days == LOOKBACK + 2  # the lookback, the last aggregated day and the new one
        assert built.rows_replaced == old_window_rows
        got = _assert_equals_full_rebuild(wh)
        assert built.rows == len(got) and built.rows_written == int((got["date"] >= oldest).sum())
        users_after = got.loc[got["date"] == oldest, "active_users"].sum()
        late_accounts = seen.loc[(seen["user_id"] == "USR-LATE") & (_day(seen) == oldest), "account_id"].nunique()
        assert users_after == users_before + late_accounts and (i != 2 or late_accounts > 0)
    expected_events = seen.groupby(_day(seen))["quantity"].sum()
    assert got.groupby("date")["events"].sum().astype(int).to_dict() == expected_events.astype(int).to_dict()


def test_a_rerun_changes_nothing(wh, world_events):
    wh.write_table(RAW_EVENTS_TABLE, world_events)
    update_usage_daily(wh)
    before = wh.read_usage_daily()
    for _ in range(2):
        again = update_usage_daily(wh)
        assert again.mode == "incremental" and again.rows_replaced == again.rows_written > 0
        pd.testing.assert_frame_equal(wh.read_usage_daily(), before)
    assert again.window_start == (_last_day(world_events) - pd.Timedelta(days=3)).date()  # the default lookback


@pytest.mark.parametrize("change", ["late_before_lookback", "deleted", "quantity_rewritten", "undated", "undated_arrived"])
def test_a_rewrite_of_the_aggregated_past_rebuilds_everything(wh, world_events, change):
    first, _ = _split(world_events, 2)
    wh.write_table(RAW_EVENTS_TABLE, first)
    update_usage_daily(wh, lookback_days=LOOKBACK)
    old_day = (_last_day(first) - pd.Timedelta(days=LOOKBACK + 1)).date()
    quoted = wh.engine.dialect.identifier_preparer.quote
    if change == "late_before_lookback":  # one day later than the lookback allows
        wh.append_table(RAW_EVENTS_TABLE, first[_day(first) == pd.Timestamp(old_day)].head(1).assign(user_id="USR-LATE"))
    elif change == "undated_arrived":  # events with no time at all belong to no window
        wh.append_table(RAW_EVENTS_TABLE, first.head(2).assign(occurred_at=pd.NaT))
    with wh.engine.begin() as conn:
        if change == "deleted":
            conn.execute(sa.text(f"DELETE FROM {RAW_EVENTS_TABLE} WHERE account_id = :a"), {"a": first["account_id"].iloc[0]})
        elif change == "quantity_rewritten":
            conn.execute(sa.text(f"UPDATE {RAW_EVENTS_TABLE} SET {quoted('quantity')} = {quoted('quantity')} + 1 "
                                 f"WHERE user_id = :u"), {"u": first["user_id"].iloc[0]})
        elif change == "undated":
            conn.execute(sa.text(f"UPDATE {RAW_EVENTS_TABLE} SET occurred_at = NULL WHERE user_id = :u"),
                         {"u": first["user_id"].iloc[0]})
    built = update_usage_daily(wh, lookback_days=LOOKBACK)
    assert built.mode == "full"
    assert "changed since the last build" in built.reason and "before" in built.reason
    _assert_equals_full_rebuild(wh)
    assert update_usage_daily(wh, lookback_days=LOOKBACK).mode == "incremental"  # and the next build is incremental again


def test_lookback_is_configurable(wh, world_events):
    first, later = _split(world_events, 1)
    wh.write_table(RAW_EVENTS_TABLE, first)
    update_usage_daily(wh, lookback_days=0)
    last = _last_day(first)
    # lookback 0 re-does the last aggregated day only: a late event on it is picked up...
    wh.append_table(RAW_EVENTS_TABLE, first[_day(first) == last].head(2).assign(user_id="USR-LATE"))
    built = update_usage_daily(wh, lookback_days=0)
    assert built.mode == "incremental" and built.window_start == last.date() and built.days == 1
    _assert_equals_full_rebuild(wh)
    # ...one on the day before is older than the lookback: a full rebuild
    wh.append_table(RAW_EVENTS_TABLE, first[_day(first) == last - pd.Timedelta(days=1)].head(1).assign(user_id="USR-LATE"))
    assert update_usage_daily(wh, lookback_days=0).mode == "full"
    # a longer lookback applies at once
    built = update_usage_daily(wh, lookback_days=10)
    assert built.mode == "incremental" and built.window_start == (last - pd.Timedelta(days=10)).date()
    _assert_equals_full_rebuild(wh)
    for bad in (-1, 93, 2.5, "3", True):
        with pytest.raises(WarehouseError, match="lookback_days must be a whole number of days from 0 to 92"):
            update_usage_daily(wh, lookback_days=bad)


def test_a_missing_foreign_or_reshaped_target_rebuilds(wh, world_events):
    wh.write_table(RAW_EVENTS_TABLE, world_events)
    update_usage_daily(wh)
    full = wh.read_usage_daily()
    wh.drop_table("usage_daily")
    built = update_usage_daily(wh)
    assert (built.mode, built.reason) == ("full", "usage_daily is missing")
    pd.testing.assert_frame_equal(wh.read_usage_daily(), full)
    wh.write_table("usage_daily", full.head(10))  # someone else's table, of the right shape
    built = update_usage_daily(wh)
    assert built.mode == "full" and "holds 10 rows, the last build left" in built.reason
    pd.testing.assert_frame_equal(wh.read_usage_daily(), full)
    wh.write_table("usage_daily", full.drop(columns=["core_events"]))
    built = update_usage_daily(wh)
    assert built.mode == "full" and "not the usage columns" in built.reason
    pd.testing.assert_frame_equal(wh.read_usage_daily(), full)
    assert update_usage_daily(wh, full=True).reason == "full rebuild requested"
    wh.write_table("other_events", world_events)
    built = update_usage_daily(wh, source="other_events")
    assert built.reason == "the last build of usage_daily read raw_product_events, this one reads other_events"
    pd.testing.assert_frame_equal(wh.read_usage_daily(), full)
    wh.drop_table("other_events")
    wh.drop_table(USAGE_STATE_TABLE)
    assert update_usage_daily(wh).reason.startswith("first build: no record of an earlier build (usage_daily_state is missing)")


def test_a_crash_leaves_the_old_table_and_state(wh, world_events, monkeypatch):
    first, later = _split(world_events, 1)
    wh.write_table(RAW_EVENTS_TABLE, first)
    update_usage_daily(wh)
    before = wh.read_usage_daily()
    state = wh.read_sql(f"SELECT * FROM {USAGE_STATE_TABLE}")
    wh.append_table(RAW_EVENTS_TABLE, later[0])

    def crash(conn, row):
        raise RuntimeError("connection lost")

    monkeypatch.setattr(usage_mod, "record_state", crash)  # after the delete and the insert
    for full in (False, True):
        with pytest.raises(RuntimeError, match="connection lost"):
            update_usage_daily(wh, full=full)
        pd.testing.assert_frame_equal(wh.read_usage_daily(), before)
        pd.testing.assert_frame_equal(wh.read_sql(f"SELECT * FROM {USAGE_STATE_TABLE}"), state)
    with wh.engine.connect() as conn:
        assert sorted(sa.inspect(conn).get_table_names()) == sorted([RAW_EVENTS_TABLE, "usage_daily", USAGE_STATE_TABLE])
    monkeypatch.undo()
    assert update_usage_daily(wh).mode == "incremental"
    _assert_equals_full_rebuild(wh)


@pytest.mark.parametrize("backend", ["duckdb", "postgresql"])
def test_an_event_written_while_a_build_runs_is_not_lost(backend, tmp_path, request, world_events, monkeypatch):
    """Another writer adds an event of the window after the aggregate read the events and before
    the state's fingerprint: the build's one snapshot leaves it out of both, so the next build
    sees the past changed instead of taking it for aggregated. (SQLite: the build's write lock
    keeps other writers out until it commits.)"""
    url = request.getfixturevalue("pg_database_url") if backend == "postgresql" else f"duckdb:///{tmp_path / 'wh.duckdb'}"
    wh = Warehouse(url)
    first, later = _split(world_events, 1)
    wh.write_table(RAW_EVENTS_TABLE, first)
    update_usage_daily(wh)
    wh.append_table(RAW_EVENTS_TABLE, later[0])
    window_day = _last_day(first) - pd.Timedelta(days=3)
    concurrent = first[_day(first) == window_day].head(1).assign(user_id="USR-CONCURRENT")
    original, calls = usage_mod._Build.fingerprint, []

    def fingerprint(self, boundary):
        calls.append(boundary)
        if len(calls) == 2:  # the second one: after the aggregate, for the next build
            Warehouse(url).append_table(RAW_EVENTS_TABLE, concurrent)
        return original(self, boundary)

    monkeypatch.setattr(usage_mod._Build, "fingerprint", fingerprint)
    built = update_usage_daily(wh)
    assert built.mode == "incremental" and len(calls) == 2 and calls[1] > window_day.date()
    monkeypatch.undo()
    after = update_usage_daily(wh)
    assert after.mode == "full" and "changed since the last build" in after.reason
    got = _assert_equals_full_rebuild(wh)
    assert len(got[(got["date"] == window_day)]) > 0


def test_bad_raw_events_are_named_and_nothing_is_written(wh, world_events):
    with pytest.raises(WarehouseError, match="table 'raw_product_events' does not exist"):
        update_usage_daily(wh)
    wh.write_table(RAW_EVENTS_TABLE, world_events.drop(columns=["quantity", "feature"]))
    with pytest.raises(WarehouseError, match="lacks the raw event column.s. feature, quantity"):
        update_usage_daily(wh)
    assert not wh.table_exists("usage_daily") and not wh.table_exists(USAGE_STATE_TABLE)


def test_the_asset_says_what_it_did(tmp_path, world_events, monkeypatch):
    from assets.sources import product_usage_daily
    from connectors.warehouse import WarehouseResource

    wh = Warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    first, later = _split(world_events, 1)
    wh.write_table(RAW_EVENTS_TABLE, first)

    def materialize(config: dict | None = None) -> dg.ExecuteInProcessResult:
        return dg.materialize([product_usage_daily], resources={"warehouse": WarehouseResource(url=wh.url)},
                              run_config={"ops": {"product_usage_daily": {"config": config}}} if config else None,
                              raise_on_error=False)

    def run(config: dict | None = None) -> dict:
        result = materialize(config)
        assert result.success
        event = next(e for e in result.get_asset_materialization_events())
        return {k: v.value for k, v in event.materialization.metadata.items()}

    meta = run()
    assert meta["build"] == "full" and meta["build_reason"].startswith("first build")
    assert meta["origin"] == "built from raw_product_events (full)"
    wh.append_table(RAW_EVENTS_TABLE, later[0])
    meta = run()
    last = _last_day(world_events)
    assert meta["build"] == "incremental" and meta["days_reaggregated"] == 5
    assert meta["window_start"] == str((last - pd.Timedelta(days=4)).date()) and meta["last_day"] == str(last.date())
    assert meta["rows_replaced"] > 0 and meta["rows_written"] > meta["rows_replaced"]  # a new day's rows
    assert meta["dagster/row_count"] == wh.row_count("usage_daily") and meta["lookback_days"] == 3
    meta = run({"lookback_days": 7})
    assert meta["build"] == "incremental" and meta["window_start"] == str((last - pd.Timedelta(days=7)).date())
    meta = run({"full_rebuild": True})
    assert (meta["build"], meta["build_reason"]) == ("full", "full rebuild requested")
    _assert_equals_full_rebuild(wh)
    # the deployment's lookback
    monkeypatch.setenv("RESCUE_USAGE_LOOKBACK_DAYS", "5")
    meta = run()
    assert meta["lookback_days"] == 5 and meta["window_start"] == str((last - pd.Timedelta(days=5)).date())
    for bad, words in (("abc", "RESCUE_USAGE_LOOKBACK_DAYS='abc' is not a whole number of days from 0 to 92"),
                       ("93", "RESCUE_USAGE_LOOKBACK_DAYS='93' is not a whole number of days from 0 to 92")):
        monkeypatch.setenv("RESCUE_USAGE_LOOKBACK_DAYS", bad)
        before = wh.read_usage_daily()
        failed = materialize()
        assert not failed.success
        failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
        assert words in failure.step_failure_data.error.message
        pd.testing.assert_frame_equal(wh.read_usage_daily(), before)
    monkeypatch.setenv("RESCUE_USAGE_LOOKBACK_DAYS", "1")
    meta = run({"lookback_days": 0})  # the run config wins
    assert meta["lookback_days"] == 0


def test_the_full_build_in_day_batches_equals_one_aggregate(wh, world_events, monkeypatch):
    """Above `FULL_BUILD_BATCH_EVENTS` the full build aggregates runs of whole days one at a
    time: the same table as one GROUP BY of every event, every account and day exactly once."""
    wh.write_table(RAW_EVENTS_TABLE, world_events)
    whole = rebuild_usage_daily(wh, target="usage_whole")
    per_batch = max(len(world_events) // 7, 1)
    monkeypatch.setattr(usage_mod, "FULL_BUILD_BATCH_EVENTS", per_batch)
    seen: list[int] = []
    batches = usage_mod._Build.day_batches
    monkeypatch.setattr(usage_mod._Build, "day_batches", lambda self: seen.append(len(found := batches(self))) or found)
    batched = rebuild_usage_daily(wh)
    assert seen and seen[0] >= 7  # runs of days of at most `per_batch` events each
    assert batched.rows == whole.rows > 0
    got = wh.read_usage_daily()
    pd.testing.assert_frame_equal(got, wh.read_usage_daily(table="usage_whole"))
    assert not got.duplicated(["account_id", "date"]).any()
    assert set(got["account_id"]) == set(world_events["account_id"])
    if wh.dialect == "duckdb":  # stored oldest day first, so a daily run's DELETE touches only the last row groups
        stored = wh.read_sql("SELECT date FROM usage_daily")["date"]
        assert pd.to_datetime(stored).is_monotonic_increasing

"""Snapshot partitions follow the data (`assets.partitions`): a company's history from 2024 has
snapshots from 2024; `RESCUE_SNAPSHOT_START` wins; an absent or unreadable warehouse falls back
to two years before today; a date outside the partitions is one line naming the valid range, from
`rescue run --snapshot` and from the daily schedule."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from typer.testing import CliRunner

from assets.partitions import (
    FALLBACK_HISTORY_DAYS,
    FEATURE_HISTORY_DAYS,
    SnapshotOutOfRange,
    earliest_activity,
    snapshot_key,
    snapshot_partitions_for,
)
from connectors.settings import SettingError, current, declared_names
from connectors.warehouse import Warehouse
from models.churn.features import USAGE_WINDOW_DAYS
from pipelines.cli import runner
from pipelines.cli.main import app
from tests.faults.conftest import assert_clean_failure

cli = CliRunner()
TODAY = dt.datetime.now(dt.UTC).date()
#: A test of this module takes well under this long; none may straddle a UTC midnight.
MIDNIGHT_MARGIN_S = 120


@pytest.fixture(autouse=True)
def _today_holds_for_the_whole_test():
    """The partitions end today (UTC): a test that started just before midnight would compare
    its own "today" with the next day's. Wait out the last `MIDNIGHT_MARGIN_S` seconds of the day."""
    global TODAY
    now = dt.datetime.now(dt.UTC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
    if (midnight - now).total_seconds() < MIDNIGHT_MARGIN_S:
        time.sleep((midnight - now).total_seconds() + 1)
    TODAY = dt.datetime.now(dt.UTC).date()


def _clean_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for name in declared_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("RESCUE_HOME", str(home))
    monkeypatch.setattr(runner, "_verbose", False)


def _history_from_2024(url: str, *, usage_from: str = "2024-01-08", tickets_from: str = "2024-01-03") -> None:
    """A company's own exports: tickets and product events in 2024, nothing of the demo world."""
    wh = Warehouse(url)
    days = pd.date_range(usage_from, "2024-12-20", freq="D")
    wh.write_table("raw_product_events", pd.DataFrame({
        "account_id": "ACME-1", "user_id": "u1", "occurred_at": days + pd.Timedelta(hours=10),
        "feature": "core", "quantity": 2}))
    wh.write_table("raw_support_tickets", pd.DataFrame({
        "ticket_id": ["Z-1", "Z-2"], "account_id": ["ACME-1", "ACME-1"],
        "created_at": [f"{tickets_from}T09:00:00Z", "2024-11-02T16:30:00Z"]}))


def test_the_feature_window_is_the_history_a_first_snapshot_needs():
    assert FEATURE_HISTORY_DAYS == USAGE_WINDOW_DAYS == 90


def test_history_from_2024_starts_the_partitions_at_its_first_usable_date(tmp_path):
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    _history_from_2024(url)
    found, _ = earliest_activity(url)
    assert found == {"usage": dt.date(2024, 1, 8), "tickets": dt.date(2024, 1, 3)}
    partitions = snapshot_partitions_for(url, current({}))
    # the earliest of usage and tickets, plus the feature window
    assert partitions.get_first_partition_key() == "2024-04-02"
    assert partitions.get_last_partition_key() == TODAY.isoformat()
    assert snapshot_key("2024-06-03", partitions) == "2024-06-03"
    with pytest.raises(SnapshotOutOfRange) as refused:
        snapshot_key(dt.date(2024, 3, 1), partitions)
    assert str(refused.value) == (
        f"snapshot 2024-03-01 is outside the snapshot partitions: 2024-04-02 .. {TODAY.isoformat()} "
        "(first: the data's first usable date: first tickets 2024-01-03 + 90 days of feature history)")
    # the daily aggregate, once built, is read instead of the raw events
    Warehouse(url).build_usage_daily()
    Warehouse(url).drop_table("raw_product_events")
    assert earliest_activity(url)[0]["usage"] == dt.date(2024, 1, 8)


def test_the_setting_wins_and_rescue_now_ends_the_partitions_on_its_day(tmp_path):
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    _history_from_2024(url)
    settings = current({"RESCUE_SNAPSHOT_START": "2024-02-01", "RESCUE_NOW": "2024-12-31T06:00:00Z"})
    partitions = snapshot_partitions_for(url, settings)
    assert (partitions.get_first_partition_key(), partitions.get_last_partition_key()) == ("2024-02-01", "2024-12-31")
    with pytest.raises(SnapshotOutOfRange, match=r"2025-01-01 is outside .*2024-02-01 \.\. 2024-12-31 \(first: RESCUE_SNAPSHOT_START\)"):
        snapshot_key("2025-01-01", partitions)
    with pytest.raises(SettingError, match="RESCUE_SNAPSHOT_START='spring' is not a date"):
        snapshot_partitions_for(url, current({"RESCUE_SNAPSHOT_START": "spring"}))


def test_an_absent_or_unreadable_warehouse_falls_back_to_two_years_before_today(tmp_path):
    missing = tmp_path / "nothing-here.duckdb"
    partitions = snapshot_partitions_for(f"duckdb:///{missing}", current({}))
    assert partitions.get_first_partition_key() == (TODAY - dt.timedelta(days=FALLBACK_HISTORY_DAYS)).isoformat()
    assert not missing.exists(), "reading the partitions created the warehouse file"
    pinned = snapshot_partitions_for(f"duckdb:///{missing}", current({"RESCUE_NOW": "2024-12-31T06:00:00Z"}))
    assert pinned.get_first_partition_key() == (dt.date(2024, 12, 31) - dt.timedelta(days=FALLBACK_HISTORY_DAYS)).isoformat()
    # a file that is not a database, and a server that does not resolve: the fallback, at once
    (tmp_path / "junk.duckdb").write_text("not a database")
    started = time.monotonic()
    for url in (f"duckdb:///{tmp_path / 'junk.duckdb'}", "postgresql+psycopg://rescue:pw@db.invalid/warehouse"):
        found, why = earliest_activity(url)
        assert found == {} and "could not be read" in why, (url, why)
    assert time.monotonic() - started < 30
    # an empty warehouse: no dated usage or tickets
    Warehouse(f"duckdb:///{tmp_path / 'empty.duckdb'}").write_table("other", pd.DataFrame({"x": [1]}))
    assert earliest_activity(f"duckdb:///{tmp_path / 'empty.duckdb'}") == ({}, "the warehouse holds no dated usage or tickets")


def test_too_little_history_is_no_partition_yet_in_one_line(tmp_path):
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    recent = pd.Timestamp(TODAY - dt.timedelta(days=30))
    Warehouse(url).write_table("raw_support_tickets", pd.DataFrame({"ticket_id": ["N-1"], "created_at": [recent]}))
    partitions = snapshot_partitions_for(url, current({}))
    assert partitions.get_first_partition_key() is None
    with pytest.raises(SnapshotOutOfRange, match=r"none yet: the first is .* after today"):
        snapshot_key(TODAY, partitions)


def test_rescue_run_finds_a_2024_snapshot_of_a_2024_history(tmp_path, monkeypatch):
    home = tmp_path / "home"
    _clean_env(monkeypatch, home)
    home.mkdir()
    _history_from_2024(f"duckdb:///{home / 'warehouse.duckdb'}")
    result = cli.invoke(app, ["run", "--snapshot", "2024-06-03"])
    # the partition is found and the run starts: it fails on the CRM export this history lacks
    assert result.exit_code == 1, result.output
    assert "outside" not in result.output
    assert_clean_failure(result.output, names=["asset crm_accounts failed", "raw_crm_accounts", "not found"], exit_code=1)
    assert result.output.strip().splitlines()[-1].startswith("daily_rescue_job 2024-06-03 failed")
    # before the first usable date: one line with the range, nothing runs
    result = cli.invoke(app, ["run", "--snapshot", "2024-01-03"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: snapshot 2024-01-03 is outside the daily partitions of daily_rescue_job: 2024-04-02 .. "
        f"{TODAY.isoformat()} (first: the data's first usable date: first tickets 2024-01-03 + 90 days of "
        "feature history)"]
    monkeypatch.setenv("RESCUE_SNAPSHOT_START", "03/04/2024")
    result = cli.invoke(app, ["run", "--snapshot", "2024-06-03"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: RESCUE_SNAPSHOT_START='03/04/2024' is not a date: give it as YYYY-MM-DD"]


def test_the_daily_schedule_skips_a_day_outside_the_partitions_in_one_line(tmp_path, monkeypatch):
    from pipelines.definitions import build_definitions

    home = tmp_path / "home"
    _clean_env(monkeypatch, home)
    home.mkdir()
    _history_from_2024(f"duckdb:///{home / 'warehouse.duckdb'}")
    defs = build_definitions()
    schedule = defs.resolve_schedule_def("daily_rescue_schedule")
    repo = defs.get_repository_def()
    with dg.instance_for_test() as instance:
        def tick(day: dt.datetime):
            context = dg.build_schedule_context(instance=instance, scheduled_execution_time=day, repository_def=repo)
            return schedule.evaluate_tick(context)

        inside = tick(dt.datetime(2024, 6, 3, 6, 0, tzinfo=dt.UTC))
        assert [(r.partition_key, r.run_key) for r in inside.run_requests] == [("2024-06-03", "2024-06-03")]
        outside = tick(dt.datetime(2024, 2, 1, 6, 0, tzinfo=dt.UTC))
        assert not outside.run_requests
        assert outside.skip_message.startswith(
            "snapshot 2024-02-01 is outside the daily partitions of daily_rescue_job: 2024-04-02 .. ")
        assert "\n" not in outside.skip_message


def test_the_first_usable_date_is_read_from_sqlite_and_postgresql(queue_url):
    """Any SQL warehouse (the `queue_url` fixture's empty database, on each backend)."""
    Warehouse(queue_url).write_table("raw_support_tickets", pd.DataFrame({
        "ticket_id": ["Z-1", "Z-2"], "created_at": [pd.Timestamp("2023-03-10 08:00"), pd.Timestamp("2024-02-01 10:00")]}))
    assert earliest_activity(queue_url) == ({"tickets": dt.date(2023, 3, 10)}, "")
    assert snapshot_partitions_for(queue_url, current({})).get_first_partition_key() == "2023-06-08"

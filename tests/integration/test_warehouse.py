"""The warehouse client on real DuckDB and SQLite files: writes, reads, atomic replacement and
the in-warehouse usage aggregation checked against a pandas reference."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from connectors.demo.world import EVENTS_TABLE, DemoWorldConfig, generate_demo_world
from connectors.warehouse import Warehouse, WarehouseError, WarehouseResource
from models.contracts import ACCOUNTS, USAGE_DAILY, ContractError, conform

DIALECTS = ("duckdb", "sqlite")


def _warehouse(tmp_path, dialect: str) -> Warehouse:
    suffix = "duckdb" if dialect == "duckdb" else "db"
    return Warehouse(f"{dialect}:///{tmp_path / f'wh.{suffix}'}")


def _frame(n: int, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame({
        "id": np.arange(offset, offset + n, dtype="int64"),
        "label": pd.Categorical([f"k{i % 3}" for i in range(n)]),
        "at": pd.date_range("2026-01-01", periods=n, freq="h"),
        "value": np.linspace(0, 1, n),
        "flag": np.arange(n) % 2 == 0,
    })


def _reference_usage(events: pd.DataFrame) -> pd.DataFrame:
    """The usage_daily aggregation done in pandas, to check the SQL against."""
    ev = events.assign(
        date=pd.to_datetime(events["occurred_at"]).dt.normalize(),
        core=events["quantity"].where(events["feature"] == "core", 0),
        advanced=events["quantity"].where(events["feature"] == "advanced", 0),
    )
    out = ev.groupby(["account_id", "date"], as_index=False).agg(
        active_users=("user_id", "nunique"),
        events=("quantity", "sum"),
        core_events=("core", "sum"),
        advanced_events=("advanced", "sum"),
    )
    return conform(out, USAGE_DAILY).sort_values(["account_id", "date"]).reset_index(drop=True)


@pytest.fixture(scope="module", params=DIALECTS)
def world_warehouse(request, tmp_path_factory) -> Warehouse:
    wh = _warehouse(tmp_path_factory.mktemp(request.param), request.param)
    generate_demo_world(DemoWorldConfig(n_accounts=60, seed=21, history_days=150), wh)
    return wh


def test_usage_daily_built_in_sql_equals_the_pandas_reference(world_warehouse):
    wh = world_warehouse
    rows = wh.build_usage_daily()
    events = wh.read_sql(f"SELECT * FROM {EVENTS_TABLE}")
    expected = _reference_usage(events)
    got = wh.read_usage_daily()
    assert rows == len(expected) == len(got) > 1_000
    pd.testing.assert_frame_equal(got, expected)


def test_read_usage_daily_filters_dates_and_accounts(world_warehouse):
    wh = world_warehouse
    wh.build_usage_daily()
    full = wh.read_usage_daily()
    start, end = full["date"].min() + pd.Timedelta(days=20), full["date"].min() + pd.Timedelta(days=50)
    some = sorted(full["account_id"].unique())[:5]
    part = wh.read_usage_daily(start.date(), end.date(), account_ids=some)
    expected = full[(full["date"] >= start) & (full["date"] < end) & full["account_id"].isin(some)]
    pd.testing.assert_frame_equal(part, expected.reset_index(drop=True))
    assert len(part) > 0


@pytest.mark.parametrize("dialect", DIALECTS)
def test_write_append_and_read_round_trip(tmp_path, dialect):
    wh = _warehouse(tmp_path, dialect)
    assert wh.dialect == dialect
    assert not wh.table_exists("things")
    assert wh.write_table("things", _frame(5)) == 5
    assert wh.append_table("things", _frame(3, offset=5)) == 3
    got = wh.read_sql("SELECT * FROM things WHERE id >= :low ORDER BY id", {"low": 2})
    assert got["id"].tolist() == [2, 3, 4, 5, 6, 7]
    assert got["label"].tolist() == ["k2", "k0", "k1", "k0", "k1", "k2"]
    assert pd.to_datetime(got["at"]).iloc[0] == pd.Timestamp("2026-01-01 02:00")
    assert wh.write_table("things", _frame(2), if_exists="replace") == 2
    assert wh.row_count("things") == 2
    with pytest.raises(WarehouseError, match="already exists"):
        wh.write_table("things", _frame(1), if_exists="fail")
    with pytest.raises(WarehouseError, match="if_exists"):
        wh.write_table("things", _frame(1), if_exists="truncate")
    with pytest.raises(WarehouseError, match="invalid table name"):
        wh.write_table("things; DROP TABLE x", _frame(1))


class _CrashingSwap(Warehouse):
    """Crashes right after the old table was dropped, inside the replacing transaction."""

    def _swap(self, conn, renames):
        super()._swap(conn, renames)
        raise RuntimeError("connection lost")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_failed_replace_leaves_the_old_table(tmp_path, dialect):
    wh = _warehouse(tmp_path, dialect)
    wh.write_table("things", _frame(4))
    crashing = _CrashingSwap(wh.url)
    with pytest.raises(RuntimeError, match="connection lost"):
        crashing.write_table("things", _frame(9))
    assert wh.row_count("things") == 4
    with wh.engine.connect() as conn:
        leftovers = [t for t in sa.inspect(conn).get_table_names() if t != "things"]
    assert leftovers == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_failed_usage_rebuild_leaves_the_old_usage(tmp_path, dialect):
    wh = _warehouse(tmp_path, dialect)
    events = pd.DataFrame({
        "account_id": ["A", "A", "B"], "user_id": ["u1", "u2", "u3"],
        "occurred_at": pd.to_datetime(["2026-03-01 09:00", "2026-03-01 17:00", "2026-03-02 08:00"]),
        "feature": ["core", "advanced", "core"], "quantity": [2, 3, 4],
    })
    wh.write_table(EVENTS_TABLE, events)
    assert wh.build_usage_daily() == 2
    wh.append_table(EVENTS_TABLE, events.assign(occurred_at=events["occurred_at"] + pd.Timedelta(days=5)))
    with pytest.raises(RuntimeError):
        _CrashingSwap(wh.url).build_usage_daily()
    assert wh.row_count("usage_daily") == 2
    assert wh.build_usage_daily() == 4


@pytest.mark.parametrize("dialect", DIALECTS)
def test_promote_replaces_several_tables_together(tmp_path, dialect):
    wh = _warehouse(tmp_path, dialect)
    wh.write_table("a", _frame(1))
    wh.write_table("a_new", _frame(2))
    wh.write_table("b_new", _frame(3))
    wh.promote({"a_new": "a", "b_new": "b"})
    assert (wh.row_count("a"), wh.row_count("b")) == (2, 3)
    assert not wh.table_exists("a_new") and not wh.table_exists("b_new")
    with pytest.raises(WarehouseError, match="'missing_new' does not exist"):
        wh.promote({"missing_new": "a"})


@pytest.mark.parametrize("dialect", DIALECTS)
def test_promote_appends_rows_with_a_new_column_to_an_older_table(tmp_path, dialect):
    """A manifest written before a column existed: the next promote adds it, keeps every
    earlier row (the new column empty in them), and appends the new row."""
    wh = _warehouse(tmp_path, dialect)
    wh.write_table("log", _frame(2))
    wh.write_table("t_new", _frame(1))
    newer = _frame(1, offset=10).assign(note=["{\"a\": 1}"], count=[3], share=[0.5])
    wh.promote({"t_new": "t"}, append={"log": newer})
    rows = wh.read_sql("SELECT * FROM log ORDER BY id")
    assert list(rows["id"]) == [0, 1, 10] and {"note", "count", "share"} <= set(rows.columns)
    assert rows["note"].iloc[:2].isna().all() and rows["note"].iloc[2] == '{"a": 1}'
    assert float(rows["share"].iloc[2]) == 0.5 and int(rows["count"].iloc[2]) == 3
    assert wh.row_count("t") == 1


@pytest.mark.parametrize("dialect", DIALECTS)
def test_read_contract_table_names_missing_columns_and_tables(tmp_path, dialect):
    wh = _warehouse(tmp_path, dialect)
    accounts = pd.DataFrame({
        "account_id": ["ACC-1"], "name": ["Northfield Labs"], "segment": ["smb"], "industry": ["Software"],
        "region": ["EMEA"], "arr": [9_000.0], "plan": ["Team"], "seats": [5], "csm_owner": [None],
        "created_at": [pd.Timestamp("2025-02-01")],
    })
    wh.write_table("raw_accounts", accounts)
    got = wh.read_contract_table("raw_accounts", ACCOUNTS)
    assert got["arr"].dtype == "float64" and got["created_at"].iloc[0] == pd.Timestamp("2025-02-01")
    wh.write_table("raw_accounts", accounts.drop(columns=["seats"]))
    with pytest.raises(ContractError, match="seats"):
        wh.read_contract_table("raw_accounts", ACCOUNTS)
    with pytest.raises(WarehouseError, match="'nowhere' does not exist"):
        wh.read_contract_table("nowhere", ACCOUNTS)
    with pytest.raises(WarehouseError, match="raw_product_events"):
        wh.build_usage_daily()


def test_resource_defaults_to_the_configured_url(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'configured.db'}"
    monkeypatch.setenv("RESCUE_WAREHOUSE_URL", url)
    assert WarehouseResource().get_client().url == url
    explicit = f"duckdb:///{tmp_path / 'explicit.duckdb'}"
    assert WarehouseResource(url=explicit).get_client().dialect == "duckdb"
    monkeypatch.delenv("RESCUE_WAREHOUSE_URL")
    monkeypatch.setenv("RESCUE_HOME", str(tmp_path / "home"))
    default = WarehouseResource().get_client()
    assert default.dialect == "duckdb" and str(tmp_path / "home") in default.url


def test_duckdb_engine_keeps_no_connection_open(tmp_path):
    """A DuckDB file allows one writer process: after a call, another process could open it."""
    wh = _warehouse(tmp_path, "duckdb")
    wh.write_table("things", _frame(3))
    # A connection with a different configuration can only open the file if none is open here.
    with duckdb.connect(str(tmp_path / "wh.duckdb"), config={"memory_limit": "123MB"}) as other:
        assert other.execute("SELECT COUNT(*) FROM things").fetchone() == (3,)
    assert wh.row_count("things") == 3  # and the client still works afterwards


@pytest.mark.parametrize("dialect", DIALECTS)
def test_replace_partition_is_idempotent_and_leaves_other_partitions(tmp_path, dialect):
    wh = _warehouse(tmp_path, dialect)
    day = lambda d, n, v: pd.DataFrame({"snapshot_date": [d] * n, "account_id": [f"a{i}" for i in range(n)], "v": [v] * n})  # noqa: E731
    assert wh.replace_partition("hist", day("2026-01-01", 3, 1.0), "snapshot_date", "2026-01-01") == 3
    wh.replace_partition("hist", day("2026-01-02", 2, 2.0), "snapshot_date", "2026-01-02")
    wh.replace_partition("hist", day("2026-01-02", 4, 3.0), "snapshot_date", "2026-01-02")  # rerun
    got = wh.read_sql("SELECT snapshot_date, COUNT(*) AS n, MAX(v) AS v FROM hist GROUP BY snapshot_date ORDER BY snapshot_date")
    assert got["n"].tolist() == [3, 4]
    assert got["v"].tolist() == [1.0, 3.0]
    with pytest.raises(WarehouseError, match="snapshot_date != "):
        wh.replace_partition("hist", day("2026-01-03", 1, 0.0), "snapshot_date", "2026-01-04")
    assert wh.row_count("hist") == 7

"""The manifest of landed data: one ``rescue_data_meta`` row per `rescue data load`.

Each row says which mapping landed what: the mapping's path, name and content hash, when, the
tables and their row counts, the first and last day of the data, and whether ``usage_daily`` was
landed (then the usage step uses it as it is instead of rebuilding it from raw product events).
The demo commands read it too: a warehouse with landed data is the user's, and the demo never
writes over it.

This module is on the daily path (the usage step), so it imports nothing but the warehouse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from connectors.warehouse import RAW_EVENTS_TABLE, USAGE_DAILY_TABLE, Warehouse, WarehouseError

MANIFEST_TABLE = "rescue_data_meta"


def read_manifest(warehouse: Warehouse) -> dict[str, object] | None:
    """The latest manifest row (None when nothing was ever landed)."""
    if not warehouse.table_exists(MANIFEST_TABLE):
        return None
    rows = warehouse.read_sql(f"SELECT * FROM {MANIFEST_TABLE} ORDER BY landed_at DESC LIMIT 1")
    if not len(rows):
        return None
    row = rows.iloc[0].to_dict()
    row["row_counts"] = json.loads(row.get("row_counts") or "{}")
    row["tables"] = [t for t in str(row.get("tables") or "").split(",") if t]
    return row


def describe_landed(meta: dict[str, object]) -> str:
    """``data landed by `rescue data load` from PATH (NAME) at TIME``."""
    name = f" ({meta['mapping_name']})" if meta.get("mapping_name") else ""
    when = pd.Timestamp(meta["landed_at"]).strftime("%Y-%m-%d %H:%M UTC")
    return f"data landed by `rescue data load` from {meta['mapping_path']}{name} at {when}"


def manifest_row(*, mapping_path: str, mapping_name: str | None, mapping_hash: str, landed_at: pd.Timestamp,
                 row_counts: dict[str, int], first_date: pd.Timestamp | None, last_date: pd.Timestamp,
                 usage_daily: bool, sources: dict[str, dict]) -> pd.DataFrame:
    """The manifest row of one load, as a one-row frame."""
    return pd.DataFrame([{
        "mapping_path": mapping_path,
        "mapping_name": mapping_name or "",
        "mapping_hash": mapping_hash,
        "landed_at": pd.Timestamp(landed_at),
        "tables": ",".join(row_counts),
        "row_counts": json.dumps(row_counts, sort_keys=True),
        "first_date": pd.Timestamp(first_date) if first_date is not None else pd.NaT,
        "last_date": pd.Timestamp(last_date),
        "usage_daily_landed": bool(usage_daily),
        "sources": json.dumps(sources, sort_keys=True),
    }])


@dataclass(frozen=True)
class UsageRefresh:
    rows: int
    origin: str  # where usage_daily came from, in words


def refresh_usage_daily(warehouse: Warehouse) -> UsageRefresh:
    """Make ``usage_daily`` current: the table a mapping landed, when the manifest says so;
    otherwise rebuilt from raw product events. Raises `WarehouseError` when there is neither."""
    meta = read_manifest(warehouse)
    if meta is not None and bool(meta.get("usage_daily_landed")) and warehouse.table_exists(USAGE_DAILY_TABLE):
        return UsageRefresh(warehouse.row_count(USAGE_DAILY_TABLE), describe_landed(meta))
    if warehouse.table_exists(RAW_EVENTS_TABLE):
        return UsageRefresh(warehouse.build_usage_daily(), f"built from {RAW_EVENTS_TABLE}")
    raise WarehouseError(
        f"no product usage in {warehouse.display_url}: neither {RAW_EVENTS_TABLE} nor a {USAGE_DAILY_TABLE} "
        "landed by `rescue data load` (give the mapping a usage section)"
    )

"""The manifest of landed data: one ``rescue_data_meta`` row per `rescue data load`.

Each row says which mapping landed what: the mapping's path, name and content hash, when, the
tables and their row counts, the first and last day of the data, whether ``usage_daily`` was
landed (then the usage step uses it as it is instead of rebuilding it from raw product events),
and the thresholds the mapping's ``checks:`` block set (``checks``, JSON: only those it names).
The demo commands read it too: a warehouse with landed data is the user's, and the demo never
writes over it. A manifest written before a column existed reads as if that column were empty
(``checks``: none set), and the next load adds the column (`Warehouse.promote`).

`landed_checks` is the pipeline's look at the thresholds when the Definitions load: read-only,
it never creates a warehouse file, and any problem is an answer (the defaults, saying why).

This module is on the daily path (the usage step), so it imports nothing but the warehouse, the
usage build and the thresholds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa

from connectors.usage import DEFAULT_LOOKBACK_DAYS, UsageBuild, update_usage_daily
from connectors.warehouse import RAW_EVENTS_TABLE, USAGE_DAILY_TABLE, Warehouse, WarehouseError, probe_engine
from models.plausibility import ThresholdError, thresholds_from

MANIFEST_TABLE = "rescue_data_meta"
_LATEST = f"SELECT * FROM {MANIFEST_TABLE} ORDER BY landed_at DESC LIMIT 1"


def read_manifest(warehouse: Warehouse) -> dict[str, object] | None:
    """The latest manifest row (None when nothing was ever landed)."""
    if not warehouse.table_exists(MANIFEST_TABLE):
        return None
    return _latest(warehouse.read_sql(_LATEST))


def _latest(rows: pd.DataFrame) -> dict[str, object] | None:
    if not len(rows):
        return None
    row = rows.iloc[0].to_dict()
    row["row_counts"] = _json_object(row.get("row_counts"))
    row["tables"] = [t for t in str(row.get("tables") or "").split(",") if t]
    row["checks"] = _json_object(row.get("checks"))
    return row


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _json_object(text: Any) -> dict[str, Any]:
    """A JSON object stored as text; {} for an empty cell (or a column an old manifest lacks)."""
    if not isinstance(text, str) or not text.strip():
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON object: {text[:60]!r}")
    return value


def describe_landed(meta: dict[str, object]) -> str:
    """``data landed by `rescue data load` from PATH (NAME) at TIME``."""
    name = f" ({meta['mapping_name']})" if meta.get("mapping_name") else ""
    when = pd.Timestamp(meta["landed_at"]).strftime("%Y-%m-%d %H:%M UTC")
    return f"data landed by `rescue data load` from {meta['mapping_path']}{name} at {when}"


def manifest_row(*, mapping_path: str, mapping_name: str | None, mapping_hash: str, landed_at: pd.Timestamp,
                 row_counts: dict[str, int], first_date: pd.Timestamp | None, last_date: pd.Timestamp,
                 usage_daily: bool, sources: dict[str, dict], checks: dict[str, float] | None = None) -> pd.DataFrame:
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
        "checks": json.dumps(checks or {}, sort_keys=True),
    }])


@dataclass(frozen=True)
class LandedChecks:
    """The thresholds the landed mapping set, and where they came from in words (`origin`):
    ``defaults`` when nothing was landed, ``mapping NAME (landed TIME)`` when its ``checks:``
    block set some, or the defaults with the reason the manifest did not give any."""

    overrides: dict[str, float] = field(default_factory=dict)
    origin: str = "defaults"


def landed_checks(url: str) -> LandedChecks:
    """The ``checks`` of the latest manifest row in the warehouse at `url`, read-only
    (`connectors.warehouse.probe_engine`: a missing file is not created, a DuckDB file is opened
    read-only). Never raises: no warehouse, no manifest or one that cannot be read or used is
    the defaults, and the origin says which."""
    try:
        engine = probe_engine(url)
    except Exception as exc:  # noqa: BLE001 - a bad URL: the warehouse resource says so in a run
        return LandedChecks(origin=f"defaults (the warehouse URL is not usable: {type(exc).__name__})")
    if engine is None:
        return LandedChecks()
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(MANIFEST_TABLE):
                return LandedChecks()
            meta = _latest(pd.read_sql_query(sa.text(_LATEST), conn))
    except Exception as exc:  # noqa: BLE001 - locked, unreachable, no permission, a bad row: the defaults
        return LandedChecks(origin=f"defaults (the manifest {MANIFEST_TABLE} could not be read: {type(exc).__name__})")
    finally:
        engine.dispose()
    if meta is None:
        return LandedChecks()
    when = pd.Timestamp(meta["landed_at"]).strftime("%Y-%m-%d %H:%M UTC") if pd.notna(meta.get("landed_at")) else "at an unknown time"
    mapping = f"mapping {_text(meta.get('mapping_name')) or _text(meta.get('mapping_path')) or '(unnamed)'}"
    overrides = meta["checks"]
    try:
        thresholds_from(overrides)
    except ThresholdError as exc:
        return LandedChecks(origin=f"defaults ({mapping}, landed {when}: its checks are not usable: {exc})")
    if not overrides:
        return LandedChecks(origin=f"defaults ({mapping}, landed {when}, sets no checks)")
    return LandedChecks(dict(overrides), f"{mapping} (landed {when})")


@dataclass(frozen=True)
class UsageRefresh:
    rows: int
    origin: str  # where usage_daily came from, in words
    build: UsageBuild | None = None  # what the build did; None for a landed usage_daily


def refresh_usage_daily(warehouse: Warehouse, *, lookback_days: int = DEFAULT_LOOKBACK_DAYS,
                        full: bool = False) -> UsageRefresh:
    """Make ``usage_daily`` current: the table a mapping landed, when the manifest says so;
    otherwise brought up to date from raw product events (`connectors.usage.update_usage_daily`:
    the recent days only, or a full build when it must). Raises `WarehouseError` when there is
    neither."""
    meta = read_manifest(warehouse)
    if meta is not None and bool(meta.get("usage_daily_landed")) and warehouse.table_exists(USAGE_DAILY_TABLE):
        return UsageRefresh(warehouse.row_count(USAGE_DAILY_TABLE), describe_landed(meta))
    if warehouse.table_exists(RAW_EVENTS_TABLE):
        build = update_usage_daily(warehouse, lookback_days=lookback_days, full=full)
        return UsageRefresh(build.rows, f"built from {RAW_EVENTS_TABLE} ({build.mode})", build)
    raise WarehouseError(
        f"no product usage in {warehouse.display_url}: neither {RAW_EVENTS_TABLE} nor a {USAGE_DAILY_TABLE} "
        "landed by `rescue data load` (give the mapping a usage section)"
    )

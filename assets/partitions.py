"""Partitions shared by the snapshot-level assets: one per snapshot date.

A snapshot at date D uses data strictly before D. The partitions are decided when the
Definitions load (`snapshot_partitions_for`, called by `pipelines.definitions.build_definitions`
with the warehouse it binds), so they follow the data a company has landed instead of a fixed
year. The first partition, first match wins:

1. **The setting**: ``RESCUE_SNAPSHOT_START`` (an ISO date).
2. **The data's first usable date**: the earliest product-usage or ticket date in the warehouse
   plus `FEATURE_HISTORY_DAYS` (the feature window of `models.churn.features`: 90 days of usage
   and tickets), the first snapshot whose features have a whole window behind them. The earliest
   date is read cheaply and defensively: ``MIN(date)`` of ``usage_daily`` (``MIN(occurred_at)``
   of ``raw_product_events`` while ``usage_daily`` is not built yet) and ``MIN(created_at)`` of
   ``raw_support_tickets``, the tables the source assets read (the demo world's, or those
   `rescue data load` lands), with short connection and query timeouts (on a warehouse too big
   to scan in seconds, set the setting); a file warehouse that does not exist is not created, and
   a DuckDB file is opened read-only (`connectors.warehouse.probe_engine`).
3. **The fallback**: `FALLBACK_HISTORY_DAYS` (730) days before today, when the warehouse is
   absent, unreadable or holds no dated usage or tickets.

The last partition is today's (the day in progress, which the daily schedule runs at
`DAILY_RUN_HOUR_UTC`), or the day of ``RESCUE_NOW`` when that pins the deployment's clock
(`assets.run_clock`); "today" of the fallback is that clock too. A date outside the partitions
is refused in one line naming the valid range (`snapshot_key`), by `rescue run --snapshot` and by
the daily schedule, which skips its tick with that line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import dagster as dg

from models.churn.features import SUPPORT_WINDOW_DAYS, USAGE_WINDOW_DAYS

#: The daily schedule runs snapshot D on day D at this hour (UTC); a replay of D runs "at" it
#: (`assets.run_clock`).
DAILY_RUN_HOUR_UTC = 6

#: Days of history the first snapshot needs behind it: the features' usage and support window.
FEATURE_HISTORY_DAYS = max(USAGE_WINDOW_DAYS, SUPPORT_WINDOW_DAYS)
#: Without readable data, the partitions start this many days before today.
FALLBACK_HISTORY_DAYS = 730

#: The tables (and their date columns) whose earliest date starts the history, in order of
#: preference per kind: usage from the daily aggregate, else from the raw events.
_USAGE_SOURCES = (("usage_daily", "date"), ("raw_product_events", "occurred_at"))
_TICKET_SOURCES = (("raw_support_tickets", "created_at"),)


class SnapshotOutOfRange(ValueError):
    """A snapshot date that is not one of the partitions; the message names the valid range."""


@dataclass(frozen=True)
class SnapshotStart:
    """The first snapshot partition and where it comes from, in words."""

    day: dt.date
    origin: str


def _today(settings: Any = None) -> dt.date:
    from assets.run_clock import deployment_now  # the run clock imports this module

    try:
        return deployment_now(settings).date()
    except ValueError:  # an unreadable RESCUE_NOW: the run clock refuses it, by name, when a run starts
        return dt.datetime.now(dt.UTC).date()


def _last_day(settings: Any = None) -> dt.date | None:
    """The day of a pinned deployment clock (`RESCUE_NOW`), else None (today, moving)."""
    from connectors.settings import SettingError, current, pinned_clock

    try:
        pinned = pinned_clock(settings or current())
    except SettingError:
        return None
    return pinned.date() if pinned is not None else None


def _as_date(value: Any) -> dt.date | None:
    import pandas as pd

    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    if pd.isna(stamp):
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.date()


def earliest_activity(url: str) -> tuple[dict[str, dt.date], str]:
    """The earliest usage and ticket dates in the warehouse at `url` ({"usage": ..., "tickets":
    ...}, the kinds it has), and why it has none when it has none. Never raises: an absent or
    unreadable warehouse is an empty answer with its reason."""
    import sqlalchemy as sa

    from connectors.warehouse import probe_engine

    try:
        engine = probe_engine(url)
    except Exception as exc:  # noqa: BLE001 - a bad URL: the warehouse resource says so in a run
        return {}, f"the warehouse URL is not usable ({type(exc).__name__})"
    if engine is None:
        return {}, "the warehouse does not exist yet"
    found: dict[str, dt.date] = {}
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            for kind, sources in (("usage", _USAGE_SOURCES), ("tickets", _TICKET_SOURCES)):
                for table, column in sources:
                    if table not in tables:
                        continue
                    quote = conn.dialect.identifier_preparer.quote
                    first = _as_date(conn.execute(sa.text(
                        f"SELECT MIN({quote(column)}) FROM {quote(table)}")).scalar())
                    if first is not None:
                        found[kind] = first
                        break
    except Exception as exc:  # noqa: BLE001 - unreachable, locked, no permission: the fallback
        return {}, f"the warehouse could not be read ({type(exc).__name__})"
    finally:
        engine.dispose()
    return found, "" if found else "the warehouse holds no dated usage or tickets"


def first_snapshot(url: str | None, settings: Any = None) -> SnapshotStart:
    """The first snapshot partition (see the module docs): `RESCUE_SNAPSHOT_START`, else the
    first usable date of the data in the warehouse at `url`, else the fallback. Raises
    `connectors.settings.SettingError` for an unreadable `RESCUE_SNAPSHOT_START`."""
    from connectors.settings import Settings, current, snapshot_start_date

    settings = settings or current()
    pinned = snapshot_start_date(settings)
    if pinned is not None:
        return SnapshotStart(pinned, f"{Settings.env('snapshot_start')}")
    found, why = earliest_activity(url) if url else ({}, "no warehouse is configured")
    if found:
        kind, first = min(found.items(), key=lambda item: item[1])
        day = first + dt.timedelta(days=FEATURE_HISTORY_DAYS)
        return SnapshotStart(day, f"the data's first usable date: first {kind} {first.isoformat()} "
                                  f"+ {FEATURE_HISTORY_DAYS} days of feature history")
    day = _today(settings) - dt.timedelta(days=FALLBACK_HISTORY_DAYS)
    return SnapshotStart(day, f"{FALLBACK_HISTORY_DAYS} days before today: {why}")


_origins: dict[tuple[dt.date, dt.date | None], str] = {}


def daily_partitions(start: SnapshotStart | dt.date, *, last_day: dt.date | None = None) -> dg.DailyPartitionsDefinition:
    """Daily snapshot partitions from `start` to today's (or to `last_day`, inclusive)."""
    if not isinstance(start, SnapshotStart):
        start = SnapshotStart(start, "")
    _origins[(start.day, last_day)] = start.origin
    if last_day is not None:
        return dg.DailyPartitionsDefinition(start_date=start.day.isoformat(),
                                            end_date=(last_day + dt.timedelta(days=1)).isoformat())
    return dg.DailyPartitionsDefinition(start_date=start.day.isoformat(), end_offset=1)


def snapshot_partitions_for(warehouse: Any = None, settings: Any = None) -> dg.DailyPartitionsDefinition:
    """The snapshot partitions for the data in `warehouse` (a `WarehouseResource`, a URL, or
    None for the configured one) under `settings` (default: the environment's)."""
    from connectors.settings import current, default_warehouse_url

    settings = settings or current()
    url = getattr(warehouse, "url", warehouse)
    if isinstance(url, dg.EnvVar):
        url = url.get_value()
    if not url:
        url = settings.warehouse_url or default_warehouse_url()
    return daily_partitions(first_snapshot(url, settings), last_day=_last_day(settings))


def _start_day(partitions_def: dg.DailyPartitionsDefinition) -> dt.date:
    return partitions_def.start.date()


def _end_day(partitions_def: dg.DailyPartitionsDefinition) -> dt.date | None:
    end = partitions_def.end
    return None if end is None else (end - dt.timedelta(days=1)).date()


def range_text(partitions_def: dg.DailyPartitionsDefinition) -> str:
    """The partitions in words: "2024-03-31 .. 2026-12-02 (first: the data's first usable
    date: ...)", or why there are none yet."""
    first, last = partitions_def.get_first_partition_key(), partitions_def.get_last_partition_key()
    origin = _origins.get((_start_day(partitions_def), _end_day(partitions_def)), "")
    because = f" (first: {origin})" if origin else ""
    if first is None or last is None:
        today = _end_day(partitions_def) or _today()
        return (f"none yet: the first is {_start_day(partitions_def).isoformat()}{because}, "
                f"after today ({today.isoformat()})")
    return f"{first} .. {last}{because}"


def snapshot_key(day: dt.date | str, partitions_def: dg.PartitionsDefinition | None, *,
                 of: str = "the snapshot partitions") -> str:
    """The partition key of snapshot `day`. Raises `SnapshotOutOfRange` naming the valid range
    when it is not one of the partitions (`of`: whose partitions, in words)."""
    key = day.isoformat() if isinstance(day, dt.date) else str(day)
    if partitions_def is None:
        raise SnapshotOutOfRange(f"snapshot {key}: {of} are not partitioned")
    if not partitions_def.has_partition_key(key):
        shown = range_text(partitions_def) if isinstance(partitions_def, dg.DailyPartitionsDefinition) else (
            f"{partitions_def.get_first_partition_key()} .. {partitions_def.get_last_partition_key()}")
        raise SnapshotOutOfRange(f"snapshot {key} is outside {of}: {shown}")
    return key


def with_snapshot_partitions(assets: list, partitions_def: dg.PartitionsDefinition) -> list:
    """`assets` with every snapshot-partitioned asset (one declared with `snapshot_partitions`)
    bound to `partitions_def` instead."""
    def rebind(spec: dg.AssetSpec) -> dg.AssetSpec:
        if isinstance(spec.partitions_def, dg.DailyPartitionsDefinition) and spec.partitions_def == snapshot_partitions:
            return spec.replace_attributes(partitions_def=partitions_def)
        return spec

    out = []
    for a in assets:
        if isinstance(a, dg.AssetsDefinition) and any(s.partitions_def == snapshot_partitions for s in a.specs):
            a = a.map_asset_specs(rebind)
        out.append(a)
    return out


#: What the snapshot-level assets are declared with. `pipelines.definitions` binds them to the
#: partitions of the configured data (`snapshot_partitions_for`) when the Definitions load; this
#: wide placeholder (every day since 2000, no warehouse read at import) is only what an asset
#: carries when it is materialized on its own, outside the Definitions (tests).
snapshot_partitions = daily_partitions(
    SnapshotStart(dt.date(2000, 1, 1), "the declaration placeholder"), last_day=None)


def snapshot_date(context: dg.AssetExecutionContext):
    import pandas as pd

    return pd.Timestamp(context.partition_key)

"""The one clock of a run: the instant every asset that needs "now" reads (`run_now`).

The rule, first match wins:

1. **Pinned by the run**: the run tag ``rescue/now``, or a ``now`` in the run config of any
   asset of the run (`rescue_queue` and `crm_writeback` take one; `rescue demo loop` and the
   tests set it). A pin applies to the whole run, so the metrics of a replayed day measure the
   cases that day opened against the same instant that opened them. ISO 8601; a naive value is
   UTC. Pins of one run that disagree are an error.
2. **Replay of a snapshot**: a run of snapshot partition D (tag ``dagster/partition``) that
   starts after day D is over on the deployment's clock (a backfill, a replay, a late retry)
   runs at D ``DAILY_RUN_HOUR_UTC``:00 UTC, the instant the daily schedule runs D. So a
   partition's routing and queue metrics are those of its day, whenever it is replayed.
3. **Pinned by the setting**: ``RESCUE_NOW`` (an ISO 8601 instant; no zone = UTC) is the
   deployment's clock: a deployment replaying a history that ended before today (a company's
   exports of 2023-2024, the demo world) sets it once, and nothing of a run reads the wall clock
   any more: rule 2 decides "day D is over" on it, and every other run (today's partition, an
   unpartitioned run such as the weekly retrain) runs at it.
4. **Live**: anything else reads the wall clock.

Scope: the clock of the pipeline's decisions and measurements (`rescue_queue`, `crm_writeback`,
`queue_operations_metrics`, the model's `trained_at`) and of the blocking source checks
(`assets.quality`): a check judges the sources as the run's instant saw them. A row dated after
the run's instant is not a fault of that snapshot (it is ignored there, and counted in the
check's notes); only a row dated after the real wall clock (`wall_now`) is "in the future". The
freshness checks measure a source's age at the run's instant. The sensors run live and read the
wall clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import dagster as dg
import pandas as pd

from assets.partitions import DAILY_RUN_HOUR_UTC
from connectors.settings import Settings, SettingError, current, pinned_clock
from models.clock import utc_naive, utcnow

NOW_TAG = "rescue/now"
PARTITION_TAG = "dagster/partition"


class ClockError(ValueError):
    """The run's clock cannot be decided (an unreadable or contradictory pin)."""


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC)


def _instant(text: str, where: str) -> dt.datetime:
    try:
        value = utc_naive(str(text))
    except (TypeError, ValueError):
        value = None
    if value is None:
        raise ClockError(f"{where}: {text!r} is not an ISO 8601 instant")
    return _aware(value)


def pinned_now(tags: Mapping[str, str], run_config: Mapping[str, Any] | None) -> dt.datetime | None:
    """The run's pinned instant (rule 1), or None. Raises `ClockError` for a bad or
    contradictory pin."""
    pins: dict[str, dt.datetime] = {}
    if tags.get(NOW_TAG):
        pins[f"tag {NOW_TAG}"] = _instant(tags[NOW_TAG], f"tag {NOW_TAG}")
    ops = (run_config or {}).get("ops") or {}
    for name, op_config in ops.items():
        value = ((op_config or {}).get("config") or {}).get("now") if isinstance(op_config, Mapping) else None
        if value:
            pins[f"{name}.config.now"] = _instant(value, f"{name}.config.now")
    if len(set(pins.values())) > 1:
        shown = ", ".join(f"{where} = {when.isoformat()}" for where, when in pins.items())
        raise ClockError(f"the run pins different instants: {shown}")
    return next(iter(pins.values()), None)


def replay_now(snapshot: dt.date | dt.datetime | pd.Timestamp) -> dt.datetime:
    """The instant the daily schedule runs snapshot date `snapshot` (rule 2), tz-aware UTC."""
    day = pd.Timestamp(snapshot).normalize().to_pydatetime().replace(tzinfo=None)
    return _aware(day + dt.timedelta(hours=DAILY_RUN_HOUR_UTC))


def wall_now() -> dt.datetime:
    """The real current instant (tz-aware UTC), whatever the run's clock: the limit past which
    a source timestamp is impossible."""
    return _aware(utcnow())


def deployment_now(settings: Settings | None = None, *, wall_clock: dt.datetime | None = None) -> dt.datetime:
    """The deployment's clock (tz-aware UTC): `RESCUE_NOW` when set (rule 3), else `wall_clock`
    (naive UTC or aware; default: the current instant). Raises `ClockError` for an unreadable
    `RESCUE_NOW`."""
    try:
        pinned = pinned_clock(settings or current())
    except SettingError as exc:
        raise ClockError(str(exc)) from None
    if pinned is not None:
        return _aware(pinned)
    return _aware(utc_naive(wall_clock) if wall_clock is not None else utcnow())


def resolve_now(
    tags: Mapping[str, str],
    run_config: Mapping[str, Any] | None = None,
    *,
    wall_clock: dt.datetime | None = None,
    settings: Settings | None = None,
) -> dt.datetime:
    """The instant of a run with these tags and run config (see the module docs), tz-aware UTC.

    `wall_clock` (naive UTC or aware; default: the current instant) is the live clock;
    `settings` (default: the environment's) may pin the deployment's clock (`RESCUE_NOW`).
    """
    pinned = pinned_now(tags, run_config)
    if pinned is not None:
        return pinned
    clock = deployment_now(settings, wall_clock=wall_clock)
    partition = tags.get(PARTITION_TAG)
    if partition:
        try:
            day = pd.Timestamp(partition).normalize()
        except ValueError:
            day = None
        if day is not None and clock.replace(tzinfo=None) >= day + pd.Timedelta(days=1):
            return replay_now(day)
    return clock


def run_now(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext | dg.OpExecutionContext) -> dt.datetime:
    """The run's clock for an asset (tz-aware UTC): call this wherever an asset needs "now".

    An asset invoked directly (a test calling it with `dg.build_asset_context`) has no run: its
    partition key, if any, stands for the run's partition tag.
    """
    try:
        tags, run_config = context.run.tags, context.run.run_config
    except dg.DagsterError:  # directly invoked: there is no run
        tags = {PARTITION_TAG: context.partition_key} if context.has_partition_key else {}
        run_config = None
    try:
        return resolve_now(tags, run_config)
    except ClockError as exc:
        raise dg.Failure(str(exc)) from None

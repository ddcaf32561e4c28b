"""How old each source in the warehouse is at the run's instant: one reading for every reader.

The three freshness checks (`assets.quality`: ``support_tickets_fresh``,
``product_usage_daily_fresh``, ``crm_renewals_fresh``) and the rescue queue (`assets.routing`)
both call these functions, so a check and the cases it lets through cannot disagree on a
source's age. When a stale source only warns (``RESCUE_FRESHNESS=warn``), routing goes on and
every case it opens or updates carries the stale sources in its context package
(``data_warnings``), shown on the desk's case page and by ``rescue queue show``.

- tickets: the newest ``created_at`` at or before the run's instant;
- usage: the newest ``usage_daily`` day, counted in the warehouse (the table is never read whole);
- the CRM: its last ``rescue data load`` when the manifest lists it, else its newest signup or
  closed renewal;
- each system `RESCUE_SOURCES` lands with dlt (`landing_ages`): its last completed load, from
  the ``_dlt_loads`` table dlt keeps in the system's dataset, against the limit of the source it
  feeds (a ticketing system: the tickets'; a CRM: the CRM's). A landing that keeps failing leaves
  the mapped tables looking current (they are reloaded from what was landed) while nothing new
  arrives: this names the system. A named system with no completed load is stale.

A source dated by its rows is allowed its own plausible quiet spells
(`models.plausibility.quiet_limit_days`); a load time has its table's limit. Each function
returns None for an empty source: it is not dated here (its contract check fails on it by name).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa

from connectors.mapping.manifest import MANIFEST_TABLE
from connectors.settings import LANDING_SOURCES, landing_sources
from connectors.warehouse import USAGE_DAILY_TABLE, Warehouse
from models.plausibility import ACTIVITY_WINDOW_DAYS, Staleness, Thresholds, newest, recent_rate, staleness

#: The raw CRM tables whose landing (manifest ``tables``) dates the CRM.
CRM_TABLES = ("raw_crm_accounts", "raw_crm_renewals")


def tickets_age(tickets: pd.DataFrame, now: pd.Timestamp, thresholds: Thresholds) -> Staleness | None:
    """The tickets' age: their newest ``created_at`` at or before `now`."""
    if not len(tickets):
        return None
    created = tickets["created_at"] if "created_at" in tickets else pd.Series(dtype="datetime64[ns]")
    return staleness("tickets", newest(created, now), now, thresholds.max_age_days("tickets"),
                     rate_per_day=recent_rate(created, now), quiet_odds=thresholds.quiet_odds)


def usage_age(warehouse: Warehouse, now: pd.Timestamp, thresholds: Thresholds) -> Staleness | None:
    """The usage's age: its newest day at or before `now`, with its rate over the window, in SQL."""
    since = (now - pd.Timedelta(days=ACTIVITY_WINDOW_DAYS)).date()
    span = warehouse.read_sql(
        f"SELECT COUNT(*) AS n, MAX(CASE WHEN date <= :until THEN date END) AS last_day, "
        f"SUM(CASE WHEN date > :since AND date <= :until THEN 1 ELSE 0 END) AS recent FROM {USAGE_DAILY_TABLE}",
        {"until": now.date(), "since": since}).iloc[0]
    if not span["n"]:
        return None
    return staleness("usage_daily", newest([span["last_day"]], now), now, thresholds.max_age_days("usage"),
                     rate_per_day=float(span["recent"] or 0) / ACTIVITY_WINDOW_DAYS, quiet_odds=thresholds.quiet_odds)


def last_load(warehouse: Warehouse, tables: Sequence[str], now: pd.Timestamp) -> pd.Timestamp | None:
    """When `rescue data load` last landed one of `tables`, if at or before `now` (None when
    there is no manifest, it lists none of them, or it cannot be read)."""
    try:
        if not warehouse.table_exists(MANIFEST_TABLE):
            return None
        rows = warehouse.read_sql(f"SELECT * FROM {MANIFEST_TABLE}")
    except Exception:  # noqa: BLE001 - a manifest of another shape: the rows date the source instead
        return None
    if "landed_at" not in rows.columns:
        return None
    if "tables" in rows.columns:
        listed = rows["tables"].fillna("").astype(str).map(lambda t: bool(set(t.split(",")) & set(tables)) or not t)
        rows = rows[listed]
    return newest(rows["landed_at"], now)


def crm_age(warehouse: Warehouse, accounts: pd.DataFrame, renewals: pd.DataFrame, now: pd.Timestamp,
            thresholds: Thresholds) -> Staleness | None:
    """The CRM's age: its last load, else its newest signup or closed renewal (None when it has
    no renewals: not dated)."""
    if not len(renewals):
        return None
    limit = thresholds.max_age_days("crm")
    loaded = last_load(warehouse, CRM_TABLES, now)
    if loaded is not None:
        return staleness("crm", loaded, now, limit, basis="last load")
    found = [s for s in (accounts.get("created_at"), renewals.get("closed_at")) if s is not None]
    changes = pd.concat(found, ignore_index=True) if found else pd.Series(dtype="datetime64[ns]")
    return staleness("crm", newest(changes, now), now, limit, basis="newest signup or closed renewal",
                     rate_per_day=recent_rate(changes, now), quiet_odds=thresholds.quiet_odds)


#: dlt's table of completed loads in each landed dataset (status 0: the load completed).
DLT_LOADS = "_dlt_loads"


def last_landing(warehouse: Warehouse, source: str, now: pd.Timestamp) -> tuple[pd.Timestamp | None, str]:
    """When dlt last completed a load of `source` (its dataset's ``_dlt_loads``) at or before
    `now`, and what dates it. A run at an instant before a completed load (a replay or a backfill
    of an earlier snapshot) reads rows landed after it: the landing is as fresh as that run can
    ask, dated at `now`. (None, basis) when it never completed a load or the dataset is not there."""
    basis = "last completed load"
    with warehouse.engine.connect() as conn:
        if not sa.inspect(conn).has_table(DLT_LOADS, schema=source):
            return None, basis
        loads = sa.table(DLT_LOADS, sa.column("inserted_at"), sa.column("status"), schema=source)
        stamps = [row[0] for row in conn.execute(sa.select(loads.c.inserted_at).where(loads.c.status == 0))]
    stamps = pd.to_datetime(pd.Series(stamps, dtype=object), utc=True, errors="coerce").dt.tz_localize(None).dropna()
    if len(stamps) and (stamps > now).any():
        return pd.Timestamp(now), "a completed load after the run's instant (a replay) at"
    return newest(stamps, now), basis


def landing_ages(warehouse: Warehouse, now: pd.Timestamp, thresholds: Thresholds, *, feed: str | None = None,
                 sources: Sequence[str] | None = None) -> list[Staleness]:
    """The age of each landed system's last completed load (`sources`, default the ones
    `RESCUE_SOURCES` names; with `feed`, only those feeding that source: "tickets" or "crm")."""
    names = landing_sources() if sources is None else tuple(sources)
    ages = []
    for name in names:
        fed = LANDING_SOURCES[name]
        if feed is not None and fed != feed:
            continue
        loaded, basis = last_landing(warehouse, name, now)
        ages.append(staleness(f"{name} landing", loaded, now, thresholds.max_age_days(fed), basis=basis))
    return ages


def source_ages(warehouse: Warehouse, thresholds: Thresholds, now: pd.Timestamp, *, tickets: pd.DataFrame,
                accounts: pd.DataFrame, renewals: pd.DataFrame) -> list[Staleness]:
    """Every dated source's age at `now` (tickets, usage, CRM, each landed system; an empty
    source is left out)."""
    ages = [tickets_age(tickets, now, thresholds), usage_age(warehouse, now, thresholds),
            crm_age(warehouse, accounts, renewals, now, thresholds), *landing_ages(warehouse, now, thresholds)]
    return [age for age in ages if age is not None]


def stale_warnings(ages: Sequence[Staleness]) -> list[str]:
    """One line per stale source, for a case routed on it ("routed on stale data: tickets ...")."""
    lines = []
    for age in ages:
        if not age.stale:
            continue
        if age.newest is None:
            lines.append(f"routed on stale data: {age.table} has no {age.undated_word} at or before the run's instant to date it")
        else:
            lines.append(f"routed on stale data: {age.table} {age.age_days:.1f} days old "
                         f"({age.basis} {age.newest:%Y-%m-%d %H:%M} UTC, {age.limit_text})")
    return lines

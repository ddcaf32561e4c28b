"""Source assets: pull accounts, renewals, tickets and usage into the canonical contracts.

Each asset only asks its resource for a frame; which system answers (the embedded warehouse, a
Salesforce org; tickets landed from Freshdesk or Zendesk and mapped in the warehouse) is decided
by the resource binding in pipelines/resources.py.
The quality checks in assets/quality.py gate everything downstream.
"""


import dagster as dg
import pandas as pd
from pydantic import Field

from assets.metadata import clean, markdown_table
from connectors.mapping.manifest import refresh_usage_daily
from connectors.sources import CRMSource, TicketingSource
from connectors.settings import DEFAULT_USAGE_LOOKBACK_DAYS, MAX_USAGE_LOOKBACK_DAYS, SettingError, usage_lookback_days
from connectors.warehouse import WarehouseError, WarehouseResource
from assets.run_clock import PARTITION_TAG, run_now
from models.churn.tickets import relevant_tickets, ticket_window_start
from models.text import fit_text

GROUP = "sources"
OWNERS = ["team:cs-ops"]
#: Characters a cell of the metadata preview shows (a source value may be megabytes long).
PREVIEW_CELL_CHARS = 60
NO_HISTORY = ("no account history landed: ARR, plan, seats, segment and owner are the accounts' "
              "current values at every date (attributes assumed constant)")


def _frame_metadata(df: pd.DataFrame) -> dict:
    head = df.head(5).map(lambda v: fit_text(v, PREVIEW_CELL_CHARS))
    return {
        "dagster/row_count": dg.MetadataValue.int(len(df)),
        "columns": dg.MetadataValue.text(", ".join(map(str, df.columns))),
        "preview": dg.MetadataValue.md(markdown_table(head, empty="(empty)")),
    }


@dg.asset(group_name=GROUP, kinds={"salesforce", "pandas"}, owners=OWNERS)
def crm_accounts(context: dg.AssetExecutionContext, crm: CRMSource) -> pd.DataFrame:
    """Customer accounts from the CRM (segment, ARR, seats, CSM owner)."""
    df = crm.accounts()
    context.add_output_metadata(clean(_frame_metadata(df)))
    return df


@dg.asset(group_name=GROUP, kinds={"salesforce", "pandas"}, owners=OWNERS)
def crm_renewals(context: dg.AssetExecutionContext, crm: CRMSource) -> pd.DataFrame:
    """Renewal opportunities from the CRM, with renewed/churned outcomes over history."""
    df = crm.renewals()
    context.add_output_metadata(clean(_frame_metadata(df)))
    return df


@dg.asset(group_name=GROUP, kinds={"salesforce", "pandas"}, owners=OWNERS)
def crm_account_history(context: dg.AssetExecutionContext, crm: CRMSource) -> pd.DataFrame | None:
    """Account attributes as they changed over time (ARR, plan, seats, segment, owner), if landed.

    None when the CRM provides no history: features then read the accounts' current values at
    every date (attributes assumed constant)."""
    df = crm.account_history()
    if df is None:
        context.add_output_metadata({"landed": False, "note": NO_HISTORY})
        return None
    context.add_output_metadata(clean({"landed": True, **_frame_metadata(df)}))
    return df


#: The assets that read tickets of every past date: a run that materializes one of them pulls the
#: tickets' whole history; any other run only the window its snapshot reads.
HISTORY_READERS = (dg.AssetKey("training_set"),)
_RANGE_START_TAG = "dagster/asset_partition_range_start"


def ticket_window(context: dg.AssetExecutionContext) -> pd.Timestamp | None:
    """The first instant of the tickets this run reads, or None for their whole history.

    Whole history when the run builds the training set (`HISTORY_READERS`), or when what the run
    selects cannot be told. Otherwise the run reads one snapshot (its partition, or a range of
    them, at the earliest; else the run's day) and its features, checks and case context read
    only tickets created or solved in the `models.churn.tickets.TICKET_WINDOW_DAYS` before it, or
    still open (`relevant_tickets`): at a million accounts that is a third of the rows."""
    try:
        selected = context.job_def.asset_layer.selected_asset_keys
        tags = context.run.tags
    except (AttributeError, dg.DagsterError):
        return None
    if not selected or any(key in selected for key in HISTORY_READERS):
        return None
    day = pd.Timestamp(run_now(context)).tz_convert("UTC").tz_localize(None).normalize()
    for tag in (PARTITION_TAG, _RANGE_START_TAG):
        if tags.get(tag):
            try:
                day = min(day, pd.Timestamp(tags[tag]).normalize())
            except ValueError:
                return None
    return ticket_window_start(day)


@dg.asset(group_name=GROUP, kinds={"sql", "pandas"}, owners=OWNERS)
def support_tickets(context: dg.AssetExecutionContext, ticketing: TicketingSource) -> pd.DataFrame:
    """Support tickets from the ticketing system, as far back as the run reads them.

    Their whole history in a run that builds the training set; else those the run's snapshot
    reads (created or solved in its ticket window, or still open: `ticket_window`)."""
    since = ticket_window(context)
    if since is None:
        df = ticketing.tickets()
    else:
        # the source may push the window down (the warehouse does); the cut is the one rule either way
        df = relevant_tickets(ticketing.tickets(since=since.to_pydatetime()), since)
    metadata = _frame_metadata(df)
    metadata["window"] = dg.MetadataValue.text(
        "whole history" if since is None else f"created or solved since {since:%Y-%m-%d}, or open")
    context.add_output_metadata(clean(metadata))
    return df


class UsageConfig(dg.Config):
    """How the daily usage step aggregates raw product events (`connectors.usage`)."""

    lookback_days: int | None = Field(
        default=None,
        description="Whole days before the last aggregated day that are aggregated again, for events that "
                    f"arrive late (0 to {MAX_USAGE_LOOKBACK_DAYS}); an event older than that makes the build a full "
                    f"one. Unset: RESCUE_USAGE_LOOKBACK_DAYS, else {DEFAULT_USAGE_LOOKBACK_DAYS}.",
    )
    full_rebuild: bool = Field(default=False, description="Aggregate every day again, whatever the state says.")


def _day_text(value: object) -> str:
    return str(pd.Timestamp(value).date()) if value is not None and pd.notna(value) else "none"


@dg.asset(group_name=GROUP, kinds={"sql", "duckdb"}, owners=OWNERS)
def product_usage_daily(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                        config: UsageConfig) -> dg.MaterializeResult:
    """Daily product usage per account, aggregated from raw product events in the warehouse.

    The usage_daily a source mapping landed (`rescue data load`), or else aggregated from raw
    events inside the warehouse (SQL), only the recent days when the rest cannot have changed
    (the metadata says which days, and why when it was all)."""
    client = warehouse.get_client()
    try:
        lookback = usage_lookback_days() if config.lookback_days is None else config.lookback_days
        usage = refresh_usage_daily(client, lookback_days=lookback, full=config.full_rebuild)
    except (WarehouseError, SettingError) as exc:
        raise dg.Failure(str(exc)) from None
    span = client.read_sql("SELECT MIN(date) AS first_day, MAX(date) AS last_day, COUNT(DISTINCT account_id) AS accounts FROM usage_daily")
    first = span.iloc[0]
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(int(usage.rows)),
        "accounts": dg.MetadataValue.int(int(first["accounts"] or 0)),
        "first_day": dg.MetadataValue.text(_day_text(first["first_day"])),
        "last_day": dg.MetadataValue.text(_day_text(first["last_day"])),
        "table": dg.MetadataValue.text("usage_daily"),
        "origin": dg.MetadataValue.text(usage.origin),
    }
    build = usage.build
    if build is None:
        metadata["build"] = dg.MetadataValue.text("landed")
        metadata["build_reason"] = dg.MetadataValue.text("usage_daily landed by `rescue data load`, used as it is")
    else:
        metadata.update({
            "build": dg.MetadataValue.text(build.mode),
            "build_reason": dg.MetadataValue.text(build.reason),
            "window_start": dg.MetadataValue.text(_day_text(build.window_start) if build.window_start else "all days"),
            "days_reaggregated": dg.MetadataValue.int(build.days),
            "rows_replaced": dg.MetadataValue.int(build.rows_replaced),
            "rows_written": dg.MetadataValue.int(build.rows_written),
            "lookback_days": dg.MetadataValue.int(build.lookback_days),
        })
        context.log.info(f"usage_daily: {build.mode} build, {build.days:,} day(s), {build.rows_replaced:,} rows "
                         f"replaced by {build.rows_written:,}: {build.reason}")
    return dg.MaterializeResult(metadata=clean(metadata))

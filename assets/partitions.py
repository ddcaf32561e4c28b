"""Partitions shared by the snapshot-level assets."""

import dagster as dg

#: One partition per snapshot date. A snapshot at date D uses data strictly before D.
snapshot_partitions = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_offset=1)

#: The daily schedule runs snapshot D on day D at this hour (UTC); a replay of D runs "at" it
#: (`assets.run_clock`).
DAILY_RUN_HOUR_UTC = 6


def snapshot_date(context: dg.AssetExecutionContext):
    import pandas as pd

    return pd.Timestamp(context.partition_key)

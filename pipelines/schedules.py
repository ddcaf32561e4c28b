"""Schedules: daily scoring and routing, weekly retraining."""

import dagster as dg

from assets.partitions import DAILY_RUN_HOUR_UTC
from pipelines.jobs import daily_rescue_job, weekly_retrain_job

#: Runs snapshot D on day D; a later run of D (a backfill) is dated to this tick (`assets.run_clock`).
daily_rescue_schedule = dg.build_schedule_from_partitioned_job(
    daily_rescue_job, hour_of_day=DAILY_RUN_HOUR_UTC, minute_of_hour=0, name="daily_rescue_schedule"
)

weekly_retrain_schedule = dg.ScheduleDefinition(
    name="weekly_retrain_schedule",
    job=weekly_retrain_job,
    cron_schedule="0 4 * * 1",
    execution_timezone="UTC",
)

all_schedules = [daily_rescue_schedule, weekly_retrain_schedule]

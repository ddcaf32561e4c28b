"""Schedules: daily scoring and routing, weekly retraining."""

import datetime as dt

import dagster as dg

from assets.partitions import DAILY_RUN_HOUR_UTC, SnapshotOutOfRange, snapshot_key, snapshot_partitions_for
from pipelines.jobs import daily_rescue_job, weekly_retrain_job


def _snapshot_partitions(context: dg.ScheduleEvaluationContext) -> dg.PartitionsDefinition | None:
    """The daily job's partitions as the loaded Definitions bound them (or as they would bind
    them, when the schedule is evaluated on its own)."""
    try:
        return context.repository_def.get_job(daily_rescue_job.name).partitions_def
    except dg.DagsterInvariantViolationError:  # evaluated outside a repository (a test)
        return snapshot_partitions_for()


@dg.schedule(
    name="daily_rescue_schedule",
    job=daily_rescue_job,
    cron_schedule=f"0 {DAILY_RUN_HOUR_UTC} * * *",
    execution_timezone="UTC",
    description="Runs snapshot D on day D; a later run of D (a backfill) is dated to this tick (`assets.run_clock`).",
)
def daily_rescue_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """The tick's day as the snapshot; a day outside the snapshot partitions (before the data's
    first usable date, say) skips the tick with one line naming the valid range."""
    tick = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    day = (tick.astimezone(dt.UTC) if tick.tzinfo else tick).date()
    try:
        key = snapshot_key(day, _snapshot_partitions(context), of=f"the daily partitions of {daily_rescue_job.name}")
    except SnapshotOutOfRange as exc:
        return dg.SkipReason(str(exc))
    return dg.RunRequest(run_key=key, partition_key=key)


weekly_retrain_schedule = dg.ScheduleDefinition(
    name="weekly_retrain_schedule",
    job=weekly_retrain_job,
    cron_schedule="0 4 * * 1",
    execution_timezone="UTC",
)

all_schedules = [daily_rescue_schedule, weekly_retrain_schedule]

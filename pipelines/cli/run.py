"""`rescue run --snapshot DATE`: one snapshot of the daily rescue job, for operators.

Runs partition DATE of `daily_rescue_job` (`pipelines.jobs`, partitioned by
`assets.partitions.snapshot_partitions`) against the configured sources, queue and policy
(`connectors.settings`), on the same Dagster instance as the schedules' runs when
`DAGSTER_HOME` is set, exactly as the daily schedule or a backfill would run it. It never
generates data. The summary and the exit status are those of every CLI run
(`pipelines.cli.runner`): 0 when the run succeeded (warnings included), 1 when a step or a
blocking check failed, 2 for a date that is not a snapshot (or a setting that cannot be read).

The run executes on `RESCUE_EXECUTOR`'s executor (`pipelines.executors`): in this process by
default, or a process per step (`multiprocess`), as the schedule's runs do.

The partitions follow the data in the configured warehouse (`assets.partitions`): a company's
history from 2024 has snapshots from 2024, and a date before the data's first usable date is
refused with the valid range.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich.markup import escape

from pipelines.cli import runner

JOB = "daily_rescue_job"


def _fail(message: str) -> typer.Exit:
    runner.err.print(f"[bold red]error:[/] {escape(message)}", markup=True)
    return typer.Exit(2)


def snapshot_key(text: str, partitions_def) -> str:
    """The partition key of snapshot `text` (YYYY-MM-DD); exits with one line when it is not
    a date or not one of the job's partitions (the line names the valid range and where its
    first day comes from, `assets.partitions`)."""
    from assets.partitions import SnapshotOutOfRange
    from assets.partitions import snapshot_key as partition_key

    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise _fail(f"--snapshot {text!r} is not a date: give the snapshot as YYYY-MM-DD") from None
    try:
        return partition_key(day, partitions_def, of=f"the daily partitions of {JOB}")
    except SnapshotOutOfRange as exc:
        raise _fail(str(exc)) from None


def run(
    snapshot: Annotated[str, typer.Option("--snapshot", metavar="YYYY-MM-DD",
                                          help="The snapshot date (partition) to run.")],
    verbose: Annotated[bool, typer.Option("--verbose", help="Show Dagster's logs and stack traces as the run goes.")] = False,
) -> None:
    """Run the daily rescue job for one snapshot date against the configured sources."""
    if verbose:
        runner.set_verbose(True)
    from connectors.settings import SettingError

    try:
        from pipelines.definitions import build_definitions

        # from the environment, read now: what the steps of a multiprocess run rebuild in their
        # own processes (`pipelines.definitions:defs`, from the environment they inherit)
        defs = build_definitions()
    except SettingError as exc:
        raise _fail(str(exc)) from None
    key = snapshot_key(snapshot, defs.resolve_job_def(JOB).partitions_def)
    runner.run_job(defs, JOB, runner.instance(), partition_key=key, out_of_process=True)

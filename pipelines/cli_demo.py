"""`rescue demo ...`: the embedded demo world and a whole pipeline run on it.

`rescue demo run` is what `make demo` calls: generate the demo world (if the warehouse has none),
run the weekly retrain job and the daily rescue job for the world's latest snapshot date on the
local Dagster instance (so the runs appear in `make dev`), and print the head of the queue.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import date
from pathlib import Path

import pandas as pd
import typer
from pipelines.console import make_console
from rich.table import Table

demo_app = typer.Typer(help="Generate the embedded demo world and run the pipeline on it.", no_args_is_help=True)
err = make_console(stderr=True)
out = make_console()

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _instance():
    import dagster as dg

    home = os.environ.get("DAGSTER_HOME")
    if not home and Path("dagster.yaml").exists():
        os.environ["DAGSTER_HOME"] = str(Path.cwd())
        home = os.environ["DAGSTER_HOME"]
    return dg.DagsterInstance.get() if home else dg.DagsterInstance.ephemeral()


def _generate(accounts: int, seed: int, end_date: date | None) -> None:
    from connectors.demo_world import DemoWorldConfig, generate_demo_world
    from connectors.settings import default_warehouse_url
    from connectors.warehouse import Warehouse

    kwargs = {"n_accounts": accounts, "seed": seed}
    if end_date:
        kwargs["end_date"] = end_date
    cfg = DemoWorldConfig(**kwargs)
    started = time.perf_counter()
    with err.status(f"generating the demo world ({accounts:,} accounts, seed {seed})") as status:
        counts = generate_demo_world(cfg, Warehouse(default_warehouse_url()), progress=lambda msg, frac: status.update(f"{msg} ({frac:.0%})"))
    err.print(
        "demo world: "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items())
        + f" in {time.perf_counter() - started:.1f}s"
    )


def _snapshot_date() -> pd.Timestamp:
    from connectors.settings import default_warehouse_url
    from connectors.warehouse import Warehouse

    last = Warehouse(default_warehouse_url()).read_sql("SELECT MAX(occurred_at) AS last FROM raw_product_events").iloc[0]["last"]
    return pd.Timestamp(last).normalize() + pd.Timedelta(days=1)


def _run_job(defs, name: str, instance, **kwargs) -> None:
    started = time.perf_counter()
    with err.status(f"running {name} {kwargs.get('partition_key', '')}"):
        result = defs.resolve_job_def(name).execute_in_process(instance=instance, run_config=QUIET_LOGS, raise_on_error=False, **kwargs)
    failed = [e for e in result.all_events if e.is_step_failure]
    checks = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
    ]
    if not result.success or failed or checks:
        for e in failed:
            err.print(f"[red]step failed[/red] {e.step_key}: {e.event_specific_data.error.message.strip()}")
        for c in checks:
            err.print(f"[red]check failed[/red] {c.asset_key.to_user_string()}.{c.check_name}: {c.metadata.get('summary').value if c.metadata.get('summary') else ''}")
        err.print(f"[red]{name} failed[/red] (run {result.run_id}); nothing downstream of the failure was written")
        raise typer.Exit(1)
    err.print(f"{name} {kwargs.get('partition_key', '')} succeeded in {time.perf_counter() - started:.1f}s (run {result.run_id[:8]})")


def print_queue(limit: int = 15) -> int:
    from connectors.queue_store import QueueStore
    from connectors.settings import default_queue_url

    store = QueueStore(default_queue_url())
    cases = store.list_cases(status="active")
    if cases.empty:
        out.print("The rescue queue is empty.")
        return 0
    table = Table(title=f"Rescue queue: {len(cases)} open cases (top {min(limit, len(cases))})")
    for col in ("case", "account", "ARR", "risk", "health", "priority", "team", "assignee", "top reason"):
        table.add_column(col, overflow="fold")
    for row in cases.head(limit).itertuples(index=False):
        ctx = row.context if isinstance(row.context, dict) else {}
        name = (ctx.get("account") or {}).get("name") or row.account_id
        table.add_row(
            row.case_id,
            str(name),
            f"{row.arr:,.0f}",
            f"{row.churn_risk:.0%}",
            f"{row.health_score:.0f}",
            row.priority,
            row.team,
            row.assignee or "-",
            row.reason or "",
        )
    out.print(table)
    return len(cases)


@demo_app.command("generate")
def generate(
    accounts: int = typer.Option(2000, min=50, help="Number of accounts."),
    seed: int = typer.Option(7, help="Random seed (same seed, same world)."),
    end_date: str = typer.Option("", help="Last day of data (YYYY-MM-DD); default: the generator's."),
) -> None:
    """Generate (or regenerate) the demo world in the warehouse."""
    _generate(accounts, seed, date.fromisoformat(end_date) if end_date else None)


@demo_app.command("run")
def run(
    accounts: int = typer.Option(2000, min=50, help="Accounts in the demo world (when generating)."),
    seed: int = typer.Option(7, help="Random seed for the demo world."),
    regenerate: bool = typer.Option(False, help="Regenerate the world even if one exists."),
    days: int = typer.Option(
        3, min=1, help="Daily snapshots to run, ending at the world's latest (the policy's hysteresis needs a few)."
    ),
    top: int = typer.Option(15, help="Rows of the queue to print."),
) -> None:
    """Generate the world if needed, retrain, score and route the latest snapshots, print the queue.

    The daily job runs for the last ``--days`` snapshot dates in order, as the daily schedule
    would have: the policy only opens a case for an account that has been at risk for its
    minimum number of days, and scores get a trend.
    """
    from connectors.settings import default_queue_url, default_warehouse_url, project_home
    from connectors.warehouse import Warehouse

    wh = Warehouse(default_warehouse_url())
    if regenerate or not wh.table_exists("raw_product_events"):
        _generate(accounts, seed, None)
    else:
        err.print("demo world found in the warehouse (use --regenerate for a new one)")
    from pipelines.definitions import defs

    instance = _instance()
    snapshot = _snapshot_date()
    _run_job(defs, "weekly_retrain_job", instance)
    for back in range(days - 1, -1, -1):
        _run_job(defs, "daily_rescue_job", instance, partition_key=str((snapshot - pd.Timedelta(days=back)).date()))
    n = print_queue(top)
    out.print(
        f"\n{n} open cases for snapshot {snapshot.date()}.\n"
        f"warehouse:   {default_warehouse_url()}\n"
        f"queue:       {default_queue_url()}\n"
        f"models:      {project_home() / 'models'}\n"
        f"reports:     {project_home() / 'reports'}\n"
        "Next: `make dev` for the Dagster UI, `.venv/bin/rescue queue list` to work the queue."
    )
    if n == 0:
        sys.exit(1)


@demo_app.command("contracts")
def contracts() -> None:
    """Print the data contracts as Markdown (the source of docs/contracts.md)."""
    from models.contracts import describe_contracts_markdown

    print(describe_contracts_markdown())

"""`rescue demo ...`: the embedded demo world and a whole pipeline run on it.

`rescue demo run` is what `make demo` calls: generate the demo world (if the warehouse has none),
run the weekly retrain job, replay the feedback loop over the world's history (`rescue demo
loop`), run the daily rescue job for the world's latest snapshot dates on the local Dagster
instance (so the runs appear in `make dev`), print the head of the queue and the
play-effectiveness table, and deliver the notifications the runs queued (as the SLA clock
sensor would on its next tick: to the log unless Slack or e-mail is configured), so the run
ends with nothing pending in the outbox.

`rescue demo loop` replays weekly historical snapshots through the daily job with `now` pinned
to each date, lets the simulated rescue team (`connectors.demo.team`) work the queue after
each and delivers that day's notifications at the simulated time, resolves cases once their
renewal has passed (delivering those notifications too, so the replay ends with none pending),
then runs the feedback job and prints treated vs holdout. The default policy holds out 10% of
eligible accounts: over a few months of a 2,000-account world that is a handful of accounts,
too few to conclude anything. The replay therefore runs an experiment copy of the policy with a
larger holdout (`--holdout`, default 50%), versioned as such on every case it opens.
"""

from __future__ import annotations

import sys
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from pipelines.cli.console import make_console
from pipelines.cli.runner import instance as _instance
from pipelines.cli.runner import run_job as _run_job
from pipelines.cli.runner import set_verbose

if TYPE_CHECKING:
    import pandas as pd

# pandas, Dagster and the pipeline load when a command runs, not when `rescue` starts
# (tests/unit/test_cli_imports.py).

demo_app = typer.Typer(help="Generate the embedded demo world and run the pipeline on it.", no_args_is_help=True)
err = make_console(stderr=True)
out = make_console()


def _refuse_user_data() -> None:
    """Exit 1 with one line when the warehouse holds data that is not the demo's."""
    from connectors.demo.world import DemoRefused, refuse_user_data
    from connectors.settings import default_warehouse_url
    from connectors.warehouse import Warehouse

    try:
        refuse_user_data(Warehouse(default_warehouse_url()))
    except DemoRefused as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None


def _generate(accounts: int, seed: int, end_date: date | None) -> None:
    from connectors.demo.world import DemoWorldConfig, generate_demo_world
    from connectors.settings import default_warehouse_url
    from connectors.warehouse import Warehouse

    _refuse_user_data()
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
    import pandas as pd

    from connectors.settings import default_warehouse_url
    from connectors.warehouse import Warehouse

    last = Warehouse(default_warehouse_url()).read_sql("SELECT MAX(occurred_at) AS last FROM raw_product_events").iloc[0]["last"]
    return pd.Timestamp(last).normalize() + pd.Timedelta(days=1)


def print_queue(limit: int = 15) -> int:
    from connectors.queue.store import QueueStore
    from connectors.settings import default_queue_url

    from models.cases.ordering import sort_queue

    store = QueueStore(default_queue_url())
    cases = sort_queue(store.list_cases(status="active", sla=True))  # the queue's one order
    if cases.empty:
        out.print("The rescue queue is empty.")
        return 0
    table = Table(title=f"Rescue queue: {len(cases)} open cases (top {min(limit, len(cases))})")
    rows = []
    for row in cases.head(limit).itertuples(index=False):
        ctx = row.context if isinstance(row.context, dict) else {}
        name = (ctx.get("account") or {}).get("name") or row.account_id
        rows.append((row.case_id, row.priority, str(name), f"{row.arr:,.0f}", f"{row.churn_risk:.0%}",
                     row.assignee or "-", " ".join(str(row.reason or "").split())))
    # one line per case, as `rescue queue list` prints it: every column whole but the reason,
    # which is cut with an ellipsis to the width left
    names = ("case", "pri", "account", "ARR", "risk", "assignee", "top reason")  # all of it: `rescue queue list --wide`
    widths = [max([len(col)] + [len(r[i]) for r in rows]) for i, col in enumerate(names)]
    left = out.width - sum(widths[:-1]) - 3 * len(names) - 1  # each column's borders and padding
    widths[-1] = max(10, min(widths[-1], left))
    for col, width in zip(names, widths):
        table.add_column(col, no_wrap=True, overflow="ellipsis", width=width)
    for r in rows:
        table.add_row(*r)
    out.print(table)
    return len(cases)


def _experiment_policy(holdout: float) -> Path:
    """A copy of the active policy with holdout fraction `holdout`, under the project home."""
    import yaml

    from rich.markup import escape

    from connectors.policy_source import PolicyResource
    from connectors.settings import project_home
    from models.policy.loader import PolicyError, load_policy

    source = PolicyResource().resolved_path()
    try:
        load_policy(source)  # validated within the loader's limits before it is copied
    except PolicyError as exc:
        err.print(f"[red]invalid policy[/red] {escape(exc.summary())}", soft_wrap=True)
        raise typer.Exit(2) from None
    spec = yaml.safe_load(source.read_text(encoding="utf-8"))
    spec["holdout"]["fraction"] = holdout
    spec["version"] = f"{spec['version']}-holdout{round(holdout * 100)}"
    target = project_home() / "policies" / f"{source.stem}.holdout{round(holdout * 100)}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"# {source.name} with a {holdout:.0%} holdout, for `rescue demo loop`\n" + yaml.safe_dump(spec, sort_keys=False))
    return target


def _replay_dates(weeks: int) -> list[pd.Timestamp]:
    """`weeks` weekly snapshot dates, the last one 91 days before the world's end (so the
    renewals that follow every snapshot by up to a quarter are in the past)."""
    import pandas as pd

    from connectors.demo.world import read_world_meta
    from connectors.settings import default_warehouse_url
    from connectors.warehouse import Warehouse

    meta = read_world_meta(Warehouse(default_warehouse_url()))
    if meta is None:
        err.print("[red]no demo world in the warehouse[/red]: run `rescue demo generate` first")
        raise typer.Exit(1)
    last = pd.Timestamp(meta["end_date"]).normalize() - pd.Timedelta(days=91)
    return [last - pd.Timedelta(weeks=k) for k in range(weeks - 1, -1, -1)]


def print_effectiveness(table: pd.DataFrame) -> None:
    """The play-effectiveness table (treated vs holdout) and the overall verdict."""
    shown = Table(title="Play effectiveness: treated vs holdout (save rate at the renewal after the decision)")
    for col in ("play", "n treated", "n holdout", "saved treated", "saved holdout", "diff", "95% CI"):
        shown.add_column(col, justify="left" if col == "play" else "right")
    for row in table.itertuples(index=False):
        shown.add_row(row.play, str(row.n_treated), str(row.n_holdout), f"{row.save_rate_treated:.0%}",
                      f"{row.save_rate_holdout:.0%}", f"{row.save_rate_diff * 100:+.0f} pts",
                      f"{row.diff_ci_low * 100:+.0f} .. {row.diff_ci_high * 100:+.0f}")
    out.print(shown)
    out.print(f"Verdict: {table.iloc[0]['verdict']}")
    out.print("Per-play rows compare each play's accounts with the whole holdout; plays were not randomized "
              "between accounts, so only the overall row is a clean experiment.")


def run_loop(instance, *, weeks: int, holdout: float, seed: int) -> None:
    """Replay `weeks` weekly snapshots with the simulated rescue team (see the module docs)."""
    import pandas as pd

    from connectors.policy_source import PolicyResource
    from connectors.queue.store import QueueStore
    from connectors.demo.team import simulate_rescue_team
    from connectors.settings import default_queue_url, default_warehouse_url
    from connectors.warehouse import Warehouse
    from pipelines.definitions import build_definitions

    dates = _replay_dates(weeks)
    store = QueueStore(default_queue_url())
    store.migrate()
    if len(store.routing_log(dates[0])) or (store.list_cases()["snapshot_date"] <= dates[-1]).any():
        err.print(f"the loop's history ({dates[0].date()} .. {dates[-1].date()}) is already in the queue; "
                  "not replaying it (`rescue demo run --regenerate` starts a fresh world)")
        return
    policy = _experiment_policy(holdout)
    err.print(f"replaying {weeks} weekly snapshots {dates[0].date()} .. {dates[-1].date()} with policy "
              f"{policy.name} ({holdout:.0%} holdout; the default policy's 10% would leave too few held-out "
              "accounts to conclude) and a simulated rescue team")
    defs = build_definitions({"policy": PolicyResource(path=str(policy))})
    replayed = PolicyResource(path=str(policy)).load()  # the simulated team runs its catalogue's plays
    warehouse = Warehouse(default_warehouse_url())
    sent = {"delivered": 0, "failed": 0, "dead": 0, "pending": 0}

    def deliver(now: pd.Timestamp) -> None:
        """The day's notifications, delivered at `now` of the simulated clock."""
        day_sent = deliver_notifications(defs, now=now)
        for key in ("delivered", "failed", "dead"):
            sent[key] += day_sent[key]
        sent["pending"] = day_sent["pending"]

    for day in dates:
        pinned = f"{day.date()}T09:00:00+00:00"
        _run_job(defs, "daily_rescue_job", instance, partition_key=str(day.date()),
                 run_config={"ops": {"rescue_queue": {"config": {"now": pinned}},
                                     "crm_writeback": {"config": {"now": pinned}}}})
        evening = day + pd.Timedelta(hours=17)
        done = simulate_rescue_team(store, warehouse, now=evening, seed=seed, policy=replayed)
        deliver(evening)
        err.print(f"  rescue team {day.date()}: claimed {done.claimed}, plays {done.plays_logged}, "
                  f"saved {done.saved}, churned {done.churned}, waiting for renewal {done.waiting_for_renewal}; "
                  f"holdout outcomes {done.holdout_recorded}")
    end = dates[-1] + pd.Timedelta(days=91)
    done = simulate_rescue_team(store, warehouse, now=end, seed=seed, policy=replayed)
    deliver(end)
    err.print(f"  renewals up to {end.date()}: saved {done.saved}, churned {done.churned}, "
              f"holdout outcomes {done.holdout_recorded}; {done.waiting_for_renewal} case(s) renew later")
    err.print(f"  {notifications_summary(sent, 'over the replay')}")


def run_feedback(instance, defs=None) -> pd.DataFrame:
    """Run the feedback job (CRM write-back, rescue outcomes, play effectiveness); its table."""
    from pipelines.definitions import build_definitions

    import contextlib
    import io

    defs = defs or build_definitions()
    _run_job(defs, "feedback_job", instance)
    # what the run wrote, read back through its IO manager (whose debug line stays off the terminal)
    with contextlib.redirect_stderr(io.StringIO()):
        return defs.load_asset_value("play_effectiveness", instance=instance)


def deliver_notifications(defs, *, now=None, batch: int = 100, max_batches: int = 1_000) -> dict[str, int]:
    """Deliver every notification in the outbox due at `now` (default: the current instant)
    through the Definitions' notifier (batch after batch, as SLA clock ticks would); returns the
    counts delivered, failed, dead and still pending."""
    import dagster as dg

    with dg.build_resources({"queue": defs.resources["queue"], "notifier": defs.resources["notifier"]}) as res:
        store = res.queue.get_client()
        report = res.notifier.deliver_all(store, now=now, batch=batch, max_batches=max_batches)
        pending = store.outbox("pending")
        channels = res.notifier.get_notifier().channels
        return {"delivered": report.delivered, "failed": report.failed, "dead": report.dead,
                "pending": int(pending["channel"].isin(channels).sum())}


def notifications_summary(sent: dict[str, int], when: str = "from the outbox") -> str:
    """`Notifications: N delivered <when>[, F failed (retried later), D dead]; P pending.`"""
    return (f"Notifications: {sent['delivered']} delivered {when}"
            + (f", {sent['failed']} failed (retried later), {sent['dead']} dead" if sent["failed"] or sent["dead"] else "")
            + f"; {sent['pending']} pending.")


@demo_app.command("loop")
def loop(
    weeks: int = typer.Option(12, min=2, help="Weekly historical snapshots to replay."),
    holdout: float = typer.Option(0.5, min=0.05, max=0.95, help="Holdout fraction of the replay's policy."),
    seed: int = typer.Option(7, help="Seed of the simulated rescue team."),
) -> None:
    """Replay history with a simulated rescue team, then measure play effectiveness.

    Needs a trained model (`rescue demo run` trains one).
    """
    _refuse_user_data()
    instance = _instance()
    run_loop(instance, weeks=weeks, holdout=holdout, seed=seed)
    print_effectiveness(run_feedback(instance))


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
    with_loop: bool = typer.Option(True, "--loop/--no-loop", help="Replay the feedback loop (`rescue demo loop`)."),
    weeks: int = typer.Option(12, min=2, help="Weekly snapshots the loop replays."),
    verbose: bool = typer.Option(False, "--verbose", help="Show Dagster's logs and stack traces as the runs go."),
) -> None:
    """Generate the world if needed, retrain, replay the feedback loop, score and route the latest
    snapshots, print the queue and the play-effectiveness table.

    The daily job runs for the last ``--days`` snapshot dates in order, as the daily schedule
    would have: the policy only opens a case for an account that has been at risk for its
    minimum number of days, and scores get a trend.
    """
    if verbose:
        set_verbose(True)
    import pandas as pd

    from connectors.settings import (
        default_queue_url,
        default_warehouse_url,
        project_home,
    )
    from connectors.demo.world import read_world_meta
    from connectors.warehouse import Warehouse

    _refuse_user_data()
    wh = Warehouse(default_warehouse_url())
    if regenerate or read_world_meta(wh) is None:
        _generate(accounts, seed, None)
    else:
        err.print("demo world found in the warehouse (use --regenerate for a new one)")
    from pipelines.definitions import build_definitions

    defs = build_definitions()

    instance = _instance()
    snapshot = _snapshot_date()
    _run_job(defs, "weekly_retrain_job", instance)
    if with_loop:
        # history first, so the queue's timeline runs forward: the replayed weeks, then today
        run_loop(instance, weeks=weeks, holdout=0.5, seed=seed)
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
    if with_loop:
        print_effectiveness(run_feedback(instance, defs))
    out.print(notifications_summary(deliver_notifications(defs)))
    if n == 0:
        sys.exit(1)


@demo_app.command("contracts")
def contracts() -> None:
    """Print the data contracts as Markdown (the source of docs/contracts.md)."""
    from models.contracts import describe_contracts_markdown

    print(describe_contracts_markdown())

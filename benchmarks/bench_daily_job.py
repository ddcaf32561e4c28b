"""The weekly retrain and one daily snapshot as Dagster runs them: time and peak memory per step.

    RESCUE_BENCH_CACHE=/tmp/bcache python benchmarks/bench_daily_job.py --accounts 1000000

`benchmarks/bench_pipeline.py` calls the functions the assets call, in one process that holds
every frame of the path at once; a Dagster run holds less: each step loads its inputs from the IO
manager and drops them when it ends. This runs the real jobs of the Definitions
(`pipelines.definitions.build_definitions`, the bound resources of a temporary `RESCUE_HOME`) in
process, on the world `bench_pipeline.py` cached with its usage built (``--reuse-usage-build``;
without it the world is generated and built here first): `weekly_retrain_job` (which promotes a
champion), then `daily_rescue_job` for the world's last snapshot at the instant the schedule runs
it. Each job runs in a process of its own (what a job holds is not counted in the next one's
peak), on the same home. A success hook on every step reads the process's resident high-water
mark (Linux: VmHWM) and resets it (/proc/self/clear_refs), so each step's figure is the peak while
it ran, with whatever the run still held (glibc keeps memory a step freed, so a step's figure is
at least what the largest earlier step left resident); the step's seconds are from the run's own
events. Prints JSON lines per step, then a summary per job. ``--home DIR --jobs daily_rescue_job``
runs the named jobs again on a home an earlier run kept (``--keep``). A benchmark: it gates
nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]


JOBS = ("weekly_retrain_job", "daily_rescue_job")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--home", type=Path, help="run on this home (prepared by an earlier --keep run)")
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=JOBS)
    parser.add_argument("--keep", action="store_true", help="keep the home for a later --home run")
    parser.add_argument("--one-job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("RESCUE_WAREHOUSE_URL", "RESCUE_QUEUE_URL", "RESCUE_MODEL_DIR", "RESCUE_REPORT_DIR", "DAGSTER_HOME"):
        os.environ.pop(name, None)
    if args.one_job:
        os.environ["RESCUE_HOME"] = str(args.home)
        run_job(args.one_job, args.accounts, args.seed)
        return
    home = args.home or Path(tempfile.mkdtemp(prefix="rescue-bench-job-"))
    os.environ["RESCUE_HOME"] = str(home)
    try:
        if args.home is None:
            prepare(args.accounts, args.seed, home)
        for job in args.jobs:  # a process per job: a clean heap
            done = subprocess.run([sys.executable, __file__, "--one-job", job, "--home", str(home),
                                   "--accounts", str(args.accounts), "--seed", str(args.seed)], cwd=REPO)
            if done.returncode:
                sys.exit(done.returncode)
    finally:
        if args.home is None and not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        elif args.keep:
            print(json.dumps({"home": str(home)}), flush=True)


def _config(n_accounts: int, seed: int):
    from connectors.demo.world import DemoWorldConfig

    return DemoWorldConfig(n_accounts=n_accounts, seed=seed, end_date=date(2026, 11, 20))


def prepare(n_accounts: int, seed: int, home: Path) -> None:
    """The world with its usage built, into the home's warehouse: copied from the cache when
    `bench_pipeline.py` left it there, else generated and built here."""
    from bench_pipeline import _cached_world
    from connectors.demo.world import generate_demo_world
    from connectors.warehouse import Warehouse

    cfg = _config(n_accounts, seed)
    cached = _cached_world(cfg)
    built = None if cached is None else cached.with_suffix(".usage-built.duckdb")
    target = home / "warehouse.duckdb"
    t0 = time.perf_counter()
    if built is not None and built.exists():
        shutil.copyfile(built, target)
        prepared = f"copied {built}"
    else:
        wh = Warehouse(f"duckdb:///{target}")
        generate_demo_world(cfg, wh)
        wh.build_usage_daily()
        wh.engine.dispose()
        prepared = "generated and built"
    print(json.dumps({"accounts": n_accounts, "world": prepared, "seconds": round(time.perf_counter() - t0, 1)}),
          flush=True)


def run_job(job_name: str, n_accounts: int, seed: int) -> None:
    import dagster as dg
    import pandas as pd

    from assets.run_clock import NOW_TAG, replay_now
    from bench_pipeline import _peak_mib, _reset_peak
    from pipelines.definitions import build_definitions

    cfg = _config(n_accounts, seed)
    steps: dict[str, float] = {}

    @dg.success_hook(name="step_peak")
    def step_peak(context: dg.HookContext) -> None:
        steps[context.step_key] = round(_peak_mib(), 1)
        _reset_peak()

    defs = build_definitions()
    instance = dg.DagsterInstance.ephemeral()
    snapshot = pd.Timestamp(cfg.end_date)
    kwargs = {"partition_key": f"{snapshot.date()}"} if job_name == "daily_rescue_job" else {}
    job = defs.resolve_job_def(job_name).with_hooks({step_peak})
    _reset_peak()
    started = time.perf_counter()
    result = job.execute_in_process(instance=instance, raise_on_error=False,
                                    tags={NOW_TAG: replay_now(snapshot).isoformat()}, **kwargs)
    wall = time.perf_counter() - started
    timing = _step_seconds(instance, result.run_id)
    for key, seconds in sorted(timing.items(), key=lambda kv: -kv[1]):
        print(json.dumps({"accounts": n_accounts, "job": job_name, "step": key, "seconds": seconds,
                          "peak_rss_mib": steps.get(key)}), flush=True)
    print(json.dumps({"accounts": n_accounts, "job": job_name, "success": result.success,
                      "wall_seconds": round(wall, 1), "steps": len(timing),
                      "peak_rss_mib": max(steps.values(), default=None),
                      "peak_step": max(steps, key=steps.get) if steps else None}), flush=True)
    if not result.success:
        sys.exit(1)


def _step_seconds(instance, run_id: str) -> dict[str, float]:
    """Each step's seconds, from its STEP_START to its STEP_SUCCESS (or STEP_FAILURE) event."""
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = record.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in started:
            seconds[event.step_key] = round(record.timestamp - started[event.step_key], 2)
    return seconds


if __name__ == "__main__":
    main()

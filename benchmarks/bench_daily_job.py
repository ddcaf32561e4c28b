"""The weekly retrain and one daily snapshot as Dagster runs them: time and peak memory per step.

    RESCUE_BENCH_CACHE=/tmp/bcache python benchmarks/bench_daily_job.py --accounts 1000000

`benchmarks/bench_pipeline.py` calls the functions the assets call, in one process that holds
every frame of the path at once; a Dagster run holds less: each step loads its inputs from the IO
manager and drops them when it ends. This runs the real jobs of the Definitions
(`pipelines.definitions.build_definitions`, the bound resources of a temporary `RESCUE_HOME`) in
process, on the world `bench_pipeline.py` cached with its usage built (``--reuse-usage-build``;
without it the world is generated and built here first): `weekly_retrain_job` (which promotes a
champion), then `daily_rescue_job` for the world's last snapshot at the instant the schedule runs
it. A success hook on every step reads the process's resident high-water mark (Linux: VmHWM) and
resets it (/proc/self/clear_refs), so each step's figure is the peak while it ran, with whatever
the run still held; the step's seconds are from the run's own events. Prints JSON lines per step,
then a summary per job. A benchmark: it gates nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="rescue-bench-job-"))
    for name in ("RESCUE_WAREHOUSE_URL", "RESCUE_QUEUE_URL", "RESCUE_MODEL_DIR", "RESCUE_REPORT_DIR", "DAGSTER_HOME"):
        os.environ.pop(name, None)
    os.environ["RESCUE_HOME"] = str(home)
    try:
        run(args.accounts, args.seed, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run(n_accounts: int, seed: int, home: Path) -> None:
    import dagster as dg
    import pandas as pd

    from assets.run_clock import NOW_TAG, replay_now
    from bench_pipeline import _cached_world, _peak_mib, _reset_peak
    from connectors.demo.world import DemoWorldConfig, generate_demo_world
    from connectors.warehouse import Warehouse
    from pipelines.definitions import build_definitions

    cfg = DemoWorldConfig(n_accounts=n_accounts, seed=seed, end_date=date(2026, 11, 20))
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

    steps: dict[str, float] = {}

    @dg.success_hook(name="step_peak")
    def step_peak(context: dg.HookContext) -> None:
        steps[context.step_key] = round(_peak_mib(), 1)
        _reset_peak()

    defs = build_definitions()
    instance = dg.DagsterInstance.ephemeral()
    snapshot = pd.Timestamp(cfg.end_date)
    for job_name, kwargs in (("weekly_retrain_job", {}), ("daily_rescue_job", {"partition_key": f"{snapshot.date()}"})):
        steps.clear()
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
            break


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

"""Wall time and peak memory of the usage source checks, against a bare warehouse query, as JSON.

    python benchmarks/bench_usage_checks.py --accounts 10000 100000 [--worlds DIR] [--code DIR]

For each size, a demo world (`connectors.demo.world.generate_demo_world`, then
`Warehouse.build_usage_daily`) is written to a DuckDB file under ``--worlds`` (default ``.rescue/bench_worlds``; kept there and
reused by later runs: generating 100k accounts takes minutes). Then, each in its own subprocess
(a clean heap, so the peak is the step's own):

- ``contract``: the ``product_usage_daily_contract`` check as Dagster calls it;
- ``consistent``: ``product_usage_daily_consistent`` (with the accounts and renewals pulled as
  the source assets pull them, before the clock starts);
- ``reference``: the bare query the checks cannot beat: one ``SELECT account_id, COUNT(*) ...
  GROUP BY account_id`` over the same 120 days of ``usage_daily`` in DuckDB.

Each check's time is also given as a ratio to the reference's. ``--code`` is the checkout whose
``assets.quality`` is measured (default: this one), so one script measures before and after a
change. Peak memory is the subprocess's resident high-water mark (VmHWM, DuckDB's native memory
included), with the same process's mark after its imports as ``import_rss_mib``. This is a
benchmark: it prints figures and gates nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
END = date(2026, 11, 20)
STEPS = ("reference", "contract", "consistent", "reference")


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _world(n_accounts: int, worlds: Path) -> Path:
    """The DuckDB file of a demo world of `n_accounts`, generated once."""
    path = worlds / f"world_{n_accounts}.duckdb"
    if path.exists():
        return path
    from connectors.demo.world import DemoWorldConfig, generate_demo_world
    from connectors.warehouse import Warehouse

    worlds.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.duckdb")
    partial.unlink(missing_ok=True)
    wh = Warehouse(f"duckdb:///{partial}")
    generate_demo_world(DemoWorldConfig(n_accounts=n_accounts, seed=7, end_date=END), wh)
    wh.build_usage_daily()
    wh.engine.dispose()
    partial.rename(path)
    return path


def _step(step: str, url: str) -> dict:
    """One measurement in this (fresh) process."""
    import dagster as dg
    import pandas as pd

    from assets import quality
    from connectors.sources import WarehouseCRM
    from connectors.warehouse import WarehouseResource

    warehouse = WarehouseResource(url=url)
    out: dict = {"step": step}
    if step == "consistent":
        crm = WarehouseCRM(warehouse=warehouse)
        inputs = {"crm_accounts": crm.accounts(), "crm_renewals": crm.renewals(), "crm_account_history": None}
    out["import_rss_mib"] = round(_peak_mib(), 1)
    context = dg.build_asset_check_context(resources={"warehouse": warehouse,
                                                      "source_checks": quality.SourceChecksResource()})
    t0 = time.perf_counter()
    if step == "reference":
        client = warehouse.get_client()
        last = pd.Timestamp(client.read_sql("SELECT MAX(date) AS d FROM usage_daily").iloc[0]["d"])
        start = (last - pd.Timedelta(days=quality.USAGE_CHECK_DAYS - 1)).date()
        counts = client.read_sql("SELECT account_id, COUNT(*) AS n FROM usage_daily WHERE date >= :start "
                                 "GROUP BY account_id", {"start": start})
        out["rows"] = int(counts["n"].sum())
    elif step == "contract":
        result = quality.product_usage_daily_contract(context)
        out["passed"], out["rows"] = result.passed, result.metadata["rows"].value
    else:
        result = quality.product_usage_daily_consistent(context, **inputs)
        out["passed"], out["rows"] = result.passed, result.metadata["rows"].value
    out["seconds"] = round(time.perf_counter() - t0, 2)
    out["peak_rss_mib"] = round(_peak_mib(), 1)
    return out


def run_size(n_accounts: int, worlds: Path, code: Path) -> dict:
    url = f"duckdb:///{_world(n_accounts, worlds)}"
    env = {**os.environ, "PYTHONPATH": str(code), "GX_ANALYTICS_ENABLED": "False"}
    steps = []
    for step in STEPS:
        done = subprocess.run([sys.executable, __file__, "--step", step, "--url", url], cwd=code, env=env,
                              capture_output=True, text=True, check=True)
        steps.append(json.loads(done.stdout.strip().splitlines()[-1]))
    reference = min(s["seconds"] for s in steps if s["step"] == "reference")
    for s in steps:
        s["ratio_to_reference"] = round(s["seconds"] / reference, 1) if reference else None
    return {"accounts": n_accounts, "code": str(code), "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--worlds", type=Path, default=REPO / ".rescue" / "bench_worlds")
    parser.add_argument("--code", type=Path, default=REPO)
    parser.add_argument("--step", choices=sorted(set(STEPS)), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(_step(args.step, args.url)))
        return
    sys.path.insert(0, str(REPO))
    for n in args.accounts:
        print(json.dumps(run_size(n, args.worlds, args.code.resolve())), flush=True)


if __name__ == "__main__":
    main()

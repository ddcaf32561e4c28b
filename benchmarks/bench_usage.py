"""The usage_daily build, full against incremental, against a bare DuckDB GROUP BY, as JSON.

    python benchmarks/bench_usage.py --accounts 10000 100000

For each size: the demo world (`connectors.demo.world.generate_demo_world`) in a DuckDB file
in a temporary directory, its last day of events held back. Then, each round: the full build
(`connectors.usage.rebuild_usage_daily`) of the events before that day; the held-back day
appended (not timed); the daily run's incremental build (`update_usage_daily`, the default
3-day lookback: the lookback, the last aggregated day and the new one); the same build again
with nothing new (a rerun); and the reference, one plain DuckDB ``CREATE TABLE ... AS SELECT
... GROUP BY account, day`` of the same events (``COUNT(DISTINCT user_id)`` and the three sums),
on a connection with the warehouse's memory limit. The times are medians over the rounds; the
ratios are to the reference's median, so a busy machine moves them less than the seconds.
This is a benchmark: it prints figures and gates nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import duckdb  # noqa: E402

from connectors.demo.world import DemoWorldConfig, generate_demo_world  # noqa: E402
from connectors.usage import DEFAULT_LOOKBACK_DAYS, rebuild_usage_daily, update_usage_daily  # noqa: E402
from connectors.warehouse import DEFAULT_DUCKDB_MEMORY_LIMIT, RAW_EVENTS_TABLE, Warehouse  # noqa: E402

HELD = "bench_held_day"
REFERENCE = f"""
CREATE OR REPLACE TABLE bench_reference AS
SELECT account_id, CAST(occurred_at AS DATE) AS date, COUNT(DISTINCT user_id) AS active_users,
       SUM(quantity) AS events, SUM(CASE WHEN feature = 'core' THEN quantity ELSE 0 END) AS core_events,
       SUM(CASE WHEN feature = 'advanced' THEN quantity ELSE 0 END) AS advanced_events
FROM {RAW_EVENTS_TABLE} GROUP BY account_id, CAST(occurred_at AS DATE)
"""


def _timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def _duckdb(path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path), config={"memory_limit": DEFAULT_DUCKDB_MEMORY_LIMIT})
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    return con


def run_size(n_accounts: int, rounds: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-usage-") as tmp:
        path = Path(tmp) / "warehouse.duckdb"
        wh = Warehouse(f"duckdb:///{path}")
        cfg = DemoWorldConfig(n_accounts=n_accounts, seed=seed, end_date=date(2026, 11, 20))
        generate_seconds, counts = _timed(lambda: generate_demo_world(cfg, wh))
        with _duckdb(path) as con:
            last = con.execute(f"SELECT CAST(MAX(occurred_at) AS DATE) FROM {RAW_EVENTS_TABLE}").fetchone()[0]
            con.execute(f"CREATE TABLE {HELD} AS SELECT * FROM {RAW_EVENTS_TABLE} WHERE occurred_at >= ?", [last])
            held_rows = con.execute(f"SELECT COUNT(*) FROM {HELD}").fetchone()[0]
        times: dict[str, list[float]] = {"full": [], "incremental": [], "rerun": [], "reference": []}
        for _ in range(rounds):
            with _duckdb(path) as con:
                con.execute(f"DELETE FROM {RAW_EVENTS_TABLE} WHERE occurred_at >= ?", [last])
            seconds, full = _timed(lambda: rebuild_usage_daily(wh))
            times["full"].append(seconds)
            with _duckdb(path) as con:
                con.execute(f"INSERT INTO {RAW_EVENTS_TABLE} SELECT * FROM {HELD}")
            seconds, incremental = _timed(lambda: update_usage_daily(wh))
            times["incremental"].append(seconds)
            seconds, rerun = _timed(lambda: update_usage_daily(wh))
            times["rerun"].append(seconds)
            assert incremental.mode == rerun.mode == "incremental", (incremental.reason, rerun.reason)
            with _duckdb(path) as con:
                seconds, _ = _timed(lambda: con.execute(REFERENCE))
                reference_rows = con.execute("SELECT COUNT(*) FROM bench_reference").fetchone()[0]
            times["reference"].append(seconds)
        assert reference_rows == incremental.rows, (reference_rows, incremental.rows)
        median = {k: statistics.median(v) for k, v in times.items()}
        ref = median["reference"]
        return {
            "accounts": n_accounts,
            "raw_events": int(counts[RAW_EVENTS_TABLE]),
            "appended_day_events": int(held_rows),
            "usage_daily_rows": int(incremental.rows),
            "generate_s": round(generate_seconds, 1),
            "rounds": rounds,
            "seconds": {k: round(v, 3) for k, v in median.items()},
            "seconds_each_round": {k: [round(x, 3) for x in v] for k, v in times.items()},
            "vs_reference": {k: round(v / ref, 3) for k, v in median.items() if k != "reference"},
            "full_over_incremental": round(median["full"] / median["incremental"], 1),
            "incremental": {"lookback_days": DEFAULT_LOOKBACK_DAYS, "window_start": str(incremental.window_start),
                            "days": incremental.days, "rows_replaced": incremental.rows_replaced,
                            "rows_written": incremental.rows_written, "full_rows_before": full.rows},
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[10_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    out = {
        "benchmark": "usage_daily",
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "sizes": [run_size(n, args.rounds, args.seed) for n in args.accounts],
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

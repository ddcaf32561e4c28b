"""Start-up time of the `rescue` CLI against a bare import of its three libraries, as JSON.

    python benchmarks/bench_cli.py [--runs 7]

Runs, `--runs` times each and alternating (so a busy machine slows every command alike), the
reference `python -c "import sqlalchemy, typer, rich"` and `rescue --help`, `rescue queue
--help` and `rescue queue list`, each in a fresh interpreter from the repository root. The CLI
is run as `python -m pipelines.cli.main`, what the `rescue` console script runs. `queue list`
reads an empty queue: a temporary RESCUE_HOME whose embedded SQLite queue is migrated once
before the runs (RESCUE_QUEUE_URL is unset, so the queue is `$RESCUE_HOME/queue.db`,
`connectors.settings.default_queue_url`). Every command runs once untimed first (bytecode
caches). Prints one JSON object per command: the median wall seconds and the ratio of that
median to the reference's. This is a benchmark: it prints figures and gates nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Settings that would point the CLI at a configured system instead of the temporary home.
HOME_BOUND = ("RESCUE_WAREHOUSE_URL", "RESCUE_QUEUE_URL", "RESCUE_MODEL_DIR", "RESCUE_REPORT_DIR")
REFERENCE = "import sqlalchemy, typer, rich"
CLI = ["-m", "pipelines.cli.main"]
COMMANDS = {
    "bare import": ["-c", REFERENCE],
    "rescue --help": [*CLI, "--help"],
    "rescue queue --help": [*CLI, "queue", "--help"],
    "rescue queue list": [*CLI, "queue", "list"],
}


def _environment(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in HOME_BOUND}
    env["RESCUE_HOME"] = home
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def _migrate(env: dict[str, str]) -> None:
    """An empty queue: the schema, no cases."""
    code = ("from connectors.queue.store import QueueStore; from connectors.settings import default_queue_url; "
            "s = QueueStore(default_queue_url()); s.migrate(); s.close()")
    subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True)


def _seconds(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *args], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each command (default 7)")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory(prefix="rescue-bench-cli-") as home:
        env = _environment(home)
        _migrate(env)
        for command in COMMANDS.values():
            _seconds(command, env)
        for _ in range(args.runs):
            for name, command in COMMANDS.items():
                times[name].append(_seconds(command, env))
    reference = statistics.median(times["bare import"])
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    print(json.dumps({"machine": machine, "runs": args.runs}))
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(json.dumps({"command": name, "median_seconds": round(median, 3), "ratio": round(median / reference, 2),
                          "min_seconds": round(min(seconds), 3), "max_seconds": round(max(seconds), 3)}))


if __name__ == "__main__":
    main()

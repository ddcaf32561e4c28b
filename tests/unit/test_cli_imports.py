"""What the `rescue` command loads to start: help is quick because it loads no heavy library.

The command modules (`pipelines/cli/*.py`) import typer, rich, SQLAlchemy, the standard
library and light project modules at module level; pandas, the queue store, alembic, the
policy, Dagster, LightGBM, scikit-learn, FastAPI and matplotlib load in the commands that use
them. Each case runs the command in a fresh interpreter (in process, through `app`) and lists
the heavy modules left in `sys.modules`: no timing, so a busy machine cannot fail it.
`benchmarks/bench_cli.py` measures the start-up time itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Libraries and project modules `rescue --help` (and every group's --help) never loads.
NOT_FOR_HELP = (
    "dagster", "lightgbm", "sklearn", "scipy", "pandas", "numpy", "alembic", "duckdb", "fastapi", "uvicorn",
    "matplotlib", "connectors.queue.store", "models.policy.schema", "pipelines.definitions",
)
#: What `rescue queue list` on an empty queue never loads: it reads the queue with SQLAlchemy
#: and the store (so pandas), runs no migration (no alembic), with no case no SLA clock (so no
#: policy), and on a SQLite queue not SQLAlchemy's PostgreSQL dialect (`connectors.queue.schema`
#: names its PostgreSQL options only for a PostgreSQL engine).
NOT_FOR_QUEUE_LIST = (
    "dagster", "lightgbm", "sklearn", "fastapi", "uvicorn", "matplotlib", "alembic", "duckdb",
    "models.policy.schema", "pipelines.definitions", "sqlalchemy.dialects.postgresql",
)

RUN = """
import json, os, sys
from pipelines.cli.main import app
try:
    app(sys.argv[1:], prog_name="rescue")
except SystemExit as exc:
    code = exc.code
names = json.loads(os.environ["CHECK_MODULES"])
print(json.dumps({"exit": code, "loaded": [n for n in names if n in sys.modules]}))
"""


def _loaded(args: list[str], modules: tuple[str, ...], home: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESCUE_")}
    env.update(PYTHONPATH=str(ROOT), RESCUE_HOME=str(home), CHECK_MODULES=json.dumps(modules), COLUMNS="120")
    done = subprocess.run([sys.executable, "-c", RUN, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["exit"] in (0, None), (args, done.stdout[-2000:], done.stderr[-2000:])
    return result["loaded"]


@pytest.mark.parametrize("args", [
    ["--help"], ["queue", "--help"], ["queue", "list", "--help"], ["run", "--help"], ["demo", "--help"],
    ["data", "--help"], ["model", "--help"], ["policy", "--help"], ["desk", "--help"],
], ids=" ".join)
def test_help_loads_no_heavy_library(args, tmp_path):
    assert _loaded(args, NOT_FOR_HELP, tmp_path) == []


def test_queue_list_on_an_empty_queue_loads_no_migration_policy_or_pipeline(tmp_path):
    from connectors.queue.store import QueueStore

    store = QueueStore(f"sqlite:///{tmp_path / 'queue.db'}")  # the embedded queue under RESCUE_HOME
    store.migrate()
    store.close()
    assert _loaded(["queue", "list"], NOT_FOR_QUEUE_LIST, tmp_path) == []

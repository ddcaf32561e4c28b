"""The daily job under the multiprocess executor, on a PostgreSQL warehouse, queue and Dagster
instance: the deployment `RESCUE_EXECUTOR=multiprocess` is for (`pipelines.executors`).

Everything is configured the way a deployment configures it, through the environment, since
each step process rebuilds the Definitions from it: the `RESCUE_*` variables and a `DAGSTER_HOME`
whose dagster.yaml keeps runs and events in PostgreSQL (`dagster-postgres`, the password read
from a variable). One snapshot runs through `rescue run`, the next through `dagster job execute`; both
must succeed with every step in a process of its own, at most `RESCUE_MAX_CONCURRENCY` at once,
and fill the queue.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from connectors.demo.world import DemoWorldConfig, generate_demo_world
from connectors.warehouse import Warehouse
from tests.databases import fresh_pg_databases

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
#: Small, so the test is about execution, not volume: 200 days hold a training set's 90-day
#: feature window and 90-day horizon, and the 90 days of history a snapshot needs.
WORLD = DemoWorldConfig(n_accounts=80, seed=5, end_date=date(2026, 11, 20), history_days=200)
SNAPSHOTS = ("2026-11-19", "2026-11-20")
MAX_CONCURRENCY = 2
#: The variable dagster.yaml reads the instance database's password from (never in the file; the
#: test cluster trusts local connections, so any value signs in).
INSTANCE_PASSWORD_VARIABLE = "RESCUE_TEST_DAGSTER_PG_PASSWORD"


@pytest.fixture
def pg_databases(pg_server_url):
    """URLs of three fresh databases: the warehouse, the rescue queue and the Dagster instance."""
    with fresh_pg_databases(pg_server_url, ("wh", "queue", "dagster")) as urls:
        # dagster-postgres 0.29 needs psycopg2, named: SQLAlchemy 2.1 reads a bare postgresql://
        # as psycopg 3, on which its NOTIFY statement fails (the product's own URLs use psycopg 3)
        urls[2] = urls[2].set(drivername="postgresql+psycopg2")
        yield [url.render_as_string(hide_password=False) for url in urls]


def _deployment(tmp_path: Path, monkeypatch, warehouse_url: str, queue_url: str, instance_url: str) -> dict[str, str]:
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    # the instance configuration docs/scale_out.md gives, the password read from a variable
    instance = sa.make_url(instance_url)
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump({
        "storage": {"postgres": {"postgres_db": {
            "username": instance.username, "password": {"env": INSTANCE_PASSWORD_VARIABLE},
            "hostname": instance.host, "port": instance.port, "db_name": instance.database,
            "scheme": instance.drivername}}},
        "telemetry": {"enabled": False}}))
    # the company's policy admits its riskiest tenth on the first day at risk, so one snapshot
    # opens cases (the default needs two days above a risk this small world's rules stay under)
    policy = yaml.safe_load((REPO / "policies" / "default.yaml").read_text())
    policy["hysteresis"] = {"field": "churn_risk_percentile", "enter_threshold": 0.9, "exit_threshold": 0.8,
                            "min_days_in_state": 0}
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    env = {
        "RESCUE_HOME": str(tmp_path / "home"),
        "RESCUE_WAREHOUSE_URL": warehouse_url,
        "RESCUE_QUEUE_URL": queue_url,
        "RESCUE_MODEL_DIR": str(tmp_path / "models"),
        "RESCUE_REPORT_DIR": str(tmp_path / "reports"),
        "RESCUE_POLICY_PATH": str(tmp_path / "policy.yaml"),
        "RESCUE_NOW": f"{SNAPSHOTS[-1]}T09:00:00+00:00",
        "RESCUE_EXECUTOR": "multiprocess",
        "RESCUE_MAX_CONCURRENCY": str(MAX_CONCURRENCY),
        "DAGSTER_HOME": str(dagster_home),
        INSTANCE_PASSWORD_VARIABLE: "unused-with-trust-authentication",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _steps(instance: dg.DagsterInstance, run_id: str) -> tuple[dict[str, tuple[float, float, int]], list[str]]:
    """Each step's (start, end, pid) and the run's engine messages."""
    started, ended, engine = {}, {}, []
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = (record.timestamp, event.pid)
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            ended[event.step_key] = record.timestamp
        elif event.event_type_value == "ENGINE_EVENT":
            engine.append(record.user_message or event.message or "")
    return {key: (at, ended[key], pid) for key, (at, pid) in started.items()}, engine


def test_the_daily_job_runs_a_process_per_step_on_postgresql(pg_databases, tmp_path, monkeypatch):
    from pipelines.definitions import build_definitions

    warehouse_url, queue_url, instance_url = pg_databases
    generate_demo_world(WORLD, Warehouse(warehouse_url))
    env = _deployment(tmp_path, monkeypatch, warehouse_url, queue_url, instance_url)
    defs = build_definitions()
    daily = defs.resolve_job_def("daily_rescue_job")
    assert daily.executor_def.name == "multiprocess"
    instance = dg.DagsterInstance.get()
    try:
        _run_both_ways(defs, instance, env, warehouse_url, queue_url)
    finally:
        instance.dispose()  # its connections, before the databases are dropped


def _run_both_ways(defs, instance: dg.DagsterInstance, env: dict[str, str], warehouse_url: str, queue_url: str) -> None:
    from connectors.queue.store import QueueStore

    assert type(instance.run_storage).__name__ == "PostgresRunStorage"

    # the training set the daily job reads (the weekly retrain's, without its model search): in
    # process, on the same instance, whose storage directory holds the step outputs
    upstream = dg.AssetSelection.assets("training_set").upstream().resolve(defs.resolve_asset_graph())
    retrain = defs.resolve_job_def("weekly_retrain_job").execute_in_process(
        instance=instance, asset_selection=list(upstream), raise_on_error=False,
        run_config={"ops": {"training_set": {"config": {"observation_dates": 2}}}})
    assert retrain.success, [e.message for e in retrain.all_events if e.is_failure]

    child_env = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    first = subprocess.run([sys.executable, "-m", "pipelines.cli.main", "run", "--snapshot", SNAPSHOTS[0]],
                           cwd=REPO, env=child_env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert re.search(rf"^daily_rescue_job {SNAPSHOTS[0]} succeeded", first.stderr.strip().splitlines()[-1]), first.stderr
    second = subprocess.run(
        [sys.executable, "-m", "dagster", "job", "execute", "-m", "pipelines.definitions", "-j", "daily_rescue_job",
         "--tags", json.dumps({"dagster/partition": SNAPSHOTS[1]})],
        cwd=REPO, env=child_env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, (second.stdout + second.stderr)[-3000:]

    runs = sorted(instance.get_runs(filters=dg.RunsFilter(job_name="daily_rescue_job")), key=lambda r: r.tags["dagster/partition"])
    assert [r.tags["dagster/partition"] for r in runs] == list(SNAPSHOTS)
    for run in runs:
        assert run.status == dg.DagsterRunStatus.SUCCESS, run.run_id
        steps, engine = _steps(instance, run.run_id)
        # every asset and check of the daily job ran, each in a process of its own ...
        assert {"rescue_queue", "churn_scores", "crm_accounts", "queue_operations_metrics"} <= set(steps)
        pids = [pid for _, _, pid in steps.values()]
        assert len(set(pids)) == len(pids) >= 10, pids
        parent = next(m for m in engine if "multiprocess executor" in m)
        assert str(os.getpid()) not in parent and not any(f"pid: {pid})" in parent for pid in pids), parent
        # ... and independent steps ran at once, never more than the limit
        moments = sorted({at for at, _, _ in steps.values()})
        busiest = max(sum(1 for start, end, _ in steps.values() if start <= t < end) for t in moments)
        assert 2 <= busiest <= MAX_CONCURRENCY, busiest
        # ... and the run routed into the queue
        written = [r.dagster_event.event_specific_data.materialization for r in instance.all_logs(run.run_id)
                   if r.dagster_event is not None and r.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
                   and r.dagster_event.asset_key == dg.AssetKey("rescue_queue")]
        assert len(written) == 1 and written[0].partition == run.tags["dagster/partition"]
        assert written[0].metadata["open_cases"].value > 0, written[0].metadata
    cases = QueueStore(queue_url).list_cases(status="active")
    accounts = Warehouse(warehouse_url).read_sql("SELECT account_id FROM raw_crm_accounts")["account_id"]
    assert len(cases) > 0 and cases["account_id"].is_unique and set(cases["account_id"]) <= set(accounts)

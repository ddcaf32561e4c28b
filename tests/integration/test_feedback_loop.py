"""The whole feedback loop on a small demo world: routing, the simulated rescue team, the CRM
write-back, rescue outcomes into the next retrain, play effectiveness, and the actions sensor.

Real DuckDB warehouse (also the demo CRM), real SQLite queue; the jobs run through Dagster as the
schedules and the sensor run them.
"""

from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from connectors.writeback import WarehouseCRMWriter
from connectors.demo.world import DemoWorldConfig, generate_demo_world
from connectors.model_registry import ModelRegistryResource
from connectors.policy_source import PolicyResource
from connectors.queue.resource import QueueStoreResource
from connectors.queue.store import QueueStore
from connectors.demo.team import simulate_rescue_team
from connectors.sources import WarehouseCRM, WarehouseTicketing
from connectors.warehouse import Warehouse, WarehouseResource
from pipelines.definitions import build_definitions
from pipelines.sensors import rescue_actions_sensor
from tests.conftest import snapshot_frames

pytestmark = pytest.mark.slow

#: Big enough for a champion (48 churning accounts in the validation window, `MIN_VALID_CHURNERS`
#: is 30): on the 400-account world no model is promoted and the rules fallback routes almost
#: nobody in these weeks, which would leave the loop with nothing to measure.
WORLD = DemoWorldConfig(n_accounts=1200, seed=3, end_date=date(2026, 11, 20), history_days=540)
#: Weekly snapshots ending a quarter before the world's end, so the renewals after them are known.
SNAPSHOTS = ["2026-08-07", "2026-08-14", "2026-08-21"]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop")
    wh_url, queue_url = f"duckdb:///{root / 'warehouse.duckdb'}", f"sqlite:///{root / 'queue.db'}"
    generate_demo_world(WORLD, Warehouse(wh_url))
    policy = yaml.safe_load(Path("policies/default.yaml").read_text())
    policy["holdout"]["fraction"] = 0.5  # a control group big enough to see on a small world
    (root / "policy.yaml").write_text(yaml.safe_dump(policy))
    warehouse = WarehouseResource(url=wh_url)
    defs = build_definitions({
        "warehouse": warehouse,
        "crm": WarehouseCRM(warehouse=warehouse),
        "ticketing": WarehouseTicketing(warehouse=warehouse),
        "queue": QueueStoreResource(url=queue_url),
        "model_registry": ModelRegistryResource(path=str(root / "models")),
        "policy": PolicyResource(path=str(root / "policy.yaml")),
    })
    return {"defs": defs, "instance": dg.DagsterInstance.ephemeral(), "store": QueueStore(queue_url),
            "warehouse": Warehouse(wh_url)}


def run(env, job: str, partition: str | None = None):
    ops = {}
    if partition:
        pinned = f"{partition}T09:00:00+00:00"
        ops = {"rescue_queue": {"config": {"now": pinned}}, "crm_writeback": {"config": {"now": pinned}}}
    result = env["defs"].resolve_job_def(job).execute_in_process(
        instance=env["instance"], partition_key=partition, run_config={**QUIET, "ops": ops}, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


@pytest.fixture(scope="module")
def loop(env):
    run(env, "weekly_retrain_job")
    for day in SNAPSHOTS:
        run(env, "daily_rescue_job", day)
        simulate_rescue_team(env["store"], env["warehouse"], now=pd.Timestamp(day) + pd.Timedelta(hours=17), seed=7)
    simulate_rescue_team(env["store"], env["warehouse"], now=pd.Timestamp(WORLD.end_date), seed=7)
    return run(env, "feedback_job")


def crm_tasks(env) -> pd.DataFrame:
    return WarehouseCRMWriter(env["warehouse"]).tasks()


def test_rescue_outcomes_hold_treated_and_holdout_accounts_with_outcomes(env, loop):
    outcomes = loop.output_for_node("rescue_outcomes")
    cases = env["store"].list_cases()
    treated = outcomes[outcomes["group"] == "treated"]
    held = outcomes[outcomes["group"] == "holdout"]
    assert sorted(treated["case_id"]) == sorted(cases["case_id"])
    assert treated["treated_at"].notna().all() and (treated["plays"].map(len) >= 1).all()
    assert set(treated["outcome"].dropna()) <= {"saved", "churned"} and treated["outcome"].notna().any()
    assert len(held) > 0 and set(held["outcome"].dropna()) <= {"saved", "churned"}
    assert held["outcome"].notna().any()
    assert not set(held["account_id"]) & set(treated["account_id"])
    logged = env["store"].routing_log()
    assert set(held["account_id"]) == set(logged.loc[logged["action"] == "holdout", "account_id"])

    table = loop.output_for_node("play_effectiveness")
    overall = table.iloc[0]
    assert overall["play"] == "all plays"
    assert overall["n_treated"] == treated["outcome"].isin(["saved", "churned"]).sum()
    assert overall["n_holdout"] == held["outcome"].notna().sum()
    assert isinstance(overall["verdict"], str) and overall["verdict"]


def test_the_crm_has_one_task_per_case_and_reruns_of_the_daily_job_write_nothing_twice(env, loop):
    store = env["store"]
    tasks = crm_tasks(env)
    case_tasks = tasks[tasks["external_id"].str.startswith("rescue-case:")]
    assert sorted(case_tasks["case_id"]) == sorted(store.list_cases()["case_id"])
    assert tasks["external_id"].is_unique
    assert len(tasks) - len(case_tasks) == len(store.plays())  # one Task per play
    crm_outbox = store.outbox()[lambda f: f["channel"] == "crm"]
    assert (crm_outbox["status"] == "delivered").all()

    before = (store.list_cases()[["case_id", "status", "version"]], tasks, len(store.outbox()))
    for _ in range(2):  # with the run above: the last partition three times
        run(env, "daily_rescue_job", SNAPSHOTS[-1])
    after = (store.list_cases()[["case_id", "status", "version"]], crm_tasks(env), len(store.outbox()))
    pd.testing.assert_frame_equal(after[0], before[0])
    pd.testing.assert_frame_equal(after[1].sort_values("external_id", ignore_index=True),
                                  before[1].sort_values("external_id", ignore_index=True))
    assert after[2] == before[2]


def test_the_next_retrain_drops_the_rows_of_treated_accounts(env, loop):
    retrain = run(env, "weekly_retrain_job")
    training = retrain.output_for_node("training_set")
    materialized = [e for e in retrain.all_events if e.event_type_value == "ASSET_MATERIALIZATION"
                    and e.asset_key.to_user_string() == "training_set"]
    dropped = materialized[0].event_specific_data.materialization.metadata["treated_rows_dropped"].value
    assert dropped > 0 and not training["treated"].any()
    treated = loop.output_for_node("rescue_outcomes").query("group == 'treated'")
    first = treated.sort_values("treated_at").iloc[0]
    in_horizon = training[(training["account_id"] == first["account_id"])
                          & (training["observation_date"] <= first["treated_at"])
                          & (training["observation_date"] + pd.Timedelta(days=90) > first["treated_at"])]
    assert in_horizon.empty  # the treated account's confounded rows are gone


def test_the_sensor_requests_one_run_per_new_cursor(tmp_path):
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    store = QueueStore(url)
    store.migrate()
    resources = {"queue": QueueStoreResource(url=url)}

    def tick(cursor):
        with dg.build_sensor_context(cursor=cursor, resources=resources) as context:
            return rescue_actions_sensor(context)

    idle = tick(None)
    assert not idle.run_requests and idle.cursor == "0:0"
    decisions, candidates = snapshot_frames([{"account_id": "ACC-1", "assignee": "ana"}])
    store.apply_decisions(decisions, candidates, policy_version="t", policy_hash="h", model_version="m",
                          snapshot_date="2026-06-01", now=pd.Timestamp("2026-06-01 09:00"))
    case_id = store.list_cases().iloc[0]["case_id"]
    assert not tick(idle.cursor).run_requests  # a new case alone is the daily job's to push
    store.claim(case_id, "ana")
    store.log_play(case_id, actor="ana", play="success_plan")

    first = tick(idle.cursor)
    assert [r.run_key for r in first.run_requests] == [f"feedback:{first.cursor}"]
    (seen,) = first.asset_events  # the team's work, observed as changed
    assert seen.asset_key == dg.AssetKey("rescue_actions")
    assert f"{seen.metadata['latest_action_id'].value}:{seen.metadata['latest_crm_outbox_id'].value}" == first.cursor
    assert [r.run_key for r in tick(idle.cursor).run_requests] == [first.run_requests[0].run_key]  # same key
    assert not tick(first.cursor).run_requests  # nothing new: no second run
    store.resolve(case_id, actor="ana", outcome="saved")
    second = tick(first.cursor)
    assert len(second.run_requests) == 1 and second.run_requests[0].run_key != first.run_requests[0].run_key

"""The whole asset graph on a small demo world: real DuckDB warehouse, real SQLite queue.

One world is generated per module; the weekly retrain and the daily rescue job run through
Dagster exactly as the schedules run them.
"""

import re
from datetime import date

import dagster as dg
import pandas as pd
import pytest

from connectors.demo.world import DemoWorldConfig, generate_demo_world
from connectors.model_registry import ModelRegistryResource
from connectors.policy_source import PolicyResource
from connectors.queue.resource import QueueStoreResource
from connectors.queue.store import QueueStore
from connectors.sources import WarehouseCRM, WarehouseTicketing
from connectors.warehouse import Warehouse, WarehouseResource
from models.cases.ordering import sort_queue
from pipelines.definitions import build_definitions
from tests.metadata_display import display_problems

pytestmark = pytest.mark.slow

WORLD = DemoWorldConfig(n_accounts=400, seed=3, end_date=date(2026, 11, 20), history_days=540)
SNAPSHOT = "2026-11-20"
#: The daily schedule's last three runs: the default policy opens a case after two days at risk.
SNAPSHOTS = ["2026-11-18", "2026-11-19", SNAPSHOT]
NOW = "2026-11-20T09:00:00+00:00"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    wh_url = f"duckdb:///{root / 'warehouse.duckdb'}"
    queue_url = f"sqlite:///{root / 'queue.db'}"
    generate_demo_world(WORLD, Warehouse(wh_url))
    warehouse = WarehouseResource(url=wh_url)
    defs = build_definitions(
        {
            "warehouse": warehouse,
            "crm": WarehouseCRM(warehouse=warehouse),
            "ticketing": WarehouseTicketing(warehouse=warehouse),
            "queue": QueueStoreResource(url=queue_url),
            "model_registry": ModelRegistryResource(path=str(root / "models")),
            "policy": PolicyResource(path="policies/default.yaml"),
        }
    )
    instance = dg.DagsterInstance.ephemeral()
    return {"defs": defs, "instance": instance, "wh_url": wh_url, "queue_url": queue_url, "root": root}


def _daily(env, partition=SNAPSHOT, **kw):
    job = env["defs"].resolve_job_def("daily_rescue_job")
    return job.execute_in_process(
        instance=env["instance"],
        partition_key=partition,
        run_config={"ops": {"rescue_queue": {"config": {"now": NOW}}}},
        raise_on_error=False,
        **kw,
    )


def _queue_rows(env) -> pd.DataFrame:
    return QueueStore(env["queue_url"]).list_cases(status="active")


@pytest.fixture(scope="module")
def first_run(env):
    retrain = env["defs"].resolve_job_def("weekly_retrain_job").execute_in_process(instance=env["instance"], raise_on_error=False)
    assert retrain.success, [e.message for e in retrain.all_events if e.is_failure]
    env["retrain"] = retrain
    for partition in SNAPSHOTS:
        daily = _daily(env, partition)
        assert daily.success, [e.message for e in daily.all_events if e.is_failure]
    return daily


def test_the_queue_is_filled_with_known_accounts(env, first_run):
    cases = _queue_rows(env)
    assert len(cases) > 0
    accounts = Warehouse(env["wh_url"]).read_sql("SELECT account_id FROM raw_crm_accounts")
    assert set(cases["account_id"]) <= set(accounts["account_id"])
    assert cases["account_id"].is_unique  # one open case per account
    for col in ("priority", "team", "policy_version", "model_version", "reason"):
        assert cases[col].notna().all(), col
    ctx = cases["context"].iloc[0]
    assert {"last_tickets", "usage_trend", "account", "risk"} <= set(ctx)
    # the last three tickets, and the ticket that triggered the case's rule when it is older
    assert len([t for t in ctx["last_tickets"] if not t.get("trigger")]) <= 3


def test_case_headlines_name_the_rule_and_a_changeable_warning_sign(env, first_run):
    from models.policy.loader import load_policy

    descriptions = {r.id: r.description for r in load_policy("policies/default.yaml").severity_rules}
    cases = _queue_rows(env)
    for case in cases.to_dict("records"):
        rule, _, driver = case["reason"].partition(": ")
        assert rule == descriptions[case["rule_id"]], case["reason"]
        fixed = {d["phrase"] for d in case["context"]["risk"]["top_drivers"] if d.get("kind") == "fixed"}
        assert driver and driver not in fixed, case["reason"]
        assert "first responses" not in driver and not re.search(r"\bup \d+%", driver), case["reason"]


def test_a_world_this_small_promotes_no_model_and_routes_on_the_flagged_rules_fallback(env, first_run):
    """400 accounts leave 9 churning accounts in the validation window: not enough evidence."""
    model = env["retrain"].output_for_node("churn_model")
    assert model["verdict"] == "not enough evidence" and model["champion"] is None
    gate = [e.event_specific_data for e in env["retrain"].all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.event_specific_data.check_name == "churn_model_promotion_gate"]
    assert len(gate) == 1 and not gate[0].passed and gate[0].severity == dg.AssetCheckSeverity.WARN
    mats = {e.asset_key.to_user_string(): e.event_specific_data.materialization.metadata
            for e in first_run.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}
    assert mats["churn_scores"]["model_version"].value == "rules-fallback"
    assert "no champion model" in mats["churn_scores"]["warning"].value
    assert mats["rescue_candidates"]["risk_source"].value == "rules fallback (no champion model)"
    logged = [r.user_message for r in env["instance"].all_logs(first_run.run_id) if r.level >= 30]  # warnings
    assert any("no champion model" in m for m in logged), logged[-5:]
    assert (first_run.output_for_node("rescue_candidates")["model_version"] == "rules-fallback").all()
    assert (_queue_rows(env)["model_version"] == "rules-fallback").all()


def test_cases_carry_more_risk_than_the_rest(env, first_run):
    cases = _queue_rows(env)
    scores = first_run.output_for_node("churn_scores")
    routed = scores["account_id"].isin(cases["account_id"])
    assert scores.loc[routed, "churn_risk"].mean() > 2 * scores.loc[~routed, "churn_risk"].mean()
    # within a priority the queue lists the larger expected ARR at risk first
    for _, group in cases.groupby("priority", sort=False):
        at_risk = group["expected_arr_at_risk"].to_numpy()
        assert (at_risk[:-1] >= at_risk[1:] - 1e-6).all()


def test_scores_explain_themselves_and_track_drift(env, first_run):
    scores = first_run.output_for_node("churn_scores")
    explained = scores["explained"]
    # every account that matters is explained: all above the floor, at least the riskiest 20%
    assert explained[scores["churn_risk"] >= 0.02].all()
    assert explained.mean() >= 0.2
    assert scores.loc[explained, "drivers"].map(len).eq(5).all()
    assert scores.loc[~explained, "drivers"].map(len).eq(0).all()
    assert scores.loc[~explained, "top_reason"].str.startswith("low churn risk").all()
    assert all(isinstance(d["phrase"], str) and d["phrase"] for row in scores["drivers"] for d in row)
    cases = _queue_rows(env)
    assert scores.set_index("account_id").loc[cases["account_id"], "explained"].all()
    # the third snapshot in a row knows what moved since the second: every account whose risk
    # changed names the features that moved it
    before = Warehouse(env["wh_url"]).read_sql(
        "SELECT account_id FROM contribution_history WHERE snapshot_date = :d", {"d": pd.Timestamp(SNAPSHOTS[-2]).date()}
    )["account_id"]
    changed = (scores["churn_risk_delta"].abs() > 1e-9) & explained & scores["account_id"].isin(set(before))
    assert changed.any()
    assert scores.loc[changed, "movers"].map(len).gt(0).all()
    drift = [
        e.event_specific_data
        for e in first_run.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.event_specific_data.check_name == "churn_scores_drift"
    ]
    assert len(drift) == 1
    assert "churn_risk (score)" in drift[0].metadata["worst_features"].value
    ctx = _queue_rows(env)["context"].iloc[0]
    assert "changed_since_last_snapshot" in ctx["risk"]


def test_a_rerun_of_the_partition_adds_no_case(env, first_run):
    before = _queue_rows(env)
    again = _daily(env)
    assert again.success
    after = _queue_rows(env)
    assert sorted(after["case_id"]) == sorted(before["case_id"])
    assert len(after) == len(before)
    # the health score now shows the intervention in progress on every account with a case
    health = again.output_for_node("health_scores")
    shown = health["intervention"].dropna()
    assert set(shown.index) == set(after["account_id"])
    assert all(text.startswith("rescue case RC-") for text in shown)


def test_a_dirty_source_blocks_routing_and_leaves_the_queue_untouched(env, first_run):
    wh = Warehouse(env["wh_url"])
    accounts = wh.read_sql("SELECT * FROM raw_crm_accounts")
    before = _queue_rows(env)[["case_id", "updated_at", "priority"]]
    dirty = pd.concat([accounts, accounts.head(3)], ignore_index=True)
    wh.write_table("raw_crm_accounts", dirty)
    try:
        result = _daily(env)
        assert not result.success
        evals = [
            e.event_specific_data
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        ]
        failed = [c for c in evals if not c.passed]
        assert [c.check_name for c in failed] == ["crm_accounts_contract"]
        assert "account_id" in failed[0].metadata["failing_columns"].value
        materialized = {e.asset_key.to_user_string() for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}
        assert "rescue_queue" not in materialized and "account_features" not in materialized
        pd.testing.assert_frame_equal(_queue_rows(env)[["case_id", "updated_at", "priority"]], before)
    finally:
        wh.write_table("raw_crm_accounts", accounts)


def test_operations_assets_report_the_policy_and_the_queue(env, first_run):
    mats = {
        e.asset_key.to_user_string(): e.event_specific_data.materialization.metadata
        for e in first_run.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    }
    policy = mats["escalation_policy"]
    assert policy["version"].value and len(policy["content_hash"].value) == 12
    assert "data:image/png;base64," in policy["swimlanes"].value
    weekly = first_run.output_for_node("queue_operations_metrics")
    assert weekly["cases_opened"].sum() == len(_queue_rows(env))
    cases = _queue_rows(env)
    assert (cases["policy_hash"] == policy["content_hash"].value).all()
    # the queue head is the queue's one order at the run's instant (priority, breach, ARR at risk, due, id)
    head = [r.data["case"] for r in mats["rescue_queue"]["queue_head"].records]
    ordered = sort_queue(QueueStore(env["queue_url"]).list_cases(status="active", now=pd.Timestamp(NOW), sla=True))
    assert head and head == ordered["case_id"].head(10).tolist()


def test_definitions_load_with_jobs_schedules_and_checks():
    from pipelines.definitions import defs

    repo = defs.get_repository_def()
    assert {"daily_rescue_job", "weekly_retrain_job"} <= {j.name for j in repo.get_all_jobs()}
    assert {s.name for s in repo.schedule_defs} == {"daily_rescue_schedule", "weekly_retrain_schedule"}
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {
        "crm_accounts", "crm_renewals", "support_tickets", "product_usage_daily", "account_features",
        "training_set", "churn_model", "churn_scores", "health_scores", "rescue_candidates", "rescue_queue",
    } <= keys


def test_the_sla_clock_sensor_escalates_once_however_often_it_ticks(env, first_run):
    """Runs last: it changes the queue. The cases were opened at NOW; five days later
    the ladders have due steps; a second tick at the same instant applies none."""
    from connectors.notify import NotifierResource
    from pipelines.sensors import run_sla_tick, sla_clock

    queue = QueueStoreResource(url=env["queue_url"])
    policy = PolicyResource(path="policies/default.yaml")
    notifier = NotifierResource()
    later = pd.Timestamp(NOW).to_pydatetime() + pd.Timedelta(days=5)
    first = run_sla_tick(queue, policy, notifier, now=later)
    assert first["steps_applied"] > 0 and first["steps_applied"] == first["steps_due"]
    # A reassignment can make the next rung of a ladder due at the same instant; the clock
    # catches up over a few ticks and then has nothing left to do.
    ticks = [first]
    while ticks[-1]["steps_due"] and len(ticks) < 6:
        ticks.append(run_sla_tick(queue, policy, notifier, now=later))
    assert ticks[-1]["steps_due"] == 0 and ticks[-1]["steps_applied"] == 0
    events = QueueStore(env["queue_url"]).audit_events()
    escalated = events[events["kind"].isin(["escalated", "sla_warning"])]
    assert len(escalated) == sum(t["steps_applied"] for t in ticks) >= 1
    keys = escalated["payload"].map(lambda p: (p if isinstance(p, dict) else __import__("json").loads(p)).get("step_key"))
    assert keys.notna().all() and keys.is_unique  # no step was ever applied twice
    # the Dagster sensor itself runs the same tick on the wall clock and launches no run
    with dg.build_sensor_context(resources={"queue": queue, "policy": policy, "notifier": notifier}) as ctx:
        result = sla_clock(ctx)
    assert isinstance(result, dg.SkipReason) and "steps applied" in result.skip_message


def test_the_queue_metadata_lists_the_overflow_riskiest_first(env, first_run):
    mats = {e.asset_key.to_user_string(): e.event_specific_data.materialization.metadata
            for e in first_run.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}
    overflow = QueueStore(env["queue_url"]).overflow(pd.Timestamp(SNAPSHOT))
    meta = mats["rescue_queue"]
    assert meta["overflow"].value == len(overflow)
    table = meta["overflow_top_20"]
    assert isinstance(table, dg.TableMetadataValue)
    assert [r.data["account_id"] for r in table.records] == list(overflow["account_id"].head(20))  # riskiest first
    assert {r.data["cause"] for r in table.records} <= {"budget", "capacity"}


def _shown_metadata(instance) -> dict[str, dict]:
    """Every asset's latest materialization metadata and every check's, as the UI shows them."""
    shown: dict[str, dict] = {}
    for run in reversed(instance.get_runs()):  # oldest first: the latest materialization stays
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None:
                continue
            if event.event_type_value == "ASSET_MATERIALIZATION":
                shown[event.asset_key.to_user_string()] = event.event_specific_data.materialization.metadata
            elif event.event_type_value == "ASSET_CHECK_EVALUATION":
                shown[f"check {event.event_specific_data.check_name}"] = event.event_specific_data.metadata
    return shown


def test_the_ui_shows_rounded_numbers_dashes_and_tables(env, first_run):
    """No number in any asset's or check's metadata has more than 3 decimals, none reads "nan";
    the model's headline figures are numbers and its tables, like the queue head, are tables."""
    shown = _shown_metadata(env["instance"])
    assert {"churn_model", "training_set", "churn_scores", "rescue_queue", "check churn_model_promotion_gate"} <= set(shown)
    problems = [p for name, metadata in shown.items() for p in display_problems(metadata, f"{name}: ")]
    assert problems == [], "\n".join(problems)
    model = shown["churn_model"]
    for name in ("roc_auc", "pr_auc", "top_decile_lift", "brier"):
        assert isinstance(model[name], dg.FloatMetadataValue) and 0 <= model[name].value, name
    assert isinstance(model["roc_auc_interval"], dg.TextMetadataValue) and "95%" in model["roc_auc_interval"].value
    for name in ("metrics", "roc_auc_intervals", "calibration_deciles"):
        assert isinstance(model[name], dg.TableMetadataValue) and len(model[name].records) > 0, name
    assert [r.data["bin"] for r in model["calibration_deciles"].records] == list(range(1, 11))
    scorers = {r.data["scorer"] for r in model["metrics"].records}
    assert {"churn_model (LightGBM, calibrated)", "logistic_regression", "rules_health_score"} <= scorers
    assert isinstance(model["plots"], dg.MarkdownMetadataValue) and "![calibration](data:image/png" in model["plots"].value
    head = shown["rescue_queue"]["queue_head"]
    assert isinstance(head, dg.TableMetadataValue)
    assert [c.name for c in head.schema.columns] == ["case", "priority", "account", "ARR at risk", "SLA due", "headline"]
    assert 0 < len(head.records) <= 10
    assert all(r.data["priority"] in {"P1", "P2", "P3", "P4"} and r.data["SLA due"] != "—" for r in head.records)


def test_the_daily_run_pulls_its_ticket_window_and_the_retrain_their_history(env, first_run):
    """The daily run reads the tickets its snapshot reads (created or solved in the window, or
    open); the retrain, which builds features at every past date, reads them all."""
    def tickets_meta(result):
        return next(e.event_specific_data.materialization.metadata for e in result.all_events
                    if e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key.to_user_string() == "support_tickets")

    daily, retrain = tickets_meta(first_run), tickets_meta(env["retrain"])
    since = pd.Timestamp(SNAPSHOT) - pd.Timedelta(days=180)
    assert retrain["window"].value == "whole history"
    assert daily["window"].value == f"created or solved since {since:%Y-%m-%d}, or open"
    every = Warehouse(env["wh_url"]).read_sql("SELECT created_at, solved_at FROM raw_support_tickets")
    expected = int(((every["created_at"] >= since) | every["solved_at"].isna() | (every["solved_at"] >= since)).sum())
    assert retrain["dagster/row_count"].value == len(every)
    assert daily["dagster/row_count"].value == expected < len(every)

"""Per-stage wall time and peak memory of the generator and the pipeline, as JSON.

    python benchmarks/bench_pipeline.py --accounts 10000 100000

Each size runs in its own subprocess (a clean heap) in a temporary RESCUE_HOME. Stages call the
same functions the assets call, in the same order, so the figures are the pipeline's. Peak
memory is the process's resident high-water mark during the stage (Linux: VmHWM, reset before
each stage through /proc/self/clear_refs), so it includes DuckDB's and LightGBM's native memory.
This is a benchmark: it prints figures and gates nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_size(n_accounts: int, seed: int) -> dict:
    import pandas as pd

    from connectors.demo.world import DemoWorldConfig, generate_demo_world
    from connectors.queue.store import QueueStore
    from connectors.warehouse import Warehouse
    from models.churn.validation import time_validation_report
    from models.cases.context import USAGE_TREND_WEEKS, build_context_packages
    from models.contracts import ACCOUNTS, RENEWALS, TICKETS, USAGE_DAILY, conform
    from models.churn.features import CATEGORICAL_FEATURES, FEATURE_NAMES, USAGE_WINDOW_DAYS, account_features, describe_driver, headline_reason
    from models.churn.health import health_scores, rules_risk
    from models.churn.labels import churn_outcomes, observation_dates, population
    from models.policy.schema import load_policy, route
    from models.quality import validate_frame
    from models.churn.scoring import build_candidates, score_accounts
    from models.churn.training import build_training_set, time_split

    stages: list[dict] = []

    @contextmanager
    def stage(name: str, **extra):
        _reset_peak()
        t0 = time.perf_counter()
        info: dict = {"stage": name, **extra}
        yield info
        info["seconds"] = round(time.perf_counter() - t0, 2)
        info["peak_rss_mib"] = round(_peak_mib(), 1)
        stages.append(info)
        print(json.dumps({"accounts": n_accounts, **info}), file=sys.stderr, flush=True)

    home = Path(os.environ["RESCUE_HOME"])
    wh = Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")
    cfg = DemoWorldConfig(n_accounts=n_accounts, seed=seed, end_date=date(2026, 11, 20))
    with stage("generate_demo_world") as s:
        counts = generate_demo_world(cfg, wh)
        s["rows"] = counts
    with stage("usage_daily_sql") as s:
        s["rows"] = wh.build_usage_daily()
    with stage("pull_sources") as s:
        accounts = conform(wh.read_sql("SELECT * FROM raw_crm_accounts"), ACCOUNTS)
        renewals = conform(wh.read_sql("SELECT * FROM raw_crm_renewals"), RENEWALS)
        tickets = conform(wh.read_sql("SELECT * FROM raw_support_tickets"), TICKETS)
    snapshot = pd.Timestamp(cfg.end_date)
    with stage("quality_checks") as s:
        ids = accounts["account_id"]
        usage_recent = wh.read_usage_daily(snapshot - pd.Timedelta(days=120), snapshot)
        results = [
            validate_frame(accounts, ACCOUNTS),
            validate_frame(renewals, RENEWALS, known_accounts=ids),
            validate_frame(tickets, TICKETS, known_accounts=ids),
            validate_frame(conform(usage_recent, USAGE_DAILY), USAGE_DAILY, known_accounts=ids),
        ]
        s["passed"] = all(r.success for r in results)
    outcomes = churn_outcomes(renewals)
    with stage("training_set") as s:
        start = pd.Timestamp(cfg.start_date)
        dates = observation_dates(start, snapshot, horizon_days=90, n_dates=8, spacing_days=28)
        ts = build_training_set(accounts, renewals, tickets, wh.read_usage_daily, dates, horizon_days=90, data_end=snapshot)
        s["rows"] = len(ts)
    with stage("churn_model") as s:
        train, valid = time_split(ts, valid_dates=2)
        model, report = time_validation_report(
            train, valid, label="label", features=FEATURE_NAMES, categorical=CATEGORICAL_FEATURES,
            extra_baselines={"rules_health_score": rules_risk}, capacity_k=100, seed=0,
        )
        s["roc_auc"] = round(report["model"]["roc_auc"], 4)
        s["baselines_roc_auc"] = {k: round(v["roc_auc"], 4) for k, v in report["baselines"].items()}
    with stage("account_features") as s:
        live = population(accounts, outcomes, snapshot)
        usage = wh.read_usage_daily(snapshot - pd.Timedelta(days=USAGE_WINDOW_DAYS), snapshot)
        feats = account_features(accounts, renewals, tickets, usage, snapshot, account_ids=live)
        s["rows"] = len(feats)
    with stage("churn_scores") as s:
        scores, _ = score_accounts(model, feats, describe=describe_driver, headline=headline_reason)
        risk = scores["churn_risk"].to_numpy()
        scores["churn_risk_delta"] = 0.0
        scores["movers"] = [[] for _ in range(len(scores))]
        scores["model_version"] = "bench"
        s["explained"] = int(scores["explained"].sum())
    with stage("health_scores"):
        health = health_scores(feats, risk)
    with stage("rescue_candidates") as s:
        cands = build_candidates(feats, accounts, scores, health, snapshot_date=snapshot)
        s["rows"] = len(cands)
    store = QueueStore(f"sqlite:///{home / 'queue.db'}")
    store.migrate()
    policy = load_policy(Path(__file__).resolve().parents[1] / "policies" / "default.yaml")
    now = pd.Timestamp("2026-11-20T09:00:00Z").to_pydatetime()
    # The policy opens a case only after an account has been at risk for its minimum number of
    # days: replay the states of the previous snapshot first, as the daily schedule would have.
    warm = route(cands, policy, now=now, as_of=snapshot - pd.Timedelta(days=policy.hysteresis.min_days_in_state))
    with stage("policy_route") as s:
        state = store.routing_state()
        result = route(
            cands, policy, now=now, open_cases=state.open_cases, recent_resolutions=state.recent_resolutions,
            account_states=warm.account_states, member_load=state.member_load, as_of=snapshot,
        )
        s["decisions"] = {k: int(v) for k, v in result.decisions["action"].value_counts().items()}
    with stage("rescue_queue_write") as s:
        routed_ids = result.decisions.loc[result.decisions["action"].isin(["route", "update"]), "account_id"]
        routed = cands[cands["account_id"].isin(routed_ids)]
        u = wh.read_usage_daily(snapshot - pd.Timedelta(weeks=USAGE_TREND_WEEKS), snapshot, account_ids=list(routed["account_id"]))
        contexts = build_context_packages(routed, health=health, tickets=tickets, usage_daily=u, plays=None, snapshot_date=snapshot)
        summary = store.apply_decisions(
            result.decisions, cands, contexts=contexts, account_states=result.account_states,
            policy_version=policy.version, policy_hash=policy.content_hash, model_version="bench",
            snapshot_date=snapshot, now=now,
        )
        s["opened"] = summary.opened
    total = round(sum(x["seconds"] for x in stages), 1)
    return {"accounts": n_accounts, "total_seconds": total, "stages": stages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_size(args.one, args.seed)))
        return
    results = []
    for n in args.accounts:
        with tempfile.TemporaryDirectory(prefix=f"rescue-bench-{n}-") as home:
            env = {**os.environ, "RESCUE_HOME": home}
            done = subprocess.run([sys.executable, __file__, "--one", str(n), "--seed", str(args.seed)], env=env, stdout=subprocess.PIPE, text=True)
            if done.returncode != 0:
                sys.exit(f"benchmark at {n} accounts failed (exit {done.returncode})")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    print(json.dumps({"machine": machine, "results": results}, indent=2))


if __name__ == "__main__":
    main()

"""Per-stage wall time and peak memory of the generator and the pipeline, as JSON.

    python benchmarks/bench_pipeline.py --accounts 10000 100000
    RESCUE_BENCH_CACHE=~/.cache/rescue-bench python benchmarks/bench_pipeline.py --accounts 1000000

With ``RESCUE_BENCH_CACHE`` set, each size's demo world is kept there after its first generation
and copied in on later runs (a ``reuse_cached_world`` stage instead of ``generate_demo_world``).

Each size runs in its own subprocess (a clean heap) from the repository root, in a temporary
RESCUE_HOME, with the pipeline's resource bindings (`pipelines.resources.build_resources`: the
same policy and settings; the warehouse, queue and model locations always follow the temporary
home, so a benchmark never writes to a configured system). The daily path calls the functions
the assets call (`assets.stages`), in the same order, and the training stages use the retrain
job's defaults (`assets.model.TrainingConfig`), so the figures are the pipeline's. Peak memory
is the process's resident high-water mark during the stage (Linux: VmHWM, reset before each
stage through /proc/self/clear_refs), so it includes DuckDB's and LightGBM's native memory.
After each stage the same run times the bare operation behind it (a DuckDB GROUP BY of the same
events, a plain read of the same tables, one default LightGBM fit on the same rows, LightGBM
predict on the same matrix) and prints the stage's time as a ratio to it (`ratio_to_bare`):
absolute seconds on shared cores mean little, the ratio says what the pipeline adds. Scoring is
measured twice: the calibrated prediction alone (`churn_predict`), and the whole stage with the
drivers of the accounts that can matter, the movers and the drift report (`churn_scores`).
This is a benchmark: it prints figures and gates nothing.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
#: Settings that would point the run at a configured system instead of the temporary home.
HOME_BOUND = ("RESCUE_WAREHOUSE_URL", "RESCUE_QUEUE_URL", "RESCUE_MODEL_DIR", "RESCUE_REPORT_DIR")


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


#: `--reuse-usage-build`, passed to the per-size process.
REUSE_BUILD = os.environ.get("RESCUE_BENCH_REUSE_BUILD") == "1"


def _cached_world(cfg) -> Path | None:
    """Where the demo world of `cfg` is kept between runs (``RESCUE_BENCH_CACHE``; unset: not
    kept): one DuckDB file per configuration and generator version, so the million-account
    world is generated once."""
    from connectors.demo.world import GENERATOR_VERSION

    root = os.environ.get("RESCUE_BENCH_CACHE")
    if not root:
        return None
    return (Path(root) / f"world-{cfg.n_accounts}-seed{cfg.seed}-{cfg.end_date:%Y%m%d}-"
            f"{cfg.history_days}d-v{GENERATOR_VERSION}.duckdb")


def run_size(n_accounts: int, seed: int) -> dict:
    import dagster as dg
    import pandas as pd

    from assets import stages
    from assets.model import TrainingConfig
    from connectors.mapping.manifest import refresh_usage_daily
    from connectors.usage import FULL_BUILD_BATCH_EVENTS
    from connectors.usage_checks import USAGE_CHECK_DAYS, check_usage_consistency, check_usage_contract
    from assets.run_clock import replay_now
    from connectors.demo.world import DemoWorldConfig, generate_demo_world
    from models.churn.features import (
        CATEGORICAL_FEATURES,
        FEATURE_NAMES,
        USAGE_WINDOW_DAYS,
        feature_matrix,
        relevant_tickets,
        ticket_window_start,
    )
    from models.churn.health import HealthConfig, rules_risk
    from models.churn.labels import churn_outcomes, observation_dates
    from models.churn.validation import time_validation_report
    from models.churn.sampling import WEIGHT, sampling_summary
    from models.churn.training import build_training_set, time_split
    from models.contracts import ACCOUNTS, RENEWALS, TICKETS, conform
    from models.plausibility import Thresholds
    from models.quality import validate_frame
    from pipelines.resources import build_resources

    import lightgbm as lgb
    import sqlalchemy as sa

    from models.churn.model import coerce_features

    stages_run: list[dict] = []

    def bare(what: str, fn) -> None:
        """Time `fn`, the bare operation behind the stage just measured, in the same run: the
        stage's time as a ratio to it says what the pipeline adds, whatever the machine's speed."""
        info = stages_run[-1]
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
        info["bare"] = what
        info["bare_seconds"] = round(seconds, 3)
        info["ratio_to_bare"] = round(info["seconds"] / seconds, 2) if seconds > 0 else None
        print(json.dumps({"accounts": n_accounts, "stage": info["stage"], "bare": what,
                          "bare_seconds": info["bare_seconds"], "ratio_to_bare": info["ratio_to_bare"]}),
              file=sys.stderr, flush=True)

    def sql_table(query: str) -> int:
        """Materialize `query` as a temporary table and count it: every aggregate is computed (a
        COUNT over the query alone lets the engine skip the aggregates nobody reads)."""
        with wh.engine.connect() as conn:
            conn.execute(sa.text(f"CREATE TEMPORARY TABLE bench_bare AS {query}"))
            rows = int(conn.execute(sa.text("SELECT COUNT(*) FROM bench_bare")).scalar_one())
            conn.execute(sa.text("DROP TABLE bench_bare"))
            return rows

    def window_group_by(as_of: pd.Timestamp) -> str:
        """The bare aggregate behind the usage features: one GROUP BY account over the 90 days
        before `as_of` (plain sums and the newest day; the features' conditional sums are the
        pipeline's own)."""
        start = (as_of - pd.Timedelta(days=USAGE_WINDOW_DAYS)).date()
        return (f"SELECT account_id, SUM(active_users) AS a, SUM(events) AS e, SUM(advanced_events) AS v, "
                f"MAX(date) AS d FROM usage_daily WHERE date >= DATE '{start}' AND date < DATE '{as_of.date()}' "
                f"GROUP BY account_id")

    def plain_read(*tables: str) -> None:
        for table in tables:
            wh.read_sql(f"SELECT * FROM {table}")

    @contextmanager
    def stage(name: str, **extra):
        _reset_peak()
        t0 = time.perf_counter()
        info: dict = {"stage": name, **extra}
        yield info
        info["seconds"] = round(time.perf_counter() - t0, 2)
        info["peak_rss_mib"] = round(_peak_mib(), 1)
        stages_run.append(info)
        print(json.dumps({"accounts": n_accounts, **info}), file=sys.stderr, flush=True)

    # The pipeline's own resource bindings and settings (RESCUE_HOME is a temporary directory).
    # (the deferred input of churn_scores needs a run's IO manager: the stages here take frames)
    bound = {k: v for k, v in build_resources().items() if k != "deferred_input"}
    with dg.build_resources(bound) as resources:
        wh = resources.warehouse.get_client()
        store = resources.queue.get_client()
        policy = resources.policy.load()
        training = TrainingConfig()
        cfg = DemoWorldConfig(n_accounts=n_accounts, seed=seed, end_date=date(2026, 11, 20))
        cached = _cached_world(cfg)
        built = None if cached is None else cached.with_suffix(".usage-built.duckdb")
        reuse_build = REUSE_BUILD and built is not None and built.exists()
        if reuse_build:
            # the world with its usage_daily already built (`--reuse-usage-build`): the full build's
            # 16-25 minutes at a million accounts are not measured again
            with stage("reuse_cached_usage_build") as s:
                wh.engine.dispose()
                shutil.copyfile(built, Path(os.environ["RESCUE_HOME"]) / "warehouse.duckdb")
                s["from"] = str(built)
        elif cached is not None and cached.exists():
            # the same configuration gives the same world (`connectors.demo.world`): reuse it
            with stage("reuse_cached_world") as s:
                wh.engine.dispose()
                shutil.copyfile(cached, Path(os.environ["RESCUE_HOME"]) / "warehouse.duckdb")
                s["from"] = str(cached)
        else:
            with stage("generate_demo_world") as s:
                counts = generate_demo_world(cfg, wh)
                s["rows"] = counts
            if cached is not None:
                wh.engine.dispose()
                cached.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(os.environ["RESCUE_HOME"]) / "warehouse.duckdb", cached.with_suffix(".part"))
                cached.with_suffix(".part").replace(cached)
        events = wh.row_count("raw_product_events")
        # One GROUP BY of every event is the bare reference while it fits: above a few batches of
        # the full build (`connectors.usage.FULL_BUILD_BATCH_EVENTS`) it spills tens of GB to
        # disk (the reason the build batches), so at a million accounts it is not run.
        group_by_all = events <= 4 * FULL_BUILD_BATCH_EVENTS
        everything = ("SELECT account_id, CAST(occurred_at AS DATE) AS d, COUNT(DISTINCT user_id) AS u, SUM(quantity) AS q "
                      "FROM raw_product_events GROUP BY 1, 2")
        if not reuse_build:
            with stage("usage_daily_sql") as s:
                s["rows"] = wh.build_usage_daily()
                s["events"] = events
            if group_by_all:
                bare("DuckDB GROUP BY account and day of the same events, into a table", lambda: sql_table(everything))
            if built is not None and REUSE_BUILD:
                wh.engine.dispose()
                shutil.copyfile(Path(os.environ["RESCUE_HOME"]) / "warehouse.duckdb", built.with_suffix(".part"))
                built.with_suffix(".part").replace(built)
        with stage("usage_daily_daily_run") as s:
            # what the daily run's `product_usage_daily` does the next day: the recent days again
            # (the lookback), after checking the past is unchanged (`connectors.usage`)
            build = refresh_usage_daily(wh).build
            s["mode"], s["days_reaggregated"] = build.mode, build.days
        if group_by_all:
            bare("DuckDB GROUP BY account and day of the same events, into a table", lambda: sql_table(everything))
        snapshot = pd.Timestamp(cfg.end_date)
        # the daily run's tickets: its snapshot's window (`assets.sources.ticket_window`)
        since = ticket_window_start(snapshot)
        window_sql = (f"SELECT * FROM raw_support_tickets WHERE created_at IS NULL OR created_at >= TIMESTAMP '{since}' "
                      f"OR solved_at IS NULL OR solved_at >= TIMESTAMP '{since}'")
        with stage("pull_sources") as s:
            accounts = resources.crm.accounts()
            renewals = resources.crm.renewals()
            tickets = relevant_tickets(resources.ticketing.tickets(since=since.to_pydatetime()), since)
            s["tickets"] = len(tickets)
        bare("plain read of the same tables (the tickets' window)", lambda: (
            plain_read("raw_crm_accounts", "raw_crm_renewals"), wh.read_sql(window_sql)))
        with stage("quality_checks") as s:
            # what the source checks run: the GX suites of the CRM and ticket frames, the usage
            # contract and consistency in the warehouse (`connectors.usage_checks`)
            ids = accounts["account_id"]
            at = replay_now(snapshot)
            instant = pd.Timestamp(at).tz_convert("UTC").tz_localize(None)
            results = [
                validate_frame(conform(accounts, ACCOUNTS), ACCOUNTS),
                validate_frame(conform(renewals, RENEWALS), RENEWALS, known_accounts=ids),
                validate_frame(conform(tickets, TICKETS), TICKETS, known_accounts=ids),
                check_usage_contract(wh, instant, instant),
            ]
            found = check_usage_consistency(wh, instant, instant, accounts, renewals, Thresholds())
            s["passed"] = all(r.success for r in results) and found.references.success
        bare("plain read of the same tables, and a DuckDB GROUP BY account of the 120-day usage window", lambda: (
            plain_read("raw_crm_accounts", "raw_crm_renewals"), wh.read_sql(window_sql),
            sql_table(f"SELECT account_id, COUNT(*) AS n FROM usage_daily WHERE date >= "
                      f"DATE '{(snapshot - pd.Timedelta(days=USAGE_CHECK_DAYS)).date()}' GROUP BY account_id")))
        outcomes = churn_outcomes(renewals)
        with stage("pull_ticket_history") as s:
            # the weekly retrain's tickets: their whole history (not part of the daily path)
            history = resources.ticketing.tickets()
            s["tickets"] = len(history)
        bare("plain read of the same table", lambda: plain_read("raw_support_tickets"))
        with stage("training_set") as s:
            start = pd.Timestamp(cfg.start_date)
            dates = observation_dates(start, snapshot, horizon_days=training.horizon_days,
                                      n_dates=training.observation_dates, spacing_days=training.spacing_days)
            # as the retrain's `training_set` asset builds it: non-churning training rows sampled
            # (weighted) above `negative_sample_rows`, the validation dates whole
            ts = build_training_set(accounts, renewals, history, wh.read_usage_daily, dates,
                                    horizon_days=training.horizon_days, data_end=snapshot,
                                    negative_sample_rows=training.negative_sample_rows or None,
                                    valid_dates=training.valid_dates, seed=training.seed,
                                    usage_aggregates_loader=wh.read_usage_aggregates)
            s["rows"] = len(ts)
            summary = sampling_summary(ts)
            s["sampled"], s["weighted_rows"] = summary["sampled"], summary["weighted_rows"]
        del history
        bare("DuckDB GROUP BY account of every observation date's 90-day usage window, into a table",
             lambda: [sql_table(window_group_by(d)) for d in dates])
        with stage("churn_model") as s:
            train, valid = time_split(ts, valid_dates=training.valid_dates)
            model, report = time_validation_report(
                train, valid, label="label", features=FEATURE_NAMES, categorical=CATEGORICAL_FEATURES,
                extra_baselines={"rules_health_score": rules_risk}, capacity_k=training.capacity_k, seed=training.seed,
                groups="account_id", weight=WEIGHT,
            )
            s["roc_auc"] = round(report["model"]["roc_auc"], 4)
            s["baselines_roc_auc"] = {k: round(v["roc_auc"], 4) for k, v in report["baselines"].items()}
        levels = model.categorical

        def default_fit() -> None:
            X_train = coerce_features(train, FEATURE_NAMES, levels)
            lgb.LGBMClassifier(verbose=-1, random_state=training.seed).fit(X_train, train["label"],
                                                                           sample_weight=train[WEIGHT])

        bare("one default LightGBM fit (100 trees, 31 leaves) on the same training rows", default_fit)
        with stage("scoring_reference") as s:
            # what the retrain keeps with the version for daily scoring (`stages.scoring_reference`)
            reference = stages.DriftReference.from_dict(
                stages.scoring_reference(model, ts, HealthConfig())["drift"])
        # The daily job holds the model and its kept reference, not the training set or the
        # retrain's time split of it: freed, so the daily stages' peaks are the daily job's.
        train = valid = report = ts = None  # noqa: F841
        gc.collect()

        # The daily path: the functions the assets call, in the same order.
        with stage("account_features") as s:
            feats = stages.snapshot_features(wh, accounts, renewals, tickets, outcomes, snapshot)
            s["rows"] = len(feats)
        bare("DuckDB GROUP BY account of the snapshot's 90-day usage window, into a table",
             lambda: sql_table(window_group_by(snapshot)))
        X_live = feature_matrix(feats)
        with stage("churn_predict") as s:
            model.predict_proba(X_live)
            s["rows"] = len(X_live)
        X_bare = coerce_features(X_live, model.feature_names, levels)
        bare("LightGBM predict of the model's boosters on the same matrix",
             lambda: [b.predict(X_bare, raw_score=True) for b in model.boosters])
        with stage("churn_scores") as s:
            scores = stages.churn_scores(wh, model, "bench", feats, reference, snapshot).scores
            s["explained"] = int(scores["explained"].sum())
        bare("LightGBM predict of the model's boosters on the same matrix",
             lambda: [b.predict(X_bare, raw_score=True) for b in model.boosters])
        store.migrate()
        with stage("health_scores"):
            health = stages.health_scores(wh, store, feats, scores, snapshot)
        with stage("rescue_candidates") as s:
            cands = stages.rescue_candidates(wh, accounts, feats, scores, health, snapshot)
            s["rows"] = len(cands)
        days = policy.hysteresis.min_days_in_state
        if days:
            # The policy opens a case only after an account has been at risk for its minimum
            # number of days: run the snapshot that many days earlier first, as the daily
            # schedule would have (it only records the hysteresis states).
            earlier = snapshot - pd.Timedelta(days=days)
            stages.rescue_queue(store, wh, policy, cands, health, tickets, now=replay_now(earlier), as_of=earlier)
        # a past snapshot runs at the instant the daily schedule runs it, as a backfill would
        run = stages.rescue_queue(store, wh, policy, cands, health, tickets, now=replay_now(snapshot), as_of=snapshot,
                                  timer=stage)
        timed = {info["stage"]: info for info in stages_run}
        timed["policy_route"]["decisions"] = {k: int(v) for k, v in run.decisions["action"].value_counts().items()}
        timed["policy_route"]["accounts_per_second"] = round(len(cands) / max(timed["policy_route"]["seconds"], 1e-3))
        timed["rescue_queue_write"]["opened"] = run.summary.opened
    total = round(sum(x["seconds"] for x in stages_run), 1)
    daily = ("usage_daily_daily_run", "pull_sources", "quality_checks", "account_features", "churn_scores", "health_scores",
             "rescue_candidates", "policy_route", "rescue_queue_write")
    return {"accounts": n_accounts, "total_seconds": total,
            "daily_path_seconds": round(sum(x["seconds"] for x in stages_run if x["stage"] in daily), 1),
            "daily_path_peak_rss_mib": max(x["peak_rss_mib"] for x in stages_run if x["stage"] in daily),
            "stages": stages_run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reuse-usage-build", action="store_true",
                        help="with RESCUE_BENCH_CACHE: keep each world's built usage_daily after its first full "
                             "build and start later runs from it (the full build is then not measured)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_size(args.one, args.seed)))
        return
    results = []
    for n in args.accounts:
        with tempfile.TemporaryDirectory(prefix=f"rescue-bench-{n}-") as home:
            env = {k: v for k, v in os.environ.items() if k not in HOME_BOUND}
            env["RESCUE_HOME"] = home
            if args.reuse_usage_build:
                env["RESCUE_BENCH_REUSE_BUILD"] = "1"
            done = subprocess.run([sys.executable, __file__, "--one", str(n), "--seed", str(args.seed)], env=env,
                                  cwd=REPO, stdout=subprocess.PIPE, text=True)
            if done.returncode != 0:
                sys.exit(f"benchmark at {n} accounts failed (exit {done.returncode})")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    print(json.dumps({"machine": machine, "results": results}, indent=2))


if __name__ == "__main__":
    main()

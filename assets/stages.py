"""The daily path as plain functions: features -> scores -> health -> candidates -> queue.

Each stage takes clients (the warehouse, the queue store, a loaded model or policy) and frames,
and returns frames or a summary; nothing here knows Dagster. The assets (`assets/features.py`,
`assets/scoring.py`, `assets/routing.py`) are thin wrappers that call these functions and attach
metadata, and `benchmarks/bench_pipeline.py` calls the same functions in the same order, so what
it measures is the pipeline and the two cannot drift apart.

Stages that keep history write it to the warehouse per snapshot date (`replace_partition`, so a
rerun replaces rather than appends): scores and health (`score_history`), per-feature
contributions (`contribution_history`, read back for "what moved since the previous snapshot"),
drift (`drift_history`) and the candidate frame (`rescue_candidates_history`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import pandas as pd

from connectors.queue.decisions import ApplySummary
from connectors.queue.store import QueueStore
from connectors.warehouse import Warehouse
from models.cases.context import USAGE_TREND_WEEKS, build_context_packages
from models.churn.drift import DriftReference
from models.churn.explain import score_movers
from models.churn.features import explain_drivers
from models.churn.features import account_features as compute_features
from models.churn.health import health_scores as compute_health
from models.churn.health import HealthConfig, intervention_status
from models.churn.labels import population, returns
from models.contracts import BOOK_PERCENTILES
from models.churn.fallback import RULES_FALLBACK_VERSION, RulesRiskModel
from models.churn.model import ChurnModel
from models.churn.scoring import build_candidates, score_accounts, score_history_frame
from models.policy.schema import Policy
from models.routing.route import RoutingResult, route

SCORE_HISTORY_TABLE = "score_history"
CONTRIBUTION_HISTORY_TABLE = "contribution_history"
DRIFT_HISTORY_TABLE = "drift_history"
CANDIDATE_HISTORY_TABLE = "rescue_candidates_history"
#: PSI above this on any feature or on the score makes the drift check warn.
DRIFT_WARN_PSI = 0.25

#: Decision actions that put an account in front of a person (they get a context package).
CASE_ACTIONS = ("route", "update")
#: Those, and overflow: its package waits in the routing log for a manager's manual open.
PACKAGED_ACTIONS = (*CASE_ACTIONS, "overflow")

#: `timer(name)` wraps a sub-stage of `rescue_queue` (the benchmark times them); the default
#: does nothing.
Timer = Callable[[str], AbstractContextManager]


def _untimed(name: str) -> AbstractContextManager:
    return nullcontext()


# --------------------------------------------------------------------------------------------
# Features, scores, health, candidates
# --------------------------------------------------------------------------------------------


def snapshot_features(
    warehouse: Warehouse,
    accounts: pd.DataFrame,
    renewals: pd.DataFrame,
    tickets: pd.DataFrame,
    outcomes: pd.DataFrame,
    as_of: pd.Timestamp,
    *,
    account_history: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Features of every live account as of `as_of`, from data strictly before it (changing
    attributes from `account_history` as of `as_of` when given; the history also brings back
    churned accounts that started a new term before `as_of`, `models.churn.labels.returns`)."""
    ids = population(accounts, outcomes, as_of, returns=returns(outcomes, account_history))
    # the usage features' aggregates computed in the warehouse: one row per account comes back
    usage = warehouse.read_usage_aggregates(as_of)
    return compute_features(accounts, renewals, tickets, None, as_of, account_ids=ids, account_history=account_history,
                            usage=usage)


@dataclass(frozen=True)
class Scores:
    scores: pd.DataFrame  # one row per account: churn_risk, drivers, movers, delta, model_version
    drift: pd.DataFrame   # feature, psi, status: the population stability report


def previous_snapshot(
    warehouse: Warehouse,
    as_of: pd.Timestamp,
    table: str = SCORE_HISTORY_TABLE,
    columns: str = "account_id, churn_risk, health_score",
) -> pd.DataFrame:
    """Rows of ``table`` for the latest snapshot before ``as_of`` (empty if none)."""
    if not warehouse.table_exists(table):
        return pd.DataFrame(columns=[c.strip() for c in columns.split(",")])
    return warehouse.read_sql(
        f"SELECT {columns} FROM {table} "
        f"WHERE snapshot_date = (SELECT MAX(snapshot_date) FROM {table} WHERE snapshot_date < :d)",
        {"d": as_of.date()},
    )


def _movers(warehouse: Warehouse, as_of: pd.Timestamp, scores: pd.DataFrame, contribs: pd.DataFrame) -> list[list[dict]]:
    """What changed since the previous snapshot: per explained account, the features whose
    contribution to the risk moved most (empty when there is nothing to compare with).
    ``contribs`` is indexed by account_id (the explained accounts)."""
    features = [c for c in contribs.columns if c != "bias"]
    prev = previous_snapshot(warehouse, as_of, CONTRIBUTION_HISTORY_TABLE, ", ".join(["account_id", "churn_risk", *features]))
    if prev.empty or contribs.empty:
        return [[] for _ in range(len(scores))]
    curr = scores.set_index("account_id").loc[contribs.index, ["churn_risk"]].reset_index()
    moved = score_movers(
        prev, curr, id_col="account_id", score_col="churn_risk",
        contribs_prev=prev[features], contribs_curr=contribs[features].reset_index(drop=True), k=3,
    ).set_index("account_id")["movers"]
    return [
        [{**m, "delta": round(float(m["delta"]), 4)} for m in moved.get(aid, [])]
        for aid in scores["account_id"]
    ]


#: The registry annotation of a model version holding what daily scoring needs of its training
#: set (`scoring_reference`), so the daily run never loads the training set itself.
SCORING_REFERENCE = "scoring_reference"


def scoring_reference(model: ChurnModel, training_set: pd.DataFrame, health: HealthConfig) -> dict:
    """What scoring with `model`, or without a champion, needs of its training set: the drift
    reference of its score and features, and the rules fallback (`models.churn.fallback`)
    fitted on the same rows with the version's health configuration, with its own drift
    reference. Kept with the version in the registry when it is registered."""
    fallback = RulesRiskModel.fit(training_set, health)
    return {"drift": DriftReference.from_training(model, training_set).to_dict(),
            "fallback": {"model": fallback.to_dict(),
                         "drift": DriftReference.from_training(fallback, training_set).to_dict()}}


def scoring_model(registry, training_set: Callable[[], pd.DataFrame], health: HealthConfig
                  ) -> tuple[ChurnModel | RulesRiskModel, str, DriftReference]:
    """The model to score with, its version and its drift reference: the champion, else the
    rules fallback of the latest version (`RULES_FALLBACK_VERSION`), each with what was kept when
    the version was registered. `training_set` (called only when that is missing: a version
    registered before it was kept, or no version at all) loads the training set, from which
    both are computed as they would have been; `health` is the configuration to fit the
    fallback with then."""
    champion = registry.champion()
    if champion is not None:
        model = ChurnModel.from_bytes(registry.load_bytes(champion))
        kept = registry.metadata(champion).get(SCORING_REFERENCE)
        reference = (DriftReference.from_dict(kept["drift"]) if kept
                     else DriftReference.from_training(model, training_set()))
        return model, champion, reference
    latest = registry.latest()
    kept = registry.metadata(latest).get(SCORING_REFERENCE) if latest is not None else None
    if kept:
        fallback = RulesRiskModel.from_dict(kept["fallback"]["model"])
        return fallback, RULES_FALLBACK_VERSION, DriftReference.from_dict(kept["fallback"]["drift"])
    frame = training_set()
    fallback = RulesRiskModel.fit(frame, health)
    return fallback, RULES_FALLBACK_VERSION, DriftReference.from_training(fallback, frame)


def churn_scores(
    warehouse: Warehouse,
    model: ChurnModel | RulesRiskModel,
    model_version: str,
    features: pd.DataFrame,
    reference: DriftReference,
    as_of: pd.Timestamp,
) -> Scores:
    """Calibrated churn probability of every account with its drivers in words, the change and
    the movers since the previous snapshot, and drift against the training data (`reference`,
    the model's: see `scoring_model`).

    Keeps the explained accounts' contributions and the drift report for the snapshot.
    """
    out, contribs = score_accounts(model, features, explain=explain_drivers)
    prev = previous_snapshot(warehouse, as_of).set_index("account_id")["churn_risk"]
    out["churn_risk_delta"] = (out["churn_risk"] - out["account_id"].map(prev)).fillna(0.0)
    out["movers"] = _movers(warehouse, as_of, out, contribs)
    history = contribs.drop(columns=["bias"], errors="ignore").reset_index(drop=True)
    history.insert(0, "churn_risk", out.loc[out["explained"], "churn_risk"].to_numpy())
    history.insert(0, "account_id", contribs.index.astype(str))
    history.insert(0, "snapshot_date", as_of.date())
    warehouse.replace_partition(CONTRIBUTION_HISTORY_TABLE, history, "snapshot_date", as_of.date())
    out["model_version"] = model_version
    drift = reference.report(features, out["churn_risk"], warn_at=DRIFT_WARN_PSI)
    warehouse.replace_partition(DRIFT_HISTORY_TABLE, drift.assign(snapshot_date=as_of.date()), "snapshot_date", as_of.date())
    out["snapshot_date"] = as_of
    return Scores(out, drift)


def health_scores(
    warehouse: Warehouse,
    store: QueueStore,
    features: pd.DataFrame,
    scores: pd.DataFrame,
    as_of: pd.Timestamp,
    *,
    config: HealthConfig | None = None,
) -> pd.DataFrame:
    """Composite 0-100 health score with band, change since the previous snapshot and the rescue
    intervention in progress, if any; kept with the scores in `score_history`. ``config``: the
    company's health configuration (default: the fixed weights and bands)."""
    risk = scores.set_index("account_id")["churn_risk"].reindex(features.index)
    health = compute_health(features, risk.to_numpy(), config)
    prev = previous_snapshot(warehouse, as_of).set_index("account_id")["health_score"]
    health["health_delta"] = (health["health_score"] - health.index.map(prev)).round(1)
    health["intervention"] = intervention_status(health.index, store.list_cases(status="active"), store.plays())
    history = score_history_frame(health, scores, snapshot_date=as_of)
    warehouse.replace_partition(SCORE_HISTORY_TABLE, history, "snapshot_date", as_of.date())
    return health


def rescue_candidates(
    warehouse: Warehouse,
    accounts: pd.DataFrame,
    features: pd.DataFrame,
    scores: pd.DataFrame,
    health: pd.DataFrame,
    as_of: pd.Timestamp,
) -> pd.DataFrame:
    """Every scored account with the fields policy conditions read, ranked by expected ARR at
    risk; kept (without drivers and movers) in `rescue_candidates_history`."""
    cands = build_candidates(features, accounts, scores, health, snapshot_date=as_of)
    history = cands.drop(columns=["drivers", "movers", *BOOK_PERCENTILES]).assign(snapshot_date=as_of.date())
    warehouse.replace_partition(CANDIDATE_HISTORY_TABLE, history, "snapshot_date", as_of.date())
    return cands


# --------------------------------------------------------------------------------------------
# The rescue queue
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueRun:
    """What one `rescue_queue` pass decided and wrote."""

    routing: RoutingResult
    summary: ApplySummary

    @property
    def decisions(self) -> pd.DataFrame:
        return self.routing.decisions


def route_decisions(
    store: QueueStore,
    policy: Policy,
    candidates: pd.DataFrame,
    *,
    now: dt.datetime,
    as_of: pd.Timestamp,
) -> RoutingResult:
    """Route the candidates against the queue's state (open cases, resolutions, hysteresis
    states, member load)."""
    state = store.routing_state()
    return route(
        candidates,
        policy,
        now=now,
        open_cases=state.open_cases,
        recent_resolutions=state.recent_resolutions,
        account_states=state.account_states,
        member_load=state.member_load,
        as_of=as_of,
    )


def write_queue(
    store: QueueStore,
    warehouse: Warehouse,
    policy: Policy,
    routing: RoutingResult,
    candidates: pd.DataFrame,
    health: pd.DataFrame,
    tickets: pd.DataFrame,
    *,
    now: dt.datetime,
    as_of: pd.Timestamp,
    data_warnings: Sequence[str] = (),
) -> ApplySummary:
    """Apply the decisions to the queue: open and update cases with their handoff context
    package, log the rest, persist the hysteresis states. `data_warnings` (e.g. the stale
    sources of `connectors.freshness.stale_warnings`) go into every package written, as
    ``data_warnings``: the case says what it was routed on."""
    decisions = routing.decisions
    # overflow accounts get a package too: a manager may open their case by hand
    packaged = decisions[decisions["action"].isin(PACKAGED_ACTIONS)]
    routed = candidates[candidates["account_id"].isin(packaged["account_id"])]
    accounts = list(routed["account_id"])
    rules = {r.id: r for r in policy.severity_rules}
    matched = {str(a): rules[r] for a, r in zip(packaged["account_id"], packaged["rule_id"]) if r in rules}
    usage = warehouse.read_usage_daily(as_of - pd.Timedelta(weeks=USAGE_TREND_WEEKS), as_of, account_ids=accounts)
    contexts = build_context_packages(
        routed,
        health=health,
        tickets=tickets,
        usage_daily=usage,
        plays=store.plays(accounts),
        snapshot_date=as_of,
        rules=matched,
    )
    if data_warnings:
        for package in contexts.values():
            package["data_warnings"] = list(data_warnings)
    return store.apply_decisions(
        decisions,
        candidates,
        contexts=contexts,
        account_states=routing.account_states,
        policy_version=policy.version,
        policy_hash=policy.content_hash,
        model_version=str(candidates["model_version"].iloc[0]) if len(candidates) else "",
        snapshot_date=as_of,
        now=now,
    )


def rescue_queue(
    store: QueueStore,
    warehouse: Warehouse,
    policy: Policy,
    candidates: pd.DataFrame,
    health: pd.DataFrame,
    tickets: pd.DataFrame,
    *,
    now: dt.datetime,
    as_of: pd.Timestamp,
    timer: Timer = _untimed,
    data_warnings: Sequence[str] = (),
) -> QueueRun:
    """The daily routing of one snapshot: route the candidates through the policy into the
    rescue queue (one open case per account). `now` is tz-aware; `as_of` the snapshot date;
    `data_warnings` are stamped on every case written (`write_queue`)."""
    store.migrate()
    with timer("policy_route"):
        routing = route_decisions(store, policy, candidates, now=now, as_of=as_of)
    with timer("rescue_queue_write"):
        summary = write_queue(store, warehouse, policy, routing, candidates, health, tickets, now=now, as_of=as_of,
                              data_warnings=data_warnings)
    return QueueRun(routing, summary)

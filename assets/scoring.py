"""Scoring assets: churn probability with its drivers, and the composite health score."""


import dagster as dg
import pandas as pd

from assets.partitions import snapshot_date, snapshot_partitions
from connectors.model_registry import ModelRegistryResource
from connectors.queue.resource import QueueStoreResource
from connectors.warehouse import WarehouseResource
from models.churn.model import ChurnModel
from models.churn.drift import drift_report
from models.churn.explain import score_movers
from models.churn.features import describe_driver, headline_reason
from models.churn.health import health_scores as compute_health
from models.churn.health import intervention_status
from models.churn.scoring import score_accounts, score_history_frame

GROUP = "scoring"
OWNERS = ["team:data-science"]
SCORE_HISTORY_TABLE = "score_history"
CONTRIBUTION_HISTORY_TABLE = "contribution_history"
DRIFT_HISTORY_TABLE = "drift_history"
#: PSI above this on any feature or on the score makes the drift check warn.
DRIFT_WARN_PSI = 0.25


def _previous(warehouse: WarehouseResource, as_of: pd.Timestamp, table: str = SCORE_HISTORY_TABLE, columns: str = "account_id, churn_risk, health_score") -> pd.DataFrame:
    """Rows of ``table`` for the latest snapshot before ``as_of`` (empty if none)."""
    client = warehouse.get_client()
    if not client.table_exists(table):
        return pd.DataFrame(columns=[c.strip() for c in columns.split(",")])
    return client.read_sql(
        f"SELECT {columns} FROM {table} "
        f"WHERE snapshot_date = (SELECT MAX(snapshot_date) FROM {table} WHERE snapshot_date < :d)",
        {"d": as_of.date()},
    )


def _movers(warehouse: WarehouseResource, as_of: pd.Timestamp, scores: pd.DataFrame, contribs: pd.DataFrame) -> list[list[dict]]:
    """What changed since the previous snapshot: per explained account, the features whose
    contribution to the risk moved most (empty when there is nothing to compare with).
    ``contribs`` is indexed by account_id (the explained accounts)."""
    features = [c for c in contribs.columns if c != "bias"]
    prev = _previous(warehouse, as_of, CONTRIBUTION_HISTORY_TABLE, ", ".join(["account_id", "churn_risk", *features]))
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


@dg.asset(group_name=GROUP, kinds={"lightgbm", "pandas"}, owners=OWNERS, partitions_def=snapshot_partitions, deps=["churn_model"])
def churn_scores(
    context: dg.AssetExecutionContext,
    model_registry: ModelRegistryResource,
    warehouse: WarehouseResource,
    account_features: pd.DataFrame,
    training_set: pd.DataFrame,
) -> pd.DataFrame:
    """Calibrated churn probability of every account from the champion model, with its top 5
    drivers in words, what moved since the previous snapshot, and drift against training data."""
    registry = model_registry.get_client()
    version = registry.champion()
    if version is None:
        raise dg.Failure("no champion model in the registry: materialize churn_model first")
    model = ChurnModel.from_bytes(registry.load_bytes(version))
    out, contribs = score_accounts(model, account_features, describe=describe_driver, headline=headline_reason)
    as_of = snapshot_date(context)
    prev = _previous(warehouse, as_of).set_index("account_id")["churn_risk"]
    out["churn_risk_delta"] = (out["churn_risk"] - out["account_id"].map(prev)).fillna(0.0)
    out["movers"] = _movers(warehouse, as_of, out, contribs)
    history = contribs.drop(columns=["bias"], errors="ignore").reset_index(drop=True)
    history.insert(0, "churn_risk", out.loc[out["explained"], "churn_risk"].to_numpy())
    history.insert(0, "account_id", contribs.index.astype(str))
    history.insert(0, "snapshot_date", as_of.date())
    warehouse.get_client().replace_partition(CONTRIBUTION_HISTORY_TABLE, history, "snapshot_date", as_of.date())
    out["model_version"] = version
    drift = drift_report(model, training_set, account_features, out["churn_risk"], warn_at=DRIFT_WARN_PSI)
    warehouse.get_client().replace_partition(DRIFT_HISTORY_TABLE, drift.assign(snapshot_date=as_of.date()), "snapshot_date", as_of.date())
    out["snapshot_date"] = as_of
    context.add_output_metadata(
        {
            "dagster/row_count": len(out),
            "model_version": version,
            "drift_worst": dg.MetadataValue.md(drift.head(8).round(4).to_markdown(index=False)),
            "mean_risk": float(out["churn_risk"].mean()),
            "accounts_risk_ge_0_5": int((out["churn_risk"] >= 0.5).sum()),
            "accounts_explained": int(out["explained"].sum()),
            "top_10": dg.MetadataValue.md(
                out.nlargest(10, "churn_risk")[["account_id", "churn_risk", "top_reason"]].round(3).to_markdown(index=False)
            ),
        }
    )
    return out


@dg.asset(group_name=GROUP, kinds={"pandas"}, owners=OWNERS, partitions_def=snapshot_partitions)
def health_scores(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    queue: QueueStoreResource,
    account_features: pd.DataFrame,
    churn_scores: pd.DataFrame,
) -> pd.DataFrame:
    """Composite 0-100 health score (usage, support, relationship, model risk) with band, trend
    and the rescue intervention in progress, if any."""
    as_of = snapshot_date(context)
    risk = churn_scores.set_index("account_id")["churn_risk"].reindex(account_features.index)
    health = compute_health(account_features, risk.to_numpy())
    prev = _previous(warehouse, as_of).set_index("account_id")["health_score"]
    health["health_delta"] = (health["health_score"] - health.index.map(prev)).round(1)
    store = queue.get_client()
    health["intervention"] = intervention_status(health.index, store.list_cases(status="active"), store.plays())
    history = score_history_frame(health, churn_scores, snapshot_date=as_of)
    warehouse.get_client().replace_partition(SCORE_HISTORY_TABLE, history, "snapshot_date", as_of.date())
    bands = health["health_band"].value_counts().reindex(["healthy", "watch", "at_risk", "critical"], fill_value=0)
    context.add_output_metadata(
        {
            "dagster/row_count": len(health),
            "bands": dg.MetadataValue.md(bands.to_frame("accounts").to_markdown()),
            "mean_health": float(health["health_score"].mean()),
            "interventions_in_progress": int(health["intervention"].notna().sum()),
        }
    )
    return health




@dg.asset_check(
    asset=churn_scores,
    blocking=False,
    description=f"Population stability of every feature and of the score vs the training data (warns at PSI >= {DRIFT_WARN_PSI}).",
)
def churn_scores_drift(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    # The drift table is computed by churn_scores (it has the champion and the features at hand)
    # and kept per snapshot in the warehouse; the check reads the snapshot of its own run.
    client = warehouse.get_client()
    if not client.table_exists(DRIFT_HISTORY_TABLE):
        return dg.AssetCheckResult(passed=True, description="no drift measured yet")
    partition = context.run.tags.get("dagster/partition")
    day = pd.Timestamp(partition).date() if partition else client.read_sql(f"SELECT MAX(snapshot_date) AS d FROM {DRIFT_HISTORY_TABLE}").iloc[0]["d"]
    as_of = pd.Timestamp(day)
    table = client.read_sql(
        f"SELECT feature, psi, status FROM {DRIFT_HISTORY_TABLE} WHERE snapshot_date = :d ORDER BY psi DESC", {"d": as_of.date()}
    )
    worst = table[table["psi"] >= DRIFT_WARN_PSI]
    return dg.AssetCheckResult(
        passed=worst.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=None if worst.empty else "drift in " + ", ".join(worst["feature"].head(5)),
        metadata={
            "snapshot_date": str(as_of.date()),
            "features_checked": len(table),
            "worst_features": dg.MetadataValue.md(table.head(10).round(4).to_markdown(index=False)),
        },
    )

"""Scoring assets: churn probability with its drivers, and the composite health score."""


import dagster as dg
import pandas as pd

from assets import stages
from assets.partitions import snapshot_date, snapshot_partitions
from assets.stages import DRIFT_HISTORY_TABLE, DRIFT_WARN_PSI
from connectors.model_registry import ModelRegistryResource
from connectors.queue.resource import QueueStoreResource
from connectors.warehouse import WarehouseResource
from models.churn.model import ChurnModel

GROUP = "scoring"
OWNERS = ["team:data-science"]


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
    scored = stages.churn_scores(warehouse.get_client(), model, version, account_features, training_set, snapshot_date(context))
    out, drift = scored.scores, scored.drift
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
    health = stages.health_scores(warehouse.get_client(), queue.get_client(), account_features, churn_scores,
                                  snapshot_date(context))
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

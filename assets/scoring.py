"""Scoring assets: churn probability with its drivers, and the composite health score."""


import dagster as dg
import pandas as pd

from assets.partitions import snapshot_date, snapshot_partitions
from connectors.model_registry import ModelRegistryResource
from connectors.warehouse import WarehouseResource
from models.churn import ChurnModel
from models.explain import top_drivers
from models.features import describe_driver, feature_matrix, headline_reason
from models.health import health_scores as compute_health
from models.scoring import score_history_frame

GROUP = "scoring"
OWNERS = ["team:data-science"]
SCORE_HISTORY_TABLE = "score_history"


def _previous(warehouse: WarehouseResource, as_of: pd.Timestamp) -> pd.DataFrame:
    """Scores of the latest snapshot before ``as_of`` (empty if none)."""
    client = warehouse.get_client()
    if not client.table_exists(SCORE_HISTORY_TABLE):
        return pd.DataFrame(columns=["account_id", "churn_risk", "health_score"])
    return client.read_sql(
        f"SELECT account_id, churn_risk, health_score FROM {SCORE_HISTORY_TABLE} "
        f"WHERE snapshot_date = (SELECT MAX(snapshot_date) FROM {SCORE_HISTORY_TABLE} WHERE snapshot_date < :d)",
        {"d": as_of.date()},
    )


@dg.asset(group_name=GROUP, kinds={"lightgbm", "pandas"}, owners=OWNERS, partitions_def=snapshot_partitions, deps=["churn_model"])
def churn_scores(
    context: dg.AssetExecutionContext,
    model_registry: ModelRegistryResource,
    warehouse: WarehouseResource,
    account_features: pd.DataFrame,
) -> pd.DataFrame:
    """Calibrated churn probability of every account from the champion model, with its top 5 drivers in words."""
    registry = model_registry.get_client()
    version = registry.champion()
    if version is None:
        raise dg.Failure("no champion model in the registry: materialize churn_model first")
    model = ChurnModel.from_bytes(registry.load_bytes(version))
    X = feature_matrix(account_features)
    risk = model.predict_proba(X)
    drivers = top_drivers(model.contributions(X), X, k=5, describe=describe_driver)
    as_of = snapshot_date(context)
    prev = _previous(warehouse, as_of).set_index("account_id")["churn_risk"]
    out = pd.DataFrame({"account_id": account_features.index, "churn_risk": risk})
    out["churn_risk_delta"] = (out["churn_risk"] - out["account_id"].map(prev)).fillna(0.0)
    out["drivers"] = [[{"feature": d.feature, "phrase": d.phrase, "contribution": round(float(d.contribution), 4)} for d in row] for row in drivers]
    out["top_reason"] = [headline_reason(row) for row in out["drivers"]]
    out["model_version"] = version
    context.add_output_metadata(
        {
            "dagster/row_count": len(out),
            "model_version": version,
            "mean_risk": float(out["churn_risk"].mean()),
            "accounts_risk_ge_0_5": int((out["churn_risk"] >= 0.5).sum()),
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
    account_features: pd.DataFrame,
    churn_scores: pd.DataFrame,
) -> pd.DataFrame:
    """Composite 0-100 health score (usage, support, relationship, model risk) with band and trend."""
    as_of = snapshot_date(context)
    risk = churn_scores.set_index("account_id")["churn_risk"].reindex(account_features.index)
    health = compute_health(account_features, risk.to_numpy())
    prev = _previous(warehouse, as_of).set_index("account_id")["health_score"]
    health["health_delta"] = (health["health_score"] - health.index.map(prev)).round(1)
    history = score_history_frame(health, churn_scores, snapshot_date=as_of)
    warehouse.get_client().replace_partition(SCORE_HISTORY_TABLE, history, "snapshot_date", as_of.date())
    bands = health["health_band"].value_counts().reindex(["healthy", "watch", "at_risk", "critical"], fill_value=0)
    context.add_output_metadata(
        {
            "dagster/row_count": len(health),
            "bands": dg.MetadataValue.md(bands.to_frame("accounts").to_markdown()),
            "mean_health": float(health["health_score"].mean()),
        }
    )
    return health

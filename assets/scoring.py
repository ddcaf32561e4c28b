"""Scoring assets: churn probability with its drivers, and the composite health score.

Scoring uses the champion model. With no champion (none has been promoted yet: the first
challengers lacked the evidence or lost to a baseline), it falls back to the rules: churn risk from
the rules-only health risk (`models.churn.fallback.RulesRiskModel`), model version
`rules-fallback` on every score, candidate and case, a warning in the run and in the metadata.
The health score uses the champion's health configuration (weights checked or fitted on the
company, band edges), or with no champion the latest challenger's, or the fixed defaults.

Scoring does not load the training set: what it needs of it (the drift reference, the fallback
fitted on it) is kept with each model version when the retrain registers it
(`assets.stages.scoring_reference`). The ``training_set`` input is therefore deferred
(`deferred_input`, resource key ``deferred_input``): the asset receives a loader and calls it only
for a version registered before that was kept. At a million accounts that is 2.7 M rows the
daily run no longer reads.
"""

from collections.abc import Callable


import dagster as dg
import pandas as pd

from assets.metadata import clean, markdown_table
from assets.metadata import table as metadata_table
from assets import stages
from assets.partitions import snapshot_date, snapshot_partitions
from assets.stages import DRIFT_HISTORY_TABLE, DRIFT_WARN_PSI
from connectors.model_registry import ModelRegistryResource
from connectors.queue.resource import QueueStoreResource
from connectors.warehouse import WarehouseResource
from connectors.model_registry import ModelRegistry
from models.churn.fallback import RULES_FALLBACK_TEXT, RULES_FALLBACK_VERSION
from models.churn.health import DEFAULT_CONFIG, HealthConfig

FALLBACK_WARNING = (f"no champion model in the registry: churn risk comes from {RULES_FALLBACK_TEXT}, "
                    f"model version {RULES_FALLBACK_VERSION!r} on every score and case")


def health_config(registry: ModelRegistry) -> tuple[HealthConfig, str]:
    """The health configuration to score with and whose it is: the champion's, else the latest
    challenger's (checked on the same training set), else the fixed defaults."""
    for version in (registry.champion(), registry.latest()):
        if version is not None:
            return HealthConfig.from_dict(registry.metadata(version).get("health")), version
    return DEFAULT_CONFIG, "fixed defaults"

GROUP = "scoring"
OWNERS = ["team:data-science"]


@dg.input_manager(required_resource_keys={"io_manager"})
def deferred_input(context: dg.InputContext) -> Callable[[], object]:
    """An upstream asset's value as a loader: the run's IO manager reads it when (and if) the
    asset calls the loader, not before the step starts."""
    io_manager = context.resources.io_manager
    return lambda: io_manager.load_input(context)


@dg.asset(group_name=GROUP, kinds={"lightgbm", "pandas"}, owners=OWNERS, partitions_def=snapshot_partitions, deps=["churn_model"],
          ins={"training_set": dg.AssetIn(input_manager_key="deferred_input")})
def churn_scores(
    context: dg.AssetExecutionContext,
    model_registry: ModelRegistryResource,
    warehouse: WarehouseResource,
    account_features: pd.DataFrame,
    training_set: dg.Any,  # a loader (`deferred_input`), or a frame when the asset is invoked directly
) -> pd.DataFrame:
    """Calibrated churn probability of every account on the snapshot date, with its top 5 drivers.

    From the champion model (with none, from the rules-only health risk, flagged), with the
    drivers in words, what moved since the previous snapshot, and drift against the training
    data."""
    registry = model_registry.get_client()
    loader = training_set if callable(training_set) else (lambda: training_set)
    model, version, reference = stages.scoring_model(registry, loader, health_config(registry)[0])
    if version == RULES_FALLBACK_VERSION:
        context.log.warning(FALLBACK_WARNING)
    scored = stages.churn_scores(warehouse.get_client(), model, version, account_features, reference, snapshot_date(context))
    out, drift = scored.scores, scored.drift
    fallback = version == RULES_FALLBACK_VERSION
    out["risk_source"] = "rules_fallback" if fallback else "model"
    context.add_output_metadata(clean(
        {
            "dagster/row_count": len(out),
            "model_version": version,
            "risk_source": "rules fallback (no champion model)" if fallback else "champion model",
            **({"warning": dg.MetadataValue.text(FALLBACK_WARNING)} if fallback else {}),
            "mean_risk": float(out["churn_risk"].mean()),
            "accounts_risk_ge_0_5": int((out["churn_risk"] >= 0.5).sum()),
            "accounts_explained": int(out["explained"].sum()),
            "top_10": metadata_table(out.nlargest(10, "churn_risk"), columns=["account_id", "churn_risk", "top_reason"]),
            "drift_worst": metadata_table(drift.head(8)),
        }
    ))
    return out


@dg.asset(group_name=GROUP, kinds={"pandas"}, owners=OWNERS, partitions_def=snapshot_partitions)
def health_scores(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    queue: QueueStoreResource,
    model_registry: ModelRegistryResource,
    account_features: pd.DataFrame,
    churn_scores: pd.DataFrame,
) -> pd.DataFrame:
    """Composite 0-100 health score of every account with its band and trend.

    Usage, support, relationship and model risk, with the rescue intervention in progress, if
    any; weights and band edges from the champion's health configuration (see `health_config`)."""
    config, whose = health_config(model_registry.get_client())
    health = stages.health_scores(warehouse.get_client(), queue.get_client(), account_features, churn_scores,
                                  snapshot_date(context), config=config)
    bands = health["health_band"].value_counts().reindex(["healthy", "watch", "at_risk", "critical"], fill_value=0)
    context.add_output_metadata(clean(
        {
            "dagster/row_count": len(health),
            "mean_health": float(health["health_score"].mean()),
            "bands": metadata_table(bands.rename_axis("band").to_frame("accounts"), index=True),
            "interventions_in_progress": int(health["intervention"].notna().sum()),
            "health_config": dg.MetadataValue.text(
                f"{config.source} weights {', '.join(f'{k} {v:.2f}' for k, v in config.weights.items())}; "
                f"band edges {', '.join(f'{t:g}' for t in config.thresholds)} (from {whose})"),
            **({"health_warnings": dg.MetadataValue.text("; ".join(config.warnings))} if config.warnings else {}),
        }
    ))
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
        metadata=clean({
            "snapshot_date": str(as_of.date()),
            "features_checked": len(table),
            "worst_features": dg.MetadataValue.md(markdown_table(table.head(10))),
        }),
    )

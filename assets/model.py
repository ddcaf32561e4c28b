"""Model assets: the training set, the churn model (champion/challenger) and its gate.

The weekly retrain materializes these. A challenger is registered on every run; it becomes the
champion only if it beats the baselines of the same run and is at least as good as the current
champion on the same validation window. Scoring always uses the champion.
"""


import json
import platform

import dagster as dg

from models.charts import png_markdown
import numpy as np
import pandas as pd

from assets.run_clock import run_now
from connectors.model_registry import ModelRegistryResource
from connectors.settings import default_report_dir
from connectors.warehouse import WarehouseResource
from models.churn.model import ChurnModel
from models.churn.validation import time_validation_report
from models.churn.attributes import attributes_rule
from models.churn.features import CATEGORICAL_FEATURES, FEATURE_NAMES
from models.experiment.outcomes import rescue_treatments
from models.churn.health import rules_risk
from models.churn.labels import observation_dates
from models.churn.evaluation import evaluate as evaluate_scores
from models.churn.promotion import decide_promotion
from models.churn.training import build_training_set, time_split

GROUP = "model"
OWNERS = ["team:data-science"]


class TrainingConfig(dg.Config):
    horizon_days: int = 90
    observation_dates: int = 8
    spacing_days: int = 28
    valid_dates: int = 2
    seed: int = 0
    capacity_k: int = 100


def _data_window(warehouse: WarehouseResource) -> tuple[pd.Timestamp, pd.Timestamp]:
    span = warehouse.get_client().read_sql("SELECT MIN(date) AS first_day, MAX(date) AS last_day FROM usage_daily").iloc[0]
    if span["last_day"] is None or pd.isna(span["last_day"]):
        raise dg.Failure("usage_daily is empty: materialize product_usage_daily first")
    return pd.Timestamp(span["first_day"]), pd.Timestamp(span["last_day"]) + pd.Timedelta(days=1)


@dg.asset(group_name=GROUP, kinds={"pandas"}, owners=OWNERS, deps=["product_usage_daily"])
def training_set(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    warehouse: WarehouseResource,
    crm_accounts: pd.DataFrame,
    crm_renewals: pd.DataFrame,
    support_tickets: pd.DataFrame,
    rescue_outcomes: pd.DataFrame,
    crm_account_history: pd.DataFrame | None,
) -> pd.DataFrame:
    """Features at several observation dates with churn-within-horizon labels (censored dates left out).

    Rows of accounts that received a rescue play within the row's horizon are dropped: their
    label is what happened *after* the rescue (a saved account would teach the model that its
    risk signals were a false alarm). The number dropped is in the metadata.
    """
    start, end = _data_window(warehouse)
    dates = observation_dates(
        start, end, horizon_days=config.horizon_days, n_dates=config.observation_dates, spacing_days=config.spacing_days
    )
    client = warehouse.get_client()
    df = build_training_set(
        crm_accounts,
        crm_renewals,
        support_tickets,
        lambda a, b: client.read_usage_daily(a, b),
        dates,
        horizon_days=config.horizon_days,
        data_end=end,
        treatments=rescue_treatments(rescue_outcomes),
        progress=lambda i, n, d: context.log.info(f"observation date {i}/{n}: {d.date()}"),
        account_history=crm_account_history,
    )
    treated_rows = int(df["treated"].sum())
    df = df[~df["treated"]].reset_index(drop=True)
    by_date = df.groupby("observation_date")["label"].agg(["size", "mean"]).rename(columns={"size": "rows", "mean": "churn_rate"})
    context.add_output_metadata(
        {
            "dagster/row_count": len(df),
            "observation_dates": dg.MetadataValue.md(by_date.round(4).to_markdown()),
            "horizon_days": config.horizon_days,
            "data_end": str(end.date()),
            "positive_rate": float(df["label"].mean()),
            "treated_rows_dropped": treated_rows,
            "attributes": attributes_rule(crm_account_history),
        }
    )
    return df


def _png_md(plots: dict[str, bytes]) -> str:
    return "\n\n".join(png_markdown(name, png) for name, png in plots.items())


def _metrics_table(report: dict) -> pd.DataFrame:
    rows = {"churn_model (LightGBM, calibrated)": report["model"]}
    rows.update(report["baselines"])
    return pd.DataFrame(rows).T


def _fingerprint(df: pd.DataFrame) -> str:
    digest = pd.util.hash_pandas_object(df[["account_id", "observation_date", "label"]], index=False).sum()
    return f"{int(digest) & 0xFFFFFFFFFFFF:012x}"


@dg.asset(group_name=GROUP, kinds={"lightgbm"}, owners=OWNERS)
def churn_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    model_registry: ModelRegistryResource,
    training_set: pd.DataFrame,
) -> dict:
    """LightGBM churn model trained on earlier observation dates, validated on later ones.

    Reports the model beside the logistic-regression and rules-only baselines, registers the
    challenger and promotes it only when it passes the gate.
    """
    import lightgbm
    import sklearn

    train, valid = time_split(training_set, valid_dates=config.valid_dates)
    model, report = time_validation_report(
        train,
        valid,
        label="label",
        features=FEATURE_NAMES,
        categorical=CATEGORICAL_FEATURES,
        extra_baselines={"rules_health_score": rules_risk},
        capacity_k=config.capacity_k,
        seed=config.seed,
    )
    registry = model_registry.get_client()
    metadata = {
        "training_window": {
            "train_dates": sorted(str(d.date()) for d in train["observation_date"].unique()),
            "valid_dates": sorted(str(d.date()) for d in valid["observation_date"].unique()),
        },
        "horizon_days": config.horizon_days,
        "features": FEATURE_NAMES,
        "categorical": CATEGORICAL_FEATURES,
        "metrics": report["model"],
        "baselines": report["baselines"],
        "calibration": report.get("calibration", {}),
        "data_fingerprint": _fingerprint(training_set),
        "rows": {"train": len(train), "valid": len(valid)},
        "libraries": {
            "lightgbm": lightgbm.__version__,
            "scikit-learn": sklearn.__version__,
            "pandas": pd.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    version = registry.register(model.to_bytes(), metadata)

    champion = registry.champion()
    champion_metrics = None
    if champion is not None and champion != version:
        champ_model = ChurnModel.from_bytes(registry.load_bytes(champion))
        try:
            p = champ_model.predict_proba(valid[FEATURE_NAMES])
            champion_metrics = evaluate_scores(valid["label"].to_numpy(), p, capacity_k=config.capacity_k)
        except Exception as exc:  # a champion that cannot score today's features must be replaced
            context.log.warning(f"champion {champion} cannot score the validation window: {exc}")
    decision = decide_promotion(report["model"], champion_metrics, report["baselines"])
    if champion == version:
        decision_text = "identical to the champion (same content); kept"
    elif decision.promote:
        registry.promote(version, reason="; ".join(decision.reasons))
        decision_text = "promoted: " + "; ".join(decision.reasons)
    else:
        decision_text = "refused: " + "; ".join(decision.reasons)

    report_dir = default_report_dir() / "model" / version
    report_dir.mkdir(parents=True, exist_ok=True)
    table = _metrics_table(report)
    for name, png in report.get("plots", {}).items():
        (report_dir / f"{name}.png").write_bytes(png)
    (report_dir / "report.md").write_text(
        f"# Churn model {version}\n\nDecision: {decision_text}\n\n"
        f"## Validation window {metadata['training_window']['valid_dates']}\n\n{table.round(4).to_markdown()}\n\n"
        + "\n".join(f"![{n}]({n}.png)" for n in report.get("plots", {}))
        + "\n"
    )
    (report_dir / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str))
    context.add_output_metadata(
        {
            "version": version,
            "champion": registry.champion() or "",
            "decision": decision_text,
            "metrics": dg.MetadataValue.md(table.round(4).to_markdown()),
            "plots": dg.MetadataValue.md(_png_md(report.get("plots", {}))),
            "report": dg.MetadataValue.path(str(report_dir / "report.md")),
            "roc_auc": float(report["model"]["roc_auc"]),
        }
    )
    return {
        "challenger": version,
        "champion": registry.champion(),
        "promoted": bool(decision.promote and champion != version),
        "decision": decision_text,
        "trained_at": run_now(context).isoformat(),
    }


@dg.asset_check(asset=churn_model, blocking=True, description="A champion exists and beats the baselines of its own run.")
def churn_model_promotion_gate(model_registry: ModelRegistryResource, churn_model: dict) -> dg.AssetCheckResult:
    registry = model_registry.get_client()
    champion = registry.champion()
    if champion is None:
        return dg.AssetCheckResult(
            passed=False,
            metadata={"decision": churn_model["decision"]},
            description="No champion model: the first model did not beat the baselines, so nothing can be scored.",
        )
    meta = registry.metadata(champion)
    auc = meta["metrics"]["roc_auc"]
    worse = {k: v["roc_auc"] for k, v in meta["baselines"].items() if v["roc_auc"] >= auc}
    return dg.AssetCheckResult(
        passed=not worse,
        metadata={
            "champion": champion,
            "challenger": churn_model["challenger"],
            "decision": churn_model["decision"],
            "champion_roc_auc": float(auc),
            "baselines_roc_auc": dg.MetadataValue.json({k: v["roc_auc"] for k, v in meta["baselines"].items()}),
        },
        description=None if not worse else f"champion does not beat baselines: {worse}",
    )

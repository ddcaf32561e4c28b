"""Model assets: the training set, the churn model (champion/challenger) and its gate.

The weekly retrain materializes these. A challenger is registered on every run; it becomes the
champion only if the validation window holds enough churning accounts, the bootstrap interval of
its ROC-AUC difference to every baseline of the same run lies above 0, and it is at least as good
as the current champion on the same window (`models.churn.promotion`). Scoring uses the champion;
with none, it falls back to the rules-only health risk (`models.churn.fallback`).
"""


import json
import platform

import dagster as dg

from models.charts import png_markdown
import numpy as np
import pandas as pd

from assets.metadata import DASH, clean, markdown_table
from assets.metadata import table as metadata_table
from assets.run_clock import run_now
from assets.stages import SCORING_REFERENCE, scoring_reference
from connectors.model_registry import ModelRegistryResource
from connectors.settings import default_report_dir
from connectors.warehouse import WarehouseResource
from models.churn.model import ChurnModel
from models.churn.validation import time_validation_report
from models.churn.attributes import attributes_rule
from models.churn.features import CATEGORICAL_FEATURES, FEATURE_NAMES
from models.experiment.outcomes import rescue_treatments
from models.churn.health import BACKWARD_MARGIN, HealthConfig, fit_health_config, rules_risk, with_quantile_bands
from models.churn.health import health_scores as compute_health
from sklearn.metrics import roc_auc_score
from models.churn.labels import observation_dates
from models.churn.evaluation import evaluate as evaluate_scores
from models.churn.evaluation import auc_intervals
from models.churn.fallback import RULES_FALLBACK_TEXT, RULES_FALLBACK_VERSION
from models.churn.promotion import CHALLENGER, MIN_VALID_CHURNERS, decide_promotion, interval_text
from models.churn.sampling import NEGATIVE_SAMPLE_ROWS, WEIGHT, sampling_sentence, sampling_summary
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
    #: Fewest distinct churning accounts in the validation window for a promotion.
    min_valid_churners: int = MIN_VALID_CHURNERS
    #: Health rules weights: "checked" (the fixed weights, a component that predicts backwards on
    #: the training set at 0) or "fitted" (fitted on the training set when it has enough churn labels).
    health_weights: str = "checked"
    #: Lower edges of the healthy, watch and at_risk bands as quantiles of the validation window's
    #: health scores (e.g. [0.5, 0.2, 0.05]); empty: the fixed edges 70, 50, 30.
    health_band_quantiles: list[float] = []
    #: Training-date rows above which non-churning rows are sampled (weighted, before features are
    #: built; validation dates never) so that about this many remain; 0: never sample.
    #: `models.churn.sampling`: the default leaves the 100k-account demo world (~500k rows) whole.
    negative_sample_rows: int = NEGATIVE_SAMPLE_ROWS


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
        negative_sample_rows=config.negative_sample_rows or None,
        valid_dates=config.valid_dates,
        seed=config.seed,
        usage_aggregates_loader=client.read_usage_aggregates,
    )
    treated_rows = int(df["treated"].sum())
    df = df[~df["treated"]].reset_index(drop=True)
    by_date = df.groupby("observation_date")["label"].agg(["size", "mean"]).rename(columns={"size": "rows", "mean": "churn_rate"})
    context.add_output_metadata(clean(
        {
            "dagster/row_count": len(df),
            "positive_rate": float(df["label"].mean()) if len(df) else None,
            "observation_dates": metadata_table(by_date.rename_axis("observation_date"), index=True),
            "horizon_days": config.horizon_days,
            "data_end": str(end.date()),
            "treated_rows_dropped": treated_rows,
            "attributes": attributes_rule(crm_account_history),
            "negative_sampling": dg.MetadataValue.json(sampling_summary(df)),
        }
    ))
    return df


def _png_md(plots: dict[str, bytes]) -> str:
    return "\n\n".join(png_markdown(name, png) for name, png in plots.items())


#: The model's validation metrics shown as numbers of their own on the asset page, in this order.
HEADLINE_METRICS = ("roc_auc", "pr_auc", "top_decile_lift", "recall_at_k", "brier", "ece")


def _metrics_table(report: dict) -> pd.DataFrame:
    rows = {"churn_model (LightGBM, calibrated)": report["model"]}
    rows.update(report["baselines"])
    return pd.DataFrame(rows).T.rename_axis("scorer")


def metrics_table(frame: pd.DataFrame, *, index: bool = False) -> dg.TableMetadataValue:
    """A metrics frame as an inline table (`assets.metadata.table`: rounded, missing as a dash)."""
    return metadata_table(frame.rename_axis(frame.index.name or "scorer"), index=index)


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

    Reports the model beside the logistic-regression and rules-only baselines with ROC-AUC
    intervals, registers the challenger and promotes it only when it passes the gate
    (`models.churn.promotion`: enough churning accounts, every paired difference to a baseline
    above 0, at least as good as the champion). Without a champion, scoring falls back to the
    rules-only health risk.
    """
    import lightgbm
    import sklearn

    train, valid = time_split(training_set, valid_dates=config.valid_dates)
    health = fit_health_config(train, train["label"].to_numpy(), weights=config.health_weights)
    for line in health.warnings:
        context.log.warning(line)
    model, report = time_validation_report(
        train,
        valid,
        label="label",
        features=FEATURE_NAMES,
        categorical=CATEGORICAL_FEATURES,
        extra_baselines={"rules_health_score": lambda f: rules_risk(f, health)},
        capacity_k=config.capacity_k,
        seed=config.seed,
        groups="account_id",
        weight=WEIGHT,
    )
    intervals = report["intervals"]
    valid_health = compute_health(valid, model.predict_proba(valid), health)["health_score"]
    if config.health_band_quantiles:
        health = with_quantile_bands(health, valid_health, config.health_band_quantiles)
    composite_auc = float(roc_auc_score(valid["label"], -valid_health.to_numpy()))
    model.metadata["health"] = health.to_dict()  # travels inside the model artifact
    sampling = {"train": sampling_summary(train), "valid": sampling_summary(valid)}
    model.metadata["negative_sampling"] = sampling
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
        "intervals": intervals,
        "health": {**health.to_dict(), "composite_roc_auc": composite_auc},
        "calibration": report.get("calibration", {}),
        "data_fingerprint": _fingerprint(training_set),
        "rows": {"train": len(train), "valid": len(valid)},
        "negative_sampling": sampling,
        "libraries": {
            "lightgbm": lightgbm.__version__,
            "scikit-learn": sklearn.__version__,
            "pandas": pd.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    version = registry.register(model.to_bytes(), metadata)
    # what daily scoring needs of this training set, kept with the version (it never loads it)
    registry.annotate(version, {SCORING_REFERENCE: scoring_reference(
        model, training_set, HealthConfig.from_dict(metadata["health"]))})

    champion = registry.champion()
    champion_metrics = None
    if champion is not None and champion != version:
        champ_model = ChurnModel.from_bytes(registry.load_bytes(champion))
        try:
            p = champ_model.predict_proba(valid[FEATURE_NAMES])
            champion_metrics = evaluate_scores(valid["label"].to_numpy(), p, capacity_k=config.capacity_k)
            intervals["champion"] = auc_intervals(
                valid["label"].to_numpy(), {CHALLENGER: model.predict_proba(valid), "champion": p},
                reference=CHALLENGER, groups=valid["account_id"].to_numpy(), seed=config.seed)["champion"]
        except Exception as exc:  # a champion that cannot score today's features must be replaced
            context.log.warning(f"champion {champion} cannot score the validation window: {exc}")
    decision = decide_promotion(report["model"], champion_metrics, report["baselines"], intervals=intervals,
                                min_churners=config.min_valid_churners)
    evidence = _evidence(intervals, config.min_valid_churners)
    if champion == version:
        decision_text = "identical to the champion (same content); kept"
    elif decision.promote:
        registry.promote(version, reason="; ".join(decision.reasons), evidence=evidence)
        decision_text = "promoted: " + "; ".join(decision.reasons)
    else:
        kept = (f"the champion {champion} stays" if champion is not None
                else f"no champion: scoring falls back to {RULES_FALLBACK_TEXT}")
        decision_text = f"{decision.verdict}: " + "; ".join([*decision.reasons, kept])
        context.log.warning(f"challenger {version} not promoted ({decision_text})")
    registry.annotate(version, {"promotion": {"verdict": decision.verdict if champion != version else "kept",
                                              "decision": decision_text, **evidence}})

    report_dir = default_report_dir() / "model" / version
    report_dir.mkdir(parents=True, exist_ok=True)
    table = _metrics_table(report)
    uncertainty = _intervals_table(intervals)
    for name, png in report.get("plots", {}).items():
        (report_dir / f"{name}.png").write_bytes(png)
    (report_dir / "report.md").write_text(
        f"# Churn model {version}\n\nDecision: {decision_text}\n\n"
        f"## Validation window {metadata['training_window']['valid_dates']}\n\n{markdown_table(table, index=True)}\n\n"
        f"## Uncertainty\n\n{_evidence_sentence(evidence)}\n\n{uncertainty.to_markdown()}\n\n"
        f"## Training rows\n\n{sampling_sentence(sampling['train'])}\n\n"
        f"## Health score\n\n{_health_markdown(health, composite_auc)}\n\n"
        + "\n".join(f"![{n}]({n}.png)" for n in report.get("plots", {}))
        + "\n"
    )
    (report_dir / "metadata.json").write_text(json.dumps(registry.metadata(version), indent=2, default=str))
    context.add_output_metadata(clean(
        {
            # the headline, shown first on the asset page: numbers, the interval, the decision
            **{name: report["model"].get(name) for name in HEADLINE_METRICS if name in report["model"]},
            "roc_auc_interval": interval_text(intervals[CHALLENGER]),
            "churning_accounts_in_validation": int(intervals[CHALLENGER]["churners"]),
            "verdict": decision.verdict,
            "decision": decision_text,
            "version": version,
            "champion": registry.champion() or DASH,
            # tables, inline
            "metrics": metrics_table(table, index=True),
            "roc_auc_intervals": metrics_table(uncertainty, index=True),
            "calibration_deciles": metrics_table(pd.DataFrame(report.get("calibration_deciles", []))),
            "training_rows": dg.MetadataValue.text(sampling_sentence(sampling["train"])),
            # behind a click: the health configuration's text and the figures
            "health": dg.MetadataValue.md(_health_markdown(health, composite_auc)),
            **({"health_warnings": dg.MetadataValue.text("; ".join(health.warnings))} if health.warnings else {}),
            "plots": dg.MetadataValue.md(_png_md(report.get("plots", {}))),
            "report": dg.MetadataValue.path(str(report_dir / "report.md")),
        }
    ))
    return {
        "challenger": version,
        "champion": registry.champion(),
        "promoted": bool(decision.promote and champion != version),
        "verdict": decision.verdict,
        "decision": decision_text,
        "roc_auc_interval": interval_text(intervals[CHALLENGER]),
        "trained_at": run_now(context).isoformat(),
    }


def _health_markdown(health: HealthConfig, composite_auc: float) -> str:
    """The health configuration checked on this company, for the report and the metadata."""
    rows = {c: {"roc_auc (train)": f"{v['roc_auc']:.3f}", "status": v["status"], "weight": f"{v['weight']:.3f}"}
            for c, v in health.checks.items()}
    rows["model_risk"] = {"roc_auc (train)": "", "status": "", "weight": f"{health.weights['model_risk']:.3f}"}
    bands = ", ".join(f"{name} >= {t:g}" for name, t in zip(("healthy", "watch", "at_risk"), health.thresholds))
    source = (f"quantiles {', '.join(f'{q:g}' for q in health.band_quantiles)} of the validation scores"
              if health.band_quantiles else "fixed")
    lines = [f"Weights: {health.source} (each rules component's ROC-AUC against churn on the training set, "
             f"read as a risk; below {0.5 - BACKWARD_MARGIN:.2f} it predicts backwards and gets weight 0).", "",
             pd.DataFrame(rows).T.to_markdown(), "",
             f"Bands ({source}): {bands}, else critical. Composite health score ROC-AUC on the validation "
             f"window: {composite_auc:.3f}."]
    lines += ["", *[f"**Warning**: {w}" for w in health.warnings]] if health.warnings else []
    return "\n".join(lines)


def _evidence(intervals: dict, min_churners: int) -> dict:
    """What the decision rested on, kept with the version and the champion pointer."""
    own = intervals[CHALLENGER]
    return {
        "roc_auc": own["roc_auc"], "roc_auc_low": own["low"], "roc_auc_high": own["high"],
        "confidence": own["confidence"], "resamples": int(own["resamples"]),
        "churning_accounts": int(own["churners"]), "churn_rows": int(own["churn_rows"]),
        "min_churning_accounts": int(min_churners),
        "differences": {name: {"diff": v["diff"], "low": v["diff_low"], "high": v["diff_high"]}
                        for name, v in intervals.items() if name != CHALLENGER},
    }


def _evidence_sentence(evidence: dict) -> str:
    return (
        f"{evidence['churning_accounts']} churning accounts ({evidence['churn_rows']} churn labels) in the "
        f"validation window; intervals from {evidence['resamples']:,} paired bootstrap resamples of its "
        f"accounts. Promotion needs at least {evidence['min_churning_accounts']} churning accounts and, "
        "against every baseline, a difference whose interval lies above 0."
    )


def _intervals_table(intervals: dict) -> pd.DataFrame:
    rows = {}
    for name, v in intervals.items():
        label = "churn_model (LightGBM, calibrated)" if name == CHALLENGER else name
        row = {"roc_auc": f"{v['roc_auc']:.3f}", "95% CI": f"{v['low']:.3f}-{v['high']:.3f}"}
        if name != CHALLENGER:
            row["model minus this"] = f"{v['diff']:+.3f}"
            row["its 95% CI"] = f"{v['diff_low']:+.3f} to {v['diff_high']:+.3f}"
        rows[label] = row
    return pd.DataFrame(rows).T.fillna(DASH)


@dg.asset_check(asset=churn_model, blocking=True,
                description="A champion exists and beats the baselines of its own run; without one, scoring falls back to the rules (warning).")
def churn_model_promotion_gate(model_registry: ModelRegistryResource, churn_model: dict) -> dg.AssetCheckResult:
    registry = model_registry.get_client()
    champion = registry.champion()
    if champion is None:
        # a warning, not an error: scoring does not need a champion, it falls back to the rules
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=clean({"decision": churn_model["decision"], "risk_source": RULES_FALLBACK_VERSION}),
            description=f"No champion model: scoring falls back to {RULES_FALLBACK_TEXT} until a challenger is promoted.",
        )
    meta = registry.metadata(champion)
    auc = meta["metrics"]["roc_auc"]
    worse = {k: v["roc_auc"] for k, v in meta["baselines"].items() if v["roc_auc"] >= auc}
    interval = meta.get("intervals", {}).get(CHALLENGER)
    return dg.AssetCheckResult(
        passed=not worse,
        metadata=clean({
            "champion": champion,
            "challenger": churn_model["challenger"],
            "decision": churn_model["decision"],
            "champion_roc_auc": float(auc),
            "champion_roc_auc_interval": interval_text(interval) if interval else "not recorded",
            "baselines_roc_auc": dg.MetadataValue.json({k: v["roc_auc"] for k, v in meta["baselines"].items()}),
        }),
        description=None if not worse else f"champion does not beat baselines: {worse}",
    )

"""Small companies the defaults were not written for (`tests.factories.company_training_set`: a few
hundred accounts, a weak signal): the gate refuses to promote on thin evidence and says so with the
interval, a health component that predicts backwards is warned about and weighted 0, and scoring
without a champion falls back to the rules, flagged."""

from __future__ import annotations

import re

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from assets.model import TrainingConfig, churn_model, churn_model_promotion_gate
from assets.scoring import churn_scores, health_config
from connectors.model_registry import ModelRegistryResource
from connectors.warehouse import WarehouseResource
from models.churn.fallback import RULES_FALLBACK_VERSION, RulesRiskModel
from models.churn.health import rules_risk
from models.churn.model import ChurnModel
from tests.factories import company_training_set

INTERVAL = r"0\.\d{3} \(95% CI 0\.\d{3}-0\.\d{3}\)"


def _train(tmp_path, monkeypatch, training_set: pd.DataFrame, **config) -> tuple[dict, ModelRegistryResource]:
    monkeypatch.setenv("RESCUE_REPORT_DIR", str(tmp_path / "reports"))
    registry = ModelRegistryResource(path=str(tmp_path / "models"))
    out = churn_model(context=dg.build_asset_context(), config=TrainingConfig(**config), model_registry=registry,
                      training_set=training_set)
    return out, registry


def _report(tmp_path, out: dict) -> str:
    return (tmp_path / "reports" / "model" / out["challenger"] / "report.md").read_text()


def test_a_few_hundred_accounts_are_not_enough_evidence_to_promote(tmp_path, monkeypatch):
    out, registry = _train(tmp_path, monkeypatch, company_training_set(300, seed=0, churn_rate=0.03))
    assert not out["promoted"] and out["verdict"] == "not enough evidence"
    assert re.match(rf"not enough evidence: \d+ churning accounts in the validation window, at least 30 needed; "
                    rf"challenger roc_auc {INTERVAL}", out["decision"]), out["decision"]
    assert out["decision"].endswith("no champion: scoring falls back to the rules-only health risk "
                                    "(calibrated on the training set's outcomes)")
    assert registry.get_client().champion() is None
    gate = churn_model_promotion_gate(model_registry=registry, churn_model=out)
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.WARN
    report = _report(tmp_path, out)
    assert f"Decision: {out['decision']}" in report and "## Uncertainty" in report


def test_enough_churners_but_a_difference_whose_interval_reaches_zero_is_not_enough_evidence(tmp_path, monkeypatch):
    out, registry = _train(tmp_path, monkeypatch, company_training_set(800, seed=0, churn_rate=0.04))
    meta = registry.get_client().metadata(out["challenger"])
    assert meta["promotion"]["churning_accounts"] >= 30  # the count is not what holds it back
    assert out["verdict"] == "not enough evidence" and registry.get_client().champion() is None
    shaky = [n for n, d in meta["promotion"]["differences"].items() if d["low"] <= 0 < d["diff"]]
    assert shaky and f"is not shown to beat baseline {shaky[0]}" in out["decision"]


@pytest.fixture(scope="module")
def backwards(tmp_path_factory):
    """A company whose engaged accounts (urgent tickets, escalations) churn less, trained once."""
    tmp = tmp_path_factory.mktemp("backwards")
    mp = pytest.MonkeyPatch()
    try:
        training = company_training_set(400, seed=1, support_backwards=True, churn_rate=0.04)
        out, registry = _train(tmp, mp, training)
    finally:
        mp.undo()
    return tmp, training, out, registry


def test_a_support_component_that_predicts_backwards_is_warned_about_and_weighted_zero(backwards):
    tmp, _, out, registry = backwards
    meta = registry.get_client().metadata(out["challenger"])
    health = meta["health"]
    assert health["checks"]["support"]["status"] == "backwards" and health["weights"]["support"] == 0.0
    assert health["checks"]["usage"]["status"] == "ok" and health["weights"]["usage"] > 0.30
    report = _report(tmp, out)
    assert "**Warning**: health component support predicts backwards on this company" in report
    # the fitted weights travel inside the model artifact too
    model = ChurnModel.from_bytes(registry.get_client().load_bytes(out["challenger"]))
    assert model.metadata["health"]["weights"]["support"] == 0.0
    # and the rules baseline of the same run already reads the checked weights
    assert health["source"] == "checked"


def test_without_a_champion_scores_come_from_the_rules_and_say_so(backwards, tmp_path):
    _, training, out, registry = backwards
    client = registry.get_client()
    assert client.champion() is None
    config, whose = health_config(client)
    assert whose == out["challenger"] and config.weights["support"] == 0.0
    last = training[training["observation_date"] == training["observation_date"].max()].set_index("account_id")
    context = dg.build_asset_context(partition_key="2026-06-01")
    scores = churn_scores(context=context, model_registry=registry,
                          warehouse=WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}"),
                          account_features=last, training_set=training)
    assert (scores["model_version"] == RULES_FALLBACK_VERSION).all() and (scores["risk_source"] == "rules_fallback").all()
    assert scores["churn_risk"].between(0, 1).all()
    # the risk ranks accounts as the (checked) rules do, and explained accounts get drivers in words
    rules = rules_risk(last, config)
    assert np.corrcoef(pd.Series(rules).rank(), scores["churn_risk"].rank())[0, 1] > 0.999
    explained = scores[scores["explained"]]
    assert len(explained) and explained["drivers"].map(len).gt(0).all()
    assert not any(d["feature"] in ("open_urgent_tickets", "escalated_90d") for row in explained["drivers"] for d in row)


def test_the_rules_fallback_is_calibrated_and_exactly_explained():
    training = company_training_set(400, seed=3, churn_rate=0.05, signal=1.5)
    model = RulesRiskModel.fit(training)
    p = model.predict_proba(training)
    assert model.a > 0 and abs(p.mean() - training["label"].mean()) < 0.01  # calibrated on the outcomes
    contribs = model.contributions(training.head(50))
    assert np.allclose(contribs.sum(axis=1), model.decision_function(training.head(50)))
    # rules that predict backwards are not turned around: everyone gets the base rate
    risk = rules_risk(training)
    healthiest_leave = training.assign(label=(risk < np.quantile(risk, 0.05)).astype(int))
    flat = RulesRiskModel.fit(healthiest_leave)
    assert flat.a == 0.0
    assert np.allclose(flat.predict_proba(training), healthiest_leave["label"].mean())


def test_scoring_reads_what_the_retrain_kept_and_never_loads_the_training_set(backwards, tmp_path):
    """The challenger carries its scoring reference; the fallback scores from it without the
    training set, exactly as from the training set itself; a version registered before the
    reference was kept still scores, loading the training set once."""
    from assets.stages import SCORING_REFERENCE, scoring_model
    from models.churn.drift import drift_report

    _, training, out, registry = backwards
    client = registry.get_client()
    kept = client.metadata(out["challenger"])[SCORING_REFERENCE]
    assert set(kept) == {"drift", "fallback"} and kept["fallback"]["model"]["a"] >= 0
    config, _ = health_config(client)
    last = training[training["observation_date"] == training["observation_date"].max()].set_index("account_id")

    def refuse():
        raise AssertionError("the training set was loaded")

    model, version, reference = scoring_model(client, refuse, config)
    fitted = RulesRiskModel.fit(training, config)
    assert version == RULES_FALLBACK_VERSION
    np.testing.assert_array_equal(model.predict_proba(last), fitted.predict_proba(last))
    risk = pd.Series(fitted.predict_proba(last))
    pd.testing.assert_frame_equal(reference.report(last, risk), drift_report(fitted, training, last, risk))
    context = dg.build_asset_context(partition_key="2026-06-01")
    scores = churn_scores(context=context, model_registry=registry,
                          warehouse=WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}"),
                          account_features=last, training_set=refuse)
    assert (scores["model_version"] == RULES_FALLBACK_VERSION).all()

    older = ModelRegistryResource(path=str(tmp_path / "older")).get_client()
    meta = {k: v for k, v in client.metadata(out["challenger"]).items() if k != SCORING_REFERENCE}
    older.register(client.load_bytes(out["challenger"]), meta)
    loads = []
    model, version, reference = scoring_model(older, lambda: loads.append(1) or training, config)
    assert loads == [1] and version == RULES_FALLBACK_VERSION
    pd.testing.assert_frame_equal(reference.report(last, risk), drift_report(fitted, training, last, risk))

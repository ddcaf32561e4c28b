"""The champion/challenger gate on real models: a deliberately worse challenger is refused, and a
world too small to show that the model beats its baselines promotes nothing.

The promotion world has 1,500 accounts: with 45 churning accounts in its validation window it
clears the evidence rule (`models.churn.promotion.MIN_VALID_CHURNERS`); the 600-account world of
the same seed has 14 and does not."""

from datetime import date

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from assets.model import TrainingConfig, churn_model, churn_model_promotion_gate
from connectors.demo.world import DemoWorldConfig, generate_demo_world
from connectors.model_registry import ModelRegistryResource
from connectors.warehouse import Warehouse
from models.contracts import ACCOUNTS, RENEWALS, TICKETS, conform
from models.churn.labels import observation_dates
from models.churn.training import build_training_set

pytestmark = pytest.mark.slow


def _training_set(root, n_accounts: int) -> pd.DataFrame:
    wh = Warehouse(f"duckdb:///{root / 'w.duckdb'}")
    cfg = DemoWorldConfig(n_accounts=n_accounts, seed=11, end_date=date(2026, 11, 20), history_days=540)
    generate_demo_world(cfg, wh)
    wh.build_usage_daily()
    accounts = conform(wh.read_sql("SELECT * FROM raw_crm_accounts"), ACCOUNTS)
    renewals = conform(wh.read_sql("SELECT * FROM raw_crm_renewals"), RENEWALS)
    tickets = conform(wh.read_sql("SELECT * FROM raw_support_tickets"), TICKETS)
    end = pd.Timestamp(cfg.end_date)
    dates = observation_dates(pd.Timestamp(cfg.start_date), end, horizon_days=90)
    return build_training_set(accounts, renewals, tickets, wh.read_usage_daily, dates, horizon_days=90, data_end=end)


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    return _training_set(tmp_path_factory.mktemp("gate"), 1500)


@pytest.fixture(scope="module")
def small_training(tmp_path_factory):
    return _training_set(tmp_path_factory.mktemp("gate_small"), 600)


def _run(registry: ModelRegistryResource, training_set: pd.DataFrame) -> dict:
    return churn_model(
        context=dg.build_asset_context(), config=TrainingConfig(), model_registry=registry, training_set=training_set
    )


def test_a_worse_challenger_is_refused_and_the_champion_kept(training, tmp_path):
    registry = ModelRegistryResource(path=str(tmp_path / "models"))
    first = _run(registry, training)
    assert first["promoted"] and first["champion"] == first["challenger"]
    assert churn_model_promotion_gate(model_registry=registry, churn_model=first).passed

    # Same validation window, but the training dates' labels are shuffled: a worse model.
    spoiled = training.copy()
    dates = sorted(spoiled["observation_date"].unique())
    train_rows = spoiled["observation_date"] < dates[-2]
    rng = np.random.default_rng(0)
    spoiled.loc[train_rows, "label"] = rng.permutation(spoiled.loc[train_rows, "label"].to_numpy())
    second = _run(registry, spoiled)
    assert not second["promoted"]
    assert second["decision"].startswith("refused")
    assert registry.get_client().champion() == first["challenger"]
    # the gate still passes: scoring keeps using the good champion
    assert churn_model_promotion_gate(model_registry=registry, churn_model=second).passed


def test_the_gate_blocks_scoring_when_there_is_no_champion(tmp_path):
    registry = ModelRegistryResource(path=str(tmp_path / "empty"))
    gate = churn_model_promotion_gate(
        model_registry=registry, churn_model={"decision": "refused: challenger roc_auc 0.51 does not beat baseline"}
    )
    assert not gate.passed
    assert "No champion" in gate.description


def test_a_small_world_promotes_nothing_and_scoring_falls_back_to_the_rules(small_training, tmp_path, monkeypatch):
    monkeypatch.setenv("RESCUE_REPORT_DIR", str(tmp_path / "reports"))
    registry = ModelRegistryResource(path=str(tmp_path / "models"))
    out = _run(registry, small_training)
    assert not out["promoted"] and out["verdict"] == "not enough evidence"
    assert out["decision"].startswith("not enough evidence: 14 churning accounts in the validation window, at least 30 needed")
    assert "95% CI" in out["decision"] and out["decision"].endswith("no champion: scoring falls back to the rules-only "
                                                                    "health risk (calibrated on the training set's outcomes)")
    client = registry.get_client()
    assert client.champion() is None
    meta = client.metadata(out["challenger"])
    assert meta["promotion"]["verdict"] == "not enough evidence"
    assert meta["promotion"]["churning_accounts"] == 14 and meta["intervals"]["model"]["low"] < meta["metrics"]["roc_auc"]
    gate = churn_model_promotion_gate(model_registry=registry, churn_model=out)
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.WARN  # scoring does not need a champion
    report = (tmp_path / "reports" / "model" / out["challenger"] / "report.md").read_text()
    assert "## Uncertainty" in report and "14 churning accounts (23 churn labels)" in report
    assert "## Health score" in report

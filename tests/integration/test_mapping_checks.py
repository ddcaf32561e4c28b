"""The plausibility thresholds in a company's mapping file: the subscription SaaS company
(tests/companies/subscription_saas.py) is landed through its mapping with a ``checks:`` block;
the manifest keeps what the block set, the pipeline's ``source_checks`` resource reads it from
there (saying where its thresholds came from), and resource config given in code still wins.
Manifests written before the ``checks`` column existed read as setting none, and a load onto
one keeps its rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from assets.quality import source_checks, source_checks_resource
from assets.sources import crm_account_history, crm_accounts, crm_renewals, product_usage_daily, support_tickets
from connectors.mapping.land import land_mapping
from connectors.mapping.loader import load_mapping
from connectors.mapping.manifest import MANIFEST_TABLE, LandedChecks, landed_checks, read_manifest
from connectors.settings import declared_names
from connectors.warehouse import Warehouse
from models.plausibility import Thresholds
from pipelines.resources import build_resources
from tests.companies.subscription_saas import MAPPING, Company, write_company

CHECKS = "checks:\n  max_share_before_signup: 0.25\n  churn_grace_days: 14\n"
SET = {"max_share_before_signup": 0.25, "churn_grace_days": 14}


@pytest.fixture(scope="module")
def company(tmp_path_factory) -> Path:
    """The company's exports and its mapping with a checks: block (the mapping file's path)."""
    root = tmp_path_factory.mktemp("saas")
    write_company(root / "exports", Company())
    mapping = root / MAPPING.name
    mapping.write_text(MAPPING.read_text() + CHECKS)
    return mapping


@pytest.fixture(scope="module")
def landed(company, tmp_path_factory) -> Warehouse:
    wh = Warehouse(f"duckdb:///{tmp_path_factory.mktemp('landed') / 'warehouse.duckdb'}")
    land_mapping(load_mapping(company), wh)
    return wh


@pytest.fixture
def settings_for(monkeypatch, tmp_path):
    """Point the settings at a warehouse (a fresh RESCUE_HOME, no other RESCUE_* setting)."""
    for name in declared_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RESCUE_HOME", str(tmp_path / "home"))

    def point(wh: Warehouse) -> None:
        monkeypatch.setenv("RESCUE_WAREHOUSE_URL", wh.url)
    return point


# -------------------------------------------------------------------------------- the manifest


def test_the_manifest_holds_the_thresholds_the_mapping_set(landed):
    meta = read_manifest(landed)
    assert meta["checks"] == SET
    stored = landed.read_sql(f"SELECT checks FROM {MANIFEST_TABLE}")["checks"]
    assert [json.loads(text) for text in stored] == [SET]          # only what the block names
    found = landed_checks(landed.url)
    assert found.overrides == SET
    assert found.origin.startswith("mapping subscription-saas (landed ") and found.origin.endswith(" UTC)")


def test_the_probe_answers_defaults_and_creates_nothing(tmp_path):
    missing = tmp_path / "nowhere" / "warehouse.duckdb"
    assert landed_checks(f"duckdb:///{missing}") == LandedChecks({}, "defaults")
    assert landed_checks(f"sqlite:///{tmp_path / 'none.db'}") == LandedChecks({}, "defaults")
    assert not missing.parent.exists() and not (tmp_path / "none.db").exists()
    empty = Warehouse(f"duckdb:///{tmp_path / 'empty.duckdb'}")
    empty.write_table("raw_crm_accounts", pd.DataFrame({"account_id": ["A1"]}))
    assert landed_checks(empty.url) == LandedChecks({}, "defaults")                     # no manifest
    assert landed_checks("nosuchdb://x/y").origin.startswith("defaults (the warehouse URL is not usable")


@pytest.mark.parametrize("dialect", ["duckdb", "sqlite"])
def test_an_old_manifest_without_the_checks_column_reads_as_setting_none(tmp_path, dialect):
    wh = Warehouse(f"{dialect}:///{tmp_path / ('wh.duckdb' if dialect == 'duckdb' else 'wh.db')}")
    wh.write_table(MANIFEST_TABLE, _old_manifest_row())
    meta = read_manifest(wh)
    assert meta["checks"] == {} and meta["mapping_name"] == "older-company"
    assert landed_checks(wh.url) == LandedChecks({}, "defaults (mapping older-company, landed 2026-01-05 08:00 UTC, sets no checks)")


def test_a_load_onto_an_old_manifest_adds_the_column_and_keeps_its_rows(company, tmp_path):
    wh = Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    old = _old_manifest_row()
    wh.write_table(MANIFEST_TABLE, old)
    land_mapping(load_mapping(company), wh)
    rows = wh.read_sql(f"SELECT * FROM {MANIFEST_TABLE} ORDER BY landed_at")
    assert len(rows) == 2 and "checks" in rows.columns
    assert rows["mapping_hash"].iloc[0] == "0" * 64 and rows["row_counts"].iloc[0] == old["row_counts"].iloc[0]
    assert pd.isna(rows["checks"].iloc[0]) and json.loads(rows["checks"].iloc[1]) == SET
    assert read_manifest(wh)["checks"] == SET and read_manifest(wh)["mapping_name"] == "subscription-saas"


def _old_manifest_row() -> pd.DataFrame:
    """A manifest row as `rescue data load` wrote it before the checks column."""
    return pd.DataFrame([{
        "mapping_path": "/srv/older.yaml", "mapping_name": "older-company", "mapping_hash": "0" * 64,
        "landed_at": pd.Timestamp("2026-01-05 08:00"), "tables": "raw_crm_accounts",
        "row_counts": json.dumps({"raw_crm_accounts": 3}), "first_date": pd.Timestamp("2025-01-01"),
        "last_date": pd.Timestamp("2026-01-04"), "usage_daily_landed": False, "sources": "{}",
    }])


# ------------------------------------------------------------------------------ the pipeline


def test_the_pipelines_source_checks_take_the_landed_thresholds_and_say_so(landed, settings_for):
    settings_for(landed)
    checks = build_resources()["source_checks"]
    assert checks.get_thresholds() == Thresholds(max_share_before_signup=0.25, churn_grace_days=14)
    assert checks.set_by() == {"max_share_before_signup": "mapping", "churn_grace_days": "mapping"}
    assert checks.origin == landed_checks(landed.url).origin
    assert checks.origin.startswith("mapping subscription-saas (landed ")


def test_resource_config_in_code_still_wins(landed, settings_for):
    settings_for(landed)
    mine = source_checks_resource({"max_share_before_signup": 0.05}, landed=landed_checks(landed.url))
    checks = build_resources({"source_checks": mine})["source_checks"]
    assert checks is mine
    assert checks.get_thresholds() == Thresholds(max_share_before_signup=0.05, churn_grace_days=14)
    assert checks.set_by() == {"max_share_before_signup": "resource config", "churn_grace_days": "mapping"}
    assert checks.provenance().endswith("; resource config: max_share_before_signup")
    # a resource built in code without the landed layer is the code's alone
    assert build_resources({"source_checks": source_checks_resource()})["source_checks"].get_thresholds() == Thresholds()


def test_the_checks_show_the_thresholds_they_judged_by_in_the_dagster_ui(landed, settings_for, monkeypatch):
    settings_for(landed)
    monkeypatch.setenv("RESCUE_NOW", "2026-12-01T06:00:00+00:00")
    resources = build_resources()
    origin = resources["source_checks"].origin
    assets = [crm_accounts, crm_renewals, crm_account_history, support_tickets, product_usage_daily]

    def evaluations(**kwargs) -> dict:
        result = dg.materialize([*assets, *source_checks], resources=resources, raise_on_error=False, **kwargs)
        return {e.check_name: e for e in result.get_asset_check_evaluations()}

    run = evaluations()
    tickets, usage = run["support_tickets_consistent"], run["product_usage_daily_consistent"]
    assert tickets.passed and usage.passed and run["crm_renewals_consistent"].passed
    assert tickets.metadata["thresholds"].value == "max_share_before_signup 0.25 (mapping), signup_grace_days 30"
    assert usage.metadata["thresholds"].value == ("max_share_before_signup 0.25 (mapping), signup_grace_days 30, "
                                                  "max_share_after_churn 0.02, churn_grace_days 14 (mapping)")
    assert tickets.metadata["thresholds_origin"].value == origin
    assert tickets.description.endswith(f"; thresholds from {origin}: max_share_before_signup 0.25 (mapping), signup_grace_days 30")
    assert "allowed 25.0%" in tickets.description
    assert run["support_tickets_fresh"].metadata["thresholds"].value == "tickets_max_age_days 3, quiet_odds 0.001"
    # run config configuring the resource replaces its whole config (Dagster does not merge it
    # with the bound one): the mapping's layer is not applied then, and the checks say so
    run = evaluations(run_config={"resources": {"source_checks": {"config": {"thresholds": {"signup_grace_days": 45}}}}})
    tickets = run["support_tickets_consistent"]
    assert tickets.metadata["thresholds"].value == "max_share_before_signup 0.02, signup_grace_days 45 (resource config)"
    assert tickets.metadata["thresholds_origin"].value == "defaults; resource config: signup_grace_days"

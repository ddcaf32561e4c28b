"""HubSpot + Freshdesk as configuration alone: the two systems named, their credentials bound
by variable, and `landing_job`'s assets land both and map them through their default mappings
into the canonical tables (no mapping file of the company's own); the composition refuses two
CRMs, a ticketing system without accounts, and a company source that shadows a default's."""

from __future__ import annotations

import textwrap

import dagster as dg
import pandas as pd
import pytest
import responses
import tenacity
from dagster_dlt import DagsterDltResource

from assets.landing import freshdesk_assets, hubspot_assets, landed_mapping_asset
from connectors.landing.freshdesk import FreshdeskResource
from connectors.landing.hubspot import HubSpotResource
from connectors.mapping.compose import compose_mapping
from connectors.mapping.loader import MappingError
from connectors.warehouse import Warehouse, WarehouseResource
from tests.fakes import freshdesk_fake
from tests.fakes.freshdesk_fake import FakeFreshdesk
from tests.fakes.hubspot_search_fake import TOKEN, FakeHubSpot


@pytest.fixture(autouse=True)
def no_waits(monkeypatch):
    monkeypatch.setattr(tenacity.nap.time, "sleep", lambda _seconds: None)


def test_hubspot_and_freshdesk_compose_into_one_mapping_each_section_from_its_system():
    loaded = compose_mapping(["hubspot", "freshdesk"])
    mapping = loaded.mapping
    assert set(mapping.sections()) == {"accounts", "renewals", "tickets"}
    assert mapping.accounts.source == "hubspot_companies" and mapping.tickets.source == "freshdesk_tickets"
    assert "default mappings of hubspot, freshdesk" in str(loaded.path)


def test_two_crms_a_lone_ticketing_system_and_a_shadowing_source_are_refused_by_name(tmp_path):
    with pytest.raises(MappingError) as two:
        compose_mapping(["salesforce", "hubspot", "freshdesk"])
    assert any("accounts" in where and "both salesforce and hubspot" in why for where, why in two.value.problems)
    with pytest.raises(MappingError) as lone:
        compose_mapping(["freshdesk"])
    assert any(where == "accounts" and "name a CRM in RESCUE_SOURCES" in why for where, why in lone.value.problems)
    (tmp_path / "accounts.csv").write_text("id,name\nA1,Acme\n")
    company = tmp_path / "company.yaml"
    company.write_text(textwrap.dedent("""\
        version: 1
        sources:
          freshdesk_tickets: {file: accounts.csv}
          mine: {file: accounts.csv}
        accounts:
          source: mine
          columns: {account_id: id, name: name, segment: {sql: "'smb'"}, arr: {sql: "0"}, seats: {sql: "0"},
                    created_at: {sql: "DATE '2024-01-01'"}}
        """))
    with pytest.raises(MappingError) as shadow:
        compose_mapping(["freshdesk"], company)
    assert any(where == "sources.freshdesk_tickets" and "rename the company's" in why for where, why in shadow.value.problems)


def test_the_company_mapping_keeps_its_own_sections_and_the_defaults_fill_in_the_rest(tmp_path):
    (tmp_path / "accounts.csv").write_text("id,name\nA1,Acme\n")
    company = tmp_path / "company.yaml"
    company.write_text(textwrap.dedent("""\
        version: 1
        name: Acme
        sources:
          mine: {file: accounts.csv}
        accounts:
          source: mine
          columns: {account_id: id, name: name, segment: {sql: "'smb'"}, arr: {sql: "0"}, seats: {sql: "0"},
                    created_at: {sql: "DATE '2024-01-01'"}}
        """))
    mapping = compose_mapping(["hubspot", "freshdesk"], company).mapping
    assert mapping.name == "Acme" and mapping.accounts.source == "mine"  # the company's own accounts
    assert mapping.renewals.source == "hubspot_renewals" and mapping.tickets.source == "freshdesk_tickets"


def test_landing_job_lands_hubspot_and_freshdesk_and_maps_them_into_the_canonical_tables(tmp_path, monkeypatch):
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    monkeypatch.setenv("RESCUE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("FRESHDESK_DOMAIN", freshdesk_fake.DOMAIN)
    monkeypatch.setenv("FRESHDESK_API_KEY", freshdesk_fake.API_KEY)
    portal = FakeHubSpot.with_data(6, 6)
    desk = FakeFreshdesk.with_tickets(40, companies=6)
    for cid, company in desk.companies.items():  # the Freshdesk company holds the HubSpot company id
        company["custom_fields"]["account_id"] = str(cid)
    landed = [hubspot_assets(url), freshdesk_assets(url)]
    resources = {"dlt": DagsterDltResource(), "warehouse": WarehouseResource(url=url),
                 "hubspot_account": HubSpotResource(access_token=dg.EnvVar("HUBSPOT_ACCESS_TOKEN")),
                 "freshdesk_account": FreshdeskResource(domain=dg.EnvVar("FRESHDESK_DOMAIN"),
                                                        api_key=dg.EnvVar("FRESHDESK_API_KEY"))}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        portal.install(rsps)
        desk.install(rsps)
        result = dg.materialize([*landed, landed_mapping_asset(("hubspot", "freshdesk"), landed)],
                                resources=resources, raise_on_error=False)
    assert result.success
    meta = result.asset_materializations_for_node("landed_mapping")[0].metadata
    assert "default mappings of hubspot, freshdesk" in meta["mapping"].value
    wh = Warehouse(url)
    accounts = wh.read_sql("SELECT * FROM raw_crm_accounts ORDER BY account_id")
    tickets = wh.read_sql("SELECT * FROM raw_support_tickets")
    renewals = wh.read_sql("SELECT * FROM raw_crm_renewals")
    assert sorted(accounts["account_id"]) == sorted(str(c) for c in range(1, 7))
    assert len(tickets) == 40 and set(tickets["account_id"]) <= set(accounts["account_id"])
    assert len(renewals) == 6 and set(renewals["account_id"]) <= set(accounts["account_id"])
    assert meta["rows_raw_support_tickets"].value == 40
    assert pd.api.types.is_datetime64_any_dtype(tickets["created_at"])


def test_rescue_data_check_needs_no_file_when_the_systems_are_named_and_says_what_is_missing(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    monkeypatch.setenv("RESCUE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RESCUE_SOURCES", raising=False)
    none = CliRunner().invoke(app, ["data", "check"])
    assert none.exit_code == 1 and "no mapping file and no landed system named (RESCUE_SOURCES)" in none.output
    monkeypatch.setenv("RESCUE_SOURCES", "freshdesk")
    lone = CliRunner().invoke(app, ["data", "check"])
    assert lone.exit_code == 1
    assert "default mappings of freshdesk: accounts: none of freshdesk maps the accounts" in " ".join(lone.output.split())

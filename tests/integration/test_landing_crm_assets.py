"""Salesforce and HubSpot landed as Dagster assets (dagster-dlt) in one `dg.materialize`, against
their HTTP fakes, credentials bound with `dg.EnvVar`: every asset lands its rows, a refused token
fails its own step in one line naming the variable and never shows a credential, and a later run
resumes from the cursor dlt saved in the warehouse."""

from __future__ import annotations

import dagster as dg
import pytest
import responses
import simple_salesforce.bulk2
import tenacity
from dagster_dlt import DagsterDltResource

from assets.landing import hubspot_assets, salesforce_assets
from connectors.landing.hubspot import HubSpotResource
from connectors.landing.salesforce import SalesforceLanding
from connectors.warehouse import Warehouse, WarehouseResource
from tests.fakes.hubspot_search_fake import TOKEN, FakeHubSpot
from tests.fakes.salesforce_fake import SalesforceFake

SF_USER, SF_PASSWORD, SF_TOKEN = "integration@example.com", "Assets-Secret-Pw1", "TOKENassets7"


@pytest.fixture(autouse=True)
def no_waits(monkeypatch):
    monkeypatch.setattr(simple_salesforce.bulk2, "sleep", lambda _seconds: None)
    monkeypatch.setattr(tenacity.nap.time, "sleep", lambda _seconds: None)


def _org() -> SalesforceFake:
    fake = SalesforceFake(username=SF_USER, password=SF_PASSWORD, security_token=SF_TOKEN, page_size=4)
    for i in range(9):
        account = fake.add("Account", Name=f"Company {i}", Type="Customer", Industry="Retail", BillingCountry="DE",
                           AnnualRevenue=100.0 * i, NumberOfEmployees=10, OwnerId="005A",
                           CreatedDate="2023-02-01T09:30:00.000+0000")
        fake.add("Opportunity", AccountId=account["Id"], Name=f"Renewal {i}", Type="Renewal", StageName="Open",
                 CloseDate="2026-09-01", Amount=50.0, IsClosed=False, IsWon=False,
                 CreatedDate="2025-02-01T09:30:00.000+0000")
    return fake


def _materialize(org: SalesforceFake, portal: FakeHubSpot, url: str, monkeypatch, tmp_path, hubspot_token: str):
    monkeypatch.setenv("RESCUE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RESCUE_SF_USERNAME", SF_USER)
    monkeypatch.setenv("RESCUE_SF_PASSWORD", SF_PASSWORD)
    monkeypatch.setenv("RESCUE_SF_SECURITY_TOKEN", SF_TOKEN)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", hubspot_token)
    resources = {
        "dlt": DagsterDltResource(), "warehouse": WarehouseResource(url=url),
        "salesforce_account": SalesforceLanding(username=dg.EnvVar("RESCUE_SF_USERNAME"),
                                                password=dg.EnvVar("RESCUE_SF_PASSWORD"),
                                                security_token=dg.EnvVar("RESCUE_SF_SECURITY_TOKEN"),
                                                bulk_poll_seconds=0),
        "hubspot_account": HubSpotResource(access_token=dg.EnvVar("HUBSPOT_ACCESS_TOKEN")),
    }
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        org.install(rsps)
        portal.install(rsps)
        return dg.materialize([salesforce_assets(url), hubspot_assets(url)], resources=resources,
                              raise_on_error=False)


def _rows(result: dg.ExecuteInProcessResult, node: str) -> dict[str, int]:
    """Rows each asset loaded (dagster-dlt leaves ``rows_loaded`` out when nothing was)."""
    return {m.asset_key.to_user_string(): m.metadata["rows_loaded"].value if "rows_loaded" in m.metadata else 0
            for m in result.asset_materializations_for_node(node)}


def test_both_crm_sources_land_through_dagster_and_a_refused_token_fails_its_own_step_in_one_line(
        tmp_path, monkeypatch):
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    org, portal = _org(), FakeHubSpot.with_data(12, 7)
    result = _materialize(org, portal, url, monkeypatch, tmp_path, TOKEN)
    assert result.success
    assert _rows(result, "salesforce_landing") == {"dlt_salesforce_accounts": 9, "dlt_salesforce_opportunities": 9}
    assert _rows(result, "hubspot_landing") == {"dlt_hubspot_companies": 12, "dlt_hubspot_deals": 7}

    secret = "pat-na1-refused-42"
    failed = _materialize(org, portal, url, monkeypatch, tmp_path, secret)
    assert not failed.success
    failures = [e for e in failed.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == ["hubspot_landing"]        # Salesforce's step is its own
    message = failures[0].step_failure_data.error.message.strip()
    assert "\n" not in message and "HUBSPOT_ACCESS_TOKEN" in message and "401" in message
    shown = " ".join(str(e.event_specific_data) + str(e.message) for e in failed.all_events)
    for value in (secret, TOKEN, SF_PASSWORD, SF_TOKEN):
        assert value not in shown

    org.touch("Account", sorted(org.records["Account"])[2], Name="Renamed")
    seen = len(org.requests)
    again = _materialize(org, portal, url, monkeypatch, tmp_path, TOKEN)
    assert again.success                                                 # from the saved cursor: only the change
    assert _rows(again, "salesforce_landing") == {"dlt_salesforce_accounts": 1, "dlt_salesforce_opportunities": 0}
    assert ("GET", "/services/data/v59.0/query/") in org.requests[seen:]
    accounts = Warehouse(url).read_sql("SELECT id, name FROM salesforce.accounts")
    assert len(accounts) == 9 and (accounts["name"] == "Renamed").sum() == 1

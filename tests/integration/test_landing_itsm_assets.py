"""Jira Service Management and ServiceNow landed through Dagster: both sources' assets in one
``dg.materialize`` against their HTTP fakes, with their resources bound from the environment as
the Definitions bind them; a refused login fails its own asset in one line, showing no secret."""

from __future__ import annotations

import responses

from tests.fakes.servicenow_fake import PASSWORD, USER, FakeServiceNow
from tests.integration.test_landing_servicenow import INCIDENT, _as_landed, _landed


def test_jira_and_servicenow_land_through_dagster_and_a_refused_login_is_one_line(url, tmp_path, monkeypatch, waits):
    import dagster as dg
    from dagster_dlt import DagsterDltResource

    from assets.landing import jira_assets, servicenow_assets
    from connectors.landing import jira, servicenow
    from connectors.warehouse import WarehouseResource
    from tests.fakes import jira_fake

    monkeypatch.setenv("RESCUE_HOME", str(tmp_path / "home"))
    for name, value in {"JIRA_BASE_URL": f"https://{jira_fake.SITE}", "JIRA_EMAIL": jira_fake.EMAIL,
                        "JIRA_API_TOKEN": jira_fake.TOKEN, "SERVICENOW_INSTANCE": "acme",
                        "SERVICENOW_USER": USER, "SERVICENOW_PASSWORD": PASSWORD}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SERVICENOW_TOKEN", raising=False)
    sn, jf = FakeServiceNow.with_records(incidents=15, cases=6), jira_fake.FakeJira.with_issues(12)

    def materialize():
        resources = {"dlt": DagsterDltResource(), "warehouse": WarehouseResource(url=url),
                     "jira_site": jira.bound_resource(), "servicenow_instance": servicenow.bound_resource()}
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            sn.install(rsps)
            jf.install(rsps)
            return dg.materialize([jira_assets(url), servicenow_assets(url)], resources=resources, raise_on_error=False)

    result = materialize()
    assert result.success
    landed = {m.asset_key.to_user_string(): m.metadata["rows_loaded"].value
              for node in ("jira_landing", "servicenow_landing") for m in result.asset_materializations_for_node(node)}
    assert landed == {"dlt_jira_issues": 12, "dlt_jira_organizations": 4, "dlt_servicenow_incidents": 15,
                      "dlt_servicenow_cases": 6, "dlt_servicenow_groups": 3, "dlt_servicenow_accounts": 4}
    assert _as_landed(_landed(url)) == sn.expected(INCIDENT)

    secret = "refused-password-42"
    monkeypatch.setenv("SERVICENOW_PASSWORD", secret)
    failed = materialize()
    assert not failed.success
    errors = [e.step_failure_data.error.message for e in failed.all_events if e.is_step_failure]
    assert len(errors) == 1 and "\n" not in errors[0].strip() and "SERVICENOW_PASSWORD" in errors[0]
    shown = " ".join(str(e.event_specific_data) + str(e.message) for e in failed.all_events)
    assert secret not in shown and PASSWORD not in shown and jira_fake.TOKEN not in shown

"""The Definitions load with every secret configured, hold everything by name, and show no secret.

`pipelines.definitions` is loaded afresh (as `dagster dev` loads it) with a placeholder value
in every secret variable the settings module declares, plus a policy-named Slack webhook.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap

from connectors.settings import declared_names, secret_names

ASSETS = {
    # sources
    "crm_accounts", "crm_renewals", "crm_account_history", "product_usage_daily", "support_tickets",
    # features, model, scoring
    "account_features", "churn_outcomes", "training_set", "churn_model", "churn_scores", "health_scores",
    # routing, operations
    "rescue_candidates", "rescue_queue", "escalation_policy", "queue_operations_metrics",
    # feedback (rescue_actions: external, the team's work in the queue store)
    "crm_writeback", "rescue_actions", "rescue_outcomes", "play_effectiveness",
}
FEEDBACK_GROUP = {"crm_writeback", "rescue_actions", "rescue_outcomes", "play_effectiveness"}
GROUPS = {"sources", "features", "model", "scoring", "routing", "feedback"}
CHECKS = {
    ("crm_accounts", "crm_accounts_contract"),
    ("crm_renewals", "crm_renewals_contract"),
    ("crm_account_history", "crm_account_history_contract"),
    ("crm_account_history", "crm_account_history_consistent"),
    ("product_usage_daily", "product_usage_daily_contract"),
    ("support_tickets", "support_tickets_contract"),
    ("crm_renewals", "crm_renewals_consistent"),
    ("product_usage_daily", "product_usage_daily_consistent"),
    ("support_tickets", "support_tickets_consistent"),
    ("crm_renewals", "crm_renewals_fresh"),
    ("product_usage_daily", "product_usage_daily_fresh"),
    ("support_tickets", "support_tickets_fresh"),
    ("churn_model", "churn_model_promotion_gate"),
    ("churn_scores", "churn_scores_drift"),
}
JOBS = {"daily_rescue_job", "weekly_retrain_job", "feedback_job"}
SCHEDULES = {"daily_rescue_schedule", "weekly_retrain_schedule"}
SENSORS = {"sla_clock", "rescue_actions_sensor"}
RESOURCES = {"warehouse", "crm", "ticketing", "queue", "model_registry", "policy", "notifier", "crm_writer",
             "source_checks", "deferred_input"}

#: A placeholder for each secret: a value no repr, snapshot or metadata may contain.
PLACEHOLDERS = {
    "RESCUE_WAREHOUSE_URL": "postgresql+psycopg://rescue:placeholder-warehouse-pw@db.invalid/warehouse",
    "RESCUE_QUEUE_URL": "postgresql+psycopg://rescue:placeholder-queue-pw@db.invalid/queue",
    "RESCUE_SLACK_WEBHOOK_URL": "https://hooks.slack.invalid/services/placeholder-slack-default",
    "RESCUE_SLACK_CSM": "https://hooks.slack.invalid/services/placeholder-slack-csm",
    "RESCUE_SMTP_PASSWORD": "placeholder-smtp-pw",
    "RESCUE_SF_PASSWORD": "placeholder-sf-pw",
    "RESCUE_SF_SECURITY_TOKEN": "placeholder-sf-token",
    "RESCUE_SF_SESSION_ID": "placeholder-sf-session",
    "RESCUE_DESK_SECRET": "placeholder-desk-secret",
    "FRESHDESK_API_KEY": "placeholder-freshdesk-key",
    "ZENDESK_API_TOKEN": "placeholder-zendesk-token",
    "JIRA_API_TOKEN": "placeholder-jira-token",
    "SERVICENOW_PASSWORD": "placeholder-servicenow-password",
    "SERVICENOW_TOKEN": "placeholder-servicenow-token",
    "HUBSPOT_ACCESS_TOKEN": "placeholder-hubspot-token",
}
PLAIN = {
    "RESCUE_SMTP_HOST": "smtp.example.invalid",
    "RESCUE_SMTP_USER": "rescue",
    "RESCUE_SF_USERNAME": "integration@example.com",
    "RESCUE_SF_INSTANCE_URL": "https://example.my.salesforce.com",
    "RESCUE_SF_DOMAIN": "test",
    "RESCUE_TICKET_WRITEBACK": "jira",
    "JIRA_BASE_URL": "https://acme.atlassian.invalid",
    "JIRA_EMAIL": "ops@example.invalid",
}


def _load_definitions(monkeypatch, tmp_path, extra: dict[str, str] | None = None) -> dg.Definitions:
    for name in declared_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RESCUE_HOME", str(tmp_path / "home"))
    for name, value in {**PLACEHOLDERS, **PLAIN, **(extra or {})}.items():
        monkeypatch.setenv(name, value)
    path = Path(__file__).resolve().parents[2] / "pipelines" / "definitions.py"
    spec = importlib.util.spec_from_file_location("_definitions_under_test", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module.defs


@pytest.fixture
def defs(monkeypatch, tmp_path) -> dg.Definitions:
    return _load_definitions(monkeypatch, tmp_path)


def test_every_secret_has_a_placeholder():
    assert set(secret_names()) <= set(PLACEHOLDERS)


def test_everything_is_there_by_name(defs):
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == ASSETS
    assert {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).group_name == "feedback"} \
        == FEEDBACK_GROUP
    assert {graph.get(k).group_name for k in graph.get_all_asset_keys()} == GROUPS
    assert {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys} == CHECKS
    assert {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")} == JOBS
    assert {s.name for s in repo.schedule_defs} == SCHEDULES
    assert {s.name for s in repo.sensor_defs} == SENSORS
    assert set(defs.resources) == RESOURCES
    assert defs.resources["crm_writer"].target == "salesforce"


def _field_values(resource: dg.ConfigurableResource, path: str):
    """(path, value) of every config field of `resource` and of the resources nested in it (an
    input manager, `deferred_input`, has none)."""
    if not isinstance(resource, dg.ConfigurableResource):
        return
    for name in type(resource).model_fields:
        value = getattr(resource, name)
        if isinstance(value, dg.ConfigurableResource):
            yield from _field_values(value, f"{path}.{name}")
        else:
            yield f"{path}.{name}", value


def test_secrets_are_bound_by_name_never_held_as_values(defs):
    for key, resource in defs.resources.items():
        for path, value in _field_values(resource, key):
            if isinstance(value, dg.EnvVar):  # a name, resolved only inside a run
                assert value.env_var_name in declared_names(), path
                continue
            assert not any(secret in repr(value) for secret in PLACEHOLDERS.values()), path
    salesforce = defs.resources["crm_writer"].salesforce
    for field, name in (("password", "RESCUE_SF_PASSWORD"), ("security_token", "RESCUE_SF_SECURITY_TOKEN"),
                        ("session_id", "RESCUE_SF_SESSION_ID")):
        value = getattr(salesforce, field)
        assert isinstance(value, dg.EnvVar) and value.env_var_name == name
    assert (salesforce.username, salesforce.domain) == (PLAIN["RESCUE_SF_USERNAME"], PLAIN["RESCUE_SF_DOMAIN"])


def test_no_secret_shows_in_a_repr_or_in_what_the_ui_shows(defs):
    repo = defs.get_repository_def()
    shown = [f"{key}: {resource!r}" for key, resource in defs.resources.items()]
    snapshot = RepositorySnap.from_def(repo)
    shown.append(dg.serialize_value(snapshot))  # resource config, asset and check metadata, job and sensor specs
    shown += [repr(r.configured_values) for r in snapshot.resources]
    for text in shown:
        for name, value in PLACEHOLDERS.items():
            assert value not in text, f"{name}'s value shows in {text[:120]}"
    configured = {r.name: r.configured_values for r in snapshot.resources}
    assert configured["queue"]["url"].name == "RESCUE_QUEUE_URL"
    assert configured["warehouse"]["url"].name == "RESCUE_WAREHOUSE_URL"
    assert configured["notifier"]["smtp_password"].name == "RESCUE_SMTP_PASSWORD"


# ------------------------------------------------------------------------------ what the UI shows

SOURCES = {"crm_accounts", "crm_renewals", "crm_account_history", "product_usage_daily", "support_tickets"}
SOURCE_CHECKS = {name for asset, name in CHECKS if asset in SOURCES}
FRESH_CHECKS = {name for name in SOURCE_CHECKS if name.endswith("_fresh")}
#: What each job materializes and checks: the group layout may change, never these.
JOB_CONTENTS = {
    "daily_rescue_job": (
        SOURCES | {"churn_outcomes", "account_features", "churn_scores", "health_scores", "rescue_candidates",
                   "rescue_queue", "escalation_policy", "queue_operations_metrics", "crm_writeback"},
        SOURCE_CHECKS | {"churn_scores_drift"},
    ),
    "weekly_retrain_job": (
        SOURCES | {"churn_outcomes", "rescue_outcomes", "training_set", "churn_model"},
        (SOURCE_CHECKS - FRESH_CHECKS) | {"churn_model_promotion_gate"},
    ),
    "feedback_job": ({"crm_writeback", "rescue_outcomes", "play_effectiveness"}, set()),
}


def _parents(graph, name: str) -> set[str]:
    return {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}


def test_lineage_shows_the_feedback_loop_from_the_teams_work_to_the_next_model(defs):
    graph = defs.resolve_asset_graph()
    assert _parents(graph, "rescue_outcomes") == {"rescue_actions"}
    assert graph.get(dg.AssetKey("rescue_actions")).is_external  # the team's work, written outside any job
    assert "rescue_outcomes" in _parents(graph, "training_set")
    assert _parents(graph, "churn_model") == {"training_set"}
    assert {"churn_model", "training_set"} <= _parents(graph, "churn_scores")
    assert _parents(graph, "play_effectiveness") == {"rescue_outcomes"}
    assert _parents(graph, "crm_writeback") == {"rescue_queue"}
    # the loop closes across runs, never within the graph: it stays acyclic
    order = [k.to_user_string() for k in graph.toposorted_asset_keys]
    for earlier, later in [("rescue_actions", "rescue_outcomes"), ("rescue_outcomes", "training_set"),
                           ("training_set", "churn_model"), ("churn_model", "churn_scores"),
                           ("churn_scores", "rescue_queue"), ("rescue_queue", "crm_writeback")]:
        assert order.index(earlier) < order.index(later)
    assert graph.get(dg.AssetKey("rescue_queue")).key not in graph.get(dg.AssetKey("rescue_actions")).parent_keys


def test_every_job_materializes_and_checks_what_it_did(defs):
    for name, (assets, checks) in JOB_CONTENTS.items():
        job = defs.resolve_job_def(name)
        assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == assets, name
        assert {k.name for d in job.asset_layer.data for k in d.assets_def.check_keys} == checks, name


def test_every_asset_says_what_it_is_in_one_line_and_every_check_has_its_asset(defs):
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        description = graph.get(key).description or ""
        first, _, rest = description.partition("\n")
        assert first.strip() and len(first) <= 100, f"{key.to_user_string()}: {first!r}"
        assert not rest or rest.startswith("\n"), f"{key.to_user_string()}: the first line runs on: {description[:150]!r}"
    for check in graph.asset_check_keys:  # a check on an asset of the graph shows on that asset's page
        assert check.asset_key in graph.get_all_asset_keys() and check in graph.get(check.asset_key).check_keys


# ------------------------------------------------------------------------------ landing sources

LANDING = {"dlt_freshdesk_tickets", "dlt_freshdesk_companies"}
#: The last asset of every landing group: the landed systems through their default mappings.
MAPPED = "landed_mapping"


@pytest.fixture
def landing_defs(monkeypatch, tmp_path) -> dg.Definitions:
    return _load_definitions(monkeypatch, tmp_path, {"RESCUE_SOURCES": "freshdesk", "FRESHDESK_DOMAIN": "acme"})


def test_without_rescue_sources_nothing_lands(defs):
    graph = defs.resolve_asset_graph()
    assert not [k for k in graph.get_all_asset_keys() if graph.get(k).group_name == "landing"]
    assert "landing_job" not in {j.name for j in defs.get_repository_def().get_all_jobs()}


def test_a_named_source_adds_its_landing_group_job_and_resources_bound_by_name(landing_defs):
    repo = landing_defs.get_repository_def()
    graph = repo.asset_graph
    names = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert names == ASSETS | LANDING | {MAPPED}
    assert {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).group_name == "landing"} == LANDING | {MAPPED}
    job = landing_defs.resolve_job_def("landing_job")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == LANDING | {MAPPED}
    # the mapping runs after every landed table of the named systems
    assert {k.to_user_string() for k in graph.get(dg.AssetKey(MAPPED)).parent_keys} == LANDING
    daily = landing_defs.resolve_job_def("daily_rescue_job")
    assert not LANDING & {k.to_user_string() for k in daily.asset_layer.selected_asset_keys}
    account = landing_defs.resources["freshdesk_account"]
    assert isinstance(account.api_key, dg.EnvVar) and account.api_key.env_var_name == "FRESHDESK_API_KEY"
    assert isinstance(account.domain, dg.EnvVar) and account.domain.env_var_name == "FRESHDESK_DOMAIN"
    tickets = graph.get(dg.AssetKey("dlt_freshdesk_tickets"))
    assert "freshdesk" in tickets.kinds and tickets.description.startswith("Freshdesk tickets")


def test_no_secret_shows_with_a_landing_source(landing_defs):
    test_no_secret_shows_in_a_repr_or_in_what_the_ui_shows(landing_defs)
    test_secrets_are_bound_by_name_never_held_as_values(landing_defs)
    graph = landing_defs.resolve_asset_graph()
    for name in LANDING:
        description = graph.get(dg.AssetKey(name)).description
        assert description and "\n" not in description and len(description) <= 100, name


def test_the_crm_sources_add_their_assets_and_bind_their_credentials_by_name(monkeypatch, tmp_path):
    defs = _load_definitions(monkeypatch, tmp_path, {"RESCUE_SOURCES": "freshdesk,salesforce,hubspot",
                                                      "FRESHDESK_DOMAIN": "acme", "RESCUE_SF_BULK_THRESHOLD": "500"})
    crm = {"dlt_salesforce_accounts", "dlt_salesforce_opportunities", "dlt_hubspot_companies", "dlt_hubspot_deals"}
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).group_name == "landing"} == \
        LANDING | crm | {MAPPED}
    sf, hs = defs.resources["salesforce_account"], defs.resources["hubspot_account"]
    for resource, field, name in ((sf, "username", "RESCUE_SF_USERNAME"), (sf, "password", "RESCUE_SF_PASSWORD"),
                                  (sf, "security_token", "RESCUE_SF_SECURITY_TOKEN"),
                                  (hs, "access_token", "HUBSPOT_ACCESS_TOKEN")):
        value = getattr(resource, field)
        assert isinstance(value, dg.EnvVar) and value.env_var_name == name
    assert sf.bulk_threshold == 500 and sf.domain == PLAIN["RESCUE_SF_DOMAIN"]
    test_no_secret_shows_in_a_repr_or_in_what_the_ui_shows(defs)
    for name in crm:
        description = graph.get(dg.AssetKey(name)).description
        assert description and "\n" not in description and len(description) <= 100, name


def test_an_unknown_source_is_refused_naming_the_variable(monkeypatch, tmp_path):
    from connectors.settings import SettingError

    with pytest.raises(SettingError, match=r"RESCUE_SOURCES='freshdesk, zendsk': unknown source 'zendsk'"):
        _load_definitions(monkeypatch, tmp_path, {"RESCUE_SOURCES": "freshdesk, zendsk"})


def test_zendesk_lands_in_the_landing_group_bound_by_name_and_shows_no_secret(monkeypatch, tmp_path):
    defs = _load_definitions(monkeypatch, tmp_path, {"RESCUE_SOURCES": "zendesk", "ZENDESK_SUBDOMAIN": "acme",
                                                     "ZENDESK_EMAIL": "bot@acme.example"})
    zendesk = {"dlt_zendesk_tickets", "dlt_zendesk_organizations"}
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).group_name == "landing"} == zendesk | {MAPPED}
    assert {k.to_user_string() for k in defs.resolve_job_def("landing_job").asset_layer.selected_asset_keys} == zendesk | {MAPPED}
    account = defs.resources["zendesk_account"]
    assert {n: getattr(account, n).env_var_name for n in ("subdomain", "email", "api_token")} == {
        "subdomain": "ZENDESK_SUBDOMAIN", "email": "ZENDESK_EMAIL", "api_token": "ZENDESK_API_TOKEN"}
    assert "zendesk" in graph.get(dg.AssetKey("dlt_zendesk_tickets")).kinds
    test_no_secret_shows_in_a_repr_or_in_what_the_ui_shows(defs)
    test_secrets_are_bound_by_name_never_held_as_values(defs)


ITSM_LANDING = {"dlt_jira_issues", "dlt_jira_organizations", "dlt_servicenow_incidents", "dlt_servicenow_cases",
                "dlt_servicenow_groups", "dlt_servicenow_accounts"}


def test_jira_and_servicenow_land_as_assets_with_their_secrets_bound_by_name(monkeypatch, tmp_path):
    itsm = _load_definitions(monkeypatch, tmp_path, {
        "RESCUE_SOURCES": "jira,servicenow", "JIRA_BASE_URL": "https://acme.atlassian.net", "JIRA_EMAIL": "ops@acme.example",
        "SERVICENOW_INSTANCE": "acme", "SERVICENOW_USER": "svc.rescue"})
    graph = itsm.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).group_name == "landing"} == ITSM_LANDING | {MAPPED}
    assert {k.to_user_string() for k in itsm.resolve_job_def("landing_job").asset_layer.selected_asset_keys} == ITSM_LANDING | {MAPPED}
    site, instance = itsm.resources["jira_site"], itsm.resources["servicenow_instance"]
    assert (site.api_token.env_var_name, site.email.env_var_name) == ("JIRA_API_TOKEN", "JIRA_EMAIL")
    assert (instance.password.env_var_name, instance.token.env_var_name) == ("SERVICENOW_PASSWORD", "SERVICENOW_TOKEN")
    test_no_secret_shows_in_a_repr_or_in_what_the_ui_shows(itsm)
    test_secrets_are_bound_by_name_never_held_as_values(itsm)
    for name in ITSM_LANDING:
        description = graph.get(dg.AssetKey(name)).description
        assert description and "\n" not in description and len(description) <= 100, name

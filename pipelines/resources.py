"""Resource bindings: which systems the assets talk to.

Every value comes from `connectors.settings` (the one place that reads the environment; the
README's configuration table lists the variables) and falls back to the embedded default when
its variable is unset. Secrets (database URLs, webhooks, passwords, tokens) are bound with
`dg.EnvVar` under the name the settings module declares, so the value never appears in the
UI, logs or metadata:

| resource         | settings                                   | embedded default                          |
|------------------|--------------------------------------------|-------------------------------------------|
| warehouse        | warehouse_url                              | DuckDB file $RESCUE_HOME/warehouse.duckdb |
| queue            | queue_url                                  | SQLite file $RESCUE_HOME/queue.db         |
| model_registry   | model_dir                                  | $RESCUE_HOME/models                       |
| policy           | policy_path                                | policies/default.yaml                     |
| notifier         | slack_webhook_url, smtp_host/_user/_password | none: messages go to the log            |
| crm_writer       | crm (RESCUE_CRM), salesforce, hubspot, hubspot_writeback; ticket_writeback with freshdesk, jira, servicenow | warehouse tables crm_tasks, crm_account_health; no ticket notes |
| source_checks    | freshness; the landed mapping's `checks:`  | block; `models.plausibility.Thresholds`   |
| dlt, freshdesk_account | sources (freshdesk named), freshdesk | only when `RESCUE_SOURCES` names freshdesk |
| dlt, zendesk_account | sources (zendesk named), zendesk | only when `RESCUE_SOURCES` names zendesk |
| dlt, jira_site   | sources (jira named), jira                 | only when `RESCUE_SOURCES` names jira     |
| dlt, servicenow_instance | sources (servicenow named), servicenow | only when `RESCUE_SOURCES` names servicenow |
| salesforce_account | sources (salesforce named), salesforce | only when `RESCUE_SOURCES` names salesforce |
| hubspot_account  | sources (hubspot named), hubspot           | only when `RESCUE_SOURCES` names hubspot  |

The plausibility thresholds of `source_checks` are the defaults, then those the landed mapping's
`checks:` block set (read-only from the manifest in the warehouse bound here, when the
Definitions load: `connectors.mapping.manifest.landed_checks`; no warehouse or no manifest is the
defaults, and nothing is created), then any given in code (`source_checks_resource(overrides)`
bound under `source_checks`) or run config. The resource's `origin` says where they came from.

To read the CRM from Salesforce, bind its connector under the `crm` key here; no asset changes.
Ticketing systems (Freshdesk, Zendesk) are landed into the warehouse instead (`assets.landing`)
and mapped into the tickets the `ticketing` resource reads.
"""


from typing import Any

import dagster as dg

from assets.quality import source_checks_resource
from assets.scoring import deferred_input
from connectors.mapping.manifest import landed_checks
from connectors.model_registry import ModelRegistryResource
from connectors.notify import NotifierResource
from connectors.policy_source import PolicyResource
from connectors.queue.resource import QueueStoreResource
from connectors.salesforce.client import SalesforceConnection
from connectors.settings import (
    FreshdeskSettings,
    HubSpotSettings,
    JiraSettings,
    SalesforceSettings,
    ServiceNowSettings,
    Settings,
    crm_target,
    current,
    default_queue_url,
    default_warehouse_url,
    landing_sources,
    ticket_writeback_target,
)
from connectors.sources import WarehouseCRM, WarehouseTicketing
from connectors.ticket_notes import TicketNotesResource
from connectors.warehouse import WarehouseResource
from connectors.writeback import CRMWriterResource


def _secret(name: str, value: str | None, default: Any) -> Any:
    """`dg.EnvVar(name)` when the secret is set, else `default`."""
    return dg.EnvVar(name) if value else default


def salesforce_connection(sf: SalesforceSettings) -> SalesforceConnection:
    """The Salesforce connection from its settings, secrets bound by variable name."""
    return SalesforceConnection(
        username=sf.username,
        password=_secret(SalesforceSettings.env("password"), sf.password, ""),
        security_token=_secret(SalesforceSettings.env("security_token"), sf.security_token, ""),
        instance_url=sf.instance_url,
        session_id=_secret(SalesforceSettings.env("session_id"), sf.session_id, ""),
        domain=sf.domain,
    )


def ticket_notes_resource(settings: Settings) -> TicketNotesResource | None:
    """The ticketing system `RESCUE_TICKET_WRITEBACK` names, its secrets bound by variable name; None when unset."""
    target = ticket_writeback_target(settings)
    if target is None:
        return None
    fd, jira, sn = settings.freshdesk, settings.jira, settings.servicenow
    return TicketNotesResource(
        target=target,
        freshdesk_domain=fd.domain,
        freshdesk_api_key=_secret(FreshdeskSettings.env("api_key"), fd.api_key, ""),
        jira_base_url=jira.base_url,
        jira_email=jira.email,
        jira_api_token=_secret(JiraSettings.env("api_token"), jira.api_token, ""),
        servicenow_instance=sn.instance,
        servicenow_user=sn.user,
        servicenow_password=_secret(ServiceNowSettings.env("password"), sn.password, ""),
        servicenow_table=settings.servicenow_note_table,
    )


def crm_writer_resource(warehouse: WarehouseResource, settings: Settings | None = None) -> CRMWriterResource:
    """The CRM `RESCUE_CRM` names (unset: Salesforce when its settings are configured, a
    username or an instance URL, else the demo CRM), with the ticket notes `RESCUE_TICKET_WRITEBACK` names."""
    s = settings or current()
    target, notes = crm_target(s), ticket_notes_resource(s)
    if target == "salesforce":
        return CRMWriterResource(warehouse=warehouse, target="salesforce", salesforce=salesforce_connection(s.salesforce),
                                 ticket_notes=notes)
    if target == "hubspot":
        hs = s.hubspot_writeback
        return CRMWriterResource(
            warehouse=warehouse, target="hubspot", ticket_notes=notes,
            hubspot_access_token=_secret(HubSpotSettings.env("access_token"), s.hubspot.access_token, ""),
            hubspot_properties={"task_key": hs.task_key, "company_key": hs.company_key, "health_score": hs.health_score,
                                "churn_risk": hs.churn_risk, "rescue_status": hs.rescue_status,
                                "top_reason": hs.top_reason})
    return CRMWriterResource(warehouse=warehouse, ticket_notes=notes)


def landing_resources(settings: Settings) -> dict[str, Any]:
    """The resources of the landing assets (`assets.landing`), for the sources `RESCUE_SOURCES`
    names: dagster-dlt's runner and each source's account, its variables bound by name."""
    sources = landing_sources(settings)
    if not sources:
        return {}
    import importlib

    from dagster_dlt import DagsterDltResource  # dlt is imported only when a source is named

    from connectors.landing import SOURCE_MODULES

    resources: dict[str, Any] = {"dlt": DagsterDltResource()}
    for name in sources:
        module = importlib.import_module(SOURCE_MODULES[name])
        resources[module.RESOURCE_KEY] = module.bound_resource()
    return resources


def build_resources(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The resource dict for Definitions and for `dg.materialize` (tests pass overrides)."""
    s = current()
    warehouse = WarehouseResource(url=_secret(Settings.env("warehouse_url"), s.warehouse_url, default_warehouse_url()))
    resources: dict[str, Any] = {
        "warehouse": warehouse,
        "crm": WarehouseCRM(warehouse=warehouse),
        "ticketing": WarehouseTicketing(warehouse=warehouse),
        "queue": QueueStoreResource(url=_secret(Settings.env("queue_url"), s.queue_url, default_queue_url())),
        "deferred_input": deferred_input,
        "model_registry": ModelRegistryResource(path=s.model_dir or ""),
        "policy": PolicyResource(path=s.policy_path or ""),
        "notifier": NotifierResource(
            slack_webhook_url=_secret(Settings.env("slack_webhook_url"), s.slack_webhook_url, None),
            smtp_host=s.smtp_host,
            smtp_user=s.smtp_user,
            smtp_password=_secret(Settings.env("smtp_password"), s.smtp_password, None),
        ),
    }
    resources.update(landing_resources(s))
    resources.update(overrides or {})
    # the CRM write-back and the landed thresholds follow the warehouse actually bound (tests
    # bind a temporary one)
    resources.setdefault("crm_writer", crm_writer_resource(resources["warehouse"], s))
    if "source_checks" not in resources:
        resources["source_checks"] = source_checks_resource(
            settings=s, landed=landed_checks(warehouse_url_of(resources["warehouse"], s)))
    return resources


def warehouse_url_of(warehouse: Any, settings: Settings | None = None) -> str:
    """The URL of a bound warehouse resource (a `dg.EnvVar` is read; unset: the settings')."""
    url = getattr(warehouse, "url", None)
    if isinstance(url, dg.EnvVar):
        url = url.get_value()
    return url or (settings or current()).warehouse_url or default_warehouse_url()

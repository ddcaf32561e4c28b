"""The `landing` group: each dlt resource of a landing source is a Dagster asset.

Built only for the sources `RESCUE_SOURCES` names (`pipelines.definitions`); with none named,
nothing here is loaded. `@dlt_assets` reads the source's resources for the asset keys
(``dlt_freshdesk_tickets``, ``dlt_freshdesk_companies``); the run builds the real source from the
bound credentials and the pipeline from the bound warehouse, so neither an API key nor a
warehouse password is part of the asset definitions.

A source module (`connectors.landing.SOURCE_MODULES`) provides ``DATASET``, ``SYSTEM``,
``DESCRIPTIONS``, ``definition_source()``, ``explain`` and its account resource (``RESOURCE_KEY``,
``bound_resource()``, whose ``source()`` builds the real dlt source). Each source has a builder
here of a few lines: Dagster finds an asset's resources by its parameters, so the account
resource's parameter is spelled out per source; the run itself is `_land`, shared.

Each asset carries a Dagster freshness policy (`dg.FreshnessPolicy.time_window`): it fails in
the UI when the last landing is older than the default limit of the source the system feeds
(`models.plausibility.Thresholds`: 3 days for a ticketing system, 7 for a CRM). The daily run's
freshness checks read the same age from dlt's ``_dlt_loads`` against the configured limit
(`connectors.freshness.landing_ages`), and a stale landing blocks routing as a stale source does.
"""


from collections.abc import Iterator
from datetime import timedelta
from types import ModuleType
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from connectors.landing import freshdesk, hubspot, jira, salesforce, servicenow, zendesk
from connectors.landing.pipeline import LandingError, explain_failure, landing_pipeline
from connectors.settings import LANDING_SOURCES
from connectors.warehouse import WarehouseResource
from models.plausibility import Thresholds


class _Translator(DagsterDltTranslator):
    """dagster-dlt's keys (``dlt_<source>_<resource>``), with each resource's one-line description
    and the source system among the kinds; no upstream stubs (the API is no asset of ours)."""

    def __init__(self, system: str, descriptions: dict[str, str], max_age_days: float) -> None:
        self.system = system
        self.descriptions = descriptions
        self.freshness = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=max_age_days))

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        return spec.replace_attributes(description=self.descriptions.get(data.resource.name, spec.description),
                                       kinds={*spec.kinds, self.system}, deps=[], freshness_policy=self.freshness)


def _decorator(module: ModuleType, warehouse_url: str) -> Any:
    """`@dlt_assets` for a source module: its resources as assets of the `landing` group."""
    return dlt_assets(
        dlt_source=module.definition_source(),
        dlt_pipeline=landing_pipeline(module.DATASET, warehouse_url, credentials=False),
        name=f"{module.DATASET}_landing",
        group_name="landing",
        dagster_dlt_translator=_Translator(module.SYSTEM, module.DESCRIPTIONS,
                                          Thresholds().max_age_days(LANDING_SOURCES[module.DATASET])),
    )


def _land(module: ModuleType, context: dg.AssetExecutionContext, dlt: DagsterDltResource, account: Any,
          warehouse: WarehouseResource) -> Iterator:
    """One landing run of a source: from its saved cursor into its dataset; any failure is one
    line (the source's own explanation first) and never shows a credential."""
    try:
        source = account.source()
        pipeline = landing_pipeline(module.DATASET, warehouse.get_client().url)
        yield from dlt.run(context=context, dlt_source=source, dlt_pipeline=pipeline)
    except LandingError as exc:
        raise dg.Failure(description=str(exc)) from None
    except Exception as exc:  # dlt's own failure
        raise dg.Failure(description=f"landing {module.DATASET} failed: {explain_failure(exc, module.explain)}") from None


def freshdesk_assets(warehouse_url: str) -> dg.AssetsDefinition:
    """Freshdesk's tickets and companies."""

    @_decorator(freshdesk, warehouse_url)
    def freshdesk_landing(context: dg.AssetExecutionContext, dlt: DagsterDltResource,
                          freshdesk_account: freshdesk.FreshdeskResource, warehouse: WarehouseResource) -> Iterator:
        """Freshdesk tickets updated since the saved cursor, and all companies, into dataset freshdesk."""
        yield from _land(freshdesk, context, dlt, freshdesk_account, warehouse)

    return freshdesk_landing


def zendesk_assets(warehouse_url: str) -> dg.AssetsDefinition:
    """Zendesk's tickets (with their metric sets) and organizations."""

    @_decorator(zendesk, warehouse_url)
    def zendesk_landing(context: dg.AssetExecutionContext, dlt: DagsterDltResource,
                        zendesk_account: zendesk.ZendeskResource, warehouse: WarehouseResource) -> Iterator:
        """Zendesk tickets exported since the saved cursor, and all organizations, into dataset zendesk."""
        yield from _land(zendesk, context, dlt, zendesk_account, warehouse)

    return zendesk_landing


def jira_assets(warehouse_url: str) -> dg.AssetsDefinition:
    """Jira Service Management's issues and organizations."""

    @_decorator(jira, warehouse_url)
    def jira_landing(context: dg.AssetExecutionContext, dlt: DagsterDltResource, jira_site: jira.JiraResource,
                     warehouse: WarehouseResource) -> Iterator:
        """Jira issues updated since the saved cursor, and all organizations, into dataset jira."""
        yield from _land(jira, context, dlt, jira_site, warehouse)

    return jira_landing


def servicenow_assets(warehouse_url: str) -> dg.AssetsDefinition:
    """ServiceNow's incidents, cases, assignment groups and customer accounts."""

    @_decorator(servicenow, warehouse_url)
    def servicenow_landing(context: dg.AssetExecutionContext, dlt: DagsterDltResource,
                           servicenow_instance: servicenow.ServiceNowResource, warehouse: WarehouseResource) -> Iterator:
        """ServiceNow incidents and cases updated since the saved cursor, and all groups and accounts, into dataset servicenow."""
        yield from _land(servicenow, context, dlt, servicenow_instance, warehouse)

    return servicenow_landing


def salesforce_assets(warehouse_url: str) -> dg.AssetsDefinition:
    """Salesforce's Accounts and Opportunities."""

    @_decorator(salesforce, warehouse_url)
    def salesforce_landing(context: dg.AssetExecutionContext, dlt: DagsterDltResource,
                           salesforce_account: salesforce.SalesforceLanding, warehouse: WarehouseResource) -> Iterator:
        """Salesforce Accounts and Opportunities changed since the saved cursor, into dataset salesforce."""
        yield from _land(salesforce, context, dlt, salesforce_account, warehouse)

    return salesforce_landing


def hubspot_assets(warehouse_url: str) -> dg.AssetsDefinition:
    """HubSpot's companies and deals."""

    @_decorator(hubspot, warehouse_url)
    def hubspot_landing(context: dg.AssetExecutionContext, dlt: DagsterDltResource,
                        hubspot_account: hubspot.HubSpotResource, warehouse: WarehouseResource) -> Iterator:
        """HubSpot companies and deals changed since the saved cursor, into dataset hubspot."""
        yield from _land(hubspot, context, dlt, hubspot_account, warehouse)

    return hubspot_landing


#: Each landing source's asset builder, by the name `RESCUE_SOURCES` uses.
BUILDERS = {"freshdesk": freshdesk_assets, "zendesk": zendesk_assets, "jira": jira_assets,
            "servicenow": servicenow_assets, "salesforce": salesforce_assets, "hubspot": hubspot_assets}


def landed_mapping_asset(sources: tuple[str, ...], landed: list[dg.AssetsDefinition]) -> dg.AssetsDefinition:
    """The landed systems' tables through their default mappings (under `RESCUE_MAPPING`, the
    company's, when set) into the canonical raw tables the daily job reads: `rescue data load`
    as the last step of `landing_job`."""
    deps = [key for assets in landed for key in assets.keys]

    @dg.asset(name="landed_mapping", group_name="landing", deps=deps, kinds={"sql"},
              description=f"The landed {', '.join(sources)} through their default mappings into the canonical tables")
    def landed_mapping(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        from connectors.mapping.compose import compose_mapping
        from connectors.mapping.land import LandError, land_mapping
        from connectors.mapping.loader import MappingError
        from connectors.settings import current

        try:
            loaded = compose_mapping(sources, current().mapping or None)
            landed = land_mapping(loaded, warehouse.get_client(), progress=context.log.info)
        except MappingError as exc:
            raise dg.Failure(description="; ".join(exc.lines())) from None
        except LandError as exc:
            raise dg.Failure(description=str(exc)) from None
        warnings = [p.line() for p in landed.report.warnings]
        return dg.MaterializeResult(metadata={
            "mapping": dg.MetadataValue.text(str(loaded.path)),
            "mapping_hash": loaded.content_hash[:12],
            **{f"rows_{table}": dg.MetadataValue.int(rows) for table, rows in landed.tables.items()},
            "data_end": dg.MetadataValue.text(f"{landed.data_end:%Y-%m-%d}"),
            **({"warnings": dg.MetadataValue.text("; ".join(warnings))} if warnings else {}),
        })

    return landed_mapping


def landing_assets(sources: tuple[str, ...], warehouse_url: str) -> list[dg.AssetsDefinition]:
    """The assets of the named landing sources (`connectors.settings.landing_sources`), and the
    asset that maps what they landed into the canonical tables."""
    landed = [BUILDERS[name](warehouse_url) for name in sources]
    return [*landed, landed_mapping_asset(sources, landed)]

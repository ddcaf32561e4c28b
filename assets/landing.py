"""The `landing` group: each dlt resource of a landing source is a Dagster asset.

Built only for the sources `RESCUE_SOURCES` names (`pipelines.definitions`); with none named,
nothing here is loaded. `@dlt_assets` reads the source's resources for the asset keys
(``dlt_freshdesk_tickets``, ``dlt_freshdesk_companies``); the run builds the real source from the
bound credentials and the pipeline from the bound warehouse, so neither the API key nor a
warehouse password is part of the asset definitions.
"""


from collections.abc import Iterator

import dagster as dg
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from connectors.landing import freshdesk
from connectors.landing.pipeline import LandingError, explain_failure, landing_pipeline
from connectors.warehouse import WarehouseResource

#: A stand-in credential: the definitions only read the source's resource names from it.
_NOT_A_KEY = "unused-at-definition-time"


class _Translator(DagsterDltTranslator):
    """dagster-dlt's keys (``dlt_<source>_<resource>``), with each resource's one-line description
    and the source system among the kinds; no upstream stubs (the API is no asset of ours)."""

    def __init__(self, system: str, descriptions: dict[str, str]) -> None:
        self.system = system
        self.descriptions = descriptions

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        return spec.replace_attributes(description=self.descriptions.get(data.resource.name, spec.description),
                                       kinds={*spec.kinds, self.system}, deps=[])


def freshdesk_assets(warehouse_url: str) -> dg.AssetsDefinition:
    """Freshdesk's tickets and companies as assets of the `landing` group."""

    @dlt_assets(
        dlt_source=freshdesk.freshdesk_source("example", _NOT_A_KEY),
        dlt_pipeline=landing_pipeline(freshdesk.DATASET, warehouse_url, credentials=False),
        name="freshdesk_landing",
        group_name="landing",
        dagster_dlt_translator=_Translator("freshdesk", freshdesk.DESCRIPTIONS),
    )
    def freshdesk_landing(context: dg.AssetExecutionContext, dlt: DagsterDltResource,
                          freshdesk_account: freshdesk.FreshdeskResource, warehouse: WarehouseResource) -> Iterator:
        """Freshdesk tickets updated since the saved cursor, and all companies, into dataset freshdesk."""
        try:
            source = freshdesk_account.source()
            pipeline = landing_pipeline(freshdesk.DATASET, warehouse.get_client().url)
            yield from dlt.run(context=context, dlt_source=source, dlt_pipeline=pipeline)
        except LandingError as exc:
            raise dg.Failure(description=str(exc)) from None
        except Exception as exc:  # dlt's own failure: one line, the source's explanation first
            raise dg.Failure(description=f"landing freshdesk failed: {explain_failure(exc, freshdesk.explain)}") from None

    return freshdesk_landing


def landing_assets(sources: tuple[str, ...], warehouse_url: str) -> list[dg.AssetsDefinition]:
    """The assets of the named landing sources (`connectors.settings.landing_sources`)."""
    builders = {"freshdesk": freshdesk_assets}
    return [builders[name](warehouse_url) for name in sources]

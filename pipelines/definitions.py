"""The Dagster Definitions: assets, checks, jobs, schedules and sensors, built in one place.

Loaded by `dagster dev` / `dagster definitions validate` through `[tool.dagster]` in
pyproject.toml, and by the `rescue` CLI. The module-level `defs` is what another process
rebuilds a job from (the multiprocess, k8s and celery executors: `pipelines.executors`), so it
is built from the `RESCUE_*` variables alone.
"""


import dagster as dg

from assets import features, feedback, model, operations, quality, routing, scoring, sources
from assets.partitions import snapshot_partitions_for, with_snapshot_partitions
from pipelines.executors import for_definitions
from pipelines.jobs import all_jobs, landing_job
from connectors.settings import landing_sources
from pipelines.resources import build_resources, warehouse_url_of
from pipelines.schedules import all_schedules
from pipelines.sensors import all_sensors

ASSET_MODULES = (sources, features, model, scoring, routing, operations, feedback)


def all_assets() -> list:
    """The assets of every asset module, and the external ones they declare as `dg.AssetSpec`
    (`assets.feedback.rescue_actions`), which `load_assets_from_modules` leaves out."""
    specs = [v for m in ASSET_MODULES for v in vars(m).values() if isinstance(v, dg.AssetSpec)]
    return [*(a for m in ASSET_MODULES for a in dg.load_assets_from_modules([m])), *specs]


def all_checks() -> list:
    return [*quality.source_checks, model.churn_model_promotion_gate, scoring.churn_scores_drift]


def build_definitions(resource_overrides: dict | None = None) -> dg.Definitions:
    """The Definitions on the bound resources; the snapshot partitions follow the data in the
    bound warehouse (`assets.partitions`). The executor is `RESCUE_EXECUTOR`'s
    (`pipelines.executors`); with resources bound in code it is in process, since no other
    process could rebuild them."""
    resources = build_resources(resource_overrides)
    partitions = snapshot_partitions_for(resources["warehouse"])
    url = warehouse_url_of(resources["warehouse"])
    executor = for_definitions(None, url, overridden=bool(resource_overrides))
    landing = []
    if sources := landing_sources():
        from assets.landing import landing_assets  # dlt is imported only when a source is named

        landing = landing_assets(sources, url)
    return dg.Definitions(
        assets=[*with_snapshot_partitions(all_assets(), partitions), *landing],
        asset_checks=all_checks(),
        jobs=[*all_jobs, *([landing_job] if landing else [])],
        schedules=all_schedules,
        sensors=all_sensors,
        resources=resources,
        executor=executor,
    )


defs = build_definitions()

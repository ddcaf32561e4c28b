"""The Dagster Definitions: assets, checks, jobs, schedules and sensors, built in one place.

Loaded by `dagster dev` / `dagster definitions validate` through `[tool.dagster]` in
pyproject.toml, and by the `rescue` CLI.
"""


import dagster as dg

from assets import features, feedback, model, operations, quality, routing, scoring, sources
from assets.partitions import snapshot_partitions_for, with_snapshot_partitions
from pipelines.jobs import all_jobs
from pipelines.resources import build_resources
from pipelines.schedules import all_schedules
from pipelines.sensors import all_sensors

ASSET_MODULES = (sources, features, model, scoring, routing, operations, feedback)


def all_assets() -> list:
    return [a for m in ASSET_MODULES for a in dg.load_assets_from_modules([m])]


def all_checks() -> list:
    return [*quality.source_checks, model.churn_model_promotion_gate, scoring.churn_scores_drift]


def build_definitions(resource_overrides: dict | None = None) -> dg.Definitions:
    """The Definitions on the bound resources; the snapshot partitions follow the data in the
    bound warehouse (`assets.partitions`)."""
    resources = build_resources(resource_overrides)
    partitions = snapshot_partitions_for(resources["warehouse"])
    return dg.Definitions(
        assets=with_snapshot_partitions(all_assets(), partitions),
        asset_checks=all_checks(),
        jobs=all_jobs,
        schedules=all_schedules,
        sensors=all_sensors,
        resources=resources,
        executor=dg.in_process_executor,
    )


defs = build_definitions()

"""The executor every job runs on, chosen by `RESCUE_EXECUTOR` (`connectors.settings.executor_choice`).

| `RESCUE_EXECUTOR` | executor | steps run |
|---|---|---|
| `in_process` (default) | `dg.in_process_executor` | one after another, in the run's process |
| `multiprocess` | `dg.multiprocess_executor`, `max_concurrent` = `RESCUE_MAX_CONCURRENCY` (unset: the cores) | each in its own process, independent steps at once |
| `k8s` | `dagster_k8s.k8s_job_executor` (package `dagster-k8s`, extra `k8s`) | each in its own Kubernetes Job |
| `celery` | `dagster_celery.celery_executor` (package `dagster-celery`, extra `celery`) | each as a Celery task on a worker |

Decisions, and why:

- **Out of process needs a warehouse server.** Nearly every step of the daily job opens the
  warehouse (the sources, features, scores, candidates, the queue's context packages, the CRM
  write-back), and a DuckDB file admits one process that writes it: a second process cannot
  even open it for reading while the first holds it. Serializing every warehouse step through a
  pool or a tag limit of one would leave nothing to run in parallel, so an out-of-process executor
  on a DuckDB warehouse is refused when the Definitions load, in one line (`SettingError`), and
  the embedded demo keeps `in_process`. A server warehouse (PostgreSQL, Snowflake, BigQuery) takes
  many connections; a SQLite file serializes its writers with its own lock and is allowed.
- **Steps start from a fork server.** A spawned step process would import the Definitions
  (Dagster, pandas, LightGBM, the warehouse's partitions: 4-6 s), resolve their repository (1 s)
  and, for a source check, Great Expectations (2 s); with `forkserver` that happens once per run,
  in the server (`pipelines.forkserver`), and each step forks from it.
- **Only the Definitions built from the environment leave the process.** Another process
  rebuilds the job from `pipelines.definitions:defs`, that is from the `RESCUE_*` variables, so
  resources bound in code (`build_definitions(overrides)`: tests, the demo's policy copy) would
  not follow it there; those Definitions always run in process (`for_definitions`).
- **The limit is the run's.** `max_concurrent` bounds the steps of one run; how many runs execute
  at once is the instance's `concurrency.runs.max_concurrent_runs` (dagster.yaml).

The k8s and celery executors take their own configuration (images, namespace, broker) from the
run config's `execution: config:` block or, for k8s, from the instance's `K8sRunLauncher`: see
docs/scale_out.md. Every out-of-process executor also needs step outputs on storage every step
can reach: the default filesystem IO manager under the instance's storage directory is that for
`multiprocess` (one machine), not for pods or Celery workers on other machines.
"""

from __future__ import annotations

import importlib
from typing import Any

import dagster as dg
import sqlalchemy as sa

from connectors.settings import Settings, SettingError, current, executor_choice

#: The package and the project's extra behind each executor that is not Dagster's own.
EXTERNAL = {
    "k8s": ("dagster_k8s", "k8s_job_executor", "dagster-k8s", "k8s"),
    "celery": ("dagster_celery", "celery_executor", "dagster-celery", "celery"),
}
#: What the fork server of a multiprocess run imports once, for every step to fork from.
FORKSERVER_PRELOAD = ("dagster._core.executor.multiprocess", "pipelines.forkserver")
#: Warehouse backends a step process cannot open while another one holds them.
SINGLE_PROCESS_WAREHOUSES = ("duckdb",)


def executor_for(settings: Settings | None = None, warehouse_url: str | None = None) -> dg.ExecutorDefinition:
    """The executor `settings` choose (default: the environment's), for a warehouse at
    `warehouse_url`. Raises `SettingError` (one line naming the variable) for an unknown
    executor, a bad concurrency, a missing package, or an out-of-process executor on DuckDB."""
    settings = settings or current()
    name, limit = executor_choice(settings)
    if name == "in_process":
        return dg.in_process_executor
    variable = Settings.env("executor")
    backend = _backend(warehouse_url)
    if backend in SINGLE_PROCESS_WAREHOUSES:
        raise SettingError(
            f"{variable}={name} cannot run on a {backend} warehouse: a DuckDB file admits one process that writes it, "
            f"and every step opens it; keep {variable}=in_process (the default), or point "
            f"{Settings.env('warehouse_url')} at a server (PostgreSQL, Snowflake, BigQuery)")
    if name == "multiprocess":
        return dg.multiprocess_executor.configured(
            {"max_concurrent": limit or 0, "start_method": {"forkserver": {"preload_modules": list(FORKSERVER_PRELOAD)}}},
            name="multiprocess")
    module, attribute, package, extra = EXTERNAL[name]
    try:
        return getattr(importlib.import_module(module), attribute)
    except ImportError:
        raise SettingError(f"{variable}={name} needs the {package} package: "
                           f"pip install 'churn-rescue[{extra}]'") from None


def for_definitions(settings: Settings | None, warehouse_url: str | None, *, overridden: bool) -> dg.ExecutorDefinition:
    """The executor of Definitions built with resources bound in code (`overridden`: always in
    process, see the module docstring) or from the environment (`executor_for`)."""
    if overridden:
        executor_choice(settings or current())  # a bad value is still told, the same way
        return dg.in_process_executor
    return executor_for(settings, warehouse_url)


def runs_out_of_process(executor: Any) -> bool:
    """Whether a job on `executor` runs its steps outside the process that starts it."""
    return getattr(executor, "name", "in_process") != "in_process"


def _backend(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return sa.make_url(url).get_backend_name()
    except sa.exc.ArgumentError:
        return None

"""Resource bindings: which systems the assets talk to.

Every setting comes from an environment variable when it is set (through `dg.EnvVar`, so the
value never appears in the UI or logs) and falls back to the embedded default otherwise:

| variable                 | resource         | embedded default                         |
|--------------------------|------------------|------------------------------------------|
| RESCUE_WAREHOUSE_URL     | warehouse        | DuckDB file $RESCUE_HOME/warehouse.duckdb |
| RESCUE_QUEUE_URL         | queue            | SQLite file $RESCUE_HOME/queue.db         |
| RESCUE_MODEL_DIR         | model_registry   | $RESCUE_HOME/models                       |
| RESCUE_POLICY_PATH       | policy           | policies/default.yaml                     |
| RESCUE_SLACK_WEBHOOK_URL | notifier         | none: Slack messages go to the log        |
| RESCUE_SMTP_HOST / _USER / _PASSWORD | notifier | none: e-mails go to the log         |

To read the CRM from Salesforce or tickets from a Zendesk-style API, bind their connectors
under the `crm` / `ticketing` keys here; no asset changes.
"""


import os
from typing import Any

import dagster as dg

from connectors.model_registry import ModelRegistryResource
from connectors.notify import NotifierResource
from connectors.policy_source import PolicyResource
from connectors.queue_store import QueueStoreResource
from connectors.settings import default_queue_url, default_warehouse_url
from connectors.sources import WarehouseCRM, WarehouseTicketing
from connectors.warehouse import WarehouseResource


def _env_or(name: str, default: Any) -> Any:
    return dg.EnvVar(name) if os.environ.get(name) else default


def build_resources(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The resource dict for Definitions and for `dg.materialize` (tests pass overrides)."""
    warehouse = WarehouseResource(url=_env_or("RESCUE_WAREHOUSE_URL", default_warehouse_url()))
    resources: dict[str, Any] = {
        "warehouse": warehouse,
        "crm": WarehouseCRM(warehouse=warehouse),
        "ticketing": WarehouseTicketing(warehouse=warehouse),
        "queue": QueueStoreResource(url=_env_or("RESCUE_QUEUE_URL", default_queue_url())),
        "model_registry": ModelRegistryResource(path=_env_or("RESCUE_MODEL_DIR", "")),
        "policy": PolicyResource(path=_env_or("RESCUE_POLICY_PATH", "")),
        "notifier": NotifierResource(
            slack_webhook_url=_env_or("RESCUE_SLACK_WEBHOOK_URL", None),
            smtp_host=_env_or("RESCUE_SMTP_HOST", None),
            smtp_user=_env_or("RESCUE_SMTP_USER", None),
            smtp_password=_env_or("RESCUE_SMTP_PASSWORD", None),
        ),
    }
    resources.update(overrides or {})
    return resources

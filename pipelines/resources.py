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
| RESCUE_SF_USERNAME or RESCUE_SF_INSTANCE_URL | crm_writer | warehouse tables crm_tasks, crm_account_health |
| RESCUE_SF_PASSWORD / _SECURITY_TOKEN / _SESSION_ID / _DOMAIN | crm_writer | (Salesforce credentials) |

To read the CRM from Salesforce or tickets from a Zendesk-style API, bind their connectors
under the `crm` / `ticketing` keys here; no asset changes.
"""


import os
from typing import Any

import dagster as dg

from connectors.writeback import CRMWriterResource
from connectors.model_registry import ModelRegistryResource
from connectors.notify import NotifierResource
from connectors.policy_source import PolicyResource
from connectors.queue.resource import QueueStoreResource
from connectors.settings import default_queue_url, default_warehouse_url
from connectors.sources import WarehouseCRM, WarehouseTicketing
from connectors.warehouse import WarehouseResource


def _env_or(name: str, default: Any) -> Any:
    return dg.EnvVar(name) if os.environ.get(name) else default


def crm_writer_resource(warehouse: WarehouseResource) -> CRMWriterResource:
    """Salesforce when RESCUE_SF_USERNAME or RESCUE_SF_INSTANCE_URL is set, else the demo CRM."""
    if not (os.environ.get("RESCUE_SF_USERNAME") or os.environ.get("RESCUE_SF_INSTANCE_URL")):
        return CRMWriterResource(warehouse=warehouse)
    return CRMWriterResource(
        warehouse=warehouse,
        target="salesforce",
        salesforce_username=_env_or("RESCUE_SF_USERNAME", ""),
        salesforce_password=_env_or("RESCUE_SF_PASSWORD", ""),
        salesforce_security_token=_env_or("RESCUE_SF_SECURITY_TOKEN", ""),
        salesforce_instance_url=_env_or("RESCUE_SF_INSTANCE_URL", ""),
        salesforce_session_id=_env_or("RESCUE_SF_SESSION_ID", ""),
        salesforce_domain=_env_or("RESCUE_SF_DOMAIN", "login"),
    )


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
    # the CRM write-back follows the warehouse actually bound (tests bind a temporary one)
    resources.setdefault("crm_writer", crm_writer_resource(resources["warehouse"]))
    return resources

"""Running the source assets and their checks as Dagster runs them, on tables a test lands in a
fresh warehouse, with one stand-in asset downstream of every source (it runs only when every
blocking check passed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from assets.quality import SourceChecksResource, source_checks
from assets.sources import crm_account_history, crm_accounts, crm_renewals, product_usage_daily, support_tickets
from connectors.sources import RAW_TABLES, WarehouseCRM, WarehouseTicketing
from connectors.warehouse import RAW_EVENTS_TABLE, Warehouse, WarehouseResource

#: The run's instant of the company history's runs (`tests.factories.company_history`).
RUN_AT = "2024-06-03T06:00:00+00:00"


def raw_events(accounts: pd.DataFrame, end: pd.Timestamp, days: int = 3, *, skip: set[str] = frozenset()) -> pd.DataFrame:
    """Product events of every account but `skip`, on each of the `days` days before `end`."""
    start = pd.Timestamp(end).normalize() - pd.Timedelta(days=days)
    return pd.DataFrame([{"account_id": a, "user_id": f"{a}-u1", "occurred_at": start + pd.Timedelta(days=d, hours=9),
                          "feature": "core", "quantity": 3}
                         for a in accounts["account_id"] if a not in skip for d in range(days)])


def company_sources(tables: dict[str, pd.DataFrame], end: str = RUN_AT, days: int = 3) -> dict[str, pd.DataFrame]:
    """The company history as its raw exports: CRM, tickets, and product events of the accounts
    still customers in the `days` days before `end`."""
    renewals = tables["renewals"]
    gone = set(renewals.loc[(renewals["outcome"] == "churned")
                            & (renewals["renewal_date"] < pd.Timestamp(end).tz_localize(None)), "account_id"])
    return {"accounts": tables["accounts"], "renewals": renewals, "tickets": tables["tickets"],
            "events": raw_events(tables["accounts"], pd.Timestamp(end).tz_localize(None), days, skip=gone)}


@dataclass
class SourceRun:
    result: Any
    evals: dict[str, Any]
    ran: list[str]
    events: list[Any] = field(default_factory=list)

    def failed(self) -> list[str]:
        return [name for name, c in self.evals.items() if not c.passed]

    def summary(self, check: str) -> str:
        return self.evals[check].metadata["summary"].value


def run_sources(tmp_path: Path, tables: dict[str, pd.DataFrame], *, tags: dict[str, str] | None = None,
                checks: SourceChecksResource | None = None, extra: dict[str, pd.DataFrame] | None = None) -> SourceRun:
    """Land `tables` (accounts, renewals, tickets, events, optionally account_history; `extra`:
    any other table by name) and run the source assets with every source check."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    warehouse = Warehouse(url)
    for name in ("accounts", "renewals", "tickets", "account_history"):
        if name in tables:  # the account history is optional
            warehouse.write_table(RAW_TABLES[name], tables[name])
    warehouse.write_table(RAW_EVENTS_TABLE, tables["events"])
    for name, frame in (extra or {}).items():
        warehouse.write_table(name, frame)
    ran: list[str] = []

    @dg.asset(deps=[crm_accounts, crm_renewals, crm_account_history, support_tickets, product_usage_daily])
    def downstream_of_sources() -> None:
        """Stands for features, scores and routing: it runs only after every source check passed."""
        ran.append("downstream_of_sources")

    resource = WarehouseResource(url=url)
    defs = dg.Definitions(
        assets=[crm_accounts, crm_renewals, crm_account_history, support_tickets, product_usage_daily,
                downstream_of_sources],
        asset_checks=source_checks,
        jobs=[dg.define_asset_job("sources_job", selection=dg.AssetSelection.all())],
        resources={"warehouse": resource, "crm": WarehouseCRM(warehouse=resource),
                   "ticketing": WarehouseTicketing(warehouse=resource),
                   "source_checks": checks or SourceChecksResource()},
    )
    result = defs.resolve_job_def("sources_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, tags=tags or {})
    evals = {e.event_specific_data.check_name: e.event_specific_data for e in result.all_events
             if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    return SourceRun(result, evals, ran, list(result.all_events))

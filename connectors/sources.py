"""The source interface: where accounts, renewals and tickets come from.

The source assets depend only on these two resource interfaces, never on a concrete system:

- `CRMSource`: ``accounts()`` and ``renewals()`` in the canonical contracts, and optionally
  ``account_history()`` (account attributes as they changed; None when the CRM provides none);
- `TicketingSource`: ``tickets(since=None)`` in the canonical contract (``since``: the daily
  run's ticket window, which a source may push down; `assets.sources.ticket_window`).

The embedded defaults (`WarehouseCRM`, `WarehouseTicketing`) read the raw tables that the demo
world (or an ELT tool such as Fivetran/Airbyte, or the landing sources of `connectors.landing`
and their default mappings) lands in the warehouse. Another system plugs in by subclassing the
interface and being bound under the same resource key in `pipelines/resources.py` (Salesforce's
CRM reader does); no asset changes.

Frames are returned *leniently conformed* (see `models.contracts.conform`): types are coerced
where possible and problems are left for the blocking quality checks to count and report.
"""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import pandas as pd
from pydantic import Field

from connectors.settings import Settings
from connectors.warehouse import WarehouseResource
from models.contracts import ACCOUNT_HISTORY, ACCOUNTS, RENEWALS, TICKETS, TableContract, conform

RAW_TABLES = {
    "accounts": "raw_crm_accounts",
    "renewals": "raw_crm_renewals",
    "tickets": "raw_support_tickets",
    "account_history": "raw_crm_account_history",  # optional: absent means none landed
}


class SourceError(RuntimeError):
    """A source system could not be read (unreachable, missing table, API error)."""


class CRMSource(dg.ConfigurableResource):
    """Interface: a CRM that provides accounts and renewal opportunities."""

    def accounts(self) -> pd.DataFrame:  # pragma: no cover - interface
        raise NotImplementedError

    def renewals(self) -> pd.DataFrame:  # pragma: no cover - interface
        raise NotImplementedError

    def account_history(self) -> pd.DataFrame | None:
        """Account attributes as they changed (`models.contracts.ACCOUNT_HISTORY`), or None when
        this CRM provides no history: features then assume the attributes constant."""
        return None


class TicketingSource(dg.ConfigurableResource):
    """Interface: a ticketing system that provides support tickets."""

    def tickets(self, since: datetime | None = None) -> pd.DataFrame:  # pragma: no cover - interface
        """The tickets in the tickets contract. With ``since``, a source may leave out tickets
        created and solved before it (`models.churn.tickets.relevant_tickets`, which the caller
        applies anyway): only an optimisation, never a filter of other rows."""
        raise NotImplementedError


def _read_raw(warehouse: WarehouseResource, table: str, contract: TableContract) -> pd.DataFrame:
    client = warehouse.get_client()
    if not client.table_exists(table):
        raise SourceError(
            f"table {table!r} not found in the warehouse; run `rescue demo generate` for the "
            f"embedded demo world, or point {Settings.env('warehouse_url')} at a warehouse that has it"
        )
    return conform(client.read_sql(f"SELECT * FROM {table}"), contract, lenient=True)


class WarehouseCRM(CRMSource):
    """CRM data already landed in the warehouse (the embedded default)."""

    warehouse: WarehouseResource
    accounts_table: str = Field(default=RAW_TABLES["accounts"], description="Raw accounts table.")
    renewals_table: str = Field(default=RAW_TABLES["renewals"], description="Raw renewals table.")
    account_history_table: str = Field(
        default=RAW_TABLES["account_history"],
        description="Raw account history table; optional (absent: no history, attributes assumed constant).",
    )

    def accounts(self) -> pd.DataFrame:
        return _read_raw(self.warehouse, self.accounts_table, ACCOUNTS)

    def renewals(self) -> pd.DataFrame:
        return _read_raw(self.warehouse, self.renewals_table, RENEWALS)

    def account_history(self) -> pd.DataFrame | None:
        if not self.warehouse.get_client().table_exists(self.account_history_table):
            return None
        return _read_raw(self.warehouse, self.account_history_table, ACCOUNT_HISTORY)


class WarehouseTicketing(TicketingSource):
    """Tickets already landed in the warehouse (the embedded default)."""

    warehouse: WarehouseResource
    tickets_table: str = Field(default=RAW_TABLES["tickets"], description="Raw tickets table.")

    def tickets(self, since: datetime | None = None) -> pd.DataFrame:
        if since is not None and self.warehouse.get_client().table_exists(self.tickets_table):
            # the window filtered where the tickets are (a third of a million accounts' rows)
            recent = self.warehouse.get_client().read_recent(self.tickets_table, ("created_at", "solved_at"), since)
            if recent is not None:
                return conform(recent, TICKETS, lenient=True)
        return _read_raw(self.warehouse, self.tickets_table, TICKETS)

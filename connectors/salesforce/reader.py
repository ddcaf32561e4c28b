"""Salesforce in: Accounts and renewal Opportunities in the canonical contracts.

- `pull_accounts` / `pull_renewals`: one pull through a `SalesforceClient`, mapped through a
  field map (canonical column -> Salesforce field) and conformed leniently to the ``accounts`` /
  ``renewals`` contracts.
- `SalesforceCRM`: the `CRMSource` resource. Its **field map is config**, so an org that keeps
  ARR in ``ARR__c`` or the CSM in a custom lookup maps it without code.

Incremental pulls: ``pull_accounts(client, since=watermark)`` returns the changed rows and the
new watermark (the greatest ``SystemModstamp`` seen); the caller persists it. SOQL datetime
literals have whole seconds, so the next pull may return a record changed in the watermark's own
second again: pulls are at-least-once, and callers merge on the primary key.

Renewal outcome: a closed and won Opportunity is ``renewed``, closed and lost is ``churned``,
anything still open is ``open`` (``IsClosed`` / ``IsWon``, which follow the org's stage
definitions, so custom stage names need no mapping).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple

import pandas as pd
from pydantic import Field, PrivateAttr
from simple_salesforce.format import format_soql

from connectors.salesforce.client import SalesforceClient, SalesforceConnection
from connectors.sources import CRMSource
from models.contracts import ACCOUNTS, RENEWALS, SEGMENTS, conform

#: Canonical accounts column -> Salesforce Account field. Dotted names follow a parent
#: relationship (``Owner.Name``). Standard fields where Salesforce has one; ``Segment__c``,
#: ``Plan__c`` and ``Seats__c`` are the custom fields most orgs add for these (map them to your
#: org's names, e.g. ``{"arr": "ARR__c"}``). An empty string drops the column.
DEFAULT_ACCOUNT_FIELDS: dict[str, str] = {
    "account_id": "Id",
    "name": "Name",
    "segment": "Segment__c",
    "industry": "Industry",
    "region": "BillingCountry",
    "arr": "AnnualRevenue",
    "plan": "Plan__c",
    "seats": "Seats__c",
    "csm_owner": "Owner.Name",
    "created_at": "CreatedDate",
}

#: Canonical renewals column -> Salesforce Opportunity field. ``closed_at`` is kept only for
#: closed opportunities; ``outcome`` is derived from IsClosed / IsWon (see the module docs).
DEFAULT_RENEWAL_FIELDS: dict[str, str] = {
    "renewal_id": "Id",
    "account_id": "AccountId",
    "renewal_date": "CloseDate",
    "amount": "Amount",
    "stage": "StageName",
    "closed_at": "CloseDate",
}


class IncrementalPull(NamedTuple):
    """Rows changed since the previous watermark, and the watermark to persist for the next pull
    (the greatest SystemModstamp seen, or the previous watermark when nothing changed)."""

    frame: pd.DataFrame
    watermark: datetime | None


def _value_at(record: Mapping[str, Any], path: str) -> Any:
    """A record's value at a field path: ``"Owner.Name"`` walks the parent relationship in REST
    JSON; Bulk 2.0 CSV rows carry the dotted header as is."""
    if path in record:
        return record[path]
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def _parse_modstamp(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def normalize_segment(value: Any, overrides: Mapping[str, str]) -> Any:
    """A segment picklist value in canonical form: the configured mapping first, then
    ``"Mid-Market"`` -> ``"mid_market"``. Unknown values pass through for the checks to name."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    if text in overrides:
        return overrides[text]
    canonical = text.lower().replace("-", "_").replace(" ", "_")
    return canonical if canonical in SEGMENTS else text


def renewal_outcome(is_closed: Any, is_won: Any) -> str:
    """Closed Won -> renewed, Closed Lost -> churned, not closed -> open."""
    if not _as_bool(is_closed):
        return "open"
    return "renewed" if _as_bool(is_won) else "churned"


def pull_accounts(client: SalesforceClient, since: datetime | None = None, *,
                  field_map: Mapping[str, str] | None = None,
                  segment_values: Mapping[str, str] | None = None) -> IncrementalPull:
    """Accounts changed after `since` (all when None) in the ``accounts`` contract."""
    mapping = _active(field_map if field_map is not None else DEFAULT_ACCOUNT_FIELDS)
    records = client.select("Account", [*mapping.values(), "SystemModstamp"], _since_clause(since))
    frame = _mapped_frame(records, mapping)
    if "segment" in frame:
        overrides = dict(segment_values or {})
        frame["segment"] = frame["segment"].map(lambda v: normalize_segment(v, overrides))
    return IncrementalPull(conform(frame, ACCOUNTS, lenient=True), _max_modstamp(records, since))


def pull_renewals(client: SalesforceClient, since: datetime | None = None, *,
                  field_map: Mapping[str, str] | None = None, renewal_filter: str = "") -> IncrementalPull:
    """Renewal Opportunities changed after `since` in the ``renewals`` contract."""
    mapping = _active(field_map if field_map is not None else DEFAULT_RENEWAL_FIELDS)
    where = " AND ".join(c for c in (f"({renewal_filter})" if renewal_filter else "", _since_clause(since)) if c)
    records = client.select("Opportunity", [*mapping.values(), "IsClosed", "IsWon", "SystemModstamp"], where)
    frame = _mapped_frame(records, mapping)
    closed = pd.Series([_as_bool(r.get("IsClosed")) for r in records], index=frame.index, dtype=bool)
    frame["outcome"] = [renewal_outcome(r.get("IsClosed"), r.get("IsWon")) for r in records]
    if "closed_at" in frame:
        frame["closed_at"] = frame["closed_at"].where(closed, None)
    return IncrementalPull(conform(frame, RENEWALS, lenient=True), _max_modstamp(records, since))


def _active(mapping: Mapping[str, str]) -> dict[str, str]:
    return {canonical: sf_field for canonical, sf_field in mapping.items() if sf_field}


def _since_clause(since: datetime | None) -> str:
    if since is None:
        return ""
    aware = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
    return format_soql("SystemModstamp > {}", aware)


def _mapped_frame(records: Sequence[Mapping[str, Any]], mapping: Mapping[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {canonical: [_value_at(r, sf_field) for r in records] for canonical, sf_field in mapping.items()},
        index=pd.RangeIndex(len(records)),
    )


def _max_modstamp(records: Sequence[Mapping[str, Any]], since: datetime | None) -> datetime | None:
    stamps = [s for s in (_parse_modstamp(r.get("SystemModstamp")) for r in records) if s is not None]
    if since is not None:
        stamps.append(since if since.tzinfo else since.replace(tzinfo=timezone.utc))
    return max(stamps) if stamps else None


class SalesforceCRM(CRMSource):
    """Accounts and renewal Opportunities from Salesforce, in the canonical contracts.

    ``account_fields`` / ``renewal_fields`` override entries of `DEFAULT_ACCOUNT_FIELDS` /
    `DEFAULT_RENEWAL_FIELDS` (canonical column -> Salesforce field; ``""`` drops a column), so
    ``{"arr": "ARR__c", "csm_owner": "CSM__r.Name"}`` is all an org with custom fields needs.
    ``renewal_filter`` is the SOQL condition that picks renewal opportunities.
    """

    connection: SalesforceConnection
    account_fields: dict[str, str] = Field(default_factory=dict, description="Overrides of the account field map.")
    renewal_fields: dict[str, str] = Field(default_factory=dict, description="Overrides of the renewal field map.")
    segment_values: dict[str, str] = Field(
        default_factory=dict, description="Segment picklist value -> enterprise / mid_market / smb.")
    renewal_filter: str = Field(default="Type = 'Renewal'", description="SOQL condition selecting renewals.")

    def account_field_map(self) -> dict[str, str]:
        _check_columns(self.account_fields, ACCOUNTS.column_names, "account_fields")
        return {**DEFAULT_ACCOUNT_FIELDS, **self.account_fields}

    def renewal_field_map(self) -> dict[str, str]:
        _check_columns(self.renewal_fields, [c for c in RENEWALS.column_names if c != "outcome"], "renewal_fields")
        return {**DEFAULT_RENEWAL_FIELDS, **self.renewal_fields}

    _client: SalesforceClient | None = PrivateAttr(default=None)

    def get_client(self) -> SalesforceClient:
        """One logged-in client per resource instance (accounts and renewals share the session)."""
        if self._client is None:
            self._client = self.connection.build_client()
        return self._client

    def accounts(self) -> pd.DataFrame:
        return self.pull_accounts(self.get_client()).frame

    def renewals(self) -> pd.DataFrame:
        return self.pull_renewals(self.get_client()).frame

    def pull_accounts(self, client: SalesforceClient, since: datetime | None = None) -> IncrementalPull:
        return pull_accounts(client, since, field_map=self.account_field_map(),
                             segment_values=self.segment_values)

    def pull_renewals(self, client: SalesforceClient, since: datetime | None = None) -> IncrementalPull:
        return pull_renewals(client, since, field_map=self.renewal_field_map(),
                             renewal_filter=self.renewal_filter)


def _check_columns(overrides: Mapping[str, str], allowed: Sequence[str], name: str) -> None:
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(f"{name}: unknown canonical column(s) {', '.join(unknown)}; "
                         f"expected some of {', '.join(allowed)}")

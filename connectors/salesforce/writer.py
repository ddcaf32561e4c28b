"""Salesforce out: rescue Tasks and account health fields, by upsert on external ids.

`SalesforceWriter` is the write-back resource. A routed case becomes a Task upserted on
``Rescue_Key__c`` and assigned to the owner's Salesforce user; health score, churn risk, rescue
status and top reason are written to the Account by upsert on an external id. Because every
write is an upsert on a key derived from the product's own ids, a retried or replayed write
updates the record it created the first time instead of creating a second one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field, PrivateAttr

from connectors.salesforce.client import BatchResult, SalesforceClient, SalesforceConnection, UpsertResult

#: Canonical account write-back field -> Salesforce Account field (custom fields to create).
DEFAULT_ACCOUNT_WRITE_FIELDS: dict[str, str] = {
    "health_score": "Health_Score__c",
    "churn_risk": "Churn_Risk__c",
    "rescue_status": "Rescue_Status__c",
    "top_reason": "Rescue_Top_Reason__c",
}

#: Largest number of characters Salesforce keeps in a text(255) field.
TEXT_FIELD_MAX = 255


class SalesforceWriter(dg.ConfigurableResource):
    """Writes rescue work back to Salesforce by upsert on external ids.

    - ``upsert_task(external_id, fields, owner=...)``: a Task keyed by ``task_key_field``
      (``Rescue_Key__c``, a unique External ID text field), assigned to the owner's user;
    - ``upsert_account_fields(rows)``: health score, churn risk, rescue status and top reason
      on the Account keyed by ``account_key_field``. Use ``Id`` when the product's account ids
      are Salesforce ids (an unknown id then fails instead of creating an Account); otherwise
      an External ID field that holds the product's account id on every Account.
    """

    connection: SalesforceConnection
    task_key_field: str = Field(default="Rescue_Key__c", description="External id field on Task.")
    account_key_field: str = Field(default="Rescue_Account_Key__c", description="External id field on Account.")
    account_write_fields: dict[str, str] = Field(
        default_factory=dict, description="Overrides of canonical -> Account field for write-back.")

    _client: SalesforceClient | None = PrivateAttr(default=None)

    def get_client(self) -> SalesforceClient:
        """One client per resource instance, so the owner -> User Id cache lives across writes."""
        if self._client is None:
            self._client = self.connection.build_client()
        return self._client

    def use_client(self, client: SalesforceClient) -> SalesforceWriter:
        """Use an existing client (shares its session, retry policy and user cache)."""
        self._client = client
        return self

    def write_field_map(self) -> dict[str, str]:
        unknown = sorted(set(self.account_write_fields) - set(DEFAULT_ACCOUNT_WRITE_FIELDS))
        if unknown:
            raise ValueError(f"account_write_fields: unknown field(s) {', '.join(unknown)}; expected some of "
                             f"{', '.join(DEFAULT_ACCOUNT_WRITE_FIELDS)}")
        return {**DEFAULT_ACCOUNT_WRITE_FIELDS, **self.account_write_fields}

    def upsert_task(self, external_id: str, fields: Mapping[str, Any], *, owner: str | None = None) -> UpsertResult:
        """Create or update the Task keyed `external_id`. `fields` are Task fields (Subject,
        Description, ActivityDate, Priority, Status, WhatId, ...). With `owner`, the Task is
        assigned to that user (OwnerId) when exactly one active user matches."""
        client = self.get_client()
        body = dict(fields)
        owner_id = client.user_id(owner) if owner else None
        if owner_id:
            body["OwnerId"] = owner_id
        result = client.upsert("Task", self.task_key_field, external_id, body)
        return UpsertResult(external_id=result.external_id, created=result.created,
                            record_id=result.record_id, owner_id=owner_id)

    def upsert_account_fields(self, rows: list[dict[str, Any]]) -> BatchResult:
        """Write health fields to Accounts. Each row has ``account_id`` and any of
        health_score, churn_risk, rescue_status, top_reason. Bulk API 2.0 above the threshold."""
        mapping = self.write_field_map()
        payload: dict[str, dict[str, Any]] = {}
        for i, row in enumerate(rows):
            account_id = row.get("account_id")
            if not account_id:
                raise ValueError(f"upsert_account_fields: row {i} has no account_id")
            unknown = sorted(set(row) - set(mapping) - {"account_id"})
            if unknown:
                raise ValueError(f"upsert_account_fields: row {i} ({account_id}) has unknown field(s) "
                                 f"{', '.join(unknown)}; expected some of {', '.join(mapping)}")
            values = {mapping[k]: v for k, v in row.items() if k != "account_id"}
            if mapping["top_reason"] in values and isinstance(values[mapping["top_reason"]], str):
                values[mapping["top_reason"]] = values[mapping["top_reason"]][:TEXT_FIELD_MAX]
            payload[str(account_id)] = values
        return self.get_client().upsert_many("Account", self.account_key_field, payload)

    def task_fields(self, case: Mapping[str, Any]) -> dict[str, Any]:
        """Task fields for a rescue case (a queue case or its outbox payload): subject with the
        priority and account, the reason and top drivers in the description, due date from the
        first-touch SLA, and the link to the Account (WhatId, or the Account's external id)."""
        priority = str(case.get("priority") or "")
        name = case.get("account_name") or case.get("account_id")
        lines = [f"Churn rescue case {case.get('case_id', '')} for {name}."]
        for label, key in (("Reason", "reason"), ("Play", "play"), ("Outcome", "outcome"), ("Note", "note")):
            if case.get(key):
                lines.append(f"{label}: {case[key]}")
        if isinstance(case.get("churn_risk"), (int, float)):
            lines.append(f"Churn risk: {case['churn_risk']:.0%}")
        fields: dict[str, Any] = {
            "Subject": f"Churn rescue {priority}: {name}".replace("  ", " ")[:TEXT_FIELD_MAX],
            "Description": "\n".join(lines),
            "Priority": "High" if priority in ("P1", "P2") else "Normal",
            "Status": "Completed" if case.get("outcome") else "Not Started",
        }
        due = case.get("sla_first_touch_due")
        if due:
            fields["ActivityDate"] = pd.Timestamp(due).date().isoformat()
        account_id = case.get("account_id")
        if account_id:
            if self.account_key_field == "Id":
                fields["WhatId"] = account_id
            else:
                fields["What"] = {"attributes": {"type": "Account"}, self.account_key_field: account_id}
        return fields

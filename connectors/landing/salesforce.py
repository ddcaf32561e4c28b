"""Salesforce Accounts and Opportunities, landed with dlt over the project's Salesforce client.

What it pulls (REST API and Bulk API 2.0, https://developer.salesforce.com/docs/apis):

- ``accounts``: ``SELECT <ACCOUNT_FIELDS> FROM Account WHERE SystemModstamp >= <cursor>
  ORDER BY SystemModstamp``, merged on ``Id``;
- ``opportunities``: the same on Opportunity (``OPPORTUNITY_FIELDS``: ``CloseDate``, ``Amount``,
  ``StageName``, ``IsClosed``, ``IsWon``, ``Type`` ...), all of them unless
  ``RESCUE_SF_OPPORTUNITY_FILTER`` holds a SOQL condition. Which opportunities are renewals is
  the default mapping's ``where:`` (``Type = 'Renewal'``), so an org that marks renewals
  otherwise edits its mapping and lands nothing again.

Each resource is a ``@dlt.resource`` with ``dlt.sources.incremental`` on ``SystemModstamp``: dlt
keeps the greatest one seen in the dataset's state, and the next pull asks for the records
changed at or after it (SOQL datetime literals have whole seconds: the cursor's own second is read
again, and dlt drops the rows it already loaded at the cursor; the rest merge on ``Id``).
``RESCUE_SF_ACCOUNT_FIELDS`` / ``RESCUE_SF_OPPORTUNITY_FIELDS`` add an org's own fields
(``ARR__c``, ``Segment__c``) to the standard ones.

Small or large pulls: a ``SELECT COUNT()`` with the same condition comes first. Up to
``RESCUE_SF_BULK_THRESHOLD`` rows (default 10,000) the query is REST (``/query`` and its
``nextRecordsUrl`` pages); above it a Bulk API 2.0 query job (simple-salesforce's
``sf.bulk2.<Object>.query``: create the job, poll it until ``JobComplete``, read its CSV result
pages by ``Sforce-Locator``). Bulk results are text; the declared column types below make dlt land
both paths alike. A Bulk job's result pages are downloaded to a temporary directory
(simple-salesforce's ``download``, streamed) and read row by row, so a first pull of a million
Accounts holds no more in memory than a small one; the whole job is the client's unit of retry.

Deleted records are not seen (``/query`` and Bulk ``query`` leave out the recycle bin): a record
deleted in Salesforce stays in the landed table as it last was.

The connection, login, re-login and retries are `connectors.salesforce.client.SalesforceClient`'s,
the same the reader and the write-back use (`SalesforceLanding` is a `SalesforceConnection`):
simple-salesforce itself does not retry, and the client wraps every call in the project's one
retry policy (`connectors.http_retry`, on tenacity): 429 and 503 wait what ``Retry-After`` says,
other 5xx and timeouts back off exponentially, anything else fails at once. A refused login ends
in one line naming ``RESCUE_SF_USERNAME``, ``RESCUE_SF_PASSWORD`` and ``RESCUE_SF_SECURITY_TOKEN``
(`explain`), never their values.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import dlt
from dlt.extract.source import DltSource
from pydantic import Field

from connectors.http_retry import RetryExhaustedError
from connectors.landing.pipeline import LandingError
from connectors.salesforce.client import SalesforceAPIError, SalesforceClient, SalesforceConnection
from connectors.settings import SalesforceSettings, salesforce_bulk_threshold

#: The dataset (schema) the tables land in, and the dlt source's name.
DATASET = "salesforce"
#: The system's name among the assets' kinds, and the key of its account resource.
SYSTEM = "salesforce"
RESOURCE_KEY = "salesforce_account"
#: The cursor of a first pull (every record).
INITIAL_MODSTAMP = datetime(2000, 1, 1, tzinfo=timezone.utc)

#: Standard fields landed (present in every org), with the types they land as.
ACCOUNT_COLUMNS: dict[str, dict[str, Any]] = {
    "Id": {"data_type": "text", "nullable": False},
    "Name": {"data_type": "text", "nullable": True},
    "Type": {"data_type": "text", "nullable": True},
    "Industry": {"data_type": "text", "nullable": True},
    "BillingCountry": {"data_type": "text", "nullable": True},
    "AnnualRevenue": {"data_type": "double", "nullable": True},
    "NumberOfEmployees": {"data_type": "bigint", "nullable": True},
    "OwnerId": {"data_type": "text", "nullable": True},
    "CreatedDate": {"data_type": "timestamp", "nullable": True},
    "SystemModstamp": {"data_type": "timestamp", "nullable": False},
}
OPPORTUNITY_COLUMNS: dict[str, dict[str, Any]] = {
    "Id": {"data_type": "text", "nullable": False},
    "AccountId": {"data_type": "text", "nullable": True},
    "Name": {"data_type": "text", "nullable": True},
    "Type": {"data_type": "text", "nullable": True},
    "StageName": {"data_type": "text", "nullable": True},
    "CloseDate": {"data_type": "date", "nullable": True},
    "Amount": {"data_type": "double", "nullable": True},
    "IsClosed": {"data_type": "bool", "nullable": True},
    "IsWon": {"data_type": "bool", "nullable": True},
    "CreatedDate": {"data_type": "timestamp", "nullable": True},
    "SystemModstamp": {"data_type": "timestamp", "nullable": False},
}
ACCOUNT_FIELDS = tuple(ACCOUNT_COLUMNS)
OPPORTUNITY_FIELDS = tuple(OPPORTUNITY_COLUMNS)

#: One line per resource, for the Dagster assets.
DESCRIPTIONS = {
    "accounts": "Salesforce Accounts as landed: merged on Id, pulled by SystemModstamp since dlt's saved cursor",
    "opportunities": "Salesforce Opportunities as landed (renewals among them): merged on Id, by SystemModstamp",
}


def field_list(extra: str | Sequence[str]) -> tuple[str, ...]:
    """``"ARR__c, Segment__c"`` -> ``("ARR__c", "Segment__c")``."""
    items = extra.split(",") if isinstance(extra, str) else extra
    return tuple(f.strip() for f in items if f.strip())


def soql_datetime(value: Any) -> str:
    """A cursor value as a SOQL datetime literal (UTC, whole seconds, rounded down)."""
    stamp = _stamp(value)
    return stamp.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _records(client: SalesforceClient, sobject: str, fields: Sequence[str], condition: str,
             cursor: Any) -> Iterator[dict[str, Any]]:
    """The records of `sobject` changed at or after `cursor`, oldest first: REST up to the
    client's bulk threshold, a Bulk API 2.0 job above it (decided by a ``COUNT()``)."""
    where = f"SystemModstamp >= {soql_datetime(cursor)}" + (f" AND ({condition})" if condition else "")
    soql = f"SELECT {', '.join(dict.fromkeys(fields))} FROM {sobject} WHERE {where} ORDER BY SystemModstamp"
    bulk = client.count(sobject, where) > client.bulk_threshold
    with tempfile.TemporaryDirectory(prefix=f"rescue-sf-{sobject.lower()}-") as folder:
        rows = _bulk_rows(client.bulk_query_files(sobject, soql, folder)) if bulk else \
            client.query_records(soql, label=sobject)
        yield from _landable(rows)


def _bulk_rows(files: Sequence[Path]) -> Iterator[dict[str, Any]]:
    """The rows of Bulk 2.0 CSV result pages, one at a time; an empty cell (Bulk's null) is None."""
    for path in files:
        with path.open(newline="", encoding="utf-8") as page:
            for row in csv.DictReader(page):
                yield {k: (v if v != "" else None) for k, v in row.items()}


def _landable(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for row in rows:
        row.pop("attributes", None)
        # One type for the cursor whatever the API wrote (REST ``+0000``, Bulk ``Z``).
        row["SystemModstamp"] = _stamp(row["SystemModstamp"])
        yield row


def salesforce_source(client: SalesforceClient | Callable[[], SalesforceClient], *,
                      account_fields: str | Sequence[str] = (), opportunity_fields: str | Sequence[str] = (),
                      opportunity_filter: str = "", initial_modstamp: datetime = INITIAL_MODSTAMP) -> DltSource:
    """The dlt source of one org (resources ``accounts`` and ``opportunities``). `client` is the
    logged-in-on-first-use client, or a function making it (called when the pull starts)."""
    accounts = (*ACCOUNT_FIELDS, *field_list(account_fields))
    opportunities = (*OPPORTUNITY_FIELDS, *field_list(opportunity_fields))
    made: list[SalesforceClient] = []

    def connected() -> SalesforceClient:
        if not made:
            made.append(client() if callable(client) else client)
        return made[0]

    @dlt.source(name=DATASET, max_table_nesting=0)
    def salesforce() -> Any:
        @dlt.resource(name="accounts", primary_key="Id", write_disposition="merge", columns=ACCOUNT_COLUMNS)
        def accounts_resource(modstamp=dlt.sources.incremental("SystemModstamp", initial_value=initial_modstamp)
                              ) -> Iterator[dict[str, Any]]:
            yield from _records(connected(), "Account", accounts, "", modstamp.start_value)

        @dlt.resource(name="opportunities", primary_key="Id", write_disposition="merge",
                      columns=OPPORTUNITY_COLUMNS)
        def opportunities_resource(modstamp=dlt.sources.incremental("SystemModstamp", initial_value=initial_modstamp)
                                   ) -> Iterator[dict[str, Any]]:
            yield from _records(connected(), "Opportunity", opportunities, opportunity_filter, modstamp.start_value)

        return accounts_resource, opportunities_resource

    return salesforce()


class SalesforceLanding(SalesforceConnection):
    """The org to land: the Salesforce connection (`SalesforceConnection`, the same login as the
    reader and the write-back; secrets bound with ``dg.EnvVar``) and what to pull."""

    account_fields: str = Field(default="", description="Account fields besides the standard ones, comma-separated.")
    opportunity_fields: str = Field(default="", description="Opportunity fields besides the standard ones.")
    opportunity_filter: str = Field(default="", description="SOQL condition on the Opportunities landed.")

    def source(self) -> DltSource:
        """The dlt source; incomplete credentials are refused with one line naming the variables."""
        password_login = self.username and self.password
        if not password_login and not (self.instance_url and self.session_id):
            names = [SalesforceSettings.env(n) for n in ("username", "password", "security_token")
                     if not getattr(self, n)] if not self.instance_url else [
                SalesforceSettings.env(n) for n in ("session_id",) if not self.session_id]
            raise LandingError(f"Salesforce is a landing source but {', '.join(names)} "
                               f"{'is' if len(names) == 1 else 'are'} not set")
        return salesforce_source(self.build_client, account_fields=self.account_fields,
                                 opportunity_fields=self.opportunity_fields,
                                 opportunity_filter=self.opportunity_filter)


def definition_source() -> DltSource:
    """The source as the asset definitions read it (its resource names): no real credentials."""
    return salesforce_source(lambda: None)  # type: ignore[arg-type, return-value]


def bound_resource(settings: SalesforceSettings | None = None) -> SalesforceLanding:
    """The org resource with its credentials bound by name (`dg.EnvVar`): no value in the UI. A
    session id and instance URL without a username bind the session; otherwise the login."""
    sf = settings or SalesforceSettings.from_env()
    options = {"domain": sf.domain, "bulk_threshold": salesforce_bulk_threshold(sf), "account_fields": sf.account_fields,
               "opportunity_fields": sf.opportunity_fields, "opportunity_filter": sf.opportunity_filter}
    if sf.instance_url and not sf.username:
        return SalesforceLanding(instance_url=dg.EnvVar(SalesforceSettings.env("instance_url")),
                                 session_id=dg.EnvVar(SalesforceSettings.env("session_id")), **options)
    return SalesforceLanding(username=dg.EnvVar(SalesforceSettings.env("username")),
                             password=dg.EnvVar(SalesforceSettings.env("password")),
                             security_token=dg.EnvVar(SalesforceSettings.env("security_token")), **options)


def explain(exc: BaseException) -> str | None:
    """One line for the failures a person can fix (the login, a field), naming the variables."""
    if isinstance(exc, RetryExhaustedError):
        return f"Salesforce failed every retry ({exc}): the next run resumes from the saved cursor"
    if not isinstance(exc, SalesforceAPIError):
        return None
    login = ", ".join(SalesforceSettings.env(n) for n in ("username", "password", "security_token"))
    if exc.status == 401 and "login failed" in str(exc):
        return (f"Salesforce refused the login (401): set {login} to the integration user's username, "
                f"password and security token (and {SalesforceSettings.env('domain')} for a sandbox or My Domain)")
    if exc.status == 401:
        return (f"Salesforce refused the session (401): set {SalesforceSettings.env('session_id')} to a live "
                f"session, or {login} to log in")
    if exc.status == 400:
        return (f"{exc}; check {SalesforceSettings.env('account_fields')}, "
                f"{SalesforceSettings.env('opportunity_fields')} and {SalesforceSettings.env('opportunity_filter')}")
    if exc.status == 429 or (exc.status or 0) >= 500:
        return f"Salesforce answered {exc.status} to every retry: the next run resumes from the saved cursor"
    return str(exc)

"""Salesforce: the connection. Accounts and renewals come in through `connectors.salesforce.reader`
(or are landed raw with dlt by `connectors.landing.salesforce`, on this same client), rescue Tasks
and account health fields go out through `connectors.salesforce.writer`.

- `SalesforceClient`: plain Python over simple-salesforce. It logs in (username, password and
  security token through the SOAP login, or an existing session id and instance URL), runs SOQL
  with paging (``nextRecordsUrl``), switches to a Bulk API 2.0 query when a ``COUNT()`` says the
  result is larger than `bulk_threshold` (its rows in memory, or its CSV pages downloaded to disk:
  `bulk_query_files`), upserts records by external id (one REST call per
  record, or a Bulk 2.0 ingest job above the threshold, whose failed rows are read back from the
  job's ``failedResults`` and reported per external id), and finds the User an owner name
  belongs to. Every HTTP call goes through the shared retry policy (`connectors.http_retry`); an
  expired session triggers one re-login.
- `SalesforceConnection`: the connection settings as a Dagster resource, shared by the reader
  (`SalesforceCRM`) and the writer (`SalesforceWriter`).

Credentials come only from config fields bound to `dg.EnvVar` (see `SalesforceConnection`). They
are excluded from the resources' repr, never logged, and scrubbed from every error this package
raises (`SalesforceAPIError`).
"""

from __future__ import annotations

import csv
import io
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import pandas as pd
import requests
from pydantic import Field
from simple_salesforce import Salesforce, SalesforceLogin
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceOperationError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.format import format_external_id, format_soql

from connectors.http_retry import (
    Retrier,
    RetryExhaustedError,
    RetryPolicy,
    TransientHTTPError,
    raise_for_transient,
    redact,
)
from connectors.settings import SalesforceSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_API_VERSION = "59.0"

#: User fields an owner name from the queue may match, in this order of preference.
DEFAULT_USER_MATCH_FIELDS = ("Email", "Username", "Name", "Alias")


class SalesforceAPIError(RuntimeError):
    """A Salesforce call failed. The message says what to check; it never holds a credential."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UpsertResult:
    """Outcome of one upsert by external id."""

    external_id: str
    created: bool
    record_id: str | None = None
    owner_id: str | None = None


@dataclass
class BatchResult:
    """Outcome of a batch of upserts: external ids written, and the error of each one not."""

    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    job_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SalesforceCredentials:
    """Either username + password + security token, or session id + instance URL."""

    username: str = ""
    password: str = ""
    security_token: str = ""
    instance_url: str = ""
    session_id: str = ""
    domain: str = "login"

    def __repr__(self) -> str:
        mode = "password" if self.can_login else "session" if self.session_id else "none"
        return f"SalesforceCredentials(mode={mode!r}, domain={self.domain!r})"

    @property
    def can_login(self) -> bool:
        return bool(self.username and self.password)

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.password, self.security_token, self.session_id,
                                 self.password + self.security_token) if s)

    def validate(self) -> None:
        if self.can_login:
            return
        if self.session_id and self.instance_url:
            return
        raise SalesforceAPIError(
            "Salesforce credentials are incomplete: set username, password and security_token "
            f"({' / '.join(SalesforceSettings.env(f) for f in ('username', 'password', 'security_token'))}), "
            f"or instance_url and session_id ({SalesforceSettings.env('instance_url')} / "
            f"{SalesforceSettings.env('session_id')})"
        )


def _salesforce_transient_hook(response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
    # The SOAP login answers a rejected login with HTTP 500 and a SOAP fault: that is an
    # authentication failure, not an outage, and must not be retried.
    if response.status_code == 500 and b"faultcode" in (response.content or b""):
        return
    raise_for_transient(response)


def _error_details(exc: SalesforceError) -> str:
    content = exc.content
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        parts = []
        for item in content:
            code = item.get("errorCode", "")
            fields = item.get("fields") or []
            where = f" [{', '.join(fields)}]" if fields else ""
            parts.append(f"{code}: {item.get('message', '')}{where}".strip(": "))
        return "; ".join(parts)
    if isinstance(content, bytes):
        return content.decode("utf-8", "replace")[:500]
    return str(content)[:500]


def translate_error(exc: BaseException, endpoint: str, secrets: Iterable[str] = ()) -> SalesforceAPIError:
    """A `SalesforceAPIError` with a message that says what went wrong and what to check."""
    if isinstance(exc, SalesforceAuthenticationFailed):
        message = (f"Salesforce login failed ({exc.code}): {exc.auth_message}. Check the username, "
                   f"password and security token, and the login domain (login / test / My Domain)")
        status = 401
    elif isinstance(exc, SalesforceExpiredSession):
        message = (f"{endpoint}: the Salesforce session expired or is invalid and cannot be renewed "
                   f"with a session id alone; configure username/password/security_token to allow re-login")
        status = 401
    elif isinstance(exc, SalesforceMalformedRequest):
        message = (f"{endpoint}: Salesforce rejected the request ({_error_details(exc)}). An unknown "
                   f"field usually means the field map names a field this org does not have")
        status = 400
    elif isinstance(exc, SalesforceRefusedRequest):
        message = (f"{endpoint}: Salesforce refused the request ({_error_details(exc)}); check the "
                   f"integration user's permissions and the org's API limits")
        status = 403
    elif isinstance(exc, SalesforceResourceNotFound):
        message = (f"{endpoint}: not found ({_error_details(exc)}); check the object, the external id "
                   f"field name and that it is marked External ID")
        status = 404
    elif isinstance(exc, SalesforceMoreThanOneRecord):
        message = (f"{endpoint}: the external id matches more than one record; mark the field Unique "
                   f"so upserts stay idempotent")
        status = 300
    elif isinstance(exc, SalesforceError):
        message = f"{endpoint}: Salesforce answered HTTP {exc.status} ({_error_details(exc)})"
        status = exc.status
    elif isinstance(exc, SalesforceOperationError):
        message = f"{endpoint}: Bulk API 2.0 job failed: {exc}"
        status = None
    elif isinstance(exc, RetryExhaustedError):
        message = str(exc)
        last = exc.last_error
        status = last.status if isinstance(last, TransientHTTPError) else None
    else:
        message = f"{endpoint}: {type(exc).__name__}"
        status = None
    return SalesforceAPIError(redact(message, secrets), status=status)


def _csv_records(pages: Iterable[str]) -> list[dict[str, Any]]:
    """Rows of Bulk 2.0 CSV result pages; empty cells (Bulk's null) become None."""
    rows: list[dict[str, Any]] = []
    for page in pages:
        for row in csv.DictReader(io.StringIO(page)):
            rows.append({k: (v if v != "" else None) for k, v in row.items()})
    return rows


class SalesforceClient:
    """A logged-in Salesforce API client with retries, re-login and Bulk 2.0 switching.

    ``session`` and ``sleep`` are injectable (tests pass a `requests.Session` intercepted by an
    HTTP fake and a sleeper that records waits). ``bulk_poll_seconds`` is the initial wait of
    simple-salesforce's Bulk 2.0 job polling.
    """

    def __init__(
        self,
        credentials: SalesforceCredentials,
        *,
        api_version: str = DEFAULT_API_VERSION,
        bulk_threshold: int = 10_000,
        bulk_poll_seconds: int = 5,
        retry_policy: RetryPolicy | None = None,
        timeout: float = 60.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        user_match_fields: Sequence[str] = DEFAULT_USER_MATCH_FIELDS,
    ) -> None:
        credentials.validate()
        self.credentials = credentials
        self.api_version = api_version.lstrip("v")
        self.bulk_threshold = bulk_threshold
        self.bulk_poll_seconds = bulk_poll_seconds
        self.timeout = timeout
        self.user_match_fields = tuple(user_match_fields)
        self.session = session or requests.Session()
        hooks = self.session.hooks.setdefault("response", [])
        if _salesforce_transient_hook not in hooks:
            hooks.append(_salesforce_transient_hook)
        self.retrier = Retrier(retry_policy, sleep=sleep, rng=rng, logger=log)
        self._sf: Salesforce | None = None
        self._user_ids: dict[str, str | None] = {}
        self.logins = 0

    def __repr__(self) -> str:
        return f"SalesforceClient(domain={self.credentials.domain!r}, api_version={self.api_version!r})"

    # -- session --------------------------------------------------------------------------------

    @property
    def sf(self) -> Salesforce:
        """The simple-salesforce handle, logging in on first use."""
        if self._sf is None:
            self._sf = self._connect()
        return self._sf

    def _connect(self) -> Salesforce:
        creds = self.credentials
        if creds.can_login:
            endpoint = f"POST /services/Soap/u/{self.api_version} (login)"
            try:
                session_id, instance = self.retrier.call(
                    endpoint, SalesforceLogin, username=creds.username, password=creds.password,
                    security_token=creds.security_token, domain=creds.domain, sf_version=self.api_version,
                    session=self.session,
                )
            except (SalesforceError, RetryExhaustedError) as exc:
                raise translate_error(exc, endpoint, creds.secrets()) from None
            self.logins += 1
            log.info("logged in to Salesforce instance %s", instance)
            return Salesforce(session_id=session_id, instance=instance, version=self.api_version,
                              session=self.session)
        return Salesforce(session_id=creds.session_id, instance_url=creds.instance_url,
                          version=self.api_version, session=self.session)

    def _endpoint(self, method: str, resource: str, detail: str = "") -> str:
        """``"GET /services/data/v59.0/query (Account)"``: names a call in logs and errors."""
        return f"{method} /services/data/v{self.api_version}/{resource}" + (f" ({detail})" if detail else "")

    def _call(self, endpoint: str, fn: Callable[[Salesforce], T]) -> T:
        """Run ``fn(sf)`` with retries; on an expired session log in again once and retry."""
        secrets = self.credentials.secrets()
        for attempt in (1, 2):
            try:
                return self.retrier.call(endpoint, fn, self.sf)
            except SalesforceExpiredSession as exc:
                if attempt == 1 and self.credentials.can_login:
                    log.warning("%s: Salesforce session expired; logging in again", endpoint)
                    self._sf = None
                    continue
                raise translate_error(exc, endpoint, secrets) from None
            except (SalesforceError, SalesforceOperationError, RetryExhaustedError) as exc:
                raise translate_error(exc, endpoint, secrets) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- queries --------------------------------------------------------------------------------

    def count(self, sobject: str, where: str = "") -> int:
        soql = f"SELECT COUNT() FROM {sobject}" + (f" WHERE {where}" if where else "")
        result = self._call(self._endpoint("GET", "query", f"COUNT() {sobject}"),
                            lambda sf: sf.query(soql, timeout=self.timeout))
        return int(result["totalSize"])

    def query_records(self, soql: str, *, label: str) -> Iterator[dict[str, Any]]:
        """Records of a SOQL query, page by page (``nextRecordsUrl``), each page retried alone."""
        page = self._call(self._endpoint("GET", "query", label), lambda sf: sf.query(soql, timeout=self.timeout))
        while True:
            yield from page["records"]
            if page.get("done", True):
                return
            next_url = page["nextRecordsUrl"]
            page = self._call(self._endpoint("GET", "query", f"{label}, next page"),
                              lambda sf: sf.query_more(next_url, identifier_is_url=True, timeout=self.timeout))

    def bulk_query_records(self, sobject: str, soql: str) -> list[dict[str, Any]]:
        """Records of a Bulk API 2.0 query job (CSV pages). The whole job is the unit of retry."""

        def run(sf: Salesforce) -> list[str]:
            return list(getattr(sf.bulk2, sobject).query(soql, wait=self.bulk_poll_seconds))

        return _csv_records(self._call(self._endpoint("POST", "jobs/query", f"Bulk 2.0 {sobject}"), run))

    def bulk_query_files(self, sobject: str, soql: str, directory: str | Path) -> list[Path]:
        """The CSV result pages of a Bulk API 2.0 query job, downloaded into `directory`
        (simple-salesforce's ``download``, streamed to disk: no page is held in memory), in
        order. The whole job is the unit of retry; each attempt starts with an empty directory."""
        folder = Path(directory)

        def run(sf: Salesforce) -> list[Path]:
            for stale in folder.glob("*.csv"):
                stale.unlink()
            pages = getattr(sf.bulk2, sobject).download(soql, str(folder), wait=self.bulk_poll_seconds)
            return [Path(page["file"]) for page in pages]

        return self._call(self._endpoint("POST", "jobs/query", f"Bulk 2.0 {sobject}"), run)

    def select(self, sobject: str, fields: Sequence[str], where: str = "") -> list[dict[str, Any]]:
        """All records of `sobject` matching `where`: REST paging below `bulk_threshold` rows,
        a Bulk 2.0 query above it (decided by a ``COUNT()`` first)."""
        soql = f"SELECT {', '.join(dict.fromkeys(fields))} FROM {sobject}" + (f" WHERE {where}" if where else "")
        if self.count(sobject, where) > self.bulk_threshold:
            log.info("%s: more than %d rows, using a Bulk API 2.0 query", sobject, self.bulk_threshold)
            return self.bulk_query_records(sobject, soql)
        return list(self.query_records(soql, label=sobject))

    # -- upserts --------------------------------------------------------------------------------

    def upsert(self, sobject: str, key_field: str, external_id: str, fields: Mapping[str, Any]) -> UpsertResult:
        """Create or update the record whose `key_field` is `external_id` (PATCH by external id):
        201 created, 204 updated. Retrying it never creates a second record."""
        path = format_external_id(key_field, external_id)
        body = {k: v for k, v in fields.items() if k != key_field}

        def run(sf: Salesforce) -> requests.Response:
            return getattr(sf, sobject).upsert(path, body, raw_response=True, headers=None)

        response = self._call(self._endpoint("PATCH", f"sobjects/{sobject}/{key_field}"), run)
        record_id = None
        if response.status_code == 201 and response.content:
            record_id = response.json().get("id")
        return UpsertResult(external_id=external_id, created=response.status_code == 201, record_id=record_id)

    def upsert_many(self, sobject: str, key_field: str, rows: Mapping[str, Mapping[str, Any]]) -> BatchResult:
        """Upsert many records keyed by external id: one REST call each up to `bulk_threshold`
        rows, a Bulk API 2.0 upsert job above it. A row that fails is reported in
        ``failed[external_id]``; the others are written regardless."""
        result = BatchResult()
        if len(rows) > self.bulk_threshold:
            return self._bulk_upsert(sobject, key_field, rows)
        for external_id, fields in rows.items():
            try:
                self.upsert(sobject, key_field, external_id, fields)
            except SalesforceAPIError as exc:
                result.failed[external_id] = str(exc)
            else:
                result.succeeded.append(external_id)
        return result

    def _bulk_upsert(self, sobject: str, key_field: str, rows: Mapping[str, Mapping[str, Any]]) -> BatchResult:
        columns = list(dict.fromkeys(c for fields in rows.values() for c in fields if c != key_field))
        records = [{key_field: key, **{c: _csv_value(fields.get(c)) for c in columns}} for key, fields in rows.items()]

        def run(sf: Salesforce) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
            bulk = getattr(sf.bulk2, sobject)
            jobs = bulk.upsert(records=records, external_id_field=key_field, wait=self.bulk_poll_seconds)
            job_ids = [str(job["job_id"]) for job in jobs]
            ok, bad, unprocessed = [], [], []
            for job_id in job_ids:
                ok += _csv_records([bulk.get_successful_records(job_id)])
                bad += _csv_records([bulk.get_failed_records(job_id)])
                unprocessed += _csv_records([bulk.get_unprocessed_records(job_id)])
            return job_ids, ok, bad, unprocessed

        job_ids, ok, bad, unprocessed = self._call(
            self._endpoint("POST", "jobs/ingest", f"Bulk 2.0 upsert {sobject}"), run)
        result = BatchResult(job_ids=job_ids)
        result.succeeded = [str(r[key_field]) for r in ok]
        for r in bad:
            result.failed[str(r[key_field])] = str(r.get("sf__Error") or "failed without an error message")
        for r in unprocessed:
            result.failed[str(r[key_field])] = "not processed (the Bulk 2.0 job stopped before this row)"
        missing = set(rows) - set(result.succeeded) - set(result.failed)
        for key in sorted(missing):
            result.failed[key] = "missing from the Bulk 2.0 job results"
        log.info("Bulk 2.0 upsert %s: %d succeeded, %d failed (jobs %s)", sobject, len(result.succeeded),
                 len(result.failed), ", ".join(job_ids))
        return result

    def user_id(self, owner: str) -> str | None:
        """The active Salesforce User whose email, username, name or alias is `owner` (cached,
        including misses). None when no user or more than one matches."""
        key = owner.strip()
        if not key:
            return None
        if key not in self._user_ids:
            matches = " OR ".join(f"{f} = {{owner}}" for f in self.user_match_fields)
            soql = format_soql(f"SELECT Id FROM User WHERE IsActive = true AND ({matches}) LIMIT 2", owner=key)
            users = list(self.query_records(soql, label="User"))
            if len(users) != 1:
                log.warning("no unique active Salesforce user matches owner %r (%d found); the Task "
                            "stays with the integration user", key, len(users))
            self._user_ids[key] = users[0]["Id"] if len(users) == 1 else None
        return self._user_ids[key]


def _csv_value(value: Any) -> Any:
    # In a Bulk 2.0 CSV an empty cell means "leave unchanged"; #N/A sets the field to null.
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "#N/A"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# ---------------------------------------------------------------------------------------------
# Dagster resources
# ---------------------------------------------------------------------------------------------


class SalesforceConnection(dg.ConfigurableResource):
    """Connection settings shared by the reader and the writer. Bind secrets with `dg.EnvVar`
    under their names in `connectors.settings.SalesforceSettings`, e.g.
    ``password=dg.EnvVar(SalesforceSettings.env("password"))`` (as `pipelines.resources` does);
    they are left out of the repr."""

    username: str = Field(default="", description="Integration user's username.")
    password: str = Field(default="", repr=False, description="Password (bind with dg.EnvVar).")
    security_token: str = Field(default="", repr=False, description="Security token (bind with dg.EnvVar).")
    instance_url: str = Field(default="", description="Instance URL, with session_id instead of a password.")
    session_id: str = Field(default="", repr=False, description="Existing session / OAuth access token.")
    domain: str = Field(default="login", description="'login', 'test' (sandbox) or a My Domain prefix.")
    api_version: str = Field(default=DEFAULT_API_VERSION, description="REST API version, e.g. 59.0.")
    bulk_threshold: int = Field(default=10_000, description="Rows above which Bulk API 2.0 is used.")
    bulk_poll_seconds: int = Field(default=5, description="Initial wait when polling a Bulk 2.0 job.")
    max_attempts: int = Field(default=8, description="Attempts per call on 429/5xx/timeouts.")
    timeout_seconds: float = Field(default=60.0, description="Timeout of each REST query call.")

    def credentials(self) -> SalesforceCredentials:
        return SalesforceCredentials(username=self.username, password=self.password,
                                     security_token=self.security_token, instance_url=self.instance_url,
                                     session_id=self.session_id, domain=self.domain)

    def build_client(self, *, session: requests.Session | None = None,
                     sleep: Callable[[float], None] = time.sleep) -> SalesforceClient:
        return SalesforceClient(
            self.credentials(), api_version=self.api_version, bulk_threshold=self.bulk_threshold,
            bulk_poll_seconds=self.bulk_poll_seconds, retry_policy=RetryPolicy(max_attempts=self.max_attempts),
            timeout=self.timeout_seconds, session=session, sleep=sleep,
        )

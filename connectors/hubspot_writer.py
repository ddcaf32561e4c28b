"""HubSpot as the CRM write-back target: rescue tasks on the account's company, health as company properties.

`HubSpotCRMWriter` is a `connectors.writeback.CRMWriter` over HubSpot's CRM API v3/v4 (private
app access token, ``HUBSPOT_ACCESS_TOKEN``; scopes to write companies and tasks):

- ``upsert_task``: ``POST /crm/v3/objects/tasks/batch/upsert`` with ``idProperty`` the task
  property `HubSpotWritebackSettings.task_key` (``rescue_key``, a custom text property created
  with *unique values* on tasks) and ``id`` the task's external id (``rescue-case:<case_id>``,
  ``rescue-action:<action_id>``); then the task is associated with the account's company
  (``PUT /crm/v4/objects/tasks/{task}/associations/default/companies/{company}``, HubSpot's
  default task-to-company association, idempotent).
- ``upsert_account_health``: ``PATCH /crm/v3/objects/companies/{account_id}`` setting health
  score, churn risk, rescue status and top reason (property names from
  `HubSpotWritebackSettings`, ``rescue_health_score`` ... by default; create them on companies).

**Why upsert on a unique property, not search-then-create.** HubSpot's search API is
eventually consistent: a task created a second ago may not be found yet. A create whose answer
was lost (a timeout after HubSpot wrote it), retried as search-then-create, would search, miss
the new task and create a second one. ``batch/upsert`` with a unique-value ``idProperty`` is
decided by HubSpot on the unique index itself: the first call creates the task, every retry or
replay updates that same task. So a retried write is exactly once without any client state.

**Which company.** The account id is the HubSpot company id by default
(`HubSpotWritebackSettings.company_key` = ``hs_object_id``): that is what a deployment reading
its accounts from HubSpot has, and an unknown id fails (404, retried by the outbox, then dead)
instead of creating a company. A deployment whose account ids come from another system names a
unique company property that holds them (``RESCUE_HUBSPOT_COMPANY_KEY``); the writer then
addresses the company with ``idProperty`` (``GET``/``PATCH /crm/v3/objects/companies/{id}?idProperty=...``).

The HTTP client is `requests` with the project's retry policy (`connectors.http_retry`: 429
with ``Retry-After`` honoured, 5xx and timeouts retried with backoff; a longer outage is the
outbox's business). The official ``hubspot-api-client`` installs with the stack, but it talks
through its own urllib3 pool with its own retry layer: its requests bypass the session hooks
that make 429/5xx retryable here (and the HTTP fakes the tests use), so it is not used. Every
call here is idempotent (upsert on a unique key, PUT of an association, PATCH of properties),
which is what makes retrying them safe. Errors name the endpoint and the status, never the
token; an auth failure is one line naming ``HUBSPOT_ACCESS_TOKEN``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import requests

from connectors.http_retry import Retrier, RetryPolicy, endpoint_of, install_transient_hook
from connectors.settings import HubSpotSettings, HubSpotWritebackSettings
from connectors.writeback import COMPLETED, IN_PROGRESS, NOT_STARTED, AccountHealth, CRMDeliveryError, CRMTask

API_BASE = "https://api.hubapi.com"
#: CRM-neutral task status -> HubSpot ``hs_task_status``.
HUBSPOT_TASK_STATUS = {NOT_STARTED: "NOT_STARTED", IN_PROGRESS: "IN_PROGRESS", COMPLETED: "COMPLETED"}
#: Case priority -> HubSpot ``hs_task_priority``.
HUBSPOT_TASK_PRIORITY = {"P1": "HIGH", "P2": "HIGH", "P3": "MEDIUM", "P4": "LOW"}
#: HubSpot keeps at most this many characters in a task's body.
BODY_MAX = 65_000
#: The company id itself (no lookup): the default `company_key`.
COMPANY_ID = "hs_object_id"
TIMEOUT = 30


class HubSpotError(CRMDeliveryError):
    """A request HubSpot refused; `status` is its HTTP status. The message never holds the token."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def auth_error(status: int) -> str:
    """The one line of a refused token, naming the variable to set."""
    return (f"HubSpot refused the access token (HTTP {status}): set {HubSpotSettings.env('access_token')} to a "
            "private app token that may write companies and tasks")


class HubSpotCRMWriter:
    """`CRMWriter` over HubSpot (see the module docstring). `properties` names the properties
    (defaults: `HubSpotWritebackSettings`); `sleep` and `retry_policy` are injectable for tests."""

    def __init__(self, access_token: str, *, properties: HubSpotWritebackSettings | None = None,
                 base_url: str = API_BASE, retry_policy: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], datetime] | None = None) -> None:
        if not access_token:
            raise ValueError(f"{HubSpotSettings.env('access_token')} is not set: the HubSpot write-back needs a "
                             "private app access token")
        self._token = access_token
        self.properties = properties or HubSpotWritebackSettings()
        self.base_url = base_url.rstrip("/")
        self.session = install_transient_hook(requests.Session())
        self.session.headers.update({"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"})
        self.retrier = Retrier(retry_policy or RetryPolicy(max_attempts=5), sleep=sleep)
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._companies: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"HubSpotCRMWriter({self.base_url!r}, task_key={self.properties.task_key!r})"

    def secrets(self) -> tuple[str, ...]:
        return (self._token,)

    # -- HTTP ------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                body: Any = None) -> dict[str, Any]:
        """One API call under the retry policy; the JSON answer ({} for an empty one)."""
        url = f"{self.base_url}{path}"
        endpoint = endpoint_of(method, url)

        def once() -> dict[str, Any]:
            response = self.session.request(method, url, params=params, json=body, timeout=TIMEOUT)
            if response.status_code in (401, 403):
                raise HubSpotError(auth_error(response.status_code), response.status_code)
            if response.status_code >= 400:
                raise HubSpotError(f"{endpoint} answered HTTP {response.status_code}: {_message(response)}",
                                   response.status_code)
            return response.json() if response.content else {}

        return self.retrier.call(endpoint, once)

    # -- CRMWriter -------------------------------------------------------------------------

    def task_properties(self, task: CRMTask) -> dict[str, Any]:
        """The HubSpot properties of a rescue task (the key property is set by the upsert)."""
        body = task.description if not task.owner else f"{task.description}\nOwner: {task.owner}"
        when = (datetime(task.due_date.year, task.due_date.month, task.due_date.day, tzinfo=timezone.utc)
                if task.due_date else self._clock())
        props: dict[str, Any] = {
            "hs_task_subject": task.subject[:255],
            "hs_task_body": body[:BODY_MAX],
            "hs_task_status": HUBSPOT_TASK_STATUS[task.status],
            "hs_timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        }
        if task.priority in HUBSPOT_TASK_PRIORITY:
            props["hs_task_priority"] = HUBSPOT_TASK_PRIORITY[task.priority]
        return props

    def upsert_task(self, task: CRMTask) -> str:
        """Create or update the task keyed `task.external_id` and associate it with the account's
        company (found first: an unknown account writes nothing); returns the HubSpot task id."""
        company_id = self.company_id(task.account_id)
        answer = self.request("POST", "/crm/v3/objects/tasks/batch/upsert", body={"inputs": [{
            "idProperty": self.properties.task_key, "id": task.external_id,
            "properties": self.task_properties(task)}]})
        if answer.get("errors"):
            first = answer["errors"][0]
            raise HubSpotError(f"task {task.external_id}: {first.get('category', 'error')}: "
                               f"{str(first.get('message', ''))[:300]}", 400)
        results = answer.get("results") or []
        if not results or not results[0].get("id"):
            raise HubSpotError(f"task {task.external_id}: HubSpot's upsert answered no task", 502)
        task_id = str(results[0]["id"])
        self.request("PUT", f"/crm/v4/objects/tasks/{task_id}/associations/default/companies/{company_id}")
        return task_id

    def upsert_account_health(self, health: AccountHealth) -> None:
        """Set the health properties of the account's company (values left unset stay as they are)."""
        names = {"health_score": self.properties.health_score, "churn_risk": self.properties.churn_risk,
                 "rescue_status": self.properties.rescue_status, "top_reason": self.properties.top_reason}
        props = {names[k]: (v[:BODY_MAX] if isinstance(v, str) else v) for k, v in health.fields().items()}
        if not props:
            return
        try:
            self.request("PATCH", f"/crm/v3/objects/companies/{health.account_id}", params=self._id_param(),
                         body={"properties": props})
        except HubSpotError as exc:
            if exc.status == 404:
                raise HubSpotError(self._no_company(health.account_id), 404) from None
            raise

    def company_id(self, account_id: str) -> str:
        """The HubSpot company id of an account (the account id itself by default)."""
        if self.properties.company_key == COMPANY_ID:
            return account_id
        if account_id not in self._companies:
            try:
                found = self.request("GET", f"/crm/v3/objects/companies/{account_id}", params=self._id_param())
            except HubSpotError as exc:
                if exc.status == 404:
                    raise HubSpotError(self._no_company(account_id), 404) from None
                raise
            self._companies[account_id] = str(found["id"])
        return self._companies[account_id]

    def _id_param(self) -> dict[str, str] | None:
        key = self.properties.company_key
        return None if key == COMPANY_ID else {"idProperty": key}

    def _no_company(self, account_id: str) -> str:
        key = self.properties.company_key
        where = "company id" if key == COMPANY_ID else f"company with {key}"
        return (f"HubSpot has no {where} {account_id!r}: the account ids are not HubSpot's, or "
                f"{HubSpotWritebackSettings.env('company_key')} should name the company property that holds them")


def _message(response: requests.Response) -> str:
    """HubSpot's error message (its JSON ``message``), cut short; never a header."""
    try:
        data = response.json()
    except ValueError:
        return response.reason or "error"
    return str(data.get("message") or data.get("category") or "error")[:300] if isinstance(data, dict) else "error"

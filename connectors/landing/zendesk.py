"""Zendesk Support tickets and organizations, landed with dlt.

What it pulls (Zendesk Support API v2, https://developer.zendesk.com/api-reference/):

- ``tickets``: the cursor-based incremental ticket export, ``GET /api/v2/incremental/tickets/
  cursor.json?start_time=...&include=metric_sets&per_page=1000``, then ``?cursor=<after_cursor>``
  until a page says ``end_of_stream``, merged on ``id``. Each ticket carries its side-loaded
  metric set under ``metric_set`` (landed flattened: ``metric_set__reply_time_in_minutes__calendar``,
  ``metric_set__solved_at``, ...), and its ``satisfaction_rating`` (``satisfaction_rating__score``).
  Deleted tickets come in the export with ``status: deleted`` and land as such (the merge turns
  the live row into a deleted one); the default mapping does not read them.
- ``organizations``: ``GET /api/v2/organizations?page[size]=100``, then ``page[after]=`` the
  ``meta.after_cursor`` while ``meta.has_more`` (the same position ``links.next`` points at),
  replaced on every run (the list has no changed-since filter); the tickets' accounts.

The cursor kept between runs is the tickets' ``generated_timestamp``, not the export's
``after_cursor``, nor ``updated_at``. dlt keeps it (`dlt.sources.incremental`, the highest value
of the rows of the last completed load, less `LAG_SECONDS`) in the dataset's state, and each run
starts the export with ``start_time`` at it. Why:

- ``after_cursor`` belongs to a page, not to a row, and is opaque: dlt's ``incremental`` keeps the
  highest value of a field of the rows, and a page token has no order to take the highest of.
  Keeping it would mean writing the source's state by hand, which dlt already does, and dlt
  commits state only with a completed load anyway: a pull that fails half-way resumes from the
  last completed run's position whichever value is kept, so a page cursor would buy nothing.
- ``generated_timestamp`` rather than ``updated_at``: the export compares ``start_time`` with
  ``generated_timestamp`` (Zendesk, "Using the Incremental Export API"), which also moves on system
  updates that leave ``updated_at`` alone; it is Unix seconds, what ``start_time`` takes, so the
  saved value is passed as it is.
- Both have whole seconds; a ticket changed again within the second the last pull ended keeps
  its timestamp, and dlt, which drops rows at a cursor it has already seen, would skip the change:
  each pull reaches back `LAG_SECONDS`, and rows merge on ``id``.

Pages of the export follow dlt's cursor paginator (``after_cursor`` as ``cursor``) with the export's
own end: ``end_of_stream`` (`ExportPaginator`; the export still returns an ``after_cursor`` on its
last page), and the cursor request drops ``start_time``, as the API reference's requests do. The
export is dlt's REST client in a `dlt.resource` of a few lines rather than the declarative REST
API source: the metric sets come beside the tickets in the same response and are folded into
their tickets, one request a page (the export allows 10 a minute). Retries are dlt's requests
client: 429 and 5xx answers and dropped connections are retried with exponential backoff, a
``Retry-After`` header (Zendesk sends one with every 429) sets the wait.

Authentication is an API token: basic auth as ``{email}/token`` with the token as the password.
The token comes from ``ZENDESK_API_TOKEN`` (bound with ``dg.EnvVar`` in the Dagster resource) and
is never logged or put in metadata or errors: a refused token ends in one line naming the
variable (`explain`).
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import dlt
from dlt.extract.source import DltSource
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import HttpBasicAuth
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
from requests import HTTPError, Request, Response, Session

from connectors.landing.pipeline import LandingError, site_url
from connectors.settings import ZendeskSettings

#: The dataset (schema) the tables land in, and the dlt source's name.
DATASET = "zendesk"
#: The system's name among the assets' kinds, and the key of its account resource.
SYSTEM = "zendesk"
RESOURCE_KEY = "zendesk_account"
EXPORT_PATH = "incremental/tickets/cursor.json"
ORGANIZATIONS_PATH = "organizations"
#: ``start_time`` of a first pull: the account's whole history.
INITIAL_START_TIME = 0
#: Tickets per export page (the export's largest), organizations per page (the list's largest).
EXPORT_PAGE_SIZE = 1000
ORGANIZATIONS_PAGE_SIZE = 100
#: Seconds each pull reaches back before the saved cursor (dlt's incremental ``lag``), see above.
LAG_SECONDS = 60
#: Attempts per request (the first and the retries) and the longest wait between two, in seconds.
MAX_ATTEMPTS = 6
MAX_RETRY_WAIT = 300

#: Columns the default mapping reads that a pull need not contain (no ticket solved or rated
#: yet, no organization with the field): declared, so the tables always have them.
TICKET_COLUMNS = {
    "organization_id": {"data_type": "bigint", "nullable": True},
    "type": {"data_type": "text", "nullable": True},
    "priority": {"data_type": "text", "nullable": True},
    "tags": {"data_type": "json", "nullable": True},  # a list: one JSON value, not a child table
    "updated_at": {"data_type": "timestamp", "nullable": True},
    "generated_timestamp": {"data_type": "bigint", "nullable": False},
    "satisfaction_rating__score": {"data_type": "text", "nullable": True},
    "metric_set__reply_time_in_minutes__calendar": {"data_type": "bigint", "nullable": True},
    "metric_set__solved_at": {"data_type": "timestamp", "nullable": True},
}
ORGANIZATION_COLUMNS = {
    "name": {"data_type": "text", "nullable": True},
    "external_id": {"data_type": "text", "nullable": True},
    "organization_fields__account_id": {"data_type": "text", "nullable": True},
}

#: One line per resource, for the Dagster assets.
DESCRIPTIONS = {
    "tickets": "Zendesk tickets as landed (with their metric sets): merged on id, exported since dlt's saved cursor",
    "organizations": "Zendesk organizations as landed (replaced each run): the tickets' accounts",
}


def base_url(subdomain: str) -> str:
    """``acme``, ``acme.zendesk.com`` or ``https://support.acme.io`` -> ``https://<host>/api/v2/``."""
    return site_url(subdomain, "zendesk.com") + "/api/v2/"


def http_session(max_attempts: int = MAX_ATTEMPTS) -> Session:
    """dlt's retrying requests session (429 / 5xx / connection errors; Retry-After honoured)."""
    return Client(raise_for_status=False, request_max_attempts=max_attempts,
                  request_max_retry_delay=MAX_RETRY_WAIT).session


class ExportPaginator(JSONResponseCursorPaginator):
    """dlt's cursor paginator on the export's ``after_cursor``, ending at ``end_of_stream``; the
    cursor replaces ``start_time`` (the first request's)."""

    def __init__(self) -> None:
        super().__init__(cursor_path="after_cursor", cursor_param="cursor")

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        super().update_state(response, data)
        if response.json().get("end_of_stream"):
            self._has_next_page = False

    def update_request(self, request: Request) -> None:
        super().update_request(request)
        request.params.pop("start_time", None)


def zendesk_source(subdomain: str, email: str, api_token: str, *, initial_start_time: int = INITIAL_START_TIME,
                   page_size: int = EXPORT_PAGE_SIZE, organizations_page_size: int = ORGANIZATIONS_PAGE_SIZE,
                   session: Session | None = None) -> DltSource:
    """The dlt source of one Zendesk account (resources ``tickets`` and ``organizations``)."""

    @dlt.source(name=DATASET, max_table_nesting=2)
    def zendesk() -> Any:
        client = RESTClient(base_url=base_url(subdomain), auth=HttpBasicAuth(f"{email}/token", api_token),
                            session=session or http_session())

        @dlt.resource(name="tickets", primary_key="id", write_disposition="merge", columns=TICKET_COLUMNS)
        def tickets(changed: dlt.sources.incremental[int] = dlt.sources.incremental(
                "generated_timestamp", initial_value=initial_start_time, lag=LAG_SECONDS)) -> Any:
            params = {"start_time": changed.last_value, "include": "metric_sets", "per_page": page_size}
            for page in client.paginate(EXPORT_PATH, params=params, paginator=ExportPaginator(),
                                        data_selector="tickets"):
                metrics = {m.get("ticket_id"): m for m in page.response.json().get("metric_sets") or []}
                yield [{**ticket, "metric_set": metrics.get(ticket["id"])} for ticket in page]

        @dlt.resource(name="organizations", primary_key="id", write_disposition="replace",
                      columns=ORGANIZATION_COLUMNS)
        def organizations() -> Any:
            yield from client.paginate(
                ORGANIZATIONS_PATH, params={"page[size]": organizations_page_size}, data_selector="organizations",
                paginator=JSONResponseCursorPaginator(cursor_path="meta.after_cursor", cursor_param="page[after]",
                                                      has_more_path="meta.has_more"))

        return tickets, organizations

    return zendesk()


class ZendeskResource(dg.ConfigurableResource):
    """The Zendesk account to land, bound with ``dg.EnvVar("ZENDESK_SUBDOMAIN")``,
    ``dg.EnvVar("ZENDESK_EMAIL")`` and ``dg.EnvVar("ZENDESK_API_TOKEN")`` (`pipelines.resources`):
    the token never reaches the UI."""

    subdomain: str = ""
    email: str = ""
    api_token: str = ""

    def source(self) -> DltSource:
        """The dlt source; unset variables are refused with one line naming them."""
        missing = [ZendeskSettings.env(n) for n in ("subdomain", "email", "api_token") if not getattr(self, n)]
        if missing:
            raise LandingError(f"Zendesk is a landing source but {', '.join(missing)} "
                               f"{'is' if len(missing) == 1 else 'are'} not set")
        return zendesk_source(self.subdomain, self.email, self.api_token)


def definition_source() -> DltSource:
    """The source as the asset definitions read it (its resource names): no real credentials."""
    return zendesk_source("example", "unused@example.com", "unused-at-definition-time")


def bound_resource() -> ZendeskResource:
    """The account resource with its variables bound by name (`dg.EnvVar`): no value in the UI."""
    return ZendeskResource(subdomain=dg.EnvVar(ZendeskSettings.env("subdomain")),
                           email=dg.EnvVar(ZendeskSettings.env("email")),
                           api_token=dg.EnvVar(ZendeskSettings.env("api_token")))


def explain(exc: BaseException) -> str | None:
    """One line for the failures a person can fix (the token, the e-mail, the subdomain), naming
    the variable."""
    response = getattr(exc, "response", None) if isinstance(exc, HTTPError) else None
    if response is None:
        return None
    status = response.status_code
    token, email, subdomain = (ZendeskSettings.env(n) for n in ("api_token", "email", "subdomain"))
    if status == 401:
        return (f"Zendesk refused the API token (401 Unauthorized): set {token} to an API token of the account "
                f"{subdomain} names, and {email} to the e-mail of an agent there (token access must be on)")
    if status == 403:
        return (f"Zendesk denied access (403 Forbidden): the agent {email} names may not export tickets or "
                f"list organizations (the incremental export needs an admin)")
    if status == 404:
        return f"no Zendesk API at {response.url.split('?')[0]} (404 Not Found): check {subdomain}"
    if status == 429 or status >= 500:
        return f"Zendesk answered {status} to every retry: the next run resumes from the saved cursor"
    return None

"""Freshdesk tickets and companies, landed with dlt's REST API source.

What it pulls (Freshdesk API v2, https://developers.freshdesk.com/api/):

- ``tickets``: ``GET /api/v2/tickets?updated_since=...&order_by=updated_at&order_type=asc
  &include=stats&per_page=100&page=N``, merged on ``id``. The cursor is ``updated_at``
  (`dlt.sources.incremental` through the REST source's ``incremental`` parameter): each run asks
  for the tickets updated since the last one it saw, less `LAG_SECONDS`, and dlt keeps that cursor
  in the dataset's state. ``include=stats`` brings ``stats.first_responded_at``, ``stats.resolved_at`` and
  ``stats.closed_at`` (landed as ``stats__first_responded_at`` ...).
- ``companies``: ``GET /api/v2/companies?per_page=100&page=N``, replaced on every run (the list
  has no updated-since filter); the mapping reads a company's ``account_id`` custom field, or its
  name, as the ticket's account.

Pages follow the ``link: <...>; rel="next"`` header Freshdesk sends while more pages exist
(dlt's ``header_link`` paginator). Retries are dlt's requests client: 429 and 5xx responses and
dropped connections are retried with exponential backoff, a ``Retry-After`` header sets the wait.

Authentication is the API key as the basic-auth user with the password ``X``. The key comes from
``FRESHDESK_API_KEY`` (bound with ``dg.EnvVar`` in the Dagster resource) and is never logged or put
in metadata or errors: a refused key ends in one line naming the variable (`explain`).
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import dlt
from dlt.extract.source import DltSource
from dlt.sources.helpers.requests import Client
from dlt.sources.rest_api import rest_api_resources
from requests import HTTPError, Session

from connectors.landing.pipeline import LandingError, site_url
from connectors.settings import FreshdeskSettings

#: The dataset (schema) the tables land in, and the dlt source's name.
DATASET = "freshdesk"
#: The system's name among the assets' kinds, and the key of its account resource.
SYSTEM = "freshdesk"
RESOURCE_KEY = "freshdesk_account"
#: First ``updated_since`` of a first pull (Freshdesk lists only the last 30 days without one).
INITIAL_UPDATED_SINCE = "2000-01-01T00:00:00Z"
PER_PAGE = 100
#: Seconds each pull reaches back before the saved cursor (dlt's incremental ``lag``). Freshdesk's
#: ``updated_at`` has whole seconds: a ticket changed again within the second the last pull ended
#: keeps its ``updated_at``, and dlt, which drops rows at the cursor it has already seen, would
#: skip the change. Reading the last minute again costs a page at most; rows merge on ``id``.
LAG_SECONDS = 60
#: Attempts per request (the first and the retries) and the longest wait between two, in seconds.
MAX_ATTEMPTS = 6
MAX_RETRY_WAIT = 300

#: Columns the default mapping reads that a pull need not contain (no ticket resolved yet, no
#: company with the custom field): declared, so the tables always have them.
TICKET_COLUMNS = {
    "company_id": {"data_type": "bigint", "nullable": True},
    "type": {"data_type": "text", "nullable": True},
    "is_escalated": {"data_type": "bool", "nullable": True},
    "updated_at": {"data_type": "timestamp", "nullable": False},
    "stats__first_responded_at": {"data_type": "timestamp", "nullable": True},
    "stats__resolved_at": {"data_type": "timestamp", "nullable": True},
    "stats__closed_at": {"data_type": "timestamp", "nullable": True},
}
COMPANY_COLUMNS = {
    "name": {"data_type": "text", "nullable": True},
    "custom_fields__account_id": {"data_type": "text", "nullable": True},
}

#: One line per resource, for the Dagster assets.
DESCRIPTIONS = {
    "tickets": "Freshdesk tickets as landed: merged on id, pulled by updated_at since dlt's saved cursor",
    "companies": "Freshdesk companies as landed (replaced each run): the tickets' accounts",
}


def base_url(domain: str) -> str:
    """``acme`` or ``acme.freshdesk.com`` (or a custom host) -> ``https://acme.freshdesk.com/api/v2/``."""
    return site_url(domain, "freshdesk.com") + "/api/v2/"


def http_session(max_attempts: int = MAX_ATTEMPTS) -> Session:
    """dlt's retrying requests session (429 / 5xx / connection errors; Retry-After honoured)."""
    return Client(raise_for_status=False, request_max_attempts=max_attempts,
                  request_max_retry_delay=MAX_RETRY_WAIT).session


def freshdesk_source(domain: str, api_key: str, *, initial_updated_since: str = INITIAL_UPDATED_SINCE,
                     session: Session | None = None) -> DltSource:
    """The dlt source of one Freshdesk account (resources ``tickets`` and ``companies``)."""

    @dlt.source(name=DATASET, max_table_nesting=1)
    def freshdesk() -> Any:
        return rest_api_resources({
            "client": {
                "base_url": base_url(domain),
                "auth": {"type": "http_basic", "username": api_key, "password": "X"},
                "paginator": {"type": "header_link"},
                "session": session or http_session(),
            },
            "resource_defaults": {
                "primary_key": "id",
                "write_disposition": "merge",
                "endpoint": {"params": {"per_page": PER_PAGE}},
            },
            "resources": [
                {
                    "name": "tickets",
                    "columns": TICKET_COLUMNS,
                    "endpoint": {
                        "path": "tickets",
                        "params": {"include": "stats", "order_by": "updated_at", "order_type": "asc"},
                        "incremental": {
                            "start_param": "updated_since",
                            "cursor_path": "updated_at",
                            "initial_value": initial_updated_since,
                            "lag": LAG_SECONDS,
                        },
                    },
                },
                {
                    "name": "companies",
                    "write_disposition": "replace",
                    "columns": COMPANY_COLUMNS,
                    "endpoint": {"path": "companies"},
                },
            ],
        })

    return freshdesk()


class FreshdeskResource(dg.ConfigurableResource):
    """The Freshdesk account to land, bound with ``dg.EnvVar("FRESHDESK_DOMAIN")`` and
    ``dg.EnvVar("FRESHDESK_API_KEY")`` (`pipelines.resources`): the key never reaches the UI."""

    domain: str = ""
    api_key: str = ""

    def source(self) -> DltSource:
        """The dlt source; an unset variable is refused with one line naming it."""
        for name in ("domain", "api_key"):
            if not getattr(self, name):
                raise LandingError(f"Freshdesk is a landing source but {FreshdeskSettings.env(name)} is not set")
        return freshdesk_source(self.domain, self.api_key)


def definition_source() -> DltSource:
    """The source as the asset definitions read it (its resource names): no real credentials."""
    return freshdesk_source("example", "unused-at-definition-time")


def bound_resource() -> FreshdeskResource:
    """The account resource with its variables bound by name (`dg.EnvVar`): no value in the UI."""
    return FreshdeskResource(domain=dg.EnvVar(FreshdeskSettings.env("domain")),
                             api_key=dg.EnvVar(FreshdeskSettings.env("api_key")))


def explain(exc: BaseException) -> str | None:
    """One line for the failures a person can fix (the key, the domain), naming the variable."""
    response = getattr(exc, "response", None) if isinstance(exc, HTTPError) else None
    if response is None:
        return None
    status = response.status_code
    key, domain = FreshdeskSettings.env("api_key"), FreshdeskSettings.env("domain")
    if status == 401:
        return f"Freshdesk refused the API key (401 Unauthorized): set {key} to an API key of the account {domain} names"
    if status == 403:
        return (f"Freshdesk denied access (403 Forbidden): the user of the API key in {key} may not read "
                f"tickets or companies, or API access is off for the account {domain} names")
    if status == 404:
        return f"no Freshdesk API at {response.url.split('?')[0]} (404 Not Found): check {domain}"
    if status == 429 or status >= 500:
        return f"Freshdesk answered {status} to every retry: the next run resumes from the saved cursor"
    return None

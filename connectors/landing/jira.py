"""Jira Service Management Cloud issues and organizations, landed with dlt's REST API source.

What it pulls (Jira Cloud REST API v3 and the Service Management API,
https://developer.atlassian.com/cloud/jira/platform/rest/v3/ and /cloud/jira/service-desk/rest/):

- ``issues``: ``GET /rest/api/3/search/jql`` (the enhanced search; the old ``/rest/api/3/search``
  with ``startAt`` is being removed) with
  ``jql=project in ("SUP") AND updated >= "yyyy-MM-dd HH:mm" ORDER BY updated ASC`` (every
  service-desk project, ``projectType = "service_desk"``, when `JIRA_PROJECTS` is unset),
  ``fields`` limited to what the default mapping reads (`issue_fields`), 100 a page, following
  ``nextPageToken`` until a page comes without one (dlt's ``cursor`` paginator); merged on ``id``.
  The cursor is ``fields.updated`` (`dlt.sources.incremental` through the REST source's
  ``incremental``), rendered into the JQL as a minute in the API account's time zone
  (`JIRA_TIMEZONE`, `jql_minute`), less `LAG_SECONDS`.
- ``organizations``: ``GET /rest/servicedeskapi/organization?start=N&limit=50``, the ``values``
  of each page until ``isLastPage`` (`LastPagePaginator`), replaced on every run: an issue's
  organization is its account.

Each issue lands as one flat row (`flatten_issue`, the REST source's ``processing_steps`` map):
the mapping language reads columns, and the fields it needs sit in nested objects and lists
(``status.statusCategory.key``, the first of the Organizations field's list, the request type's
name, and the SLA fields' ``completedCycles[].stopTime`` / ``breached``). Reading them here
keeps the mapping a plain SELECT and the table one row per issue; the labels stay a JSON list.

Why `LAG_SECONDS` is five minutes. JQL compares ``updated`` to the minute: the rendered start is
the cursor's minute, so the second and milliseconds of the last pull's newest issue are read
again, never skipped. That alone would need no lag; what does is the search index: Jira's
search is eventually consistent (an issue changed at 10:00:20 may reach the index after one
changed at 10:00:25 has been found), so the newest ``updated`` a pull saw is no proof that
everything before it was visible. Reading the last five minutes again covers the index's delay
with a wide margin for a page or two more per run; rows merge on ``id``, so nothing doubles.

Time zones. Jira reads the dates in a JQL query in the time zone of the account that asks, and
returns ``updated`` with that zone's offset. The cursor is turned into that zone's wall clock
(`JIRA_TIMEZONE`, default ``UTC``; set it to the API account's profile time zone, or set that
profile to UTC): a wrong zone would shift the window by hours.

Authentication is basic auth with the Atlassian account's e-mail (`JIRA_EMAIL`) and an API token
(`JIRA_API_TOKEN`, bound with ``dg.EnvVar`` and never logged, put in metadata or errors). 429
and 5xx answers and dropped connections are retried by dlt's requests client (exponential
backoff; ``Retry-After`` sets the wait); a refused token ends in one line naming the variables
(`explain`).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
import dlt
from dlt.extract.source import DltSource
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client.paginators import OffsetPaginator
from dlt.sources.rest_api import rest_api_resources
from requests import HTTPError, Response, Session

from connectors.landing.pipeline import LandingError, site_url
from connectors.settings import JiraSettings, current

#: The dataset (schema) the tables land in, and the dlt source's name.
DATASET = "jira"
#: The system's name among the assets' kinds, and the key of its site resource.
SYSTEM = "jira"
RESOURCE_KEY = "jira_site"
#: The ``updated`` of a first pull (as the flat row keeps it: UTC, milliseconds).
INITIAL_UPDATED = "2000-01-01T00:00:00.000+00:00"
PAGE_SIZE = 100
ORGANIZATION_PAGE_SIZE = 50
#: Seconds each pull reaches back before the saved cursor (see the module docs: the search index).
LAG_SECONDS = 300
#: Attempts per request (the first and the retries) and the longest wait between two, in seconds.
MAX_ATTEMPTS = 6
MAX_RETRY_WAIT = 300

_PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,254}$")

#: The flat issue row (`flatten_issue`), declared so the table has every column the mapping
#: reads even before any issue has one set.
ISSUE_COLUMNS = {
    "id": {"data_type": "text", "nullable": False},
    "key": {"data_type": "text", "nullable": True},
    "project_key": {"data_type": "text", "nullable": True},
    "status": {"data_type": "text", "nullable": True},
    "status_category": {"data_type": "text", "nullable": True},
    "priority": {"data_type": "text", "nullable": True},
    "created": {"data_type": "timestamp", "nullable": True},
    "updated": {"data_type": "timestamp", "nullable": False},
    "resolutiondate": {"data_type": "timestamp", "nullable": True},
    "organization_id": {"data_type": "text", "nullable": True},
    "organization_name": {"data_type": "text", "nullable": True},
    "request_type": {"data_type": "text", "nullable": True},
    "first_response_at": {"data_type": "timestamp", "nullable": True},
    "first_response_breached": {"data_type": "bool", "nullable": True},
    "resolution_breached": {"data_type": "bool", "nullable": True},
    "labels": {"data_type": "json", "nullable": True},
}
ORGANIZATION_COLUMNS = {
    "id": {"data_type": "text", "nullable": False},
    "name": {"data_type": "text", "nullable": True},
}

#: One line per resource, for the Dagster assets.
DESCRIPTIONS = {
    "issues": "Jira Service Management issues as landed, a flat row each: merged on id, by updated since the cursor",
    "organizations": "Jira Service Management organizations as landed (replaced each run): the issues' accounts",
}


def base_url(site: str) -> str:
    """``acme``, ``acme.atlassian.net`` or ``https://acme.atlassian.net/`` -> ``https://acme.atlassian.net/rest/``."""
    return site_url(site, "atlassian.net") + "/rest/"


def http_session(max_attempts: int = MAX_ATTEMPTS) -> Session:
    """dlt's retrying requests session (429 / 5xx / connection errors; Retry-After honoured)."""
    return Client(raise_for_status=False, request_max_attempts=max_attempts,
                  request_max_retry_delay=MAX_RETRY_WAIT).session


class LastPagePaginator(OffsetPaginator):
    """The Service Management API's paging: ``start`` / ``limit``, until a page says
    ``isLastPage`` (dlt's offset paginator; only the end of the list is read differently)."""

    def __init__(self, limit: int = ORGANIZATION_PAGE_SIZE) -> None:
        super().__init__(limit=limit, offset_param="start", limit_param="limit", total_path=None)

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        super().update_state(response, data)
        if response.json().get("isLastPage", True):
            self._has_next_page = False


def zone(name: str) -> ZoneInfo:
    """`JIRA_TIMEZONE` as a zone; an unknown name is one line naming the variable."""
    try:
        return ZoneInfo(name.strip() or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise LandingError(f"{JiraSettings.env('timezone')}={name!r} is not a time zone name (e.g. UTC, Europe/Berlin)") from None


def _instant(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def jql_minute(cursor: str, tz: ZoneInfo) -> str:
    """A cursor (``2026-06-01T09:07:41.120+0000``) as JQL's ``yyyy-MM-dd HH:mm`` in `tz`
    (truncated to the minute: the start of the window is never later than the cursor)."""
    return _instant(cursor).astimezone(tz).strftime("%Y-%m-%d %H:%M")


def jql(projects: tuple[str, ...]) -> str:
    """The search, with dlt's placeholder for the lagged cursor (``{incremental.last_value}``)."""
    quoted = ", ".join(f'"{key}"' for key in projects)
    scope = f"project in ({quoted})" if projects else 'projectType = "service_desk"'
    return scope + ' AND updated >= "{incremental.last_value}" ORDER BY updated ASC'


def project_keys(text: str) -> tuple[str, ...]:
    """`JIRA_PROJECTS` as project keys; anything that is not one is refused naming the variable."""
    keys = tuple(dict.fromkeys(k.strip().upper() for k in (text or "").split(",") if k.strip()))
    bad = [k for k in keys if not _PROJECT_KEY.match(k)]
    if bad:
        raise LandingError(f"{JiraSettings.env('projects')}: {bad[0]!r} is not a Jira project key (letters, digits, _)")
    return keys


def _utc(text: str | None) -> str | None:
    value = _instant(text)
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds") if value else None


def _cycles(sla: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    sla = sla if isinstance(sla, dict) else {}
    return list(sla.get("completedCycles") or []), sla.get("ongoingCycle") or {}


def _first_stop(sla: Any) -> str | None:
    """When an SLA's first completed cycle stopped (UTC), from its ``epochMillis``."""
    completed, _ = _cycles(sla)
    millis = ((completed[0].get("stopTime") or {}).get("epochMillis")) if completed else None
    stopped = datetime.fromtimestamp(millis / 1000, tz=timezone.utc) if millis is not None else None
    return stopped.isoformat(timespec="milliseconds") if stopped else None


def _breached(sla: Any) -> bool | None:
    """Whether any cycle of an SLA breached its goal (None: the issue has no such SLA)."""
    completed, ongoing = _cycles(sla)
    if not completed and not ongoing:
        return None
    return any(bool(c.get("breached")) for c in completed) or bool(ongoing.get("breached"))


def issue_fields(settings: JiraSettings) -> list[str]:
    """The fields the search asks for: the system fields and the configured custom fields."""
    return ["project", "status", "priority", "created", "updated", "resolutiondate", "labels",
            settings.organization_field, settings.request_type_field, settings.first_response_field,
            settings.resolution_field]


def flatten_issue(issue: dict[str, Any], settings: JiraSettings) -> dict[str, Any]:
    """One issue of the search as the flat row `ISSUE_COLUMNS` declares (see the module docs)."""
    f = issue.get("fields") or {}
    status = f.get("status") or {}
    organizations = f.get(settings.organization_field) or []
    first = organizations[0] if organizations and isinstance(organizations[0], dict) else {}
    request_type = (f.get(settings.request_type_field) or {}).get("requestType") or {}
    return {
        "id": str(issue["id"]),
        "key": issue.get("key"),
        "project_key": (f.get("project") or {}).get("key"),
        "status": status.get("name"),
        "status_category": (status.get("statusCategory") or {}).get("key"),
        "priority": (f.get("priority") or {}).get("name"),
        "created": _utc(f.get("created")),
        "updated": _utc(f.get("updated")),
        "resolutiondate": _utc(f.get("resolutiondate")),
        "organization_id": str(first["id"]) if first.get("id") is not None else None,
        "organization_name": first.get("name"),
        "request_type": request_type.get("name"),
        "first_response_at": _first_stop(f.get(settings.first_response_field)),
        "first_response_breached": _breached(f.get(settings.first_response_field)),
        "resolution_breached": _breached(f.get(settings.resolution_field)),
        "labels": list(f.get("labels") or []),
    }


def jira_source(site: str, email: str, api_token: str, *, settings: JiraSettings | None = None,
                initial_updated: str = INITIAL_UPDATED, page_size: int = PAGE_SIZE,
                session: Session | None = None) -> DltSource:
    """The dlt source of one Jira site (resources ``issues`` and ``organizations``); `settings`
    gives the projects, the custom field ids and the time zone (default: the documented defaults)."""
    settings = settings or JiraSettings()
    tz = zone(settings.timezone)
    projects = project_keys(settings.projects)

    @dlt.source(name=DATASET, max_table_nesting=0)
    def jira() -> Any:
        return rest_api_resources({
            "client": {
                "base_url": base_url(site),
                "auth": {"type": "http_basic", "username": email, "password": api_token},
                "session": session or http_session(),
            },
            "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
            "resources": [
                {
                    "name": "issues",
                    "columns": ISSUE_COLUMNS,
                    "endpoint": {
                        "path": "api/3/search/jql",
                        "data_selector": "issues",
                        "paginator": {"type": "cursor", "cursor_path": "nextPageToken",
                                      "cursor_param": "nextPageToken"},
                        "params": {"jql": jql(projects), "fields": ",".join(issue_fields(settings)),
                                   "maxResults": page_size},
                        "incremental": {
                            "cursor_path": "updated",
                            "initial_value": initial_updated,
                            "lag": LAG_SECONDS,
                            "convert": lambda cursor: jql_minute(cursor, tz),
                        },
                    },
                    "processing_steps": [{"map": lambda issue: flatten_issue(issue, settings)}],
                },
                {
                    "name": "organizations",
                    "write_disposition": "replace",
                    "columns": ORGANIZATION_COLUMNS,
                    "endpoint": {"path": "servicedeskapi/organization", "data_selector": "values",
                                 "paginator": LastPagePaginator()},
                    "processing_steps": [{"map": lambda org: {"id": str(org["id"]), "name": org.get("name")}}],
                },
            ],
        })

    return jira()


class JiraResource(dg.ConfigurableResource):
    """The Jira site to land, bound with ``dg.EnvVar`` for `JIRA_BASE_URL`, `JIRA_EMAIL` and
    `JIRA_API_TOKEN` (`pipelines.resources`): the token never reaches the UI. The projects, field
    ids and time zone are plain settings (`connectors.settings.JiraSettings`)."""

    base_url: str = ""
    email: str = ""
    api_token: str = ""

    def source(self) -> DltSource:
        """The dlt source; an unset variable is refused with one line naming it."""
        missing = [JiraSettings.env(n) for n in ("base_url", "email", "api_token") if not getattr(self, n)]
        if missing:
            raise LandingError(f"Jira is a landing source but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set")
        return jira_source(self.base_url, self.email, self.api_token, settings=current().jira)


def definition_source() -> DltSource:
    """The source as the asset definitions read it (its resource names): no real credentials."""
    return jira_source("example", "unused@example.com", "unused-at-definition-time")


def bound_resource() -> JiraResource:
    """The site resource with its variables bound by name (`dg.EnvVar`): no value in the UI."""
    return JiraResource(base_url=dg.EnvVar(JiraSettings.env("base_url")), email=dg.EnvVar(JiraSettings.env("email")),
                        api_token=dg.EnvVar(JiraSettings.env("api_token")))


def explain(exc: BaseException) -> str | None:
    """One line for the failures a person can fix (the token, the site, the projects), naming the variable."""
    response = getattr(exc, "response", None) if isinstance(exc, HTTPError) else None
    if response is None:
        return None
    status = response.status_code
    email, token, site = (JiraSettings.env(n) for n in ("email", "api_token", "base_url"))
    if status == 401:
        return (f"Jira refused the credentials (401 Unauthorized): set {email} to an Atlassian account's e-mail "
                f"and {token} to one of its API tokens")
    if status == 403:
        return (f"Jira denied access (403 Forbidden): the account in {email} may not browse the projects "
                f"or the service desks' organizations on the site {site} names")
    if status == 404:
        return f"no Jira REST API at {response.url.split('?')[0]} (404 Not Found): check {site}"
    if status == 400:
        return (f"Jira rejected the search (400 Bad Request): check {JiraSettings.env('projects')} and the "
                f"custom field ids ({JiraSettings.env('organization_field')} ...)")
    if status == 429 or status >= 500:
        return f"Jira answered {status} to every retry: the next run resumes from the saved cursor"
    return None

"""ServiceNow incidents, customer service cases, groups and accounts, landed with dlt's REST API source.

What it pulls (the Table API, ``GET /api/now/table/{table}``, ServiceNow's REST API reference):

- ``incidents`` (table ``incident``) and ``cases`` (``sn_customerservice_case``, Customer Service
  Management): ``sysparm_query=sys_updated_on>=yyyy-MM-dd HH:mm:ss^ORDERBYsys_updated_on``,
  ``sysparm_fields`` (what the default mapping reads: `INCIDENT_FIELDS`, `CASE_FIELDS`),
  ``sysparm_display_value=false`` (codes, not labels: state ``6``, not "Resolved"; times in UTC),
  ``sysparm_exclude_reference_link=true`` (a reference is its ``sys_id``), ``sysparm_limit``
  rows a page, following the ``Link: <...>;rel="next"`` header ServiceNow sends with each page
  (dlt's ``header_link`` paginator; the next link carries ``sysparm_offset``); merged on
  ``sys_id``. The cursor is ``sys_updated_on`` (`dlt.sources.incremental` through the REST
  source's ``incremental``), less `LAG_SECONDS`.
- ``groups`` (``sys_user_group``: the assignment groups) and ``accounts`` (``customer_account``),
  replaced on every run.

Each row is tidied by the REST source's ``processing_steps`` map (`tidy`): ServiceNow answers
every value as text, an empty field as ``""``, and times as ``yyyy-MM-dd HH:mm:ss`` (UTC with
``sysparm_display_value=false``). The map turns empty text into null, the time fields into ISO
8601 UTC (``2026-06-01T09:00:00+00:00``: typed as timestamps, and a format dlt's ``lag`` reads)
and the codes (``state``, ``priority``, ``escalation``) into numbers; the cursor is read after it.

Why `LAG_SECONDS`: ``sys_updated_on`` has whole seconds. A record changed again within the second
the last pull ended keeps its ``sys_updated_on``, and dlt, which drops rows at the cursor it has
already seen, would skip the change; and a record whose update was stamped before the pull read
its page but committed after it carries a time older than the cursor. Reading the last minute
again costs a page at most; rows merge on ``sys_id``. The query's date is plain text, which
ServiceNow compares as UTC (only ``javascript:gs.dateGenerate(...)`` would read the user's time
zone), the zone the values come back in: the integration user's own time zone does not matter.

What offset paging cannot do: a record updated while a pull pages moves to the end of the
ordered list, and the records behind it move up by one, so one of them can be passed over in
that pull (the Table API has no page token). The next pulls read it once it changes again; a
full reload (a new dataset, or the pipeline's state dropped) reads everything.

Authentication is basic auth with the integration user (`SERVICENOW_USER`, `SERVICENOW_PASSWORD`)
or an OAuth access token (`SERVICENOW_TOKEN`, a bearer token; it wins when both are set). The
secrets are bound with ``dg.EnvVar`` and never logged, put in metadata or errors. 429 and 5xx
answers and dropped connections are retried by dlt's requests client (exponential backoff,
``Retry-After`` honoured); a refused login ends in one line naming the variables (`explain`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import dagster as dg
import dlt
from dlt.extract.source import DltSource
from dlt.sources.helpers.requests import Client
from dlt.sources.rest_api import rest_api_resources
from requests import HTTPError, Session

from connectors.landing.pipeline import LandingError, site_url
from connectors.settings import ServiceNowSettings, current

#: The dataset (schema) the tables land in, and the dlt source's name.
DATASET = "servicenow"
#: The system's name among the assets' kinds, and the key of its instance resource.
SYSTEM = "servicenow"
RESOURCE_KEY = "servicenow_instance"
#: ``sys_updated_on`` of a first pull (as `tidy` keeps it: ISO 8601 UTC).
INITIAL_UPDATED = "2000-01-01T00:00:00+00:00"
PAGE_SIZE = 100
#: Seconds each pull reaches back before the saved cursor (see the module docs).
LAG_SECONDS = 60
MAX_ATTEMPTS = 6
MAX_RETRY_WAIT = 300

#: ServiceNow's time format with ``sysparm_display_value=false`` (UTC).
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
TIME_FIELDS = ("opened_at", "resolved_at", "closed_at", "sys_created_on", "sys_updated_on")
CODE_FIELDS = ("state", "priority", "escalation")
_TASK_FIELDS = ("sys_id", "number", "state", "priority", "escalation", "category", "assignment_group",
                "opened_at", "resolved_at", "closed_at", "sys_created_on", "sys_updated_on")
#: The fields each table is asked for: the incident's customer is its ``company``, the case's its ``account``.
INCIDENT_FIELDS = (*_TASK_FIELDS, "company")
CASE_FIELDS = (*_TASK_FIELDS, "account")
GROUP_FIELDS = ("sys_id", "name", "active")
ACCOUNT_FIELDS = ("sys_id", "name", "number")


def _columns(fields: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Column hints: every asked field is a column from the first pull on, typed."""
    kinds = {**{f: "timestamp" for f in TIME_FIELDS}, **{f: "bigint" for f in CODE_FIELDS}, "active": "bool"}
    return {f: {"data_type": kinds.get(f, "text"), "nullable": f != "sys_id"} for f in fields}


#: One line per resource, for the Dagster assets.
DESCRIPTIONS = {
    "incidents": "ServiceNow incidents as landed: merged on sys_id, by sys_updated_on since dlt's saved cursor",
    "cases": "ServiceNow customer service cases as landed: merged on sys_id, by sys_updated_on since the cursor",
    "groups": "ServiceNow assignment groups (sys_user_group) as landed, replaced each run",
    "accounts": "ServiceNow customer accounts (customer_account) as landed, replaced each run: the records' accounts",
}


def base_url(instance: str) -> str:
    """``acme`` or ``acme.service-now.com`` (or a custom host) -> ``https://acme.service-now.com/api/``."""
    return site_url(instance, "service-now.com") + "/api/"


def http_session(max_attempts: int = MAX_ATTEMPTS) -> Session:
    """dlt's retrying requests session (429 / 5xx / connection errors; Retry-After honoured)."""
    return Client(raise_for_status=False, request_max_attempts=max_attempts,
                  request_max_retry_delay=MAX_RETRY_WAIT).session


def tidy(row: dict[str, Any]) -> dict[str, Any]:
    """One Table API row as landed: ``""`` -> null, times -> ISO 8601 UTC, codes -> numbers."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value == "":
            value = None
        elif key in TIME_FIELDS and isinstance(value, str):
            value = datetime.strptime(value, TIME_FORMAT).replace(tzinfo=timezone.utc).isoformat()
        elif key in CODE_FIELDS and isinstance(value, str):
            value = int(value) if value.lstrip("-").isdigit() else None
        elif key == "active" and isinstance(value, str):
            value = value == "true"
        out[key] = value
    return out


def query_time(cursor: str) -> str:
    """The cursor (ISO 8601) as the encoded query's ``yyyy-MM-dd HH:mm:ss`` (UTC)."""
    return datetime.fromisoformat(cursor).astimezone(timezone.utc).strftime(TIME_FORMAT)


def _table(name: str, table: str, fields: tuple[str, ...], page_size: int, *,
           incremental: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"sysparm_fields": ",".join(fields), "sysparm_limit": page_size,
                              "sysparm_display_value": "false", "sysparm_exclude_reference_link": "true"}
    endpoint: dict[str, Any] = {"path": f"now/table/{table}", "data_selector": "result", "params": params}
    resource: dict[str, Any] = {"name": name, "columns": _columns(fields), "endpoint": endpoint,
                                "processing_steps": [{"map": tidy}]}
    if incremental:
        params["sysparm_query"] = "sys_updated_on>={incremental.last_value}^ORDERBYsys_updated_on"
        endpoint["incremental"] = {"cursor_path": "sys_updated_on", "initial_value": incremental,
                                   "lag": LAG_SECONDS, "convert": query_time}
    else:
        params["sysparm_query"] = "ORDERBYsys_id"
        resource["write_disposition"] = "replace"
    return resource


def servicenow_source(instance: str, *, user: str = "", password: str = "", token: str = "",
                      initial_updated: str = INITIAL_UPDATED, page_size: int = PAGE_SIZE,
                      session: Session | None = None) -> DltSource:
    """The dlt source of one ServiceNow instance (``incidents``, ``cases``, ``groups``,
    ``accounts``); a `token` is sent as a bearer token, else `user` and `password` as basic auth."""
    auth = {"type": "bearer", "token": token} if token else {"type": "http_basic", "username": user, "password": password}

    @dlt.source(name=DATASET, max_table_nesting=0)
    def servicenow() -> Any:
        return rest_api_resources({
            "client": {
                "base_url": base_url(instance),
                "auth": auth,
                "paginator": {"type": "header_link"},
                "session": session or http_session(),
            },
            "resource_defaults": {"primary_key": "sys_id", "write_disposition": "merge"},
            "resources": [
                _table("incidents", "incident", INCIDENT_FIELDS, page_size, incremental=initial_updated),
                _table("cases", "sn_customerservice_case", CASE_FIELDS, page_size, incremental=initial_updated),
                _table("groups", "sys_user_group", GROUP_FIELDS, page_size),
                _table("accounts", "customer_account", ACCOUNT_FIELDS, page_size),
            ],
        })

    return servicenow()


class ServiceNowResource(dg.ConfigurableResource):
    """The ServiceNow instance to land, bound with ``dg.EnvVar`` for `SERVICENOW_INSTANCE`,
    `SERVICENOW_USER`, `SERVICENOW_PASSWORD` and `SERVICENOW_TOKEN` (`pipelines.resources`):
    neither the password nor the token reaches the UI."""

    instance: str = ""
    user: str = ""
    password: str = ""
    token: str = ""

    def source(self) -> DltSource:
        """The dlt source; an unset variable is refused with one line naming it."""
        env = ServiceNowSettings.env
        if not self.instance:
            raise LandingError(f"ServiceNow is a landing source but {env('instance')} is not set")
        if not self.token and not (self.user and self.password):
            raise LandingError(f"ServiceNow is a landing source but neither {env('user')} and {env('password')} "
                               f"nor {env('token')} are set")
        return servicenow_source(self.instance, user=self.user, password=self.password, token=self.token)


def definition_source() -> DltSource:
    """The source as the asset definitions read it (its resource names): no real credentials."""
    return servicenow_source("example", user="unused", password="unused-at-definition-time")


def bound_resource() -> ServiceNowResource:
    """The instance resource with its variables bound by name (`dg.EnvVar`): no value in the UI.
    The login is either-or (user and password, or a token), and `dg.EnvVar` of an unset variable
    fails the run, so a login variable that is unset is bound as empty."""
    env, settings = ServiceNowSettings.env, current().servicenow

    def bound(name: str) -> Any:
        return dg.EnvVar(env(name)) if getattr(settings, name) else ""

    return ServiceNowResource(instance=dg.EnvVar(env("instance")), user=bound("user"), password=bound("password"),
                              token=bound("token"))


def explain(exc: BaseException) -> str | None:
    """One line for the failures a person can fix (the login, the instance, the roles), naming the variables."""
    response = getattr(exc, "response", None) if isinstance(exc, HTTPError) else None
    if response is None:
        return None
    status = response.status_code
    env = ServiceNowSettings.env
    if status == 401:
        return (f"ServiceNow refused the login (401 Unauthorized): set {env('user')} and {env('password')} to an "
                f"integration user's, or {env('token')} to a valid OAuth access token")
    if status == 403:
        return (f"ServiceNow denied access (403 Forbidden): the user in {env('user')} (or the token in {env('token')}) "
                f"may not read incident, sn_customerservice_case, sys_user_group or customer_account")
    if status in (400, 404):
        return (f"ServiceNow answered {status} at {response.url.split('?')[0]}: check {env('instance')} "
                f"(and that Customer Service Management is installed there)")
    if status == 429 or status >= 500:
        return f"ServiceNow answered {status} to every retry: the next run resumes from the saved cursor"
    return None

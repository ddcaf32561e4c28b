"""HubSpot companies and deals, landed with dlt's REST API source from the CRM v3 API.

What it pulls (HubSpot CRM API, https://developers.hubspot.com/docs/api/crm/search and
https://developers.hubspot.com/docs/api/crm/associations):

- ``companies``: ``POST /crm/v3/objects/companies/search`` with the filter
  ``hs_lastmodifieddate GTE <cursor>``, sorted by ``hs_lastmodifieddate`` ascending, 100 a page
  (``after`` in the body, from ``paging.next.after``), the properties `COMPANY_PROPERTIES` (and
  ``RESCUE_HUBSPOT_COMPANY_PROPERTIES``), merged on ``id``. The cursor is ``hs_lastmodifieddate``
  (`dlt.sources.incremental` through the REST source's ``incremental``, kept in the dataset's
  state), less `LAG_SECONDS`: HubSpot's search index trails its writes by a few seconds, so a
  record changed just before a pull ended can surface later with an older date.
- ``deals``: the same search on deals (`DEAL_PROPERTIES`: ``amount``, ``closedate``,
  ``dealstage``, ``pipeline``, ``dealtype``, ``hs_is_closed``, ``hs_is_closed_won`` ...), each
  page's deals then given their company: ``POST /crm/v4/associations/deals/companies/batch/read``
  with the page's ids (one request per page, not per deal); ``company_id`` is the primary
  company (association type 5), else the first associated one. An association changed without
  the deal changing is seen at the deal's next change.

The search endpoint answers at most 10,000 results per query (an ``after`` of 10,000 or more is
refused). `SearchPaginator` handles it by moving the cursor: when the next page would pass the cap
it starts the query again, ``GTE`` the last ``hs_lastmodifieddate`` it received, from the first
page. The records at that instant come again (dlt drops the ones it already has; the rest merge on
``id``). Only more than 10,000 records modified in the same millisecond cannot be paged past: that
is refused with one line, not skipped.

Archived (deleted) records are not searched: one archived in HubSpot stays in the landed table as
it last was.

Why dlt's REST API source and not ``hubspot-api-client``: every call here is a JSON POST with a
body cursor, which dlt's source, paginators, ``incremental`` and retrying client do as they come;
the official client would add a second HTTP stack without retries of its own or state.

Retries are dlt's requests client: 429 (HubSpot's ``X-HubSpot-RateLimit-*`` limits; its
``Retry-After`` sets the wait), 5xx and dropped connections are retried with exponential backoff.
Authentication is a private app's access token (``HUBSPOT_ACCESS_TOKEN``, a bearer token bound
with ``dg.EnvVar``), never logged or put in metadata or errors: a refused token is one line naming
the variable (`explain`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dagster as dg
import dlt
from dlt.extract.source import DltSource
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
from dlt.sources.rest_api import rest_api_resources
from requests import HTTPError, Request, Response, Session

from connectors.landing.pipeline import LandingError
from connectors.settings import HubSpotSettings

#: The dataset (schema) the tables land in, and the dlt source's name.
DATASET = "hubspot"
#: The system's name among the assets' kinds, and the key of its account resource.
SYSTEM = "hubspot"
RESOURCE_KEY = "hubspot_account"
BASE_URL = "https://api.hubapi.com/"
#: The first pull's cursor (every record).
INITIAL_MODIFIED = "2000-01-01T00:00:00.000Z"
#: Results per search page (HubSpot's maximum) and per query (the search endpoint's cap).
PER_PAGE = 100
SEARCH_CAP = 10_000
#: Seconds each pull reaches back before the saved cursor (dlt's incremental ``lag``).
LAG_SECONDS = 60
#: Attempts per request (the first and the retries) and the longest wait between two, in seconds.
MAX_ATTEMPTS = 6
MAX_RETRY_WAIT = 300
#: The association type of a deal's primary company (HUBSPOT_DEFINED, deal to company).
PRIMARY_COMPANY_TYPE = 5

COMPANY_PROPERTIES = ("name", "domain", "annualrevenue", "numberofemployees", "industry", "country",
                      "lifecyclestage", "hubspot_owner_id", "createdate", "hs_lastmodifieddate")
DEAL_PROPERTIES = ("dealname", "amount", "closedate", "dealstage", "pipeline", "dealtype", "hs_is_closed",
                   "hs_is_closed_won", "createdate", "hs_lastmodifieddate")
#: HubSpot sends every property as text (a cleared one as ``""``, landed as null: `blank_to_null`):
#: the ones the mapping computes with land typed.
COMPANY_COLUMNS = {
    "properties__name": {"data_type": "text", "nullable": True},
    "properties__annualrevenue": {"data_type": "double", "nullable": True},
    "properties__numberofemployees": {"data_type": "bigint", "nullable": True},
    "properties__createdate": {"data_type": "timestamp", "nullable": True},
    "properties__hs_lastmodifieddate": {"data_type": "timestamp", "nullable": False},
}
DEAL_COLUMNS = {
    "company_id": {"data_type": "text", "nullable": True},
    "properties__amount": {"data_type": "double", "nullable": True},
    "properties__closedate": {"data_type": "timestamp", "nullable": True},
    "properties__dealstage": {"data_type": "text", "nullable": True},
    "properties__dealtype": {"data_type": "text", "nullable": True},
    "properties__pipeline": {"data_type": "text", "nullable": True},
    "properties__hs_is_closed": {"data_type": "bool", "nullable": True},
    "properties__hs_is_closed_won": {"data_type": "bool", "nullable": True},
    "properties__createdate": {"data_type": "timestamp", "nullable": True},
    "properties__hs_lastmodifieddate": {"data_type": "timestamp", "nullable": False},
}

#: One line per resource, for the Dagster assets.
DESCRIPTIONS = {
    "companies": "HubSpot companies as landed: merged on id, searched by hs_lastmodifieddate since dlt's saved cursor",
    "deals": "HubSpot deals as landed, each with its primary company: merged on id, by hs_lastmodifieddate",
}


def _epoch_ms(value: Any) -> str:
    """An instant as HubSpot's search filters take it: milliseconds since the epoch, as text."""
    if isinstance(value, str) and value.isdigit():
        return value
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return str(int(stamp.timestamp() * 1000))


class SearchPaginator(JSONResponseCursorPaginator):
    """``after`` paging of the CRM search endpoint (``paging.next.after`` into the body), and past
    its cap of `cap` results per query: the query starts again from the last modification date
    received (see the module docs). The filter's date is sent as epoch milliseconds."""

    def __init__(self, cap: int = SEARCH_CAP, cursor_property: str = "hs_lastmodifieddate") -> None:
        super().__init__(cursor_path="paging.next.after", cursor_body_path="after")
        self.cap = cap
        self.cursor_property = cursor_property
        self.restarts = 0
        self._window: str | None = None
        self._restart_from: str | None = None

    def _filter(self, request: Request) -> dict[str, Any]:
        for group in (request.json or {}).get("filterGroups", []):
            for item in group.get("filters", []):
                if item.get("propertyName") == self.cursor_property:
                    return item
        raise ValueError(f"the search has no {self.cursor_property} filter")

    def init_request(self, request: Request) -> None:
        item = self._filter(request)
        item["value"] = self._window = _epoch_ms(item["value"])

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        super().update_state(response, data)
        self._restart_from = None
        if self._next_reference is None or int(self._next_reference) < self.cap or not data:
            return
        last = _epoch_ms(data[-1]["properties"][self.cursor_property])
        if last == self._window:
            raise LandingError(f"HubSpot holds more than {self.cap:,} records modified at {self.cursor_property} "
                               f"{last} (ms): the search API cannot page past them")
        self._restart_from = last

    def update_request(self, request: Request) -> None:
        if self._restart_from is None:
            super().update_request(request)
            return
        self._filter(request)["value"] = self._window = self._restart_from
        (request.json or {}).pop("after", None)
        self._restart_from = None
        self.restarts += 1


def http_session(max_attempts: int = MAX_ATTEMPTS) -> Session:
    """dlt's retrying requests session (429 / 5xx / connection errors; Retry-After honoured)."""
    return Client(raise_for_status=False, request_max_attempts=max_attempts,
                  request_max_retry_delay=MAX_RETRY_WAIT).session


def _search(name: str, sobject: str, properties: tuple[str, ...], columns: dict[str, Any], *,
            initial: str, per_page: int, cap: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "columns": columns,
        "processing_steps": [{"map": blank_to_null}],
        **extra,
        "endpoint": {
            "path": f"crm/v3/objects/{sobject}/search",
            "method": "POST",
            "json": {
                "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE",
                                               "value": "{incremental.start_value}"}]}],
                "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                "properties": list(dict.fromkeys(properties)),
                "limit": per_page,
            },
            "data_selector": "results",
            "paginator": SearchPaginator(cap),
            "incremental": {"cursor_path": "properties.hs_lastmodifieddate", "initial_value": initial,
                            "lag": LAG_SECONDS},
        },
    }


def blank_to_null(record: dict[str, Any]) -> dict[str, Any]:
    """A property HubSpot sends as ``""`` (a cleared value) is no value: landed as null, so a
    number's column keeps its type."""
    properties = record.get("properties") or {}
    record["properties"] = {k: (None if v == "" else v) for k, v in properties.items()}
    return record


def _primary_company(targets: list[dict[str, Any]]) -> str | None:
    for target in targets:
        if any(t.get("typeId") == PRIMARY_COMPANY_TYPE for t in target.get("associationTypes", [])):
            return str(target["toObjectId"])
    return str(targets[0]["toObjectId"]) if targets else None


def _properties(extra: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in extra.split(",") if p.strip())


def hubspot_source(access_token: str, *, company_properties: str = "", deal_properties: str = "",
                   initial_modified: str = INITIAL_MODIFIED, per_page: int = PER_PAGE, search_cap: int = SEARCH_CAP,
                   session: Session | None = None, base_url: str = BASE_URL) -> DltSource:
    """The dlt source of one HubSpot account (resources ``companies`` and ``deals``)."""
    session = session or http_session()
    auth = BearerTokenAuth(access_token)

    @dlt.source(name=DATASET, max_table_nesting=1)
    def hubspot() -> Any:
        companies, deal_search = rest_api_resources({
            "client": {"base_url": base_url, "auth": auth, "session": session},
            "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
            "resources": [
                _search("companies", "companies", (*COMPANY_PROPERTIES, *_properties(company_properties)),
                        COMPANY_COLUMNS, initial=initial_modified, per_page=per_page, cap=search_cap),
                _search("deal_search", "deals", (*DEAL_PROPERTIES, *_properties(deal_properties)), {},
                        initial=initial_modified, per_page=per_page, cap=search_cap, selected=False),
            ],
        })
        client = RESTClient(base_url=base_url, auth=auth, session=session)

        @dlt.transformer(data_from=deal_search, name="deals", primary_key="id", write_disposition="merge",
                         columns=DEAL_COLUMNS)
        def deals(page: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
            """Each page of changed deals with its primary company (one batch read per page)."""
            response = client.post("crm/v4/associations/deals/companies/batch/read",
                                   json={"inputs": [{"id": str(d["id"])} for d in page]})
            response.raise_for_status()
            companies_of = {str(r["from"]["id"]): _primary_company(r.get("to", []))
                            for r in response.json().get("results", [])}
            yield [{**d, "company_id": companies_of.get(str(d["id"]))} for d in page]

        return companies, deal_search, deals

    return hubspot()


class HubSpotResource(dg.ConfigurableResource):
    """The HubSpot account to land, bound with ``dg.EnvVar("HUBSPOT_ACCESS_TOKEN")``
    (`pipelines.resources`): the token never reaches the UI."""

    access_token: str = ""
    company_properties: str = ""
    deal_properties: str = ""

    def source(self) -> DltSource:
        """The dlt source; an unset token is refused with one line naming its variable."""
        if not self.access_token:
            raise LandingError(f"HubSpot is a landing source but {HubSpotSettings.env('access_token')} is not set")
        return hubspot_source(self.access_token, company_properties=self.company_properties,
                              deal_properties=self.deal_properties)


def definition_source() -> DltSource:
    """The source as the asset definitions read it (its resource names): no real credentials."""
    return hubspot_source("unused-at-definition-time")


def bound_resource(settings: HubSpotSettings | None = None) -> HubSpotResource:
    """The account resource with its token bound by name (`dg.EnvVar`): no value in the UI."""
    hs = settings or HubSpotSettings.from_env()
    return HubSpotResource(access_token=dg.EnvVar(HubSpotSettings.env("access_token")),
                           company_properties=hs.company_properties, deal_properties=hs.deal_properties)


def explain(exc: BaseException) -> str | None:
    """One line for the failures a person can fix (the token, its scopes), naming the variable."""
    if isinstance(exc, LandingError):      # raised by the source itself (`SearchPaginator`)
        return str(exc)
    response = getattr(exc, "response", None) if isinstance(exc, HTTPError) else None
    if response is None:
        return None
    status = response.status_code
    token = HubSpotSettings.env("access_token")
    if status == 401:
        return f"HubSpot refused the access token (401 Unauthorized): set {token} to a private app's access token"
    if status == 403:
        return (f"HubSpot denied access (403 Forbidden): the private app of the token in {token} needs the scopes "
                f"crm.objects.companies.read and crm.objects.deals.read")
    if status == 429 or status >= 500:
        return f"HubSpot answered {status} to every retry: the next run resumes from the saved cursor"
    if status == 400:
        return (f"HubSpot rejected a search (400 Bad Request): check the property names in "
                f"{HubSpotSettings.env('company_properties')} and {HubSpotSettings.env('deal_properties')}")
    return None

"""A stateful HTTP fake of the HubSpot CRM endpoints the landing source reads, on `responses`.

Shapes from HubSpot's API reference (https://developers.hubspot.com/docs/api/crm/search,
https://developers.hubspot.com/docs/api/crm/associations):

- ``POST /crm/v3/objects/{companies|deals}/search``: a JSON body with ``filterGroups`` (filters
  ``{propertyName, operator, value}``; ``GTE`` on a date takes epoch milliseconds or ISO 8601),
  ``sorts``, ``properties``, ``limit`` (at most 200) and ``after``; the answer is
  ``{"total", "results": [{"id", "properties": {...}, "createdAt", "updatedAt", "archived"}],
  "paging": {"next": {"after", "link"}}}``, ``paging`` only while more results exist. At most
  `search_cap` results per query (10,000 on the real API): an ``after`` at or past it answers
  400 ``VALIDATION_ERROR``;
- ``POST /crm/v4/associations/deals/companies/batch/read``: ``{"inputs": [{"id"}]}`` ->
  ``{"status": "COMPLETE", "results": [{"from": {"id"}, "to": [{"toObjectId", "associationTypes":
  [{"category", "typeId", "label"}]}]}]}`` (deals without a company are left out);
- ``Authorization: Bearer <private app token>``; anything else answers 401
  ``{"status": "error", "category": "INVALID_AUTHENTICATION", ...}``.

Records live in `companies` and `deals` by id; `touch` changes one (a new
``hs_lastmodifieddate``, `step` seconds on). `searches` keeps each search's object, ``after``, filters
and how many results it returned; `faults` (the Salesforce fake's `FaultInjector`) fails a seeded share of requests.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import requests
import responses

from tests.fakes.salesforce_fake import FaultInjector

TOKEN = "pat-na1-test-token-0000"
BASE = "https://api.hubapi.com"
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _instant(value: str) -> datetime:
    if value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _error(status: int, category: str, message: str) -> tuple[int, dict[str, str], str]:
    return status, {"Content-Type": "application/json"}, json.dumps(
        {"status": "error", "message": message, "correlationId": "00000000-fake", "category": category})


@dataclass
class FakeHubSpot:
    companies: dict[str, dict[str, Any]] = field(default_factory=dict)
    deals: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: deal id -> [(company id, association type id)]
    associations: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    token: str = TOKEN
    search_cap: int = 10_000
    faults: FaultInjector = field(default_factory=FaultInjector)
    searches: list[dict[str, Any]] = field(default_factory=list)
    association_reads: list[list[str]] = field(default_factory=list)
    #: Fail every search of this object past this many results (``after``) with this status.
    broken: tuple[str, int, int] | None = None
    now: datetime = T0
    #: Seconds between two changes (`touch`, a new record).
    step: int = 1

    # ------------------------------------------------------------------------------- data

    def _tick(self) -> str:
        self.now += timedelta(seconds=self.step)
        return iso(self.now)

    def add_company(self, company_id: int, **properties: Any) -> dict[str, Any]:
        stamp = self._tick()
        record = {"id": str(company_id), "properties": {
            "name": f"Company {company_id}", "domain": f"c{company_id}.example", "annualrevenue": "120000",
            "numberofemployees": "50", "industry": "COMPUTER_SOFTWARE", "country": "Germany",
            "lifecyclestage": "customer", "hubspot_owner_id": "77", "createdate": iso(T0 - timedelta(days=500)),
            "hs_lastmodifieddate": stamp, "hs_object_id": str(company_id), **properties},
            "createdAt": iso(T0 - timedelta(days=500)), "updatedAt": stamp, "archived": False}
        self.companies[record["id"]] = record
        return record

    def add_deal(self, deal_id: int, company_id: int | None, *, primary: bool = True, **properties: Any
                 ) -> dict[str, Any]:
        stamp = self._tick()
        stage = properties.get("dealstage", "appointmentscheduled")
        record = {"id": str(deal_id), "properties": {
            "dealname": f"Renewal {deal_id}", "amount": "1000",
            "closedate": iso(T0 + timedelta(days=-10 if stage in ("closedwon", "closedlost") else 30)),
            "dealstage": stage, "pipeline": "default", "dealtype": "existingbusiness",
            "hs_is_closed": str(stage in ("closedwon", "closedlost")).lower(),
            "hs_is_closed_won": str(stage == "closedwon").lower(), "createdate": iso(T0 - timedelta(days=20)),
            "hs_lastmodifieddate": stamp, "hs_object_id": str(deal_id), **properties},
            "createdAt": iso(T0 - timedelta(days=20)), "updatedAt": stamp, "archived": False}
        self.deals[record["id"]] = record
        if company_id is not None:
            # Primary: the company is the deal's primary one, listed after another, unlabelled
            # association; otherwise its only company, unlabelled.
            self.associations[record["id"]] = [("999999", 341), (str(company_id), 5)] if primary else [
                (str(company_id), 341)]
        return record

    def touch(self, kind: str, record_id: int | str, **properties: Any) -> None:
        """Change a company or deal as a user would: its hs_lastmodifieddate moves on."""
        record = getattr(self, kind)[str(record_id)]
        stamp = self._tick()
        record["properties"].update(properties, hs_lastmodifieddate=stamp)
        record["updatedAt"] = stamp

    @classmethod
    def with_data(cls, companies: int, deals: int = 0, **kwargs: Any) -> FakeHubSpot:
        fake = cls(**kwargs)
        for c in range(1, companies + 1):
            fake.add_company(c)
        stages = ("appointmentscheduled", "closedwon", "closedlost", "contractsent")
        for d in range(1, deals + 1):
            fake.add_deal(1000 + d, 1 + d % max(companies, 1), dealstage=stages[d % 4], primary=d % 5 != 0)
        return fake

    # ------------------------------------------------------------------------------- wire

    def install(self, rsps: responses.RequestsMock) -> FakeHubSpot:
        rsps.add_callback(responses.POST, re.compile(rf"{re.escape(BASE)}/crm/v3/objects/(companies|deals)/search$"),
                          callback=self._guard(self._search), content_type="application/json")
        rsps.add_callback(responses.POST,
                          re.compile(rf"{re.escape(BASE)}/crm/v4/associations/deals/companies/batch/read$"),
                          callback=self._guard(self._associations), content_type="application/json")
        return self

    def _guard(self, handler):
        def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return _error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.")
            if kind := self.faults.decide(request):
                return self.faults.respond(kind, lambda: (200, {}, ""))
            return handler(request)
        return callback

    def _search(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        kind = request.url.rsplit("/", 2)[-2]
        body = json.loads(request.body or "{}")
        after, limit = int(body.get("after") or 0), int(body.get("limit", 10))
        filters = [f for g in body.get("filterGroups", []) for f in g.get("filters", [])]
        self.searches.append({"object": kind, "after": after, "filters": filters})
        if limit > 200:
            return _error(400, "VALIDATION_ERROR", "limit may not exceed 200")
        if after >= self.search_cap:
            return _error(400, "VALIDATION_ERROR", f"after may not reach {self.search_cap}")
        if self.broken and self.broken[0] == kind and after >= self.broken[1]:
            return _error(self.broken[2], "INTERNAL_ERROR", "try again later")
        rows = list(getattr(self, kind).values())
        for f in filters:
            assert f["operator"] == "GTE", f
            since = _instant(str(f["value"]))
            rows = [r for r in rows if _instant(r["properties"][f["propertyName"]]) >= since]
        for s in reversed(body.get("sorts", [])):
            rows.sort(key=lambda r: (_instant(r["properties"][s["propertyName"]]), int(r["id"])),
                      reverse=s.get("direction") == "DESCENDING")
        wanted = body.get("properties") or ["hs_object_id", "createdate", "hs_lastmodifieddate"]
        chunk = [{**r, "properties": {p: r["properties"].get(p) for p in wanted}} for r in rows[after: after + limit]]
        self.searches[-1]["returned"] = len(chunk)
        answer: dict[str, Any] = {"total": len(rows), "results": chunk}
        if after + limit < len(rows):
            answer["paging"] = {"next": {"after": str(after + limit), "link": f"{BASE}/crm/v3/objects/{kind}/search"}}
        return 200, {}, json.dumps(answer)

    def _associations(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        ids = [str(i["id"]) for i in json.loads(request.body or "{}").get("inputs", [])]
        self.association_reads.append(ids)
        results = [{"from": {"id": i}, "to": [
            {"toObjectId": int(c), "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": t,
                                                         "label": "Primary" if t == 5 else None}]}
            for c, t in self.associations[i]]} for i in ids if i in self.associations]
        return 200, {}, json.dumps({"status": "COMPLETE", "results": results,
                                    "startedAt": iso(self.now), "completedAt": iso(self.now)})

    def pages(self, kind: str) -> list[int]:
        return [s["after"] for s in self.searches if s["object"] == kind]

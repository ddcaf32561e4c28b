"""An HTTP fake of HubSpot's CRM API on `responses`: the calls the write-back makes.

Shapes from HubSpot's API reference (developers.hubspot.com/docs/api-reference, CRM objects v3
and associations v4):

- ``POST /crm/v3/objects/tasks/batch/upsert`` ("Create or update a batch of tasks by unique
  property values"): body ``{"inputs": [{"idProperty", "id", "properties"}]}``; answer 200
  ``{"status": "COMPLETE", "results": [{"id", "properties", "createdAt", "updatedAt", "archived",
  "new"}], "startedAt", "completedAt"}``. The record whose ``idProperty`` value is ``id`` is
  updated, or created with that value when there is none (the unique index decides).
- ``PUT /crm/v4/objects/tasks/{taskId}/associations/default/companies/{companyId}``: the default
  association; answer 200 ``{"status": "COMPLETE", "results": [{"from": {"id"}, "to": {"id"},
  "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 192}}]}``.
- ``GET`` / ``PATCH /crm/v3/objects/companies/{companyId}`` (optional ``idProperty`` query
  parameter naming a unique property): the company object ``{"id", "properties", ...}``; 404
  ``{"status": "error", "category": "OBJECT_NOT_FOUND", "message": ...}`` for an unknown one.
- Authentication: ``Authorization: Bearer <private app token>``; anything else is 401
  ``{"status": "error", "category": "INVALID_AUTHENTICATION", "message": ...}``.

Faults come from `tests.fakes.salesforce_fake.FaultInjector` (429 with Retry-After, 5xx,
timeouts, and ``lost``: the request is applied, then the client sees a timeout). `lost_503`
makes the next N requests be applied and then answered 503 (the other way an answer gets lost).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import responses

from tests.fakes.salesforce_fake import FaultInjector

BASE = "https://api.hubapi.com"
TASK_TO_COMPANY = 192

Answer = tuple[int, dict[str, str], str]


def _json(status: int, body: Any) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(body)


class HubSpotFake:
    """Tasks, companies and task-company associations, with the unique task key `task_key`."""

    def __init__(self, token: str, *, task_key: str = "rescue_key", faults: FaultInjector | None = None) -> None:
        self.token = token
        self.task_key = task_key
        self.faults = faults or FaultInjector()
        self.tasks: dict[str, dict[str, Any]] = {}
        self.companies: dict[str, dict[str, Any]] = {}
        self.associations: set[tuple[str, str]] = set()
        self.creates: Counter = Counter()
        self.upserts: Counter = Counter()
        self.requests: Counter = Counter()
        self.lost_503 = 0
        self._next_id = 90_000

    def add_company(self, company_id: str, **properties: Any) -> None:
        self.companies[company_id] = {"hs_object_id": company_id, **properties}

    def task_by_key(self, key: str) -> dict[str, Any] | None:
        found = [t for t in self.tasks.values() if t.get(self.task_key) == key]
        assert len(found) <= 1, f"{len(found)} tasks share {self.task_key}={key}"
        return found[0] if found else None

    def install(self, rsps: responses.RequestsMock) -> HubSpotFake:
        routes: list[tuple[str, str, Callable[..., Answer]]] = [
            ("POST", r"/crm/v3/objects/tasks/batch/upsert", self._upsert_tasks),
            ("PUT", r"/crm/v4/objects/tasks/(?P<task>[^/]+)/associations/default/companies/(?P<company>[^/?]+)",
             self._associate),
            ("GET", r"/crm/v3/objects/companies/(?P<company>[^/?]+)", self._get_company),
            ("PATCH", r"/crm/v3/objects/companies/(?P<company>[^/?]+)", self._patch_company),
        ]
        for method, path, handler in routes:
            pattern = re.compile(re.escape(BASE) + path + r"(\?.*)?$")
            rsps.add_callback(method, pattern, callback=self._wrap(pattern, handler))
        return self

    def _wrap(self, pattern: re.Pattern, handler: Callable[..., Answer]) -> Callable[[requests.PreparedRequest], Answer]:
        def callback(request: requests.PreparedRequest) -> Answer:
            self.requests[request.method] += 1
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return _json(401, {"status": "error", "category": "INVALID_AUTHENTICATION",
                                   "message": "Authentication credentials not found."})
            match = pattern.match(request.url)
            params = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
            body = json.loads(request.body) if request.body else None

            def run() -> Answer:
                return handler(body, params, **match.groupdict())

            if self.lost_503:
                self.lost_503 -= 1
                run()
                return _json(503, {"status": "error", "message": "Service Unavailable"})
            kind = self.faults.decide(request)
            if kind:
                return self.faults.respond(kind, run)
            return run()

        return callback

    def _company(self, company: str, params: dict[str, str]) -> str | None:
        prop = params.get("idProperty")
        if not prop:
            return company if company in self.companies else None
        found = [cid for cid, props in self.companies.items() if str(props.get(prop)) == company]
        return found[0] if found else None

    def _upsert_tasks(self, body: dict[str, Any], _params: dict[str, str]) -> Answer:
        results = []
        for item in body["inputs"]:
            if item["idProperty"] != self.task_key:
                return _json(400, {"status": "error", "category": "VALIDATION_ERROR",
                                   "message": f"{item['idProperty']} is not a unique property of tasks"})
            key = item["id"]
            self.upserts[key] += 1
            task = self.task_by_key(key)
            new = task is None
            if new:
                self._next_id += 1
                task = {"hs_object_id": str(self._next_id), self.task_key: key}
                self.tasks[task["hs_object_id"]] = task
                self.creates[key] += 1
            task.update(item["properties"])
            results.append({"id": task["hs_object_id"], "properties": dict(task), "archived": False, "new": new,
                            "createdAt": "2026-06-01T09:00:00.000Z", "updatedAt": "2026-06-01T09:00:00.000Z"})
        return _json(200, {"status": "COMPLETE", "results": results, "startedAt": "2026-06-01T09:00:00.000Z",
                           "completedAt": "2026-06-01T09:00:00.100Z"})

    def _associate(self, _body: Any, params: dict[str, str], task: str, company: str) -> Answer:
        if task not in self.tasks or company not in self.companies:
            return _json(404, {"status": "error", "category": "OBJECT_NOT_FOUND", "message": "resource not found"})
        self.associations.add((task, company))
        return _json(200, {"status": "COMPLETE", "results": [{
            "from": {"id": task}, "to": {"id": company},
            "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": TASK_TO_COMPANY}}]})

    def _get_company(self, _body: Any, params: dict[str, str], company: str) -> Answer:
        found = self._company(company, params)
        if found is None:
            return _json(404, {"status": "error", "category": "OBJECT_NOT_FOUND", "message": "resource not found"})
        return _json(200, {"id": found, "properties": self.companies[found], "archived": False})

    def _patch_company(self, body: dict[str, Any], params: dict[str, str], company: str) -> Answer:
        found = self._company(company, params)
        if found is None:
            return _json(404, {"status": "error", "category": "OBJECT_NOT_FOUND", "message": "resource not found"})
        self.companies[found].update(body["properties"])
        return _json(200, {"id": found, "properties": self.companies[found], "archived": False})

"""A stateful HTTP fake of the Jira Cloud endpoints the landing source reads, on `responses`.

Shapes from the Atlassian REST references:

- ``GET /rest/api/3/search/jql`` (Jira Cloud platform REST API v3, "Issue search": "Search for
  issues using JQL enhanced search (GET)"): ``jql``, ``fields`` (comma-separated), ``maxResults``,
  ``nextPageToken``; the answer is ``{"issues": [{"id", "key", "self", "fields": {...}}],
  "nextPageToken": ..., "isLast": ...}``, the token left out on the last page (as the service
  does, JRACLOUD-92184). The fake reads the JQL the source sends: ``project in ("A", "B")`` or
  ``projectType = "service_desk"``, ``updated >= "yyyy-MM-dd HH:mm"`` (in the account's zone,
  UTC here) and ``ORDER BY updated ASC``;
- issue fields: ``status`` with ``statusCategory`` (keys ``new``, ``indeterminate``, ``done``),
  ``priority``, ``created`` / ``updated`` / ``resolutiondate`` as ``2026-06-01T09:00:00.000+0000``,
  ``labels``, the Organizations field (a list of ``{"id", "name", "_links"}``), the Request Type
  field (``{"requestType": {"id", "name", ...}, "currentStatus": ...}``) and the SLA fields
  (``{"id", "name", "completedCycles": [{"startTime", "stopTime": {"iso8601", "jira",
  "friendly", "epochMillis"}, "breached", "goalDuration", ...}], "ongoingCycle": ...}``)
  (Service Management REST API, "SlaInformation");
- ``GET /rest/servicedeskapi/organization`` (Service Management REST API, "Organization"):
  ``start``, ``limit``; ``{"size", "start", "limit", "isLastPage", "values": [{"id", "name",
  "_links"}], "_links"}``;
- basic auth with e-mail and API token; anything else answers 401 with ``errorMessages``.

Issues live in `issues` by id; `update` changes one (new ``updated``). `requests_seen` keeps each
request's resource and query; `faults` (the Salesforce fake's `FaultInjector`) fails a seeded share
of requests with 429 + Retry-After, 500, 503 or a timeout; `broken_page` fails one search page.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import responses

from tests.fakes.salesforce_fake import FaultInjector

SITE = "acme.atlassian.net"
EMAIL = "ops@acme.example"
TOKEN = "jira-test-token-123"
BASE = f"https://{SITE}/rest"
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
ORG_FIELD, REQUEST_TYPE_FIELD, FIRST_RESPONSE_FIELD, RESOLUTION_FIELD = (
    "customfield_10002", "customfield_10010", "customfield_10031", "customfield_10030")

#: (status name, category key) a JSM service project's workflow uses.
STATUSES = [("Waiting for support", "new"), ("In progress", "indeterminate"), ("Waiting for customer", "indeterminate"),
            ("Resolved", "done"), ("Closed", "done")]
PRIORITIES = ["Highest", "High", "Medium", "Low", "Lowest"]


def jira_time(ts: datetime) -> str:
    ts = ts.astimezone(timezone.utc)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}+0000"


def _stamp(ts: datetime) -> dict[str, Any]:
    return {"iso8601": ts.strftime("%Y-%m-%dT%H:%M:%S+0000"), "jira": jira_time(ts),
            "friendly": ts.strftime("%d/%b/%y %I:%M %p"), "epochMillis": int(ts.timestamp() * 1000)}


def sla(name: str, started: datetime, stopped: datetime | None, breached: bool) -> dict[str, Any]:
    goal = {"millis": 4 * 3600_000, "friendly": "4h"}
    cycle = {"startTime": _stamp(started), "breached": breached, "goalDuration": goal,
             "elapsedTime": {"millis": 3600_000, "friendly": "1h"}, "remainingTime": {"millis": 0, "friendly": "0m"}}
    if stopped is None:
        return {"id": "1", "name": name, "_links": {}, "completedCycles": [],
                "ongoingCycle": {**cycle, "paused": False, "withinCalendarHours": True}}
    return {"id": "1", "name": name, "_links": {}, "completedCycles": [{**cycle, "stopTime": _stamp(stopped)}]}


def issue(issue_id: int, *, updated: datetime, org_id: int | None, status: int = 0, project: str = "SUP",
          orgs: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    """An issue as the search returns it with every field (`fields` trims it)."""
    created = updated - timedelta(hours=5)
    name, category = STATUSES[status]
    done = category == "done"
    org = (orgs or {}).get(org_id) if org_id is not None else None
    return {
        "id": str(10000 + issue_id), "key": f"{project}-{issue_id}", "self": f"{BASE}/api/3/issue/{10000 + issue_id}",
        "expand": "renderedFields,names,schema",
        "fields": {
            "project": {"id": "10000", "key": project, "name": "Support", "projectTypeKey": "service_desk"},
            "summary": f"Issue {issue_id}",
            "status": {"id": str(status + 1), "name": name, "statusCategory": {"id": 2, "key": category, "name": category}},
            "priority": {"id": str(issue_id % 5 + 1), "name": PRIORITIES[issue_id % 5]},
            "created": jira_time(created), "updated": jira_time(updated),
            "resolutiondate": jira_time(updated) if done else None,
            "labels": ["billing"] if issue_id % 3 == 0 else [],
            ORG_FIELD: [{"id": str(org["id"]), "name": org["name"], "_links": {}}] if org else [],
            REQUEST_TYPE_FIELD: {"_links": {}, "requestType": {"id": str(issue_id % 2 + 1),
                                                               "name": "Get IT help" if issue_id % 2 else "Report a bug"},
                                 "currentStatus": {"status": name}},
            FIRST_RESPONSE_FIELD: sla("Time to first response", created, created + timedelta(minutes=30), issue_id % 11 == 0),
            RESOLUTION_FIELD: sla("Time to resolution", created, updated if done else None, issue_id % 7 == 0),
        },
    }


def organization(org_id: int, name: str) -> dict[str, Any]:
    return {"id": str(org_id), "name": name, "_links": {"self": f"{BASE}/servicedeskapi/organization/{org_id}"}}


_UPDATED = re.compile(r'updated >= "(\d{4}-\d{2}-\d{2} \d{2}:\d{2})"')
_PROJECTS = re.compile(r"project in \(([^)]*)\)")


@dataclass
class FakeJira:
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    organizations: dict[int, dict[str, Any]] = field(default_factory=dict)
    faults: FaultInjector = field(default_factory=FaultInjector)
    requests_seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    #: Fail every request for this search page (1-based) with this status, until cleared.
    broken_page: tuple[int, int] | None = None
    now: datetime = T0

    @classmethod
    def with_issues(cls, n: int, organizations: int = 4, **kwargs: Any) -> FakeJira:
        fake = cls(**kwargs)
        for o in range(1, organizations + 1):
            fake.organizations[o] = {"id": o, "name": f"Org{o}"}
        for i in range(1, n + 1):
            fake.issues[i] = issue(i, updated=T0 + timedelta(minutes=i, seconds=i % 50, milliseconds=i),
                                   org_id=1 + i % organizations, status=i % len(STATUSES), orgs=fake.organizations)
        fake.now = T0 + timedelta(minutes=n + 1)
        return fake

    def update(self, issue_id: int, *, status: int | None = None, **fields: Any) -> None:
        """Change an issue (or add one): its ``updated`` moves to the fake's clock, a minute on."""
        self.now += timedelta(minutes=1)
        if issue_id not in self.issues:
            self.issues[issue_id] = issue(issue_id, updated=self.now, org_id=1, orgs=self.organizations)
        f = self.issues[issue_id]["fields"]
        if status is not None:
            name, category = STATUSES[status]
            f["status"] = {"id": str(status + 1), "name": name, "statusCategory": {"id": 2, "key": category, "name": category}}
        f.update(fields, updated=jira_time(self.now))

    def updated(self, issue_id: int) -> str:
        return self.issues[issue_id]["fields"]["updated"]

    # ------------------------------------------------------------------------------- wire

    def install(self, rsps: responses.RequestsMock) -> None:
        for path in ("api/3/search/jql", "servicedeskapi/organization"):
            rsps.add_callback(responses.GET, re.compile(rf"{re.escape(BASE)}/{path}(\?.*)?$"),
                              callback=self._handle, content_type="application/json")

    def _authorized(self, request: requests.PreparedRequest) -> bool:
        expected = "Basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()
        return request.headers.get("Authorization") == expected

    def _handle(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        parts = urlsplit(request.url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        resource = "issues" if parts.path.endswith("/search/jql") else "organizations"
        self.requests_seen.append((resource, query))
        if not self._authorized(request):
            return 401, {}, json.dumps({"errorMessages": ["You are not authenticated. Authentication required to "
                                                          "perform this operation."], "errors": {}})
        page = self._page(query.get("nextPageToken"))
        if resource == "issues" and self.broken_page and self.broken_page[0] == page:
            return self.broken_page[1], {}, json.dumps({"errorMessages": ["Internal server error"], "errors": {}})
        if kind := self.faults.decide(request):
            return self.faults.respond(kind, lambda: (200, {}, ""))
        if resource == "issues":
            return 200, {}, json.dumps(self._search(query, page))
        start, limit = int(query.get("start", "0")), min(int(query.get("limit", "50")), 50)
        rows = [organization(o["id"], o["name"]) for o in sorted(self.organizations.values(), key=lambda o: o["id"])]
        chunk = rows[start:start + limit]
        return 200, {}, json.dumps({"size": len(chunk), "start": start, "limit": limit,
                                    "isLastPage": start + limit >= len(rows), "values": chunk, "_links": {}})

    @staticmethod
    def _page(token: str | None) -> int:
        return int(base64.b64decode(token).decode().split(":")[1]) if token else 1

    def _search(self, query: dict[str, str], page: int) -> dict[str, Any]:
        text = query["jql"]
        since = datetime.strptime(_UPDATED.search(text).group(1), "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
        projects = None
        if match := _PROJECTS.search(text):
            projects = {p.strip().strip('"') for p in match.group(1).split(",")}
        else:
            assert 'projectType = "service_desk"' in text, text
        assert text.endswith("ORDER BY updated ASC"), text
        rows = [i for i in self.issues.values() if datetime.fromisoformat(i["fields"]["updated"]) >= since
                and (projects is None or i["fields"]["project"]["key"] in projects)]
        rows.sort(key=lambda i: (i["fields"]["updated"], int(i["id"])))
        wanted = query.get("fields", "*navigable").split(",")
        size = min(int(query.get("maxResults", "50")), 100)
        chunk = [{**i, "fields": {k: v for k, v in i["fields"].items() if k in wanted}}
                 for i in rows[(page - 1) * size: page * size]]
        answer: dict[str, Any] = {"issues": chunk, "isLast": page * size >= len(rows)}
        if page * size < len(rows):
            answer["nextPageToken"] = base64.b64encode(f"page:{page + 1}".encode()).decode()
        return answer

    def search_pages_requested(self) -> list[int]:
        return [self._page(q.get("nextPageToken")) for r, q in self.requests_seen if r == "issues"]

    def first_search_since(self, after: int) -> str:
        return next(_UPDATED.search(q["jql"]).group(1) for r, q in self.requests_seen[after:] if r == "issues")

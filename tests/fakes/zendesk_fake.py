"""A stateful HTTP fake of the Zendesk Support API v2 endpoints the landing source reads, on `responses`.

Shapes from the Zendesk API reference (https://developer.zendesk.com/api-reference/) and the guide
"Using the Incremental Export API":

- ``GET /api/v2/incremental/tickets/cursor.json`` ("Incremental Ticket Export, Cursor Based"):
  the first request has ``start_time`` (Unix seconds; tickets whose ``generated_timestamp`` is at
  or after it), the next ones only ``cursor`` (the previous page's ``after_cursor``). Tickets come
  oldest change first, ``per_page`` at a time (at most 1000); every page carries
  ``after_cursor``, ``after_url``, ``before_cursor``, ``before_url`` and ``end_of_stream`` (the last
  page too has an ``after_cursor``, from which a later export would go on). ``include=metric_sets``
  side-loads the page's ticket metrics as a top-level ``metric_sets`` list ("Ticket Metrics":
  ``ticket_id``, ``reply_time_in_minutes.calendar``, ``solved_at``, ...). Deleted tickets stay in
  the export with ``status: "deleted"``. A request with neither or both of ``start_time`` and
  ``cursor`` is refused with 400 (the fake accepts only the two documented forms);
- ``GET /api/v2/organizations`` with cursor pagination ("Pagination": ``page[size]`` at most 100,
  ``page[after]``): ``{"organizations": [...], "meta": {"has_more", "after_cursor",
  "before_cursor"}, "links": {"next", "prev"}}``;
- basic auth as ``{email}/token`` with the API token as password; anything else answers 401
  ``{"error": "Couldn't authenticate you"}``.

Tickets live in `tickets` by id, their metrics in `metrics`; `change` moves a ticket's
``updated_at`` and ``generated_timestamp`` to the fake's clock, a minute on, and `delete` marks it
deleted. `requests_seen` keeps each request's resource and query, and `faults` (the Salesforce
fake's `FaultInjector`) fails a seeded share of them with 429 + Retry-After, 500, 503 or a timeout.
A cursor carries the position in the export and the page's number in the run (`broken_page`).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
import responses

from tests.fakes.salesforce_fake import FaultInjector

SUBDOMAIN = "acme"
HOST = "acme.zendesk.com"
EMAIL = "bot@acme.example"
API_TOKEN = "zd-test-token-123"
BASE = f"https://{HOST}/api/v2"
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)

STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent", None)
TYPES = ("question", "incident", "problem", "task", None)
JSON = {"Content-Type": "application/json"}


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(ts: datetime) -> int:
    return int(ts.timestamp())


def ticket(ticket_id: int, *, changed: datetime, organization_id: int | None, status: str = "open",
           priority: str | None = "normal", kind: str | None = "question", tags: list[str] | None = None,
           csat: str = "unoffered", created: datetime | None = None) -> dict[str, Any]:
    """A ticket as the export returns it ("Tickets", JSON format)."""
    created = created or changed - timedelta(hours=5)
    rating = {"score": csat} if csat in ("offered", "unoffered") else {
        "id": 50_000 + ticket_id, "score": csat, "comment": "thanks" if csat == "good" else "slow"}
    return {
        "url": f"{BASE}/tickets/{ticket_id}.json", "id": ticket_id, "external_id": None,
        "via": {"channel": "email", "source": {"from": {}, "to": {}, "rel": None}},
        "created_at": iso(created), "updated_at": iso(changed), "generated_timestamp": epoch(changed),
        "type": kind, "subject": f"Ticket {ticket_id}", "raw_subject": f"Ticket {ticket_id}",
        "description": "It does not work", "priority": priority, "status": status, "recipient": None,
        "requester_id": 9000 + ticket_id, "submitter_id": 9000 + ticket_id, "assignee_id": 77,
        "organization_id": organization_id, "group_id": 5, "collaborator_ids": [], "follower_ids": [],
        "email_cc_ids": [], "forum_topic_id": None, "problem_id": None, "has_incidents": False,
        "is_public": True, "due_at": None, "tags": list(tags or []),
        "custom_fields": [{"id": 360001, "value": "pro"}], "satisfaction_rating": rating,
        "sharing_agreement_ids": [], "custom_status_id": 1, "fields": [{"id": 360001, "value": "pro"}],
        "followup_ids": [], "ticket_form_id": 1, "brand_id": 1, "allow_channelback": False,
        "allow_attachments": True, "from_messaging_channel": False,
    }


def metric_set(ticket_id: int, *, created: datetime, reply_minutes: int | None,
               solved: datetime | None) -> dict[str, Any]:
    """A ticket's metric set as ``include=metric_sets`` side-loads it ("Ticket Metrics")."""
    minutes = None if reply_minutes is None else {"calendar": reply_minutes, "business": reply_minutes // 2}
    return {
        "url": f"{BASE}/ticket_metrics/{70_000 + ticket_id}.json", "id": 70_000 + ticket_id,
        "ticket_id": ticket_id, "created_at": iso(created), "updated_at": iso(solved or created),
        "group_stations": 1, "assignee_stations": 1, "reopens": 0, "replies": 1,
        "assignee_updated_at": None, "requester_updated_at": iso(created), "status_updated_at": iso(created),
        "initially_assigned_at": iso(created), "assigned_at": iso(created),
        "solved_at": iso(solved) if solved else None, "latest_comment_added_at": iso(created),
        "reply_time_in_minutes": minutes or {"calendar": None, "business": None},
        "first_resolution_time_in_minutes": {"calendar": None, "business": None},
        "full_resolution_time_in_minutes": {"calendar": None, "business": None},
        "agent_wait_time_in_minutes": {"calendar": None, "business": None},
        "requester_wait_time_in_minutes": {"calendar": None, "business": None},
        "on_hold_time_in_minutes": {"calendar": 0, "business": 0},
    }


def organization(org_id: int, name: str, *, external_id: str | None, account_id: str | None = None) -> dict[str, Any]:
    """An organization ("Organizations", JSON format); ``account_id`` is a custom organization field."""
    return {
        "url": f"{BASE}/organizations/{org_id}.json", "id": org_id, "name": name, "shared_tickets": False,
        "shared_comments": False, "external_id": external_id, "created_at": iso(T0 - timedelta(days=400)),
        "updated_at": iso(T0 - timedelta(days=10)), "domain_names": [f"{name.lower()}.example"], "details": "",
        "notes": "", "group_id": None, "tags": [], "organization_fields": {"account_id": account_id},
    }


def _encode(*parts: int) -> str:
    return base64.urlsafe_b64encode("|".join(map(str, parts)).encode()).decode()


def _decode(cursor: str) -> list[int]:
    return [int(p) for p in base64.urlsafe_b64decode(cursor.encode()).decode().split("|")]


@dataclass
class FakeZendesk:
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[int, dict[str, Any]] = field(default_factory=dict)
    organizations: dict[int, dict[str, Any]] = field(default_factory=dict)
    email: str = EMAIL
    api_token: str = API_TOKEN
    faults: FaultInjector = field(default_factory=FaultInjector)
    requests_seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    #: Fail every request for this export page (1-based, within one run) with this status, until cleared.
    broken_page: tuple[int, int] | None = None
    now: datetime = T0

    @classmethod
    def with_tickets(cls, n: int, organizations: int = 5, **kwargs: Any) -> FakeZendesk:
        fake = cls(**kwargs)
        for o in range(1, organizations + 1):
            fake.organizations[o] = organization(o, f"Org{o}", external_id=f"ACC{o:03d}")
        for i in range(1, n + 1):
            status = STATUSES[i % len(STATUSES)]
            changed = T0 + timedelta(minutes=i)
            created = changed - timedelta(hours=5)
            solved = changed if status in ("solved", "closed") else None
            csat = ("good", "bad")[i % 2] if solved else ("offered", "unoffered")[i % 2]
            fake.tickets[i] = ticket(i, changed=changed, created=created, organization_id=1 + i % organizations,
                                     status=status, priority=PRIORITIES[i % 5], kind=TYPES[i % 5],
                                     tags=["escalated", "vip"] if i % 7 == 0 else ["billing"] * (i % 3 == 0),
                                     csat=csat)
            if i % 11:                                       # a few tickets without metrics yet
                fake.metrics[i] = metric_set(i, created=created, reply_minutes=None if status == "new" else 10 + i,
                                             solved=solved)
        fake.now = T0 + timedelta(minutes=n + 1)
        return fake

    def change(self, ticket_id: int, **changes: Any) -> None:
        """Change a ticket (or add one): its updated_at and generated_timestamp move to the fake's
        clock, one minute on."""
        self.now += timedelta(minutes=1)
        if ticket_id not in self.tickets:
            self.tickets[ticket_id] = ticket(ticket_id, changed=self.now, organization_id=1)
        self.tickets[ticket_id].update(changes, updated_at=iso(self.now), generated_timestamp=epoch(self.now))

    def delete(self, ticket_id: int) -> None:
        """Delete a ticket: the export goes on listing it, as ``deleted``."""
        self.change(ticket_id, status="deleted")

    # ------------------------------------------------------------------------------- wire

    def install(self, rsps: responses.RequestsMock) -> None:
        for path in ("incremental/tickets/cursor.json", "organizations"):
            rsps.add_callback(responses.GET, re.compile(rf"{re.escape(BASE)}/{re.escape(path)}(\?.*)?$"),
                              callback=self._handle)

    def _authorized(self, request: requests.PreparedRequest) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.email}/token:{self.api_token}".encode()).decode()
        return request.headers.get("Authorization") == expected

    def _handle(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        parts = urlsplit(request.url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        resource = "tickets" if "incremental" in parts.path else "organizations"
        self.requests_seen.append((resource, query))
        if not self._authorized(request):
            return 401, JSON, json.dumps({"error": "Couldn't authenticate you"})
        if resource == "tickets":
            if ("start_time" in query) == ("cursor" in query):
                return 400, JSON, json.dumps({"error": "InvalidPaginationParameter",
                                              "description": "give start_time or cursor"})
            if self.broken_page and self.broken_page[0] == self._page_of(query):
                return self.broken_page[1], JSON, json.dumps({"error": "InternalError", "description": "try later"})
        if kind := self.faults.decide(request):
            return self.faults.respond(kind, lambda: (200, {}, ""))
        return 200, JSON, json.dumps(self._export(query) if resource == "tickets" else self._organizations(query))

    @staticmethod
    def _page_of(query: dict[str, str]) -> int:
        return _decode(query["cursor"])[2] if "cursor" in query else 1

    def _export(self, query: dict[str, str]) -> dict[str, Any]:
        per_page = min(int(query.get("per_page", "1000")), 1000)
        ordered = sorted(self.tickets.values(), key=lambda t: (t["generated_timestamp"], t["id"]))
        if "cursor" in query:
            stamp, last_id, page = _decode(query["cursor"])
            pending = [t for t in ordered if (t["generated_timestamp"], t["id"]) > (stamp, last_id)]
        else:
            start, page = int(query["start_time"]), 1
            stamp, last_id = start - 1, 2**62
            pending = [t for t in ordered if t["generated_timestamp"] >= start]
        chunk = pending[:per_page]
        if chunk:
            stamp, last_id = chunk[-1]["generated_timestamp"], chunk[-1]["id"]
        after = _encode(stamp, last_id, page + 1)
        body: dict[str, Any] = {
            "tickets": chunk,
            "after_url": f"{BASE}/incremental/tickets/cursor.json?cursor={after}", "after_cursor": after,
            "before_url": None, "before_cursor": None, "end_of_stream": len(pending) <= per_page,
        }
        if "metric_sets" in query.get("include", "").split(","):
            body["metric_sets"] = [self.metrics[t["id"]] for t in chunk if t["id"] in self.metrics]
        return body

    def _organizations(self, query: dict[str, str]) -> dict[str, Any]:
        size = min(int(query.get("page[size]", "100")), 100)
        ordered = sorted(self.organizations.values(), key=lambda o: o["id"])
        after_id = _decode(query["page[after]"])[0] if "page[after]" in query else 0
        pending = [o for o in ordered if o["id"] > after_id]
        chunk = pending[:size]
        more = len(pending) > size
        after = _encode(chunk[-1]["id"]) if chunk else None
        nxt = f"{BASE}/organizations?{urlencode({'page[size]': size, 'page[after]': after})}" if more else None
        return {"organizations": chunk,
                "meta": {"has_more": more, "after_cursor": after, "before_cursor": _encode(chunk[0]["id"]) if chunk else None},
                "links": {"next": nxt, "prev": None}}

    def ticket_pages_requested(self) -> list[int]:
        """The export page of each ticket request, in order (1: a ``start_time`` request)."""
        return [self._page_of(q) for r, q in self.requests_seen if r == "tickets"]

    def live_tickets(self) -> dict[int, dict[str, Any]]:
        return {i: t for i, t in self.tickets.items() if t["status"] != "deleted"}

"""A stateful HTTP fake of the Freshdesk API v2 endpoints the landing source reads, on `responses`.

Shapes from the Freshdesk API reference (https://developers.freshdesk.com/api/):

- ``GET /api/v2/tickets``: ``updated_since`` (tickets updated at or after it; without it only the
  last 30 days' tickets), ``order_by`` / ``order_type``, ``include=stats`` (adds the ``stats``
  object), ``per_page`` (at most 100), ``page``; the answer is a JSON array, and while more pages
  exist a ``link: <next url>; rel="next"`` header;
- ``GET /api/v2/companies``: the same paging;
- basic auth with the API key as user and ``X`` as password; anything else answers 401
  ``{"code": "invalid_credentials", "message": "You have to be logged in to perform this action."}``.

Tickets live in `tickets` by id; `update` changes one (new ``updated_at``). `requests_seen`
keeps each request's path and query, and `faults` (the Salesforce fake's `FaultInjector`) fails a
seeded share of them with 429 + Retry-After, 500, 503 or a timeout.
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

DOMAIN = "acme.freshdesk.com"
API_KEY = "fd-test-key-123"
BASE = f"https://{DOMAIN}/api/v2"
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)

#: Freshdesk's status and priority codes (API reference, "Ticket properties").
STATUS_OPEN, STATUS_PENDING, STATUS_RESOLVED, STATUS_CLOSED = 2, 3, 4, 5


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ticket(ticket_id: int, *, updated: datetime, company_id: int | None, status: int = STATUS_OPEN,
           priority: int = 2, created: datetime | None = None) -> dict[str, Any]:
    """A ticket as the list endpoint returns it with include=stats."""
    created = created or updated - timedelta(hours=5)
    responded = created + timedelta(minutes=30)
    resolved = updated if status in (STATUS_RESOLVED, STATUS_CLOSED) else None
    return {
        "id": ticket_id, "subject": f"Ticket {ticket_id}", "status": status, "priority": priority,
        "source": 2, "type": "Question" if ticket_id % 2 else "Incident", "requester_id": 9000 + ticket_id,
        "responder_id": 77, "group_id": 5, "company_id": company_id, "product_id": None,
        "email_config_id": None, "fr_escalated": False, "is_escalated": ticket_id % 7 == 0, "spam": False,
        "tags": ["billing"] if ticket_id % 3 == 0 else [], "cc_emails": [], "fwd_emails": [],
        "reply_cc_emails": [], "custom_fields": {"cf_plan": "pro"},
        "due_by": iso(created + timedelta(days=3)), "fr_due_by": iso(created + timedelta(days=1)),
        "created_at": iso(created), "updated_at": iso(updated),
        "stats": {
            "agent_responded_at": iso(responded), "requester_responded_at": None,
            "first_responded_at": iso(responded), "status_updated_at": iso(updated),
            "reopened_at": None, "resolved_at": iso(resolved) if resolved else None,
            "closed_at": iso(resolved) if status == STATUS_CLOSED else None, "pending_since": None,
        },
    }


def company(company_id: int, name: str, account_id: str | None) -> dict[str, Any]:
    return {
        "id": company_id, "name": name, "description": None, "note": None, "domains": [f"{name.lower()}.example"],
        "health_score": None, "account_tier": None, "renewal_date": None, "industry": None,
        "custom_fields": {"account_id": account_id}, "created_at": iso(T0 - timedelta(days=400)),
        "updated_at": iso(T0 - timedelta(days=10)),
    }


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class FakeFreshdesk:
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    companies: dict[int, dict[str, Any]] = field(default_factory=dict)
    api_key: str = API_KEY
    faults: FaultInjector = field(default_factory=FaultInjector)
    requests_seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    #: Fail every request for this ticket page (1-based) with this status, until cleared.
    broken_page: tuple[int, int] | None = None
    now: datetime = T0

    @classmethod
    def with_tickets(cls, n: int, companies: int = 5, **kwargs: Any) -> FakeFreshdesk:
        fake = cls(**kwargs)
        for c in range(1, companies + 1):
            fake.companies[c] = company(c, f"Company{c}", f"ACC{c:03d}")
        for i in range(1, n + 1):
            status = (STATUS_OPEN, STATUS_PENDING, STATUS_RESOLVED, STATUS_CLOSED)[i % 4]
            fake.tickets[i] = ticket(i, updated=T0 + timedelta(minutes=i), company_id=1 + i % companies,
                                     status=status, priority=1 + i % 4)
        fake.now = T0 + timedelta(minutes=n + 1)
        return fake

    def update(self, ticket_id: int, **changes: Any) -> None:
        """Change a ticket (or add one): its updated_at moves to the fake's clock, one minute on."""
        self.now += timedelta(minutes=1)
        if ticket_id not in self.tickets:
            self.tickets[ticket_id] = ticket(ticket_id, updated=self.now, company_id=1)
        self.tickets[ticket_id].update(changes, updated_at=iso(self.now))

    # ------------------------------------------------------------------------------- wire

    def install(self, rsps: responses.RequestsMock) -> None:
        for path in ("tickets", "companies"):
            rsps.add_callback(responses.GET, re.compile(rf"{re.escape(BASE)}/{path}(\?.*)?$"),
                              callback=self._handle, content_type="application/json")

    def _authorized(self, request: requests.PreparedRequest) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.api_key}:X".encode()).decode()
        return request.headers.get("Authorization") == expected

    def _handle(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        parts = urlsplit(request.url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        resource = parts.path.rsplit("/", 1)[-1]
        self.requests_seen.append((resource, query))
        if not self._authorized(request):
            return 401, {}, json.dumps({"code": "invalid_credentials",
                                        "message": "You have to be logged in to perform this action."})
        page = int(query.get("page", "1"))
        if resource == "tickets" and self.broken_page and self.broken_page[0] == page:
            return self.broken_page[1], {}, json.dumps({"code": "internal_error", "message": "try later"})
        if kind := self.faults.decide(request):
            return self.faults.respond(kind, lambda: (200, {}, ""))
        per_page = min(int(query.get("per_page", "30")), 100)
        if resource == "tickets":
            since = _time(query["updated_since"]) if "updated_since" in query else self.now - timedelta(days=30)
            rows = [t for t in self.tickets.values() if _time(t["updated_at"]) >= since]
            key = query.get("order_by", "created_at")
            rows.sort(key=lambda t: (t[key], t["id"]), reverse=query.get("order_type", "desc") == "desc")
            if query.get("include") != "stats":
                rows = [{k: v for k, v in t.items() if k != "stats"} for t in rows]
        else:
            rows = sorted(self.companies.values(), key=lambda c: c["id"])
        chunk = rows[(page - 1) * per_page: page * per_page]
        headers = {}
        if page * per_page < len(rows):
            nxt = urlencode({**query, "page": page + 1})
            headers["link"] = f'<{BASE}/{resource}?{nxt}>; rel="next"'
        return 200, headers, json.dumps(chunk)

    def ticket_pages_requested(self) -> list[int]:
        return [int(q.get("page", "1")) for r, q in self.requests_seen if r == "tickets"]

"""A stateful HTTP fake of a Zendesk-style ticketing API, built on `responses`.

Endpoints, answered as the real API does:

- ``GET /api/v2/incremental/tickets/cursor.json`` with ``start_time`` (Unix seconds) or
  ``cursor``: tickets whose ``updated_at`` is at or after the start, oldest change first,
  `per_page` at a time; every page carries ``after_cursor`` / ``after_url`` and
  ``end_of_stream``; the cursor at the end of the stream still works later and returns the
  tickets changed since. ``include=metric_sets`` side-loads each ticket's metrics;
- ``GET /api/v2/organizations/show_many.json?ids=1,2``.

Authentication is HTTP basic ``{email}/token:{token}``; anything else is a 401.
`calls` records each request's path and parameters; faults come from the same seeded
`FaultInjector` as the Salesforce fake.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import requests
import responses

from tests.fakes.salesforce_fake import FaultInjector


def _epoch(value: str) -> int:
    return int(pd.Timestamp(value).timestamp())


class ZendeskFake:
    def __init__(self, *, base_url: str = "https://acme.zendesk.com", email: str = "bot@example.com",
                 token: str = "zd-token", faults: FaultInjector | None = None) -> None:
        self.base_url = base_url
        self.email = email
        self.token = token
        self.faults = faults or FaultInjector()
        self.tickets: dict[int, dict[str, Any]] = {}
        self.metrics: dict[int, dict[str, Any]] = {}
        self.organizations: dict[int, dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, str]]] = []

    # -- data ----------------------------------------------------------------------------------

    def add_organization(self, org_id: int, *, external_id: str | None, name: str = "", **fields: Any) -> None:
        self.organizations[org_id] = {"id": org_id, "name": name or f"Org {org_id}", "external_id": external_id,
                                      "organization_fields": fields}

    def put_ticket(self, ticket_id: int, *, updated_at: str, metrics: dict[str, Any] | None = None,
                   **fields: Any) -> dict[str, Any]:
        """Create or change a ticket (as of `updated_at`)."""
        ticket = {**self.tickets.get(ticket_id, {"id": ticket_id, "tags": [], "created_at": updated_at}),
                  **fields, "updated_at": updated_at}
        self.tickets[ticket_id] = ticket
        if metrics is not None:
            self.metrics[ticket_id] = {"ticket_id": ticket_id, **metrics}
        return ticket

    # -- wiring --------------------------------------------------------------------------------

    def install(self, rsps: responses.RequestsMock) -> ZendeskFake:
        rsps.add_callback(responses.GET, re.compile(re.escape(self.base_url) + r"/api/v2/.*"),
                          callback=self._guard(self._route))
        return self

    def _guard(self, handler: Callable[[requests.PreparedRequest], tuple[int, dict[str, str], str]]):
        def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
            parts = urlsplit(request.url or "")
            self.calls.append((parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}))
            kind = self.faults.decide(request)
            if kind is not None:
                return self.faults.respond(kind, lambda: handler(request))
            return handler(request)
        return callback

    def _authorized(self, request: requests.PreparedRequest) -> bool:
        expected = base64.b64encode(f"{self.email}/token:{self.token}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    def _route(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        if not self._authorized(request):
            return 401, {"Content-Type": "application/json"}, json.dumps({"error": "Couldn't authenticate you"})
        parts = urlsplit(request.url or "")
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/api/v2/incremental/tickets/cursor.json":
            return self._export(params)
        if parts.path == "/api/v2/organizations/show_many.json":
            ids = [int(i) for i in params.get("ids", "").split(",") if i]
            orgs = [self.organizations[i] for i in ids if i in self.organizations]
            return 200, {"Content-Type": "application/json"}, json.dumps({"organizations": orgs})
        return 404, {"Content-Type": "application/json"}, json.dumps({"error": "InvalidEndpoint"})

    @staticmethod
    def _encode(position: tuple[int, int]) -> str:
        return base64.urlsafe_b64encode(f"{position[0]}|{position[1]}".encode()).decode()

    @staticmethod
    def _decode(cursor: str) -> tuple[int, int]:
        stamp, ticket_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return int(stamp), int(ticket_id)

    def _export(self, params: dict[str, str]) -> tuple[int, dict[str, str], str]:
        per_page = min(int(params.get("per_page", 1000)), 1000)
        ordered = sorted(self.tickets.values(), key=lambda t: (_epoch(t["updated_at"]), t["id"]))
        if "cursor" in params:
            after = self._decode(params["cursor"])
            pending = [t for t in ordered if (_epoch(t["updated_at"]), t["id"]) > after]
        elif "start_time" in params:
            start = int(params["start_time"])
            pending = [t for t in ordered if _epoch(t["updated_at"]) >= start]
        else:
            return 400, {"Content-Type": "application/json"}, json.dumps(
                {"error": "InvalidPaginationParameter", "description": "start_time or cursor is required"})
        page = pending[:per_page]
        end = len(pending) <= per_page
        if page:
            position = (_epoch(page[-1]["updated_at"]), page[-1]["id"])
        elif "cursor" in params:
            position = self._decode(params["cursor"])
        else:
            position = (int(params["start_time"]) - 1, 2**62)
        cursor = self._encode(position)
        body: dict[str, Any] = {
            "tickets": page,
            "after_cursor": cursor,
            "after_url": f"{self.base_url}/api/v2/incremental/tickets/cursor.json?cursor={cursor}",
            "before_cursor": None,
            "end_of_stream": end,
        }
        if "metric_sets" in params.get("include", ""):
            body["metric_sets"] = [self.metrics[t["id"]] for t in page if t["id"] in self.metrics]
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

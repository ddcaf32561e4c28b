"""HTTP fakes on `responses` of the ticket note APIs: Freshdesk, Jira (Service Management), ServiceNow.

Shapes from the vendors' references:

- Freshdesk API v2 (developers.freshdesk.com/api, "Conversations"): ``GET
  /api/v2/tickets/{id}/conversations`` answers a JSON list of conversations (``id``, ``body``
  HTML, ``body_text``, ``private``, ``incoming``, ``created_at``), ``per_page`` up to 100 and a
  ``Link: <...page=N+1>; rel="next"`` header while there are more; ``POST
  /api/v2/tickets/{id}/notes`` with ``{"body", "private"}`` answers 201 with the note. Basic
  auth, API key as user and ``X`` as password; 401 ``{"code": "invalid_credentials", ...}``.
- Jira Cloud platform REST API v3 ("Issue comments"): ``GET /rest/api/3/issue/{key}/comment``
  with ``startAt``/``maxResults`` answers ``{"startAt", "maxResults", "total", "comments":
  [{"id", "body" (Atlassian Document Format), "created", "jsdPublic"}]}``; ``POST`` with
  ``{"body", "properties": [{"key": "sd.public.comment", "value": {"internal": true}}]}``
  (an internal note in Service Management) answers 201. Basic auth e-mail + API token; 401
  ``{"errorMessages": [...]}``.
- ServiceNow Table API: ``GET /api/now/table/sys_journal_field?sysparm_query=element_id=<sys_id>
  ^element=work_notes`` answers ``{"result": [{"value", ...}]}`` with ``sysparm_limit`` /
  ``sysparm_offset`` and a ``Link: <...>;rel="next"`` header while there are more; ``PATCH
  /api/now/table/{table}/{sys_id}`` with ``{"work_notes": text}`` appends a journal entry and
  answers 200 ``{"result": {...}}``. Basic auth; 401 ``{"error": {"message": "User Not
  Authenticated", ...}, "status": "failure"}``.

Each fake keeps the notes per ticket (`notes`), counts the notes written (`written`) and the
requests (`requests`), serves at most `page_size` items per page (the vendors' cap: 100), and
injects faults with `tests.fakes.salesforce_fake.FaultInjector`; `lost_503` applies the next N
writes and then answers 503.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
import responses

from tests.fakes.salesforce_fake import FaultInjector

Answer = tuple[int, dict[str, str], str]


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body)


class NotesFake:
    """What the three fakes share: auth, faults, pages, the notes per ticket."""

    base = ""
    unauthorized: Any = {}

    def __init__(self, user: str, password: str, *, tickets: list[str], faults: FaultInjector | None = None,
                 page_size: int = 100) -> None:
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.faults = faults or FaultInjector()
        self.page_size = page_size
        self.notes: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.tickets = set(tickets)
        self.written: Counter = Counter()
        self.requests: Counter = Counter()
        self.lost_503 = 0

    def texts(self, ticket: str) -> list[str]:
        raise NotImplementedError

    def routes(self) -> list[tuple[str, str, Callable[..., Answer]]]:
        raise NotImplementedError

    def install(self, rsps: responses.RequestsMock) -> NotesFake:
        for method, path, handler in self.routes():
            pattern = re.compile(re.escape(self.base) + path + r"(\?.*)?$")
            rsps.add_callback(method, pattern, callback=self._wrap(method, pattern, handler))
        return self

    def _wrap(self, method: str, pattern: re.Pattern, handler: Callable[..., Answer]):
        def callback(request: requests.PreparedRequest) -> Answer:
            self.requests[method] += 1
            if request.headers.get("Authorization") != self.auth:
                return _json(401, self.unauthorized)
            params = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
            body = json.loads(request.body) if request.body else None
            match = pattern.match(request.url)

            def run() -> Answer:
                return handler(body, params, **match.groupdict())

            if method != "GET" and self.lost_503:
                self.lost_503 -= 1
                run()
                return _json(503, {"message": "Service Unavailable"})
            kind = self.faults.decide(request)
            return self.faults.respond(kind, run) if kind else run()

        return callback

    def _page(self, items: list[Any], offset: int, limit: int) -> list[Any]:
        return items[offset:offset + min(limit, self.page_size)]

    def _missing(self) -> Answer:
        return _json(404, {"message": "not found"})


class FreshdeskNotesFake(NotesFake):
    base = "https://acme.freshdesk.com/api/v2"
    unauthorized = {"code": "invalid_credentials", "message": "You have to be logged in to perform this action."}

    def __init__(self, api_key: str, **kwargs: Any) -> None:
        super().__init__(api_key, "X", **kwargs)

    def texts(self, ticket: str) -> list[str]:
        return [n["body_text"] for n in self.notes[ticket]]

    def routes(self):
        return [("GET", r"/tickets/(?P<ticket>\d+)/conversations", self._list),
                ("POST", r"/tickets/(?P<ticket>\d+)/notes", self._post)]

    def _list(self, _body: Any, params: dict[str, str], ticket: str) -> Answer:
        if ticket not in self.tickets:
            return self._missing()
        page, per_page = int(params.get("page", 1)), min(int(params.get("per_page", 30)), self.page_size)
        items = self.notes[ticket][(page - 1) * per_page:page * per_page]
        headers = {}
        if page * per_page < len(self.notes[ticket]):
            query = urlencode({"per_page": params.get("per_page", 30), "page": page + 1})
            headers["Link"] = f'<{self.base}/tickets/{ticket}/conversations?{query}>; rel="next"'
        return _json(200, items, headers)

    def _post(self, body: dict[str, Any], _params: dict[str, str], ticket: str) -> Answer:
        if ticket not in self.tickets:
            return self._missing()
        note = {"id": 7000 + sum(self.written.values()), "body": body["body"],
                "body_text": re.sub(r"<br>", "\n", body["body"]).replace("&amp;", "&"),
                "private": body.get("private", False), "incoming": False, "ticket_id": int(ticket),
                "created_at": "2026-06-01T09:00:00Z"}
        self.notes[ticket].append(note)
        self.written[ticket] += 1
        return _json(201, note)


class JiraCommentsFake(NotesFake):
    base = "https://acme.atlassian.net"
    unauthorized = {"errorMessages": ["You are not authenticated. Authentication required to perform this operation."],
                    "errors": {}}

    def texts(self, ticket: str) -> list[str]:
        return ["\n".join(p["content"][0]["text"] for p in c["body"]["content"]) for c in self.notes[ticket]]

    def routes(self):
        return [("GET", r"/rest/api/3/issue/(?P<ticket>[A-Z]+-\d+)/comment", self._list),
                ("POST", r"/rest/api/3/issue/(?P<ticket>[A-Z]+-\d+)/comment", self._post)]

    def _list(self, _body: Any, params: dict[str, str], ticket: str) -> Answer:
        if ticket not in self.tickets:
            return _json(404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."]})
        start, limit = int(params.get("startAt", 0)), int(params.get("maxResults", 50))
        page = self._page(self.notes[ticket], start, limit)
        return _json(200, {"startAt": start, "maxResults": min(limit, self.page_size), "total": len(self.notes[ticket]),
                           "comments": page})

    def _post(self, body: dict[str, Any], _params: dict[str, str], ticket: str) -> Answer:
        if ticket not in self.tickets:
            return _json(404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."]})
        internal = any(p.get("key") == "sd.public.comment" and p.get("value", {}).get("internal")
                       for p in body.get("properties", []))
        comment = {"id": str(10000 + sum(self.written.values())), "body": body["body"], "jsdPublic": not internal,
                   "created": "2026-06-01T09:00:00.000+0000"}
        self.notes[ticket].append(comment)
        self.written[ticket] += 1
        return _json(201, comment)


class ServiceNowNotesFake(NotesFake):
    base = "https://acme.service-now.com"
    unauthorized = {"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"},
                    "status": "failure"}

    def __init__(self, user: str, password: str, *, table: str = "incident", **kwargs: Any) -> None:
        super().__init__(user, password, **kwargs)
        self.table = table

    def texts(self, ticket: str) -> list[str]:
        return [n["value"] for n in self.notes[ticket]]

    def routes(self):
        return [("GET", r"/api/now/table/sys_journal_field", self._list),
                ("PATCH", r"/api/now/table/(?P<table>\w+)/(?P<ticket>[0-9a-f]{32})", self._patch)]

    def _list(self, _body: Any, params: dict[str, str]) -> Answer:
        query = dict(part.split("=", 1) for part in params.get("sysparm_query", "").split("^") if "=" in part)
        if query.get("element") != "work_notes":
            return _json(400, {"error": {"message": "expected element=work_notes"}, "status": "failure"})
        entries = self.notes[query.get("element_id", "")]
        offset, limit = int(params.get("sysparm_offset", 0)), int(params.get("sysparm_limit", 10000))
        size = min(limit, self.page_size)
        headers = {}
        if offset + size < len(entries):
            query_string = urlencode({**params, "sysparm_offset": offset + size, "sysparm_limit": size})
            headers["Link"] = f'<{self.base}/api/now/table/sys_journal_field?{query_string}>;rel="next"'
        return _json(200, {"result": entries[offset:offset + size]}, headers)

    def _patch(self, body: dict[str, Any], _params: dict[str, str], table: str, ticket: str) -> Answer:
        if table != self.table or ticket not in self.tickets:
            return _json(404, {"error": {"message": "No Record found"}, "status": "failure"})
        if body.get("work_notes"):
            self.notes[ticket].append({"element": "work_notes", "element_id": ticket, "name": table,
                                       "value": body["work_notes"], "sys_created_on": "2026-06-01 09:00:00"})
            self.written[ticket] += 1
        return _json(200, {"result": {"sys_id": ticket, "number": "INC0010001", "state": "2"}})

"""A stateful HTTP fake of the ServiceNow Table API the landing source reads, on `responses`.

Shapes from ServiceNow's REST API reference ("Table API", ``GET /api/now/table/{tableName}``):

- parameters ``sysparm_query`` (an encoded query; the fake reads what the source sends:
  ``sys_updated_on>=yyyy-MM-dd HH:mm:ss`` and ``ORDERBY<field>``), ``sysparm_fields``,
  ``sysparm_limit``, ``sysparm_offset``, ``sysparm_display_value``,
  ``sysparm_exclude_reference_link``;
- the answer is ``{"result": [...]}`` with every value as text (an empty field ``""``, times
  ``yyyy-MM-dd HH:mm:ss`` UTC when ``sysparm_display_value=false``, a reference as its ``sys_id``
  without links), an ``X-Total-Count`` header and a ``Link`` header with ``rel="first"``,
  ``rel="next"`` (while more rows exist) and ``rel="last"``;
- tables ``incident`` (state 1 New, 2 In Progress, 3 On Hold, 6 Resolved, 7 Closed, 8 Canceled;
  the customer in ``company``), ``sn_customerservice_case`` (state 1 New, 10 Open, 18 Awaiting
  Info, 6 Resolved, 3 Closed, 7 Cancelled; the customer in ``account``), ``sys_user_group``,
  ``customer_account``; priority 1 Critical ... 5 Planning, escalation 0 Normal ... 3 Overdue;
- basic auth or a bearer token; anything else answers 401
  ``{"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}, "status": "failure"}``.

Records live in `tables[table][sys_id]`; `update` changes one (new ``sys_updated_on``).
`requests_seen` keeps each request's table and query; `faults` (the Salesforce fake's
`FaultInjector`) fails a seeded share of them; `broken_page` fails one page of one table.
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

INSTANCE = "acme.service-now.com"
USER, PASSWORD, TOKEN = "svc.rescue", "sn-test-password-123", "sn-test-oauth-token-456"
BASE = f"https://{INSTANCE}/api/now/table"
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
TABLES = ("incident", "sn_customerservice_case", "sys_user_group", "customer_account")
INCIDENT_STATES = (1, 2, 3, 6, 7, 8)
CASE_STATES = (1, 10, 18, 6, 3, 7)

_SINCE = re.compile(r"sys_updated_on>=(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})")
_ORDER = re.compile(r"ORDERBY(\w+)")


def sn_time(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def sys_id(table: str, n: int) -> str:
    return f"{TABLES.index(table) + 1:x}{n:031x}"


def task(table: str, n: int, *, updated: datetime, customer: str, state: int, group: str) -> dict[str, str]:
    """An incident or a case as the Table API returns it (display values off, no reference links)."""
    opened = updated - timedelta(hours=6)
    resolved = state in ((6, 7) if table == "incident" else (6, 3))
    row = {
        "sys_id": sys_id(table, n), "number": f"{'INC' if table == 'incident' else 'CS'}{n:07d}",
        "state": str(state), "priority": str(1 + n % 5), "escalation": str(n % 4 if n % 3 == 0 else 0),
        "category": "network" if n % 2 else "software", "assignment_group": group,
        "opened_at": sn_time(opened), "resolved_at": sn_time(updated) if resolved else "", "closed_at": "",
        "sys_created_on": sn_time(opened), "sys_updated_on": sn_time(updated), "short_description": f"Record {n}",
        "sys_mod_count": "3", "made_sla": "true",
    }
    row["company" if table == "incident" else "account"] = customer
    return row


@dataclass
class FakeServiceNow:
    tables: dict[str, dict[str, dict[str, str]]] = field(default_factory=lambda: {t: {} for t in TABLES})
    faults: FaultInjector = field(default_factory=FaultInjector)
    requests_seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    #: Fail every request for this page (table, 1-based page, status), until cleared.
    broken_page: tuple[str, int, int] | None = None
    now: datetime = T0

    @classmethod
    def with_records(cls, incidents: int, cases: int, accounts: int = 4, groups: int = 3, **kwargs: Any) -> FakeServiceNow:
        fake = cls(**kwargs)
        for a in range(1, accounts + 1):
            fake.tables["customer_account"][sys_id("customer_account", a)] = {
                "sys_id": sys_id("customer_account", a), "name": f"Account{a}", "number": f"ACCT{a:07d}"}
        for g in range(1, groups + 1):
            fake.tables["sys_user_group"][sys_id("sys_user_group", g)] = {
                "sys_id": sys_id("sys_user_group", g), "name": f"Group{g}", "active": "true"}
        for table, count, states in (("incident", incidents, INCIDENT_STATES), ("sn_customerservice_case", cases, CASE_STATES)):
            for n in range(1, count + 1):
                row = task(table, n, updated=T0 + timedelta(minutes=n, seconds=n % 7), state=states[n % len(states)],
                           customer=sys_id("customer_account", 1 + n % accounts),
                           group=sys_id("sys_user_group", 1 + n % groups))
                fake.tables[table][row["sys_id"]] = row
        fake.now = T0 + timedelta(minutes=max(incidents, cases) + 1)
        return fake

    def update(self, table: str, n: int, **changes: str) -> str:
        """Change a record (or add one): its ``sys_updated_on`` moves to the fake's clock, a minute on."""
        self.now += timedelta(minutes=1)
        key = sys_id(table, n)
        if key not in self.tables[table]:
            self.tables[table][key] = task(table, n, updated=self.now, state=1,
                                           customer=sys_id("customer_account", 1), group=sys_id("sys_user_group", 1))
        self.tables[table][key].update(changes, sys_updated_on=sn_time(self.now))
        return key

    # ------------------------------------------------------------------------------- wire

    def install(self, rsps: responses.RequestsMock) -> None:
        for table in TABLES:
            rsps.add_callback(responses.GET, re.compile(rf"{re.escape(BASE)}/{table}(\?.*)?$"),
                              callback=self._handle, content_type="application/json")

    def _authorized(self, request: requests.PreparedRequest) -> bool:
        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        return request.headers.get("Authorization") in (basic, f"Bearer {TOKEN}")

    def _handle(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        parts = urlsplit(request.url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        table = parts.path.rsplit("/", 1)[-1]
        self.requests_seen.append((table, query))
        if not self._authorized(request):
            return 401, {}, json.dumps({"error": {"message": "User Not Authenticated",
                                                  "detail": "Required to provide Auth information"}, "status": "failure"})
        limit, offset = int(query.get("sysparm_limit", "10000")), int(query.get("sysparm_offset", "0"))
        if self.broken_page and self.broken_page[:2] == (table, offset // limit + 1):
            return self.broken_page[2], {}, json.dumps({"error": {"message": "Transaction cancelled"}, "status": "failure"})
        if kind := self.faults.decide(request):
            return self.faults.respond(kind, lambda: (200, {}, ""))
        assert query.get("sysparm_display_value") == "false" and query.get("sysparm_exclude_reference_link") == "true"
        encoded = query.get("sysparm_query", "")
        rows = list(self.tables[table].values())
        if match := _SINCE.search(encoded):
            rows = [r for r in rows if r["sys_updated_on"] >= match.group(1)]
        if order := _ORDER.search(encoded):
            rows.sort(key=lambda r: (r[order.group(1)], r["sys_id"]))
        wanted = query["sysparm_fields"].split(",") if "sysparm_fields" in query else None
        chunk = [{k: v for k, v in r.items() if wanted is None or k in wanted} for r in rows[offset:offset + limit]]
        links = [f'<{BASE}/{table}?{urlencode({**query, "sysparm_offset": 0})}>;rel="first"']
        if offset + limit < len(rows):
            links.append(f'<{BASE}/{table}?{urlencode({**query, "sysparm_offset": offset + limit})}>;rel="next"')
        last = max(0, (len(rows) - 1) // limit * limit)
        links.append(f'<{BASE}/{table}?{urlencode({**query, "sysparm_offset": last})}>;rel="last"')
        return 200, {"X-Total-Count": str(len(rows)), "Link": ",".join(links)}, json.dumps({"result": chunk})

    def pages_requested(self, table: str) -> list[int]:
        return [int(q.get("sysparm_offset", "0")) // int(q["sysparm_limit"]) + 1
                for t, q in self.requests_seen if t == table]

    def first_since(self, table: str, after: int) -> str:
        return next(_SINCE.search(q["sysparm_query"]).group(1) for t, q in self.requests_seen[after:] if t == table)

    def expected(self, table: str) -> dict[str, str]:
        return {k: r["sys_updated_on"] for k, r in sorted(self.tables[table].items())}

"""A stateful HTTP fake of the Salesforce APIs the connector uses, built on `responses`.

It answers like the real org on the wire, so the connector runs unchanged on top of
simple-salesforce:

- SOAP login (``POST https://{domain}.salesforce.com/services/Soap/u/{version}``): checks the
  username and password+token, hands out a session id; a wrong login is a SOAP fault (HTTP 500);
- REST calls check ``Authorization: Bearer <session>``; an expired session answers 401
  ``INVALID_SESSION_ID``;
- SOQL (``/query?q=``): a small interpreter of ``SELECT <fields|COUNT()> FROM <object>
  [WHERE <conditions with AND / OR / parentheses>] [ORDER BY <field>] [LIMIT n]``, parent relationship fields
  (``Owner.Name``), result pages of `page_size` with ``nextRecordsUrl``;
- sObject upsert by external id (``PATCH /sobjects/<Object>/<Field>/<value>``): 201 created,
  204 updated, with validation rules that answer 400 like a custom validation rule;
- Bulk API 2.0 ingest (create job, upload CSV, close, poll UploadComplete -> InProgress ->
  JobComplete, successfulResults / failedResults / unprocessedrecords) and query jobs (``POST
  /jobs/query``, polled UploadComplete -> InProgress -> JobComplete, CSV result pages of
  at most ``maxRecords`` rows (and at most `bulk_page_size`, as the real API may send fewer) with
  ``Sforce-Locator``; Bulk
  API 2.0 Developer Guide, "Query Jobs").

Records live in `records[object][Id]`; `queries` keeps the SOQL of every REST query received,
`requests` every request's method and path; `upsert_calls` counts every upsert request received per
(object, external id) and `creates` the records actually created, so tests can prove that
retries never duplicate a record.

Fault injection (`FaultInjector`): a seeded fraction of calls answers 429 with Retry-After,
500 or 503, raises a timeout before the server sees the request, or processes the request and
then loses the response (the client sees a timeout although the write happened).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pandas as pd
import requests
import responses

FAULT_KINDS = ("429", "500", "503", "timeout", "lost")


@dataclass
class FaultInjector:
    """Decides, per request, whether to fail it and how. Seeded: the same seed fails the same
    calls. `lost` processes the request, then raises a timeout instead of answering. `queue`
    holds faults forced on the next calls, in order, before the random ones."""

    rate: float = 0.0
    seed: int = 0
    kinds: tuple[str, ...] = FAULT_KINDS
    retry_after: str = "2"
    injected: Counter = field(default_factory=Counter)
    applies_to: Callable[[requests.PreparedRequest], bool] = lambda _request: True
    queue: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = (set(self.kinds) | set(self.queue)) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kind(s): {sorted(unknown)}")
        self._rng = random.Random(self.seed)

    def decide(self, request: requests.PreparedRequest) -> str | None:
        if not self.applies_to(request):
            return None
        if self.queue:
            kind = self.queue.pop(0)
            self.injected[kind] += 1
            return kind
        if self.rate <= 0:
            return None
        if self._rng.random() >= self.rate:
            return None
        kind = self._rng.choice(self.kinds)
        self.injected[kind] += 1
        return kind

    def respond(self, kind: str, handler: Callable[[], tuple[int, dict[str, str], str]]
                ) -> tuple[int, dict[str, str], str]:
        """The faulty answer of kind `kind`; `handler` processes the request (for ``lost``)."""
        if kind == "429":
            return 429, {"Retry-After": self.retry_after, "Content-Type": "application/json"}, json.dumps(
                [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "rate limited"}])
        if kind in ("500", "503"):
            return int(kind), {"Content-Type": "application/json"}, json.dumps(
                [{"errorCode": "SERVER_UNAVAILABLE", "message": "try again later"}])
        if kind == "timeout":
            raise requests.exceptions.ConnectTimeout("fake: connect timed out")
        handler()
        raise requests.exceptions.ReadTimeout("fake: read timed out after the server processed the request")


# ---------------------------------------------------------------------------------------------
# SOQL interpreter (the subset the connector sends)
# ---------------------------------------------------------------------------------------------

_SELECT = re.compile(r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>\w+)"
                     r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+ORDER\s+BY\s+(?P<order>[\w.]+))?"
                     r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$", re.IGNORECASE | re.DOTALL)
_TOKEN = re.compile(r"\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<op>!=|>=|<=|=|>|<)|(?P<str>'(?:\\.|[^'\\])*')"
                    r"|(?P<dt>\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:?\d{2}))|(?P<date>\d{4}-\d{2}-\d{2})"
                    r"|(?P<num>-?\d+(?:\.\d+)?)|(?P<word>[\w.]+))")


class SoqlError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise SoqlError(f"unexpected token at {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _literal(kind: str, raw: str) -> Any:
    if kind == "str":
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    if kind in ("dt", "date"):
        return pd.Timestamp(raw)
    if kind == "num":
        return float(raw)
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    raise SoqlError(f"not a literal: {raw!r}")


def _compare(left: Any, op: str, right: Any) -> bool:
    if isinstance(right, pd.Timestamp) and left is not None:
        left = pd.Timestamp(left)
        if left.tzinfo is None:
            left = left.tz_localize("UTC")
        if right.tzinfo is None:
            right = right.tz_localize("UTC")
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    if left is None or right is None:
        return False
    return {">": left > right, "<": left < right, ">=": left >= right, "<=": left <= right}[op]


class _Condition:
    """Recursive-descent parser of WHERE: or := and (OR and)*; and := atom (AND atom)*."""

    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.tree = self._or()
        if self.i != len(self.toks):
            raise SoqlError(f"trailing tokens in WHERE: {self.toks[self.i:]}")

    def _peek_word(self, word: str) -> bool:
        if self.i >= len(self.toks):
            return False
        kind, value = self.toks[self.i]
        return kind == "word" and value.upper() == word

    def _or(self) -> Any:
        node = self._and()
        while self._peek_word("OR"):
            self.i += 1
            node = ("or", node, self._and())
        return node

    def _and(self) -> Any:
        node = self._atom()
        while self._peek_word("AND"):
            self.i += 1
            node = ("and", node, self._atom())
        return node

    def _atom(self) -> Any:
        kind, value = self.toks[self.i]
        if kind == "lp":
            self.i += 1
            node = self._or()
            if self.toks[self.i][0] != "rp":
                raise SoqlError("missing )")
            self.i += 1
            return node
        field_name = value
        op_kind, op = self.toks[self.i + 1]
        if op_kind != "op":
            raise SoqlError(f"expected an operator after {field_name}")
        lit_kind, raw = self.toks[self.i + 2]
        self.i += 3
        return ("cmp", field_name, op, _literal(lit_kind, raw))

    def matches(self, get: Callable[[str], Any], node: Any = None) -> bool:
        node = self.tree if node is None else node
        if node[0] == "and":
            return self.matches(get, node[1]) and self.matches(get, node[2])
        if node[0] == "or":
            return self.matches(get, node[1]) or self.matches(get, node[2])
        return _compare(get(node[1]), node[2], node[3])


@dataclass
class _Query:
    fields: list[str]
    sobject: str
    count_only: bool
    condition: _Condition | None
    limit: int | None
    order_by: str | None = None


def parse_soql(soql: str) -> _Query:
    m = _SELECT.match(soql)
    if not m:
        raise SoqlError(f"cannot parse SOQL: {soql!r}")
    fields = [f.strip() for f in m["fields"].split(",")]
    count_only = [f.upper() for f in fields] == ["COUNT()"]
    return _Query(fields=fields, sobject=m["object"], count_only=count_only,
                  condition=_Condition(m["where"]) if m["where"] else None,
                  limit=int(m["limit"]) if m["limit"] else None, order_by=m["order"])


# ---------------------------------------------------------------------------------------------
# The fake org
# ---------------------------------------------------------------------------------------------


@dataclass
class _IngestJob:
    job_id: str
    sobject: str
    operation: str
    key_field: str
    state: str = "Open"
    csv_text: str = ""
    polls: int = 0
    successful: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)


@dataclass
class _QueryJob:
    job_id: str
    soql: str
    state: str = "UploadComplete"
    polls: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)


class SalesforceFake:
    """A fake org. ``install(rsps)`` registers its endpoints on a `responses.RequestsMock`."""

    def __init__(self, *, username: str = "integration@example.com", password: str = "pw",
                 security_token: str = "token", domain: str = "login", instance: str = "acme.my.salesforce.com",
                 version: str = "59.0", page_size: int = 2000, polls_to_complete: int = 2,
                 faults: FaultInjector | None = None) -> None:
        self.username, self.password, self.security_token = username, password, security_token
        self.domain, self.instance, self.version = domain, instance, version
        self.page_size = page_size
        self.polls_to_complete = polls_to_complete
        #: Most rows per Bulk 2.0 query result page, whatever ``maxRecords`` the client asks for.
        self.bulk_page_size = 50_000
        self.faults = faults or FaultInjector()
        self.records: dict[str, dict[str, dict[str, Any]]] = {}
        self.sessions: set[str] = set()
        self.logins = 0
        self.upsert_calls: Counter = Counter()
        self.creates: Counter = Counter()
        self.requests: list[tuple[str, str]] = []
        #: The SOQL of every REST query received (COUNT()s included), in order.
        self.queries: list[str] = []
        self.validation_rules: list[tuple[str, str, Callable[[Any], bool], str]] = []
        self.ingest_jobs: dict[str, _IngestJob] = {}
        self.query_jobs: dict[str, _QueryJob] = {}
        self._cursors: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._clock = itertools.count(1)

    # -- set-up --------------------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"https://{self.instance}/services/data/v{self.version}"

    def new_id(self, sobject: str) -> str:
        prefix = {"Account": "001", "Opportunity": "006", "Task": "00T", "User": "005"}.get(sobject, "a00")
        return f"{prefix}{next(self._ids):012d}AAA"

    def _stamp(self) -> str:
        base = pd.Timestamp("2025-01-01T00:00:00Z") + pd.Timedelta(seconds=next(self._clock))
        return base.strftime("%Y-%m-%dT%H:%M:%S.000+0000")

    def add(self, sobject: str, **fields: Any) -> dict[str, Any]:
        """Store a record (Id and SystemModstamp filled in unless given)."""
        record = {"Id": fields.pop("Id", None) or self.new_id(sobject), **fields}
        record.setdefault("SystemModstamp", self._stamp())
        self.records.setdefault(sobject, {})[record["Id"]] = record
        return record

    def touch(self, sobject: str, record_id: str, **fields: Any) -> None:
        """Change a record as a user would (bumps SystemModstamp)."""
        self.records[sobject][record_id].update(fields, SystemModstamp=self._stamp())

    def add_validation_rule(self, sobject: str, field_name: str, is_valid: Callable[[Any], bool],
                            message: str) -> None:
        self.validation_rules.append((sobject, field_name, is_valid, message))

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def by_key(self, sobject: str, key_field: str) -> dict[str, dict[str, Any]]:
        return {str(r[key_field]): r for r in self.records.get(sobject, {}).values() if r.get(key_field) is not None}

    # -- wiring --------------------------------------------------------------------------------

    def install(self, rsps: responses.RequestsMock) -> SalesforceFake:
        login_url = re.compile(rf"https://{re.escape(self.domain)}\.salesforce\.com/services/Soap/u/[\d.]+")
        rsps.add_callback(responses.POST, login_url, callback=self._guard(self._login))
        api = re.compile(rf"{re.escape(self.base)}/.*")
        for method in (responses.GET, responses.POST, responses.PATCH, responses.PUT, responses.DELETE):
            rsps.add_callback(method, api, callback=self._guard(self._api))
        return self

    def _guard(self, handler: Callable[[requests.PreparedRequest], tuple[int, dict[str, str], str]]):
        def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
            self.requests.append((request.method or "", urlsplit(request.url or "").path))
            kind = self.faults.decide(request)
            if kind is not None:
                return self.faults.respond(kind, lambda: handler(request))
            return handler(request)
        return callback

    # -- login ---------------------------------------------------------------------------------

    def _login(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        user = re.search(r"<n1:username>(.*?)</n1:username>", body)
        secret = re.search(r"<n1:password>(.*?)</n1:password>", body)
        if not user or not secret or user.group(1) != self.username or \
                secret.group(1) != self.password + self.security_token:
            fault = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
                     'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
                     'xmlns:sf="urn:fault.partner.soap.sforce.com"><soapenv:Body><soapenv:Fault>'
                     '<faultcode>sf:INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid username, '
                     'password, security token; or user locked out.</faultstring><detail><sf:LoginFault>'
                     '<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>Invalid username, '
                     'password, security token; or user locked out.</sf:exceptionMessage></sf:LoginFault>'
                     '</detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>')
            return 500, {"Content-Type": "text/xml"}, fault
        self.logins += 1
        session_id = f"00Dfake!session{self.logins:04d}"
        self.sessions.add(session_id)
        envelope = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
                    'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com">'
                    '<soapenv:Body><loginResponse><result>'
                    f'<serverUrl>https://{self.instance}/services/Soap/u/{self.version}/00Dfake</serverUrl>'
                    f'<sessionId>{session_id}</sessionId><userId>005000000000001AAA</userId>'
                    '</result></loginResponse></soapenv:Body></soapenv:Envelope>')
        return 200, {"Content-Type": "text/xml"}, envelope

    # -- REST router ---------------------------------------------------------------------------

    def _api(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        token = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
        if token not in self.sessions:
            return 401, {"Content-Type": "application/json"}, json.dumps(
                [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        parts = urlsplit(request.url or "")
        path = parts.path.removeprefix(urlsplit(self.base).path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        method = request.method or "GET"
        try:
            if path == "/query/" or path == "/query":
                return self._query(params["q"])
            if path.startswith("/query/"):
                return self._query_more(path.removeprefix("/query/"))
            m = re.fullmatch(r"/sobjects/(\w+)/(\w+)/(.+)", path)
            if m and method == "PATCH":
                return self._upsert(m[1], m[2], unquote(m[3]), json.loads(request.body or "{}"))
            if path.startswith("/jobs/ingest"):
                return self._ingest(method, path.removeprefix("/jobs/ingest").strip("/"), request)
            if path.startswith("/jobs/query"):
                return self._bulk_query(method, path.removeprefix("/jobs/query").strip("/"), request, params)
        except SoqlError as exc:
            return 400, {"Content-Type": "application/json"}, json.dumps(
                [{"message": str(exc), "errorCode": "MALFORMED_QUERY"}])
        return 404, {"Content-Type": "application/json"}, json.dumps(
            [{"message": f"no such resource {path}", "errorCode": "NOT_FOUND"}])

    # -- SOQL ----------------------------------------------------------------------------------

    def _get(self, record: Mapping[str, Any], path: str) -> Any:
        head, _, rest = path.partition(".")
        if not rest:
            return record.get(path)
        parent = self._find(record.get(f"{head}Id"))
        return self._get(parent, rest) if parent else None

    def _find(self, record_id: Any) -> dict[str, Any] | None:
        for table in self.records.values():
            if record_id in table:
                return table[record_id]
        return None

    def _check_fields(self, sobject: str, fields: Iterable[str]) -> None:
        known = {k for r in self.records.get(sobject, {}).values() for k in r} | {"Id", "SystemModstamp"}
        for name in fields:
            if "." not in name and name not in known:
                raise SoqlError(f"No such column '{name}' on entity '{sobject}'")

    def select(self, soql: str) -> tuple[_Query, list[dict[str, Any]]]:
        query = parse_soql(soql)
        rows = list(self.records.get(query.sobject, {}).values())
        if not query.count_only:
            self._check_fields(query.sobject, query.fields)
        if query.condition:
            rows = [r for r in rows if query.condition.matches(lambda p, r=r: self._get(r, p))]
        if query.order_by:
            rows.sort(key=lambda r: (self._get(r, query.order_by) is None, _sort_key(self._get(r, query.order_by))))
        if query.limit is not None:
            rows = rows[: query.limit]
        return query, rows

    def _shape(self, sobject: str, record: Mapping[str, Any], fields: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": {"type": sobject, "url": f"{self.base}/sobjects/{sobject}/{record['Id']}"}}
        for name in fields:
            head, _, rest = name.partition(".")
            if rest:
                parent = self._find(record.get(f"{head}Id"))
                out[head] = None if parent is None else {"attributes": {"type": "User"}, rest: parent.get(rest)}
            else:
                out[name] = record.get(name)
        return out

    def _query(self, soql: str) -> tuple[int, dict[str, str], str]:
        self.queries.append(soql)
        query, rows = self.select(soql)
        if query.count_only:
            return 200, {"Content-Type": "application/json"}, json.dumps({"totalSize": len(rows), "done": True,
                                                                          "records": []})
        shaped = [self._shape(query.sobject, r, query.fields) for r in rows]
        cursor = f"01gfake{len(self._cursors):06d}"
        self._cursors[cursor] = shaped
        return self._page(cursor, 0)

    def _page(self, cursor: str, offset: int) -> tuple[int, dict[str, str], str]:
        rows = self._cursors[cursor]
        chunk = rows[offset: offset + self.page_size]
        done = offset + self.page_size >= len(rows)
        body: dict[str, Any] = {"totalSize": len(rows), "done": done, "records": chunk}
        if not done:
            body["nextRecordsUrl"] = f"/services/data/v{self.version}/query/{cursor}-{offset + self.page_size}"
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def _query_more(self, locator: str) -> tuple[int, dict[str, str], str]:
        cursor, _, offset = locator.rpartition("-")
        if cursor not in self._cursors:
            return 400, {"Content-Type": "application/json"}, json.dumps(
                [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}])
        return self._page(cursor, int(offset))

    # -- upsert --------------------------------------------------------------------------------

    def _validate(self, sobject: str, fields: Mapping[str, Any]) -> str | None:
        for rule_object, name, is_valid, message in self.validation_rules:
            if rule_object == sobject and name in fields and not is_valid(fields[name]):
                return message
        return None

    def apply_upsert(self, sobject: str, key_field: str, key: str, fields: Mapping[str, Any]
                     ) -> tuple[str, bool] | str:
        """Upsert one record; (Id, created) or an error message."""
        self.upsert_calls[(sobject, key)] += 1
        error = self._validate(sobject, fields)
        if error:
            return f"FIELD_CUSTOM_VALIDATION_EXCEPTION:{error}"
        values = {k: v for k, v in fields.items() if k != key_field}
        if key_field == "Id":
            existing = self.records.get(sobject, {}).get(key)
            if existing is None:
                return f"NOT_FOUND:no {sobject} with Id {key}"
        else:
            existing = self.by_key(sobject, key_field).get(key)
        if existing is not None:
            existing.update(values, SystemModstamp=self._stamp())
            return existing["Id"], False
        record = self.add(sobject, **{key_field: key, **values})
        self.creates[(sobject, key)] += 1
        return record["Id"], True

    def _upsert(self, sobject: str, key_field: str, key: str, body: Mapping[str, Any]
                ) -> tuple[int, dict[str, str], str]:
        outcome = self.apply_upsert(sobject, key_field, key, body)
        if isinstance(outcome, str):
            code, _, message = outcome.partition(":")
            status = 404 if code == "NOT_FOUND" else 400
            return status, {"Content-Type": "application/json"}, json.dumps(
                [{"message": message, "errorCode": code, "fields": []}])
        record_id, created = outcome
        if created:
            return 201, {"Content-Type": "application/json"}, json.dumps(
                {"id": record_id, "success": True, "errors": [], "created": True})
        return 204, {}, ""

    # -- Bulk API 2.0 ---------------------------------------------------------------------------

    @staticmethod
    def _job_info(job: _IngestJob | _QueryJob, **extra: Any) -> tuple[int, dict[str, str], str]:
        return 200, {"Content-Type": "application/json"}, json.dumps({"id": job.job_id, "state": job.state, **extra})

    def _ingest(self, method: str, rest: str, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        if method == "POST" and not rest:
            spec = json.loads(request.body or "{}")
            job = _IngestJob(job_id=f"750fake{len(self.ingest_jobs):08d}", sobject=spec["object"],
                             operation=spec["operation"], key_field=spec.get("externalIdFieldName", "Id"))
            self.ingest_jobs[job.job_id] = job
            return self._job_info(job, object=job.sobject, operation=job.operation)
        job_id, _, tail = rest.partition("/")
        job = self.ingest_jobs[job_id]
        if method == "PUT" and tail == "batches":
            if job.state != "Open":
                return 400, {"Content-Type": "application/json"}, json.dumps(
                    [{"errorCode": "INVALIDJOBSTATE", "message": f"job is {job.state}"}])
            body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
            job.csv_text = body
            return 201, {}, ""
        if method == "PATCH" and not tail:
            state = json.loads(request.body or "{}")["state"]
            job.state = state
            return self._job_info(job)
        if method == "GET" and not tail:
            if job.state in ("UploadComplete", "InProgress"):
                job.polls += 1
                job.state = "InProgress"
                if job.polls >= self.polls_to_complete:
                    self._run_ingest(job)
                    job.state = "JobComplete"
            return self._job_info(job, numberRecordsProcessed=len(job.successful) + len(job.failed),
                                  numberRecordsFailed=len(job.failed))
        if method == "GET" and tail in ("successfulResults", "failedResults", "unprocessedrecords",
                                        "unprocessedRecords"):
            if tail == "successfulResults":
                return self._csv(["sf__Id", "sf__Created", *job.columns], job.successful)
            if tail == "failedResults":
                return self._csv(["sf__Id", "sf__Error", *job.columns], job.failed)
            return self._csv(job.columns, [])
        return 404, {}, ""

    def _run_ingest(self, job: _IngestJob) -> None:
        reader = csv.DictReader(io.StringIO(job.csv_text))
        job.columns = list(reader.fieldnames or [])
        for row in reader:
            values = {k: (None if v == "#N/A" else v) for k, v in row.items() if v != ""}
            outcome = self.apply_upsert(job.sobject, job.key_field, row[job.key_field], values)
            if isinstance(outcome, str):
                job.failed.append({"sf__Id": "", "sf__Error": outcome, **row})
            else:
                record_id, created = outcome
                job.successful.append({"sf__Id": record_id, "sf__Created": str(created).lower(), **row})

    @staticmethod
    def _csv(columns: list[str], rows: list[dict[str, Any]], headers: dict[str, str] | None = None
             ) -> tuple[int, dict[str, str], str]:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return 200, {"Content-Type": "text/csv", **(headers or {})}, buffer.getvalue()

    def _bulk_query(self, method: str, rest: str, request: requests.PreparedRequest, params: Mapping[str, str]
                    ) -> tuple[int, dict[str, str], str]:
        if method == "POST" and not rest:
            spec = json.loads(request.body or "{}")
            job = _QueryJob(job_id=f"750qfake{len(self.query_jobs):07d}", soql=spec["query"])
            self.query_jobs[job.job_id] = job
            return self._job_info(job, operation=spec["operation"])
        job_id, _, tail = rest.partition("/")
        job = self.query_jobs[job_id]
        if method == "GET" and not tail:
            if job.state in ("UploadComplete", "InProgress"):
                job.polls += 1
                job.state = "InProgress"
                if job.polls >= self.polls_to_complete:
                    query, rows = self.select(job.soql)
                    job.columns = query.fields
                    job.rows = [{f: _csv_cell(self._get(r, f)) for f in query.fields} for r in rows]
                    job.state = "JobComplete"
            return self._job_info(job)
        if method == "GET" and tail == "results":
            offset = int(params.get("locator") or 0)
            size = min(int(params.get("maxRecords") or self.bulk_page_size), self.bulk_page_size)
            chunk = job.rows[offset: offset + size]
            locator = str(offset + size) if offset + size < len(job.rows) else "null"
            return self._csv(job.columns, chunk, {"Sforce-Locator": locator,
                                                  "Sforce-NumberOfRecords": str(len(chunk))})
        return 404, {}, ""


def _sort_key(value: Any) -> Any:
    """ORDER BY on a datetime field compares instants, not the text."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}T.*", value):
        return pd.Timestamp(value).value
    return value


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

"""Zendesk-style ticketing: incremental cursor export of tickets into the ``tickets`` contract.

How a pull works (`sync_tickets`):

1. the export resumes from the cursor persisted by the previous run (a `CursorStore`: a JSON
   file by default, or a table in any SQL database), or starts ``history_days`` back on the first
   run: ``GET /api/v2/incremental/tickets/cursor.json?start_time=...`` then ``?cursor=...``
   until ``end_of_stream``, with ticket metrics side-loaded (``include=metric_sets``);
2. each page is mapped to the contract and merged into a local mirror of the tickets (a SQL
   table keyed by ticket id, latest ``updated_at`` wins; deleted tickets are removed), and only
   then is the page's ``after_cursor`` saved. A crash between the two re-reads that page on the
   next run, which the merge absorbs: no ticket is lost, none is doubled;
3. `ZendeskTicketing.tickets()` returns the whole mirror (with ``since``, the daily run's ticket
   window, filtered in SQL), leniently conformed, like any other `TicketingSource`.

Organizations map tickets to accounts: ``organization_id`` -> the organization's
``external_id`` (default) or any field path such as ``organization_fields.account_id``, fetched
with ``/api/v2/organizations/show_many.json`` in batches of 100 and cached per client.

Field mapping:

| contract column     | from the ticket                                                        |
|---------------------|------------------------------------------------------------------------|
| ticket_id           | ``id``                                                                 |
| account_id          | the organization's account field (above)                              |
| created_at          | ``created_at``                                                         |
| first_response_at   | ``created_at`` + metric ``reply_time_in_minutes.calendar``             |
| solved_at           | metric ``solved_at``; without metrics, ``updated_at`` of solved/closed |
| priority            | ``priority`` (urgent/high/normal/low); unset -> ``normal``             |
| category            | a custom field (``category_field_id``) or else the ticket ``type``     |
| status              | ``status``; ``hold`` -> ``pending``; ``deleted`` removes the ticket    |
| csat                | ``satisfaction_rating.score``: ``good`` -> 5, ``bad`` -> 1 (the ends of |
|                     | the 1-5 scale, since Zendesk's rating is binary); offered/unoffered -> null |
| escalated           | the ticket carries any of ``escalation_tags``                          |

Rate limits: the export endpoint allows 10 requests a minute; 429 answers are retried after
their ``Retry-After``, 5xx and timeouts with exponential backoff (`connectors.http_retry`).
Authentication is an API token (``{email}/token:{api_token}``, HTTP basic); the token is bound
through `dg.EnvVar`, excluded from repr, and never logged or put in an error message.
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import pandas as pd
import requests
import sqlalchemy as sa
from pydantic import Field

from connectors.http_retry import Retrier, RetryExhaustedError, RetryPolicy, install_transient_hook, redact
from connectors.settings import project_home
from connectors.sources import TicketingSource
from models.clock import now_or, utc_timestamp, utcnow
from models.contracts import TICKETS, conform

log = logging.getLogger(__name__)

EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"
ORGANIZATIONS_PATH = "/api/v2/organizations/show_many.json"
SHOW_MANY_LIMIT = 100

CSAT_SCORES = {"good": 5.0, "bad": 1.0}
STATUS_MAP = {"new": "new", "open": "open", "pending": "pending", "hold": "pending", "solved": "solved",
              "closed": "closed"}
SOLVED_STATUSES = frozenset({"solved", "closed"})

#: Columns of the mirror: the contract's plus the ticket's last change (orders merges).
MIRROR_COLUMNS = (*TICKETS.column_names, "updated_at")


class ZendeskAPIError(RuntimeError):
    """A ticketing API call failed. The message names the endpoint, never the token."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------------------
# Cursor stores
# ---------------------------------------------------------------------------------------------


class CursorStore(Protocol):
    """Where export cursors live between runs, one value per stream name."""

    def get(self, stream: str) -> str | None: ...

    def set(self, stream: str, cursor: str) -> None: ...


class JsonFileCursorStore:
    """Cursors in one JSON file (``{"stream": "cursor"}``), replaced atomically on each save."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"JsonFileCursorStore({str(self.path)!r})"

    def _read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"cursor file {self.path} is not valid JSON ({exc}); fix or delete it "
                             f"(deleting restarts the export from the configured history)") from exc
        if not isinstance(data, dict):
            raise ValueError(f"cursor file {self.path} must hold a JSON object of stream -> cursor")
        return data

    def get(self, stream: str) -> str | None:
        return self._read().get(stream)

    def set(self, stream: str, cursor: str) -> None:
        data = {**self._read(), stream: cursor}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        os.replace(tmp, self.path)


_CURSOR_METADATA = sa.MetaData()
_cursor_table = sa.Table(
    "sync_cursors", _CURSOR_METADATA,
    sa.Column("stream", sa.String(256), primary_key=True),
    sa.Column("cursor", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)


class SqlCursorStore:
    """Cursors in a ``sync_cursors`` table of any SQL database (created if missing)."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        _CURSOR_METADATA.create_all(self.engine)

    def __repr__(self) -> str:
        return f"SqlCursorStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def get(self, stream: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(_cursor_table.c.cursor).where(_cursor_table.c.stream == stream)).scalar()

    def set(self, stream: str, cursor: str) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(_cursor_table.delete().where(_cursor_table.c.stream == stream))
            conn.execute(_cursor_table.insert().values(stream=stream, cursor=cursor, updated_at=now))


def open_cursor_store(location: str = "") -> CursorStore:
    """A cursor store from config: empty -> ``zendesk_cursors.json`` under the project home;
    a SQLAlchemy URL (``scheme://...``) -> `SqlCursorStore`; anything else -> a JSON file path."""
    if not location:
        return JsonFileCursorStore(project_home() / "zendesk_cursors.json")
    if "://" in location:
        return SqlCursorStore(location)
    return JsonFileCursorStore(location)


# ---------------------------------------------------------------------------------------------
# Ticket mirror
# ---------------------------------------------------------------------------------------------


class TicketMirror:
    """The tickets exported so far, one row per ticket, in a SQL table (``zendesk_tickets``)."""

    def __init__(self, url: str, table: str = "zendesk_tickets") -> None:
        self.engine = sa.create_engine(url)
        metadata = sa.MetaData()
        kinds = {"str": sa.String(256), "float": sa.Float, "int": sa.Integer, "datetime": sa.DateTime,
                 "bool": sa.Boolean}
        columns = [sa.Column(c.name, kinds[c.kind], primary_key=c.name == "ticket_id") for c in TICKETS.columns]
        self.table = sa.Table(table, metadata, *columns, sa.Column("updated_at", sa.DateTime))
        metadata.create_all(self.engine)

    def __repr__(self) -> str:
        return f"TicketMirror({self.engine.url.render_as_string(hide_password=True)!r})"

    def merge(self, changed: pd.DataFrame, deleted: Iterable[str] = ()) -> None:
        """Replace the rows of the tickets in `changed` (latest ``updated_at`` per ticket) and
        remove `deleted` ones, in one transaction."""
        latest = changed.sort_values("updated_at", kind="stable").drop_duplicates("ticket_id", keep="last")
        ids = [*latest["ticket_id"].astype(str), *map(str, deleted)]
        rows = [{k: _sql_value(v) for k, v in rec.items()} for rec in latest[list(MIRROR_COLUMNS)].to_dict("records")]
        with self.engine.begin() as conn:
            for start in range(0, len(ids), 500):
                conn.execute(self.table.delete().where(self.table.c.ticket_id.in_(ids[start:start + 500])))
            if rows:
                conn.execute(self.table.insert(), rows)

    def load(self, since: datetime | None = None) -> pd.DataFrame:
        """Every mirrored ticket, or with ``since`` those created or solved at or after it, or
        not solved (`models.churn.tickets.relevant_tickets`'s window, filtered in SQL)."""
        query = sa.select(self.table).order_by(self.table.c.ticket_id)
        if since is not None:
            at = pd.Timestamp(since).tz_localize(None) if pd.Timestamp(since).tzinfo else pd.Timestamp(since)
            c = self.table.c
            query = query.where(sa.or_(c.created_at.is_(None), c.created_at >= at.to_pydatetime(),
                                       c.solved_at.is_(None), c.solved_at >= at.to_pydatetime()))
        with self.engine.connect() as conn:
            frame = pd.read_sql(query, conn)
        return frame

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self.table)).scalar() or 0)


def _sql_value(value: Any) -> Any:
    if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


# ---------------------------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportPage:
    """One page of the incremental export."""

    tickets: list[dict[str, Any]]
    metric_sets: list[dict[str, Any]]
    after_cursor: str | None
    end_of_stream: bool


class ZendeskClient:
    """Token-authenticated client of a Zendesk-style REST API, with the shared retry policy."""

    def __init__(self, base_url: str, email: str, api_token: str, *, retry_policy: RetryPolicy | None = None,
                 timeout: float = 60.0, page_size: int = 1000, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> None:
        if not base_url or not email or not api_token:
            raise ZendeskAPIError("ticketing API settings are incomplete: set base_url (e.g. "
                                  "https://acme.zendesk.com), email and api_token (e.g. ZENDESK_API_TOKEN)")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ZendeskAPIError(f"base_url must look like https://acme.zendesk.com, got {base_url!r}")
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        self.timeout = timeout
        self.page_size = page_size
        self.session = install_transient_hook(session or requests.Session())
        self.session.auth = (f"{email}/token", api_token)
        self._secrets = (api_token,)
        self.retrier = Retrier(retry_policy, sleep=sleep, rng=rng, logger=log)
        self._organizations: dict[int, dict[str, Any] | None] = {}

    def __repr__(self) -> str:
        return f"ZendeskClient({self.base_url!r})"

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """GET a JSON document, retrying 429 (after Retry-After), 5xx and timeouts."""
        endpoint = f"GET {path}"

        def once() -> requests.Response:
            return self.session.get(self.base_url + path, params=params, timeout=self.timeout)

        try:
            response = self.retrier.call(endpoint, once)
        except RetryExhaustedError as exc:
            raise ZendeskAPIError(redact(str(exc), self._secrets)) from None
        if response.status_code == 401:
            raise ZendeskAPIError(f"{endpoint}: authentication failed (HTTP 401); check the email and "
                                  f"API token, and that token access is enabled", status=401)
        if response.status_code == 403:
            raise ZendeskAPIError(f"{endpoint}: forbidden (HTTP 403); the API user needs access to "
                                  f"tickets and organizations", status=403)
        if response.status_code >= 400:
            raise ZendeskAPIError(f"{endpoint}: HTTP {response.status_code} "
                                  f"({redact(response.text[:300], self._secrets)})", status=response.status_code)
        return response.json()

    def export_pages(self, *, start_time: int | None = None, cursor: str | None = None,
                     include_metrics: bool = True) -> Iterator[ExportPage]:
        """Pages of the cursor-based incremental ticket export, from `cursor` when given
        (resuming) or else from `start_time` (Unix seconds), until ``end_of_stream``."""
        if cursor is None and start_time is None:
            raise ValueError("export_pages needs a cursor (resume) or a start_time (first export)")
        params: dict[str, Any] = {"per_page": self.page_size}
        if include_metrics:
            params["include"] = "metric_sets"
        params.update({"cursor": cursor} if cursor else {"start_time": int(start_time or 0)})
        while True:
            body = self.get_json(EXPORT_PATH, params)
            page = ExportPage(tickets=list(body.get("tickets") or []), metric_sets=list(body.get("metric_sets") or []),
                              after_cursor=body.get("after_cursor"), end_of_stream=bool(body.get("end_of_stream")))
            yield page
            if page.end_of_stream or not page.after_cursor:
                return
            params = {k: v for k, v in params.items() if k != "start_time"} | {"cursor": page.after_cursor}

    def organizations(self, ids: Iterable[int]) -> dict[int, dict[str, Any] | None]:
        """Organizations by id (cached; unknown ids map to None), fetched 100 at a time."""
        wanted = sorted({int(i) for i in ids if i is not None and not pd.isna(i)})
        missing = [i for i in wanted if i not in self._organizations]
        for start in range(0, len(missing), SHOW_MANY_LIMIT):
            batch = missing[start:start + SHOW_MANY_LIMIT]
            body = self.get_json(ORGANIZATIONS_PATH, {"ids": ",".join(map(str, batch))})
            found = {int(org["id"]): org for org in body.get("organizations") or []}
            for org_id in batch:
                self._organizations[org_id] = found.get(org_id)
        return {i: self._organizations[i] for i in wanted}


# ---------------------------------------------------------------------------------------------
# Mapping
# ---------------------------------------------------------------------------------------------


def _path_value(record: Mapping[str, Any] | None, path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _utc(value: Any) -> pd.Timestamp | None:
    """A Zendesk timestamp as naive UTC, None when the field is empty."""
    return None if value is None or value == "" else utc_timestamp(value)


def map_tickets(
    tickets: Sequence[Mapping[str, Any]],
    metric_sets: Sequence[Mapping[str, Any]],
    account_of_org: Mapping[int, Any],
    *,
    escalation_tags: Sequence[str] = ("escalated",),
    category_field_id: int | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """(rows in the mirror's columns, ids of deleted tickets) for one export page."""
    metrics = {int(m["ticket_id"]): m for m in metric_sets if m.get("ticket_id") is not None}
    tags_wanted = {t.lower() for t in escalation_tags}
    rows: list[dict[str, Any]] = []
    deleted: list[str] = []
    for t in tickets:
        ticket_id = str(t["id"])
        raw_status = str(t.get("status") or "").lower()
        if raw_status == "deleted":
            deleted.append(ticket_id)
            continue
        created = _utc(t.get("created_at"))
        updated = _utc(t.get("updated_at"))
        metric = metrics.get(int(t["id"]))
        reply_minutes = _path_value(metric, "reply_time_in_minutes.calendar")
        first_response = created + pd.Timedelta(minutes=float(reply_minutes)) \
            if created is not None and reply_minutes is not None else None
        status = STATUS_MAP.get(raw_status, raw_status or None)
        if metric is not None:
            solved = _utc(metric.get("solved_at"))
        else:
            solved = updated if status in SOLVED_STATUSES else None
        if category_field_id is not None:
            category = next((f.get("value") for f in t.get("custom_fields") or [] if f.get("id") == category_field_id),
                            None)
        else:
            category = t.get("type")
        org_id = t.get("organization_id")
        rows.append({
            "ticket_id": ticket_id,
            "account_id": account_of_org.get(int(org_id)) if org_id is not None else None,
            "created_at": created,
            "first_response_at": first_response,
            "solved_at": solved,
            "priority": str(t.get("priority") or "normal").lower(),
            "category": category,
            "status": status,
            "csat": CSAT_SCORES.get(str(_path_value(t, "satisfaction_rating.score") or "").lower()),
            "escalated": any(str(tag).lower() in tags_wanted for tag in t.get("tags") or []),
            "updated_at": updated,
        })
    frame = pd.DataFrame(rows, columns=list(MIRROR_COLUMNS))
    return frame, deleted


@dataclass(frozen=True)
class SyncReport:
    """What one export run did."""

    pages: int
    tickets_changed: int
    tickets_deleted: int
    cursor: str | None
    resumed: bool


def sync_tickets(
    client: ZendeskClient,
    cursors: CursorStore,
    mirror: TicketMirror,
    *,
    stream: str,
    start_time: int,
    org_account_field: str = "external_id",
    escalation_tags: Sequence[str] = ("escalated",),
    category_field_id: int | None = None,
) -> SyncReport:
    """Export tickets changed since the stored cursor (or `start_time`) into `mirror`, saving the
    cursor after each merged page."""
    cursor = resumed_from = cursors.get(stream)
    pages = changed = removed = 0
    pages_iter = client.export_pages(cursor=cursor) if cursor else client.export_pages(start_time=start_time)
    for page in pages_iter:
        orgs = client.organizations(t.get("organization_id") for t in page.tickets)
        account_of_org = {org_id: _path_value(org, org_account_field) if org else None for org_id, org in orgs.items()}
        frame, deleted = map_tickets(page.tickets, page.metric_sets, account_of_org,
                                     escalation_tags=escalation_tags, category_field_id=category_field_id)
        mirror.merge(frame, deleted)
        if page.after_cursor:
            cursors.set(stream, page.after_cursor)
            cursor = page.after_cursor
        pages += 1
        changed += len(frame)
        removed += len(deleted)
    log.info("ticket export: %d page(s), %d changed, %d deleted ticket(s)", pages, changed, removed)
    return SyncReport(pages=pages, tickets_changed=changed, tickets_deleted=removed, cursor=cursor,
                      resumed=resumed_from is not None)


# ---------------------------------------------------------------------------------------------
# Dagster resource
# ---------------------------------------------------------------------------------------------


class ZendeskTicketing(TicketingSource):
    """Tickets from a Zendesk-style API (incremental, cursor persisted), as a `TicketingSource`.

    Bind ``api_token=dg.EnvVar("ZENDESK_API_TOKEN")``. ``cursor_store`` is a file path or a SQL
    URL (default: a JSON file under the project home); ``mirror_url`` is the SQL database that
    keeps the exported tickets between runs (default: SQLite under the project home).
    """

    base_url: str = Field(description="API root, e.g. https://acme.zendesk.com.")
    email: str = Field(description="Email of the API user.")
    api_token: str = Field(repr=False, description="API token (bind with dg.EnvVar).")
    cursor_store: str = Field(default="", description="Cursor file path or SQL URL; empty = default file.")
    mirror_url: str = Field(default="", description="SQL URL of the ticket mirror; empty = default SQLite.")
    history_days: int = Field(default=730, description="How far back the first export starts.")
    org_account_field: str = Field(default="external_id",
                                   description="Organization field holding the account id (dotted path).")
    escalation_tags: list[str] = Field(default_factory=lambda: ["escalated"],
                                       description="Tags that mark a ticket as escalated.")
    category_field_id: int | None = Field(default=None, description="Custom field id of the category.")
    page_size: int = Field(default=1000, description="Tickets per export page (max 1000).")
    max_attempts: int = Field(default=8, description="Attempts per call on 429/5xx/timeouts.")
    timeout_seconds: float = Field(default=60.0, description="Timeout of each HTTP call.")

    def build_client(self, *, session: requests.Session | None = None,
                     sleep: Callable[[float], None] = time.sleep) -> ZendeskClient:
        return ZendeskClient(self.base_url, self.email, self.api_token,
                             retry_policy=RetryPolicy(max_attempts=self.max_attempts), timeout=self.timeout_seconds,
                             page_size=self.page_size, session=session, sleep=sleep)

    def stream_name(self) -> str:
        return f"tickets@{urlsplit(self.base_url).netloc}"

    def mirror(self) -> TicketMirror:
        return TicketMirror(self.mirror_url or f"sqlite:///{project_home() / 'zendesk_mirror.db'}")

    def sync(self, client: ZendeskClient | None = None, *, now: datetime | None = None) -> SyncReport:
        """Bring the mirror up to date (one incremental export)."""
        start = (now_or(now) - timedelta(days=self.history_days)).replace(tzinfo=timezone.utc)
        return sync_tickets(
            client or self.build_client(), open_cursor_store(self.cursor_store), self.mirror(),
            stream=self.stream_name(), start_time=int(start.timestamp()), org_account_field=self.org_account_field,
            escalation_tags=self.escalation_tags, category_field_id=self.category_field_id,
        )

    def tickets(self, since: datetime | None = None) -> pd.DataFrame:
        self.sync()
        return conform(self.mirror().load(since), TICKETS, lenient=True)

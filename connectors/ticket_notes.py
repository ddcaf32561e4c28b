"""Notes on the account's open escalation: the rescue case's story, on the ticket the support team works.

Outbox channel ``ticketing`` (kind ``case_note``), on when `RESCUE_TICKET_WRITEBACK` names a
ticketing system (``freshdesk``, ``jira``, ``servicenow``; unset: nothing is queued or sent).

Queuing (`queue_ticket_notes`, run by the CRM delivery next to `connectors.writeback.queue_case_syncs`):
one note when a case opens, one when its owner (assignee) or its severity (priority) changes,
one when it is resolved. Each note records the event, so it is keyed by the event
(``ticket_note:<case_id>:opened``, ``...:v<version>:owner``, ``...:v<version>:severity``,
``...:resolved``): queuing again queues nothing new. What changed is found by comparing the
case with the state its last queued note recorded.

Which ticket: the account's newest open escalated ticket in the canonical ``tickets`` table
(status new, open or pending; its ``ticket_id`` is the ticketing system's id, as the default
mappings land it), else its newest open ticket, else none: the row is delivered as "no record"
(logged, counted in the ``crm_writeback`` asset's metadata), not an error.

How, per system (the credentials the landing sources use):

=============  ===================================================  ==================================
system         note                                                 listed before posting
=============  ===================================================  ==================================
Freshdesk      ``POST /api/v2/tickets/{id}/notes``, ``private``     ``GET /api/v2/tickets/{id}/conversations``
Jira (JSM)     ``POST /rest/api/3/issue/{key}/comment``, internal   ``GET /rest/api/3/issue/{key}/comment``
               (property ``sd.public.comment`` ``internal: true``)
ServiceNow     ``PATCH /api/now/table/{table}/{sys_id}`` ``work_notes``  ``GET /api/now/table/sys_journal_field``
                                                                    (``element_id=<sys_id>^element=work_notes``)
=============  ===================================================  ==================================

**Exactly once.** None of these APIs takes an idempotency key, so a note whose answer was lost
(written, then a timeout or a 503) and posted again would appear twice. Every note therefore
ends with a marker holding its outbox key (``[rescue-note ticket_note:...]``), and a note is
written as one unit, *list the ticket's notes, post only if no note carries the marker*; the
retry policy (`connectors.http_retry`: 429 with ``Retry-After``, 5xx, timeouts) retries that
whole unit, never the bare post, and the outbox retries it again on a later run. Listings are
paginated by dlt's REST client paginators (the ServiceNow user needs read access to
``sys_journal_field`` as well as write access to the table). A refused credential is one secret-free line naming
the variable to set; the row is retried after the outbox's backoff (fixing the variable lets it
through) and dead after its attempts.
"""

from __future__ import annotations

import html
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd
import requests
import sqlalchemy as sa
from pydantic import Field

from connectors.http_retry import Retrier, RetryPolicy, endpoint_of, install_transient_hook
from connectors.queue.outbox import Backoff, DeliveryReport, Undeliverable, deliver_until_drained
from connectors.queue.schema import TICKETING_CHANNEL, outbox
from connectors.queue.store import QueueStore
from connectors.queue.values import scalar
from connectors.settings import (
    TICKET_WRITEBACK_TARGETS,
    FreshdeskSettings,
    JiraSettings,
    ServiceNowSettings,
    Settings,
)
from connectors.sources import RAW_TABLES
from connectors.warehouse import Warehouse, WarehouseResource
from models.cases.lifecycle import ACTIVE_STATUSES, TERMINAL_STATUSES
from models.clock import now_or

log = logging.getLogger(__name__)

CASE_NOTE = "case_note"
OPENED, OWNER, SEVERITY, RESOLVED = "opened", "owner", "severity", "resolved"
#: Ticket statuses (canonical contract) that count as open.
OPEN_TICKET_STATUSES = ("new", "open", "pending")
#: Retries of a note: a minute doubling up to 6 hours; dead after 8 attempts (as the CRM's).
NOTE_BACKOFF = Backoff(max_attempts=8, base_delay=timedelta(minutes=1), max_delay=timedelta(hours=6))
NOTE_BATCH = 100
PAGE_SIZE = 100
TIMEOUT = 30


class TicketNoteError(RuntimeError):
    """A note the ticketing system refused. The message never holds a credential."""


def note_key(case_id: str, event: str, version: int | None = None) -> str:
    """The outbox key of a note (and its marker on the ticket)."""
    return f"ticket_note:{case_id}:{event}" if version is None else f"ticket_note:{case_id}:v{version}:{event}"


def marker(key: str) -> str:
    """The text every note ends with: how a retry recognises a note already written."""
    return f"[rescue-note {key}]"


# ---------------------------------------------------------------------------------------------
# Queuing
# ---------------------------------------------------------------------------------------------


def _state(case: Mapping[str, Any]) -> dict[str, Any]:
    return {"case_id": case["case_id"], "account_id": case["account_id"], "account_name": case.get("account_name"),
            "status": case["status"], "assignee": case.get("assignee"), "priority": case.get("priority"),
            "team": case.get("team"), "reason": case.get("reason"), "outcome": case.get("outcome")}


def _item(case: Mapping[str, Any], event: str, key: str, **extra: Any) -> dict[str, Any]:
    return {"case_id": case["case_id"], "channel": TICKETING_CHANNEL, "destination": case["account_id"],
            "kind": CASE_NOTE, "dedupe_key": key, "payload": {**_state(case), "event": event, **extra}}


def last_notes(store: QueueStore) -> dict[str, dict[str, Any]]:
    """Per case with a note but no resolution note yet: the payload of its latest note."""
    resolved = sa.select(outbox.c.case_id).where(outbox.c.channel == TICKETING_CHANNEL,
                                                 outbox.c.dedupe_key.like("%:resolved"))
    query = (sa.select(outbox.c.case_id, outbox.c.payload)
             .where(outbox.c.channel == TICKETING_CHANNEL, outbox.c.case_id.is_not(None),
                    outbox.c.case_id.not_in(resolved))
             .order_by(outbox.c.outbox_id))
    with store.reading() as conn:
        return {row.case_id: dict(row.payload or {}) for row in conn.execute(query)}


def queue_ticket_notes(store: QueueStore, *, now: datetime | None = None) -> int:
    """Queue the notes of what happened to cases since their last note (see the module
    docstring); returns how many were queued. Idempotent."""
    last = last_notes(store)
    items = []
    active_ids = set()
    for record in store.list_cases(status=list(ACTIVE_STATUSES)).to_dict("records"):
        case = {k: scalar(v) for k, v in record.items()}
        active_ids.add(case["case_id"])
        before = last.get(case["case_id"])
        if before is None:
            items.append(_item(case, OPENED, note_key(case["case_id"], OPENED)))
            continue
        if before.get("assignee") != case.get("assignee"):
            items.append(_item(case, OWNER, note_key(case["case_id"], OWNER, case["version"]),
                               previous=before.get("assignee")))
        if before.get("priority") != case.get("priority"):
            items.append(_item(case, SEVERITY, note_key(case["case_id"], SEVERITY, case["version"]),
                               previous=before.get("priority")))
    for case_id in sorted(set(last) - active_ids):
        case = {k: scalar(v) for k, v in store.get_case(case_id).items() if k != "actions"}
        if case["status"] in TERMINAL_STATUSES:
            items.append(_item(case, RESOLVED, note_key(case_id, RESOLVED)))
    return store.enqueue(items, now=now)


def note_text(payload: Mapping[str, Any], key: str) -> str:
    """The note of one event, ending with its marker."""
    case_id, name = payload.get("case_id"), payload.get("account_name") or payload.get("account_id")
    event = payload.get("event")
    owner = payload.get("assignee") or "unassigned"
    if event == OPENED:
        lines = [f"Churn rescue case {case_id} opened for {name} ({payload.get('priority')}, team "
                 f"{payload.get('team')}), owner {owner}."]
        if payload.get("reason"):
            lines.append(f"Reason: {payload['reason']}")
    elif event == OWNER:
        lines = [f"Churn rescue case {case_id} for {name}: owner changed from "
                 f"{payload.get('previous') or 'unassigned'} to {owner}."]
    elif event == SEVERITY:
        lines = [f"Churn rescue case {case_id} for {name}: severity changed from {payload.get('previous')} "
                 f"to {payload.get('priority')}."]
    elif event == RESOLVED:
        lines = [f"Churn rescue case {case_id} for {name} resolved: {payload.get('outcome') or payload.get('status')}."]
    else:
        raise Undeliverable(f"case_note with unknown event {event!r}")
    return "\n".join([*lines, marker(key)])


# ---------------------------------------------------------------------------------------------
# The ticketing systems
# ---------------------------------------------------------------------------------------------


def _raise_for_status(system: str, variables: str) -> Callable[..., None]:
    """A response hook: refusals become one secret-free line (auth: naming the variables)."""

    def hook(response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        status = response.status_code
        if status < 400:
            return
        endpoint = endpoint_of(response.request.method or "GET", response.request.url or response.url)
        if status in (401, 403):
            raise TicketNoteError(f"{system} refused the credentials (HTTP {status}) at {endpoint}: set {variables}")
        raise TicketNoteError(f"{endpoint} answered HTTP {status}")

    return hook


class NoteSystem:
    """A ticketing system's notes: `notes(ticket)` lists their texts, `post(ticket, text)` adds one."""

    name = ""
    variables = ""
    #: Notes per page when listing (the vendors allow 100).
    page_size = PAGE_SIZE

    def __init__(self, base_url: str, auth: tuple[str, str], secret: str) -> None:
        from dlt.sources.helpers.rest_client import RESTClient  # dlt only when notes are written

        self.base_url = base_url.rstrip("/")
        self._secret = secret
        self.session = install_transient_hook(requests.Session())
        self.session.auth = auth
        self.session.hooks["response"].append(_raise_for_status(self.name, self.variables))
        self.client = RESTClient(base_url=self.base_url, session=self.session)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def secrets(self) -> tuple[str, ...]:
        return (self._secret,)

    def pages(self, path: str, paginator: Any, params: Mapping[str, Any], selector: str | None = None) -> Iterable[Any]:
        # the request's hooks replace the session's in requests: hand the session's own (retryable
        # 429/5xx, one-line refusals) instead of dlt's generic raise_for_status
        hooks = {"response": list(self.session.hooks["response"])}
        for page in self.client.paginate(path, params=dict(params), paginator=paginator, data_selector=selector,
                                         hooks=hooks):
            yield from page

    def notes(self, ticket: str) -> Iterable[str]:
        raise NotImplementedError

    def post(self, ticket: str, text: str) -> None:
        raise NotImplementedError

    def send(self, method: str, path: str, body: Any) -> None:
        self.session.request(method, f"{self.base_url}{path}", json=body, timeout=TIMEOUT)


class FreshdeskNotes(NoteSystem):
    name = "Freshdesk"
    variables = f"{FreshdeskSettings.env('api_key')} (and {FreshdeskSettings.env('domain')})"

    def __init__(self, domain: str, api_key: str) -> None:
        from connectors.landing.freshdesk import base_url

        super().__init__(base_url(domain).rstrip("/"), (api_key, "X"), api_key)

    def notes(self, ticket: str) -> Iterable[str]:
        from dlt.sources.helpers.rest_client.paginators import HeaderLinkPaginator

        for c in self.pages(f"/tickets/{ticket}/conversations", HeaderLinkPaginator(),
                            {"per_page": self.page_size}):
            yield f"{c.get('body') or ''}\n{c.get('body_text') or ''}"

    def post(self, ticket: str, text: str) -> None:
        body = "<br>".join(html.escape(line) for line in text.splitlines())
        self.send("POST", f"/tickets/{ticket}/notes", {"body": body, "private": True})


class JiraComments(NoteSystem):
    name = "Jira"
    variables = f"{JiraSettings.env('email')} and {JiraSettings.env('api_token')} (and {JiraSettings.env('base_url')})"

    def __init__(self, base_url: str, email: str, api_token: str) -> None:
        from connectors.landing.pipeline import site_url  # 'acme' as the landing reads it

        super().__init__(site_url(base_url, "atlassian.net"), (email, api_token), api_token)

    def notes(self, ticket: str) -> Iterable[str]:
        from dlt.sources.helpers.rest_client.paginators import OffsetPaginator

        paginator = OffsetPaginator(limit=self.page_size, offset_param="startAt", limit_param="maxResults",
                                    total_path="total")
        for comment in self.pages(f"/rest/api/3/issue/{ticket}/comment", paginator, {}, "comments"):
            yield json.dumps(comment.get("body"))

    def post(self, ticket: str, text: str) -> None:
        doc = {"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": line}]} for line in text.splitlines()]}
        self.send("POST", f"/rest/api/3/issue/{ticket}/comment",
                  {"body": doc, "properties": [{"key": "sd.public.comment", "value": {"internal": True}}]})


class ServiceNowWorkNotes(NoteSystem):
    name = "ServiceNow"
    variables = (f"{ServiceNowSettings.env('user')} and {ServiceNowSettings.env('password')} "
                 f"(and {ServiceNowSettings.env('instance')})")

    def __init__(self, instance: str, user: str, password: str, *, table: str = "incident") -> None:
        from connectors.landing.pipeline import site_url

        super().__init__(site_url(instance, "service-now.com"), (user, password), password)
        self.table = table

    def notes(self, ticket: str) -> Iterable[str]:
        from dlt.sources.helpers.rest_client.paginators import HeaderLinkPaginator

        params = {"sysparm_query": f"element_id={ticket}^element=work_notes", "sysparm_fields": "value",
                  "sysparm_limit": self.page_size}
        for entry in self.pages("/api/now/table/sys_journal_field", HeaderLinkPaginator(), params, "result"):
            yield str(entry.get("value") or "")

    def post(self, ticket: str, text: str) -> None:
        self.send("PATCH", f"/api/now/table/{self.table}/{ticket}", {"work_notes": text})


class TicketFinder:
    """The ticket a note goes on: the account's newest open escalated ticket, else its newest open
    one. The open tickets are read once (one query) per finder; a sender, and so its finder, is
    built per delivery run."""

    def __init__(self, warehouse: Warehouse, table: str = RAW_TABLES["tickets"]) -> None:
        self.warehouse = warehouse
        self.table = table
        self._best: dict[str, str] | None = None

    def ticket_for(self, account_id: str) -> str | None:
        if self._best is None:
            self._best = self._read()
        return self._best.get(str(account_id))

    def _read(self) -> dict[str, str]:
        if not self.warehouse.table_exists(self.table):
            return {}
        statuses = ", ".join(f"'{s}'" for s in OPEN_TICKET_STATUSES)
        found = self.warehouse.read_sql(
            f"SELECT ticket_id, account_id, escalated, created_at FROM {self.table} "  # noqa: S608 (checked name)
            f"WHERE status IN ({statuses})")
        if found.empty:
            return {}
        found = found.assign(escalated=found["escalated"].fillna(False).astype(bool),
                             created_at=pd.to_datetime(found["created_at"]),
                             ticket_id=found["ticket_id"].astype(str), account_id=found["account_id"].astype(str))
        best = found.sort_values(["escalated", "created_at", "ticket_id"], ascending=False).drop_duplicates("account_id")
        return dict(zip(best["account_id"], best["ticket_id"]))


@dataclass
class NoteStats:
    """What one delivery run wrote: notes posted, found already there, rows with no open ticket."""

    posted: int = 0
    already_there: int = 0
    no_record: list[str] = field(default_factory=list)


class TicketNoteSender:
    """The ``ticketing`` channel as an outbox sender: each row is one note, written once."""

    def __init__(self, system: NoteSystem, finder: TicketFinder, *, retry_policy: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.system = system
        self.finder = finder
        self.retrier = Retrier(retry_policy or RetryPolicy(max_attempts=5), sleep=sleep)
        self.stats = NoteStats()

    def send(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            self._send(row)

    def _send(self, row: Mapping[str, Any]) -> None:
        if row["kind"] != CASE_NOTE:
            raise Undeliverable(f"unknown ticketing outbox kind {row['kind']!r}; expected {CASE_NOTE}")
        payload = row["payload"] or {}
        key = str(row["dedupe_key"])
        text = note_text(payload, key)
        account = str(payload.get("account_id") or row["destination"])
        ticket = self.finder.ticket_for(account)
        if ticket is None:
            self.stats.no_record.append(key)
            log.info("ticket note %s: account %s has no open ticket; no record to write to", key, account)
            return
        if self.retrier.call(f"note on {self.system.name} ticket {ticket}", self.write_once, ticket, key, text):
            self.stats.posted += 1
        else:
            self.stats.already_there += 1

    def write_once(self, ticket: str, key: str, text: str) -> bool:
        """Post `text` on `ticket` unless a note with `key`'s marker is there; True if posted."""
        tag = marker(key)
        if any(tag in note for note in self.system.notes(ticket)):
            return False
        self.system.post(ticket, text)
        return True

    def secrets(self) -> tuple[str, ...]:
        return self.system.secrets()


def deliver_ticket_notes(store: QueueStore, sender: TicketNoteSender, *, now: datetime | None = None,
                         backoff: Backoff = NOTE_BACKOFF, batch: int = NOTE_BATCH) -> DeliveryReport:
    """Every due ``ticketing`` row, batch after batch, through the outbox's delivery loop."""
    return deliver_until_drained(store, {TICKETING_CHANNEL: sender}, now=now_or(now), backoff=backoff, batch=batch,
                                 label="ticket notes")


class TicketNotesResource(dg.ConfigurableResource):
    """The ticketing system that gets notes (``target``: freshdesk, jira, servicenow; empty:
    none) and its credentials (secrets bound with `dg.EnvVar`, `pipelines.resources`)."""

    target: str = Field(default="", description="'freshdesk', 'jira', 'servicenow', or empty: no notes.")
    warehouse: WarehouseResource | None = Field(default=None, description="Where the canonical tickets are.")
    freshdesk_domain: str = ""
    freshdesk_api_key: str = ""
    jira_base_url: str = ""
    jira_email: str = ""
    jira_api_token: str = ""
    servicenow_instance: str = ""
    servicenow_user: str = ""
    servicenow_password: str = ""
    servicenow_table: str = Field(default="incident", description="ServiceNow table of the tickets.")
    max_attempts: int = Field(default=NOTE_BACKOFF.max_attempts, description="Attempts per note before it is dead.")

    def system(self) -> NoteSystem:
        """The target's client; refuses unset variables in one line naming them."""
        needed: dict[str, tuple[tuple[str, str], ...]] = {
            "freshdesk": ((FreshdeskSettings.env("domain"), self.freshdesk_domain),
                          (FreshdeskSettings.env("api_key"), self.freshdesk_api_key)),
            "jira": ((JiraSettings.env("base_url"), self.jira_base_url), (JiraSettings.env("email"), self.jira_email),
                     (JiraSettings.env("api_token"), self.jira_api_token)),
            "servicenow": ((ServiceNowSettings.env("instance"), self.servicenow_instance),
                           (ServiceNowSettings.env("user"), self.servicenow_user),
                           (ServiceNowSettings.env("password"), self.servicenow_password)),
        }
        if self.target not in needed:
            raise ValueError(f"{Settings.env('ticket_writeback')}={self.target!r} is not one of "
                             f"{', '.join(TICKET_WRITEBACK_TARGETS)}")
        missing = [name for name, value in needed[self.target] if not value]
        if missing:
            raise ValueError(f"{Settings.env('ticket_writeback')}={self.target} needs {', '.join(missing)} set")
        if self.target == "freshdesk":
            return FreshdeskNotes(self.freshdesk_domain, self.freshdesk_api_key)
        if self.target == "jira":
            return JiraComments(self.jira_base_url, self.jira_email, self.jira_api_token)
        return ServiceNowWorkNotes(self.servicenow_instance, self.servicenow_user, self.servicenow_password,
                                   table=self.servicenow_table)

    def sender(self, warehouse: Warehouse | None = None) -> TicketNoteSender:
        bound = warehouse or (self.warehouse.get_client() if self.warehouse is not None else None)
        if bound is None:
            raise ValueError("TicketNotesResource has no warehouse to find the accounts' tickets in")
        return TicketNoteSender(self.system(), TicketFinder(bound))

    def deliver(self, store: QueueStore, *, now: datetime | None = None,
                sender: TicketNoteSender | None = None) -> tuple[DeliveryReport, NoteStats]:
        """Queue the case notes, then deliver every due one (nothing at all without a target)."""
        if not self.target:
            return DeliveryReport(0, 0, 0, 0), NoteStats()
        sender = sender or self.sender()
        queue_ticket_notes(store, now=now)
        report = deliver_ticket_notes(store, sender, now=now,
                                      backoff=Backoff(self.max_attempts, NOTE_BACKOFF.base_delay,
                                                      NOTE_BACKOFF.max_delay))
        return report, sender.stats

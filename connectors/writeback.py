"""CRM write-back: rescue work leaves the queue through the outbox and lands in the CRM once.

What reaches the CRM (outbox channel ``crm``):

==================  ==========================================  ================================
outbox kind         queued by                                   written to the CRM as
==================  ==========================================  ================================
``rescue_action``   `QueueStore.log_play` (same transaction)    one completed Task per play,
                                                                external id ``rescue-action:<id>``
``case_outcome``    `QueueStore.resolve` (same transaction)     the case's Task (completed, with
                                                                the outcome) + the account fields
``case_sync``       `queue_case_syncs` (every delivery run)     the case's Task + the account's
                                                                health fields
==================  ==========================================  ================================

A case's Task has the external id ``rescue-case:<case_id>``; the account fields (health score,
churn risk, rescue status, top reason) are keyed by the account id. Every write is an **upsert on
an external id**, so a retried or replayed write updates the record it created the first time.

``case_sync`` rows are how state changes that have no outbox row of their own (a case opened by
routing, claimed, reassigned, or re-scored by a new snapshot) reach the CRM: `queue_case_syncs`
queues one per active case and state (status, assignee, priority, snapshot date), deduplicated
by that key, so re-running it queues nothing new. A case row is delivered by reading the case's
*current* state from the queue, so rows delivered late or out of order can never put an older
state back: the last write always carries the latest state.

Delivery (`deliver_crm_outbox`, one batch; `deliver_all`, until none is due) is the outbox's one
delivery loop (`connectors.queue.outbox.deliver`) with the CRM channel's sender, `CRMSender`:
due rows are leased (concurrent deliverers never send the same row), grouped by what they write
(a case, a play), written once per group through a `CRMWriter`, then marked delivered. A failed
write is recorded with a secret-free error and retried by a later run after an exponential
backoff (`CRM_BACKOFF`: a minute doubling up to 6 hours); after ``max_attempts`` (8) the row is
dead (kept, shown by the ``crm_writeback`` asset and by ``rescue queue outbox --status dead``),
and a row no retry can write (unknown kind, case not in the queue) is dead at once. Re-running
delivers only what is pending.

Writers: `WarehouseCRMWriter` (the embedded demo CRM: tables ``crm_tasks`` and
``crm_account_health`` in the warehouse), `SalesforceCRMWriter` (Tasks and Account fields
through `connectors.salesforce.writer.SalesforceWriter`) and `HubSpotCRMWriter` (tasks on the
account's company and company properties, `connectors.hubspot_writer`). `CRMWriterResource`
picks one from config (`RESCUE_CRM`, `pipelines.resources.crm_writer_resource`).

The same delivery run also delivers the ``ticketing`` channel when a ticketing system is chosen
(`RESCUE_TICKET_WRITEBACK`): notes on the account's open escalated ticket, `connectors.ticket_notes`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from pydantic import Field

from connectors.queue.outbox import Backoff, DeliveryReport, Undeliverable, deliver, deliver_until_drained
from connectors.queue.schema import CRM_CHANNEL, TICKETING_CHANNEL
from connectors.queue.store import QueueStore
from connectors.queue.values import scalar
from models.cases.lifecycle import CaseNotFound
from models.clock import utc_naive, utcnow
from connectors.salesforce.client import SalesforceConnection
from connectors.salesforce.writer import SalesforceWriter
from connectors.ticket_notes import NoteStats, TicketNotesResource
from connectors.warehouse import Warehouse, WarehouseResource
from models.cases.lifecycle import ACTIVE_STATUSES, OPEN, TERMINAL_STATUSES

__all__ = [
    "AccountHealth",
    "CRMDeliveryError",
    "CRMTask",
    "CRMWriter",
    "CRMSender",
    "CRMWriterResource",
    "SalesforceCRMWriter",
    "WarehouseCRMWriter",
    "action_task_key",
    "case_task_key",
    "dead_letters",
    "deliver_all",
    "deliver_crm_outbox",
    "queue_case_syncs",
]

#: Outbox kinds of the CRM channel (see the module docstring).
RESCUE_ACTION = "rescue_action"
CASE_OUTCOME = "case_outcome"
CASE_SYNC = "case_sync"
CRM_KINDS = frozenset({RESCUE_ACTION, CASE_OUTCOME, CASE_SYNC})

#: Task statuses, CRM-neutral (each writer maps them to its CRM's picklist).
NOT_STARTED, IN_PROGRESS, COMPLETED = "not_started", "in_progress", "completed"

TASKS_TABLE = "crm_tasks"
ACCOUNT_HEALTH_TABLE = "crm_account_health"


class CRMDeliveryError(RuntimeError):
    """A write the CRM refused. The message never contains a credential."""


def case_task_key(case_id: str) -> str:
    """External id of a case's Task."""
    return f"rescue-case:{case_id}"


def action_task_key(action_id: int | str) -> str:
    """External id of the Task recording one rescue play."""
    return f"rescue-action:{action_id}"


@dataclass(frozen=True)
class CRMTask:
    """A Task in the CRM, keyed by `external_id`. `status` is not_started, in_progress or completed."""

    external_id: str
    account_id: str
    case_id: str
    subject: str
    description: str
    status: str
    priority: str | None = None
    owner: str | None = None
    due_date: date | None = None
    outcome: str | None = None
    play: str | None = None


@dataclass(frozen=True)
class AccountHealth:
    """Rescue fields of an account. None means "leave the CRM's value as it is"."""

    account_id: str
    health_score: float | None = None
    churn_risk: float | None = None
    rescue_status: str | None = None
    top_reason: str | None = None

    def fields(self) -> dict[str, Any]:
        values = {"health_score": self.health_score, "churn_risk": self.churn_risk,
                  "rescue_status": self.rescue_status, "top_reason": self.top_reason}
        return {k: v for k, v in values.items() if v is not None}


class CRMWriter(Protocol):
    """Writes Tasks and account fields to a CRM by upsert on external ids. Both methods must be
    idempotent: writing the same record twice leaves one record with the latest values."""

    def upsert_task(self, task: CRMTask) -> None: ...

    def upsert_account_health(self, health: AccountHealth) -> None: ...

    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in logs or in the outbox's last_error."""
        ...


# ---------------------------------------------------------------------------------------------
# From queue rows to CRM records
# ---------------------------------------------------------------------------------------------


def _task_status(case_status: str) -> str:
    if case_status in TERMINAL_STATUSES:
        return COMPLETED
    return NOT_STARTED if case_status == OPEN else IN_PROGRESS


def _percent(value: Any) -> str | None:
    return f"{value:.0%}" if isinstance(value, (int, float)) and not pd.isna(value) else None


def case_task(case: Mapping[str, Any]) -> CRMTask:
    """The Task of a case (a row of `QueueStore.get_case`, with its `actions`)."""
    name = case.get("account_name") or case["account_id"]
    plays = [a["play"] for a in case.get("actions") or []]
    lines = [f"Churn rescue case {case['case_id']} for {name} ({case['priority']}, team {case['team']})."]
    for label, value in (
        ("Reason", case.get("reason")),
        ("Churn risk", _percent(case.get("churn_risk"))),
        ("Health score", None if case.get("health_score") is None else f"{case['health_score']:.0f}/100"),
        ("Plays", ", ".join(plays) if plays else None),
        ("Status", case["status"]),
        ("Outcome", case.get("outcome")),
    ):
        if value:
            lines.append(f"{label}: {value}")
    due = case.get("sla_resolution_due") or case.get("sla_first_touch_due")
    return CRMTask(
        external_id=case_task_key(case["case_id"]),
        account_id=str(case["account_id"]),
        case_id=str(case["case_id"]),
        subject=f"Churn rescue {case['priority']}: {name}",
        description="\n".join(lines),
        status=_task_status(case["status"]),
        priority=case.get("priority"),
        owner=case.get("assignee"),
        due_date=utc_naive(due).date() if due else None,
        outcome=case.get("outcome"),
    )


def case_health(case: Mapping[str, Any]) -> AccountHealth:
    """The account fields a case sets: its latest scores, the case status and its reason."""
    return AccountHealth(
        account_id=str(case["account_id"]),
        health_score=case.get("health_score"),
        churn_risk=case.get("churn_risk"),
        rescue_status=case["status"],
        top_reason=case.get("reason"),
    )


def action_task(payload: Mapping[str, Any]) -> CRMTask:
    """The completed Task of one rescue play (the payload `QueueStore.log_play` queues)."""
    missing = [k for k in ("action_id", "case_id", "account_id", "play") if payload.get(k) is None]
    if missing:
        raise Undeliverable(f"rescue_action payload has no {', '.join(missing)}")
    name = payload.get("account_name") or payload["account_id"]
    lines = [f"Rescue play {payload['play']} on case {payload['case_id']} for {name}, by {payload.get('actor')}."]
    if payload.get("note"):
        lines.append(f"Note: {payload['note']}")
    at = utc_naive(payload.get("at"))
    return CRMTask(
        external_id=action_task_key(payload["action_id"]),
        account_id=str(payload["account_id"]),
        case_id=str(payload["case_id"]),
        subject=f"Rescue play {payload['play']}: {name}",
        description="\n".join(lines),
        status=COMPLETED,
        priority=payload.get("priority"),
        owner=payload.get("actor"),
        due_date=at.date() if at else None,
        play=str(payload["play"]),
    )


# ---------------------------------------------------------------------------------------------
# Queuing and delivery
# ---------------------------------------------------------------------------------------------


def queue_case_syncs(store: QueueStore, *, now: datetime | None = None) -> int:
    """Queue a ``case_sync`` for every active case whose current state (status, assignee,
    priority, snapshot date) has not been queued before. Returns how many were queued. A case
    with no assignee (handed to a whole team, or left unassigned by an escalation) syncs with
    no owner."""
    cases = store.list_cases(status=list(ACTIVE_STATUSES))
    items = []
    for record in cases.to_dict("records"):
        case = {key: scalar(value) for key, value in record.items()}  # NaN (no assignee) -> None
        snapshot = utc_naive(case["snapshot_date"])
        state = ":".join(str(part) for part in (case["status"], case["assignee"] or "-", case["priority"],
                                                 snapshot.date().isoformat()))
        items.append({
            "case_id": case["case_id"], "channel": CRM_CHANNEL, "destination": case["account_id"], "kind": CASE_SYNC,
            "dedupe_key": f"{CASE_SYNC}:{case['case_id']}:{state}",
            "payload": {"case_id": case["case_id"], "account_id": case["account_id"], "status": case["status"],
                        "assignee": case["assignee"], "snapshot_date": snapshot.date().isoformat()},
        })
    return store.enqueue(items, now=now)


class CRMSender:
    """The CRM channel as an outbox sender (`connectors.queue.outbox.ChannelSender`): rows are
    grouped by what they write (`target`: the case, or the rescue play), and each group is
    written once, from its latest row; a case is written in its current state, read from `store`."""

    def __init__(self, store: QueueStore, writer: CRMWriter) -> None:
        self.store = store
        self.writer = writer

    def target(self, row: Mapping[str, Any]) -> tuple[str, str]:
        """What a row writes: ("case", case_id) or ("action", action_id)."""
        kind = row["kind"]
        payload = row["payload"] or {}
        if kind in (CASE_SYNC, CASE_OUTCOME):
            case_id = row["case_id"] or payload.get("case_id")
            if not case_id:
                raise Undeliverable(f"{kind} row has no case_id")
            return "case", str(case_id)
        if kind == RESCUE_ACTION:
            if payload.get("action_id") is None:
                raise Undeliverable("rescue_action payload has no action_id")
            return "action", str(payload["action_id"])
        raise Undeliverable(f"unknown CRM outbox kind {kind!r}; expected one of: {', '.join(sorted(CRM_KINDS))}")

    def send(self, rows: Sequence[Mapping[str, Any]]) -> None:
        latest = rows[-1]
        what, key = self.target(latest)
        if what == "action":
            self.writer.upsert_task(action_task(latest["payload"] or {}))
            return
        try:
            case = self.store.get_case(key)
        except CaseNotFound:
            raise Undeliverable(f"case {key} is not in the queue") from None
        self.writer.upsert_task(case_task(case))
        self.writer.upsert_account_health(case_health(case))

    def secrets(self) -> tuple[str, ...]:
        return tuple(self.writer.secrets())


#: Retries of a CRM write: a minute, doubling up to 6 hours; dead after 8 attempts.
CRM_BACKOFF = Backoff(max_attempts=8, base_delay=timedelta(minutes=1), max_delay=timedelta(hours=6))
#: CRM outbox rows leased per delivery batch.
CRM_BATCH = 200
#: How the CRM channel's deliveries are named in the log.
CRM_LABEL = "CRM outbox"


def deliver_crm_outbox(
    store: QueueStore,
    writer: CRMWriter,
    *,
    now: datetime | None = None,
    max_attempts: int = CRM_BACKOFF.max_attempts,
    batch: int = CRM_BATCH,
    base_delay: timedelta = CRM_BACKOFF.base_delay,
    max_delay: timedelta = CRM_BACKOFF.max_delay,
) -> DeliveryReport:
    """Write the CRM outbox rows due at `now` (one batch of up to `batch` rows), through
    `connectors.queue.outbox.deliver` with a `CRMSender`.

    Each row is leased, written, then marked delivered; or marked failed with a backoff of
    `base_delay` doubling per attempt up to `max_delay`, and dead after `max_attempts` attempts.
    A row that can never be written (unknown kind, missing case) is dead at once. Errors are
    redacted of the writer's secrets before they are stored or logged; one failing row never
    stops the others.
    """
    return deliver(store, {CRM_CHANNEL: CRMSender(store, writer)}, now=now,
                   backoff=Backoff(max_attempts=max_attempts, base_delay=base_delay, max_delay=max_delay),
                   batch=batch, label=CRM_LABEL)


def deliver_all(store: QueueStore, writer: CRMWriter, *, now: datetime | None = None,
                max_attempts: int = CRM_BACKOFF.max_attempts, batch: int = CRM_BATCH,
                max_batches: int = 1_000) -> DeliveryReport:
    """`deliver_crm_outbox` batch after batch until no row is due at `now` (or `max_batches`)."""
    return deliver_until_drained(store, {CRM_CHANNEL: CRMSender(store, writer)}, now=now,
                                 backoff=replace(CRM_BACKOFF, max_attempts=max_attempts), batch=batch,
                                 label=CRM_LABEL, max_batches=max_batches)


# ---------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------

_CRM_METADATA = sa.MetaData()

crm_tasks = sa.Table(
    TASKS_TABLE,
    _CRM_METADATA,
    sa.Column("external_id", sa.String(128), primary_key=True),
    sa.Column("account_id", sa.String(128), nullable=False),
    sa.Column("case_id", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("priority", sa.String(8)),
    sa.Column("owner", sa.String(128)),
    sa.Column("due_date", sa.Date),
    sa.Column("outcome", sa.String(32)),
    sa.Column("play", sa.String(128)),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("writes", sa.Integer, nullable=False),
)

crm_account_health = sa.Table(
    ACCOUNT_HEALTH_TABLE,
    _CRM_METADATA,
    sa.Column("account_id", sa.String(128), primary_key=True),
    sa.Column("health_score", sa.Float),
    sa.Column("churn_risk", sa.Float),
    sa.Column("rescue_status", sa.String(32)),
    sa.Column("top_reason", sa.Text),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("writes", sa.Integer, nullable=False),
)


class WarehouseCRMWriter:
    """The embedded demo CRM: Tasks and account health fields as warehouse tables.

    ``crm_tasks`` is keyed by the Task's external id, ``crm_account_health`` by account id; an
    upsert updates the row in place (counting the writes in ``writes``) or inserts it.
    """

    def __init__(self, warehouse: Warehouse, *, clock: Any = None) -> None:
        self.warehouse = warehouse
        self._clock = clock or utcnow
        self._ready = False

    def __repr__(self) -> str:
        return f"WarehouseCRMWriter({self.warehouse.display_url!r})"

    def _engine(self) -> sa.Engine:
        if not self._ready:
            _CRM_METADATA.create_all(self.warehouse.engine, checkfirst=True)
            self._ready = True
        return self.warehouse.engine

    def upsert_task(self, task: CRMTask) -> None:
        values = {
            "account_id": task.account_id, "case_id": task.case_id, "subject": task.subject[:255],
            "description": task.description, "status": task.status, "priority": task.priority,
            "owner": task.owner, "due_date": task.due_date, "outcome": task.outcome, "play": task.play,
        }
        self._upsert(crm_tasks, crm_tasks.c.external_id, task.external_id, values, partial=False)

    def upsert_account_health(self, health: AccountHealth) -> None:
        self._upsert(crm_account_health, crm_account_health.c.account_id, health.account_id, health.fields(),
                     partial=True)

    def _upsert(self, table: sa.Table, key: sa.Column, value: str, values: dict[str, Any], *, partial: bool) -> None:
        now = self._clock()
        with self._engine().begin() as conn:
            writes = conn.execute(sa.select(table.c.writes).where(key == value)).scalar()
            if writes is None:
                extra = {"created_at": now} if "created_at" in table.c else {}
                conn.execute(table.insert().values({key.name: value, **values, **extra, "updated_at": now, "writes": 1}))
            else:
                changes = {k: v for k, v in values.items() if v is not None} if partial else values
                conn.execute(table.update().where(key == value).values(**changes, updated_at=now, writes=writes + 1))

    def tasks(self) -> pd.DataFrame:
        """The demo CRM's Tasks (empty before the first write)."""
        return self._read(crm_tasks)

    def account_health(self) -> pd.DataFrame:
        """The demo CRM's account health fields (empty before the first write)."""
        return self._read(crm_account_health)

    def _read(self, table: sa.Table) -> pd.DataFrame:
        with self._engine().connect() as conn:
            rows = conn.execute(sa.select(table)).mappings().all()
        return pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in table.columns])

    def secrets(self) -> tuple[str, ...]:
        return ()


#: CRM-neutral Task status -> Salesforce Task Status picklist value.
SALESFORCE_TASK_STATUS = {NOT_STARTED: "Not Started", IN_PROGRESS: "In Progress", COMPLETED: "Completed"}


class SalesforceCRMWriter:
    """`CRMWriter` over `SalesforceWriter`: Tasks upserted on its Task external id field,
    assigned to the owner's Salesforce user, and Account fields upserted on its account key."""

    def __init__(self, writer: SalesforceWriter) -> None:
        self.writer = writer

    def __repr__(self) -> str:
        return f"SalesforceCRMWriter(task_key_field={self.writer.task_key_field!r})"

    def upsert_task(self, task: CRMTask) -> None:
        fields = self.writer.task_fields({
            "case_id": task.case_id, "account_id": task.account_id, "priority": task.priority,
            "outcome": task.outcome,
        })
        fields.update(Subject=task.subject[:255], Description=task.description,
                      Status=SALESFORCE_TASK_STATUS[task.status])
        if task.due_date:
            fields["ActivityDate"] = task.due_date.isoformat()
        self.writer.upsert_task(task.external_id, fields, owner=task.owner)

    def upsert_account_health(self, health: AccountHealth) -> None:
        result = self.writer.upsert_account_fields([{"account_id": health.account_id, **health.fields()}])
        if result.failed:
            raise CRMDeliveryError(f"Account {health.account_id}: {result.failed.get(health.account_id, 'failed')}")

    def secrets(self) -> tuple[str, ...]:
        return self.writer.connection.credentials().secrets()


class CRMWriterResource(dg.ConfigurableResource):
    """Where the CRM write-back goes: ``warehouse`` (the embedded demo CRM, the default),
    ``salesforce``, through the nested `SalesforceConnection`, or ``hubspot`` with its access
    token (secrets bound with `dg.EnvVar`, see `pipelines.resources`); they never reach logs or
    the UI."""

    warehouse: WarehouseResource
    target: str = Field(default="warehouse", description="'warehouse' (demo CRM tables), 'salesforce' or 'hubspot'.")
    salesforce: SalesforceConnection | None = Field(
        default=None, description="The Salesforce connection (needed when target is 'salesforce').")
    task_key_field: str = Field(default="Rescue_Key__c", description="External id field on Task.")
    account_key_field: str = Field(default="Rescue_Account_Key__c", description="External id field on Account.")
    hubspot_access_token: str = Field(default="", description="HubSpot private app token (target 'hubspot').")
    hubspot_properties: dict[str, str] = Field(
        default_factory=dict, description="HubSpotWritebackSettings fields (task_key, company_key, ...) to override.")
    max_attempts: int = Field(default=CRM_BACKOFF.max_attempts,
                              description="Delivery attempts per outbox row before it is dead.")
    batch: int = Field(default=CRM_BATCH, description="Outbox rows leased per delivery batch.")
    ticket_notes: TicketNotesResource | None = Field(
        default=None, description="Notes on the account's open ticket (the ticketing channel); None: no notes.")

    def get_writer(self) -> CRMWriter:
        if self.target == "warehouse":
            return WarehouseCRMWriter(self.warehouse.get_client())
        if self.target == "salesforce":
            if self.salesforce is None:
                raise ValueError("CRMWriterResource.target is 'salesforce' but no salesforce connection is bound")
            return SalesforceCRMWriter(SalesforceWriter(connection=self.salesforce, task_key_field=self.task_key_field,
                                                        account_key_field=self.account_key_field))
        if self.target == "hubspot":
            from connectors.hubspot_writer import HubSpotCRMWriter
            from connectors.settings import HubSpotWritebackSettings

            return HubSpotCRMWriter(self.hubspot_access_token,
                                    properties=HubSpotWritebackSettings(**self.hubspot_properties))
        raise ValueError(f"CRMWriterResource.target must be 'warehouse', 'salesforce' or 'hubspot', got {self.target!r}")

    def deliver(self, store: QueueStore, *, now: datetime | None = None,
                writer: CRMWriter | None = None) -> DeliveryReport:
        """Queue the case syncs, then deliver every due CRM outbox row."""
        queue_case_syncs(store, now=now)
        return deliver_all(store, writer or self.get_writer(), now=now, max_attempts=self.max_attempts,
                           batch=self.batch)

    def deliver_ticket_notes(self, store: QueueStore, *, now: datetime | None = None) -> tuple[DeliveryReport, NoteStats]:
        """Queue and deliver the ticketing channel's notes (`connectors.ticket_notes`); nothing
        when no ticketing system is chosen."""
        if self.ticket_notes is None or not self.ticket_notes.target:
            return DeliveryReport(0, 0, 0, 0), NoteStats()
        return self.ticket_notes.deliver(store, now=now, sender=self.ticket_notes.sender(self.warehouse.get_client()))


def dead_letters(store: QueueStore) -> pd.DataFrame:
    """Dead CRM and ticketing outbox rows (outbox_id, kind, case_id, destination, attempts,
    last_error, created_at); ticket notes are kind ``case_note``."""
    dead = store.outbox("dead")
    dead = dead[dead["channel"].isin([CRM_CHANNEL, TICKETING_CHANNEL])]
    return dead[["outbox_id", "kind", "case_id", "destination", "attempts", "last_error", "created_at"]]

"""The rescue queue: cases, their audit trail, the routing log and the outbox, in any SQL database.

`QueueStore` is a plain SQLAlchemy 2 client (SQLite by default, PostgreSQL in production and CI,
any SQLAlchemy URL in principle); `connectors.queue.resource.QueueStoreResource` hands one to
Dagster assets and sensors. The tables are declared in `connectors.queue.schema`; the outbox
methods live in `connectors.queue.outbox`, the SLA clock's reads and writes in
`connectors.queue.sla`, the overflow list and its manual open in `connectors.queue.overflow`.

Guarantees:

- **One active case per account**, enforced by a partial unique index on `account_id` (for
  statuses that are not terminal) as well as in code. A snapshot that re-confirms an account's
  case grows the case's evidence list instead of opening another case.
- **Idempotent writes**: applying the same snapshot twice, or the same escalation step twice,
  changes nothing and enqueues nothing (evidence entries are keyed by snapshot date, steps by
  their key, outbox rows by a unique `dedupe_key`).
- **Transactional outbox**: a notification is inserted in the same transaction as the change that
  causes it, so a crash never loses a notification nor sends one for a change that rolled back.
- **Concurrency-safe claims**: every change to a case runs in a transaction that locks the row
  (`SELECT ... FOR UPDATE` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite) and updates it only if
  its `version` is unchanged; of many people claiming one case at once, exactly one wins and the
  others get `CaseConflict("... already claimed by X")`. `locked_case` hands that transaction
  (a `CaseTransaction`) to operations built outside the store, such as handoffs.

A missing case raises `CaseNotFound` naming the case, not the database: the caller says which
queue it asked when that helps (the CLI shows the URL with the password hidden; the desk, whose
users need not know where the queue lives, does not).

All timestamps are timezone-naive UTC, like the rest of the product (`models.clock`); aware
datetimes passed in are converted to UTC.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa

from connectors.queue import decisions as dec
from connectors.queue.outbox import OutboxStore, enqueue_rows, notice_rows, outbox_row
from connectors.queue.overflow import OverflowStore
from connectors.queue.schema import (
    CASE_ACTIONS,
    CASE_COLUMNS,
    CRM_CHANNEL,
    HOLDOUT_OUTCOMES,
    LOGGED_ACTIONS,
    PIPELINE_ACTOR,
    account_states,
    case_events,
    holdout_outcomes,
    rescue_actions,
    rescue_cases,
    routing_log,
)
from connectors.queue.sla import SlaStore, with_sla_columns
from connectors.queue.transaction import CaseTransaction, event_row
from connectors.settings import Settings, default_policy_path
from connectors.queue.values import as_float, clean_text, frame, jsonable, normalize_case_id, require_actor, require_id
from models.cases.lifecycle import (
    ACTIVE_STATUSES,
    CaseConflict,
    CaseNotFound,
    decide_claim,
    resolution_status,
    status_after_play,
    validate_status,
)
from models.cases.notices import Notice
from models.clock import now_or, utc_naive
from models.cases.sla import BREACHED

if TYPE_CHECKING:
    from models.policy.schema import Policy

log = logging.getLogger(__name__)

__all__ = ["CaseTransaction", "QueueStore", "RoutingState"]


@dataclass(frozen=True)
class RoutingState:
    """What the policy engine needs to know about the queue before routing a snapshot.

    - `open_cases`: every active case (case_id, account_id, status, priority, team, assignee,
      required_skills, opened_at, snapshot_date, escalation_level, acknowledged_at,
      sla_first_touch_due, sla_resolution_due, snoozed_until);
    - `recent_resolutions`: the latest resolution per account (account_id, resolved_at, outcome);
    - `account_states`: hysteresis state per account (account_id, state, since);
    - `member_load`: number of active cases per assignee.
    """

    open_cases: pd.DataFrame
    recent_resolutions: pd.DataFrame
    account_states: pd.DataFrame
    member_load: dict[str, int]


class QueueStore(SlaStore, OutboxStore, OverflowStore):
    """Plain-Python client of the rescue queue database (see the module docstring).

    `policy` is the escalation policy whose business calendars SLA clocks run on (the breaching
    filter of `list_cases`); without one, the deployment's policy file is used when there is
    one (`connectors.queue.policy`).
    """

    def __init__(self, url: str, *, echo: bool = False, policy: Policy | None = None) -> None:
        super().__init__(url, echo=echo)
        self._policy = policy
        self._policy_loaded = policy is not None
        self._policy_problem = ""
        self._wall_clock_noted = False

    @property
    def policy(self) -> Policy | None:
        """The policy SLA clocks run on and whose catalogue of plays `log_play` accepts: the one
        given, else the deployment's policy file (`connectors.settings.default_policy_path`) when
        it exists and loads, else None (then clocks run on the wall clock against the due times
        routing stored, and no play can be logged)."""
        if not self._policy_loaded:
            # the loader (pydantic, the policy's schema) only when a clock or a play needs it:
            # `rescue queue list` on an empty queue never does
            from models.policy.loader import PolicyError, load_policy

            self._policy_loaded = True
            path = default_policy_path()
            self._policy_problem = f"there is no policy file at {path} (set {Settings.env('policy_path')})"
            if path.is_file():
                try:
                    self._policy = load_policy(path)
                except PolicyError as exc:
                    self._policy_problem = f"the policy does not load: {exc.summary()}"
        return self._policy

    def _note_wall_clock(self) -> None:
        if self._policy_problem.startswith("the policy does not load") and not self._wall_clock_noted:
            self._wall_clock_noted = True
            log.warning("SLA clocks run on the wall clock: %s", self._policy_problem)

    def known_play(self, play: str) -> str:
        """`play` if it is in the catalogue of the store's `policy` (`Policy.check_play`); a
        ValueError naming the known plays, or why there is no catalogue, otherwise."""
        policy = self.policy
        if policy is None:
            raise ValueError(f"cannot check the play against the policy's catalogue: {self._policy_problem}")
        return policy.check_play(play)

    # -- routing -------------------------------------------------------------------------------

    def routing_state(self) -> RoutingState:
        """The queue as the policy engine sees it before routing a snapshot."""
        cols = [
            "case_id", "account_id", "status", "priority", "team", "assignee", "required_skills",
            "opened_at", "snapshot_date", "escalation_level", "acknowledged_at",
            "sla_first_touch_due", "sla_resolution_due", "snoozed_until",
        ]
        with self.reading() as conn:
            open_rows = conn.execute(
                sa.select(*[rescue_cases.c[c] for c in cols]).where(rescue_cases.c.status.in_(ACTIVE_STATUSES))
            ).mappings().all()
            latest = (
                sa.select(rescue_cases.c.account_id, sa.func.max(rescue_cases.c.resolved_at).label("resolved_at"))
                .where(rescue_cases.c.resolved_at.is_not(None))
                .group_by(rescue_cases.c.account_id)
                .subquery()
            )
            resolved_rows = conn.execute(
                sa.select(latest.c.account_id, latest.c.resolved_at, sa.func.max(rescue_cases.c.outcome).label("outcome"))
                .select_from(latest.join(rescue_cases, sa.and_(rescue_cases.c.account_id == latest.c.account_id,
                                                               rescue_cases.c.resolved_at == latest.c.resolved_at)))
                .group_by(latest.c.account_id, latest.c.resolved_at)
            ).mappings().all()
            state_rows = conn.execute(
                sa.select(account_states.c.account_id, account_states.c.state, account_states.c.since)
            ).mappings().all()
        open_cases = frame(open_rows, cols)
        load = open_cases["assignee"].dropna().value_counts()
        return RoutingState(
            open_cases=open_cases,
            recent_resolutions=frame(resolved_rows, ["account_id", "resolved_at", "outcome"]),
            account_states=frame(state_rows, ["account_id", "state", "since"]),
            member_load={str(k): int(v) for k, v in load.items()},
        )

    def apply_decisions(
        self,
        decisions: pd.DataFrame,
        candidates: pd.DataFrame,
        *,
        contexts: Mapping[str, Mapping[str, Any]] | None = None,
        policy_version: str,
        policy_hash: str,
        model_version: str | None,
        snapshot_date: Any,
        now: datetime | None = None,
        account_states: pd.DataFrame | None = None,
        notify: Mapping[str, Sequence[str]] | None = None,
    ) -> dec.ApplySummary:
        """Write one snapshot's routing decisions to the queue, in one transaction.

        `decisions` follows `models.contracts.DECISION_COLUMNS` (see `connectors.queue.decisions`);
        it may also carry `assignee`, `sla_first_touch_due` and `sla_resolution_due` (set on new
        cases). `candidates` follows `CANDIDATE_COLUMNS` (at least account_id, churn_risk,
        health_score, arr). `contexts` maps account_id to its context package. `account_states`
        (account_id, state, since) are the policy's hysteresis states after this snapshot; rows
        that differ from the stored ones are written. `notify` maps a team key to the destinations
        told about a new case of that team (`slack:...`, `email:...`, people); the case's
        assignee is always told.

        - `route` / `update`: an account without an active case gets a new case (status open);
          an account with one gets an evidence entry for this snapshot and its figures
          refreshed. Evidence is keyed by snapshot date, so a rerun adds nothing.
        - `holdout` / `overflow` / `cooldown`: one `routing_log` row per snapshot and account.
        - `not_eligible`: nothing but its hysteresis state.
        """
        now = now_or(now)
        snapshot = utc_naive(snapshot_date)
        if snapshot is None:
            raise ValueError("apply_decisions needs a snapshot_date")
        decided = dec.checked_decisions(decisions)
        facts = dec.checked_candidates(candidates)
        contexts = contexts or {}
        notify = notify or {}
        meta = {"policy_version": policy_version, "policy_hash": policy_hash, "model_version": model_version}

        merged = decided.merge(facts, on="account_id", how="left", suffixes=("", "_candidate"), indicator=True)
        missing = merged.loc[merged["_merge"] == "left_only", "account_id"]
        if len(missing) and merged["action"].isin(CASE_ACTIONS).loc[missing.index].any():
            examples = ", ".join(map(str, missing.head(5)))
            raise ValueError(f"decisions route {len(missing)} account(s) absent from candidates, e.g. {examples}")
        merged = merged.drop(columns="_merge")

        opened = updated = unchanged = 0
        with self.transaction() as conn:
            # Two runs of one day at once (a retry beside a slow run): the second waits, then
            # finds the first's cases and changes nothing.
            self.serialize(conn, "rescue-queue:apply-decisions")
            active = {
                r["account_id"]: dict(r)
                for r in conn.execute(sa.select(rescue_cases).where(rescue_cases.c.status.in_(ACTIVE_STATUSES))).mappings()
            }
            new_cases: list[dict[str, Any]] = []
            events: list[dict[str, Any]] = []
            notices: list[Notice] = []
            for row in merged[merged["action"].isin(CASE_ACTIONS)].to_dict("records"):
                account_id = str(row["account_id"])
                entry = dec.evidence_entry(row, snapshot)
                case = active.get(account_id)
                if case is None:
                    case_id = dec.case_id_for(account_id, snapshot)
                    if conn.execute(sa.select(rescue_cases.c.case_id).where(rescue_cases.c.case_id == case_id)).first():
                        unchanged += 1  # opened by this snapshot before and closed since
                        continue
                    new, event, told = dec.opening(case_id, row, contexts.get(account_id), snapshot, now, meta,
                                                   actor=PIPELINE_ACTOR, notify=notify.get(str(row["team"]), ()))
                    new_cases.append(new)
                    events.append(event)
                    notices += told
                    active[account_id] = new
                    opened += 1
                    continue
                evidence = list(case["evidence"] or [])
                if any(e.get("snapshot_date") == entry["snapshot_date"] for e in evidence):
                    unchanged += 1
                    continue
                values: dict[str, Any] = {"evidence": sorted([*evidence, entry], key=lambda e: e["snapshot_date"])}
                if snapshot >= case["snapshot_date"]:
                    values.update(dec.refreshed_fields(row, snapshot, meta, contexts.get(account_id, case["context"])))
                    if account_id in contexts:
                        values["context"] = dec.stored_context(contexts[account_id])
                try:
                    CaseTransaction(conn, case).update(values, now)
                except CaseConflict:
                    raise CaseConflict(f"case {case['case_id']} changed while the snapshot was being applied; rerun") from None
                events.append(event_row(case["case_id"], now, PIPELINE_ACTOR, "evidence_added", case["status"],
                                        case["status"], None, {**entry, "previous_priority": case["priority"]}))
                updated += 1
            if new_cases:
                conn.execute(rescue_cases.insert(), new_cases)
            if events:
                conn.execute(case_events.insert(), events)
            enqueue_rows(conn, notice_rows(notices, now))

            log_rows = merged[merged["action"].isin(LOGGED_ACTIONS)]
            logged = dec.upsert_routing_log(conn, log_rows, snapshot, now, meta, contexts)
            unchanged += len(log_rows) - logged
            if account_states is not None:
                dec.upsert_account_states(conn, account_states, now)
        return dec.ApplySummary(opened=opened, updated=updated, logged=logged, unchanged=unchanged)

    def routing_log(self, snapshot_date: Any | None = None) -> pd.DataFrame:
        """Decisions that did not open or update a case (holdout, overflow, cooldown)."""
        query = sa.select(routing_log).order_by(routing_log.c.snapshot_date, routing_log.c.account_id)
        if snapshot_date is not None:
            query = query.where(routing_log.c.snapshot_date == utc_naive(snapshot_date))
        with self.reading() as conn:
            rows = conn.execute(query).mappings().all()
        return frame(rows, [c.name for c in routing_log.columns])

    # -- reading cases -------------------------------------------------------------------------

    def list_cases(
        self,
        *,
        team: str | None = None,
        assignee: str | None = None,
        priority: str | None = None,
        status: str | Sequence[str] | None = None,
        breaching: bool | None = None,
        now: datetime | None = None,
        limit: int | None = None,
        sla: bool = False,
    ) -> pd.DataFrame:
        """Cases matching every filter given, most urgent first (priority, then ARR at risk).

        `status` is one status, several, or "active" (every status that is not terminal); None
        means all. `breaching=True` keeps the cases whose SLA clock is breached at `now`
        (`models.cases.sla.sla_state`: the running clock of an active case, the resolution clock
        of a closed one; business time on the team's calendar, paused time not counted, so a
        snoozed case is not breaching until its clock has run out again); `breaching=False`
        keeps the others. With `sla=True` (implied by a breaching filter) the
        frame gets `SLA_COLUMNS`: the running clock, its state, its due instant and the business
        minutes left (negative once overdue).
        """
        query = sa.select(rescue_cases)
        if team is not None:
            query = query.where(rescue_cases.c.team == team)
        if assignee is not None:
            query = query.where(rescue_cases.c.assignee == assignee)
        if priority is not None:
            query = query.where(rescue_cases.c.priority == priority)
        if status is not None:
            statuses = ([*ACTIVE_STATUSES] if status == "active" else [status]) if isinstance(status, str) else list(status)
            for s in statuses:
                validate_status(s)
            query = query.where(rescue_cases.c.status.in_(statuses))
        at = now_or(now)
        if breaching:
            # Pauses only ever push a due time out, so a case breached now has a stored due time
            # at or before now (or none: measured on the policy's target); the rule decides below.
            c = rescue_cases.c
            query = query.where(sa.or_(
                c.sla_first_touch_due.is_(None), c.sla_resolution_due.is_(None),
                c.sla_first_touch_due <= at, c.sla_resolution_due <= at))
        query = query.order_by(
            rescue_cases.c.priority, rescue_cases.c.expected_arr_at_risk.desc(), rescue_cases.c.opened_at,
            rescue_cases.c.case_id,
        )
        if limit is not None and breaching is None:
            query = query.limit(limit)
        with self.reading() as conn:
            rows = conn.execute(query).mappings().all()
        cases = frame(rows, CASE_COLUMNS)
        if not (sla or breaching is not None):
            return cases
        states = self.sla_states(cases, now=at)
        cases = with_sla_columns(cases, states)
        if breaching is not None:
            cases = cases[(cases["sla_state"] == BREACHED) == breaching].reset_index(drop=True)
            if limit is not None:
                cases = cases.head(limit)
        return cases

    def get_case(self, case_id: str) -> dict[str, Any]:
        """One case with its rescue actions (`actions`). Raises CaseNotFound."""
        case_id = normalize_case_id(case_id)
        with self.reading() as conn:
            row = conn.execute(sa.select(rescue_cases).where(rescue_cases.c.case_id == case_id)).mappings().first()
            if row is None:
                raise CaseNotFound(f"no rescue case {case_id!r}")
            actions = conn.execute(
                sa.select(rescue_actions).where(rescue_actions.c.case_id == case_id).order_by(rescue_actions.c.action_id)
            ).mappings().all()
        case = dict(row)
        case["actions"] = [dict(a) for a in actions]
        return case

    def case_events(self, case_id: str) -> pd.DataFrame:
        """The audit trail of a case, oldest first. Raises CaseNotFound."""
        case_id = normalize_case_id(case_id)
        with self.reading() as conn:
            if conn.execute(sa.select(rescue_cases.c.case_id).where(rescue_cases.c.case_id == case_id)).first() is None:
                raise CaseNotFound(f"no rescue case {case_id!r}")
            rows = conn.execute(
                sa.select(case_events).where(case_events.c.case_id == case_id).order_by(case_events.c.event_id)
            ).mappings().all()
        return frame(rows, [c.name for c in case_events.columns])

    def audit_events(self) -> pd.DataFrame:
        """Every case's audit trail (all `case_events` rows), oldest first: the input of the
        queue-operations metrics."""
        with self.reading() as conn:
            rows = conn.execute(sa.select(case_events).order_by(case_events.c.event_id)).mappings().all()
        return frame(rows, [c.name for c in case_events.columns])

    def plays(self, account_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Plays logged by the rescue team (action_id, case_id, account_id, at, actor, play, note,
        outcome), oldest first; the input of the context package's "plays tried"."""
        query = sa.select(rescue_actions).order_by(rescue_actions.c.action_id)
        if account_ids is not None:
            query = query.where(rescue_actions.c.account_id.in_(list(account_ids)))
        with self.reading() as conn:
            rows = conn.execute(query).mappings().all()
        return frame(rows, [c.name for c in rescue_actions.columns])

    # -- working cases -------------------------------------------------------------------------

    @contextmanager
    def locked_case(self, case_id: str) -> Iterator[CaseTransaction]:
        """A write transaction holding the case row (FOR UPDATE where the database supports it).
        Raises CaseNotFound."""
        case_id = normalize_case_id(case_id)
        with self.transaction() as conn:
            row = conn.execute(
                sa.select(rescue_cases).where(rescue_cases.c.case_id == case_id).with_for_update()
            ).mappings().first()
            if row is None:
                raise CaseNotFound(f"no rescue case {case_id!r}")
            yield CaseTransaction(conn, dict(row))

    def claim(self, case_id: str, actor: str, *, now: datetime | None = None) -> dict[str, Any]:
        """Make `actor` the case's owner. Exactly one of many concurrent claimers wins; the others
        get CaseConflict naming the winner. Claiming a case already yours changes nothing."""
        now = now_or(now)
        actor = require_actor(actor)
        with self.locked_case(case_id) as tx:
            case = tx.case
            decision = decide_claim(case["status"], case["assignee"], actor, case_id=case["case_id"])
            if decision.changed:
                values: dict[str, Any] = {"assignee": decision.assignee, "status": decision.status}
                if decision.first_touch and case["acknowledged_at"] is None:
                    values["acknowledged_at"] = now
                tx.update(values, now)
                tx.record("claimed", actor=actor, at=now, payload={"previous_assignee": case["assignee"]},
                          from_status=case["status"], to_status=decision.status)
        return self.get_case(case_id)

    def transition(
        self,
        case_id: str,
        to_status: str,
        *,
        actor: str,
        reason: str | None = None,
        snooze_until: datetime | None = None,
        now: datetime | None = None,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        """Move a case to `to_status` (validated by models.cases.lifecycle) and audit it.

        Snoozing needs `snooze_until` in the future. Terminal statuses record the outcome; use
        `resolve()` to also close the case's plays. `expected_version` guards against acting on a
        stale view (CaseConflict when the case changed since). The actor and the reason are
        checked first (`connectors.queue.values`).
        """
        now = now_or(now)
        actor, reason = require_actor(actor), clean_text(reason, "reason")
        with self.locked_case(case_id) as tx:
            tx.transition(to_status, actor=actor, reason=reason, snooze_until=snooze_until, now=now,
                          expected_version=expected_version)
        return self.get_case(case_id)

    def log_play(self, case_id: str, *, actor: str, play: str, note: str | None = None,
                 now: datetime | None = None) -> dict[str, Any]:
        """Record a rescue play on a case (a `rescue_actions` row, an audit event and a CRM
        write-back in the outbox). A play on an acknowledged or paused case resumes work
        (in_progress). The play must be in the catalogue of the store's `policy` (`known_play`),
        checked before anything is written. Returns the action row with the case's new status."""
        now = now_or(now)
        actor, note = require_actor(actor), clean_text(note, "note")
        play = self.known_play(require_id(play, "play"))
        with self.locked_case(case_id) as tx:
            case = tx.case
            new_status = status_after_play(case["status"], case_id=case["case_id"])
            if new_status != case["status"]:
                tx.transition(new_status, actor=actor, reason=f"play {play}", now=now)
            else:
                tx.update({}, now)
            action_id = tx.conn.execute(
                rescue_actions.insert().values(case_id=case["case_id"], account_id=case["account_id"], at=now,
                                               actor=actor, play=play, note=note, outcome=None)
            ).inserted_primary_key[0]
            action = {"action_id": action_id, "case_id": case["case_id"], "account_id": case["account_id"],
                      "at": now, "actor": actor, "play": play, "note": note, "outcome": None}
            tx.record("play_logged", actor=actor, at=now, reason=note, payload={"action_id": action_id, "play": play})
            enqueue_rows(tx.conn, [outbox_row(
                now, case["case_id"], CRM_CHANNEL, case["account_id"], "rescue_action", f"rescue_action:{action_id}",
                {**jsonable(action), "account_name": case["account_name"], "priority": case["priority"]},
            )])
        return {**action, "status": new_status}

    def resolve(self, case_id: str, *, actor: str, outcome: str, note: str | None = None,
                now: datetime | None = None) -> dict[str, Any]:
        """Close a case as saved, churned or no_action. Its plays get the case's outcome, and the
        outcome is queued for the CRM write-back."""
        now = now_or(now)
        actor, note = require_actor(actor), clean_text(note, "note")
        to_status = resolution_status(outcome)
        with self.locked_case(case_id) as tx:
            case = tx.case
            tx.transition(to_status, actor=actor, reason=note, now=now, kind="resolved", payload={"outcome": outcome})
            tx.conn.execute(
                rescue_actions.update()
                .where(rescue_actions.c.case_id == case["case_id"], rescue_actions.c.outcome.is_(None))
                .values(outcome=outcome)
            )
            enqueue_rows(tx.conn, [outbox_row(
                now, case["case_id"], CRM_CHANNEL, case["account_id"], "case_outcome", f"case_outcome:{case['case_id']}",
                {"case_id": case["case_id"], "account_id": case["account_id"], "account_name": case["account_name"],
                 "outcome": outcome, "status": to_status, "resolved_at": now.isoformat(), "actor": actor, "note": note},
            )])
        return self.get_case(case_id)

    # -- holdout outcomes ----------------------------------------------------------------------

    def record_holdout_outcomes(self, rows: pd.DataFrame, *, source: str, now: datetime | None = None) -> int:
        """Record renewal outcomes of held-out accounts (account_id, renewal_date, held_out_at,
        outcome saved | churned, arr). A row already recorded for the same account and renewal
        is left as it is; returns how many rows were new."""
        now = now_or(now)
        missing = [c for c in ("account_id", "renewal_date", "held_out_at", "outcome", "arr") if c not in rows.columns]
        if missing:
            raise ValueError(f"holdout outcomes frame is missing column(s): {', '.join(missing)}")
        bad = sorted(set(rows["outcome"].astype(str)) - set(HOLDOUT_OUTCOMES))
        if bad:
            raise ValueError(f"holdout outcomes: unknown outcome(s) {', '.join(bad)}; expected saved or churned")
        values = [
            {"account_id": str(r["account_id"]), "renewal_date": utc_naive(r["renewal_date"]),
             "held_out_at": utc_naive(r["held_out_at"]), "outcome": str(r["outcome"]), "arr": as_float(r["arr"]),
             "recorded_at": now, "source": source}
            for r in rows.to_dict("records")
        ]
        with self.transaction() as conn:
            known = {(a, d) for a, d in conn.execute(sa.select(holdout_outcomes.c.account_id, holdout_outcomes.c.renewal_date))}
            fresh = list({(v["account_id"], v["renewal_date"]): v for v in values
                          if (v["account_id"], v["renewal_date"]) not in known}.values())
            if fresh:
                conn.execute(holdout_outcomes.insert(), fresh)
        return len(fresh)

    def holdout_outcomes(self) -> pd.DataFrame:
        """Recorded outcomes of held-out accounts, by account and renewal date."""
        query = sa.select(holdout_outcomes).order_by(holdout_outcomes.c.account_id, holdout_outcomes.c.renewal_date)
        with self.reading() as conn:
            rows = conn.execute(query).mappings().all()
        return frame(rows, [c.name for c in holdout_outcomes.columns])

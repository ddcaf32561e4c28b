"""Overflow in the queue: the accounts a snapshot found eligible for a case but did not route
(their team's daily budget was spent, or nobody had the skills and room), and a manager's
manual open of one's case.

`OverflowStore.overflow` lists a snapshot's overflow rows of the routing log, riskiest first,
with their cause (`models.routing.decisions.overflow_cause`) and the case opened since, if any;
`OverflowStore.open_overflow_case` opens one's case the way routing opens cases
(`connectors.queue.decisions.opening`), audited with who did it, and opens nothing the second
time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from connectors.queue import decisions as dec
from connectors.queue.database import QueueDatabase
from connectors.queue.outbox import enqueue_rows, notice_rows
from connectors.queue.schema import case_events, rescue_cases, routing_log
from connectors.queue.values import frame, require_actor, require_id
from models.cases.lifecycle import ACTIVE_STATUSES, CaseConflict, CaseNotFound
from models.clock import now_or, utc_naive

if TYPE_CHECKING:
    from models.policy.schema import Policy


class OverflowStore(QueueDatabase):
    """The overflow side of the queue store (`QueueStore` mixes it in)."""

    def get_case(self, case_id: str) -> dict[str, Any]:
        """One case (`QueueStore.get_case`)."""
        raise NotImplementedError

    def latest_snapshot(self) -> datetime | None:
        """The newest snapshot routed into this queue (in the routing log or on a case)."""
        with self.reading() as conn:
            dates = [conn.execute(sa.select(sa.func.max(t.c.snapshot_date))).scalar() for t in (routing_log, rescue_cases)]
        dates = [utc_naive(d) for d in dates if d is not None]
        return max(dates) if dates else None

    def overflow(self, snapshot_date: Any | None = None) -> pd.DataFrame:
        """The overflow accounts of a snapshot (the latest routed one by default): eligible for a
        case, not routed because their team's daily budget was spent or nobody had the skills and
        room. The routing log's columns, plus `cause` (`models.routing.decisions.overflow_cause`:
        budget or capacity), `reason` (the routing's words for it) and `case_id` (the account's
        active case now, if one was opened since). Riskiest first: churn risk, then expected ARR
        at risk, then account id."""
        from models.routing.decisions import overflow_cause  # the policy's schema only when asked

        snapshot = utc_naive(snapshot_date) if snapshot_date is not None else self.latest_snapshot()
        columns = [c.name for c in routing_log.columns] + ["cause", "reason", "case_id"]
        if snapshot is None:
            return frame([], columns)
        active = (sa.select(rescue_cases.c.account_id, rescue_cases.c.case_id)
                  .where(rescue_cases.c.status.in_(ACTIVE_STATUSES)).subquery())
        query = (
            sa.select(routing_log, active.c.case_id)
            .select_from(routing_log.outerjoin(active, active.c.account_id == routing_log.c.account_id))
            .where(routing_log.c.snapshot_date == snapshot, routing_log.c.action == "overflow")
        )
        with self.reading() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        for row in rows:
            reasons = list(row["reasons"] or [])
            row["cause"] = overflow_cause(reasons)
            row["reason"] = reasons[0] if reasons else None
        out = frame(rows, columns)
        if out.empty:
            return out
        return out.sort_values(["churn_risk", "expected_arr_at_risk", "account_id"], ascending=[False, False, True],
                               na_position="last", kind="stable").reset_index(drop=True)

    def open_overflow_case(
        self,
        account_id: str,
        *,
        actor: str,
        policy: Policy,
        notify: Sequence[str] = (),
        now: datetime | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Open the case of an overflow account of the latest snapshot by hand: (the case, True),
        or (its active case, False) when it has one already, so a second request opens nothing.

        The case is opened the way routing opens one (`connectors.queue.decisions.opening`, with
        the figures, reasons and context package the routing log kept): priority and team of the
        rule that matched, an assignee chosen by skills, capacity and load on the policy's teams
        (`models.routing.assignment.assign`, up the escalation path; unassigned when nobody has
        room: a manager's decision overrides capacity), SLA clocks from `now` on the receiving
        team's calendar (`models.routing.decisions.sla_due_times`). The "opened" audit event names
        `actor` and the overflow it came from. Raises CaseNotFound when the account is not an
        overflow account of the latest snapshot, CaseConflict when its case of that snapshot was
        opened and closed since."""
        now = now_or(now)
        actor, account_id = require_actor(actor), require_id(account_id, "account")
        snapshot = self.latest_snapshot()
        with self.transaction() as conn:
            self.serialize(conn, "rescue-queue:apply-decisions")
            logged = conn.execute(sa.select(routing_log).where(
                routing_log.c.snapshot_date == snapshot, routing_log.c.account_id == account_id,
                routing_log.c.action == "overflow")).mappings().first() if snapshot is not None else None
            if logged is None:
                day = f" ({snapshot:%Y-%m-%d})" if snapshot is not None else ""
                raise CaseNotFound(f"account {account_id!r} is not an overflow account of the latest snapshot{day}")
            current = conn.execute(sa.select(rescue_cases.c.case_id).where(
                rescue_cases.c.account_id == account_id, rescue_cases.c.status.in_(ACTIVE_STATUSES))).first()
            if current is not None:
                case_id, opened = current[0], False
            else:
                case_id, opened = dec.case_id_for(account_id, snapshot), True
                closed = conn.execute(sa.select(rescue_cases.c.status).where(rescue_cases.c.case_id == case_id)).first()
                if closed is not None:
                    raise CaseConflict(f"case {case_id} of account {account_id} for this snapshot was opened and is "
                                       f"{closed[0]} since; the next routing decides again")
                self._open_logged(conn, dict(logged), case_id, actor=actor, policy=policy, notify=notify, now=now)
        return self.get_case(case_id), opened

    def _open_logged(self, conn: sa.Connection, logged: dict[str, Any], case_id: str, *, actor: str,
                     policy: Policy, notify: Sequence[str], now: datetime) -> None:
        """Insert the case of a routing-log row (see `open_overflow_case`)."""
        from models.routing.assignment import assign
        from models.routing.decisions import overflow_cause, sla_due_times

        reasons = list(logged["reasons"] or [])
        skills = list(logged["required_skills"] or [])
        team, priority = str(logged["team"]), str(logged["priority"])
        load = dict(conn.execute(
            sa.select(rescue_cases.c.assignee, sa.func.count())
            .where(rescue_cases.c.status.in_(ACTIVE_STATUSES), rescue_cases.c.assignee.is_not(None))
            .group_by(rescue_cases.c.assignee)).all())
        who = assign(pd.DataFrame({"team": [team], "required_skills": [skills]}), policy.assignable_members(),
                     {str(k): int(v) for k, v in load.items()}, escalation_paths=policy.escalation_paths()).iloc[0]
        assignee = None if who is None or pd.isna(who) else str(who)
        if assignee is not None:
            team = policy.member_team[assignee]
        first_due = resolution_due = None
        if team in policy.teams and priority in policy.sla:
            due = sla_due_times(np.array([True]), np.array([team], dtype=object), np.array([priority], dtype=object),
                                policy, pd.Timestamp(now).tz_localize("UTC"))
            first_due, resolution_due = (pd.Timestamp(d[0]).to_pydatetime() for d in due)
        row = {
            **logged, "team": team, "assignee": assignee, "priority": priority, "required_skills": skills,
            "top_reason": next((r.split(": ", 1)[1] for r in reasons if r.startswith("top driver: ")), None),
            "sla_first_touch_due": first_due, "sla_resolution_due": resolution_due,
        }
        meta = {k: logged[k] for k in ("policy_version", "policy_hash", "model_version")}
        new, event, told = dec.opening(
            case_id, row, logged["context"] or {}, logged["snapshot_date"], now, meta, actor=actor, notify=notify,
            audit={"manual": True, "from": "overflow", "overflow_cause": overflow_cause(reasons),
                   "overflow_reason": reasons[0] if reasons else None, "rank": logged["rank"]})
        conn.execute(rescue_cases.insert(), [new])
        conn.execute(case_events.insert(), [event])
        enqueue_rows(conn, notice_rows(told, now))

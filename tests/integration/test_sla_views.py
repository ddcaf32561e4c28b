"""One answer to "is this case breaching?": the ladder, the store's breaching filter, the desk, the
CLI and the queue metrics all read `models.cases.sla.sla_state`, on SQLite and on PostgreSQL.

Every case here is a P3 of the `csm` team in the embedded policy (London office hours, English
public holidays; resolution target 4,800 business minutes, a resolution-breach step at 100%).
Their due times are stored as routing stores them: the policy's target on the team's calendar.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from connectors.queue.store import QueueStore
from connectors.queue.users import DeskUsers
from connectors.settings import DEFAULT_POLICY
from models.cases.ladder import due_escalations
from models.cases.metrics import queue_metrics
from models.cases.sla import BREACHED, DUE, MET, PAUSED, WARNING, sla_state
from models.policy.calendar import BusinessCalendar
from models.policy.loader import load_policy
from pipelines.cli.queue_table import sla_cell as _sla_cell
from pipelines.desk.service import Desk

POLICY = load_policy(DEFAULT_POLICY)
CALENDAR = POLICY.team_calendar("csm")
P3 = POLICY.sla["P3"]
OPENED = datetime(2025, 6, 2, 8, 0)        # Monday 09:00 in London
BREACH_STEP = "p3_resolution_breach"


def _due(opened: datetime, minutes: float, calendar: BusinessCalendar = CALENDAR) -> datetime:
    return calendar.add_business_minutes(opened.replace(tzinfo=UTC), minutes).astimezone(UTC).replace(tzinfo=None)


@pytest.fixture
def store(queue_url: str):
    s = QueueStore(queue_url, policy=POLICY)
    s.migrate()
    try:
        yield s
    finally:
        s.close()


def _open(store: QueueStore, frames, account_id: str, opened: datetime) -> str:
    decisions, candidates = frames([{
        "account_id": account_id, "priority": "P3", "team": "csm", "assignee": "csm_amara",
        "sla_first_touch_due": _due(opened, P3.first_touch_minutes),
        "sla_resolution_due": _due(opened, P3.resolution_minutes),
    }])
    store.apply_decisions(decisions, candidates, contexts={account_id: {"account": {"account_id": account_id}}},
                          policy_version="t", policy_hash="h", model_version="m",
                          snapshot_date=pd.Timestamp(opened.date()), now=opened)
    cases = store.list_cases()
    case_id = cases.loc[cases["account_id"] == account_id, "case_id"].iloc[0]
    store.transition(case_id, "acknowledged", actor="csm_amara", reason=None, now=opened + timedelta(hours=1))
    return case_id


def views(store: QueueStore, case_id: str, now: datetime) -> dict[str, str]:
    """What each of the five views says about the case at `now` (in the rule's words)."""
    breaching = set(store.list_cases(status=None, breaching=True, now=now)["case_id"])
    listed = store.list_cases(status=None, now=now, sla=True)
    row = listed.loc[listed["case_id"] == case_id].iloc[0].to_dict()
    cell = _sla_cell(row).plain

    desk = Desk(store, DeskUsers(store), POLICY).case(case_id, now)["sla"]

    inputs = store.sla_inputs(now=now)
    steps = due_escalations(inputs.open_cases, POLICY, now.replace(tzinfo=UTC), pauses=inputs.pauses,
                            already_applied=inputs.applied_step_keys)
    ladder_breach = any(s.case_id == case_id and s.step_id == BREACH_STEP for s in steps)

    cases = store.list_cases(status=None)
    metrics = queue_metrics(cases, store.audit_events(), now=now,
                            calendars={t: POLICY.team_calendar(t) for t in POLICY.teams}).cases
    resolution = metrics.loc[metrics["case_id"] == case_id, "resolution_sla"].iloc[0]

    return {
        "store": row["sla_state"],
        "breaching_filter": "breached" if case_id in breaching else "not breached",
        "cli": "breached" if "BREACHED" in cell else "paused" if "paused" in cell else
               "met" if cell.endswith("met") else "running",
        "desk": "breached" if desk["breached"] else "paused" if desk["paused"] else
                "met" if "met" in desk["label"] else "running",
        "ladder": "breached" if ladder_breach else "not breached",
        "metrics": resolution,
    }


def test_a_snoozed_case_past_its_stored_due_time_is_paused_in_every_view_then_wakes(store, frames) -> None:
    case_id = _open(store, frames, "SNOOZE", OPENED)
    store.transition(case_id, "snoozed", actor="csm_amara", reason="customer on holiday",
                     snooze_until=datetime(2025, 7, 1), now=OPENED + timedelta(days=1))
    stored_due = store.get_case(case_id)["sla_resolution_due"]
    now = stored_due + timedelta(days=5)

    assert views(store, case_id, now) == {
        "store": PAUSED, "breaching_filter": "not breached", "cli": "paused", "desk": "paused",
        "ladder": "not breached", "metrics": "pending",
    }

    # The SLA tick wakes it at its wake-up time, in the audit trail; its clock runs on from there.
    after = datetime(2025, 7, 1, 9, 0)
    assert store.wake_snoozed(now=after) == [case_id]
    assert store.wake_snoozed(now=after) == []
    case = store.get_case(case_id)
    assert (case["status"], case["snoozed_until"]) == ("in_progress", None)
    woke = store.case_events(case_id).iloc[-1]
    assert (woke["kind"], woke["actor"], woke["from_status"], woke["to_status"]) == \
        ("woken", "sla-clock", "snoozed", "in_progress")
    assert pd.Timestamp(woke["at"]) == pd.Timestamp(2025, 7, 1)
    state = sla_state(case, POLICY, after, store.pauses_of([case_id], now=after)[case_id])
    assert state.state in (DUE, WARNING)
    # It ran from opening to the snooze (one business day, 510 minutes) and since waking
    # (09:00-10:00 London on 1 July, 60 minutes); the snoozed four weeks do not count.
    assert state.elapsed_minutes == pytest.approx(510 + 60)
    late = _due(datetime(2025, 7, 1), P3.resolution_minutes - 510) + timedelta(minutes=1)
    assert state.due_at == late - timedelta(minutes=1)
    assert set(views(store, case_id, late).values()) == {BREACHED}


def test_a_case_waiting_on_the_customer_is_paused_in_every_view(store, frames) -> None:
    case_id = _open(store, frames, "WAITING", OPENED)
    store.transition(case_id, "waiting_customer", actor="csm_amara", reason="asked for usage export",
                     now=OPENED + timedelta(days=1))
    now = store.get_case(case_id)["sla_resolution_due"] + timedelta(days=2)
    assert views(store, case_id, now) == {
        "store": PAUSED, "breaching_filter": "not breached", "cli": "paused", "desk": "paused",
        "ladder": "not breached", "metrics": "pending",
    }


def test_a_case_across_a_public_holiday_breaches_a_business_day_later_in_every_view(store, frames) -> None:
    opened = datetime(2025, 8, 21, 8, 0)  # Thursday; Monday 25 August is the summer bank holiday
    case_id = _open(store, frames, "HOLIDAY", opened)
    stored_due = store.get_case(case_id)["sla_resolution_due"]
    without_holidays = BusinessCalendar("Europe/London", range(5), "09:00", "17:30", None)
    assert stored_due - _due(opened, P3.resolution_minutes, without_holidays) == timedelta(days=1)

    before = stored_due - timedelta(minutes=1)
    assert views(store, case_id, before) == {
        "store": WARNING, "breaching_filter": "not breached", "cli": "running", "desk": "running",
        "ladder": "not breached", "metrics": "pending",
    }
    after = stored_due + timedelta(minutes=1)
    assert set(views(store, case_id, after).values()) == {BREACHED}


def test_a_case_resolved_after_its_breach_is_breached_in_every_view_that_shows_closed_cases(store, frames) -> None:
    case_id = _open(store, frames, "LATE", OPENED)
    stored_due = store.get_case(case_id)["sla_resolution_due"]
    store.log_play(case_id, actor="csm_amara", play="success_plan", now=OPENED + timedelta(days=2))
    store.resolve(case_id, actor="csm_amara", outcome="saved", now=stored_due + timedelta(hours=3))
    now = stored_due + timedelta(days=10)
    assert views(store, case_id, now) == {
        "store": BREACHED, "breaching_filter": "breached", "cli": "breached", "desk": "breached",
        "ladder": "not breached",  # a closed case is never escalated
        "metrics": BREACHED,
    }

    on_time = _open(store, frames, "ONTIME", OPENED)
    store.log_play(on_time, actor="csm_amara", play="success_plan", now=OPENED + timedelta(days=2))
    store.resolve(on_time, actor="csm_amara", outcome="saved", now=OPENED + timedelta(days=3))
    assert views(store, on_time, now) == {
        "store": MET, "breaching_filter": "not breached", "cli": "met", "desk": "met",
        "ladder": "not breached", "metrics": MET,
    }

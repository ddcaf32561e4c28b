"""The rescue queue store on real databases: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from connectors.queue.decisions import case_id_for
from connectors.queue.schema import METADATA, rescue_cases
from connectors.queue.store import QueueStore
from models.cases.lifecycle import CaseConflict, CaseNotFound, InvalidTransition
from models.cases.notices import channel_for

S1 = pd.Timestamp("2025-06-02")
S2 = pd.Timestamp("2025-06-09")
NOW = datetime(2025, 6, 2, 8, 0)


def apply(store: QueueStore, frames, rows: list[dict], *, snapshot=S1, now=NOW, notify=None, states=None):
    decisions, candidates = frames(rows)
    contexts = {r["account_id"]: {"account": {"account_id": r["account_id"], "renewal_date": "2025-09-01",
                                             "csm_owner": "carla"}}
                for r in rows}
    return store.apply_decisions(decisions, candidates, contexts=contexts, policy_version="2025.1",
                                 policy_hash="hash-1", model_version="m1", snapshot_date=snapshot, now=now,
                                 notify=notify, account_states=states)


def counts(store: QueueStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                for t in ("rescue_cases", "case_events", "outbox", "routing_log", "account_states", "rescue_actions")}


def the_case(store: QueueStore, account_id: str) -> dict:
    cases = store.list_cases()
    return store.get_case(cases.loc[cases["account_id"] == account_id, "case_id"].iloc[0])


def test_migrations_are_idempotent_and_create_exactly_the_declared_schema(queue_store: QueueStore) -> None:
    queue_store.migrate()
    assert queue_store.current_revision() == queue_store.head_revision() == "0004"
    with queue_store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), METADATA) == []


def test_a_snapshot_opens_cases_logs_the_rest_and_a_rerun_changes_nothing(queue_store: QueueStore, frames) -> None:
    rows = [
        {"account_id": "A1", "priority": "P1", "team": "enterprise", "assignee": "alice"},
        {"account_id": "A2", "priority": "P3", "team": "csm", "churn_risk": 0.62},
        {"account_id": "A3", "action": "holdout", "priority": "P2", "team": "csm"},
        {"account_id": "A4", "action": "overflow", "priority": "P2", "team": "csm", "rank": 31},
        {"account_id": "A5", "action": "cooldown", "priority": "P2", "team": "csm"},
        {"account_id": "A6", "action": "not_eligible"},
    ]
    notify = {"enterprise": ["#enterprise-rescue", "lead@example.com"], "csm": ["#csm-rescue"]}
    first = apply(queue_store, frames, rows, notify=notify)
    assert (first.opened, first.updated, first.logged, first.unchanged) == (2, 0, 3, 0)
    before = counts(queue_store)
    assert before["rescue_cases"] == 2 and before["routing_log"] == 3

    again = apply(queue_store, frames, rows, notify=notify)
    assert (again.opened, again.updated, again.logged, again.unchanged) == (0, 0, 0, 5)
    assert counts(queue_store) == before

    a1 = the_case(queue_store, "A1")
    assert a1["case_id"] == case_id_for("A1", S1.to_pydatetime()) and a1["case_id"].startswith("RC-")
    assert (a1["status"], a1["priority"], a1["team"], a1["assignee"]) == ("open", "P1", "enterprise", "alice")
    assert (a1["policy_version"], a1["policy_hash"], a1["model_version"]) == ("2025.1", "hash-1", "m1")
    assert a1["reason"] == "weekly active users down 38%"
    assert a1["required_skills"] == ["renewals"]
    assert a1["context"]["account"]["renewal_date"] == "2025-09-01"
    assert a1["evidence"] == [{"snapshot_date": "2025-06-02", "churn_risk": 0.7, "health": pytest.approx(30.0),
                               "priority": "P1", "reasons": ["enterprise with churn risk >= 0.6",
                                                             "weekly active users down 38%"]}]
    assert a1["expected_arr_at_risk"] == pytest.approx(70_000)
    assert a1["opened_at"] == NOW and a1["version"] == 1

    log = queue_store.routing_log(S1).set_index("account_id")
    assert log["action"].to_dict() == {"A3": "holdout", "A4": "overflow", "A5": "cooldown"}
    assert log.loc["A4", "rank"] == 31

    box = queue_store.outbox()
    assert set(box["kind"]) == {"case_opened"}
    sent = set(zip(box["case_id"], box["channel"], box["destination"]))
    a2 = the_case(queue_store, "A2")["case_id"]
    assert sent == {(a1["case_id"], "slack", "#enterprise-rescue"), (a1["case_id"], "email", "lead@example.com"),
                    (a1["case_id"], "log", "alice"), (a2, "slack", "#csm-rescue")}
    assert "New P1 rescue case" in box.loc[box["channel"] == "slack", "payload"].iloc[0]["text"]
    events = queue_store.case_events(a1["case_id"])
    assert list(events["kind"]) == ["opened"] and events["actor"].iloc[0] == "rescue-pipeline"


def test_a_later_snapshot_grows_the_evidence_of_the_open_case(queue_store: QueueStore, frames) -> None:
    apply(queue_store, frames, [{"account_id": "A1", "priority": "P3", "churn_risk": 0.6}])
    case_id = the_case(queue_store, "A1")["case_id"]
    later = apply(queue_store, frames, [{"account_id": "A1", "priority": "P1", "churn_risk": 0.8}],
                  snapshot=S2, now=NOW + timedelta(days=7))
    assert (later.opened, later.updated) == (0, 1)
    case = queue_store.get_case(case_id)
    assert [e["snapshot_date"] for e in case["evidence"]] == ["2025-06-02", "2025-06-09"]
    assert [e["priority"] for e in case["evidence"]] == ["P3", "P1"]
    assert (case["priority"], case["churn_risk"], case["snapshot_date"]) == ("P1", 0.8, S2.to_pydatetime())
    assert case["opened_at"] == NOW and case["updated_at"] == NOW + timedelta(days=7)
    assert list(queue_store.case_events(case_id)["kind"]) == ["opened", "evidence_added"]
    assert len(queue_store.list_cases()) == 1

    # An older snapshot applied late adds its evidence but does not overwrite newer figures.
    backfill = apply(queue_store, frames, [{"account_id": "A1", "priority": "P4", "churn_risk": 0.5}],
                     snapshot=pd.Timestamp("2025-05-26"))
    assert backfill.updated == 1
    case = queue_store.get_case(case_id)
    assert [e["snapshot_date"] for e in case["evidence"]] == ["2025-05-26", "2025-06-02", "2025-06-09"]
    assert (case["priority"], case["churn_risk"]) == ("P1", 0.8)
    assert apply(queue_store, frames, [{"account_id": "A1"}], snapshot=S2).unchanged == 1


def test_the_database_itself_allows_one_active_case_per_account(queue_store: QueueStore, frames) -> None:
    apply(queue_store, frames, [{"account_id": "A1"}])
    existing = the_case(queue_store, "A1")
    duplicate = {k: existing[k] for k in existing if k != "actions"} | {"case_id": "RC-DUPLICATE"}
    with pytest.raises(sa.exc.IntegrityError):
        with queue_store.engine.begin() as conn:
            conn.execute(rescue_cases.insert().values(**duplicate))

    queue_store.transition(existing["case_id"], "closed_no_action", actor="ana", reason="false positive")
    reopened = apply(queue_store, frames, [{"account_id": "A1"}], snapshot=S2)
    assert reopened.opened == 1
    cases = queue_store.list_cases()
    assert sorted(cases["status"]) == ["closed_no_action", "open"]
    # Re-applying the first snapshot does not resurrect its (closed) case nor open another.
    assert apply(queue_store, frames, [{"account_id": "A1"}]).opened == 0
    assert len(queue_store.list_cases()) == 2


def test_routing_state_reports_open_work_resolutions_loads_and_hysteresis(queue_store: QueueStore, frames) -> None:
    states = pd.DataFrame({"account_id": ["A1", "A2", "A3", "A6"], "state": ["at_risk"] * 3 + ["ok"],
                           "since": [S1] * 4})
    apply(queue_store, frames, [
        {"account_id": "A1", "assignee": "alice"},
        {"account_id": "A2", "assignee": "alice"},
        {"account_id": "A3", "assignee": "bob"},
        {"account_id": "A6", "action": "not_eligible"},
    ], states=states)
    a3 = the_case(queue_store, "A3")["case_id"]
    queue_store.claim(a3, "bob", now=NOW + timedelta(hours=1))
    queue_store.resolve(a3, actor="bob", outcome="churned", now=NOW + timedelta(days=2))
    states.loc[states["account_id"] == "A6", ["state", "since"]] = ["at_risk", S2]
    apply(queue_store, frames, [{"account_id": "A1"}, {"account_id": "A6", "action": "holdout"}],
          snapshot=S2, states=states)

    state = queue_store.routing_state()
    assert sorted(state.open_cases["account_id"]) == ["A1", "A2"]
    assert set(state.open_cases["status"]) == {"open"}
    assert state.member_load == {"alice": 2}
    resolved = state.recent_resolutions.set_index("account_id")
    assert resolved.loc["A3", "resolved_at"] == NOW + timedelta(days=2)
    assert resolved.loc["A3", "outcome"] == "resolved_churned"
    stored = state.account_states.set_index("account_id")
    assert stored.loc["A1", "state"] == "at_risk" and stored.loc["A1", "since"] == S1.to_pydatetime()
    assert stored.loc["A6", "state"] == "at_risk" and stored.loc["A6", "since"] == S2.to_pydatetime()
    assert len(stored) == 4


def test_twenty_concurrent_claimers_of_one_case_exactly_one_wins(queue_store: QueueStore, queue_url: str, frames) -> None:
    apply(queue_store, frames, [{"account_id": "A1", "assignee": "router-pick"}])
    case_id = the_case(queue_store, "A1")["case_id"]
    n = 20
    barrier = threading.Barrier(n)
    results: list[tuple[str, str]] = []
    lock = threading.Lock()

    def claimer(i: int) -> None:
        store = QueueStore(queue_url)
        try:
            store.engine.connect().close()  # connect before the race starts
            barrier.wait()
            try:
                store.claim(case_id, f"agent{i:02d}")
                outcome = ("won", "")
            except CaseConflict as exc:
                outcome = ("conflict", str(exc))
        finally:
            store.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(results) == n
    assert [r[0] for r in results].count("won") == 1
    case = queue_store.get_case(case_id)
    winner = case["assignee"]
    assert winner.startswith("agent") and case["status"] == "acknowledged" and case["version"] == 2
    conflicts = [msg for kind, msg in results if kind == "conflict"]
    assert len(conflicts) == n - 1
    assert all(f"already claimed by {winner}" in msg for msg in conflicts)
    claims = queue_store.case_events(case_id).query("kind == 'claimed'")
    assert len(claims) == 1 and claims["actor"].iloc[0] == winner
    assert claims["payload"].iloc[0] == {"previous_assignee": "router-pick"}


def test_a_case_worked_to_resolution_is_audited_and_written_back(queue_store: QueueStore, frames) -> None:
    apply(queue_store, frames, [{"account_id": "A1"}])
    case_id = the_case(queue_store, "A1")["case_id"]
    t = NOW + timedelta(minutes=20)
    case = queue_store.claim(case_id, "ana", now=t)
    assert (case["status"], case["assignee"], case["acknowledged_at"]) == ("acknowledged", "ana", t)
    assert queue_store.claim(case_id, "ana", now=t + timedelta(minutes=1))["version"] == case["version"]

    action = queue_store.log_play(case_id, actor="ana", play="executive_sponsor_call", note="CFO call booked",
                                  now=t + timedelta(hours=1))
    assert action["status"] == "in_progress" and action["play"] == "executive_sponsor_call"
    snoozed = queue_store.transition(case_id, "snoozed", actor="ana", reason="customer offsite",
                                     snooze_until=t + timedelta(days=3), now=t + timedelta(hours=2))
    assert snoozed["snoozed_until"] == t + timedelta(days=3)
    resumed = queue_store.transition(case_id, "in_progress", actor="ana", now=t + timedelta(days=3))
    assert resumed["snoozed_until"] is None
    queue_store.transition(case_id, "waiting_customer", actor="ana", now=t + timedelta(days=4))
    done = queue_store.resolve(case_id, actor="ana", outcome="saved", note="renewed for 2 years",
                               now=t + timedelta(days=9))

    assert (done["status"], done["outcome"], done["resolved_at"]) == ("resolved_saved", "resolved_saved",
                                                                       t + timedelta(days=9))
    assert done["acknowledged_at"] == t
    assert [a["outcome"] for a in done["actions"]] == ["saved"]
    events = queue_store.case_events(case_id)
    trail = events[["kind", "from_status", "to_status"]].astype(object)
    assert [tuple(None if pd.isna(v) else v for v in row) for row in trail.itertuples(index=False)] == [
        ("opened", None, "open"),
        ("claimed", "open", "acknowledged"),
        ("status_changed", "acknowledged", "in_progress"),
        ("play_logged", "in_progress", "in_progress"),
        ("status_changed", "in_progress", "snoozed"),
        ("status_changed", "snoozed", "in_progress"),
        ("status_changed", "in_progress", "waiting_customer"),
        ("resolved", "waiting_customer", "resolved_saved"),
    ]
    assert set(events["actor"].iloc[1:]) == {"ana"}
    assert events["reason"].iloc[-1] == "renewed for 2 years"
    crm = queue_store.outbox().query("channel == 'crm'")
    assert list(crm["kind"]) == ["rescue_action", "case_outcome"]
    assert crm["payload"].iloc[0]["play"] == "executive_sponsor_call"
    assert crm["payload"].iloc[1]["outcome"] == "saved"
    plays = queue_store.plays(["A1"])
    assert list(plays["play"]) == ["executive_sponsor_call"] and list(plays["account_id"]) == ["A1"]


def test_refused_changes_raise_clear_errors_and_write_nothing(queue_store: QueueStore, frames) -> None:
    apply(queue_store, frames, [{"account_id": "A1"}])
    case_id = the_case(queue_store, "A1")["case_id"]
    before = (counts(queue_store), queue_store.get_case(case_id)["version"])

    with pytest.raises(InvalidTransition, match=f"case {case_id}: cannot go from open to in_progress.*"
                                                "allowed from open: acknowledged, closed_no_action"):
        queue_store.transition(case_id, "in_progress", actor="ana")
    with pytest.raises(InvalidTransition, match="cannot go from open to resolved_saved"):
        queue_store.resolve(case_id, actor="ana", outcome="saved")
    with pytest.raises(InvalidTransition, match="claim or acknowledge it before logging a play"):
        queue_store.log_play(case_id, actor="ana", play="success_plan")
    queue_store.transition(case_id, "acknowledged", actor="ana", now=NOW)
    with pytest.raises(InvalidTransition, match="wake-up time in the future"):
        queue_store.transition(case_id, "snoozed", actor="ana", snooze_until=NOW - timedelta(hours=1), now=NOW)
    with pytest.raises(CaseConflict, match="is at version 2, not 1"):
        queue_store.transition(case_id, "in_progress", actor="ana", expected_version=1)
    with pytest.raises(CaseNotFound, match="no rescue case 'RC-NOPE'"):
        queue_store.get_case("rc-nope")
    with pytest.raises(CaseNotFound):
        queue_store.claim("RC-NOPE", "ana")
    with pytest.raises(ValueError, match="unknown outcome 'won'"):
        queue_store.resolve(case_id, actor="ana", outcome="won")
    with pytest.raises(ValueError, match="actor cannot be empty"):
        queue_store.transition(case_id, "in_progress", actor="")

    after_counts = counts(queue_store)
    assert after_counts["case_events"] == before[0]["case_events"] + 1  # only the acknowledgement
    assert queue_store.get_case(case_id)["version"] == before[1] + 1
    assert queue_store.get_case(case_id.lower())["status"] == "acknowledged"


def test_escalation_steps_apply_once_however_often_the_sensor_ticks(queue_store: QueueStore, frames) -> None:
    apply(queue_store, frames, [{"account_id": "A1", "team": "csm", "assignee": "ana"},
                                {"account_id": "A2", "team": "csm"}])
    a1, a2 = the_case(queue_store, "A1")["case_id"], the_case(queue_store, "A2")["case_id"]
    queue_store.transition(a2, "closed_no_action", actor="ana")
    steps = [
        {"step_key": f"{a1}:first_touch:warn", "case_id": a1, "action": "warn", "to_team": None,
         "to_assignee": None, "raci": {"responsible": ["ana"], "informed": ["#csm-rescue"]},
         "message": "first touch due in 15 business minutes"},
        {"step_key": f"{a1}:first_touch:1", "case_id": a1, "action": "reassign", "to_team": "enterprise",
         "to_assignee": "zoe", "raci": {"accountable": ["manager@example.com"], "informed": ["#csm-rescue"]},
         "message": "no first touch after 60 business minutes", "context": {"account": {"account_id": "A1"}}},
        {"step_key": f"{a2}:first_touch:1", "case_id": a2, "action": "notify", "to_team": None,
         "to_assignee": None, "raci": {"informed": ["#csm-rescue"]}, "message": "late"},
    ]
    tick = NOW + timedelta(hours=1)
    assert queue_store.apply_escalations(steps, now=tick) == 2
    snapshot = counts(queue_store), queue_store.outbox()
    assert queue_store.apply_escalations(steps, now=tick + timedelta(minutes=1)) == 0
    assert counts(queue_store) == snapshot[0]

    case = queue_store.get_case(a1)
    assert (case["team"], case["assignee"], case["escalation_level"]) == ("enterprise", "zoe", 1)
    assert case["context"] == {"account": {"account_id": "A1"}}
    events = queue_store.case_events(a1)
    assert list(events["kind"]) == ["opened", "sla_warning", "escalated"]
    assert events["payload"].iloc[2]["from_assignee"] == "ana" and events["payload"].iloc[2]["to_assignee"] == "zoe"
    box = snapshot[1]
    escalations = box[box["kind"].isin(["sla_warning", "escalated"])]
    assert sorted(zip(escalations["kind"], escalations["destination"])) == [
        ("escalated", "#csm-rescue"), ("escalated", "manager@example.com"), ("escalated", "zoe"),
        ("sla_warning", "#csm-rescue"), ("sla_warning", "ana"),
    ]
    assert queue_store.get_case(a2)["escalation_level"] == 0  # closed cases are not escalated
    with pytest.raises(ValueError, match="unknown action 'page'"):
        queue_store.apply_escalations([{**steps[0], "step_key": "x", "action": "page"}], now=tick)


def test_list_cases_filters_and_ranks_the_most_urgent_first(queue_store: QueueStore, frames) -> None:
    due = NOW + timedelta(hours=4)
    apply(queue_store, frames, [
        {"account_id": "A1", "priority": "P2", "team": "csm", "arr": 50_000.0, "sla_first_touch_due": due},
        {"account_id": "A2", "priority": "P1", "team": "enterprise", "assignee": "zoe", "sla_first_touch_due": due},
        {"account_id": "A3", "priority": "P2", "team": "csm", "arr": 900_000.0,
         "sla_first_touch_due": due, "sla_resolution_due": NOW + timedelta(days=3)},
    ])
    assert list(queue_store.list_cases()["account_id"]) == ["A2", "A3", "A1"]
    assert list(queue_store.list_cases(team="csm")["account_id"]) == ["A3", "A1"]
    assert list(queue_store.list_cases(assignee="zoe")["account_id"]) == ["A2"]
    assert list(queue_store.list_cases(priority="P2", limit=1)["account_id"]) == ["A3"]
    late = NOW + timedelta(hours=5)
    assert queue_store.list_cases(breaching=True, now=NOW).empty
    queue_store.claim(the_case(queue_store, "A1")["case_id"], "ana", now=NOW + timedelta(hours=1))
    assert list(queue_store.list_cases(breaching=True, now=late)["account_id"]) == ["A2", "A3"]
    assert list(queue_store.list_cases(breaching=False, now=late)["account_id"]) == ["A1"]
    assert list(queue_store.list_cases(status="acknowledged")["account_id"]) == ["A1"]
    assert list(queue_store.list_cases(status="active")["account_id"]) == ["A2", "A3", "A1"]
    assert list(queue_store.list_cases(status=["open"], breaching=True, now=NOW + timedelta(days=4))["account_id"]) == ["A2", "A3"]
    with pytest.raises(ValueError, match="unknown case status 'done'"):
        queue_store.list_cases(status="done")


def test_outbox_leases_and_records_attempts(queue_store: QueueStore, frames) -> None:
    apply(queue_store, frames, [{"account_id": "A1"}], notify={"csm": ["#a", "#b"]})
    leased = queue_store.lease_outbox(10, now=NOW, channels=["slack"])
    assert len(leased) == 2
    assert queue_store.lease_outbox(10, now=NOW, channels=["slack"]) == []  # leased rows are not handed out twice
    first, second = leased
    queue_store.mark_delivered(first["outbox_id"], now=NOW)
    assert queue_store.mark_failed(second["outbox_id"], attempts=1, last_error="HTTP 500",
                                   next_attempt_at=NOW + timedelta(minutes=1), dead_after=2) == "pending"
    assert queue_store.pending_outbox(10, now=NOW).empty
    again = queue_store.lease_outbox(10, now=NOW + timedelta(minutes=1))
    assert [r["outbox_id"] for r in again] == [second["outbox_id"]]
    assert queue_store.mark_failed(second["outbox_id"], attempts=2, last_error="HTTP 500",
                                   next_attempt_at=NOW + timedelta(minutes=3), dead_after=2) == "dead"
    box = queue_store.outbox().set_index("outbox_id")
    assert box.loc[first["outbox_id"], "status"] == "delivered" and box.loc[first["outbox_id"], "attempts"] == 1
    assert box.loc[second["outbox_id"], "status"] == "dead" and box.loc[second["outbox_id"], "last_error"] == "HTTP 500"
    assert list(queue_store.outbox("dead")["outbox_id"]) == [second["outbox_id"]]
    with pytest.raises(ValueError, match="unknown outbox status 'lost'"):
        queue_store.outbox("lost")


def test_apply_decisions_names_bad_inputs(queue_store: QueueStore, frames) -> None:
    decisions, candidates = frames([{"account_id": "A1"}, {"account_id": "A2"}])
    kwargs = dict(policy_version="1", policy_hash="h", model_version="m", snapshot_date=S1, now=NOW)
    with pytest.raises(ValueError, match="missing column\\(s\\): rank"):
        queue_store.apply_decisions(decisions.drop(columns="rank"), candidates, **kwargs)
    with pytest.raises(ValueError, match="unknown value\\(s\\): escalate"):
        queue_store.apply_decisions(decisions.assign(action=["route", "escalate"]), candidates, **kwargs)
    with pytest.raises(ValueError, match="1 duplicate account_id\\(s\\), e.g. A1"):
        queue_store.apply_decisions(decisions.assign(account_id="A1"), candidates, **kwargs)
    with pytest.raises(ValueError, match="absent from candidates, e.g. A2"):
        queue_store.apply_decisions(decisions, candidates.iloc[:1], **kwargs)
    with pytest.raises(ValueError, match="decisions.team is null for 1 routed account"):
        queue_store.apply_decisions(decisions.assign(team=["csm", None]), candidates, **kwargs)
    assert counts(queue_store)["rescue_cases"] == 0


@pytest.mark.parametrize(("recipient", "expected"), [
    ("#cs-rescue", ("slack", "#cs-rescue")), ("slack:#x", ("slack", "#x")), ("a@b.io", ("email", "a@b.io")),
    ("email:a@b.io", ("email", "a@b.io")), ("ana", ("log", "ana")), ("log:team", ("log", "team")),
])
def test_channel_for_recipients(recipient: str, expected: tuple[str, str]) -> None:
    assert channel_for(recipient) == expected


def test_sla_inputs_give_the_ladder_first_touch_pauses_and_applied_steps(queue_store: QueueStore, frames) -> None:
    apply(queue_store, frames, [{"account_id": "A1", "assignee": "ana"}, {"account_id": "A2"},
                                {"account_id": "A3"}])
    a1, a2, a3 = (the_case(queue_store, a)["case_id"] for a in ("A1", "A2", "A3"))
    t = NOW + timedelta(hours=1)
    queue_store.claim(a1, "ana", now=t)
    queue_store.transition(a1, "waiting_customer", actor="ana", now=t + timedelta(hours=1))
    queue_store.transition(a1, "snoozed", actor="ana", snooze_until=t + timedelta(days=1), now=t + timedelta(hours=2))
    queue_store.transition(a1, "in_progress", actor="ana", now=t + timedelta(hours=5))
    queue_store.transition(a1, "snoozed", actor="ana", snooze_until=t + timedelta(days=2), now=t + timedelta(hours=6))
    queue_store.claim(a2, "bob", now=t)
    queue_store.transition(a2, "snoozed", actor="bob", snooze_until=t + timedelta(hours=3), now=t)
    queue_store.transition(a3, "closed_no_action", actor="bob", now=t)
    queue_store.apply_escalations([{"step_key": f"{a2}:warn", "case_id": a2, "action": "warn", "raci": {},
                                    "message": "soon"}], now=t)

    inputs = queue_store.sla_inputs(now=t + timedelta(days=1))
    cases = inputs.open_cases.set_index("case_id")
    assert sorted(cases.index) == sorted([a1, a2])
    assert cases.loc[a1, "first_touch_at"] == t and cases.loc[a1, "assignee"] == "ana"
    assert cases.loc[a1, "csm_owner"] == "carla"
    # waiting -> snoozed is one pause; the second snooze is still running.
    assert inputs.pauses[a1] == [(t + timedelta(hours=1), t + timedelta(hours=5)), (t + timedelta(hours=6), None)]
    # bob's snooze ended at its wake-up time although nobody resumed the case.
    assert inputs.pauses[a2] == [(t, t + timedelta(hours=3))]
    assert inputs.applied_step_keys == {f"{a2}:warn"}
    assert inputs.member_load == {"ana": 1, "bob": 1}


def test_a_reassignment_regenerates_the_context_package_for_the_new_owner(queue_store: QueueStore, frames) -> None:
    """Plays tried and the chain of handoffs are rebuilt from the queue's records on every move."""
    from connectors.queue.handoff import handoff

    apply(queue_store, frames, [{"account_id": "A1", "team": "csm", "assignee": "ana"}])
    case_id = the_case(queue_store, "A1")["case_id"]
    before = queue_store.get_case(case_id)["context"]
    queue_store.claim(case_id, "ana", now=NOW + timedelta(minutes=5))
    queue_store.log_play(case_id, actor="ana", play="executive_sponsor_call", note="CFO call booked", now=NOW + timedelta(minutes=10))
    step = {"step_key": f"{case_id}:stalled", "case_id": case_id, "action": "reassign", "to_team": "enterprise",
            "to_assignee": "zoe", "raci": {}, "message": "no progress in 2 business days"}
    assert queue_store.apply_escalations([step], now=NOW + timedelta(hours=2)) == 1
    ctx = queue_store.get_case(case_id)["context"]
    assert ctx["assignment"] == {"team": "enterprise", "assignee": "zoe", "escalation_level": 1,
                                 "since": (NOW + timedelta(hours=2)).isoformat()}
    assert [p["play"] for p in ctx["plays_tried"]] == ["executive_sponsor_call"]
    assert [(h["to"], h["note"]) for h in ctx["handoffs"]] == [("enterprise / zoe", "no progress in 2 business days")]
    # the snapshot's facts (account, tickets, usage, drivers) are kept as they were
    assert {k: ctx[k] for k in before if k != "plays_tried"} == {k: v for k, v in before.items() if k != "plays_tried"}

    handoff(queue_store, case_id, actor="zoe", to_team="enterprise", to_assignee="max",
            note="renewal call Tuesday, deck in the CRM", now=NOW + timedelta(hours=3))
    ctx = queue_store.get_case(case_id)["context"]
    assert ctx["assignment"]["assignee"] == "max"
    assert [h["note"] for h in ctx["handoffs"]] == ["no progress in 2 business days", "renewal call Tuesday, deck in the CRM"]

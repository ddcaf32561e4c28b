"""One clock per run (`assets.run_clock`): pinned, replayed snapshots at their own day, live
runs on the wall clock; and queue metrics of a replayed partition that do not depend on today."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from assets import run_clock
from assets.operations import escalation_policy, queue_operations_metrics
from assets.run_clock import ClockError, pinned_now, replay_now, resolve_now
from connectors.policy_source import PolicyResource
from connectors.queue.resource import QueueStoreResource
from connectors.queue.store import QueueStore

UTC = dt.UTC
DAY = "2026-11-18"
SCHEDULED = dt.datetime(2026, 11, 18, 6, 0, tzinfo=UTC)


# -- the rule ---------------------------------------------------------------------------------


def test_a_pin_applies_to_the_whole_run_and_pins_must_agree():
    pinned = {"ops": {"rescue_queue": {"config": {"now": "2026-11-18T09:00:00+00:00"}}}}
    expected = dt.datetime(2026, 11, 18, 9, 0, tzinfo=UTC)
    assert resolve_now({"dagster/partition": DAY}, pinned) == expected
    assert resolve_now({}, pinned, wall_clock=dt.datetime(2030, 1, 1)) == expected
    assert resolve_now({"rescue/now": "2026-11-18T10:00:00+01:00"}) == expected  # converted to UTC
    assert resolve_now({"rescue/now": "2026-11-18 09:00"}) == expected           # naive = UTC
    both = {"ops": {"rescue_queue": {"config": {"now": "2026-11-18T09:00:00Z"}},
                    "crm_writeback": {"config": {"now": "2026-11-18T09:00:00+00:00"}}}}
    assert pinned_now({}, both) == expected
    with pytest.raises(ClockError, match="different instants"):
        pinned_now({"rescue/now": "2026-11-19T09:00:00Z"}, both)
    with pytest.raises(ClockError, match="not an ISO 8601 instant"):
        pinned_now({"rescue/now": "tomorrow"}, None)
    assert pinned_now({}, {"ops": {"rescue_queue": {"config": {"now": ""}}}}) is None


def test_a_past_snapshot_runs_at_its_scheduled_instant_and_a_live_one_on_the_wall_clock():
    tags = {"dagster/partition": DAY}
    # a backfill or replay, whenever it happens
    assert resolve_now(tags, wall_clock=dt.datetime(2026, 11, 19, 0, 0)) == SCHEDULED
    assert resolve_now(tags, wall_clock=dt.datetime(2027, 3, 1, 12, 0)) == SCHEDULED
    assert replay_now(pd.Timestamp(DAY)) == SCHEDULED == replay_now(dt.date(2026, 11, 18))
    # the scheduled run of the day's own partition, and unpartitioned runs: the wall clock
    live = dt.datetime(2026, 11, 18, 6, 0, 41)
    assert resolve_now(tags, wall_clock=live) == live.replace(tzinfo=UTC)
    assert resolve_now({}, wall_clock=dt.datetime(2027, 3, 1)) == dt.datetime(2027, 3, 1, tzinfo=UTC)
    assert resolve_now({"dagster/partition": "not-a-date"}, wall_clock=dt.datetime(2027, 3, 1)).year == 2027


def test_rescue_now_is_the_deployments_clock_for_every_run_that_would_read_the_wall_clock():
    from connectors.settings import current

    pinned = current({"RESCUE_NOW": "2024-12-31T09:30:00+01:00"})  # a history that ended in 2024
    at = dt.datetime(2024, 12, 31, 8, 30, tzinfo=UTC)
    today = dt.datetime(2026, 12, 2, 14, 0)
    # unpartitioned runs (the weekly retrain) and the partition of the pinned day run at the pin
    assert resolve_now({}, wall_clock=today, settings=pinned) == at
    assert resolve_now({"dagster/partition": "2024-12-31"}, wall_clock=today, settings=pinned) == at
    # an earlier partition is a replay: its own day's scheduled instant, as without the pin
    assert resolve_now({"dagster/partition": "2024-06-03"}, wall_clock=today, settings=pinned) \
        == dt.datetime(2024, 6, 3, 6, 0, tzinfo=UTC)
    # "day D is over" is decided on the pinned clock, not on the wall clock
    assert resolve_now({"dagster/partition": "2024-12-31"}, wall_clock=today, settings=current({})) \
        == dt.datetime(2024, 12, 31, 6, 0, tzinfo=UTC)
    # a pin of the run still wins; a naive setting is UTC; an unreadable one is one clear error
    assert resolve_now({"rescue/now": "2024-07-01T00:00:00Z"}, wall_clock=today, settings=pinned) \
        == dt.datetime(2024, 7, 1, tzinfo=UTC)
    assert resolve_now({}, settings=current({"RESCUE_NOW": "2024-12-31 09:30"})) \
        == dt.datetime(2024, 12, 31, 9, 30, tzinfo=UTC)
    with pytest.raises(ClockError, match="RESCUE_NOW='next week' is not an ISO 8601 instant"):
        resolve_now({}, settings=current({"RESCUE_NOW": "next week"}))


def test_rescue_now_pins_a_run(monkeypatch):
    seen: list[dt.datetime] = []

    @dg.asset
    def reads_the_clock(context) -> None:
        seen.append(run_clock.run_now(context))

    monkeypatch.setattr(run_clock, "utcnow", lambda: dt.datetime(2026, 12, 2, 14, 0))
    monkeypatch.setenv("RESCUE_NOW", "2024-12-31T06:00:00Z")
    assert dg.materialize([reads_the_clock]).success
    monkeypatch.setenv("RESCUE_NOW", "garbage")
    assert not dg.materialize([reads_the_clock], raise_on_error=False).success
    monkeypatch.delenv("RESCUE_NOW")
    assert dg.materialize([reads_the_clock]).success
    assert seen == [dt.datetime(2024, 12, 31, 6, 0, tzinfo=UTC), dt.datetime(2026, 12, 2, 14, 0, tzinfo=UTC)]


def test_the_daily_schedule_ticks_at_the_replay_hour():
    from pipelines.definitions import defs

    schedule = defs.resolve_schedule_def("daily_rescue_schedule")
    assert schedule.cron_schedule == f"0 {run_clock.DAILY_RUN_HOUR_UTC} * * *"
    assert str(schedule.execution_timezone or "UTC") == "UTC"


# -- queue metrics of a replayed partition ----------------------------------------------------


@pytest.fixture
def queue_with_cases(tmp_path, frames):
    """Two cases opened by the run of snapshot DAY at its scheduled instant: first touch due an
    hour later, resolution due two days later; nobody touches them."""
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    store = QueueStore(url)
    store.migrate()
    opened = SCHEDULED.replace(tzinfo=None)
    decisions, candidates = frames([
        {"account_id": account, "team": "csm", "priority": "P2",
         "sla_first_touch_due": opened + dt.timedelta(hours=1),
         "sla_resolution_due": opened + dt.timedelta(days=2)}
        for account in ("A1", "A2")
    ])
    store.apply_decisions(decisions, candidates, policy_version="t", policy_hash="h", model_version="m",
                          snapshot_date=pd.Timestamp(DAY), now=SCHEDULED)
    return url


def _metrics(queue_url: str, monkeypatch, *, today: dt.datetime, tags: dict[str, str]) -> dict:
    monkeypatch.setattr(run_clock, "utcnow", lambda: today)
    result = dg.materialize(
        [escalation_policy, queue_operations_metrics],
        resources={"queue": QueueStoreResource(url=queue_url), "policy": PolicyResource(path="policies/default.yaml")},
        tags=tags,
    )
    assert result.success
    weekly = result.output_for_node("queue_operations_metrics")
    overall = [e.event_specific_data.materialization.metadata["overall"].value
               for e in result.all_events
               if e.event_type_value == "ASSET_MATERIALIZATION"
               and e.asset_key.to_user_string() == "queue_operations_metrics"]
    return {"weekly": weekly, "overall": overall}


def test_a_replayed_partitions_metrics_do_not_depend_on_todays_date(queue_with_cases, monkeypatch):
    replay = {"dagster/partition": DAY}
    soon = _metrics(queue_with_cases, monkeypatch, today=dt.datetime(2026, 11, 19, 8, 0), tags=replay)
    later = _metrics(queue_with_cases, monkeypatch, today=dt.datetime(2027, 2, 1, 8, 0), tags=replay)
    pd.testing.assert_frame_equal(soon["weekly"], later["weekly"])
    assert soon["overall"] == later["overall"]
    # ... and they are those of the scheduled run itself, on its day
    scheduled = _metrics(queue_with_cases, monkeypatch, today=SCHEDULED.replace(tzinfo=None), tags=replay)
    pd.testing.assert_frame_equal(scheduled["weekly"], soon["weekly"])


def test_a_live_run_measures_against_the_wall_clock(queue_with_cases, monkeypatch):
    """The contrast that makes the test above meaningful: without a snapshot to replay, the same
    queue measured on different days gives different SLA states."""
    early = _metrics(queue_with_cases, monkeypatch, today=dt.datetime(2026, 11, 18, 6, 30), tags={})
    late = _metrics(queue_with_cases, monkeypatch, today=dt.datetime(2027, 2, 1, 8, 0), tags={})
    assert early["overall"] != late["overall"]


def test_an_asset_invoked_directly_reads_its_partition_or_the_wall_clock(monkeypatch):
    monkeypatch.setattr(run_clock, "utcnow", lambda: dt.datetime(2027, 1, 1, 12, 0))
    assert run_clock.run_now(dg.build_asset_context()) == dt.datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
    assert run_clock.run_now(dg.build_asset_context(partition_key=DAY)) == SCHEDULED

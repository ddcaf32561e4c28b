"""`rescue demo run` end to end on the smallest demo world: it ends with nothing pending in the
outbox, and so does the feedback-loop replay (`rescue demo loop`) it runs first."""

from __future__ import annotations

import re
from datetime import date

import dagster as dg
import pandas as pd
import pytest
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG
from typer.testing import CliRunner

from connectors.demo.world import DemoWorldConfig, generate_demo_world
from connectors.queue.store import QueueStore
from connectors.settings import declared_names, default_queue_url, default_warehouse_url
from connectors.warehouse import Warehouse
from pipelines.cli import demo
from pipelines.cli.demo import run_loop
from pipelines.cli.main import app

pytestmark = pytest.mark.slow

#: The smallest world of the end-to-end tests' seed whose model is promoted (48 churning accounts
#: in the validation window; the 400-account world has 9 and routes on the rules fallback, which
#: opens almost no case in the replayed weeks).
WORLD = DemoWorldConfig(n_accounts=1200, seed=3, end_date=date(2026, 11, 20), history_days=540)


def test_demo_run_delivers_every_notification_it_queued(tmp_path, monkeypatch):
    """The whole `make demo` path (with the shortest feedback-loop replay) on a small world."""
    for name in declared_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RESCUE_HOME", str(tmp_path / "home"))
    (tmp_path / "dagster").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("COLUMNS", "200")
    generate_demo_world(WORLD, Warehouse(default_warehouse_url()))  # `demo run` finds it and reuses it
    after_loop: list[pd.DataFrame] = []

    def loop_then_look(*args, **kwargs) -> None:  # the outbox as `rescue demo loop` leaves it
        run_loop(*args, **kwargs)
        store = QueueStore(default_queue_url())
        try:
            after_loop.append(store.outbox())
        finally:
            store.close()

    monkeypatch.setattr(demo, "run_loop", loop_then_look)
    result = CliRunner().invoke(app, ["demo", "run", "--weeks", "2", "--top", "3"])
    assert result.exit_code == 0, result.output
    delivered = re.search(r"Notifications: (\d+) delivered from the outbox; 0 pending\.", result.output)
    assert delivered, result.output[-2000:]

    # The loop delivered its own notifications, day by day: none were left for the end of the run.
    (looped,) = after_loop
    looped_notes = looped[looped["channel"] != "crm"]
    assert len(looped_notes) > 0 and (looped_notes["status"] == "delivered").all(), \
        looped_notes[looped_notes["status"] != "delivered"][["channel", "kind", "status", "next_attempt_at"]]
    assert looped_notes["delivered_at"].max() <= pd.Timestamp(WORLD.end_date)  # on the replay's clock
    replayed = re.search(r"Notifications: (\d+) delivered over the replay; 0 pending\.", result.output)
    assert replayed and int(replayed.group(1)) == len(looped_notes), result.output[-2000:]

    store = QueueStore(default_queue_url())
    try:
        outbox = store.outbox()
        assert len(outbox) > 0
        assert outbox[outbox["status"] == "pending"].empty, outbox[outbox["status"] == "pending"][["channel", "kind"]]
        notifications = outbox[outbox["channel"] != "crm"]
        # the run's last delivery sent what its jobs queued after the replay had sent its own
        assert int(delivered.group(1)) > 0
        assert int(delivered.group(1)) + int(replayed.group(1)) == int((notifications["status"] == "delivered").sum())
    finally:
        store.close()

    # every run is a run of its job in the workspace's code location, the daily ones of their partition
    instance = dg.DagsterInstance.get()
    try:
        runs = instance.get_runs()
        mine = instance.get_runs(dg.RunsFilter(tags={REPOSITORY_LABEL_TAG: "__repository__@churn_rescue"}))
        daily = instance.get_runs(dg.RunsFilter(job_name="daily_rescue_job"))
    finally:
        instance.dispose()
    assert {r.job_name for r in runs} == {"weekly_retrain_job", "daily_rescue_job", "feedback_job"}
    assert [r.run_id for r in mine] == [r.run_id for r in runs]
    assert all(r.remote_job_origin.location_name == "churn_rescue" and r.job_code_origin is not None for r in runs)
    days = [r.tags.get("dagster/partition") for r in daily]
    assert len(daily) == 2 + 3 and len(set(days)) == 5 and None not in days  # the 2 replayed weeks, the 3 last days

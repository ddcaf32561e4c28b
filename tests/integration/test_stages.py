"""The daily path's plain functions (`assets.stages`) on plain clients, without Dagster."""

from contextlib import nullcontext

import pandas as pd

from assets import stages
from connectors.queue.store import QueueStore
from connectors.warehouse import Warehouse
from models.contracts import TICKETS, USAGE_DAILY, empty_frame
from tests.unit.test_policy import NOW, small

SNAPSHOT = pd.Timestamp("2026-11-20")


def test_the_rescue_queue_stage_routes_and_writes_with_plain_clients(tmp_path, frames):
    _, candidates = frames([{"account_id": "A1"}, {"account_id": "A2", "churn_risk": 0.1}])
    candidates["movers"] = [[], []]
    warehouse = Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    warehouse.write_table("usage_daily", empty_frame(USAGE_DAILY))
    store = QueueStore(f"sqlite:///{tmp_path / 'queue.db'}")
    policy = small()
    health = pd.DataFrame(index=pd.Index([], name="account_id"))
    timed: list[str] = []

    def timer(name: str):
        timed.append(name)
        return nullcontext()

    run = stages.rescue_queue(store, warehouse, policy, candidates, health, empty_frame(TICKETS),
                              now=NOW, as_of=SNAPSHOT, timer=timer)
    assert timed == ["policy_route", "rescue_queue_write"]
    assert run.decisions.set_index("account_id")["action"].to_dict() == {"A1": "route", "A2": "not_eligible"}
    assert run.summary.opened == 1
    cases = store.list_cases(status="active")
    assert cases["account_id"].tolist() == ["A1"]
    assert cases["policy_hash"].tolist() == [policy.content_hash]

    # the next pass reads the queue's state: the account's case gains evidence, nothing new opens
    again = stages.rescue_queue(store, warehouse, policy, candidates, health, empty_frame(TICKETS),
                                now=NOW, as_of=SNAPSHOT)
    assert again.summary.opened == 0
    assert again.decisions.set_index("account_id").loc["A1", "action"] == "update"

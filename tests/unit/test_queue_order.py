"""The one queue order (`models.cases.ordering`): priority, breach state, ARR at risk, SLA due, case id."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from models.cases.ordering import order_key, sort_queue, sort_rows
from models.cases.sla import BREACHED, DUE, PAUSED, WARNING

DUE_AT = dt.datetime(2026, 12, 7, 15, 0)


def row(case_id: str, priority: str = "P2", state: str | None = DUE, arr: float | None = 10_000.0,
        due: dt.datetime | None = DUE_AT, status: str = "open") -> dict:
    return {"case_id": case_id, "priority": priority, "sla_state": state, "expected_arr_at_risk": arr,
            "sla_due_at": due, "status": status}


def ids(rows) -> list[str]:
    return [r["case_id"] for r in rows]


def test_two_same_priority_cases_the_breached_one_first() -> None:
    # The breached case has the smaller ARR at risk and the later case id: the breach still wins.
    rows = [row("RC-A", arr=90_000.0), row("RC-Z", state=BREACHED, arr=5_000.0)]
    assert ids(sort_rows(rows)) == ["RC-Z", "RC-A"]


def test_then_the_bigger_arr_at_risk_even_if_its_case_id_sorts_later() -> None:
    rows = [row("RC-A", arr=20_000.0), row("RC-Z", arr=80_000.0)]
    assert ids(sort_rows(rows)) == ["RC-Z", "RC-A"]


def test_the_whole_order() -> None:
    rows = [
        row("RC-09", priority="P3", state=BREACHED, arr=1e6),           # a lower priority, however urgent
        row("RC-08", state=PAUSED, arr=1e6),                            # paused counts with the rest
        row("RC-07", state=WARNING, arr=1.0),                           # near breach before the rest
        row("RC-06", state=BREACHED, arr=1.0),                          # breached first
        row("RC-05", arr=50.0, due=DUE_AT + dt.timedelta(hours=1)),     # same ARR: sooner due first
        row("RC-04", arr=50.0, due=DUE_AT),
        row("RC-03", arr=50.0, due=None),                               # no due time last
        row("RC-02", arr=None),                                         # no ARR at risk last
        row("RC-01", priority="P1", arr=None, due=None),                # P1 before everything
        row("RC-00", state=BREACHED, arr=1e9, status="resolved_saved"),  # a closed breach is history
        row("RC-10", arr=50.0, due=DUE_AT),                             # a full tie: case id
    ]
    assert ids(sort_rows(rows)) == ["RC-01", "RC-06", "RC-07", "RC-00", "RC-08", "RC-04", "RC-10", "RC-05",
                                    "RC-03", "RC-02", "RC-09"]


def test_a_frame_sorts_exactly_as_its_rows_do() -> None:
    rows = [row("RC-3", arr=5.0), row("RC-1", state=WARNING), row("RC-2", priority="P1"),
            row("RC-4", arr=float("nan"), due=None)]
    frame = pd.DataFrame(rows)
    frame["sla_due_at"] = pd.to_datetime(frame["sla_due_at"])  # NaT where there is none
    got = sort_queue(frame)
    assert got["case_id"].tolist() == ids(sort_rows(rows)) == ["RC-2", "RC-1", "RC-3", "RC-4"]
    assert got.index.tolist() == [0, 1, 2, 3]
    assert order_key(rows[0]) < order_key(rows[3])


def test_a_frame_without_the_sla_columns_is_refused() -> None:
    with pytest.raises(KeyError, match="sla_state"):
        sort_queue(pd.DataFrame({"case_id": ["RC-1"], "priority": ["P1"], "expected_arr_at_risk": [1.0]}))

"""The one order of the rescue queue: the most urgent case first, the same in every view.

1. **Priority**: P1 first (an unknown priority last).
2. **Breach state** of the running SLA clock (`models.cases.sla.sla_state`): breached, then near
   breach (`warning`), then the rest (due, paused, no target). A closed case counts with the
   rest: its clock is history, not urgency.
3. **Expected ARR at risk** (`expected_arr_at_risk`: churn risk x ARR), largest first; none last.
4. **SLA due** (`sla_due_at`, the running clock's due instant), soonest first; none last.
5. **Case id**, the final tie-break, so the order is total and stable.

The desk's queue and manager pages, the JSON API, the CLI (`rescue queue list`, `--json`
included) and the `rescue_queue` asset's queue head all sort with `sort_queue` (a frame) or
`order_key` (rows). Pure.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from models.cases.lifecycle import TERMINAL_STATUSES
from models.cases.sla import BREACHED, WARNING
from models.clock import utc_naive

PRIORITY_RANK: dict[str, int] = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}
BREACH_RANK: dict[str, int] = {BREACHED: 0, WARNING: 1}
#: The columns `sort_queue` reads (the SLA ones as `connectors.queue.sla.with_sla_columns` adds them).
ORDER_COLUMNS: tuple[str, ...] = ("priority", "sla_state", "expected_arr_at_risk", "sla_due_at", "case_id")

_LAST = dt.datetime.max


def urgency_key(priority: Any, sla_state: Any, expected_arr_at_risk: Any, due_at: Any, case_id: Any,
                status: Any = None) -> tuple:
    """The sort key of one case (smaller is more urgent); see the module docstring."""
    closed = status in TERMINAL_STATUSES
    breach = 2 if closed else BREACH_RANK.get(sla_state if isinstance(sla_state, str) else "", 2)
    arr = _number(expected_arr_at_risk)
    due = _instant(due_at)
    return (PRIORITY_RANK.get(priority if isinstance(priority, str) else "", 99), breach,
            arr is None, -(arr or 0.0), due is None, due or _LAST, str(case_id))


def order_key(row: Mapping[str, Any]) -> tuple:
    """`urgency_key` of a row with the `ORDER_COLUMNS` (and optionally `status`)."""
    return urgency_key(row.get("priority"), row.get("sla_state"), row.get("expected_arr_at_risk"),
                       row.get("sla_due_at"), row.get("case_id"), row.get("status"))


def sort_rows(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows with the `ORDER_COLUMNS`, most urgent first."""
    return sorted(rows, key=order_key)


def sort_queue(cases: pd.DataFrame) -> pd.DataFrame:
    """`cases` (with the `ORDER_COLUMNS`) most urgent first; the index is reset."""
    missing = [c for c in ORDER_COLUMNS if c not in cases.columns]
    if missing:
        raise KeyError(f"sort_queue needs column(s) {', '.join(missing)}; add the SLA columns first "
                       "(QueueStore.list_cases(sla=True))")
    if cases.empty:
        return cases.reset_index(drop=True)
    records = cases.to_dict("records")
    order = sorted(range(len(records)), key=lambda i: order_key(records[i]))
    return cases.iloc[order].reset_index(drop=True)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _instant(value: Any) -> dt.datetime | None:
    try:
        return utc_naive(value)
    except TypeError:
        return None

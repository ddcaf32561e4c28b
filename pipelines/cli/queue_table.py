"""The table of `rescue queue list`: one line per case cut to the terminal, or every column whole.

`queue_table` lays out the cases (already in the queue's one order, `models.cases.ordering`)
with their SLA in words (`models.cases.sla_text.SlaText`) and escalation badges; `list_title`
counts what it shows. The cell formatters are shared with the other `rescue queue` commands.
pandas loads when a table is drawn, not when `rescue` starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from models.cases.lifecycle import ACTIVE_STATUSES

PRIORITY_STYLE = {"P1": "bold red", "P2": "dark_orange", "P3": "yellow", "P4": "green"}


def fmt_time(value: Any) -> str:
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def fmt_money(value: Any) -> str:
    import pandas as pd

    return "" if value is None or pd.isna(value) else f"{float(value):,.0f}"


def fmt_pct(value: Any) -> str:
    import pandas as pd

    return "" if value is None or pd.isna(value) else f"{float(value):.0%}"


def sla_cell(row: Mapping[str, Any], text: Any = None, *, wide: bool = True) -> Text:
    """The running clock's state and words (`models.cases.sla_text.SlaText`, or the `sla_*`
    columns of `list_cases(sla=True)` when no text is given), styled by state."""
    import pandas as pd

    from models.cases.sla import BREACHED, PAUSED, WARNING

    state, due = row.get("sla_state"), row.get("sla_due_at")
    if not isinstance(state, str) or due is None or pd.isna(due):
        return Text(text.label if text is not None and wide else "")
    words = (text.label if wide else text.left_text) if text is not None else fmt_time(due)
    if row["status"] not in ACTIVE_STATUSES:
        return Text(words if text is not None else f"{words} {'BREACHED' if state == BREACHED else 'met'}", style="dim")
    if state == BREACHED:
        return Text(f"BREACHED {words}" if text is not None else f"{words} BREACHED", style="bold red")
    if state == PAUSED:
        return Text(words if text is not None else f"{words} paused", style="dim")
    if state == WARNING:
        return Text(f"near breach, {words}" if text is not None else f"{words} near breach", style="yellow")
    return Text(words)


def _one_line(value: Any) -> str:
    """Text for a one-line cell: whitespace (newlines included) as single spaces."""
    return " ".join(str(value).split()) if isinstance(value, str) else ""


def list_title(shown: int, total: int, *, status: str, priority: str | None, breaching: bool, team: str | None,
                assignee: str | None, limit: int | None, tz: str) -> str:
    """`Rescue queue: 50 of 55 active cases (--limit 50), times in UTC`: the count matches the
    rows shown and says which cases they are."""
    kind = " ".join(w for w in (priority, "breaching" if breaching else None,
                                None if status == "all" else status) if w)
    noun = f"{kind} case{'s' if total != 1 else ''}" if kind else f"case{'s' if total != 1 else ''}"
    where = (f" of team {team}" if team else "") + (f" assigned to {assignee}" if assignee else "")
    count = f"{shown} of {total} {noun}{where} (--limit {limit})" if shown < total else f"{total} {noun}{where}"
    return f"Rescue queue: {count}, times in {tz}"


#: The one-line view's columns that may be cut: (narrowest, widest) before the reason gets the rest.
_FLEX_WIDTHS: dict[str, tuple[int, int]] = {"status": (6, 11), "account": (8, 20), "assignee": (6, 12), "SLA": (14, 34)}
#: The order in which they give up room when the terminal is narrow.
_SHRINK_ORDER = ("account", "SLA", "status", "assignee")
_MIN_REASON = 10


def _fit_widths(widest: Mapping[str, int], width: int) -> dict[str, int]:
    """Column widths that fit a `width`-column terminal, one space between columns: the case
    id, priority, due time and ARR at risk whole; status, account, assignee and SLA up to a cap;
    the reason gets what is left (at least 10 columns, cut with an ellipsis)."""
    widths = {name: min(w, _FLEX_WIDTHS[name][1]) if name in _FLEX_WIDTHS else w for name, w in widest.items()}
    budget = width - (len(widths) - 1)  # one space between columns

    def left() -> int:
        return budget - sum(w for name, w in widths.items() if name != "reason")

    for name in _SHRINK_ORDER:
        if left() >= _MIN_REASON:
            break
        widths[name] = max(_FLEX_WIDTHS[name][0], widths[name] - (_MIN_REASON - left()))
    widths["reason"] = max(1, min(widest["reason"], left()))
    return widths


def queue_table(rows: Sequence[Mapping[str, Any]], texts: Sequence[Any], badges: Sequence[str | None], *,
                 title: str, wide: bool, width: int = 120) -> Table:
    """One line per case, cut with an ellipsis to the console's width; `wide`: every column, whole."""
    from rich import box

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  padding=0, collapse_padding=True)  # the box puts one space between columns
    if wide:
        names = ["case", "pri", "status", "account", "ARR", "risk", "at risk", "health", "team", "assignee", "SLA",
                 "escalation", "reason"]
    else:
        names = ["case", "pri", "status", "account", "at risk", "assignee", "due", "SLA", "reason"]
    cells_of = [_row_cells(row, text, badge, wide=wide) for row, text, badge in zip(rows, texts, badges)]
    widest = {name: max([len(name)] + [len(c[name].plain if isinstance(c[name], Text) else c[name])
                                       for c in cells_of]) for name in names}
    widths = widest if wide else _fit_widths(widest, width)
    for name in names:
        table.add_column(name, justify="right" if name in ("ARR", "risk", "at risk", "health") else "left",
                         width=widths[name], no_wrap=True, overflow="fold" if wide else "ellipsis")
    for cells in cells_of:
        table.add_row(*[cells[name] for name in names])
    return table


def _row_cells(row: Mapping[str, Any], text: Any, badge: str | None, *, wide: bool) -> dict[str, Any]:
    """The cells of one case's row, by column name."""
    import pandas as pd

    return {
        "case": row["case_id"],
        "pri": Text(row["priority"], style=PRIORITY_STYLE.get(row["priority"], "")),
        "status": row["status"],
        "account": _one_line(row["account_name"]) or str(row["account_id"]),
        "ARR": fmt_money(row["arr"]),
        "risk": fmt_pct(row["churn_risk"]),
        "at risk": fmt_money(row["expected_arr_at_risk"]),
        "health": "" if pd.isna(row["health_score"]) else f"{row['health_score']:.0f}",
        "team": row["team"],
        "assignee": row["assignee"] if isinstance(row["assignee"], str) else "-",
        "due": text.due_text.rsplit(" ", 1)[0] if text.due_text else "",
        "SLA": sla_cell(row, text, wide=wide),
        "escalation": badge or "",
        "reason": _one_line(row["reason"]) if not wide else (row["reason"] if isinstance(row["reason"], str) else ""),
    }

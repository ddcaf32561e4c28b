"""Value coercion between pandas frames, Python values and the queue's columns.

Frames give NaN / NaT / numpy scalars where the database wants NULL and plain Python values;
JSON columns want ISO strings instead of timestamps. Every instant is naive UTC (`models.clock`).
Display text is cut to its column's size before it is written (`fit_row`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

import sqlalchemy as sa

from connectors.queue.schema import DISPLAY, text_limit
from models.cases.lifecycle import CaseNotFound
from models.clock import utc_naive
from models.text import fit_document, fit_text


def jsonable(value: Any) -> Any:
    """Turn numpy/pandas scalars, timestamps and containers into JSON-ready Python values."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray, pd.Series)):
        return [jsonable(v) for v in value]
    if isinstance(value, (pd.Timestamp, datetime)):
        return None if pd.isna(value) else utc_naive(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def scalar(value: Any) -> Any:
    """A plain Python scalar for a column value (None for NaN/NA/NaT)."""
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        return value
    if value is None or pd.isna(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def as_float(value: Any) -> float | None:
    v = scalar(value)
    return None if v is None else float(v)


def str_list(value: Any) -> list[str]:
    """A list of strings from a list-like, one string, or nothing (NaN / None)."""
    if value is None or (not isinstance(value, (list, tuple, np.ndarray, set, frozenset)) and pd.isna(value)):
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def frame(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """Rows as a frame with exactly `columns` (object columns when there are no rows)."""
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    return pd.DataFrame([dict(r) for r in rows], columns=list(columns))


def normalize_case_id(case_id: str) -> str:
    """`rc-1a2b...` -> `RC-1A2B...`; CaseNotFound for an empty or non-string id."""
    if not isinstance(case_id, str) or not case_id.strip():
        raise CaseNotFound(f"invalid case id {case_id!r}")
    return case_id.strip().upper()


def require_actor(actor: str) -> None:
    if not actor or not str(actor).strip():
        raise ValueError("every change to a case needs an actor (who is doing it)")


def fit(column: sa.Column, value: Any) -> Any:
    """`value` as `column` stores it: a display column's text cut to its size, marked
    (`models.text.fit_text`; for a JSON column, every string of the JSON-ready document)."""
    limit = text_limit(column)
    if isinstance(column.type, sa.JSON):
        return fit_document(jsonable(value), limit)
    return fit_text(value, limit)


def fit_row(table: sa.Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` for a row of `table` with every display column's text cut to fit (`fit`); the
    other columns are left as they are."""
    return {k: fit(table.c[k], v) if k in table.c and table.c[k].info.get(DISPLAY) else v
            for k, v in values.items()}

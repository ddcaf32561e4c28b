"""Value coercion between pandas frames, Python values and the queue's columns, and the one
check of what people type into the queue.

Frames give NaN / NaT / numpy scalars where the database wants NULL and plain Python values;
JSON columns want ISO strings instead of timestamps. Every instant is naive UTC (`models.clock`).
Display text is cut to its column's size before it is written (`fit_row`).

What people type (the CLI's `--as`, `--play`, `--note`, the desk's forms and JSON bodies) is
checked here, the same way for every backend, before anything is written:

- an id (`require_id`: actor, play, team, assignee, a desk user's name) is stripped, not empty, at
  most as long as its column (`ID_MAX_LENGTHS`, read from `connectors.queue.schema`), and holds
  no control character (NUL, tab, newline...), no invisible formatting character (the
  bidirectional-text overrides and isolates such as U+202E, zero-width characters) and no unpaired
  surrogate: an id is shown in lists, audit trails and CRM records, where such characters hide or
  reorder what is displayed;
- free text (`clean_text`: notes, reasons) keeps newlines and tabs but not NUL, other control
  characters, bidirectional-text controls or unpaired surrogates, and is at most
  `TEXT_MAX_LENGTH` characters.

Each refusal is a ValueError of one line naming the field.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

import sqlalchemy as sa

from connectors.queue.schema import DISPLAY, case_events, desk_users, rescue_actions, rescue_cases, text_limit
from models.cases.lifecycle import CaseNotFound
from models.clock import utc_naive
from models.text import fit_document, fit_text

#: The longest value of every id people type, from the length of the column that stores it.
ID_MAX_LENGTHS: dict[str, int] = {
    "actor": min(case_events.c.actor.type.length, rescue_actions.c.actor.type.length),
    "play": rescue_actions.c.play.type.length,
    "team": rescue_cases.c.team.type.length,
    "assignee": rescue_cases.c.assignee.type.length,
    "name": desk_users.c.name.type.length,
    "account": rescue_cases.c.account_id.type.length,
}
#: The longest note or reason (their columns are unbounded TEXT; the desk's forms take as much).
TEXT_MAX_LENGTH = 4000
#: Bidirectional-text controls (embeddings, overrides, isolates, marks): they reorder the text
#: displayed around them, so "invoice_\u202egpj.exe" reads as "invoice_exe.jpg".
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Unicode categories refused in ids: control, format (bidi, zero-width), surrogate, line and
#: paragraph separators.
_ID_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_TEXT_CONTROLS_KEPT = frozenset("\n\r\t")


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


def _character(c: str) -> str:
    name = unicodedata.name(c, "")
    return f"U+{ord(c):04X}" + (f" {name}" if name else "")


def require_id(value: Any, kind: str, *, label: str | None = None) -> str:
    """`value` stripped, if it is a usable `kind` id (a key of `ID_MAX_LENGTHS`; see the module
    docstring); a one-line ValueError naming `label` (default: `kind`) otherwise."""
    label = label or kind
    if not isinstance(value, str):
        raise ValueError(f"{label} must be text, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ValueError(f"{label} cannot be empty")
    limit = ID_MAX_LENGTHS[kind]
    if len(text) > limit:
        raise ValueError(f"{label} is {len(text):,} characters long; at most {limit}")
    for c in text:
        if unicodedata.category(c) in _ID_CATEGORIES:
            kind_of = "a bidirectional-text control" if c in BIDI_CONTROLS else "a control or invisible character"
            raise ValueError(f"{label} contains {kind_of} ({_character(c)}); ids are plain text")
    return text


def clean_text(value: Any, field: str, *, required: bool = False) -> str | None:
    """Free text stripped (None when empty, or a ValueError when `required`), if it holds no
    NUL or other control character but newlines and tabs, no bidirectional-text control and no
    unpaired surrogate, in at most `TEXT_MAX_LENGTH` characters; a one-line ValueError naming
    `field` otherwise."""
    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError(f"{field} must be text, got {type(value).__name__}")
    if not text:
        if required:
            raise ValueError(f"{field} cannot be empty")
        return None
    if len(text) > TEXT_MAX_LENGTH:
        raise ValueError(f"{field} is {len(text):,} characters long; at most {TEXT_MAX_LENGTH:,}")
    for c in text:
        category = unicodedata.category(c)
        if c in BIDI_CONTROLS or category == "Cs" or (category == "Cc" and c not in _TEXT_CONTROLS_KEPT):
            kind_of = "a bidirectional-text control" if c in BIDI_CONTROLS else "a control character"
            raise ValueError(f"{field} contains {kind_of} ({_character(c)}); remove it (newlines and tabs are fine)")
    return text


def require_actor(actor: Any) -> str:
    """The actor of a change, checked as an id (`require_id`)."""
    return require_id(actor, "actor")


def fit(column: sa.Column, value: Any) -> Any:
    """`value` as `column` stores it: a display column's text cut to its size, marked
    (`models.text.fit_text`; for a JSON column, every string of the JSON-ready document)."""
    limit = text_limit(column)
    stored = column.type.impl_instance if isinstance(column.type, sa.types.TypeDecorator) else column.type
    if isinstance(stored, sa.JSON):  # JSONType is a TypeDecorator over JSON
        return fit_document(jsonable(value), limit)
    return fit_text(value, limit)


def fit_row(table: sa.Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` for a row of `table` with every display column's text cut to fit (`fit`); the
    other columns are left as they are."""
    return {k: fit(table.c[k], v) if k in table.c and table.c[k].info.get(DISPLAY) else v
            for k, v in values.items()}

"""Display text that must fit somewhere: cut to a size with a visible marker, shown briefly.

Pure. The sizes are not declared here: the rescue queue's schema (`connectors/queue/schema.py`)
declares how many characters each display column holds, and the queue store cuts what it writes
to them (`fit_text`, `fit_document`). The same text is then stored alike on every database:
SQLite would keep any length, PostgreSQL refuses a value longer than its column and any NUL
character, so both get the same cut, NUL-free text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: Ends a text that was cut, so a reader sees that there was more.
TRUNCATION_MARKER = "…[truncated]"


def fit_text(value: Any, limit: int) -> Any:
    """`value` (a string) as at most `limit` characters: NUL characters are dropped and a longer
    text is cut, ending in `TRUNCATION_MARKER`. Anything that is not a string is returned as is."""
    if not isinstance(value, str):
        return value
    if limit < len(TRUNCATION_MARKER):
        raise ValueError(f"a text limit of {limit} characters leaves no room for the truncation marker")
    text = value.replace("\x00", "") if "\x00" in value else value
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER


def fit_document(value: Any, limit: int) -> Any:
    """A JSON-ready document with every string in it (values and keys, at any depth) passed
    through `fit_text(..., limit)`."""
    if isinstance(value, str):
        return fit_text(value, limit)
    if isinstance(value, Mapping):
        return {fit_text(k, limit) if isinstance(k, str) else k: fit_document(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [fit_document(v, limit) for v in value]
    return value


def preview(value: Any, chars: int = 40) -> str:
    """`value` for a one-line message: floats as `:g`, strings quoted, and anything longer than
    `chars` characters cut, with its full length ("'AAAA...' (10,000,000 characters)")."""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    text = repr(value) if isinstance(value, str) else str(value)
    if len(text) <= chars:
        return text
    return text[:chars] + f"... ({len(value) if isinstance(value, str) else len(text):,} characters)"

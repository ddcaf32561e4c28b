"""A pydantic validation error as a (key path, reason) pair, worded for people: the one wording
the policy loader and the source-mapping loader share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def describe(err: Mapping[str, Any], path: str, *, unknown: str = "unknown key",
             show_input: Callable[[Any], str | None] = repr) -> tuple[str, str]:
    """(`path`, why) for one entry of `ValidationError.errors()`; `show_input` renders the
    offending value (None: leave it out), `unknown` words an extra key."""
    kind = err["type"]
    if kind == "value_error":
        why = str(err["ctx"]["error"])
    elif kind == "missing":
        why = "required key is missing"
    elif kind == "extra_forbidden":
        why = unknown
    else:
        why = err["msg"]
        shown = show_input(err["input"]) if "input" in err else None
        if shown is not None:
            why += f", got {shown}"
    return path, why

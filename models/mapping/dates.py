"""Date formats: which strptime patterns a mapping may name, the patterns tried by default, and
day-first detection on sample values (used by `rescue data init` and by the check's hints).

Dates in exports are text in many shapes. A mapping either names explicit strptime formats or
says ``day_first``; the default list then covers the usual separators with and without a time,
day first or month first, and ISO 8601 is always accepted as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: strptime directives a format may use (DuckDB's strptime reads the same ones).
DIRECTIVES = set("dmyYHIMSfpbBjzZaA%")
_DIRECTIVE = re.compile(r"%(.)")
_SEPARATORS = ("/", "-", ".")
_TIMES = ("", " %H:%M", " %H:%M:%S")

#: "d/m/y"-shaped values: three numbers separated by / - or . with a four-digit year last.
_DMY = re.compile(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})(?:[ T].*)?$")
#: ISO 8601 dates (with or without a time).
_ISO = re.compile(r"^\s*\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\s*$")


def format_problem(fmt: str) -> str | None:
    """Why ``fmt`` is not a usable strptime format (None if it is)."""
    if not isinstance(fmt, str) or not fmt:
        return "a date format is a non-empty strptime pattern such as '%d/%m/%Y'"
    used = _DIRECTIVE.findall(fmt)
    bad = sorted({d for d in used if d not in DIRECTIVES})
    if bad:
        return f"unknown strptime directive(s) {', '.join('%' + d for d in bad)} in {fmt!r}"
    if not ({"d", "j"} & set(used)) or not ({"Y", "y"} & set(used)):
        return f"{fmt!r} needs at least a day (%d) and a year (%Y or %y)"
    return None


def timezone_problem(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone (None if it is)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return f"unknown time zone {name!r} (use an IANA name such as 'Europe/Berlin' or 'UTC')"
    return None


def default_formats(day_first: bool) -> list[str]:
    """The formats tried when a mapping names none: d/m/Y (or m/d/Y) with each separator, with
    and without a time. ISO 8601 is accepted on top of these."""
    first, second = ("%d", "%m") if day_first else ("%m", "%d")
    return [f"{first}{sep}{second}{sep}%Y{time}" for sep in _SEPARATORS for time in _TIMES]


def is_date_only(fmt: str) -> bool:
    """Whether ``fmt`` has no time-of-day directive (such values are not shifted by a zone)."""
    return not ({"H", "I", "M", "S", "f", "p"} & set(_DIRECTIVE.findall(fmt)))


def looks_like_dates(values: Iterable[str]) -> float:
    """Share of the non-empty values that look like dates (d/m/Y-shaped or ISO 8601)."""
    seen = hits = 0
    for value in values:
        if value is None or not str(value).strip():
            continue
        seen += 1
        text = str(value)
        hits += bool(_DMY.match(text) or _ISO.match(text))
    return hits / seen if seen else 0.0


def day_first_evidence(values: Iterable[str]) -> tuple[int, int, int]:
    """(day-first, month-first, ambiguous) counts among d/m/Y-shaped values: a first number above
    12 can only be a day, a second number above 12 can only be a day too."""
    day_first = month_first = ambiguous = 0
    for value in values:
        match = _DMY.match(str(value)) if value is not None else None
        if not match:
            continue
        a, b = int(match.group(1)), int(match.group(2))
        if a > 12 and b <= 12:
            day_first += 1
        elif b > 12 and a <= 12:
            month_first += 1
        elif a <= 12 and b <= 12:
            ambiguous += 1
    return day_first, month_first, ambiguous


def guess_day_first(values: Iterable[str]) -> bool | None:
    """True when the values are day-first, False when month-first, None when they do not say."""
    day_first, month_first, _ = day_first_evidence(values)
    if day_first and not month_first:
        return True
    if month_first and not day_first:
        return False
    return None

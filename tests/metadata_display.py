"""What a metadata entry shows in the Dagster UI, checked: no number with more than 3 decimals
and no "nan", in numbers, text, markdown (pictures left out), JSON and tables."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

#: A decimal number written with more than 3 decimals.
LONG_DECIMAL = re.compile(r"(?<![\w.])-?\d+\.\d{4,}(?![\w.])")
NAN = re.compile(r"(?<![A-Za-z])nan(?![A-Za-z])", re.IGNORECASE)
DATA_URI = re.compile(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+")


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _leaves(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, value


def _problem(path: str, value: Any) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"{path}: {value!r}"
        return f"{path}: {value!r} has more than 3 decimals" if round(value, 3) != value else None
    if isinstance(value, str):
        text = DATA_URI.sub("", value)
        if NAN.search(text):
            return f"{path}: 'nan' in {text[:200]!r}"
        long = LONG_DECIMAL.search(text)
        return f"{path}: {long.group(0)} in {text[:200]!r}" if long else None
    return None


def display_problems(metadata: Mapping[str, Any], where: str = "") -> list[str]:
    """Every entry of `metadata` that shows a long decimal or a "nan"."""
    found = []
    for key, entry in metadata.items():
        path = f"{where}{key}"
        if isinstance(entry, dg.FloatMetadataValue):
            leaves = [(path, entry.value)]
        elif isinstance(entry, dg.TextMetadataValue | dg.MarkdownMetadataValue):
            leaves = [(path, entry.value)]
        elif isinstance(entry, dg.JsonMetadataValue):
            leaves = list(_leaves(entry.data, path))
        elif isinstance(entry, dg.TableMetadataValue):
            leaves = [(f"{path}[{i}].{k}", v) for i, r in enumerate(entry.records) for k, v in r.data.items()]
        else:  # ints, bools, paths, urls, and the like
            continue
        found += [p for p in (_problem(p, v) for p, v in leaves) if p]
    return found

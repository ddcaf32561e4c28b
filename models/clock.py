"""The one clock convention: every stored and compared instant is timezone-naive UTC.

Sources, the queue and the policy all speak naive UTC (the contracts' convention). Aware values
are converted, naive values are taken as UTC already, and "now" comes from here, so there is one
place that decides what a timestamp means.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pandas as pd


def utcnow() -> datetime:
    """The current instant as a naive UTC datetime."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def utc_naive(value: Any) -> datetime | None:
    """A naive UTC datetime from a datetime, date, pandas Timestamp or ISO string; None for missing.

    Raises TypeError for a value that is not a point in time.
    """
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, str):
        value = pd.Timestamp(value)
    if isinstance(value, pd.Timestamp):
        if pd.isna(value):
            return None
        value = value.to_pydatetime()
    elif not isinstance(value, datetime) and isinstance(value, date):
        value = datetime(value.year, value.month, value.day)
    elif not isinstance(value, datetime):
        if pd.isna(value):
            return None
        raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def now_or(now: Any | None) -> datetime:
    """`now` as naive UTC, or the current instant when it is None (the injectable clock)."""
    return utc_naive(now) if now is not None else utcnow()


def utc_timestamp(value: Any) -> pd.Timestamp:
    """A naive-UTC pandas Timestamp (NaT for missing)."""
    stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        return stamp
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


def naive_utc_series(series: pd.Series, unit: str = "ns") -> pd.Series:
    """A datetime column as naive UTC; naive input is UTC already. Raises on non-dates."""
    stamps = pd.to_datetime(series)
    if getattr(stamps.dtype, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps.astype(f"datetime64[{unit}]")

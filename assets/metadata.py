"""Asset metadata as the Dagster UI shows it: the one formatting path of every asset and check.

The asset page shows numbers, text, paths, JSON and tables (`MetadataValue.table` with its
`TableSchema`) inline; markdown sits behind a click. So headline figures are numeric entries,
short tables are tables, and markdown is kept for pictures and long text. Every number is
rounded to `DIGITS` decimals and a missing value (None, NaN, infinite) is shown as `DASH`,
never as "nan":

- `clean(metadata)`: a whole metadata mapping, entry by entry (plain floats and ints become
  numeric entries, dicts and lists JSON; `MetadataValue.float`/`json`/`table` are rounded inside);
- `table(frame)`: a frame as a `MetadataValue.table`, its columns typed;
- `markdown_table(frame)`: a frame as a markdown table (for the long tables left in markdown).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from models.contracts import series_kind

#: Decimals every number keeps in metadata.
DIGITS = 3
#: What a missing value shows as.
DASH = "—"


def rounded(value: Any, digits: int = DIGITS) -> Any:
    """`value` for display: a float rounded to `digits` decimals, an integral or boolean value
    as it is, a missing one (None, NaN, NaT, infinite) as `DASH`; anything else unchanged."""
    if value is None or value is pd.NaT:
        return DASH
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        if not math.isfinite(value):
            return DASH
        out = round(value, digits)
        return 0.0 if out == 0 else out  # no "-0.0"
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return _date_text(value)
    try:
        if pd.isna(value):
            return DASH
    except (TypeError, ValueError):  # a list, an array: not a scalar
        pass
    return value


def _date_text(value: Any) -> str:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return str(stamp.date()) if stamp == stamp.normalize() else stamp.strftime("%Y-%m-%d %H:%M")


def _json(value: Any) -> Any:
    """A JSON-able structure with every number rounded and every missing value a dash."""
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | np.ndarray | pd.Series):
        return [_json(v) for v in list(value)]
    out = rounded(value)
    return out if isinstance(out, str | int | float | bool) or out is None else str(out)


_TABLE_TYPES = {"bool": "bool", "int": "int", "float": "float", "datetime": "date", "str": "string"}


def _column_type(series: pd.Series) -> str:
    return _TABLE_TYPES[series_kind(series)]


def _cell(value: Any) -> str | int | float | bool:
    out = rounded(value)
    if isinstance(out, str | int | float | bool):
        return out
    if isinstance(out, list | tuple):
        return ", ".join(str(_cell(v)) for v in out)
    return str(out)


def table(frame: pd.DataFrame, *, columns: Mapping[str, str] | Sequence[str] | None = None,
          index: bool = False, descriptions: Mapping[str, str] | None = None) -> dg.TableMetadataValue:
    """`frame` as a table the asset page shows inline: `columns` picks (and, as a mapping from
    the frame's names, renames) the columns; `index` keeps the index as the first column."""
    if index:
        frame = frame.reset_index()
    if columns is not None:
        names = dict(columns) if isinstance(columns, Mapping) else {c: c for c in columns}
        frame = frame[list(names)].rename(columns=names)
    frame = frame.rename(columns=str)
    descriptions = descriptions or {}
    schema = dg.TableSchema(columns=[dg.TableColumn(name, _column_type(frame[name]), description=descriptions.get(name))
                                     for name in frame.columns])
    records = [dg.TableRecord({name: _cell(v) for name, v in zip(frame.columns, row)})
               for row in frame.itertuples(index=False, name=None)]
    return dg.MetadataValue.table(records, schema=schema)


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every cell as it displays: numbers rounded, missing values a dash."""
    return frame.map(_cell) if len(frame) else frame


def markdown_table(frame: pd.DataFrame, *, index: bool = False, empty: str = "(none)") -> str:
    """`frame` as a markdown table with the numbers rounded and missing values as a dash."""
    if not len(frame):
        return empty
    shown = display_frame(frame)
    return shown.to_markdown(index=index, disable_numparse=True)


def value(entry: Any) -> Any:
    """One metadata entry, formatted (see the module docstring)."""
    if isinstance(entry, dg.FloatMetadataValue):
        entry = entry.value
    elif isinstance(entry, dg.JsonMetadataValue):
        return dg.MetadataValue.json(_json(entry.data))
    elif isinstance(entry, dg.TableMetadataValue):
        records = [dg.TableRecord({k: _cell(v) if v is not None else DASH for k, v in r.data.items()})
                   for r in entry.records]
        return dg.MetadataValue.table(records, schema=entry.schema)
    elif isinstance(entry, pd.DataFrame):
        return table(entry)
    if isinstance(entry, dg.MetadataValue):
        return entry
    if isinstance(entry, Mapping | list | tuple):
        return dg.MetadataValue.json(_json(entry))
    out = rounded(entry)
    if isinstance(out, bool):
        return dg.MetadataValue.bool(out)
    if isinstance(out, int):
        return dg.MetadataValue.int(out)
    if isinstance(out, float):
        return dg.MetadataValue.float(out)
    return dg.MetadataValue.text(out) if isinstance(out, str) else out


def clean(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A metadata mapping with every entry formatted by `value`."""
    return {key: value(entry) for key, entry in metadata.items()}

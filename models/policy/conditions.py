"""Conditions as data: small boolean trees evaluated vectorized over a DataFrame.

A policy never contains code. Its triggers are trees built from three combinators and one leaf:

```yaml
all:                                   # every child matches
  - {field: segment, op: "==", value: enterprise}
  - any:                               # at least one child matches
      - {field: churn_risk, op: ">=", value: 0.6}
      - {field: days_to_renewal, op: between, value: [0, 120]}
  - not: {field: csm_owner, op: is_null, value: true}
```

Leaf operators: `==`, `!=`, `<`, `<=`, `>`, `>=` (one scalar), `in`, `not_in` (a list),
`between` (`[lo, hi]`, both ends inclusive) and `is_null` (`true` or `false`). The shape of each
value is checked when the tree is parsed, so a malformed policy fails on load, not at 3 a.m.

`evaluate(condition, frame)` returns one boolean per row. Each leaf is a single vectorized
pandas/numpy operation over its column. A missing value never satisfies a comparison (`!=` and
`not_in` included); only `is_null` looks at missing values. `not` inverts the row mask, so
`not: {field: x, op: ">", value: 5}` also matches rows where `x` is missing.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from models.clock import utc_timestamp

COMPARISON_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
OPERATORS: tuple[str, ...] = (*COMPARISON_OPS, "in", "not_in", "between", "is_null")

#: Tags of the condition union. They appear in pydantic's error locations; `format_location`
#: drops them so that error paths read like the YAML the user wrote.
_TAG_PREFIX = "condition:"

Scalar = Union[bool, int, float, str, dt.datetime, dt.date]


class ConditionError(ValueError):
    """A condition cannot be evaluated against a frame (unknown field, incomparable types)."""


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Leaf(_Node):
    """`{field, op, value}`: one test on one column."""

    field: str = Field(min_length=1)
    op: str
    value: Any = None

    @field_validator("op")
    @classmethod
    def _known_operator(cls, op: str) -> str:
        if op not in OPERATORS:
            raise ValueError(f"unknown operator {op!r}; expected one of {', '.join(OPERATORS)}")
        return op

    @field_validator("value")
    @classmethod
    def _value_fits_operator(cls, value: Any, info: Any) -> Any:
        op = info.data.get("op")
        if op is None:  # the operator itself was invalid and is reported on its own
            return value
        if op == "is_null":
            if not isinstance(value, bool):
                raise ValueError(f"'is_null' takes true or false, got {value!r}")
            return value
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                raise ValueError(f"{op!r} takes a non-empty list of values, got {value!r}")
            for item in value:
                _check_scalar(op, item)
            return tuple(value)
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise ValueError(f"'between' takes a list [lo, hi], got {value!r}")
            lo, hi = (_check_scalar(op, v) for v in value)
            try:
                ordered = lo <= hi
            except TypeError:
                raise ValueError(f"'between' bounds {lo!r} and {hi!r} are not comparable") from None
            if not ordered:
                raise ValueError(f"'between' needs lo <= hi, got [{lo!r}, {hi!r}]")
            return (lo, hi)
        return _check_scalar(op, value)


class AllOf(_Node):
    """`{all: [...]}`: every child matches."""

    all_: list[Condition] = Field(alias="all", min_length=1)


class AnyOf(_Node):
    """`{any: [...]}`: at least one child matches."""

    any_: list[Condition] = Field(alias="any", min_length=1)


class NotOf(_Node):
    """`{not: {...}}`: the child does not match."""

    not_: Condition = Field(alias="not")


def _node_kind(data: Any) -> str | None:
    if isinstance(data, _Node):
        return _TAG_PREFIX + {AllOf: "all", AnyOf: "any", NotOf: "not", Leaf: "leaf"}[type(data)]
    if not isinstance(data, dict):
        return None
    for key in ("all", "any", "not"):
        if key in data:
            return _TAG_PREFIX + key
    if "field" in data or "op" in data:
        return _TAG_PREFIX + "leaf"
    return None


Condition = Annotated[
    Union[
        Annotated[AllOf, Tag(_TAG_PREFIX + "all")],
        Annotated[AnyOf, Tag(_TAG_PREFIX + "any")],
        Annotated[NotOf, Tag(_TAG_PREFIX + "not")],
        Annotated[Leaf, Tag(_TAG_PREFIX + "leaf")],
    ],
    Discriminator(
        _node_kind,
        custom_error_type="invalid_condition",
        custom_error_message=(
            "a condition is a mapping with one of the keys 'all', 'any', 'not', "
            "or a leaf {field, op, value}"
        ),
    ),
]

AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()


def _check_scalar(op: str, value: Any) -> Scalar:
    if value is None or isinstance(value, (list, dict, tuple, set)):
        raise ValueError(f"{op!r} compares with a single value (number, text, boolean or date), got {value!r}")
    if not isinstance(value, (bool, int, float, str, dt.date)):
        raise ValueError(f"{op!r} cannot compare with a {type(value).__name__}: {value!r}")
    return value


def format_location(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a readable key path: `rules[2].when.all[0].op`."""
    out = ""
    for part in loc:
        if isinstance(part, str) and part.startswith(_TAG_PREFIX):
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_condition(data: Any) -> Condition:
    """Validate a plain mapping (e.g. loaded from YAML) into a condition tree."""
    from pydantic import TypeAdapter

    return TypeAdapter(Condition).validate_python(data)


def iter_leaves(condition: Condition) -> Iterator[Leaf]:
    """Every leaf of the tree, depth first."""
    if isinstance(condition, Leaf):
        yield condition
    elif isinstance(condition, AllOf):
        for child in condition.all_:
            yield from iter_leaves(child)
    elif isinstance(condition, AnyOf):
        for child in condition.any_:
            yield from iter_leaves(child)
    else:
        yield from iter_leaves(condition.not_)


def referenced_fields(condition: Condition) -> set[str]:
    """The column names a condition reads."""
    return {leaf.field for leaf in iter_leaves(condition)}


def evaluate(condition: Condition, frame: pd.DataFrame) -> pd.Series:
    """One boolean per row of `frame`: does the row satisfy `condition`?

    Raises `ConditionError` when the tree names a column the frame does not have, or compares a
    column with a value of an incompatible type.
    """
    missing = sorted(referenced_fields(condition) - set(frame.columns))
    if missing:
        raise ConditionError(
            f"condition uses unknown field(s) {', '.join(missing)}; "
            f"available columns: {', '.join(map(str, frame.columns))}"
        )
    return pd.Series(_mask(condition, frame), index=frame.index, dtype=bool)


def _mask(condition: Condition, frame: pd.DataFrame) -> np.ndarray:
    if isinstance(condition, Leaf):
        return _leaf_mask(condition, frame[condition.field])
    if isinstance(condition, AllOf):
        out = _mask(condition.all_[0], frame)
        for child in condition.all_[1:]:
            out = out & _mask(child, frame)
        return out
    if isinstance(condition, AnyOf):
        out = _mask(condition.any_[0], frame)
        for child in condition.any_[1:]:
            out = out | _mask(child, frame)
        return out
    return ~_mask(condition.not_, frame)


def _as_bool_array(result: Any) -> np.ndarray:
    """A comparison result (possibly a nullable boolean array) as plain numpy booleans."""
    series = pd.Series(result)
    if series.dtype != bool:
        series = series.fillna(False).astype(bool)
    return series.to_numpy(dtype=bool)


def _coerce_value(column: pd.Series, value: Any) -> Any:
    """Make a policy value comparable with `column` (dates against datetime columns)."""
    if pd.api.types.is_datetime64_any_dtype(column.dtype) and isinstance(value, (str, dt.date)):
        stamp = pd.Timestamp(value)
        if getattr(column.dtype, "tz", None) is None:
            return utc_timestamp(stamp)
        # a timezone-aware column: a naive policy value is UTC, as everywhere
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return value


def _leaf_mask(leaf: Leaf, column: pd.Series) -> np.ndarray:
    present = column.notna().to_numpy(dtype=bool)
    if leaf.op == "is_null":
        return ~present if leaf.value else present
    try:
        if leaf.op in COMPARISON_OPS:
            result = COMPARISON_OPS[leaf.op](column, _coerce_value(column, leaf.value))
        elif leaf.op in ("in", "not_in"):
            values = [_coerce_value(column, v) for v in leaf.value]
            result = column.isin(values)
            if leaf.op == "not_in":
                result = ~_as_bool_array(result)
        else:  # between
            lo, hi = (_coerce_value(column, v) for v in leaf.value)
            result = _as_bool_array(column >= lo) & _as_bool_array(column <= hi)
    except TypeError as exc:
        raise ConditionError(
            f"cannot apply {leaf.op!r} {leaf.value!r} to field {leaf.field!r} "
            f"of dtype {column.dtype}: {exc}"
        ) from exc
    return _as_bool_array(result) & present

"""Condition trees: parsing (shapes checked on load) and vectorized evaluation."""

from __future__ import annotations

import math
import operator

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from models.policy.conditions import (
    OPERATORS,
    AllOf,
    ConditionError,
    Leaf,
    evaluate,
    format_location,
    parse_condition,
    referenced_fields,
)


@pytest.fixture()
def frame() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "risk": [0.2, 0.6, np.nan, 0.9],
            "segment": pd.Series(["smb", "enterprise", None, "enterprise"], dtype="str"),
            "vip": [False, True, False, True],
            "renewal": pd.to_datetime(["2026-01-10", "2026-03-01", None, "2026-06-30"]),
            "tickets": pd.array([0, 2, None, 5], dtype="Int64"),
        }
    )
    return frame.set_axis([10, 11, 12, 13])


def mask(condition: dict, frame: pd.DataFrame) -> list[bool]:
    return evaluate(parse_condition(condition), frame).tolist()


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("==", 0.6, [False, True, False, False]),
        ("!=", 0.6, [True, False, False, True]),
        ("<", 0.6, [True, False, False, False]),
        ("<=", 0.6, [True, True, False, False]),
        (">", 0.6, [False, False, False, True]),
        (">=", 0.6, [False, True, False, True]),
        ("in", [0.2, 0.9], [True, False, False, True]),
        ("not_in", [0.2, 0.9], [False, True, False, False]),
        ("between", [0.2, 0.6], [True, True, False, False]),
        ("is_null", True, [False, False, True, False]),
        ("is_null", False, [True, True, False, True]),
    ],
)
def test_every_operator_on_a_numeric_column_and_nulls_never_compare(op, value, expected, frame):
    assert mask({"field": "risk", "op": op, "value": value}, frame) == expected


def test_every_operator_is_covered_above():
    assert set(OPERATORS) == {"==", "!=", "<", "<=", ">", ">=", "in", "not_in", "between", "is_null"}


def test_text_columns_compare_and_missing_text_matches_nothing(frame):
    assert mask({"field": "segment", "op": "==", "value": "enterprise"}, frame) == [False, True, False, True]
    assert mask({"field": "segment", "op": "!=", "value": "enterprise"}, frame) == [True, False, False, False]
    assert mask({"field": "segment", "op": "in", "value": ["smb", "mid_market"]}, frame) == [True, False, False, False]
    assert mask({"field": "segment", "op": "not_in", "value": ["smb"]}, frame) == [False, True, False, True]


def test_nullable_integers_booleans_and_dates(frame):
    assert mask({"field": "tickets", "op": ">=", "value": 2}, frame) == [False, True, False, True]
    assert mask({"field": "tickets", "op": "!=", "value": 0}, frame) == [False, True, False, True]
    assert mask({"field": "vip", "op": "==", "value": True}, frame) == [False, True, False, True]
    window = {"field": "renewal", "op": "between", "value": ["2026-01-10", "2026-03-01"]}
    assert mask(window, frame) == [True, True, False, False]
    assert mask({"field": "renewal", "op": "<", "value": "2026-02-01"}, frame) == [True, False, False, False]


def test_dates_parsed_by_yaml_compare_with_datetime_columns(frame):
    import yaml

    tree = yaml.safe_load("{field: renewal, op: '>=', value: 2026-03-01}")
    assert mask(tree, frame) == [False, True, False, True]


def test_combinators_nest_and_not_inverts_the_row_mask(frame):
    tree = {
        "all": [
            {"field": "segment", "op": "==", "value": "enterprise"},
            {"any": [{"field": "risk", "op": ">=", "value": 0.8}, {"field": "tickets", "op": "==", "value": 2}]},
            {"not": {"field": "vip", "op": "==", "value": False}},
        ]
    }
    assert mask(tree, frame) == [False, True, False, True]
    # `not` of a comparison matches missing values: the comparison did not match them.
    assert mask({"not": {"field": "risk", "op": ">", "value": 0.5}}, frame) == [True, False, True, False]


def test_result_keeps_the_frame_index_and_is_boolean(frame):
    result = evaluate(parse_condition({"field": "risk", "op": ">", "value": 0}), frame)
    assert result.dtype == bool
    assert list(result.index) == [10, 11, 12, 13]


def test_unknown_field_names_the_field_and_the_columns(frame):
    with pytest.raises(ConditionError) as info:
        evaluate(parse_condition({"field": "churn_rsk", "op": ">", "value": 0.5}), frame)
    message = str(info.value)
    assert "churn_rsk" in message
    assert "risk, segment, vip, renewal, tickets" in message


def test_incomparable_types_raise_a_condition_error_naming_the_field(frame):
    with pytest.raises(ConditionError, match="'segment'"):
        evaluate(parse_condition({"field": "segment", "op": ">", "value": 3}), frame)


def test_referenced_fields_walks_the_whole_tree():
    tree = parse_condition({"any": [{"field": "a", "op": "==", "value": 1},
                                    {"not": {"all": [{"field": "b", "op": "is_null", "value": True}]}}]})
    assert referenced_fields(tree) == {"a", "b"}
    assert isinstance(tree.any_[1].not_, AllOf)


@pytest.mark.parametrize(
    ("tree", "location", "reason"),
    [
        ({"field": "x", "op": "=>", "value": 1}, "op", "unknown operator '=>'; expected one of ==, !="),
        ({"field": "x", "op": "between", "value": [1]}, "value", "'between' takes a list [lo, hi]"),
        ({"field": "x", "op": "between", "value": [5, 1]}, "value", "'between' needs lo <= hi"),
        ({"field": "x", "op": "between", "value": [1, "b"]}, "value", "not comparable"),
        ({"field": "x", "op": "in", "value": 3}, "value", "'in' takes a non-empty list"),
        ({"field": "x", "op": "not_in", "value": []}, "value", "'not_in' takes a non-empty list"),
        ({"field": "x", "op": "is_null", "value": "yes"}, "value", "'is_null' takes true or false"),
        ({"field": "x", "op": ">=", "value": [1, 2]}, "value", "compares with a single value"),
        ({"field": "x", "op": "==", "value": None}, "value", "compares with a single value"),
        ({"field": "x", "op": "==", "value": 1, "extra": 2}, "extra", "Extra inputs"),
        ({"all": []}, "all", "at least 1 item"),
        ({"all": [{"feld": "x"}]}, "all[0]", "a condition is a mapping with one of the keys"),
        ({"not": {"any": [{"field": "x", "op": "~", "value": 1}]}}, "not.any[0].op", "unknown operator '~'"),
    ],
)
def test_malformed_conditions_fail_at_parse_time_with_their_path(tree, location, reason):
    with pytest.raises(ValidationError) as info:
        parse_condition(tree)
    problems = {format_location(tuple(e["loc"])): e["msg"] for e in info.value.errors()}
    assert location in problems, problems
    assert reason in problems[location]


# -- property: the vectorized evaluation agrees with a row-by-row reading of the rules --------

_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
            ">": operator.gt, ">=": operator.ge}
_numbers = st.one_of(st.none(), st.integers(-5, 5).map(float))


def _reference(leaf: Leaf, x: float | None) -> bool:
    missing = x is None or math.isnan(x)
    if leaf.op == "is_null":
        return missing == leaf.value
    if missing:
        return False
    if leaf.op in _COMPARE:
        return _COMPARE[leaf.op](x, leaf.value)
    if leaf.op == "in":
        return x in leaf.value
    if leaf.op == "not_in":
        return x not in leaf.value
    lo, hi = leaf.value
    return lo <= x <= hi


@st.composite
def _leaves(draw: st.DrawFn) -> dict:
    op = draw(st.sampled_from(OPERATORS))
    if op == "is_null":
        value = draw(st.booleans())
    elif op in ("in", "not_in"):
        value = draw(st.lists(st.integers(-5, 5), min_size=1, max_size=4))
    elif op == "between":
        value = sorted(draw(st.lists(st.integers(-5, 5), min_size=2, max_size=2)))
    else:
        value = draw(st.integers(-5, 5))
    return {"field": "x", "op": op, "value": value}


@settings(max_examples=150, deadline=None)
@given(values=st.lists(_numbers, min_size=1, max_size=30), leaf=_leaves(), negate=st.booleans())
def test_vectorized_evaluation_matches_a_row_by_row_reference(values, leaf, negate):
    frame = pd.DataFrame({"x": pd.Series(values, dtype="float64")})
    parsed = parse_condition(leaf)
    expected = [_reference(parsed, v) for v in frame["x"]]
    if negate:
        parsed = parse_condition({"not": leaf})
        expected = [not e for e in expected]
    assert evaluate(parsed, frame).tolist() == expected

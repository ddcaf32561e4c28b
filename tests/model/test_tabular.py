"""Type inference and label normalization of arbitrary churn tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.churn.tabular import TableError, normalize_label, prepare_table


def _table(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.gamma(2.0, 30.0, n).round(2)
    text_amount = [" " if i % 17 == 0 else f"{a:,.2f}" for i, a in enumerate(amount * 100)]
    return pd.DataFrame({
        "account": [f"A-{i:05d}" for i in range(n)],
        "row": np.arange(n),
        "plan": rng.choice(["basic", "pro", "enterprise"], n),
        "autopay": rng.choice(["Yes", "No"], n),
        "amount_text": text_amount,
        "seats": rng.integers(1, 50, n),
        "notes": [f"called on day {i} about invoice {i * 7}" for i in range(n)],
        "region": "emea",
        "status": rng.choice(["Churned", "Active"], n),
    })


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["Yes", "No", "yes", "NO"], [1, 0, 1, 0]),
        ([1, 0, 0, 1], [1, 0, 0, 1]),
        ([1.0, 0.0, 1.0, 0.0], [1, 0, 1, 0]),
        ([True, False, False, True], [1, 0, 0, 1]),
        (["churned", "active", "Active", " Churned "], [1, 0, 0, 1]),
        (["y", "n", "Y", "n"], [1, 0, 1, 0]),
        (["churn", "retained", "stayed", "churn"], [1, 0, 0, 1]),  # two spellings of one class
        (["TRUE", "false", "True", "FALSE"], [1, 0, 1, 0]),
        (["1", "0", "0", "1"], [1, 0, 0, 1]),
    ],
)
def test_label_spellings_normalize_to_churned_is_one(values, expected):
    assert normalize_label(pd.Series(values), name="status").tolist() == expected


def test_retained_and_churn_spellings_map_to_the_right_class():
    y = normalize_label(pd.Series(["churn", "retained", "retained", "churn"]), name="s")
    assert y.tolist() == [1, 0, 0, 1]
    y = normalize_label(pd.Series(["Stayed", "Churned", "stayed"]), name="s")
    assert y.tolist() == [0, 1, 0]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["Yes"] * 60, "single class"),
        (["a", "b", "c"] * 20, "3 distinct values"),
        ([1, 2] * 30, "unrecognized value"),
        (["maybe", "no"] * 30, "unrecognized value 'maybe'"),
    ],
)
def test_bad_labels_raise_one_clear_error(values, message):
    with pytest.raises(TableError, match=message):
        normalize_label(pd.Series(values), name="status")


def test_types_are_inferred_generically():
    table = prepare_table(_table(), label="status", id_column="account")
    X = table.X
    assert table.categorical == ["plan"]
    assert isinstance(X["plan"].dtype, pd.CategoricalDtype)
    assert X["autopay"].dtype == "float64" and set(X["autopay"].unique()) == {0.0, 1.0}
    # numbers stored as text with thousands separators; blanks become missing
    assert X["amount_text"].dtype == "float64"
    assert X["amount_text"].isna().sum() == len([i for i in range(80) if i % 17 == 0])
    assert X["seats"].dtype == "float64"
    assert table.dropped["account"] == "id column"
    assert "identifier" in table.dropped["row"]           # distinct integers in sequence
    assert "free text" in table.dropped["notes"]
    assert "constant" in table.dropped["region"]
    assert set(X.columns) == {"plan", "autopay", "amount_text", "seats"}
    assert table.y.tolist() == (_table()["status"] == "Churned").astype(int).tolist()


def test_rows_without_label_are_left_out_and_counted():
    df = _table(100)
    df.loc[:9, "status"] = "  "
    table = prepare_table(df, label="status")
    assert len(table.y) == 90 and len(table.X) == 90
    assert table.rows_without_label == 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label": "churned"}, "label column 'churned' not found"),
        ({"label": "status", "id_column": "customer"}, "id column 'customer' not found"),
    ],
)
def test_missing_columns_are_named(kwargs, message):
    with pytest.raises(TableError, match=message):
        prepare_table(_table(), **kwargs)


def test_too_few_rows():
    with pytest.raises(TableError, match="only 49 labelled rows"):
        prepare_table(_table(49), label="status")

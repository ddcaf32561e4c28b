"""Turn an arbitrary churn table into model-ready features and a 0/1 label.

Churn tables arrive as CSV exports with every quirk a spreadsheet can produce: numbers stored as
text (with blanks, thousands separators or a currency sign), yes/no flags, free-text notes,
identifiers, constant columns, and labels spelled a dozen ways. `prepare_table` infers a type for
each column without knowing anything about the table's domain:

- numeric columns, and text columns whose every non-blank value parses as a number, become
  `float64` (blanks become NaN);
- boolean columns and two-valued yes/no, true/false, y/n text become 0/1 floats;
- low-cardinality text becomes a pandas `category`;
- identifiers (text that is unique on most rows, or distinct integers in sequence), free text and
  constant columns are dropped, each with the reason reported in `PreparedTable.dropped`.

The label is normalized to 0/1 (1 = churned). Recognized spellings, case-insensitive: yes/no, y/n,
1/0, true/false, t/f, churned/active, churn/retained, stayed, left, exited, cancelled, lost ...
Problems a user must fix raise `TableError` with one line naming the column and the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MIN_ROWS = 50
"""Fewer rows than this cannot support k-fold validation of a classifier."""

MAX_CATEGORY_LEVELS = 200
"""Text columns with more distinct values than this are treated as free text, not categories."""

UNIQUE_RATIO_DROP = 0.5
"""Text columns whose distinct values cover more than this share of rows look like ids or notes."""

POSITIVE_LABELS = frozenset(
    {"1", "yes", "y", "true", "t", "churn", "churned", "left", "exited", "cancelled",
     "canceled", "lost", "inactive", "attrited", "attrition"}
)
NEGATIVE_LABELS = frozenset(
    {"0", "no", "n", "false", "f", "active", "retained", "stayed", "stay", "renewed", "kept",
     "existing", "current", "not churned", "not_churned", "no churn", "no_churn"}
)
_BOOLEAN_TEXT = {
    "yes": 1.0, "no": 0.0, "y": 1.0, "n": 0.0, "true": 1.0, "false": 0.0, "t": 1.0, "f": 0.0,
}
_NUMBER = re.compile(r"^[-+]?[$€£¥]?(\d{1,3}(,\d{3})+|\d*)(\.\d*)?([eE][-+]?\d+)?%?$")
_ID_NAME = re.compile(r"(^|[^a-z])id$|^id|uuid|guid", re.IGNORECASE)


class TableError(ValueError):
    """The table cannot be modelled as given. The message is one line naming the problem."""


@dataclass
class PreparedTable:
    """A churn table ready for modelling.

    `X` holds float64 columns and pandas `category` columns (named in `categorical`), `y` is a
    0/1 int array, `ids` the id column's values when one was given, and `dropped` maps every
    column left out of `X` to the reason it was left out.
    """

    X: pd.DataFrame
    y: np.ndarray
    categorical: list[str]
    dropped: dict[str, str] = field(default_factory=dict)
    ids: pd.Series | None = None
    rows_without_label: int = 0

    @property
    def positive_rate(self) -> float:
        return float(self.y.mean())


def _label_token(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "1" if value == 1 else "0" if value == 0 else repr(float(value))
    return " ".join(str(value).strip().lower().split())


def normalize_label(values: pd.Series, name: str = "label") -> np.ndarray:
    """Map a two-valued churn label to 0/1 (1 = churned); missing values must be removed first.

    Several spellings of the same class are accepted ("retained" and "stayed"). Raises
    `TableError` when the column holds one class, more than two distinct unrecognized values
    (a multi-class column), or values whose meaning is not recognized (1/2: which one is churn?).
    """
    tokens = values.map(_label_token)
    distinct = sorted(tokens.unique())
    unknown = [v for v in distinct if v not in POSITIVE_LABELS and v not in NEGATIVE_LABELS]
    if unknown and len(distinct) > 2:
        shown = ", ".join(repr(v) for v in distinct[:5]) + (" ..." if len(distinct) > 5 else "")
        raise TableError(
            f"label column {name!r} has {len(distinct)} distinct values ({shown}); "
            "a churn label needs exactly two classes"
        )
    if unknown:
        raise TableError(
            f"label column {name!r} has unrecognized value {unknown[0]!r}; use yes/no, 1/0, "
            "true/false or churned/active"
        )
    y = tokens.isin(POSITIVE_LABELS).to_numpy(dtype=int)
    if y.min() == y.max():
        which = "churned" if y[0] == 1 else "not churned"
        raise TableError(
            f"label column {name!r} has a single class (every row is {which}); "
            "a churn model needs both churned and retained rows"
        )
    return y


def _as_text(col: pd.Series) -> pd.Series:
    """Stripped text with blanks as missing values."""
    text = col.astype("string").str.strip()
    return text.mask(text == "")


def _parse_numbers(text: pd.Series) -> pd.Series | None:
    """The column as floats if every non-missing value is a number, else None."""
    present = text.dropna()
    if present.empty or not present.str.fullmatch(_NUMBER).all():
        return None
    if not present.str.contains(r"\d", regex=True).all():
        return None
    cleaned = text.str.replace(r"[,$€£¥%]", "", regex=True)
    return pd.to_numeric(cleaned, errors="coerce").astype("float64")


def _infer_column(name: str, col: pd.Series, n_rows: int) -> tuple[pd.Series | None, str]:
    """Returns (converted column, kind) where kind is numeric/category, or (None, drop reason)."""
    if pd.api.types.is_bool_dtype(col):
        col = col.astype("float64")
    if pd.api.types.is_numeric_dtype(col):
        values = col.astype("float64")
    elif pd.api.types.is_datetime64_any_dtype(col):
        return None, "date/time column (derive numeric features from it first)"
    else:
        text = _as_text(col)
        values = _parse_numbers(text)
        if values is None:
            lowered = text.str.lower()
            levels = set(lowered.dropna().unique())
            if len(levels) == 2 and levels <= _BOOLEAN_TEXT.keys():
                values = lowered.map(_BOOLEAN_TEXT).astype("float64")
            else:
                return _infer_text(name, text, n_rows)

    present = values.dropna()
    if present.nunique() <= 1:
        return None, "constant (a single value)"
    distinct_integers = bool((present == np.round(present)).all()) and present.is_unique
    if distinct_integers and len(present) == n_rows and (
        present.is_monotonic_increasing or _ID_NAME.search(name)
    ):
        return None, "identifier (distinct integers on every row)"
    return values, "numeric"


def _infer_text(name: str, text: pd.Series, n_rows: int) -> tuple[pd.Series | None, str]:
    present = text.dropna()
    n_levels = present.nunique()
    if n_levels <= 1:
        return None, "constant (a single value)"
    if n_levels > UNIQUE_RATIO_DROP * n_rows and n_levels > 2:
        return None, f"identifier or free text ({n_levels} distinct values in {n_rows} rows)"
    if n_levels > MAX_CATEGORY_LEVELS:
        return None, f"too many categories ({n_levels} > {MAX_CATEGORY_LEVELS})"
    levels = sorted(present.unique())
    return pd.Series(pd.Categorical(text, categories=levels), index=text.index), "category"


def prepare_table(df: pd.DataFrame, label: str, id_column: str | None = None) -> PreparedTable:
    """Infer column types, drop non-features and normalize the label of a churn table.

    Rows with a missing label are left out (counted in `rows_without_label`). Raises
    `TableError` for a missing label or id column, a label with one class or more than two
    (or unrecognized values), and fewer than `MIN_ROWS` labelled rows.
    """
    columns = [str(c) for c in df.columns]
    df = df.set_axis(columns, axis=1)
    for role, name in (("label", label), ("id", id_column)):
        if name is not None and name not in columns:
            raise TableError(
                f"{role} column {name!r} not found; columns are: {', '.join(columns[:20])}"
                + (" ..." if len(columns) > 20 else "")
            )
    if id_column == label:
        raise TableError(f"the label and the id column are the same column ({label!r})")

    raw_label = _as_text(df[label]) if not pd.api.types.is_numeric_dtype(df[label]) else df[label]
    has_label = raw_label.notna().to_numpy()
    df = df.loc[has_label].reset_index(drop=True)
    n_rows = len(df)
    if n_rows < MIN_ROWS:
        raise TableError(
            f"only {n_rows} labelled rows; at least {MIN_ROWS} are needed to train and validate"
        )
    y = normalize_label(raw_label[has_label].reset_index(drop=True), name=label)

    features: dict[str, pd.Series] = {}
    categorical: list[str] = []
    dropped: dict[str, str] = {}
    if id_column is not None:
        dropped[id_column] = "id column"
    for name in columns:
        if name in (label, id_column):
            continue
        values, kind = _infer_column(name, df[name], n_rows)
        if values is None:
            dropped[name] = kind
            continue
        features[name] = values
        if kind == "category":
            categorical.append(name)
    if not features:
        raise TableError(f"no usable feature columns besides {label!r}; dropped: {dropped}")
    return PreparedTable(
        X=pd.DataFrame(features),
        y=y,
        categorical=categorical,
        dropped=dropped,
        ids=df[id_column].reset_index(drop=True) if id_column is not None else None,
        rows_without_label=int((~has_label).sum()),
    )

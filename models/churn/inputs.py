"""The churn model's inputs: feature frames coerced to what LightGBM and the linear part read.

`coerce_features` is the frame a model is trained on (numeric columns as float64, categoricals
with the training levels, unseen levels missing); `FeatureArray` is the same rows as one float64
array, built once per scoring call for every booster and the linear part (LightGBM takes it
without a copy). Both re-code a categorical through its categories when it holds text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


class ModelError(ValueError):
    """The data cannot train or feed this model; the message names the column or the problem."""


def _text(values: pd.Series) -> pd.Series:
    """Category values as strings, missing values kept as NaN."""
    return values.astype(str).where(values.notna(), np.nan)


def category_levels(frame: pd.DataFrame, categorical: Sequence[str]) -> dict[str, list[str]]:
    """Sorted string levels of each categorical column, as seen in `frame`."""
    return {c: sorted(_text(frame[c]).dropna().unique().tolist()) for c in categorical}


def _numeric(values: pd.Series, feature: str) -> np.ndarray:
    """A numeric feature as float64 (a float64 column as it is)."""
    if values.dtype == np.dtype("float64"):
        return values.to_numpy()
    try:
        return pd.to_numeric(values, errors="raise").astype("float64").to_numpy()
    except (TypeError, ValueError) as exc:
        raise ModelError(f"feature {feature!r} is not numeric and not declared categorical: {exc}") from None


def _category_codes(values: pd.Series, levels: Sequence[str]) -> np.ndarray:
    """Each value's position in `levels` by its text (`_text`), -1 where missing or not a level.

    A pandas categorical of text (as `models.churn.features.feature_matrix` makes them) is
    re-coded through its categories: one lookup per category, then one take over the rows;
    anything else is matched value by value.
    """
    if isinstance(values.dtype, pd.CategoricalDtype) and all(isinstance(c, str) for c in values.cat.categories):
        position = pd.Index(list(levels), dtype=object).get_indexer(list(values.cat.categories))
        table = np.append(position, -1)          # code -1 (missing) takes the last entry
        return table[values.cat.codes.to_numpy()]
    text = _text(values)
    return pd.Categorical(text.where(text.isin(levels)), categories=list(levels)).codes


def _check_columns(frame: pd.DataFrame, features: Sequence[str]) -> None:
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ModelError(f"feature columns missing from the frame: {', '.join(map(repr, missing))}")


def coerce_features(frame: pd.DataFrame, features: Sequence[str],
                    levels: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Model input: numeric columns as float64, categoricals with fixed levels (unseen -> NaN)."""
    _check_columns(frame, features)
    out: dict[str, Any] = {}
    for f in features:
        if f in levels:
            out[f] = pd.Categorical.from_codes(_category_codes(frame[f], levels[f]), categories=list(levels[f]))
        else:
            out[f] = _numeric(frame[f], f)
    return pd.DataFrame(out, index=frame.index)


class FeatureArray:
    """`coerce_features` as LightGBM reads it, built once for every booster and the linear part.

    `values` is one float64 array, rows x features, column-major (LightGBM takes it without a
    copy): a numeric feature as float64, a categorical as its code in `levels` with NaN where
    missing or unseen, which is what LightGBM makes of the coerced frame's categoricals itself.
    """

    def __init__(self, frame: pd.DataFrame, features: Sequence[str], levels: Mapping[str, Sequence[str]]):
        _check_columns(frame, features)
        self.features = list(features)
        self.levels = levels
        self.index = frame.index
        self.values = np.empty((len(frame), len(self.features)), dtype="float64", order="F")
        self._position = {f: j for j, f in enumerate(self.features)}
        for j, f in enumerate(self.features):
            if f in levels:
                codes = _category_codes(frame[f], levels[f])
                self.values[:, j] = codes
                self.values[codes < 0, j] = np.nan
            else:
                self.values[:, j] = _numeric(frame[f], f)

    def __len__(self) -> int:
        return self.values.shape[0]

    def column(self, feature: str) -> np.ndarray:
        return self.values[:, self._position[feature]]

"""Weighted subsampling of non-churning rows of the training dates, before features are built.

Churners are a few percent of the (observation_date, account) rows, so on a large company most
of the training set's cost (building features for every row, then fitting) goes to negatives
that add little to what the model learns. `sample_negatives` keeps every positive row and, on
each *training* date, a seeded share of its negatives; each kept negative carries the weight
``negatives on that date / negatives kept on that date`` (about ``1 / rate``), so the weighted
count of negatives on every date is the full set's exactly and weighted fits, weighted ROC-AUCs
and calibration stay on the population's scale (`models.churn.model` honours the weights).

The validation dates (the latest ``valid_dates``, as `models.churn.training.time_split` cuts)
are never sampled: the model is judged on the full population.

The rate is chosen from a target number of training rows (`NEGATIVE_SAMPLE_ROWS`): below the
target nothing is sampled and every weight is 1 (the training set, and the model, are exactly
what they are without sampling).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Training rows (the training dates' rows, before any is dropped) above which negatives are
#: sampled so that about this many remain. The 100,000-account demo world has about 500,000
#: training rows (6 training dates of about 83,000 accounts): not sampled, with a 2x margin. A
#: 1,000,000-account company has about 5,000,000: its negatives are sampled at about 0.19.
NEGATIVE_SAMPLE_ROWS = 1_000_000
WEIGHT = "weight"


def negative_rate(n_rows: int, n_positive: int, target_rows: int | None) -> float:
    """The share of negatives to keep so that about `target_rows` rows remain (1.0: none sampled)."""
    if target_rows is None or n_rows <= target_rows:
        return 1.0
    negatives = n_rows - n_positive
    if negatives <= 0:
        return 1.0
    return float(np.clip((target_rows - n_positive) / negatives, 1.0 / negatives, 1.0))


def sample_negatives(labels: pd.DataFrame, *, target_rows: int | None, valid_dates: int,
                     seed: int = 0) -> pd.DataFrame:
    """`labels` (observation_date, account_id, label, ...) with a `weight` column, its negatives
    on the training dates sampled (module docstring). Row order is kept; the latest
    `valid_dates` observation dates keep every row at weight 1."""
    out = labels.copy()
    out[WEIGHT] = 1.0
    dates = sorted(out["observation_date"].unique())
    train_dates = dates[:-valid_dates] if valid_dates > 0 else dates
    in_train = out["observation_date"].isin(train_dates).to_numpy()
    label = out["label"].to_numpy()
    rate = negative_rate(int(in_train.sum()), int(label[in_train].sum()), target_rows)
    if rate >= 1.0:
        return out
    rng = np.random.default_rng(seed)
    keep = np.ones(len(out), dtype=bool)
    weight = out[WEIGHT].to_numpy(copy=True)
    date_values = out["observation_date"].to_numpy()
    for d in train_dates:  # stratified: every training date keeps the same share of its negatives
        negatives = np.flatnonzero((date_values == d) & (label == 0))
        kept = max(int(round(rate * len(negatives))), 1) if len(negatives) else 0
        chosen = rng.choice(negatives, kept, replace=False) if kept else negatives
        keep[negatives] = False
        keep[chosen] = True
        weight[chosen] = len(negatives) / kept
    out[WEIGHT] = weight
    return out[keep].reset_index(drop=True)


def sampling_summary(frame: pd.DataFrame) -> dict[str, Any]:
    """What sampling did to a training set, from its `weight` column: rows kept, the rows they
    stand for, and each date's kept share of negatives (1.0 where nothing was sampled)."""
    weight = frame[WEIGHT] if WEIGHT in frame.columns else pd.Series(1.0, index=frame.index)
    negatives = frame["label"].to_numpy() == 0
    by_date = {}
    for d, w in weight[negatives].groupby(frame.loc[negatives, "observation_date"]):
        by_date[str(pd.Timestamp(d).date())] = round(float(len(w) / w.sum()), 6) if len(w) else 1.0
    return {
        "sampled": bool((weight != 1.0).any()),
        "rows": int(len(frame)),
        "weighted_rows": round(float(weight.sum()), 3),
        "positive_rows": int((~negatives).sum()),
        "negative_rows": int(negatives.sum()),
        "weighted_negative_rows": round(float(weight[negatives].sum()), 3),
        "negative_rate_by_date": by_date,
    }


def sampling_sentence(summary: dict) -> str:
    """`sampling_summary` in one sentence, for the model report and the training set's metadata."""
    if not summary["sampled"]:
        return f"{summary['rows']:,} training rows, none sampled; the validation window is never sampled."
    rates = sorted(set(summary["negative_rate_by_date"].values()))
    return (f"{summary['rows']:,} training rows standing for {summary['weighted_rows']:,.0f}: every churn row "
            f"({summary['positive_rows']:,}) and {summary['negative_rows']:,} of "
            f"{summary['weighted_negative_rows']:,.0f} non-churn rows, a share of {rates[0]:.3f}-{rates[-1]:.3f} "
            "per observation date, each weighted by the inverse; the validation window is never sampled.")

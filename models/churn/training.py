"""The training set: features at several observation dates, labelled by what happened after.

For each observation date ``d`` (see `models.churn.labels.observation_dates`): the population alive at
``d`` (with an account history, churned accounts that came back are in it again from their return,
`models.churn.labels.returns`), its features from data strictly before ``d`` (`models.churn.features.account_features`; ARR,
plan, seats, segment and owner as of ``d`` when an account history is given), and
its label, churn within the horizon after ``d``. Dates whose horizon runs past the data are
censored and never used. Validation is by time: the latest dates are held out, the model trains
on the earlier ones.

With ``negative_sample_rows``, negatives of the training dates are sampled once the labels are
known and before any feature is built (`models.churn.sampling`): the build costs what the kept
rows cost, and the ``weight`` column (1.0 for every row when nothing was sampled) makes the
weighted counts equal the full set's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from models.churn.features import USAGE_WINDOW_DAYS, account_features
from models.churn.labels import build_labels, churn_outcomes, returns
from models.churn.sampling import WEIGHT, sample_negatives

UsageLoader = Callable[[pd.Timestamp, pd.Timestamp], pd.DataFrame]


def build_training_set(
    accounts: pd.DataFrame,
    renewals: pd.DataFrame,
    tickets: pd.DataFrame,
    usage_loader: UsageLoader,
    dates: Sequence[pd.Timestamp],
    *,
    horizon_days: int,
    data_end: pd.Timestamp,
    treatments: pd.DataFrame | None = None,
    progress: Callable[[int, int, pd.Timestamp], None] | None = None,
    account_history: pd.DataFrame | None = None,
    negative_sample_rows: int | None = None,
    valid_dates: int = 2,
    seed: int = 0,
    usage_aggregates_loader: Callable[[pd.Timestamp], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Features + ``label`` + ``treated`` + ``weight`` for every (observation_date, account) pair
    (with ``negative_sample_rows``, every positive and a weighted sample of the negatives of the
    dates before the latest ``valid_dates``; see `models.churn.sampling`).

    ``usage_loader(start, end)`` returns usage_daily rows with start <= date < end; it is called
    once per date with that date's feature window, so memory stays bounded by one window. With
    ``usage_aggregates_loader(as_of)`` (the warehouse's `read_usage_aggregates`: the usage
    features' per-account aggregates, `models.churn.features.usage_aggregates`, computed where
    the usage lives) that is called instead, and only one row per account comes back per date.
    ``account_history`` also dates returns after churn: a reactivated account has rows again from
    the date after its return.
    """
    outcomes = churn_outcomes(renewals)
    labels = build_labels(
        accounts, outcomes, dates, horizon_days=horizon_days, data_end=data_end, treatments=treatments,
        returns=returns(outcomes, account_history),
    )
    labels = sample_negatives(labels, target_rows=negative_sample_rows, valid_dates=valid_dates, seed=seed)
    sampled = bool((labels[WEIGHT] != 1.0).any())
    frames = []
    ordered = sorted(pd.Timestamp(d) for d in dates)
    for i, d in enumerate(ordered):
        rows = labels[labels["observation_date"] == d]
        if usage_aggregates_loader is not None:
            feats = account_features(accounts, renewals, tickets, None, d, account_ids=rows["account_id"],
                                     account_history=account_history, usage=usage_aggregates_loader(d))
        else:
            window = usage_loader(d - pd.Timedelta(days=USAGE_WINDOW_DAYS), d)
            if sampled:  # features are per account: the dropped accounts' usage is not needed
                window = window[window["account_id"].isin(rows["account_id"])]
            feats = account_features(accounts, renewals, tickets, window, d, account_ids=rows["account_id"],
                                     account_history=account_history)
        feats = feats.reset_index()
        feats["observation_date"] = d
        feats["label"] = rows["label"].to_numpy()
        feats["treated"] = rows["treated"].to_numpy()
        feats[WEIGHT] = rows[WEIGHT].to_numpy()
        frames.append(feats)
        if progress:
            progress(i + 1, len(ordered), d)
    return pd.concat(frames, ignore_index=True)


def time_split(training_set: pd.DataFrame, *, valid_dates: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on the earlier observation dates, validate on the latest ``valid_dates``."""
    dates = sorted(training_set["observation_date"].unique())
    if len(dates) <= valid_dates:
        raise ValueError(f"need more than {valid_dates} observation dates for a time split, got {len(dates)}")
    cutoff = dates[-valid_dates]
    train = training_set[training_set["observation_date"] < cutoff].reset_index(drop=True)
    valid = training_set[training_set["observation_date"] >= cutoff].reset_index(drop=True)
    return train, valid

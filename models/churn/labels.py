"""Churn outcomes, observation dates and labels.

Definitions used everywhere in the product:

- A **churn event** is a renewal closed with outcome ``churned``; it becomes known at the
  renewal's ``closed_at`` (that is ``churned_at``).
- For an **observation date** ``d`` the *population* is every account that is a customer at
  ``d``: created before ``d`` and with no churn event known before ``d``.
- The **label** of an account at ``d`` is 1 when a churn event falls in ``[d, d + horizon)``.
- **Censoring**: an observation date whose horizon runs past the end of the data
  (``d + horizon > data_end``) cannot be labelled, so it is never used for training.
- **Treatment** (rescue cases): an account that received a rescue play in ``[d, d + horizon)`` is
  marked ``treated`` so that a saved account is not learned as a false alarm.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from models.contracts import CHURN_OUTCOMES, conform


class LabelError(ValueError):
    """Observation dates or horizon that cannot produce honest labels."""


def churn_outcomes(renewals: pd.DataFrame) -> pd.DataFrame:
    """Churn events from the renewals table (one row per churned renewal)."""
    churned = renewals[(renewals["outcome"] == "churned") & renewals["closed_at"].notna()]
    out = pd.DataFrame(
        {
            "account_id": churned["account_id"].to_numpy(),
            "churned_at": churned["closed_at"].to_numpy(),
            "arr_lost": churned["amount"].to_numpy(),
        }
    )
    out = out.sort_values(["account_id", "churned_at"]).drop_duplicates(["account_id", "churned_at"])
    return conform(out, CHURN_OUTCOMES)


def observation_dates(
    data_start: pd.Timestamp,
    data_end: pd.Timestamp,
    *,
    horizon_days: int = 90,
    n_dates: int = 8,
    spacing_days: int = 28,
    min_history_days: int = 90,
) -> list[pd.Timestamp]:
    """The latest ``n_dates`` dates, ``spacing_days`` apart, that can be labelled honestly.

    The last date is ``data_end - horizon`` (its horizon ends exactly at the end of the data); the
    first is no earlier than ``data_start + min_history_days`` so features have a full window.
    Returned oldest first.
    """
    data_start = pd.Timestamp(data_start).normalize()
    data_end = pd.Timestamp(data_end).normalize()
    last = data_end - pd.Timedelta(days=horizon_days)
    first_allowed = data_start + pd.Timedelta(days=min_history_days)
    if last < first_allowed:
        raise LabelError(
            f"not enough history: data spans {data_start.date()}..{data_end.date()}, but a "
            f"{min_history_days}-day feature window plus a {horizon_days}-day horizon needs "
            f"{min_history_days + horizon_days} days"
        )
    dates = []
    d = last
    while d >= first_allowed and len(dates) < n_dates:
        dates.append(d)
        d -= pd.Timedelta(days=spacing_days)
    return sorted(dates)


def population(accounts: pd.DataFrame, outcomes: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    """Account ids that are customers at ``as_of`` (created before it, not yet churned)."""
    as_of = pd.Timestamp(as_of)
    created = accounts.loc[accounts["created_at"] < as_of, "account_id"]
    gone = set(outcomes.loc[outcomes["churned_at"] < as_of, "account_id"])
    return created[~created.isin(gone)].reset_index(drop=True)


def build_labels(
    accounts: pd.DataFrame,
    outcomes: pd.DataFrame,
    dates: Sequence[pd.Timestamp],
    *,
    horizon_days: int,
    data_end: pd.Timestamp,
    treatments: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (observation_date, account) in the population, with its label.

    Columns: observation_date, account_id, label (0/1), churned_at (NaT if none in horizon),
    treated (bool). Raises `LabelError` if any date is censored (its horizon passes data_end).
    `treatments` (account_id, treated_at) marks accounts that got a rescue play in the horizon.
    """
    if horizon_days <= 0:
        raise LabelError(f"horizon_days must be positive, got {horizon_days}")
    data_end = pd.Timestamp(data_end)
    horizon = pd.Timedelta(days=horizon_days)
    frames = []
    for d in sorted(pd.Timestamp(x) for x in dates):
        if d + horizon > data_end:
            raise LabelError(
                f"observation date {d.date()} is censored: its {horizon_days}-day horizon ends "
                f"after the data ({data_end.date()})"
            )
        pop = population(accounts, outcomes, d)
        in_window = outcomes[(outcomes["churned_at"] >= d) & (outcomes["churned_at"] < d + horizon)]
        first_churn = in_window.groupby("account_id")["churned_at"].min()
        frame = pd.DataFrame({"observation_date": d, "account_id": pop})
        # reindex, not map: mapping string ids through an empty datetime series fails
        frame["churned_at"] = pd.Series(first_churn.reindex(frame["account_id"]).to_numpy(),
                                        index=frame.index).astype("datetime64[ns]")
        frame["label"] = frame["churned_at"].notna().astype("int8")
        if treatments is not None and len(treatments):
            t = treatments[(treatments["treated_at"] >= d) & (treatments["treated_at"] < d + horizon)]
            frame["treated"] = frame["account_id"].isin(set(t["account_id"]))
        else:
            frame["treated"] = False
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["observation_date", "account_id", "churned_at", "label", "treated"])
    return pd.concat(frames, ignore_index=True)

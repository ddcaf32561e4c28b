"""Churn outcomes, observation dates and labels.

Definitions used everywhere in the product:

- A **churn event** is a renewal closed with outcome ``churned``; it becomes known at the
  renewal's ``closed_at`` (that is ``churned_at``).
- A **return** (reactivation) is a churned account starting a new subscription: in the account
  history (`models.contracts.ACCOUNT_HISTORY`), the first row after a churn event's ``churned_at``
  (strictly after) whose ARR is positive while the account's previous row had ARR 0, the gap
  between terms. It becomes known at that row's ``valid_from`` (``returned_at``), never earlier: a
  later renewal term does not date it. A renewal may close lost months before its term ends, so
  ARR may stay positive after ``churned_at``; only the 0 -> positive step counts, and a positive ->
  positive change (a downgrade) is none. A history row with unknown ARR (null; the contract
  refuses them) is neither a gap nor a term and is skipped, so an unknown value never makes a
  return; an account's first row has no previous row and is no return (a trial converting is
  not one either: there was no churn before it). With no history there are no returns.
- For an **observation date** ``d`` the *population* is every account that is a customer at
  ``d``: created before ``d``, and either with no churn event known before ``d`` or with its
  latest churn event before ``d`` followed by a return known before ``d`` (``returned_at < d``).
  A reactivated account is a customer again from its return on, and its later churn is a label
  like any other.
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


#: Columns of `returns`: one row per churn event followed by a return.
RETURN_COLUMNS = ("account_id", "churned_at", "returned_at")


def _no_returns() -> pd.DataFrame:
    return pd.DataFrame({"account_id": pd.Series(dtype=object),
                         "churned_at": pd.Series(dtype="datetime64[ns]"),
                         "returned_at": pd.Series(dtype="datetime64[ns]")})


def returns(outcomes: pd.DataFrame, account_history: pd.DataFrame | None) -> pd.DataFrame:
    """Returns after churn events, from the account history (see the module docs).

    One row per churn event (``outcomes``: account_id, churned_at) followed by a return: the
    account's first history row strictly after ``churned_at`` with ARR > 0 whose previous row
    (by ``valid_from``, rows with unknown ARR skipped) had ARR 0. Columns `RETURN_COLUMNS`,
    sorted by account and churn; empty when ``account_history`` is None or empty. Two churn
    events before one return (parallel terms closed lost) both lead to it.
    """
    if account_history is None or not len(account_history) or not len(outcomes):
        return _no_returns()
    h = account_history[["account_id", "valid_from", "arr"]].dropna()
    h = pd.DataFrame({"account_id": h["account_id"].astype(str).to_numpy(dtype=object),
                      "returned_at": h["valid_from"].astype("datetime64[ns]").to_numpy(),
                      "arr": h["arr"].astype("float64").to_numpy()})
    h = h.sort_values(["account_id", "returned_at"], kind="stable")
    previous = h.groupby("account_id")["arr"].shift()
    starts = h.loc[(h["arr"] > 0) & (previous == 0), ["account_id", "returned_at"]]
    churns = outcomes[["account_id", "churned_at"]].dropna()
    churns = pd.DataFrame({"account_id": churns["account_id"].astype(str).to_numpy(dtype=object),
                           "churned_at": churns["churned_at"].astype("datetime64[ns]").to_numpy()})
    churns = churns.drop_duplicates()
    if starts.empty or churns.empty:
        return _no_returns()
    joined = pd.merge_asof(
        churns.sort_values("churned_at", kind="stable"), starts.sort_values("returned_at", kind="stable"),
        left_on="churned_at", right_on="returned_at", by="account_id", direction="forward",
        allow_exact_matches=False,
    )
    out = joined.dropna(subset=["returned_at"]).sort_values(["account_id", "churned_at"], kind="stable")
    return out[list(RETURN_COLUMNS)].reset_index(drop=True)


def population(
    accounts: pd.DataFrame,
    outcomes: pd.DataFrame,
    as_of: pd.Timestamp,
    returns: pd.DataFrame | None = None,
) -> pd.Series:
    """Account ids that are customers at ``as_of``: created before it and not churned, or
    churned and back (``returns``, see `returns`: account_id, returned_at).

    Everything is read strictly before ``as_of``: a churn event counts from the day after its
    ``churned_at``, a return from the day after its ``returned_at``. An account is a customer
    again when a return known before ``as_of`` follows its latest churn event before ``as_of``.
    Without ``returns`` (or with none) a churned account is gone for good.
    """
    as_of = pd.Timestamp(as_of)
    created = accounts.loc[accounts["created_at"] < as_of, "account_id"]
    churned = outcomes.loc[outcomes["churned_at"] < as_of]
    latest_churn = churned.groupby(churned["account_id"].astype(str))["churned_at"].max()
    if returns is not None and len(returns):
        back = returns.loc[returns["returned_at"] < as_of]
        latest_back = back.groupby(back["account_id"].astype(str))["returned_at"].max()
        latest_back = latest_back.reindex(latest_churn.index)
        latest_churn = latest_churn[~(latest_back > latest_churn)]
    gone = set(latest_churn.index)
    return created[~created.astype(str).isin(gone)].reset_index(drop=True)


def build_labels(
    accounts: pd.DataFrame,
    outcomes: pd.DataFrame,
    dates: Sequence[pd.Timestamp],
    *,
    horizon_days: int,
    data_end: pd.Timestamp,
    treatments: pd.DataFrame | None = None,
    returns: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (observation_date, account) in the population, with its label.

    Columns: observation_date, account_id, label (0/1), churned_at (NaT if none in horizon),
    treated (bool). Raises `LabelError` if any date is censored (its horizon passes data_end).
    `treatments` (account_id, treated_at) marks accounts that got a rescue play in the horizon.
    `returns` (see `returns`) re-admits churned accounts to the population from their return on.
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
        pop = population(accounts, outcomes, d, returns=returns)
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

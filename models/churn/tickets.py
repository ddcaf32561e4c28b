"""The tickets a snapshot reads, and the support features computed from them.

`relevant_tickets` is the daily run's window of the tickets (`TICKET_WINDOW_DAYS`), which
`require_ticket_history` guards; `support_features` counts the support features of
`models.churn.features.account_features` on integer codes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SUPPORT_WINDOW_DAYS = 90
CSAT_WINDOW_DAYS = 180
COMPLIANCE_CATEGORIES = ("compliance", "legal", "security")
#: The tickets a snapshot at ``d`` reads, whatever their number: those created in the
#: `TICKET_WINDOW_DAYS` before ``d``, solved in them, or not solved at all (`relevant_tickets`).
#: The support features read tickets created in the support window, rated in the CSAT window, or
#: open at ``d``: all of them are among these, so the daily path pulls a window of the tickets
#: instead of their whole history (13 M rows at a million accounts).
TICKET_WINDOW_DAYS = max(SUPPORT_WINDOW_DAYS, CSAT_WINDOW_DAYS)
#: `pandas.DataFrame.attrs` key of a tickets frame cut by `relevant_tickets`: the window's start.
TICKETS_SINCE = "tickets_since"


def ticket_window_start(as_of: pd.Timestamp) -> pd.Timestamp:
    """The first instant of the tickets a snapshot at ``as_of`` reads (`TICKET_WINDOW_DAYS` whole
    days before its day)."""
    return pd.Timestamp(as_of).normalize() - pd.Timedelta(days=TICKET_WINDOW_DAYS)


def relevant_tickets(tickets: pd.DataFrame, since: pd.Timestamp) -> pd.DataFrame:
    """The tickets every snapshot on or after ``since + TICKET_WINDOW_DAYS`` reads: created at or
    after ``since``, solved at or after it, or not solved (open, however old). A ticket without a
    readable creation date is kept, so the tickets' contract check still sees it (and every
    ticket, when a date column does not read as dates at all). The result
    carries ``since`` in ``attrs[TICKETS_SINCE]`` (`require_ticket_history` reads it)."""
    since = pd.Timestamp(since)
    created, solved = tickets["created_at"], tickets["solved_at"]
    if not (pd.api.types.is_datetime64_any_dtype(created) and pd.api.types.is_datetime64_any_dtype(solved)):
        keep = pd.Series(True, index=tickets.index)  # dates that do not read: all kept, the contract check says why
    else:
        keep = created.isna() | (created >= since) | solved.isna() | (solved >= since)
    out = tickets[keep] if not bool(keep.all()) else tickets.copy(deep=False)
    out.attrs[TICKETS_SINCE] = since
    return out


def require_ticket_history(tickets: pd.DataFrame, earliest: pd.Timestamp) -> None:
    """Raise ValueError when ``tickets`` were cut (`relevant_tickets`) later than a snapshot at
    ``earliest`` reads: its support features would count too few tickets."""
    since = tickets.attrs.get(TICKETS_SINCE)
    if since is not None and pd.Timestamp(since) > ticket_window_start(earliest):
        raise ValueError(
            f"the tickets hold only those relevant since {pd.Timestamp(since):%Y-%m-%d} (the daily window), "
            f"but a snapshot at {pd.Timestamp(earliest):%Y-%m-%d} reads tickets since "
            f"{ticket_window_start(earliest):%Y-%m-%d}: materialize support_tickets in the same run as the "
            "training set (the weekly retrain job does), which pulls their whole history")


def support_features(known: pd.DataFrame, as_of: pd.Timestamp, ids: pd.Index) -> dict[str, np.ndarray]:
    """The support features of the accounts ``ids`` (in that order) from the tickets ``known``
    as they were at ``as_of`` (`as_known_at`'s cut): counts in the support window, open ones,
    the oldest open urgent ticket, the median first response, escalations, CSAT.

    Each ticket's account is looked up once (its position in ``ids``) and every aggregate is an
    integer-coded count, sum, minimum or median: at a million accounts the tickets are millions
    of rows and one text group-by per feature cost most of the training set's time."""
    as_of, day = pd.Timestamp(as_of), pd.Timedelta(days=1)
    accounts = pd.Index(ids).unique()
    n = len(accounts)
    code = accounts.get_indexer(known["account_id"])
    mine = code >= 0
    created = known["created_at"].to_numpy()
    solved = known["solved_at"]
    recent = mine & (created >= np.datetime64(as_of - SUPPORT_WINDOW_DAYS * day))
    open_ = mine & solved.isna().to_numpy()
    urgent = (known["priority"] == "urgent").fillna(False).to_numpy(dtype=bool)
    escalated = known["escalated"].astype(bool).to_numpy()
    compliance = np.zeros(len(known), dtype=bool)  # read only where it counts: open tickets
    compliance[open_] = (known["category"][open_].astype("string").str.lower()
                         .isin(COMPLIANCE_CATEGORIES).fillna(False).to_numpy(dtype=bool))
    csat = known["csat"].to_numpy(dtype="float64", na_value=np.nan)
    rated = mine & ~np.isnan(csat) & (solved >= as_of - CSAT_WINDOW_DAYS * day).fillna(False).to_numpy(dtype=bool)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(code[mask], minlength=n).astype("float64")

    def by_account(mask: np.ndarray, values: np.ndarray, how: str) -> np.ndarray:
        """``how`` ("min", "median") of ``values`` per account; NaN where it has none."""
        found = pd.Series(values[mask]).groupby(code[mask]).agg(how)
        out = np.full(n, np.nan)
        out[found.index.to_numpy()] = found.to_numpy(dtype="float64")
        return out

    hours = (created - np.datetime64(as_of)).astype("timedelta64[ns]").astype("int64") / 3.6e12  # <= 0
    oldest = by_account(open_ & urgent, hours, "min")
    first = known["first_response_at"]
    responded = recent & first.notna().to_numpy()
    response = (first - known["created_at"]).dt.total_seconds().to_numpy(dtype="float64", na_value=np.nan) / 3600.0
    rated_count = count(rated)
    with np.errstate(invalid="ignore", divide="ignore"):
        csat_mean = np.bincount(code[rated], weights=csat[rated], minlength=n) / rated_count
    values = {
        "tickets_90d": count(recent),
        "urgent_tickets_90d": count(recent & urgent),
        "open_urgent_tickets": count(open_ & urgent),
        "oldest_open_urgent_hours": np.nan_to_num(-oldest, nan=0.0),
        "open_tickets": count(open_),
        "open_compliance_tickets": count(open_ & compliance),
        "median_first_response_hours": by_account(responded, response, "median"),
        "escalated_90d": count(recent & escalated),
        "csat_avg_180d": np.where(rated_count > 0, csat_mean, np.nan),
        "low_csat_180d": count(rated & (csat <= 2)),
    }
    order = accounts.get_indexer(ids)
    return {name: v[order] for name, v in values.items()}

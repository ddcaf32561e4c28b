"""Account attributes as they stood at an observation date.

ARR, plan, seats, segment and CSM owner change over a customer's life (an upgrade, a downgrade, a
new owner), and the accounts table holds only today's values. Read at a past observation date,
today's values leak what happened after it: an account that expanded after the date looks, at the
date, like the large account it became; one whose ARR was cut when it churned looks doomed. So the
attributes a history can hold are read as of the date:

- **With an account history** (`models.contracts.ACCOUNT_HISTORY`, one row per account and change,
  each row carrying every attribute as it then stood): an attribute at date ``d`` is the value of
  the account's last history row with ``valid_from`` strictly before ``d`` (`pd.merge_asof` by
  account), the same "strictly before" as every other feature. An account with no history row
  before ``d`` gets these attributes *missing*, not today's values, which may come from after
  ``d``; the model reads them as missing values.
- **Without a history** (none landed): the accounts table's values at every date. The attributes
  are *assumed constant*; where they do change, that is a leak this module cannot see.

The columns of the history contract (`CHANGING_ATTRIBUTES`) are the attributes that change;
every other account attribute (industry, region, name, created_at) is constant by contract and is
always read from the accounts table.
"""

from __future__ import annotations

import pandas as pd

from models.contracts import ACCOUNT_HISTORY

#: Account attributes that change over time: the history contract's columns beyond its key.
CHANGING_ATTRIBUTES: tuple[str, ...] = tuple(
    c for c in ACCOUNT_HISTORY.column_names if c not in ACCOUNT_HISTORY.primary_key
)


def has_history(history: pd.DataFrame | None) -> bool:
    """Whether an account history was landed (None or an empty frame: it was not)."""
    return history is not None and len(history) > 0


def attributes_rule(history: pd.DataFrame | None) -> str:
    """How the changing attributes were read, in words (for metadata and reports)."""
    if has_history(history):
        return ("as of each date from the account history (last row strictly before the date; "
                "missing where the account has none)")
    return "the accounts' current values at every date (no account history: attributes assumed constant)"


def attributes_as_of(
    accounts: pd.DataFrame,
    history: pd.DataFrame | None,
    as_of: pd.Timestamp,
    account_ids: pd.Index | pd.Series | None = None,
) -> pd.DataFrame:
    """`CHANGING_ATTRIBUTES` of each account as known strictly before ``as_of``.

    One row per id of ``account_ids`` (default: every account), in that order, indexed by
    ``account_id``. ``history`` None or empty: the accounts table's values (assumed constant).
    """
    acc = accounts.set_index("account_id")
    ids = pd.Index(account_ids if account_ids is not None else acc.index, name="account_id")
    if not has_history(history):
        return acc.reindex(ids)[list(CHANGING_ATTRIBUTES)]
    as_of = pd.Timestamp(as_of)
    left = pd.DataFrame({"account_id": ids.astype(str).to_numpy(dtype=object), "_as_of": as_of})
    left["_as_of"] = left["_as_of"].astype("datetime64[ns]")
    right = history[["account_id", "valid_from", *CHANGING_ATTRIBUTES]].dropna(subset=["valid_from"]).copy()
    right["account_id"] = right["account_id"].astype(str).to_numpy(dtype=object)
    right["valid_from"] = right["valid_from"].astype("datetime64[ns]")
    right = right.sort_values("valid_from", kind="stable")
    joined = pd.merge_asof(
        left, right, left_on="_as_of", right_on="valid_from", by="account_id",
        direction="backward", allow_exact_matches=False,
    )
    return joined.set_index(ids)[list(CHANGING_ATTRIBUTES)]

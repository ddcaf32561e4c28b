"""What a routing pass starts from: the validated inputs and each account's hysteresis state.

`prepare_inputs` checks the frames `models.routing.route.route` receives (raising `RoutingError`
when they do not fit the policy) and fills in the missing ones; `hysteresis` carries every
account's at-risk state from the previous run to this one and says which candidates are settled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.clock import naive_utc_series, utc_timestamp
from models.contracts import CANDIDATE_BOUNDS, book_percentiles, out_of_bounds
from models.policy.schema import HysteresisSpec, Policy

STATE_AT_RISK, STATE_OK = "at_risk", "ok"


class RoutingError(ValueError):
    """The frames given to `route` do not fit the policy (missing column, duplicate account) or
    hold a number outside its declared range (`models.contracts.CANDIDATE_BOUNDS`)."""


@dataclass(frozen=True)
class RoutingInputs:
    """The validated inputs of one routing pass; arrays are aligned with `ids`.

    `open_cases` keeps the latest open case per account, indexed by account_id.
    """

    frame: pd.DataFrame
    ids: pd.Series
    now: pd.Timestamp
    state_clock: pd.Timestamp
    open_cases: pd.DataFrame
    recent_resolutions: pd.DataFrame
    account_states: pd.DataFrame
    member_load: dict[str, int]

    @property
    def now_naive(self) -> pd.Timestamp:
        return self.now.tz_localize(None)

    @property
    def arr_at_risk(self) -> np.ndarray:
        return pd.to_numeric(self.frame["expected_arr_at_risk"], errors="coerce").fillna(0.0).to_numpy()


def prepare_inputs(
    candidates: pd.DataFrame,
    policy: Policy,
    *,
    now: dt.datetime,
    open_cases: pd.DataFrame | None = None,
    recent_resolutions: pd.DataFrame | None = None,
    account_states: pd.DataFrame | None = None,
    member_load: Mapping[str, int] | None = None,
    as_of: dt.datetime | dt.date | None = None,
) -> RoutingInputs:
    """Check the frames `route` receives and fill in the missing ones (see `route`).

    Raises `RoutingError` for a naive `now`, a missing column, a duplicate account id, or a
    number outside its range (an infinite or absurd ARR, a risk that is not a probability): such
    a frame is refused whole rather than routed on a value that would pick the priority.
    """
    now_ts = _aware_utc(now)
    state_clock = now_ts.tz_localize(None) if as_of is None else utc_timestamp(as_of)
    # The book percentiles a policy may threshold on, derived here when the frame lacks them (a
    # replay of a history kept without them): `candidates` is the whole scored book.
    candidates = book_percentiles(candidates)
    _require(candidates, {"account_id", "expected_arr_at_risk"} | policy.condition_fields(), "candidates")
    problems = out_of_bounds(candidates, CANDIDATE_BOUNDS, table="candidates")
    if problems:
        raise RoutingError("nothing routed: " + "; ".join(problems))
    open_cases = open_cases if open_cases is not None else _empty(
        {"account_id": "str", "case_id": "str", "priority": "str", "team": "str", "opened_at": "datetime64[ns]"})
    recent_resolutions = recent_resolutions if recent_resolutions is not None else _empty(
        {"account_id": "str", "resolved_at": "datetime64[ns]"})
    account_states = account_states if account_states is not None else _empty(
        {"account_id": "str", "state": "str", "since": "datetime64[ns]"})
    _require(open_cases, {"account_id", "case_id", "priority", "team", "opened_at"}, "open_cases")
    _require(recent_resolutions, {"account_id", "resolved_at"}, "recent_resolutions")
    _require(account_states, {"account_id", "state", "since"}, "account_states")

    ids = candidates["account_id"].astype(str).reset_index(drop=True)
    if not ids.is_unique:
        raise RoutingError(f"candidates has duplicate account_id(s), e.g. {ids[ids.duplicated()].iloc[0]!r}")
    cases = open_cases.assign(account_id=open_cases["account_id"].astype(str))
    cases = cases.sort_values("opened_at").drop_duplicates("account_id", keep="last").set_index("account_id")
    return RoutingInputs(
        frame=candidates.reset_index(drop=True),
        ids=ids,
        now=now_ts,
        state_clock=state_clock,
        open_cases=cases,
        recent_resolutions=recent_resolutions,
        account_states=account_states,
        member_load=dict(member_load or {}),
    )


@dataclass(frozen=True)
class States:
    """Hysteresis per candidate, and the `account_states` table to persist for the next run."""

    at_risk: np.ndarray        # bool: in the at-risk state now
    days_in_state: np.ndarray  # int: whole days since the state last changed
    settled: np.ndarray        # bool: at risk for at least `min_days_in_state` days
    table: pd.DataFrame        # account_id, state, since (candidates first, then untouched accounts)


def hysteresis(
    ids: pd.Series,
    values: pd.Series,
    previous: pd.DataFrame,
    spec: HysteresisSpec,
    *,
    clock: pd.Timestamp,
) -> States:
    """Enter at `enter_threshold`, leave below `exit_threshold`, count days in the state.

    `values` is the hysteresis field per candidate; `previous` the last run's account_id, state,
    since; `clock` the naive-UTC instant new states are dated by (days count from its date).
    Accounts of `previous` that are not candidates keep their state.
    """
    previous = previous.assign(account_id=previous["account_id"].astype(str))
    previous = previous.drop_duplicates("account_id", keep="last").set_index("account_id")
    prev_state = previous["state"].reindex(ids).to_numpy(dtype=object)
    prev_since = naive_utc_series(previous["since"]).reindex(ids).to_numpy()
    was_at_risk = prev_state == STATE_AT_RISK
    value = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        enters = ~was_at_risk & (value >= spec.enter_threshold)
        exits = was_at_risk & (value < spec.exit_threshold)
    at_risk = (was_at_risk & ~exits) | enters
    changed = enters | exits | pd.isna(prev_since)
    since = np.where(changed, np.datetime64(clock.to_datetime64()), prev_since).astype("datetime64[ns]")
    days_in_state = (
        np.datetime64(clock.normalize().to_datetime64()) - since.astype("datetime64[D]")
    ).astype("timedelta64[D]").astype(np.int64)
    settled = at_risk & (days_in_state >= spec.min_days_in_state)
    states_now = pd.DataFrame({
        "account_id": ids,
        "state": pd.Series(np.where(at_risk, STATE_AT_RISK, STATE_OK), dtype="str"),
        "since": since,
    })
    untouched = previous.loc[~previous.index.isin(ids)].reset_index()[["account_id", "state", "since"]]
    if len(untouched):
        untouched = untouched.assign(since=naive_utc_series(untouched["since"]))
        table = pd.concat([states_now, untouched], ignore_index=True)
    else:
        table = states_now
    return States(at_risk=at_risk, days_in_state=days_in_state, settled=settled, table=table)


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


def _aware_utc(value: dt.datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise RoutingError(f"now must be timezone-aware, got {value!r}")
    return stamp.tz_convert("UTC")


def _require(frame: pd.DataFrame, columns: set[str], name: str) -> None:
    missing = sorted(columns - set(frame.columns))
    if missing:
        raise RoutingError(
            f"{name} frame lacks column(s) {', '.join(missing)}; "
            f"columns: {', '.join(map(str, frame.columns))}"
        )


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})

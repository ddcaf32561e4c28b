"""Account features as of an observation date, and the words that explain them.

The one rule: a feature at observation date ``d`` uses only what was known strictly before
``d``. `as_known_at` enforces it by cutting every table to what a system of record would have
shown at ``d`` (usage days before ``d``; tickets created before ``d`` with response, solve time
and CSAT hidden when they happened later; renewal outcomes hidden until closed; ARR, plan, seats,
segment and owner from the account history as of ``d``, see `models.churn.attributes`). Every
feature is computed from that cut, and `tests/unit/test_features.py` proves it by scrambling everything
after ``d`` and checking that no feature moves.

Features are grouped as the health score's components read them: usage, support, relationship
and financial. `FEATURES` lists them with the phrase a CSM reads when one drives risk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.churn.attributes import attributes_as_of

USAGE_WINDOW_DAYS = 90
SUPPORT_WINDOW_DAYS = 90
CSAT_WINDOW_DAYS = 180
COMPLIANCE_CATEGORIES = ("compliance", "legal", "security")


@dataclass(frozen=True)
class Feature:
    name: str
    group: str  # usage | support | relationship | financial
    describe: Callable[[object], str]
    categorical: bool = False


def _pct(v: object) -> str:
    return f"{abs(float(v)) * 100:.0f}%"


def _trend_phrase(what: str, baseline: str) -> Callable[[object], str]:
    def phrase(v: object) -> str:
        if v is None or pd.isna(v):
            return f"no {what} history to compare"
        direction = "down" if float(v) < 0 else "up"
        return f"{what} {direction} {_pct(v)} vs {baseline}"

    return phrase


FEATURES: tuple[Feature, ...] = (
    # usage
    Feature("au_7d", "usage", lambda v: f"{float(v):.1f} active users per day in the last 7 days"),
    Feature("au_90d", "usage", lambda v: f"{float(v):.1f} active users per day over 90 days"),
    Feature("wau_trend", "usage", _trend_phrase("weekly active users", "90-day average")),
    Feature("au_30d_trend", "usage", _trend_phrase("active users (30 days)", "the 60 days before")),
    Feature("events_30d_trend", "usage", _trend_phrase("product activity (30 days)", "the 60 days before")),
    Feature("advanced_share_30d", "usage", lambda v: f"advanced features are {_pct(v)} of activity"),
    Feature("days_since_active", "usage", lambda v: f"last product activity {float(v):.0f} days ago"),
    Feature("seat_utilization", "usage", lambda v: f"{_pct(v)} of licensed seats active (30 days)"),
    # support
    Feature("tickets_90d", "support", lambda v: f"{float(v):.0f} tickets in the last 90 days"),
    Feature("urgent_tickets_90d", "support", lambda v: f"{float(v):.0f} urgent tickets in the last 90 days"),
    Feature("open_urgent_tickets", "support", lambda v: f"{float(v):.0f} urgent tickets open"),
    Feature(
        "oldest_open_urgent_hours",
        "support",
        lambda v: "no urgent ticket open" if not v else f"oldest urgent ticket open {float(v) / 24:.1f} days",
    ),
    Feature("open_tickets", "support", lambda v: f"{float(v):.0f} tickets open"),
    Feature("open_compliance_tickets", "support", lambda v: f"{float(v):.0f} compliance/security tickets open"),
    Feature(
        "median_first_response_hours",
        "support",
        lambda v: "no recent first responses" if pd.isna(v) else f"median first response {float(v):.1f} h (90 days)",
    ),
    Feature("escalated_90d", "support", lambda v: f"{float(v):.0f} escalated tickets in 90 days"),
    Feature(
        "csat_avg_180d",
        "support",
        lambda v: "no CSAT responses in 180 days" if pd.isna(v) else f"average CSAT {float(v):.1f}/5 (180 days)",
    ),
    Feature("low_csat_180d", "support", lambda v: f"{float(v):.0f} poor CSAT ratings (<= 2) in 180 days"),
    # relationship
    Feature("tenure_days", "relationship", lambda v: f"customer for {float(v) / 365:.1f} years"),
    Feature(
        "days_to_renewal",
        "relationship",
        lambda v: "no renewal scheduled" if pd.isna(v) else f"renewal in {float(v):.0f} days",
    ),
    Feature("renewals_done", "relationship", lambda v: f"{float(v):.0f} renewals so far"),
    Feature("segment", "relationship", lambda v: f"segment {v}", categorical=True),
    Feature("industry", "relationship", lambda v: f"industry {v}", categorical=True),
    Feature("region", "relationship", lambda v: f"region {v}", categorical=True),
    Feature("plan", "relationship", lambda v: f"plan {v}", categorical=True),
    # financial
    Feature("arr", "financial", lambda v: f"ARR {float(v):,.0f}"),
    Feature("seats", "financial", lambda v: f"{float(v):.0f} seats"),
    Feature("arr_per_seat", "financial", lambda v: f"price {float(v):,.0f} per seat"),
)

FEATURE_NAMES: list[str] = [f.name for f in FEATURES]
CATEGORICAL_FEATURES: list[str] = [f.name for f in FEATURES if f.categorical]
FEATURE_INDEX: dict[str, Feature] = {f.name: f for f in FEATURES}


def describe_driver(feature: str, value: object, contribution: float) -> str:
    """A CSM-readable sentence for one driver (used with models.churn.explain.top_drivers)."""
    spec = FEATURE_INDEX.get(feature)
    if spec is None:
        return f"{feature} = {value}"
    try:
        text = spec.describe(value)
    except (TypeError, ValueError):
        text = f"{feature} = {value}"
    return text


def as_known_at(
    as_of: pd.Timestamp,
    *,
    renewals: pd.DataFrame,
    tickets: pd.DataFrame,
    usage_daily: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Cut renewals, tickets and usage to what was known strictly before ``as_of``."""
    as_of = pd.Timestamp(as_of)
    usage = usage_daily[usage_daily["date"] < as_of]

    t = tickets[tickets["created_at"] < as_of].copy()
    for col in ("first_response_at", "solved_at"):
        t[col] = t[col].where(t[col] < as_of)
    t["csat"] = t["csat"].where(t["solved_at"].notna())

    r = renewals.copy()
    known = r["closed_at"] < as_of
    r["closed_at"] = r["closed_at"].where(known)
    r["outcome"] = r["outcome"].where(known, "open")
    return r, t, usage


def _window_mean(usage: pd.DataFrame, col: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Mean per day of ``col`` over [start, end): days without a row count as zero."""
    days = max((end - start).days, 1)
    mask = (usage["date"] >= start) & (usage["date"] < end)
    return usage.loc[mask].groupby("account_id")[col].sum() / days


def _ratio_trend(recent: pd.Series, base: pd.Series) -> pd.Series:
    base = base.replace(0, np.nan)
    return recent / base - 1.0


def account_features(
    accounts: pd.DataFrame,
    renewals: pd.DataFrame,
    tickets: pd.DataFrame,
    usage_daily: pd.DataFrame,
    as_of: pd.Timestamp,
    *,
    account_ids: pd.Series | None = None,
    account_history: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Features for each account as of ``as_of`` (one row per account, index ``account_id``).

    Only information known strictly before ``as_of`` is used (see `as_known_at`); ARR, plan,
    seats, segment and CSM owner come from ``account_history`` as of ``as_of``, or, with no
    history, from ``accounts`` (assumed constant; `models.churn.attributes`). When
    ``account_ids`` is given the result has exactly those accounts, in that order.
    """
    as_of = pd.Timestamp(as_of).normalize()
    r, t, u = as_known_at(as_of, renewals=renewals, tickets=tickets, usage_daily=usage_daily)
    acc = accounts.set_index("account_id")
    ids = pd.Index(account_ids if account_ids is not None else acc.index, name="account_id")
    out = pd.DataFrame(index=ids)
    attrs = attributes_as_of(accounts, account_history, as_of, ids)

    day = pd.Timedelta(days=1)
    # usage ---------------------------------------------------------------------------------
    au_7 = _window_mean(u, "active_users", as_of - 7 * day, as_of)
    au_30 = _window_mean(u, "active_users", as_of - 30 * day, as_of)
    au_prev60 = _window_mean(u, "active_users", as_of - 90 * day, as_of - 30 * day)
    au_90 = _window_mean(u, "active_users", as_of - 90 * day, as_of)
    ev_30 = _window_mean(u, "events", as_of - 30 * day, as_of)
    ev_prev60 = _window_mean(u, "events", as_of - 90 * day, as_of - 30 * day)
    adv_30 = _window_mean(u, "advanced_events", as_of - 30 * day, as_of)
    out["au_7d"] = au_7.reindex(ids).fillna(0.0)
    out["au_90d"] = au_90.reindex(ids).fillna(0.0)
    out["wau_trend"] = _ratio_trend(out["au_7d"], out["au_90d"])
    out["au_30d_trend"] = _ratio_trend(au_30.reindex(ids).fillna(0.0), au_prev60.reindex(ids).fillna(0.0))
    out["events_30d_trend"] = _ratio_trend(ev_30.reindex(ids).fillna(0.0), ev_prev60.reindex(ids).fillna(0.0))
    ev_30_ids = ev_30.reindex(ids).replace(0, np.nan)
    out["advanced_share_30d"] = (adv_30.reindex(ids) / ev_30_ids).astype("float64")
    recent = u[(u["date"] >= as_of - USAGE_WINDOW_DAYS * day) & (u["events"] > 0)]
    last_active = recent.groupby("account_id")["date"].max().reindex(ids)
    out["days_since_active"] = ((as_of - last_active).dt.days.astype("float64")).fillna(
        float(USAGE_WINDOW_DAYS + 1)
    )
    seats = attrs["seats"].astype("float64").replace(0, np.nan)
    out["seat_utilization"] = (au_30.reindex(ids).fillna(0.0) / seats).astype("float64")

    # support -------------------------------------------------------------------------------
    recent_t = t[t["created_at"] >= as_of - SUPPORT_WINDOW_DAYS * day]
    g = recent_t.groupby("account_id")
    out["tickets_90d"] = g.size().reindex(ids).fillna(0).astype("float64")
    out["urgent_tickets_90d"] = (
        recent_t[recent_t["priority"] == "urgent"].groupby("account_id").size().reindex(ids).fillna(0).astype("float64")
    )
    open_t = t[t["solved_at"].isna()]
    open_urgent = open_t[open_t["priority"] == "urgent"]
    out["open_urgent_tickets"] = open_urgent.groupby("account_id").size().reindex(ids).fillna(0).astype("float64")
    oldest = open_urgent.groupby("account_id")["created_at"].min().reindex(ids)
    out["oldest_open_urgent_hours"] = ((as_of - oldest).dt.total_seconds() / 3600.0).fillna(0.0)
    out["open_tickets"] = open_t.groupby("account_id").size().reindex(ids).fillna(0).astype("float64")
    compliance = open_t["category"].astype("string").str.lower().isin(COMPLIANCE_CATEGORIES)
    out["open_compliance_tickets"] = (
        open_t[compliance.fillna(False)].groupby("account_id").size().reindex(ids).fillna(0).astype("float64")
    )
    responded = recent_t[recent_t["first_response_at"].notna()]
    frt = (responded["first_response_at"] - responded["created_at"]).dt.total_seconds() / 3600.0
    out["median_first_response_hours"] = frt.groupby(responded["account_id"]).median().reindex(ids)
    out["escalated_90d"] = (
        recent_t[recent_t["escalated"].astype(bool)].groupby("account_id").size().reindex(ids).fillna(0).astype("float64")
    )
    rated = t[(t["csat"].notna()) & (t["solved_at"] >= as_of - CSAT_WINDOW_DAYS * day)]
    out["csat_avg_180d"] = rated.groupby("account_id")["csat"].mean().reindex(ids)
    out["low_csat_180d"] = (
        rated[rated["csat"] <= 2].groupby("account_id").size().reindex(ids).fillna(0).astype("float64")
    )

    # relationship --------------------------------------------------------------------------
    out["tenure_days"] = ((as_of - acc["created_at"].reindex(ids)).dt.days).astype("float64")
    pending = r[r["closed_at"].isna()]
    next_renewal = pending.groupby("account_id")["renewal_date"].min().reindex(ids)
    out["renewal_date"] = next_renewal
    out["days_to_renewal"] = ((next_renewal - as_of).dt.days).astype("float64")
    out["renewals_done"] = (
        r[r["outcome"] == "renewed"].groupby("account_id").size().reindex(ids).fillna(0).astype("float64")
    )
    for col in ("segment", "industry", "region", "plan"):
        out[col] = (attrs[col] if col in attrs.columns else acc[col].reindex(ids)).astype("string")
    out["csm_owner"] = attrs["csm_owner"].astype("string")  # not a model feature: for routing

    # financial -----------------------------------------------------------------------------
    out["arr"] = attrs["arr"].astype("float64")
    out["seats"] = attrs["seats"].astype("float64")
    out["arr_per_seat"] = out["arr"] / seats

    out["as_of"] = as_of
    return out


def feature_matrix(features: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns, in a fixed order, categoricals as pandas categories."""
    X = features[FEATURE_NAMES].copy()
    for col in CATEGORICAL_FEATURES:
        X[col] = X[col].astype("category")
    return X


#: Feature groups a rescuer can act on. Renewal timing, tenure or segment can drive risk, but
#: "renewal in 12 days" tells nobody what to fix, so the headline reason of a case prefers these.
ACTIONABLE_GROUPS = ("usage", "support")


def headline_reason(drivers: list[dict]) -> str:
    """The case's one-line reason: the strongest risk-raising actionable driver, else the
    strongest driver. ``drivers`` are {feature, phrase, contribution}, strongest first."""
    for d in drivers:
        spec = FEATURE_INDEX.get(d["feature"])
        if spec is not None and spec.group in ACTIONABLE_GROUPS and d["contribution"] > 0:
            return d["phrase"]
    return drivers[0]["phrase"] if drivers else ""

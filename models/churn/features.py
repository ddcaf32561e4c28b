"""Account features as of an observation date, and the words that explain them.

The one rule: a feature at observation date ``d`` uses only what was known strictly before
``d``. `as_known_at` enforces it by cutting every table to what a system of record would have
shown at ``d`` (usage days before ``d``; tickets created before ``d`` with response, solve time
and CSAT hidden when they happened later; renewal outcomes hidden until closed; ARR, plan, seats,
segment and owner from the account history as of ``d``, see `models.churn.attributes`). Every
feature is computed from that cut, and `tests/unit/test_features.py` proves it by scrambling everything
after ``d`` and checking that no feature moves.

Features are grouped as the health score's components read them: usage, support, relationship
and financial. `FEATURES` lists them with the phrase a CSM reads when one drives risk and their
kind (`FEATURE_KINDS`): *fixed* attributes of the account (industry, region, segment, plan, ARR,
seats, price, tenure, renewal timing) or *changeable* behaviour (usage, support). A case's headline
reason (`explain_drivers`, `headline_reason`) is the strongest changeable driver raising risk
whose value reads as a warning sign; fixed attributes appear among the drivers only as context.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.churn.attributes import attributes_as_of
from models.churn.tickets import (
    CSAT_WINDOW_DAYS,
    SUPPORT_WINDOW_DAYS,
    relevant_tickets,
    require_ticket_history,
    support_features,
    ticket_window_start,
)

USAGE_WINDOW_DAYS = 90


#: What a feature is to the person who reads it. A *fixed* feature describes the account (who it
#: is, what it bought, when it renews): nobody on the account can change it, so it explains risk
#: as context but never heads a case's reason. A *changeable* feature is behaviour a CSM can work
#: on (adoption, support experience).
FIXED = "fixed"
CHANGEABLE = "changeable"
FEATURE_KIND_VALUES = (FIXED, CHANGEABLE)

#: A trend closer to zero than this is noise, not a fall ("down 2%" is no warning sign).
TREND_NOISE = 0.05
#: Below these levels a phrase reads as a warning sign; at or above them it reads as good news.
LOW_SEAT_UTILIZATION = 0.5
LOW_CSAT = 4.0
INACTIVE_DAYS = 7
#: A driver that moves the log-odds of churning by less than this (the odds by less than 5%) is
#: noise: it stays in the driver list but never heads a reason.
MIN_HEADLINE_CONTRIBUTION = 0.05


@dataclass(frozen=True)
class Feature:
    """One model feature: how it reads in words and whether a CSM can act on it.

    ``describe(value, *context)`` writes the phrase; ``warns(value, *context)`` says whether that
    value reads as a warning sign (a changeable feature's phrase heads a case only then: "weekly
    active users up 4%" or "no support tickets in the last 90 days" never do). ``context`` names
    other features of the same account that both read (a first-response phrase needs the ticket
    count). ``label`` names a fixed feature in "risk from account profile (industry, ARR)".
    """

    name: str
    group: str  # usage | support | relationship | financial
    kind: str   # FIXED | CHANGEABLE
    describe: Callable[..., str]
    categorical: bool = False
    warns: Callable[..., bool] | None = None
    context: tuple[str, ...] = ()
    label: str = ""


def _changeable(name: str, group: str, describe: Callable[..., str], warns: Callable[..., bool],
                context: tuple[str, ...] = ()) -> Feature:
    return Feature(name, group, CHANGEABLE, describe, warns=warns, context=context)


def _fixed(name: str, group: str, label: str, describe: Callable[..., str], categorical: bool = False) -> Feature:
    return Feature(name, group, FIXED, describe, categorical=categorical, label=label)


def _missing(v: object) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))


def _pct(v: object) -> str:
    return f"{abs(float(v)) * 100:.0f}%"


def _count(v: object, one: str, many: str | None = None) -> str:
    n = float(v)
    return f"{n:.0f} {one if n == 1 else (many or one + 's')}"


def _category(what: str) -> Callable[[object], str]:
    return lambda v: f"{what} unknown" if _missing(v) else f"{what} {v}"


def _positive(v: object, *_: object) -> bool:
    return not _missing(v) and float(v) > 0


def _present(v: object, *_: object) -> bool:
    return not _missing(v)


def _falling(v: object, *_: object) -> bool:
    return not _missing(v) and float(v) <= -TREND_NOISE


def _trend_phrase(what: str, baseline: str, *, missing: str | None = None) -> Callable[[object], str]:
    def phrase(v: object) -> str:
        if _missing(v):
            return missing or f"no {what} history to compare"
        if abs(float(v)) < 0.005:
            return f"{what} flat vs {baseline}"
        direction = "down" if float(v) < 0 else "up"
        return f"{what} {direction} {_pct(v)} vs {baseline}"

    return phrase


def _tickets_phrase(one: str, none: str, window: str = f"in the last {SUPPORT_WINDOW_DAYS} days",
                    many: str | None = None) -> Callable[[object], str]:
    def phrase(v: object) -> str:
        if _missing(v) or float(v) == 0:
            return f"{none} {window}"
        return f"{_count(v, one, many)} {window}"

    return phrase


def _first_response(v: object, tickets: object = None) -> str:
    if not _missing(v):
        return f"median first response {float(v):.1f} h ({SUPPORT_WINDOW_DAYS} days)"
    if _missing(tickets):
        return f"no ticket answered in the last {SUPPORT_WINDOW_DAYS} days"
    if float(tickets) == 0:
        return f"no support tickets in the last {SUPPORT_WINDOW_DAYS} days"
    return f"none of {_count(tickets, 'ticket')} in the last {SUPPORT_WINDOW_DAYS} days has a first response yet"


def _first_response_warns(v: object, tickets: object = None) -> bool:
    """A response time is a warning sign only when there were tickets to respond to."""
    if not _missing(v):
        return True
    return not _missing(tickets) and float(tickets) > 0


def _last_active(v: object) -> str:
    if float(v) > USAGE_WINDOW_DAYS:
        return f"no product activity in the last {USAGE_WINDOW_DAYS} days"
    return f"last product activity {_count(round(float(v)), 'day')} ago"


def _au_7d_warns(v: object, au_90d: object = None) -> bool:
    """Fewer users this week than the 90-day average (or none at all)."""
    if _missing(v):
        return False
    if float(v) == 0:
        return True
    return not _missing(au_90d) and float(v) <= (1 - TREND_NOISE) * float(au_90d)


FEATURES: tuple[Feature, ...] = (
    # usage ---------------------------------------------------------------------------------
    _changeable("au_7d", "usage", lambda v, *_: f"{float(v):.1f} active users per day in the last 7 days",
                _au_7d_warns, context=("au_90d",)),
    _changeable("au_90d", "usage",
                lambda v: (f"no active users in the last {USAGE_WINDOW_DAYS} days" if float(v) == 0
                           else f"{float(v):.1f} active users per day over {USAGE_WINDOW_DAYS} days"),
                _present),
    # wau_trend is missing only when nobody used the product in 90 days: that is a warning sign
    _changeable("wau_trend", "usage",
                _trend_phrase("weekly active users", "90-day average",
                              missing=f"no active users in the last {USAGE_WINDOW_DAYS} days"),
                lambda v: _missing(v) or _falling(v)),
    _changeable("au_30d_trend", "usage", _trend_phrase("active users (30 days)", "the 60 days before"), _falling),
    _changeable("events_30d_trend", "usage", _trend_phrase("product activity (30 days)", "the 60 days before"),
                _falling),
    _changeable("advanced_share_30d", "usage",
                lambda v: "no product activity in the last 30 days" if _missing(v)
                else f"advanced features are {_pct(v)} of activity",
                _present),
    _changeable("days_since_active", "usage", _last_active,
                lambda v: not _missing(v) and float(v) >= INACTIVE_DAYS),
    _changeable("seat_utilization", "usage",
                lambda v: "no licensed seats on record" if _missing(v)
                else f"{_pct(v)} of licensed seats active (30 days)",
                lambda v: not _missing(v) and float(v) < LOW_SEAT_UTILIZATION),
    # support -------------------------------------------------------------------------------
    _changeable("tickets_90d", "support", _tickets_phrase("support ticket", "no support tickets"), _positive),
    _changeable("urgent_tickets_90d", "support", _tickets_phrase("urgent ticket", "no urgent tickets"), _positive),
    _changeable("open_urgent_tickets", "support", _tickets_phrase("urgent ticket", "no urgent ticket", "open"),
                _positive),
    _changeable("oldest_open_urgent_hours", "support",
                lambda v: "no urgent ticket open" if _missing(v) or not v
                else f"oldest urgent ticket open {float(v) / 24:.1f} days",
                _positive),
    _changeable("open_tickets", "support", _tickets_phrase("ticket", "no ticket", "open"), _positive),
    _changeable("open_compliance_tickets", "support",
                _tickets_phrase("compliance/security ticket", "no compliance/security ticket", "open"), _positive),
    _changeable("median_first_response_hours", "support", _first_response, _first_response_warns,
                context=("tickets_90d",)),
    _changeable("escalated_90d", "support",
                _tickets_phrase("escalated ticket", "no escalated tickets", f"in {SUPPORT_WINDOW_DAYS} days"),
                _positive),
    _changeable("csat_avg_180d", "support",
                lambda v: f"no CSAT responses in {CSAT_WINDOW_DAYS} days" if _missing(v)
                else f"average CSAT {float(v):.1f}/5 ({CSAT_WINDOW_DAYS} days)",
                lambda v: not _missing(v) and float(v) < LOW_CSAT),
    _changeable("low_csat_180d", "support",
                _tickets_phrase("poor CSAT rating (<= 2)", "no poor CSAT ratings (<= 2)", f"in {CSAT_WINDOW_DAYS} days",
                                many="poor CSAT ratings (<= 2)"),
                _positive),
    # relationship --------------------------------------------------------------------------
    _fixed("tenure_days", "relationship", "tenure", lambda v: f"customer for {float(v) / 365:.1f} years"),
    _fixed("days_to_renewal", "relationship", "renewal timing",
           lambda v: "no renewal scheduled" if _missing(v) else f"renewal in {_count(round(float(v)), 'day')}"),
    _fixed("renewals_done", "relationship", "renewal history", lambda v: f"{_count(v, 'renewal')} so far"),
    _fixed("segment", "relationship", "segment", _category("segment"), categorical=True),
    _fixed("industry", "relationship", "industry", _category("industry"), categorical=True),
    _fixed("region", "relationship", "region", _category("region"), categorical=True),
    _fixed("plan", "relationship", "plan", _category("plan"), categorical=True),
    # financial -----------------------------------------------------------------------------
    _fixed("arr", "financial", "ARR", lambda v: f"ARR {float(v):,.0f}"),
    _fixed("seats", "financial", "seats", lambda v: _count(v, "seat")),
    _fixed("arr_per_seat", "financial", "price per seat", lambda v: f"price {float(v):,.0f} per seat"),
)

FEATURE_NAMES: list[str] = [f.name for f in FEATURES]
CATEGORICAL_FEATURES: list[str] = [f.name for f in FEATURES if f.categorical]
FEATURE_INDEX: dict[str, Feature] = {f.name: f for f in FEATURES}
#: Every model feature's kind, FIXED or CHANGEABLE (declared once, in `FEATURES`).
FEATURE_KINDS: dict[str, str] = {f.name: f.kind for f in FEATURES}


def _context_values(spec: Feature, row: Mapping[str, object] | None) -> tuple[object, ...]:
    return tuple(None if row is None else row.get(name) for name in spec.context)


def describe_driver(feature: str, value: object, contribution: float,
                    row: Mapping[str, object] | None = None) -> str:
    """A CSM-readable sentence for one driver (used with models.churn.explain.top_drivers).

    ``row`` holds the account's other features, for phrases that depend on them (a first
    response time is only phrased as such when the account had tickets).
    """
    spec = FEATURE_INDEX.get(feature)
    if spec is None:
        return f"{feature} = {value}"
    try:
        text = spec.describe(value, *_context_values(spec, row))
    except (TypeError, ValueError):
        text = f"{feature} = {value}"
    return text


def is_warning_sign(feature: str, value: object, row: Mapping[str, object] | None = None) -> bool:
    """Can this driver head a case's reason? Only a changeable feature whose value reads as a
    warning sign does (fixed attributes and unknown features never do)."""
    spec = FEATURE_INDEX.get(feature)
    if spec is None or spec.kind != CHANGEABLE or spec.warns is None:
        return False
    try:
        return bool(spec.warns(value, *_context_values(spec, row)))
    except (TypeError, ValueError):
        return False


def as_known_at(
    as_of: pd.Timestamp,
    *,
    renewals: pd.DataFrame,
    tickets: pd.DataFrame,
    usage_daily: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """Cut renewals, tickets and usage (None: none given, none returned) to what was known
    strictly before ``as_of``."""
    as_of = pd.Timestamp(as_of)
    usage = None if usage_daily is None else usage_daily[usage_daily["date"] < as_of]

    t = tickets[tickets["created_at"] < as_of].copy()
    for col in ("first_response_at", "solved_at"):
        t[col] = t[col].where(t[col] < as_of)
    t["csat"] = t["csat"].where(t["solved_at"].notna())

    r = renewals.copy()
    known = r["closed_at"] < as_of
    r["closed_at"] = r["closed_at"].where(known)
    r["outcome"] = r["outcome"].where(known, "open")
    return r, t, usage


@dataclass(frozen=True)
class UsageSum:
    """One per-account sum the usage features read: ``column`` summed over the days
    ``[as_of - first_day, as_of - last_day)`` (days counted back from the observation date)."""

    name: str
    column: str
    first_day: int
    last_day: int = 0

    @property
    def days(self) -> int:
        return max(self.first_day - self.last_day, 1)


#: The usage the features read, as per-account aggregates over the `USAGE_WINDOW_DAYS` before the
#: observation date: these sums and `LAST_ACTIVE`, the newest day with events. The one statement
#: of them: `usage_aggregates` computes them from daily rows (pandas), and the warehouse computes
#: the same in SQL from this list (`connectors.warehouse.Warehouse.read_usage_aggregates`), so
#: the daily path pulls one row per account instead of every account's 90 days.
USAGE_SUMS: tuple[UsageSum, ...] = (
    UsageSum("au_7d_sum", "active_users", 7),
    UsageSum("au_30d_sum", "active_users", 30),
    UsageSum("au_prev60d_sum", "active_users", 90, 30),
    UsageSum("au_90d_sum", "active_users", 90),
    UsageSum("events_30d_sum", "events", 30),
    UsageSum("events_prev60d_sum", "events", 90, 30),
    UsageSum("advanced_30d_sum", "advanced_events", 30),
)
LAST_ACTIVE = "last_active_date"
USAGE_AGGREGATES: tuple[str, ...] = (*(u.name for u in USAGE_SUMS), LAST_ACTIVE)


def usage_aggregates(usage_daily: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """`USAGE_SUMS` and `LAST_ACTIVE` per account (index ``account_id``) from daily usage rows,
    using only days in the `USAGE_WINDOW_DAYS` strictly before ``as_of``. An account with rows
    in the window has every sum (0 where no day of a window has a value); one without rows is
    absent (the features read it as no usage)."""
    as_of = pd.Timestamp(as_of).normalize()
    day = pd.Timedelta(days=1)
    u = usage_daily[(usage_daily["date"] < as_of) & (usage_daily["date"] >= as_of - USAGE_WINDOW_DAYS * day)]
    out = pd.DataFrame(index=pd.Index(u["account_id"].unique(), name="account_id"))
    for spec in USAGE_SUMS:
        mask = (u["date"] >= as_of - spec.first_day * day) & (u["date"] < as_of - spec.last_day * day)
        out[spec.name] = u.loc[mask].groupby("account_id")[spec.column].sum().reindex(out.index).fillna(0.0).astype("float64")
    active = u[u["events"] > 0]
    out[LAST_ACTIVE] = active.groupby("account_id")["date"].max().reindex(out.index)
    return out


def _window_mean(aggregates: pd.DataFrame, name: str, ids: pd.Index) -> pd.Series:
    """Mean per day of one `USAGE_SUMS` window, per account of ``ids``: days without a row
    count as zero, accounts without usage read 0."""
    spec = next(u for u in USAGE_SUMS if u.name == name)
    return (aggregates[name].reindex(ids).fillna(0.0) / spec.days).astype("float64")


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
    usage: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Features for each account as of ``as_of`` (one row per account, index ``account_id``).

    The usage features read ``usage``, the per-account aggregates of `usage_aggregates` when a
    caller computed them elsewhere (the warehouse does, in SQL); without it they are computed
    from ``usage_daily`` (which is then ignored when ``usage`` is given, and may be None).

    ``tickets`` may be cut to a window (`relevant_tickets`) that covers ``as_of``'s (else
    ValueError, `require_ticket_history`). Only information known strictly before ``as_of`` is
    used (see `as_known_at`); ARR, plan,
    seats, segment and CSM owner come from ``account_history`` as of ``as_of``, or, with no
    history, from ``accounts`` (assumed constant; `models.churn.attributes`). When
    ``account_ids`` is given the result has exactly those accounts, in that order.
    """
    as_of = pd.Timestamp(as_of).normalize()
    require_ticket_history(tickets, as_of)
    if usage is None:
        usage = usage_aggregates(usage_daily, as_of)
    else:
        missing = [c for c in USAGE_AGGREGATES if c not in usage.columns]
        if missing:
            raise ValueError(f"usage aggregates lack {', '.join(missing)} (expected models.churn.features.USAGE_AGGREGATES)")
    # the tickets this date reads (a third of a long history), then as they were known at it
    r, t, _ = as_known_at(as_of, renewals=renewals, tickets=relevant_tickets(tickets, ticket_window_start(as_of)))
    acc = accounts.set_index("account_id")
    ids = pd.Index(account_ids if account_ids is not None else acc.index, name="account_id")
    out = pd.DataFrame(index=ids)
    attrs = attributes_as_of(accounts, account_history, as_of, ids)

    # usage ---------------------------------------------------------------------------------
    au_30 = _window_mean(usage, "au_30d_sum", ids)
    out["au_7d"] = _window_mean(usage, "au_7d_sum", ids)
    out["au_90d"] = _window_mean(usage, "au_90d_sum", ids)
    out["wau_trend"] = _ratio_trend(out["au_7d"], out["au_90d"])
    out["au_30d_trend"] = _ratio_trend(au_30, _window_mean(usage, "au_prev60d_sum", ids))
    ev_30 = _window_mean(usage, "events_30d_sum", ids)
    out["events_30d_trend"] = _ratio_trend(ev_30, _window_mean(usage, "events_prev60d_sum", ids))
    # no share where the 30 days hold no events (an account without usage among them)
    out["advanced_share_30d"] = (_window_mean(usage, "advanced_30d_sum", ids) / ev_30.replace(0, np.nan)).astype("float64")
    last_active = pd.to_datetime(usage[LAST_ACTIVE]).reindex(ids)
    out["days_since_active"] = ((as_of - last_active).dt.days.astype("float64")).fillna(
        float(USAGE_WINDOW_DAYS + 1)
    )
    seats = attrs["seats"].astype("float64").replace(0, np.nan)
    out["seat_utilization"] = (au_30 / seats).astype("float64")

    # support -------------------------------------------------------------------------------
    for name, values in support_features(t, as_of, ids).items():
        out[name] = values

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


def _entry(feature: str, value: object, contribution: float, phrase: str,
           row: Mapping[str, object] | None) -> dict:
    return {"feature": feature, "phrase": phrase, "contribution": round(float(contribution), 4),
            "kind": FEATURE_KINDS.get(feature, FIXED), "warning": is_warning_sign(feature, value, row)}


def _kind(driver: Mapping[str, object]) -> str:
    return str(driver.get("kind") or FEATURE_KINDS.get(str(driver["feature"]), FIXED))


def profile_reason(drivers: list[dict]) -> str:
    """The headline of an account without a changeable warning sign: what its risk comes from."""
    labels: list[str] = []
    for d in drivers:
        spec = FEATURE_INDEX.get(d["feature"])
        if d["contribution"] > 0 and _kind(d) == FIXED and spec is not None and spec.label not in labels:
            labels.append(spec.label)
    if not labels:
        return "no changeable warning sign among the risk drivers"
    return f"risk from account profile ({', '.join(labels[:3])}); no changeable warning sign"


def headline_reason(drivers: list[dict]) -> str:
    """The case's one-line reason: the phrase of the strongest driver that raises risk (by at least
    `MIN_HEADLINE_CONTRIBUTION`) and is a changeable warning sign (``warning``), else a plain
    statement that there is none
    (`profile_reason`). ``drivers`` are {feature, phrase, contribution, kind, warning},
    strongest first, as `explain_drivers` writes them (without ``kind``, the feature's own; without
    ``warning``, not a warning sign). A fixed attribute never heads it."""
    for d in drivers:
        if d["contribution"] >= MIN_HEADLINE_CONTRIBUTION and _kind(d) == CHANGEABLE and d.get("warning") is True:
            return d["phrase"]
    return profile_reason(drivers)


def explain_drivers(contribs: pd.DataFrame, X: pd.DataFrame, *, k: int = 5) -> tuple[list[list[dict]], list[str]]:
    """Per row of ``X``: the drivers a CSM reads and the case's headline reason.

    ``contribs`` are the rows' log-odds contributions (`ChurnModel.contributions`). The drivers
    are the ``k`` strongest (risk-raising first, `models.churn.explain.top_drivers`) as
    {feature, phrase, contribution, kind, warning}: fixed attributes stay in the list, marked
    ``kind: fixed``, as context. The headline (`headline_reason`) is the strongest changeable
    driver raising risk whose value is a warning sign, looked for among *all* changeable
    features; when it is not among the ``k`` it is appended to the list, so the list always
    shows it.
    """
    from models.churn.explain import top_drivers

    records = X.to_dict("records")
    top = top_drivers(contribs, X, k=k, describe=describe_driver, context=records)
    features = [c for c in contribs.columns if c != "bias"]
    changeable = [f for f in features if FEATURE_KINDS.get(f) == CHANGEABLE]
    values = contribs[changeable].to_numpy(dtype=float)
    order = np.argsort(-values, axis=1, kind="stable")
    rows: list[list[dict]] = []
    headlines: list[str] = []
    for i, drivers in enumerate(top):
        row = records[i]
        entries = [_entry(d.feature, d.value, d.contribution, d.phrase, row) for d in drivers]
        for j in order[i]:
            c = values[i, j]
            if not round(c, 4) >= MIN_HEADLINE_CONTRIBUTION:
                break
            name = changeable[j]
            if is_warning_sign(name, row.get(name), row):
                if all(e["feature"] != name for e in entries):
                    value = row.get(name)
                    entries.append(_entry(name, value, c, describe_driver(name, value, c, row), row))
                break
        rows.append(entries)
        headlines.append(headline_reason(entries))
    return rows, headlines

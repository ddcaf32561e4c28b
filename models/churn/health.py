"""The composite, explainable 0-100 health score.

Four components, each 0-100 where 100 is healthy, combined by fixed weights that a CS leader can
read and argue with:

| component    | weight | reads                                                        |
|--------------|--------|--------------------------------------------------------------|
| usage        | 0.30   | active-user trend, seat utilization, days since last activity |
| support      | 0.20   | open urgent tickets and their age, poor CSAT, escalations     |
| relationship | 0.15   | renewal proximity, tenure, renewals completed                 |
| model_risk   | 0.35   | 100 x (1 - churn probability / RISK_AT_ZERO_HEALTH), clipped  |

The first three components alone are the **rules-only health score**, the baseline that the
churn model must beat (`rules_risk`). Bands: healthy >= 70, watch >= 50, at_risk >= 30, else
critical. Scores are rounded to one decimal so they are stable across platforms.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WEIGHTS = {"usage": 0.30, "support": 0.20, "relationship": 0.15, "model_risk": 0.35}
RULE_WEIGHTS = {k: v for k, v in WEIGHTS.items() if k != "model_risk"}
BANDS = ((70.0, "healthy"), (50.0, "watch"), (30.0, "at_risk"), (-np.inf, "critical"))
#: A calibrated probability of churning within the horizon (90 days) at which the model-risk
#: component reaches 0. Quarterly churn base rates are a few percent, so a 40% probability is
#: already an account in serious trouble; a scale of 1.0 would leave almost every account
#: "healthy" on this component.
RISK_AT_ZERO_HEALTH = 0.4


def _clip01(x: pd.Series | np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(x, dtype="float64"), 0.0, 1.0)


def usage_component(f: pd.DataFrame) -> np.ndarray:
    trend = np.nan_to_num(f["wau_trend"].to_numpy(dtype="float64"), nan=-1.0)
    trend_score = _clip01((trend + 0.6) / 0.8)  # -60% or worse -> 0, +20% or better -> 1
    util = np.nan_to_num(f["seat_utilization"].to_numpy(dtype="float64"), nan=0.0)
    util_score = _clip01(util / 0.6)  # 60% of seats active daily is excellent
    recency = _clip01(1.0 - f["days_since_active"].to_numpy(dtype="float64") / 30.0)
    return 100.0 * (0.45 * trend_score + 0.35 * util_score + 0.20 * recency)


def support_component(f: pd.DataFrame) -> np.ndarray:
    urgent = f["open_urgent_tickets"].to_numpy(dtype="float64")
    age_days = f["oldest_open_urgent_hours"].to_numpy(dtype="float64") / 24.0
    low_csat = f["low_csat_180d"].to_numpy(dtype="float64")
    escal = f["escalated_90d"].to_numpy(dtype="float64")
    csat = f["csat_avg_180d"].to_numpy(dtype="float64")
    penalty = (
        0.25 * np.minimum(urgent, 3)
        + 0.08 * np.minimum(age_days, 5)
        + 0.12 * np.minimum(low_csat, 3)
        + 0.05 * np.minimum(escal, 4)
        + np.where(np.isnan(csat), 0.0, 0.10 * np.clip(3.5 - csat, 0, 2.5))
    )
    return 100.0 * _clip01(1.0 - penalty)


def relationship_component(f: pd.DataFrame) -> np.ndarray:
    days = f["days_to_renewal"].to_numpy(dtype="float64")
    proximity = np.where(np.isnan(days), 1.0, _clip01(days / 120.0))
    tenure = _clip01(f["tenure_days"].to_numpy(dtype="float64") / 730.0)
    renewed = _clip01(f["renewals_done"].to_numpy(dtype="float64") / 2.0)
    return 100.0 * (0.5 * proximity + 0.3 * tenure + 0.2 * renewed)


def band(score: np.ndarray | pd.Series) -> np.ndarray:
    s = np.asarray(score, dtype="float64")
    conditions = [s >= lo for lo, _ in BANDS]
    return np.select(conditions, [name for _, name in BANDS], default="critical")


def rules_components(features: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "usage": usage_component(features),
            "support": support_component(features),
            "relationship": relationship_component(features),
        },
        index=features.index,
    )


def rules_risk(features: pd.DataFrame) -> np.ndarray:
    """Risk (0-1, higher = riskier) from the rules-only health score: the baseline to beat."""
    comps = rules_components(features)
    total = sum(RULE_WEIGHTS.values())
    score = sum(comps[k].to_numpy() * w for k, w in RULE_WEIGHTS.items()) / total
    return 1.0 - score / 100.0


def health_scores(features: pd.DataFrame, churn_risk: pd.Series | np.ndarray) -> pd.DataFrame:
    """Components, composite score and band for every account in ``features``."""
    comps = rules_components(features)
    comps["model_risk"] = 100.0 * (1.0 - _clip01(np.asarray(churn_risk, dtype="float64") / RISK_AT_ZERO_HEALTH))
    score = sum(comps[k] * w for k, w in WEIGHTS.items())
    out = comps.round(1)
    out["health_score"] = score.round(1)
    out["health_band"] = band(out["health_score"])
    return out


def intervention_status(account_ids: pd.Index, active_cases: pd.DataFrame, plays: pd.DataFrame) -> pd.Series:
    """Per account, the rescue intervention in progress in words (None when there is none).

    A health score next to an open rescue case must say so: the score is about to be acted on,
    and a later improvement may be the rescue working rather than the model being wrong.
    """
    out = pd.Series([None] * len(account_ids), index=account_ids, dtype="object")
    if active_cases is None or active_cases.empty:
        return out
    n_plays = plays.groupby("case_id").size() if plays is not None and len(plays) else pd.Series(dtype="int64")
    for case in active_cases.itertuples(index=False):
        if case.account_id in out.index:
            count = int(n_plays.get(case.case_id, 0))
            owner = f", {case.assignee}" if isinstance(case.assignee, str) and case.assignee else ""
            plays_text = f", {count} play{'s' if count != 1 else ''} logged" if count else ""
            out[case.account_id] = f"rescue case {case.case_id} {case.status} ({case.priority}, {case.team}{owner}{plays_text})"
    return out

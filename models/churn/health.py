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

**Fitting the company** (`HealthConfig`, `fit_health_config`): the weights and bands above are
defaults, written for the demo world. Each retrain checks them on the company's own outcomes in
the training set: for each component, its univariate ROC-AUC against churn (the component read
as a risk, 100 minus its score). A component whose AUC is below 0.5 - `BACKWARD_MARGIN` predicts
*backwards* on this company (its "healthy" accounts churn more): it gets a warning and weight
zero, and the other rules components share its weight in proportion to theirs, so the score
keeps its 0-100 scale. With `weights="fitted"` and at least `FIT_MIN_CHURN_ROWS` churn labels,
the rules weights are instead fitted: a logistic regression on the three components, coefficients
constrained to be >= 0 (a backwards component gets 0) and L2-regularized, rescaled to the rules'
share of the score (the model-risk weight does not change). With fewer labels the checked
weights are kept, and the configuration says so. The bands' lower edges can be quantiles of the
company's score distribution instead of fixed numbers (`band_quantiles`, e.g. (0.5, 0.2, 0.05):
the lowest 5% of scores critical, the next 15% at risk, the next 30% watch), fixed at training
time from the validation window's scores so they do not move from one day to the next. The
configuration travels with the model (its metadata, `HealthConfig.to_dict`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

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
COMPONENTS = ("usage", "support", "relationship")
#: A component predicts backwards when its ROC-AUC (as a risk) is below 0.5 minus this margin.
BACKWARD_MARGIN = 0.02
#: Churn labels in the training set needed before rules weights are fitted rather than checked.
FIT_MIN_CHURN_ROWS = 200
#: L2 penalty of the fitted weights (sklearn's C: smaller is stronger).
FIT_C = 1.0


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


def band(score: np.ndarray | pd.Series, thresholds: Sequence[float] | None = None) -> np.ndarray:
    """Band of each score; ``thresholds`` are the lower edges of healthy, watch and at_risk."""
    s = np.asarray(score, dtype="float64")
    edges = [lo for lo, _ in BANDS[:-1]] if thresholds is None else list(thresholds)
    conditions = [s >= lo for lo in edges]
    return np.select(conditions, [name for _, name in BANDS[:-1]], default="critical")


def rules_components(features: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "usage": usage_component(features),
            "support": support_component(features),
            "relationship": relationship_component(features),
        },
        index=features.index,
    )


def rules_risk(features: pd.DataFrame, config: HealthConfig | None = None) -> np.ndarray:
    """Risk (0-1, higher = riskier) from the rules-only health score: the baseline to beat.

    With ``config``, its rules weights (checked or fitted on the company); else the defaults."""
    weights = (config or DEFAULT_CONFIG).rule_weights
    comps = rules_components(features)
    total = sum(weights.values())
    if total <= 0:  # every component predicts backwards: the rules say nothing
        return np.full(len(features), 0.5)
    score = sum(comps[k].to_numpy() * w for k, w in weights.items()) / total
    return 1.0 - score / 100.0


def rules_terms(features: pd.DataFrame, config: HealthConfig | None = None) -> pd.DataFrame:
    """`rules_risk` split exactly into one additive term per feature (the columns sum to it).

    Each term is the feature's share of the points its component loses, weighted like the
    component. The support component's clip at 0 is shared out in proportion to its penalties."""
    weights = (config or DEFAULT_CONFIG).rule_weights
    total = sum(weights.values())
    f = features
    trend = np.nan_to_num(f["wau_trend"].to_numpy(dtype="float64"), nan=-1.0)
    util = np.nan_to_num(f["seat_utilization"].to_numpy(dtype="float64"), nan=0.0)
    urgent = f["open_urgent_tickets"].to_numpy(dtype="float64")
    age_days = f["oldest_open_urgent_hours"].to_numpy(dtype="float64") / 24.0
    csat = f["csat_avg_180d"].to_numpy(dtype="float64")
    penalties = {
        "open_urgent_tickets": 0.25 * np.minimum(urgent, 3),
        "oldest_open_urgent_hours": 0.08 * np.minimum(age_days, 5),
        "low_csat_180d": 0.12 * np.minimum(f["low_csat_180d"].to_numpy(dtype="float64"), 3),
        "escalated_90d": 0.05 * np.minimum(f["escalated_90d"].to_numpy(dtype="float64"), 4),
        "csat_avg_180d": np.where(np.isnan(csat), 0.0, 0.10 * np.clip(3.5 - csat, 0, 2.5)),
    }
    penalty = sum(penalties.values())
    share = np.divide(np.minimum(penalty, 1.0), penalty, out=np.zeros_like(penalty), where=penalty > 0)
    days = f["days_to_renewal"].to_numpy(dtype="float64")
    lost = {  # points (0-100) each feature costs its component
        "usage": {
            "wau_trend": 45.0 * (1.0 - _clip01((trend + 0.6) / 0.8)),
            "seat_utilization": 35.0 * (1.0 - _clip01(util / 0.6)),
            "days_since_active": 20.0 * (1.0 - _clip01(1.0 - f["days_since_active"].to_numpy(dtype="float64") / 30.0)),
        },
        "support": {name: 100.0 * p * share for name, p in penalties.items()},
        "relationship": {
            "days_to_renewal": 50.0 * (1.0 - np.where(np.isnan(days), 1.0, _clip01(days / 120.0))),
            "tenure_days": 30.0 * (1.0 - _clip01(f["tenure_days"].to_numpy(dtype="float64") / 730.0)),
            "renewals_done": 20.0 * (1.0 - _clip01(f["renewals_done"].to_numpy(dtype="float64") / 2.0)),
        },
    }
    out = pd.DataFrame(index=features.index)
    for component, terms in lost.items():
        w = weights.get(component, 0.0) / total if total > 0 else 0.0
        for name, points in terms.items():
            out[name] = w * points / 100.0
    return out


def health_scores(features: pd.DataFrame, churn_risk: pd.Series | np.ndarray,
                  config: HealthConfig | None = None) -> pd.DataFrame:
    """Components, composite score and band for every account in ``features`` (``config``: the
    company's weights and band edges, default the fixed ones)."""
    config = config or DEFAULT_CONFIG
    comps = rules_components(features)
    comps["model_risk"] = 100.0 * (1.0 - _clip01(np.asarray(churn_risk, dtype="float64") / RISK_AT_ZERO_HEALTH))
    score = sum(comps[k] * w for k, w in config.weights.items())
    out = comps.round(1)
    out["health_score"] = score.round(1)
    out["health_band"] = band(out["health_score"], config.thresholds)
    return out


# ----------------------------------------------------------------------------- fitting the company


@dataclass(frozen=True)
class HealthConfig:
    """The health score's weights and band edges for one company, and how they were chosen.

    ``source``: "fixed" (the defaults), "checked" (the defaults with backwards components at
    zero) or "fitted". ``checks`` holds, per rules component, {"roc_auc", "status"} on the
    training set; ``warnings`` the lines the model report shows."""

    weights: Mapping[str, float] = field(default_factory=lambda: dict(WEIGHTS))
    thresholds: tuple[float, float, float] = tuple(lo for lo, _ in BANDS[:-1])  # type: ignore[assignment]
    source: str = "fixed"
    band_quantiles: tuple[float, float, float] | None = None
    checks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def rule_weights(self) -> dict[str, float]:
        return {k: float(self.weights.get(k, 0.0)) for k in COMPONENTS}

    def to_dict(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "thresholds": list(self.thresholds), "source": self.source,
                "band_quantiles": list(self.band_quantiles) if self.band_quantiles else None,
                "checks": {k: dict(v) for k, v in self.checks.items()}, "warnings": list(self.warnings)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> HealthConfig:
        """The configuration a model carries; the defaults for a model that carries none."""
        if not data:
            return DEFAULT_CONFIG
        quantiles = data.get("band_quantiles")
        return cls(weights={k: float(v) for k, v in data["weights"].items()},
                   thresholds=tuple(float(t) for t in data["thresholds"]),  # type: ignore[arg-type]
                   source=str(data.get("source", "fixed")),
                   band_quantiles=tuple(float(q) for q in quantiles) if quantiles else None,  # type: ignore[arg-type]
                   checks={k: dict(v) for k, v in data.get("checks", {}).items()},
                   warnings=tuple(data.get("warnings", ())))


DEFAULT_CONFIG = HealthConfig()


def component_aucs(features: pd.DataFrame, labels: np.ndarray | pd.Series) -> dict[str, float]:
    """Univariate ROC-AUC of each rules component against churn, read as a risk (100 - score):
    above 0.5 the component points the right way, below 0.5 it predicts backwards."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels, dtype=int)
    comps = rules_components(features)
    if y.min() == y.max():
        return {c: float("nan") for c in COMPONENTS}
    return {c: float(roc_auc_score(y, 100.0 - comps[c].to_numpy())) for c in COMPONENTS}


def _fit_rule_weights(features: pd.DataFrame, y: np.ndarray, share: float) -> dict[str, float] | None:
    """Non-negative, L2-regularized logistic regression of churn on the components (as risks in
    [0, 1]); its coefficients rescaled to ``share``. None when every coefficient is 0."""
    from scipy.optimize import minimize
    from scipy.special import expit

    X = 1.0 - rules_components(features)[list(COMPONENTS)].to_numpy() / 100.0
    n, k = X.shape

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        coef, intercept = theta[:k], theta[k]
        z = X @ coef + intercept
        p = expit(z)
        nll = np.sum(np.logaddexp(0.0, z) - y * z)
        grad_z = p - y
        value = nll + 0.5 * coef @ coef / FIT_C
        grad = np.concatenate([X.T @ grad_z + coef / FIT_C, [grad_z.sum()]])
        return float(value), grad

    start = np.zeros(k + 1)
    fit = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * k + [(None, None)])
    coef = np.maximum(fit.x[:k], 0.0)
    if coef.sum() <= 1e-9:
        return None
    return {c: float(share * v / coef.sum()) for c, v in zip(COMPONENTS, coef, strict=True)}


def fit_health_config(
    features: pd.DataFrame,
    labels: np.ndarray | pd.Series,
    *,
    weights: str = "checked",
    base: HealthConfig | None = None,
    margin: float = BACKWARD_MARGIN,
    min_fit_churn_rows: int = FIT_MIN_CHURN_ROWS,
) -> HealthConfig:
    """Check (and with ``weights="fitted"`` fit) the rules weights on a company's training rows.

    See the module docstring for the rule. ``base`` gives the starting weights and band edges
    (default: the fixed ones). Band edges are not touched here (`with_quantile_bands`).
    """
    if weights not in ("checked", "fitted"):
        raise ValueError(f"weights must be 'checked' or 'fitted', got {weights!r}")
    base = base or DEFAULT_CONFIG
    y = np.asarray(labels, dtype=int)
    aucs = component_aucs(features, y)
    share = sum(base.rule_weights.values())
    checks: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    backwards = set()
    for c in COMPONENTS:
        auc = aucs[c]
        if np.isnan(auc):
            status = "not checked (one class)"
        elif auc < 0.5 - margin:
            status = "backwards"
            backwards.add(c)
            warnings.append(f"health component {c} predicts backwards on this company (ROC-AUC {auc:.3f} "
                            f"< {0.5 - margin:.2f}): its weight is set to 0")
        else:
            status = "ok"
        checks[c] = {"roc_auc": auc, "status": status}
    new = dict(base.weights)
    source = "checked"
    fitted = None
    if weights == "fitted":
        if int(y.sum()) >= min_fit_churn_rows:
            fitted = _fit_rule_weights(features, y, share)
            if fitted is None:
                warnings.append("no health component predicts churn on this company: the rules weights stay checked")
        else:
            warnings.append(f"health weights not fitted: {int(y.sum())} churn labels in the training set, "
                            f"at least {min_fit_churn_rows} needed; checked weights kept")
    if fitted is not None:
        new.update(fitted)
        source = "fitted"
    else:
        kept = {c: w for c, w in base.rule_weights.items() if c not in backwards}
        kept_total = sum(kept.values())
        for c in COMPONENTS:
            new[c] = share * kept.get(c, 0.0) / kept_total if kept_total > 0 else 0.0
    for c, check in checks.items():
        check["weight"] = float(new[c])
    return replace(base, weights=new, source=source, checks=checks, warnings=tuple(warnings))


def with_quantile_bands(config: HealthConfig, scores: np.ndarray | pd.Series,
                        quantiles: Sequence[float]) -> HealthConfig:
    """``config`` with band edges at these quantiles of ``scores`` (healthy, watch, at_risk:
    decreasing, e.g. (0.5, 0.2, 0.05))."""
    q = [float(v) for v in quantiles]
    if len(q) != 3 or not all(0.0 < v < 1.0 for v in q) or not q[0] > q[1] > q[2]:
        raise ValueError(f"band quantiles must be three decreasing numbers in (0, 1), got {quantiles!r}")
    values = np.asarray(scores, dtype="float64")
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise ValueError("band quantiles need at least one score")
    edges = tuple(round(float(np.quantile(values, v)), 1) for v in q)
    return replace(config, thresholds=edges, band_quantiles=tuple(q))  # type: ignore[arg-type]


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

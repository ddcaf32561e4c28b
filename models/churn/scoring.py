"""From features, churn scores and health scores to the candidate frame the policy reads.

The candidate frame has one row per live account with every column a policy condition may use
(see `models.contracts.CANDIDATE_COLUMNS`). Nothing here decides who is routed: that is the
policy's job (`models.routing.route`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.contracts import CANDIDATE_COLUMNS, book_percentiles


def vip_flags(accounts: pd.DataFrame, *, quantile: float = 0.9) -> pd.Series:
    """Strategic accounts: enterprise with ARR in the top decile of enterprise ARR."""
    ent = accounts["segment"] == "enterprise"
    if not ent.any():
        return pd.Series(False, index=accounts.index)
    cutoff = accounts.loc[ent, "arr"].quantile(quantile)
    return (ent & (accounts["arr"] >= cutoff)).astype(bool)


def build_candidates(
    features: pd.DataFrame,
    accounts: pd.DataFrame,
    scores: pd.DataFrame,
    health: pd.DataFrame,
    *,
    snapshot_date: pd.Timestamp,
) -> pd.DataFrame:
    """The policy's input, one row per scored account, sorted by expected ARR at risk.

    ``features`` is indexed by account_id (models.churn.features.account_features); ``scores`` has
    account_id, churn_risk, churn_risk_delta, drivers, top_reason, model_version; ``health`` is
    indexed like ``features`` (models.churn.health.health_scores).
    """
    acc = accounts.set_index("account_id")
    ids = features.index
    # ARR, segment, plan and owner as of the snapshot, as the features read them (from the account
    # history when there is one); where they are missing there, the accounts table's current value,
    # since a policy needs one to route on.
    for col in ("segment", "plan", "csm_owner", "arr"):
        if col in features.columns:
            known = features[col].reindex(acc.index)
            acc[col] = known.where(known.notna(), acc[col])
    sc = scores.set_index("account_id").reindex(ids)
    out = pd.DataFrame(index=ids)
    for col in ("name", "segment", "industry", "region", "plan", "csm_owner"):
        out[col] = acc[col].reindex(ids)
    out["arr"] = acc["arr"].reindex(ids).astype("float64")
    out["vip"] = vip_flags(acc.reset_index()).set_axis(acc.index).reindex(ids).fillna(False).astype(bool)
    out["churn_risk"] = sc["churn_risk"].astype("float64")
    out["churn_risk_delta"] = sc["churn_risk_delta"].astype("float64").fillna(0.0)
    out["health_score"] = health["health_score"].reindex(ids).astype("float64")
    out["health_band"] = health["health_band"].reindex(ids)
    out["expected_arr_at_risk"] = (out["churn_risk"] * out["arr"]).round(2)
    out["renewal_date"] = features["renewal_date"]
    out["days_to_renewal"] = features["days_to_renewal"].astype("float64")
    out["open_urgent_tickets"] = features["open_urgent_tickets"].fillna(0).astype("int64")
    out["oldest_open_urgent_hours"] = features["oldest_open_urgent_hours"].astype("float64")
    out["open_compliance_tickets"] = features["open_compliance_tickets"].fillna(0).astype("int64")
    out["wau_trend"] = features["wau_trend"].astype("float64")
    out["top_reason"] = sc["top_reason"]
    out["drivers"] = sc["drivers"]
    out["movers"] = sc["movers"] if "movers" in sc.columns else [[] for _ in range(len(out))]
    out["model_version"] = sc["model_version"]
    out["snapshot_date"] = pd.Timestamp(snapshot_date)
    out = book_percentiles(out.reset_index().rename(columns={"index": "account_id"}))
    missing = [c for c in CANDIDATE_COLUMNS if c not in out.columns]
    if missing:  # pragma: no cover - guarded by the contract test
        raise AssertionError(f"candidate frame misses {missing}")
    order = np.argsort(-out["expected_arr_at_risk"].fillna(0).to_numpy(), kind="stable")
    return out.iloc[order].reset_index(drop=True)[list(CANDIDATE_COLUMNS)]


def score_history_frame(health: pd.DataFrame, scores: pd.DataFrame, *, snapshot_date: pd.Timestamp) -> pd.DataFrame:
    """The rows kept per snapshot for trends and policy simulation (one per account)."""
    sc = scores.set_index("account_id").reindex(health.index)
    return pd.DataFrame(
        {
            "snapshot_date": pd.Timestamp(snapshot_date).date(),
            "account_id": health.index.astype(str),
            "churn_risk": sc["churn_risk"].astype("float64").to_numpy(),
            "health_score": health["health_score"].to_numpy(),
            "health_band": health["health_band"].astype(str).to_numpy(),
            "model_version": sc["model_version"].astype(str).to_numpy(),
        }
    )


#: Accounts explained driver by driver: every account at or above this churn risk, and at least
#: the riskiest EXPLAIN_TOP_SHARE of accounts. Explanations (`pred_contrib`) are the costliest step
#: of scoring; an account with a 0.3% chance of churning needs no list of reasons, while every
#: account a sane policy can route (its thresholds sit far above this floor) gets one.
EXPLAIN_MIN_RISK = 0.02
EXPLAIN_TOP_SHARE = 0.2


def explain_mask(risk: np.ndarray) -> np.ndarray:
    """Which accounts get per-account drivers (see `EXPLAIN_MIN_RISK`, `EXPLAIN_TOP_SHARE`)."""
    risk = np.asarray(risk, dtype="float64")
    if risk.size == 0:
        return np.zeros(0, dtype=bool)
    mask = risk >= EXPLAIN_MIN_RISK
    top = int(np.ceil(EXPLAIN_TOP_SHARE * risk.size))
    mask[np.argsort(-risk, kind="stable")[:top]] = True
    return mask


def score_accounts(model, features: pd.DataFrame, *, explain, k: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Churn risk for every account in ``features`` and, for the accounts `explain_mask` picks,
    their top ``k`` signed drivers in words and the headline reason.

    ``model`` is a `models.churn.model.ChurnModel`; ``explain(contribs, X, k=k)`` returns, per
    explained row, its drivers (dicts) and its headline reason
    (`models.churn.features.explain_drivers`). Returns the scores (account_id, churn_risk,
    explained, drivers, top_reason) and the contributions of the explained accounts (indexed by
    account_id), which the caller keeps to tell what moved between snapshots.
    """
    from models.churn.features import feature_matrix

    X = feature_matrix(features)
    risk = model.predict_proba(X)
    explained = explain_mask(risk)
    contribs = model.contributions(X[explained])
    drivers, headlines = explain(contribs, X[explained], k=k)
    rows: list[list[dict]] = [[] for _ in range(len(X))]
    reasons: list[str] = [f"low churn risk ({p:.1%} within the horizon)" for p in risk]
    for pos, row, reason in zip(np.flatnonzero(explained), drivers, headlines, strict=True):
        rows[pos] = row
        reasons[pos] = reason
    out = pd.DataFrame({"account_id": features.index.astype(str), "churn_risk": risk, "explained": explained})
    out["drivers"] = rows
    out["top_reason"] = reasons
    contribs.index = out.loc[explained, "account_id"].to_numpy()
    return out, contribs

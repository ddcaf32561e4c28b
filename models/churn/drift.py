"""Population stability index (PSI): has a feature, or the score, moved since training?

PSI = sum over bins of (actual% - expected%) * ln(actual% / expected%). Numeric values are cut
at quantiles of the *expected* (training) distribution; categorical values use one bin per
level; missing values get a bin of their own in both cases. Shares are smoothed with a small
epsilon so empty bins do not produce infinities. Usual reading: < 0.1 stable, 0.1-0.25 worth
watching, >= 0.25 a real shift.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from models.churn.features import FEATURE_NAMES, feature_matrix

WATCH = 0.1
DRIFT = 0.25
EPS = 1e-4


def _is_categorical(values: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)


def _shares(counts: np.ndarray) -> np.ndarray:
    shares = counts / max(counts.sum(), 1)
    shares = np.maximum(shares, EPS)
    return shares / shares.sum()


def psi(expected: object, actual: object, *, bins: int = 10) -> float:
    """Population stability index of `actual` against `expected` (numeric or categorical)."""
    exp = pd.Series(expected).reset_index(drop=True)
    act = pd.Series(actual).reset_index(drop=True)
    if exp.empty or act.empty:
        raise ValueError("psi needs at least one expected and one actual value")
    if _is_categorical(exp) or _is_categorical(act):
        exp_text = exp.astype(str).where(exp.notna(), "<missing>")
        act_text = act.astype(str).where(act.notna(), "<missing>")
        levels = sorted(set(exp_text) | set(act_text))
        e = exp_text.value_counts().reindex(levels, fill_value=0).to_numpy(dtype=float)
        a = act_text.value_counts().reindex(levels, fill_value=0).to_numpy(dtype=float)
    else:
        e_val = exp.to_numpy(dtype=float)
        a_val = act.to_numpy(dtype=float)
        present = e_val[~np.isnan(e_val)]
        edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])) if present.size else np.array([])

        def counts(v: np.ndarray) -> np.ndarray:
            which = np.where(np.isnan(v), len(edges) + 1, np.searchsorted(edges, v, side="right"))
            return np.bincount(which.astype(int), minlength=len(edges) + 2).astype(float)

        e, a = counts(e_val), counts(a_val)
    pe, pa = _shares(e), _shares(a)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def status(value: float) -> str:
    """ok (< 0.1), watch (< 0.25) or drift."""
    return "ok" if value < WATCH else "watch" if value < DRIFT else "drift"


def drift_table(train: pd.DataFrame, current: pd.DataFrame, columns: Iterable[str], *,
                bins: int = 10) -> pd.DataFrame:
    """PSI and status per column, worst first: columns feature, psi, status."""
    rows = []
    for col in columns:
        for name, frame in (("train", train), ("current", current)):
            if col not in frame.columns:
                raise ValueError(f"column {col!r} missing from the {name} frame")
        value = psi(train[col], current[col], bins=bins)
        rows.append({"feature": col, "psi": value, "status": status(value)})
    table = pd.DataFrame(rows, columns=["feature", "psi", "status"])
    return table.sort_values("psi", ascending=False, ignore_index=True)


def drift_report(model, training_set: pd.DataFrame, features: pd.DataFrame, risk: pd.Series, *, warn_at: float = 0.25) -> pd.DataFrame:
    """PSI of every account feature and of the score (``model``: a `models.churn.model.ChurnModel`),
    the current snapshot vs the latest observation date of the training set, worst first."""
    reference = training_set[training_set["observation_date"] == training_set["observation_date"].max()]
    table = drift_table(reference, features, FEATURE_NAMES)
    score_psi = psi(model.predict_proba(feature_matrix(reference)), risk)
    score_row = pd.DataFrame([{"feature": "churn_risk (score)", "psi": score_psi, "status": "drift" if score_psi >= warn_at else "ok"}])
    return pd.concat([score_row, table], ignore_index=True).sort_values("psi", ascending=False, ignore_index=True)

"""Population stability index (PSI): has a feature, or the score, moved since training?

PSI = sum over bins of (actual% - expected%) * ln(actual% / expected%). Numeric values are cut
at quantiles of the *expected* (training) distribution; categorical values use one bin per
level; missing values get a bin of their own in both cases. Shares are smoothed with a small
epsilon so empty bins do not produce infinities. Usual reading: < 0.1 stable, 0.1-0.25 worth
watching, >= 0.25 a real shift.

A `DriftReference` is the training side of that comparison kept small: per feature (and for
the score) the bin edges and the counts of the reference rows, which is all PSI reads of them.
It is computed once, when a model is registered, and kept in the registry with it, so the daily
scoring compares the snapshot against it without loading the training set (at a million
accounts, 2.7 M rows); `DriftReference.report` gives the very numbers `drift_report` computes
from the training set itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

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


MISSING = "<missing>"


def _as_text(values: pd.Series) -> pd.Series:
    return values.astype(str).where(values.notna(), MISSING)


def _edges(values: np.ndarray, bins: int) -> np.ndarray:
    """The numeric bins' inner edges: quantiles of the present reference values."""
    present = values[~np.isnan(values)]
    return np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])) if present.size else np.array([])


def _bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per numeric bin: one per interval between `edges`, then one for missing values."""
    which = np.where(np.isnan(values), len(edges) + 1, np.searchsorted(edges, values, side="right"))
    return np.bincount(which.astype(int), minlength=len(edges) + 2).astype(float)


def _psi(e: np.ndarray, a: np.ndarray) -> float:
    pe, pa = _shares(e), _shares(a)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def psi(expected: object, actual: object, *, bins: int = 10) -> float:
    """Population stability index of `actual` against `expected` (numeric or categorical)."""
    exp = pd.Series(expected).reset_index(drop=True)
    act = pd.Series(actual).reset_index(drop=True)
    if exp.empty or act.empty:
        raise ValueError("psi needs at least one expected and one actual value")
    if _is_categorical(exp) or _is_categorical(act):
        exp_text, act_text = _as_text(exp), _as_text(act)
        levels = sorted(set(exp_text) | set(act_text))
        e = exp_text.value_counts().reindex(levels, fill_value=0).to_numpy(dtype=float)
        a = act_text.value_counts().reindex(levels, fill_value=0).to_numpy(dtype=float)
        return _psi(e, a)
    e_val, a_val = exp.to_numpy(dtype=float), act.to_numpy(dtype=float)
    edges = _edges(e_val, bins)
    return _psi(_bin_counts(e_val, edges), _bin_counts(a_val, edges))


@dataclass(frozen=True)
class Profile:
    """One column's reference distribution, as PSI reads it: the level counts of a categorical
    column, or the inner bin edges and the counts per bin (the last bin: missing) of a numeric
    one."""

    counts: tuple[float, ...]
    levels: tuple[str, ...] | None = None
    edges: tuple[float, ...] | None = None

    @classmethod
    def of(cls, values: object, *, bins: int = 10) -> Profile:
        exp = pd.Series(values).reset_index(drop=True)
        if exp.empty:
            raise ValueError("a drift profile needs at least one reference value")
        if _is_categorical(exp):
            counts = _as_text(exp).value_counts()
            levels = sorted(counts.index)
            return cls(counts=tuple(float(counts[k]) for k in levels), levels=tuple(levels))
        e_val = exp.to_numpy(dtype=float)
        edges = _edges(e_val, bins)
        return cls(counts=tuple(_bin_counts(e_val, edges).tolist()), edges=tuple(float(x) for x in edges))

    def psi(self, actual: object) -> float:
        """PSI of `actual` against this reference: `psi(reference values, actual)`'s number. A
        numeric reference met by text compares as levels, as `psi` does (the reference's bins
        cannot be read back as levels, so that is refused)."""
        act = pd.Series(actual).reset_index(drop=True)
        if act.empty:
            raise ValueError("psi needs at least one expected and one actual value")
        if self.levels is None:
            if _is_categorical(act):
                raise ValueError("a numeric drift reference cannot be compared with categorical values")
            return _psi(np.asarray(self.counts), _bin_counts(act.to_numpy(dtype=float), np.asarray(self.edges)))
        act_counts = _as_text(act).value_counts()
        levels = sorted(set(self.levels) | set(act_counts.index))
        ref = dict(zip(self.levels, self.counts))
        e = np.array([ref.get(k, 0.0) for k in levels], dtype=float)
        a = act_counts.reindex(levels, fill_value=0).to_numpy(dtype=float)
        return _psi(e, a)

    def to_dict(self) -> dict[str, Any]:
        kind = {"levels": list(self.levels)} if self.levels is not None else {"edges": list(self.edges or ())}
        return {"counts": list(self.counts), **kind}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        levels = data.get("levels")
        edges = data.get("edges")
        return cls(counts=tuple(float(x) for x in data["counts"]),
                   levels=None if levels is None else tuple(str(x) for x in levels),
                   edges=None if edges is None else tuple(float(x) for x in edges))


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


SCORE_ROW = "churn_risk (score)"


@dataclass(frozen=True)
class DriftReference:
    """The reference a snapshot's drift is measured against: the profile of every account
    feature and of the model's score on the latest observation date of the training set."""

    features: dict[str, Profile]
    score: Profile

    @classmethod
    def from_training(cls, model, training_set: pd.DataFrame) -> DriftReference:
        """From the training set (``model``: anything with ``predict_proba``, a
        `models.churn.model.ChurnModel` or the rules fallback)."""
        reference = training_set[training_set["observation_date"] == training_set["observation_date"].max()]
        missing = [c for c in FEATURE_NAMES if c not in reference.columns]
        if missing:
            raise ValueError(f"column {missing[0]!r} missing from the train frame")
        return cls(features={c: Profile.of(reference[c]) for c in FEATURE_NAMES},
                   score=Profile.of(model.predict_proba(feature_matrix(reference))))

    def report(self, features: pd.DataFrame, risk: pd.Series, *, warn_at: float = 0.25) -> pd.DataFrame:
        """PSI of every account feature and of the score (`risk`) of the current snapshot,
        worst first: columns feature, psi, status."""
        rows = []
        for col, profile in self.features.items():
            if col not in features.columns:
                raise ValueError(f"column {col!r} missing from the current frame")
            value = profile.psi(features[col])
            rows.append({"feature": col, "psi": value, "status": status(value)})
        table = pd.DataFrame(rows, columns=["feature", "psi", "status"]).sort_values("psi", ascending=False, ignore_index=True)
        score_psi = self.score.psi(risk)
        score_row = pd.DataFrame([{"feature": SCORE_ROW, "psi": score_psi, "status": "drift" if score_psi >= warn_at else "ok"}])
        return pd.concat([score_row, table], ignore_index=True).sort_values("psi", ascending=False, ignore_index=True)

    def to_dict(self) -> dict[str, Any]:
        return {"features": {c: p.to_dict() for c, p in self.features.items()}, "score": self.score.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReference:
        return cls(features={c: Profile.from_dict(p) for c, p in data["features"].items()},
                   score=Profile.from_dict(data["score"]))


def drift_report(model, training_set: pd.DataFrame, features: pd.DataFrame, risk: pd.Series, *, warn_at: float = 0.25) -> pd.DataFrame:
    """PSI of every account feature and of the score (``model``: a `models.churn.model.ChurnModel`),
    the current snapshot vs the latest observation date of the training set, worst first."""
    return DriftReference.from_training(model, training_set).report(features, risk, warn_at=warn_at)

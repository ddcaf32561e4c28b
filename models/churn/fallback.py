"""Scoring without a champion: churn risk from the rules-only health risk.

When no model has been promoted (the first challengers lacked the evidence, or lost to a
baseline), accounts are still scored, from the rules: `RulesRiskModel` turns the rules-only health
risk (`models.churn.health.rules_risk`, with the company's checked or fitted weights) into a churn
probability with a logistic (Platt) map fitted on the training set's outcomes, so the policy's
thresholds keep their meaning (20% is a 20% chance, whoever computed it). The map's slope is held
at >= 0: rules that predict backwards do not get turned around, they give everyone the base rate.

It offers what scoring needs from a model (`predict_proba`, exact additive `contributions` in
log-odds, `importance`), so drivers in words, movers and drift work as they do with the model;
every score, candidate and case it produces carries the model version `RULES_FALLBACK_VERSION`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from models.churn.features import FEATURE_NAMES
from models.churn.health import HealthConfig, rules_risk, rules_terms
from models.churn.model import PlattCalibrator

RULES_FALLBACK_VERSION = "rules-fallback"
RULES_FALLBACK_TEXT = "the rules-only health risk (calibrated on the training set's outcomes)"


@dataclass
class RulesRiskModel:
    """p = sigmoid(a * rules_risk + b), a >= 0; per-feature terms of rules_risk as contributions."""

    config: HealthConfig
    a: float
    b: float
    term_means: dict[str, float]
    feature_names: list[str] = field(default_factory=lambda: list(FEATURE_NAMES))
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(cls, training_set: pd.DataFrame, config: HealthConfig | None = None, *,
            label: str = "label") -> RulesRiskModel:
        config = config or HealthConfig()
        y = training_set[label].to_numpy(dtype=int)
        # a training set whose negatives were sampled carries their weights (models.churn.sampling)
        w = training_set["weight"].to_numpy(dtype=float) if "weight" in training_set.columns else None
        if w is not None and np.all(w == 1.0):
            w = None
        risk = rules_risk(training_set, config)
        rate = float(np.clip(np.average(y, weights=w) if len(y) else 0.0, 1e-4, 1 - 1e-4))
        a, b = 0.0, float(logit(rate))
        if 0 < y.sum() < len(y):
            platt = PlattCalibrator.fit(risk, y, w)
            if platt.a > 0:
                a, b = platt.a, platt.b
        means = rules_terms(training_set, config).mean().to_dict() if len(training_set) else {}
        meta = {"source": RULES_FALLBACK_VERSION, "platt": {"a": a, "b": b}, "base_rate": rate,
                "training_rows": len(training_set), "health": config.to_dict()}
        return cls(config=config, a=float(a), b=float(b), term_means={k: float(v) for k, v in means.items()},
                   metadata=meta)

    def to_dict(self) -> dict[str, Any]:
        """The fitted map as plain values (kept in the model registry, `from_dict` reads it)."""
        return {"config": self.config.to_dict(), "a": self.a, "b": self.b, "term_means": dict(self.term_means),
                "feature_names": list(self.feature_names), "metadata": dict(self.metadata)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RulesRiskModel:
        return cls(config=HealthConfig.from_dict(data["config"]), a=float(data["a"]), b=float(data["b"]),
                   term_means={k: float(v) for k, v in data["term_means"].items()},
                   feature_names=list(data["feature_names"]), metadata=dict(data.get("metadata", {})))

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return self.a * rules_risk(X, self.config) + self.b

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return expit(self.decision_function(X))

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Log-odds contribution of each feature relative to the training average, plus `bias`;
        each row sums to `decision_function`. Features the rules do not read contribute 0."""
        terms = rules_terms(X, self.config)
        out = pd.DataFrame(0.0, index=X.index, columns=[*self.feature_names, "bias"])
        for name in terms.columns:
            out[name] = self.a * (terms[name].to_numpy() - self.term_means.get(name, 0.0))
        total = sum(self.term_means.get(name, 0.0) for name in terms.columns)
        if sum(self.config.rule_weights.values()) <= 0:
            out["bias"] = self.a * 0.5 + self.b  # rules_risk is the constant 0.5
        else:
            out["bias"] = self.a * total + self.b
        return out

    def importance(self, X: pd.DataFrame) -> pd.Series:
        return self.contributions(X).drop(columns="bias").abs().mean().sort_values(ascending=False)

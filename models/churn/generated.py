"""Generated churn tables with a known shape of signal, for the model's tests and benchmark.

- `interaction_table`: churn is driven by interactions between columns (a sign agreement of two
  usage signals, a product of two others, a plan whose effect reverses with tenure): no single
  column and no linear model reads it well, a default-sized LightGBM does.
- `linear_table`: churn is linear in the log-odds of five columns: a logistic regression is the
  right model, trees can only approximate it.

Both add pure-noise columns up to `columns`, a few missing values and one categorical column,
are deterministic from `seed`, and return the features and a 0/1 label. `shift` is added to the
log-odds of `interaction_table` (0: the table as it has always been; -7: 4.5% churners, the few
percent a retrain's observation dates hold).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

PLANS = ("monthly", "annual", "multi_year", "trial")


def _frame(rng: np.random.Generator, rows: int, columns: int) -> pd.DataFrame:
    if columns < 7:
        raise ValueError(f"a generated table needs at least 7 columns, got {columns}")
    numeric = rng.normal(size=(rows, columns - 1))
    frame = pd.DataFrame(numeric, columns=[f"x{i}" for i in range(columns - 1)])
    frame["plan"] = pd.Categorical(rng.choice(PLANS, rows), categories=list(PLANS))
    frame.loc[rng.random(rows) < 0.03, f"x{columns - 2}"] = np.nan  # a noise column
    return frame


def _label(rng: np.random.Generator, logit: np.ndarray) -> np.ndarray:
    return (rng.random(len(logit)) < expit(logit)).astype(int)


def interaction_table(rows: int, columns: int = 10, *, seed: int = 0,
                      shift: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = _frame(rng, rows, columns)
    x = {c: X[c].fillna(0.0).to_numpy() for c in ("x0", "x1", "x2", "x3", "x4")}
    trial = (X["plan"] == "trial").to_numpy()
    logit = 2.5 * (1.6 * np.sign(x["x0"]) * np.sign(x["x1"])
             + 1.2 * x["x2"] * x["x3"]
             + 1.5 * np.where(trial, x["x4"], -0.5 * x["x4"])
             - 1.0)
    if shift:
        logit = logit + shift
    return X, _label(rng, logit)


def linear_table(rows: int, columns: int = 10, *, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = _frame(rng, rows, columns)
    coefs = np.array([0.9, -0.7, 0.6, 0.5, -0.4])
    x = np.column_stack([X[f"x{i}"].fillna(0.0).to_numpy() for i in range(5)])
    plan = X["plan"].map({"monthly": 0.4, "annual": -0.3, "multi_year": -0.5, "trial": 0.6}).astype(float)
    logit = x @ coefs + plan.to_numpy() - 1.2
    return X, _label(rng, logit)

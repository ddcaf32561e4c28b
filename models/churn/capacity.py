"""How much capacity the churn model's trees get: chosen by the data, on held-out rows only.

`CAPACITY_GRID` spans heavily regularized trees (3 leaves, strong L2, feature and row
subsampling) through LightGBM's defaults (31 leaves, learning rate 0.1, 20 rows per leaf, no
penalty) to larger trees (127 leaves). None fixes a number of trees: every configuration grows
trees until its held-out log-loss has not improved for `patience` rounds and keeps the best
iteration, so a small noisy table gets a few dozen shallow trees and a large table with
interactions gets hundreds of wide ones.

Selection (`select_capacity`) only ever sees the rows it is given: in cross-validation the outer
fold's training part, split again into inner folds (its test part is scored once, afterwards);
in a time split, the earlier window to train on and the later one held out. Over inner folds:

1. every configuration is trained on the first inner fold's training part, with early stopping
   on its held-out part, and scored there by ROC-AUC;
2. the best `FINALISTS` are trained on the second inner fold, and the one with the higher mean
   held-out ROC-AUC over both folds wins;
3. the winner alone is trained on the remaining inner folds.

The model averages the winner's fold boosters, and its out-of-fold scores (every inner
held-out row scored once, by a booster that did not see it) choose the blend with the logistic
regression and the calibration. Why halving instead of every configuration on every fold: the
configurations' held-out ROC-AUCs on one fold differ most where it matters (on a generated
interaction table of 1,125 rows, 0.68 for `heavy` against 0.93 for `moderate`), and the second
fold settles the close calls between the two best; it costs `len(grid) + FINALISTS + folds - 2` fits instead
of `len(grid) * folds` (9 against 20 for 5 configurations and 4 folds).

With a single split of more than `SELECTION_ROWS` training rows the contest runs on a sample of
it and the winner is trained on all of it (`select_capacity`), so the cost of choosing does not
grow with the table.

The order of the grid matters only for a `budget` (the first configurations tried): every
prefix of two or more spans regularized and default capacity.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

MAX_THREADS = 2
PARALLEL_ROWS = 100_000
"""Below this many rows LightGBM runs on one thread: on small data a second thread costs more in
synchronisation than it saves, and much more when the machine's cores are shared."""

#: Trees are capped at this many learning-rate units (2,000 trees at 0.1, 1,000 at 0.2): a
#: bound on the cost of one fit that early stopping almost never reaches.
ROUNDS_PER_UNIT_RATE = 200.0
#: Early stopping waits this many learning-rate units without improvement (50 rounds at 0.1).
PATIENCE_PER_UNIT_RATE = 5.0
FINALISTS = 2
#: Above this many training rows in a single split the configurations compete on a sample of it
#: (`select_capacity`), 5,000 rows held out: enough to tell the configurations apart (a ROC-AUC
#: standard error of about 0.005 there, against 0.01-0.05 between the grid's ends on tables that
#: need one of them) at a fixed cost, where competing on all of 38k rows was 10.7 of the 11.7 CPU
#: seconds of a fit (64k-row table, one outer fold).
SELECTION_ROWS = 15_000
FULL_FIT_TREES = 2

#: Most robust first; then LightGBM's defaults; then both ends, then the middle. `heavy` has a
#: learning rate of 0.2: its regularization is in its shape (3 leaves, strong L2, half the
#: features per tree, 2% of the rows per leaf), and at 0.1 it needs about 1,000 trees on a
#: 50k-row table, the costliest fit of the grid for the configuration least likely to win there.
CAPACITY_GRID: tuple[dict[str, Any], ...] = (
    {"name": "regularized", "num_leaves": 7, "learning_rate": 0.1, "min_child_share": 0.01,
     "lambda_l2": 10.0, "feature_fraction": 0.7, "bagging_fraction": 0.8},
    {"name": "default", "num_leaves": 31, "learning_rate": 0.1, "min_child_samples": 20,
     "lambda_l2": 0.0, "feature_fraction": 1.0, "bagging_fraction": 1.0},
    {"name": "heavy", "num_leaves": 3, "learning_rate": 0.2, "min_child_share": 0.02,
     "lambda_l2": 30.0, "feature_fraction": 0.5, "bagging_fraction": 0.8},
    {"name": "large", "num_leaves": 127, "learning_rate": 0.1, "min_child_samples": 10,
     "lambda_l2": 1.0, "feature_fraction": 0.9, "bagging_fraction": 1.0},
    {"name": "moderate", "num_leaves": 15, "learning_rate": 0.1, "min_child_share": 0.005,
     "lambda_l2": 5.0, "feature_fraction": 0.8, "bagging_fraction": 0.8},
)

#: LightGBM's own defaults, the bare reference `rescue model evaluate` reports beside the model.
DEFAULT_LIGHTGBM_ROUNDS = 100


def threads(n_rows: int, *, threshold: int = PARALLEL_ROWS) -> int:
    return 1 if n_rows < threshold else min(MAX_THREADS, os.cpu_count() or 1)


def max_rounds(config: Mapping[str, Any]) -> int:
    return int(round(ROUNDS_PER_UNIT_RATE / float(config["learning_rate"])))


def patience(config: Mapping[str, Any]) -> int:
    return int(round(PATIENCE_PER_UNIT_RATE / float(config["learning_rate"])))


def lgb_params(config: Mapping[str, Any], n_rows: int, seed: int) -> dict[str, Any]:
    """LightGBM parameters of one grid entry for `n_rows` training rows.

    `min_child_share` is min_child_samples as a share of the training rows (clipped to
    [5, 200]), so a regularized configuration stays regularized as the table grows.
    """
    params = {k: v for k, v in config.items() if k not in ("name", "min_child_share")}
    if "min_child_share" in config:
        params["min_child_samples"] = int(np.clip(config["min_child_share"] * n_rows, 5, 200))
    params.update(
        objective="binary",
        metric="binary_logloss",
        bagging_freq=1 if params.get("bagging_fraction", 1.0) < 1.0 else 0,
        cat_smooth=10.0,
        cat_l2=10.0,
        min_data_per_group=20,
        max_cat_to_onehot=8,
        num_threads=threads(n_rows),
        seed=seed,
        deterministic=True,
        force_col_wise=True,
        verbosity=-1,
    )
    return params


def weights(y: np.ndarray, row_weight: np.ndarray | None = None) -> np.ndarray:
    """Positive rows weighted by sqrt(negatives / positives): imbalance handled, not overcorrected.

    With `row_weight` (sampled rows standing for several, `models.churn.sampling`) the counts are
    weighted and the result is multiplied by it, so the data weigh what the full set would.
    """
    if row_weight is None:
        pos = max(int(y.sum()), 1)
        return np.where(y == 1, np.sqrt((len(y) - pos) / pos), 1.0)
    row_weight = np.asarray(row_weight, dtype=float)
    pos = max(float(row_weight[y == 1].sum()), 1.0)
    neg = float(row_weight[y != 1].sum())
    return np.where(y == 1, np.sqrt(neg / pos), 1.0) * row_weight


def auc(y: np.ndarray, score: np.ndarray, row_weight: np.ndarray | None = None) -> float:
    """ROC-AUC, weighted by `row_weight` when given."""
    return float(roc_auc_score(y, score, sample_weight=row_weight))


#: Dataset parameters shared by every configuration trained on one inner split, so its binned
#: data is built once (`feature_pre_filter` off: configurations differ in rows per leaf).
_DATASET_PARAMS = {"feature_pre_filter": False, "verbosity": -1}
#: Histogram bins per feature: LightGBM's 255 from `ROWS_PER_BIN * 255` training rows, fewer
#: below (never under 63). On small tables the cost of a boosting round is the split search over
#: bins x leaves, not the rows (a 15-leaf round on 850 rows: 0.33 ms of CPU at 255 bins, 0.18 ms
#: at 63), and 255 bins of 850 rows hold 3 rows each: resolution no leaf of 5+ rows can use.
ROWS_PER_BIN = 50


def max_bin(n_rows: int) -> int:
    return int(np.clip(n_rows // ROWS_PER_BIN, 63, 255))


@dataclass
class _Split:
    """One inner split's binned data, built once and shared by the configurations trained on it."""

    train: lgb.Dataset
    valid: lgb.Dataset
    X_valid: pd.DataFrame
    y_valid: np.ndarray
    n_train: int
    w_valid: np.ndarray | None = None

    @classmethod
    def build(cls, Xc: pd.DataFrame, y: np.ndarray, tr: np.ndarray, va: np.ndarray, seed: int,
              row_weight: np.ndarray | None = None) -> _Split:
        params = {**_DATASET_PARAMS, "seed": seed, "max_bin": max_bin(len(tr))}
        w_tr, w_va = (None, None) if row_weight is None else (row_weight[tr], row_weight[va])
        train = lgb.Dataset(Xc.iloc[tr], y[tr], weight=weights(y[tr], w_tr), categorical_feature="auto",
                            params=params, free_raw_data=False)
        valid = lgb.Dataset(Xc.iloc[va], y[va], weight=weights(y[va], w_va), reference=train, params=params)
        return cls(train=train, valid=valid, X_valid=Xc.iloc[va], y_valid=y[va], n_train=len(tr),
                   w_valid=w_va)


def train_booster(config: Mapping[str, Any], split: _Split, seed: int, *,
                  rounds: int | None = None) -> tuple[lgb.Booster, np.ndarray]:
    """One configuration on one split: early stopping on its held-out part, the best iteration
    kept. Returns the booster and its raw held-out scores."""
    booster = lgb.train(
        lgb_params(config, split.n_train, seed), split.train,
        num_boost_round=min(max_rounds(config), rounds or max_rounds(config)),
        valid_sets=[split.valid],
        callbacks=[lgb.early_stopping(patience(config), verbose=False)],
        keep_training_booster=True,  # no model-to-text-and-back round trip on every fit
    )
    score = booster.predict(split.X_valid, raw_score=True, num_iteration=booster.best_iteration,
                            num_threads=threads(len(split.X_valid)))
    return booster, score


@dataclass
class Selection:
    """The chosen configuration, its fold boosters and out-of-fold scores, and every trial."""

    config: dict[str, Any]
    boosters: list[lgb.Booster]
    held_score: np.ndarray                       # in the order of the splits' held-out rows
    trials: list[dict[str, Any]] = field(default_factory=list)


def _sample(rows: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    return rows if len(rows) <= size else np.sort(rng.choice(rows, size, replace=False))


def select_capacity(Xc: pd.DataFrame, y: np.ndarray, splits: Sequence[tuple[np.ndarray, np.ndarray]], *,
                    seed: int, grid: Sequence[Mapping[str, Any]] = CAPACITY_GRID,
                    row_weight: np.ndarray | None = None) -> Selection:
    """Choose a configuration of `grid` on the held-out parts of `splits` (module docstring).

    `row_weight` (None: every row counts once) weighs the rows in the trees' datasets and in the
    held-out ROC-AUCs.

    With one split of more than `SELECTION_ROWS` training rows, the configurations compete on a
    random sample of it (`SELECTION_ROWS` training rows, a third as many held out), and the
    winner alone is trained on the whole split, its trees capped at `FULL_FIT_TREES` times the
    count the sample chose: more rows support more trees, boundedly, so the cost grows as the
    rows and not as rows x trees.
    """
    if not grid:
        raise ValueError("the capacity grid is empty")
    sampled = len(splits) == 1 and len(splits[0][0]) > SELECTION_ROWS
    if sampled:
        rng = np.random.default_rng(seed)
        tr, va = splits[0]
        contest = [(_sample(tr, SELECTION_ROWS, rng), _sample(va, SELECTION_ROWS // 3, rng))]
    else:
        contest = list(splits)
    built: dict[int, _Split] = {}

    def split(i: int) -> _Split:
        if i not in built:
            built[i] = _Split.build(Xc, y, *contest[i], seed, row_weight)
        return built[i]

    runs: dict[int, dict[int, tuple[lgb.Booster, np.ndarray, float]]] = {c: {} for c in range(len(grid))}

    def run(c: int, i: int) -> float:
        booster, score = train_booster(grid[c], split(i), seed)
        held_auc = auc(split(i).y_valid, score, split(i).w_valid)
        runs[c][i] = (booster, score, held_auc)
        return held_auc

    def mean_auc(c: int) -> float:
        return float(np.mean([r[2] for r in runs[c].values()]))

    for c in range(len(grid)):
        run(c, 0)
    if len(contest) > 1:
        finalists = sorted(range(len(grid)), key=lambda c: -mean_auc(c))[:FINALISTS]
        for c in finalists:
            run(c, 1)
        best = max(finalists, key=lambda c: (mean_auc(c), -c))
        for i in range(2, len(contest)):
            run(best, i)
    else:
        best = max(range(len(grid)), key=lambda c: (mean_auc(c), -c))
    built.clear()
    trials = [{"config": dict(grid[c]), "held_out_roc_auc": mean_auc(c), "folds": len(runs[c]),
               "best_iterations": [int(r[0].best_iteration) for r in runs[c].values()]}
              for c in range(len(grid))]
    chosen = [runs[best][i][:2] for i in range(len(contest))]
    if sampled:
        whole = _Split.build(Xc, y, *splits[0], seed, row_weight)
        cap = FULL_FIT_TREES * max(int(runs[best][0][0].best_iteration), 1)
        chosen = [train_booster(grid[best], whole, seed, rounds=cap)]
        trials[best]["whole_split_best_iteration"] = int(chosen[0][0].best_iteration)
        trials[best]["selection_rows"] = SELECTION_ROWS
    boosters = []
    for booster, _ in chosen:
        # keep only the best iteration's trees: scoring and contributions need no argument
        boosters.append(lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration)))
    return Selection(config=dict(grid[best]), boosters=boosters,
                     held_score=np.concatenate([r[1] for r in chosen]), trials=trials)


def fit_default_lightgbm(Xc: pd.DataFrame, y: np.ndarray, *, seed: int = 0) -> lgb.Booster:
    """LightGBM with its own defaults (100 trees, 31 leaves, learning rate 0.1, 20 rows per leaf,
    no weights, no early stopping): the bare reference, on the model's coerced features."""
    params = {"objective": "binary", "verbosity": -1, "seed": seed, "num_threads": threads(len(y))}
    return lgb.train(params, lgb.Dataset(Xc, y, categorical_feature="auto"),
                     num_boost_round=DEFAULT_LIGHTGBM_ROUNDS)

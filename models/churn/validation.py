"""Validating the churn model against its baselines, on a time split or by cross-validation.

`time_validation_report(train, valid)` fits the model (`models.churn.model`) and the
logistic-regression baseline on the earlier window and evaluates both, with any extra baselines,
on the later one. `cross_validate(X, y)` runs stratified k-fold CV of the model, the
logistic-regression baseline and a default LightGBM on the same folds; inside each fold the model
sees only that fold's training part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from models.churn import evaluation as mx
from models.churn.capacity import fit_default_lightgbm, threads
from models.churn.model import (
    ChurnModel,
    ModelError,
    category_levels,
    coerce_features,
    fit_churn_model,
    fit_churn_model_cv,
    fit_logistic_baseline,
    label_values,
)


def _logistic_proba(pipeline: Pipeline, X: pd.DataFrame, features: Sequence[str],
                    categorical: Sequence[str]) -> np.ndarray:
    Xc = coerce_features(X, features, category_levels(X, categorical))
    return pipeline.predict_proba(Xc.astype({c: object for c in categorical}))[:, 1]


#: Above this many training rows the tuning grid is cut to its first two entries (regularized and
#: LightGBM's defaults). Since the configurations compete on a sample of a large training set
#: (`capacity.SELECTION_ROWS`), the cut saves three fits on 15k rows, not minutes per
#: configuration as it did when each was trained on all of them.
LARGE_TRAINING_ROWS = 200_000


def effective_tuning_budget(n_rows: int, budget: int | None) -> int | None:
    """The tuning budget used for ``n_rows`` training rows (at most 2 configurations when large:
    the grid's first two, regularized and LightGBM's defaults). None is the whole grid."""
    if n_rows <= LARGE_TRAINING_ROWS:
        return budget
    return 2 if budget is None else min(budget, 2)


#: Global driver importance (mean |contribution|) is read on at most this many validation rows,
#: a seeded sample: LightGBM's per-row contributions cost more than the fit itself on the
#: 2 million validation rows of a million-account company (53 of 144 s at 200,000 rows), and a
#: mean over 20,000 rows ranks the drivers as every row does.
IMPORTANCE_ROWS = 20_000


def _importance_rows(valid: pd.DataFrame, seed: int) -> pd.DataFrame:
    return valid if len(valid) <= IMPORTANCE_ROWS else valid.sample(n=IMPORTANCE_ROWS, random_state=seed)


def time_validation_report(
    train: pd.DataFrame, valid: pd.DataFrame, *, label: str, features: Sequence[str],
    categorical: Sequence[str],
    extra_baselines: Mapping[str, Callable[[pd.DataFrame], np.ndarray]] | None = None,
    capacity_k: int | None = None, seed: int = 0, tuning_budget: int | None = None,
    groups: str | None = None, weight: str | None = None,
) -> tuple[ChurnModel, dict[str, Any]]:
    """Fit the model and the logistic-regression baseline on `train`, evaluate all on `valid`.

    `extra_baselines` map a name to a function returning a churn-risk score per row of `valid`
    (higher = riskier; probability metrics are reported only for scores in [0, 1]).
    Returns the model and {"model", "baselines", "intervals", "calibration",
    "calibration_deciles" (the model's, `evaluation.calibration_table`), "importance", "plots"}: "intervals" are the ROC-AUC intervals of the model and of every baseline, with the
    paired difference model minus baseline (`evaluation.auc_intervals`, reference "model"),
    resampling whole `groups` (a column of `valid`, e.g. the account id) when given.
    `weight` names a column of row weights of `train` (its negatives sampled,
    `models.churn.sampling`): the model and the logistic-regression baseline are fitted weighted;
    `valid` is evaluated as it is, every row once (the importance on a sample of it above
    `IMPORTANCE_ROWS`; the intervals by an m-out-of-n bootstrap above `evaluation.INTERVAL_ROWS`).
    """
    model = fit_churn_model(train, valid, label=label, features=features, categorical=categorical,
                            seed=seed, tuning_budget=effective_tuning_budget(len(train), tuning_budget),
                            weight=weight)
    y = label_values(valid, label)
    train_weight = None
    if weight is not None and weight in train.columns and not (train[weight] == 1.0).all():
        train_weight = train[weight].to_numpy(dtype=float)
    baseline = fit_logistic_baseline(train, label=label, features=features, categorical=categorical,
                                     sample_weight=train_weight)
    scores: dict[str, np.ndarray] = {
        "model": model.predict_proba(valid),
        "logistic_regression": _logistic_proba(baseline, valid, features, categorical),
    }
    for name, scorer in (extra_baselines or {}).items():
        scores[name] = np.asarray(scorer(valid), dtype=float)
    evaluated = {name: mx.evaluate(y, s, capacity_k=capacity_k) for name, s in scores.items()}
    intervals = mx.auc_intervals(y, scores, reference="model", seed=seed,
                                 groups=valid[groups].to_numpy() if groups else None)
    importance = model.importance(_importance_rows(valid, seed))
    probas = {n: s for n, s in scores.items() if np.all((s >= 0) & (s <= 1))}
    probas["model (uncalibrated)"] = model.predict_raw(valid)
    report = {
        "model": evaluated.pop("model"),
        "baselines": evaluated,
        "intervals": intervals,
        "calibration": {k: model.metadata["calibration"][k] for k in ("method", "brier_raw", "brier_calibrated")},
        "calibration_deciles": mx.calibration_table(y, scores["model"]).to_dict("records"),
        "importance": {str(k): float(v) for k, v in importance.items()},
        "plots": {
            "roc": mx.roc_plot(y, scores),
            "calibration": mx.calibration_plot(y, probas),
            "gains": mx.gains_plot(y, scores),
            "importance": mx.importance_plot(importance),
        },
    }
    return model, report


def _summary(per_fold: list[dict[str, float]]) -> dict[str, Any]:
    keys = [k for k in per_fold[0] if all(k in f for f in per_fold)]
    summary: dict[str, Any] = {k: float(np.mean([f[k] for f in per_fold])) for k in keys}
    summary["roc_auc_std"] = float(np.std([f["roc_auc"] for f in per_fold]))
    summary["per_fold"] = per_fold
    return summary


def cross_validate(X: pd.DataFrame, y: np.ndarray, *, folds: int = 5, seed: int = 0,
                   categorical: Sequence[str] | None = None, tuning_budget: int | None = None,
                   progress: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Stratified k-fold CV of the model and of its two baselines on the same folds.

    Inside each fold the model sees only that fold's training part (`fit_churn_model_cv` splits
    it again for early stopping, capacity selection and calibration); the test part is scored
    once. Beside the logistic regression, a bare LightGBM with the library's defaults
    (`capacity.fit_default_lightgbm`) is fitted on the same training part: the reference the
    model's chosen capacity must not fall below.
    `progress(fold_number, {"model": metrics, "logistic_regression": metrics,
    "lightgbm_default": metrics})` is called after each fold. Returns {"folds", "model": {mean
    metrics, "roc_auc_std", "per_fold"}, "baselines": {"logistic_regression": {...},
    "lightgbm_default": {...}}, "capacity": [the configuration chosen in each fold]}.
    """
    y = np.asarray(y, dtype=int)
    categorical = list(categorical or [])
    minority = int(np.bincount(y, minlength=2).min())
    if not 2 <= folds <= minority:
        raise ModelError(f"folds must be between 2 and {minority} (the smaller class's size), got {folds}")
    X = X.reset_index(drop=True)
    features = list(X.columns)
    model_folds, lr_folds, default_folds, chosen = [], [], [], []
    outer = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for number, (tr, te) in enumerate(outer.split(np.zeros(len(y)), y), start=1):
        X_tr, X_te = X.iloc[tr], X.iloc[te]
        model = fit_churn_model_cv(X_tr, y[tr], categorical=categorical, seed=seed,
                                   tuning_budget=tuning_budget)
        model_metrics = mx.evaluate(y[te], model.predict_proba(X_te))
        baseline = fit_logistic_baseline(X_tr, features=features, categorical=categorical, y=y[tr])
        lr_metrics = mx.evaluate(y[te], _logistic_proba(baseline, X_te, features, categorical))
        levels = category_levels(X_tr, categorical)  # the training part's levels, as the model's
        reference = fit_default_lightgbm(coerce_features(X_tr, features, levels), y[tr], seed=seed)
        default_metrics = mx.evaluate(y[te], reference.predict(coerce_features(X_te, features, levels),
                                                               num_threads=threads(len(te))))
        model_folds.append(model_metrics)
        lr_folds.append(lr_metrics)
        default_folds.append(default_metrics)
        chosen.append(model.metadata["capacity"])
        if progress is not None:
            progress(number, {"model": model_metrics, "logistic_regression": lr_metrics,
                              "lightgbm_default": default_metrics})
    return {
        "folds": folds,
        "model": _summary(model_folds),
        "baselines": {"logistic_regression": _summary(lr_folds),
                      "lightgbm_default": _summary(default_folds)},
        "capacity": chosen,
    }

"""The churn model: a calibrated blend of LightGBM and logistic regression, and its validation.

The model is built to be robust on the tables churn work actually sees (a few thousand rows,
many categoricals, 5-30 % churners) rather than tuned for one of them:

- **LightGBM** with native categoricals and missing values, strong regularization
  (`min_child_samples` scaled to the number of rows, L2, feature and row subsampling, category
  smoothing), a moderate learning rate with early stopping on held-out rows, and positive rows
  weighted by sqrt(negatives / positives) so rare churners shape the trees.
- A **small tuning budget**: the first `tuning_budget` configurations of a fixed, diverse grid,
  chosen by held-out ROC-AUC.
- A **logistic-regression** component (one-hot + median imputation + scaling). The two are
  blended in log-odds space with a weight chosen on held-out predictions only; weight 1 is the
  pure GBM. Because both parts are additive in log-odds, per-row contributions stay exact:
  LightGBM's `pred_contrib` plus the linear terms, summing to the blended score.
- **Platt calibration** fitted on held-out predictions, never on training rows. It is strictly
  monotone, so rankings (ROC-AUC, lift) are unchanged; it is kept only if it lowers the
  cross-fitted Brier score on those held-out rows, otherwise the identity is used.

Two ways to fit: `fit_churn_model(train, valid)` for a time split (early stopping, selection and
calibration on the later window) and `fit_churn_model_cv(X, y)` which holds out inner folds of
one table and averages the fold boosters. Validating the model against its baselines (a time
split report, stratified k-fold CV) is `models.churn.validation`.

`ChurnModel.to_bytes()` writes JSON (LightGBM's own text format for the trees, plain numbers for
the linear part and the calibrator): no pickle.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import sklearn
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


FORMAT = "churn-model/1"
MAX_THREADS = 2
PARALLEL_ROWS = 100_000
"""Below this many rows LightGBM runs on one thread: on small data a second thread costs more in
synchronisation than it saves, and much more when the machine's cores are shared."""
MAX_ROUNDS = 5000
EARLY_STOPPING_ROUNDS = 100
BLEND_GRID = np.round(np.linspace(0.0, 1.0, 11), 2)

# Diverse, regularized LightGBM configurations, most robust first. `min_child_share` is
# min_child_samples as a share of training rows (clipped to [5, 200]).
PARAM_GRID: tuple[dict[str, float], ...] = (
    {"num_leaves": 5, "learning_rate": 0.02, "min_child_share": 0.01, "lambda_l2": 10.0,
     "feature_fraction": 0.5},
    {"num_leaves": 15, "learning_rate": 0.03, "min_child_share": 0.02, "lambda_l2": 5.0,
     "feature_fraction": 0.7},
    {"num_leaves": 3, "learning_rate": 0.05, "min_child_share": 0.005, "lambda_l2": 1.0,
     "feature_fraction": 0.8},
    {"num_leaves": 31, "learning_rate": 0.02, "min_child_share": 0.03, "lambda_l2": 20.0,
     "feature_fraction": 0.6},
    {"num_leaves": 7, "learning_rate": 0.05, "min_child_share": 0.01, "lambda_l2": 30.0,
     "feature_fraction": 0.9},
    {"num_leaves": 63, "learning_rate": 0.01, "min_child_share": 0.05, "lambda_l2": 50.0,
     "feature_fraction": 0.5},
)


class ModelError(ValueError):
    """The data cannot train or feed this model; the message names the column or the problem."""


# ------------------------------------------------------------------------------- preparation


PARALLEL_PREDICT_ROWS = 10_000
"""Scoring and explanations split rows across threads with no synchronisation between them, so
they use every allowed thread from far fewer rows than training does (results are identical)."""


def _threads(n_rows: int, *, threshold: int = PARALLEL_ROWS) -> int:
    return 1 if n_rows < threshold else min(MAX_THREADS, os.cpu_count() or 1)


def _text(values: pd.Series) -> pd.Series:
    """Category values as strings, missing values kept as NaN."""
    return values.astype(str).where(values.notna(), np.nan)


def category_levels(frame: pd.DataFrame, categorical: Sequence[str]) -> dict[str, list[str]]:
    """Sorted string levels of each categorical column, as seen in `frame`."""
    return {c: sorted(_text(frame[c]).dropna().unique().tolist()) for c in categorical}


def coerce_features(frame: pd.DataFrame, features: Sequence[str],
                    levels: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Model input: numeric columns as float64, categoricals with fixed levels (unseen -> NaN)."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ModelError(f"feature columns missing from the frame: {', '.join(map(repr, missing))}")
    out: dict[str, Any] = {}
    for f in features:
        if f in levels:
            text = _text(frame[f])
            out[f] = pd.Categorical(text.where(text.isin(levels[f])), categories=list(levels[f]))
        else:
            try:
                out[f] = pd.to_numeric(frame[f], errors="raise").astype("float64").to_numpy()
            except (TypeError, ValueError) as exc:
                raise ModelError(f"feature {f!r} is not numeric and not declared categorical: {exc}") from None
    return pd.DataFrame(out, index=frame.index)


def label_values(frame: pd.DataFrame, label: str) -> np.ndarray:
    """`frame[label]` as 0/1 integers; raises `ModelError` unless it holds both classes and nothing else."""
    if label not in frame.columns:
        raise ModelError(f"label column {label!r} not in the frame")
    y = pd.to_numeric(frame[label], errors="coerce").to_numpy(dtype=float)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ModelError(f"label column {label!r} must hold only 0 and 1")
    if y.min() == y.max():
        raise ModelError(f"label column {label!r} has a single class")
    return y.astype(int)


# ------------------------------------------------------------------------- logistic regression


def fit_logistic_baseline(train: pd.DataFrame, *, label: str | None = None,
                          features: Sequence[str], categorical: Sequence[str],
                          y: np.ndarray | None = None) -> Pipeline:
    """One-hot + median imputation (with missing indicators) + scaling, then LogisticRegression.

    The label comes from `train[label]` or, for feature-only frames, from `y`.
    """
    y = label_values(train, label) if y is None else np.asarray(y, dtype=int)
    categorical = [c for c in features if c in set(categorical)]
    numeric = [c for c in features if c not in set(categorical)]
    X = coerce_features(train, features, category_levels(train, categorical))
    prep = ColumnTransformer(
        [
            ("num", Pipeline([
                ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
                ("scale", StandardScaler()),
            ]), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
        ],
        sparse_threshold=0.0,
    )
    pipeline = Pipeline([("prep", prep), ("lr", LogisticRegression(C=1.0, max_iter=2000))])
    X_lr = X.astype({c: object for c in categorical})
    return pipeline.fit(X_lr, y)


@dataclass
class LinearScorer:
    """A fitted logistic regression as plain numbers: exact, additive per-feature log-odds terms.

    Numeric feature j contributes coef * (imputed - mean) / scale, plus its missing-indicator term;
    a categorical contributes its level's coefficient minus the training average of that term
    (so contributions are relative to a typical row; `bias` absorbs the averages).
    """

    numeric: list[str]
    medians: list[float]
    means: list[float]
    scales: list[float]
    coefs: list[float]
    indicators: dict[str, list[float]]          # feature -> [mean, scale, coef]
    categorical: list[str]
    levels: list[list[str | None]]               # None is the "missing" level
    level_coefs: list[list[float]]
    level_offsets: list[float]                   # training mean of each categorical's term
    intercept: float

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline, train: pd.DataFrame) -> LinearScorer:
        prep: ColumnTransformer = pipeline.named_steps["prep"]
        lr: LogisticRegression = pipeline.named_steps["lr"]
        coef = lr.coef_.ravel()
        numeric = list(prep.transformers_[0][2])
        categorical = list(prep.transformers_[1][2])
        imputer: SimpleImputer = prep.named_transformers_["num"].named_steps["impute"]
        scaler: StandardScaler = prep.named_transformers_["num"].named_steps["scale"]
        n_num = len(numeric)
        indicator_features = list(imputer.indicator_.features_) if imputer.indicator_ is not None else []
        n_scaled = n_num + len(indicator_features)
        indicators = {
            numeric[j]: [float(scaler.mean_[n_num + i]), float(scaler.scale_[n_num + i]),
                         float(coef[n_num + i])]
            for i, j in enumerate(indicator_features)
        }
        encoder: OneHotEncoder = prep.named_transformers_["cat"]
        levels: list[list[str | None]] = []
        level_coefs: list[list[float]] = []
        offset = n_scaled
        for cats in (encoder.categories_ if categorical else []):
            levels.append([None if pd.isna(v) else str(v) for v in cats])
            level_coefs.append([float(c) for c in coef[offset:offset + len(cats)]])
            offset += len(cats)
        scorer = cls(
            numeric=numeric,
            medians=[float(v) for v in imputer.statistics_],
            means=[float(v) for v in scaler.mean_[:n_num]],
            scales=[float(v) for v in scaler.scale_[:n_num]],
            coefs=[float(v) for v in coef[:n_num]],
            indicators=indicators,
            categorical=categorical,
            levels=levels,
            level_coefs=level_coefs,
            level_offsets=[0.0] * len(categorical),
            intercept=float(lr.intercept_[0]),
        )
        raw = scorer._terms(train)
        scorer.level_offsets = [float(raw[c].mean()) for c in categorical]
        return scorer

    def _terms(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-feature log-odds terms (categoricals not yet centered)."""
        terms: dict[str, np.ndarray] = {}
        for j, f in enumerate(self.numeric):
            x = pd.to_numeric(X[f], errors="coerce").to_numpy(dtype=float)
            missing = np.isnan(x)
            term = self.coefs[j] * (np.where(missing, self.medians[j], x) - self.means[j]) / self.scales[j]
            if f in self.indicators:
                mean, scale, c = self.indicators[f]
                term = term + c * (missing.astype(float) - mean) / scale
            terms[f] = term
        for f, lv, cf in zip(self.categorical, self.levels, self.level_coefs, strict=True):
            lookup = {level: c for level, c in zip(lv, cf, strict=True) if level is not None}
            missing_coef = next((c for level, c in zip(lv, cf, strict=True) if level is None), 0.0)
            values = _text(X[f].astype(object))
            known = values.map(lookup).fillna(0.0).to_numpy(dtype=float)
            terms[f] = np.where(values.isna().to_numpy(), missing_coef, known)
        return pd.DataFrame(terms, index=X.index)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-feature log-odds contributions plus `bias`; each row sums to the decision value."""
        terms = self._terms(X)
        for c, off in zip(self.categorical, self.level_offsets, strict=True):
            terms[c] = terms[c] - off
        terms["bias"] = self.intercept + sum(self.level_offsets)
        return terms

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return self.intercept + self._terms(X).sum(axis=1).to_numpy()


# ---------------------------------------------------------------------------------- calibration


@dataclass
class PlattCalibrator:
    """p = sigmoid(a * score + b); a=1, b=0 is the identity on log-odds scores."""

    a: float = 1.0
    b: float = 0.0

    @property
    def method(self) -> str:
        return "identity" if (self.a, self.b) == (1.0, 0.0) else "platt"

    def __call__(self, score: np.ndarray) -> np.ndarray:
        return expit(self.a * np.asarray(score, dtype=float) + self.b)

    @classmethod
    def fit(cls, score: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(np.asarray(score).reshape(-1, 1), y)
        return cls(a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))


def fit_calibrator(score: np.ndarray, y: np.ndarray, *, seed: int = 0) -> tuple[PlattCalibrator, dict[str, Any]]:
    """Platt scaling on held-out log-odds scores, kept only if it lowers the cross-fitted Brier.

    The Brier of the calibrated probabilities is measured by 5-fold cross-fitting over the
    held-out rows (each row calibrated by a map that did not see it), so the comparison with the
    raw Brier is honest. Returns the calibrator and {"method", "brier_raw", "brier_calibrated"}.
    """
    score = np.asarray(score, dtype=float)
    brier_raw = float(brier_score_loss(y, expit(score)))
    n_splits = int(min(5, np.bincount(y, minlength=2).min()))
    if n_splits < 2:
        return PlattCalibrator(), {"method": "identity", "brier_raw": brier_raw, "brier_calibrated": brier_raw}
    crossfit = np.empty_like(score)
    for fit_idx, eval_idx in StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(score, y):
        crossfit[eval_idx] = PlattCalibrator.fit(score[fit_idx], y[fit_idx])(score[eval_idx])
    brier_platt = float(brier_score_loss(y, crossfit))
    if brier_platt < brier_raw:
        return PlattCalibrator.fit(score, y), {
            "method": "platt", "brier_raw": brier_raw, "brier_calibrated": brier_platt}
    return PlattCalibrator(), {"method": "identity", "brier_raw": brier_raw, "brier_calibrated": brier_raw}


# -------------------------------------------------------------------------------------- model


@dataclass
class ChurnModel:
    """A fitted churn model: averaged LightGBM boosters blended with a linear part, calibrated.

    `blend_weight` is the GBM's weight in log-odds space (1.0 = GBM only, linear unused).
    """

    boosters: list[lgb.Booster]
    linear: LinearScorer | None
    blend_weight: float
    calibrator: PlattCalibrator
    feature_names: list[str]
    categorical: dict[str, list[str]]
    metadata: dict[str, Any] = field(default_factory=dict)

    def _inputs(self, X: pd.DataFrame) -> pd.DataFrame:
        return coerce_features(X, self.feature_names, self.categorical)

    def _gbm_score(self, X: pd.DataFrame) -> np.ndarray:
        threads = _threads(len(X), threshold=PARALLEL_PREDICT_ROWS)
        return np.mean([b.predict(X, raw_score=True, num_threads=threads) for b in self.boosters], axis=0)

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated blended log-odds score."""
        Xc = self._inputs(X)
        score = self.blend_weight * self._gbm_score(Xc)
        if self.linear is not None and self.blend_weight < 1.0:
            score = score + (1.0 - self.blend_weight) * self.linear.decision_function(Xc)
        return score

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated probability: the sigmoid of the blended score."""
        return expit(self.decision_function(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probability per row."""
        return self.calibrator(self.decision_function(X))

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-feature log-odds contributions plus `bias`; each row sums to `decision_function`."""
        Xc = self._inputs(X)
        columns = [*self.feature_names, "bias"]
        threads = _threads(len(Xc), threshold=PARALLEL_PREDICT_ROWS)
        gbm = np.mean([b.predict(Xc, pred_contrib=True, num_threads=threads) for b in self.boosters], axis=0)
        total = pd.DataFrame(self.blend_weight * gbm, columns=columns, index=X.index)
        if self.linear is not None and self.blend_weight < 1.0:
            total = total + (1.0 - self.blend_weight) * self.linear.contributions(Xc)[columns]
        return total

    def importance(self, X: pd.DataFrame) -> pd.Series:
        """Global driver importance: mean |contribution| per feature over the rows of `X`."""
        return self.contributions(X).drop(columns="bias").abs().mean().sort_values(ascending=False)

    def to_bytes(self) -> bytes:
        payload = {
            "format": FORMAT,
            "boosters": [b.model_to_string() for b in self.boosters],
            "linear": asdict(self.linear) if self.linear is not None else None,
            "blend_weight": self.blend_weight,
            "calibrator": asdict(self.calibrator),
            "feature_names": self.feature_names,
            "categorical": self.categorical,
            "metadata": self.metadata,
        }
        return json.dumps(payload).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> ChurnModel:
        payload = json.loads(data.decode("utf-8"))
        if payload.get("format") != FORMAT:
            raise ModelError(f"unsupported model format {payload.get('format')!r}; expected {FORMAT!r}")
        return cls(
            boosters=[lgb.Booster(model_str=s) for s in payload["boosters"]],
            linear=LinearScorer(**payload["linear"]) if payload["linear"] is not None else None,
            blend_weight=float(payload["blend_weight"]),
            calibrator=PlattCalibrator(**payload["calibrator"]),
            feature_names=list(payload["feature_names"]),
            categorical={k: list(v) for k, v in payload["categorical"].items()},
            metadata=payload["metadata"],
        )


# ------------------------------------------------------------------------------------- fitting


def _lgb_params(config: Mapping[str, float], n_rows: int, seed: int) -> dict[str, Any]:
    params = {k: v for k, v in config.items() if k != "min_child_share"}
    params.update(
        objective="binary",
        metric="binary_logloss",
        min_child_samples=int(np.clip(config["min_child_share"] * n_rows, 5, 200)),
        bagging_fraction=0.8,
        bagging_freq=1,
        cat_smooth=10.0,
        cat_l2=10.0,
        min_data_per_group=20,
        max_cat_to_onehot=8,
        num_threads=_threads(n_rows),
        seed=seed,
        deterministic=True,
        force_col_wise=True,
        verbosity=-1,
    )
    return params


def _weights(y: np.ndarray) -> np.ndarray:
    """Positive rows weighted by sqrt(negatives / positives): imbalance handled, not overcorrected."""
    pos = max(int(y.sum()), 1)
    return np.where(y == 1, np.sqrt((len(y) - pos) / pos), 1.0)


def _train_booster(params: Mapping[str, Any], X_tr: pd.DataFrame, y_tr: np.ndarray,
                   X_va: pd.DataFrame, y_va: np.ndarray) -> lgb.Booster:
    train_set = lgb.Dataset(X_tr, y_tr, weight=_weights(y_tr), categorical_feature="auto",
                            free_raw_data=False)
    valid_set = lgb.Dataset(X_va, y_va, weight=_weights(y_va), reference=train_set)
    return lgb.train(
        dict(params), train_set, num_boost_round=MAX_ROUNDS, valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )


def _fit(X: pd.DataFrame, y: np.ndarray, splits: Sequence[tuple[np.ndarray, np.ndarray]], *,
         categorical: Sequence[str], seed: int, tuning_budget: int,
         final_linear_rows: np.ndarray) -> ChurnModel:
    """Select a configuration, blend weight and calibrator on the held-out parts of `splits`.

    Boosters are trained on each split's training part with early stopping on its held-out part
    and averaged; the linear part is refitted on `final_linear_rows`.
    """
    if not 1 <= tuning_budget <= len(PARAM_GRID):
        raise ModelError(f"tuning_budget must be between 1 and {len(PARAM_GRID)}, got {tuning_budget}")
    features = list(X.columns)
    levels = category_levels(X, categorical)
    Xc = coerce_features(X, features, levels)
    held = np.concatenate([va for _, va in splits])
    y_held = y[held]

    trials = []
    for config in PARAM_GRID[:tuning_budget]:
        boosters, scores = [], []
        for tr, va in splits:
            params = _lgb_params(config, len(tr), seed)
            booster = _train_booster(params, Xc.iloc[tr], y[tr], Xc.iloc[va], y[va])
            boosters.append(booster)
            scores.append(booster.predict(Xc.iloc[va], raw_score=True, num_threads=_threads(len(va))))
        gbm_held = np.concatenate(scores)
        trials.append((roc_auc_score(y_held, gbm_held), config, boosters, gbm_held))
    best_auc, best_config, boosters, gbm_held = max(trials, key=lambda t: t[0])

    linear_held = np.concatenate([
        LinearScorer.from_pipeline(
            fit_logistic_baseline(Xc.iloc[tr], features=features, categorical=categorical, y=y[tr]),
            Xc.iloc[tr],
        ).decision_function(Xc.iloc[va])
        for tr, va in splits
    ])
    blend_aucs = {float(w): roc_auc_score(y_held, w * gbm_held + (1 - w) * linear_held) for w in BLEND_GRID}
    weight = max(blend_aucs, key=lambda w: (blend_aucs[w], w))  # ties favour the GBM
    blended_held = weight * gbm_held + (1 - weight) * linear_held
    calibrator, calibration = fit_calibrator(blended_held, y_held, seed=seed)

    linear = None
    if weight < 1.0:
        rows = Xc.iloc[final_linear_rows]
        linear = LinearScorer.from_pipeline(
            fit_logistic_baseline(rows, features=features, categorical=categorical, y=y[final_linear_rows]),
            rows,
        )
    metadata = {
        "params": {k: v for k, v in _lgb_params(best_config, len(splits[0][0]), seed).items()},
        "best_iterations": [int(b.best_iteration) for b in boosters],
        "tuning": [{"config": dict(c), "held_out_roc_auc": float(a)} for a, c, _, _ in trials],
        "blend_weight": weight,
        "blend_held_out_roc_auc": {str(w): float(a) for w, a in blend_aucs.items()},
        "held_out_roc_auc": float(blend_aucs[weight]),
        "calibration": calibration,
        "n_rows": len(X),
        "n_held_out": len(held),
        "positive_rate": float(y.mean()),
        "features": features,
        "categorical": list(levels),
        "seed": seed,
        "versions": {"lightgbm": lgb.__version__, "scikit-learn": sklearn.__version__,
                     "pandas": pd.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
    return ChurnModel(boosters=boosters, linear=linear, blend_weight=weight, calibrator=calibrator,
                      feature_names=features, categorical=levels, metadata=metadata)


def fit_churn_model(train: pd.DataFrame, valid: pd.DataFrame, *, label: str,
                    features: Sequence[str], categorical: Sequence[str], seed: int = 0,
                    tuning_budget: int = 6) -> ChurnModel:
    """Fit on `train`; early stopping, tuning, blend weight and calibration on `valid`.

    `valid` should be the later time window. Category levels are taken from `train` and `valid`
    together (the values are known at fit time; unseen levels at scoring time become missing).
    """
    frame = pd.concat([train[list(features)], valid[list(features)]], ignore_index=True)
    y = np.concatenate([label_values(train, label), label_values(valid, label)])
    train_rows = np.arange(len(train))
    split = (train_rows, np.arange(len(train), len(frame)))
    return _fit(frame, y, [split], categorical=categorical, seed=seed, tuning_budget=tuning_budget,
                final_linear_rows=train_rows)


def fit_churn_model_cv(X: pd.DataFrame, y: np.ndarray, *, categorical: Sequence[str] = (),
                       inner_folds: int = 4, seed: int = 0, tuning_budget: int = 3) -> ChurnModel:
    """Fit on one table: inner stratified folds hold out rows for early stopping, selection and
    calibration; the model averages the fold boosters and refits the linear part on all rows."""
    y = np.asarray(y, dtype=int)
    inner = StratifiedKFold(inner_folds, shuffle=True, random_state=seed + 1)
    splits = list(inner.split(np.zeros(len(y)), y))
    return _fit(X.reset_index(drop=True), y, splits, categorical=categorical, seed=seed,
                tuning_budget=tuning_budget, final_linear_rows=np.arange(len(y)))

"""The churn model: a calibrated blend of LightGBM and logistic regression, and its validation.

The model is built to be robust on the tables churn work actually sees (a few thousand rows,
many categoricals, 5-30 % churners) rather than tuned for one of them:

- **LightGBM** with native categoricals and missing values, positive rows weighted by
  sqrt(negatives / positives) so rare churners shape the trees, and a **capacity chosen by the
  data** (`models.churn.capacity`): a grid from heavily regularized trees through LightGBM's
  defaults to larger ones, each grown with early stopping on held-out rows, the winner chosen by
  held-out ROC-AUC (`tuning_budget` tries only the grid's first configurations).
- A **logistic-regression** component (one-hot + median imputation + scaling). The two are
  blended in log-odds space with a weight chosen on held-out predictions only; weight 1 is the
  pure GBM. Because both parts are additive in log-odds, per-row contributions stay exact:
  LightGBM's `pred_contrib` plus the linear terms, summing to the blended score.
- **Platt calibration** fitted on held-out predictions, never on training rows. It is strictly
  monotone, so rankings (ROC-AUC, lift) are unchanged; it is kept only if it lowers the
  cross-fitted Brier score on those held-out rows, otherwise the identity is used.
- **Row weights** (a training set whose negatives were sampled, `models.churn.sampling`): the
  trees' datasets, the held-out ROC-AUCs that choose the capacity and the blend, the logistic
  regression and the calibration all weigh each row by its weight, so the probabilities stay on
  the population's scale. Without weights (or with every weight 1) the model is exactly the
  unweighted one.

Two ways to fit: `fit_churn_model(train, valid)` for a time split (early stopping, selection and
calibration on the later window) and `fit_churn_model_cv(X, y)` which holds out inner folds of
one table and averages the fold boosters. Validating the model against its baselines (a time
split report, stratified k-fold CV) is `models.churn.validation`.

`ChurnModel.to_bytes()` writes JSON (LightGBM's own text format for the trees, plain numbers for
the linear part and the calibrator): no pickle.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Iterator, Sequence
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
from threadpoolctl import threadpool_limits

from models.churn import capacity
from models.churn.capacity import CAPACITY_GRID, PARALLEL_ROWS
from models.churn.inputs import FeatureArray, ModelError, _text, category_levels, coerce_features


FORMAT = "churn-model/1"
BLEND_GRID = np.round(np.linspace(0.0, 1.0, 11), 2)
#: From this many rows the model's own rows are split once (a quarter held out) instead of into
#: `inner_folds`: the held-out quarter alone is then thousands of rows, enough to tell the
#: configurations apart and to calibrate, and bagging fold boosters gains little at that size
#: while costing a fit per fold (`fit_churn_model_cv`).
SINGLE_SPLIT_ROWS = 20_000


# ------------------------------------------------------------------------------- preparation


PARALLEL_PREDICT_ROWS = 10_000
"""Scoring and explanations split rows across threads with no synchronisation between them, so
they use every allowed thread from far fewer rows than training does (results are identical)."""


def _threads(n_rows: int, *, threshold: int = PARALLEL_ROWS) -> int:
    return capacity.threads(n_rows, threshold=threshold)


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
                          y: np.ndarray | None = None, sample_weight: np.ndarray | None = None) -> Pipeline:
    """One-hot + median imputation (with missing indicators) + scaling, then LogisticRegression.

    The label comes from `train[label]` or, for feature-only frames, from `y`; `sample_weight`
    weighs the rows in the regression (None: every row once).
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
    # BLAS on one thread below PARALLEL_ROWS, as LightGBM: on these small dense problems a
    # second BLAS thread mostly waits (half of the L-BFGS time on 1,000 rows, shared cores)
    with threadpool_limits(limits=_threads(len(X_lr)), user_api="blas"):
        if sample_weight is None:
            return pipeline.fit(X_lr, y)
        return pipeline.fit(X_lr, y, lr__sample_weight=np.asarray(sample_weight, dtype=float))


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

    def _terms(self, X: pd.DataFrame | FeatureArray) -> pd.DataFrame:
        """Per-feature log-odds terms (categoricals not yet centered)."""
        return pd.DataFrame(self._term_arrays(X), index=X.index)

    def _term_arrays(self, X: pd.DataFrame | FeatureArray) -> dict[str, np.ndarray]:
        terms: dict[str, np.ndarray] = {}
        for j, f in enumerate(self.numeric):
            terms[f] = self._numeric_term(j, self._numbers(X, f), np.empty(len(X)))
        for f, term in self._level_terms(X):
            terms[f] = term
        return terms

    @staticmethod
    def _numbers(X: pd.DataFrame | FeatureArray, feature: str) -> np.ndarray:
        if isinstance(X, FeatureArray):
            return X.column(feature)
        return pd.to_numeric(X[feature], errors="coerce").to_numpy(dtype=float)

    def _numeric_term(self, j: int, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """coef * (imputed - mean) / scale of numeric feature j, plus its missing-indicator term,
        written into `out` (operation by operation as the expression, so the same numbers)."""
        missing = np.isnan(x)
        np.copyto(out, x)
        np.copyto(out, self.medians[j], where=missing)
        out -= self.means[j]
        out *= self.coefs[j]
        out /= self.scales[j]
        if self.numeric[j] in self.indicators:
            mean, scale, c = self.indicators[self.numeric[j]]
            # the indicator is 0 or 1: its term takes one of two values
            out += np.where(missing, c * (1.0 - mean) / scale, c * (0.0 - mean) / scale)
        return out

    def _level_terms(self, X: pd.DataFrame | FeatureArray) -> Iterator[tuple[str, np.ndarray]]:
        """(feature, term) of each categorical feature, in order."""
        array = isinstance(X, FeatureArray)
        for f, lv, cf in zip(self.categorical, self.levels, self.level_coefs, strict=True):
            lookup = {level: c for level, c in zip(lv, cf, strict=True) if level is not None}
            missing_coef = next((c for level, c in zip(lv, cf, strict=True) if level is None), 0.0)
            if array:
                # codes into the model's levels, NaN where missing: one coefficient per level
                table = np.array([lookup.get(str(c), 0.0) for c in X.levels[f]] + [missing_coef])
                codes = X.column(f)
                yield f, table[np.where(np.isnan(codes), len(table) - 1, codes).astype(np.intp)]
                continue
            column = X[f]
            if isinstance(column.dtype, pd.CategoricalDtype):
                # the model's own input (`coerce_features`): one coefficient per category, taken
                # by code (a missing value has code -1), not a dictionary lookup per row
                table = np.array([lookup.get(str(c), 0.0) for c in column.cat.categories] + [missing_coef])
                codes = column.cat.codes.to_numpy()
                yield f, table[np.where(codes < 0, len(table) - 1, codes)]
                continue
            values = _text(column.astype(object))
            known = values.map(lookup).fillna(0.0).to_numpy(dtype=float)
            yield f, np.where(values.isna().to_numpy(), missing_coef, known)

    def contributions(self, X: pd.DataFrame | FeatureArray) -> pd.DataFrame:
        """Per-feature log-odds contributions plus `bias`; each row sums to the decision value."""
        terms = self._terms(X)
        for c, off in zip(self.categorical, self.level_offsets, strict=True):
            terms[c] = terms[c] - off
        terms["bias"] = self.intercept + sum(self.level_offsets)
        return terms

    def decision_function(self, X: pd.DataFrame | FeatureArray) -> np.ndarray:
        # the terms summed in feature order, each written into one reused array (no frame, no
        # array per term: scoring pays for them otherwise)
        total = np.full(len(X), float(self.intercept))
        term = np.empty(len(X))
        for j, f in enumerate(self.numeric):
            total += self._numeric_term(j, self._numbers(X, f), term)
        for _, level_term in self._level_terms(X):
            total += level_term
        return total


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
    def fit(cls, score: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> PlattCalibrator:
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(np.asarray(score).reshape(-1, 1), y,
                                                          sample_weight=sample_weight)
        return cls(a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))


def fit_calibrator(score: np.ndarray, y: np.ndarray, *, seed: int = 0,
                   sample_weight: np.ndarray | None = None) -> tuple[PlattCalibrator, dict[str, Any]]:
    """Platt scaling on held-out log-odds scores, kept only if it lowers the cross-fitted Brier.

    The Brier of the calibrated probabilities is measured by 5-fold cross-fitting over the
    held-out rows (each row calibrated by a map that did not see it), so the comparison with the
    raw Brier is honest. Returns the calibrator and {"method", "brier_raw", "brier_calibrated"}.
    `sample_weight` weighs the rows in the fits and in both Brier scores.
    """
    score = np.asarray(score, dtype=float)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
    brier_raw = float(brier_score_loss(y, expit(score), sample_weight=w))
    n_splits = int(min(5, np.bincount(y, minlength=2).min()))
    if n_splits < 2:
        return PlattCalibrator(), {"method": "identity", "brier_raw": brier_raw, "brier_calibrated": brier_raw}
    crossfit = np.empty_like(score)
    for fit_idx, eval_idx in StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(score, y):
        fit_w = None if w is None else w[fit_idx]
        crossfit[eval_idx] = PlattCalibrator.fit(score[fit_idx], y[fit_idx], fit_w)(score[eval_idx])
    brier_platt = float(brier_score_loss(y, crossfit, sample_weight=w))
    if brier_platt < brier_raw:
        return PlattCalibrator.fit(score, y, w), {
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

    def _inputs(self, X: pd.DataFrame) -> FeatureArray:
        if len(X) == 0:
            raise ModelError("no rows to score")
        return FeatureArray(X, self.feature_names, self.categorical)

    def _gbm_score(self, Xc: FeatureArray) -> np.ndarray:
        threads = _threads(len(Xc), threshold=PARALLEL_PREDICT_ROWS)
        return np.mean([b.predict(Xc.values, raw_score=True, num_threads=threads) for b in self.boosters], axis=0)

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
        gbm = np.mean([b.predict(Xc.values, pred_contrib=True, num_threads=threads) for b in self.boosters], axis=0)
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


def _fit(X: pd.DataFrame, y: np.ndarray, splits: Sequence[tuple[np.ndarray, np.ndarray]], *,
         categorical: Sequence[str], seed: int, tuning_budget: int | None,
         final_linear_rows: np.ndarray, row_weight: np.ndarray | None = None) -> ChurnModel:
    """Choose the trees' capacity, the blend weight and the calibrator on the held-out parts of
    `splits` (`models.churn.capacity.select_capacity`); the model averages the chosen
    configuration's boosters, one per split, and refits the linear part on `final_linear_rows`.
    `row_weight` (None: unweighted; all ones is taken as None) weighs every fit and score.
    """
    if row_weight is not None:
        row_weight = np.asarray(row_weight, dtype=float)
        if len(row_weight) != len(y) or not np.all(np.isfinite(row_weight) & (row_weight > 0)):
            raise ModelError("row weights must be one positive finite number per row")
        if np.all(row_weight == 1.0):
            row_weight = None

    def w(rows: np.ndarray) -> np.ndarray | None:
        return None if row_weight is None else row_weight[rows]

    budget = len(CAPACITY_GRID) if tuning_budget is None else tuning_budget
    if not 1 <= budget <= len(CAPACITY_GRID):
        raise ModelError(f"tuning_budget must be between 1 and {len(CAPACITY_GRID)}, got {budget}")
    features = list(X.columns)
    levels = category_levels(X, categorical)
    Xc = coerce_features(X, features, levels)
    held = np.concatenate([va for _, va in splits])
    y_held = y[held]
    w_held = w(held)

    selection = capacity.select_capacity(Xc, y, splits, seed=seed, grid=CAPACITY_GRID[:budget],
                                         row_weight=row_weight)
    gbm_held = selection.held_score

    linear_held = np.concatenate([
        LinearScorer.from_pipeline(
            fit_logistic_baseline(Xc.iloc[tr], features=features, categorical=categorical, y=y[tr],
                                  sample_weight=w(tr)),
            Xc.iloc[tr],
        ).decision_function(Xc.iloc[va])
        for tr, va in splits
    ])
    blend_aucs = {float(b): roc_auc_score(y_held, b * gbm_held + (1 - b) * linear_held, sample_weight=w_held)
                  for b in BLEND_GRID}
    weight = max(blend_aucs, key=lambda b: (blend_aucs[b], b))  # ties favour the GBM
    blended_held = weight * gbm_held + (1 - weight) * linear_held
    calibrator, calibration = fit_calibrator(blended_held, y_held, seed=seed, sample_weight=w_held)

    linear = None
    if weight < 1.0:
        rows = Xc.iloc[final_linear_rows]
        linear = LinearScorer.from_pipeline(
            fit_logistic_baseline(rows, features=features, categorical=categorical, y=y[final_linear_rows],
                                  sample_weight=w(final_linear_rows)),
            rows,
        )
    metadata = {
        "params": capacity.lgb_params(selection.config, len(splits[0][0]), seed),
        "capacity": selection.config["name"],
        "best_iterations": [int(b.num_trees()) for b in selection.boosters],
        "tuning": selection.trials,
        "inner_splits": len(splits),
        "blend_weight": weight,
        "blend_held_out_roc_auc": {str(w): float(a) for w, a in blend_aucs.items()},
        "held_out_roc_auc": float(blend_aucs[weight]),
        "calibration": calibration,
        "n_rows": len(X),
        "n_held_out": len(held),
        "positive_rate": float(np.average(y, weights=row_weight)),
        "weighted_rows": float(len(X) if row_weight is None else row_weight.sum()),
        "row_weights": row_weight is not None,
        "features": features,
        "categorical": list(levels),
        "seed": seed,
        "versions": {"lightgbm": lgb.__version__, "scikit-learn": sklearn.__version__,
                     "pandas": pd.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
    return ChurnModel(boosters=selection.boosters, linear=linear, blend_weight=weight,
                      calibrator=calibrator, feature_names=features, categorical=levels,
                      metadata=metadata)


def fit_churn_model(train: pd.DataFrame, valid: pd.DataFrame, *, label: str,
                    features: Sequence[str], categorical: Sequence[str], seed: int = 0,
                    tuning_budget: int | None = None, weight: str | None = None) -> ChurnModel:
    """Fit on `train`; early stopping, capacity, blend weight and calibration on `valid`.

    `weight` names a column of row weights (of `train`, and of `valid` when it has it; rows of a
    frame without it weigh 1): a training set whose negatives were sampled.

    `valid` should be the later time window. Category levels are taken from `train` and `valid`
    together (the values are known at fit time; unseen levels at scoring time become missing).
    `tuning_budget` tries only the first configurations of `CAPACITY_GRID` (all when None).
    """
    frame = pd.concat([train[list(features)], valid[list(features)]], ignore_index=True)
    y = np.concatenate([label_values(train, label), label_values(valid, label)])
    train_rows = np.arange(len(train))
    split = (train_rows, np.arange(len(train), len(frame)))
    row_weight = None
    if weight is not None:
        row_weight = np.concatenate([
            pd.to_numeric(part[weight], errors="coerce").to_numpy(dtype=float) if weight in part.columns
            else np.ones(len(part)) for part in (train, valid)])
    return _fit(frame, y, [split], categorical=categorical, seed=seed, tuning_budget=tuning_budget,
                final_linear_rows=train_rows, row_weight=row_weight)


def fit_churn_model_cv(X: pd.DataFrame, y: np.ndarray, *, categorical: Sequence[str] = (),
                       inner_folds: int = 4, seed: int = 0,
                       tuning_budget: int | None = None, sample_weight: np.ndarray | None = None) -> ChurnModel:
    """Fit on one table: inner stratified folds hold out rows for early stopping, capacity
    selection and calibration; the model averages the fold boosters and refits the linear part
    on all rows. From `SINGLE_SPLIT_ROWS` rows only the first inner fold is used (one booster
    trained on three quarters of the rows, the last quarter held out)."""
    y = np.asarray(y, dtype=int)
    inner = StratifiedKFold(inner_folds, shuffle=True, random_state=seed + 1)
    splits = list(inner.split(np.zeros(len(y)), y))
    if len(y) >= SINGLE_SPLIT_ROWS:
        splits = splits[:1]
    return _fit(X.reset_index(drop=True), y, splits, categorical=categorical, seed=seed,
                tuning_budget=tuning_budget, final_linear_rows=np.arange(len(y)), row_weight=sample_weight)

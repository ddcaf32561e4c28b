"""Metrics and pictures for churn models, computed the same way for the model and its baselines.

Scores are "higher means more likely to churn". Ranking metrics (ROC-AUC, PR-AUC, top-decile
lift, recall at the team's capacity) accept any such score; probability metrics (Brier, log-loss,
expected calibration error) are only meaningful for probabilities and are left out by `evaluate`
when the scores are not in [0, 1].

`auc_intervals` puts a confidence interval on ROC-AUC by a paired, stratified bootstrap of the
validation rows (optionally of whole accounts), for the promotion gate and the report.

Plots are rendered with matplotlib's object API (no pyplot global state, safe in threads) and
returned as PNG bytes, ready for a report file or Dagster's `MetadataValue.md` image embedding.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from models.charts import figure_png
import pandas as pd
from matplotlib.figure import Figure
from scipy import sparse
from sklearn import metrics as skm


def _arrays(y_true: object, scores: object) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length ({y.shape} vs {s.shape})")
    return y, s


def expected_calibration_error(y_true: object, proba: object, *, bins: int = 10) -> float:
    """Share-weighted mean |observed churn rate - mean predicted probability| over equal-width bins."""
    y, p = _arrays(y_true, proba)
    which = np.clip((p * bins).astype(int), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    observed = np.bincount(which, weights=y, minlength=bins)
    predicted = np.bincount(which, weights=p, minlength=bins)
    used = counts > 0
    gaps = np.abs(observed[used] - predicted[used]) / counts[used]
    return float(np.sum(gaps * counts[used]) / len(y))


def _top_order(scores: np.ndarray) -> np.ndarray:
    """Row order from highest to lowest score; ties keep their original order."""
    return np.argsort(-scores, kind="stable")


def recall_at_k(y_true: object, scores: object, k: int) -> float:
    """Share of all churners found among the k highest-scored rows (the team's capacity)."""
    y, s = _arrays(y_true, scores)
    positives = y.sum()
    if positives == 0:
        return float("nan")
    k = int(min(max(k, 0), len(y)))
    return float(y[_top_order(s)[:k]].sum() / positives)


def top_decile_lift(y_true: object, scores: object, *, share: float = 0.1) -> float:
    """Churn rate among the top `share` of scores divided by the overall churn rate."""
    y, s = _arrays(y_true, scores)
    base = y.mean()
    if base == 0:
        return float("nan")
    k = max(1, int(round(share * len(y))))
    return float(y[_top_order(s)[:k]].mean() / base)


def evaluate(y_true: object, scores: object, *, capacity_k: int | None = None) -> dict[str, float]:
    """All metrics for one set of scores: ranking metrics always, probability metrics when valid."""
    y, s = _arrays(y_true, scores)
    result = {
        "roc_auc": float(skm.roc_auc_score(y, s)),
        "pr_auc": float(skm.average_precision_score(y, s)),
        "top_decile_lift": top_decile_lift(y, s),
    }
    if np.all((s >= 0) & (s <= 1)):
        result["brier"] = float(skm.brier_score_loss(y, s))
        result["log_loss"] = float(skm.log_loss(y, np.clip(s, 1e-15, 1 - 1e-15), labels=[0, 1]))
        result["ece"] = expected_calibration_error(y, s)
    if capacity_k is not None:
        result["recall_at_k"] = recall_at_k(y, s, capacity_k)
        result["k"] = float(capacity_k)
    return result


# ----------------------------------------------------------------------------------------- plots


def _png(fig: Figure) -> bytes:
    return figure_png(fig, tight=False, bbox_inches="tight")


def roc_plot(y_true: object, scores: Mapping[str, object]) -> bytes:
    """ROC curves of several scorers on the same rows, with their AUC in the legend."""
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot()
    for name, s in scores.items():
        y, s = _arrays(y_true, s)
        fpr, tpr, _ = skm.roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {skm.roc_auc_score(y, s):.3f})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def calibration_table(y_true: object, proba: object, *, bins: int = 10) -> pd.DataFrame:
    """Per quantile bin of the predicted probability (deciles by default), lowest first: its
    rows, mean predicted probability, observed churn rate and their difference."""
    y, p = _arrays(y_true, proba)
    frame = pd.DataFrame({"y": y, "p": p})
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), q=max(1, min(bins, len(frame))), labels=False)
    grouped = frame.groupby("bin")
    out = pd.DataFrame({
        "bin": np.arange(1, grouped.ngroups + 1),
        "rows": grouped.size().to_numpy(),
        "mean_predicted": grouped["p"].mean().to_numpy(),
        "observed_rate": grouped["y"].mean().to_numpy(),
    })
    out["observed_minus_predicted"] = out["observed_rate"] - out["mean_predicted"]
    return out


def calibration_plot(y_true: object, probas: Mapping[str, object], *, bins: int = 10) -> bytes:
    """Observed churn rate against mean predicted probability per quantile bin, on axes that
    span the bins (churn probabilities are mostly small: on the whole unit square every point
    would sit in its corner)."""
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot()
    highest = 0.0
    for name, p in probas.items():
        means = calibration_table(y_true, p, bins=bins)
        highest = max(highest, float(means["mean_predicted"].max()), float(means["observed_rate"].max()))
        ax.plot(means["mean_predicted"], means["observed_rate"], marker="o", label=name)
    top = min(1.0, max(0.05, highest * 1.1))
    ax.plot([0, top], [0, top], linestyle=":", color="grey", label="perfect")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="mean predicted probability", ylabel="observed churn rate",
           title=f"Calibration ({bins} quantile bins)")
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def gains_plot(y_true: object, scores: Mapping[str, object]) -> bytes:
    """Cumulative gains (share of churners caught vs share of accounts contacted) and lift."""
    fig = Figure(figsize=(9, 4))
    gains_ax, lift_ax = fig.subplots(1, 2)
    for name, s in scores.items():
        y, s = _arrays(y_true, s)
        caught = np.cumsum(y[_top_order(s)]) / max(y.sum(), 1)
        contacted = np.arange(1, len(y) + 1) / len(y)
        gains_ax.plot(contacted, caught, label=name)
        lift_ax.plot(contacted, caught / contacted, label=name)
    gains_ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="random")
    gains_ax.set(xlabel="share of accounts contacted", ylabel="share of churners caught",
                 title="Cumulative gains")
    lift_ax.axhline(1.0, linestyle=":", color="grey")
    lift_ax.set(xlabel="share of accounts contacted", ylabel="lift", title="Lift")
    gains_ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def importance_plot(importance: pd.Series, *, top: int = 20) -> bytes:
    """Horizontal bars of the largest global importances (e.g. mean |contribution| per feature)."""
    largest = importance.sort_values(ascending=False).head(top).iloc[::-1]
    fig = Figure(figsize=(6, 0.3 * len(largest) + 1.2))
    ax = fig.add_subplot()
    ax.barh([str(i) for i in largest.index], largest.to_numpy())
    ax.set(xlabel="mean |contribution| (log-odds)", title="Global driver importance")
    return _png(fig)


# ------------------------------------------------------------------------------- uncertainty

#: Resamples behind every ROC-AUC interval, and their seed: fixed, so a rerun on the same rows
#: gives the same interval and the same promotion decision.
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
#: Resamples are drawn in chunks of about this many (resample x row) cells: bounded memory on a
#: large validation window.
_CELLS_PER_CHUNK = 4_000_000
#: Above this many rows the intervals come from an m-out-of-n bootstrap (`auc_intervals`): the
#: bootstrap's cost grows with rows x resamples (minutes at the 2 million validation rows of a
#: million-account company) while its answer at that size is a width of a few thousandths.
INTERVAL_ROWS = 100_000


class _Ranks:
    """One scorer's rows grouped by score level, ready for weighted Mann-Whitney AUCs."""

    def __init__(self, y: np.ndarray, scores: np.ndarray):
        levels, group = np.unique(scores, return_inverse=True)
        n, rows = len(y), np.arange(len(y))
        self.pos = sparse.csr_matrix((y, (rows, group)), shape=(n, len(levels)))
        self.neg = sparse.csr_matrix((1.0 - y, (rows, group)), shape=(n, len(levels)))

    def aucs(self, weights: sparse.csr_matrix) -> np.ndarray:
        """ROC-AUC under each row of ``weights`` (resample counts per row): for every churner,
        the weight of non-churners scored below it plus half of those tied with it, summed, over
        (weight of churners x weight of non-churners)."""
        P = (weights @ self.pos).toarray()  # resample x score level
        N = (weights @ self.neg).toarray()
        below = np.cumsum(N, axis=1) - N
        return (P * (below + 0.5 * N)).sum(axis=1) / (P.sum(axis=1) * N.sum(axis=1))


def _units(y: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Each row's unit (a row, or with ``groups`` every row of one group: an account seen at
    several dates) and, per unit, whether it holds a churner (the bootstrap's strata)."""
    codes = np.arange(len(y)) if groups is None else pd.factorize(groups)[0]
    churning = np.zeros(codes.max() + 1, dtype=bool)
    churning[codes[y == 1]] = True
    return codes, churning


def _cluster_weights(codes: np.ndarray, churning: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Resample counts (size x rows), stratified: units with a churner are drawn from those
    units, the others from the others, so each resample keeps the number of churning units."""
    unit_counts = np.zeros((size, len(churning)))
    for stratum in (churning, ~churning):
        units = np.flatnonzero(stratum)
        if len(units):
            unit_counts[:, units] = rng.multinomial(len(units), np.full(len(units), 1.0 / len(units)), size=size)
    return unit_counts[:, codes]


def _unit_subsample(codes: np.ndarray, churning: np.ndarray, rows: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The rows of a seeded sample of whole units, the same share of each stratum, about ``rows``
    of them; and the share of units kept."""
    share = min(1.0, rows / len(codes))
    keep = np.zeros(len(churning), dtype=bool)
    for stratum in (churning, ~churning):
        units = np.flatnonzero(stratum)
        if len(units):
            keep[rng.choice(units, size=max(1, round(share * len(units))), replace=False)] = True
    return np.flatnonzero(keep[codes]), float(keep.sum()) / len(churning)


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(values, [tail, 100.0 - tail])
    return float(lo), float(hi)


def auc_intervals(y_true: object, scores: Mapping[str, object], *, reference: str,
                  groups: object | None = None, resamples: int = BOOTSTRAP_RESAMPLES,
                  seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE,
                  max_rows: int = INTERVAL_ROWS) -> dict[str, dict[str, float]]:
    """Paired, stratified bootstrap of ROC-AUC on one set of rows.

    Every scorer is evaluated on the same resamples (paired), so the difference between
    ``reference`` and each other scorer gets its own interval, narrower than the two intervals
    side by side suggest when the scorers agree on which rows are hard. With ``groups`` (e.g. the
    account id of each row) whole groups are resampled: rows of one account at several
    observation dates are not independent evidence. Percentile intervals at ``confidence``.

    Above ``max_rows`` rows the resamples are drawn from a seeded stratified sample of about
    ``max_rows`` rows of whole units (an m-out-of-n bootstrap): each resample's deviation from
    the sample's own ROC-AUC is scaled by sqrt(units sampled / units) and added to the ROC-AUC of
    every row, the usual rescaling for a statistic whose error shrinks as one over the root of
    the units (`tests/model/test_metrics.py` holds its widths to the full bootstrap's).

    Returns, per scorer, {"roc_auc", "low", "high"} and, for every scorer but the reference,
    {"diff", "diff_low", "diff_high"} (reference minus that scorer); each entry also carries
    "resamples", "seed", "confidence", "rows", "churn_rows", "churners" (churning units) and
    "bootstrap_rows" (the rows resampled: all of them, or the m-out-of-n sample's).
    """
    y = np.asarray(y_true, dtype=float)
    if reference not in scores:
        raise ValueError(f"reference scorer {reference!r} not among {sorted(scores)}")
    if y.size == 0 or y.min() == y.max():
        raise ValueError("ROC-AUC intervals need both churners and non-churners")
    g = None if groups is None else np.asarray(groups)
    arrays = {name: np.asarray(s, dtype=float) for name, s in scores.items()}
    full = {name: float(skm.roc_auc_score(y, s)) for name, s in arrays.items()}
    rng = np.random.default_rng(seed)
    codes, churning = _units(y, g)
    rows, scale = np.arange(len(y)), 1.0
    if len(y) > max_rows:
        rows, share = _unit_subsample(codes, churning, max_rows, rng)
        scale = float(np.sqrt(share))
        codes, churning = _units(y[rows], None if g is None else g[rows])
    ys = y[rows]
    ranks = {name: _Ranks(ys, s[rows]) for name, s in arrays.items()}
    samples = {name: np.empty(resamples) for name in arrays}
    step = max(1, _CELLS_PER_CHUNK // len(ys))
    for start in range(0, resamples, step):
        size = min(step, resamples - start)
        weights = sparse.csr_matrix(_cluster_weights(codes, churning, size, rng))
        for name, r in ranks.items():
            samples[name][start:start + size] = r.aucs(weights)
    if scale != 1.0:  # m-out-of-n: the sample's deviations, rescaled, around every row's ROC-AUC
        for name in arrays:
            samples[name] = full[name] + scale * (samples[name] - skm.roc_auc_score(ys, arrays[name][rows]))
    churners = float(len(y[y == 1]) if g is None else pd.Series(g[y == 1]).nunique())
    common = {"resamples": float(resamples), "seed": float(seed), "confidence": confidence,
              "rows": float(len(y)), "churn_rows": float(y.sum()), "churners": churners,
              "bootstrap_rows": float(len(rows))}
    out: dict[str, dict[str, float]] = {}
    for name in arrays:
        lo, hi = _interval(samples[name], confidence)
        out[name] = {"roc_auc": full[name], "low": lo, "high": hi, **common}
        if name != reference:
            d_lo, d_hi = _interval(samples[reference] - samples[name], confidence)
            out[name].update(diff=full[reference] - full[name], diff_low=d_lo, diff_high=d_hi)
    return out

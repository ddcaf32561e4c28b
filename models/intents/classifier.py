"""The intent classifier: TF-IDF on words and characters, a logistic regression, calibrated
probabilities, a champion gate against the keyword rules and a confidence threshold for triage.

Pure (scikit-learn, numpy, pandas); no weights are downloaded, everything is fitted on the
tickets given.

- **Text**: subject and body joined (`ticket_texts`). Features: word 1-2-grams and character
  2-5-grams inside word boundaries (`char_wb`; the character grams keep a word recognisable
  through a typo), both TF-IDF with sublinear term frequency. Model: multinomial logistic
  regression.
- **Time, not chance, splits the data** (`time_split`): evaluation trains on earlier tickets and
  tests on later ones, as the classifier will be used.
- **Calibration on the training window only** (`fit_classifier`): the training window is split
  in time again; the model is fitted on its earlier `1 - calibration_share` and a single
  temperature (`CalibratedClassifierCV(FrozenEstimator(...), method="temperature")`, softmax of
  the logits over T, which keeps the ranking and the predicted intent) is fitted on its latest
  `calibration_share`. This is the documented alternative to cross-validated calibration: one
  fit instead of several, and the held-out part lies after the fitted part, as the test window
  does. `uncalibrated_proba` gives the raw probabilities for comparison.
- **Triage threshold** (`choose_threshold`, on the same calibration part of the training
  window): the lowest top probability such that the tickets at or above it are classified with
  at least `target_precision` (default 0.99) precision there; tickets below it go to human
  triage (`IntentClassifier.triage`). Calibrated probabilities make the threshold mean what it
  says on later tickets too. If no threshold reaches the target, the threshold is the highest
  top probability seen, so nearly every ticket goes to humans, and `target_reached` is False.
- **Evaluation** (`evaluate`): macro-F1, per-intent precision, recall, F1 and support, the
  confusion matrix, and a 95% interval for macro-F1 from `RESAMPLES` seeded bootstrap resamples
  of the test tickets (vectorised: one confusion matrix per resample by `bincount`).
- **The gate** (`decide`): a challenger is promoted only if (1) against the keyword baseline and
  (2) against the champion, when there is one, the 95% interval of the paired bootstrap
  difference in macro-F1 (challenger minus other, same resamples) lies above 0, and (3) its
  `compliance_query` recall on the test window is at least `compliance_recall` (default 0.9).
  Every comparison gives one reason in words, passed or not.
- **Serialisation** (`to_bytes`, `from_bytes`): pickle of the fitted scikit-learn objects behind
  a format tag; the bytes are the product's own artefact, read only from its own store.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from models.intents.text import INTENT_NAMES

#: Bootstrap resamples for the macro-F1 intervals and the gate.
RESAMPLES = 1000
#: Default lowest `compliance_query` recall for a promotion.
COMPLIANCE_RECALL = 0.9
#: Default precision the auto-routed tickets must keep; below the threshold tickets go to humans.
TARGET_PRECISION = 0.99
_FORMAT = b"intent-classifier/1\n"


def ticket_texts(frame: pd.DataFrame) -> list[str]:
    """Subject and body of each ticket, joined as the model reads them."""
    return (frame["subject"].astype(str) + "\n" + frame["body"].astype(str)).tolist()


def time_split(frame: pd.DataFrame, *, test_share: float = 0.3, time_column: str = "created_at") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Earlier tickets (train) and the latest `test_share` of them (test), by `time_column`."""
    ordered = frame.sort_values(time_column, kind="stable")
    cut = int(round(len(ordered) * (1 - test_share)))
    return ordered.iloc[:cut], ordered.iloc[cut:]


def _pipeline(seed: int) -> Pipeline:
    features = FeatureUnion([
        ("words", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True)),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True,
                                  lowercase=True, max_features=60_000)),
    ])
    return Pipeline([("features", features), ("model", LogisticRegression(C=4.0, max_iter=300, random_state=seed))])


def choose_threshold(proba: np.ndarray, y_true: np.ndarray, classes: np.ndarray, *,
                     target_precision: float = TARGET_PRECISION) -> tuple[float, bool]:
    """The lowest top probability at which the tickets at or above it reach `target_precision`,
    and whether the target was reached at all (if not: the highest top probability, so that
    almost everything goes to humans)."""
    top = proba.max(axis=1)
    correct = classes[proba.argmax(axis=1)] == np.asarray(y_true)
    order = np.argsort(-top, kind="stable")
    precision = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    reaching = np.flatnonzero(precision >= target_precision)
    if len(reaching) == 0:
        return float(top.max()), False
    return float(top[order][reaching[-1]]), True


@dataclass
class IntentClassifier:
    """A fitted, calibrated classifier and its triage threshold."""

    calibrated: CalibratedClassifierCV
    base: Pipeline
    threshold: float
    target_precision: float
    target_reached: bool
    classes: np.ndarray = field(repr=False)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities, one column per intent in `classes`."""
        return self.calibrated.predict_proba(ticket_texts(frame))

    def uncalibrated_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """The logistic regression's own probabilities, for comparison."""
        return self.base.predict_proba(ticket_texts(frame))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The most probable intent of each ticket."""
        return self.classes[self.predict_proba(frame).argmax(axis=1)]

    def triage(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`intent`, `confidence` (top calibrated probability) and `to_human` (confidence below
        `threshold`) per ticket, on `frame`'s index."""
        proba = self.predict_proba(frame)
        confidence = proba.max(axis=1)
        return pd.DataFrame({"intent": self.classes[proba.argmax(axis=1)], "confidence": confidence,
                             "to_human": confidence < self.threshold}, index=frame.index)

    def to_bytes(self) -> bytes:
        return _FORMAT + pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def from_bytes(data: bytes) -> "IntentClassifier":
        if not data.startswith(_FORMAT):
            raise ValueError("these bytes are not a saved intent classifier (format tag missing)")
        loaded = pickle.loads(data[len(_FORMAT):])
        if not isinstance(loaded, IntentClassifier):
            raise ValueError("these bytes do not hold an intent classifier")
        return loaded


def fit_classifier(train: pd.DataFrame, *, calibration_share: float = 0.3, target_precision: float = TARGET_PRECISION,
                   seed: int = 0, time_column: str = "created_at") -> IntentClassifier:
    """Fit on the earlier part of `train`, calibrate and choose the triage threshold on its latest
    `calibration_share` (see the module docstring)."""
    fit_part, calibration_part = time_split(train, test_share=calibration_share, time_column=time_column)
    missing = sorted(set(INTENT_NAMES) & set(train["intent"]) - set(fit_part["intent"]))
    if missing:
        raise ValueError(f"the fitting part of the training window has no tickets of {missing}")
    base = _pipeline(seed).fit(ticket_texts(fit_part), fit_part["intent"].astype(str).to_numpy())
    calibrated = CalibratedClassifierCV(FrozenEstimator(base), method="temperature")
    y_cal = calibration_part["intent"].astype(str).to_numpy()
    calibrated.fit(ticket_texts(calibration_part), y_cal)
    classes = np.asarray(calibrated.classes_, dtype=object)
    proba = calibrated.predict_proba(ticket_texts(calibration_part))
    threshold, reached = choose_threshold(proba, y_cal, classes, target_precision=target_precision)
    return IntentClassifier(calibrated=calibrated, base=base, threshold=threshold, target_precision=target_precision,
                            target_reached=reached, classes=classes)


def multiclass_brier(y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Mean over tickets of the squared distance between the probability vector and the one-hot
    truth (0 perfect, 2 worst)."""
    onehot = (np.asarray(classes)[None, :] == np.asarray(y_true)[:, None]).astype(float)
    return float(((proba - onehot) ** 2).sum(axis=1).mean())


def _codes(y_true: np.ndarray, preds: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    labels = sorted(set(map(str, y_true)))
    index = {label: i for i, label in enumerate(labels)}
    other = len(labels)  # predictions of an intent absent from the truth: wrong for every label
    truth = np.asarray([index[str(v)] for v in y_true])
    return labels, truth, {k: np.asarray([index.get(str(v), other) for v in p]) for k, p in preds.items()}


def _macro_f1(truth: np.ndarray, pred: np.ndarray, k: int, rows: np.ndarray) -> np.ndarray:
    """Macro-F1 over the `k` true labels for each row of index array `rows` (resamples x n)."""
    size = (k + 1) * (k + 1)
    cells = truth[rows] * (k + 1) + pred[rows]
    flat = (np.arange(rows.shape[0])[:, None] * size + cells).ravel()
    cm = np.bincount(flat, minlength=rows.shape[0] * size).reshape(rows.shape[0], k + 1, k + 1)
    tp = np.diagonal(cm, axis1=1, axis2=2)[:, :k]
    actual = cm.sum(axis=2)[:, :k]
    predicted = cm.sum(axis=1)[:, :k]
    denominator = actual + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros(tp.shape, dtype=float), where=denominator > 0)
    return f1.mean(axis=1)


#: Most resampled ticket indices held at once (resamples x tickets), so a large window is
#: resampled in chunks rather than in one matrix.
_CHUNK_CELLS = 2_000_000


def _bootstrap(truth: np.ndarray, coded: dict[str, np.ndarray], k: int, resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Macro-F1 of each coded prediction on the same `resamples` seeded resamples (paired)."""
    n = len(truth)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(n, 1))
    out: dict[str, list[np.ndarray]] = {name: [] for name in coded}
    for start in range(0, resamples, chunk):
        rows = rng.integers(0, n, (min(chunk, resamples - start), n))
        for name, pred in coded.items():
            out[name].append(_macro_f1(truth, pred, k, rows))
    return {name: np.concatenate(parts) for name, parts in out.items()}


def _interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class IntentEvaluation:
    macro_f1: float
    macro_f1_interval: tuple[float, float]
    per_intent: pd.DataFrame
    confusion: pd.DataFrame


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, *, resamples: int = RESAMPLES, seed: int = 0) -> IntentEvaluation:
    """Macro-F1 (with its bootstrap interval), per-intent precision/recall/F1/support and the
    confusion matrix (rows true, columns predicted) of `y_pred` against `y_true`."""
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    labels, truth, coded = _codes(y_true, {"pred": y_pred})
    k = len(labels)
    everything = np.arange(len(truth))[None, :]
    point = float(_macro_f1(truth, coded["pred"], k, everything)[0])
    boot = _bootstrap(truth, coded, k, resamples, seed)["pred"]
    columns = sorted(set(labels) | set(map(str, y_pred)))
    confusion = pd.crosstab(pd.Series(y_true, name="true"), pd.Series(y_pred, name="predicted")).reindex(
        index=labels, columns=columns, fill_value=0)
    tp = np.array([confusion.loc[label, label] if label in confusion.columns else 0 for label in labels], dtype=float)
    support = confusion.sum(axis=1).to_numpy(dtype=float)
    predicted = np.array([confusion[label].sum() if label in confusion.columns else 0 for label in labels], dtype=float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=(support + predicted) > 0)
    per_intent = pd.DataFrame({"precision": precision, "recall": recall, "f1": f1, "support": support.astype(int)},
                              index=pd.Index(labels, name="intent"))
    return IntentEvaluation(macro_f1=point, macro_f1_interval=_interval(boot), per_intent=per_intent, confusion=confusion)


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: tuple[str, ...]
    metrics: dict[str, float]


def decide(y_true: np.ndarray, challenger: np.ndarray, *, baseline: np.ndarray, champion: np.ndarray | None = None,
           compliance_recall: float = COMPLIANCE_RECALL, resamples: int = RESAMPLES, seed: int = 0) -> GateDecision:
    """Whether the challenger's predictions on the test window earn promotion (module docstring:
    beats the keyword baseline and the champion beyond noise, and keeps compliance recall)."""
    y_true = np.asarray(y_true, dtype=object)
    preds = {"challenger": np.asarray(challenger, dtype=object), "keyword baseline": np.asarray(baseline, dtype=object)}
    if champion is not None:
        preds["champion"] = np.asarray(champion, dtype=object)
    labels, truth, coded = _codes(y_true, preds)
    k = len(labels)
    everything = np.arange(len(truth))[None, :]
    point = {name: float(_macro_f1(truth, c, k, everything)[0]) for name, c in coded.items()}
    boot = _bootstrap(truth, coded, k, resamples, seed)
    metrics: dict[str, float] = {f"macro_f1_{name.replace(' ', '_')}": v for name, v in point.items()}
    reasons: list[str] = []
    passed = True
    for other in [name for name in preds if name != "challenger"]:
        low, high = _interval(boot["challenger"] - boot[other])
        metrics[f"macro_f1_diff_low_{other.replace(' ', '_')}"] = low
        difference = point["challenger"] - point[other]
        if low > 0:
            reasons.append(f"macro-F1 {point['challenger']:.3f} beats the {other}'s {point[other]:.3f} beyond noise "
                           f"(difference {difference:+.3f}, 95% interval {low:+.3f} to {high:+.3f})")
        else:
            passed = False
            verdict = "does not beat" if difference <= 0 else "is not clearly better than"
            reasons.append(f"macro-F1 {point['challenger']:.3f} {verdict} the {other}'s {point[other]:.3f} "
                           f"(difference {difference:+.3f}, 95% interval {low:+.3f} to {high:+.3f}, must lie above 0)")
    compliance = y_true == "compliance_query"
    if not compliance.any():
        passed = False
        reasons.append("the test window holds no compliance_query ticket, so its recall cannot be checked")
    else:
        recall = float((preds["challenger"][compliance] == "compliance_query").mean())
        metrics["compliance_recall"] = recall
        if recall >= compliance_recall:
            reasons.append(f"compliance_query recall {recall:.3f} meets the {compliance_recall:.2f} threshold "
                           f"({int(compliance.sum())} tickets)")
        else:
            passed = False
            reasons.append(f"compliance_query recall {recall:.3f} is below the {compliance_recall:.2f} threshold "
                           f"({int(compliance.sum())} tickets): compliance tickets would miss legal")
    return GateDecision(promote=passed, reasons=tuple(reasons), metrics=metrics)

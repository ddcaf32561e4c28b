"""Champion/challenger: a newly trained model replaces the champion only when it is better, and
only when the validation window holds enough evidence to say so.

The decision is pure: metric dicts (and ROC-AUC intervals) in, a `PromotionDecision` out, with
one reason per comparison so the gate's outcome can be shown as it is (in an asset check's
metadata, in a log, in the model report). All metrics must be measured on the same validation
window.

**The rule on ROC-AUC, with intervals** (`models.churn.evaluation.auc_intervals`: 1,000 seeded,
paired bootstrap resamples of the validation window's accounts, stratified by whether the
account churned):

1. The window must hold at least `MIN_VALID_CHURNERS` distinct churning accounts. An account
   seen at several observation dates counts once: its rows are not independent evidence.
2. Against every baseline, the 95% interval of the *paired difference* (challenger minus
   baseline, on the same resamples) must lie above 0. This is stricter than asking the
   challenger's own lower bound to clear the baseline's point estimate where it matters: it
   carries the baseline's uncertainty too, and the pairing keeps it from being needlessly wide
   when both scorers find the same accounts hard.
3. Against the champion (when there is one), the challenger's point estimate may be worse by at
   most `tolerance`.

With too few churners (1) the decision is *not enough evidence*, whatever the point estimates
say. Otherwise a challenger whose point estimate does not beat a baseline, or is worse than the
champion, is *refused*, and one that wins on point estimates but fails 2 is *not enough
evidence*; the reasons say which comparison failed and give the intervals. Without intervals (other metrics,
or callers that have none) only the point estimates are compared, as before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

LOWER_IS_BETTER = frozenset({"brier", "log_loss", "ece"})
#: Fewest distinct churning accounts in the validation window for a promotion. With fewer, the
#: bootstrap has too few churners to resample and its interval cannot be trusted. In the demo's
#: windows (two observation dates 28 days apart, a 90-day horizon) an account that churns is
#: usually labelled at both dates, so 30 churning accounts are about 50 churn labels.
MIN_VALID_CHURNERS = 30
#: The key of the challenger in an interval mapping (`auc_intervals(..., reference=CHALLENGER)`).
CHALLENGER = "model"

PROMOTED, REFUSED, NOT_ENOUGH_EVIDENCE = "promoted", "refused", "not enough evidence"


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    #: False when the point estimates would promote but the evidence does not carry them.
    enough_evidence: bool = True
    #: The challenger's ROC-AUC interval ({"roc_auc", "low", "high", "confidence", ...}), if any.
    interval: Mapping[str, float] | None = None

    @property
    def verdict(self) -> str:
        """promoted, refused, or not enough evidence."""
        if self.promote:
            return PROMOTED
        return REFUSED if self.enough_evidence else NOT_ENOUGH_EVIDENCE


def _value(metrics: Mapping[str, float], metric: str) -> float | None:
    value = metrics.get(metric)
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def interval_text(interval: Mapping[str, float], key: str = "") -> str:
    """"0.957 (95% CI 0.942-0.970)" for an AUC, or with key "diff", "+0.025 (95% CI +0.013 to +0.036)"."""
    pct = f"{100 * float(interval.get('confidence', 0.95)):.0f}% CI"
    if key == "diff":
        return (f"{interval['diff']:+.3f} ({pct} {interval['diff_low']:+.3f} to "
                f"{interval['diff_high']:+.3f})")
    return f"{interval['roc_auc']:.3f} ({pct} {interval['low']:.3f}-{interval['high']:.3f})"


def decide_promotion(challenger: Mapping[str, float], champion: Mapping[str, float] | None,
                     baselines: Mapping[str, Mapping[str, float]], *, metric: str = "roc_auc",
                     tolerance: float = 0.0,
                     intervals: Mapping[str, Mapping[str, float]] | None = None,
                     min_churners: int = MIN_VALID_CHURNERS) -> PromotionDecision:
    """Promote only if the challenger beats every baseline and is at least as good as the champion.

    "Beats" is strict: better than the baseline by more than `tolerance`. Against the champion
    the challenger may be worse by at most `tolerance`. For brier, log_loss and ece lower is
    better; for every other metric higher is better. A missing or non-finite challenger metric
    refuses promotion; with no champion (first model) only the baselines are compared.

    With `intervals` (ROC-AUC only: `auc_intervals` with the challenger as `CHALLENGER` and every
    baseline by its name), the evidence must also carry the decision: at least `min_churners`
    churning accounts, and every paired difference to a baseline above 0 (see the module).
    """
    if intervals is not None and metric != "roc_auc":
        raise ValueError(f"intervals are for roc_auc, not {metric}")
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    reasons: list[str] = []
    ours = _value(challenger, metric)
    if ours is None:
        return PromotionDecision(False, [f"challenger has no finite {metric}"])
    own = intervals.get(CHALLENGER) if intervals is not None else None
    evidence = True
    if intervals is not None:
        if own is None:
            raise ValueError(f"intervals have no entry for the challenger ({CHALLENGER!r})")
        churners = int(own["churners"])
        if churners < min_churners:
            evidence = False
            reasons.append(f"{churners} churning accounts in the validation window, at least {min_churners} needed")
    promote = True
    ours_text = interval_text(own) if own is not None else f"{ours:.3f}"
    for name, metrics in baselines.items():
        theirs = _value(metrics, metric)
        if theirs is None:
            reasons.append(f"baseline {name} has no finite {metric}; not compared")
            continue
        beats = sign * (ours - theirs) > tolerance
        promote &= beats
        paired = intervals.get(name) if intervals is not None else None
        if paired is None or not beats:
            verdict = "beats" if beats else "does not beat"
            reasons.append(f"challenger {metric} {ours_text} {verdict} baseline {name} ({theirs:.3f})")
            continue
        clears = float(paired["diff_low"]) > 0.0
        evidence &= clears
        verdict = "beats" if clears else "is not shown to beat"
        reasons.append(f"challenger {metric} {ours_text} {verdict} baseline {name} ({theirs:.3f}): "
                       f"difference {interval_text(paired, 'diff')}")
    if champion is None:
        reasons.append("no current champion")
    else:
        theirs = _value(champion, metric)
        if theirs is None:
            reasons.append(f"champion has no finite {metric}; not compared")
        else:
            holds = sign * (ours - theirs) >= -tolerance
            promote &= holds
            verdict = "is at least as good as" if holds else "is worse than"
            reasons.append(f"challenger {metric} {ours:.3f} {verdict} champion ({theirs:.3f})")
    # Too few churners: no conclusion either way. Otherwise a clear loss on a point estimate is
    # a refusal, and a win the intervals do not carry is not enough evidence.
    enough = not (intervals is not None and int(own["churners"]) < min_churners) and (evidence or not promote)
    return PromotionDecision(promote and evidence, reasons, enough_evidence=enough, interval=own)

"""Champion/challenger: a newly trained model replaces the champion only when it is better.

The decision is pure: metric dicts in, a `PromotionDecision` out, with one reason per comparison
so the gate's outcome can be shown as it is (in an asset check's metadata, in a log). All
metrics must be measured on the same validation window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

LOWER_IS_BETTER = frozenset({"brier", "log_loss", "ece"})


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)


def _value(metrics: Mapping[str, float], metric: str) -> float | None:
    value = metrics.get(metric)
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def decide_promotion(challenger: Mapping[str, float], champion: Mapping[str, float] | None,
                     baselines: Mapping[str, Mapping[str, float]], *, metric: str = "roc_auc",
                     tolerance: float = 0.0) -> PromotionDecision:
    """Promote only if the challenger beats every baseline and is at least as good as the champion.

    "Beats" is strict: better than the baseline by more than `tolerance`. Against the champion
    the challenger may be worse by at most `tolerance`. For brier, log_loss and ece lower is
    better; for every other metric higher is better. A missing or non-finite challenger metric
    refuses promotion; with no champion (first model) only the baselines are compared.
    """
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    reasons: list[str] = []
    ours = _value(challenger, metric)
    if ours is None:
        return PromotionDecision(False, [f"challenger has no finite {metric}"])
    promote = True
    for name, metrics in baselines.items():
        theirs = _value(metrics, metric)
        if theirs is None:
            reasons.append(f"baseline {name} has no finite {metric}; not compared")
            continue
        beats = sign * (ours - theirs) > tolerance
        promote &= beats
        verdict = "beats" if beats else "does not beat"
        reasons.append(f"challenger {metric} {ours:.4f} {verdict} baseline {name} ({theirs:.4f})")
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
            reasons.append(f"challenger {metric} {ours:.4f} {verdict} champion ({theirs:.4f})")
    return PromotionDecision(promote, reasons)

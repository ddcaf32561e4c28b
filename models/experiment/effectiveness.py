"""Do rescue plays save accounts? Treated accounts against the randomized holdout.

The policy engine holds a seeded random share of eligible accounts out of the queue (the holdout)
and routes the others to people who run plays on them. Because the split is random, the
difference between the two groups' outcomes estimates the effect of being worked by the rescue
team. `play_effectiveness(treated, holdout)` measures it, overall and per play:

- **save rate**: the share of accounts saved (renewed, did not churn within the horizon), with a
  Wilson score interval per group and Newcombe's hybrid score interval (method 10 of Newcombe,
  1998) for the difference treated - holdout;
- **ARR retained**: the share of the group's ARR on saved accounts, with a normal interval for the
  difference from the linearized (delta-method) variance of each ratio;
- the sample sizes, and a verdict in plain words. Below `min_per_arm` accounts in either group the
  verdict says so instead of reading noise: "too few accounts to conclude (n=12/4; need >= 30 per
  arm)".

An account counts once overall, and once for every play it received in the per-play rows; every
per-play row is compared with the whole holdout (held-out accounts received no play). Per-play
rows are labelled by the policy's catalogue of plays when it is given (`plays`, the
`Policy.play_names` mapping): a play logged under a former name counts with the play, so one play
never splits into two rows. The
per-play rows are not randomized between plays: a play chosen for harder cases can look worse
than it is. Only the overall row is a clean experiment.

`effectiveness_chart(eff)` draws the save rates and the difference with their intervals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from models.charts import figure_png
import pandas as pd
from matplotlib.figure import Figure

OUTCOMES: tuple[str, ...] = ("saved", "churned")
#: Label of the row that pools every play.
OVERALL = "all plays"

TABLE_COLUMNS: tuple[str, ...] = (
    "play",
    "n_treated",
    "n_holdout",
    "saved_treated",
    "saved_holdout",
    "save_rate_treated",
    "save_rate_holdout",
    "save_rate_diff",
    "diff_ci_low",
    "diff_ci_high",
    "arr_treated",
    "arr_holdout",
    "arr_retained_treated",
    "arr_retained_holdout",
    "arr_retained_diff",
    "arr_diff_ci_low",
    "arr_diff_ci_high",
    "conclusive",
    "verdict",
)


class EffectivenessError(ValueError):
    """The treated or holdout frame cannot be analysed (missing column, bad outcome or ARR)."""


@dataclass(frozen=True)
class Effectiveness:
    """The comparison: `table` has one row per scope (`OVERALL` first, then each play by number
    of treated accounts) with the columns in `TABLE_COLUMNS`. Rates and differences are shares
    (0.19 = 19 points); intervals are at `confidence`."""

    table: pd.DataFrame
    confidence: float
    min_per_arm: int

    @property
    def overall(self) -> pd.Series:
        """The row of every treated account against the holdout."""
        return self.table.iloc[0]


def z_value(confidence: float) -> float:
    """The two-sided standard-normal quantile of a confidence level (1.959964 for 0.95)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (nan, nan) when n is 0."""
    if n <= 0:
        return float("nan"), float("nan")
    z = z_value(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


def newcombe_interval(s1: int, n1: int, s2: int, n2: int, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 - p2, from the Wilson intervals of each group."""
    if n1 <= 0 or n2 <= 0:
        return float("nan"), float("nan")
    p1, p2 = s1 / n1, s2 / n2
    l1, u1 = wilson_interval(s1, n1, confidence)
    l2, u2 = wilson_interval(s2, n2, confidence)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def arr_retained(arr: np.ndarray, saved: np.ndarray) -> tuple[float, float]:
    """The share of ARR on saved accounts and the delta-method variance of that ratio.

    For R = sum(a_i s_i) / sum(a_i) over n accounts, Var(R) ~ n / (n - 1) * sum(a_i^2 (s_i - R)^2)
    / (sum a_i)^2. The variance is nan below two accounts; both are nan when the ARR sums to 0.
    """
    total = float(arr.sum())
    if len(arr) == 0 or total <= 0:
        return float("nan"), float("nan")
    ratio = float((arr * saved).sum()) / total
    n = len(arr)
    if n < 2:
        return ratio, float("nan")
    variance = n / (n - 1) * float(((arr * (saved - ratio)) ** 2).sum()) / total**2
    return ratio, variance


def play_effectiveness(
    treated: pd.DataFrame,
    holdout: pd.DataFrame,
    *,
    min_per_arm: int = 30,
    confidence: float = 0.95,
    plays: Mapping[str, str] | None = None,
) -> Effectiveness:
    """Compare treated accounts with held-out ones, overall and per play.

    `treated`: account_id, arr, outcome (saved | churned), play; one row per account and play
    (an account given several plays has several rows). `holdout`: account_id, arr, outcome.
    An account may not be in both groups. `plays` maps every name a play is known by to the
    label of its row (the catalogue's `Policy.play_names`); a name it does not know keeps its own.
    """
    if min_per_arm < 1:
        raise ValueError(f"min_per_arm must be at least 1, got {min_per_arm}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    treated = _checked(treated, "treated", ("account_id", "arr", "outcome", "play"))
    if plays:
        treated["play"] = [plays.get(p, p) for p in treated["play"]]
    holdout = _checked(holdout, "holdout", ("account_id", "arr", "outcome"))
    treated_accounts = _one_per_account(treated, "treated")
    held = _one_per_account(holdout, "holdout")
    both = sorted(set(treated_accounts.index) & set(held.index))
    if both:
        raise EffectivenessError(
            f"{len(both)} account(s) are both treated and held out (e.g. {', '.join(both[:5])}); "
            "each account belongs to one group"
        )

    rows = [_compare(OVERALL, treated_accounts, held, min_per_arm, confidence)]
    plays = treated.drop_duplicates(["play", "account_id"])
    counts = plays["play"].value_counts()
    for play in sorted(counts.index, key=lambda p: (-counts[p], p)):
        accounts = treated_accounts.loc[plays.loc[plays["play"] == play, "account_id"].unique()]
        rows.append(_compare(play, accounts, held, min_per_arm, confidence))
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    return Effectiveness(table=table, confidence=confidence, min_per_arm=min_per_arm)


def _checked(frame: pd.DataFrame, name: str, columns: tuple[str, ...]) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise EffectivenessError(
            f"{name}: missing column(s) {', '.join(missing)}; got {', '.join(map(str, frame.columns))}"
        )
    out = frame[list(columns)].copy()
    out["account_id"] = out["account_id"].astype(str)
    if "play" in out and out["play"].isna().any():
        raise EffectivenessError(f"{name}: {int(out['play'].isna().sum())} row(s) have no play")
    bad = sorted(set(out["outcome"].astype(str)) - set(OUTCOMES))
    if bad:
        raise EffectivenessError(f"{name}: unknown outcome(s) {', '.join(bad)}; expected saved or churned")
    arr = pd.to_numeric(out["arr"], errors="coerce")
    invalid = out.loc[arr.isna() | (arr < 0), "account_id"]
    if len(invalid):
        raise EffectivenessError(
            f"{name}: arr must be a number >= 0; {len(invalid)} row(s) are not "
            f"(e.g. accounts {', '.join(invalid.head(5))})"
        )
    out["arr"] = arr.astype(float)
    return out


def _one_per_account(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """account_id -> arr, saved (0/1); an account repeated with another ARR or outcome is an error."""
    accounts = frame.drop_duplicates(["account_id", "arr", "outcome"])
    clash = accounts["account_id"][accounts["account_id"].duplicated()].unique()
    if len(clash):
        raise EffectivenessError(
            f"{name}: {len(clash)} account(s) have conflicting arr or outcome across rows "
            f"(e.g. {', '.join(clash[:5])})"
        )
    return pd.DataFrame(
        {"arr": accounts["arr"].to_numpy(), "saved": (accounts["outcome"] == "saved").to_numpy(dtype=float)},
        index=pd.Index(accounts["account_id"].to_numpy(), name="account_id"),
    )


def _compare(play: str, treated: pd.DataFrame, held: pd.DataFrame, min_per_arm: int, confidence: float) -> dict:
    n1, n2 = len(treated), len(held)
    s1, s2 = int(treated["saved"].sum()), int(held["saved"].sum())
    p1 = s1 / n1 if n1 else float("nan")
    p2 = s2 / n2 if n2 else float("nan")
    low, high = newcombe_interval(s1, n1, s2, n2, confidence)
    r1, v1 = arr_retained(treated["arr"].to_numpy(), treated["saved"].to_numpy())
    r2, v2 = arr_retained(held["arr"].to_numpy(), held["saved"].to_numpy())
    half = z_value(confidence) * math.sqrt(v1 + v2)
    conclusive = n1 >= min_per_arm and n2 >= min_per_arm
    return {
        "play": play,
        "n_treated": n1,
        "n_holdout": n2,
        "saved_treated": s1,
        "saved_holdout": s2,
        "save_rate_treated": p1,
        "save_rate_holdout": p2,
        "save_rate_diff": p1 - p2,
        "diff_ci_low": low,
        "diff_ci_high": high,
        "arr_treated": float(treated["arr"].sum()),
        "arr_holdout": float(held["arr"].sum()),
        "arr_retained_treated": r1,
        "arr_retained_holdout": r2,
        "arr_retained_diff": r1 - r2,
        "arr_diff_ci_low": r1 - r2 - half,
        "arr_diff_ci_high": r1 - r2 + half,
        "conclusive": conclusive,
        "verdict": _verdict(play, n1, n2, p1, p2, low, high, conclusive, min_per_arm, confidence),
    }


def _verdict(play: str, n1: int, n2: int, p1: float, p2: float, low: float, high: float,
             conclusive: bool, min_per_arm: int, confidence: float) -> str:
    sizes = f"n={n1}/{n2}"
    if not conclusive:
        return f"too few accounts to conclude ({sizes}; need >= {min_per_arm} per arm)"
    who = "treated accounts" if play == OVERALL else f"accounts given {play}"
    subject = "plays" if play == OVERALL else "this play"
    if low > 0:
        reading = f"{subject} work" if play == OVERALL else f"{subject} works"
    elif high < 0:
        reading = f"{subject} did worse than no rescue"
    else:
        reading = "no measurable difference"
    return (f"{who} saved {p1:.0%} vs {p2:.0%} in holdout ({_points(p1 - p2)} pts, "
            f"{confidence:.0%} CI {_points(low)}..{_points(high)}, {sizes}): {reading}")


def _points(share: float) -> str:
    """A signed difference in points: whole points, or one decimal when that rounds to zero
    (so a bound of -0.004 reads -0.4, not a puzzling -0)."""
    points = share * 100
    if round(points) == 0 and round(points, 1) != 0:
        return f"{points:+.1f}"
    return f"{round(points) + 0:+d}"


# ---------------------------------------------------------------------------------------- chart


def effectiveness_chart(eff: Effectiveness) -> bytes:
    """PNG: save rates of treated vs holdout per row (Wilson whiskers), and their difference in
    points (Newcombe whiskers); rows too small to conclude are drawn in grey."""
    table = eff.table
    labels = [f"{play}\n(n={n1}/{n2})" for play, n1, n2 in zip(table["play"], table["n_treated"], table["n_holdout"])]
    y = np.arange(len(table))[::-1]
    fig = Figure(figsize=(10, 1.2 + 0.6 * len(table)))
    rates_ax, diff_ax = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    height = 0.38
    for offset, arm, colour in ((height / 2, "treated", "#2a7fb8"), (-height / 2, "holdout", "#9a9a9a")):
        rates = table[f"save_rate_{arm}"].to_numpy() * 100
        bounds = [wilson_interval(s, n, eff.confidence) for s, n in zip(table[f"saved_{arm}"], table[f"n_{arm}"])]
        # clipped: at a 0% or 100% rate the interval's edge equals the rate up to rounding
        errors = np.clip(np.array([[r - lo * 100, hi * 100 - r] for r, (lo, hi) in zip(rates, bounds)]).T, 0, None)
        rates_ax.barh(y + offset, rates, height=height, color=colour, label=arm,
                      xerr=errors, error_kw={"ecolor": "#333333", "capsize": 3, "lw": 1})
    rates_ax.set_yticks(y, labels, fontsize=8)
    rates_ax.set_xlim(0, 100)
    rates_ax.set_xlabel("save rate, %")
    rates_ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False)
    rates_ax.grid(axis="x", alpha=0.3)

    diff = table["save_rate_diff"].to_numpy() * 100
    errors = np.clip(np.vstack([diff - table["diff_ci_low"].to_numpy() * 100, table["diff_ci_high"].to_numpy() * 100 - diff]), 0, None)
    colours = ["#2a7fb8" if ok else "#c8c8c8" for ok in table["conclusive"]]
    diff_ax.barh(y, diff, height=0.5, color=colours, xerr=errors,
                 error_kw={"ecolor": "#333333", "capsize": 3, "lw": 1})
    diff_ax.axvline(0, color="#333333", lw=0.8)
    diff_ax.set_xlabel(f"treated - holdout, points ({eff.confidence:.0%} CI)")
    diff_ax.grid(axis="x", alpha=0.3)
    for yy, ok in zip(y, table["conclusive"]):
        if not ok:
            diff_ax.annotate("too few to conclude", (0, yy), xytext=(4, 10), textcoords="offset points",
                             fontsize=7, color="#777777")
    fig.suptitle("Play effectiveness: treated vs holdout")
    return figure_png(fig)

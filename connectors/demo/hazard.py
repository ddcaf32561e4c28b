"""Why accounts churn in the demo world: the churn hazard and the latent processes behind it.

Each account has latent parameters (`Latent`): a baseline hazard, how much it uses the product
when healthy, one trouble episode at most (adoption decays, then recovers), support pain with an
episode, a champion who may leave, and price pressure. At each renewal the churn probability is
`renewal_churn_probability` of the factors as they were in the months before it
(`factors_before`). The generator (`connectors.demo.chunk`) draws the latent parameters and the
traces they leave; the simulated rescue team (`connectors.demo.team`) re-reads them from
``demo_truth`` (`churn_factors_at`) to re-draw an open renewal under a play's effect. Pure: no
randomness, no I/O. The causal story, with the numbers, is in ``docs/demo_world.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

#: Seconds per day.
DAY_S = 86_400


# ------------------------------------------------------------------------------------------
# The churn hazard
# ------------------------------------------------------------------------------------------

#: Columns of the frame `renewal_churn_probability` reads (one row per renewal).
CHURN_FACTOR_COLUMNS = (
    "base_hazard",       # account's baseline log-odds of churn (segment + unobserved frailty)
    "adoption_drop",     # 0..1: fall of product adoption over the 60 days before the renewal
    "support_pain",      # >= 0: mean support pain over the 90 days before the renewal
    "champion_lost",     # 1 if the champion left in the 180 days before, 0.5 within a year, else 0
    "price_pressure",    # log(ARR per seat / segment list price per seat)
    "tenure_years",      # years as a customer at the renewal
    "noise",             # per-renewal noise on the log-odds (0 for the expected probability)
)


@dataclass(frozen=True)
class HazardCoefficients:
    """Weights of the churn hazard's log-odds (see `renewal_churn_probability`). The intercept,
    segment offsets (in the order of `models.contracts.SEGMENTS`) and frailty make up each
    account's ``base_hazard``; ``noise_sd`` is the spread of the per-renewal noise."""

    adoption_drop: float = 4.5
    support_pain: float = 1.2
    champion_lost: float = 1.4
    price_pressure: float = 1.2
    log_tenure: float = -0.35
    intercept: float = -3.35
    segment_offset: tuple[float, float, float] = (-0.5, 0.0, 0.35)  # enterprise, mid_market, smb
    frailty_sd: float = 0.5
    noise_sd: float = 0.5


HAZARD = HazardCoefficients()


def renewal_churn_probability(
    factors: pd.DataFrame,
    *,
    coefficients: HazardCoefficients = HAZARD,
    odds_multiplier: float | np.ndarray = 1.0,
) -> np.ndarray:
    """Probability that a renewal ends in churn, from the latent factors before it.

    ``factors`` has the columns of `CHURN_FACTOR_COLUMNS` (``noise`` may be left out: 0). The
    log-odds are (weights from ``coefficients``; the defaults in `HAZARD` are in brackets)::

        base_hazard + w_adoption [4.5] * adoption_drop + w_pain [1.2] * support_pain
                    + w_champion [1.4] * champion_lost + w_price [1.2] * price_pressure
                    + w_tenure [-0.35] * log(1 + tenure_years) + noise

    where ``base_hazard`` = intercept [-3.35] + segment offset [enterprise -0.5, mid-market 0,
    SMB +0.35] + the account's frailty (normal, sd [0.5]); ``noise`` is normal with sd [0.5].

    ``odds_multiplier`` (scalar or one value per row, > 0) scales the odds: a rescue play that
    cuts the odds of churn by 30% is ``odds_multiplier=0.7``. Pure: no randomness, no I/O.
    """
    required = [c for c in CHURN_FACTOR_COLUMNS if c != "noise"]
    missing = [c for c in required if c not in factors.columns]
    if missing:
        raise KeyError(f"churn factors: missing column(s) {', '.join(missing)}")
    multiplier = np.asarray(odds_multiplier, dtype="float64")
    if np.any(~(multiplier > 0)):
        raise ValueError(f"odds_multiplier must be > 0, got {odds_multiplier!r}")
    c = coefficients
    f = {k: factors[k].to_numpy(dtype="float64") for k in required}
    noise = factors["noise"].to_numpy(dtype="float64") if "noise" in factors.columns else np.zeros(len(factors))
    for name, values in (*f.items(), ("noise", noise)):
        if np.isnan(values).any():
            raise ValueError(f"churn factors: column {name!r} has {int(np.isnan(values).sum())} missing value(s)")
    logit = (
        f["base_hazard"]
        + c.adoption_drop * f["adoption_drop"]
        + c.support_pain * f["support_pain"]
        + c.champion_lost * f["champion_lost"]
        + c.price_pressure * f["price_pressure"]
        + c.log_tenure * np.log1p(np.maximum(f["tenure_years"], 0.0))
        + noise
        + np.log(multiplier)
    )
    return 1.0 / (1.0 + np.exp(-logit))


# ------------------------------------------------------------------------------------------
# Latent processes. Times are in days (float) on any common origin; NaN = never happens.
# ------------------------------------------------------------------------------------------


@dataclass
class Latent:
    """Per-account latent parameters (arrays of equal length)."""

    created: np.ndarray
    base_hazard: np.ndarray
    engagement: np.ndarray
    price_pressure: np.ndarray
    trouble_onset: np.ndarray
    trouble_end: np.ndarray
    adoption_decline: np.ndarray
    adoption_decay_days: np.ndarray
    support_pain: np.ndarray
    pain_episode_start: np.ndarray
    pain_episode_days: np.ndarray
    pain_episode_magnitude: np.ndarray
    champion_lost_at: np.ndarray

    def take(self, idx: np.ndarray) -> Latent:
        return Latent(**{k: v[idx] for k, v in vars(self).items()})


TRUTH_TIME_FIELDS = ("created", "trouble_onset", "trouble_end", "pain_episode_start", "champion_lost_at")


def adoption_at(lat: Latent, t: np.ndarray, *, grid: bool = False) -> np.ndarray:
    """Adoption multiplier (1 = the account's normal use) at time ``t``.

    From the trouble onset it decays exponentially (time constant ``adoption_decay_days``)
    towards ``1 - adoption_decline``; from ``trouble_end`` it recovers with the same time
    constant. With ``grid=True``, ``t`` is a row of times and the result is accounts x times.
    """
    onset, end, decline, tau = lat.trouble_onset, lat.trouble_end, lat.adoption_decline, lat.adoption_decay_days
    if grid:
        onset, end, decline, tau = (np.asarray(a, dtype="float32")[:, None] for a in (onset, end, decline, tau))
        t = np.asarray(t, dtype="float32")[None, :]
    elapsed = t - onset
    with np.errstate(invalid="ignore"):
        in_trouble = np.clip(elapsed, 0.0, end - onset)
        recovered = np.maximum(t - end, 0.0)
        drop = decline * (1.0 - np.exp(-in_trouble / tau)) * np.exp(-recovered / tau)
    return np.where(elapsed > 0, 1.0 - drop, 1.0)


def pain_at(base: np.ndarray, start: np.ndarray, days: np.ndarray, magnitude: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Support pain: a baseline plus a rectangular episode."""
    in_episode = (t >= start) & (t < start + days)
    return base + np.where(in_episode, magnitude, 0.0)


def factors_before(lat: Latent, at: np.ndarray) -> pd.DataFrame:
    """The hazard's factors for row i of ``lat`` as they were before time ``at[i]``."""
    adoption = np.mean(
        [adoption_at(lat, at - 60 * (k + 0.5) / 4) for k in range(4)], axis=0,
    )
    pain = np.mean(
        [pain_at(lat.support_pain, lat.pain_episode_start, lat.pain_episode_days, lat.pain_episode_magnitude,
               at - 90 * (k + 0.5) / 6) for k in range(6)], axis=0,
    )
    since_champion = at - lat.champion_lost_at
    champion = np.where((since_champion > 0) & (since_champion <= 180), 1.0,
                        np.where((since_champion > 180) & (since_champion <= 365), 0.5, 0.0))
    return pd.DataFrame({
        "base_hazard": lat.base_hazard,
        "adoption_drop": 1.0 - adoption,
        "support_pain": pain,
        "champion_lost": champion,
        "price_pressure": lat.price_pressure,
        "tenure_years": np.maximum(at - lat.created, 0.0) / 365.25,
    })


def days_since_epoch(values: pd.Series) -> np.ndarray:
    """Timestamps as float days since 1970-01-01 (NaT -> NaN)."""
    ts = pd.to_datetime(values).astype("datetime64[s]")
    seconds = ts.to_numpy().astype("int64").astype("float64")
    return np.where(ts.isna().to_numpy(), np.nan, seconds / DAY_S)


def churn_factors_at(truth: pd.DataFrame, at: pd.Series | pd.Timestamp | date) -> pd.DataFrame:
    """The hazard factors of each account in ``truth`` (rows of ``demo_truth``) as they were
    before ``at`` (one timestamp, or a series with one per row, in row order), without noise. Feed the result to
    `renewal_churn_probability`, e.g. to re-draw an open renewal under a rescue play's effect."""
    lat = latent_from_truth(truth)
    when = pd.Series(pd.Timestamp(at), index=truth.index) if not isinstance(at, pd.Series) else at
    out = factors_before(lat, days_since_epoch(when))
    out.insert(0, "account_id", truth["account_id"].to_numpy())
    return out


def latent_from_truth(truth: pd.DataFrame) -> Latent:
    """The latent parameters of each account in ``truth`` (rows of ``demo_truth``)."""
    values = {}
    for name in Latent.__dataclass_fields__:
        key = "created_at" if name == "created" else name
        if key not in truth.columns:
            raise KeyError(f"demo truth: missing column {key!r}")
        col = truth[key]
        values[name] = days_since_epoch(col) if name in TRUTH_TIME_FIELDS else col.to_numpy(dtype="float64")
    return Latent(**values)


"""One chunk of the demo world: accounts, renewals, product events, support tickets and the
ground truth they were drawn from.

`Chunk(config, index, first, n, csms).build()` generates the tables of accounts ``first ..
first + n - 1`` from the chunk's own random stream ``np.random.default_rng([seed, index])``;
`csm_pool` draws the CSM team from a stream of its own. The latent factors and the churn hazard
are in `connectors.demo.hazard`; writing the world is `connectors.demo.world`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from connectors.demo.hazard import (
    DAY_S,
    HAZARD,
    Latent,
    TRUTH_TIME_FIELDS,
    adoption_at,
    factors_before,
    pain_at,
    renewal_churn_probability,
)
from models.contracts import SEGMENTS, TICKET_PRIORITIES

if TYPE_CHECKING:
    from connectors.demo.config import DemoWorldConfig

#: Random stream of the CSM team: never a chunk index (10M accounts are 5,000 chunks).
_CSM_STREAM = 2**32 - 1

FEATURES = ("advanced", "admin", "reporting", "core")
TICKET_CATEGORIES = (
    "bug", "how_to", "integration", "billing", "outage", "performance", "compliance", "feature_request",
)
TERM_DAYS = 365
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class ChunkTables:
    """The frames of one chunk, one per world table."""

    accounts: pd.DataFrame
    renewals: pd.DataFrame
    tickets: pd.DataFrame
    events: pd.DataFrame
    truth: pd.DataFrame


# Segments
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Segment:
    share: float
    arr_median: float
    arr_sigma: float
    arr_range: tuple[float, float]
    users: tuple[int, int]
    arr_per_seat: float  # the segment's list price per seat; price pressure is measured against it
    tickets_per_year: float
    plans: tuple[tuple[str, float], ...]


_SEGMENTS: dict[str, _Segment] = {
    "enterprise": _Segment(0.10, 420_000, 0.55, (150_000, 1_500_000), (15, 60), 9_000, 22,
                           (("Enterprise", 0.75), ("Enterprise Plus", 0.25))),
    "mid_market": _Segment(0.30, 60_000, 0.45, (25_000, 150_000), (5, 20), 3_500, 9,
                           (("Business", 0.7), ("Enterprise", 0.3))),
    "smb": _Segment(0.60, 8_000, 0.6, (2_000, 25_000), (2, 8), 1_200, 4,
                    (("Starter", 0.55), ("Team", 0.45))),
}
assert tuple(_SEGMENTS) == SEGMENTS  # segment codes below are positions in SEGMENTS
_ENTERPRISE = SEGMENTS.index("enterprise")


def _seg_array(attr: str) -> np.ndarray:
    return np.array([getattr(s, attr) for s in _SEGMENTS.values()], dtype="float64")


# ------------------------------------------------------------------------------------------
# Word lists for plausible names
# ------------------------------------------------------------------------------------------

_NAME_HEADS = (
    "North", "Blue", "Silver", "Red", "Green", "Bright", "Clear", "Iron", "Summit", "Harbor",
    "Cedar", "Maple", "Granite", "Pioneer", "Atlas", "Vertex", "Nova", "Apex", "Lumen", "Crescent",
    "Beacon", "Falcon", "Sterling", "Ever", "Horizon", "Key", "Meridian", "Orion", "Pinnacle",
    "Quantum", "Amber", "Sapphire", "Trident", "Union", "Vantage", "Willow", "Zenith", "Oak", "Stone",
    "River", "Copper", "Golden", "High", "Lake", "True", "Swift", "Bold", "Wild", "Sun", "Star",
)
_NAME_TAILS = (
    "field", "point", "bridge", "stone", "wave", "line", "gate", "path", "crest", "forge", "works",
    "view", "peak", "port", "wind", "light", "dale", "brook", "core", "shore", "ridge", "wood",
)
_INDUSTRIES: dict[str, tuple[float, tuple[str, ...]]] = {
    "Software": (0.20, ("Software", "Systems", "Labs", "Technologies")),
    "Financial Services": (0.12, ("Capital", "Financial", "Partners")),
    "Healthcare": (0.11, ("Health", "Medical", "Care")),
    "Retail": (0.10, ("Retail", "Goods", "Stores")),
    "Manufacturing": (0.11, ("Manufacturing", "Industries", "Components")),
    "Logistics": (0.08, ("Logistics", "Freight", "Supply")),
    "Education": (0.07, ("Learning", "Academy", "Education")),
    "Media": (0.07, ("Media", "Studios", "Publishing")),
    "Professional Services": (0.09, ("Consulting", "Advisors", "Group")),
    "Energy": (0.05, ("Energy", "Power", "Renewables")),
}
_LEGAL = ("Inc", "LLC", "Ltd", "Co", "GmbH", "", "", "")
#: (region, share of accounts, UTC hour around which its users are active)
_REGIONS = (("North America", 0.45, 15.0), ("EMEA", 0.30, 11.0), ("APAC", 0.17, 3.0), ("LATAM", 0.08, 16.0))
_FIRST = (
    "Maya", "Liam", "Noah", "Olivia", "Ava", "Ethan", "Sofia", "Lucas", "Mia", "Aiden", "Priya",
    "Arjun", "Chen", "Wei", "Yuki", "Hana", "Omar", "Layla", "Mateo", "Valentina", "Diego", "Camila",
    "Jonas", "Elena", "Felix", "Clara", "Kwame", "Amara", "Tariq", "Nadia", "Ravi", "Leah", "Sam",
    "Grace", "Owen", "Zoe", "Isaac", "Ruby", "Hugo", "Alice", "Ivan", "Nina", "Marco", "Julia",
    "Tomas", "Eva", "Kofi", "Zara", "Daniel", "Sara",
)
_LAST = (
    "Okafor", "Nguyen", "Patel", "Garcia", "Schmidt", "Kim", "Rossi", "Silva", "Haddad", "Cohen",
    "Murphy", "Novak", "Tanaka", "Larsen", "Moreau", "Costa", "Ibrahim", "Walsh", "Fischer", "Chopra",
    "Mensah", "Reyes", "Andersen", "Dubois", "Kowalski", "Yamamoto", "Osei", "Bianchi", "Lopez",
    "Brennan", "Sato", "Weber", "Khan", "Alvarez", "Lindqvist", "Park", "Mbeki", "Santos", "Hughes",
    "Varga",
)


def csm_pool(config: DemoWorldConfig) -> tuple[np.ndarray, int]:
    """The CSM team (about one CSM per 60 accounts) and how many of them (the first ones) are
    dedicated to enterprise accounts. Drawn from its own stream: independent of the chunks."""
    rng = np.random.default_rng([config.seed, _CSM_STREAM])
    size = max(2, round(config.n_accounts / 60))
    n_enterprise = max(1, round(size * 0.4))
    n_names = len(_FIRST) * len(_LAST) * 26
    picks = rng.choice(n_names, size=min(size, n_names), replace=False)
    first = np.array(_FIRST)[picks % len(_FIRST)]
    last = np.array(_LAST)[(picks // len(_FIRST)) % len(_LAST)]
    initial = np.array([chr(65 + i) for i in range(26)])[picks // (len(_FIRST) * len(_LAST))]
    names = np.strings.add(np.strings.add(np.strings.add(first, " "), np.strings.add(initial, ". ")), last)
    return names.astype(object), min(n_enterprise, len(names) - 1)

# ------------------------------------------------------------------------------------------
# One chunk of accounts
# ------------------------------------------------------------------------------------------


def _ids(prefix: str, numbers: np.ndarray, width: int, suffix: np.ndarray | None = None,
         suffix_width: int = 2) -> np.ndarray:
    out = np.strings.add(prefix, np.strings.zfill(numbers.astype(np.dtypes.StringDType()), width))
    if suffix is not None:
        out = np.strings.add(np.strings.add(out, "-"),
                             np.strings.zfill(suffix.astype(np.dtypes.StringDType()), suffix_width))
    return out.astype(object)


def _pick(rng: np.random.Generator, n: int, weights: np.ndarray) -> np.ndarray:
    return rng.choice(len(weights), size=n, p=np.asarray(weights, dtype="float64") / np.sum(weights))


def _group_offsets(group: np.ndarray, n_groups: int) -> np.ndarray:
    """Position of each row within its group, for rows sorted by group."""
    counts = np.bincount(group, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.arange(len(group)) - starts[group]


def _timestamps(origin: date, days: np.ndarray, seconds: np.ndarray | float = 0.0) -> np.ndarray:
    """``origin`` + ``days`` (+ ``seconds``) as datetime64[us]; NaN days give NaT."""
    base = (origin - _EPOCH).days * DAY_S
    total = base + days * DAY_S + seconds
    out = np.full(len(days), np.datetime64("NaT"), dtype="datetime64[us]")
    ok = ~np.isnan(total)
    out[ok] = (np.round(total[ok] * 1e6)).astype("int64").astype("datetime64[us]")
    return out


class Chunk:
    """Generates the tables for accounts ``first .. first + n - 1`` (0-based numbers)."""

    def __init__(self, config: DemoWorldConfig, index: int, first: int, n: int, csms: tuple[np.ndarray, int]):
        self.config = config
        self.rng = np.random.default_rng([config.seed, index])
        self.n = n
        self.H = config.history_days
        self.csms = csms
        self.id_width = max(6, len(str(config.n_accounts)))
        self.numbers = first + 1 + np.arange(n)
        self.account_ids = _ids("ACC-", self.numbers, self.id_width)

    def build(self) -> ChunkTables:
        self._accounts()
        self._latent()
        self._renewals()
        # the order of the draws is part of the world's definition: tickets before events
        tickets = self._tickets()
        events = self._events()
        return ChunkTables(accounts=self.accounts, renewals=self.renewals, tickets=tickets, events=events,
                           truth=self._truth())

    # -- accounts ------------------------------------------------------------------------------

    def _accounts(self) -> None:
        rng, n, H = self.rng, self.n, self.H
        seg = _pick(rng, n, _seg_array("share"))
        lo = np.array([s.arr_range[0] for s in _SEGMENTS.values()])
        hi = np.array([s.arr_range[1] for s in _SEGMENTS.values()])
        arr = np.exp(np.log(_seg_array("arr_median")[seg]) + _seg_array("arr_sigma")[seg] * rng.standard_normal(n))
        arr = np.round(np.clip(arr, lo[seg], hi[seg]), -1)
        u_lo = np.array([s.users[0] for s in _SEGMENTS.values()])[seg]
        u_hi = np.array([s.users[1] for s in _SEGMENTS.values()])[seg]
        users = (u_lo + np.floor((u_hi - u_lo + 1) * rng.random(n) ** 1.4)).astype("int64")
        list_price = _seg_array("arr_per_seat")[seg]
        discount = np.exp(0.3 * rng.standard_normal(n))
        seats = np.maximum(users, np.round(arr / (list_price * discount))).astype("int64")
        industry_names = list(_INDUSTRIES)
        industry = _pick(rng, n, np.array([w for w, _ in _INDUSTRIES.values()]))
        region = _pick(rng, n, np.array([w for _, w, _ in _REGIONS]))
        # Names: "<Head><tail> <industry noun> [<legal form>]".
        heads = np.array(_NAME_HEADS)[rng.integers(0, len(_NAME_HEADS), n)]
        tails = np.array(_NAME_TAILS)[rng.integers(0, len(_NAME_TAILS), n)]
        n_nouns = np.array([len(nouns) for _, nouns in _INDUSTRIES.values()])
        noun_table = np.array([list(nouns) + [nouns[0]] * (n_nouns.max() - len(nouns)) for _, nouns in _INDUSTRIES.values()])
        nouns = noun_table[industry, np.floor(rng.random(n) * n_nouns[industry]).astype("int64")]
        legal = np.array(_LEGAL)[rng.integers(0, len(_LEGAL), n)]
        name = np.strings.add(np.strings.add(np.strings.add(heads, tails), " "), nouns)
        name = np.where(legal == "", name, np.strings.add(np.strings.add(name, " "), legal))
        plan = np.empty(n, dtype=object)
        for code, spec in enumerate(_SEGMENTS.values()):
            mask = seg == code
            labels, weights = zip(*spec.plans)
            plan[mask] = np.array(labels, dtype=object)[_pick(rng, int(mask.sum()), np.array(weights))]
        pool, n_enterprise = self.csms
        csm = np.where(seg == _ENTERPRISE, rng.integers(0, n_enterprise, n), rng.integers(n_enterprise, len(pool), n))
        # A quarter of the accounts were acquired during the history, the rest up to 4 years before.
        acquired = rng.random(n) < 0.25
        created = np.where(acquired, np.floor(rng.random(n) * (H - 30)), -np.floor(1 + rng.random(n) * 4 * 365))

        self.seg, self.users, self.seats, self.arr, self.region = seg, users, seats, arr, region
        self.created = created.astype("float64")
        self.price_pressure = np.log(arr / seats / list_price)
        self.accounts = pd.DataFrame({
            "account_id": self.account_ids,
            "name": name.astype(object),
            "segment": np.array(SEGMENTS, dtype=object)[seg],
            "industry": np.array(industry_names, dtype=object)[industry],
            "region": np.array([r for r, _, _ in _REGIONS], dtype=object)[region],
            "arr": arr,
            "plan": plan,
            "seats": seats,
            "csm_owner": pool[csm],
            "created_at": _timestamps(self.config.start_date, self.created),
        })

    # -- latent factors --------------------------------------------------------------------------

    def _latent(self) -> None:
        rng, n, H, c = self.rng, self.n, self.H, HAZARD
        frailty = c.frailty_sd * rng.standard_normal(n)
        # Engagement: how much this account uses the product when healthy. Frail accounts use it
        # a little less, which gives usage levels (not only trends) some signal.
        engagement = np.clip(np.exp(-0.4 * frailty + 0.25 * rng.standard_normal(n)), 0.35, 1.6)
        # One trouble episode per account at most, at a uniformly random time over a window that
        # starts well before the history, so the share of accounts in trouble stays steady.
        onset = rng.uniform(-600, H + 60, n)
        has_trouble = (rng.random(n) < 0.75) & (onset > self.created + 14)
        onset = np.where(has_trouble, onset, np.nan)
        trouble_end = onset + rng.uniform(120, 540, n)
        decline = np.where(has_trouble, rng.uniform(0.3, 0.9, n), 0.0)
        decay = rng.uniform(20, 75, n)
        pain_base = rng.gamma(2.0, 0.12, n)
        # Trouble often comes with a support-pain episode around its onset; some episodes stand alone.
        linked = has_trouble & (rng.random(n) < 0.65)
        lone = ~linked & (rng.random(n) < 0.2)
        episode = np.where(linked, onset + rng.normal(0, 15, n), np.where(lone, rng.uniform(-180, H + 60, n), np.nan))
        champion = rng.uniform(-365, H + 60, n)
        champion = np.where((rng.random(n) < 0.35) & (champion > self.created + 30), champion, np.nan)
        self.lat = Latent(
            created=self.created,
            base_hazard=c.intercept + np.array(c.segment_offset)[self.seg] + frailty,
            engagement=engagement,
            price_pressure=self.price_pressure,
            trouble_onset=onset,
            trouble_end=trouble_end,
            adoption_decline=decline,
            adoption_decay_days=decay,
            support_pain=pain_base,
            pain_episode_start=episode,
            pain_episode_days=rng.uniform(45, 150, n),
            pain_episode_magnitude=rng.uniform(0.6, 1.8, n),
            champion_lost_at=champion,
        )

    # -- renewals and churn ----------------------------------------------------------------------

    def _renewals(self) -> None:
        rng, n, H = self.rng, self.n, self.H
        # Annual terms from created_at: keep the terms ending inside the history plus the next one.
        k_first = np.maximum(1, np.ceil(-self.created / TERM_DAYS)).astype("int64")
        k_open = np.floor((H - self.created) / TERM_DAYS).astype("int64") + 1
        per_account = k_open - k_first + 1
        acct = np.repeat(np.arange(n), per_account)
        term = k_first[acct] + _group_offsets(acct, n)
        when = self.created[acct] + TERM_DAYS * term
        past = when <= H

        factors = factors_before(self.lat.take(acct), when)
        factors["noise"] = HAZARD.noise_sd * rng.standard_normal(len(acct))
        p = renewal_churn_probability(factors)
        churn = past & (rng.random(len(acct)) < p)
        churned_before = np.cumsum(churn) - churn
        group_start = np.repeat(np.concatenate([[0], np.cumsum(per_account)[:-1]]), per_account)
        earlier = churned_before - churned_before[group_start]
        keep = earlier == 0
        close_day = np.minimum(when + rng.integers(-45, 11, len(acct)), H - 1)
        close_seconds = np.floor(rng.uniform(8, 19, len(acct)) * 3600)

        # Per account: when activity stops (the churn is known or the contract ends, whichever first).
        self.stop = np.full(n, np.inf)
        self.churn_renewal = np.full(n, np.nan)
        self.churn_close_day = np.full(n, np.nan)
        first_churn = churn & keep
        self.stop[acct[first_churn]] = np.minimum(close_day[first_churn], when[first_churn])
        self.churn_renewal[acct[first_churn]] = when[first_churn]
        self.churn_close_day[acct[first_churn]] = close_day[first_churn]
        self.churn_close_seconds = np.full(n, np.nan)
        self.churn_close_seconds[acct[first_churn]] = close_seconds[first_churn]
        # Churners who decided early wind their use down over the weeks before they leave.
        churned = ~np.isnan(self.churn_renewal)
        winds_down = churned & (rng.random(n) < 0.7)
        self.winddown_start = np.where(winds_down, self.churn_renewal - rng.uniform(30, 100, n), np.nan)
        self.winddown_depth = np.where(winds_down, rng.uniform(0.25, 0.6, n), 0.0)
        # The open renewal's own noise, for simulations that draw its outcome later.
        open_rows = keep & ~past
        self.next_renewal = np.full(n, np.nan)
        self.next_renewal[acct[open_rows]] = when[open_rows]
        self.next_noise = np.full(n, np.nan)
        self.next_noise[acct[open_rows]] = factors["noise"].to_numpy()[open_rows]
        self.next_probability = np.full(n, np.nan)
        self.next_probability[acct[open_rows]] = p[open_rows]

        a, t, w = acct[keep], term[keep], when[keep]
        is_past, is_churn = past[keep], churn[keep]
        outcome = np.where(~is_past, "open", np.where(is_churn, "churned", "renewed"))
        stage = np.where(~is_past, np.where(w - H > 90, "Prospecting", "Negotiation/Review"),
                         np.where(is_churn, "Closed Lost", "Closed Won"))
        closed = np.where(is_past, close_day[keep], np.nan)
        self.renewals = pd.DataFrame({
            "renewal_id": _ids("REN-", self.numbers[a], self.id_width, t),
            "account_id": self.account_ids[a],
            "renewal_date": _timestamps(self.config.start_date, w),
            "amount": self.arr[a],
            "stage": stage.astype(object),
            "closed_at": _timestamps(self.config.start_date, closed, close_seconds[keep]),
            "outcome": outcome.astype(object),
        })

    # -- daily account-level rates --------------------------------------------------------------

    def _alive(self, t: np.ndarray) -> np.ndarray:
        return (t[None, :] >= self.created[:, None]) & (t[None, :] < self.stop[:, None])

    def _calendar(self) -> tuple[np.ndarray, np.ndarray]:
        """Weekday index (0 = Monday) and a year-end holiday dip for each history day."""
        start = self.config.start_date
        days = np.arange(self.H)
        weekday = (start.weekday() + days) % 7
        doy = (start.timetuple().tm_yday - 1 + days) % 365
        dist = np.minimum(np.abs(doy - 358), 365 - np.abs(doy - 358))
        season = 1.0 - 0.35 * np.exp(-((dist / 6.0) ** 2))
        return weekday, season

    # -- product events --------------------------------------------------------------------------

    def _events(self) -> pd.DataFrame:
        rng, n, H, lat = self.rng, self.n, self.H, self.lat
        t = (np.arange(H) + 0.5).astype("float32")
        weekday, season = self._calendar()
        day_factor = (np.where(weekday < 5, 1.0, 0.12) * season).astype("float32")

        adoption = adoption_at(lat, t, grid=True)
        ramp = 1.0 - np.exp(-np.maximum(t[None, :] - self.created[:, None], 0.0) / 21.0)
        progress = np.clip((t[None, :] - self.winddown_start[:, None]) /
                           np.maximum(self.stop[:, None] - self.winddown_start[:, None], 1.0), 0.0, 1.0)
        winddown = 1.0 - self.winddown_depth[:, None] * np.nan_to_num(progress, nan=0.0)
        account_day = (lat.engagement[:, None] * adoption * ramp * winddown * self._alive(t)).astype("float32")
        account_day *= day_factor[None, :]

        # Users: the first user of each account is its champion, the most active one.
        user_acct = np.repeat(np.arange(n), self.users)
        rank = _group_offsets(user_acct, n)
        champion = rank == 0
        activity = np.where(champion, rng.uniform(0.55, 0.85, len(rank)), 0.8 * rng.beta(1.3, 3.5, len(rank)))
        advanced_affinity = rng.uniform(0.3, 1.6, len(rank))
        # After the champion leaves they produce nothing, and for half a year the others use the
        # product 20% less.
        since_loss = t[None, :] - lat.champion_lost_at[user_acct][:, None].astype("float32")
        with np.errstate(invalid="ignore"):
            loss = np.where(champion[:, None], since_loss >= 0, 0.2 * ((since_loss >= 0) & (since_loss < 180)))
        p = account_day[user_acct] * (activity[:, None].astype("float32") * (1.0 - loss.astype("float32")))
        active = rng.random(p.shape, dtype=np.float32) < np.minimum(p, 0.95)
        del p, loss, since_loss
        user, day = np.nonzero(active)
        del active
        sessions = 1 + (rng.random(len(user)) < 0.15)
        user, day = np.repeat(user, sessions), np.repeat(day, sessions)

        acct = user_acct[user]
        p_adv = 0.3 * advanced_affinity[user] * adoption[acct, day]
        u = rng.random(len(user))
        feature = (u >= p_adv).astype("int8") + (u >= p_adv + 0.06) + (u >= p_adv + 0.18)
        quantity = (1 + rng.poisson(1.5 + 3.0 * activity[user])).astype("int32")
        hour_center = np.array([h for _, _, h in _REGIONS])[self.region[acct]]
        seconds = np.mod(hour_center + 2.5 * rng.standard_normal(len(user)), 24.0) * 3600
        seconds = np.minimum(np.floor(seconds), DAY_S - 1)

        user_ids = _ids("USR-", self.numbers[user_acct], self.id_width, rank + 1)
        return pd.DataFrame({
            "account_id": pd.Categorical.from_codes(acct, categories=pd.Index(self.account_ids)),
            "user_id": pd.Categorical.from_codes(user, categories=pd.Index(user_ids)),
            "occurred_at": _timestamps(self.config.start_date, day.astype("float64"), seconds),
            "feature": pd.Categorical.from_codes(feature, categories=pd.Index(FEATURES)),
            "quantity": quantity,
        })

    # -- support tickets -------------------------------------------------------------------------

    def _tickets(self) -> pd.DataFrame:
        rng, n, H, lat = self.rng, self.n, self.H, self.lat
        t = np.arange(H) + 0.5
        weekday, _ = self._calendar()
        rate = _seg_array("tickets_per_year")[self.seg] * np.exp(0.4 * rng.standard_normal(n)) / 365.0
        pain = pain_at(lat.support_pain[:, None], lat.pain_episode_start[:, None], lat.pain_episode_days[:, None],
                     lat.pain_episode_magnitude[:, None], t[None, :])
        lam = rate[:, None] * np.where(weekday < 5, 1.2, 0.5)[None, :] * (1.0 + 1.2 * pain) * self._alive(t)
        counts = rng.poisson(lam)
        acct, day = np.nonzero(counts)
        reps = counts[acct, day]
        acct, day = np.repeat(acct, reps), np.repeat(day, reps)
        k = len(acct)
        level = np.minimum(pain[acct, day], 2.0)

        # Priority: pain makes urgent and high tickets more likely.
        p_urgent = 0.03 + 0.09 * level
        p_high = 0.15 + 0.08 * level
        p_low = 0.22 - 0.06 * level
        u = rng.random(k)
        priority = np.select([u < p_urgent, u < p_urgent + p_high, u < 1 - p_low], [0, 1, 2], 3)
        # Category: pain brings bugs, outages and performance problems; price pressure, billing.
        weights = np.tile(np.array([0.20, 0.26, 0.11, 0.07, 0.02, 0.07, 0.04, 0.23]), (k, 1))
        weights[:, 0] *= 1.0 + level
        weights[:, 4] *= 1.0 + 3.0 * level
        weights[:, 5] *= 1.0 + 1.5 * level
        weights[:, 3] *= 1.0 + 2.0 * np.maximum(self.price_pressure[acct], 0.0)
        cum = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
        category = np.minimum((rng.random(k)[:, None] > cum).sum(axis=1), len(TICKET_CATEGORIES) - 1)

        created = day + rng.uniform(7, 20, k) / 24.0
        first_median = np.array([0.75, 3.0, 8.0, 16.0])[priority] * (1.0 + 0.7 * level)
        first_hours = np.exp(np.log(first_median) + 0.8 * rng.standard_normal(k))
        solve_median = np.array([10.0, 30.0, 60.0, 100.0])[priority] * (1.0 + 0.8 * level)
        solve_hours = np.exp(np.log(solve_median) + 0.9 * rng.standard_normal(k))
        # Under pain, some urgent and high tickets get stuck for weeks.
        stuck = (priority <= 1) & (rng.random(k) < 0.25 * level / 2.0)
        solve_hours += stuck * rng.uniform(10, 60, k) * 24.0
        first = created + first_hours / 24.0
        solved = first + solve_hours / 24.0

        responded = first < H
        is_solved = solved < H
        status = np.where(~responded, "new", np.where(~is_solved, np.where(rng.random(k) < 0.3, "pending", "open"),
                                                       np.where(solved < H - 4, "closed", "solved")))
        solve_days = solve_hours / 24.0
        score = np.round(4.5 - 0.8 * level - 0.5 * np.log1p(solve_days) - 0.3 * (priority == 0)
                         + 0.7 * rng.standard_normal(k))
        csat = np.where(is_solved & (rng.random(k) < 0.4), np.clip(score, 1, 5), np.nan)
        escalated = rng.random(k) < (0.02 + 0.2 * (priority == 0) + 0.08 * (priority == 1) + 0.08 * level + 0.4 * stuck)

        start = self.config.start_date
        return pd.DataFrame({
            "ticket_id": _ids("TKT-", self.numbers[acct], self.id_width, _group_offsets(acct, n) + 1, 4),
            "account_id": self.account_ids[acct],
            "created_at": _timestamps(start, np.floor(created), np.floor((created % 1) * DAY_S)),
            "first_response_at": _timestamps(start, np.where(responded, np.floor(first), np.nan),
                                             np.floor((first % 1) * DAY_S)),
            "solved_at": _timestamps(start, np.where(is_solved, np.floor(solved), np.nan),
                                     np.floor((solved % 1) * DAY_S)),
            "priority": np.array(TICKET_PRIORITIES, dtype=object)[priority],
            "category": np.array(TICKET_CATEGORIES, dtype=object)[category],
            "status": status.astype(object),
            "csat": csat,
            "escalated": escalated,
        })

    # -- ground truth ----------------------------------------------------------------------------

    def _truth(self) -> pd.DataFrame:
        start, lat = self.config.start_date, self.lat
        out = {"account_id": self.account_ids, "segment": np.array(SEGMENTS, dtype=object)[self.seg]}
        for name, values in vars(lat).items():
            key = "created_at" if name == "created" else name
            out[key] = _timestamps(start, values) if name in TRUTH_TIME_FIELDS else values
        out["churn_renewal_date"] = _timestamps(start, self.churn_renewal)
        out["churned_at"] = _timestamps(start, self.churn_close_day, np.nan_to_num(self.churn_close_seconds))
        out["winddown_start"] = _timestamps(start, self.winddown_start)
        out["winddown_depth"] = self.winddown_depth
        out["next_renewal_date"] = _timestamps(start, self.next_renewal)
        out["next_renewal_noise"] = self.next_noise
        out["next_renewal_churn_probability"] = self.next_probability
        return pd.DataFrame(out)


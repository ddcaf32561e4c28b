"""The demo's simulated rescue team: works the queue and records outcomes as the demo world decides.

The demo world (`connectors.demo.hazard`) knows why each account churns: at every renewal the
churn probability is `renewal_churn_probability` of latent factors (adoption drop, support pain,
champion loss, price pressure, tenure). `simulate_rescue_team` plays the people who work the
rescue queue against that story, so the feedback loop and the play-effectiveness analysis can be
shown end to end:

1. **Claim and acknowledge**: every open case is claimed by its routed assignee (or, unassigned,
   by its team's queue handle).
2. **Plays**: each claimed case gets one or two plays of the policy's catalogue (`plays:` in the
   policy, `Policy.plays_for` the case's team), chosen with a random stream seeded by (seed, case
   id) and weighted by the team's habits (`TEAM_PLAY_WEIGHTS`).
3. **Outcome at the renewal**: the case's renewal is the account's first renewal on or after the
   snapshot that opened the case. Once the simulation's `now` has passed it, the churn
   probability is ``renewal_churn_probability(churn_factors_at(truth, renewal_date),
   odds_multiplier=effect)`` where ``effect`` is the product of the odds multipliers of the plays
   logged; the account churned when its uniform draw is below that probability. The case is then
   resolved as saved or churned. Before the renewal the case stays in progress.
4. **Holdout**: accounts the policy held out (routing_log action ``holdout``) get the same
   treatment-free calculation (``effect = 1``) at the first renewal on or after the snapshot
   that first held them out, recorded in the queue's ``holdout_outcomes`` table.

The uniform draw is `outcome_draw(seed, account_id, renewal_date)`: a hash, so the same account
at the same renewal gets the same draw whether it was treated or held out. Treated and untreated
outcomes of one account are therefore a clean counterfactual pair: a play can turn a churn into a
save, never the reverse. These simulated outcomes live in the queue only; the world's recorded
renewals are not rewritten.

True play effects (`TRUE_EFFECTS`, odds multipliers on churn; 1 = no effect, 0.5 = halves the
odds), by the play ids of the shipped policies' catalogue; a play the policy declares and this
table does not know has no effect in the demo world:

=========================  =====  =============================================================
play                       odds   why it works in the demo world
=========================  =====  =============================================================
executive_sponsor_call     0.55   replaces a lost champion with executive sponsorship
adoption_workshop          0.60   reverses an adoption drop
support_escalation         0.70   ends a support-pain episode
success_plan               0.80   a documented plan, a modest effect on its own
commercial_concession      0.50   removes price pressure (and costs margin)
=========================  =====  =============================================================
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from connectors.demo.hazard import churn_factors_at, renewal_churn_probability
from connectors.demo.world import ACCOUNTS_TABLE, RENEWALS_TABLE, TRUTH_TABLE
from connectors.queue.store import QueueStore
from models.clock import utc_naive
from connectors.warehouse import Warehouse
from models.cases.lifecycle import ACKNOWLEDGED, IN_PROGRESS, OPEN
from models.policy.schema import Policy

log = logging.getLogger(__name__)

#: Actor prefix of everything the simulated team does, so the audit trail tells it apart.
SIMULATOR_SOURCE = "demo-rescue-team"


#: The demo world's truth: each play's odds multiplier on churn, by play id of the policy's catalogue.
TRUE_EFFECTS: dict[str, float] = {
    "executive_sponsor_call": 0.55,
    "adoption_workshop": 0.60,
    "support_escalation": 0.70,
    "success_plan": 0.80,
    "commercial_concession": 0.50,
}

#: How often the simulated people pick each play, per team (teams not listed use "default"); a
#: play of the catalogue that suits the team and is not listed here has weight 1.
TEAM_PLAY_WEIGHTS: dict[str, dict[str, float]] = {
    "rescue_squad": {"executive_sponsor_call": 3, "commercial_concession": 2, "support_escalation": 1,
                     "success_plan": 1},
    "legal": {"support_escalation": 3, "executive_sponsor_call": 1},
    "leadership": {"executive_sponsor_call": 3, "commercial_concession": 2},
    "default": {"adoption_workshop": 3, "success_plan": 3, "support_escalation": 1, "commercial_concession": 1},
}


@dataclass(frozen=True)
class SimulationReport:
    """What one pass of the simulated team did at `now`."""

    claimed: int
    plays_logged: int
    saved: int
    churned: int
    waiting_for_renewal: int
    holdout_recorded: int
    holdout_waiting: int


def outcome_draw(seed: int | str, account_id: str, renewal_date: object) -> float:
    """A uniform number in [0, 1) fixed by (seed, account, renewal date) (BLAKE2b)."""
    day = pd.Timestamp(renewal_date).date().isoformat()
    digest = hashlib.blake2b(f"{seed}\x1f{account_id}\x1f{day}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def choose_plays(case_id: str, team: str, seed: int, policy: Policy) -> list[str]:
    """One or two distinct plays of the policy's catalogue for a case: those that suit its team
    (every play for a team the policy does not know), by the team's weights; the same for the
    same (seed, case id)."""
    suited = policy.plays_for(team) if team in policy.teams else list(policy.plays)
    if not suited:
        raise ValueError(f"no play of the policy's catalogue suits team {team!r} ({', '.join(policy.plays)})")
    weights = TEAM_PLAY_WEIGHTS.get(team, TEAM_PLAY_WEIGHTS["default"])
    names = [n for n in weights if n in suited] + [n for n in suited if n not in weights]
    p = np.array([weights.get(n, 1.0) for n in names], dtype=float)
    rng = np.random.default_rng([int(seed), int(hashlib.blake2b(case_id.encode(), digest_size=4).hexdigest(), 16)])
    k = min(len(names), 1 + int(rng.random() < 0.5))
    return [str(x) for x in rng.choice(names, size=k, replace=False, p=p / p.sum())]


def play_effects(policy: Policy) -> dict[str, float]:
    """The true effect of every play of the policy's catalogue (1.0 for a play the demo world
    does not know)."""
    return {key: TRUE_EFFECTS.get(key, 1.0) for key in policy.plays}


def treatment_effect(plays: list[str], *, effects: Mapping[str, float] = TRUE_EFFECTS) -> float:
    """The odds multiplier of a set of plays: the product of each distinct play's multiplier."""
    unknown = sorted(set(plays) - set(effects))
    if unknown:
        raise ValueError(f"unknown play(s) {', '.join(unknown)}; the catalogue has {', '.join(effects)}")
    return float(np.prod([effects[p] for p in set(plays)])) if plays else 1.0


def renewal_outcomes(
    truth: pd.DataFrame,
    units: pd.DataFrame,
    *,
    seed: int,
) -> pd.DataFrame:
    """Simulated renewal outcomes: `units` has account_id, renewal_date and effect (the odds
    multiplier); returns them with churn_probability, draw and outcome (saved | churned)."""
    if units.empty:
        return units.assign(churn_probability=pd.Series(dtype=float), draw=pd.Series(dtype=float),
                            outcome=pd.Series(dtype=object))
    indexed = truth.set_index("account_id")
    unknown = sorted(set(units["account_id"]) - set(indexed.index))
    if unknown:
        raise KeyError(f"{len(unknown)} account(s) are not in the demo world's truth table, e.g. {', '.join(unknown[:5])}")
    rows = indexed.loc[units["account_id"]].reset_index()
    factors = churn_factors_at(rows, pd.Series(pd.to_datetime(units["renewal_date"]).to_numpy(), index=rows.index))
    probability = renewal_churn_probability(factors, odds_multiplier=units["effect"].to_numpy(dtype=float))
    draws = np.array([outcome_draw(seed, a, d) for a, d in zip(units["account_id"], units["renewal_date"])])
    return units.assign(churn_probability=probability, draw=draws,
                        outcome=np.where(draws < probability, "churned", "saved"))


def next_renewals(renewals: pd.DataFrame, entries: pd.DataFrame) -> pd.Series:
    """For each row of `entries` (account_id, entered_at), the account's first renewal_date on
    or after the day of entered_at (NaT when there is none), aligned with `entries`."""
    right = renewals[["account_id", "renewal_date"]].dropna().astype({"account_id": str})
    right = right.assign(on=pd.to_datetime(right["renewal_date"]).astype("datetime64[ns]")).sort_values("on")
    left = pd.DataFrame({
        "account_id": entries["account_id"].astype(str).to_numpy(),
        "on": pd.to_datetime(entries["entered_at"]).dt.normalize().astype("datetime64[ns]").to_numpy(),
        "row": np.arange(len(entries)),
    }).sort_values("on")
    merged = pd.merge_asof(left, right[["account_id", "on"]].assign(renewal=right["on"]), on="on", by="account_id",
                           direction="forward")
    return pd.Series(merged.sort_values("row")["renewal"].to_numpy(), index=entries.index, name="renewal_date")


def simulate_rescue_team(
    store: QueueStore,
    warehouse: Warehouse,
    *,
    now: datetime,
    seed: int = 7,
    policy: Policy | None = None,
) -> SimulationReport:
    """One pass of the simulated rescue team at `now` (see the module docstring). Its plays are
    those of `policy`'s catalogue, by default the store's policy."""
    policy = policy or store.policy
    if policy is None:
        raise ValueError("the simulated rescue team runs the plays of the policy's catalogue, and the queue "
                         "store has no policy")
    effects = play_effects(policy)
    now = utc_naive(now)
    truth = warehouse.read_sql(f"SELECT * FROM {TRUTH_TABLE}")
    renewals = warehouse.read_sql(f"SELECT account_id, renewal_date FROM {RENEWALS_TABLE}")
    claimed = plays_logged = 0

    # 1-2. claim open cases, log plays on claimed cases without plays
    active = store.list_cases(status="active")
    logged = store.plays(list(active["account_id"])) if len(active) else pd.DataFrame(columns=["case_id", "play"])
    plays_by_case = logged.groupby("case_id")["play"].apply(list).to_dict()
    for case in active.to_dict("records"):
        actor = case["assignee"] or f"{case['team']}-queue"
        if case["status"] == OPEN:
            store.claim(case["case_id"], actor, now=now)
            claimed += 1
            case["status"] = ACKNOWLEDGED
        if case["status"] in (ACKNOWLEDGED, IN_PROGRESS) and not plays_by_case.get(case["case_id"]):
            chosen = choose_plays(case["case_id"], case["team"], seed, policy)
            for play in chosen:
                store.log_play(case["case_id"], actor=actor, play=play, note=policy.plays[play].description, now=now)
                plays_logged += 1
            plays_by_case[case["case_id"]] = chosen

    # 3. resolve worked cases whose renewal has passed
    working = store.list_cases(status=[IN_PROGRESS])
    saved = churned = waiting = 0
    if len(working):
        working["entered_at"] = [_entered_at(case_id, ev) for case_id, ev in zip(working["case_id"], working["evidence"])]
        working["renewal_date"] = next_renewals(renewals, working)
        due = working[working["renewal_date"].notna() & (working["renewal_date"] <= now)].copy()
        waiting = len(working) - len(due)
        due["effect"] = [treatment_effect([policy.play_names.get(p, p) for p in plays_by_case.get(c, [])],
                                          effects=effects) for c in due["case_id"]]
        for row in renewal_outcomes(truth, due, seed=seed).to_dict("records"):
            renewal = pd.Timestamp(row["renewal_date"]).to_pydatetime()
            store.resolve(row["case_id"], actor=row["assignee"] or f"{row['team']}-queue", outcome=row["outcome"],
                          note=f"renewal {renewal.date()}: {row['outcome']} (simulated, churn probability "
                               f"{row['churn_probability']:.0%})",
                          now=max(renewal, utc_naive(row["updated_at"])))
            saved += row["outcome"] == "saved"
            churned += row["outcome"] == "churned"

    # 4. record the holdout group's outcomes
    recorded, holdout_waiting = _record_holdout(store, warehouse, truth, renewals, now=now, seed=seed)
    report = SimulationReport(claimed=claimed, plays_logged=plays_logged, saved=int(saved), churned=int(churned),
                              waiting_for_renewal=waiting, holdout_recorded=recorded, holdout_waiting=holdout_waiting)
    log.info("simulated rescue team at %s: %s", now, report)
    return report


def _entered_at(case_id: str, evidence: object) -> pd.Timestamp:
    """The snapshot that opened a case: the earliest of its evidence entries."""
    days = [e["snapshot_date"] for e in (evidence or []) if isinstance(e, Mapping) and e.get("snapshot_date")]
    if not days:
        raise ValueError(f"case {case_id} has no evidence entries: cannot tell which snapshot opened it")
    return pd.Timestamp(min(days))


def _record_holdout(store: QueueStore, warehouse: Warehouse, truth: pd.DataFrame, renewals: pd.DataFrame, *,
                    now: datetime, seed: int) -> tuple[int, int]:
    log_rows = store.routing_log()
    held = log_rows[log_rows["action"] == "holdout"]
    if held.empty:
        return 0, 0
    first = held.groupby("account_id", as_index=False)["snapshot_date"].min().rename(columns={"snapshot_date": "entered_at"})
    treated = set(store.list_cases()["account_id"])
    first = first[~first["account_id"].isin(treated)].reset_index(drop=True)
    first["renewal_date"] = next_renewals(renewals, first)
    due = first[first["renewal_date"].notna() & (first["renewal_date"] <= now)]
    waiting = len(first) - len(due)
    recorded_before = store.holdout_outcomes()
    done = set(zip(recorded_before["account_id"], pd.to_datetime(recorded_before["renewal_date"])))
    due = due[[(a, pd.Timestamp(d)) not in done for a, d in zip(due["account_id"], due["renewal_date"])]]
    if due.empty:
        return 0, waiting
    arr = warehouse.read_sql(f"SELECT account_id, arr FROM {ACCOUNTS_TABLE}").set_index("account_id")["arr"]
    outcomes = renewal_outcomes(truth, due.assign(effect=1.0), seed=seed)
    outcomes = outcomes.assign(held_out_at=outcomes["entered_at"], arr=outcomes["account_id"].map(arr))
    return store.record_holdout_outcomes(outcomes, source=SIMULATOR_SOURCE, now=now), waiting

"""Which candidates the policy acts on, and which of them become new cases with whom.

The stages between the hysteresis state and the decision, in the order `route` runs them:
`severity` (the first matching severity rule makes a settled account eligible),
`open_case_updates` (one open case per account), `cooldown`, `holdout` (the seeded control
group, drawn by `holdout_draw`), `remaining_budget` and `budget_ranking` (the daily alert budget
per team) and `assignment` (a member with the skills and room, up the escalation path).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.clock import naive_utc_series
from models.policy.conditions import evaluate
from models.policy.schema import PRIORITIES, HoldoutSpec, Policy, SeverityRule
from models.routing.assignment import assign


@dataclass(frozen=True)
class Severity:
    """The first matching severity rule per candidate."""

    matched: np.ndarray   # bool: some rule matched
    rule_idx: np.ndarray  # int: position of the first matching rule, -1 if none
    eligible: np.ndarray  # bool: settled and matched
    priority: np.ndarray  # object: the rule's priority where eligible, else None
    team: np.ndarray      # object: the rule's team where eligible, else None
    rule_id: np.ndarray   # object: the rule's id where eligible, else None


def severity(frame: pd.DataFrame, rules: Sequence[SeverityRule], settled: np.ndarray) -> Severity:
    """Evaluate the severity rules in order (first match wins) for every candidate."""
    matches = np.column_stack([evaluate(rule.when, frame).to_numpy() for rule in rules])
    matched = matches.any(axis=1)
    rule_idx = np.where(matched, matches.argmax(axis=1), -1)
    eligible = settled & matched
    rule_priority = np.array([r.priority for r in rules] + [None], dtype=object)
    rule_team = np.array([r.team for r in rules] + [None], dtype=object)
    rule_ids = np.array([r.id for r in rules] + [None], dtype=object)
    return Severity(
        matched=matched,
        rule_idx=rule_idx,
        eligible=eligible,
        priority=np.where(eligible, rule_priority[rule_idx], None),
        team=np.where(eligible, rule_team[rule_idx], None),
        rule_id=np.where(eligible, rule_ids[rule_idx], None),
    )


@dataclass(frozen=True)
class Updates:
    """Eligible candidates whose account already has an open case."""

    update: np.ndarray             # bool
    case_id: np.ndarray            # object: the open case's id where update, else None
    previous_priority: np.ndarray  # object: the open case's priority where update, else None


def open_case_updates(ids: pd.Series, eligible: np.ndarray, open_cases: pd.DataFrame) -> Updates:
    """One open case per account: an eligible account with one updates it.

    `open_cases` is indexed by account_id, one row per account (case_id, priority).
    """
    update = eligible & ids.isin(open_cases.index).to_numpy()
    case_id = np.full(len(ids), None, dtype=object)
    previous_priority = np.full(len(ids), None, dtype=object)
    update_pos = np.flatnonzero(update)
    if len(update_pos):
        matched_cases = open_cases.loc[ids.iloc[update_pos]]
        case_id[update_pos] = matched_cases["case_id"].astype(str).to_numpy()
        previous_priority[update_pos] = matched_cases["priority"].to_numpy(dtype=object)
    return Updates(update=update, case_id=case_id, previous_priority=previous_priority)


@dataclass(frozen=True)
class Cooldown:
    cooling: np.ndarray        # bool: in cooldown
    last_resolved: np.ndarray  # datetime64: latest resolution per candidate (NaT if none)


def cooldown(
    ids: pd.Series,
    considered: np.ndarray,
    resolutions: pd.DataFrame,
    *,
    now: pd.Timestamp,
    days: int,
) -> Cooldown:
    """`considered` accounts whose latest case was resolved less than `days` days before `now`
    (naive UTC). `resolutions` holds account_id, resolved_at."""
    resolved = resolutions.assign(
        account_id=resolutions["account_id"].astype(str),
        resolved_at=naive_utc_series(resolutions["resolved_at"]),
    ).groupby("account_id")["resolved_at"].max()
    last_resolved = resolved.reindex(ids).to_numpy()
    cutoff = np.datetime64((now - pd.Timedelta(days=days)).to_datetime64())
    cooling = considered & ~pd.isna(last_resolved) & (last_resolved > cutoff)
    return Cooldown(cooling=cooling, last_resolved=last_resolved)


def holdout(ids: pd.Series, considered: np.ndarray, spec: HoldoutSpec) -> np.ndarray:
    """Which `considered` accounts are held out: a draw fixed by (seed, account id) below the
    holdout fraction."""
    held = np.zeros(len(ids), dtype=bool)
    if spec.fraction > 0 and considered.any():
        pos = np.flatnonzero(considered)
        held[pos] = holdout_draw(ids.iloc[pos], spec.seed) < spec.fraction
    return held


def holdout_draw(account_ids: pd.Series | list[str], seed: str | int) -> np.ndarray:
    """A uniform number in [0, 1) per account, fixed by (seed, account id).

    Uses BLAKE2b, so the draw (and therefore membership of the control group) is the same on
    every run, machine and library version.
    """
    prefix = f"{seed}\x1f".encode()
    out = np.empty(len(account_ids), dtype=np.float64)
    for i, account in enumerate(account_ids):
        digest = hashlib.blake2b(prefix + str(account).encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "big") / 2.0**64
    return out


def remaining_budget(open_cases: pd.DataFrame, policy: Policy, now: pd.Timestamp) -> dict[str, int]:
    """New cases each team may still open today: its daily budget less the open cases opened on
    the team's current local day (they already used it). `now` is tz-aware."""
    opened_today: dict[str, int] = {}
    if not open_cases.empty:
        opened = naive_utc_series(open_cases["opened_at"]).dt.tz_localize("UTC")
        for key in policy.teams:
            tz = policy.team_calendar(key).tz
            mine = (open_cases["team"] == key).to_numpy()
            if mine.any():
                local_days = opened[mine].dt.tz_convert(tz).dt.date
                opened_today[key] = int((local_days == now.tz_convert(tz).date()).sum())
    return {k: max(0, t.daily_budget - opened_today.get(k, 0)) for k, t in policy.teams.items()}


@dataclass(frozen=True)
class Budget:
    rank: np.ndarray      # int: rank within the team's pool (1 = most ARR at risk), 0 outside it
    admitted: np.ndarray  # bool: within the team's remaining budget
    left: dict[str, int]  # the remaining budget per team the ranking used


def budget_ranking(
    ids: pd.Series,
    pool: np.ndarray,
    team: np.ndarray,
    arr_at_risk: np.ndarray,
    budget_left: Mapping[str, int],
) -> Budget:
    """Rank the `pool` per team by expected ARR at risk (ties by account id) and admit the first
    `budget_left[team]` of each team."""
    n = len(ids)
    rank = np.zeros(n, dtype=np.int64)
    admitted = np.zeros(n, dtype=bool)
    pool_pos = np.flatnonzero(pool)
    ranked = pd.DataFrame({"pos": pool_pos, "team": team[pool_pos], "ear": arr_at_risk[pool_pos],
                           "account_id": ids.to_numpy()[pool_pos]})
    ranked = ranked.sort_values(["team", "ear", "account_id"], ascending=[True, False, True], kind="stable")
    ranked["rank"] = ranked.groupby("team", sort=False).cumcount() + 1
    ranked["admitted"] = ranked["rank"] <= ranked["team"].map(dict(budget_left)).astype(np.int64)
    rank[ranked["pos"].to_numpy()] = ranked["rank"].to_numpy()
    admitted[ranked["pos"].to_numpy()] = ranked["admitted"].to_numpy()
    return Budget(rank=rank, admitted=admitted, left=dict(budget_left))


@dataclass(frozen=True)
class Assignment:
    assignee: np.ndarray     # object: member id where routed, else None
    routed: np.ndarray       # bool: admitted and someone took it
    no_capacity: np.ndarray  # bool: admitted but nobody had the skills and room
    team: np.ndarray         # object: the receiving team (the rule's team unless sent up the path)


def assignment(
    ids: pd.Series,
    admitted: np.ndarray,
    sev: Severity,
    arr_at_risk: np.ndarray,
    policy: Policy,
    member_load: Mapping[str, int],
) -> Assignment:
    """Assign the admitted cases, by priority then ARR at risk (ties by account id), to members
    with the rule's skills and room, going up the escalation path when the team is full."""
    n = len(ids)
    assignee = np.full(n, None, dtype=object)
    admitted_pos = np.flatnonzero(admitted)
    if len(admitted_pos):
        rules = policy.severity_rules
        prio_order = {p: i for i, p in enumerate(PRIORITIES)}
        to_assign = pd.DataFrame({
            "pos": admitted_pos,
            "team": sev.team[admitted_pos],
            "required_skills": [rules[i].required_skills for i in sev.rule_idx[admitted_pos]],
            "prio": [prio_order[p] for p in sev.priority[admitted_pos]],
            "ear": arr_at_risk[admitted_pos],
            "account_id": ids.to_numpy()[admitted_pos],
        }).sort_values(["prio", "ear", "account_id"], ascending=[True, False, True], kind="stable")
        who = assign(to_assign, policy.assignable_members(), dict(member_load),
                     escalation_paths=policy.escalation_paths())
        assignee[to_assign["pos"].to_numpy()] = who.to_numpy()
    routed = admitted & pd.notna(assignee)
    routed_team = sev.team.copy()
    routed_team[routed] = [policy.member_team[a] for a in assignee[routed]]
    return Assignment(
        assignee=np.where(routed, assignee, None),
        routed=routed,
        no_capacity=admitted & ~routed,
        team=routed_team,
    )

"""Routing: what the rescue queue does with every candidate account, under one policy.

`route` applies a policy to the whole candidate frame as a short pipeline of vectorized stages.
Each stage is a function of arrays aligned with the candidates (position i = candidate i) and
can be called and tested on its own:

1. `hysteresis`: an account enters `at_risk` at `enter_threshold`, leaves below
   `exit_threshold`, and is *settled* once it has been at risk for `min_days_in_state` days;
2. `severity`: severity rules in order, first match wins: priority, team, required skills; a
   settled account that matches a rule is *eligible*;
3. `open_case_updates`: eligible accounts with an open case are `update`s (their case gains
   evidence; a priority change is reported through `previous_priority`);
4. `cooldown`: eligible accounts without an open case whose last case was resolved within
   `cooldown_days` are in `cooldown`;
5. `holdout`: a seeded share of the rest is `holdout` (the control group);
6. `remaining_budget` and `budget_ranking`: per team and day, the alert budget admits new cases
   by expected ARR at risk; the rest are `overflow` with their rank kept;
7. `assignment`: admitted cases go to a member (`models.routing.assignment.assign`), up the
   escalation path when the team is full; a case nobody can take is `overflow` too;
8. `actions` and `sla_due_times`: the action per account, and the SLA deadlines of new cases on
   the receiving team's business calendar;
9. `headline` and `reasons`: the structured headline (rule id, rule description, strongest
   driver) and the human-readable reasons, the first of which explains the action.

`decision_frame` assembles the `models.contracts.DECISION_COLUMNS` frame from the stages.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.clock import naive_utc_series, utc_timestamp
from models.contracts import DECISION_COLUMNS
from models.policy.conditions import evaluate
from models.policy.schema import PRIORITIES, HoldoutSpec, HysteresisSpec, Policy, SeverityRule
from models.routing.assignment import assign

ACTIONS: tuple[str, ...] = ("route", "update", "holdout", "overflow", "cooldown", "not_eligible")
STATE_AT_RISK, STATE_OK = "at_risk", "ok"


class RoutingError(ValueError):
    """The frames given to `route` do not fit the policy (missing column, duplicate account)."""


@dataclass(frozen=True)
class RoutingResult:
    """`decisions`: one row per candidate (exactly `DECISION_COLUMNS`).
    `account_states`: account_id, state (at_risk | ok), since — persist it for the next run."""

    decisions: pd.DataFrame
    account_states: pd.DataFrame
    policy_version: str
    policy_hash: str

    def counts(self) -> dict[str, int]:
        """Number of decisions per action."""
        counts = self.decisions["action"].value_counts()
        return {action: int(counts.get(action, 0)) for action in ACTIONS}


def route(
    candidates: pd.DataFrame,
    policy: Policy,
    *,
    now: dt.datetime,
    open_cases: pd.DataFrame | None = None,
    recent_resolutions: pd.DataFrame | None = None,
    account_states: pd.DataFrame | None = None,
    member_load: Mapping[str, int] | None = None,
    as_of: dt.datetime | dt.date | None = None,
) -> RoutingResult:
    """Decide, for every candidate account, what the rescue queue does with it.

    Parameters
    ----------
    candidates: one row per account (`CANDIDATE_COLUMNS`; at least account_id,
        expected_arr_at_risk and the columns the rules and hysteresis read).
    now: tz-aware instant of the run; SLA clocks of new cases start here.
    open_cases: account_id, case_id, priority, team, opened_at (naive UTC or aware) of cases
        that are not resolved; used for "one open case per account" and the daily budget.
    recent_resolutions: account_id, resolved_at of resolved cases (for the cooldown).
    account_states: the `account_states` of the previous run (account_id, state, since).
    member_load: open cases per member id (for capacity and load balancing).
    as_of: the snapshot date the candidates describe. Hysteresis states are dated by it, so
        "minimum days in state" counts snapshot days and a backfill of consecutive partitions
        behaves like the daily runs it replays. Defaults to ``now``.
    """
    run = prepare_inputs(candidates, policy, now=now, open_cases=open_cases,
                         recent_resolutions=recent_resolutions, account_states=account_states,
                         member_load=member_load, as_of=as_of)
    states = hysteresis(run.ids, run.frame[policy.hysteresis.field], run.account_states,
                        policy.hysteresis, clock=run.state_clock)
    sev = severity(run.frame, policy.severity_rules, states.settled)
    updates = open_case_updates(run.ids, sev.eligible, run.open_cases)
    cooling = cooldown(run.ids, sev.eligible & ~updates.update, run.recent_resolutions,
                       now=run.now_naive, days=policy.cooldown_days)
    fresh = sev.eligible & ~updates.update & ~cooling.cooling
    held = holdout(run.ids, fresh, policy.holdout)
    pool = fresh & ~held
    budget = budget_ranking(run.ids, pool, sev.team, run.arr_at_risk,
                            remaining_budget(run.open_cases, policy, run.now))
    assigned = assignment(run.ids, budget.admitted, sev, run.arr_at_risk, policy, run.member_load)
    action = actions(update=updates.update, cooling=cooling.cooling, held=held, pool=pool,
                     routed=assigned.routed)
    first_due, resolution_due = sla_due_times(assigned.routed, assigned.team, sev.priority, policy, run.now)
    head = headline(run.frame, policy.severity_rules, sev)
    why = reasons(policy, action=action, states=states, sev=sev, updates=updates, cooling=cooling,
                  budget=budget, assigned=assigned, head=head)
    decisions = decision_frame(run, policy.severity_rules, sev=sev, action=action, head=head, why=why,
                               pool=pool, budget=budget, assigned=assigned, updates=updates,
                               first_due=first_due, resolution_due=resolution_due)
    return RoutingResult(decisions, states.table, policy.version, policy.content_hash)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutingInputs:
    """The validated inputs of one routing pass; arrays are aligned with `ids`.

    `open_cases` keeps the latest open case per account, indexed by account_id.
    """

    frame: pd.DataFrame
    ids: pd.Series
    now: pd.Timestamp
    state_clock: pd.Timestamp
    open_cases: pd.DataFrame
    recent_resolutions: pd.DataFrame
    account_states: pd.DataFrame
    member_load: dict[str, int]

    @property
    def now_naive(self) -> pd.Timestamp:
        return self.now.tz_localize(None)

    @property
    def arr_at_risk(self) -> np.ndarray:
        return pd.to_numeric(self.frame["expected_arr_at_risk"], errors="coerce").fillna(0.0).to_numpy()


def prepare_inputs(
    candidates: pd.DataFrame,
    policy: Policy,
    *,
    now: dt.datetime,
    open_cases: pd.DataFrame | None = None,
    recent_resolutions: pd.DataFrame | None = None,
    account_states: pd.DataFrame | None = None,
    member_load: Mapping[str, int] | None = None,
    as_of: dt.datetime | dt.date | None = None,
) -> RoutingInputs:
    """Check the frames `route` receives and fill in the missing ones (see `route`).

    Raises `RoutingError` for a naive `now`, a missing column or a duplicate account id.
    """
    now_ts = _aware_utc(now)
    state_clock = now_ts.tz_localize(None) if as_of is None else utc_timestamp(as_of)
    _require(candidates, {"account_id", "expected_arr_at_risk"} | policy.condition_fields(), "candidates")
    open_cases = open_cases if open_cases is not None else _empty(
        {"account_id": "str", "case_id": "str", "priority": "str", "team": "str", "opened_at": "datetime64[ns]"})
    recent_resolutions = recent_resolutions if recent_resolutions is not None else _empty(
        {"account_id": "str", "resolved_at": "datetime64[ns]"})
    account_states = account_states if account_states is not None else _empty(
        {"account_id": "str", "state": "str", "since": "datetime64[ns]"})
    _require(open_cases, {"account_id", "case_id", "priority", "team", "opened_at"}, "open_cases")
    _require(recent_resolutions, {"account_id", "resolved_at"}, "recent_resolutions")
    _require(account_states, {"account_id", "state", "since"}, "account_states")

    ids = candidates["account_id"].astype(str).reset_index(drop=True)
    if ids.duplicated().any():
        raise RoutingError(f"candidates has duplicate account_id(s), e.g. {ids[ids.duplicated()].iloc[0]!r}")
    cases = open_cases.assign(account_id=open_cases["account_id"].astype(str))
    cases = cases.sort_values("opened_at").drop_duplicates("account_id", keep="last").set_index("account_id")
    return RoutingInputs(
        frame=candidates.reset_index(drop=True),
        ids=ids,
        now=now_ts,
        state_clock=state_clock,
        open_cases=cases,
        recent_resolutions=recent_resolutions,
        account_states=account_states,
        member_load=dict(member_load or {}),
    )


# --------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class States:
    """Hysteresis per candidate, and the `account_states` table to persist for the next run."""

    at_risk: np.ndarray        # bool: in the at-risk state now
    days_in_state: np.ndarray  # int: whole days since the state last changed
    settled: np.ndarray        # bool: at risk for at least `min_days_in_state` days
    table: pd.DataFrame        # account_id, state, since (candidates first, then untouched accounts)


def hysteresis(
    ids: pd.Series,
    values: pd.Series,
    previous: pd.DataFrame,
    spec: HysteresisSpec,
    *,
    clock: pd.Timestamp,
) -> States:
    """Enter at `enter_threshold`, leave below `exit_threshold`, count days in the state.

    `values` is the hysteresis field per candidate; `previous` the last run's account_id, state,
    since; `clock` the naive-UTC instant new states are dated by (days count from its date).
    Accounts of `previous` that are not candidates keep their state.
    """
    previous = previous.assign(account_id=previous["account_id"].astype(str))
    previous = previous.drop_duplicates("account_id", keep="last").set_index("account_id")
    prev_state = previous["state"].reindex(ids).to_numpy(dtype=object)
    prev_since = naive_utc_series(previous["since"]).reindex(ids).to_numpy()
    was_at_risk = prev_state == STATE_AT_RISK
    value = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        enters = ~was_at_risk & (value >= spec.enter_threshold)
        exits = was_at_risk & (value < spec.exit_threshold)
    at_risk = (was_at_risk & ~exits) | enters
    changed = enters | exits | pd.isna(prev_since)
    since = np.where(changed, np.datetime64(clock.to_datetime64()), prev_since).astype("datetime64[ns]")
    days_in_state = (
        np.datetime64(clock.normalize().to_datetime64()) - since.astype("datetime64[D]")
    ).astype("timedelta64[D]").astype(np.int64)
    settled = at_risk & (days_in_state >= spec.min_days_in_state)
    states_now = pd.DataFrame({
        "account_id": ids,
        "state": pd.Series(np.where(at_risk, STATE_AT_RISK, STATE_OK), dtype="str"),
        "since": since,
    })
    untouched = previous.loc[~previous.index.isin(ids)].reset_index()[["account_id", "state", "since"]]
    if len(untouched):
        untouched = untouched.assign(since=naive_utc_series(untouched["since"]))
        table = pd.concat([states_now, untouched], ignore_index=True)
    else:
        table = states_now
    return States(at_risk=at_risk, days_in_state=days_in_state, settled=settled, table=table)


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


def actions(
    *,
    update: np.ndarray,
    cooling: np.ndarray,
    held: np.ndarray,
    pool: np.ndarray,
    routed: np.ndarray,
) -> np.ndarray:
    """The action per candidate (`ACTIONS`); the masks are disjoint except `routed` within `pool`."""
    action = np.full(len(update), "not_eligible", dtype=object)
    action[update] = "update"
    action[cooling] = "cooldown"
    action[held] = "holdout"
    action[pool] = "overflow"
    action[routed] = "route"
    return action


def sla_due_times(
    routed: np.ndarray,
    team: np.ndarray,
    priority: np.ndarray,
    policy: Policy,
    now: pd.Timestamp,
) -> tuple[np.ndarray, np.ndarray]:
    """First-touch and resolution deadlines (naive UTC; NaT unless routed) of new cases, from
    `now` (tz-aware) on the receiving team's business calendar."""
    first_due = np.full(len(routed), np.datetime64("NaT"), dtype="datetime64[ns]")
    resolution_due = first_due.copy()
    routed_pos = np.flatnonzero(routed)
    for (team_key, prio), group in pd.Series(routed_pos).groupby([team[routed_pos], priority[routed_pos]]):
        calendar, target = policy.team_calendar(team_key), policy.sla[prio]
        first_due[group.to_numpy()] = _naive64(calendar.add_business_minutes(now, target.first_touch_minutes))
        resolution_due[group.to_numpy()] = _naive64(calendar.add_business_minutes(now, target.resolution_minutes))
    return first_due, resolution_due


@dataclass(frozen=True)
class Headline:
    """The structured headline reason of each decision (None where not eligible)."""

    rule_id: np.ndarray           # object: the matched severity rule's id
    rule_description: np.ndarray  # object: its description
    reason_driver: np.ndarray     # object: the strongest risk driver in words (`top_reason`)


def headline(frame: pd.DataFrame, rules: Sequence[SeverityRule], sev: Severity) -> Headline:
    """Rule id, rule description and strongest driver of every eligible candidate.

    The driver is the candidate's `top_reason` when it is a non-empty string, else None (also
    when the frame has no `top_reason` column).
    """
    descriptions = np.array([r.description for r in rules] + [None], dtype=object)
    driver = np.full(len(frame), None, dtype=object)
    if "top_reason" in frame.columns:
        pos = np.flatnonzero(sev.eligible)
        values = frame["top_reason"].to_numpy(dtype=object)[pos]
        keep = np.array([isinstance(v, str) and v != "" for v in values], dtype=bool)
        driver[pos[keep]] = [str(v) for v in values[keep]]
    return Headline(
        rule_id=sev.rule_id,
        rule_description=np.where(sev.eligible, descriptions[sev.rule_idx], None),
        reason_driver=driver,
    )


def reasons(
    policy: Policy,
    *,
    action: np.ndarray,
    states: States,
    sev: Severity,
    updates: Updates,
    cooling: Cooldown,
    budget: Budget,
    assigned: Assignment,
    head: Headline,
) -> list[list[str]]:
    """Human-readable reasons per decision, for display.

    The first explains the action; eligible decisions then read "<rule id>: <rule description>"
    and, when there is one, "top driver: <driver>" (the `head` columns in words).
    """
    hyst = policy.hysteresis
    not_at_risk = f"not at risk: {hyst.field} has not reached {hyst.enter_threshold:g}"
    no_rule = "no severity rule matched"
    too_new = f"at risk for less than {hyst.min_days_in_state} day(s)"
    why_not = np.select([~states.at_risk, ~sev.matched], [not_at_risk, no_rule], default=too_new)
    out: list[list[str]] = [[str(text)] for text in why_not]

    team, routed_team, priority = sev.team, assigned.team, sev.priority
    for pos in np.flatnonzero(action != "not_eligible"):
        act = action[pos]
        if act == "route":
            first = f"routed to {routed_team[pos]} as {priority[pos]}"
            if routed_team[pos] != team[pos]:
                first += f" (team {team[pos]} had no member with the skills and capacity)"
        elif act == "update":
            first = f"open case {updates.case_id[pos]} gains evidence"
            if updates.previous_priority[pos] != priority[pos]:
                first += f"; priority {updates.previous_priority[pos]} -> {priority[pos]}"
        elif act == "cooldown":
            day = pd.Timestamp(cooling.last_resolved[pos]).date().isoformat()
            first = f"cooldown: a case was resolved on {day} ({policy.cooldown_days}-day cooldown)"
        elif act == "holdout":
            first = f"holdout: control group ({policy.holdout.fraction:.0%} of eligible accounts)"
        elif assigned.no_capacity[pos]:
            first = f"overflow: no member of {team[pos]} or the teams above it has the skills and capacity"
        else:
            first = (f"overflow: rank {budget.rank[pos]} is over team {team[pos]}'s remaining daily "
                     f"budget of {budget.left[team[pos]]}")
        entry = [first, f"{head.rule_id[pos]}: {head.rule_description[pos]}"]
        if head.reason_driver[pos] is not None:
            entry.append(f"top driver: {head.reason_driver[pos]}")
        out[pos] = entry
    return out


def decision_frame(
    run: RoutingInputs,
    rules: Sequence[SeverityRule],
    *,
    sev: Severity,
    action: np.ndarray,
    head: Headline,
    why: list[list[str]],
    pool: np.ndarray,
    budget: Budget,
    assigned: Assignment,
    updates: Updates,
    first_due: np.ndarray,
    resolution_due: np.ndarray,
) -> pd.DataFrame:
    """The `DECISION_COLUMNS` frame, one row per candidate in the candidates' order (`why`: the
    `reasons` lists)."""
    empty_skills: list[str] = []
    decisions = pd.DataFrame({
        "account_id": run.ids,
        "action": pd.Series(action, dtype="str"),
        "priority": pd.Series(sev.priority, dtype=object),
        "team": pd.Series(assigned.team, dtype=object),
        "required_skills": [list(rules[i].required_skills) if e else empty_skills.copy()
                            for i, e in zip(sev.rule_idx, sev.eligible)],
        "rule_id": pd.Series(head.rule_id, dtype=object),
        "rule_description": pd.Series(head.rule_description, dtype=object),
        "reason_driver": pd.Series(head.reason_driver, dtype=object),
        "reasons": why,
        "expected_arr_at_risk": run.arr_at_risk,
        "rank": _ranks(budget.rank, pool),
        "assignee": pd.Series(assigned.assignee, dtype=object),
        "sla_first_touch_due": first_due,
        "sla_resolution_due": resolution_due,
        "case_id": pd.Series(updates.case_id, dtype=object),
        "previous_priority": pd.Series(updates.previous_priority, dtype=object),
    })
    return decisions[list(DECISION_COLUMNS)]


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


def _aware_utc(value: dt.datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise RoutingError(f"now must be timezone-aware, got {value!r}")
    return stamp.tz_convert("UTC")


def _require(frame: pd.DataFrame, columns: set[str], name: str) -> None:
    missing = sorted(columns - set(frame.columns))
    if missing:
        raise RoutingError(
            f"{name} frame lacks column(s) {', '.join(missing)}; "
            f"columns: {', '.join(map(str, frame.columns))}"
        )


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


def _ranks(rank: np.ndarray, ranked: np.ndarray) -> pd.arrays.IntegerArray:
    """Budget ranks as nullable integers: missing for rows that never entered the budget."""
    return pd.arrays.IntegerArray(rank.astype(np.int64), mask=~ranked)


def _naive64(instant: dt.datetime) -> np.datetime64:
    return pd.Timestamp(instant).tz_convert("UTC").tz_localize(None).to_datetime64()

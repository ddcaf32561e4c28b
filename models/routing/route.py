"""Routing: what the rescue queue does with every candidate account, under one policy.

`route` applies a policy to the whole candidate frame as a short pipeline of vectorized stages.
Each stage is a function of arrays aligned with the candidates (position i = candidate i) and
can be called and tested on its own. The inputs and hysteresis live in `models.routing.inputs`,
stages 2 to 7 in `models.routing.selection`, stages 8 and 9 and the decision frame in
`models.routing.decisions`:

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
`route` raises `RoutingError` when the frames do not fit the policy and returns a
`RoutingResult`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from models.policy.schema import Policy
from models.routing.decisions import ACTIONS, actions, decision_frame, headline, reasons, sla_due_times
from models.routing.inputs import RoutingError, hysteresis, prepare_inputs
from models.routing.selection import (
    assignment,
    budget_ranking,
    cooldown,
    holdout,
    open_case_updates,
    remaining_budget,
    severity,
)

__all__ = ["RoutingError", "RoutingResult", "route"]


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

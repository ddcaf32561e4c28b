"""Policy simulation: replay historical candidate snapshots through one or two policies.

Before a policy change ships, `simulate(policy_a, policy_b, snapshots, outcomes)` answers "what
would this policy have done?" on real history: for each snapshot date, in order, it routes that
day's candidates exactly as production would (`models.routing.route.route`), carrying the queue state
forward from one day to the next: hysteresis states, one open case per account, member load,
cooldown after resolution.

The replay cannot know how fast the team would have worked each case, so a simulated case stays
open for `case_days` days and then resolves (the account then enters its cooldown). Everything
else is the policy's own logic.

Reported per policy: cases per team and week, P1 cases, overflow (over budget or capacity),
the share of accounts that later churned which had a case opened before they churned and the
median days of lead time, the ARR of the accounts that got a case, and the size of the holdout.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.charts import figure_png
from models.clock import utc_timestamp
from models.policy.schema import Policy
from models.routing.route import route

#: Metric name -> what it means, in report order.
METRICS: dict[str, str] = {
    "snapshots": "snapshot dates replayed",
    "cases_opened": "new cases routed to a person",
    "p1_cases": "new cases at priority P1",
    "overflow": "eligible decisions over a team's daily budget or capacity",
    "holdout_accounts": "distinct accounts held out as the control group",
    "churners": "accounts that churned after their first replayed snapshot",
    "churners_caught": "of those, accounts with a case opened before they churned",
    "churners_caught_share": "churners_caught / churners",
    "median_lead_days": "median days from the first case to the churn, over caught churners",
    "arr_covered": "ARR of the distinct accounts that got a case",
}


class SimulationError(ValueError):
    """The snapshots or outcomes cannot be replayed (missing column, no rows)."""


@dataclass(frozen=True)
class PolicyRun:
    """One policy's replay: its summary metrics, weekly volumes and every decision made."""

    label: str
    summary: dict[str, float]
    cases_per_week: pd.DataFrame  # week, team, cases (every replayed week and team)
    decisions: pd.DataFrame       # the decision frames of every snapshot, with snapshot_date


@dataclass(frozen=True)
class SimulationReport:
    """Side-by-side results. `comparison`: one row per metric, one column per policy."""

    runs: tuple[PolicyRun, ...]

    @property
    def comparison(self) -> pd.DataFrame:
        table = pd.DataFrame({run.label: run.summary for run in self.runs}).reindex(list(METRICS))
        table.index.name = "metric"
        return table

    @property
    def cases_per_team_week(self) -> pd.DataFrame:
        """week x (policy, team) case counts, zeros where nothing was routed."""
        frames = [run.cases_per_week.assign(policy=run.label) for run in self.runs]
        stacked = pd.concat(frames, ignore_index=True)
        if stacked.empty:
            return pd.DataFrame()
        return stacked.pivot_table(index="week", columns=["policy", "team"], values="cases",
                                   aggfunc="sum", fill_value=0)


def replay(
    policy: Policy,
    snapshots: pd.DataFrame,
    outcomes: pd.DataFrame,
    *,
    label: str | None = None,
    case_days: int = 14,
    run_hour_utc: int = 12,
) -> PolicyRun:
    """Replay `snapshots` (CANDIDATE_COLUMNS + snapshot_date) through `policy`.

    `outcomes` holds account_id and churned_at (the `churn_outcomes` contract). Each snapshot is
    routed at `run_hour_utc` on its date.
    """
    for name, frame, needed in (("snapshots", snapshots, {"account_id", "snapshot_date", "arr"}),
                                ("outcomes", outcomes, {"account_id", "churned_at"})):
        missing = sorted(needed - set(frame.columns))
        if missing:
            raise SimulationError(f"{name} lacks column(s) {', '.join(missing)}; "
                                  f"columns: {', '.join(map(str, frame.columns))}")
    if snapshots.empty:
        raise SimulationError("no snapshots to replay")
    dates = pd.to_datetime(snapshots["snapshot_date"]).dt.normalize()
    snapshots = snapshots.assign(snapshot_date=dates, account_id=snapshots["account_id"].astype(str))

    open_cases = pd.DataFrame({"account_id": pd.Series(dtype="str"), "case_id": pd.Series(dtype="str"),
                               "priority": pd.Series(dtype="str"), "team": pd.Series(dtype="str"),
                               "opened_at": pd.Series(dtype="datetime64[ns]"),
                               "assignee": pd.Series(dtype=object)})
    resolutions = pd.DataFrame({"account_id": pd.Series(dtype="str"),
                                "resolved_at": pd.Series(dtype="datetime64[ns]")})
    states = None
    all_decisions = []
    for day, candidates in snapshots.groupby("snapshot_date", sort=True):
        now = (day + pd.Timedelta(hours=run_hour_utc)).to_pydatetime().replace(tzinfo=dt.timezone.utc)
        now_naive = utc_timestamp(now)
        done = open_cases["opened_at"] + pd.Timedelta(days=case_days) <= now_naive
        if done.any():
            closed = open_cases.loc[done]
            resolutions = pd.concat([resolutions, pd.DataFrame({
                "account_id": closed["account_id"],
                "resolved_at": closed["opened_at"] + pd.Timedelta(days=case_days)})], ignore_index=True)
            open_cases = open_cases.loc[~done]
        load = open_cases["assignee"].dropna().value_counts().to_dict()
        result = route(candidates.reset_index(drop=True), policy, now=now, open_cases=open_cases,
                       recent_resolutions=resolutions, account_states=states, member_load=load)
        states = result.account_states
        decisions = result.decisions.assign(snapshot_date=day,
                                            arr=candidates["arr"].to_numpy(dtype=float))
        all_decisions.append(decisions)

        updates = decisions.loc[decisions["action"] == "update", ["account_id", "priority"]]
        if len(updates):
            new_priority = open_cases["account_id"].map(updates.set_index("account_id")["priority"])
            open_cases = open_cases.assign(priority=new_priority.fillna(open_cases["priority"]))
        routed = decisions.loc[decisions["action"] == "route"]
        if len(routed):
            open_cases = pd.concat([open_cases, pd.DataFrame({
                "account_id": routed["account_id"],
                "case_id": "sim-" + routed["account_id"] + "-" + day.strftime("%Y%m%d"),
                "priority": routed["priority"], "team": routed["team"],
                "opened_at": now_naive, "assignee": routed["assignee"]})], ignore_index=True)

    decisions = pd.concat(all_decisions, ignore_index=True)
    return PolicyRun(label or f"{policy.name or 'policy'} {policy.version}",
                     _summary(decisions, snapshots, outcomes), _weekly(decisions, list(policy.teams)), decisions)


def simulate(
    policy_a: Policy,
    policy_b: Policy | None,
    snapshots: pd.DataFrame,
    outcomes: pd.DataFrame,
    *,
    case_days: int = 14,
) -> SimulationReport:
    """Replay the same history through one or two policies, for a side-by-side comparison."""
    policies = [policy_a] if policy_b is None else [policy_a, policy_b]
    labels = [f"{p.name or 'policy'} {p.version}" for p in policies]
    if len(set(labels)) < len(labels):
        labels = [f"{label} ({i})" for i, label in enumerate(labels, start=1)]
    return SimulationReport(tuple(
        replay(p, snapshots, outcomes, label=label, case_days=case_days)
        for p, label in zip(policies, labels)
    ))


def _weekly(decisions: pd.DataFrame, teams: list[str]) -> pd.DataFrame:
    """New cases per (week, team) for every replayed week and every team, zeros included."""
    week = decisions["snapshot_date"].dt.to_period("W-SUN").dt.start_time
    routed = decisions["action"] == "route"
    counts = pd.DataFrame({"week": week[routed], "team": decisions.loc[routed, "team"]}).value_counts()
    grid = pd.MultiIndex.from_product([sorted(week.unique()), teams], names=["week", "team"])
    return counts.reindex(grid, fill_value=0).rename("cases").reset_index()


def _summary(decisions: pd.DataFrame, snapshots: pd.DataFrame, outcomes: pd.DataFrame) -> dict[str, float]:
    routed = decisions.loc[decisions["action"] == "route"]
    first_seen = snapshots.groupby("account_id")["snapshot_date"].min()

    # Every churn event counts, a reactivated account's second churn too: it is caught when a
    # case opened after the account's previous churn (or ever, for its first) and before it.
    events = outcomes.assign(account_id=outcomes["account_id"].astype(str),
                             churned_at=pd.to_datetime(outcomes["churned_at"]))[["account_id", "churned_at"]]
    events = events.drop_duplicates().sort_values(["account_id", "churned_at"]).reset_index(drop=True)
    events["since"] = events.groupby("account_id")["churned_at"].shift()
    events = events[events["account_id"].isin(first_seen.index)]
    events = events[events["churned_at"] > events["account_id"].map(first_seen)].reset_index(names="event")
    cases = routed[["account_id", "snapshot_date"]].assign(account_id=routed["account_id"].astype(str),
                                                             snapshot_date=pd.to_datetime(routed["snapshot_date"]))
    pairs = events.merge(cases, on="account_id")
    pairs = pairs[(pairs["snapshot_date"] < pairs["churned_at"])
                  & (pairs["since"].isna() | (pairs["snapshot_date"] > pairs["since"]))]
    case_before = pairs.groupby("event")["snapshot_date"].min().reindex(events["event"])
    caught = pd.Series(case_before.notna().to_numpy(), index=events.index)
    lead_days = (events.loc[caught, "churned_at"].to_numpy() - case_before[caught.to_numpy()].to_numpy()) // np.timedelta64(1, "D")
    churned = events

    arr = routed.drop_duplicates("account_id")["arr"]
    return {
        "snapshots": float(decisions["snapshot_date"].nunique()),
        "cases_opened": float(len(routed)),
        "p1_cases": float((routed["priority"] == "P1").sum()),
        "overflow": float((decisions["action"] == "overflow").sum()),
        "holdout_accounts": float(decisions.loc[decisions["action"] == "holdout", "account_id"].nunique()),
        "churners": float(len(churned)),
        "churners_caught": float(caught.sum()),
        "churners_caught_share": float(caught.mean()) if len(churned) else float("nan"),
        "median_lead_days": float(np.median(lead_days)) if len(lead_days) else float("nan"),
        "arr_covered": float(arr.sum()),
    }


def weekly_cases_chart(report: SimulationReport) -> bytes:
    """New rescue cases per week for each simulated policy, as PNG bytes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    for run in report.runs:
        weekly = run.cases_per_week.groupby("week")["cases"].sum()
        ax.plot(weekly.index, weekly.to_numpy(), marker="o", label=run.label)
    ax.set_title("New rescue cases per week")
    ax.set_ylabel("cases")
    ax.legend()
    fig.autofmt_xdate()
    return figure_png(fig, dpi=110)

"""Benchmark: policy routing and assignment throughput at 10k, 100k and 1M accounts.

    .venv/bin/python benchmarks/bench_policy.py [--sizes 10000 100000 1000000] [--policy FILE]

Builds a synthetic candidate frame with the columns of `CANDIDATE_COLUMNS` (a realistic mix of
segments, risks, renewals and tickets), with a previous-state table that puts every account
past the hysteresis minimum, a slice of open cases and recent resolutions, and routes it through
the policy. It also times `assign` alone on a frame of cases as large as the candidate frame,
against members whose capacity is large enough to assign them all (the worst case), and the
policy evaluation alone: the severity rules' conditions and the hysteresis over the whole frame.
Prints one JSON object per size: wall seconds and accounts per second.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from models.contracts import book_percentiles
from models.routing.assignment import Member, assign
from models.routing.inputs import hysteresis
from models.routing.selection import severity
from models.policy.loader import load_policy
from models.routing.route import route

DEFAULT_POLICY = Path(__file__).resolve().parents[1] / "policies" / "default.yaml"


def synthetic_candidates(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    segment = rng.choice(["enterprise", "mid_market", "smb"], size=n, p=[0.1, 0.3, 0.6])
    arr = np.round(rng.lognormal(mean=10.5, sigma=1.0, size=n), 2)
    risk = rng.beta(1.4, 6.0, size=n)
    days = rng.uniform(-30, 400, size=n)
    days[rng.random(n) < 0.1] = np.nan
    health = np.round(100 * (1 - risk) - rng.normal(0, 8, size=n), 1).clip(0, 100)
    band = np.select([health < 30, health < 50, health < 70], ["critical", "at_risk", "watch"], "healthy")
    urgent = rng.poisson(0.1, size=n)
    snapshot = pd.Timestamp("2026-11-20")
    return pd.DataFrame({
        "account_id": pd.Series([f"acc{i:07d}" for i in range(n)], dtype="str"),
        "name": pd.Series([f"Account {i}" for i in range(n)], dtype="str"),
        "segment": pd.Series(segment, dtype="str"),
        "industry": "software",
        "region": "emea",
        "plan": "pro",
        "csm_owner": pd.Series([f"csm{i % 50}" for i in range(n)], dtype="str"),
        "arr": arr,
        "vip": (segment == "enterprise") & (arr > np.quantile(arr, 0.9)),
        "churn_risk": risk,
        "churn_risk_delta": rng.normal(0, 0.05, size=n),
        "health_score": health,
        "health_band": pd.Series(band, dtype="str"),
        "expected_arr_at_risk": risk * arr,
        "renewal_date": snapshot + pd.to_timedelta(np.nan_to_num(days, nan=0), unit="D"),
        "days_to_renewal": days,
        "open_urgent_tickets": urgent,
        "oldest_open_urgent_hours": np.where(urgent > 0, rng.exponential(6, size=n), 0.0),
        "open_compliance_tickets": rng.poisson(0.005, size=n),
        "wau_trend": rng.normal(-0.05, 0.2, size=n).clip(-1.0, None),  # a share of last period: at least -1
        "top_reason": "usage fell 38% over 90 days",
        "drivers": None,
        "model_version": "bench",
        "snapshot_date": snapshot,
    })


def bench(n: int, policy_path: Path) -> dict[str, float | int]:
    policy = load_policy(policy_path)
    now = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.timezone.utc)
    candidates = synthetic_candidates(n)
    ids = candidates["account_id"]
    states = pd.DataFrame({"account_id": ids, "state": np.where(candidates["churn_risk"] > 0.4, "at_risk", "ok"),
                           "since": pd.Timestamp("2026-11-01")})
    sample = ids.sample(frac=0.01, random_state=1)
    open_cases = pd.DataFrame({"account_id": sample, "case_id": "case-" + sample, "priority": "P3",
                               "team": "csm", "opened_at": pd.Timestamp("2026-11-10")})
    resolved = ids.sample(frac=0.01, random_state=2)
    resolutions = pd.DataFrame({"account_id": resolved, "resolved_at": pd.Timestamp("2026-11-15")})

    # Policy evaluation proper: every severity rule's condition over the whole frame, and the
    # hysteresis, as `route` runs them (the rest of `route` is bookkeeping: updates, cooldown,
    # budgets, assignment, SLA clocks, reasons and the decision frame).
    frame = book_percentiles(candidates)
    started = time.perf_counter()
    held = hysteresis(frame["account_id"].astype(str), frame[policy.hysteresis.field], states, policy.hysteresis,
                      clock=pd.Timestamp("2026-11-20"))
    severity(frame, policy.severity_rules, held.settled)
    evaluate_seconds = time.perf_counter() - started

    started = time.perf_counter()
    result = route(candidates, policy, now=now, open_cases=open_cases, recent_resolutions=resolutions,
                   account_states=states, member_load={})
    route_seconds = time.perf_counter() - started

    cases = pd.DataFrame({"team": np.resize(np.array(["csm", "rescue_squad", "legal"]), n),
                          "required_skills": [["renewals"]] * n})
    members = [Member(id=f"m{i}", team=("csm", "rescue_squad", "legal")[i % 3],
                      skills=frozenset({"renewals"}), capacity=n) for i in range(60)]
    started = time.perf_counter()
    assignees = assign(cases, members, {}, escalation_paths={})
    assign_seconds = time.perf_counter() - started

    return {
        "accounts": n,
        "evaluate_seconds": round(evaluate_seconds, 3),
        "evaluate_accounts_per_second": round(n / evaluate_seconds),
        "route_seconds": round(route_seconds, 3),
        "route_accounts_per_second": round(n / route_seconds),
        "assign_cases": n,
        "assign_members": len(members),
        "assign_seconds": round(assign_seconds, 3),
        "assign_cases_per_second": round(n / assign_seconds),
        "assigned": int(assignees.notna().sum()),
        **{f"decisions_{k}": v for k, v in result.counts().items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    args = parser.parse_args()
    for n in args.sizes:
        print(json.dumps(bench(n, args.policy)), flush=True)


if __name__ == "__main__":
    main()

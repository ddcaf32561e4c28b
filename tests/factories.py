"""Small random tables in the canonical contracts, for pure-logic tests (no demo world needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.contracts import ACCOUNTS, RENEWALS, TICKETS, USAGE_DAILY, conform


def random_tables(n_accounts: int = 40, *, seed: int = 0, start: str = "2025-01-01", days: int = 400) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    start_ts = pd.Timestamp(start)
    ids = [f"A{i:03d}" for i in range(n_accounts)]
    accounts = pd.DataFrame(
        {
            "account_id": ids,
            "name": [f"Company {i}" for i in range(n_accounts)],
            "segment": rng.choice(["enterprise", "mid_market", "smb"], n_accounts),
            "industry": rng.choice(["retail", "finance", "health"], n_accounts),
            "region": rng.choice(["emea", "amer"], n_accounts),
            "arr": rng.uniform(5_000, 500_000, n_accounts).round(0),
            "plan": rng.choice(["pro", "enterprise"], n_accounts),
            "seats": rng.integers(5, 200, n_accounts),
            "csm_owner": rng.choice(["ana", "bo", "cy"], n_accounts),
            "created_at": start_ts - pd.to_timedelta(rng.integers(30, 700, n_accounts), unit="D"),
        }
    )
    renewals = []
    for i, aid in enumerate(ids):
        rd = accounts.loc[i, "created_at"] + pd.Timedelta(days=365)
        k = 0
        while rd < start_ts + pd.Timedelta(days=days + 365):
            closed = rd - pd.Timedelta(days=int(rng.integers(-5, 30)))
            past = closed < start_ts + pd.Timedelta(days=days)
            outcome = ("churned" if rng.random() < 0.25 else "renewed") if past else "open"
            renewals.append(
                {
                    "renewal_id": f"R{i:03d}-{k}",
                    "account_id": aid,
                    "renewal_date": rd,
                    "amount": float(accounts.loc[i, "arr"]),
                    "stage": "closed" if past else "open",
                    "closed_at": closed if past else pd.NaT,
                    "outcome": outcome,
                }
            )
            k += 1
            if outcome == "churned" or not past:
                break
            rd += pd.Timedelta(days=365)
    n_t = n_accounts * 8
    created = start_ts + pd.to_timedelta(rng.uniform(0, days, n_t), unit="D")
    first = created + pd.to_timedelta(rng.exponential(5, n_t), unit="h")
    solved = first + pd.to_timedelta(rng.exponential(48, n_t), unit="h")
    solved = pd.Series(solved).where(rng.random(n_t) < 0.85)
    tickets = pd.DataFrame(
        {
            "ticket_id": [f"T{j:05d}" for j in range(n_t)],
            "account_id": rng.choice(ids, n_t),
            "created_at": created,
            "first_response_at": first,
            "solved_at": solved,
            "priority": rng.choice(["urgent", "high", "normal", "low"], n_t),
            "category": rng.choice(["bug", "billing", "compliance", "how_to"], n_t),
            "status": np.where(solved.notna(), "solved", "open"),
            "csat": np.where(solved.notna() & (rng.random(n_t) < 0.5), rng.integers(1, 6, n_t), np.nan),
            "escalated": rng.random(n_t) < 0.1,
        }
    )
    dates = pd.date_range(start_ts, periods=days, freq="D")
    usage = pd.DataFrame(
        {
            "account_id": np.repeat(ids, days),
            "date": np.tile(dates, n_accounts),
        }
    )
    usage["active_users"] = rng.poisson(8, len(usage))
    usage["events"] = usage["active_users"] * rng.integers(1, 20, len(usage))
    usage["core_events"] = usage["events"] // 2
    usage["advanced_events"] = usage["events"] // 5
    usage = usage[rng.random(len(usage)) < 0.8].reset_index(drop=True)
    return {
        "accounts": conform(accounts, ACCOUNTS),
        "renewals": conform(pd.DataFrame(renewals), RENEWALS),
        "tickets": conform(tickets, TICKETS),
        "usage_daily": conform(usage, USAGE_DAILY),
    }


def company_history(n: int = 40, seed: int = 4) -> dict[str, pd.DataFrame]:
    """A company's own clean history, shaped unlike the demo world: accounts signing up through
    2023 (ids C-0000...), yearly terms from the signup, tickets and usage (every third day) only
    while a customer, one account in seven churning at its first renewal (known 20 days before
    the term ends; activity stops at the end). The data ends 2024-12-31."""
    rng = np.random.default_rng(seed)
    ids = [f"C-{i:04d}" for i in range(n)]
    signup = [pd.Timestamp("2023-01-01") + pd.Timedelta(days=int(d)) for d in rng.integers(0, 300, n)]
    accounts = pd.DataFrame({"account_id": ids, "name": [f"Client {i}" for i in range(n)], "segment": "smb",
                             "industry": None, "region": "dach", "arr": 12_000.0, "plan": "team", "seats": 10,
                             "csm_owner": "jo", "created_at": signup})
    renewals, tickets, usage = [], [], []
    data_end = pd.Timestamp("2024-12-31")
    for i, (aid, start) in enumerate(zip(ids, signup, strict=True)):
        due, k, active_until = start + pd.Timedelta(days=365), 0, data_end
        while True:
            if due > data_end:
                renewals.append({"renewal_id": f"{aid}-{k}", "account_id": aid, "renewal_date": due, "amount": 12_000.0,
                                 "stage": "open", "closed_at": pd.NaT, "outcome": "open"})
                break
            churn = i % 7 == 0
            renewals.append({"renewal_id": f"{aid}-{k}", "account_id": aid, "renewal_date": due, "amount": 12_000.0,
                             "stage": "closed", "closed_at": due - pd.Timedelta(days=20),
                             "outcome": "churned" if churn else "renewed"})
            if churn:
                active_until = due
                break
            due, k = due + pd.Timedelta(days=365), k + 1
        for day in pd.date_range(start, min(active_until, data_end), freq="3D"):
            usage.append({"account_id": aid, "date": day, "active_users": 4, "events": 40, "core_events": 20,
                          "advanced_events": 5})
        for j, day in enumerate(pd.date_range(start + pd.Timedelta(days=5), min(active_until, data_end), freq="45D")):
            tickets.append({"ticket_id": f"Z{i:04d}{j:02d}", "account_id": aid, "created_at": day + pd.Timedelta(hours=9),
                            "first_response_at": day + pd.Timedelta(hours=10), "solved_at": pd.NaT, "priority": "normal",
                            "category": "question", "status": "open", "csat": np.nan, "escalated": False})
    return {"accounts": conform(accounts, ACCOUNTS), "renewals": conform(pd.DataFrame(renewals), RENEWALS),
            "tickets": conform(pd.DataFrame(tickets), TICKETS), "usage_daily": conform(pd.DataFrame(usage), USAGE_DAILY)}

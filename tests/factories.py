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


def company_training_set(n_accounts: int = 300, *, seed: int = 0, n_dates: int = 8, churn_rate: float = 0.05,
                         signal: float = 0.6, support_backwards: bool = False,
                         first_date: str = "2025-03-03") -> pd.DataFrame:
    """A training set of a synthetic company, in the columns `models.churn.training` produces.

    Each account has a latent trouble level; its usage falls with trouble, and churn within the
    horizon follows logit(p) = logit(churn_rate) + signal * trouble, so ``signal`` sets how much
    there is to learn (0.6: little). With ``support_backwards`` the support signals point the
    wrong way for the default health score: accounts with open urgent tickets and escalations are
    the engaged ones, and churn *less* (a real pattern where the quiet accounts are the ones
    leaving). Observation dates are 28 days apart.
    """
    from scipy.special import expit, logit

    from models.churn.features import FEATURE_NAMES

    rng = np.random.default_rng(seed)
    ids = np.array([f"C{i:04d}" for i in range(n_accounts)])
    segment = rng.choice(["enterprise", "mid_market", "smb"], n_accounts, p=[0.1, 0.3, 0.6])
    industry = rng.choice(["retail", "finance", "health", "media"], n_accounts)
    region = rng.choice(["emea", "amer", "apac"], n_accounts)
    plan = rng.choice(["starter", "pro", "enterprise"], n_accounts)
    arr = np.round(np.exp(rng.normal(10, 1, n_accounts)), -1)
    seats = np.maximum(3, np.round(arr / 900)).astype(float)
    tenure0 = rng.integers(60, 1500, n_accounts)
    engagement = rng.normal(0, 1, n_accounts)  # with support_backwards: engaged accounts file tickets and stay
    frames = []
    for k in range(n_dates):
        d = pd.Timestamp(first_date) + pd.Timedelta(days=28 * k)
        trouble = rng.normal(0, 1, n_accounts)
        au90 = np.maximum(0.5, seats * rng.uniform(0.2, 0.7, n_accounts))
        wau = np.clip(-0.15 * trouble + rng.normal(0, 0.2, n_accounts), -1, 1.5)
        ticket_rate = np.exp(0.3 + (0.6 * engagement if support_backwards else 0.3 * trouble))
        urgent_open = rng.poisson(0.15 * ticket_rate).astype(float)
        days_to_renewal = rng.integers(0, 365, n_accounts).astype(float)
        f = pd.DataFrame({
            "account_id": ids, "observation_date": d, "as_of": d,
            "au_7d": au90 * (1 + wau), "au_90d": au90, "wau_trend": wau,
            "au_30d_trend": wau * 0.7 + rng.normal(0, 0.1, n_accounts),
            "events_30d_trend": wau * 0.8 + rng.normal(0, 0.1, n_accounts),
            "advanced_share_30d": np.clip(rng.beta(2, 8, n_accounts) - 0.03 * trouble, 0, 1),
            "days_since_active": np.clip(np.round(rng.exponential(2 + np.maximum(trouble, 0) * 3)), 0, 91),
            "seat_utilization": np.clip(au90 * (1 + wau) / seats, 0, 2),
            "tickets_90d": rng.poisson(2 * ticket_rate).astype(float),
            "urgent_tickets_90d": rng.poisson(0.4 * ticket_rate).astype(float),
            "open_urgent_tickets": urgent_open,
            "oldest_open_urgent_hours": np.where(urgent_open > 0, rng.exponential(60, n_accounts), 0.0),
            "open_tickets": urgent_open + rng.poisson(0.5 * ticket_rate),
            "open_compliance_tickets": rng.poisson(0.05, n_accounts).astype(float),
            "median_first_response_hours": rng.exponential(4, n_accounts),
            "escalated_90d": rng.poisson(0.2 * ticket_rate).astype(float),
            "csat_avg_180d": np.clip(rng.normal(4.2, 0.6, n_accounts), 1, 5),
            "low_csat_180d": rng.poisson(0.2 * ticket_rate).astype(float),
            "tenure_days": (tenure0 + 28 * k).astype(float),
            "days_to_renewal": days_to_renewal,
            "renewals_done": np.floor((tenure0 + 28 * k) / 365).astype(float),
            "segment": segment, "industry": industry, "region": region, "plan": plan,
            "arr": arr, "seats": seats, "arr_per_seat": arr / seats,
        })
        z = logit(churn_rate) + signal * trouble - (0.9 * engagement if support_backwards else 0.0)
        f["label"] = (rng.random(n_accounts) < expit(z)).astype(int)
        f["treated"] = False
        frames.append(f)
    out = pd.concat(frames, ignore_index=True)
    for col in ("segment", "industry", "region", "plan"):
        out[col] = out[col].astype("string")
    missing = [c for c in FEATURE_NAMES if c not in out.columns]
    assert not missing, missing
    return out

"""A second synthetic company, shaped nothing like the demo world: a subscription SaaS business
with five exports, as its analyst would pull them.

``accounts.csv``        account_id, account_name, industry, country, signup_date, referral_source,
                        plan_tier, seats, is_trial, churn_flag
``subscriptions.csv``   several per account: subscription_id, account_id, start_date, end_date (empty
                        while a monthly plan runs on), plan_tier, seats, mrr_amount, arr_amount,
                        is_trial, upgrade_flag, downgrade_flag, billing_frequency (Monthly/Yearly),
                        auto_renew_flag
``feature_usage.csv``   per subscription per day and feature: usage_id, subscription_id, usage_date,
                        feature_name (its own names), usage_count, usage_duration_secs, error_count,
                        is_beta_feature
``support_tickets.csv`` ticket_id, account_id, submitted_at, closed_at, resolution_time_hours,
                        priority (blocker/major/minor/trivial), first_response_time_minutes,
                        satisfaction_score, escalation_flag (Y/N)
``churn_events.csv``    churn_event_id, account_id, churn_date, reason_code, refund_amount_usd,
                        preceding_upgrade_flag, preceding_downgrade_flag, is_reactivation,
                        feedback_text

Dates are day-first (``23/04/2026``, tickets ``23/04/2026 14:05``). Trials convert into paid terms;
monthly plans run on until changed, annual terms end every twelve months and renew, upgrade,
downgrade or churn; some churned accounts come back (the churn event says ``is_reactivation``).
Unhealthy accounts use the product less, open more urgent tickets and churn more. The output
depends only on the arguments. `make_dirty` plants one class of problem for the check to find.

It is loaded only through ``subscription_saas.yaml`` next to this file: no mapping code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

MAPPING = Path(__file__).with_name("subscription_saas.yaml")
FILES = ("accounts.csv", "subscriptions.csv", "feature_usage.csv", "support_tickets.csv", "churn_events.csv")

PLANS = ("Starter", "Growth", "Scale")
PRICE_PER_SEAT_MONTH = {"Starter": 15.0, "Growth": 35.0, "Scale": 70.0}
CORE_FEATURES = ("dashboard_view", "report_builder", "csv_export", "team_comments")
ADVANCED_FEATURES = ("workflow_rules", "api_sync", "sso_admin")
BETA_FEATURES = ("forecast_lab",)
PRIORITY_WORDS = ("blocker", "major", "minor", "trivial")
REASONS = ("pricing", "missing_features", "support", "competitor", "budget", "unknown")
INDUSTRIES = ("FinTech", "HealthTech", "EdTech", "Retail", "Media", "Logistics")
COUNTRIES = ("DE", "FR", "GB", "US", "NL", "ES", "IN", "BR", "AU", "CA")
DIRTY = ("tickets_before_signup", "usage_outside_subscription", "usage_after_churn",
         "churned_flag_mismatch", "unmapped_priority")


@dataclass(frozen=True)
class Company:
    n_accounts: int = 240
    seed: int = 11
    start: date = date(2025, 6, 1)   # first day of the usage and ticket exports
    end: date = date(2026, 11, 30)   # last day of the exports

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def _day(d: date | datetime) -> str:
    return d.strftime("%d/%m/%Y")


def _stamp(d: datetime) -> str:
    return d.strftime("%d/%m/%Y %H:%M")


def _add_months(d: date, months: int) -> date:
    return (pd.Timestamp(d) + pd.DateOffset(months=months)).date()


class _Builder:
    def __init__(self, company: Company) -> None:
        self.c = company
        self.rng = np.random.default_rng(company.seed)
        self.accounts: list[dict] = []
        self.subs: list[dict] = []
        self.usage: list[pd.DataFrame] = []
        self.tickets: list[dict] = []
        self.churns: list[dict] = []
        self.n_usage = 0

    # one account's life ------------------------------------------------------------------
    def account(self, i: int) -> None:
        c, rng = self.c, self.rng
        aid = f"ACC{10001 + i}"
        signup = c.start - timedelta(days=int(rng.integers(0, 420))) + timedelta(days=int(rng.integers(0, 420)))
        signup = min(signup, c.end - timedelta(days=45))
        health = float(rng.normal(0.0, 1.0))  # latent: low = unhappy
        plan = PLANS[int(rng.choice(3, p=[0.5, 0.35, 0.15]))]
        seats = int(np.clip(rng.lognormal(2.6 + 0.5 * PLANS.index(plan), 0.8), 3, 600))
        trial = bool(rng.random() < 0.4)
        billing = "Yearly" if rng.random() < 0.55 else "Monthly"
        periods: list[tuple[date, date | None]] = []  # active paid periods, for tickets and usage
        churn_dates: list[date] = []
        t = signup
        if trial:
            end = t + timedelta(days=14)
            self._sub(aid, t, end, plan, seats, True, billing="Monthly")
            periods.append((t, end))
            t = end
        came_back = False
        while t <= c.end:
            stop, churned, change = self._paid_life(aid, t, plan, seats, billing, health, periods, came_back)
            if not churned or stop is None:
                break
            churn_dates.append(stop)
            reactivate = rng.random() < 0.3
            back = stop + timedelta(days=int(rng.integers(60, 200)))
            reactivated = reactivate and back <= c.end - timedelta(days=20)
            self._churn(aid, stop, reactivated, change)
            if not reactivated:
                break
            t, came_back, health = back, True, health + 0.8
        self.accounts.append({
            "account_id": aid, "account_name": f"{_name(rng)} {('Labs', 'Systems', 'Group', 'Works')[i % 4]}",
            "industry": INDUSTRIES[int(rng.integers(len(INDUSTRIES)))], "country": COUNTRIES[int(rng.integers(len(COUNTRIES)))],
            "signup_date": _day(signup), "referral_source": ("organic", "partner", "ads", "event")[int(rng.integers(4))],
            "plan_tier": plan, "seats": seats, "is_trial": trial,
            "churn_flag": bool(churn_dates) and periods[-1][1] is not None and periods[-1][1] <= c.end,
        })
        for start, end in periods:
            self._activity(aid, start, end, health, churn_dates)

    def _paid_life(self, aid, t, plan, seats, billing, health, periods, came_back):
        """Paid terms from ``t`` until a churn or the end; returns (churn date, churned, last change)."""
        c, rng = self.c, self.rng
        change = ""
        first = True
        while True:
            months = 12 if billing == "Yearly" else int(rng.integers(3, 15))
            end = _add_months(t, months)
            risk = 1 / (1 + np.exp(1.6 + 1.2 * health)) * (0.9 if billing == "Yearly" else 0.6)
            roll = rng.random()
            if end > c.end:  # the term in progress at the end of the data
                open_end = None if billing == "Monthly" else end
                self._sub(aid, t, open_end, plan, seats, False, billing, came_back and first, change)
                periods.append((t, None if open_end is None else end))
                return None, False, change
            if roll < risk:  # churn: at the term end (annual) or in the month it happens (monthly)
                stop = end if billing == "Yearly" else t + timedelta(days=int(rng.integers(20, 30 * months)))
                stop = min(stop, end, c.end - timedelta(days=1))
                self._sub(aid, t, stop, plan, seats, False, billing, came_back and first, change)
                periods.append((t, stop))
                return stop, True, change
            self._sub(aid, t, end, plan, seats, False, billing, came_back and first, change)
            periods.append((t, end))
            first = False
            move = rng.random()
            if move < 0.15 and PLANS.index(plan) < 2:
                plan, change = PLANS[PLANS.index(plan) + 1], "upgrade"
            elif move < 0.25 and PLANS.index(plan) > 0:
                plan, change = PLANS[PLANS.index(plan) - 1], "downgrade"
            elif move < 0.35:
                seats, change = max(3, int(seats * rng.uniform(0.6, 1.5))), "seats"
            else:
                change = ""
            health += float(rng.normal(0, 0.3))
            t = end

    def _sub(self, aid, start, end, plan, seats, trial, billing, reactivation=False, change=""):
        arr = 0.0 if trial else round(seats * PRICE_PER_SEAT_MONTH[plan] * 12 * (0.85 if billing == "Yearly" else 1.0), 2)
        self.subs.append({
            "subscription_id": f"SUB{len(self.subs) + 50001}", "account_id": aid, "start_date": _day(start),
            "end_date": _day(end) if end else "", "plan_tier": plan, "seats": seats, "mrr_amount": round(arr / 12, 2),
            "arr_amount": arr, "is_trial": trial, "upgrade_flag": change == "upgrade", "downgrade_flag": change == "downgrade",
            "billing_frequency": billing, "auto_renew_flag": billing == "Yearly" and not trial,
            "_start": start, "_end": end,
        })

    def _churn(self, aid, when, reactivated, change):
        rng = self.rng
        reason = REASONS[int(rng.integers(len(REASONS)))]
        self.churns.append({
            "churn_event_id": f"CH{len(self.churns) + 901}", "account_id": aid, "churn_date": _day(when),
            "reason_code": reason, "refund_amount_usd": round(float(rng.choice([0, 0, 0, rng.uniform(50, 900)])), 2),
            "preceding_upgrade_flag": change == "upgrade", "preceding_downgrade_flag": change == "downgrade",
            "is_reactivation": reactivated, "feedback_text": {"pricing": "Too expensive for us", "support": "Slow answers",
                                                              "competitor": "Moved to another tool"}.get(reason, ""),
        })

    def _activity(self, aid, start, end, health, churn_dates) -> None:
        """Usage of each subscription in the period and the account's tickets, inside the exports' window."""
        c, rng = self.c, self.rng
        first = max(start, c.start)
        last = min(end - timedelta(days=1) if end else c.end, c.end)
        if last < first:
            return
        subs = [s for s in self.subs if s["account_id"] == aid and s["_start"] <= last and (s["_end"] is None or s["_end"] > first)]
        for s in subs:
            s_first, s_last = max(first, s["_start"]), min(last, (s["_end"] - timedelta(days=1)) if s["_end"] else last)
            if s_last < s_first:
                continue
            days = pd.date_range(s_first, s_last, freq="D")
            to_churn = np.array([min(((cd - d.date()).days for cd in churn_dates if cd >= d.date()), default=999) for d in days])
            fade = np.where(to_churn < 120, to_churn / 120.0, 1.0)
            p_active = np.clip(0.35 + 0.1 * health, 0.05, 0.8) * (0.3 + 0.7 * fade) * np.where(days.day_of_week < 5, 1.0, 0.3)
            active = days[rng.random(len(days)) < p_active]
            if not len(active):
                continue
            n_feat = rng.integers(1, 3, len(active))
            day_rep = np.repeat(active, n_feat)
            adv_share = np.clip(0.25 + 0.08 * health, 0.02, 0.6)
            pools = rng.random(len(day_rep))
            feature = np.where(pools < adv_share, rng.choice(ADVANCED_FEATURES, len(day_rep)),
                               np.where(pools > 0.97, BETA_FEATURES[0], rng.choice(CORE_FEATURES, len(day_rep))))
            seats_scale = max(1.0, np.sqrt(s["seats"]))
            count = rng.poisson(2 + 1.5 * seats_scale * (0.4 + 0.6 * np.repeat(fade[np.isin(days, active)], n_feat)))
            n = len(day_rep)
            self.usage.append(pd.DataFrame({
                "usage_id": [f"U{self.n_usage + k + 1:07d}" for k in range(n)], "subscription_id": s["subscription_id"],
                "usage_date": [d.strftime("%d/%m/%Y") for d in day_rep], "feature_name": feature, "usage_count": count,
                "usage_duration_secs": (count * rng.integers(20, 200, n)).astype(int), "error_count": rng.poisson(0.2, n),
                "is_beta_feature": feature == BETA_FEATURES[0],
            }))
            self.n_usage += n
        span = (last - first).days + 1
        rate = 0.6 * np.exp(-0.5 * health) * span / 30
        for _ in range(int(rng.poisson(rate))):
            opened = datetime.combine(first, datetime.min.time()) + timedelta(minutes=int(rng.integers(0, span * 1440)))
            if opened.date() > last:
                continue
            urgent = rng.random() < np.clip(0.08 - 0.05 * health, 0.01, 0.3)
            prio = "blocker" if urgent else PRIORITY_WORDS[1 + int(rng.choice(3, p=[0.3, 0.5, 0.2]))]
            first_minutes = int(rng.integers(5, 600))
            hours = round(float(rng.gamma(2, 8 if not urgent else 3)), 1)
            closed = opened + timedelta(hours=hours)
            still_open = closed.date() > c.end
            csat = "" if still_open or rng.random() < 0.4 else int(np.clip(round(rng.normal(4 + 0.5 * health, 1)), 1, 5))
            self.tickets.append({
                "ticket_id": f"TCK{len(self.tickets) + 70001}", "account_id": aid, "submitted_at": _stamp(opened),
                "closed_at": "" if still_open else _stamp(closed), "resolution_time_hours": "" if still_open else hours,
                "priority": prio, "first_response_time_minutes": first_minutes, "satisfaction_score": csat,
                "escalation_flag": "Y" if urgent and rng.random() < 0.5 else "N",
            })


def _name(rng: np.random.Generator) -> str:
    a = ("Nor", "Vel", "Quin", "Ast", "Bri", "Cor", "Dal", "Fen", "Hal", "Lum", "Mar", "Ori", "Pax", "Sol", "Tor")
    b = ("vex", "ara", "ion", "ent", "ica", "ora", "ux", "ano", "ell", "ium")
    return a[int(rng.integers(len(a)))] + b[int(rng.integers(len(b)))]


def write_company(directory: Path, company: Company = Company()) -> dict[str, int]:
    """Write the five exports into ``directory``; return rows per file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    b = _Builder(company)
    for i in range(company.n_accounts):
        b.account(i)
    frames = {
        "accounts.csv": pd.DataFrame(b.accounts),
        "subscriptions.csv": pd.DataFrame(b.subs).drop(columns=["_start", "_end"]),
        "feature_usage.csv": pd.concat(b.usage, ignore_index=True),
        "support_tickets.csv": pd.DataFrame(b.tickets).sort_values("ticket_id"),
        "churn_events.csv": pd.DataFrame(b.churns),
    }
    for name, frame in frames.items():
        frame.to_csv(directory / name, index=False)
    return {name: len(frame) for name, frame in frames.items()}


def read(directory: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(Path(directory) / name, dtype=str, keep_default_na=False)


def _parse(text: pd.Series) -> pd.Series:
    return pd.to_datetime(text, dayfirst=True, format="mixed")


def make_dirty(directory: Path, problem: str, n: int = 8) -> list[str]:
    """Plant ``n`` rows of one problem class (one of `DIRTY`) in the exports; return the ids touched.

    ``tickets_before_signup`` dates the first ``n`` tickets 60 days before their account's signup
    (beyond the 30 days of grace the checks allow); ``usage_after_churn`` adds a usage row 12
    days after the end of the billing period in which each of ``n`` accounts that never came back
    churned (the term's end; beyond the 7 days of grace; outside its subscription, too)."""
    directory = Path(directory)
    accounts, subs = read(directory, "accounts.csv"), read(directory, "subscriptions.csv")
    tickets, churn = read(directory, "support_tickets.csv"), read(directory, "churn_events.csv")
    if problem == "tickets_before_signup":
        signup = _parse(accounts.set_index("account_id")["signup_date"])
        rows = tickets.index[:n]
        when = signup.reindex(tickets.loc[rows, "account_id"]).to_numpy() - np.timedelta64(60, "D")
        tickets.loc[rows, "submitted_at"] = [pd.Timestamp(w).strftime("%d/%m/%Y 10:00") for w in when]
        tickets.loc[rows, "closed_at"] = [pd.Timestamp(w).strftime("%d/%m/%Y 18:00") for w in when]
        tickets.to_csv(directory / "support_tickets.csv", index=False)
        return list(tickets.loc[rows, "ticket_id"])
    if problem == "usage_outside_subscription":
        usage = read(directory, "feature_usage.csv")
        ended = subs[(subs["end_date"] != "") & (subs["is_trial"] == "False")]
        ended = ended[~ended["account_id"].isin(churn["account_id"])]  # renewed terms: not churn
        ends = _parse(ended.set_index("subscription_id")["end_date"])
        ends = ends[ends < pd.Timestamp("2026-09-01")]
        picked = usage[usage["subscription_id"].isin(ends.index)].groupby("subscription_id").head(1).head(n)
        usage.loc[picked.index, "usage_date"] = [
            (ends[s] + pd.Timedelta(days=40)).strftime("%d/%m/%Y") for s in picked["subscription_id"]]
        usage.to_csv(directory / "feature_usage.csv", index=False)
        return list(picked["subscription_id"])
    if problem == "usage_after_churn":
        usage = read(directory, "feature_usage.csv")
        paid = subs.assign(start=_parse(subs["start_date"]),
                           months=subs["billing_frequency"].map({"Monthly": 1, "Yearly": 12}))
        paid = paid[paid["is_trial"] == "False"]
        gone = churn[churn["is_reactivation"] == "False"].assign(at=lambda f: _parse(f["churn_date"]))
        rows = []
        for row in gone.itertuples():
            # 12 days after the end of the billing period the churn fell in: the customer had
            # paid up to then (a usage day inside it is no problem)
            mine = paid[(paid["account_id"] == row.account_id) & (paid["start"] <= row.at)].sort_values("start")
            if not len(mine):
                continue
            sub = mine.iloc[-1]
            paid_to, k = sub["start"], 0
            while paid_to < row.at:
                k += 1
                paid_to = sub["start"] + pd.DateOffset(months=k * int(sub["months"]))
            when = paid_to + pd.Timedelta(days=12)
            if when < pd.Timestamp("2026-11-30"):
                rows.append((row.account_id, sub["subscription_id"], when))
            if len(rows) == n:
                break
        extra = pd.DataFrame([{
            **usage.iloc[0].to_dict(), "usage_id": f"U9{k:06d}", "subscription_id": sub_id,
            "usage_date": when.strftime("%d/%m/%Y"),
        } for k, (_, sub_id, when) in enumerate(rows)])
        pd.concat([usage, extra]).to_csv(directory / "feature_usage.csv", index=False)
        return [account for account, _, _ in rows]
    if problem == "churned_flag_mismatch":
        churned = set(churn["account_id"])
        staying = accounts.index[~accounts["account_id"].isin(churned)][:n]
        accounts.loc[staying, "churn_flag"] = "True"  # flagged churned, no churn anywhere
        accounts.to_csv(directory / "accounts.csv", index=False)
        return list(accounts.loc[staying, "account_id"])
    if problem == "unmapped_priority":
        rows = tickets.index[:n]
        tickets.loc[rows, "priority"] = "showstopper"
        tickets.to_csv(directory / "support_tickets.csv", index=False)
        return list(tickets.loc[rows, "ticket_id"])
    raise ValueError(f"unknown problem {problem!r}; expected one of {', '.join(DIRTY)}")


if __name__ == "__main__":  # the README's worked example: exports next to the mapping (git-ignored)
    counts = write_company(MAPPING.with_name("exports"))
    print(", ".join(f"{name} {rows:,}" for name, rows in counts.items()) + f" -> {MAPPING.with_name('exports')}")

"""What `rescue data init` guesses from samples of a company's files (pure: frames in, guesses out).

- `profile_columns`: each column's kind (bool, int, float, date, text), whether it is a key
  (unique, never empty, named like an id), and for dates whether they read day first;
- `guess_roles`: which file is which section (accounts, subscriptions, usage, tickets, churn,
  renewals), from the words in its column names and file name;
- `guess_fields`: which column fills which field of a section, by name;
- `guess_value_map`: the canonical word for each of a column's values (priorities, statuses,
  billing periods, segments, outcomes), ``None`` where no guess is safe.

Nothing here names any company's columns: the guesses are vocabularies of common words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from models.mapping.dates import day_first_evidence, looks_like_dates
from models.mapping.fields import FALSE_WORDS, SECTION_FIELDS, TRUE_WORDS

_SPLIT = re.compile(r"[^a-z0-9]+")
_ID_NAMES = {"accountid", "customerid", "userid", "ticketid", "subscriptionid", "uuid", "key"}


def normalize(name: str) -> str:
    """``Account ID`` -> ``account_id``."""
    return _SPLIT.sub("_", str(name).strip().lower()).strip("_")


def tokens(name: str) -> set[str]:
    return {t for t in normalize(name).split("_") if t}


@dataclass
class ColumnProfile:
    name: str
    kind: str                       # bool | int | float | date | text
    filled: float                   # share of non-empty values
    distinct: int
    key: bool = False
    day_first: bool | None = None   # dates only: True / False / None (cannot tell)
    has_time: bool = False
    values: list[str] = field(default_factory=list)  # up to 50 distinct values (text columns)


def _kind(values: pd.Series) -> tuple[str, bool | None, bool]:
    text = values.dropna().astype(str).str.strip()
    text = text[text != ""]
    if text.empty:
        return "text", None, False
    lowered = set(text.str.lower().unique())
    if lowered <= set(TRUE_WORDS) | set(FALSE_WORDS) and not lowered <= {"0", "1", "0.0", "1.0"}:
        return "bool", None, False
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().mean() >= 0.98:
        whole = numbers.dropna()
        return ("int" if (whole == whole.round()).all() else "float"), None, False
    sample = text.head(5_000)
    if looks_like_dates(sample) >= 0.9:
        day_first, month_first, _ = day_first_evidence(sample)
        order = True if day_first and not month_first else False if month_first and not day_first else None
        return "date", order, bool(sample.str.contains(r"\d:\d").any())
    return "text", None, False


def profile_columns(frame: pd.DataFrame) -> dict[str, ColumnProfile]:
    """Profile every column of a sample (values as text; empty strings count as empty)."""
    out = {}
    for col in frame.columns:
        values = frame[col]
        present = values.dropna().astype(str).str.strip()
        present = present[present != ""]
        kind, day_first, has_time = _kind(values)
        distinct = int(present.nunique())
        norm = normalize(col)
        key = (len(present) == len(values) and distinct == len(values) and len(values) > 0
               and (norm == "id" or norm.endswith("_id") or norm in _ID_NAMES))
        listed = sorted(present.unique().tolist())[:50] if kind in ("text", "bool") and distinct <= 50 else []
        out[col] = ColumnProfile(col, kind, len(present) / len(values) if len(values) else 0.0, distinct, key,
                                 day_first, has_time, listed)
    return out


#: Words in column (and file) names that say which section a file is.
ROLE_WORDS: dict[str, set[str]] = {
    "accounts": {"account", "accounts", "customer", "customers", "company", "signup", "industry", "country", "region",
                 "segment", "referral", "csm", "owner", "name"},
    "subscriptions": {"subscription", "subscriptions", "mrr", "arr", "billing", "frequency", "renew", "term", "start",
                      "end", "contract", "upgrade", "downgrade"},
    "usage": {"usage", "feature", "features", "event", "events", "duration", "session", "beta", "clicks", "activity"},
    "tickets": {"ticket", "tickets", "priority", "satisfaction", "csat", "response", "resolution", "escalation",
                "escalated", "submitted", "support", "severity"},
    "churn": {"churn", "churned", "reason", "refund", "reactivation", "reactivated", "feedback", "cancellation"},
    "renewals": {"renewal", "renewals", "opportunity", "outcome", "stage", "won", "lost"},
}


def guess_roles(files: dict[str, list[str]]) -> dict[str, str]:
    """file name -> section, one file per section, best-scoring pairs first. ``files`` maps a
    file name to its column names. Files that fit nothing are left out."""
    scores = []
    for name, columns in files.items():
        words: list[str] = [t for c in columns for t in tokens(c)]
        stem = tokens(re.sub(r"\.[a-z0-9]+$", "", name.lower()))
        for role, hints in ROLE_WORDS.items():
            score = sum(1 for w in words if w in hints) + 3 * len(stem & hints)
            if score:
                scores.append((score, name, role))
    taken: dict[str, str] = {}
    used_roles: set[str] = set()
    for _score, name, role in sorted(scores, key=lambda s: (-s[0], s[1], s[2])):
        if name not in taken and role not in used_roles:
            taken[name] = role
            used_roles.add(role)
    return taken


#: Column names (normalized) that fill each field, best first. A trailing ``*`` matches a prefix.
SYNONYMS: dict[str, dict[str, list[str]]] = {
    "accounts": {
        "account_id": ["account_id", "customer_id", "accountid", "account", "id"],
        "name": ["account_name", "company_name", "customer_name", "name", "company", "account"],
        "segment": ["segment", "customer_segment", "market_segment", "size_segment"],
        "industry": ["industry", "vertical", "sector"],
        "region": ["region", "country", "geo", "market", "territory"],
        "arr": ["arr", "arr_amount", "annual_revenue", "annual_recurring_revenue"],
        "plan": ["plan", "plan_tier", "edition", "plan_name", "tier"],
        "seats": ["seats", "licenses", "seat_count", "licences", "users"],
        "csm_owner": ["csm_owner", "csm", "owner", "account_owner", "account_manager"],
        "created_at": ["signup_date", "created_at", "signup", "customer_since", "created", "created_date", "start_date"],
        "churned": ["churn_flag", "churned", "is_churned", "churn"],
    },
    "subscriptions": {
        "subscription_id": ["subscription_id", "sub_id", "contract_id", "id"],
        "account_id": ["account_id", "customer_id", "account"],
        "started_at": ["start_date", "started_at", "start", "term_start", "period_start", "begin_date"],
        "ended_at": ["end_date", "ended_at", "end", "term_end", "period_end", "cancel_date"],
        "arr": ["arr_amount", "arr", "annual_amount", "annual_revenue"],
        "mrr": ["mrr_amount", "mrr", "monthly_amount", "monthly_revenue"],
        "plan": ["plan_tier", "plan", "edition", "plan_name", "tier"],
        "seats": ["seats", "licenses", "seat_count", "quantity"],
        "trial": ["is_trial", "trial", "trial_flag"],
        "billing": ["billing_frequency", "billing", "billing_period", "billing_cycle", "frequency", "interval"],
    },
    "usage": {
        "account_id": ["account_id", "customer_id"],
        "subscription_id": ["subscription_id", "sub_id"],
        "user_id": ["user_id", "user", "member_id"],
        "date": ["usage_date", "date", "day", "event_date", "occurred_at", "timestamp", "used_at"],
        "feature": ["feature_name", "feature", "event_name", "event", "module"],
        "events": ["usage_count", "count", "events", "event_count", "quantity", "uses", "clicks"],
        "active_users": ["active_users", "users", "user_count"],
    },
    "tickets": {
        "ticket_id": ["ticket_id", "id", "case_id", "ticket"],
        "account_id": ["account_id", "customer_id", "account"],
        "created_at": ["submitted_at", "created_at", "opened_at", "created", "submitted", "opened", "created_date"],
        "first_response_at": ["first_response_at", "first_reply_at", "responded_at"],
        "solved_at": ["closed_at", "solved_at", "resolved_at", "closed", "solved", "resolved"],
        "priority": ["priority", "severity", "urgency"],
        "category": ["category", "type", "topic", "issue_type"],
        "status": ["status", "state"],
        "csat": ["satisfaction_score", "csat", "satisfaction", "rating", "csat_score"],
        "escalated": ["escalation_flag", "escalated", "is_escalated", "escalation"],
    },
    "churn": {
        "account_id": ["account_id", "customer_id", "account"],
        "churned_at": ["churn_date", "churned_at", "cancelled_at", "cancel_date", "date"],
        "reason": ["reason_code", "reason", "churn_reason", "cancel_reason"],
        "refund": ["refund_amount_usd", "refund_amount", "refund"],
        "reactivated": ["is_reactivation", "reactivated", "reactivation", "came_back"],
        "feedback": ["feedback_text", "feedback", "comment", "comments"],
    },
    "renewals": {
        "renewal_id": ["renewal_id", "opportunity_id", "id"],
        "account_id": ["account_id", "customer_id", "account"],
        "renewal_date": ["renewal_date", "close_date", "due_date", "term_end"],
        "amount": ["amount", "arr", "renewal_amount", "value"],
        "stage": ["stage", "stage_name"],
        "closed_at": ["closed_at", "closed_date", "decided_at"],
        "outcome": ["outcome", "result", "status"],
    },
}

#: Kinds a field accepts from a column profile.
_ACCEPTS = {"str": {"text", "int", "bool"}, "float": {"int", "float"}, "int": {"int"},
            "datetime": {"date"}, "bool": {"bool"}}


def guess_fields(section: str, columns: dict[str, ColumnProfile]) -> dict[str, str]:
    """field -> column for one section, each column used once, by the names in `SYNONYMS`."""
    by_norm = {normalize(c): c for c in columns}
    out: dict[str, str] = {}
    used: set[str] = set()
    for field_name, names in SYNONYMS[section].items():
        kind = SECTION_FIELDS[section][field_name].kind
        for wanted in names:
            col = by_norm.get(wanted)
            if col and col not in used and columns[col].kind in _ACCEPTS[kind] | ({"text"} if kind == "bool" else set()):
                out[field_name] = col
                used.add(col)
                break
    return out


def duration_column(columns: dict[str, ColumnProfile], words: Iterable[str]) -> tuple[str, str] | None:
    """(column, unit) of a numeric duration column named with one of ``words`` and its unit,
    e.g. ``first_response_time_minutes`` -> minutes."""
    units = {"seconds": ("sec", "secs", "seconds", "s"), "minutes": ("min", "mins", "minutes"),
             "hours": ("hour", "hours", "hrs", "h"), "days": ("day", "days")}
    for col, prof in columns.items():
        parts = tokens(col)
        if prof.kind not in ("int", "float") or not set(words) & parts:
            continue
        for unit, spellings in units.items():
            if set(spellings) & parts:
                return col, unit
    return None


#: Words of a company that safely mean a canonical value.
VALUE_WORDS: dict[str, dict[str, set[str]]] = {
    "priority": {"urgent": {"urgent", "critical", "blocker", "emergency", "p1", "sev1", "s1", "highest", "p0", "sev0"},
                 "high": {"high", "major", "p2", "sev2", "s2", "important"},
                 "normal": {"normal", "medium", "moderate", "p3", "sev3", "s3", "standard", "average"},
                 "low": {"low", "minor", "trivial", "p4", "sev4", "s4", "lowest", "p5"}},
    "status": {"new": {"new", "created", "received"}, "open": {"open", "in_progress", "active", "assigned", "working"},
               "pending": {"pending", "waiting", "on_hold", "hold", "awaiting_customer"},
               "solved": {"solved", "resolved", "fixed", "done"}, "closed": {"closed", "complete", "completed", "cancelled"}},
    "billing": {"monthly": {"monthly", "month", "mo", "m", "1_month", "per_month"},
                "annual": {"annual", "annually", "yearly", "year", "yr", "y", "12_months", "per_year"}},
    "segment": {"enterprise": {"enterprise", "ent", "large", "strategic"},
                "mid_market": {"mid_market", "midmarket", "mid", "mm", "commercial", "medium"},
                "smb": {"smb", "small", "sme", "startup", "small_business", "self_serve"}},
    "outcome": {"renewed": {"renewed", "won", "closed_won", "renew"}, "churned": {"churned", "lost", "closed_lost", "cancelled", "canceled"},
                "open": {"open", "pending", "in_progress", "upcoming"}},
}


def guess_value_map(vocabulary: str, values: Iterable[str]) -> dict[str, str | None]:
    """value -> canonical value (None where no guess is safe) for a field's vocabulary."""
    words = VALUE_WORDS[vocabulary]
    out: dict[str, str | None] = {}
    for value in values:
        norm = normalize(value)
        match = [canon for canon, known in words.items() if norm in known or norm == canon]
        if not match:
            match = [canon for canon, known in words.items() if tokens(value) & known]
        out[str(value)] = match[0] if len(match) == 1 else None
    return out

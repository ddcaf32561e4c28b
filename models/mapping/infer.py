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


#: Words a column's name must contain to fill each field, best first (the column's kind must fit
#: too: a date for a date field, a number for an amount...). Generic vocabulary, no company's names.
SYNONYMS: dict[str, dict[str, list[set[str]]]] = {
    "accounts": {
        "account_id": [{"account", "id"}, {"customer", "id"}, {"id"}],
        "name": [{"account", "name"}, {"company", "name"}, {"customer", "name"}, {"name"}, {"company"}],
        "segment": [{"segment"}],
        "industry": [{"industry"}, {"vertical"}, {"sector"}],
        "region": [{"region"}, {"country"}, {"geo"}, {"territory"}],
        "arr": [{"arr"}, {"annual", "revenue"}],
        "plan": [{"plan"}, {"edition"}, {"tier"}],
        "seats": [{"seats"}, {"seat"}, {"licenses"}, {"licences"}],
        "csm_owner": [{"csm"}, {"owner"}, {"manager"}],
        "created_at": [{"signup"}, {"signed"}, {"created"}, {"since"}, {"start"}, {"joined"}],
        "churned": [{"churn"}, {"churned"}],
    },
    "subscriptions": {
        "subscription_id": [{"subscription", "id"}, {"contract", "id"}, {"id"}],
        "account_id": [{"account", "id"}, {"customer", "id"}, {"account"}],
        "started_at": [{"start"}, {"started"}, {"begin"}, {"from"}],
        "ended_at": [{"end"}, {"ended"}, {"until"}, {"expires"}, {"cancel"}],
        "arr": [{"arr"}, {"annual", "amount"}, {"annual", "revenue"}],
        "mrr": [{"mrr"}, {"monthly", "amount"}, {"monthly", "revenue"}],
        "plan": [{"plan"}, {"edition"}, {"tier"}],
        "seats": [{"seats"}, {"seat"}, {"licenses"}, {"quantity"}],
        "trial": [{"trial"}],
        "billing": [{"billing"}, {"frequency"}, {"interval"}, {"cycle"}],
    },
    "usage": {
        "account_id": [{"account", "id"}, {"customer", "id"}],
        "subscription_id": [{"subscription", "id"}],
        "user_id": [{"user", "id"}, {"member", "id"}],
        "date": [{"date"}, {"day"}, {"occurred"}, {"timestamp"}, {"time"}],
        "feature": [{"feature"}, {"event", "name"}, {"module"}, {"event"}],
        "events": [{"count"}, {"events"}, {"quantity"}, {"uses"}, {"clicks"}],
        "active_users": [{"active", "users"}],
    },
    "tickets": {
        "ticket_id": [{"ticket", "id"}, {"case", "id"}, {"id"}],
        "account_id": [{"account", "id"}, {"customer", "id"}, {"account"}],
        "created_at": [{"submitted"}, {"created"}, {"opened"}, {"reported"}],
        "first_response_at": [{"first", "response"}, {"first", "reply"}, {"responded"}],
        "solved_at": [{"closed"}, {"solved"}, {"resolved"}],
        "priority": [{"priority"}, {"severity"}, {"urgency"}],
        "category": [{"category"}, {"topic"}, {"type"}],
        "status": [{"status"}, {"state"}],
        "csat": [{"satisfaction"}, {"csat"}, {"rating"}],
        "escalated": [{"escalation"}, {"escalated"}],
    },
    "churn": {
        "account_id": [{"account", "id"}, {"customer", "id"}, {"account"}],
        "churned_at": [{"churn", "date"}, {"churned"}, {"cancelled"}, {"date"}],
        "reason": [{"reason"}],
        "refund": [{"refund"}],
        "reactivated": [{"reactivation"}, {"reactivated"}, {"returned"}],
        "feedback": [{"feedback"}, {"comment"}, {"comments"}],
    },
    "renewals": {
        "renewal_id": [{"renewal", "id"}, {"opportunity", "id"}, {"id"}],
        "account_id": [{"account", "id"}, {"customer", "id"}, {"account"}],
        "renewal_date": [{"renewal", "date"}, {"close", "date"}, {"due"}],
        "amount": [{"amount"}, {"arr"}, {"value"}],
        "stage": [{"stage"}],
        "closed_at": [{"closed"}, {"decided"}],
        "outcome": [{"outcome"}, {"result"}, {"status"}],
    },
}

#: Kinds a field accepts from a column profile.
_ACCEPTS = {"str": {"text", "int", "bool"}, "float": {"int", "float"}, "int": {"int"},
            "datetime": {"date"}, "bool": {"bool", "text"}}


def guess_fields(section: str, columns: dict[str, ColumnProfile]) -> dict[str, str]:
    """field -> column for one section, each column used once: for each field the first word set
    (in `SYNONYMS` order) that some column's name contains, preferring the shortest such name."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for field_name, choices in SYNONYMS[section].items():
        accepts = _ACCEPTS[SECTION_FIELDS[section][field_name].kind]
        for words in choices:
            fits = [c for c, p in columns.items() if c not in used and words <= tokens(c) and p.kind in accepts]
            if fits:
                col = min(fits, key=lambda c: (len(tokens(c)), list(columns).index(c)))
                out[field_name] = col
                used.add(col)
                break
    return out


def duration_column(columns: dict[str, ColumnProfile], words: Iterable[str]) -> tuple[str, str] | None:
    """(column, unit) of a numeric duration column named with one of ``words`` and its unit,
    e.g. ``reply_time_hours`` -> hours."""
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

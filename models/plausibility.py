"""Plausibility of the source tables: data that satisfies every contract and still cannot be right.

The contract checks (`models.quality`) judge each table on its own: types, nulls, ranges, keys.
These rules judge the tables against each other and against the clock, and each allows a share
of implausible rows (real exports have a few), set in `Thresholds`:

- **before signup** (`rows_before_signup`): tickets (``created_at``) and usage days (``date``)
  dated more than ``signup_grace_days`` (30: a trial or a pilot before the contract is normal)
  before the account's signup (``accounts.created_at``). A share above
  ``max_share_before_signup`` (2% of the table's rows) fails. Dates shifted by a time zone, a
  wrong year or a day/month swap land here: the company that found this had 54% of its tickets
  and 53% of its usage before signup.
- **usage after churn** (`usage_after_churn`): usage days more than ``churn_grace_days`` (7)
  after the end of a churned term (the later of its ``renewal_date`` and ``closed_at``: a
  customer who said in October that they will not renew in December still works until
  December), unless the account came back (a reactivation, see below) by then. A share above
  ``max_share_after_churn`` (2% of usage rows) fails. Tickets after a churn are not counted: a
  churned customer asking for a data export or a refund is normal.
- **contradictory outcomes** (`contradictory_outcomes`): a term both churned and renewed (two
  closed renewals of one account due the same day, one churned and one renewed), and a churned
  term followed by a later term that renewed, with no reactivation in between. A share above
  ``max_share_contradictory`` (1% of closed renewals) fails.
- **stale source** (`staleness`): the source's newest instant (its newest row at or before the
  run's instant, or its load time) older than its table's limit at the run's instant:
  ``tickets_max_age_days`` (3), ``usage_max_age_days`` (3), ``crm_max_age_days`` (7). A source
  dated by its rows may be sparse (a CRM of 200 accounts closes a renewal every other day and
  can go a week without a signup or a closed renewal): its limit is the longer of its table's and
  the quiet spell its own rate over the last `ACTIVITY_WINDOW_DAYS` (90) days makes as unlikely
  as ``quiet_odds`` (one in a thousand), capped at those 90 days (`quiet_limit_days`). A source
  dated by its load time (the manifest `rescue data load` writes) has its table's limit.

A reactivation is an account becoming a customer again after a churn. The canonical tables have
no field for it (``accounts.created_at`` is the first signup), so the rules take the
reactivations as an optional frame (``account_id``, ``reactivated_at``), empty by default: a
source that knows them passes them in, and `history_reactivations` reads them off an account
history (its ARR going from 0 back to a positive value after a churn), as both the daily checks
and `rescue data check` do.

Every rule is a pure function of frames and returns `Finding`s (count, total, share, the
allowed share, examples with their keys); `thresholds_from` builds the thresholds from a mapping
of overrides (a company's mapping file, a resource's config), refusing unknown names and values
out of range; `RULE_THRESHOLDS` names the thresholds each rule reads and `thresholds_text` says
them in one line. Rows dated after the run's instant are not the run's data and are left out by
the callers (`as_of`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: Examples kept per finding.
EXAMPLES = 5


def _threshold(default: float, doc: str, *, share: bool = False) -> Any:
    return field(default=default, metadata={"doc": doc, "share": share})


@dataclass(frozen=True)
class Thresholds:
    """How much implausible data a source may hold before its check fails (see the module docs)."""

    signup_grace_days: int = _threshold(30, "Days before the account's signup a ticket or usage day may lie (a trial, a pilot)")
    max_share_before_signup: float = _threshold(
        0.02, "Share of tickets, or of usage days, allowed before signup (beyond the grace days)", share=True)
    churn_grace_days: int = _threshold(7, "Days after a churned term's end that usage may still show (late syncs)")
    max_share_after_churn: float = _threshold(0.02, "Share of usage days allowed after a churn (beyond the grace days)", share=True)
    max_share_contradictory: float = _threshold(0.01, "Share of closed renewals allowed to contradict each other", share=True)
    tickets_max_age_days: float = _threshold(3, "Age of the newest ticket beyond which the tickets are stale")
    usage_max_age_days: float = _threshold(3, "Age of the newest usage day beyond which usage is stale")
    crm_max_age_days: float = _threshold(7, "Age of the CRM's newest change (signup or closed renewal), or of its load, beyond which it is stale")
    quiet_odds: float = _threshold(
        0.001, "Odds of a quiet spell below which a source dated by its rows is stale even if sparse", share=True)

    def max_age_days(self, source: str) -> float:
        """The freshness limit of `source` ("tickets", "usage" or "crm")."""
        return float(getattr(self, f"{source}_max_age_days"))


#: The thresholds each rule reads (by `Finding.rule`, and the freshness rule by source), the
#: allowed share first.
RULE_THRESHOLDS: dict[str, tuple[str, ...]] = {
    "before_signup": ("max_share_before_signup", "signup_grace_days"),
    "after_churn": ("max_share_after_churn", "churn_grace_days"),
    "contradictory_outcomes": ("max_share_contradictory",),
    "tickets_fresh": ("tickets_max_age_days", "quiet_odds"),
    "usage_fresh": ("usage_max_age_days", "quiet_odds"),
    "crm_fresh": ("crm_max_age_days", "quiet_odds"),
}


class ThresholdError(ValueError):
    """An override that is not a threshold or not a usable value; the message names it."""


def threshold_docs() -> dict[str, tuple[Any, str]]:
    """Every threshold: name -> (default, what it means), for documentation and config schemas."""
    return {f.name: (f.default, f.metadata["doc"]) for f in dataclasses.fields(Thresholds)}


@dataclass(frozen=True)
class ThresholdSpec:
    """One threshold as a config schema declares it (`threshold_specs`)."""

    name: str
    kind: type          # int (whole days) or float
    default: float
    doc: str
    share: bool         # a share of rows (or odds): between 0 and 1; otherwise at least 0

    @property
    def bounds(self) -> dict[str, float]:
        """The value's bounds as pydantic's ``Field`` takes them: ``ge`` 0, and ``le`` 1 for a share."""
        return {"ge": 0, "le": 1} if self.share else {"ge": 0}


def threshold_specs() -> tuple[ThresholdSpec, ...]:
    """Every threshold of `Thresholds`, in order: the one list the mapping's ``checks:`` block
    and the ``source_checks`` resource's config are declared from."""
    kinds = {"int": int, "float": float}
    return tuple(ThresholdSpec(f.name, kinds[str(f.type)], f.default, f.metadata["doc"], bool(f.metadata["share"]))
                 for f in dataclasses.fields(Thresholds))


def thresholds_from(overrides: Mapping[str, Any] | None = None, base: Thresholds | None = None) -> Thresholds:
    """`base` (default: the documented defaults) with `overrides` applied. Raises
    `ThresholdError` naming an unknown threshold or a value that is not a number, negative, or
    (for a share) above 1."""
    base = base or Thresholds()
    fields = {f.name: f for f in dataclasses.fields(Thresholds)}
    values: dict[str, Any] = {}
    for name, value in (overrides or {}).items():
        if name not in fields:
            raise ThresholdError(f"unknown plausibility threshold {name!r}; the thresholds are {', '.join(fields)}")
        if value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ThresholdError(f"plausibility threshold {name}: {value!r} is not a number") from None
        if isinstance(value, bool) or not number >= 0 or number == float("inf"):
            raise ThresholdError(f"plausibility threshold {name}: {value!r} must be a finite number of at least 0")
        if fields[name].metadata["share"] and number > 1:
            raise ThresholdError(f"plausibility threshold {name}: {value!r} is a share of rows, at most 1")
        if fields[name].type in ("int", int):
            if number != int(number):
                raise ThresholdError(f"plausibility threshold {name}: {value!r} must be a whole number of days")
            number = int(number)
        values[name] = number
    return dataclasses.replace(base, **values)


def thresholds_text(thresholds: Thresholds, names: Sequence[str] | None = None,
                    set_by: Mapping[str, str] | None = None) -> str:
    """``max_share_before_signup 0.25 (mapping), signup_grace_days 30``: the values of `names`
    (default: every threshold), each followed by who set it when `set_by` names it (a default
    is not marked)."""
    set_by = set_by or {}
    names = list(names) if names is not None else [f.name for f in dataclasses.fields(Thresholds)]
    return ", ".join(f"{name} {getattr(thresholds, name):g}" + (f" ({set_by[name]})" if name in set_by else "")
                     for name in names)


@dataclass
class Finding:
    """One rule on one table: how many rows are implausible, of how many, and examples."""

    rule: str
    table: str
    column: str
    problem: str
    bad: int
    total: int
    allowed_share: float
    examples: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.bad / self.total if self.total else 0.0

    @property
    def passed(self) -> bool:
        return self.share <= self.allowed_share

    @property
    def message(self) -> str:
        """One line: table and column, count and share, what is wrong, the allowance, an example."""
        head = (f"{self.table}.{self.column}: {self.bad:,} of {self.total:,} row(s) ({self.share:.1%}) "
                f"{self.problem} (allowed {self.allowed_share:.1%})")
        return f"{head}, e.g. {self.examples[0]}" if self.examples else head

    def as_row(self) -> dict[str, Any]:
        return {"rule": self.rule, "column": f"{self.table}.{self.column}", "bad_rows": self.bad, "rows": self.total,
                "share": round(self.share, 4), "allowed": self.allowed_share, "passed": self.passed,
                "examples": "; ".join(self.examples)}


def _day(value: Any) -> str:
    stamp = pd.Timestamp(value)
    return "NaT" if pd.isna(stamp) else (f"{stamp:%Y-%m-%d}" if stamp == stamp.normalize() else f"{stamp:%Y-%m-%d %H:%M}")


def as_of(frame: pd.DataFrame, column: str, now: Any) -> pd.DataFrame:
    """The rows of `frame` dated at or before `now` in `column` (all rows when `now` is None or
    the column is not a datetime): what a run at `now` judges."""
    if now is None or column not in frame.columns or not pd.api.types.is_datetime64_any_dtype(frame[column]):
        return frame
    return frame[~(frame[column] > pd.Timestamp(now))]


def _signups(accounts: pd.DataFrame) -> pd.Series:
    """Signup per account id (the first row of a duplicated id; its own check names it)."""
    rows = accounts.dropna(subset=["account_id"]).drop_duplicates("account_id")
    return pd.Series(pd.to_datetime(rows["created_at"], errors="coerce").to_numpy(), index=rows["account_id"].astype(str))


def before_signup_problem(thresholds: Thresholds) -> str:
    """What `rows_before_signup` finds, in words (the SQL form in the warehouse says the same)."""
    return (f"dated more than {thresholds.signup_grace_days} days before the account's signup "
            "(accounts.created_at)")


def before_signup_example(who: str, dated: Any, signup: Any) -> str:
    """One example row of `rows_before_signup`: ``account_id A1 on 2024-01-02, signup 2024-03-01``."""
    return f"{who} on {_day(dated)}, signup {_day(signup)}"


def signup_limits(accounts: pd.DataFrame, thresholds: Thresholds = Thresholds()) -> pd.DataFrame:
    """One row per account id (the first of a duplicated id): ``account_id``, ``signup`` and
    ``earliest``, the earliest date a ticket or usage day of it may have (signup less the grace
    days); a missing signup is NaT in both. The warehouse-side check reads this frame."""
    signup = _signups(accounts)
    return pd.DataFrame({"account_id": signup.index.astype(str), "signup": signup.to_numpy(),
                         "earliest": (signup - pd.Timedelta(days=thresholds.signup_grace_days)).to_numpy()})


def rows_before_signup(frame: pd.DataFrame, table: str, column: str, accounts: pd.DataFrame,
                       thresholds: Thresholds = Thresholds(), *, key: str | None = None) -> Finding:
    """Rows of `frame` (tickets, usage) dated in `column` more than the grace days before their
    account's signup. Rows of unknown accounts, or without a date, are not counted (their own
    checks name them). `key` names each example row (default: account and date)."""
    grace = pd.Timedelta(days=thresholds.signup_grace_days)
    signup = frame["account_id"].astype(str).map(_signups(accounts))
    dated = pd.to_datetime(frame[column], errors="coerce")
    judged = signup.notna() & dated.notna()
    bad = judged & (dated < signup - grace)
    examples = []
    for i in frame.index[bad][:EXAMPLES]:
        who = f"{key} {frame.at[i, key]}" if key else f"account_id {frame.at[i, 'account_id']}"
        examples.append(before_signup_example(who, dated[i], signup[i]))
    return before_signup_finding(table, column, int(bad.sum()), int(judged.sum()), thresholds, examples)


def before_signup_finding(table: str, column: str, bad: int, total: int, thresholds: Thresholds,
                          examples: Sequence[str] = ()) -> Finding:
    """The before-signup `Finding` of `bad` of `total` judged rows (counted here or in the warehouse)."""
    return Finding("before_signup", table, column, before_signup_problem(thresholds), int(bad), int(total),
                   thresholds.max_share_before_signup, list(examples)[:EXAMPLES])


def _churns(renewals: pd.DataFrame) -> pd.DataFrame:
    """Churned terms: account_id, churn_start (when the churn was known, or the term's end if
    earlier), churn_end (the later of renewal_date and closed_at)."""
    churned = renewals[renewals["outcome"].astype(str) == "churned"]
    due = pd.to_datetime(churned["renewal_date"], errors="coerce")
    closed = pd.to_datetime(churned["closed_at"], errors="coerce")
    out = pd.DataFrame({
        "account_id": churned["account_id"].astype(str),
        "renewal_id": churned["renewal_id"].astype(str),
        "churn_start": pd.concat([due, closed], axis=1).min(axis=1),
        "churn_end": pd.concat([due, closed], axis=1).max(axis=1),
    })
    return out.dropna(subset=["churn_end"])


def _reactivations(reactivations: pd.DataFrame | None) -> pd.DataFrame:
    if reactivations is None or not len(reactivations):
        return pd.DataFrame({"account_id": pd.Series(dtype="string"), "reactivated_at": pd.Series(dtype="datetime64[ns]")})
    return pd.DataFrame({"account_id": reactivations["account_id"].astype(str),
                         "reactivated_at": pd.to_datetime(reactivations["reactivated_at"], errors="coerce")}).dropna()


def returns_after_churn(renewals: pd.DataFrame) -> pd.DataFrame:
    """Reactivations the renewals themselves show: an account with a term due after one of its
    churned terms ended came back as a customer. The renewals do not say when the new term began,
    so the return is counted from the end of the churned term (account_id, reactivated_at)."""
    churns = _churns(renewals)
    due = pd.DataFrame({"account_id": renewals["account_id"].astype(str),
                        "due": pd.to_datetime(renewals["renewal_date"], errors="coerce")}).dropna()
    later = churns.merge(due, on="account_id")
    later = later[later["due"] > later["churn_end"]].drop_duplicates(["account_id", "churn_end"])
    return pd.DataFrame({"account_id": later["account_id"],
                         "reactivated_at": later["churn_end"] + pd.Timedelta(seconds=1)}).reset_index(drop=True)


def history_reactivations(renewals: pd.DataFrame, account_history: pd.DataFrame | None) -> pd.DataFrame:
    """The reactivations an account history shows (account_id, reactivated_at): after each
    churned term (its ``closed_at``), the account's ARR going from 0 back to a positive value
    (`models.churn.labels.returns`, the return the training set counts). Empty without a history."""
    from models.churn.labels import returns

    churned = renewals[(renewals["outcome"].astype(str) == "churned") & renewals["closed_at"].notna()]
    outcomes = pd.DataFrame({"account_id": churned["account_id"].astype(str),
                             "churned_at": pd.to_datetime(churned["closed_at"], errors="coerce")}).dropna()
    back = returns(outcomes, account_history)
    return pd.DataFrame({"account_id": back["account_id"].astype(str),
                         "reactivated_at": pd.to_datetime(back["returned_at"])}).drop_duplicates().reset_index(drop=True)


def _excused(pairs: pd.DataFrame, reactivations: pd.DataFrame, start: str, until: str) -> pd.Series:
    """For each row of `pairs` (indexed by the row judged), whether the account came back
    between `start` and `until` (both columns of `pairs`)."""
    if not len(reactivations) or not len(pairs):
        return pd.Series(False, index=pairs.index)
    joined = pairs.reset_index(names="_row").merge(reactivations, on="account_id", how="inner")
    back = joined[(joined["reactivated_at"] > joined[start]) & (joined["reactivated_at"] <= joined[until])]
    return pd.Series(pairs.index.isin(back["_row"]), index=pairs.index)


def after_churn_problem(thresholds: Thresholds) -> str:
    """What `usage_after_churn` finds, in words (the SQL form in the warehouse says the same)."""
    return (f"of usage more than {thresholds.churn_grace_days} days after the account churned "
            "(the churned term's end), with no reactivation since")


def after_churn_example(account_id: Any, date: Any, churn_end: Any, renewal_id: Any) -> str:
    """One example row of `usage_after_churn`: ``account_id A1 on 2024-05-02, churned 2024-03-31 (R7)``."""
    return f"account_id {account_id} on {_day(date)}, churned {_day(churn_end)} ({renewal_id})"


def churn_limits(renewals: pd.DataFrame, thresholds: Thresholds = Thresholds(), *,
                 reactivations: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What `usage_after_churn` compares usage with, as two small frames (one row per churned
    term, one per return), for the warehouse-side check: the churned terms (``account_id``,
    ``renewal_id``, ``churn_start``, ``churn_end``, and ``late_after``: the term's end plus the
    grace days, after which a usage day is late), and every return that excuses a later usage
    day (``account_id``, ``reactivated_at``: those given and those the renewals show). A usage
    day is after the churn when it is later than ``late_after`` of one of its account's terms
    with no return after that term's ``churn_start`` and at or before the day."""
    churns = _churns(renewals).reset_index(drop=True)
    churns["late_after"] = churns["churn_end"] + pd.Timedelta(days=thresholds.churn_grace_days)
    known = pd.concat([_reactivations(reactivations), returns_after_churn(renewals)], ignore_index=True)
    return churns, known.reset_index(drop=True)


def usage_after_churn(usage: pd.DataFrame, renewals: pd.DataFrame, thresholds: Thresholds = Thresholds(), *,
                      reactivations: pd.DataFrame | None = None) -> Finding:
    """Usage days more than the grace days after the end of one of the account's churned terms,
    with no reactivation since that churn (given, or shown by a later term: `returns_after_churn`)."""
    churns, known = churn_limits(renewals, thresholds, reactivations=reactivations)
    days = pd.DataFrame({"account_id": usage["account_id"].astype(str),
                         "date": pd.to_datetime(usage["date"], errors="coerce")}, index=usage.index)
    total = int(days["date"].notna().sum())
    candidates = days[days["account_id"].isin(churns["account_id"]) & days["date"].notna()]
    pairs = candidates.reset_index(names="_row").merge(churns, on="account_id").set_index("_row")
    late = pairs[pairs["date"] > pairs["late_after"]]
    late = late[~_excused(late, known, "churn_start", "date")]
    rows = late[~late.index.duplicated()]
    examples = [after_churn_example(r.account_id, r.date, r.churn_end, r.renewal_id)
                for r in rows.sort_values(["date", "account_id"]).head(EXAMPLES).itertuples()]
    return after_churn_finding(int(len(rows)), total, thresholds, examples)


def after_churn_finding(bad: int, total: int, thresholds: Thresholds, examples: Sequence[str] = ()) -> Finding:
    """The after-churn `Finding` of `bad` of `total` dated usage rows (counted here or in the warehouse)."""
    return Finding("after_churn", "usage_daily", "date", after_churn_problem(thresholds), int(bad), int(total),
                   thresholds.max_share_after_churn, list(examples)[:EXAMPLES])


def contradictory_outcomes(renewals: pd.DataFrame, thresholds: Thresholds = Thresholds(), *,
                           reactivations: pd.DataFrame | None = None) -> Finding:
    """Closed renewals that contradict each other: one term churned and renewed, or a churn
    followed by a later renewed term with no reactivation in between."""
    problem = ("contradicting another outcome of the account (a term both churned and renewed, or a "
               "renewal after a churn with no reactivation)")
    r = pd.DataFrame({
        "renewal_id": renewals["renewal_id"].astype(str),
        "account_id": renewals["account_id"].astype(str),
        "due": pd.to_datetime(renewals["renewal_date"], errors="coerce"),
        "outcome": renewals["outcome"].astype(str),
    }, index=renewals.index)
    closed = r[r["outcome"].isin(["churned", "renewed"]) & r["due"].notna()]
    bad: dict[Any, str] = {}
    # one term, both outcomes
    term = closed.assign(term=closed["due"].dt.normalize())
    both = term.groupby(["account_id", "term"])["outcome"].transform("nunique") > 1
    for i in term.index[both]:
        bad.setdefault(i, f"renewal_id {term.at[i, 'renewal_id']}: account {term.at[i, 'account_id']}'s term due "
                          f"{_day(term.at[i, 'term'])} is both churned and renewed")
    # a renewed term after a churn, the account never having come back
    churns = _churns(renewals[renewals.index.isin(closed.index)])
    renewed = closed[closed["outcome"] == "renewed"]
    pairs = renewed.reset_index(names="_row").merge(churns, on="account_id", suffixes=("", "_churn")).set_index("_row")
    later = pairs[pairs["due"] > pairs["churn_end"]]
    later = later[~_excused(later, _reactivations(reactivations), "churn_start", "due")]
    for i, row in later.sort_values("due").iterrows():
        bad.setdefault(i, f"renewal_id {row.renewal_id}: renewed (due {_day(row.due)}) after account "
                          f"{row.account_id} churned ({row.renewal_id_churn}, {_day(row.churn_end)}), no reactivation")
    examples = [bad[i] for i in sorted(bad, key=lambda i: (str(closed.at[i, "due"]), str(i)))][:EXAMPLES]
    return Finding("contradictory_outcomes", "renewals", "outcome", problem, len(bad), int(len(closed)),
                   thresholds.max_share_contradictory, examples)


@dataclass(frozen=True)
class Staleness:
    """How old a source is at the run's instant, against its limit."""

    table: str
    newest: pd.Timestamp | None
    now: pd.Timestamp
    max_age_days: float
    basis: str = "newest row"
    #: The configured limit, when the source's own quiet spells made the limit longer.
    floor_days: float | None = None
    #: The source's rows (changes) per day over `ACTIVITY_WINDOW_DAYS`, when it was measured.
    rate_per_day: float | None = None

    @property
    def age_days(self) -> float | None:
        return None if self.newest is None else (self.now - self.newest) / pd.Timedelta(days=1)

    @property
    def stale(self) -> bool:
        return self.age_days is None or self.age_days > self.max_age_days

    @property
    def limit_text(self) -> str:
        text = f"allowed {self.max_age_days:.1f} days" if self.floor_days is not None else f"allowed {self.max_age_days:g} days"
        if self.floor_days is not None and self.rate_per_day is not None:
            text += (f": {self.floor_days:g}, or longer for a source of {self.rate_per_day:.2f} rows a day "
                     f"over the last {ACTIVITY_WINDOW_DAYS} days")
        return text

    @property
    def undated_word(self) -> str:
        """What is missing when nothing dates the source: a row, or the basis named (a load)."""
        return "row" if self.basis.startswith("newest") else self.basis

    @property
    def message(self) -> str:
        """One line naming the table and its age."""
        if self.newest is None:
            return (f"{self.table}: stale, no {self.undated_word} at or before the run's instant "
                    f"({self.now:%Y-%m-%d %H:%M} UTC) to date it ({self.limit_text})")
        state = "stale" if self.stale else "fresh"
        return (f"{self.table}: {state}, {self.basis} {self.newest:%Y-%m-%d %H:%M} UTC is {self.age_days:.1f} days old "
                f"at the run's instant {self.now:%Y-%m-%d %H:%M} UTC ({self.limit_text})")


#: Days over which a source's own rate of rows is measured (`quiet_limit_days`).
ACTIVITY_WINDOW_DAYS = 90


def newest(values: pd.Series | list, now: Any) -> pd.Timestamp | None:
    """The newest instant of `values` at or before `now` (None when there is none)."""
    stamps = pd.to_datetime(pd.Series(values), errors="coerce").dropna()
    if now is not None:
        stamps = stamps[stamps <= pd.Timestamp(now)]
    return None if stamps.empty else pd.Timestamp(stamps.max())


def recent_rate(values: pd.Series | list, now: Any, window_days: int = ACTIVITY_WINDOW_DAYS) -> float:
    """Rows per day of `values` in the `window_days` days up to `now`."""
    stamps = pd.to_datetime(pd.Series(values), errors="coerce").dropna()
    now = pd.Timestamp(now)
    return float(((stamps <= now) & (stamps > now - pd.Timedelta(days=window_days))).sum()) / window_days


def quiet_limit_days(floor_days: float, rate_per_day: float, odds: float,
                     window_days: int = ACTIVITY_WINDOW_DAYS) -> float:
    """The age beyond which a source is stale: `floor_days`, or longer for a sparse source, up
    to the quiet spell its own rate makes as unlikely as `odds` (rows arriving at random at
    `rate_per_day`, a spell of L days without one has odds exp(-rate x L)), and never beyond
    `window_days` (a source with no row in them is stale whatever its rate)."""
    if odds <= 0 or odds >= 1:
        return float(floor_days)
    if rate_per_day <= 0:
        return float(max(floor_days, window_days))
    spell = math.log(1 / odds) / rate_per_day
    return float(max(floor_days, min(spell, window_days)))


def staleness(table: str, newest_at: pd.Timestamp | None, now: Any, max_age_days: float, *,
              basis: str = "newest row", rate_per_day: float | None = None, quiet_odds: float | None = None) -> Staleness:
    """The age of source `table` whose newest instant is `newest_at`, at `now`, against
    `max_age_days`; with the source's `rate_per_day` (rows over `ACTIVITY_WINDOW_DAYS`) and
    `quiet_odds`, a sparse source is allowed its own plausible quiet spells (`quiet_limit_days`)."""
    floor = float(max_age_days)
    limit, shown_floor = floor, None
    if rate_per_day is not None and quiet_odds is not None:
        limit = quiet_limit_days(floor, rate_per_day, quiet_odds)
        shown_floor = floor if limit > floor else None
    return Staleness(table, None if newest_at is None or pd.isna(newest_at) else pd.Timestamp(newest_at),
                     pd.Timestamp(now), limit, basis, shown_floor, rate_per_day if shown_floor is not None else None)

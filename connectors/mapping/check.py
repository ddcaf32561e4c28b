"""`rescue data check`: profile a mapping's data and find its problems before anything is landed.

Runs on the typed and canonical temporary tables `connectors.mapping.land.build` materializes
(everything in SQL, in the warehouse) and returns a `models.mapping.problems.Report`:

- **profile**: per source, rows and which columns are mapped; per canonical table, rows and date
  range (renewal outcomes, ticket priorities); join coverage between the tables;
- **errors** (blocking): values that cannot be read (dates, numbers, booleans; with a day-first
  hint when the dates read the other way round), values a value map does not list, empty
  required fields, duplicate ids, references to unknown accounts or subscriptions, negative
  amounts, impossible or future timestamps: anything that would land wrong data or that the
  pipeline's blocking quality checks would stop on;
- **the pipeline's plausibility rules** (`models.plausibility`, the rules of the daily job's
  blocking checks, with the thresholds of the mapping's ``checks:`` block over the defaults):
  tickets and usage days before the account's signup, usage after a churn with no reactivation
  since, contradictory renewal outcomes, judged on the canonical tables (read into pandas). A
  finding over its allowed share is an error (the daily job would stop on it), within it a
  warning. The profile says the thresholds in force and which the mapping set;
- **warnings** on the export's own shape (`connectors.mapping.plausibility`): usage outside its
  subscription, churn and reactivation flags that contradict the terms, churn events outside any
  paid term, a repeated churn.

The daily checks judge the rows up to each run's instant (usage: its last 120 days); the check
judges every row, so a problem anywhere in the history is named before anything is landed.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa

from connectors.mapping import plausibility
from connectors.mapping.compile import CANONICAL_PREFIX, RAW_PREFIX, TYPED_PREFIX, Plan, SectionPlan
from models.contracts import CONTRACTS, conform
from models.mapping.fields import SECTION_FIELDS, VOCABULARIES
from models.mapping.problems import MAX_EXAMPLES, Problem, Report
from models.plausibility import (
    RULE_THRESHOLDS,
    Finding,
    contradictory_outcomes,
    history_reactivations,
    rows_before_signup,
    thresholds_from,
    thresholds_text,
    usage_after_churn,
)

#: The id shown in examples, per section.
_EXAMPLE_ID = {"accounts": "account_id", "subscriptions": "subscription_id", "renewals": "renewal_id",
               "tickets": "ticket_id", "usage": "subscription_id", "churn": "account_id"}
#: Share of unreadable dates that must read the other way round for the day-first hint.
_HINT_SHARE = 0.5


class Checker:
    def __init__(self, plan: Plan, conn: sa.Connection, data_end: pd.Timestamp, now: pd.Timestamp) -> None:
        self.plan, self.conn, self.d = plan, conn, plan.d
        self.data_end, self.now = data_end, now
        self.report = Report()
        self.reported: set[tuple[str, str]] = set()  # (section, field) with a value error already
        self.overrides = plan.mapping.threshold_overrides()
        self.thresholds = thresholds_from(self.overrides)  # the mapping's checks: over the defaults

    # --------------------------------------------------------------------------- helpers

    def scalar(self, sql: str) -> object:
        return self.d.run(self.conn, sql).scalar()

    def count(self, sql_from_where: str) -> int:
        return int(self.scalar(f"SELECT COUNT(*) FROM {sql_from_where}") or 0)

    def rows(self, sql: str) -> list[tuple]:
        return [tuple(r) for r in self.d.run(self.conn, sql).fetchall()]

    def examples(self, select: str, order: str) -> tuple[str, ...]:
        found = self.rows(f"SELECT {select} ORDER BY {order} LIMIT {MAX_EXAMPLES}")
        return tuple(_example(r) for r in found)

    def q(self, name: str) -> str:
        return self.d.quote(name)

    def canon(self, table: str) -> str:
        return CANONICAL_PREFIX + table

    def add(self, severity: str, code: str, message: str, count: int, total: int = 0,
            examples: Sequence[str] = (), hint: str = "", allowed: float | None = None) -> None:
        if count:
            self.report.add(Problem(severity, code, message, count, total, tuple(examples), hint, allowed))

    # ----------------------------------------------------------------------------- run

    def run(self) -> Report:
        self.profile()
        for name, sp in self.plan.sections.items():
            self.field_values(name, sp)
        self.keys_and_references()
        self.contract_values()
        self.plausibility()
        return self.report

    # --------------------------------------------------------------------------- profile

    def profile(self) -> None:
        p, lines = self.plan, self.report.profile
        origin = "the mapping's data_end" if p.mapping.data_end else "the latest activity found"
        lines.append(f"mapping {p.loaded.path}{f' ({p.mapping.name})' if p.mapping.name else ''}: "
                     f"{len(p.sections)} sections, data up to {self.data_end:%Y-%m-%d %H:%M} ({origin})")
        for name, sp in p.sections.items():
            rows = self.count(sp.table)
            unused = sp.unused
            lines.append(f"source {name} ({sp.source.describe()}): {rows:,} rows, {len(sp.columns)} columns; "
                         f"mapped {len(sp.columns) - len(unused)}"
                         + (f", not mapped: {', '.join(unused)}" if unused else ", all mapped"))
        dates = {"accounts": "created_at", "renewals": "renewal_date", "tickets": "created_at", "usage_daily": "date",
                 "churn_outcomes": "churned_at", "account_history": "valid_from"}
        for table in self.canonical_tables():
            rows = self.count(self.canon(table))
            line = f"table {table}: {rows:,} rows"
            if rows and table in dates:
                first, last = self.rows(f"SELECT MIN({self.q(dates[table])}), MAX({self.q(dates[table])}) FROM {self.canon(table)}")[0]
                line += f", {dates[table]} {_day(first)} .. {_day(last)}"
            if rows and table in ("renewals", "tickets"):
                column = "outcome" if table == "renewals" else "priority"
                counts = self.rows(f"SELECT {column}, COUNT(*) FROM {self.canon(table)} GROUP BY {column} ORDER BY {column}")
                line += "; " + ", ".join(f"{k} {n:,}" for k, n in counts)
            lines.append(line)
        lines.append("coverage: " + "; ".join(self.coverage()))
        text = thresholds_text(self.thresholds, set_by={name: "mapping" for name in self.overrides})
        lines.append(f"thresholds (the mapping's checks: over the defaults): {text}" if self.overrides
                     else f"thresholds (the defaults; the mapping has no checks:): {text}")

    def canonical_tables(self) -> list[str]:
        return [t for t in ("accounts", "renewals", "tickets", "usage_daily", "churn_outcomes", "account_history")
                if t != "usage_daily" or "usage" in self.plan.sections]

    def coverage(self) -> list[str]:
        acc = self.canon("accounts")
        parts = []

        def share(label: str, table: str, condition: str) -> None:
            total = self.count(table)
            if total:
                found = self.count(f"{table} AS x WHERE {condition}")
                parts.append(f"{label} {found / total:.1%} ({found:,} of {total:,})")

        known = f"EXISTS (SELECT 1 FROM {acc} AS a WHERE a.account_id = x.account_id)"
        sections = self.plan.sections
        if "tickets" in sections:
            share("tickets with a known account", self.canon("tickets"), known)
        if "subscriptions" in sections:
            share("subscriptions with a known account", TYPED_PREFIX + "subscriptions", known)
        if "usage" in sections and "subscription_id" in self.plan.mapping.usage.columns:
            share("usage rows with a known subscription", TYPED_PREFIX + "usage",
                  f"EXISTS (SELECT 1 FROM {TYPED_PREFIX}subscriptions AS s WHERE s.subscription_id = x.subscription_id)")
        if "usage" in sections:
            share("usage days with a known account", self.canon("usage_daily"), known)
        if "churn" in sections:
            share("churn events with a known account", TYPED_PREFIX + "churn", known)
        if "subscriptions" in sections or "renewals" in sections:
            share("accounts with a renewal term", acc,
                  f"EXISTS (SELECT 1 FROM {self.canon('renewals')} AS r WHERE r.account_id = x.account_id)")
        return parts or ["nothing to join"]

    # ----------------------------------------------------------------------- field values

    def field_values(self, name: str, sp: SectionPlan) -> None:
        section = self.plan.mapping.sections()[name]
        total = self.count(sp.table)
        id_col = _EXAMPLE_ID[name] if _EXAMPLE_ID[name] in section.columns else "account_id"
        for key, rule in section.columns.items():
            spec = SECTION_FIELDS[name][key]
            raw, typed = self.q(RAW_PREFIX + key), self.q(key)
            condition = f"{raw} IS NOT NULL AND {typed} IS NULL"
            emptied = [k.strip().lower() for k, v in (rule.values or {}).items() if v is None]
            if emptied:  # words the value map sends to empty on purpose
                condition += f" AND LOWER({raw}) NOT IN ({', '.join(self.d.literal(k) for k in emptied)})"
            if rule.after is not None:
                condition += f" AND {self.q(rule.after)} IS NOT NULL"
            bad = self.count(f"{sp.table} WHERE {condition}")
            if not bad:
                continue
            self.reported.add((name, key))
            where = f"{name}.columns.{key} ({sp.origins[key]} in {sp.source.describe()})"
            example_ids = f"{self.q(id_col)}" if id_col in section.columns else "NULL"
            if rule.values is not None or VOCABULARIES.get((name, key)):
                values = self.rows(f"SELECT {raw}, COUNT(*) AS n FROM {sp.table} WHERE {condition} "
                                   f"GROUP BY {raw} ORDER BY n DESC, {raw} LIMIT 5")
                listed = ", ".join(f"{v!r} ({n:,})" for v, n in values)
                allowed = VOCABULARIES.get((name, key))
                hint = (f"add them under {name}.columns.{key}.values" if rule.values is not None
                        else f"map them to {', '.join(allowed)} with {name}.columns.{key}.values")
                self.add("error", "unmapped_value", f"{where}: {listed} not in the value map", bad, total,
                         self.examples(f"{example_ids} FROM {sp.table} WHERE {condition}", example_ids), hint + " (or set otherwise:)")
                continue
            kind = "duration" if rule.after else spec.kind
            what = {"datetime": "a date", "float": "a number", "int": "a whole number", "bool": "a boolean",
                    "duration": "a number", "str": "text"}[kind]
            shown = self.rows(f"SELECT {raw}, {example_ids} FROM {sp.table} WHERE {condition} "
                              f"ORDER BY {example_ids}, {raw} LIMIT {MAX_EXAMPLES}")
            examples = [f"{value!r}" + (f" ({ident})" if ident is not None else "") for value, ident in shown]
            hint = self.date_hint(name, key, sp, condition) if spec.kind == "datetime" and not rule.after else ""
            code = {"datetime": "unreadable_date", "float": "unreadable_number", "int": "unreadable_number",
                    "duration": "unreadable_number"}.get(kind, "unreadable_value")
            self.add("error", code, f"{where}: not {what}", bad, total, examples, hint)

    def date_hint(self, name: str, key: str, sp: SectionPlan, condition: str) -> str:
        other = sp.alternative_formats.get(key)
        if not other:
            return ""
        raw = self.q(RAW_PREFIX + key)
        parsed = self.d.parse_datetime(raw, other, "UTC")
        bad = self.count(f"{sp.table} WHERE {condition}")
        readable = self.count(f"{sp.table} WHERE {condition} AND {parsed} IS NOT NULL")
        if not bad or readable / bad < _HINT_SHARE:
            return "name the format with format: (strptime, e.g. '%d.%m.%Y %H:%M')"
        day_first = other[0].startswith("%d")
        rule = self.plan.mapping.sections()[name].columns[key]
        where = f"{name}.columns.{key}.day_first" if rule.day_first is not None else "dates.day_first"
        order = "day first (23/04/2026 is 23 April)" if day_first else "month first (04/23/2026 is 23 April)"
        return f"{readable:,} of them read as dates {order}: set {where}: {'true' if day_first else 'false'}"

    # ------------------------------------------------------------------ keys, references

    def keys_and_references(self) -> None:
        acc = self.canon("accounts")
        accounts = self.count(acc)
        if not accounts:
            self.report.add(Problem("error", "no_accounts", "accounts: no rows (nothing else can be landed without them)"))
        for table in self.canonical_tables():
            contract = CONTRACTS[table]
            keys = ", ".join(self.q(k) for k in contract.primary_key)
            not_null = " AND ".join(f"{self.q(k)} IS NOT NULL" for k in contract.primary_key)
            dupes = f"(SELECT {keys}, COUNT(*) AS n FROM {self.canon(table)} WHERE {not_null} GROUP BY {keys} HAVING COUNT(*) > 1) AS dupes"
            n = self.count(dupes)
            self.add("error", "duplicate_key", f"{table}: {', '.join(contract.primary_key)} repeated", n,
                     self.count(self.canon(table)), self.examples(f"{keys} FROM {dupes}", keys))
        unknown = f"account_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {acc} AS a WHERE a.account_id = x.account_id)"
        refs = {"tickets": self.canon("tickets"), "subscriptions": TYPED_PREFIX + "subscriptions",
                "churn": TYPED_PREFIX + "churn", "usage": self.canon("usage_daily"),
                "renewals": TYPED_PREFIX + "renewals"}
        for name, table in refs.items():
            if name in self.plan.sections:
                n = self.count(f"{table} AS x WHERE {unknown}")
                self.add("error", "unknown_account", f"{name}: account_id not in accounts", n, self.count(table),
                         self.examples(f"DISTINCT account_id FROM {table} AS x WHERE {unknown}", "account_id"))
        usage = self.plan.mapping.usage
        if usage is not None and "subscription_id" in usage.columns:
            u, s = TYPED_PREFIX + "usage", TYPED_PREFIX + "subscriptions"
            missing = (f"{u} AS x WHERE x.subscription_id IS NOT NULL AND NOT EXISTS "
                       f"(SELECT 1 FROM {s} AS s WHERE s.subscription_id = x.subscription_id)")
            self.add("error", "unknown_subscription", "usage: subscription_id not in subscriptions", self.count(missing),
                     self.count(u), self.examples(f"DISTINCT x.subscription_id FROM {missing}", "subscription_id"))

    def contract_values(self) -> None:
        """Empty required values, negative amounts, impossible and future timestamps."""
        section_of = {"accounts": "accounts", "tickets": "tickets", "renewals": "renewals"}
        now = self.d.timestamp_literal(self.now)
        for table in self.canonical_tables():
            contract = CONTRACTS[table]
            t = self.canon(table)
            total = self.count(t)
            id_col = self.q(contract.primary_key[0])
            for col in contract.columns:
                c = self.q(col.name)
                if not col.nullable and (section_of.get(table), col.name) not in self.reported:
                    n = self.count(f"{t} WHERE {c} IS NULL")
                    self.add("error", "missing_value", f"{table}.{col.name}: empty (required)", n, total,
                             self.examples(f"{id_col} FROM {t} WHERE {c} IS NULL", id_col))
                if col.min_value is not None:
                    n = self.count(f"{t} WHERE {c} < {col.min_value!r}")
                    self.add("error", "below_minimum", f"{table}.{col.name}: below {col.min_value:g}", n, total,
                             self.examples(f"{id_col}, {c} FROM {t} WHERE {c} < {col.min_value!r}", id_col))
                if col.kind == "datetime" and not col.may_be_future:
                    n = self.count(f"{t} WHERE {c} > {now}")
                    self.add("error", "future_date", f"{table}.{col.name}: after now ({self.now:%Y-%m-%d %H:%M} UTC)", n,
                             total, self.examples(f"{id_col}, {c} FROM {t} WHERE {c} > {now}", id_col))
        if "tickets" in self.plan.sections:
            t = self.canon("tickets")
            for later in ("first_response_at", "solved_at"):
                cond = f"{self.q(later)} < created_at"
                self.add("error", "time_order", f"tickets.{later}: before created_at", self.count(f"{t} WHERE {cond}"),
                         self.count(t), self.examples(f"ticket_id FROM {t} WHERE {cond}", "ticket_id"))

    # ------------------------------------------------------------------------ plausibility

    def plausibility(self) -> None:
        self.pipeline_rules()
        plausibility.run(self)

    def frame(self, table: str, columns: Sequence[str]) -> pd.DataFrame:
        """Columns of a canonical table as a frame, conformed to its contract as the sources read it."""
        result = self.d.run(self.conn, f"SELECT {', '.join(self.q(c) for c in columns)} FROM {self.canon(table)}")
        rows = pd.DataFrame(result.fetchall(), columns=list(columns))
        return conform(rows, CONTRACTS[table], lenient=True)

    def pipeline_rules(self) -> None:
        """The daily job's plausibility rules on the canonical tables, with the same thresholds."""
        t = self.thresholds
        accounts = self.frame("accounts", ["account_id", "created_at"])
        renewals = self.frame("renewals", ["renewal_id", "account_id", "renewal_date", "closed_at", "outcome"])
        back = history_reactivations(renewals, self.frame("account_history", ["account_id", "valid_from", "arr"]))
        tickets = self.frame("tickets", ["ticket_id", "account_id", "created_at"])
        self.add_finding(rows_before_signup(tickets, "tickets", "created_at", accounts, t, key="ticket_id"))
        if "usage" in self.plan.sections:
            usage = self.frame("usage_daily", ["account_id", "date"])
            self.add_finding(rows_before_signup(usage, "usage_daily", "date", accounts, t))
            self.add_finding(usage_after_churn(usage, renewals, t, reactivations=back))
        self.add_finding(contradictory_outcomes(renewals, t, reactivations=back))

    def add_finding(self, finding: Finding) -> None:
        """A rule's finding: an error over its allowed share, a warning within it, nothing at 0."""
        share = RULE_THRESHOLDS[finding.rule][0]
        if finding.passed:
            severity, hint = "warning", f"within checks.{share}: the daily checks let it pass"
        else:
            severity, hint = "error", (f"over checks.{share}: the daily checks would block on it; fix the export, "
                                       f"or raise checks.{share} in the mapping if these rows are right")
        self.add(severity, finding.rule, f"{finding.table}.{finding.column}: rows {finding.problem}", finding.bad,
                 finding.total, finding.examples, hint, allowed=finding.allowed_share)


def _day(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    try:
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    except (ValueError, TypeError):
        return str(value)


def _example(row: tuple) -> str:
    parts = [(_day(v) if isinstance(v, (pd.Timestamp,)) or hasattr(v, "isoformat") else str(v)) for v in row if v is not None]
    if not parts:
        return "-"
    return parts[0] if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"

"""The SQL of a mapping: from the company's sources to typed rows, and from typed rows to the
canonical tables. Everything runs in the warehouse; Python only writes the SQL.

Two steps, each a set of ``SELECT`` statements the caller materializes as temporary tables on one
connection (`connectors.mapping.check` and `connectors.mapping.land`):

1. **Typed rows** (`Plan.sections`): one table per section (``rescue_map_<section>``) with the
   section's fields (`models.mapping.fields`) in their kinds: columns renamed, text parsed as
   numbers, booleans and dates (strptime formats, day first or not, time zones to UTC), value maps
   applied, durations added, SQL expressions evaluated. Each mapped field also keeps its source
   text as ``_raw_<field>``, so the check can count and show what could not be read.
2. **Canonical tables** (`Plan.canonical`, given the data's end): ``accounts``, ``renewals``,
   ``tickets``, ``usage_daily``, ``churn_outcomes`` and ``account_history`` in their contracts'
   columns (``rescue_canon_<table>``).

Subscriptions become renewal terms, one per billing period of a paid (non-trial) subscription:
a subscription comes up for renewal every month (monthly billing) or year (annual) from its start,
so at any date its next renewal is the end of the billing period in progress, as the company knew
it then. Every billing date before the subscription's end (and before a churn event within it) is a
renewal, renewed on the day. The last term is the period its end falls in (when it runs on, the
period in progress at the data's end), due at that period's billing date; its outcome:

- **churned** when a churn event falls within the term, or within the grace period after it
  before anything continues it; or when nothing continues it and the grace period has passed
  (lapsed);
- **renewed** when another paid subscription of the account runs within the grace period after
  the term's end (a renewal, an upgrade or downgrade, or a parallel subscription carrying on);
- **open** when the term ends after the data's end, or its grace period is still running.

A churn event followed later by a new subscription is a churn and then a new term (a
reactivation), not a contradiction. ``account_history`` is the ARR, plan and seats of the
subscriptions in force at every change (ARR 0 between terms).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa

from connectors.mapping.dialect import Dialect
from connectors.mapping.loader import LoadedMapping, MappingError
from connectors.mapping.schema import FeatureGroup, Rule, Section, Source
from models.contracts import CONTRACTS, TableContract
from models.mapping.dates import default_formats
from models.mapping.fields import FALSE_WORDS, PERIOD_MONTHS, SECTION_FIELDS, TRUE_WORDS, VOCABULARIES
from models.mapping.sqltext import glob_to_like

TYPED_PREFIX = "rescue_map_"
#: The working table of the subscriptions' last terms (`Plan.canonical`).
TERMS = "_terms"
CANONICAL_PREFIX = "rescue_canon_"
RAW_PREFIX = "_raw_"


@dataclass
class SectionPlan:
    """One section's typed rows: where they come from and the SELECT that types them."""

    name: str
    source_name: str
    source: Source
    relation: str
    columns: dict[str, str]                        # source column -> type (lower-cased, '' if unknown)
    select: str = ""
    origins: dict[str, str] = field(default_factory=dict)   # field -> "column 'x'" / "sql"
    used: set[str] = field(default_factory=set)    # source columns the mapping reads
    alternative_formats: dict[str, list[str]] = field(default_factory=dict)  # date field -> the other day order

    @property
    def table(self) -> str:
        return TYPED_PREFIX + self.name

    @property
    def unused(self) -> list[str]:
        return [c for c in self.columns if c not in self.used]


class Plan:
    """The compiled mapping for one warehouse connection (sources are described on it)."""

    def __init__(self, loaded: LoadedMapping, dialect: Dialect, conn: sa.Connection) -> None:
        self.loaded = loaded
        self.mapping = loaded.mapping
        self.d = dialect
        self.sections: dict[str, SectionPlan] = {}
        for name, section in self.mapping.sections().items():
            self.sections[name] = self._plan_section(name, section, conn)

    # ---------------------------------------------------------------------------- sources

    def _error(self, path: str, why: str) -> MappingError:
        return MappingError(str(self.loaded.path), [(path, why)])

    def _relation(self, source: Source, text_columns: set[str], conn: sa.Connection, where: str) -> tuple[str, dict[str, str]]:
        """(relation SQL, column -> type) of a source. CSV columns the mapping reads as text or
        dates are read as text (DuckDB would guess types, and guess day and month in its own order);
        the others keep the types DuckDB detects, so SQL expressions see numbers as numbers."""
        d = self.d
        try:
            if source.file is not None:
                path = str(self.loaded.file_path(source))
                options = dict(file_format=source.file_format, delimiter=source.delimiter,
                               header=source.header, null_values=source.null_values)
                if source.file_format == "csv":
                    names = d.describe(conn, d.file_relation(path, all_varchar=True, **options))
                    wanted = {c.strip().lower() for c in text_columns}
                    text = [c for c in names if c.lower() in wanted]
                    relation = d.file_relation(path, varchar=text, **options)
                else:
                    relation = d.file_relation(path, **options)
            elif source.table is not None:
                relation = ".".join(d.quote(part) for part in source.table.split("."))
            else:
                relation = f"({source.query})"
            return relation, d.describe(conn, relation)
        except MappingError:
            raise
        except Exception as exc:  # the warehouse's own words, first line only
            detail = _first_line(exc)
            kind = source.kind
            raise self._error(f"{where}.{kind}", f"cannot read {source.describe()}: {detail}") from None

    def _plan_section(self, name: str, section: Section, conn: sa.Connection) -> SectionPlan:
        source_name, source = self.mapping.source_of(name)
        where = f"sources.{source_name}" if isinstance(section.source, str) else f"{name}.source"
        if source.file is not None and not self.d.reads_files:
            raise self._error(f"{where}.file", f"files are read by DuckDB; this warehouse is {self.d.name}: "
                                               "load the file into a table, or use a DuckDB warehouse")
        text_columns = {
            r.column for f, r in section.columns.items()
            if r.column is not None and r.after is None and SECTION_FIELDS[name][f].kind in ("str", "datetime")
        }
        relation, columns = self._relation(source, text_columns, conn, where)
        plan = SectionPlan(name, source_name, source, relation, columns)
        plan.select = self._typed_select(plan, section)
        self._bind(conn, plan, section)
        return plan

    def _bind(self, conn: sa.Connection, plan: SectionPlan, section: Section) -> None:
        """Ask the warehouse to bind every expression (nothing runs): a bad column or a SQL
        error names its key path."""
        for key, rule in section.columns.items():
            if rule.sql is not None:
                self._probe(conn, plan, f"SELECT ({rule.sql}) AS probe FROM {plan.relation} AS src WHERE 1 = 0",
                            f"{plan.name}.columns.{key}.sql")
        if section.where:
            self._probe(conn, plan, f"SELECT 1 FROM {plan.relation} AS src WHERE ({section.where}) AND 1 = 0",
                        f"{plan.name}.where")
        features = getattr(section, "features", None)
        for group in ("core", "advanced"):
            sql = getattr(features, group).sql if features is not None else None
            if sql:
                self._probe(conn, plan, f"SELECT 1 FROM {plan.relation} AS src WHERE ({sql}) AND 1 = 0",
                            f"{plan.name}.features.{group}.sql")
        self._probe(conn, plan, f"SELECT * FROM ({plan.select}) AS typed WHERE 1 = 0", f"{plan.name}.columns")

    def _probe(self, conn: sa.Connection, plan: SectionPlan, sql: str, path: str) -> None:
        savepoint = conn.begin_nested() if self.d.name == "postgresql" else None
        try:
            self.d.run(conn, sql).fetchall()
        except Exception as exc:  # noqa: BLE001 - the warehouse's words become the message
            if savepoint is not None:
                savepoint.rollback()
            raise self._error(path, f"the warehouse refuses it: {_first_line(exc)}") from None
        if savepoint is not None:
            savepoint.commit()

    # ------------------------------------------------------------------------- typed rows

    def _column(self, plan: SectionPlan, key: str, rule: Rule) -> tuple[str, str]:
        """(quoted source column, its type) for a rule's column, matched case-insensitively."""
        wanted = rule.column
        if wanted in plan.columns:
            actual = wanted
        else:
            folded = {c.lower(): c for c in plan.columns}
            actual = folded.get(wanted.strip().lower())
            if actual is None:
                close = difflib.get_close_matches(wanted, list(plan.columns), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise self._error(f"{plan.name}.columns.{key}",
                                  f"column {wanted!r} not found in {plan.source.describe()}; {hint}"
                                  f"columns: {', '.join(plan.columns)}")
        plan.used.add(actual)
        return f"src.{self.d.quote(actual)}", plan.columns[actual]

    def _formats(self, rule: Rule) -> tuple[list[str], list[str]]:
        dates = self.mapping.dates
        day_first = dates.day_first if rule.day_first is None else rule.day_first
        if rule.formats or dates.formats:
            return rule.formats or dates.formats, default_formats(not day_first)
        return default_formats(day_first), default_formats(not day_first)

    def _value_map(self, raw: str, rule: Rule, vocabulary: tuple[str, ...] | None) -> str:
        d = self.d
        values = rule.values if rule.values is not None else {v: v for v in vocabulary or ()}
        whens = " ".join(f"WHEN {d.literal(str(k).strip().lower())} THEN {d.literal(v)}" for k, v in values.items())
        otherwise = d.literal(rule.otherwise) if rule.has_otherwise else "NULL"
        return f"CASE LOWER({raw}) {whens} ELSE {otherwise} END" if whens else otherwise

    def _field_expr(self, plan: SectionPlan, section: Section, key: str, exprs: dict[str, str]) -> tuple[str, str]:
        """(typed expression, raw text expression) of one mapped field."""
        d = self.d
        rule = section.columns[key]
        spec = SECTION_FIELDS[plan.name][key]
        if rule.column is not None:
            base, source_type = self._column(plan, key, rule)
            plan.origins[key] = f"column {rule.column!r}"
        else:
            base, source_type = f"({rule.sql})", ""
            plan.origins[key] = "sql"
            plan.used |= {c for c in plan.columns if re.search(rf"\b{re.escape(c)}\b", rule.sql)}
        raw = d.text(base)
        vocabulary = VOCABULARIES.get((plan.name, key))
        if rule.after is not None:
            expr = d.add_duration(exprs[rule.after], d.to_double(base, source_type), rule.unit)
        elif rule.values is not None or vocabulary:
            expr = self._value_map(raw, rule, vocabulary)
        elif spec.kind == "str":
            expr = raw
        elif spec.kind == "float":
            expr = d.to_double(base, source_type)
        elif spec.kind == "int":
            expr = d.to_bigint(base, source_type)
        elif spec.kind == "bool":
            truthy = ", ".join(d.literal(w) for w in TRUE_WORDS)
            falsy = ", ".join(d.literal(w) for w in FALSE_WORDS)
            expr = f"CASE WHEN LOWER({raw}) IN ({truthy}) THEN TRUE WHEN LOWER({raw}) IN ({falsy}) THEN FALSE END"
        else:
            formats, other = self._formats(rule)
            zone = rule.timezone or self.mapping.dates.timezone
            if zone != "UTC" and not d.supports_zones:
                raise self._error(f"{plan.name}.columns.{key}", f"time zone {zone!r} needs DuckDB or PostgreSQL; {d.name} reads UTC only")
            if (rule.formats or self.mapping.dates.formats) and not d.supports_formats:
                raise self._error(f"{plan.name}.columns.{key}", f"date formats need DuckDB; on {d.name} dates must be ISO 8601 or native")
            expr = d.parse_datetime(base, formats, zone, source_type)
            plan.alternative_formats[key] = other
        if rule.default is not None:
            expr = f"CASE WHEN {raw} IS NULL THEN {d.literal(rule.default)} ELSE {expr} END"
        return d.cast(expr, spec.kind), raw

    def _group(self, group: FeatureGroup, feature: str) -> str:
        d = self.d
        parts = []
        if group.names:
            parts.append(f"LOWER({feature}) IN ({', '.join(d.literal(n.lower()) for n in group.names)})")
        parts += [d.like_lower(feature, glob_to_like(p)) for p in group.patterns]
        if group.sql:
            parts.append(f"({group.sql})")
        return "(" + " OR ".join(parts) + ")" if parts else "FALSE"

    def _typed_select(self, plan: SectionPlan, section: Section) -> str:
        d = self.d
        fields = SECTION_FIELDS[plan.name]
        exprs: dict[str, str] = {}
        raws: dict[str, str] = {}
        # fields that others are a duration after come first
        order = sorted(section.columns, key=lambda k: section.columns[k].after is not None)
        for key in order:
            if key in fields:
                exprs[key], raws[key] = self._field_expr(plan, section, key, exprs)
        defaults = self._defaults(plan.name, exprs)
        out = []
        for key, spec in fields.items():
            expr = exprs.get(key) or defaults.get(key) or d.cast("NULL", spec.kind)
            out.append(f"{expr} AS {d.quote(key)}")
        if plan.name == "usage":
            usage = self.mapping.usage
            feature = exprs.get("feature", "NULL")
            advanced = self._group(usage.features.advanced, feature)
            core = self._group(usage.features.core, feature)
            out.append(f"CASE WHEN {advanced} THEN FALSE WHEN {core} THEN TRUE ELSE FALSE END AS is_core")
            out.append(f"CASE WHEN {advanced} THEN TRUE ELSE FALSE END AS is_advanced")
        out += [f"{raw} AS {d.quote(RAW_PREFIX + key)}" for key, raw in raws.items()]
        where = f" WHERE ({section.where})" if section.where else ""
        return f"SELECT {', '.join(out)} FROM {plan.relation} AS src{where}"

    def _defaults(self, section: str, exprs: dict[str, str]) -> dict[str, str]:
        """What an unmapped field becomes (when something sensible exists)."""
        d = self.d
        if section == "accounts":
            return {"name": exprs.get("account_id", "NULL")}
        if section == "tickets":
            solved = exprs.get("solved_at")
            status = f"CASE WHEN {solved} IS NULL THEN 'open' ELSE 'solved' END" if solved else "'open'"
            return {"status": status, "escalated": "FALSE"}
        if section == "subscriptions":
            out = {"trial": "FALSE", "billing": "'annual'"}
            if "mrr" in exprs:
                out["arr"] = f"12 * {exprs['mrr']}"
            return out
        if section == "usage":
            return {"events": "1"}
        if section == "renewals":
            day = d.text(d.day(exprs.get("renewal_date", "NULL")))
            return {"renewal_id": f"{exprs.get('account_id', 'NULL')} || '@' || {day}"}
        return {}

    # ---------------------------------------------------------------------- the data's end

    def data_end_sql(self) -> str:
        """The latest moment of activity in the typed rows (when the mapping names no data_end)."""
        parts = []
        activity = {"accounts": ("created_at",), "subscriptions": ("started_at",), "renewals": ("closed_at",),
                    "tickets": ("created_at", "first_response_at", "solved_at"), "usage": ("date",),
                    "churn": ("churned_at",)}
        for name, columns in activity.items():
            if name in self.sections:
                parts += [f"SELECT MAX({self.d.quote(c)}) AS last FROM {TYPED_PREFIX + name}" for c in columns]
        return f"SELECT MAX(last) FROM ({' UNION ALL '.join(parts)}) AS activity"

    def fixed_data_end(self) -> pd.Timestamp | None:
        end = self.mapping.data_end
        return None if end is None else pd.Timestamp(end) + pd.Timedelta(days=1) - pd.Timedelta(seconds=1)

    # ------------------------------------------------------------------- canonical tables

    def canonical(self, data_end: pd.Timestamp) -> dict[str, str]:
        """Canonical table name -> SELECT, in an order where each reads only earlier ones. A name
        starting with ``_`` is a working table (materialized like the others, never landed)."""
        out = {"accounts": self._accounts()}
        if "renewals" in self.sections:
            out["renewals"] = self._direct("renewals")
        else:
            out[TERMS] = self._final_terms(data_end)
            out["renewals"] = self._renewals_from_terms(data_end)
        out["tickets"] = self._direct("tickets") if "tickets" in self.sections else self._empty(CONTRACTS["tickets"])
        if "usage" in self.sections:
            out["usage_daily"] = self._usage_daily()
        out["churn_outcomes"] = self._churn_outcomes()
        out["account_history"] = self._account_history(data_end)
        return out

    def _select_contract(self, contract: TableContract, source: str, exprs: dict[str, str] | None = None) -> str:
        exprs = exprs or {}
        cols = ", ".join(f"{self.d.cast(exprs.get(c.name, self.d.quote(c.name)), c.kind)} AS {self.d.quote(c.name)}"
                         for c in contract.columns)
        return f"SELECT {cols} FROM {source}"

    def _empty(self, contract: TableContract) -> str:
        cols = ", ".join(f"{self.d.cast('NULL', c.kind)} AS {self.d.quote(c.name)}" for c in contract.columns)
        return f"SELECT {cols} WHERE 1 = 0"

    def _direct(self, name: str) -> str:
        return self._select_contract(CONTRACTS[name], TYPED_PREFIX + name)

    def _accounts(self) -> str:
        d = self.d
        if "subscriptions" not in self.sections:
            return self._select_contract(CONTRACTS["accounts"], TYPED_PREFIX + "accounts")
        subs = TYPED_PREFIX + "subscriptions"
        latest = (f"SELECT account_id, arr, plan, seats, ROW_NUMBER() OVER (PARTITION BY account_id "
                  f"ORDER BY trial, started_at DESC, arr DESC) AS k FROM {subs}")
        first = f"SELECT account_id, MIN(started_at) AS first_start FROM {subs} GROUP BY account_id"
        exprs = {
            "arr": "COALESCE(a.arr, t.arr, 0)", "plan": "COALESCE(a.plan, t.plan)",
            "seats": "COALESCE(a.seats, t.seats, 0)", "created_at": "COALESCE(a.created_at, f.first_start)",
        }
        exprs.update({c.name: f"a.{d.quote(c.name)}" for c in CONTRACTS["accounts"].columns if c.name not in exprs})
        source = (f"{TYPED_PREFIX}accounts AS a LEFT JOIN ({latest}) AS t ON t.account_id = a.account_id AND t.k = 1 "
                  f"LEFT JOIN ({first}) AS f ON f.account_id = a.account_id")
        return self._select_contract(CONTRACTS["accounts"], source, exprs)

    def terms_sql(self, data_end: pd.Timestamp) -> tuple[str, str]:
        """(terms, churn events): the paid subscriptions with their term end, the first churn
        event within and after each, and when another term continues it (see the module docs)."""
        d = self.d
        end = d.timestamp_literal(data_end)
        grace = self.mapping.subscriptions.grace_days
        subs, churn = TYPED_PREFIX + "subscriptions", TYPED_PREFIX + "churn"
        period = " ".join(f"WHEN {d.literal(k)} THEN {v}" for k, v in PERIOD_MONTHS.items())
        k = f"{d.greatest(d.int_div(d.months_between('s.started_at', end), 's.months'), '0')} * s.months"
        running = (f"CASE WHEN {k} > 0 AND {d.add_months('s.started_at', k)} > {end} THEN {d.add_months('s.started_at', k)} "
                   f"ELSE {d.add_months('s.started_at', f'({k}) + s.months')} END")
        key = f"COALESCE(s.subscription_id, s.account_id || '@' || {d.text(d.day('s.started_at'))})"
        paid = (f"SELECT s.*, {key} AS term_key, COALESCE(s.ended_at, {running}) AS term_end "
                f"FROM (SELECT x.*, CASE x.billing {period} ELSE 12 END AS months FROM {subs} AS x) AS s "
                f"WHERE NOT COALESCE(s.trial, FALSE) AND s.started_at IS NOT NULL AND s.account_id IS NOT NULL")
        events = f"SELECT account_id, churned_at, reason FROM {churn}" if "churn" in self.sections else \
            f"SELECT {d.cast('NULL', 'str')} AS account_id, {d.cast('NULL', 'datetime')} AS churned_at, " \
            f"{d.cast('NULL', 'str')} AS reason WHERE 1 = 0"
        after_grace, grace_of_p = d.add_days("t.term_end", grace), d.add_days("p.term_end", grace)

        def first(value: str, joined: str, on: str) -> str:
            """Per term key, the earliest `value` of the rows of `joined` (alias o or e) that
            `on` pairs with the term (alias p): a join and a GROUP BY, not a subquery per term,
            which PostgreSQL and SQLite would run once for every term (quadratic)."""
            return (f"(SELECT p.term_key, MIN({value}) AS v FROM ({paid}) AS p JOIN {joined} "
                    f"ON {on} GROUP BY p.term_key)")

        churn_in = first("e.churned_at", f"({events}) AS e", "e.account_id = p.account_id "
                         "AND e.churned_at >= p.started_at AND e.churned_at <= p.term_end")
        churn_after = first("e.churned_at", f"({events}) AS e", "e.account_id = p.account_id "
                            f"AND e.churned_at > p.term_end AND e.churned_at <= {grace_of_p}")
        continued = first(d.greatest("o.started_at", "p.term_end"), f"({paid}) AS o",
                          "o.account_id = p.account_id AND o.term_key <> p.term_key "
                          f"AND o.started_at <= {grace_of_p} AND o.term_end > p.term_end")
        return (
            f"SELECT t.*, ci.v AS churn_in, ca.v AS churn_after, co.v AS continued_at, {after_grace} AS grace_end "
            f"FROM ({paid}) AS t LEFT JOIN {churn_in} AS ci ON ci.term_key = t.term_key "
            f"LEFT JOIN {churn_after} AS ca ON ca.term_key = t.term_key "
            f"LEFT JOIN {continued} AS co ON co.term_key = t.term_key"
        ), events

    def _final_terms(self, data_end: pd.Timestamp) -> str:
        """Each paid subscription's last term: its outcome, churn event and reason, and how many
        billing periods it ran (a working table: the renewals read it twice)."""
        d = self.d
        end = d.timestamp_literal(data_end)
        terms, events = self.terms_sql(data_end)
        lapsed_churn = "t.churn_after IS NOT NULL AND (t.continued_at IS NULL OR t.continued_at > t.churn_after)"
        outcome = (f"CASE WHEN t.churn_in IS NOT NULL THEN 'churned' WHEN t.term_end > {end} THEN 'open' "
                   f"WHEN {lapsed_churn} THEN 'churned' WHEN t.continued_at IS NOT NULL THEN 'renewed' "
                   f"WHEN t.grace_end > {end} THEN 'open' ELSE 'churned' END")
        event_at = f"COALESCE(t.churn_in, CASE WHEN {lapsed_churn} THEN t.churn_after END)"
        reasons = f"(SELECT account_id, churned_at, MIN(reason) AS reason FROM ({events}) AS e GROUP BY account_id, churned_at)"
        # The billing periods of the term: it comes up for renewal every `months` from its start.
        # Its last renewal is due on the first billing date on or after it stopped: its churn event
        # when that came within it (the customer gave notice in that period), else its end. Every
        # earlier billing date was a renewal. So at any date the next renewal is the billing date
        # of the period in progress, as the company knew it then: never the (future) end.
        base = (f"SELECT t.*, {outcome} AS outcome, {event_at} AS event_at, r.reason AS reason FROM ({terms}) AS t "
                f"LEFT JOIN {reasons} AS r ON r.account_id = t.account_id AND r.churned_at = {event_at}")
        stop = "CASE WHEN b.event_at IS NOT NULL AND b.event_at < b.term_end THEN b.event_at ELSE b.term_end END"
        q = d.int_div(d.months_between("b.started_at", stop), "b.months")
        at_q = d.add_months("b.started_at", f"({q}) * b.months")
        periods = f"CASE WHEN {q} >= 1 AND {at_q} >= {stop} THEN {q} ELSE ({q}) + 1 END"
        return (f"SELECT b.term_key, b.account_id, b.term_end, b.arr, b.started_at, b.months, b.outcome, "
                f"b.event_at, b.reason, {periods} AS periods FROM ({base}) AS b")

    def _renewals_from_terms(self, data_end: pd.Timestamp) -> str:
        d = self.d
        end = d.timestamp_literal(data_end)
        final = CANONICAL_PREFIX + TERMS
        last_due = d.add_months("f.started_at", "f.periods * f.months")
        closed = "CASE WHEN f.outcome = 'open' THEN NULL WHEN f.event_at IS NOT NULL THEN f.event_at ELSE f.term_end END"
        stage = ("CASE WHEN f.outcome = 'open' THEN 'open' WHEN f.outcome = 'renewed' THEN 'closed_won' "
                 "WHEN f.event_at IS NULL THEN 'closed_lost: lapsed' "
                 "ELSE 'closed_lost: ' || COALESCE(f.reason, 'churn event') END")
        last = (f"SELECT f.term_key AS renewal_id, f.account_id, {last_due} AS renewal_date, f.arr, "
                f"{stage} AS stage, {closed} AS closed_at, f.outcome FROM {final} AS f")
        # Earlier billing dates: renewed on the day (up to the data's end).
        due_i = d.add_months("f.started_at", "n.i * f.months")
        digits = " UNION ALL ".join(f"SELECT {k} AS v" for k in range(10))
        numbers = (f"SELECT a.v + 10 * b.v + 100 * c.v AS i FROM ({digits}) AS a CROSS JOIN ({digits}) AS b "
                   f"CROSS JOIN ({digits}) AS c")
        earlier = (f"SELECT f.term_key || '#' || {d.text('n.i')} AS renewal_id, f.account_id, {due_i} AS renewal_date, "
                   f"f.arr, 'closed_won' AS stage, {due_i} AS closed_at, 'renewed' AS outcome "
                   f"FROM {final} AS f JOIN ({numbers}) AS n ON n.i >= 1 AND n.i < f.periods "
                   f"WHERE {due_i} <= {end}")
        exprs = {"renewal_id": "o.renewal_id", "account_id": "o.account_id", "renewal_date": "o.renewal_date",
                 "amount": "COALESCE(o.arr, 0)", "stage": "o.stage", "closed_at": "o.closed_at", "outcome": "o.outcome"}
        return self._select_contract(CONTRACTS["renewals"], f"({last} UNION ALL {earlier}) AS o", exprs)

    def _usage_daily(self) -> str:
        d = self.d
        usage = self.mapping.usage
        u = TYPED_PREFIX + "usage"
        if "subscription_id" in usage.columns:
            rows = (f"SELECT COALESCE(u.account_id, s.account_id) AS account_id, u.subscription_id, u.user_id, "
                    f"u.{d.quote('date')} AS day, u.events, u.active_users, u.is_core, u.is_advanced FROM {u} AS u "
                    f"LEFT JOIN (SELECT DISTINCT subscription_id, account_id FROM {TYPED_PREFIX}subscriptions) AS s "
                    f"ON s.subscription_id = u.subscription_id")
        else:
            rows = (f"SELECT account_id, subscription_id, user_id, {d.quote('date')} AS day, events, active_users, "
                    f"is_core, is_advanced FROM {u}")
        unit = {"user": "r.user_id", "subscription": "r.subscription_id", "account": "r.account_id"}[usage.grain]
        users = "1" if usage.grain == "user" else "MAX(COALESCE(r.active_users, 1))"
        day = d.day("r.day")
        per_unit = (f"SELECT r.account_id, {day} AS day, {unit} AS unit, {users} AS users, SUM(r.events) AS events, "
                    f"SUM(CASE WHEN r.is_core THEN r.events ELSE 0 END) AS core_events, "
                    f"SUM(CASE WHEN r.is_advanced THEN r.events ELSE 0 END) AS advanced_events "
                    f"FROM ({rows}) AS r WHERE r.account_id IS NOT NULL AND r.day IS NOT NULL "
                    f"GROUP BY r.account_id, {day}, {unit}")
        exprs = {"account_id": "p.account_id", "date": "p.day", "active_users": "SUM(p.users)",
                 "events": "COALESCE(SUM(p.events), 0)", "core_events": "COALESCE(SUM(p.core_events), 0)",
                 "advanced_events": "COALESCE(SUM(p.advanced_events), 0)"}
        return self._select_contract(CONTRACTS["usage_daily"], f"({per_unit}) AS p", exprs) + " GROUP BY p.account_id, p.day"

    def _churn_outcomes(self) -> str:
        r = CANONICAL_PREFIX + "renewals"
        exprs = {"account_id": "account_id", "churned_at": "closed_at", "arr_lost": "SUM(amount)"}
        return (self._select_contract(CONTRACTS["churn_outcomes"], r, exprs)
                + " WHERE outcome = 'churned' AND closed_at IS NOT NULL GROUP BY account_id, closed_at")

    def _account_history(self, data_end: pd.Timestamp) -> str:
        d = self.d
        accounts = CANONICAL_PREFIX + "accounts"
        history = CONTRACTS["account_history"]
        if "subscriptions" not in self.sections:
            return self._select_contract(history, accounts, {"valid_from": "created_at"})
        subs = TYPED_PREFIX + "subscriptions"
        end = d.timestamp_literal(data_end)
        points = (f"SELECT account_id, started_at AS valid_from FROM {subs} WHERE started_at IS NOT NULL "
                  f"UNION SELECT account_id, ended_at FROM {subs} WHERE ended_at IS NOT NULL AND ended_at <= {end}")
        active = (f"SELECT p.account_id, p.valid_from, s.arr, s.seats, s.plan, ROW_NUMBER() OVER (PARTITION BY "
                  f"p.account_id, p.valid_from ORDER BY s.started_at DESC, s.arr DESC) AS k "
                  f"FROM ({points}) AS p JOIN {subs} AS s ON s.account_id = p.account_id "
                  f"AND s.started_at <= p.valid_from AND (s.ended_at IS NULL OR s.ended_at > p.valid_from)")
        state = (f"SELECT p.account_id, p.valid_from, COALESCE(SUM(a.arr), 0) AS arr, SUM(a.seats) AS seats, "
                 f"MAX(CASE WHEN a.k = 1 THEN a.plan END) AS plan FROM ({points}) AS p LEFT JOIN ({active}) AS a "
                 f"ON a.account_id = p.account_id AND a.valid_from = p.valid_from GROUP BY p.account_id, p.valid_from")
        window = "OVER (PARTITION BY account_id ORDER BY valid_from)"
        changed = (f"SELECT st.*, LAG(arr) {window} AS prev_arr, LAG(seats) {window} AS prev_seats, "
                   f"LAG(plan) {window} AS prev_plan, ROW_NUMBER() {window} AS n FROM ({state}) AS st")
        keep = " OR ".join([d.is_distinct("c.arr", "c.prev_arr"), d.is_distinct("c.seats", "c.prev_seats"),
                            d.is_distinct("c.plan", "c.prev_plan")])
        exprs = {"account_id": "c.account_id", "valid_from": "c.valid_from", "arr": "c.arr", "plan": "c.plan",
                 "seats": "c.seats", "segment": "a.segment", "csm_owner": "a.csm_owner"}
        return (self._select_contract(history, f"({changed}) AS c JOIN {accounts} AS a ON a.account_id = c.account_id", exprs)
                + f" WHERE c.n = 1 OR {keep}")


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

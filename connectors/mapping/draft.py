"""`rescue data init`: draft a commented mapping from a company's files.

Each file is sampled with DuckDB (CSV delimiter and header detected, values read as text;
Parquet as stored), its columns profiled (`models.mapping.infer`: kinds, keys, dates and whether
they read day first), the file matched to a section by the words in its column names, and each
field to a column by name. The draft is YAML the analyst edits: every guess is written out, with a
comment saying what it was guessed from and what was left unmapped; where nothing can be guessed
it says ``TODO``, which the loader refuses until it is replaced.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import yaml

from models.mapping.fields import SECTION_FIELDS
from models.mapping.infer import ColumnProfile, duration_column, guess_fields, guess_roles, guess_value_map, profile_columns

SAMPLE_ROWS = 20_000
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Words in feature names that usually mean an advanced / sticky feature.
ADVANCED_WORDS = {"api", "automation", "automations", "workflow", "workflows", "integration", "integrations", "sso",
                  "admin", "advanced", "custom", "sdk", "webhook", "webhooks", "scim", "audit", "rules", "sync"}
ORDER = ("accounts", "subscriptions", "renewals", "tickets", "usage", "churn")


class DraftError(ValueError):
    """A file cannot be drafted from (missing, unreadable, unknown format); one line."""


@dataclass
class FileSample:
    path: Path
    file_format: str
    rows: int
    columns: dict[str, ColumnProfile]
    frame: pd.DataFrame


@dataclass
class Draft:
    text: str
    roles: dict[str, str]                # file -> section
    unused_files: list[str]
    todos: int
    notes: list[str] = field(default_factory=list)


def sample_file(path: Path) -> FileSample:
    """Profile one file (CSV or Parquet) from its first `SAMPLE_ROWS` rows."""
    if not path.exists():
        raise DraftError(f"{path}: file not found")
    if not path.is_file():
        raise DraftError(f"{path}: not a file")
    suffix = path.suffix.lower().lstrip(".")
    file_format = {"csv": "csv", "tsv": "csv", "txt": "csv", "parquet": "parquet", "pq": "parquet"}.get(suffix)
    if file_format is None:
        raise DraftError(f"{path}: cannot tell the format from the extension (use .csv or .parquet)")
    literal = "'" + str(path.resolve()).replace("'", "''") + "'"
    relation = f"read_csv({literal}, all_varchar = true, header = true)" if file_format == "csv" else f"read_parquet({literal})"
    try:
        con = duckdb.connect()
        try:
            frame = con.execute(f"SELECT * FROM {relation} LIMIT {SAMPLE_ROWS}").df()
            rows = int(con.execute(f"SELECT COUNT(*) FROM {relation}").fetchone()[0])
        finally:
            con.close()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DraftError(f"{path}: cannot read it as {file_format}: {first}") from None
    frame = frame.astype("string")
    return FileSample(path, file_format, rows, profile_columns(frame), frame)


def _s(value: object) -> str:
    """A YAML scalar (quoted when YAML would read it as something else)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text[:-4].strip() if text.endswith("\n...") or text.endswith(" ...") else text.removesuffix("...").strip()


def _flow(mapping: dict[str, object]) -> str:
    return "{" + ", ".join(f"{_s(k)}: {_s(v if v is not None else 'TODO')}" for k, v in mapping.items()) + "}"


def _sql_name(column: str) -> str:
    return column if _IDENT.match(column) else '"' + column.replace('"', '""') + '"'


class _Writer:
    def __init__(self, out: Path, samples: dict[str, FileSample], roles: dict[str, str]) -> None:
        self.out, self.samples, self.roles = out, samples, roles
        self.by_role = {role: samples[name] for name, role in roles.items()}
        self.lines: list[str] = []
        self.todos = 0
        self.day_first = self._day_first()

    def _day_first(self) -> bool | None:
        votes = [p.day_first for s in self.samples.values() for p in s.columns.values() if p.kind == "date"]
        first, month = votes.count(True), votes.count(False)
        return True if first > month else False if month > first else None

    def add(self, line: str) -> None:
        self.lines.append(line)

    def todo(self, line: str) -> None:
        self.todos += 1
        self.add(line)

    def rel(self, sample: FileSample) -> str:
        return Path(os.path.relpath(sample.path.resolve(), self.out.resolve().parent)).as_posix()

    def header(self) -> None:
        names = ", ".join(s.path.name for s in self.samples.values())
        self.add(f"# Source mapping drafted by `rescue data init` from {names}.")
        self.add("# Check every guess, fill the TODOs, then: rescue data check " + self.out.name)
        self.add("# Fields per section: README \"Bring your own data\"; canonical tables: docs/contracts.md.")
        self.add("version: 1")
        self.add(f"name: {_s(self.out.stem)}")
        if self.day_first is None:
            self.add("dates: {day_first: false}   # no date said which comes first (all ISO or every day <= 12): check")
        else:
            self.add(f"dates: {{day_first: {'true' if self.day_first else 'false'}}}   "
                     f"# from the dates whose {'first' if self.day_first else 'second'} number is above 12")

    def section(self, role: str) -> None:
        sample = self.by_role[role]
        columns = sample.columns
        fields = guess_fields(role, columns)
        self.add(f"{role}:")
        keys = [c for c, p in columns.items() if p.key]
        self.add(f"  # {sample.path.name}: {sample.rows:,} rows" + (f"; key {', '.join(keys)}" if keys else ""))
        self.add(f"  source: {{file: {_s(self.rel(sample))}}}")
        extra = getattr(self, f"_{role}_extra", None)
        if role == "subscriptions":
            self.add("  grace_days: 30   # a term is renewed when another subscription runs within 30 days of its end")
        if role == "usage":
            grain = "user" if "user_id" in fields else "subscription" if "subscription_id" in fields else "account"
            self.add(f"  grain: {grain}")
        self.add("  columns:")
        rules = extra(fields, columns) if extra else {}
        used = set(fields.values())
        for name in SECTION_FIELDS[role]:
            if name in rules:
                for line in rules[name]:
                    (self.todo if "TODO" in line else self.add)(line)
                continue
            if name in fields:
                self.add(f"    {name}: {self._rule(role, name, columns[fields[name]])}")
        for line in rules.get("_after", []):
            self.add(line)
        for rule_lines in rules.values():
            used |= {c for c in columns if any(re.search(rf"\b{re.escape(c)}\b", text) for text in rule_lines)}
        unused = [c for c in columns if c not in used]
        if role == "usage":
            self._features(fields, columns)
        if unused:
            self.add(f"  # not mapped: {', '.join(unused)}")

    def _rule(self, role: str, name: str, profile: ColumnProfile) -> str:
        vocabulary = {("tickets", "priority"): "priority", ("tickets", "status"): "status",
                      ("subscriptions", "billing"): "billing", ("accounts", "segment"): "segment",
                      ("renewals", "outcome"): "outcome"}.get((role, name))
        if vocabulary and profile.values:
            guessed = guess_value_map(vocabulary, profile.values)
            if all(v is not None and v == k for k, v in guessed.items()):
                return _s(profile.name)
            if any(v is None for v in guessed.values()):
                self.todos += 1
            return f"{{column: {_s(profile.name)}, values: {_flow(guessed)}}}"
        if profile.kind == "date" and profile.day_first is not None and self.day_first is not None \
                and profile.day_first != self.day_first:
            return f"{{column: {_s(profile.name)}, day_first: {'true' if profile.day_first else 'false'}}}"
        return _s(profile.name)

    def _accounts_extra(self, fields: dict[str, str], columns: dict[str, ColumnProfile]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if "subscriptions" in self.by_role:
            for name in ("arr", "plan", "seats"):
                fields.pop(name, None)
            out["_after"] = ["    # arr, plan and seats: from each account's latest subscription term"]
        if "segment" not in fields:
            seats = next((c for c, p in columns.items() if p.kind == "int" and "seats" in c.lower()), None)
            if seats:
                values = pd.to_numeric(self.by_role["accounts"].frame[seats], errors="coerce").dropna()
                low, high = (int(values.quantile(q)) for q in (0.5, 0.9)) if len(values) else (10, 100)
                col = _sql_name(seats)
                out["segment"] = [
                    f"    segment:   # no segment column: drafted from {seats} (top 10% enterprise, next 40% mid_market)",
                    f"      sql: \"CASE WHEN {col} >= {max(high, 1)} THEN 'enterprise' WHEN {col} >= {max(low, 1)} "
                    "THEN 'mid_market' ELSE 'smb' END\""]
            else:
                out["segment"] = ["    segment: TODO   # enterprise / mid_market / smb: a column with a value map, or sql"]
        return out

    def _subscriptions_extra(self, fields: dict[str, str], columns: dict[str, ColumnProfile]) -> dict[str, list[str]]:
        if "arr" in fields and "mrr" in fields:
            fields.pop("mrr")
        if "arr" not in fields and "mrr" not in fields:
            return {"arr": ["    arr: TODO   # annual recurring revenue of the term (or map mrr)"]}
        return {}

    def _tickets_extra(self, fields: dict[str, str], columns: dict[str, ColumnProfile]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, words in (("first_response_at", ("response", "reply")), ("solved_at", ("resolution", "resolve"))):
            if name not in fields and "created_at" in fields:
                found = duration_column(columns, words)
                if found:
                    out[name] = [f"    {name}: {{after: created_at, column: {_s(found[0])}, unit: {found[1]}}}"]
        if "priority" not in fields:
            out["priority"] = ["    priority: {sql: \"'normal'\"}   # TODO: no priority column found: every ticket is normal"]
        return out

    def _features(self, fields: dict[str, str], columns: dict[str, ColumnProfile]) -> None:
        if "feature" not in fields:
            return
        names = columns[fields["feature"]].values
        if not names:
            self.add("  features:   # many feature names: group them with names or patterns (globs such as api_*)")
            self.add("    core: {patterns: ['*']}")
            self.add("    advanced: []")
            return
        advanced = [n for n in names if set(re.split(r"[^a-z0-9]+", n.lower())) & ADVANCED_WORDS]
        core = [n for n in names if n not in advanced]
        self.add(f"  features:   # {len(names)} feature names; advanced guessed from their names: check")
        self.add(f"    core: [{', '.join(_s(n) for n in core)}]")
        self.add(f"    advanced: [{', '.join(_s(n) for n in advanced)}]")

    def text(self) -> str:
        self.header()
        for role in ORDER:
            if role in self.by_role and not (role == "renewals" and "subscriptions" in self.by_role):
                self.section(role)
        return "\n".join(self.lines) + "\n"


def draft_mapping(files: list[Path], out: Path) -> Draft:
    """The draft mapping text for ``files``, with paths relative to ``out``'s directory."""
    if not files:
        raise DraftError("name the export files to draft a mapping from")
    samples: dict[str, FileSample] = {}
    for path in files:
        key = path.name if path.name not in samples else str(path)
        samples[key] = sample_file(path)
    guessed = guess_roles({name: list(s.columns) for name, s in samples.items()})
    roles = {name: guessed[name] for name in samples if name in guessed}  # in the order given
    if "accounts" not in roles.values():
        raise DraftError("none of the files looks like accounts (account id, name, signup date...): "
                         "a mapping needs an accounts file")
    writer = _Writer(out, samples, roles)
    text = writer.text()
    unused = [name for name in samples if name not in roles]
    if unused:
        text += f"# not used (could not tell which table they are): {', '.join(unused)}\n"
    return Draft(text, roles, unused, writer.todos)

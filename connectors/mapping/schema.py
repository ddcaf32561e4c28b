"""The shape of a source mapping file, as pydantic models.

A mapping says where each of a company's exports lives (``sources``: CSV or Parquet files next to
the mapping, warehouse tables, SQL queries) and how its columns become the canonical fields
(`models.mapping.fields`): a plain column name, or a rule with a value map, a date format, a
duration added to another field, or a SQL expression evaluated in the warehouse. A commented
example is ``tests/companies/subscription_saas.yaml``; README "Bring your own data" explains it.

An optional ``checks:`` block sets the thresholds of the plausibility and freshness checks
(`Checks`: the fields of `models.plausibility.Thresholds`, their defaults and meanings; shares
between 0 and 1, the others at least 0). `rescue data check` judges the data with them, and
`rescue data load` records them in the manifest, where the pipeline's checks find them.

Shape errors are pydantic's (with their key paths); the cross-references between sections
(known fields, source names, grains, value maps) are checked by `connectors.mapping.loader`.
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationInfo, create_model, field_validator, model_validator

from models.mapping.dates import format_problem, timezone_problem
from models.mapping.sqltext import expression_problem, query_problem
from models.plausibility import threshold_specs

Scalar = str | bool | int | float
Unit = Literal["seconds", "minutes", "hours", "days"]
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_FILE_FORMATS = ("csv", "parquet")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Spec):
    """Where one export lives: exactly one of ``file``, ``table`` or ``query``."""

    file: str | None = Field(None, description="CSV or Parquet file, relative to the mapping file.")
    table: str | None = Field(None, description="A table in the warehouse (optionally schema.table).")
    query: str | None = Field(None, description="One SELECT run in the warehouse.")
    format: Literal["csv", "parquet"] | None = Field(None, description="File format (default: from the extension).")
    delimiter: str | None = Field(None, min_length=1, max_length=1, description="CSV delimiter (default: detected).")
    header: bool = Field(True, description="The CSV's first line names the columns.")
    null_values: list[str] = Field(default_factory=list, description="CSV texts read as empty (besides the empty text).")

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        kinds = [k for k in ("file", "table", "query") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a source is exactly one of file, table or query"
                             + (f" (got {', '.join(kinds)})" if kinds else ""))
        if self.file is None and (self.format or self.delimiter or not self.header or self.null_values):
            raise ValueError("format, delimiter, header and null_values apply to files only")
        if self.table is not None and not _TABLE.match(self.table):
            raise ValueError(f"invalid table name {self.table!r}: letters, digits, underscores, optionally schema.table")
        if self.query is not None and (problem := query_problem(self.query)):
            raise ValueError(problem)
        if self.file is not None and self.format is None and self.file_format is None:
            raise ValueError(f"cannot tell the format of {self.file!r} from its extension: set format: csv or parquet")
        return self

    @property
    def kind(self) -> str:
        return "file" if self.file is not None else "table" if self.table is not None else "query"

    @property
    def file_format(self) -> str | None:
        if self.format:
            return self.format
        suffix = (self.file or "").lower().rsplit(".", 1)[-1]
        suffix = {"tsv": "csv", "txt": "csv", "pq": "parquet"}.get(suffix, suffix)
        return suffix if suffix in _FILE_FORMATS else None

    def describe(self) -> str:
        if self.file is not None:
            return self.file
        if self.table is not None:
            return f"table {self.table}"
        return "query"


class Dates(_Spec):
    """How text dates are read unless a column says otherwise."""

    day_first: bool = Field(False, description="03/04/2025 is 3 April (else 4 March). ISO dates are always read.")
    formats: list[str] = Field(default_factory=list, description="strptime formats tried in order (instead of the defaults).")
    timezone: str = Field("UTC", description="Zone of local times in the exports; landed as UTC.")

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: list[str]) -> list[str]:
        for fmt in value:
            if problem := format_problem(fmt):
                raise ValueError(problem)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if problem := timezone_problem(value):
            raise ValueError(problem)
        return value


class Rule(_Spec):
    """How one field is filled: a column (optionally value-mapped or date-formatted), a SQL
    expression, or a duration column added to another datetime field of the same section."""

    column: str | None = Field(None, description="The source column.")
    sql: str | None = Field(None, description="A SQL expression over the source row, run in the warehouse.")
    after: str | None = Field(None, description="Another datetime field of the section; the column is a duration after it.")
    unit: Unit | None = Field(None, description="Unit of the duration column (with after).")
    values: dict[str, Scalar | None] | None = Field(None, description="Value map: source value -> canonical value (case-insensitive).")
    otherwise: Scalar | None = Field(None, description="Canonical value for any source value the value map does not list.")
    default: Scalar | None = Field(None, description="Value when the source is empty.")
    format: str | list[str] | None = Field(None, description="strptime format(s) of a text date column.")
    day_first: bool | None = Field(None, description="Overrides dates.day_first for this column.")
    timezone: str | None = Field(None, description="Overrides dates.timezone for this column.")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"column": data} if isinstance(data, str) else data

    @field_validator("values", mode="before")
    @classmethod
    def _text_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key in value:
                if isinstance(key, bool) or key is None:
                    raise ValueError(f"quote the key {key!r}: YAML reads yes/no/on/off/true/false/null unquoted "
                                     "as booleans or empty; write e.g. 'yes': true")
            return {str(k): v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if (self.column is None) == (self.sql is None):
            raise ValueError("a rule names exactly one of column or sql")
        if self.column is not None and not self.column.strip():
            raise ValueError("column is empty")
        if self.column is not None and self.column.strip().upper() == "TODO":
            raise ValueError("still TODO: name the source column (or remove the field)")
        if self.sql is not None and (problem := expression_problem(self.sql)):
            raise ValueError(problem)
        if (self.after is None) != (self.unit is None):
            raise ValueError("after and unit go together: the column is a duration in unit after another field")
        if self.after is not None and self.sql is not None:
            raise ValueError("after needs a column (the duration), not sql")
        if self.values is not None:
            keys = [k.strip().lower() for k in self.values]
            dupes = sorted({k for k in keys if keys.count(k) > 1})
            if dupes:
                raise ValueError(f"value map lists {', '.join(map(repr, dupes))} twice (keys are case-insensitive)")
            todo = [k for k, v in self.values.items() if isinstance(v, str) and v.strip().upper() == "TODO"]
            if todo:
                raise ValueError(f"still TODO: give the canonical value of {', '.join(map(repr, todo))}")
        for fmt in ([self.format] if isinstance(self.format, str) else self.format or []):
            if problem := format_problem(fmt):
                raise ValueError(problem)
        if self.timezone is not None and (problem := timezone_problem(self.timezone)):
            raise ValueError(problem)
        return self

    @property
    def has_otherwise(self) -> bool:
        return "otherwise" in self.model_fields_set

    @property
    def formats(self) -> list[str]:
        return [self.format] if isinstance(self.format, str) else list(self.format or [])


class FeatureGroup(_Spec):
    """Feature names counted in a group: exact names, globs (``api_*``) or a SQL condition."""

    names: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list, description="Globs: * any text, ? one character.")
    sql: str | None = Field(None, description="A SQL condition over the usage row.")

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, data: Any) -> Any:
        return {"names": data} if isinstance(data, list) else data

    @field_validator("sql")
    @classmethod
    def _condition(cls, value: str | None) -> str | None:
        if value is not None and (problem := expression_problem(value)):
            raise ValueError(problem)
        return value

    @property
    def empty(self) -> bool:
        return not (self.names or self.patterns or self.sql)


class Features(_Spec):
    core: FeatureGroup = Field(default_factory=FeatureGroup, description="Core workflow features (core_events).")
    advanced: FeatureGroup = Field(default_factory=FeatureGroup, description="Advanced / sticky features (advanced_events).")


class _ThresholdSpec(_Spec):
    """A threshold is a number as YAML writes one (not a boolean, not quoted text); days are
    whole where the default is."""

    @field_validator("*", mode="before")
    @classmethod
    def _number(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"a number, got {value!r}")
        if cls.model_fields[info.field_name].annotation is int and math.isfinite(value) and value != int(value):
            raise ValueError(f"a whole number of days, got {value!r}")
        return value


def _checks_model() -> type[_ThresholdSpec]:
    """`Checks`, field for field from `models.plausibility.Thresholds` (`threshold_specs`: one
    list of names, defaults and meanings): shares between 0 and 1, every other threshold at
    least 0, whole numbers of days where the default is one."""
    fields: dict[str, Any] = {}
    for spec in threshold_specs():
        fields[spec.name] = (spec.kind, Field(spec.default, description=spec.doc, allow_inf_nan=False, **spec.bounds))
    return create_model("Checks", __base__=_ThresholdSpec, __module__=__name__,
                        __doc__="Thresholds of the plausibility and freshness checks (unset: the default).", **fields)


#: The ``checks:`` block of a mapping.
Checks = _checks_model()


#: Union branch names, left out of error key paths.
BRANCHES = ("by-name", "inline")
#: A section's source: the name of an entry under ``sources``, or the source itself.
SourceRef = Annotated[
    Annotated[str, Tag("by-name")] | Annotated[Source, Tag("inline")],
    Discriminator(lambda v: "by-name" if isinstance(v, str) else "inline"),
]


class Section(_Spec):
    """One export: its source, its columns and an optional row filter."""

    source: SourceRef = Field(description="A name under sources, or the source itself.")
    columns: dict[str, Rule] = Field(description="Field name -> source column or rule.")
    where: str | None = Field(None, description="SQL condition: only rows where it holds are read.")

    @field_validator("where")
    @classmethod
    def _where(cls, value: str | None) -> str | None:
        if value is not None and (problem := expression_problem(value)):
            raise ValueError(problem)
        return value


class SubscriptionsSection(Section):
    grace_days: int = Field(30, ge=0, le=366, description="A term is renewed when a subscription continues it within this many days.")


class UsageSection(Section):
    grain: Literal["user", "subscription", "account"] = Field(description="What one usage row belongs to.")
    features: Features = Field(default_factory=Features)


class Mapping(_Spec):
    """A whole mapping file."""

    version: Literal[1] = 1
    name: str | None = Field(None, description="The company (for the manifest and messages).")
    data_end: date | None = Field(None, description="Last day of the data (default: the latest activity found).")
    dates: Dates = Field(default_factory=Dates)
    sources: dict[str, Source] = Field(default_factory=dict)
    accounts: Section
    subscriptions: SubscriptionsSection | None = None
    renewals: Section | None = None
    tickets: Section | None = None
    usage: UsageSection | None = None
    churn: Section | None = None
    checks: Checks | None = Field(None, description="Thresholds of the plausibility and freshness checks "
                                                     "(models.plausibility.Thresholds); unset: the defaults.")

    def threshold_overrides(self) -> dict[str, int | float]:
        """The thresholds the ``checks:`` block sets (only those it names)."""
        return {} if self.checks is None else self.checks.model_dump(exclude_unset=True)

    def sections(self) -> dict[str, Section]:
        """The sections present, by name, in a fixed order."""
        names = ("accounts", "subscriptions", "renewals", "tickets", "usage", "churn")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def source_of(self, section: str) -> tuple[str, Source]:
        """(display name, source) of a section."""
        spec = getattr(self, section).source
        if isinstance(spec, Source):
            return section, spec
        return spec, self.sources[spec]

"""Blocking checks on every source: its contract, its consistency with the other sources, its age.

A failing check of ERROR severity stops everything downstream in the run: bad data never reaches
routing and the rescue queue is left untouched. Three kinds of check, so that one run reports
every source's problems:

- ``<source>_contract``: the table's own Great Expectations suite (`models.quality`): empty
  table, missing columns, types (and text dates with an ambiguous day/month order), nulls,
  ranges, duplicate keys, impossible dates. It reads its own table only, so a failing accounts
  check does not keep the other tables' problems out of the run. Usage, the one source that
  grows with accounts times days, is checked in the warehouse instead (`connectors.usage_checks`:
  the same expectations and rules as SQL aggregates, counts and examples back, never the table).
  Tickets are checked as the run pulled them: in the daily run, the window its snapshot reads
  (created or solved in its 180 days, or open; `assets.sources.ticket_window`), like the usage
  checks' 120 days; in the retrain, their whole history.
- ``<source>_consistent``: the table against the others (it needs the accounts, so it runs only
  once they passed): every account reference is a known account, and the plausibility rules of
  `models.plausibility` with their thresholds: tickets and usage before the account's signup,
  usage after a churn, contradictory renewal outcomes.
- ``<source>_fresh``: the source's age at the run's instant against its limit (tickets, usage,
  the CRM; read by `connectors.freshness`, as the rescue queue reads it); a stale source blocks
  routing, or is a warning when ``RESCUE_FRESHNESS=warn`` and every case routed on it says so.
  The weekly retrain, which routes nothing, does not run these (`pipelines.jobs`).

Every check judges the sources at the run's instant (`assets.run_clock.run_now`: a replay of an
old snapshot judges what that snapshot read; rows dated after it are not its data) and refuses
only what is impossible at the current time. A failed check says what it found in its
description, which Dagster prints with the check ("did not pass. Description: '...'"), and in
its metadata: each failing column with the number of bad rows and examples, one line each.

The thresholds are the `source_checks` resource's (`SourceChecksResource`), in layers, the later
winning: the defaults of `models.plausibility.Thresholds`; the landed mapping's ``checks:``
block (`pipelines.resources` reads it from the manifest `rescue data load` wrote, and the
resource's ``origin`` says which mapping and when); and the resource's own config
(``thresholds``: in code, `source_checks_resource(overrides)`, or run config). Every check that
uses thresholds shows them, who set each, and that origin, in its metadata (``thresholds``,
``thresholds_origin``) and at the end of its description.

The renewal and usage rules take the reactivations the landed account history shows
(`models.plausibility.history_reactivations`), as `rescue data check` does: an account that
churned and came back is not a contradiction.
"""


from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field, create_model

from assets.metadata import clean
from assets.run_clock import run_now, wall_now
from assets.sources import NO_HISTORY, crm_account_history, crm_accounts, crm_renewals, product_usage_daily, support_tickets
from connectors.mapping.manifest import LandedChecks
from connectors.freshness import crm_age, landing_ages, tickets_age, usage_age
from connectors.settings import FRESHNESS_MODES, current, freshness_mode, landing_sources
from connectors.usage_checks import USAGE_CHECK_DAYS, check_usage_consistency, check_usage_contract
from connectors.warehouse import WarehouseResource
from models.contracts import ACCOUNT_HISTORY, ACCOUNTS, RENEWALS, TICKETS, Column, TableContract
from models.plausibility import (
    RULE_THRESHOLDS,
    Finding,
    Staleness,
    Thresholds,
    as_of,
    contradictory_outcomes,
    history_reactivations,
    rows_before_signup,
    threshold_specs,
    thresholds_from,
    thresholds_text,

)
from models.quality import QualityResult, validate_frame



# --------------------------------------------------------------------------- configuration


def _thresholds_config() -> type[dg.Config]:
    """`PlausibilityThresholds`, field for field from `models.plausibility.Thresholds`
    (`threshold_specs`), every field optional: unset is the layer below."""
    fields: dict[str, Any] = {}
    for spec in threshold_specs():
        fields[spec.name] = (spec.kind | None, Field(None, description=f"{spec.doc} (default {spec.default:g})", **spec.bounds))
    return create_model("PlausibilityThresholds", __base__=dg.Config, __module__=__name__,
                        __doc__="Thresholds of the plausibility and freshness checks; unset: the layer below "
                                "(the landed mapping's, else the default of models.plausibility.Thresholds).",
                        **fields)


#: One layer of thresholds: only the fields it sets count.
PlausibilityThresholds = _thresholds_config()


def _set(layer: dg.Config) -> dict[str, Any]:
    return {name: value for name, value in layer.model_dump().items() if value is not None}


class SourceChecksResource(dg.ConfigurableResource):
    """How strict the source checks are: the plausibility thresholds and what a stale source does.

    The thresholds in force are the defaults, then `mapping` (the landed mapping's ``checks:``,
    from the manifest; `origin` says which), then `thresholds` (config in code or run config).
    Run config that configures this resource replaces its whole config (Dagster does not merge
    it with the bound one): the mapping's layer is then not applied, and `origin` says defaults.
    """

    thresholds: PlausibilityThresholds = Field(default_factory=PlausibilityThresholds,
                                               description="Set in code or run config: wins over the mapping's and the defaults.")
    mapping: PlausibilityThresholds = Field(default_factory=PlausibilityThresholds,
                                            description="The landed mapping's checks: block (read from the manifest "
                                                        "rescue_data_meta when the Definitions load).")
    origin: str = Field(default="defaults", description="Where the mapping's layer came from: 'defaults' (none landed), "
                                                        "or 'mapping NAME (landed TIME)'.")
    freshness: str = Field(default="block", description="A stale source: 'block' (blocks routing) or 'warn'.")

    def get_thresholds(self) -> Thresholds:
        return thresholds_from(_set(self.thresholds), thresholds_from(_set(self.mapping)))

    def set_by(self) -> dict[str, str]:
        """Threshold -> who set it ("mapping", "resource config"); the rest are defaults."""
        return {**{name: "mapping" for name in _set(self.mapping)},
                **{name: "resource config" for name in _set(self.thresholds)}}

    def provenance(self) -> str:
        """Where the thresholds came from, in words: the origin, and what resource config set."""
        configured = list(_set(self.thresholds))
        return self.origin + (f"; resource config: {', '.join(configured)}" if configured else "")

    def freshness_severity(self) -> dg.AssetCheckSeverity:
        if self.freshness not in FRESHNESS_MODES:
            raise dg.Failure(f"source_checks.freshness={self.freshness!r} is not one of {', '.join(FRESHNESS_MODES)}")
        return dg.AssetCheckSeverity.ERROR if self.freshness == "block" else dg.AssetCheckSeverity.WARN


def source_checks_resource(overrides: Mapping[str, Any] | None = None, settings: Any = None, *,
                           landed: LandedChecks | None = None) -> SourceChecksResource:
    """The `source_checks` resource: the thresholds of the landed mapping (`landed`, from
    `connectors.mapping.manifest.landed_checks`; default: none) with `overrides` over them (config
    in code; `models.plausibility.ThresholdError` names a bad one), and the freshness mode of
    `RESCUE_FRESHNESS` (`connectors.settings.SettingError` names a bad one)."""
    landed = landed or LandedChecks()
    given = {name: value for name, value in (overrides or {}).items() if value is not None}
    tuned = thresholds_from(given)
    return SourceChecksResource(
        thresholds=PlausibilityThresholds(**{name: getattr(tuned, name) for name in given}),
        mapping=PlausibilityThresholds(**{name: getattr(thresholds_from(landed.overrides), name) for name in landed.overrides}),
        origin=landed.origin,
        freshness=freshness_mode(settings or current()),
    )


# --------------------------------------------------------------------------- the results


@dataclass
class Report:
    """What one check found: the failures (one line each), what was only noted, and metadata."""

    table: str
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    passed_parts: list[str] = field(default_factory=list)
    columns: set[str] = field(default_factory=set)
    tables_md: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    basis: str = ""  # the thresholds judged by, and where they came from

    def add_thresholds(self, source_checks: SourceChecksResource, rules: Sequence[str],
                       names: Sequence[str] | None = None) -> None:
        """Say the thresholds `rules` read (`models.plausibility.RULE_THRESHOLDS`; or just
        `names`), who set each and where they came from: in the metadata and at the end of the
        description."""
        names = names or list(dict.fromkeys(name for rule in rules for name in RULE_THRESHOLDS[rule]))
        text = thresholds_text(source_checks.get_thresholds(), names, source_checks.set_by())
        origin = source_checks.provenance()
        self.metadata["thresholds"] = dg.MetadataValue.text(text)
        self.metadata["thresholds_origin"] = dg.MetadataValue.text(origin)
        self.basis = f"thresholds from {origin}: {text}"

    def add_quality(self, res: QualityResult) -> None:
        self.metadata["rows"] = dg.MetadataValue.int(res.rows)
        self.metadata["expectations"] = dg.MetadataValue.int(res.evaluated)
        self.notes += res.notes
        if res.success:
            self.passed_parts.append(f"{res.evaluated} expectations passed on {res.rows} rows")
            return
        self.failures += [f.message for f in res.failures]
        self.columns |= {f.column for f in res.failures}
        self.tables_md.append(res.markdown().split("\n\n", 1)[0])

    def add_finding(self, finding: Finding) -> None:
        key = f"{finding.rule}_share"
        self.metadata[key] = dg.MetadataValue.float(finding.share)
        if finding.passed:
            self.passed_parts.append(f"{finding.table}.{finding.column} {finding.rule.replace('_', ' ')}: "
                                     f"{finding.bad} of {finding.total} ({finding.share:.1%}, allowed {finding.allowed_share:.1%})")
            return
        self.failures.append(finding.message)
        self.columns.add(finding.column)
        examples = "; ".join(finding.examples[:5]).replace("|", "/")
        self.tables_md.append("| column | problem | bad rows | share (allowed) | examples |\n|---|---|---|---|---|\n"
                              f"| {finding.column} | {finding.problem} | {finding.bad} of {finding.total} | "
                              f"{finding.share:.1%} ({finding.allowed_share:.1%}) | {examples} |")

    def summary(self) -> str:
        notes = "".join(f"; {n}" for n in [*self.notes, *([self.basis] if self.basis else [])])
        if not self.failures:
            return f"{self.table}: " + ("; ".join(self.passed_parts) or "passed") + notes
        if len(self.failures) == 1 and self.failures[0].startswith("source table "):
            return self.failures[0] + notes
        return f"{self.table}: {len(self.failures)} problem(s): " + "; ".join(self.failures) + notes

    def result(self, severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
        metadata = {**self.metadata, "failed": dg.MetadataValue.int(len(self.failures)),
                    "summary": dg.MetadataValue.text(self.summary())}
        if self.notes:
            metadata["not_checked"] = dg.MetadataValue.text("; ".join(self.notes))
        if self.failures:
            metadata["failures"] = dg.MetadataValue.md("\n\n".join(self.tables_md) or "\n".join(self.failures))
            metadata["failing_columns"] = dg.MetadataValue.text(", ".join(sorted(self.columns)))
        return dg.AssetCheckResult(passed=not self.failures, metadata=clean(metadata), severity=severity,
                                   description=self.summary())


def _instants(context: dg.AssetCheckExecutionContext | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(the run's instant, the current instant) as naive UTC timestamps."""
    wall = pd.Timestamp(wall_now()).tz_convert("UTC").tz_localize(None)
    if context is None:  # invoked directly, without a run: judged now
        return wall, wall
    return pd.Timestamp(run_now(context)).tz_convert("UTC").tz_localize(None), wall


def _contract(df: pd.DataFrame, contract: TableContract, now: pd.Timestamp, wall: pd.Timestamp,
              known: pd.DataFrame | None = None) -> QualityResult:
    ids = None if known is None or "account_id" not in known.columns else known["account_id"]
    return validate_frame(df, contract, known_accounts=ids, now=now, wall_clock=wall)


def _references(df: pd.DataFrame, contract: TableContract, accounts: pd.DataFrame, now: pd.Timestamp,
                wall: pd.Timestamp) -> QualityResult:
    """The contract's account references only: the rest (a missing or null account_id, its
    length) is the table's own check."""
    if "account_id" not in df.columns:
        return QualityResult(contract.name, len(df), 0, notes=["account_id references not checked: the column is missing "
                                                               "(its own check says so)"])
    reference_only = TableContract(contract.name, contract.description, (Column("account_id", "str", nullable=True),),
                                   primary_key=(), references=contract.references, may_be_empty=True)
    return _contract(df[["account_id"]], reference_only, now, wall, accounts)


# --------------------------------------------------------------------------- contracts


@dg.asset_check(asset=crm_accounts, blocking=True, description="Accounts satisfy the accounts contract (GX suite).")
def crm_accounts_contract(context: dg.AssetCheckExecutionContext, crm_accounts: pd.DataFrame) -> dg.AssetCheckResult:
    report = Report("accounts")
    report.add_quality(_contract(crm_accounts, ACCOUNTS, *_instants(context)))
    return report.result()


@dg.asset_check(asset=crm_renewals, blocking=True, description="Renewals satisfy the renewals contract (GX suite).")
def crm_renewals_contract(context: dg.AssetCheckExecutionContext, crm_renewals: pd.DataFrame) -> dg.AssetCheckResult:
    report = Report("renewals")
    report.add_quality(_contract(crm_renewals, RENEWALS, *_instants(context)))
    return report.result()


@dg.asset_check(asset=support_tickets, blocking=True,
                description="Tickets satisfy the tickets contract and have possible dates (GX suite).")
def support_tickets_contract(context: dg.AssetCheckExecutionContext, support_tickets: pd.DataFrame) -> dg.AssetCheckResult:
    report = Report("tickets")
    report.add_quality(_contract(support_tickets, TICKETS, *_instants(context)))
    return report.result()


@dg.asset_check(asset=product_usage_daily, blocking=True,
                description=f"The last {USAGE_CHECK_DAYS} days of usage satisfy the usage contract "
                            "(in the warehouse: counts and examples, never the table).")
def product_usage_daily_contract(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    report = Report("usage_daily")
    report.add_quality(check_usage_contract(warehouse.get_client(), *_instants(context)))
    return report.result()


# --------------------------------------------------------------------------- consistency


def _reactivations(renewals: pd.DataFrame, history: pd.DataFrame | None, now: pd.Timestamp) -> pd.DataFrame:
    """The returns the landed account history shows, as known at the run's instant."""
    known = None if history is None else as_of(history, "valid_from", now)
    return history_reactivations(renewals, known)


@dg.asset_check(
    asset=crm_renewals, blocking=True,
    additional_ins={"crm_accounts": dg.AssetIn("crm_accounts"), "crm_account_history": dg.AssetIn("crm_account_history")},
    description="Renewals reference known accounts and their outcomes do not contradict each other "
                "(a return the account history shows is a reactivation, not a contradiction).",
)
def crm_renewals_consistent(context: dg.AssetCheckExecutionContext, source_checks: SourceChecksResource,
                            crm_renewals: pd.DataFrame, crm_accounts: pd.DataFrame,
                            crm_account_history: pd.DataFrame | None) -> dg.AssetCheckResult:
    now, wall = _instants(context)
    report = Report("renewals")
    report.add_quality(_references(crm_renewals, RENEWALS, crm_accounts, now, wall))
    renewals = as_of(crm_renewals, "closed_at", now)
    report.add_finding(contradictory_outcomes(renewals, source_checks.get_thresholds(),
                                              reactivations=_reactivations(renewals, crm_account_history, now)))
    report.add_thresholds(source_checks, ["contradictory_outcomes"])
    return report.result()


@dg.asset_check(asset=crm_account_history, blocking=True,
                description="The account history, where one is landed, satisfies its contract (GX suite).")
def crm_account_history_contract(context: dg.AssetCheckExecutionContext,
                                 crm_account_history: pd.DataFrame | None) -> dg.AssetCheckResult:
    if crm_account_history is None:
        return dg.AssetCheckResult(passed=True, description=NO_HISTORY, metadata={"landed": False})
    report = Report("account_history")
    report.add_quality(_contract(crm_account_history, ACCOUNT_HISTORY, *_instants(context)))
    return report.result()


@dg.asset_check(
    asset=crm_account_history, blocking=True, additional_ins={"crm_accounts": dg.AssetIn("crm_accounts")},
    description="The account history, where one is landed, references known accounts.",
)
def crm_account_history_consistent(context: dg.AssetCheckExecutionContext, crm_account_history: pd.DataFrame | None,
                                   crm_accounts: pd.DataFrame) -> dg.AssetCheckResult:
    if crm_account_history is None:
        return dg.AssetCheckResult(passed=True, description=NO_HISTORY, metadata={"landed": False})
    now, wall = _instants(context)
    report = Report("account_history")
    report.add_quality(_references(crm_account_history, ACCOUNT_HISTORY, crm_accounts, now, wall))
    return report.result()


@dg.asset_check(

    asset=support_tickets, blocking=True, additional_ins={"crm_accounts": dg.AssetIn("crm_accounts")},
    description="Tickets reference known accounts and are not dated before the account's signup.",
)
def support_tickets_consistent(context: dg.AssetCheckExecutionContext, source_checks: SourceChecksResource,
                               support_tickets: pd.DataFrame, crm_accounts: pd.DataFrame) -> dg.AssetCheckResult:
    now, wall = _instants(context)
    report = Report("tickets")
    report.add_quality(_references(support_tickets, TICKETS, crm_accounts, now, wall))
    tickets = as_of(support_tickets, "created_at", now)
    report.add_finding(rows_before_signup(tickets, "tickets", "created_at", crm_accounts,
                                          source_checks.get_thresholds(), key="ticket_id"))
    report.add_thresholds(source_checks, ["before_signup"])
    return report.result()


@dg.asset_check(
    asset=product_usage_daily, blocking=True,
    additional_ins={"crm_accounts": dg.AssetIn("crm_accounts"), "crm_renewals": dg.AssetIn("crm_renewals"),
                    "crm_account_history": dg.AssetIn("crm_account_history")},
    description=f"The last {USAGE_CHECK_DAYS} days of usage reference known accounts, and are neither before "
                "the account's signup nor after its churn (unless it came back).",
)
def product_usage_daily_consistent(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                                   source_checks: SourceChecksResource, crm_accounts: pd.DataFrame,
                                   crm_renewals: pd.DataFrame,
                                   crm_account_history: pd.DataFrame | None) -> dg.AssetCheckResult:
    now, wall = _instants(context)
    renewals = as_of(crm_renewals, "closed_at", now)
    found = check_usage_consistency(warehouse.get_client(), now, wall, crm_accounts, renewals,
                                    source_checks.get_thresholds(),
                                    reactivations=_reactivations(renewals, crm_account_history, now))
    report = Report("usage_daily")
    report.add_quality(found.references)
    report.add_finding(found.before_signup)
    report.add_finding(found.after_churn)
    report.add_thresholds(source_checks, ["before_signup", "after_churn"])
    return report.result()


# --------------------------------------------------------------------------- freshness


def _not_dated(source_checks: SourceChecksResource, table: str, source: str) -> dg.AssetCheckResult:
    """An empty source is not dated here: its contract check fails on it, by name."""
    report = Report(table, notes=[f"not dated: source table {source} is empty (its own check says so)"])
    return report.result(source_checks.freshness_severity())


def _fresh(source_checks: SourceChecksResource, table: str, age: Staleness | None, source: str,
           landed: Sequence[Staleness] = (), empty: str = "") -> dg.AssetCheckResult:
    """The source's `age` (None: the source table `empty` is empty, not dated here: its contract
    check fails on it, by name) and the age of each landed system feeding it (`landed`,
    `connectors.freshness.landing_ages`): every stale one is a failure."""
    if age is None and not landed:
        return _not_dated(source_checks, table, empty)
    report = Report(table)
    # a source dated by its rows is allowed its quiet spells; a load time has its table's limit
    dated_by_rows = age is not None and age.basis != "last load"
    report.add_thresholds(source_checks, [f"{source}_fresh"], None if dated_by_rows else [f"{source}_max_age_days"])
    if age is None:
        report.notes.append(f"not dated: source table {empty} is empty (its own check says so)")
    else:
        report.metadata["age_days"] = age.age_days  # None (not dated) shows as a dash (`assets.metadata`)
        report.metadata["max_age_days"] = dg.MetadataValue.float(age.max_age_days)
    for one in landed:
        report.metadata[f"{one.table.replace(' ', '_')}_age_days"] = one.age_days
    for one in [*([age] if age is not None else []), *landed]:
        if one.stale:
            report.failures.append(one.message)
            report.columns.add(one.basis)
        else:  # the source's own age reads as before ("tickets: fresh, ..." without the name twice)
            report.passed_parts.append(one.message.split(": ", 1)[1] if one is age else one.message)
    return report.result(source_checks.freshness_severity())


@dg.asset_check(asset=support_tickets, blocking=True,
                description="The newest ticket is recent enough at the run's instant (freshness).")
def support_tickets_fresh(context: dg.AssetCheckExecutionContext, source_checks: SourceChecksResource,
                          warehouse: WarehouseResource, support_tickets: pd.DataFrame) -> dg.AssetCheckResult:
    now, _ = _instants(context)
    thresholds = source_checks.get_thresholds()
    landed = landing_ages(warehouse.get_client(), now, thresholds, feed="tickets") if landing_sources() else []
    return _fresh(source_checks, "tickets", tickets_age(support_tickets, now, thresholds), "tickets", landed, "tickets")


@dg.asset_check(asset=product_usage_daily, blocking=True,
                description="The newest usage day is recent enough at the run's instant (freshness).")
def product_usage_daily_fresh(context: dg.AssetCheckExecutionContext, source_checks: SourceChecksResource,
                              warehouse: WarehouseResource) -> dg.AssetCheckResult:
    now, _ = _instants(context)
    age = usage_age(warehouse.get_client(), now, source_checks.get_thresholds())
    return _fresh(source_checks, "usage_daily", age, "usage", empty="usage_daily")


@dg.asset_check(
    # on the renewals, reading the accounts, as every cross-table check does (a check on the
    # accounts reading the renewals would wait for the renewals' checks, which wait for it)
    asset=crm_renewals, blocking=True, additional_ins={"crm_accounts": dg.AssetIn("crm_accounts")},
    description="The CRM is recent enough at the run's instant: its last load, else its newest signup or closed renewal (freshness).",
)
def crm_renewals_fresh(context: dg.AssetCheckExecutionContext, source_checks: SourceChecksResource,
                       warehouse: WarehouseResource, crm_renewals: pd.DataFrame,
                       crm_accounts: pd.DataFrame) -> dg.AssetCheckResult:
    now, _ = _instants(context)
    client, thresholds = warehouse.get_client(), source_checks.get_thresholds()
    landed = landing_ages(client, now, thresholds, feed="crm") if landing_sources() else []
    return _fresh(source_checks, "crm", crm_age(client, crm_accounts, crm_renewals, now, thresholds), "crm", landed,
                  "renewals")


contract_checks = [crm_accounts_contract, crm_renewals_contract, crm_account_history_contract, support_tickets_contract,
                   product_usage_daily_contract]
consistency_checks = [crm_renewals_consistent, crm_account_history_consistent, support_tickets_consistent,
                      product_usage_daily_consistent]
freshness_checks = [support_tickets_fresh, product_usage_daily_fresh, crm_renewals_fresh]
source_checks = [*contract_checks, *consistency_checks, *freshness_checks]


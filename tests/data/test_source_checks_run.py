"""The source checks as Dagster runs them, on a company's own history (2023-2024, not the demo
world): one run reports every source's problems; a failed check says what it found in its own
description; implausible data (tickets before signup, usage after churn, contradictory
outcomes), a stale source and ambiguous dates block; the checks judge at the run's instant
(`RESCUE_NOW`, a replay); the thresholds are the `source_checks` resource's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from assets.quality import PlausibilityThresholds, SourceChecksResource, source_checks_resource
from connectors.mapping.manifest import LandedChecks
from connectors.settings import SettingError, current
from models.plausibility import Thresholds, ThresholdError
from tests.data.source_runs import RUN_AT, company_sources, run_sources
from tests.factories import company_history
from tests.faults.conftest import assert_clean_failure

AT = {"rescue/now": RUN_AT}


@pytest.fixture(scope="module")
def history() -> dict[str, pd.DataFrame]:
    return company_history()


@pytest.fixture(scope="module")
def sources(history) -> dict[str, pd.DataFrame]:
    return company_sources(history)


def _signups_late(sources: dict, share: float = 0.6, days: int = 400) -> dict:
    """The CRM export dated most signups a year late: their tickets and usage come before them."""
    accounts = sources["accounts"].copy()
    late = accounts.index[: int(len(accounts) * share)]
    accounts.loc[late, "created_at"] = accounts.loc[late, "created_at"] + pd.Timedelta(days=days)
    return {**sources, "accounts": accounts}


def test_one_run_reports_every_sources_own_problems(tmp_path, sources):
    accounts = sources["accounts"].astype({"arr": object})
    accounts.loc[[1, 2], "arr"] = -10.0
    tickets = sources["tickets"].copy()
    tickets.loc[[3, 4, 5], "priority"] = "whenever"
    renewals = sources["renewals"].copy()
    renewals.loc[0, "outcome"] = "maybe"
    events = sources["events"].copy()
    events.loc[0, "occurred_at"] = pd.Timestamp("2099-01-01")  # beyond the current time
    run = run_sources(tmp_path, {"accounts": accounts, "tickets": tickets, "renewals": renewals, "events": events}, tags=AT)
    assert not run.result.success and run.ran == []
    # every table's own check ran, with the accounts failing too: all four problems in one run
    assert sorted(run.failed()) == ["crm_accounts_contract", "crm_renewals_contract", "product_usage_daily_contract",
                                    "support_tickets_contract"]
    expected = {
        "crm_accounts_contract": ["accounts.arr", "2 row(s)", "outside its range", "C-0001"],
        "support_tickets_contract": ["tickets.priority", "3 row(s)", "not one of urgent", "'whenever'"],
        "crm_renewals_contract": ["renewals.outcome", "1 row(s)", "not one of renewed, churned, open", "'maybe'"],
        "product_usage_daily_contract": ["usage_daily.date", "1 row(s)", "in the future", "2099-01-01"],
    }
    for check, names in expected.items():
        # the description Dagster prints with the check, and the metadata, name column, count, example
        assert_clean_failure(run.evals[check].description, names=names)
        assert run.evals[check].description == run.summary(check)
        assert run.evals[check].metadata["failing_columns"].value
    # Dagster's own event line (what `dagster job execute` prints) is no longer just "did not pass"
    lines = [e.message for e in run.events if e.event_type_value == "ASSET_CHECK_EVALUATION" and "did not pass" in e.message]
    assert len(lines) == 4 and all("Description: '" in line and "row(s)" in line for line in lines)
    # the cross-table checks wait for the accounts: they do not blame their tables for them
    assert not {"crm_renewals_consistent", "support_tickets_consistent", "product_usage_daily_consistent"} & set(run.evals)


def test_the_company_history_is_plausible_and_fresh(tmp_path, sources):
    run = run_sources(tmp_path, sources, tags=AT)
    assert run.result.success, [run.summary(c) for c in run.failed()]
    assert "before signup: 0 of" in run.summary("support_tickets_consistent")
    assert "after churn: 0 of" in run.summary("product_usage_daily_consistent")
    assert "contradictory outcomes: 0 of" in run.summary("crm_renewals_consistent")
    assert "tickets: fresh, newest row 2024-06-02 09:00 UTC is 0.9 days old" in run.summary("support_tickets_fresh")


def test_tickets_and_usage_before_signup_block(tmp_path, sources):
    run = run_sources(tmp_path, _signups_late(sources), tags=AT)
    assert not run.result.success and run.ran == []
    assert sorted(run.failed()) == ["product_usage_daily_consistent", "support_tickets_consistent"]
    assert_clean_failure(run.evals["support_tickets_consistent"].description,
                         names=["tickets.created_at", "row(s) (", "more than 30 days before the account's signup",
                                "(allowed 2.0%)", "e.g. ticket_id Z"])
    assert_clean_failure(run.evals["product_usage_daily_consistent"].description,
                         names=["usage_daily.date", "before the account's signup", "e.g. account_id C-"])
    share = run.evals["support_tickets_consistent"].metadata["before_signup_share"].value
    assert 0.3 < share < 1


def test_usage_after_churn_blocks(tmp_path, sources, history):
    churned = history["renewals"][(history["renewals"]["outcome"] == "churned")
                                  & (history["renewals"]["renewal_date"] < pd.Timestamp("2024-05-01"))]
    assert len(churned) >= 1
    # the product kept sending events of the churned accounts (a test tenant, a shared login)
    ghosts = pd.DataFrame([{"account_id": a, "user_id": f"{a}-ghost", "occurred_at": day + pd.Timedelta(hours=11),
                            "feature": "core", "quantity": 1}
                           for a in churned["account_id"] for day in pd.date_range("2024-04-01", "2024-06-02")])
    run = run_sources(tmp_path, {**sources, "events": pd.concat([sources["events"], ghosts], ignore_index=True)}, tags=AT)
    assert run.failed() == ["product_usage_daily_consistent"]
    assert_clean_failure(run.evals["product_usage_daily_consistent"].description,
                         names=["usage_daily.date", "after the account churned", "no reactivation", "churned 20"])


def test_contradictory_outcomes_block(tmp_path, sources):
    renewals = sources["renewals"].copy()
    closed = renewals[renewals["outcome"].isin(["renewed", "churned"])
                      & (renewals["closed_at"] < pd.Timestamp("2024-06-01"))]
    # the same terms both churned and renewed (a duplicate opportunity closed lost)
    twins = closed[closed["outcome"] == "renewed"].head(3).assign(
        renewal_id=lambda d: d["renewal_id"] + "-dup", outcome="churned")
    run = run_sources(tmp_path, {**sources, "renewals": pd.concat([renewals, twins], ignore_index=True)}, tags=AT)
    assert run.failed() == ["crm_renewals_consistent"]
    assert_clean_failure(run.evals["crm_renewals_consistent"].description,
                         names=["renewals.outcome", "6 of", "contradicting another outcome", "is both churned and renewed"])


def test_a_stale_source_blocks_routing_or_warns(tmp_path, sources):
    # the ticket export stopped on 2024-05-10
    stopped = sources["tickets"][sources["tickets"]["created_at"] < pd.Timestamp("2024-05-10")]
    run = run_sources(tmp_path / "block", {**sources, "tickets": stopped}, tags=AT)
    assert run.failed() == ["support_tickets_fresh"] and run.ran == []
    line = run.evals["support_tickets_fresh"].description
    # a company this size files a ticket every day or two: its own quiet spells stretch the 3 days, not to 25
    assert_clean_failure(line, names=["tickets: stale", "newest row 2024-05-09 09:00 UTC is 24.9 days old at the run's "
                                      "instant 2024-06-03 06:00 UTC", "(allowed 10.9 days: 3, or longer for a source of"])
    assert "\n" not in line
    # RESCUE_FRESHNESS=warn: the same line as a warning, and the run goes on
    warn = run_sources(tmp_path / "warn", {**sources, "tickets": stopped}, tags=AT,
                       checks=source_checks_resource(settings=current({"RESCUE_FRESHNESS": "warn"})))
    assert warn.result.success and warn.ran == ["downstream_of_sources"]
    assert warn.failed() == ["support_tickets_fresh"]
    assert warn.evals["support_tickets_fresh"].severity.value == "WARN"
    with pytest.raises(SettingError, match="RESCUE_FRESHNESS='sometimes' is not one of block, warn"):
        source_checks_resource(settings=current({"RESCUE_FRESHNESS": "sometimes"}))


def test_the_crm_is_dated_by_its_last_load_when_the_manifest_has_one(tmp_path, sources):
    # no signup and no closed renewal in the last months: stale by its rows...
    quiet = {**sources, "renewals": sources["renewals"].assign(
        closed_at=lambda d: d["closed_at"].where(d["closed_at"] < pd.Timestamp("2024-01-01")),
        outcome=lambda d: d["outcome"].where(d["closed_at"] < pd.Timestamp("2024-01-01"), "open"))}
    run = run_sources(tmp_path / "rows", quiet, tags=AT)
    assert run.failed() == ["crm_renewals_fresh"]
    assert "crm: stale, newest signup or closed renewal 2023-" in run.evals["crm_renewals_fresh"].description
    # ... fresh by the load `rescue data load` recorded the day before the run
    manifest = pd.DataFrame({"mapping_path": ["company.yaml"], "landed_at": [pd.Timestamp("2024-06-02 22:00")],
                             "tables": ["raw_crm_accounts,raw_crm_renewals,raw_support_tickets,usage_daily"]})
    run = run_sources(tmp_path / "manifest", quiet, tags=AT, extra={"rescue_data_meta": manifest})
    assert run.result.success, [run.summary(c) for c in run.failed()]
    assert "crm: fresh, last load 2024-06-02 22:00 UTC" in run.summary("crm_renewals_fresh")


def test_ambiguous_day_month_dates_fail_the_tables_own_check(tmp_path, sources):
    # a dd-mm-yyyy ticket export: read month-first, 03-04-2024 would be March 4th
    tickets = sources["tickets"].astype({"created_at": object})
    tickets["created_at"] = sources["tickets"]["created_at"].dt.strftime("%d-%m-%Y %H:%M")
    run = run_sources(tmp_path, {**sources, "tickets": tickets}, tags=AT)
    assert "support_tickets_contract" in run.failed() and run.ran == []
    assert_clean_failure(run.evals["support_tickets_contract"].description,
                         names=["tickets.created_at", "ambiguous day/month order", "declare the column's date format or day_first"])


def test_rescue_now_pins_the_checks_clock_and_a_replay_ignores_later_rows(tmp_path, sources, monkeypatch):
    # without a pin, the run judges the 2024 history against today: every source is stale
    live = run_sources(tmp_path / "live", sources)
    assert {"support_tickets_fresh", "product_usage_daily_fresh", "crm_renewals_fresh"} <= set(live.failed())
    monkeypatch.setenv("RESCUE_NOW", RUN_AT)
    pinned = run_sources(tmp_path / "pinned", sources)
    assert pinned.result.success, [pinned.summary(c) for c in pinned.failed()]
    # a replay of 2024-06-03 on exports that run to the end of 2024: the later rows are not its data
    monkeypatch.delenv("RESCUE_NOW")
    later = {**sources, "tickets": company_history()["tickets"]}
    assert later["tickets"]["created_at"].max() > pd.Timestamp("2024-12-01")
    replay = run_sources(tmp_path / "replay", later, tags={"dagster/partition": "2024-06-03"})
    assert replay.result.success, [replay.summary(c) for c in replay.failed()]
    assert "row(s) after the run's instant (2024-06-03 06:00 UTC), not this snapshot's: ignored" \
        in replay.summary("support_tickets_contract")


def test_the_thresholds_are_the_resources_and_a_company_can_tune_them(tmp_path, sources):
    # one list of names: the config's fields are the dataclass's, unset until a layer sets them
    assert list(PlausibilityThresholds.model_fields) == [f.name for f in dataclasses.fields(Thresholds)]
    assert set(PlausibilityThresholds().model_dump().values()) == {None}
    plain = SourceChecksResource()
    assert plain.get_thresholds() == Thresholds() and plain.provenance() == "defaults" and plain.set_by() == {}
    lenient = source_checks_resource({"max_share_before_signup": 0.95}, settings=current({}))
    assert lenient.get_thresholds().max_share_before_signup == 0.95 and lenient.freshness == "block"
    assert lenient.provenance() == "defaults; resource config: max_share_before_signup"
    run = run_sources(tmp_path, _signups_late(sources), tags=AT, checks=lenient)
    assert run.result.success, [run.summary(c) for c in run.failed()]
    summary = run.summary("support_tickets_consistent")
    assert "allowed 95.0%)" in summary
    assert summary.endswith("; thresholds from defaults; resource config: max_share_before_signup: "
                            "max_share_before_signup 0.95 (resource config), signup_grace_days 30")
    check = run.evals["support_tickets_consistent"]
    assert check.metadata["thresholds"].value == "max_share_before_signup 0.95 (resource config), signup_grace_days 30"
    assert check.metadata["thresholds_origin"].value == "defaults; resource config: max_share_before_signup"
    assert check.description == summary
    with pytest.raises(ThresholdError, match="unknown plausibility threshold 'max_tickets'"):
        source_checks_resource({"max_tickets": 3}, settings=current({}))


def test_the_landed_mappings_thresholds_sit_between_the_defaults_and_the_resource_config(tmp_path, sources):
    landed = LandedChecks({"max_share_before_signup": 0.9, "signup_grace_days": 10}, "mapping acme (landed 2024-06-02 22:00 UTC)")
    mapped = source_checks_resource(settings=current({}), landed=landed)
    assert mapped.get_thresholds() == Thresholds(max_share_before_signup=0.9, signup_grace_days=10)
    assert mapped.origin == mapped.provenance() == "mapping acme (landed 2024-06-02 22:00 UTC)"
    run = run_sources(tmp_path / "mapped", _signups_late(sources), tags=AT, checks=mapped)
    assert run.result.success, [run.summary(c) for c in run.failed()]
    assert run.evals["support_tickets_consistent"].metadata["thresholds"].value == \
        "max_share_before_signup 0.9 (mapping), signup_grace_days 10 (mapping)"
    assert "thresholds from mapping acme (landed 2024-06-02 22:00 UTC): " in run.summary("support_tickets_consistent")
    # resource config in code wins over the mapping, key by key
    strict = source_checks_resource({"max_share_before_signup": 0.02}, settings=current({}), landed=landed)
    assert strict.get_thresholds() == Thresholds(max_share_before_signup=0.02, signup_grace_days=10)
    assert strict.set_by() == {"max_share_before_signup": "resource config", "signup_grace_days": "mapping"}
    run = run_sources(tmp_path / "strict", _signups_late(sources), tags=AT, checks=strict)
    assert "support_tickets_consistent" in run.failed()
    assert_clean_failure(run.evals["support_tickets_consistent"].description,
                         names=["tickets.created_at", "allowed 2.0%", "max_share_before_signup 0.02 (resource config)",
                                "signup_grace_days 10 (mapping)",
                                "from mapping acme (landed 2024-06-02 22:00 UTC); resource config: max_share_before_signup"])


def test_an_empty_table_is_not_dated_by_its_freshness_check(tmp_path, sources):
    run = run_sources(tmp_path, {**sources, "tickets": sources["tickets"].head(0)}, tags=AT)
    assert run.failed() == ["support_tickets_contract"]
    assert "not dated: source table tickets is empty" in run.summary("support_tickets_fresh")


def test_numbers_never_seen_by_the_rules_stay_the_contracts(tmp_path, sources):
    """An infinite ARR fails the accounts' contract; the rules that read accounts do not run on it."""
    accounts = sources["accounts"].astype({"arr": object})
    accounts.loc[0, "arr"] = np.inf
    run = run_sources(tmp_path, {**sources, "accounts": accounts}, tags=AT)
    assert run.failed() == ["crm_accounts_contract"]

"""Source mappings without a warehouse: SQL text rules, date formats and day-first evidence, the
guesses behind `rescue data init`, and the loader's errors (one per problem, with its key path)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

from connectors.mapping.loader import MAX_MAPPING_BYTES, MappingError, load_mapping, parse_mapping
from models.mapping.dates import day_first_evidence, default_formats, format_problem, guess_day_first, looks_like_dates
from models.mapping.infer import guess_fields, guess_roles, guess_value_map, profile_columns
from models.mapping.sqltext import expression_problem, glob_to_like, query_problem

# ------------------------------------------------------------------------------ SQL text


@pytest.mark.parametrize("sql", [
    "CASE WHEN seats >= 150 THEN 'enterprise' ELSE 'smb' END",
    "status = 'deleted'",                      # a keyword inside a literal is fine
    '"Drop Date" IS NOT NULL',                 # ... and inside a quoted identifier
    "12 * mrr_amount",
    "COALESCE(plan, 'none') || ' plan'",
])
def test_single_expressions_are_accepted(sql):
    assert expression_problem(sql) is None


@pytest.mark.parametrize("sql, why", [
    ("1; DROP TABLE raw_crm_accounts", "no ';'"),
    ("DROP TABLE raw_crm_accounts", "DROP"),
    ("seats -- comment", "comments"),
    ("seats /* x */", "comments"),
    ("(seats + 1", "parentheses"),
    ("'open", "quote"),
    ("x IN (SELECT 1); DELETE FROM t", "no ';'"),
    ("", "empty"),
])
def test_statements_and_ddl_are_refused(sql, why):
    assert why in expression_problem(sql)


def test_queries_are_one_select():
    assert query_problem("SELECT * FROM churn WHERE reason <> 'delete me'") is None
    assert query_problem("WITH x AS (SELECT 1 AS a) SELECT a FROM x") is None
    assert "start with SELECT" in query_problem("VALUES (1)")
    assert "DELETE" in query_problem("SELECT 1 FROM t WHERE EXISTS (DELETE FROM t)")
    assert "no ';'" in query_problem("SELECT 1; SELECT 2")


def test_feature_globs_become_like_patterns():
    assert glob_to_like("api_*") == "api\\_%"
    assert glob_to_like("report?") == "report_"
    assert glob_to_like("100%") == "100\\%"


# ---------------------------------------------------------------------------------- dates


def test_date_formats_are_checked():
    assert format_problem("%d/%m/%Y %H:%M") is None
    assert "unknown strptime directive" in format_problem("%d/%m/%Q")
    assert "needs at least a day" in format_problem("%H:%M")
    assert default_formats(True)[0] == "%d/%m/%Y" and default_formats(False)[0] == "%m/%d/%Y"


def test_day_first_evidence():
    assert day_first_evidence(["23/04/2026", "03/04/2026", "04/23/2026", "2026-04-23"]) == (1, 1, 1)
    assert guess_day_first(["23/04/2026", "01/02/2026"]) is True
    assert guess_day_first(["04/23/2026"]) is False
    assert guess_day_first(["01/02/2026", "2026-04-23"]) is None
    assert looks_like_dates(["23/04/2026", "2026-04-23T10:00:00Z", "", "n/a"]) == pytest.approx(2 / 3)


# ------------------------------------------------------------------------------- inference


def test_profiles_find_kinds_keys_and_day_first_dates():
    frame = pd.DataFrame({
        "Account ID": ["A1", "A2", "A3"], "signup_date": ["23/04/2025", "01/02/2025", "15/12/2024"],
        "seats": ["10", "250", "3"], "is_trial": ["True", "False", "False"], "country": ["DE", "FR", "DE"],
    }).astype("string")
    prof = profile_columns(frame)
    assert prof["Account ID"].key and prof["Account ID"].kind == "text"
    assert prof["signup_date"].kind == "date" and prof["signup_date"].day_first is True
    assert prof["seats"].kind == "int" and prof["is_trial"].kind == "bool" and not prof["seats"].key
    assert guess_fields("accounts", prof) == {"account_id": "Account ID", "region": "country", "seats": "seats",
                                               "created_at": "signup_date"}


def test_roles_are_guessed_from_column_names_one_file_each():
    roles = guess_roles({
        "a.csv": ["account_id", "account_name", "industry", "country", "signup_date"],
        "b.csv": ["subscription_id", "account_id", "start_date", "end_date", "mrr_amount", "billing_frequency"],
        "c.csv": ["usage_id", "subscription_id", "usage_date", "feature_name", "usage_count"],
        "d.csv": ["ticket_id", "account_id", "submitted_at", "priority", "satisfaction_score"],
        "e.csv": ["account_id", "churn_date", "reason_code", "refund_amount_usd"],
        "f.csv": ["foo", "bar"],
    })
    assert roles == {"a.csv": "accounts", "b.csv": "subscriptions", "c.csv": "usage", "d.csv": "tickets", "e.csv": "churn"}


def test_value_maps_are_guessed_only_when_safe():
    assert guess_value_map("priority", ["Blocker", "P2", "medium", "Low", "weird"]) == {
        "Blocker": "urgent", "P2": "high", "medium": "normal", "Low": "low", "weird": None}
    assert guess_value_map("billing", ["Monthly", "Yearly"]) == {"Monthly": "monthly", "Yearly": "annual"}


# ---------------------------------------------------------------------------------- loader

BASE = """\
version: 1
accounts:
  source: {table: accounts}
  columns: {account_id: id, segment: {sql: "'smb'"}, arr: arr, seats: seats, created_at: signup}
renewals:
  source: {table: renewals}
  columns: {account_id: acct, renewal_date: due, amount: amount, outcome: result}
"""


def _problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(MappingError) as info:
        parse_mapping(textwrap.dedent(text), source="m.yaml")
    return info.value.problems


def test_a_valid_mapping_loads_with_a_stable_hash():
    first = parse_mapping(BASE, source="m.yaml")
    again = parse_mapping("# a comment\n" + BASE.replace("version: 1\n", "version: 1   # still 1\n"), source="m.yaml")
    assert first.content_hash == again.content_hash and len(first.content_hash) == 64


@pytest.mark.parametrize("edit, path, why", [
    (("arr: arr", "arr: arr, prioirty: p"), "accounts.columns.prioirty", "unknown field"),
    (("seats: seats, ", ""), "accounts.columns.seats", "required"),
    (("id, segment", "TODO, segment"), "accounts.columns.account_id", "still TODO"),
    (("{sql: \"'smb'\"}", "{sql: \"'smb'; DROP TABLE x\"}"), "accounts.columns.segment", "no ';'"),
    (("{sql: \"'smb'\"}", "{column: size, values: {big: large}}"), "accounts.columns.segment.values", "not canonical"),
    (("outcome: result", "outcome: {column: result, values: {yes: renewed}}"), "renewals.columns.outcome.values", "quote the key"),
    (("{table: renewals}", "renewal_source"), "renewals.source", "unknown source"),
    (("{table: accounts}", "{table: accounts, delimiter: ';'}"), "accounts.source", "files only"),
    (("signup}", "{column: signup, format: '%d/%Q'}}"), "accounts.columns.created_at", "unknown strptime"),
    (("signup}", "{column: signup, timezone: Mars/Olympus}}"), "accounts.columns.created_at", "unknown time zone"),
    (("amount: amount", "amount: {after: due, column: amount, unit: days}"), "renewals.columns.amount.after", "only for date"),
    (("version: 1", "version: 2"), "version", "Input should be 1"),
])
def test_each_problem_names_its_key_path(edit, path, why):
    problems = _problems(BASE.replace(*edit))
    assert any(p == path and why in reason for p, reason in problems), problems


def test_sections_refer_to_each_other_correctly():
    problems = _problems(BASE.replace("renewals:", "subscriptions:").replace(
        "columns: {account_id: acct, renewal_date: due, amount: amount, outcome: result}",
        "columns: {account_id: acct, started_at: start}")
        + "usage:\n  source: {table: u}\n  grain: subscription\n  columns: {date: day, feature: f}\n"
        "  features: {core: [a]}\n")
    paths = {p for p, _ in problems}
    assert {"subscriptions.columns.arr", "usage.columns.subscription_id"} <= paths
    assert _problems(BASE.split("renewals:")[0])[0][1].startswith("a mapping needs a subscriptions or a renewals section")


def test_the_file_itself_is_refused_in_one_line_each(tmp_path: Path):
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_MAPPING_BYTES)
    with pytest.raises(MappingError, match="a mapping is at most"):
        load_mapping(big)
    with pytest.raises(MappingError, match="file not found"):
        load_mapping(tmp_path / "missing.yaml")
    aliased = tmp_path / "aliased.yaml"
    aliased.write_text("a: &x [1, 2]\nb: *x\n")
    with pytest.raises(MappingError, match="aliases"):
        load_mapping(aliased)
    broken = tmp_path / "broken.yaml"
    broken.write_text("accounts: [\n")
    with pytest.raises(MappingError, match=r"broken.yaml: line \d+, column \d+: invalid YAML"):
        load_mapping(broken)
    files = tmp_path / "files.yaml"
    files.write_text(BASE.replace("{table: accounts}", "{file: exports/accounts.csv}"))
    with pytest.raises(MappingError, match=r"accounts.source.file: file not found: .*exports/accounts.csv"):
        load_mapping(files)


# ------------------------------------------------------------------------- the checks: block


def test_a_checks_block_sets_only_the_thresholds_it_names():
    from models.plausibility import Thresholds, thresholds_from

    plain = parse_mapping(BASE, source="m.yaml")
    assert plain.mapping.checks is None and plain.mapping.threshold_overrides() == {}
    tuned = parse_mapping(BASE + "checks:\n  max_share_before_signup: 0.25\n  signup_grace_days: 45\n", source="m.yaml")
    assert tuned.mapping.threshold_overrides() == {"signup_grace_days": 45, "max_share_before_signup": 0.25}
    assert thresholds_from(tuned.mapping.threshold_overrides()) == Thresholds(signup_grace_days=45, max_share_before_signup=0.25)
    assert tuned.content_hash != plain.content_hash
    # an empty block is no block: the hash of a mapping without checks is what it always was
    assert parse_mapping(BASE + "checks: {}\n", source="m.yaml").content_hash == plain.content_hash


def test_the_checks_block_is_the_thresholds_dataclass_field_for_field():
    import dataclasses

    from connectors.mapping.schema import Checks
    from models.plausibility import Thresholds

    fields = {f.name: f for f in dataclasses.fields(Thresholds)}
    assert list(Checks.model_fields) == list(fields)
    for name, spec in Checks.model_fields.items():
        assert spec.default == fields[name].default and spec.description == fields[name].metadata["doc"]
    assert Checks().model_dump() == dataclasses.asdict(Thresholds())


@pytest.mark.parametrize("block, path, why", [
    ("{max_share_before_signup: 1.5}", "checks.max_share_before_signup", "less than or equal to 1, got 1.5"),
    ("{quiet_odds: -0.1}", "checks.quiet_odds", "greater than or equal to 0"),
    ("{crm_max_age_days: -1}", "checks.crm_max_age_days", "greater than or equal to 0"),
    ("{signup_grace_days: 2.5}", "checks.signup_grace_days", "a whole number of days, got 2.5"),
    ("{churn_grace_days: .inf}", "checks.churn_grace_days", "finite number"),
    ("{max_share_after_churn: yes}", "checks.max_share_after_churn", "a number, got True"),
    ("{tickets_max_age_days: '3'}", "checks.tickets_max_age_days", "a number, got '3'"),
    ("{max_share_befor_signup: 0.2}", "checks.max_share_befor_signup",
     "unknown threshold; did you mean 'max_share_before_signup'? expected one of churn_grace_days, crm_max_age_days, "
     "max_share_after_churn, max_share_before_signup, max_share_contradictory, quiet_odds, signup_grace_days, "
     "tickets_max_age_days, usage_max_age_days"),
    ("[0.2]", "checks", "valid dictionary"),
])
def test_a_bad_threshold_names_its_key_path(block, path, why):
    problems = _problems(BASE + f"checks: {block}\n")
    assert any(p == path and why in reason for p, reason in problems), problems
    with pytest.raises(MappingError, match=rf"^m.yaml: {path}: "):
        parse_mapping(BASE + f"checks: {block}\n", source="m.yaml")

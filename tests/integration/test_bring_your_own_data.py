"""Bring your own data: a company shaped nothing like the demo world (tests/companies/
subscription_saas.py: five day-first CSV exports, subscriptions, feature usage by subscription,
its own priority words) is landed only through its checked-in mapping YAML, and the pipeline reads
the landed tables unchanged. `rescue data check` finds each class of problem planted in a dirty
copy (a rule over its allowed share blocks the load: tests/faults/test_mapping_faults.py);
`rescue data init` drafts a mapping that loads after a small edit; the demo never writes over
landed data.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import textwrap
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from connectors.demo.world import DemoRefused, DemoWorldConfig, generate_demo_world
from connectors.mapping.land import TARGETS, land_mapping
from connectors.mapping.loader import load_mapping, parse_mapping
from connectors.mapping.manifest import MANIFEST_TABLE, read_manifest
from connectors.settings import current, declared_names, default_warehouse_url
from connectors.warehouse import Warehouse
from models.churn.labels import churn_outcomes as derive_churn_outcomes
from models.contracts import CONTRACTS
from models.quality import validate_frame
from pipelines.cli.main import app
from tests.companies.subscription_saas import ADVANCED_FEATURES, CORE_FEATURES, MAPPING, Company, make_dirty, read, write_company

REPO = Path(__file__).resolve().parents[2]
COMPANY = Company()
#: The deployment's clock in these tests: the morning after the exports' last day, as when the
#: analyst loads them. Pinned (`RESCUE_NOW`), so freshness and "today" never read the wall clock.
NOW = f"{COMPANY.end + dt.timedelta(days=1)}T06:00:00Z"


@pytest.fixture(autouse=True)
def _pinned_clock(monkeypatch):
    monkeypatch.setenv("RESCUE_NOW", NOW)


def _day_first(text: pd.Series) -> pd.Series:
    return pd.to_datetime(text.replace("", None), dayfirst=True, format="mixed")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """The company's exports and a verbatim copy of the checked-in mapping next to them."""
    root = tmp_path_factory.mktemp("saas")
    write_company(root / "exports", COMPANY)
    shutil.copy(MAPPING, root / MAPPING.name)
    return root


@pytest.fixture
def company(pristine, tmp_path) -> Path:
    """A private copy of the company (its mapping's path) that a test may dirty."""
    shutil.copytree(pristine, tmp_path / "company")
    return tmp_path / "company" / MAPPING.name


@pytest.fixture(scope="module")
def landed(pristine, tmp_path_factory) -> Warehouse:
    wh = Warehouse(f"duckdb:///{tmp_path_factory.mktemp('landed') / 'warehouse.duckdb'}")
    land_mapping(load_mapping(pristine / MAPPING.name), wh)
    return wh


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh RESCUE_HOME and no other RESCUE_* setting: the CLI's embedded warehouse."""
    for name in declared_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RESCUE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RESCUE_NOW", NOW)
    monkeypatch.setenv("COLUMNS", "250")
    return tmp_path / "home"


def rescue(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def problem_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("error ", "warning "))]


def _count(line: str) -> int:
    return int(re.search(r": ([\d,]+) of [\d,]+ \(", line).group(1).replace(",", ""))


# ------------------------------------------------------------------------------ the mapping


def test_the_company_is_mapped_by_a_short_yaml_file_and_no_product_code_names_its_columns():
    lines = MAPPING.read_text().splitlines()
    assert len(lines) < 60
    assert parse_mapping(MAPPING.read_text(), check_files=False).mapping.name == "subscription-saas"
    own_names = ("first_response_time_minutes", "billing_frequency", "usage_count", "usage_date", "is_reactivation",
                 "churn_flag", "arr_amount", "escalation_flag", "satisfaction_score", "submitted_at", "dashboard_view",
                 "subscription-saas")
    for layer in ("models", "connectors", "assets", "pipelines"):
        for path in (REPO / layer).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert not [n for n in own_names if n in text], f"{path} names the test company's columns"


def test_the_readme_shows_the_mapping_as_checked_in():
    readme = (REPO / "README.md").read_text()
    shown = re.search(r"```yaml\n(.*?)```", readme.split("## Bring your own data", 1)[1], re.S).group(1)
    assert shown.splitlines() == [line for line in MAPPING.read_text().splitlines() if not line.startswith("#")]
    assert f"**{len(MAPPING.read_text().splitlines())} lines of\nYAML**" in readme


def test_check_profiles_the_clean_company_and_finds_nothing(company, home):
    result = rescue("data", "check", company)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert problem_lines(out) == []
    assert "check: 0 errors, 0 warnings: ready to load" in out
    assert re.search(r"source accounts \(exports/accounts.csv\): 240 rows, 10 columns; mapped 7, not mapped: "
                     r"referral_source, plan_tier, is_trial", out)
    assert re.search(r"table renewals: [\d,]+ rows, renewal_date \S+ \.\. \S+; churned \d+, open \d+, renewed \d+", out)
    assert "coverage: tickets with a known account 100.0%" in out
    assert "usage rows with a known subscription 100.0%" in out
    assert ("thresholds (the defaults; the mapping has no checks:): signup_grace_days 30, max_share_before_signup 0.02, "
            "churn_grace_days 7, max_share_after_churn 0.02, max_share_contradictory 0.01, ") in out
    assert not (home / "warehouse.duckdb").exists()  # checking writes nothing


# ------------------------------------------------------------------------- landed tables


def test_landed_tables_conform_to_the_contracts(landed):
    accounts = landed.read_contract_table(TARGETS["accounts"], CONTRACTS["accounts"])
    assert len(accounts) == COMPANY.n_accounts
    for table, target in TARGETS.items():
        frame = landed.read_contract_table(target, CONTRACTS[table])
        assert len(frame), table
        result = validate_frame(frame, CONTRACTS[table], known_accounts=accounts["account_id"])
        assert result.success, (table, result.summary())
    meta = read_manifest(landed)
    assert meta["usage_daily_landed"] and meta["mapping_name"] == "subscription-saas"
    assert meta["row_counts"][TARGETS["renewals"]] == landed.row_count(TARGETS["renewals"])
    assert len(meta["mapping_hash"]) == 64 and pd.Timestamp(meta["last_date"]).date() == COMPANY.end


def _billing_dates(start: pd.Timestamp, months: int, through: pd.Timestamp) -> list[pd.Timestamp]:
    """start + i*months, i = 1.. up to the first on or after `through`."""
    dates, i = [], 1
    while True:
        dates.append(start + pd.DateOffset(months=i * months))
        if dates[-1] >= through:
            return dates
        i += 1


def test_renewal_terms_are_the_billing_periods_of_the_subscriptions(landed, pristine):
    exports = pristine / "exports"
    subs = read(exports, "subscriptions.csv")
    churn = read(exports, "churn_events.csv").assign(churn_date=lambda f: _day_first(f["churn_date"]))
    subs = subs.assign(start=_day_first(subs["start_date"]), end=_day_first(subs["end_date"]),
                       months=subs["billing_frequency"].str.lower().map({"monthly": 1, "yearly": 12}))
    paid = subs[subs["is_trial"] == "False"].set_index("subscription_id")
    renewals = landed.read_contract_table(TARGETS["renewals"], CONTRACTS["renewals"]).set_index("renewal_id")
    data_end = pd.Timestamp(read_manifest(landed)["last_date"])
    of = renewals.index.str.split("#").str[0]
    last = renewals[~renewals.index.str.contains("#")]

    assert set(of) == set(paid.index) and set(last.index) == set(paid.index)  # one last term per paid subscription
    assert (renewals["amount"] == paid.loc[of, "arr_amount"].astype(float).to_numpy()).all()
    assert (paid["months"].notna()).all()
    for sub_id, sub in paid.iterrows():
        mine = renewals[of == sub_id].sort_values("renewal_date")
        through = sub["end"] if pd.notna(sub["end"]) else data_end
        final = last.loc[sub_id]
        if final["outcome"] == "churned" and final["closed_at"] < through:
            through = final["closed_at"]  # notice given in a period: that period's billing date is the last
        billing = _billing_dates(sub["start"], int(sub["months"]), through)
        # every renewal date is a billing date: the schedule follows from the start and the billing
        # frequency alone, so at any date the next renewal never reveals when the subscription ends
        assert set(mine["renewal_date"]) <= set(billing), sub_id
        assert mine.index[-1] == sub_id and mine["renewal_date"].iloc[-1] == billing[-1], sub_id
        earlier = mine.iloc[:-1]
        assert (earlier["outcome"] == "renewed").all() and (earlier["closed_at"] == earlier["renewal_date"]).all()
        assert (earlier["closed_at"] <= min(through, data_end)).all()
    running = last.loc[paid[paid["end"].isna()].index]                 # plans running on
    assert (running["renewal_date"] > data_end).all()
    ended = paid[paid["end"].notna()]
    closed = last.loc[ended.index]
    known = closed["closed_at"].notna()
    assert known.any() and (closed.loc[known, "closed_at"] <= closed.loc[known, "renewal_date"]).all()

    churned = renewals[renewals["outcome"] == "churned"]
    assert len(churned) == len(churn) > 0                              # each churn event closes one term
    assert not churned.index.str.contains("#").any()                  # and it is the subscription's last
    events = set(zip(churn["account_id"], churn["churn_date"]))
    assert set(zip(churned["account_id"], churned["closed_at"])) == events
    reasons = churn.set_index(["account_id", "churn_date"])["reason_code"]
    assert all(stage == f"closed_lost: {reasons[(a, c)]}" for a, c, stage in
               zip(churned["account_id"], churned["closed_at"], churned["stage"]))
    renewed_last = last[last["outcome"] == "renewed"]
    starts = set(zip(paid["account_id"], paid["start"]))
    assert len(renewed_last) and all((a, c) in starts for a, c in zip(renewed_last["account_id"], renewed_last["closed_at"]))
    assert (renewals.loc[renewals["outcome"] == "open", "renewal_date"] > data_end).all()
    upgraded = paid[paid["upgrade_flag"] == "True"]
    assert len(upgraded)
    for a, s in zip(upgraded["account_id"], upgraded["start"]):
        before = last[(last["account_id"] == a) & (last["closed_at"] == s)]
        assert len(before) and before["outcome"].eq("renewed").all()   # an upgrade continues the term before it

    # a reactivated account churned, then became a customer again with terms of its own
    back = churn[churn["is_reactivation"] == "True"]
    assert len(back)
    for account, when in zip(back["account_id"], back["churn_date"]):
        later = paid[(paid["account_id"] == account) & (paid["start"] > when)]
        assert len(later) and last.loc[later.index, "outcome"].isin(["renewed", "open", "churned"]).all()

    # the pipeline's own labels from these renewals are the landed churn outcomes
    outcomes = landed.read_contract_table(TARGETS["churn_outcomes"], CONTRACTS["churn_outcomes"])
    derived = derive_churn_outcomes(renewals.reset_index())
    pd.testing.assert_frame_equal(outcomes.sort_values(["account_id", "churned_at"]).reset_index(drop=True), derived)


def test_days_to_renewal_reads_the_same_for_a_subscription_that_will_churn_and_one_that_will_not(landed, pristine):
    """The leak this guards: with one renewal per subscription due at its end, a churner's
    renewal date was its cancellation, visible months before it, and a running subscription's was
    the data's end. With billing periods, the next renewal a monthly subscriber has at any date is
    within a month, whether it churns within 90 days or not."""
    from models.churn.features import as_known_at
    subs = read(pristine / "exports", "subscriptions.csv")
    paid = subs[subs["is_trial"] == "False"]
    paid = paid.assign(start=_day_first(paid["start_date"]), end=_day_first(paid["end_date"]))
    monthly = set(paid["account_id"]) - set(paid.loc[paid["billing_frequency"] != "Monthly", "account_id"])
    renewals = landed.read_contract_table(TARGETS["renewals"], CONTRACTS["renewals"])
    outcomes = landed.read_contract_table(TARGETS["churn_outcomes"], CONTRACTS["churn_outcomes"])
    tickets = pd.DataFrame({c: pd.Series(dtype="datetime64[ns]") for c in ("created_at", "first_response_at", "solved_at")})
    tickets["csat"] = pd.Series(dtype="float64")
    usage = pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]")})
    gaps: dict[bool, list[int]] = {True: [], False: []}
    for day in pd.date_range(renewals["renewal_date"].min(), outcomes["churned_at"].max(), freq="45D"):
        r, _, _ = as_known_at(day, renewals=renewals, tickets=tickets, usage_daily=usage)
        paying = paid[(paid["start"] <= day) & ~(paid["end"] <= day)]["account_id"]  # customers on the day
        pending = r[r["closed_at"].isna() & r["account_id"].isin(monthly) & r["account_id"].isin(paying)]
        gap = (pending.groupby("account_id")["renewal_date"].min() - day).dt.days
        ahead = outcomes[(outcomes["churned_at"] > day) & (outcomes["churned_at"] <= day + pd.Timedelta(days=90))]
        soon = gap.index.isin(ahead["account_id"])
        gaps[True] += gap[soon].tolist()
        gaps[False] += gap[~soon].tolist()
    assert len(gaps[True]) >= 20 and len(gaps[False]) >= 100
    for churns_soon, seen in gaps.items():
        assert 0 <= min(seen) and max(seen) <= 31, (churns_soon, min(seen), max(seen))


def test_account_history_is_the_arr_in_force_and_accounts_carry_the_latest_term(landed, pristine):
    subs = read(pristine / "exports", "subscriptions.csv")
    subs = subs.assign(start=_day_first(subs["start_date"]), end=_day_first(subs["end_date"]), arr=subs["arr_amount"].astype(float))
    history = landed.read_contract_table(TARGETS["account_history"], CONTRACTS["account_history"])
    data_end = pd.Timestamp(read_manifest(landed)["last_date"])
    for account, rows in history.groupby("account_id"):
        mine = subs[subs["account_id"] == account]
        for when, arr in zip(rows["valid_from"], rows["arr"]):
            active = mine[(mine["start"] <= when) & (mine["end"].isna() | (mine["end"] > when))]
            assert arr == pytest.approx(active["arr"].sum()), (account, when)
        changes = sorted(set(mine["start"]) | set(mine.loc[mine["end"] <= data_end, "end"].dropna()))
        assert set(rows["valid_from"]) <= set(changes)
    accounts = landed.read_contract_table(TARGETS["accounts"], CONTRACTS["accounts"]).set_index("account_id")
    latest = subs[subs["is_trial"] == "False"].sort_values("start").groupby("account_id").last()
    assert (accounts.loc[latest.index, "arr"] == latest["arr"]).all()
    assert (accounts.loc[latest.index, "plan"] == latest["plan_tier"]).all()


def test_usage_daily_adds_up_the_feature_rows_by_account_and_day(landed, pristine):
    exports = pristine / "exports"
    usage = read(exports, "feature_usage.csv").merge(
        read(exports, "subscriptions.csv")[["subscription_id", "account_id"]], on="subscription_id")
    n = usage["usage_count"].astype(int)
    usage = usage.assign(date=_day_first(usage["usage_date"]), n=n,
                         core=n.where(usage["feature_name"].isin(CORE_FEATURES), 0),
                         advanced=n.where(usage["feature_name"].isin(ADVANCED_FEATURES), 0))
    expected = usage.groupby(["account_id", "date"]).agg(
        active_users=("subscription_id", "nunique"), events=("n", "sum"),
        core_events=("core", "sum"), advanced_events=("advanced", "sum"),
    ).reset_index()
    landed_usage = landed.read_usage_daily()
    pd.testing.assert_frame_equal(landed_usage.reset_index(drop=True), expected, check_dtype=False)
    assert (landed_usage["events"] > landed_usage["core_events"] + landed_usage["advanced_events"]).any()  # the beta feature


# -------------------------------------------------------------- check: planted problems


def _check_finds(mapping: Path, code: str, fragment: str, planted: list[str], *, exit_code: int = 0) -> str:
    result = rescue("data", "check", mapping)
    assert result.exit_code == exit_code, result.output
    lines = problem_lines(result.stdout)
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.startswith(("error " if exit_code else "warning ") + code + ": ") and fragment in line, line
    assert _count(line) == len(planted), line
    shown = re.search(r"e\.g\. (.*?)(;|$)", line).group(1)
    assert any(ident in shown for ident in planted), line
    return line


def test_check_finds_tickets_dated_before_the_signup(company):
    planted = make_dirty(company.parent / "exports", "tickets_before_signup")
    line = _check_finds(company, "before_signup", "tickets.created_at: rows dated more than 30 days before the "
                        "account's signup (accounts.created_at)", planted)
    assert "(0.3%, allowed 2.0%)" in line and line.endswith("; within checks.max_share_before_signup: the daily checks let it pass")


def test_check_finds_usage_outside_its_subscription(company):
    planted = make_dirty(company.parent / "exports", "usage_outside_subscription")
    _check_finds(company, "usage_outside_subscription", "usage rows dated outside their subscription", planted)


def test_check_finds_usage_after_a_churn_without_reactivation(company):
    planted = make_dirty(company.parent / "exports", "usage_after_churn")
    result = rescue("data", "check", company)
    assert result.exit_code == 0, result.output
    after, outside = problem_lines(result.stdout)   # a day after the churn is outside its subscription, too
    assert after.startswith("warning after_churn: usage_daily.date: rows of usage more than 7 days after the account "
                            "churned (the churned term's end), with no reactivation since: "), after
    assert _count(after) == len(planted) and "allowed 2.0%" in after
    assert any(f"account_id {ident} on " in after for ident in planted), after
    assert outside.startswith("warning usage_outside_subscription: usage rows dated outside their subscription")
    assert _count(outside) == len(planted)


def test_check_finds_contradictory_churn_flags(company):
    planted = make_dirty(company.parent / "exports", "churned_flag_mismatch")
    _check_finds(company, "churned_flag_mismatch", "flagged churned (accounts.columns.churned) whose last term did not churn",
                 planted)


def test_check_blocks_an_unmapped_priority_word(company):
    planted = make_dirty(company.parent / "exports", "unmapped_priority")
    line = _check_finds(company, "unmapped_value", "'showstopper' (8) not in the value map", planted, exit_code=1)
    assert "tickets.columns.priority (column 'priority' in exports/support_tickets.csv)" in line
    assert "add them under tickets.columns.priority.values" in line


def test_dd_mm_dates_are_read_day_first_and_a_month_first_reading_is_refused_with_the_fix(company, landed):
    accounts = read(company.parent / "exports", "accounts.csv")
    parts = accounts["signup_date"].str.extract(r"(\d+)/(\d+)/(\d+)").astype(int)
    ambiguous = accounts[(parts[0] <= 12) & (parts[0] != parts[1])].iloc[0]
    day, month, year = map(int, ambiguous["signup_date"].split("/"))
    created = landed.read_sql(f"SELECT created_at FROM {TARGETS['accounts']} WHERE account_id = :a",
                              {"a": ambiguous["account_id"]}).iloc[0, 0]
    assert pd.Timestamp(created) == pd.Timestamp(year=year, month=month, day=day)  # 03/04 is 3 April

    company.write_text(company.read_text().replace("dates: {day_first: true}", "dates: {day_first: false}"))
    result = rescue("data", "check", company)
    assert result.exit_code == 1
    signup = next(line for line in problem_lines(result.stdout) if "accounts.columns.created_at" in line)
    assert signup.startswith("error unreadable_date: accounts.columns.created_at (column 'signup_date' in exports/accounts.csv): not a date")
    assert signup.endswith("read as dates day first (23/04/2026 is 23 April): set dates.day_first: true")


# ------------------------------------------------------------------------------- commands


def test_init_drafts_a_mapping_that_loads_after_a_small_edit(pristine, tmp_path, home, landed):
    exports = sorted((pristine / "exports").glob("*.csv"))
    draft = tmp_path / "draft" / "mapping.yaml"
    result = rescue("data", "init", *exports, "--out", draft)
    assert result.exit_code == 0, result.output
    assert "accounts.csv -> accounts" in result.stdout and "feature_usage.csv -> usage" in result.stdout
    assert "churn_events.csv -> churn" in result.stdout and "support_tickets.csv -> tickets" in result.stdout
    assert re.search(r"wrote .*mapping.yaml \(\d+ lines; valid as drafted\)", result.stdout)
    text = draft.read_text()
    assert "dates: {day_first: true}" in text and "grain: subscription" in text
    assert "first_response_at: {after: created_at, column: first_response_time_minutes, unit: minutes}" in text

    again = rescue("data", "init", *exports, "--out", draft)
    assert again.exit_code == 1 and "exists: not overwriting it (use --force" in again.output
    assert draft.read_text() == text and again.output.count("\n") == 1

    # the analyst's edits: 'minor' tickets are normal, not low; the beta feature is neither core nor advanced
    assert "minor: low" in text and "forecast_lab, " in text
    draft.write_text(text.replace("minor: low", "minor: normal").replace("forecast_lab, ", ""))
    checked = rescue("data", "check", draft)
    assert checked.exit_code == 0 and problem_lines(checked.stdout) == [], checked.output
    loaded = rescue("data", "load", draft)
    assert loaded.exit_code == 0, loaded.output
    mine = Warehouse(default_warehouse_url())
    for table in ("renewals", "tickets", "usage_daily", "churn_outcomes", "account_history"):
        # the drafted segment bounds are the draft's own guess (from the seats' quantiles)
        ours = mine.read_contract_table(TARGETS[table], CONTRACTS[table]).drop(columns="segment", errors="ignore")
        reference = landed.read_contract_table(TARGETS[table], CONTRACTS[table]).drop(columns="segment", errors="ignore")
        key = list(CONTRACTS[table].primary_key)
        pd.testing.assert_frame_equal(ours.sort_values(key).reset_index(drop=True),
                                      reference.sort_values(key).reset_index(drop=True), check_like=True, obj=table)


def test_load_prints_progress_and_lands_everything_or_nothing(company, home, monkeypatch):
    result = rescue("data", "load", company)
    assert result.exit_code == 0, result.output
    assert "read usage from exports/feature_usage.csv: " in result.stderr
    assert "landing 6 tables in one transaction: raw_crm_accounts 240, " in result.stderr
    assert re.search(r"^loaded subscription-saas: raw_crm_accounts 240, raw_crm_renewals [\d,]+, .* data up to 2026-11-30",
                     result.stdout, re.M)
    wh = Warehouse(default_warehouse_url())
    before = {t: wh.row_count(t) for t in TARGETS.values()}
    tables = set(wh.read_sql("SELECT table_name FROM information_schema.tables")["table_name"])

    make_dirty(company.parent / "exports", "unmapped_priority")           # a blocking problem: refused
    refused = rescue("data", "load", company)
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    (line,) = refused.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: ") and "not loaded: unmapped_value: tickets.columns.priority" in line

    make_dirty(company.parent / "exports", "unmapped_priority")
    company.write_text(company.read_text().replace("trivial: low}", "trivial: low, showstopper: urgent}"))

    def broken_promote(self, renames, **kwargs):                            # the last step fails
        raise RuntimeError("disk full")

    monkeypatch.setattr(Warehouse, "promote", broken_promote)
    with pytest.raises(RuntimeError, match="disk full"):
        land_mapping(load_mapping(company), wh)
    assert {t: wh.row_count(t) for t in TARGETS.values()} == before
    assert set(wh.read_sql("SELECT table_name FROM information_schema.tables")["table_name"]) == tables
    assert wh.row_count(MANIFEST_TABLE) == 1


def test_errors_are_one_line_naming_the_file_the_key_path_and_the_column(company, home):
    original = company.read_text()
    company.write_text(original.replace("created_at: submitted_at", "created_at: submited_at"))
    result = rescue("data", "check", company)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip() == (
        f"error: {company}: tickets.columns.created_at: column 'submited_at' not found in "
        "exports/support_tickets.csv; did you mean 'submitted_at'? columns: ticket_id, account_id, submitted_at, "
        "closed_at, resolution_time_hours, priority, first_response_time_minutes, satisfaction_score, escalation_flag")
    company.write_text(original.replace("ELSE 'smb' END", "ELSE 'smb' END; DROP TABLE raw_crm_accounts"))
    result = rescue("data", "load", company)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {company}: accounts.columns.segment: must be a single expression: no ';'"
    company.write_text(original.replace("seats >= 150", "seatz >= 150"))
    result = rescue("data", "check", company)
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"error: {company}: accounts.columns.segment.sql: the warehouse refuses it: ")
    assert "seatz" in result.stderr


def test_demo_commands_refuse_to_write_over_landed_data(company, home):
    assert rescue("data", "load", company).exit_code == 0
    wh = Warehouse(default_warehouse_url())
    rows = {t: wh.row_count(t) for t in TARGETS.values()}
    for command in (["demo", "run", "--no-loop"], ["demo", "generate", "--accounts", "50"], ["demo", "loop"]):
        result = rescue(*command)
        assert result.exit_code == 1, (command, result.output)
        assert result.output.strip().count("\n") == 0, result.output
        assert "holds data landed by `rescue data load`" in result.output and "the demo never writes over it" in result.output
        assert "demo world found" not in result.output and "--regenerate" not in result.output
    with pytest.raises(DemoRefused):
        generate_demo_world(DemoWorldConfig(n_accounts=50, history_days=150), wh)
    assert {t: wh.row_count(t) for t in TARGETS.values()} == rows and not wh.table_exists("raw_product_events")


def test_load_replaces_a_demo_world_only_when_asked(company, home):
    wh = Warehouse(default_warehouse_url())
    generate_demo_world(DemoWorldConfig(n_accounts=50, seed=4, history_days=150), wh)
    refused = rescue("data", "load", company)
    assert refused.exit_code == 1 and "holds the demo world" in refused.output and "--replace" in refused.output
    assert wh.row_count(TARGETS["accounts"]) == 50
    result = rescue("data", "load", company, "--replace")
    assert result.exit_code == 0, result.output
    assert wh.row_count(TARGETS["accounts"]) == 240
    assert not any(wh.table_exists(t) for t in ("raw_product_events", "demo_truth", "demo_world_meta"))


# ------------------------------------------------------------------------ other sources


def test_warehouse_tables_and_queries_give_the_same_tables(pristine, landed, tmp_path):
    """The mapping over the exports landed as warehouse tables (ISO dates) and a query, on SQLite."""
    wh = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    _same_tables_from_sql_sources(pristine, landed, wh)


@pytest.mark.postgres
def test_warehouse_tables_and_queries_on_postgresql(pristine, landed, pg_database_url):
    _same_tables_from_sql_sources(pristine, landed, Warehouse(pg_database_url))


def _same_tables_from_sql_sources(pristine: Path, landed: Warehouse, wh: Warehouse) -> None:
    dates = {"accounts": ["signup_date"], "subscriptions": ["start_date", "end_date"], "feature_usage": ["usage_date"],
             "support_tickets": ["submitted_at", "closed_at"], "churn_events": ["churn_date"]}
    text = MAPPING.read_text().replace("dates: {day_first: true}\n", "")
    for name, columns in dates.items():
        frame = pd.read_csv(pristine / "exports" / f"{name}.csv")  # typed as a warehouse table would be
        for col in columns:
            frame[col] = _day_first(frame[col]).dt.strftime("%Y-%m-%d %H:%M:%S")
        wh.write_table(f"src_{name}", frame)
        text = text.replace(f"{{file: exports/{name}.csv}}", f"{{table: src_{name}}}")
    text = text.replace("{table: src_churn_events}", '{query: "SELECT * FROM src_churn_events WHERE churn_date IS NOT NULL"}')
    land_mapping(parse_mapping(text, source="sql-sources.yaml"), wh)
    for table, target in TARGETS.items():
        key = list(CONTRACTS[table].primary_key)
        ours = wh.read_contract_table(target, CONTRACTS[table]).sort_values(key).reset_index(drop=True)
        reference = landed.read_contract_table(target, CONTRACTS[table]).sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(ours, reference, check_dtype=False, obj=table)


def test_parquet_files_with_typed_timestamps_give_the_same_tables(company, landed):
    exports = company.parent / "exports"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * REPLACE (strptime(start_date, '%d/%m/%Y') AS start_date, "
                f"try_strptime(end_date, '%d/%m/%Y') AS end_date) FROM read_csv('{exports}/subscriptions.csv', all_varchar = true)) "
                f"TO '{exports}/subscriptions.parquet' (FORMAT parquet)")
    con.execute(f"COPY (SELECT * FROM read_csv('{exports}/feature_usage.csv')) TO '{exports}/usage.parquet' (FORMAT parquet)")
    con.close()
    company.write_text(company.read_text().replace("exports/subscriptions.csv", "exports/subscriptions.parquet")
                       .replace("exports/feature_usage.csv", "exports/usage.parquet"))
    wh = Warehouse(f"duckdb:///{company.parent / 'parquet.duckdb'}")
    land_mapping(load_mapping(company), wh)
    for table in ("renewals", "usage_daily", "account_history"):
        key = list(CONTRACTS[table].primary_key)
        ours = wh.read_contract_table(TARGETS[table], CONTRACTS[table]).sort_values(key).reset_index(drop=True)
        reference = landed.read_contract_table(TARGETS[table], CONTRACTS[table]).sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(ours, reference, obj=table)


def test_direct_renewals_explicit_formats_and_time_zones(tmp_path):
    """A CRM-shaped company: renewals as opportunities (no subscriptions), dates as 'Jan 05 2026
    14:30' in Berlin time, a value map for outcomes, and no usage or tickets at all."""
    (tmp_path / "accounts.csv").write_text(
        "id;company;tier;arr;seats;since\nA1;Acme;Enterprise;120000;300;Jan 05 2025 14:30\nA2;Bolt;SMB;900;3;Jul 01 2025 00:15\n")
    (tmp_path / "opps.csv").write_text(
        "opp;acct;close;value;result;decided\nO1;A1;Jan 05 2026 14:30;120000;Closed Won;Jan 05 2026 14:30\n"
        "O2;A2;Jul 01 2026 00:15;900;Lost;Jul 01 2026 00:15\nO3;A1;Jan 05 2027 14:30;125000;Pipeline;\n")
    mapping = tmp_path / "crm.yaml"
    mapping.write_text(textwrap.dedent("""
        version: 1
        data_end: 2026-11-30
        dates: {formats: ['%b %d %Y %H:%M'], timezone: Europe/Berlin}
        accounts:
          source: {file: accounts.csv, delimiter: ';'}
          columns:
            account_id: id
            name: company
            segment: {column: tier, values: {enterprise: enterprise, smb: smb}, otherwise: mid_market}
            arr: arr
            seats: seats
            created_at: since
        renewals:
          source: {file: opps.csv, delimiter: ';'}
          columns:
            renewal_id: opp
            account_id: acct
            renewal_date: close
            amount: value
            closed_at: decided
            outcome: {column: result, values: {closed won: renewed, lost: churned, pipeline: open}}
        """).lstrip())
    wh = Warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    land_mapping(load_mapping(mapping), wh)
    accounts = wh.read_contract_table(TARGETS["accounts"], CONTRACTS["accounts"]).set_index("account_id")
    assert accounts.loc["A1", "created_at"] == pd.Timestamp("2025-01-05 13:30")   # CET is UTC+1
    assert accounts.loc["A2", "created_at"] == pd.Timestamp("2025-06-30 22:15")   # CEST is UTC+2
    renewals = wh.read_contract_table(TARGETS["renewals"], CONTRACTS["renewals"]).set_index("renewal_id")
    assert renewals["outcome"].to_dict() == {"O1": "renewed", "O2": "churned", "O3": "open"}
    outcomes = wh.read_contract_table(TARGETS["churn_outcomes"], CONTRACTS["churn_outcomes"])
    assert outcomes.to_dict("records") == [{"account_id": "A2", "churned_at": pd.Timestamp("2026-06-30 22:15"), "arr_lost": 900.0}]
    history = wh.read_contract_table(TARGETS["account_history"], CONTRACTS["account_history"])
    assert history.set_index("account_id")["segment"].to_dict() == {"A1": "enterprise", "A2": "smb"}
    assert wh.row_count(TARGETS["tickets"]) == 0 and not wh.table_exists("usage_daily")
    assert not read_manifest(wh)["usage_daily_landed"]


# ---------------------------------------------------------------------- the pipeline on it


def _resources(wh: Warehouse, root: Path, policy: Path = REPO / "policies" / "default.yaml") -> dict:
    from assets.quality import source_checks_resource
    from connectors.model_registry import ModelRegistryResource
    from connectors.policy_source import PolicyResource
    from connectors.queue.resource import QueueStoreResource
    from connectors.sources import WarehouseCRM, WarehouseTicketing
    from connectors.warehouse import WarehouseResource

    warehouse = WarehouseResource(url=wh.url)
    return {"warehouse": warehouse, "crm": WarehouseCRM(warehouse=warehouse), "ticketing": WarehouseTicketing(warehouse=warehouse),
            "queue": QueueStoreResource(url=f"sqlite:///{root / 'queue.db'}"),
            "model_registry": ModelRegistryResource(path=str(root / "models")),
            "policy": PolicyResource(path=str(policy)),
            "source_checks": source_checks_resource()}


def test_the_source_assets_and_their_blocking_checks_read_the_landed_tables(company, tmp_path, monkeypatch):
    from assets.features import churn_outcomes
    from assets.quality import source_checks
    from assets.sources import crm_account_history, crm_accounts, crm_renewals, product_usage_daily, support_tickets

    from connectors.usage import USAGE_STATE_TABLE

    wh = Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    wh.write_table("raw_product_events", pd.DataFrame({   # raw events of someone else's: not used
        "account_id": ["X"], "user_id": ["u"], "occurred_at": [pd.Timestamp("2026-11-01")], "feature": ["core"], "quantity": [1]}))
    wh.build_usage_daily()  # a usage_daily built from them before the load, and its build state
    assert wh.table_exists(USAGE_STATE_TABLE)
    land_mapping(load_mapping(company), wh)
    assert not wh.table_exists(USAGE_STATE_TABLE)  # dropped with the usage_daily the load replaced
    usage_before = wh.read_usage_daily()
    monkeypatch.setenv("RESCUE_NOW", "2026-12-01T06:00:00+00:00")   # the daily run after the exports' last day
    result = dg.materialize([crm_accounts, crm_renewals, crm_account_history, support_tickets, product_usage_daily,
                             churn_outcomes, *source_checks],
                            resources=_resources(wh, tmp_path))
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert result.output_for_node("crm_account_history") is not None  # the landed history is read
    expected = {key.name for c in source_checks for key in c.check_keys}
    assert {c.check_name for c in checks} == expected and all(c.passed for c in checks), \
        [c.metadata for c in checks if not c.passed]
    usage = next(e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("product_usage_daily"))
    assert usage.materialization.metadata["origin"].value.startswith("data landed by `rescue data load`")
    assert usage.materialization.metadata["build"].value == "landed"
    pd.testing.assert_frame_equal(wh.read_usage_daily(), usage_before)
    assert not wh.table_exists(USAGE_STATE_TABLE)


@pytest.mark.slow
def test_the_daily_job_routes_the_landed_company(landed, tmp_path):
    from assets.quality import source_checks_resource
    from connectors.queue.store import QueueStore
    from pipelines.definitions import build_definitions

    wh = Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute(f"ATTACH '{landed.url.removeprefix('duckdb:///')}' AS landed (READ_ONLY)")
    for table in [*TARGETS.values(), MANIFEST_TABLE]:
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM landed.{table}")
    con.close()
    # the default policy admits on the churn risk itself (enter at 20%); this small company's
    # rules-only risk stays below it, so the company's policy admits its book's riskiest tenth
    # (the percentile the README's "Thresholds that transfer" recommends)
    policy = yaml.safe_load((REPO / "policies" / "default.yaml").read_text())
    policy["hysteresis"] = {"field": "churn_risk_percentile", "enter_threshold": 0.9, "exit_threshold": 0.8,
                            "min_days_in_state": 2}
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    resources = _resources(wh, tmp_path, tmp_path / "policy.yaml")
    defs = build_definitions(resources)
    # the same deployment with RESCUE_FRESHNESS=warn: a stale source routes, and the cases say so
    warn = build_definitions({**resources,
                              "source_checks": source_checks_resource(settings=current({"RESCUE_FRESHNESS": "warn"}))})
    instance = dg.DagsterInstance.ephemeral()
    retrain = defs.resolve_job_def("weekly_retrain_job").execute_in_process(instance=instance, raise_on_error=False)
    assert retrain.success, [e.message for e in retrain.all_events if e.is_failure]
    queue = QueueStore(f"sqlite:///{tmp_path / 'queue.db'}")
    # the policy opens a case after two days at risk; the last day runs five days late, on data
    # that stopped at the exports' last day
    for day, at, deployment in (("2026-11-29", "2026-11-29", defs), ("2026-11-30", "2026-11-30", defs),
                                ("2026-12-01", "2026-12-06", warn)):
        daily = deployment.resolve_job_def("daily_rescue_job").execute_in_process(
            instance=instance, partition_key=day, raise_on_error=False,
            run_config={"ops": {"rescue_queue": {"config": {"now": f"{at}T09:00:00+00:00"}}}})
        assert daily.success, [e.message for e in daily.all_events if e.is_failure]
        mats = {e.asset_key.to_user_string(): e.event_specific_data.materialization.metadata
                for e in daily.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}
        # 240 accounts leave too few churners in validation to promote a model: the day is
        # scored on the rules, and says so
        assert mats["churn_scores"]["model_version"].value == "rules-fallback"
        assert "rescue_queue" in mats
        stale = mats["rescue_queue"]["routed_on_stale_data"].value
        contexts = [case["context"] or {} for _, case in queue.list_cases(status="active").iterrows()]
        if deployment is defs:   # fresh: routed, and no case carries a warning
            assert not stale and not any("data_warnings" in c for c in contexts)
            assert "usage_daily: fresh" in mats["rescue_queue"]["source_ages"].value
    # the late day: the freshness checks warned (not blocked), and every case written names the
    # stale sources and their age, as the checks did
    warned = {e.event_specific_data.check_name: e.event_specific_data for e in daily.all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed}
    assert {"support_tickets_fresh", "product_usage_daily_fresh"} <= set(warned)
    assert all(w.severity.value == "WARN" for w in warned.values())
    assert stale and "usage_daily: stale" in mats["rescue_queue"]["source_ages"].value
    written = queue.list_cases(status="active")
    written = written[written["snapshot_date"] == pd.Timestamp("2026-12-01")]
    assert len(written)
    for _, case in written.iterrows():
        lines = case["context"]["data_warnings"]
        assert any(line.startswith("routed on stale data: usage_daily 6.4 days old (newest row 2026-11-30")
                   for line in lines), lines
        assert any(line.startswith("routed on stale data: tickets ") for line in lines), lines
    cases = queue.list_cases(status="active")
    assert set(cases["account_id"]) <= set(landed.read_sql(f"SELECT account_id FROM {TARGETS['accounts']}")["account_id"])

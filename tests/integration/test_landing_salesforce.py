"""Salesforce Accounts and Opportunities landed with dlt against the Salesforce HTTP fake.

REST paging over several pages and Bulk API 2.0 above the threshold (job, polls, result pages by
``Sforce-Locator``) landing the same tables, the next run asking only for what changed since the
saved ``SystemModstamp``, resumption after a pull fails half-way, 429 with Retry-After and 5xx,
a refused login, and 30% injected failures over a multi-page pull: after resume, exactly the
org's records, once each. Then the default mapping turns the landed tables into the accounts and
renewals contracts. No real waits: the client's retry sleeps are recorded, Bulk polling is not
slept.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import responses
import simple_salesforce.bulk2

from connectors.landing.pipeline import LandingError, landing_pipeline, run_pipeline
from connectors.landing.salesforce import SalesforceLanding, bound_resource, explain, salesforce_source
from connectors.mapping.land import TARGETS, check_mapping, land_mapping
from connectors.mapping.loader import parse_mapping
from connectors.settings import SalesforceSettings, SettingError, salesforce_bulk_threshold
from connectors.warehouse import Warehouse
from models.contracts import CONTRACTS
from models.quality import validate_frame
from tests.fakes.salesforce_fake import FaultInjector, SalesforceFake

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MAPPING = REPO / "connectors" / "mapping" / "sources" / "salesforce.yaml"
USERNAME, PASSWORD, TOKEN = "integration@example.com", "Land1ng-Secret-Pw", "TOKENabc123"


@pytest.fixture(autouse=True)
def no_bulk_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """simple-salesforce polls Bulk 2.0 jobs with time.sleep; the fake needs no waiting."""
    monkeypatch.setattr(simple_salesforce.bulk2, "sleep", lambda _seconds: None)


def org(accounts: int, *, page_size: int = 2000, **kwargs) -> SalesforceFake:
    """An org with `accounts` Accounts and one Opportunity each (every third one no renewal)."""
    fake = SalesforceFake(username=USERNAME, password=PASSWORD, security_token=TOKEN, page_size=page_size, **kwargs)
    stages = (("Closed Won", True, True), ("Closed Lost", True, False), ("Negotiation", False, False))
    for i in range(accounts):
        account = fake.add("Account", Name=f"Company {i}", Type="Customer", Industry="Retail", BillingCountry="DE",
                           AnnualRevenue=1000.0 * (i + 1), NumberOfEmployees=(5, 150, 4000)[i % 3], OwnerId="005A",
                           CreatedDate="2023-02-01T09:30:00.000+0000")
        stage, closed, won = stages[i % 3]
        fake.add("Opportunity", AccountId=account["Id"], Name=f"Renewal {i}",
                 Type="New Business" if i % 3 == 2 and i % 2 else "Renewal", StageName=stage,
                 CloseDate="2026-03-01", Amount=500.0 + i, IsClosed=closed, IsWon=won,
                 CreatedDate="2025-02-01T09:30:00.000+0000")
    return fake


def _pull(fake: SalesforceFake, url: str, tmp_path: Path, waits: list[float] | None = None, *,
          password: str = PASSWORD, attempts: int = 8, bulk_threshold: int = 10_000, account_fields: str = ""):
    """One landing run (a fresh pipeline and client, as a new process would have)."""
    landing = SalesforceLanding(username=USERNAME, password=password, security_token=TOKEN,
                                bulk_threshold=bulk_threshold, bulk_poll_seconds=0, max_attempts=attempts)
    sleeps = waits if waits is not None else []
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps)
        pipeline = landing_pipeline("salesforce", url, pipelines_dir=tmp_path / "dlt")
        source = salesforce_source(lambda: landing.build_client(sleep=sleeps.append), account_fields=account_fields)
        return run_pipeline(pipeline, source, explain)


def _landed(url: str, table: str = "accounts") -> pd.DataFrame:
    return Warehouse(url).read_sql(f"SELECT * FROM salesforce.{table} ORDER BY id")


def _stamps(frame: pd.DataFrame) -> dict[str, pd.Timestamp]:
    return dict(zip(frame["id"], pd.to_datetime(frame["system_modstamp"], utc=True)))


def _expected(fake: SalesforceFake, sobject: str = "Account") -> dict[str, pd.Timestamp]:
    return {i: pd.Timestamp(r["SystemModstamp"]).tz_convert("UTC") for i, r in sorted(fake.records[sobject].items())}


def _soql(fake: SalesforceFake, after: int = 0) -> list[str]:
    """The SOQL of the data queries (not the COUNT()s) sent since request `after`."""
    return [q for q in fake.queries[after:] if "COUNT()" not in q]


def test_rest_pages_and_bulk_jobs_land_the_same_tables_once_each(tmp_path):
    fake = org(23, page_size=5)
    fake.bulk_page_size = 4
    rest_url, bulk_url = f"duckdb:///{tmp_path / 'rest.duckdb'}", f"duckdb:///{tmp_path / 'bulk.duckdb'}"
    _pull(fake, rest_url, tmp_path / "rest")
    pages = [p for m, p in fake.requests if p.startswith("/services/data/v59.0/query/01g")]
    assert len(pages) == 2 * 4 and not fake.query_jobs                  # 23 rows: 4 next pages per object
    assert _soql(fake)[0].endswith("FROM Account WHERE SystemModstamp >= 2000-01-01T00:00:00Z ORDER BY SystemModstamp")

    # one result page fails: the whole job is the unit of retry, its pages downloaded again
    fake.faults = FaultInjector(queue=["503"], applies_to=lambda r: "/results" in (r.url or "") and "locator=12" in r.url)
    waits: list[float] = []
    before = set(Path(tempfile.gettempdir()).glob("rescue-sf-*"))
    _pull(fake, bulk_url, tmp_path / "bulk", waits, bulk_threshold=10)
    assert len(fake.query_jobs) == 3 and fake.faults.injected == {"503": 1} and len(waits) == 1
    results = sorted(len([p for m, p in fake.requests if p.endswith(f"{job_id}/results")])
                     for job_id in fake.query_jobs)
    assert results == [4, 6, 6]                 # 23 rows, 4 a page, by Sforce-Locator; the failed job stopped at 4
    assert set(Path(tempfile.gettempdir()).glob("rescue-sf-*")) == before, "the downloaded pages are removed"
    for table in ("accounts", "opportunities"):
        rest, bulk = _landed(rest_url, table), _landed(bulk_url, table)
        assert len(rest) == 23 and rest["id"].is_unique
        assert list(bulk.columns) == list(rest.columns)                 # no variant columns from Bulk's text
        pd.testing.assert_frame_equal(bulk.drop(columns=["_dlt_load_id", "_dlt_id"]),
                                      rest.drop(columns=["_dlt_load_id", "_dlt_id"]))
    assert _stamps(_landed(rest_url)) == _expected(fake)
    opportunities = _landed(rest_url, "opportunities")
    assert opportunities["is_won"].dtype == bool and opportunities["amount"].dtype == float


def test_the_next_run_asks_only_for_what_changed_since_the_saved_cursor(url, tmp_path):
    fake = org(12, page_size=5)
    _pull(fake, url, tmp_path)
    last = max(_expected(fake).values())
    account = sorted(fake.records["Account"])[3]
    fake.touch("Account", account, Name="Renamed")
    fake.add("Account", Name="New", NumberOfEmployees=3, AnnualRevenue=10.0)
    seen = len(fake.queries)
    _pull(fake, url, tmp_path)
    soql = _soql(fake, seen)
    assert f"SystemModstamp >= {last.strftime('%Y-%m-%dT%H:%M:%SZ')}" in soql[0]
    landed = _landed(url).set_index("id")
    assert len(landed) == 13 and landed.loc[account, "name"] == "Renamed"
    assert _stamps(landed.reset_index()) == _expected(fake)
    assert fake.by_key("Account", "Name")["New"]["Id"] in landed.index


def test_a_pull_that_fails_half_way_resumes_from_the_saved_cursor_losing_and_doubling_nothing(url, tmp_path):
    fake = org(20, page_size=5)
    _pull(fake, url, tmp_path)
    for record_id in sorted(fake.records["Account"]):
        fake.touch("Account", record_id, Name="changed")
    cursor_before = max(_landed(url)["system_modstamp"])
    # every third page of the Account query answers 500 until cleared
    fake.faults = FaultInjector(rate=1.0, kinds=("500",), applies_to=lambda r: "-10" in (r.url or ""))
    with pytest.raises(LandingError) as failed:
        _pull(fake, url, tmp_path, attempts=2)
    message = str(failed.value)
    assert "\n" not in message and "500" in message and "resumes from the saved cursor" in message
    assert fake.faults.injected["500"] == 2                             # the page and its one retry
    assert (_landed(url)["name"] != "changed").all(), "nothing of the failed pull was loaded"
    assert max(_landed(url)["system_modstamp"]) == cursor_before

    fake.faults = FaultInjector()
    seen = len(fake.queries)
    _pull(fake, url, tmp_path)
    assert f">= {cursor_before.strftime('%Y-%m-%dT%H:%M:%SZ')}" in _soql(fake, seen)[0]  # the saved state
    after = _landed(url)
    assert after["id"].is_unique and (after["name"] == "changed").sum() == 20
    assert _stamps(after) == _expected(fake)


def test_429_waits_as_long_as_retry_after_says_and_5xx_are_retried(url, tmp_path):
    fake = org(8, page_size=3)
    fake.faults = FaultInjector(queue=["429", "500", "503"], retry_after="17")
    waits: list[float] = []
    _pull(fake, url, tmp_path, waits)
    assert fake.faults.injected == {"429": 1, "500": 1, "503": 1}
    assert waits[0] == 17.0 and len(waits) == 3                         # Retry-After, then backoff
    assert _stamps(_landed(url)) == _expected(fake)


def test_a_refused_login_ends_in_one_line_naming_the_variables_and_is_not_retried(url, tmp_path):
    fake = org(3)
    waits: list[float] = []
    with pytest.raises(LandingError) as failed:
        _pull(fake, url, tmp_path, waits, password="Wrong-Pa55word")
    message = str(failed.value)
    assert "\n" not in message and "401" in message
    assert all(v in message for v in ("RESCUE_SF_USERNAME", "RESCUE_SF_PASSWORD", "RESCUE_SF_SECURITY_TOKEN"))
    assert "Wrong-Pa55word" not in message and PASSWORD not in message and TOKEN not in message
    assert waits == [] and [p for _, p in fake.requests] == ["/services/Soap/u/59.0"]


def test_a_field_the_org_lacks_is_one_line_naming_the_variable_and_the_threshold_is_a_whole_number(url, tmp_path):
    fake = org(3)
    with pytest.raises(LandingError) as failed:
        _pull(fake, url, tmp_path, account_fields="ARR__c, Segment__c")
    message = str(failed.value)
    assert "\n" not in message and "No such column 'ARR__c' on entity 'Account'" in message
    assert "RESCUE_SF_ACCOUNT_FIELDS" in message
    fake.add("Account", Name="With ARR", ARR__c=1200.0, Segment__c="SMB")
    _pull(fake, url, tmp_path, account_fields="ARR__c, Segment__c")
    landed = _landed(url).set_index("name")
    assert landed.loc["With ARR", "arr__c"] == 1200.0 and landed.loc["With ARR", "segment__c"] == "SMB"
    assert salesforce_bulk_threshold(SalesforceSettings(bulk_threshold="25,000")) == 25_000
    with pytest.raises(SettingError, match="^RESCUE_SF_BULK_THRESHOLD='lots' is not a whole number of rows$"):
        bound_resource(SalesforceSettings(bulk_threshold="lots"))


def test_unset_credentials_are_refused_naming_the_variables():
    with pytest.raises(LandingError, match=r"^Salesforce is a landing source but RESCUE_SF_PASSWORD, "
                                           r"RESCUE_SF_SECURITY_TOKEN are not set$"):
        SalesforceLanding(username=USERNAME).source()
    with pytest.raises(LandingError, match="RESCUE_SF_SESSION_ID is not set"):
        SalesforceLanding(instance_url="https://acme.my.salesforce.com").source()


def test_30_percent_failures_over_a_multi_page_pull_end_with_every_record_once(url, tmp_path):
    fake = org(60, page_size=5)                                         # 12 pages of each object
    fake.faults = FaultInjector(rate=0.3, seed=11, kinds=("429", "500", "503", "timeout"), retry_after="3")
    rng = random.Random(11)
    failures = 0
    for _ in range(40):
        try:
            _pull(fake, url, tmp_path, attempts=2)                      # few attempts: whole runs fail
            break
        except LandingError:
            failures += 1
            for record_id in rng.sample(sorted(fake.records["Opportunity"]), 3):   # the org goes on working
                fake.touch("Opportunity", record_id, StageName=rng.choice(("Negotiation", "Closed Won")))
    else:
        pytest.fail("the pull never completed")
    injected = sum(fake.faults.injected.values())
    assert failures >= 1 and injected >= 0.15 * len(fake.requests), (failures, injected, len(fake.requests))
    for table, sobject in (("accounts", "Account"), ("opportunities", "Opportunity")):
        landed = _landed(url, table)
        assert landed["id"].is_unique and len(landed) == 60
        assert _stamps(landed) == _expected(fake, sobject)
    stages = dict(zip(_landed(url, "opportunities")["id"], _landed(url, "opportunities")["stage_name"]))
    assert stages == {i: r["StageName"] for i, r in fake.records["Opportunity"].items()}


# ------------------------------------------------------------------ the default mapping


def test_the_default_mapping_lands_accounts_and_renewals_in_the_contracts(url, tmp_path):
    fake = org(9, page_size=4)
    no_amount = fake.add("Opportunity", AccountId=sorted(fake.records["Account"])[0], Name="No amount",
                         Type="Renewal", StageName="Prospecting", CloseDate="2026-05-01", Amount=None,
                         IsClosed=False, IsWon=False, CreatedDate="2025-02-01T09:30:00.000+0000")
    _pull(fake, url, tmp_path, bulk_threshold=5)                        # through Bulk: text in, typed out
    wh = Warehouse(url)
    loaded = parse_mapping(DEFAULT_MAPPING.read_text(), source="salesforce.yaml")
    now = pd.Timestamp("2026-06-01")
    report = check_mapping(loaded, wh, now=now)
    assert not report.errors, [str(p) for p in report.errors]
    land_mapping(loaded, wh, now=now)
    accounts = wh.read_contract_table(TARGETS["accounts"], CONTRACTS["accounts"]).set_index("account_id")
    renewals = wh.read_contract_table(TARGETS["renewals"], CONTRACTS["renewals"]).set_index("renewal_id")
    for name, frame in (("accounts", accounts), ("renewals", renewals)):
        result = validate_frame(frame.reset_index(), CONTRACTS[name], known_accounts=accounts.index, now=now,
                                wall_clock=now)
        assert result.success, result.summary()
    segment = {5: "smb", 150: "mid_market", 4000: "enterprise"}
    assert accounts["segment"].to_dict() == {i: segment[r["NumberOfEmployees"]]
                                             for i, r in fake.records["Account"].items()}
    opportunities = fake.records["Opportunity"]
    renewal_ids = {i for i, o in opportunities.items() if o["Type"] == "Renewal" and o["Amount"] is not None}
    assert set(renewals.index) == renewal_ids and no_amount["Id"] not in renewals.index
    for rid in renewal_ids:
        o = opportunities[rid]
        assert renewals.loc[rid, "outcome"] == ("renewed" if o["IsWon"] else "churned" if o["IsClosed"] else "open")
        assert pd.isna(renewals.loc[rid, "closed_at"]) == (not o["IsClosed"])
        assert renewals.loc[rid, "amount"] == o["Amount"] and renewals.loc[rid, "account_id"] == o["AccountId"]
    assert accounts["arr"].to_dict() == {i: r["AnnualRevenue"] for i, r in fake.records["Account"].items()}


def test_soql_of_the_fake_is_what_the_landing_sends():
    """The fake's SOQL reading covers the landing's query (ordering by SystemModstamp)."""
    fake = SalesforceFake()
    fake.add("Account", Name="b", SystemModstamp="2025-01-01T00:00:09.000+0000")
    fake.add("Account", Name="a", SystemModstamp="2025-01-01T00:00:01.000+0000")
    _, rows = fake.select("SELECT Id, Name FROM Account WHERE SystemModstamp >= 2025-01-01T00:00:00Z "
                          "ORDER BY SystemModstamp")
    assert [r["Name"] for r in rows] == ["a", "b"]

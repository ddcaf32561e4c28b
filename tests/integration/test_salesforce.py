"""The Salesforce connector against an HTTP fake of the REST, SOAP login and Bulk 2.0 APIs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
import pandas as pd
import pytest
import responses
import simple_salesforce.bulk2

from connectors.http_retry import RetryPolicy
from connectors.salesforce.client import (
    SalesforceAPIError,
    SalesforceClient,
    SalesforceConnection,
    SalesforceCredentials,
)
from connectors.salesforce.reader import SalesforceCRM, pull_accounts, pull_renewals
from connectors.salesforce.writer import SalesforceWriter
from models.contracts import ACCOUNTS, RENEWALS
from tests.fakes.salesforce_fake import FaultInjector, SalesforceFake

USERNAME = "integration@example.com"
PASSWORD = "Sup3r-Secret-Pa55"
TOKEN = "TOKENxyz987"
API = "/services/data/v59.0"


@pytest.fixture(autouse=True)
def no_bulk_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """simple-salesforce polls Bulk 2.0 jobs with time.sleep; the fake needs no waiting."""
    monkeypatch.setattr(simple_salesforce.bulk2, "sleep", lambda _seconds: None)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def make_fake(rsps: responses.RequestsMock, **kwargs) -> SalesforceFake:
    fake = SalesforceFake(username=USERNAME, password=PASSWORD, security_token=TOKEN, **kwargs).install(rsps)
    ana = fake.add("User", Name="Ana Souza", Email="ana@example.com", Username="ana@example.com", Alias="ana",
                   IsActive=True)
    segments = ["Enterprise", "Mid-Market", "SMB", "Strategic", "Enterprise"]
    for i in range(5):
        fake.add("Account", Name=f"Company {i}", Segment__c=segments[i], Industry="Retail", BillingCountry="DE",
                 AnnualRevenue=1_000_000.0 * (i + 1), ARR__c=10_000.0 * (i + 1), Plan__c="pro", Seats__c=20 + i,
                 OwnerId=ana["Id"], CreatedDate="2023-02-01T09:30:00.000+0000", Rescue_Account_Key__c=f"acc-{i}")
    return fake


def make_client(sleeps: list[float] | None = None, **kwargs) -> SalesforceClient:
    creds = kwargs.pop("credentials", SalesforceCredentials(username=USERNAME, password=PASSWORD,
                                                           security_token=TOKEN))
    return SalesforceClient(creds, bulk_poll_seconds=0, sleep=(sleeps if sleeps is not None else []).append, **kwargs)


def paths(fake: SalesforceFake, method: str | None = None) -> list[str]:
    return [p for m, p in fake.requests if method is None or m == method]


def test_login_posts_the_soap_login_and_reuses_the_session(rsps):
    fake = make_fake(rsps)
    client = make_client()
    assert client.count("Account") == 5
    assert client.count("User") == 1
    assert fake.requests[0] == ("POST", "/services/Soap/u/59.0")
    assert fake.logins == 1 and client.logins == 1


def test_rejected_login_is_a_clear_error_and_is_not_retried(rsps):
    fake = make_fake(rsps)
    client = make_client(credentials=SalesforceCredentials(username=USERNAME, password="wrong", security_token=TOKEN))
    with pytest.raises(SalesforceAPIError, match=r"login failed \(INVALID_LOGIN\)"):
        client.count("Account")
    assert paths(fake) == ["/services/Soap/u/59.0"]


def test_query_pages_through_next_records_url(rsps):
    fake = make_fake(rsps, page_size=2)
    frame = pull_accounts(make_client()).frame
    assert len(frame) == 5
    assert frame["account_id"].is_unique
    query_calls = [p for p in paths(fake, "GET") if p.startswith(f"{API}/query")]
    # COUNT(), then the first page and two nextRecordsUrl pages of 2 records each
    assert query_calls.count(f"{API}/query/") == 2
    assert len([p for p in query_calls if p != f"{API}/query/"]) == 2


def test_accounts_map_into_the_contract_with_a_custom_arr_field(rsps):
    make_fake(rsps)
    crm = SalesforceCRM(connection=SalesforceConnection(username=USERNAME, password=PASSWORD, security_token=TOKEN),
                        account_fields={"arr": "ARR__c"}, segment_values={"Strategic": "enterprise"})
    frame = crm.pull_accounts(make_client()).frame
    assert list(frame.columns) == ACCOUNTS.column_names
    assert sorted(frame["arr"]) == [10_000.0, 20_000.0, 30_000.0, 40_000.0, 50_000.0]
    assert list(frame["segment"]) == ["enterprise", "mid_market", "smb", "enterprise", "enterprise"]
    assert set(frame["csm_owner"]) == {"Ana Souza"}
    assert frame["created_at"].iloc[0] == pd.Timestamp("2023-02-01 09:30:00")
    assert frame["seats"].dtype == "int64"


def test_unknown_canonical_column_in_the_field_map_is_named(rsps):
    crm = SalesforceCRM(connection=SalesforceConnection(username=USERNAME, password=PASSWORD, security_token=TOKEN),
                        account_fields={"annual_revenue": "ARR__c"})
    with pytest.raises(ValueError, match="account_fields: unknown canonical column.*annual_revenue"):
        crm.account_field_map()


def test_field_the_org_lacks_is_reported_with_a_hint(rsps):
    make_fake(rsps)
    with pytest.raises(SalesforceAPIError, match="No such column 'Churn_Tier__c'.*field map"):
        pull_accounts(make_client(), field_map={"account_id": "Id", "segment": "Churn_Tier__c"})


def test_incremental_pull_returns_changes_since_the_watermark(rsps):
    fake = make_fake(rsps)
    client = make_client()
    first = pull_accounts(client)
    assert len(first.frame) == 5 and first.watermark is not None

    changed_id = first.frame["account_id"].iloc[2]
    fake.touch("Account", changed_id, ARR__c=99.0)
    second = pull_accounts(client, since=first.watermark)
    assert list(second.frame["account_id"]) == [changed_id]
    assert second.watermark > first.watermark

    third = pull_accounts(client, since=second.watermark)
    assert third.frame.empty and third.watermark == second.watermark


def test_renewal_opportunities_map_outcomes_from_is_closed_and_is_won(rsps):
    fake = make_fake(rsps)
    acc = next(iter(fake.records["Account"]))
    for stage, closed, won in [("Closed Won", True, True), ("Closed Lost", True, False), ("Negotiation", False, False)]:
        fake.add("Opportunity", AccountId=acc, Type="Renewal", StageName=stage, IsClosed=closed, IsWon=won,
                 CloseDate="2025-03-31", Amount=12_000.0)
    fake.add("Opportunity", AccountId=acc, Type="New Business", StageName="Closed Won", IsClosed=True, IsWon=True,
             CloseDate="2025-01-31", Amount=1.0)
    frame = pull_renewals(make_client(), renewal_filter="Type = 'Renewal'").frame
    assert list(frame.columns) == RENEWALS.column_names
    by_stage = frame.set_index("stage")
    assert by_stage.loc["Closed Won", "outcome"] == "renewed"
    assert by_stage.loc["Closed Lost", "outcome"] == "churned"
    assert by_stage.loc["Negotiation", "outcome"] == "open"
    assert pd.isna(by_stage.loc["Negotiation", "closed_at"])
    assert by_stage.loc["Closed Lost", "closed_at"] == pd.Timestamp("2025-03-31")
    assert len(frame) == 3  # the new-business opportunity is not a renewal


def test_bulk_query_is_used_above_the_threshold_and_matches_rest(rsps):
    fake = make_fake(rsps)
    rest = pull_accounts(make_client(bulk_threshold=100)).frame
    assert not fake.query_jobs
    bulk = pull_accounts(make_client(bulk_threshold=3)).frame
    assert len(fake.query_jobs) == 1
    job_id = next(iter(fake.query_jobs))
    assert f"{API}/jobs/query/{job_id}/results" in paths(fake, "GET")
    pd.testing.assert_frame_equal(bulk.sort_values("account_id").reset_index(drop=True),
                                  rest.sort_values("account_id").reset_index(drop=True))


def test_task_upsert_by_external_id_creates_then_updates(rsps):
    fake = make_fake(rsps)
    writer = SalesforceWriter(connection=SalesforceConnection()).use_client(make_client())
    case = {"case_id": "c-1", "account_id": "acc-1", "account_name": "Company 1", "priority": "P1",
            "reason": "weekly active users down 38%", "sla_first_touch_due": "2025-06-03T10:00:00"}
    first = writer.upsert_task("rescue:c-1", writer.task_fields(case), owner="ana")
    second = writer.upsert_task("rescue:c-1", {**writer.task_fields(case), "Status": "In Progress"}, owner="ana")

    assert first.created and first.record_id and not second.created
    assert first.owner_id == second.owner_id == fake.records["User"][first.owner_id]["Id"]
    assert paths(fake, "PATCH") == [f"{API}/sobjects/Task/Rescue_Key__c/rescue%3Ac-1"] * 2
    tasks = fake.by_key("Task", "Rescue_Key__c")
    assert list(tasks) == ["rescue:c-1"]
    task = tasks["rescue:c-1"]
    assert task["Status"] == "In Progress" and task["Priority"] == "High" and task["ActivityDate"] == "2025-06-03"
    assert task["What"] == {"attributes": {"type": "Account"}, "Rescue_Account_Key__c": "acc-1"}
    user_queries = [p for p in paths(fake, "GET") if p == f"{API}/query/"]
    assert len(user_queries) == 1  # the owner's user id is cached


def test_unknown_owner_leaves_the_task_unassigned(rsps):
    make_fake(rsps)
    writer = SalesforceWriter(connection=SalesforceConnection()).use_client(make_client())
    result = writer.upsert_task("rescue:c-2", {"Subject": "x"}, owner="nobody@example.com")
    assert result.created and result.owner_id is None


def test_bulk_ingest_job_lifecycle_reports_failed_rows_per_external_id(rsps):
    fake = make_fake(rsps)
    fake.add_validation_rule("Account", "Health_Score__c", lambda v: 0 <= float(v) <= 100,
                             "Health score must be between 0 and 100")
    writer = SalesforceWriter(connection=SalesforceConnection()).use_client(make_client(bulk_threshold=2))
    rows = [{"account_id": f"acc-{i}", "health_score": score, "churn_risk": 0.4, "rescue_status": "in_progress",
             "top_reason": "usage down"} for i, score in enumerate([35.0, 150.0, 61.5, 80.0])]
    result = writer.upsert_account_fields(rows)

    assert sorted(result.succeeded) == ["acc-0", "acc-2", "acc-3"]
    assert list(result.failed) == ["acc-1"]
    assert "Health score must be between 0 and 100" in result.failed["acc-1"]
    (job_id,) = result.job_ids
    job_path = f"{API}/jobs/ingest/{job_id}"
    calls = fake.requests
    lifecycle = [("POST", f"{API}/jobs/ingest"), ("PUT", f"{job_path}/batches"), ("PATCH", job_path),
                 ("GET", job_path), ("GET", f"{job_path}/successfulResults"), ("GET", f"{job_path}/failedResults")]
    positions = [calls.index(step) for step in lifecycle]
    assert positions == sorted(positions)
    assert fake.ingest_jobs[job_id].state == "JobComplete"
    accounts = fake.by_key("Account", "Rescue_Account_Key__c")
    assert accounts["acc-2"]["Health_Score__c"] == "61.5" and "Health_Score__c" not in accounts["acc-1"]
    assert not [k for k in fake.creates if k[0] == "Account"]  # updates only: no new Account


def test_small_account_batches_use_single_upserts(rsps):
    fake = make_fake(rsps)
    writer = SalesforceWriter(connection=SalesforceConnection(), account_key_field="Rescue_Account_Key__c")
    writer.use_client(make_client(bulk_threshold=10))
    result = writer.upsert_account_fields([{"account_id": "acc-0", "health_score": 42.0},
                                           {"account_id": "acc-4", "churn_risk": 0.8}])
    assert sorted(result.succeeded) == ["acc-0", "acc-4"] and not result.failed
    assert not fake.ingest_jobs
    assert fake.by_key("Account", "Rescue_Account_Key__c")["acc-4"]["Churn_Risk__c"] == 0.8
    with pytest.raises(ValueError, match="row 0 \\(acc-0\\) has unknown field\\(s\\) health"):
        writer.upsert_account_fields([{"account_id": "acc-0", "health": 1}])


def test_expired_session_logs_in_again_once(rsps):
    fake = make_fake(rsps)
    client = make_client()
    client.count("Account")
    fake.expire_sessions()
    assert client.count("Account") == 5
    assert fake.logins == 2


def test_expired_session_without_password_says_how_to_fix(rsps):
    fake = make_fake(rsps)
    creds = SalesforceCredentials(instance_url=f"https://{fake.instance}", session_id="00Dstale!session")
    with pytest.raises(SalesforceAPIError, match="cannot be renewed.*username/password/security_token") as err:
        make_client(credentials=creds).count("Account")
    assert "00Dstale!session" not in str(err.value)


def test_fault_injection_1000_tasks_are_each_created_exactly_once(rsps):
    faults = FaultInjector(rate=0.3, seed=20250602)
    fake = make_fake(rsps, faults=faults)
    sleeps: list[float] = []
    client = make_client(sleeps)
    writer = SalesforceWriter(connection=SalesforceConnection()).use_client(client)
    keys = [f"rescue:case-{i:04d}" for i in range(1000)]

    pending = list(keys)
    for _redelivery in range(3):  # what the outbox does with items whose retries ran out
        failed = []
        for key in pending:
            try:
                writer.upsert_task(key, {"Subject": f"Churn rescue {key}", "Status": "Not Started"}, owner="ana")
            except SalesforceAPIError:
                failed.append(key)
        pending = failed
        if not pending:
            break

    assert pending == []
    tasks = fake.by_key("Task", "Rescue_Key__c")
    assert sorted(tasks) == keys
    assert len(fake.records["Task"]) == 1000
    assert {fake.creates[("Task", k)] for k in keys} == {1}
    calls = [fake.upsert_calls[("Task", k)] for k in keys]
    assert sum(calls) > 1000  # retries happened...
    assert faults.injected["lost"] > 0 and faults.injected["429"] > 0 and faults.injected["timeout"] > 0
    assert max(calls) >= 2  # ...including re-sends of writes whose response was lost
    assert 2.0 in sleeps  # Retry-After of the 429s was honoured
    assert client.retrier.stats.retries == sum(faults.injected.values()) - client.retrier.stats.exhausted


def test_secrets_never_appear_in_logs_errors_repr_or_run_output(rsps, monkeypatch, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TEST_SF_PASSWORD", PASSWORD)
    monkeypatch.setenv("TEST_SF_TOKEN", TOKEN)
    texts: list[str] = []

    # 1. a Dagster run reading accounts through the resource, with secrets from EnvVar
    fake = make_fake(rsps)
    connection = SalesforceConnection(username=USERNAME, password=dg.EnvVar("TEST_SF_PASSWORD"),
                                      security_token=dg.EnvVar("TEST_SF_TOKEN"), bulk_poll_seconds=0)
    crm = SalesforceCRM(connection=connection)

    @dg.asset
    def crm_accounts_probe(crm: SalesforceCRM) -> dg.MaterializeResult:
        texts.append(repr(crm))
        return dg.MaterializeResult(metadata={"rows": len(crm.accounts())})

    result = dg.materialize([crm_accounts_probe], resources={"crm": crm})
    assert result.success and fake.logins == 1
    texts += [str(e) for e in result.all_events]

    # 2. a failing run: wrong token in the environment
    monkeypatch.setenv("TEST_SF_TOKEN", "wrong-token")
    failed = dg.materialize([crm_accounts_probe], resources={"crm": crm}, raise_on_error=False)
    assert not failed.success
    texts += [str(e) for e in failed.all_events]

    # 3. transient failures until the retries run out
    fake.faults.queue.extend(["429", "timeout", "503"])
    client = make_client(retry_policy=RetryPolicy(max_attempts=3))
    with pytest.raises(SalesforceAPIError) as exhausted:
        client.count("Account")
    texts += [str(exhausted.value), repr(exhausted.value), repr(client), repr(client.credentials),
              repr(connection), repr(crm), repr(SalesforceConnection(username=USERNAME, password=PASSWORD,
                                                                      security_token=TOKEN))]
    assert "gave up after 3 attempt(s)" in str(exhausted.value)

    texts += [r.getMessage() for r in caplog.records]
    captured = capsys.readouterr()
    texts += [captured.out, captured.err]
    blob = "\n".join(texts)
    assert "crm_accounts_probe" in blob and "INVALID_LOGIN" in blob  # the scan did see the runs' output
    for secret in (PASSWORD, TOKEN, PASSWORD + TOKEN, "00Dfake!session"):
        assert secret not in blob


def test_watermark_is_stable_when_nothing_changed(rsps):
    make_fake(rsps)
    client = make_client()
    watermark = pull_accounts(client).watermark
    later = pull_accounts(client, since=watermark + timedelta(days=1))
    assert later.frame.empty and later.watermark == watermark + timedelta(days=1)

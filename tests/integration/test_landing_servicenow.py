"""ServiceNow incidents and cases landed with dlt against an HTTP fake of the Table API.

Pagination over several pages (the ``Link`` header), resumption from dlt's saved cursor after a
pull fails half-way, 429 with Retry-After, 5xx, a refused login, and 30% injected failures over
a multi-page pull: after resume, exactly the fake's records, once each. Then the default mapping
turns the landed tables into the tickets contract (on PostgreSQL, the one test here that needs
a server). Both ITSM sources through ``dg.materialize``: `test_landing_itsm_assets`. No real
waits: tenacity's sleep is replaced and recorded.
"""

from __future__ import annotations

import random
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import responses
import yaml

from connectors.landing.pipeline import LandingError, landing_pipeline, run_pipeline
from connectors.landing.servicenow import LAG_SECONDS, base_url, explain, http_session, servicenow_source, tidy
from connectors.mapping.land import TARGETS, check_mapping, land_mapping
from connectors.mapping.loader import parse_mapping
from connectors.warehouse import Warehouse
from models.contracts import CONTRACTS, TICKETS
from models.quality import validate_frame
from tests.fakes.salesforce_fake import FaultInjector
from tests.fakes.servicenow_fake import INSTANCE, PASSWORD, T0, TOKEN, USER, FakeServiceNow, sn_time, sys_id

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MAPPING = REPO / "connectors" / "mapping" / "sources" / "servicenow.yaml"
PAGE = 10
INCIDENT, CASE = "incident", "sn_customerservice_case"


def _pull(fake: FakeServiceNow, url: str, tmp_path: Path, *, password: str = PASSWORD, token: str = "",
          attempts: int = 6):
    """One landing run against the fake (a fresh pipeline each time: the cursor comes from what dlt saved)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps)
        pipeline = landing_pipeline("servicenow", url, pipelines_dir=tmp_path / "dlt")
        source = servicenow_source(INSTANCE, user=USER, password=password, token=token, page_size=PAGE,
                                   session=http_session(attempts))
        return run_pipeline(pipeline, source, explain)


def _landed(url: str, table: str = "incidents") -> pd.DataFrame:
    return Warehouse(url).read_sql(f"SELECT * FROM servicenow.{table} ORDER BY sys_id")


def _as_landed(frame: pd.DataFrame) -> dict[str, str]:
    stamps = pd.to_datetime(frame["sys_updated_on"], utc=True).dt.strftime("%Y-%m-%d %H:%M:%S")
    return dict(zip(frame["sys_id"], stamps))


def _lagged(stamp: str) -> str:
    return sn_time(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S") - timedelta(seconds=LAG_SECONDS))


def _newest(fake: FakeServiceNow, table: str) -> str:
    return max(r["sys_updated_on"] for r in fake.tables[table].values())


def test_the_instance_becomes_the_api_and_rows_are_tidied():
    assert base_url("acme") == base_url("https://acme.service-now.com/") == "https://acme.service-now.com/api/"
    row = tidy({"sys_id": "x", "state": "6", "escalation": "", "resolved_at": "2026-06-01 09:00:05", "active": "false"})
    assert row == {"sys_id": "x", "state": 6, "escalation": None, "resolved_at": "2026-06-01T09:00:05+00:00",
                   "active": False}


def test_every_page_of_every_table_is_pulled_once_and_every_record_lands_once(url, tmp_path, waits):
    fake = FakeServiceNow.with_records(incidents=25, cases=12, accounts=4, groups=3)
    _pull(fake, url, tmp_path)
    assert fake.pages_requested(INCIDENT) == [1, 2, 3] and fake.pages_requested(CASE) == [1, 2]
    first = next(q for t, q in fake.requests_seen if t == INCIDENT)
    assert first["sysparm_query"] == "sys_updated_on>=2000-01-01 00:00:00^ORDERBYsys_updated_on"
    assert first["sysparm_limit"] == str(PAGE) and "sysparm_offset" not in first
    assert set(first["sysparm_fields"].split(",")) == {
        "sys_id", "number", "state", "priority", "escalation", "category", "assignment_group", "opened_at",
        "resolved_at", "closed_at", "sys_created_on", "sys_updated_on", "company"}
    incidents, cases = _landed(url), _landed(url, "cases")
    assert _as_landed(incidents) == fake.expected(INCIDENT) and len(incidents) == 25
    assert _as_landed(cases) == fake.expected(CASE) and "account" in cases.columns
    assert dict(zip(incidents["sys_id"], incidents["state"])) == {
        k: int(r["state"]) for k, r in fake.tables[INCIDENT].items()}
    assert incidents["closed_at"].isna().all() and incidents["resolved_at"].notna().any()
    assert len(_landed(url, "groups")) == 3 and sorted(_landed(url, "accounts")["name"]) == [f"Account{a}" for a in range(1, 5)]
    assert waits == []


def test_the_next_run_asks_only_for_what_changed_since_the_saved_cursor(url, tmp_path, waits):
    fake = FakeServiceNow.with_records(incidents=30, cases=3)
    _pull(fake, url, tmp_path)
    newest = _newest(fake, INCIDENT)
    fake.update(INCIDENT, 7, state="7")
    fake.update(INCIDENT, 500)
    seen = len(fake.requests_seen)
    _pull(fake, url, tmp_path)
    assert fake.first_since(INCIDENT, seen) == _lagged(newest)
    assert fake.pages_requested(INCIDENT)[-1:] == [1] and len([t for t, _ in fake.requests_seen[seen:] if t == INCIDENT]) == 1
    incidents = _landed(url).set_index("sys_id")
    assert len(incidents) == 31 and incidents.loc[sys_id(INCIDENT, 7), "state"] == 7
    assert _as_landed(incidents.reset_index()) == fake.expected(INCIDENT)


def test_a_change_within_the_second_the_last_pull_ended_is_not_skipped(url, tmp_path, waits):
    fake = FakeServiceNow.with_records(incidents=10, cases=2)
    _pull(fake, url, tmp_path)
    fake.tables[INCIDENT][sys_id(INCIDENT, 10)]["category"] = "changed, same sys_updated_on"
    _pull(fake, url, tmp_path)
    assert _landed(url).set_index("sys_id").loc[sys_id(INCIDENT, 10), "category"] == "changed, same sys_updated_on"


def test_a_pull_that_fails_half_way_resumes_from_the_saved_cursor_losing_and_doubling_nothing(url, tmp_path, waits):
    fake = FakeServiceNow.with_records(incidents=30, cases=4)
    _pull(fake, url, tmp_path)
    newest = _newest(fake, INCIDENT)
    for n in range(1, 31):
        fake.update(INCIDENT, n, category="changed")
    fake.broken_page = (INCIDENT, 2, 500)
    with pytest.raises(LandingError) as failed:
        _pull(fake, url, tmp_path)
    assert "\n" not in str(failed.value) and "ServiceNow answered 500 to every retry" in str(failed.value)
    assert fake.pages_requested(INCIDENT)[-1] == 2
    assert (_landed(url)["category"] != "changed").all(), "nothing of the failed pull was loaded"

    fake.broken_page = None
    fake.update(INCIDENT, 31)
    seen = len(fake.requests_seen)
    _pull(fake, url, tmp_path)
    assert fake.first_since(INCIDENT, seen) == _lagged(newest)
    after = _landed(url)
    assert _as_landed(after) == fake.expected(INCIDENT)
    assert after["sys_id"].is_unique and (after["category"] == "changed").sum() == 30


def test_429_waits_as_long_as_retry_after_says_and_5xx_are_retried(url, tmp_path, waits):
    fake = FakeServiceNow.with_records(incidents=25, cases=5)
    fake.faults = FaultInjector(queue=["429", "500", "503"], retry_after="17")
    _pull(fake, url, tmp_path)
    assert fake.faults.injected == {"429": 1, "500": 1, "503": 1}
    assert waits[0] == 17.0 and len(waits) == 3
    assert _as_landed(_landed(url)) == fake.expected(INCIDENT)


def test_a_refused_login_ends_in_one_line_naming_the_variables_and_a_token_is_sent_as_bearer(url, tmp_path, waits):
    fake = FakeServiceNow.with_records(incidents=5, cases=2)
    secret = "wrong-password-0123456789"
    with pytest.raises(LandingError) as failed:
        _pull(fake, url, tmp_path, password=secret)
    message = str(failed.value)
    assert "\n" not in message and "401" in message
    assert all(v in message for v in ("SERVICENOW_USER", "SERVICENOW_PASSWORD", "SERVICENOW_TOKEN"))
    assert secret not in message and PASSWORD not in message
    assert failed.value.__cause__ is None and failed.value.__suppress_context__
    assert waits == [] and len(fake.requests_seen) == 1
    _pull(fake, url, tmp_path, password="", token=TOKEN)              # OAuth: the bearer token alone
    assert _as_landed(_landed(url)) == fake.expected(INCIDENT)
    on_disk = [p for p in tmp_path.rglob("*") if p.is_file() and any(s.encode() in p.read_bytes()
                                                                      for s in (secret, PASSWORD, TOKEN))]
    assert on_disk == [], "no password or token is kept in the warehouse or dlt's working directory"


def test_30_percent_failures_over_a_multi_page_pull_end_with_every_record_once(url, tmp_path, waits):
    fake = FakeServiceNow.with_records(incidents=60, cases=25)
    fake.faults = FaultInjector(rate=0.3, seed=5, kinds=("429", "500", "503", "timeout"), retry_after="3")
    rng = random.Random(5)
    failures = 0
    for _ in range(40):
        try:
            _pull(fake, url, tmp_path, attempts=2)
            break
        except LandingError:
            failures += 1
            for n in rng.sample(range(1, 61), 3):
                fake.update(INCIDENT, n, state=str(rng.choice((1, 2, 3, 6, 7, 8))))
    else:
        pytest.fail("the pull never completed")
    injected = sum(fake.faults.injected.values())
    assert failures >= 1 and injected >= 0.15 * len(fake.requests_seen), (failures, injected, len(fake.requests_seen))
    for table, landed in ((INCIDENT, "incidents"), (CASE, "cases")):
        frame = _landed(url, landed)
        assert frame["sys_id"].is_unique and _as_landed(frame) == fake.expected(table)
    incidents = _landed(url)
    assert dict(zip(incidents["sys_id"], incidents["state"])) == {k: int(r["state"]) for k, r in fake.tables[INCIDENT].items()}


# ------------------------------------------------------------------ the default mapping


def _company_mapping() -> str:
    shipped = yaml.safe_load(DEFAULT_MAPPING.read_text())
    crm = yaml.safe_load(textwrap.dedent("""
        version: 1
        name: servicenow-company
        accounts:
          source: {table: crm_accounts}
          columns: {account_id: id, name: name, segment: segment, arr: arr, seats: seats, created_at: since}
        renewals:
          source: {table: crm_renewals}
          columns: {renewal_id: id, account_id: account, renewal_date: due, amount: amount, outcome: outcome}
        """))
    crm["sources"] = shipped["sources"]
    crm["tickets"] = shipped["tickets"]
    return yaml.safe_dump(crm, sort_keys=False)


@pytest.mark.postgres
def test_landing_resumes_and_the_default_mapping_holds_on_postgresql(pg_database_url, tmp_path, waits):
    fake = FakeServiceNow.with_records(incidents=24, cases=18, accounts=3)
    fake.update(INCIDENT, 900, company="")                           # an internal incident: no customer
    fake.update(CASE, 901, account=sys_id("customer_account", 2), state="18")
    fake.broken_page = (CASE, 2, 503)
    with pytest.raises(LandingError, match="answered 503"):
        _pull(fake, pg_database_url, tmp_path)
    fake.broken_page = None
    _pull(fake, pg_database_url, tmp_path)
    assert _as_landed(_landed(pg_database_url, "cases")) == fake.expected(CASE)

    wh = Warehouse(pg_database_url)
    names = ["Account1", "Account2", "Account3"]
    since = pd.Timestamp("2024-01-01")
    wh.write_table("crm_accounts", pd.DataFrame({"id": names, "name": names, "segment": ["smb", "enterprise", "smb"],
                                                 "arr": [1000.0, 90000, 500], "seats": [5, 400, 2], "since": [since] * 3}))
    wh.write_table("crm_renewals", pd.DataFrame({"id": ["R1", "R2", "R3"], "account": names,
                                                 "due": [pd.Timestamp("2027-01-01")] * 3, "amount": [1000.0, 90000, 500],
                                                 "outcome": ["open"] * 3}))
    loaded = parse_mapping(_company_mapping(), source="servicenow-company.yaml")
    now = pd.Timestamp(T0).tz_convert(None) + pd.Timedelta(days=1)
    report = check_mapping(loaded, wh, now=now)
    assert not report.errors, [str(p) for p in report.errors]
    land_mapping(loaded, wh, now=now)

    tickets = wh.read_contract_table(TARGETS["tickets"], TICKETS).set_index("ticket_id")
    accounts = wh.read_contract_table(TARGETS["accounts"], CONTRACTS["accounts"])
    result = validate_frame(tickets.reset_index(), TICKETS, known_accounts=accounts["account_id"], now=now, wall_clock=now)
    assert result.success, result.summary()
    assert len(tickets) == 24 + 19 and sys_id(INCIDENT, 900) not in tickets.index
    incident_state = {1: "new", 2: "open", 3: "pending", 6: "solved", 7: "closed", 8: "closed"}
    case_state = {1: "new", 10: "open", 18: "pending", 6: "solved", 3: "closed", 7: "closed"}
    priority = {1: "urgent", 2: "high", 3: "normal", 4: "low", 5: "low"}
    for table, states in ((INCIDENT, incident_state), (CASE, case_state)):
        for key, r in fake.tables[table].items():
            if key not in tickets.index:
                continue
            row = tickets.loc[key]
            assert row["status"] == states[int(r["state"])], (table, r["number"])
            assert row["priority"] == priority[int(r["priority"])]
            assert row["escalated"] == (int(r["escalation"]) > 0)
            assert pd.isna(row["solved_at"]) == (row["status"] not in ("solved", "closed"))
            customer = r["company" if table == INCIDENT else "account"]
            assert row["account_id"] == fake.tables["customer_account"][customer]["name"]
    assert tickets.loc[sys_id(CASE, 901), "status"] == "pending" and tickets["first_response_at"].isna().all()


def test_unset_variables_are_refused_in_one_line_naming_them():
    from connectors.landing.jira import JiraResource
    from connectors.landing.servicenow import ServiceNowResource

    with pytest.raises(LandingError, match="^ServiceNow is a landing source but SERVICENOW_INSTANCE is not set$"):
        ServiceNowResource().source()
    with pytest.raises(LandingError, match="neither SERVICENOW_USER and SERVICENOW_PASSWORD nor SERVICENOW_TOKEN are set$"):
        ServiceNowResource(instance="acme", user=USER).source()
    assert ServiceNowResource(instance="acme", token=TOKEN).source().name == "servicenow"
    with pytest.raises(LandingError, match="^Jira is a landing source but JIRA_EMAIL, JIRA_API_TOKEN are not set$"):
        JiraResource(base_url="acme").source()

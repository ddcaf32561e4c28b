"""Freshdesk tickets landed with dlt against an HTTP fake of the Freshdesk API v2.

Pagination over several pages, resumption from dlt's saved cursor after a pull fails half-way,
429 with Retry-After, 5xx, a refused API key, and 30% injected failures over a multi-page pull:
after resume, exactly the fake's tickets, once each. Then the default mapping turns the landed
tables into the tickets contract. No real waits: tenacity's sleep is replaced and recorded.
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

from connectors.landing.freshdesk import LAG_SECONDS, base_url, explain, freshdesk_source, http_session
from connectors.landing.pipeline import LandingError, destination_for, landing_pipeline, run_pipeline
from connectors.mapping.land import TARGETS, check_mapping, land_mapping
from connectors.mapping.loader import parse_mapping
from connectors.warehouse import Warehouse
from models.contracts import CONTRACTS, TICKETS
from models.quality import validate_frame
from tests.fakes.freshdesk_fake import API_KEY, DOMAIN, STATUS_CLOSED, STATUS_RESOLVED, FakeFreshdesk, T0, iso
from tests.fakes.salesforce_fake import FaultInjector

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MAPPING = REPO / "connectors" / "mapping" / "sources" / "freshdesk.yaml"


def _pull(fake: FakeFreshdesk, url: str, tmp_path: Path, *, api_key: str = API_KEY, attempts: int = 6):
    """One landing run against the fake (a fresh pipeline object each time, as a new process
    would have: the cursor comes from what dlt saved)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps)
        pipeline = landing_pipeline("freshdesk", url, pipelines_dir=tmp_path / "dlt")
        return run_pipeline(pipeline, freshdesk_source(DOMAIN, api_key, session=http_session(attempts)), explain)


def _landed(url: str, table: str = "tickets") -> pd.DataFrame:
    return Warehouse(url).read_sql(f"SELECT * FROM freshdesk.{table} ORDER BY id")


def _expected(fake: FakeFreshdesk) -> dict[int, str]:
    return {i: t["updated_at"] for i, t in sorted(fake.tickets.items())}


def _as_landed(frame: pd.DataFrame) -> dict[int, str]:
    stamps = pd.to_datetime(frame["updated_at"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return dict(zip(frame["id"].astype(int), stamps))


def _since_of_first_ticket_request(fake: FakeFreshdesk, after: int) -> str:
    return next(q["updated_since"] for r, q in fake.requests_seen[after:] if r == "tickets")


def _lagged(cursor: str) -> str:
    """What the next pull asks for after `cursor`: dlt's lag before it."""
    return iso(datetime.fromisoformat(cursor.replace("Z", "+00:00")) - timedelta(seconds=LAG_SECONDS))


def test_the_domain_and_the_warehouse_url_become_the_api_and_the_destination(tmp_path):
    assert base_url("acme") == base_url("acme.freshdesk.com") == "https://acme.freshdesk.com/api/v2/"
    assert base_url("https://support.acme.io/") == "https://support.acme.io/api/v2/"
    assert destination_for(f"duckdb:///{tmp_path}/w.duckdb").destination_name == "duckdb"
    assert destination_for("postgresql+psycopg://u:p@db:5432/wh").destination_name == "postgres"
    with pytest.raises(LandingError, match="RESCUE_WAREHOUSE_URL: dlt lands sources in DuckDB"):
        destination_for(f"sqlite:///{tmp_path}/w.db")
    with pytest.raises(LandingError, match="not an in-memory database"):
        destination_for("duckdb:///:memory:")


def test_every_page_is_pulled_once_and_every_ticket_lands_once(url, tmp_path, waits):
    fake = FakeFreshdesk.with_tickets(250, companies=4)
    _pull(fake, url, tmp_path)
    assert fake.ticket_pages_requested() == [1, 2, 3]
    first = next(q for r, q in fake.requests_seen if r == "tickets")
    assert first == {"per_page": "100", "include": "stats", "order_by": "updated_at", "order_type": "asc",
                     "updated_since": "2000-01-01T00:00:00Z"}
    tickets = _landed(url)
    assert _as_landed(tickets) == _expected(fake) and len(tickets) == 250
    assert tickets["stats__resolved_at"].notna().sum() == sum(
        t["status"] in (STATUS_RESOLVED, STATUS_CLOSED) for t in fake.tickets.values())
    assert sorted(_landed(url, "companies")["custom_fields__account_id"]) == ["ACC001", "ACC002", "ACC003", "ACC004"]
    assert waits == []


def test_the_next_run_asks_only_for_what_changed_since_the_saved_cursor(url, tmp_path, waits):
    fake = FakeFreshdesk.with_tickets(120)
    _pull(fake, url, tmp_path)
    last = max(t["updated_at"] for t in fake.tickets.values())
    fake.update(7, status=STATUS_CLOSED)
    fake.update(500)                                   # a new ticket
    seen = len(fake.requests_seen)
    _pull(fake, url, tmp_path)
    assert _since_of_first_ticket_request(fake, seen) == _lagged(last)
    assert [q.get("page", "1") for r, q in fake.requests_seen[seen:] if r == "tickets"] == ["1"]
    tickets = _landed(url).set_index("id")
    assert len(tickets) == 121 and tickets.loc[7, "status"] == STATUS_CLOSED
    assert _as_landed(tickets.reset_index()) == _expected(fake)


def test_a_change_within_the_second_the_last_pull_ended_is_not_skipped(url, tmp_path, waits):
    fake = FakeFreshdesk.with_tickets(10)
    _pull(fake, url, tmp_path)
    fake.tickets[10]["subject"] = "changed again, same updated_at"   # Freshdesk's updated_at has whole seconds
    _pull(fake, url, tmp_path)
    tickets = _landed(url).set_index("id")
    assert tickets.loc[10, "subject"] == "changed again, same updated_at" and len(tickets) == 10


def test_a_pull_that_fails_half_way_resumes_from_the_saved_cursor_losing_and_doubling_nothing(url, tmp_path, waits):
    fake = FakeFreshdesk.with_tickets(150)
    _pull(fake, url, tmp_path)
    cursor = max(t["updated_at"] for t in fake.tickets.values())
    for i in range(1, 151):                            # 150 changes: two pages of them
        fake.update(i, subject="changed")
    fake.broken_page = (2, 500)
    seen = len(fake.requests_seen)
    with pytest.raises(LandingError) as failed:
        _pull(fake, url, tmp_path)
    assert "\n" not in str(failed.value) and "answered 500 to every retry" in str(failed.value)
    assert fake.ticket_pages_requested()[-1] == 2      # page 1 came back, page 2 did not
    before = _landed(url)
    assert (before["subject"] != "changed").all(), "nothing of the failed pull was loaded"

    fake.broken_page = None
    fake.update(151)
    seen = len(fake.requests_seen)
    _pull(fake, url, tmp_path)
    assert _since_of_first_ticket_request(fake, seen) == _lagged(cursor)   # resumed from the saved state
    after = _landed(url)
    assert _as_landed(after) == _expected(fake)
    assert after["id"].is_unique and (after["subject"] == "changed").sum() == 150


def test_429_waits_as_long_as_retry_after_says_and_5xx_are_retried(url, tmp_path, waits):
    fake = FakeFreshdesk.with_tickets(230)
    fake.faults = FaultInjector(queue=["429", "500", "503"], retry_after="17")
    _pull(fake, url, tmp_path)
    assert fake.faults.injected == {"429": 1, "500": 1, "503": 1}
    assert waits[0] == 17.0 and len(waits) == 3       # Retry-After honoured, then backoff for the 5xx
    assert _as_landed(_landed(url)) == _expected(fake)


def test_a_refused_api_key_ends_in_one_line_naming_the_variable_and_is_not_retried(url, tmp_path, waits):
    fake = FakeFreshdesk.with_tickets(10)
    secret = "wrong-key-0123456789"
    with pytest.raises(LandingError) as failed:
        _pull(fake, url, tmp_path, api_key=secret)
    message = str(failed.value)
    assert "\n" not in message and "FRESHDESK_API_KEY" in message and "401" in message
    assert secret not in message and API_KEY not in message
    assert failed.value.__cause__ is None and failed.value.__suppress_context__
    assert waits == [] and len([r for r, _ in fake.requests_seen if r == "tickets"]) == 1
    _pull(fake, url, tmp_path)
    on_disk = [p for p in tmp_path.rglob("*") if p.is_file() and (secret.encode() in p.read_bytes()
                                                                   or API_KEY.encode() in p.read_bytes())]
    assert on_disk == [], "no key is kept in the warehouse or dlt's working directory"


def test_30_percent_failures_over_a_multi_page_pull_end_with_every_ticket_once(url, tmp_path, waits):
    fake = FakeFreshdesk.with_tickets(640)                 # 7 pages of tickets
    fake.faults = FaultInjector(rate=0.3, seed=14, kinds=("429", "500", "503", "timeout"), retry_after="3")
    rng = random.Random(14)
    failures = 0
    for _ in range(40):
        try:
            _pull(fake, url, tmp_path, attempts=2)          # few attempts: whole runs fail, and resume
            break
        except LandingError:
            failures += 1
            for i in rng.sample(sorted(fake.tickets), 5):   # the help desk goes on working meanwhile
                fake.update(i, status=rng.choice((2, 3, 4, 5)))
    else:
        pytest.fail("the pull never completed")
    injected = sum(fake.faults.injected.values())
    assert failures >= 1 and injected >= 0.15 * len(fake.requests_seen), (failures, injected, len(fake.requests_seen))
    tickets = _landed(url)
    assert tickets["id"].is_unique and len(tickets) == 640
    assert _as_landed(tickets) == _expected(fake)
    assert dict(zip(tickets["id"], tickets["status"])) == {i: t["status"] for i, t in fake.tickets.items()}


# ------------------------------------------------------------------ the default mapping


def _company_mapping(tmp_path: Path) -> str:
    """A company mapping: its accounts and renewals from CRM tables, and Freshdesk's default
    `tickets` section and source copied in as shipped."""
    shipped = yaml.safe_load(DEFAULT_MAPPING.read_text())
    crm = yaml.safe_load(textwrap.dedent("""
        version: 1
        name: freshdesk-company
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


def test_the_default_mapping_lands_freshdesk_tickets_in_the_tickets_contract(url, tmp_path, waits):
    fake = _mapping_company()
    _pull(fake, url, tmp_path)
    _check_the_default_mapping(fake, url, tmp_path)


@pytest.mark.postgres
def test_landing_resumes_and_the_default_mapping_holds_on_postgresql(pg_database_url, tmp_path, waits):
    fake = _mapping_company()
    fake.broken_page = (3, 503)
    with pytest.raises(LandingError, match="answered 503"):
        _pull(fake, pg_database_url, tmp_path)
    fake.broken_page = None
    _pull(fake, pg_database_url, tmp_path)
    assert _as_landed(_landed(pg_database_url)) == _expected(fake)
    _check_the_default_mapping(fake, pg_database_url, tmp_path)


def _mapping_company() -> FakeFreshdesk:
    fake = FakeFreshdesk.with_tickets(260, companies=4)
    fake.companies[4]["custom_fields"]["account_id"] = None          # no CRM id: the company's name
    fake.companies[5] = {**fake.companies[3], "id": 5, "name": "Quiet Ltd"}  # a company without tickets
    fake.update(900, company_id=None)                                # a person writing in on their own
    fake.update(901, status=7)                                       # a custom status
    return fake


def _check_the_default_mapping(fake: FakeFreshdesk, url: str, tmp_path: Path) -> None:
    wh = Warehouse(url)
    since = pd.Timestamp("2024-01-01")
    wh.write_table("crm_accounts", pd.DataFrame({
        "id": ["ACC001", "ACC002", "ACC003", "Company4", "ACC005"], "name": ["A", "B", "C", "D", "E"],
        "segment": ["smb", "enterprise", "mid_market", "smb", "smb"], "arr": [1000.0, 90000, 20000, 500, 800],
        "seats": [5, 400, 60, 2, 3], "since": [since] * 5}))
    wh.write_table("crm_renewals", pd.DataFrame({
        "id": [f"R{i}" for i in range(5)], "account": ["ACC001", "ACC002", "ACC003", "Company4", "ACC005"],
        "due": [pd.Timestamp("2027-01-01")] * 5, "amount": [1000.0, 90000, 20000, 500, 800], "outcome": ["open"] * 5}))
    loaded = parse_mapping(_company_mapping(tmp_path), source="freshdesk-company.yaml")
    now = pd.Timestamp(T0).tz_convert(None) + pd.Timedelta(days=1)
    report = check_mapping(loaded, wh, now=now)
    assert not report.errors, [str(p) for p in report.errors]
    land_mapping(loaded, wh, now=now)

    tickets = wh.read_contract_table(TARGETS["tickets"], TICKETS).set_index("ticket_id")
    accounts = wh.read_contract_table(TARGETS["accounts"], CONTRACTS["accounts"])
    result = validate_frame(tickets.reset_index(), TICKETS, known_accounts=accounts["account_id"], now=now, wall_clock=now)
    assert result.success, result.summary()
    assert len(tickets) == 261 and "900" not in tickets.index       # every ticket with a company, once
    source = fake.tickets
    status = {2: "open", 3: "pending", 4: "solved", 5: "closed", 7: "pending"}
    priority = {1: "low", 2: "normal", 3: "high", 4: "urgent"}
    for tid in ("1", "2", "3", "4", "901"):
        t = source[int(tid)]
        assert tickets.loc[tid, "status"] == status[t["status"]]
        assert tickets.loc[tid, "priority"] == priority[t["priority"]]
        assert tickets.loc[tid, "category"] == t["type"]
        assert pd.isna(tickets.loc[tid, "solved_at"]) == (t["status"] not in (4, 5))
    assert tickets.loc["4", "account_id"] == "ACC001" and tickets.loc["3", "account_id"] == "Company4"
    assert tickets.loc["7", "escalated"] and not tickets.loc["8", "escalated"]
    assert tickets.loc["1", "first_response_at"] == pd.Timestamp(source[1]["stats"]["first_responded_at"]).tz_convert(None)


# ------------------------------------------------------------------ as Dagster assets


def _materialize(fake: FakeFreshdesk, url: str, monkeypatch, tmp_path: Path, key: str):
    import dagster as dg
    from dagster_dlt import DagsterDltResource

    from assets.landing import freshdesk_assets
    from connectors.landing.freshdesk import FreshdeskResource
    from connectors.warehouse import WarehouseResource

    monkeypatch.setenv("RESCUE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FRESHDESK_DOMAIN", DOMAIN)
    monkeypatch.setenv("FRESHDESK_API_KEY", key)
    resources = {"dlt": DagsterDltResource(), "warehouse": WarehouseResource(url=url),
                 "freshdesk_account": FreshdeskResource(domain=dg.EnvVar("FRESHDESK_DOMAIN"),
                                                        api_key=dg.EnvVar("FRESHDESK_API_KEY"))}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps)
        return dg.materialize([freshdesk_assets(url)], resources=resources, raise_on_error=False)


def test_the_landing_assets_land_through_dagster_and_a_refused_key_is_one_line(url, tmp_path, monkeypatch, waits):
    fake = FakeFreshdesk.with_tickets(150)
    result = _materialize(fake, url, monkeypatch, tmp_path, API_KEY)
    assert result.success
    landed = {m.asset_key.to_user_string(): m.metadata["rows_loaded"].value
              for m in result.asset_materializations_for_node("freshdesk_landing")}
    assert landed == {"dlt_freshdesk_tickets": 150, "dlt_freshdesk_companies": 5}
    assert _as_landed(_landed(url)) == _expected(fake)

    secret = "refused-key-42"
    failed = _materialize(fake, url, monkeypatch, tmp_path, secret)
    assert not failed.success
    error = next(e for e in failed.all_events if e.is_step_failure).step_failure_data.error
    assert "\n" not in error.message.strip() and "FRESHDESK_API_KEY" in error.message
    shown = " ".join(str(e.event_specific_data) + str(e.message) for e in failed.all_events)
    assert secret not in shown and API_KEY not in shown

    cursor = max(t["updated_at"] for t in fake.tickets.values())
    fake.update(3, status=STATUS_CLOSED)
    seen = len(fake.requests_seen)
    again = _materialize(fake, url, monkeypatch, tmp_path, API_KEY)   # dagster-dlt drops the local state first
    assert again.success and _since_of_first_ticket_request(fake, seen) == _lagged(cursor)  # restored from the warehouse
    assert _as_landed(_landed(url)) == _expected(fake)

"""Zendesk tickets and organizations landed with dlt against an HTTP fake of the Zendesk API v2.

Pagination over several export and organization pages, resumption from dlt's saved cursor after
a pull fails half-way, 429 with Retry-After, 5xx, a refused API token and unset variables, and
30% injected failures over a multi-page pull: after resume, exactly the fake's tickets, once
each. Then the default mapping turns the landed tables into the tickets contract (deleted tickets
left out). No real waits: tenacity's sleep is replaced and recorded.
"""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import responses
import yaml

from connectors.landing.pipeline import LandingError, landing_pipeline, run_pipeline
from connectors.landing.zendesk import LAG_SECONDS, ZendeskResource, base_url, explain, http_session, zendesk_source
from connectors.mapping.land import TARGETS, check_mapping, land_mapping
from connectors.mapping.loader import parse_mapping
from connectors.warehouse import Warehouse
from models.contracts import CONTRACTS, TICKETS
from models.quality import validate_frame
from tests.fakes.salesforce_fake import FaultInjector
from tests.fakes.zendesk_fake import API_TOKEN, EMAIL, SUBDOMAIN, T0, FakeZendesk, organization

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MAPPING = REPO / "connectors" / "mapping" / "sources" / "zendesk.yaml"
PAGE = 50          # tickets per export page in these tests (the source asks for 1000)
ORG_PAGE = 3       # organizations per page


def _source(token: str = API_TOKEN, attempts: int = 6):
    return zendesk_source(SUBDOMAIN, EMAIL, token, page_size=PAGE, organizations_page_size=ORG_PAGE,
                          session=http_session(attempts))


def _pull(fake: FakeZendesk, url: str, tmp_path: Path, *, token: str = API_TOKEN, attempts: int = 6):
    """One landing run against the fake (a fresh pipeline object each time, as a new process
    would have: the cursor comes from what dlt saved)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps)
        pipeline = landing_pipeline("zendesk", url, pipelines_dir=tmp_path / "dlt")
        return run_pipeline(pipeline, _source(token, attempts), explain)


def _landed(url: str, table: str = "tickets") -> pd.DataFrame:
    return Warehouse(url).read_sql(f"SELECT * FROM zendesk.{table} ORDER BY id")


def _expected(fake: FakeZendesk) -> dict[int, tuple[int, str]]:
    return {i: (t["generated_timestamp"], t["status"]) for i, t in sorted(fake.tickets.items())}


def _as_landed(frame: pd.DataFrame) -> dict[int, tuple[int, str]]:
    return {int(i): (int(g), s) for i, g, s in zip(frame["id"], frame["generated_timestamp"], frame["status"])}


def _start_times(fake: FakeZendesk, after: int = 0) -> list[int]:
    return [int(q["start_time"]) for r, q in fake.requests_seen[after:] if r == "tickets" and "start_time" in q]


def _cursor(fake: FakeZendesk) -> int:
    return max(t["generated_timestamp"] for t in fake.tickets.values())


def test_the_subdomain_becomes_the_api():
    assert base_url("acme") == base_url("acme.zendesk.com") == "https://acme.zendesk.com/api/v2/"
    assert base_url("https://acme.zendesk.com/") == "https://acme.zendesk.com/api/v2/"
    assert base_url("https://support.acme.io/hc/en-us") == "https://support.acme.io/api/v2/"


def test_every_page_is_pulled_once_and_every_ticket_lands_once_with_its_metrics(url, tmp_path, waits):
    fake = FakeZendesk.with_tickets(230, organizations=7)       # 5 export pages, 3 organization pages
    _pull(fake, url, tmp_path)
    assert fake.ticket_pages_requested() == [1, 2, 3, 4, 5]
    tickets_asked = [q for r, q in fake.requests_seen if r == "tickets"]
    assert tickets_asked[0] == {"start_time": "0", "include": "metric_sets", "per_page": str(PAGE)}
    assert all(set(q) == {"cursor", "include", "per_page"} for q in tickets_asked[1:])   # the cursor alone
    orgs_asked = [q for r, q in fake.requests_seen if r == "organizations"]
    assert len(orgs_asked) == 3 and "page[after]" not in orgs_asked[0] and all("page[after]" in q for q in orgs_asked[1:])

    tickets = _landed(url).set_index("id")
    assert _as_landed(tickets.reset_index()) == _expected(fake) and len(tickets) == 230
    for i in (4, 6, 11, 12):                                     # solved, new, no metric set, open
        metric = fake.metrics.get(i)
        landed_minutes = tickets.loc[i, "metric_set__reply_time_in_minutes__calendar"]
        assert (pd.isna(landed_minutes) if metric is None or metric["reply_time_in_minutes"]["calendar"] is None
                else landed_minutes == metric["reply_time_in_minutes"]["calendar"])
        assert pd.isna(tickets.loc[i, "metric_set__solved_at"]) == (metric is None or metric["solved_at"] is None)
        assert tickets.loc[i, "satisfaction_rating__score"] == fake.tickets[i]["satisfaction_rating"]["score"]
    assert sorted(_landed(url, "organizations")["external_id"]) == [f"ACC{o:03d}" for o in range(1, 8)]
    assert waits == []


def test_the_next_run_exports_only_what_changed_since_the_saved_cursor_and_a_deletion_lands(url, tmp_path, waits):
    fake = FakeZendesk.with_tickets(120)
    _pull(fake, url, tmp_path)
    last = _cursor(fake)
    fake.change(7, status="solved")
    fake.delete(8)
    fake.change(500)                                              # a new ticket
    fake.organizations[2]["name"] = "Renamed Ltd"
    seen = len(fake.requests_seen)
    _pull(fake, url, tmp_path)
    assert _start_times(fake, seen) == [last - LAG_SECONDS]       # dlt's saved cursor, less the lag
    assert fake.ticket_pages_requested()[-1] == 1                 # three changes: one page
    tickets = _landed(url).set_index("id")
    assert len(tickets) == 121 and tickets.loc[7, "status"] == "solved" and tickets.loc[8, "status"] == "deleted"
    assert _as_landed(tickets.reset_index()) == _expected(fake)
    assert "Renamed Ltd" in set(_landed(url, "organizations")["name"])   # replaced, not appended
    assert len(_landed(url, "organizations")) == 5


def test_a_change_within_the_second_the_last_pull_ended_is_not_skipped(url, tmp_path, waits):
    fake = FakeZendesk.with_tickets(10)
    _pull(fake, url, tmp_path)
    fake.tickets[10]["subject"] = "changed again, same generated_timestamp"   # whole seconds
    _pull(fake, url, tmp_path)
    tickets = _landed(url).set_index("id")
    assert tickets.loc[10, "subject"] == "changed again, same generated_timestamp" and len(tickets) == 10


def test_a_pull_that_fails_half_way_resumes_from_the_saved_cursor_losing_and_doubling_nothing(url, tmp_path, waits):
    fake = FakeZendesk.with_tickets(90)
    _pull(fake, url, tmp_path)
    cursor = _cursor(fake)
    for i in range(1, 91):                                        # 90 changes: two pages of them
        fake.change(i, subject="changed")
    fake.broken_page = (2, 500)
    with pytest.raises(LandingError) as failed:
        _pull(fake, url, tmp_path)
    assert "\n" not in str(failed.value) and "Zendesk answered 500 to every retry" in str(failed.value)
    assert fake.ticket_pages_requested()[-1] == 2                 # page 1 came back, page 2 did not
    assert (_landed(url)["subject"] != "changed").all(), "nothing of the failed pull was loaded"

    fake.broken_page = None
    fake.change(91)
    seen = len(fake.requests_seen)
    _pull(fake, url, tmp_path)
    assert _start_times(fake, seen) == [cursor - LAG_SECONDS]     # resumed from the saved state
    after = _landed(url)
    assert _as_landed(after) == _expected(fake)
    assert after["id"].is_unique and (after["subject"] == "changed").sum() == 90


def test_429_waits_as_long_as_retry_after_says_and_5xx_are_retried(url, tmp_path, waits):
    fake = FakeZendesk.with_tickets(120)
    fake.faults = FaultInjector(queue=["429", "500", "503"], retry_after="17")
    _pull(fake, url, tmp_path)
    assert fake.faults.injected == {"429": 1, "500": 1, "503": 1}
    assert waits[0] == 17.0 and len(waits) == 3                  # Retry-After honoured, then backoff for the 5xx
    assert _as_landed(_landed(url)) == _expected(fake)


def test_a_refused_token_ends_in_one_line_naming_the_variable_and_is_not_retried(url, tmp_path, waits):
    fake = FakeZendesk.with_tickets(10)
    secret = "wrong-token-0123456789"
    with pytest.raises(LandingError) as failed:
        _pull(fake, url, tmp_path, token=secret)
    message = str(failed.value)
    assert "\n" not in message and "ZENDESK_API_TOKEN" in message and "401" in message
    assert secret not in message and API_TOKEN not in message
    assert failed.value.__cause__ is None and failed.value.__suppress_context__
    assert waits == [] and len([r for r, _ in fake.requests_seen if r == "tickets"]) == 1
    _pull(fake, url, tmp_path)
    on_disk = [p for p in tmp_path.rglob("*") if p.is_file() and (secret.encode() in p.read_bytes()
                                                                   or API_TOKEN.encode() in p.read_bytes())]
    assert on_disk == [], "no token is kept in the warehouse or dlt's working directory"


def test_unset_variables_are_refused_in_one_line_naming_them():
    with pytest.raises(LandingError, match=r"^Zendesk is a landing source but ZENDESK_EMAIL, ZENDESK_API_TOKEN are not set$"):
        ZendeskResource(subdomain="acme").source()
    with pytest.raises(LandingError, match=r"but ZENDESK_SUBDOMAIN is not set$"):
        ZendeskResource(email=EMAIL, api_token=API_TOKEN).source()


def test_30_percent_failures_over_a_multi_page_pull_end_with_every_ticket_once(url, tmp_path, waits):
    fake = FakeZendesk.with_tickets(640)                      # 13 export pages
    fake.faults = FaultInjector(rate=0.3, seed=7, kinds=("429", "500", "503", "timeout"), retry_after="3")
    rng = random.Random(7)
    failures = 0
    for _ in range(40):
        try:
            _pull(fake, url, tmp_path, attempts=2)           # few attempts: whole runs fail, and resume
            break
        except LandingError:
            failures += 1
            for i in rng.sample(sorted(fake.tickets), 5):    # the help desk goes on working meanwhile
                fake.change(i, status=rng.choice(("open", "pending", "solved", "closed")))
            fake.delete(rng.choice(sorted(fake.tickets)))
    else:
        pytest.fail("the pull never completed")
    injected = sum(fake.faults.injected.values())
    assert failures >= 3 and injected >= 0.15 * len(fake.requests_seen), (failures, injected, len(fake.requests_seen))
    tickets = _landed(url)
    assert tickets["id"].is_unique and len(tickets) == 640
    assert _as_landed(tickets) == _expected(fake)


# ------------------------------------------------------------------ the default mapping


def _company_mapping() -> str:
    """A company mapping: its accounts and renewals from CRM tables, and Zendesk's default
    `tickets` section and source copied in as shipped."""
    shipped = yaml.safe_load(DEFAULT_MAPPING.read_text())
    crm = yaml.safe_load(textwrap.dedent("""
        version: 1
        name: zendesk-company
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


def _mapping_company() -> FakeZendesk:
    fake = FakeZendesk.with_tickets(130, organizations=4)
    fake.organizations[3] = organization(3, "Org3", external_id=None, account_id="ACC003")  # the custom field
    fake.organizations[4] = organization(4, "Org4", external_id="", account_id=None)        # the name
    fake.organizations[5] = organization(5, "Quiet Ltd", external_id="ACC005")              # no tickets
    fake.change(900, organization_id=None)                 # a person writing in on their own
    fake.delete(12)                                        # was open
    fake.delete(16)                                        # was solved
    fake.change(13, tags=["not_escalated", "vip"])         # a tag that only contains the word
    return fake


def _check_the_default_mapping(fake: FakeZendesk, url: str) -> None:
    wh = Warehouse(url)
    since = pd.Timestamp("2024-01-01")
    ids = ["ACC001", "ACC002", "ACC003", "Org4", "ACC005"]
    wh.write_table("crm_accounts", pd.DataFrame({
        "id": ids, "name": ["A", "B", "C", "D", "E"], "segment": ["smb", "enterprise", "mid_market", "smb", "smb"],
        "arr": [1000.0, 90000, 20000, 500, 800], "seats": [5, 400, 60, 2, 3], "since": [since] * 5}))
    wh.write_table("crm_renewals", pd.DataFrame({
        "id": [f"R{i}" for i in range(5)], "account": ids, "due": [pd.Timestamp("2027-01-01")] * 5,
        "amount": [1000.0, 90000, 20000, 500, 800], "outcome": ["open"] * 5}))
    loaded = parse_mapping(_company_mapping(), source="zendesk-company.yaml")
    now = pd.Timestamp(T0).tz_convert(None) + pd.Timedelta(days=1)
    report = check_mapping(loaded, wh, now=now)
    assert not report.errors, [str(p) for p in report.errors]
    land_mapping(loaded, wh, now=now)

    tickets = wh.read_contract_table(TARGETS["tickets"], TICKETS).set_index("ticket_id")
    accounts = wh.read_contract_table(TARGETS["accounts"], CONTRACTS["accounts"])
    result = validate_frame(tickets.reset_index(), TICKETS, known_accounts=accounts["account_id"], now=now, wall_clock=now)
    assert result.success, result.summary()
    live = {str(i) for i, t in fake.live_tickets().items() if t["organization_id"] is not None}
    assert set(tickets.index) == live and len(live) == 128         # deleted and organization-less left out
    assert not {"12", "16", "900"} & set(tickets.index)
    status = {"new": "open", "open": "open", "pending": "pending", "hold": "pending", "solved": "solved",
              "closed": "closed"}
    for tid in ("1", "2", "3", "4", "5", "6", "7", "11", "13", "14"):
        t, metric = fake.tickets[int(tid)], fake.metrics.get(int(tid))
        row = tickets.loc[tid]
        assert row["status"] == status[t["status"]]
        assert row["priority"] == (t["priority"] or "normal")
        assert (pd.isna(row["category"]) and t["type"] is None) or row["category"] == t["type"]
        assert row["csat"] == {"good": 5.0, "bad": 1.0}[t["satisfaction_rating"]["score"]] if t["status"] in (
            "solved", "closed") else pd.isna(row["csat"])
        assert pd.isna(row["solved_at"]) == (t["status"] not in ("solved", "closed") or metric is None)
        minutes = metric and metric["reply_time_in_minutes"]["calendar"]
        created = pd.Timestamp(t["created_at"]).tz_convert(None)
        assert (pd.isna(row["first_response_at"]) if minutes is None
                else row["first_response_at"] == created + pd.Timedelta(minutes=minutes))
        assert bool(row["escalated"]) == ("escalated" in t["tags"])
    assert tickets.loc["4", "solved_at"] == pd.Timestamp(fake.metrics[4]["solved_at"]).tz_convert(None)
    assert tickets.loc["7", "escalated"] and tickets.loc["14", "escalated"] and not tickets.loc["3", "escalated"]
    assert not tickets.loc["13", "escalated"]
    # the account: external_id, else the organization field, else the name
    assert {tickets.loc[str(i), "account_id"] for i in (4, 8)} == {"ACC001"}     # organization 1 + i % 4
    assert tickets.loc["6", "account_id"] == "ACC003" and tickets.loc["7", "account_id"] == "Org4"


def test_the_default_mapping_lands_zendesk_tickets_in_the_tickets_contract(url, tmp_path, waits):
    fake = _mapping_company()
    _pull(fake, url, tmp_path)
    _check_the_default_mapping(fake, url)


@pytest.mark.postgres
def test_landing_resumes_and_the_default_mapping_holds_on_postgresql(pg_database_url, tmp_path, waits):
    fake = _mapping_company()
    fake.broken_page = (2, 503)
    with pytest.raises(LandingError, match="answered 503"):
        _pull(fake, pg_database_url, tmp_path)
    fake.broken_page = None
    _pull(fake, pg_database_url, tmp_path)
    assert _as_landed(_landed(pg_database_url)) == _expected(fake)
    _check_the_default_mapping(fake, pg_database_url)


# ------------------------------------------------------------------ as Dagster assets


def _materialize(fake: FakeZendesk, url: str, monkeypatch, tmp_path: Path, token: str):
    import dagster as dg
    from dagster_dlt import DagsterDltResource

    from assets.landing import zendesk_assets
    from connectors.landing.zendesk import bound_resource
    from connectors.warehouse import WarehouseResource

    monkeypatch.setenv("RESCUE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ZENDESK_SUBDOMAIN", SUBDOMAIN)
    monkeypatch.setenv("ZENDESK_EMAIL", EMAIL)
    monkeypatch.setenv("ZENDESK_API_TOKEN", token)
    resources = {"dlt": DagsterDltResource(), "warehouse": WarehouseResource(url=url),
                 "zendesk_account": bound_resource()}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps)
        return dg.materialize([zendesk_assets(url)], resources=resources, raise_on_error=False)


def test_the_landing_assets_land_through_dagster_and_a_refused_token_is_one_line(url, tmp_path, monkeypatch, waits):
    fake = FakeZendesk.with_tickets(150)
    result = _materialize(fake, url, monkeypatch, tmp_path, API_TOKEN)
    assert result.success
    landed = {m.asset_key.to_user_string(): m.metadata["rows_loaded"].value
              for m in result.asset_materializations_for_node("zendesk_landing")}
    assert landed == {"dlt_zendesk_tickets": 150, "dlt_zendesk_organizations": 5}
    assert _as_landed(_landed(url)) == _expected(fake)

    secret = "refused-token-42"
    failed = _materialize(fake, url, monkeypatch, tmp_path, secret)
    assert not failed.success
    error = next(e for e in failed.all_events if e.is_step_failure).step_failure_data.error
    assert "\n" not in error.message.strip() and "ZENDESK_API_TOKEN" in error.message
    shown = " ".join(str(e.event_specific_data) + str(e.message) for e in failed.all_events)
    assert secret not in shown and API_TOKEN not in shown

    cursor = _cursor(fake)
    fake.change(3, status="closed")
    seen = len(fake.requests_seen)
    again = _materialize(fake, url, monkeypatch, tmp_path, API_TOKEN)   # dagster-dlt drops the local state first
    assert again.success and _start_times(fake, seen) == [cursor - LAG_SECONDS]  # restored from the warehouse
    assert _as_landed(_landed(url)) == _expected(fake)

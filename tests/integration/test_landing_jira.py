"""Jira Service Management issues landed with dlt against an HTTP fake of the Jira Cloud API.

Pagination over several pages (``nextPageToken``; organizations by ``start`` / ``isLastPage``),
resumption from dlt's saved cursor after a pull fails half-way, 429 with Retry-After, 5xx, a
refused token, and 30% injected failures over a multi-page pull: after resume, exactly the fake's
issues, once each. Then the default mapping turns the landed tables into the tickets contract.
No real waits: tenacity's sleep is replaced and recorded.
"""

from __future__ import annotations

import random
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import responses
import yaml

from connectors.landing.jira import (
    LAG_SECONDS,
    base_url,
    explain,
    http_session,
    jira_source,
    jql_minute,
    project_keys,
    zone,
)
from connectors.landing.pipeline import LandingError, landing_pipeline, run_pipeline
from connectors.mapping.land import TARGETS, check_mapping, land_mapping
from connectors.mapping.loader import parse_mapping
from connectors.settings import JiraSettings
from connectors.warehouse import Warehouse
from models.contracts import CONTRACTS, TICKETS
from models.quality import validate_frame
from tests.fakes.jira_fake import EMAIL, SITE, TOKEN, FakeJira, T0
from tests.fakes.salesforce_fake import FaultInjector

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MAPPING = REPO / "connectors" / "mapping" / "sources" / "jira.yaml"
PAGE = 10


def _pull(fake: FakeJira, url: str, tmp_path: Path, *, token: str = TOKEN, attempts: int = 6,
          settings: JiraSettings | None = None):
    """One landing run against the fake (a fresh pipeline each time: the cursor comes from what dlt saved)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps)
        pipeline = landing_pipeline("jira", url, pipelines_dir=tmp_path / "dlt")
        source = jira_source(SITE, EMAIL, token, settings=settings, page_size=PAGE, session=http_session(attempts))
        return run_pipeline(pipeline, source, explain)


def _landed(url: str, table: str = "issues") -> pd.DataFrame:
    return Warehouse(url).read_sql(f"SELECT * FROM jira.{table} ORDER BY id")


def _expected(fake: FakeJira) -> dict[str, pd.Timestamp]:
    return {i["id"]: pd.Timestamp(datetime.fromisoformat(i["fields"]["updated"])) for i in fake.issues.values()}


def _as_landed(frame: pd.DataFrame) -> dict[str, pd.Timestamp]:
    return dict(zip(frame["id"].astype(str), pd.to_datetime(frame["updated"], utc=True)))


def _lagged_minute(updated: str) -> str:
    """The JQL start the next pull sends after a cursor `updated`: the lag, then the minute."""
    return (datetime.fromisoformat(updated) - timedelta(seconds=LAG_SECONDS)).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


def _newest(fake: FakeJira) -> str:
    return max((i["fields"]["updated"] for i in fake.issues.values()), key=datetime.fromisoformat)


def test_the_site_the_projects_and_the_cursor_become_the_search():
    assert base_url("acme") == base_url("https://acme.atlassian.net/") == "https://acme.atlassian.net/rest/"
    assert project_keys(" sup, Help ,sup") == ("SUP", "HELP")
    with pytest.raises(LandingError, match=r"^JIRA_PROJECTS: 'SUP\) OR \(1' is not a Jira project key"):
        project_keys("SUP) or (1")
    # the minute in the account's zone, never later than the cursor
    assert jql_minute("2026-06-01T09:07:59.999+00:00", zone("UTC")) == "2026-06-01 09:07"
    assert jql_minute("2026-01-15T23:30:10.000+00:00", zone("Europe/Berlin")) == "2026-01-16 00:30"
    with pytest.raises(LandingError, match="^JIRA_TIMEZONE='Mars/Olympus' is not a time zone name"):
        zone("Mars/Olympus")


def test_every_page_is_pulled_once_and_every_issue_lands_once_as_a_flat_row(url, tmp_path, waits):
    fake = FakeJira.with_issues(25, organizations=60)            # 3 search pages, 2 organization pages
    _pull(fake, url, tmp_path, settings=JiraSettings(projects="SUP,HELP"))
    assert fake.search_pages_requested() == [1, 2, 3]
    first = next(q for r, q in fake.requests_seen if r == "issues")
    assert first["jql"] == 'project in ("SUP", "HELP") AND updated >= "2000-01-01 00:00" ORDER BY updated ASC'
    assert first["maxResults"] == str(PAGE) and set(first["fields"].split(",")) == {
        "project", "status", "priority", "created", "updated", "resolutiondate", "labels",
        "customfield_10002", "customfield_10010", "customfield_10031", "customfield_10030"}
    assert [q["start"] for r, q in fake.requests_seen if r == "organizations"] == ["0", "50"]
    issues = _landed(url)
    assert _as_landed(issues) == _expected(fake) and len(issues) == 25
    row = issues.set_index("key").loc["SUP-11"]
    source = fake.issues[11]["fields"]
    assert (row["status"], row["status_category"], row["priority"]) == (
        source["status"]["name"], source["status"]["statusCategory"]["key"], source["priority"]["name"])
    assert row["organization_id"] == source["customfield_10002"][0]["id"] and row["request_type"] == "Get IT help"
    stop = source["customfield_10031"]["completedCycles"][0]["stopTime"]["epochMillis"]
    assert pd.Timestamp(row["first_response_at"]).value // 1_000_000 == stop
    assert row["first_response_breached"] and not issues.set_index("key").loc["SUP-12", "first_response_breached"]
    assert issues.set_index("key").loc["SUP-14", "resolution_breached"]       # an ongoing cycle breached
    assert len(_landed(url, "organizations")) == 60
    assert waits == []


def test_the_next_run_asks_only_for_what_changed_since_the_saved_cursor_less_the_lag(url, tmp_path, waits):
    fake = FakeJira.with_issues(30)
    _pull(fake, url, tmp_path)
    newest = _newest(fake)
    fake.update(7, status=4)
    fake.update(500)                                             # a new issue
    seen = len(fake.requests_seen)
    _pull(fake, url, tmp_path)
    assert fake.first_search_since(seen) == _lagged_minute(newest)
    assert len([r for r, _ in fake.requests_seen[seen:] if r == "issues"]) == 1   # the last minutes only
    issues = _landed(url).set_index("key")
    assert len(issues) == 31 and issues.loc["SUP-7", "status"] == "Closed"
    assert _as_landed(issues.reset_index()) == _expected(fake)


def test_an_issue_indexed_late_within_the_lag_is_still_landed(url, tmp_path, waits):
    fake = FakeJira.with_issues(20)
    late = fake.issues.pop(18)                      # changed two minutes before the newest, not yet in the index
    _pull(fake, url, tmp_path)
    fake.issues[18] = late                          # the index catches up: older than the saved cursor
    _pull(fake, url, tmp_path)
    assert _as_landed(_landed(url)) == _expected(fake) and len(_landed(url)) == 20


def test_a_pull_that_fails_half_way_resumes_from_the_saved_cursor_losing_and_doubling_nothing(url, tmp_path, waits):
    fake = FakeJira.with_issues(30)
    _pull(fake, url, tmp_path)
    newest = _newest(fake)
    for i in range(1, 31):                                       # 30 changes: three pages of them
        fake.update(i, labels=["changed"])
    fake.broken_page = (2, 500)
    with pytest.raises(LandingError) as failed:
        _pull(fake, url, tmp_path)
    assert "\n" not in str(failed.value) and "Jira answered 500 to every retry" in str(failed.value)
    assert fake.search_pages_requested()[-1] == 2                # page 1 came back, page 2 did not
    assert (_landed(url)["labels"] != '["changed"]').all(), "nothing of the failed pull was loaded"

    fake.broken_page = None
    fake.update(31)
    seen = len(fake.requests_seen)
    _pull(fake, url, tmp_path)
    assert fake.first_search_since(seen) == _lagged_minute(newest)   # resumed from the saved state
    after = _landed(url)
    assert _as_landed(after) == _expected(fake)
    assert after["id"].is_unique and (after["labels"] == '["changed"]').sum() == 30


def test_429_waits_as_long_as_retry_after_says_and_5xx_are_retried(url, tmp_path, waits):
    fake = FakeJira.with_issues(25)
    fake.faults = FaultInjector(queue=["429", "500", "503"], retry_after="17")
    _pull(fake, url, tmp_path)
    assert fake.faults.injected == {"429": 1, "500": 1, "503": 1}
    assert waits[0] == 17.0 and len(waits) == 3                 # Retry-After honoured, then backoff for the 5xx
    assert _as_landed(_landed(url)) == _expected(fake)


def test_a_refused_token_ends_in_one_line_naming_the_variables_and_is_not_retried(url, tmp_path, waits):
    fake = FakeJira.with_issues(5)
    secret = "wrong-token-0123456789"
    with pytest.raises(LandingError) as failed:
        _pull(fake, url, tmp_path, token=secret)
    message = str(failed.value)
    assert "\n" not in message and "401" in message and "JIRA_API_TOKEN" in message and "JIRA_EMAIL" in message
    assert secret not in message and TOKEN not in message
    assert failed.value.__cause__ is None and failed.value.__suppress_context__
    assert waits == [] and len([r for r, _ in fake.requests_seen if r == "issues"]) == 1
    _pull(fake, url, tmp_path)
    on_disk = [p for p in tmp_path.rglob("*") if p.is_file() and (secret.encode() in p.read_bytes()
                                                                   or TOKEN.encode() in p.read_bytes())]
    assert on_disk == [], "no token is kept in the warehouse or dlt's working directory"


def test_30_percent_failures_over_a_multi_page_pull_end_with_every_issue_once(url, tmp_path, waits):
    fake = FakeJira.with_issues(70)                              # 7 search pages
    fake.faults = FaultInjector(rate=0.3, seed=21, kinds=("429", "500", "503", "timeout"), retry_after="3")
    rng = random.Random(21)
    failures = 0
    for _ in range(40):
        try:
            _pull(fake, url, tmp_path, attempts=2)               # few attempts: whole runs fail, and resume
            break
        except LandingError:
            failures += 1
            for i in rng.sample(sorted(fake.issues), 3):         # the service desk goes on working meanwhile
                fake.update(i, status=rng.randrange(5))
    else:
        pytest.fail("the pull never completed")
    injected = sum(fake.faults.injected.values())
    assert failures >= 1 and injected >= 0.15 * len(fake.requests_seen), (failures, injected, len(fake.requests_seen))
    issues = _landed(url)
    assert issues["id"].is_unique and len(issues) == 70
    assert _as_landed(issues) == _expected(fake)
    assert dict(zip(issues["id"], issues["status"])) == {i["id"]: i["fields"]["status"]["name"] for i in fake.issues.values()}


# ------------------------------------------------------------------ the default mapping


def _company_mapping() -> str:
    shipped = yaml.safe_load(DEFAULT_MAPPING.read_text())
    crm = yaml.safe_load(textwrap.dedent("""
        version: 1
        name: jira-company
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


def test_the_default_mapping_lands_jira_issues_in_the_tickets_contract(url, tmp_path, waits):
    fake = FakeJira.with_issues(40, organizations=3)
    fake.organizations[3]["name"] = "Org3 Renamed"              # the organizations table has the current name
    fake.update(900, **{"customfield_10002": []})               # a request from a customer without an organization
    fake.update(901, priority={"id": "9", "name": "Critical"})
    _pull(fake, url, tmp_path)

    wh = Warehouse(url)
    names = ["Org1", "Org2", "Org3 Renamed"]
    since = pd.Timestamp("2024-01-01")
    wh.write_table("crm_accounts", pd.DataFrame({"id": names, "name": names, "segment": ["smb", "enterprise", "smb"],
                                                 "arr": [1000.0, 90000, 500], "seats": [5, 400, 2], "since": [since] * 3}))
    wh.write_table("crm_renewals", pd.DataFrame({"id": ["R1", "R2", "R3"], "account": names,
                                                 "due": [pd.Timestamp("2027-01-01")] * 3, "amount": [1000.0, 90000, 500],
                                                 "outcome": ["open"] * 3}))
    loaded = parse_mapping(_company_mapping(), source="jira-company.yaml")
    now = pd.Timestamp(T0).tz_convert(None) + pd.Timedelta(days=1)
    report = check_mapping(loaded, wh, now=now)
    assert not report.errors, [str(p) for p in report.errors]
    land_mapping(loaded, wh, now=now)

    tickets = wh.read_contract_table(TARGETS["tickets"], TICKETS).set_index("ticket_id")
    accounts = wh.read_contract_table(TARGETS["accounts"], CONTRACTS["accounts"])
    result = validate_frame(tickets.reset_index(), TICKETS, known_accounts=accounts["account_id"], now=now, wall_clock=now)
    assert result.success, result.summary()
    assert len(tickets) == 41 and "10900" not in tickets.index          # every issue with an organization, once
    status = {"Waiting for support": "new", "In progress": "open", "Waiting for customer": "pending",
              "Resolved": "solved", "Closed": "closed"}
    priority = {"Highest": "urgent", "High": "high", "Medium": "normal", "Low": "low", "Lowest": "low", "Critical": "urgent"}
    for n in (1, 2, 3, 4, 5, 14, 22, 901):
        f = fake.issues[n]["fields"]
        row = tickets.loc[fake.issues[n]["id"]]
        assert row["status"] == status[f["status"]["name"]], n
        assert row["priority"] == priority[f["priority"]["name"]], n
        assert row["category"] == f["customfield_10010"]["requestType"]["name"]
        assert pd.isna(row["solved_at"]) == (f["status"]["statusCategory"]["key"] != "done")
        assert row["escalated"] == (n % 11 == 0 or n % 7 == 0), n
    assert tickets.loc["10003", "account_id"] == "Org1" and tickets.loc["10002", "account_id"] == "Org3 Renamed"
    stop = fake.issues[1]["fields"]["customfield_10031"]["completedCycles"][0]["stopTime"]["epochMillis"]
    assert tickets.loc["10001", "first_response_at"] == pd.Timestamp(stop, unit="ms")

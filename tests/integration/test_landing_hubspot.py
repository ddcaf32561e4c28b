"""HubSpot companies and deals landed with dlt against an HTTP fake of the CRM v3 search API.

Search paging over several pages and past the search's cap of results per query (the cursor
moves on), deals with their primary company, the next run asking only for what changed since the
saved ``hs_lastmodifieddate``, resumption after a pull fails half-way, 429 with Retry-After and
5xx, a refused token, and 30% injected failures over a multi-page pull: after resume, exactly the
portal's records, once each. Then the default mapping turns the landed tables into the accounts
and renewals contracts. No real waits: tenacity's sleep is replaced and recorded.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import responses

from connectors.landing.hubspot import LAG_SECONDS, HubSpotResource, explain, http_session, hubspot_source
from connectors.landing.pipeline import LandingError, landing_pipeline, run_pipeline
from connectors.mapping.land import TARGETS, check_mapping, land_mapping
from connectors.mapping.loader import parse_mapping
from connectors.warehouse import Warehouse
from models.contracts import CONTRACTS
from models.quality import validate_frame
from tests.fakes.hubspot_search_fake import TOKEN, FakeHubSpot, iso
from tests.fakes.salesforce_fake import FaultInjector

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MAPPING = REPO / "connectors" / "mapping" / "sources" / "hubspot.yaml"


def _pull(fake: FakeHubSpot, url: str, tmp_path: Path, *, token: str = TOKEN, attempts: int = 6,
          per_page: int = 10, cap: int = 10_000):
    """One landing run (a fresh pipeline object, as a new process would have)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps)
        pipeline = landing_pipeline("hubspot", url, pipelines_dir=tmp_path / "dlt")
        source = hubspot_source(token, per_page=per_page, search_cap=cap, session=http_session(attempts))
        return run_pipeline(pipeline, source, explain)


def _landed(url: str, table: str = "companies") -> pd.DataFrame:
    return Warehouse(url).read_sql(f"SELECT * FROM hubspot.{table} ORDER BY id")


def _as_landed(frame: pd.DataFrame) -> dict[str, str]:
    stamps = pd.to_datetime(frame["properties__hs_lastmodifieddate"], utc=True)
    return dict(zip(frame["id"], (iso(s.to_pydatetime()) for s in stamps)))


def _expected(fake: FakeHubSpot, kind: str = "companies") -> dict[str, str]:
    return {i: r["properties"]["hs_lastmodifieddate"] for i, r in sorted(getattr(fake, kind).items())}


def _ms(text: str, lag: int = 0) -> str:
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00")) - timedelta(seconds=lag)
    return str(int(stamp.timestamp() * 1000))


def test_search_pages_and_the_result_cap_are_paged_past_and_every_record_lands_once(url, tmp_path, waits):
    fake = FakeHubSpot.with_data(47, 23, search_cap=20)
    _pull(fake, url, tmp_path, cap=20)
    companies = [(s["after"], s["filters"][0]["value"]) for s in fake.searches if s["object"] == "companies"]
    first = companies[0][1]
    assert first == _ms("2000-01-01T00:00:00.000Z", LAG_SECONDS) or first == _ms("2000-01-01T00:00:00.000Z")
    assert [a for a, _ in companies] == [0, 10, 0, 10, 0]               # the cap: twice the query starts again
    windows = [v for a, v in companies if a == 0]                       # from the last one received: 20, then 39
    assert windows[1:] == [_ms(fake.companies[i]["properties"]["hs_lastmodifieddate"]) for i in ("20", "39")]
    assert max(a for a, _ in companies) < fake.search_cap
    landed = _landed(url)
    assert len(landed) == 47 and landed["id"].is_unique and _as_landed(landed) == _expected(fake)
    deals = _landed(url, "deals").set_index("id")
    assert len(deals) == 23 and _as_landed(deals.reset_index()) == _expected(fake, "deals")
    companies_of = {d: next(c for c, t in links if t == 5) if any(t == 5 for _, t in links) else links[0][0]
                    for d, links in fake.associations.items()}
    assert deals["company_id"].to_dict() == companies_of and "999999" not in set(deals["company_id"])
    assert sum(map(len, fake.association_reads)) == 23 + 1              # per page; the cap's repeated deal again
    assert deals["properties__amount"].dtype == float and deals["properties__hs_is_closed_won"].dtype == bool
    assert waits == []


def test_the_next_run_asks_only_for_what_changed_since_the_saved_cursor(url, tmp_path, waits):
    fake = FakeHubSpot.with_data(25, 5, step=120)                        # two minutes apart: the lag holds one
    _pull(fake, url, tmp_path)
    last = max(r["properties"]["hs_lastmodifieddate"] for r in fake.companies.values())
    fake.touch("companies", 4, name="Renamed")
    fake.add_company(300)
    seen = len(fake.searches)
    _pull(fake, url, tmp_path)
    asked = [s for s in fake.searches[seen:] if s["object"] == "companies"]
    assert [s["after"] for s in asked] == [0] and asked[0]["filters"][0]["value"] == _ms(last, LAG_SECONDS)
    assert asked[0]["returned"] == 3                     # the last one again, and the two changes
    landed = _landed(url).set_index("id")
    assert len(landed) == 26 and landed.loc["4", "properties__name"] == "Renamed"
    assert _as_landed(landed.reset_index()) == _expected(fake)


def test_a_pull_that_fails_half_way_resumes_from_the_saved_cursor_losing_and_doubling_nothing(url, tmp_path, waits):
    fake = FakeHubSpot.with_data(30, 4)
    _pull(fake, url, tmp_path)
    cursor = max(r["properties"]["hs_lastmodifieddate"] for r in fake.companies.values())
    fake.now += timedelta(minutes=10)
    for i in range(1, 31):
        fake.touch("companies", i, name="changed")
    fake.broken = ("companies", 10, 500)                                # the second page fails every time
    with pytest.raises(LandingError) as failed:
        _pull(fake, url, tmp_path, attempts=2)
    assert "\n" not in str(failed.value) and "answered 500 to every retry" in str(failed.value)
    assert (_landed(url)["properties__name"] != "changed").all(), "nothing of the failed pull was loaded"

    fake.broken = None
    seen = len(fake.searches)
    _pull(fake, url, tmp_path)
    asked = next(s for s in fake.searches[seen:] if s["object"] == "companies")
    assert asked["filters"][0]["value"] == _ms(cursor, LAG_SECONDS)   # resumed from the saved state
    after = _landed(url)
    assert after["id"].is_unique and (after["properties__name"] == "changed").sum() == 30
    assert _as_landed(after) == _expected(fake)


def test_429_waits_as_long_as_retry_after_says_and_5xx_are_retried(url, tmp_path, waits):
    fake = FakeHubSpot.with_data(25, 3)
    fake.faults = FaultInjector(queue=["429", "500", "503"], retry_after="13")
    _pull(fake, url, tmp_path)
    assert fake.faults.injected == {"429": 1, "500": 1, "503": 1}
    assert waits[0] == 13.0 and len(waits) == 3
    assert _as_landed(_landed(url)) == _expected(fake)


def test_a_refused_token_ends_in_one_line_naming_the_variable_and_is_not_retried(url, tmp_path, waits):
    fake = FakeHubSpot.with_data(5, 2)
    secret = "pat-na1-wrong-token-999"
    with pytest.raises(LandingError) as failed:
        _pull(fake, url, tmp_path, token=secret)
    message = str(failed.value)
    assert "\n" not in message and "HUBSPOT_ACCESS_TOKEN" in message and "401" in message
    assert secret not in message and TOKEN not in message
    assert waits == []
    with pytest.raises(LandingError, match="^HubSpot is a landing source but HUBSPOT_ACCESS_TOKEN is not set$"):
        HubSpotResource().source()


def test_more_records_in_one_millisecond_than_the_cap_are_refused_not_skipped(url, tmp_path, waits):
    fake = FakeHubSpot.with_data(25)
    for record in fake.companies.values():
        record["properties"]["hs_lastmodifieddate"] = iso(fake.now)
    with pytest.raises(LandingError, match="more than 20 records modified at hs_lastmodifieddate"):
        _pull(fake, url, tmp_path, cap=20)


def test_30_percent_failures_over_a_multi_page_pull_end_with_every_record_once(url, tmp_path, waits):
    fake = FakeHubSpot.with_data(90, 40)                                # 9 + 4 pages
    fake.faults = FaultInjector(rate=0.3, seed=5, kinds=("429", "500", "503", "timeout"), retry_after="2")
    rng = random.Random(5)
    failures = 0
    for _ in range(40):
        try:
            _pull(fake, url, tmp_path, attempts=2)
            break
        except LandingError:
            failures += 1
            for deal in rng.sample(sorted(fake.deals), 3):              # the sales team goes on working
                fake.touch("deals", deal, dealstage=rng.choice(("closedwon", "contractsent")))
    else:
        pytest.fail("the pull never completed")
    requests = len(fake.searches) + len(fake.association_reads)
    injected = sum(fake.faults.injected.values())
    assert failures >= 1 and injected >= 0.15 * requests, (failures, injected, requests)
    for kind, count in (("companies", 90), ("deals", 40)):
        landed = _landed(url, kind)
        assert landed["id"].is_unique and len(landed) == count and _as_landed(landed) == _expected(fake, kind)
    stages = dict(zip(_landed(url, "deals")["id"], _landed(url, "deals")["properties__dealstage"]))
    assert stages == {i: d["properties"]["dealstage"] for i, d in fake.deals.items()}


# ------------------------------------------------------------------ the default mapping


def _mapping_portal() -> FakeHubSpot:
    fake = FakeHubSpot.with_data(12, 16)
    fake.touch("companies", 2, numberofemployees="4000", annualrevenue="")   # a cleared value
    fake.touch("deals", 1003, amount="")                                # no amount: not read
    fake.touch("companies", 3, numberofemployees="150")
    fake.add_deal(2000, 1, dealtype="newbusiness")                      # not a renewal
    fake.add_deal(2001, None)                                           # no company
    return fake


def _check_the_default_mapping(fake: FakeHubSpot, url: str) -> None:
    wh = Warehouse(url)
    loaded = parse_mapping(DEFAULT_MAPPING.read_text(), source="hubspot.yaml")
    now = pd.Timestamp("2026-06-02")
    report = check_mapping(loaded, wh, now=now)
    assert not report.errors, [str(p) for p in report.errors]
    land_mapping(loaded, wh, now=now)
    accounts = wh.read_contract_table(TARGETS["accounts"], CONTRACTS["accounts"]).set_index("account_id")
    renewals = wh.read_contract_table(TARGETS["renewals"], CONTRACTS["renewals"]).set_index("renewal_id")
    for name, frame in (("accounts", accounts), ("renewals", renewals)):
        result = validate_frame(frame.reset_index(), CONTRACTS[name], known_accounts=accounts.index, now=now,
                                wall_clock=now)
        assert result.success, result.summary()
    assert len(accounts) == 12 and accounts.loc["2", "segment"] == "enterprise" and accounts.loc["2", "arr"] == 0
    assert accounts.loc["3", "segment"] == "mid_market" and accounts.loc["1", "segment"] == "smb"
    assert accounts.loc["1", "arr"] == 120000 and accounts.loc["1", "name"] == "Company 1"
    assert set(renewals.index) == {str(1000 + d) for d in range(1, 17)} - {"1003"}  # renewal deals with a company
    assert "properties__annualrevenue__v_text" not in wh.read_sql("SELECT * FROM hubspot.companies").columns
    outcome = {"closedwon": "renewed", "closedlost": "churned"}
    for rid in renewals.index:
        deal = fake.deals[rid]["properties"]
        assert renewals.loc[rid, "outcome"] == outcome.get(deal["dealstage"], "open")
        assert pd.isna(renewals.loc[rid, "closed_at"]) == (deal["dealstage"] not in outcome)
    assert renewals.loc["1005", "account_id"] == "6"                    # its only company, unlabelled


def test_the_default_mapping_lands_companies_and_deals_in_the_contracts(url, tmp_path, waits):
    fake = _mapping_portal()
    _pull(fake, url, tmp_path)
    _check_the_default_mapping(fake, url)


@pytest.mark.postgres
def test_landing_resumes_and_the_default_mapping_holds_on_postgresql(pg_database_url, tmp_path, waits):
    fake = _mapping_portal()
    fake.broken = ("deals", 10, 503)
    with pytest.raises(LandingError, match="answered 503"):
        _pull(fake, pg_database_url, tmp_path, attempts=2)
    fake.broken = None
    _pull(fake, pg_database_url, tmp_path)
    assert _as_landed(_landed(pg_database_url, "deals")) == _expected(fake, "deals")
    _check_the_default_mapping(fake, pg_database_url)

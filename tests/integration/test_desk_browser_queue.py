"""The queue page in a real headless Chromium: SLA due times across a weekend in the reader's zone,
the queue's one order, and a list that refreshes itself without losing what is being typed.

The desk and Chromium are those of `test_desk_browser.py` (Debian's `/usr/bin/chromium` through
Playwright, the seeded queue of `desk_fixtures.py` served by uvicorn). Screenshots go to
`test-artifacts/`.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
from playwright.sync_api import Browser, Page

from models.cases.sla_text import local_time
from models.policy.loader import load_policy
from tests.integration.desk_fixtures import POLICY, SNAPSHOT, DeskEnv, desk_env, live_desk, seed_frames, utc_now  # noqa: F401
from tests.integration.test_desk_browser import ARTIFACTS, browser, chromium  # noqa: F401


def sign_in(browser: Browser, base: str, token: str, *, timezone_id: str | None = None) -> Page:  # noqa: F811
    options = {"timezone_id": timezone_id} if timezone_id else {}
    page = browser.new_context(base_url=base, viewport={"width": 1360, "height": 900}, **options).new_page()
    page.goto("/login")
    page.fill("#token", token)
    page.click("form[action='/login'] button")
    page.wait_for_url(f"{base}/queue")
    return page


def add_case(env: DeskEnv, account_id: str, *, priority: str, arr: float, risk: float, opened: datetime,
             first_touch_due: datetime) -> str:
    """Route one more account of the seed's shape (team csm) into the queue; its case id."""
    decisions, candidates, contexts = seed_frames(opened)
    decisions, candidates = decisions.iloc[[0]].copy(), candidates.iloc[[0]].copy()
    for frame in (decisions, candidates):
        frame["account_id"] = account_id
        frame["expected_arr_at_risk"] = risk * arr
    candidates["arr"], candidates["churn_risk"], candidates["name"] = arr, risk, f"Account {account_id}"
    decisions["priority"], decisions["team"] = priority, "csm"
    decisions["sla_first_touch_due"] = first_touch_due
    decisions["sla_resolution_due"] = first_touch_due + timedelta(days=10)
    context = {**contexts["ACME-001"], "account": {**contexts["ACME-001"]["account"], "account_id": account_id,
                                                   "name": f"Account {account_id}"}}
    env.store.apply_decisions(decisions, candidates, contexts={account_id: context}, policy_version="2026.11.0",
                              policy_hash="hash-1", model_version="m1", snapshot_date=SNAPSHOT, now=opened)
    cases = env.store.list_cases(status=None)
    return str(cases.loc[cases["account_id"] == account_id, "case_id"].iloc[0])


def last_friday_afternoon(now: datetime) -> datetime:
    """The latest Friday 15:00 UTC at or before `now`."""
    day = now.replace(hour=15, minute=0, second=0, microsecond=0)
    while day.weekday() != 4 or day > now:
        day -= timedelta(days=1)
    return day


def row_text(page: Page, case_id: str) -> str:
    return page.locator(f"tr[data-case-id='{case_id}']").inner_text()


def test_a_case_due_across_a_weekend_reads_its_due_day_in_the_readers_zone(
        browser: Browser, live_desk: tuple[DeskEnv, str]) -> None:  # noqa: F811
    env, base = live_desk
    now = utc_now()
    opened = last_friday_afternoon(now)
    # One business day of the csm team's calendar (London, 09:00-17:30: 510 minutes) from Friday
    # 15:00: 2.5 hours on Friday, the rest after the weekend.
    cal = load_policy(POLICY).team_calendar("csm")
    due = cal.add_business_minutes(opened.replace(tzinfo=timezone.utc), 510).astimezone(timezone.utc).replace(tzinfo=None)
    assert due.weekday() in (0, 1) and (due.date() - opened.date()).days >= 3  # Monday, Tuesday after a bank holiday
    case_id = add_case(env, "WEEK-005", priority="P3", arr=30_000.0, risk=0.5, opened=opened, first_touch_due=due)

    page = sign_in(browser, base, env.tokens["csm_amara"], timezone_id="America/New_York")
    page.goto("/queue?scope=team&tz=UTC")  # the zone pinned in the URL: UTC
    text = row_text(page, case_id)
    utc_due = f"{due:%a} {due.day} {due:%b} {due:%H:%M} UTC"
    assert utc_due in text, text
    assert ("overdue by" in text and "business" in text) if due <= now else ("business" in text and "left" in text)
    assert "d " not in text.split("UTC")[0][-6:]  # no "1d 16h" countdown in 24-hour days

    # Without ?tz= the page follows the browser's zone (the desk_tz cookie desk.js sets).
    page.goto("/queue?scope=team")
    new_york = local_time(due, "America/New_York", now=now)
    page.wait_for_function("([id, want]) => (document.querySelector(`tr[data-case-id='${id}']`) || {}).innerText"
                           "?.includes(want)", arg=[case_id, new_york], timeout=10_000)
    assert new_york.endswith(("EST", "EDT")) and new_york in row_text(page, case_id)
    assert "Times are America/New_York" in page.inner_text("#queue-list")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "desk-queue-weekend-due.png"), full_page=True)


def test_two_same_priority_cases_read_in_the_queue_order(browser: Browser,
                                                         live_desk: tuple[DeskEnv, str]) -> None:  # noqa: F811
    env, base = live_desk
    now = utc_now()
    # A P1 with the smallest ARR at risk of the P1s, breached: it comes first. Then the P1s by ARR
    # at risk, not by due time: Big (1,000,000 at risk, due in 20 days), Cora (910,000 x 74%, due in
    # 40 business hours), Acme (480,000 x 81%, due in 60), whatever their case ids.
    breached = add_case(env, "LATE-006", priority="P1", arr=20_000.0, risk=0.5, opened=now - timedelta(days=3),
                        first_touch_due=now - timedelta(days=2))
    big = add_case(env, "BIG-007", priority="P1", arr=2_000_000.0, risk=0.5, opened=now - timedelta(hours=1),
                   first_touch_due=now + timedelta(days=20))
    page = sign_in(browser, base, env.tokens["rs_lead_maya"])
    page.goto("/queue?scope=all")
    ids = page.locator("table.queue tbody tr").evaluate_all("rows => rows.map(r => r.dataset.caseId)")
    cora, acme = env.case_ids["CORA-003"], env.case_ids["ACME-001"]
    assert ids[:4] == [breached, big, cora, acme], ids
    assert ids[4:] == [env.case_ids["BOLT-002"], env.case_ids["DUNE-004"]]
    assert "BREACHED" in row_text(page, breached) and "overdue by" in row_text(page, breached)

    page.goto("/manager")
    near = page.locator("#near-breach tbody tr").all_inner_texts()
    assert "LATE-006" in near[0] and "Bolt Robotics" in near[1]  # the manager view in the same order
    overview = page.inner_text("#sla-overview")
    assert "2 breached" in overview and "within its SLA" not in overview


def test_the_queue_refreshes_itself_and_keeps_the_filters_and_what_is_being_typed(
        browser: Browser, live_desk: tuple[DeskEnv, str]) -> None:  # noqa: F811
    env, base = live_desk
    env.app.state.refresh_seconds = 1  # 30 s in production; the data attribute carries it to desk.js
    page = sign_in(browser, base, env.tokens["csm_amara"])
    page.goto("/queue?scope=team&segment=enterprise")
    assert page.get_attribute("#queue-list", "data-refresh-seconds") == "1"
    acme = env.case_ids["ACME-001"]
    assert "unassigned" in row_text(page, acme)
    page.evaluate("window.__notReloaded = true")
    page.select_option("form.filters select[name=priority]", "P2")  # chosen, not submitted yet

    claimed = page.request.post(f"{base}/api/v1/cases/{acme}/claim", headers=env.auth("csm_jonas"))
    assert claimed.ok, claimed.text()
    page.wait_for_function("id => (document.querySelector(`tr[data-case-id='${id}']`) || {}).innerText"
                           "?.includes('csm_jonas')", arg=acme, timeout=10_000)

    assert page.evaluate("window.__notReloaded") is True  # the list was swapped in place, not reloaded
    assert page.url == f"{base}/queue?scope=team&segment=enterprise"  # the filters are kept
    assert page.input_value("form.filters select[name=priority]") == "P2"  # and what was being chosen
    assert page.get_attribute("#queue-list", "data-refreshed-at")
    rows = page.locator("table.queue tbody tr").all_inner_texts()
    assert len(rows) == 1 and "Acme Logistics" in rows[0]  # still the enterprise filter: Bolt and Dune are not
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "desk-queue-refreshed.png"), full_page=True)

    # A typed value in the form outlives more refreshes, and the form itself is never redrawn.
    page.wait_for_timeout(2500)
    assert page.input_value("form.filters select[name=priority]") == "P2"
    refreshed = pd.Timestamp(page.get_attribute("#queue-list", "data-refreshed-at"))
    assert refreshed > pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=3)

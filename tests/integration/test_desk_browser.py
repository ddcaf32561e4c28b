"""The rescue desk in a real headless Chromium (Debian's `chromium`, driven by Playwright).

The desk runs with uvicorn on a free local port over a seeded SQLite queue. The tests sign in
through the form, work a case from claim to resolution, check the role rules and the 401 of
the API, race two browsers for one claim, and save a screenshot of the case page to
`test-artifacts/desk-case.png`.

Chromium comes from the distribution: when `/usr/bin/chromium` is missing, the session
fixture installs it with apt-get (CI runs as root) and fails with the reason if it cannot.
Playwright's own browser download is never used.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.integration.desk_fixtures import ACCOUNTS, REPO, DeskEnv, desk_env, live_desk  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, installed with apt-get when it is missing."""
    if not CHROMIUM.exists():
        if shutil.which("apt-get") is None:
            pytest.fail(f"{CHROMIUM} is missing and apt-get is not available to install the 'chromium' package")
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
            done = subprocess.run(command, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                pytest.fail(f"installing Chromium failed: `{' '.join(command)}` exited {done.returncode}:\n"
                            f"{done.stderr[-2000:]}")
        if not CHROMIUM.exists():
            pytest.fail(f"apt-get installed 'chromium' but {CHROMIUM} still does not exist")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield launched
        finally:
            launched.close()


def sign_in(browser: Browser, base: str, token: str) -> Page:
    page = browser.new_context(base_url=base, viewport={"width": 1360, "height": 900}).new_page()
    page.goto("/queue")
    assert page.url.startswith(f"{base}/login?next=")
    page.fill("#token", token)
    page.click("form[action='/login'] button")
    page.wait_for_url(f"{base}/queue")
    return page


def audit_kinds(page: Page) -> list[str]:
    return page.locator("#audit-trail tbody tr").evaluate_all("rows => rows.map(r => r.dataset.kind)")


def test_an_agent_works_a_case_from_claim_to_resolution(browser: Browser, live_desk: tuple[DeskEnv, str],  # noqa: F811
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    env, base = live_desk
    page = sign_in(browser, base, env.tokens["csm_amara"])
    assert "No cases match" in page.content()  # nothing is assigned to her yet

    page.click("text=My team (csm)")
    rows = page.locator("table.queue tbody tr")
    assert rows.count() == 3
    # Priority first, then SLA due: P1 ACME, then the breaching P2 BOLT with its badge.
    assert "Acme Logistics" in rows.nth(0).inner_text()
    assert "BREACHED" in rows.nth(1).inner_text() and "Bolt Robotics" in rows.nth(1).inner_text()

    case_id = env.case_ids["ACME-001"]
    page.click(f"text={case_id}")
    page.wait_for_url(f"{base}/cases/{case_id}")
    body = page.inner_text("main")
    for fact in ("480,000", "2025-08-15", "weekly active users down 42% in 12 weeks", "ACME-001-T3",
                 "first touch due "):
        assert fact in body, fact
    assert page.locator("svg.spark").count() == 1

    page.click("#claim button")
    assert page.inner_text(".flash.ok") == f"{case_id} is yours."
    assert page.inner_text("#case-assignee") == "csm_amara"

    page.fill("#play input[name=play]", "executive_sponsor_call")
    page.fill("#play textarea[name=note]", "CFO call booked for Thursday")
    page.click("#play button")
    assert "Play executive_sponsor_call logged" in page.inner_text(".flash.ok")
    assert page.inner_text("#case-status") == "in_progress"
    assert "CFO call booked for Thursday" in page.inner_text("#plays")

    page.select_option("#handoff select[name=to]", "person:csm_jonas")
    page.fill("#handoff textarea[name=note]", "Jonas owns the DACH renewal; sponsor call done, send the QBR deck")
    page.click("#handoff button")
    assert page.inner_text(".flash.ok") == f"{case_id} handed off to csm_jonas (csm)."
    assert page.inner_text("#case-assignee") == "csm_jonas"

    page.select_option("#resolve select[name=outcome]", "saved")
    page.fill("#resolve textarea[name=note]", "renewed for two years")
    page.click("#resolve button")
    assert page.inner_text("#case-status") == "resolved_saved"

    assert audit_kinds(page) == ["opened", "claimed", "status_changed", "play_logged", "handoff", "resolved"]
    trail = page.inner_text("#audit-trail")
    assert "handoff to csm_jonas (csm)" in trail and "send the QBR deck" in trail and "renewed for two years" in trail

    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1360, "height": 1000})
    page.screenshot(path=str(ARTIFACTS / "desk-case.png"), full_page=True)
    assert (ARTIFACTS / "desk-case.png").stat().st_size > 10_000

    events = env.store.case_events(case_id)
    assert list(events["actor"].iloc[1:]) == ["csm_amara"] * 5
    assert set(env.store.outbox()["kind"]) >= {"rescue_action", "handoff", "case_outcome"}
    # The server logged the requests, and never a token.
    assert any(r.name == "uvicorn.access" for r in caplog.records)
    assert not [r for r in caplog.records if any(t in r.getMessage() for t in env.tokens.values())]


def test_an_agent_cannot_reassign_across_teams_and_anonymous_requests_get_nothing(  # noqa: F811
        browser: Browser, live_desk: tuple[DeskEnv, str]) -> None:
    env, base = live_desk
    case_id = env.case_ids["DUNE-004"]
    page = sign_in(browser, base, env.tokens["csm_amara"])
    page.goto(f"/cases/{case_id}")
    offered = page.locator("#handoff select[name=to] option").evaluate_all("os => os.map(o => o.value)")
    assert "team:csm" in offered and not [v for v in offered if "rescue_squad" in v]

    # Even a hand-crafted form cannot move the case to another team.
    page.evaluate("""() => {
        const select = document.querySelector('#handoff select[name=to]');
        select.add(new Option('Rescue Squad', 'team:rescue_squad'));
        select.value = 'team:rescue_squad';
    }""")
    page.fill("#handoff textarea[name=note]", "needs an executive")
    with page.expect_response(lambda r: r.url.endswith("/handoff")) as answer:
        page.click("#handoff button")
    assert answer.value.status == 403
    assert page.inner_text("#action-error").startswith("only managers reassign cases across teams")
    assert env.store.get_case(case_id)["team"] == "csm"

    # The API ignores the session cookie: no bearer token, 401 and no data.
    for path in ("/api/v1/cases?scope=all", f"/api/v1/cases/{case_id}"):
        response = page.request.get(path)
        assert response.status == 401
        text = response.text()
        assert response.json() == {"error": "authentication required: send Authorization: Bearer <token>"}
        assert not [a for a, spec in ACCOUNTS.items() if a in text or spec["name"] in text]

    anonymous = browser.new_context(base_url=base).new_page()
    anonymous.goto(f"/cases/{case_id}")
    assert anonymous.url.startswith(f"{base}/login")
    assert not [a for a, spec in ACCOUNTS.items() if a in anonymous.content() or spec["name"] in anonymous.content()]


def test_two_browsers_claiming_one_case_at_once_exactly_one_wins(browser: Browser,  # noqa: F811
                                                                  live_desk: tuple[DeskEnv, str]) -> None:
    env, base = live_desk
    case_id = env.case_ids["BOLT-002"]
    pages = {who: sign_in(browser, base, env.tokens[who]) for who in ("csm_amara", "csm_jonas")}
    for page in pages.values():
        page.goto(f"/cases/{case_id}")

    a, b = pages["csm_amara"], pages["csm_jonas"]
    with a.expect_response(lambda r: r.url.endswith("/claim")) as first, \
            b.expect_response(lambda r: r.url.endswith("/claim")) as second:
        a.click("#claim button", no_wait_after=True)
        b.click("#claim button", no_wait_after=True)
    statuses = sorted([first.value.status, second.value.status])
    assert statuses == [303, 409]
    for page in pages.values():
        page.wait_for_load_state()

    winner = env.store.get_case(case_id)["assignee"]
    loser = "csm_jonas" if winner == "csm_amara" else "csm_amara"
    assert pages[winner].inner_text(".flash.ok") == f"{case_id} is yours."
    message = pages[loser].inner_text("#action-error")
    assert message.startswith(f"case {case_id} already claimed by {winner}")
    assert list(env.store.case_events(case_id)["kind"]).count("claimed") == 1

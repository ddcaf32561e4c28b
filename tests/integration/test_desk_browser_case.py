"""The case page and the manager view's overflow in a real headless Chromium.

Over the desk's seeded queue plus `overflow_fixtures` (three overflow accounts, a case opened by
the open legal ticket of Halo Security), served by uvicorn on a free port:

- a manager sees the overflow accounts riskiest first and opens one's case from the list;
- at 1280 and 1920 px nothing on the case page or the manager view is clipped horizontally:
  the page does not scroll sideways and no number, bar or cell is wider than its box;
- an agent sees only the forms they may use: none of a case of another team, no cross-team
  handoff targets, no overflow list, no manager-only form;
- a ticket-triggered case's headline names the ticket, and its row among the last tickets is
  highlighted.

Screenshots of both pages at both widths go to `test-artifacts/`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.integration.desk_fixtures import DeskEnv, desk_env, live_desk  # noqa: F401 - fixtures
from tests.integration.overflow_fixtures import OVERFLOW_ORDER, TICKET_CASE, TRIGGER_TICKET, USAGE_DRIVER, seed_overflow
from tests.integration.test_desk_browser import ARTIFACTS, browser, chromium, sign_in  # noqa: F401 - fixtures

MANAGER, AGENT = "rs_lead_maya", "csm_amara"
WIDTHS = (1280, 1920)
#: Widths checked for clipping: the facts grid has three columns up to about 1400 px, four from there.
CHECKED_WIDTHS = (1280, 1400, 1600, 1920)

#: Every box whose text is a number or a label of one, and every box that holds a chart or a bar.
MEASURED = (".big, .bar-row, .bar-label, .bar-value, .bar, td.num, th.num, .kv dt, .kv dd, .card, "
            "svg.spark, #usage-values, #overflow td, #team-load td, .case-head .meta > *")

#: Boxes wider inside than outside (their content clipped or spilling out), and content poking out
#: of its card on the right.
OVERFLOWING_JS = """(selector) => {
  const out = [];
  for (const el of document.querySelectorAll(selector)) {
    if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).display !== 'inline') {
      out.push(`${el.tagName}.${el.className.baseVal ?? el.className} "${el.textContent.trim().slice(0, 40)}" ` +
               `${el.scrollWidth} > ${el.clientWidth}`);
    }
    const card = el.closest('.card');
    if (card && card !== el && el.getBoundingClientRect().right > card.getBoundingClientRect().right + 1) {
      out.push(`${el.tagName} "${el.textContent.trim().slice(0, 40)}" sticks out of its card`);
    }
  }
  return out;
}"""


@pytest.fixture
def desk(live_desk: tuple[DeskEnv, str]) -> Iterator[tuple[DeskEnv, str, str]]:  # noqa: F811
    """The live desk with the overflow accounts and the ticket-triggered case: (env, base, case id)."""
    env, base = live_desk
    yield env, base, seed_overflow(env.store)


def at_width(page: Page, width: int) -> Page:
    page.set_viewport_size({"width": width, "height": 1000})
    return page


def assert_nothing_clipped(page: Page, what: str) -> None:
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{what}: the page scrolls sideways ({widths[0]} > {widths[1]} px)"
    assert page.locator(MEASURED).count() > 5
    assert page.evaluate(OVERFLOWING_JS, MEASURED) == [], what


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


def test_a_manager_sees_the_overflow_riskiest_first_and_opens_a_case_from_it(
        browser: Browser, desk: tuple[DeskEnv, str, str]) -> None:  # noqa: F811
    env, base, _ = desk
    page = sign_in(browser, base, env.tokens[MANAGER])
    page.click("nav >> text=Manager")
    page.wait_for_url(f"{base}/manager")
    rows = page.locator("#overflow tbody tr")
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.account)") == OVERFLOW_ORDER
    first = rows.nth(0).inner_text()
    for fact in ("Ember Analytics", "EMBR-005", "rescue_squad", "88%", "350,000", "308,000",
                 "over the team's daily budget", "rank 13"):
        assert fact in first, fact
    assert "no one with the skills and room" in rows.nth(2).inner_text()

    rows.nth(0).locator("button", has_text="Open a case").click()
    page.wait_for_url(re.compile(rf"{base}/cases/RC-[0-9A-F]{{10}}$"))
    case_id = page.url.rsplit("/", 1)[1]
    assert page.inner_text(".flash.ok").startswith(f"{case_id} opened for Ember Analytics")
    assert page.inner_text("#case-status") == "open"
    trail = page.locator("#audit-trail tbody tr")
    assert trail.count() == 1 and MANAGER in trail.nth(0).inner_text()
    assert "opened by hand from the overflow (over the team's daily budget)" in trail.nth(0).inner_text()
    assert "first touch due" in page.inner_text(".case-head .sla")  # the policy's clock runs

    page.goto("/manager")
    row = page.locator("#overflow tbody tr[data-account='EMBR-005']")
    assert row.locator(f"a[href='/cases/{case_id}']").count() == 1 and row.locator("button").count() == 0
    cases = env.store.list_cases()
    assert list(cases.loc[cases["account_id"] == "EMBR-005", "case_id"]) == [case_id]
    for width in CHECKED_WIDTHS:
        at_width(page, width)
        assert_nothing_clipped(page, f"manager view at {width} px")
        if width in WIDTHS:
            shot(page, f"desk-manager-overflow-{width}.png")


def test_the_case_page_clips_nothing_and_labels_every_bar_and_number(
        browser: Browser, desk: tuple[DeskEnv, str, str]) -> None:  # noqa: F811
    env, base, ticket_case = desk
    page = sign_in(browser, base, env.tokens[MANAGER])
    for case_id, name in ((env.case_ids["ACME-001"], "acme"), (ticket_case, "ticket")):
        page.goto(f"/cases/{case_id}")
        labels = page.locator("#health-bars .bar-label").all_inner_texts()
        assert labels == ["Usage health", "Support health", "Relationship health", "Churn risk (model)"]
        values = page.locator("#health-bars .bar-value").all_inner_texts()
        assert values[-1] == page.inner_text(".card:has(h2:text('Churn risk')) .big").split()[0]  # e.g. 81%
        risk = page.locator("#health-bars .risk")
        drawn = risk.locator("rect.fill").evaluate("r => r.getBoundingClientRect().width")
        track = risk.locator("rect.track").evaluate("r => r.getBoundingClientRect().width")
        shown = float(values[-1].rstrip("%"))
        assert shown > 0 and drawn == pytest.approx(track * shown / 100, abs=2)  # fills with the risk shown
        assert page.locator("svg.spark .first").count() == 1 and page.locator("svg.spark text.last").count() == 1
        assert page.locator("svg.spark text.y-max").count() == 1
        main = page.inner_text("main")
        assert not re.search(r"(?<![\w.])[-+\u2212]0(?![.\d])", main), "a change reads -0 or +0"
        for width in CHECKED_WIDTHS:
            at_width(page, width)
            assert_nothing_clipped(page, f"case {case_id} at {width} px")
            if width in WIDTHS:
                shot(page, f"desk-case-{name}-{width}.png")
    # the tiny usage of the ticket case reads as values with their unit, not a broken line
    usage = page.inner_text("#usage-values")
    assert usage.startswith("0.14 → 0 users") and "(last 7 days vs 90-day average: 0%)" in usage
    assert "Active users per day, weekly average" in page.inner_text("main")


def test_a_ticket_triggered_case_names_its_ticket_and_highlights_it(
        browser: Browser, desk: tuple[DeskEnv, str, str]) -> None:  # noqa: F811
    env, base, ticket_case = desk
    page = sign_in(browser, base, env.tokens[MANAGER])
    page.goto(f"/cases/{ticket_case}")
    headline = page.inner_text("#headline")
    assert headline.startswith("Open compliance, legal or security ticket: ticket HALO-008-LEGAL")
    assert USAGE_DRIVER not in headline
    rows = page.locator("#tickets tbody tr")
    assert rows.count() == 4  # the last three, and the older ticket that triggered the case
    marked = page.locator("#tickets tbody tr.trigger")
    assert marked.count() == 1 and marked.get_attribute("id") == f"ticket-{TRIGGER_TICKET}"
    assert "triggered this case" in marked.inner_text() and "legal" in marked.inner_text()
    plain = rows.nth(0).evaluate("r => getComputedStyle(r).backgroundColor")
    assert marked.evaluate("r => getComputedStyle(r).backgroundColor") != plain
    assert page.locator(f".trigger-note a[href='#ticket-{TRIGGER_TICKET}']").count() == 1
    assert TICKET_CASE in page.inner_text("main")


def test_an_agent_sees_only_the_forms_they_may_use(browser: Browser, desk: tuple[DeskEnv, str, str]) -> None:  # noqa: F811
    env, base, _ = desk
    page = sign_in(browser, base, env.tokens[AGENT])
    assert page.locator("nav >> text=Manager").count() == 0

    page.goto(f"/cases/{env.case_ids['CORA-003']}")  # the rescue squad's case, not hers
    for form in ("#claim", "#acknowledge", "#play", "#handoff", "#snooze", "#resolve"):
        assert page.locator(form).count() == 0, form
    assert "belongs to team rescue_squad" in page.inner_text("#not-yours")

    page.goto(f"/cases/{env.case_ids['ACME-001']}")  # her team's
    assert page.locator("#play").count() == 1 and page.locator("#handoff").count() == 1
    groups = page.locator("#handoff optgroup").evaluate_all("gs => gs.map(g => g.label)")
    assert groups == ["Customer Success Managers"]  # no cross-team targets
    options = page.locator("#handoff option").evaluate_all("os => os.map(o => o.value)")
    assert not [o for o in options if o.startswith("team:") and o != "team:csm"]
    assert "a manager moves cases across teams" in page.inner_text("#handoff")
    assert page.locator("form[action^='/overflow/']").count() == 0
    assert page.locator("form.open-overflow").count() == 0
    at_width(page, 1280)
    assert_nothing_clipped(page, "the agent's case page at 1280 px")
    shot(page, "desk-case-agent-1280.png")

    response = page.goto("/manager")
    assert response is not None and response.status == 403
    assert "Ember Analytics" not in page.content()

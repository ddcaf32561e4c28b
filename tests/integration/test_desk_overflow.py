"""Overflow accounts, visible and openable: the queue store, the JSON API, the manager page and
`rescue queue overflow`, on the desk's seeded SQLite queue plus `overflow_fixtures`.

An overflow account is eligible for a case but was not routed (its team's daily budget was
spent, or nobody had the skills and room). Managers see them riskiest first and may open one's
case by hand: the case is opened the way routing opens one, audited with the manager's id, and a
second request opens nothing. Agents get 403.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timezone

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from connectors.queue.store import QueueStore
from models.cases.lifecycle import CaseConflict, CaseNotFound
from models.policy.loader import load_policy
from pipelines.cli.main import app as cli_app
from tests.integration.desk_fixtures import POLICY, SNAPSHOT, DeskEnv, desk_env, utc_now  # noqa: F401 - fixture
from tests.integration.overflow_fixtures import OVERFLOW, OVERFLOW_ORDER, TICKET_CASE, seed_overflow

MANAGER, AGENT = "rs_lead_maya", "csm_amara"


@pytest.fixture
def env(desk_env: DeskEnv) -> DeskEnv:  # noqa: F811 - the fixture
    seed_overflow(desk_env.store)
    return desk_env


@pytest.fixture
def client(env: DeskEnv) -> Iterator[TestClient]:
    with TestClient(env.app) as test_client:
        yield test_client


def cases_of(store: QueueStore, account_id: str) -> list[str]:
    cases = store.list_cases()
    return list(cases.loc[cases["account_id"] == account_id, "case_id"])


# -- the queue store ---------------------------------------------------------------------------


def test_the_latest_snapshots_overflow_is_listed_riskiest_first_with_its_cause(env: DeskEnv) -> None:
    rows = env.store.overflow()
    assert list(rows["account_id"]) == OVERFLOW_ORDER
    for row in rows.to_dict("records"):
        spec = OVERFLOW[row["account_id"]]
        assert row["account_name"] == spec["name"] and row["team"] == spec["team"]
        assert row["cause"] == spec["cause"]
        assert row["arr"] == spec["arr"] and row["churn_risk"] == spec["risk"]
        assert row["expected_arr_at_risk"] == pytest.approx(spec["risk"] * spec["arr"])
        assert row["reason"].startswith("overflow: ") and row["context"]["account"]["name"] == spec["name"]
        assert pd.isna(row["case_id"])  # none opened yet
    assert env.store.overflow(SNAPSHOT.replace(day=1)).empty  # another snapshot: nothing


def test_a_manual_open_is_a_real_case_with_clocks_assignment_and_an_audited_actor(env: DeskEnv) -> None:
    policy = load_policy(POLICY)
    before = utc_now()
    case, opened = env.store.open_overflow_case("EMBR-005", actor=MANAGER, policy=policy)
    assert opened
    assert case["status"] == "open" and case["priority"] == "P1" and case["rule_id"] == "enterprise_renewal_at_risk"
    assert case["account_name"] == "Ember Analytics" and case["arr"] == 350_000.0
    assert case["assignee"] in policy.member_team and policy.member_team[case["assignee"]] == case["team"]
    assert {"enterprise", "renewals"} <= set(policy.members_by_id[case["assignee"]].skills)
    # the SLA clocks run from the open on the receiving team's calendar, as routing sets them
    cal = policy.team_calendar(case["team"])
    first = cal.business_minutes_between(before.replace(tzinfo=timezone.utc),
                                         case["sla_first_touch_due"].replace(tzinfo=timezone.utc))
    assert 0 < first <= policy.sla["P1"].first_touch_minutes + 1
    assert case["sla_resolution_due"] > case["sla_first_touch_due"]
    assert case["context"]["account"]["name"] == "Ember Analytics"  # the package routing built
    events = env.store.case_events(case["case_id"]).to_dict("records")
    assert [(e["kind"], e["actor"]) for e in events] == [("opened", MANAGER)]
    payload = events[0]["payload"]
    assert payload["manual"] is True and payload["from"] == "overflow" and payload["overflow_cause"] == "budget"
    assert "daily budget" in payload["overflow_reason"]
    # the assignee is told, through the outbox like every opened case
    assert (env.store.outbox()["kind"] == "case_opened").sum() >= 1

    again, opened_again = env.store.open_overflow_case("EMBR-005", actor=MANAGER, policy=policy)
    assert not opened_again and again["case_id"] == case["case_id"]
    assert cases_of(env.store, "EMBR-005") == [case["case_id"]]
    assert len(env.store.case_events(case["case_id"])) == 1
    assert env.store.overflow().set_index("account_id").loc["EMBR-005", "case_id"] == case["case_id"]


def test_an_account_not_in_the_latest_overflow_or_closed_since_is_refused(env: DeskEnv) -> None:
    policy = load_policy(POLICY)
    with pytest.raises(CaseNotFound, match="not an overflow account of the latest snapshot"):
        env.store.open_overflow_case("ACME-001", actor=MANAGER, policy=policy)  # routed, not overflow
    with pytest.raises(CaseNotFound):
        env.store.open_overflow_case("NOPE-999", actor=MANAGER, policy=policy)
    case, _ = env.store.open_overflow_case("FERN-006", actor=MANAGER, policy=policy)
    env.store.resolve(case["case_id"], actor=MANAGER, outcome="no_action")
    with pytest.raises(CaseConflict, match="opened and is closed_no_action since"):
        env.store.open_overflow_case("FERN-006", actor=MANAGER, policy=policy)
    assert cases_of(env.store, "FERN-006") == [case["case_id"]]


def test_a_rerun_of_the_snapshot_after_a_manual_open_opens_nothing_more(env: DeskEnv) -> None:
    from tests.integration.overflow_fixtures import overflow_frames

    env.store.open_overflow_case("GLOW-007", actor=MANAGER, policy=load_policy(POLICY))
    decisions, candidates, contexts = overflow_frames()
    decisions.loc[decisions["account_id"] == "GLOW-007", "action"] = "route"  # routing now has room
    summary = env.store.apply_decisions(decisions, candidates, contexts=contexts, policy_version="2026.11.0",
                                        policy_hash="hash-1", model_version="m1", snapshot_date=SNAPSHOT, now=utc_now())
    assert summary.opened == 0
    assert len(cases_of(env.store, "GLOW-007")) == 1


# -- the JSON API ------------------------------------------------------------------------------


def test_managers_list_overflow_over_the_api_and_agents_get_403(env: DeskEnv, client: TestClient) -> None:
    listed = client.get("/api/v1/overflow", headers=env.auth(MANAGER))
    assert listed.status_code == 200
    body = listed.json()
    assert [r["account_id"] for r in body] == OVERFLOW_ORDER
    first = body[0]
    assert first["account_name"] == "Ember Analytics" and first["team"] == "rescue_squad"
    assert first["cause"] == "budget" and first["cause_text"] == "over the team's daily budget"
    assert first["churn_risk"] == 0.88 and first["arr"] == 350_000.0 and first["case_id"] is None
    assert {r["account_id"]: r["cause"] for r in body}["FERN-006"] == "capacity"

    refused = client.get("/api/v1/overflow", headers=env.auth(AGENT))
    assert refused.status_code == 403 and "only managers" in refused.json()["error"]
    assert "Ember" not in refused.text


def test_opening_over_the_api_is_idempotent_audited_and_manager_only(env: DeskEnv, client: TestClient) -> None:
    denied = client.post("/api/v1/overflow/GLOW-007/open", headers=env.auth(AGENT))
    assert denied.status_code == 403
    assert cases_of(env.store, "GLOW-007") == []

    first = client.post("/api/v1/overflow/GLOW-007/open", headers=env.auth(MANAGER))
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["opened"] is True and body["case"]["account_id"] == "GLOW-007"
    assert body["case"]["sla"]["clock"] == "first touch"
    assert [(e["kind"], e["actor"]) for e in body["case"]["events"]] == [("opened", MANAGER)]

    second = client.post("/api/v1/overflow/GLOW-007/open", headers=env.auth(MANAGER))
    assert second.status_code == 200
    assert second.json()["opened"] is False and second.json()["case"]["case_id"] == body["case"]["case_id"]
    assert "already has an active case" in second.json()["message"]
    assert cases_of(env.store, "GLOW-007") == [body["case"]["case_id"]]

    missing = client.post("/api/v1/overflow/ACME-001/open", headers=env.auth(MANAGER))
    assert missing.status_code == 404 and "not an overflow account" in missing.json()["error"]
    listed = client.get("/api/v1/overflow", headers=env.auth(MANAGER)).json()
    assert {r["account_id"]: r["case_id"] for r in listed}["GLOW-007"] == body["case"]["case_id"]


# -- the pages ---------------------------------------------------------------------------------


def sign_in(client: TestClient, token: str) -> None:
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert client.post("/login", data={"token": token, "csrf_token": csrf}, follow_redirects=False).status_code == 303


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_the_manager_page_lists_overflow_and_opens_a_case_once(env: DeskEnv, client: TestClient) -> None:
    sign_in(client, env.tokens[MANAGER])
    page = client.get("/manager")
    assert page.status_code == 200
    rows = re.findall(r'<tr data-account="([^"]+)" data-cause="([^"]*)">', page.text)
    assert rows == [(a, OVERFLOW[a]["cause"]) for a in OVERFLOW_ORDER]
    assert "Overflow: eligible, not routed (3)" in page.text and "no one with the skills and room" in page.text
    opened = client.post("/overflow/EMBR-005/open", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert opened.status_code == 303
    case_id = cases_of(env.store, "EMBR-005")[0]
    assert opened.headers["location"] == f"/cases/{case_id}"
    case_page = client.get(opened.headers["location"])
    assert f"{case_id} opened for Ember Analytics" in case_page.text
    again = client.post("/overflow/EMBR-005/open", data={"csrf_token": csrf_of(case_page.text)}, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == f"/cases/{case_id}"
    assert cases_of(env.store, "EMBR-005") == [case_id]
    after = client.get("/manager").text
    assert f'<a href="/cases/{case_id}">{case_id}</a>' in after
    assert after.count('class="inline open-overflow"') == 2
    assert client.post("/overflow/EMBR-005/open", data={"csrf_token": "forged"}).status_code == 403


def test_agents_see_no_overflow_and_cannot_open_one_from_a_form(env: DeskEnv, client: TestClient) -> None:
    sign_in(client, env.tokens[AGENT])
    page = client.get("/queue")
    assert client.get("/manager").status_code == 403
    posted = client.post("/overflow/EMBR-005/open", data={"csrf_token": csrf_of(page.text)})
    assert posted.status_code == 403
    assert cases_of(env.store, "EMBR-005") == []


# -- rescue queue overflow ---------------------------------------------------------------------


def test_rescue_queue_overflow_lists_the_same_rows_within_120_columns(env: DeskEnv, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    result = CliRunner().invoke(cli_app, ["queue", "overflow", "--queue-url", env.queue_url])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 120
    text = result.output
    assert f"Overflow on {SNAPSHOT:%Y-%m-%d} (3 accounts, riskiest first)" in text
    positions = [text.index(a) for a in OVERFLOW_ORDER]
    assert positions == sorted(positions)
    for needle in ("Ember Analytics", "rescue_squad", "88%", "350,000", "308,000", "over the team's daily budget",
                   "no one with the skills and room"):
        assert needle in text, needle
    assert TICKET_CASE not in text  # routed, not overflow

    as_json = CliRunner().invoke(cli_app, ["queue", "overflow", "--json", "--limit", "1", "--queue-url", env.queue_url])
    assert as_json.exit_code == 0
    rows = json.loads(as_json.output)
    assert [r["account_id"] for r in rows] == ["EMBR-005"] and rows[0]["cause"] == "budget" and "context" not in rows[0]


def test_rescue_queue_overflow_on_a_missing_queue_exits_non_zero_with_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    url = f"sqlite:///{tmp_path / 'nowhere.db'}"
    result = CliRunner().invoke(cli_app, ["queue", "overflow", "--queue-url", url])
    assert result.exit_code == 2
    assert "has no tables yet" in result.output and "Traceback" not in result.output
    bad = CliRunner().invoke(cli_app, ["queue", "overflow", "--queue-url", "not-a-url"])
    assert bad.exit_code != 0 and "Traceback" not in bad.output


def test_only_the_latest_snapshots_log_rows_keep_their_context_package(env: DeskEnv) -> None:
    import sqlalchemy as sa

    from connectors.queue.schema import routing_log
    from tests.integration.overflow_fixtures import overflow_frames

    decisions, candidates, contexts = overflow_frames()
    later = SNAPSHOT + pd.Timedelta(days=1)
    keep = decisions["action"] == "overflow"
    env.store.apply_decisions(decisions[keep], candidates, contexts=contexts, policy_version="2026.11.0",
                              policy_hash="hash-1", model_version="m1", snapshot_date=later, now=utc_now())
    with env.store.reading() as conn:
        rows = conn.execute(sa.select(routing_log.c.snapshot_date, routing_log.c.context.is_(None))).all()
    assert {(pd.Timestamp(d), empty) for d, empty in rows} == {(SNAPSHOT, True), (later, False)}
    assert list(env.store.overflow()["account_id"]) == OVERFLOW_ORDER  # the later snapshot is the latest
    assert env.store.overflow(SNAPSHOT)["context"].isna().all()


def test_overflow_listing_open_and_forgotten_packages_on_each_backend(queue_store: QueueStore) -> None:
    """SQLite and PostgreSQL alike: the list, one open however often asked, SQL NULL packages."""
    import sqlalchemy as sa

    from connectors.queue.schema import routing_log
    from tests.integration.overflow_fixtures import overflow_frames

    seed_overflow(queue_store)
    assert list(queue_store.overflow()["account_id"]) == OVERFLOW_ORDER
    policy = load_policy(POLICY)
    first, opened = queue_store.open_overflow_case("FERN-006", actor=MANAGER, policy=policy)
    again, opened_again = queue_store.open_overflow_case("FERN-006", actor=MANAGER, policy=policy)
    assert (opened, opened_again) == (True, False) and again["case_id"] == first["case_id"]
    assert cases_of(queue_store, "FERN-006") == [first["case_id"]]

    decisions, candidates, contexts = overflow_frames()
    later = SNAPSHOT + pd.Timedelta(days=1)
    queue_store.apply_decisions(decisions[decisions["action"] == "overflow"], candidates, contexts=contexts,
                                policy_version="2026.11.0", policy_hash="hash-1", model_version="m1",
                                snapshot_date=later, now=utc_now())
    with queue_store.reading() as conn:
        empty = conn.execute(sa.select(sa.func.count()).where(routing_log.c.context.is_(None))).scalar()
        kept = conn.execute(sa.select(sa.func.count()).where(routing_log.c.context.is_not(None))).scalar()
    assert (empty, kept) == (len(OVERFLOW), len(OVERFLOW))

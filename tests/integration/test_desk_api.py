"""The desk's JSON API and access control, in process against the ASGI app on a seeded queue."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient

from connectors.queue.users import DeskUserError, DeskUsers, desk_users
from connectors.queue.handoff import handoff
from connectors.queue.schema import METADATA
from connectors.queue.store import QueueStore
from models.cases.lifecycle import CaseConflict, InvalidTransition
from pipelines.desk import create_app
from tests.integration.desk_fixtures import (  # noqa: F401
    ACCOUNTS,
    POLICY,
    DeskEnv,
    add_users,
    desk_env,
    seed,
    utc_now,
)

ACCOUNT_NAMES = [spec["name"] for spec in ACCOUNTS.values()]


@pytest.fixture
def client(desk_env: DeskEnv) -> Iterator[TestClient]:  # noqa: F811
    with TestClient(desk_env.app) as test_client:
        yield test_client


def _no_account_data(text: str) -> None:
    for account_id, name in zip(ACCOUNTS, ACCOUNT_NAMES):
        assert account_id not in text and name not in text


# -- storage -----------------------------------------------------------------------------------


def test_the_desk_migration_creates_exactly_the_declared_users_table(desk_env: DeskEnv) -> None:  # noqa: F811
    assert desk_env.store.current_revision() == desk_env.store.head_revision()
    assert "desk_users" in sa.inspect(desk_env.store.engine).get_table_names()
    with desk_env.store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), METADATA) == []
        stored = conn.execute(sa.select(desk_users.c.token_hash)).scalars().all()
    # Only digests are stored: no token appears in the table.
    assert len(stored) == len(desk_env.tokens)
    assert not set(desk_env.tokens.values()) & set(stored)
    assert all(len(h) == 64 for h in stored)


def test_tokens_verify_only_while_current_and_enabled(queue_store: QueueStore) -> None:
    users = DeskUsers(queue_store)
    old = add_users(users)["csm_jonas"]
    assert users.verify_token(old).user_id == "csm_jonas"
    assert users.verify_token(old + "x") is None
    assert users.verify_token("") is None and users.verify_token(None) is None
    new = users.issue_token("csm_jonas")
    assert new != old and users.verify_token(old) is None and users.verify_token(new).role == "agent"
    users.set_disabled("csm_jonas")
    assert users.verify_token(new) is None
    with pytest.raises(DeskUserError, match="already exists"):
        users.create_user("csm_jonas", name="Jonas", role="agent", team="csm")
    with pytest.raises(DeskUserError, match="unknown role 'admin'"):
        users.create_user("csm_dev", name="Dev", role="admin", team="csm")


# -- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/cases", "/api/v1/me", "/api/v1/manager", "/api/v1/cases/{case}"])
def test_unauthenticated_api_requests_get_401_and_no_data(client: TestClient, desk_env: DeskEnv, path: str) -> None:  # noqa: F811
    url = path.format(case=desk_env.case_ids["ACME-001"])
    for headers in ({}, {"Authorization": "Bearer rdk_not-a-real-token"}, {"Authorization": "Basic abc"}):
        response = client.get(url, headers=headers)
        assert response.status_code == 401
        assert response.json() == {"error": "authentication required: send Authorization: Bearer <token>"}
        assert response.headers["www-authenticate"].startswith("Bearer")
        _no_account_data(response.text)
    claim = client.post(f"/api/v1/cases/{desk_env.case_ids['ACME-001']}/claim")
    assert claim.status_code == 401
    assert desk_env.store.get_case(desk_env.case_ids["ACME-001"])["assignee"] is None


def test_unauthenticated_pages_redirect_to_login_which_shows_no_account_data(client: TestClient, desk_env: DeskEnv) -> None:  # noqa: F811
    for path in ("/", "/queue?scope=all", f"/cases/{desk_env.case_ids['ACME-001']}", "/manager", "/policy"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
        _no_account_data(response.text)
    login = client.get("/login")
    assert login.status_code == 200 and 'name="token"' in login.text
    _no_account_data(login.text)
    post = client.post(f"/cases/{desk_env.case_ids['ACME-001']}/claim", data={"csrf_token": "x"}, follow_redirects=False)
    assert post.status_code == 303 and post.headers["location"].startswith("/login")


def test_sign_in_sets_an_httponly_lax_session_and_checks_csrf(client: TestClient, desk_env: DeskEnv) -> None:  # noqa: F811
    token = desk_env.tokens["csm_amara"]
    client.get("/login")
    no_csrf = client.post("/login", data={"token": token}, follow_redirects=False)
    assert no_csrf.status_code == 403 and "expired" in no_csrf.text

    csrf = _csrf(client.get("/login").text)
    bad = client.post("/login", data={"token": "rdk_wrong", "csrf_token": csrf}, follow_redirects=False)
    assert bad.status_code == 401 and "not valid" in bad.text

    good = client.post("/login", data={"token": token, "csrf_token": csrf, "next": "//evil.example/x"},
                       follow_redirects=False)
    assert good.status_code == 303 and good.headers["location"] == "/queue"
    cookie = good.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and token.lower() not in cookie

    page = client.get("/queue?scope=all")
    assert page.status_code == 200 and "Acme Logistics" in page.text
    case_id = desk_env.case_ids["ACME-001"]
    # A fixed attribute among the drivers is marked as the account's profile, not a warning sign.
    case_page = client.get(f"/cases/{case_id}").text
    assert '<li>renewal in 74 days <span class="muted">(account profile)</span></li>' in case_page
    assert "<li>weekly active users down 42% in 12 weeks</li>" in case_page
    assert "routed on stale data" not in case_page
    # A case routed on a stale source (freshness only warning) says so at its head.
    stale_page = client.get(f"/cases/{desk_env.case_ids['DUNE-004']}").text
    assert ('<p class="flash warn data-warning" role="status">routed on stale data: usage_daily 6.1 days old '
            '(newest row 2025-05-27 00:00 UTC, allowed 3 days)</p>') in stale_page
    # A form post with the wrong CSRF token changes nothing.
    forged = client.post(f"/cases/{case_id}/claim", data={"csrf_token": "forged"}, follow_redirects=False)
    assert forged.status_code == 403
    assert desk_env.store.get_case(case_id)["assignee"] is None
    ok = client.post(f"/cases/{case_id}/claim", data={"csrf_token": _csrf(page.text)}, follow_redirects=False)
    assert ok.status_code == 303
    assert desk_env.store.get_case(case_id)["assignee"] == "csm_amara"

    # A new token ends the sessions opened with the old one.
    desk_env.users.issue_token("csm_amara")
    assert client.get("/queue", follow_redirects=False).status_code == 303


def _csrf(html: str) -> str:
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start:html.index('"', start)]


# -- reading -----------------------------------------------------------------------------------


def test_queue_views_filter_and_sort_in_the_queue_order(client: TestClient, desk_env: DeskEnv) -> None:  # noqa: F811
    amara = desk_env.auth("csm_amara")
    everything = client.get("/api/v1/cases", params={"scope": "all"}, headers=amara).json()
    assert [c["account_id"] for c in everything] == ["CORA-003", "ACME-001", "BOLT-002", "DUNE-004"]
    assert [c["priority"] for c in everything] == ["P1", "P1", "P2", "P3"]

    team = client.get("/api/v1/cases", params={"scope": "team"}, headers=amara).json()
    assert {c["team"] for c in team} == {"csm"} and len(team) == 3
    assert client.get("/api/v1/cases", params={"scope": "mine"}, headers=amara).json() == []

    breaching = client.get("/api/v1/cases", params={"scope": "all", "breaching": True}, headers=amara).json()
    assert [c["account_id"] for c in breaching] == ["BOLT-002"]
    sla = breaching[0]["sla"]
    assert sla["breached"] and sla["clock"] == "first touch" and sla["label"].startswith("first touch overdue by 3 business hours (due ")
    assert breaching[0]["business_minutes_left"] == sla["business_minutes_left"] <= -180
    assert breaching[0]["due_at"].endswith("Z") and sla["tz"] == "UTC" and sla["state"] == "breached"

    enterprise = client.get("/api/v1/cases", params={"scope": "all", "segment": "enterprise", "priority": "P1"},
                            headers=amara).json()
    assert {c["account_id"] for c in enterprise} == {"ACME-001", "CORA-003"}
    acme = next(c for c in everything if c["account_id"] == "ACME-001")
    assert not acme["sla"]["breached"] and acme["sla"]["label"].startswith("first touch due ")
    assert acme["sla"]["left_text"].endswith("business days left") or "business day" in acme["sla"]["left_text"]
    berlin = client.get("/api/v1/cases", params={"scope": "all", "tz": "Europe/Berlin"}, headers=amara).json()
    assert [c["case_id"] for c in berlin] == [c["case_id"] for c in everything]
    assert all(c["sla"]["tz"] == "Europe/Berlin" and c["sla"]["due_text"].endswith(("CET", "CEST")) for c in berlin)
    unknown_zone = client.get("/api/v1/cases", params={"tz": "Mars/Olympus"}, headers=amara)
    assert unknown_zone.status_code == 400 and "unknown time zone 'Mars/Olympus'" in unknown_zone.json()["error"]

    bad = client.get("/api/v1/cases", params={"status": "bogus"}, headers=amara)
    assert bad.status_code == 400 and "status" in bad.json()["error"]


def test_a_case_carries_its_context_package_and_audit_trail(client: TestClient, desk_env: DeskEnv) -> None:  # noqa: F811
    case_id = desk_env.case_ids["ACME-001"]
    case = client.get(f"/api/v1/cases/{case_id.lower()}", headers=desk_env.auth("csm_jonas")).json()
    assert case["case_id"] == case_id and case["account_name"] == "Acme Logistics"
    assert case["context"]["account"]["renewal_date"].startswith("2025-08-15")
    assert len(case["context"]["last_tickets"]) == 3
    assert [e["kind"] for e in case["events"]] == ["opened"]
    missing = client.get("/api/v1/cases/RC-NOPE", headers=desk_env.auth("csm_jonas"))
    assert missing.status_code == 404 and "RC-NOPE" in missing.json()["error"]


# -- acting ------------------------------------------------------------------------------------


def test_a_case_is_worked_end_to_end_through_the_api_with_audit_and_outbox(client: TestClient, desk_env: DeskEnv) -> None:  # noqa: F811
    case_id = desk_env.case_ids["DUNE-004"]
    amara, jonas = desk_env.auth("csm_amara"), desk_env.auth("csm_jonas")
    url = f"/api/v1/cases/{case_id}"

    early = client.post(f"{url}/plays", json={"play": "adoption_workshop"}, headers=amara)
    assert early.status_code == 409 and "claim or acknowledge it" in early.json()["error"]

    claimed = client.post(f"{url}/claim", headers=amara)
    assert claimed.status_code == 200 and claimed.json()["case"]["assignee"] == "csm_amara"
    lost = client.post(f"{url}/claim", headers=jonas)
    assert lost.status_code == 409 and lost.json()["error"].startswith(f"case {case_id} already claimed by csm_amara")

    played = client.post(f"{url}/plays", json={"play": "adoption_workshop", "note": "admins retrained"}, headers=amara)
    assert played.json()["case"]["status"] == "in_progress"

    no_note = client.post(f"{url}/handoff", json={"to_assignee": "csm_jonas", "note": "  "}, headers=amara)
    assert no_note.status_code == 400 and "note" in no_note.json()["error"]
    handed = client.post(f"{url}/handoff", json={"to_assignee": "csm_jonas", "note": "renewal call Friday"},
                         headers=amara)
    assert handed.status_code == 200
    assert (handed.json()["case"]["team"], handed.json()["case"]["assignee"]) == ("csm", "csm_jonas")

    until = (utc_now() + timedelta(days=2)).replace(microsecond=0)
    snoozed = client.post(f"{url}/snooze", json={"until": until.isoformat(), "reason": "customer offsite"},
                          headers=jonas)
    assert snoozed.json()["case"]["sla"]["paused"] and snoozed.json()["case"]["snoozed_until"] == until.isoformat() + "Z"
    past = client.post(f"{url}/snooze", json={"until": "2001-01-01T00:00:00"}, headers=jonas)
    assert past.status_code == 409 and "future" in past.json()["error"]

    resolved = client.post(f"{url}/resolve", json={"outcome": "saved", "note": "renewed for 2 years"}, headers=jonas)
    assert resolved.json()["case"]["status"] == "resolved_saved"
    again = client.post(f"{url}/resolve", json={"outcome": "saved"}, headers=jonas)
    assert again.status_code == 409 and "terminal" in again.json()["error"]

    events = desk_env.store.case_events(case_id)
    assert list(events["kind"]) == ["opened", "claimed", "status_changed", "play_logged", "handoff",
                                    "status_changed", "resolved"]
    assert list(events["actor"].iloc[1:]) == ["csm_amara"] * 4 + ["csm_jonas"] * 2
    assert events.loc[events["kind"] == "handoff", "reason"].item() == "renewal call Friday"
    box = desk_env.store.outbox()
    mine = box[box["case_id"] == case_id]
    assert set(mine["kind"]) >= {"rescue_action", "case_outcome", "handoff"}
    notice = mine[mine["kind"] == "handoff"]
    assert list(notice["destination"]) == ["csm_jonas"]
    assert "renewal call Friday" in notice["payload"].item()["text"]


def test_agents_cannot_reassign_across_teams_and_managers_can(client: TestClient, desk_env: DeskEnv) -> None:  # noqa: F811
    case_id = desk_env.case_ids["ACME-001"]
    amara = desk_env.auth("csm_amara")
    client.post(f"/api/v1/cases/{case_id}/claim", headers=amara)
    refused = client.post(f"/api/v1/cases/{case_id}/handoff", json={"to_team": "rescue_squad", "note": "needs exec"},
                          headers=amara)
    assert refused.status_code == 403
    assert refused.json()["error"].startswith("only managers reassign cases across teams")
    assert desk_env.store.get_case(case_id)["team"] == "csm"

    # Nor may an agent act on another team's case at all.
    other = client.post(f"/api/v1/cases/{desk_env.case_ids['CORA-003']}/claim", headers=amara)
    assert other.status_code == 403 and "belongs to team rescue_squad" in other.json()["error"]
    assert client.get("/api/v1/manager", headers=amara).status_code == 403

    maya = desk_env.auth("rs_lead_maya")
    moved = client.post(f"/api/v1/cases/{case_id}/handoff",
                        json={"to_assignee": "rs_omar", "note": "exec sponsor call needed"}, headers=maya)
    assert moved.status_code == 200
    assert (moved.json()["case"]["team"], moved.json()["case"]["assignee"]) == ("rescue_squad", "rs_omar")
    handoff_event = moved.json()["case"]["events"][-1]
    assert handoff_event["payload"] == {"from_team": "csm", "to_team": "rescue_squad", "from_assignee": "csm_amara",
                                        "to_assignee": "rs_omar"}
    destinations = set(desk_env.store.outbox().query("kind == 'handoff'")["destination"])
    assert destinations == {"rs_omar", "RESCUE_SLACK_SQUAD", "rescue-squad@example.com"}

    unknown = client.post(f"/api/v1/cases/{case_id}/handoff", json={"to_team": "sales", "note": "x"}, headers=maya)
    assert unknown.status_code == 400 and "unknown team 'sales'" in unknown.json()["error"]


def test_an_agent_cannot_hand_a_case_to_a_colleague_at_capacity(desk_env: DeskEnv, tmp_path: Path) -> None:  # noqa: F811
    policy = yaml.safe_load(POLICY.read_text())
    lucia = next(m for m in policy["teams"]["csm"]["members"] if m["id"] == "csm_lucia")
    lucia["capacity"] = 2
    tight = tmp_path / "tight.yaml"
    tight.write_text(yaml.safe_dump(policy))
    for account in ("BOLT-002", "DUNE-004"):
        desk_env.store.claim(desk_env.case_ids[account], "csm_lucia")
    case_id = desk_env.case_ids["ACME-001"]
    with TestClient(create_app(desk_env.queue_url, tight, secret_key="k")) as client:
        amara = desk_env.auth("csm_amara")
        client.post(f"/api/v1/cases/{case_id}/claim", headers=amara)
        full = client.post(f"/api/v1/cases/{case_id}/handoff", json={"to_assignee": "csm_lucia", "note": "please take"},
                           headers=amara)
        assert full.status_code == 409 and "at capacity (2 of 2 open cases)" in full.json()["error"]
        assert desk_env.store.get_case(case_id)["assignee"] == "csm_amara"
        forced = client.post(f"/api/v1/cases/{case_id}/handoff", json={"to_assignee": "csm_lucia", "note": "take it"},
                             headers=desk_env.auth("rs_lead_maya"))
        assert forced.status_code == 200 and forced.json()["case"]["assignee"] == "csm_lucia"


def test_handoff_follows_the_lifecycle_and_loses_races(queue_store: QueueStore) -> None:
    store, case_id = queue_store, seed(queue_store)["BOLT-002"]
    store.claim(case_id, "csm_amara")
    store.log_play(case_id, actor="csm_amara", play="executive_sponsor_call")
    with pytest.raises(InvalidTransition, match="needs a person"):
        handoff(store, case_id, actor="csm_amara", to_team="csm", to_assignee=None, note="anyone?")
    with pytest.raises(CaseConflict, match="already with csm_amara"):
        handoff(store, case_id, actor="csm_amara", to_team="csm", to_assignee="csm_amara", note="me")

    results: list[str] = []
    barrier = threading.Barrier(2)

    def hand_to(person: str) -> None:
        barrier.wait()
        try:
            handoff(store, case_id, actor="csm_amara", to_team="csm", to_assignee=person, note=f"to {person}")
            results.append("ok")
        except CaseConflict as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=hand_to, args=("csm_jonas",)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [f"case {case_id} is already with csm_jonas in team csm", "ok"]
    assert list(store.case_events(case_id)["kind"]).count("handoff") == 1

    store.resolve(case_id, actor="csm_jonas", outcome="churned")
    with pytest.raises(InvalidTransition, match="closed case cannot be handed off"):
        handoff(store, case_id, actor="csm_jonas", to_team="csm", to_assignee="csm_lucia", note="late")


def test_the_manager_view_reports_load_attainment_and_near_breach(client: TestClient, desk_env: DeskEnv) -> None:  # noqa: F811
    maya = desk_env.auth("rs_lead_maya")
    client.post(f"/api/v1/cases/{desk_env.case_ids['ACME-001']}/claim", headers=desk_env.auth("csm_amara"))
    view = client.get("/api/v1/manager", headers=maya).json()
    csm = next(t for t in view["teams"] if t["team"] == "csm")
    assert (csm["open_cases"], csm["unassigned"], csm["capacity"]) == (3, 2, 44)
    assert next(m for m in csm["members"] if m["id"] == "csm_amara")["open"] == 1
    assert [c["account_id"] for c in view["near_breach"]] == ["BOLT-002"]
    rows = {(a["team"], a["priority"]): a for a in view["attainment"]}
    # ACME was touched within its first-touch SLA; BOLT is past it untouched: both count.
    assert rows[("csm", "P1")]["first_touch_attainment"] == 1.0
    assert rows[("csm", "P2")]["first_touch_attainment"] == 0.0
    assert rows[("csm", "P3")]["first_touch_attainment"] is None
    page = client.get("/manager", follow_redirects=False)
    assert page.status_code == 303  # pages need a session, not a bearer token


def test_the_managers_sentence_follows_escalations_and_breaches(client: TestClient, desk_env: DeskEnv) -> None:  # noqa: F811
    maya = desk_env.auth("rs_lead_maya")
    bolt, dune = desk_env.case_ids["BOLT-002"], desk_env.case_ids["DUNE-004"]
    # Bolt is past its first touch; resolve it: no open case is breached or near breach any more.
    resolved = client.post(f"/api/v1/cases/{bolt}/resolve", json={"outcome": "no_action"},
                           headers=desk_env.auth("csm_amara"))
    assert resolved.status_code == 200, resolved.text
    calm = client.get("/api/v1/manager", headers=maya).json()
    assert calm["near_breach"] == [] and calm["overview"] == "3 open cases: every open case is within its SLA."
    # The ladder escalates Dune (a notify step): the view says so instead of "every case is within".
    step = {"step_key": f"{dune}:p3_resolution_breach", "case_id": dune, "action": "notify", "to_team": None,
            "to_assignee": None, "raci": {"accountable": ["rs_lead_maya"]}, "message": "resolution clock breached"}
    assert desk_env.store.apply_escalations([step]) == 1
    view = client.get("/api/v1/manager", headers=maya).json()
    assert view["overview"] == "3 open cases: 3 within their SLA; 1 escalated by the ladder."
    dune_row = client.get(f"/api/v1/cases/{dune}", headers=maya).json()
    assert dune_row["escalation"] == "escalated: step 1 of 1 (escalation manager)"
    page = TestClient(desk_env.app)
    csrf = _csrf(page.get("/login").text)
    page.post("/login", data={"token": desk_env.tokens["rs_lead_maya"], "csrf_token": csrf})
    html = page.get("/manager").text
    assert "comfortably" not in html and "1 escalated by the ladder" in html


def test_tokens_never_reach_the_logs(client: TestClient, desk_env: DeskEnv, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    caplog.set_level(logging.DEBUG)
    token = desk_env.tokens["csm_amara"]
    client.get("/api/v1/cases", headers=desk_env.auth("csm_amara"))
    client.post(f"/api/v1/cases/{desk_env.case_ids['ACME-001']}/claim", headers=desk_env.auth("csm_amara"))
    client.get("/api/v1/cases", headers={"Authorization": f"Bearer {token}x"})
    csrf = _csrf(client.get("/login").text)
    client.post("/login", data={"token": token, "csrf_token": csrf})
    assert caplog.records, "expected the request handling to log something at DEBUG"
    assert not [r for r in caplog.records if token in r.getMessage()]


def test_the_cli_adds_policy_members_as_users_and_prints_their_token_once(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    url = f"sqlite:///{tmp_path / 'queue.db'}"
    runner = CliRunner()
    common = ["--queue-url", url, "--policy", str(POLICY)]
    added = runner.invoke(app, ["desk", "add-user", "rs_omar", "--role", "manager", *common])
    assert added.exit_code == 0, added.output
    assert "Added Omar Haddad (rs_omar) as manager of team rescue_squad." in added.output
    token = added.output.strip().splitlines()[-1]
    store = QueueStore(url)
    try:
        users = DeskUsers(store)
        assert users.verify_token(token).user_id == "rs_omar"

        stranger = runner.invoke(app, ["desk", "add-user", "mallory", *common])
        assert stranger.exit_code == 2 and "'mallory' is not a member of any team" in stranger.output
        again = runner.invoke(app, ["desk", "add-user", "rs_omar", *common])
        assert again.exit_code == 2 and "already exists" in again.output

        renewed = runner.invoke(app, ["desk", "new-token", "rs_omar", "--queue-url", url])
        assert renewed.exit_code == 0
        assert users.verify_token(token) is None
        assert users.verify_token(renewed.output.strip().splitlines()[-1]).user_id == "rs_omar"
        listing = runner.invoke(app, ["desk", "users", "--queue-url", url])
        assert "rs_omar" in listing.output and "manager" in listing.output and token not in listing.output
    finally:
        store.close()

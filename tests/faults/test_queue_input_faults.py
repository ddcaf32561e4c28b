"""What people type into the queue: refused in one line, the same on SQLite and PostgreSQL.

A hostile tester found that on PostgreSQL a play or an actor over 128 characters raised a
DataError (a traceback), that a play holding NUL was stored on SQLite and gave HTTP 500 on
PostgreSQL, that right-to-left overrides passed into the CLI and the desk, that `claim --as ""`
silently acted as the login user, that a snooze until 9999-12-31 was accepted and that any play
name was, so per-play statistics split. Every case below runs `rescue queue ...` or the desk's
JSON API against a seeded queue on each backend and checks the one-line refusal, the exit status
or 4xx, and that nothing was written: no action, audit event, outbox row or version change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from connectors.queue.schema import case_events, outbox, rescue_actions, rescue_cases
from connectors.queue.store import QueueStore
from connectors.queue.users import DeskUsers
from models.cases.lifecycle import MAX_SNOOZE_DAYS
from pipelines.cli.main import app
from pipelines.desk import create_app
from tests.faults.conftest import assert_clean_failure
from tests.faults.test_policy_faults import _condition_bomb
from tests.integration.desk_fixtures import POLICY, add_users, seed

runner = CliRunner()
RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE
LRI = "\u2066"  # LEFT-TO-RIGHT ISOLATE
ZWSP = "\u200b"  # ZERO WIDTH SPACE
SOON = (datetime.now(timezone.utc) + timedelta(days=2)).isoformat()


@dataclass
class Queue:
    url: str
    store: QueueStore
    case: str  # claimed by csm_amara: plays, snoozes and notes may be tried on it
    open_case: str  # nobody has touched it: claims may be tried on it

    def written(self) -> tuple[int, int, int, int]:
        """(plays, audit events, outbox rows, sum of case versions): what a refusal must not change."""
        with self.store.engine.connect() as conn:
            count = lambda table: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()  # noqa: E731
            versions = conn.execute(sa.select(sa.func.sum(rescue_cases.c.version))).scalar_one()
            return count(rescue_actions), count(case_events), count(outbox), int(versions)


@pytest.fixture
def queue(queue_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Queue]:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("RESCUE_ACTOR", "csm_amara")
    monkeypatch.setenv("RESCUE_POLICY_PATH", str(POLICY))
    store = QueueStore(queue_url)
    store.migrate()
    ids = seed(store)
    store.claim(ids["ACME-001"], "csm_amara")
    try:
        yield Queue(queue_url, store, ids["ACME-001"], ids["DUNE-004"])
    finally:
        store.close()


def _run(queue: Queue, *args: str) -> tuple[str, int]:
    result = runner.invoke(app, ["queue", *[a.format(case=queue.case, open=queue.open_case) for a in args],
                                 "--queue-url", queue.url])
    return result.output, result.exit_code


def _one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{output[:3000]}"
    return lines[0]


#: case -> (arguments of `rescue queue`, what the one line must name)
CLI_FAULTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "play_longer_than_its_column": (("act", "{case}", "--play", "p" * 200), ("play is 200 characters long", "at most 128")),
    "play_with_nul": (("act", "{case}", "--play", "success\x00plan"), ("play contains", "U+0000")),
    "play_with_right_to_left_override": (("act", "{case}", "--play", f"success{RLO}plan"),
                                         ("play contains a bidirectional-text control", "U+202E RIGHT-TO-LEFT OVERRIDE")),
    "play_not_in_the_catalogue": (("act", "{case}", "--play", "cold_call"),
                                  ("unknown play 'cold_call'", "executive_sponsor_call", "commercial_concession")),
    "play_under_its_former_name": (("act", "{case}", "--play", "exec_sponsor_call"),
                                   ("'exec_sponsor_call' is now called 'executive_sponsor_call'",)),
    "actor_longer_than_its_column": (("act", "{case}", "--play", "success_plan", "--as", "a" * 129),
                                     ("--as is 129 characters long", "at most 128")),
    "actor_with_right_to_left_override": (("act", "{case}", "--play", "success_plan", "--as", f"csm_amara{RLO}"),
                                          ("--as contains a bidirectional-text control", "U+202E")),
    "actor_with_zero_width_space": (("claim", "{open}", "--as", f"csm{ZWSP}amara"), ("--as contains", "U+200B ZERO WIDTH SPACE")),
    "claim_as_empty": (("claim", "{open}", "--as", ""), ("--as cannot be empty",)),
    "claim_as_blank": (("claim", "{open}", "--as", "   "), ("--as cannot be empty",)),
    "note_with_nul": (("act", "{case}", "--play", "success_plan", "--note", "called\x00back"),
                      ("note contains a control character", "U+0000")),
    "note_with_isolate": (("act", "{case}", "--play", "success_plan", "--note", f"called {LRI}back"),
                          ("note contains a bidirectional-text control", "U+2066")),
    "note_longer_than_the_limit": (("resolve", "{case}", "--outcome", "saved", "--note", "n" * 5000),
                                   ("note is 5,000 characters long", "at most 4,000")),
    "reason_with_right_to_left_override": (("ack", "{open}", "--reason", f"seen {RLO}today"),
                                           ("reason contains a bidirectional-text control",)),
    "snooze_until_the_end_of_time": (("snooze", "{case}", "--until", "9999-12-31"),
                                     ("cannot snooze until 9999-12-31", f"at most {MAX_SNOOZE_DAYS} days", "MAX_SNOOZE_DAYS")),
}


@pytest.mark.parametrize("fault", sorted(CLI_FAULTS))
def test_the_cli_refuses_what_people_type_in_one_line_and_writes_nothing(queue: Queue, fault: str) -> None:
    args, names = CLI_FAULTS[fault]
    before = queue.written()
    output, code = _run(queue, *args)
    assert_clean_failure(output, names=names, exit_code=code)
    assert code == 2 and _one_line(output).startswith("error: ")
    assert queue.written() == before, f"{fault}: something was written"


def test_a_hostile_actor_in_the_environment_is_refused_naming_the_variable(queue: Queue, monkeypatch) -> None:
    monkeypatch.setenv("RESCUE_ACTOR", f"csm_amara{RLO}")
    before = queue.written()
    output, code = _run(queue, "act", "{case}", "--play", "success_plan")
    assert_clean_failure(output, names=("RESCUE_ACTOR contains a bidirectional-text control",), exit_code=code)
    _one_line(output)
    assert queue.written() == before


def test_no_play_is_logged_when_the_deployment_policy_does_not_load(queue: Queue, monkeypatch, tmp_path: Path) -> None:
    bomb = tmp_path / "policy.yaml"
    bomb.write_text(_condition_bomb(), encoding="utf-8")
    monkeypatch.setenv("RESCUE_POLICY_PATH", str(bomb))
    before = queue.written()
    output, code = _run(queue, "act", "{case}", "--play", "success_plan")
    assert_clean_failure(output, names=("cannot check the play against the policy's catalogue", str(bomb), "MAX_NODES"),
                         exit_code=code)
    _one_line(output)
    assert queue.written() == before


def test_a_well_formed_play_is_still_logged_after_all_the_refusals(queue: Queue) -> None:
    """The refusals above are about the input, not the case: the same case takes a good play."""
    output, code = _run(queue, "act", "{case}", "--play", " success_plan ", "--note", "plan agreed\nnext: QBR")
    assert code == 0, output
    assert queue.store.plays()["play"].tolist() == ["success_plan"]
    assert queue.store.plays()["note"].tolist() == ["plan agreed\nnext: QBR"]  # newlines are kept


# -- the desk's JSON API -------------------------------------------------------------------------


@pytest.fixture
def desk(queue: Queue) -> Iterator[tuple[TestClient, dict[str, str]]]:
    tokens = add_users(DeskUsers(queue.store))
    with TestClient(create_app(queue.url, POLICY, secret_key="fault-corpus-secret")) as client:
        yield client, {"Authorization": f"Bearer {tokens['csm_amara']}"}


#: case -> (endpoint under the claimed case, JSON body, what the error must name)
API_FAULTS: dict[str, tuple[str, dict, tuple[str, ...]]] = {
    "play_longer_than_its_column": ("plays", {"play": "p" * 129}, ("play", "at most 128 characters")),
    "play_with_nul": ("plays", {"play": "success\x00plan"}, ("play contains", "U+0000")),
    "play_with_right_to_left_override": ("plays", {"play": f"success_plan{RLO}"}, ("play contains a bidirectional-text control",)),
    "play_not_in_the_catalogue": ("plays", {"play": "training_session2"}, ("unknown play 'training_session2'", "adoption_workshop")),
    "play_under_its_former_name": ("plays", {"play": "training_session"}, ("now called 'adoption_workshop'",)),
    "note_with_nul": ("plays", {"play": "success_plan", "note": "a\x00b"}, ("note contains a control character", "U+0000")),
    "handoff_note_with_override": ("handoff", {"to_assignee": "csm_jonas", "note": f"call {RLO}Friday"},
                                   ("note contains a bidirectional-text control",)),
    "handoff_to_a_person_with_override": ("handoff", {"to_assignee": f"csm_jonas{RLO}", "note": "call Friday"},
                                          ("to_assignee contains a bidirectional-text control",)),
    "handoff_to_a_team_longer_than_its_column": ("handoff", {"to_team": "t" * 65, "note": "call Friday"},
                                                 ("to_team", "at most 64 characters")),
    "snooze_until_the_end_of_time": ("snooze", {"until": "9999-12-31T00:00:00Z"}, (f"at most {MAX_SNOOZE_DAYS} days",)),
    "snooze_reason_with_isolate": ("snooze", {"until": SOON, "reason": f"x{LRI}y"},
                                   ("reason contains a bidirectional-text control",)),
}


@pytest.mark.parametrize("fault", sorted(API_FAULTS))
def test_the_desk_api_refuses_what_people_type_with_a_4xx_and_writes_nothing(
        queue: Queue, desk: tuple[TestClient, dict[str, str]], fault: str) -> None:
    client, amara = desk
    endpoint, body, names = API_FAULTS[fault]
    before = queue.written()
    response = client.post(f"/api/v1/cases/{queue.case}/{endpoint}", json=body, headers=amara)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    assert set(response.json()) == {"error"}
    message = response.json()["error"]
    assert_clean_failure(message, names=names)
    assert "\n" not in message and len(message) < 500
    assert queue.written() == before, f"{fault}: something was written"


def test_brackets_people_typed_are_shown_as_typed_not_read_as_console_styles(queue: Queue) -> None:
    note = "[/] [red]urgent[/red] [bold"
    output, code = _run(queue, "act", "{case}", "--play", "success_plan", "--note", note, "--as", "[csm]")
    assert code == 0, output
    shown, code = _run(queue, "show", "{case}")
    assert code == 0, shown
    assert_clean_failure(shown, names=(note, "[csm]"))

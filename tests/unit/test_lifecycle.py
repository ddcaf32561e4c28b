"""The case state machine, exhaustively: every (from, to) pair, claims, plays and resolutions."""

from __future__ import annotations

import itertools

import pytest

from models.cases import lifecycle as lc

EXPECTED = {
    ("open", "acknowledged"), ("open", "closed_no_action"),
    *{("acknowledged", t) for t in ("in_progress", "snoozed", "waiting_customer",
                                    "resolved_saved", "resolved_churned", "closed_no_action")},
    *{("in_progress", t) for t in ("snoozed", "waiting_customer",
                                   "resolved_saved", "resolved_churned", "closed_no_action")},
    *{("snoozed", t) for t in ("in_progress", "snoozed", "waiting_customer",
                               "resolved_saved", "resolved_churned", "closed_no_action")},
    *{("waiting_customer", t) for t in ("in_progress", "snoozed",
                                        "resolved_saved", "resolved_churned", "closed_no_action")},
}


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(lc.STATUSES, repeat=2)))
def test_every_transition_is_allowed_exactly_when_expected(src: str, dst: str) -> None:
    if (src, dst) in EXPECTED:
        lc.check_transition(src, dst, case_id="RC-1")
        assert dst in lc.allowed_transitions(src)
    else:
        with pytest.raises(lc.InvalidTransition) as err:
            lc.check_transition(src, dst, case_id="RC-1")
        message = str(err.value)
        assert f"case RC-1: cannot go from {src} to {dst}" in message
        allowed = sorted(lc.allowed_transitions(src))
        assert ("none (terminal)" in message) if not allowed else all(a in message for a in allowed)
        assert (err.value.from_status, err.value.to_status) == (src, dst)


def test_terminal_statuses_have_no_way_out_and_active_ones_do() -> None:
    for status in lc.STATUSES:
        assert lc.is_terminal(status) == (not lc.allowed_transitions(status))
    assert set(lc.ACTIVE_STATUSES) | lc.TERMINAL_STATUSES == set(lc.STATUSES)
    assert lc.PAUSED_STATUSES <= set(lc.ACTIVE_STATUSES)


def test_every_active_status_can_reach_a_terminal_status() -> None:
    for status in lc.ACTIVE_STATUSES:
        seen, frontier = {status}, [status]
        while frontier:
            for nxt in lc.allowed_transitions(frontier.pop()):
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert lc.TERMINAL_STATUSES <= seen, status


def test_unknown_status_is_named() -> None:
    with pytest.raises(ValueError, match="unknown case status 'done'.*open, acknowledged"):
        lc.check_transition("open", "done")
    with pytest.raises(ValueError, match="unknown case status 'nope'"):
        lc.allowed_transitions("nope")


@pytest.mark.parametrize(("outcome", "status"), [("saved", "resolved_saved"), ("churned", "resolved_churned"),
                                                 ("no_action", "closed_no_action")])
def test_resolution_status_of_each_outcome(outcome: str, status: str) -> None:
    assert lc.resolution_status(outcome) == status
    assert lc.is_terminal(status)


def test_unknown_outcome_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown outcome 'won'; expected one of: saved, churned, no_action"):
        lc.resolution_status("won")


@pytest.mark.parametrize("status", lc.STATUSES)
def test_status_after_play(status: str) -> None:
    if status in ("acknowledged", "in_progress", "snoozed", "waiting_customer"):
        assert lc.status_after_play(status) == "in_progress"
    elif status == "open":
        with pytest.raises(lc.InvalidTransition, match="claim or acknowledge it before logging a play"):
            lc.status_after_play(status, case_id="RC-9")
    else:
        with pytest.raises(lc.InvalidTransition, match="none \\(terminal\\)"):
            lc.status_after_play(status)


def test_claim_of_an_open_case_acknowledges_it_whoever_routing_proposed() -> None:
    for proposed in (None, "alice", "bob"):
        decision = lc.decide_claim("open", proposed, "bob")
        assert decision == lc.ClaimDecision("acknowledged", "bob", changed=True, first_touch=True)


def test_claim_of_an_unowned_acknowledged_case_takes_it_without_a_new_first_touch() -> None:
    assert lc.decide_claim("acknowledged", None, "carol") == lc.ClaimDecision(
        "acknowledged", "carol", changed=True, first_touch=False)


@pytest.mark.parametrize("status", ["acknowledged", "in_progress", "snoozed", "waiting_customer"])
def test_claim_of_your_own_case_changes_nothing(status: str) -> None:
    assert lc.decide_claim(status, "dana", "dana") == lc.ClaimDecision(status, "dana", changed=False, first_touch=False)


@pytest.mark.parametrize("status", ["acknowledged", "in_progress", "snoozed", "waiting_customer"])
def test_claim_of_someone_elses_case_is_a_conflict_naming_them(status: str) -> None:
    with pytest.raises(lc.CaseConflict, match=f"case RC-7 already claimed by erin \\(status {status}\\)"):
        lc.decide_claim(status, "erin", "frank", case_id="RC-7")


@pytest.mark.parametrize("status", ["in_progress", "snoozed", "waiting_customer"])
def test_claim_of_an_unowned_case_in_work_is_refused(status: str) -> None:
    with pytest.raises(lc.InvalidTransition, match="only open or acknowledged cases can be claimed"):
        lc.decide_claim(status, None, "gus")


@pytest.mark.parametrize("status", sorted(lc.TERMINAL_STATUSES))
def test_claim_of_a_closed_case_is_refused(status: str) -> None:
    with pytest.raises(lc.InvalidTransition, match="the case is closed"):
        lc.decide_claim(status, "hana", "hana")


def test_claim_needs_an_actor() -> None:
    with pytest.raises(ValueError, match="non-empty actor"):
        lc.decide_claim("open", None, "  ")


def test_errors_share_a_base_class_the_cli_can_catch() -> None:
    for error in (lc.CaseNotFound("x"), lc.CaseConflict("x"), lc.InvalidTransition(None, "open", "snoozed")):
        assert isinstance(error, lc.CaseError)

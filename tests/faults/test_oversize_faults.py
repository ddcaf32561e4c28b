"""Oversize text: the same source row is stored alike on SQLite and PostgreSQL.

Display fields (the account name, reason texts, notification text) are cut to their column's
size with a visible marker before they are stored or enqueued, so a 10 MB account name opens a
case like any other on both backends (on PostgreSQL it used to fail the whole day's queue
write). An id too long to store is refused by its source check, naming the column and the
limit. The sizes come from the queue schema (`connectors.queue.schema.text_limit`).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from assets import stages
from connectors.queue.handoff import handoff
from connectors.queue.schema import outbox, rescue_cases, routing_log, text_limit
from connectors.warehouse import Warehouse
from models.contracts import ACCOUNT_ID_CHARS, ACCOUNTS, TICKETS, USAGE_DAILY, conform, empty_frame
from models.quality import validate_frame
from models.text import TRUNCATION_MARKER, fit_document, fit_text
from tests.factories import random_tables
from tests.faults.conftest import assert_clean_failure
from tests.unit.test_policy import NOW, small

SNAPSHOT = pd.Timestamp("2026-11-20")
MB = 1024 * 1024
#: What one outbox row may weigh, whatever the source held.
PAYLOAD_BYTES = 64 * 1024
NAME_CHARS = text_limit(rescue_cases.c.account_name)
REASON_CHARS = text_limit(rescue_cases.c.reason)


def _route(store, tmp_path, frames, **a1):
    """The daily queue stage on `store` for three accounts: A1 (with `a1`) for the squad, A2
    not at risk, A3 for the CSMs."""
    _, candidates = frames([{"account_id": "A1", **a1}, {"account_id": "A2", "churn_risk": 0.1},
                            {"account_id": "A3", "segment": "smb", "churn_risk": 0.8}])
    candidates["movers"] = [[], [], []]
    warehouse = Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    if not warehouse.table_exists("usage_daily"):
        warehouse.write_table("usage_daily", empty_frame(USAGE_DAILY))
    health = pd.DataFrame(index=pd.Index([], name="account_id"))
    return stages.rescue_queue(store, warehouse, small(), candidates, health, empty_frame(TICKETS), now=NOW,
                               as_of=SNAPSHOT)


def _case(store, account_id: str) -> dict:
    cases = store.list_cases()
    return store.get_case(cases.loc[cases["account_id"] == account_id, "case_id"].iloc[0])


def _payload_sizes(store) -> list[int]:
    rows = store.outbox()
    assert len(rows), "nothing was enqueued"
    return [len(json.dumps(p, ensure_ascii=False).encode()) for p in rows["payload"]]


def _cut(text: str, limit: int) -> bool:
    return len(text) == limit and text.endswith(TRUNCATION_MARKER)


def test_a_10_mb_account_name_routes_and_is_stored_cut_on_every_backend(queue_store, tmp_path, frames):
    name = "N" * (10 * MB)
    run = _route(queue_store, tmp_path, frames, name=name)
    assert run.summary.opened == 2  # the huge name's case and the other account's, on every backend
    case = _case(queue_store, "A1")
    assert _cut(case["account_name"], NAME_CHARS) and case["account_name"].startswith("NNNN")
    assert _cut(case["context"]["account"]["name"], NAME_CHARS)
    assert len(json.dumps(case["context"])) < PAYLOAD_BYTES
    assert max(_payload_sizes(queue_store)) < PAYLOAD_BYTES
    opened = queue_store.outbox()
    texts = [p["text"] for p in opened["payload"] if p.get("case_id") == case["case_id"]]
    assert texts and all(TRUNCATION_MARKER in t and len(t) <= text_limit(outbox.c.payload) for t in texts)


def test_a_rerun_with_the_10_mb_name_updates_the_case_and_stays_small(queue_store, tmp_path, frames):
    name = "N" * (10 * MB)
    _route(queue_store, tmp_path, frames, name=name)
    again = _route(queue_store, tmp_path, frames, name=name + "more")
    assert again.summary.opened == 0
    case = _case(queue_store, "A1")
    assert _cut(case["context"]["account"]["name"], NAME_CHARS)
    assert len(json.dumps(case["context"])) < PAYLOAD_BYTES
    assert max(_payload_sizes(queue_store)) < PAYLOAD_BYTES


def test_a_1_mb_reason_is_cut_in_the_case_its_evidence_and_its_notification(queue_store, tmp_path, frames):
    reason = "usage fell " + "R" * MB
    _route(queue_store, tmp_path, frames, top_reason=reason)
    case = _case(queue_store, "A1")
    assert len(case["reason"]) <= REASON_CHARS and case["reason"].endswith(TRUNCATION_MARKER)
    assert all(len(r) <= text_limit(rescue_cases.c.evidence) for e in case["evidence"] for r in e["reasons"])
    assert max(_payload_sizes(queue_store)) < PAYLOAD_BYTES


def test_a_1_mb_reason_on_a_logged_decision_is_cut_in_the_routing_log(queue_store, tmp_path, frames):
    decisions, candidates = frames([{"account_id": "H1", "action": "holdout", "reasons": ["held out", "Z" * MB]}])
    queue_store.apply_decisions(decisions, candidates, policy_version="p", policy_hash="h", model_version="m",
                                snapshot_date=SNAPSHOT, now=NOW)
    logged = queue_store.routing_log()
    assert len(logged) == 1
    assert [len(r) <= text_limit(routing_log.c.reasons) for r in logged["reasons"].iloc[0]] == [True, True]


def test_a_name_with_nul_characters_is_stored_alike_on_every_backend(queue_store, tmp_path, frames):
    _route(queue_store, tmp_path, frames, name="Acme\x00 Corp\x00")
    case = _case(queue_store, "A1")
    assert case["account_name"] == "Acme Corp" and case["context"]["account"]["name"] == "Acme Corp"


def test_a_name_exactly_at_the_limit_is_stored_whole(queue_store, tmp_path, frames):
    name = "é" * NAME_CHARS  # characters, not bytes: PostgreSQL counts characters too
    _route(queue_store, tmp_path, frames, name=name)
    assert _case(queue_store, "A1")["account_name"] == name


def test_a_1_mb_handoff_note_is_refused_in_one_line_and_nothing_is_written(queue_store, tmp_path, frames):
    # What a person types is refused past its limit (connectors.queue.values.clean_text), not cut:
    # they learn the limit and keep their text; display text from the sources is what gets cut.
    _route(queue_store, tmp_path, frames)
    case = _case(queue_store, "A1")
    before = (len(queue_store.audit_events()), len(queue_store.outbox()))
    with pytest.raises(ValueError) as refused:
        handoff(queue_store, case["case_id"], actor="s1", to_team="csm", to_assignee="c2",
                note="see " + "x" * MB, now=NOW)
    assert_clean_failure(str(refused.value), names=["note", "at most 4,000"])
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 200
    assert (len(queue_store.audit_events()), len(queue_store.outbox())) == before
    assert _case(queue_store, "A1")["team"] == case["team"]
    assert max(_payload_sizes(queue_store)) < PAYLOAD_BYTES


# ---------------------------------------------------------------------------------------------
# Ids: refused by the source check, naming the column and the limit
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tables():
    return random_tables(n_accounts=10, seed=13)


@pytest.mark.parametrize("length", [ACCOUNT_ID_CHARS + 1, 10 * MB], ids=["one-over", "10-mb"])
def test_an_account_id_longer_than_its_column_is_refused_by_the_accounts_check(tables, length):
    accounts = tables["accounts"].copy()
    accounts.loc[2, "account_id"] = "A" * length
    res = validate_frame(accounts, ACCOUNTS, now=SNAPSHOT)
    assert not res.success
    assert_clean_failure(res.summary(), names=["accounts.account_id", "1 row(s)", f"longer than {ACCOUNT_ID_CHARS} characters",
                                               f"{length:,} characters"])
    assert len(res.summary()) < 2000 and len(res.markdown()) < 2000  # the id is shown cut


def test_a_10_mb_account_id_in_tickets_is_refused_by_the_tickets_check(tables):
    tickets = tables["tickets"].copy()
    tickets.loc[0, "account_id"] = "A" * (10 * MB)
    res = validate_frame(tickets, TICKETS, known_accounts=tables["accounts"]["account_id"], now=SNAPSHOT)
    assert_clean_failure(res.summary(), names=["tickets.account_id", f"longer than {ACCOUNT_ID_CHARS} characters",
                                               "not a known account", "T00000"])
    assert len(res.summary()) < 2000


def test_an_account_id_exactly_at_the_limit_and_a_10_mb_name_pass_the_accounts_check(tables):
    accounts = tables["accounts"].copy()
    accounts.loc[2, "account_id"] = "A" * ACCOUNT_ID_CHARS
    accounts.loc[3, "name"] = "N" * (10 * MB)  # names are cut when stored, never refused
    assert validate_frame(accounts, ACCOUNTS, now=SNAPSHOT).success


# ---------------------------------------------------------------------------------------------
# The cut itself
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "limit", "expected"), [
    ("short", 40, "short"),
    ("x" * 40, 40, "x" * 40),
    ("x" * 41, 40, "x" * 28 + TRUNCATION_MARKER),
    ("a\x00b", 40, "ab"),
    (None, 40, None),
    (12.5, 40, 12.5),
], ids=["short", "at-limit", "one-over", "nul", "none", "number"])
def test_fit_text(value, limit, expected):
    assert fit_text(value, limit) == expected


def test_fit_document_cuts_every_string_at_any_depth():
    doc = fit_document({"a": ["y" * 100, {"b": "z" * 100, "n": 3}], "k" * 100: None}, 20)
    assert doc["a"][0] == "y" * 8 + TRUNCATION_MARKER and doc["a"][1] == {"b": "z" * 8 + TRUNCATION_MARKER, "n": 3}
    assert "k" * 8 + TRUNCATION_MARKER in doc


def test_a_10_mb_name_stays_out_of_the_source_asset_metadata(tables):
    from assets.sources import _frame_metadata

    accounts = tables["accounts"].copy()
    accounts.loc[0, "name"] = "N" * (10 * MB)
    preview = _frame_metadata(accounts)["preview"].value
    assert TRUNCATION_MARKER in preview and len(preview) < 4000


def test_the_suite_never_hashes_the_frame_it_validates(monkeypatch):
    """GX's batch fingerprint (a hash of the whole frame, twice per validation) is off: a
    validation that would hash fails here, and finds the planted fault all the same."""
    import great_expectations.execution_engine.pandas_execution_engine as engine

    from models.quality import _context

    _context()
    assert engine.HASH_THRESHOLD == 0  # the knob this relies on is still GX's

    def refuse(_df):
        raise AssertionError("the frame was hashed")

    monkeypatch.setattr(engine, "hash_pandas_dataframe", refuse)
    frame = pd.DataFrame({"ticket_id": ["T1", "T1"], "account_id": ["A1", "A2"],
                          "created_at": pd.to_datetime(["2026-01-02", "2026-01-03"]),
                          "first_response_at": pd.NaT, "solved_at": pd.NaT, "priority": ["low", "high"],
                          "category": ["billing", None], "status": ["open", "solved"], "csat": [None, 5.0],
                          "escalated": [False, True]})
    result = validate_frame(conform(frame, TICKETS), TICKETS, now=pd.Timestamp("2026-02-01"))
    assert [f.expectation for f in result.failures] == ["expect_column_values_to_be_unique"]

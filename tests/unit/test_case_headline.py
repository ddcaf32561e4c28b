"""A case's headline comes from the severity rule that matched: a ticket-triggered rule names its
ticket (and the ticket is marked in the package's last tickets), any other rule its top driver.
Also: an overflow decision's reason says budget or capacity, and reads back as such."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from connectors.queue.decisions import headline_reason
from models.cases.context import build_context_packages, case_headline, ticket_fields, triggering_ticket
from models.policy.loader import load_policy
from models.routing.decisions import (
    OVERFLOW_BUDGET,
    OVERFLOW_CAPACITY,
    overflow_budget_reason,
    overflow_capacity_reason,
    overflow_cause,
)

POLICY = load_policy(Path(__file__).resolve().parents[2] / "policies" / "default.yaml")
RULES = {r.id: r for r in POLICY.severity_rules}
SNAPSHOT = pd.Timestamp("2025-06-02")
DRIVER = "advanced features are 0% of activity"


def tickets(*rows: tuple[str, str, str | None, str, str | None]) -> pd.DataFrame:
    return pd.DataFrame([
        {"ticket_id": t, "account_id": "A1", "created_at": pd.Timestamp(c), "solved_at": pd.Timestamp(s) if s else pd.NaT,
         "priority": p, "category": cat, "csat": None, "escalated": False}
        for t, c, s, p, cat in rows
    ])


BOOK = tickets(
    ("T-old-legal", "2025-03-01", None, "high", "legal"),
    ("T-solved-security", "2025-02-01", "2025-02-03", "urgent", "security"),
    ("T-later-compliance", "2025-04-01", None, "normal", "Compliance"),
    ("T-urgent-bug", "2025-05-31", None, "urgent", "bug"),
    ("T-1", "2025-05-20", "2025-05-21", "normal", "how_to"),
    ("T-2", "2025-05-25", "2025-05-26", "low", "billing"),
    ("T-after-snapshot", "2025-06-03", None, "urgent", "legal"),
)


def test_only_rules_that_test_a_ticket_field_are_ticket_triggered() -> None:
    assert ticket_fields(RULES["open_compliance_ticket"]) == ["open_compliance_tickets"]
    assert ticket_fields(RULES["vip_urgent_ticket_past_sla"]) == ["oldest_open_urgent_hours", "open_urgent_tickets"]
    assert ticket_fields(RULES["at_risk_band"]) == []
    assert triggering_ticket(RULES["at_risk_band"], BOOK, SNAPSHOT) is None


def test_the_triggering_ticket_is_the_oldest_open_one_the_rule_counts_at_the_snapshot() -> None:
    compliance = triggering_ticket(RULES["open_compliance_ticket"], BOOK, SNAPSHOT)
    assert compliance["ticket_id"] == "T-old-legal"  # not the solved one, not the one after the snapshot
    urgent = triggering_ticket(RULES["vip_urgent_ticket_past_sla"], BOOK, SNAPSHOT)
    assert urgent["ticket_id"] == "T-urgent-bug"
    solved_since = BOOK.assign(solved_at=BOOK["solved_at"].where(BOOK["ticket_id"] != "T-old-legal", pd.Timestamp("2025-06-05")))
    assert triggering_ticket(RULES["open_compliance_ticket"], solved_since, SNAPSHOT)["ticket_id"] == "T-old-legal"
    none_open = BOOK[~BOOK["ticket_id"].isin(["T-old-legal", "T-later-compliance"])]
    assert triggering_ticket(RULES["open_compliance_ticket"], none_open, SNAPSHOT) is None


def test_a_ticket_headline_names_the_ticket_not_the_usage_driver() -> None:
    trigger = {"rule_id": "open_compliance_ticket", "description": RULES["open_compliance_ticket"].description,
               "ticket": {"ticket_id": "T-9", "category": "legal", "priority": "urgent", "created_at": "2025-05-30T10:00:00"}}
    line = case_headline(RULES["open_compliance_ticket"].description, DRIVER, trigger)
    assert line == "Open compliance, legal or security ticket: ticket T-9 (legal, urgent, open since 2025-05-30)"
    assert DRIVER not in line
    assert case_headline("Health in the at-risk band", DRIVER, {"rule_id": "at_risk_band", "ticket": None}) == \
        f"Health in the at-risk band: {DRIVER}"
    assert case_headline(None, None, None) is None


def package(rule_id: str) -> dict:
    candidates = pd.DataFrame([{
        "account_id": "A1", "name": "Acme", "segment": "smb", "arr": 1000.0, "csm_owner": None,
        "renewal_date": pd.NaT, "days_to_renewal": None, "health_score": 40.0, "health_band": "at_risk",
        "churn_risk": 0.4, "churn_risk_delta": 0.0, "expected_arr_at_risk": 400.0, "drivers": [], "movers": [],
        "model_version": "m1", "wau_trend": -0.2,
    }])
    usage = pd.DataFrame({"account_id": ["A1"], "date": [SNAPSHOT - pd.Timedelta(days=3)], "active_users": [2]})
    return build_context_packages(candidates, health=pd.DataFrame(index=pd.Index([], name="account_id")),
                                  tickets=BOOK, usage_daily=usage, snapshot_date=SNAPSHOT,
                                  rules={"A1": RULES[rule_id]})["A1"]


def test_the_package_keeps_and_marks_the_trigger_ticket_even_when_older_than_the_last_three() -> None:
    pkg = package("open_compliance_ticket")
    ids = [t["ticket_id"] for t in pkg["last_tickets"]]
    assert ids[:3] == ["T-urgent-bug", "T-2", "T-1"]  # the three newest before the snapshot
    assert ids[3] == "T-old-legal" and len(ids) == 4
    assert [t["ticket_id"] for t in pkg["last_tickets"] if t["trigger"]] == ["T-old-legal"]
    assert pkg["trigger"]["ticket"]["ticket_id"] == "T-old-legal"
    assert pkg["trigger"]["rule_id"] == "open_compliance_ticket"

    row = {"rule_description": RULES["open_compliance_ticket"].description, "top_reason": DRIVER,
           "reasons": ["routed to legal as P1"]}
    assert headline_reason(row, pkg) == ("Open compliance, legal or security ticket: ticket T-old-legal "
                                         "(legal, high, open since 2025-03-01)")
    assert headline_reason(row, None) == f"Open compliance, legal or security ticket: {DRIVER}"


def test_a_usage_rule_marks_no_ticket_and_keeps_the_driver_headline() -> None:
    pkg = package("at_risk_band")
    assert len(pkg["last_tickets"]) == 3 and not any(t["trigger"] for t in pkg["last_tickets"])
    assert pkg["trigger"] == {"rule_id": "at_risk_band", "description": "Health in the at-risk band", "ticket": None}
    row = {"rule_description": "Health in the at-risk band", "top_reason": DRIVER, "reasons": ["routed"]}
    assert headline_reason(row, pkg) == f"Health in the at-risk band: {DRIVER}"


@pytest.mark.parametrize(("reasons", "cause"), [
    ([overflow_budget_reason(3, "csm", 2), "at_risk_band: x"], OVERFLOW_BUDGET),
    ([overflow_capacity_reason("legal")], OVERFLOW_CAPACITY),
    (["holdout: control group (5% of eligible accounts)"], None),
    ([], None),
    (None, None),
])
def test_an_overflow_reason_reads_back_as_budget_or_capacity(reasons, cause) -> None:
    assert overflow_cause(reasons) == cause

"""One definition of the experiment's arms: the queue metrics and play effectiveness agree."""

from __future__ import annotations

import pandas as pd
import pytest

from models.cases.metrics import CASE_COLUMNS, EVENT_COLUMNS, queue_metrics
from models.experiment.outcomes import (
    NO_PLAY,
    arm_save_rates,
    compare_groups,
    experiment_units,
    rescue_outcome_frame,
)

T = pd.Timestamp
NOW = T("2026-03-01 12:00")


def case(case_id, account_id, snapshot, status, resolved=None, arr=10_000.0):
    opened = T(snapshot) + pd.Timedelta(hours=6)
    return {"case_id": case_id, "account_id": account_id, "team": "csm", "priority": "P2",
            "status": status, "outcome": status if resolved else None, "arr": arr,
            "evidence": [{"snapshot_date": snapshot}], "snapshot_date": T(snapshot),
            "opened_at": opened, "acknowledged_at": opened + pd.Timedelta(hours=1),
            "resolved_at": T(resolved) if resolved else None,
            "sla_first_touch_due": opened + pd.Timedelta(hours=4),
            "sla_resolution_due": opened + pd.Timedelta(days=14)}


# The old queue-metrics definition (every account with a resolved case, its last outcome; every
# held-out account, whatever came first) and the experiment's (each account once, in the arm of
# its first decision) disagree on A1 (saved, then churned on a case after its cooldown) and on A2
# (held out and churned, later routed and saved): old treated 2/4 with A2 in both arms.
CASES = pd.DataFrame([
    case("C1", "A1", "2026-01-05", "resolved_saved", "2026-01-20"),
    case("C2", "A1", "2026-02-09", "resolved_churned", "2026-02-20"),
    case("C3", "A2", "2026-01-12", "resolved_saved", "2026-01-30"),
    case("C4", "A3", "2026-01-05", "resolved_saved", "2026-01-25"),   # nobody logged a play
    case("C5", "A4", "2026-01-05", "resolved_churned", "2026-01-28"),
    case("C6", "A5", "2026-02-16", "in_progress"),                       # outcome still to come
])
PLAYS = pd.DataFrame({"case_id": ["C1", "C2", "C3", "C5"], "at": [T("2026-01-06")] * 4,
                      "play": ["executive_sponsor_call", "commercial_concession", "executive_sponsor_call", "adoption_workshop"]})
ROUTING_LOG = pd.DataFrame({
    "snapshot_date": [T("2026-01-05"), T("2026-01-05"), T("2026-01-05"), T("2026-01-12"), T("2026-01-12")],
    "account_id": ["A2", "H1", "H2", "H3", "X1"],
    "action": ["holdout", "holdout", "holdout", "holdout", "overflow"],
})
HOLDOUT_OUTCOMES = pd.DataFrame({
    "account_id": ["A2", "H1", "H2"],
    "renewal_date": [T("2026-01-10"), T("2026-01-31"), T("2026-02-05")],
    "held_out_at": [T("2026-01-05")] * 3,
    "outcome": ["churned", "saved", "churned"],
    "arr": [12_000.0, 8_000.0, 9_000.0],
})


def test_queue_metrics_and_play_effectiveness_report_the_same_headline():
    # as the queue_operations_metrics asset calls it: one outcome per held-out account
    metrics = queue_metrics(CASES, pd.DataFrame(columns=list(EVENT_COLUMNS)), now=NOW,
                            holdout=ROUTING_LOG,
                            outcomes=HOLDOUT_OUTCOMES.drop_duplicates("account_id")[["account_id", "outcome"]])
    rates = metrics.save_rates.set_index("arm")
    # as the rescue_outcomes and play_effectiveness assets compute it
    overall = compare_groups(*experiment_units(
        rescue_outcome_frame(CASES, PLAYS, ROUTING_LOG, HOLDOUT_OUTCOMES))).overall

    assert rates.loc["treated", ["accounts", "saved", "churned"]].tolist() == [3, 2, 1]  # A1, A3 saved; A4
    assert rates.loc["holdout", ["accounts", "saved", "churned"]].tolist() == [3, 1, 2]  # A2, H1, H2
    for arm in ("treated", "holdout"):
        assert rates.loc[arm, "accounts"] == overall[f"n_{arm}"]
        assert rates.loc[arm, "saved"] == overall[f"saved_{arm}"]
        assert rates.loc[arm, "save_rate"] == pytest.approx(overall[f"save_rate_{arm}"])


def test_treated_means_routed_first_with_or_without_a_play():
    treated, holdout = experiment_units(rescue_outcome_frame(CASES, PLAYS, ROUTING_LOG, HOLDOUT_OUTCOMES))
    assert sorted(treated["account_id"].unique()) == ["A1", "A3", "A4"]
    assert treated.set_index("account_id").loc["A3", "play"] == NO_PLAY
    assert treated.set_index("account_id").loc["A1", "outcome"] == "saved"  # its first case, not its last
    assert sorted(holdout["account_id"]) == ["A2", "H1", "H2"]


def test_fewer_columns_give_the_same_units():
    full = rescue_outcome_frame(CASES, PLAYS, ROUTING_LOG, HOLDOUT_OUTCOMES)
    lean = rescue_outcome_frame(CASES[list(CASE_COLUMNS) + ["account_id", "status"]], None,
                                ROUTING_LOG, HOLDOUT_OUTCOMES[["account_id", "outcome"]])
    pd.testing.assert_frame_equal(arm_save_rates(lean), arm_save_rates(full))


def test_an_outcome_of_an_account_never_held_out_is_not_a_holdout_unit():
    stray = pd.concat([HOLDOUT_OUTCOMES, HOLDOUT_OUTCOMES.iloc[[1]].assign(account_id="X1")], ignore_index=True)
    frame = rescue_outcome_frame(CASES, PLAYS, ROUTING_LOG, stray)
    assert "X1" not in set(frame["account_id"])

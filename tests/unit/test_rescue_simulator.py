"""The simulated rescue team: deterministic draws, plays that only ever help, no outcome early."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from connectors.demo.world import DemoWorldConfig, generate_demo_world
from connectors.queue.store import QueueStore
from connectors.demo.team import (
    TRUE_EFFECTS,
    choose_plays,
    play_effects,
    outcome_draw,
    renewal_outcomes,
    simulate_rescue_team,
    treatment_effect,
)
from connectors.warehouse import Warehouse
from models.policy.loader import load_policy, parse_policy
from tests.conftest import snapshot_frames

POLICY_FILE = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"
POLICY = load_policy(POLICY_FILE)

WORLD = DemoWorldConfig(n_accounts=120, seed=5, end_date=date(2026, 11, 20), history_days=200)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Warehouse:
    warehouse = Warehouse(f"duckdb:///{tmp_path_factory.mktemp('world') / 'warehouse.duckdb'}")
    generate_demo_world(WORLD, warehouse)
    return warehouse


def test_outcome_draws_are_fixed_by_seed_account_and_renewal_and_uniform():
    first = outcome_draw(7, "ACC-1", "2026-06-01")
    assert first == outcome_draw(7, "ACC-1", pd.Timestamp("2026-06-01 13:45"))  # the day, not the time
    assert first != outcome_draw(8, "ACC-1", "2026-06-01")
    assert first != outcome_draw(7, "ACC-2", "2026-06-01")
    assert first != outcome_draw(7, "ACC-1", "2027-06-01")
    draws = np.array([outcome_draw(7, f"ACC-{i}", "2026-06-01") for i in range(4000)])
    assert ((draws >= 0) & (draws < 1)).all()
    assert abs(draws.mean() - 0.5) < 0.02 and abs((draws < 0.25).mean() - 0.25) < 0.03


def test_plays_are_chosen_deterministically_from_the_policy_catalogue_for_the_team():
    chosen = choose_plays("RC-0001", "rescue_squad", 7, POLICY)
    assert chosen == choose_plays("RC-0001", "rescue_squad", 7, POLICY)
    assert 1 <= len(chosen) <= 2 and len(set(chosen)) == len(chosen) and set(chosen) <= set(POLICY.plays)
    picks = [p for i in range(300) for p in choose_plays(f"RC-{i:04d}", "legal", 7, POLICY)]
    assert set(picks) == set(POLICY.plays_for("legal")) == {"support_escalation", "executive_sponsor_call"}
    assert {len(choose_plays(f"RC-{i:04d}", "csm", 7, POLICY)) for i in range(100)} == {1, 2}


def test_the_simulated_team_plays_only_what_the_policy_declares():
    text = POLICY_FILE.read_text().replace("  adoption_workshop:\n", "  user_training:\n", 1)
    renamed = parse_policy(text)
    picks = {p for i in range(300) for p in choose_plays(f"RC-{i:04d}", "csm", 7, renamed)}
    assert "user_training" in picks and "adoption_workshop" not in picks
    assert play_effects(renamed)["user_training"] == 1.0  # the demo world knows no effect for it
    assert set(TRUE_EFFECTS) == set(POLICY.plays)  # the shipped catalogue is the world's


def test_effects_multiply_and_unknown_plays_are_named():
    assert treatment_effect([]) == 1.0
    assert treatment_effect(["success_plan", "adoption_workshop"]) == pytest.approx(0.8 * 0.6)
    with pytest.raises(ValueError, match="unknown play\\(s\\) cold_call"):
        treatment_effect(["cold_call"])


def test_treated_outcomes_are_never_worse_than_the_same_accounts_untreated(world):
    truth = world.read_sql("SELECT * FROM demo_truth")
    units = pd.DataFrame({"account_id": truth["account_id"], "renewal_date": pd.Timestamp("2026-09-15")})
    untreated = renewal_outcomes(truth, units.assign(effect=1.0), seed=7)
    treated = renewal_outcomes(truth, units.assign(effect=treatment_effect(["executive_sponsor_call"])), seed=7)

    np.testing.assert_array_equal(treated["draw"], untreated["draw"])  # the same draw per account
    assert (treated["churn_probability"] < untreated["churn_probability"]).all()
    assert not ((treated["outcome"] == "churned") & (untreated["outcome"] == "saved")).any()
    assert (treated["outcome"] == "saved").sum() >= (untreated["outcome"] == "saved").sum()
    assert (untreated["outcome"] == "churned").any()  # the comparison is not vacuous
    again = renewal_outcomes(truth, units.assign(effect=1.0), seed=7)
    pd.testing.assert_frame_equal(again, untreated)


def _two_renewals(world: Warehouse, after: str, before: str) -> tuple[str, pd.Timestamp, str, pd.Timestamp]:
    renewals = world.read_sql("SELECT account_id, renewal_date FROM raw_crm_renewals")
    renewals["renewal_date"] = pd.to_datetime(renewals["renewal_date"])
    inside = renewals[(renewals["renewal_date"] > after) & (renewals["renewal_date"] < before)]
    inside = inside.sort_values(["renewal_date", "account_id"])
    return inside.iloc[0]["account_id"], inside.iloc[0]["renewal_date"], inside.iloc[1]["account_id"], inside.iloc[1]["renewal_date"]


def test_cases_wait_for_their_renewal_and_holdout_outcomes_are_recorded_once(world, tmp_path):
    treated_id, treated_renewal, held_id, held_renewal = _two_renewals(world, "2026-08-01", "2026-10-01")
    snapshot = pd.Timestamp("2026-07-20")
    store = QueueStore(f"sqlite:///{tmp_path / 'queue.db'}")
    store.migrate()
    decisions, candidates = snapshot_frames([
        {"account_id": treated_id, "team": "rescue_squad", "assignee": "rs_omar"},
        {"account_id": held_id, "action": "holdout"},
    ])
    store.apply_decisions(decisions, candidates, policy_version="t", policy_hash="h", model_version="m",
                          snapshot_date=snapshot, now=snapshot)

    before = simulate_rescue_team(store, world, now=treated_renewal - pd.Timedelta(days=1), seed=7)
    case = store.list_cases().iloc[0]
    assert before.claimed == 1 and before.plays_logged >= 1 and before.saved + before.churned == 0
    assert case["status"] == "in_progress" and case["assignee"] == "rs_omar"
    assert store.holdout_outcomes().empty and before.waiting_for_renewal == 1
    assert set(store.plays()["actor"]) == {"rs_omar"}

    later = max(treated_renewal, held_renewal) + pd.Timedelta(days=1)
    after = simulate_rescue_team(store, world, now=later, seed=7)
    case = store.get_case(case["case_id"])
    assert after.saved + after.churned == 1 and after.plays_logged == 0
    assert case["status"] in ("resolved_saved", "resolved_churned")
    assert case["resolved_at"] == treated_renewal.to_pydatetime()  # resolved when the renewal happened
    held = store.holdout_outcomes()
    assert list(held["account_id"]) == [held_id] and held.iloc[0]["outcome"] in ("saved", "churned")
    assert pd.Timestamp(held.iloc[0]["renewal_date"]) == held_renewal

    expected = renewal_outcomes(world.read_sql("SELECT * FROM demo_truth"), pd.DataFrame(
        {"account_id": [held_id], "renewal_date": [held_renewal], "effect": [1.0]}), seed=7)
    assert held.iloc[0]["outcome"] == expected.iloc[0]["outcome"]

    repeat = simulate_rescue_team(store, world, now=later, seed=7)
    assert (repeat.saved, repeat.churned, repeat.holdout_recorded, repeat.plays_logged) == (0, 0, 0, 0)
    assert len(store.holdout_outcomes()) == 1

"""Policy simulation: replay history, count what each policy would have done, compare two."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from connectors.warehouse import Warehouse
from models.policy.loader import load_policy, parse_policy
from models.routing.replay import SimulationError, replay, simulate
from pipelines.cli.main import app

POLICIES = Path(__file__).resolve().parents[2] / "policies"
DEFAULT = parse_policy((POLICIES / "default.yaml").read_text().replace("fraction: 0.10", "fraction: 0.0"))


def account(account_id: str, day: pd.Timestamp, *, risk: float, arr: float, segment: str = "enterprise",
            renewal_days: float = 60.0, band: str = "at_risk") -> dict:
    return {
        "account_id": account_id, "snapshot_date": day, "segment": segment, "vip": False, "arr": arr,
        "churn_risk": risk, "churn_risk_delta": 0.0, "health_band": band, "expected_arr_at_risk": risk * arr,
        "days_to_renewal": renewal_days, "open_urgent_tickets": 0, "oldest_open_urgent_hours": 0.0,
        "open_compliance_tickets": 0, "wau_trend": 0.0, "top_reason": "usage fell",
    }


@pytest.fixture()
def history() -> tuple[pd.DataFrame, pd.DataFrame]:
    days = pd.date_range("2026-01-05", periods=10, freq="D")
    rows = []
    for day in days:
        rows.append(account("drifting", day, risk=0.8, arr=100_000))
        rows.append(account("healthy", day, risk=0.1, arr=50_000, band="healthy"))
        rows.append(account("surprise", day, risk=0.1, arr=20_000, band="healthy"))
        # Mid-market at 0.5 risk: enters at_risk but only the aggressive policy opens a case.
        rows.append(account("borderline", day, risk=0.5, arr=80_000, segment="mid_market", renewal_days=150,
                            band="watch"))
    outcomes = pd.DataFrame({"account_id": ["drifting", "surprise"],
                             "churned_at": pd.to_datetime(["2026-02-01", "2026-02-01"]),
                             "arr_lost": [100_000.0, 20_000.0]})
    return pd.DataFrame(rows), outcomes


def test_replay_counts_cases_churners_caught_and_lead_time(history):
    snapshots, outcomes = history
    run = replay(DEFAULT, snapshots, outcomes)
    # Enters at_risk on 5 Jan, two days in state -> a P1 case on 7 Jan; never a second one.
    routed = run.decisions[run.decisions["action"] == "route"]
    assert routed[["account_id", "priority", "team"]].values.tolist() == [["drifting", "P1", "rescue_squad"]]
    assert routed["snapshot_date"].iloc[0] == pd.Timestamp("2026-01-07")
    assert set(run.decisions.loc[run.decisions["account_id"] == "drifting", "action"].iloc[3:]) == {"update"}
    assert run.summary["snapshots"] == 10
    assert run.summary["cases_opened"] == 1 and run.summary["p1_cases"] == 1
    assert run.summary["churners"] == 2 and run.summary["churners_caught"] == 1
    assert run.summary["churners_caught_share"] == 0.5
    assert run.summary["median_lead_days"] == 25  # 7 Jan -> 1 Feb
    assert run.summary["arr_covered"] == 100_000
    assert run.cases_per_week["cases"].sum() == run.summary["cases_opened"]


def test_every_churn_counts_and_a_case_catches_only_the_churn_after_it(history):
    """A reactivated account churns twice: the case opened on 7 Jan was before both churns but
    catches only the first; the second churn counts as a churner of its own, not caught."""
    snapshots, outcomes = history
    again = pd.DataFrame({"account_id": ["drifting"], "churned_at": pd.to_datetime(["2026-03-01"]),
                          "arr_lost": [90_000.0]})
    run = replay(DEFAULT, snapshots, pd.concat([outcomes, again], ignore_index=True))
    assert run.summary["churners"] == 3 and run.summary["churners_caught"] == 1
    assert run.summary["median_lead_days"] == 25


def test_two_policies_side_by_side(history):
    snapshots, outcomes = history
    aggressive = parse_policy((POLICIES / "aggressive.yaml").read_text().replace("fraction: 0.05", "fraction: 0.0"))
    report = simulate(DEFAULT, aggressive, snapshots, outcomes)
    table = report.comparison
    assert list(table.columns) == ["default 2026.12.1", "aggressive 2026.12.1-aggressive"]
    assert table.loc["cases_opened"].tolist() == [1, 2]
    assert table.loc["arr_covered"].tolist() == [100_000, 180_000]
    weekly = report.cases_per_team_week
    assert weekly.to_numpy().sum() == 3
    # Replays are deterministic.
    assert simulate(DEFAULT, aggressive, snapshots, outcomes).comparison.equals(table)


def test_a_case_resolves_after_case_days_then_cooldown_holds(history):
    snapshots, outcomes = history
    no_cooldown = parse_policy((POLICIES / "default.yaml").read_text()
                               .replace("fraction: 0.10", "fraction: 0.0").replace("cooldown_days: 30", "cooldown_days: 0"))
    run = replay(no_cooldown, snapshots, outcomes, case_days=3)
    opened = run.decisions.loc[run.decisions["action"] == "route", "snapshot_date"].tolist()
    assert opened == [pd.Timestamp("2026-01-07"), pd.Timestamp("2026-01-10"), pd.Timestamp("2026-01-13")]
    cooled = replay(DEFAULT, snapshots, outcomes, case_days=3)
    assert (cooled.decisions["action"] == "cooldown").sum() == 5  # 10 Jan .. 14 Jan


def test_inputs_are_checked(history):
    snapshots, outcomes = history
    with pytest.raises(SimulationError, match="snapshots lacks column\\(s\\) snapshot_date"):
        replay(DEFAULT, snapshots.drop(columns="snapshot_date"), outcomes)
    with pytest.raises(SimulationError, match="no snapshots"):
        replay(DEFAULT, snapshots.iloc[:0], outcomes)
    empty = replay(DEFAULT, snapshots[snapshots["account_id"] == "healthy"], outcomes)
    assert empty.summary["cases_opened"] == 0 and math.isnan(empty.summary["median_lead_days"])


def test_cli_simulate_reads_the_warehouse_and_writes_a_report(history, tmp_path):
    snapshots, outcomes = history
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    warehouse = Warehouse(url)
    warehouse.write_table("rescue_candidates_history", snapshots.assign(snapshot_date=snapshots["snapshot_date"].dt.date))
    warehouse.write_table("churn_outcomes", outcomes)
    result = CliRunner().invoke(app, [
        "policy", "simulate", str(POLICIES / "aggressive.yaml"), "--against", str(POLICIES / "default.yaml"),
        "--from", "2026-01-06", "--to", "2026-01-14", "--warehouse", url, "--report-dir", str(tmp_path / "reports"),
    ], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Policy simulation" in result.output and "churners_caught_share" in result.output
    assert (tmp_path / "reports" / "policy_simulation.md").exists()
    assert (tmp_path / "reports" / "policy_simulation_weekly.png").stat().st_size > 0
    assert "2026.12.1-aggressive" in (tmp_path / "reports" / "policy_simulation.md").read_text()

    missing = CliRunner().invoke(app, ["policy", "simulate", str(POLICIES / "default.yaml"),
                                       "--warehouse", f"duckdb:///{tmp_path / 'empty.duckdb'}"])
    assert missing.exit_code == 1
    assert "rescue_candidates_history" in missing.output


def test_policy_labels_stay_distinct_for_the_same_file():
    policy = load_policy(POLICIES / "default.yaml")
    frame = pd.DataFrame([account("a", pd.Timestamp("2026-01-05"), risk=0.1, arr=1.0)])
    report = simulate(policy, policy, frame, pd.DataFrame({"account_id": [], "churned_at": []}))
    assert len(set(report.comparison.columns)) == 2

"""Play effectiveness: intervals against closed forms and published values, verdicts, inputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.experiment.effectiveness import (
    OVERALL,
    EffectivenessError,
    effectiveness_chart,
    newcombe_interval,
    play_effectiveness,
    wilson_interval,
)
from models.policy.loader import load_policy

Z95 = 1.959963984540054


def arm(prefix: str, saved: int, churned: int, *, arr: float = 10_000.0, play: str | None = None) -> pd.DataFrame:
    n = saved + churned
    frame = pd.DataFrame({
        "account_id": [f"{prefix}{i}" for i in range(n)],
        "arr": [arr] * n,
        "outcome": ["saved"] * saved + ["churned"] * churned,
    })
    return frame.assign(play=play) if play is not None else frame


def wilson_by_hand(s: int, n: int) -> tuple[float, float]:
    p = s / n
    centre = (2 * n * p + Z95**2) / (2 * (n + Z95**2))
    half = Z95 * math.sqrt(Z95**2 + 4 * n * p * (1 - p)) / (2 * (n + Z95**2))
    return centre - half, centre + half


def test_wilson_and_newcombe_match_published_values():
    # Newcombe (1998), "Interval estimation for the difference between independent proportions",
    # method 10 on 56/70 vs 48/80; and the Wilson interval of 81/263 from his single-proportion paper.
    assert newcombe_interval(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=5e-5)
    assert newcombe_interval(9, 10, 3, 10) == pytest.approx((0.1705, 0.8090), abs=5e-5)
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_overall_row_has_the_closed_form_intervals_and_a_positive_verdict():
    treated = arm("T", 99, 41, play="executive_sponsor_call")   # 140 accounts, 70.7% saved
    holdout = arm("H", 31, 29)                              # 60 accounts, 51.7% saved
    eff = play_effectiveness(treated, holdout)
    row = eff.overall
    assert row["play"] == OVERALL
    assert (row["n_treated"], row["n_holdout"], row["saved_treated"], row["saved_holdout"]) == (140, 60, 99, 31)
    p1, p2 = 99 / 140, 31 / 60
    l1, u1 = wilson_by_hand(99, 140)
    l2, u2 = wilson_by_hand(31, 60)
    assert wilson_interval(99, 140) == pytest.approx((l1, u1))
    assert row["save_rate_diff"] == pytest.approx(p1 - p2)
    assert row["diff_ci_low"] == pytest.approx(p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2))
    assert row["diff_ci_high"] == pytest.approx(p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))
    assert row["diff_ci_low"] > 0 and bool(row["conclusive"])
    low, high = round(row["diff_ci_low"] * 100), round(row["diff_ci_high"] * 100)
    assert row["verdict"] == (f"treated accounts saved 71% vs 52% in holdout (+19 pts, 95% CI +{low}..+{high}, "
                              "n=140/60): plays work")


def test_no_effect_gives_an_interval_spanning_zero():
    eff = play_effectiveness(arm("T", 30, 30, play="success_plan"), arm("H", 25, 25))
    row = eff.overall
    assert row["save_rate_diff"] == 0
    assert row["diff_ci_low"] < 0 < row["diff_ci_high"]
    assert row["arr_diff_ci_low"] < 0 < row["arr_diff_ci_high"]
    assert row["verdict"].endswith(": no measurable difference")
    assert "treated accounts saved 50% vs 50% in holdout (+0 pts" in row["verdict"]


def test_a_harmful_play_is_called_out():
    row = play_effectiveness(arm("T", 10, 40, play="discount"), arm("H", 35, 15)).overall
    assert row["diff_ci_high"] < 0
    assert row["verdict"].endswith("plays did worse than no rescue")


def test_small_samples_say_too_few_to_conclude():
    eff = play_effectiveness(arm("T", 9, 3, play="success_plan"), arm("H", 1, 3))
    row = eff.overall
    assert not row["conclusive"]
    assert row["verdict"] == "too few accounts to conclude (n=12/4; need >= 30 per arm)"
    # The numbers are still there for whoever wants them.
    assert row["save_rate_treated"] == pytest.approx(0.75) and not math.isnan(row["diff_ci_low"])
    lower_bar = play_effectiveness(arm("T", 9, 3, play="success_plan"), arm("H", 1, 3), min_per_arm=4).overall
    assert lower_bar["conclusive"] and "too few" not in lower_bar["verdict"]


def test_accounts_count_once_overall_and_once_per_play():
    sponsor = arm("T", 30, 10, play="executive_sponsor_call")          # T0..T39
    workshop = arm("T", 30, 10, play="adoption_workshop").iloc[:20]  # T0..T19 also got a workshop
    solo = arm("S", 2, 3, play="adoption_workshop")                         # S0..S4 only a workshop
    treated = pd.concat([sponsor, workshop, solo], ignore_index=True)
    eff = play_effectiveness(treated, arm("H", 20, 20))
    table = eff.table.set_index("play")
    assert list(eff.table["play"]) == [OVERALL, "executive_sponsor_call", "adoption_workshop"]
    assert table.loc[OVERALL, ["n_treated", "saved_treated"]].tolist() == [45, 32]
    assert table.loc["executive_sponsor_call", ["n_treated", "saved_treated"]].tolist() == [40, 30]
    assert table.loc["adoption_workshop", ["n_treated", "saved_treated"]].tolist() == [25, 22]
    assert (eff.table["n_holdout"] == 40).all()
    assert table.loc["executive_sponsor_call", "verdict"].startswith("accounts given executive_sponsor_call saved 75%")
    assert table.loc["adoption_workshop", "verdict"] == "too few accounts to conclude (n=25/40; need >= 30 per arm)"


def test_plays_logged_under_a_former_name_count_with_the_catalogue_play():
    policy = load_policy(Path(__file__).resolve().parents[2] / "policies" / "default.yaml")
    renamed = arm("T", 20, 5, play="exec_sponsor_call")                    # T0..T24, the old name
    current = arm("N", 10, 5, play="executive_sponsor_call")              # N0..N14
    both = arm("T", 20, 5, play="executive_sponsor_call").iloc[:5]        # T0..T4 under both names
    treated = pd.concat([renamed, current, both], ignore_index=True)
    split = play_effectiveness(treated, arm("H", 20, 20)).table
    assert set(split["play"]) == {OVERALL, "exec_sponsor_call", "executive_sponsor_call"}
    eff = play_effectiveness(treated, arm("H", 20, 20), plays=policy.play_names).table.set_index("play")
    assert list(eff.index) == [OVERALL, "executive_sponsor_call"]
    assert eff.loc["executive_sponsor_call", ["n_treated", "saved_treated"]].tolist() == [40, 30]


def test_arr_retained_uses_the_delta_method_interval():
    treated = pd.DataFrame({"account_id": ["a", "b", "c", "d"], "arr": [100.0, 300.0, 600.0, 1000.0],
                            "outcome": ["saved", "churned", "saved", "saved"], "play": "success_plan"})
    holdout = pd.DataFrame({"account_id": ["x", "y", "z"], "arr": [500.0, 500.0, 1000.0],
                            "outcome": ["churned", "saved", "churned"]})
    row = play_effectiveness(treated, holdout, min_per_arm=1).overall

    def ratio_and_variance(arr, saved):
        arr, saved = np.array(arr), np.array(saved, dtype=float)
        r = (arr * saved).sum() / arr.sum()
        n = len(arr)
        return r, n / (n - 1) * ((arr * (saved - r)) ** 2).sum() / arr.sum() ** 2

    r1, v1 = ratio_and_variance([100, 300, 600, 1000], [1, 0, 1, 1])
    r2, v2 = ratio_and_variance([500, 500, 1000], [0, 1, 0])
    assert (r1, r2) == pytest.approx((0.85, 0.25))
    assert row["arr_retained_treated"] == pytest.approx(r1)
    assert row["arr_retained_holdout"] == pytest.approx(r2)
    assert row["arr_treated"] == 2000 and row["arr_holdout"] == 2000
    half = Z95 * math.sqrt(v1 + v2)
    assert (row["arr_diff_ci_low"], row["arr_diff_ci_high"]) == pytest.approx((0.6 - half, 0.6 + half))


def test_inputs_are_checked_with_named_problems():
    holdout = arm("H", 5, 5)
    with pytest.raises(EffectivenessError, match="treated: missing column.*play"):
        play_effectiveness(arm("T", 5, 5), holdout)
    with pytest.raises(EffectivenessError, match="unknown outcome.*renewed"):
        play_effectiveness(arm("T", 5, 5, play="success_plan").replace({"outcome": {"saved": "renewed"}}), holdout)
    with pytest.raises(EffectivenessError, match="holdout: arr must be a number >= 0.*H0"):
        play_effectiveness(arm("T", 5, 5, play="success_plan"), holdout.assign(arr=[-1.0] + [1.0] * 9))
    with pytest.raises(EffectivenessError, match="both treated and held out.*H0"):
        play_effectiveness(pd.concat([arm("T", 5, 5, play="success_plan"), arm("H", 1, 0, play="success_plan")]), holdout)
    clash = pd.concat([arm("T", 1, 0, play="success_plan"), arm("T", 0, 1, play="adoption_workshop")])
    with pytest.raises(EffectivenessError, match="conflicting arr or outcome.*T0"):
        play_effectiveness(clash, holdout)


def test_chart_is_a_png():
    eff = play_effectiveness(pd.concat([arm("T", 99, 41, play="executive_sponsor_call"), arm("U", 5, 5, play="success_plan")]),
                             arm("H", 31, 29))
    png = effectiveness_chart(eff)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000


def test_chart_draws_a_perfect_save_rate():
    """All treated saved: the Wilson whisker above 100% is zero, not a rounding-negative length."""
    eff = play_effectiveness(arm("T", 40, 0, play="success_plan"), arm("H", 20, 15))
    assert eff.table["save_rate_treated"].iloc[0] == 1.0
    assert effectiveness_chart(eff).startswith(b"\x89PNG")

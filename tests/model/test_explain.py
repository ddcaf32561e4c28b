"""Per-row drivers and score movers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from models.churn.model import fit_churn_model
from models.churn.explain import describe_generic, score_movers, top_drivers


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "logins_drop": rng.normal(0, 1, n),
        "seats": rng.normal(0, 1, n),
        "segment": rng.choice(["a", "b"], n),
    })
    frame["churned"] = (rng.random(n) < expit(-1 + 3 * frame["logins_drop"])).astype(int)
    return frame


def test_top_driver_is_the_feature_that_truly_drives_the_label():
    train, valid = _frame(1000, 0), _frame(500, 1)
    features = ["logins_drop", "seats", "segment"]
    model = fit_churn_model(train, valid, label="churned", features=features,
                            categorical=["segment"], tuning_budget=1)
    risky = valid[valid["logins_drop"] > 1.5]
    drivers = top_drivers(model.contributions(risky), risky, k=2)
    assert all(row[0].feature == "logins_drop" and row[0].contribution > 0 for row in drivers)
    assert drivers[0][0].phrase.endswith("raises churn risk")


def test_ranking_puts_risk_raising_drivers_first_then_protective():
    contribs = pd.DataFrame({"a": [0.1, -2.0], "b": [-3.0, 0.0], "c": [0.5, 0.2], "bias": [9.0, 9.0]})
    X = pd.DataFrame({"a": [1, 2], "b": ["x", "y"], "c": [np.nan, 4.25]})
    risk = top_drivers(contribs, X, k=3)
    assert [d.feature for d in risk[0]] == ["c", "a", "b"]
    assert [d.feature for d in risk[1]] == ["c", "a"]            # zero contributions are not drivers
    assert risk[0][0].phrase == "c = missing raises churn risk"
    assert risk[0][2].phrase == "b = x lowers churn risk"
    assert [d.feature for d in top_drivers(contribs, X, k=1, direction="absolute")[0]] == ["b"]
    assert [d.feature for d in top_drivers(contribs, X, k=1, direction="protective")[1]] == ["a"]


def test_custom_describer_and_scale():
    rng = np.random.default_rng(0)
    n = 100_000
    contribs = pd.DataFrame(rng.normal(size=(n, 6)), columns=list("abcdef"))
    X = pd.DataFrame(rng.integers(0, 9, size=(n, 6)), columns=list("abcdef"))
    drivers = top_drivers(contribs, X, k=5, describe=lambda f, v, c: f"{f}:{v}")
    assert len(drivers) == n and all(len(row) == 5 for row in drivers[:100])
    first = drivers[0]
    expected = contribs.iloc[0].sort_values(key=lambda s: -(s.abs() + (s > 0) * 100)).index[:5].tolist()
    assert [d.feature for d in first] == expected
    assert first[0].phrase == f"{first[0].feature}:{X.iloc[0][first[0].feature]}"
    assert describe_generic("seats", 12.0, -0.3) == "seats = 12 lowers churn risk"


def test_score_movers_reports_delta_and_moving_features():
    prev = pd.DataFrame({"id": ["x", "y"], "score": [0.2, 0.5]})
    curr = pd.DataFrame({"id": ["y", "x", "z"], "score": [0.55, 0.7, 0.1]})
    c_prev = pd.DataFrame({"u": [0.0, 0.1], "v": [0.0, 0.2], "bias": [1.0, 1.0]})
    c_curr = pd.DataFrame({"u": [0.1, 1.5, 0.0], "v": [0.3, -0.2, 0.0], "bias": [1.0, 1.0, 1.0]})
    moved = score_movers(prev, curr, id_col="id", score_col="score",
                         contribs_prev=c_prev, contribs_curr=c_curr, k=2)
    assert moved["id"].tolist() == ["x", "y", "z"]
    x = moved.iloc[0]
    assert x["score_delta"] == pytest.approx(0.5)
    assert x["movers"] == [{"feature": "u", "delta": 1.5}, {"feature": "v", "delta": -0.2}]
    assert moved.iloc[1]["movers"][0]["feature"] == "v"
    assert np.isnan(moved.iloc[2]["score_prev"]) and moved.iloc[2]["movers"] == []


def test_a_describer_given_context_reads_the_rows_other_values():
    contribs = pd.DataFrame({"a": [0.5, 0.5], "b": [0.1, 0.1]})
    X = pd.DataFrame({"a": [np.nan, np.nan], "b": [0, 3]})
    drivers = top_drivers(contribs, X, k=1, context=X.to_dict("records"),
                          describe=lambda f, v, c, row: "no b at all" if row["b"] == 0 else f"{f} missing with b")
    assert [row[0].phrase for row in drivers] == ["no b at all", "a missing with b"]
    with pytest.raises(ValueError, match="context has 1 rows"):
        top_drivers(contribs, X, context=[{}])

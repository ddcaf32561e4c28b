"""Churn outcomes, observation dates, labels and censoring."""

import pandas as pd
import pytest

from models.churn.labels import LabelError, build_labels, churn_outcomes, observation_dates, population

D = pd.Timestamp


def _accounts(rows):
    return pd.DataFrame(rows, columns=["account_id", "created_at"])


def _outcomes(rows):
    return pd.DataFrame(rows, columns=["account_id", "churned_at", "arr_lost"])


def test_churn_outcomes_come_from_closed_churned_renewals_only():
    renewals = pd.DataFrame(
        {
            "renewal_id": ["r1", "r2", "r3", "r4"],
            "account_id": ["a", "b", "c", "c"],
            "renewal_date": [D("2025-01-01")] * 4,
            "amount": [10.0, 20.0, 30.0, 30.0],
            "stage": ["x"] * 4,
            "closed_at": [D("2025-01-02"), D("2025-01-03"), pd.NaT, D("2024-01-01")],
            "outcome": ["churned", "renewed", "churned", "renewed"],
        }
    )
    out = churn_outcomes(renewals)
    assert list(out["account_id"]) == ["a"]
    assert out["arr_lost"].iloc[0] == 10.0


def test_label_window_is_half_open_and_population_excludes_the_gone_and_the_unborn():
    accounts = _accounts(
        [
            ("churn_in", D("2024-01-01")),
            ("churn_at_end", D("2024-01-01")),
            ("churned_before", D("2024-01-01")),
            ("born_after", D("2025-03-01")),
            ("stays", D("2024-01-01")),
            ("churn_on_day", D("2024-01-01")),
        ]
    )
    d = D("2025-02-01")
    outcomes = _outcomes(
        [
            ("churn_in", d + pd.Timedelta(days=10), 1.0),
            ("churn_at_end", d + pd.Timedelta(days=90), 1.0),  # first day after the horizon
            ("churned_before", d - pd.Timedelta(days=1), 1.0),
            ("churn_on_day", d, 1.0),
        ]
    )
    labels = build_labels(accounts, outcomes, [d], horizon_days=90, data_end=D("2026-01-01")).set_index("account_id")
    assert set(labels.index) == {"churn_in", "churn_at_end", "stays", "churn_on_day"}
    assert labels.loc["churn_in", "label"] == 1
    assert labels.loc["churn_on_day", "label"] == 1
    assert labels.loc["churn_at_end", "label"] == 0
    assert labels.loc["stays", "label"] == 0
    assert set(population(accounts, outcomes, d)) == set(labels.index)


def test_censored_dates_are_refused():
    accounts = _accounts([("a", D("2024-01-01"))])
    with pytest.raises(LabelError, match="censored"):
        build_labels(accounts, _outcomes([]), [D("2025-12-01")], horizon_days=90, data_end=D("2026-01-01"))
    # exactly at the edge is fine
    out = build_labels(accounts, _outcomes([]), [D("2025-10-03")], horizon_days=90, data_end=D("2026-01-01"))
    assert len(out) == 1


def test_observation_dates_fit_inside_the_data_and_leave_room_for_the_horizon():
    dates = observation_dates(D("2025-01-01"), D("2026-01-01"), horizon_days=90, n_dates=5, spacing_days=28)
    assert len(dates) == 5
    assert dates == sorted(dates)
    assert dates[-1] == D("2026-01-01") - pd.Timedelta(days=90)
    assert all(b - a == pd.Timedelta(days=28) for a, b in zip(dates, dates[1:]))
    assert dates[0] >= D("2025-01-01") + pd.Timedelta(days=90)


def test_observation_dates_refuse_too_little_history():
    with pytest.raises(LabelError, match="not enough history"):
        observation_dates(D("2025-01-01"), D("2025-05-01"), horizon_days=90, min_history_days=90)


def test_treated_accounts_are_marked_only_inside_the_horizon():
    accounts = _accounts([("a", D("2024-01-01")), ("b", D("2024-01-01"))])
    d = D("2025-02-01")
    treatments = pd.DataFrame({"account_id": ["a", "b"], "treated_at": [d + pd.Timedelta(days=5), d - pd.Timedelta(days=5)]})
    out = build_labels(accounts, _outcomes([]), [d], horizon_days=90, data_end=D("2026-01-01"), treatments=treatments)
    assert dict(zip(out["account_id"], out["treated"])) == {"a": True, "b": False}


def test_a_date_with_no_churn_in_its_horizon_labels_everyone_zero():
    # churns exist, but none in this date's horizon (string ids, datetime churn dates)
    accounts = pd.DataFrame({"account_id": pd.Series(["a", "b"], dtype="string"), "created_at": D("2024-01-01")})
    outcomes = _outcomes([("a", D("2025-12-01"), 1.0)])
    out = build_labels(accounts, outcomes, [D("2025-02-01")], horizon_days=90, data_end=D("2026-01-01"))
    assert out["label"].tolist() == [0, 0]
    assert out["churned_at"].isna().all() and out["churned_at"].dtype == "datetime64[ns]"

"""Reactivations: a churned account that starts a new subscription is a customer again.

A return is read from the account history (ARR going from 0 back to positive after a churn
event) and is known at that history row's ``valid_from``, never earlier: the population at a
date between the churn and the return leaves the account out even though the history, read
whole, already shows the return.
"""

import numpy as np
import pandas as pd
import pytest

from models.churn.labels import build_labels, population, returns

D = pd.Timestamp
DAY = pd.Timedelta(days=1)
END = D("2028-01-01")


def _accounts(*ids, created="2024-01-01"):
    return pd.DataFrame({"account_id": list(ids), "created_at": D(created)})


def _outcomes(rows):
    return pd.DataFrame(
        [(a, D(t), 1.0) for a, t in rows], columns=["account_id", "churned_at", "arr_lost"]
    )


def _history(rows):
    return pd.DataFrame(
        [(a, D(t), arr, "Growth", 10, "smb", "ann") for a, t, arr in rows],
        columns=["account_id", "valid_from", "arr", "plan", "seats", "segment", "csm_owner"],
    )


def _pop(accounts, outcomes, history, as_of):
    return set(population(accounts, outcomes, D(as_of), returns=returns(outcomes, history)))


# churned at the end of its term (2025-01-01), back with a new subscription on 2025-06-01, churned
# again on 2025-10-01 (its new term's renewal closed lost)
ACCOUNTS = _accounts("back", "stays")
OUTCOMES = _outcomes([("back", "2025-01-01"), ("back", "2025-10-01")])
HISTORY = _history([
    ("back", "2024-01-01", 100.0), ("back", "2025-01-01", 0.0), ("back", "2025-06-01", 120.0),
    ("back", "2025-10-01", 0.0),
    ("stays", "2024-01-01", 50.0),
])


def test_a_return_is_the_first_zero_to_positive_arr_after_the_churn():
    out = returns(OUTCOMES, HISTORY)
    assert list(out.columns) == ["account_id", "churned_at", "returned_at"]
    assert out.to_dict("records") == [
        {"account_id": "back", "churned_at": D("2025-01-01"), "returned_at": D("2025-06-01")},
    ]  # the second churn has no return yet


def test_a_churned_account_is_out_during_the_gap_and_back_from_its_return_not_before():
    assert _pop(ACCOUNTS, OUTCOMES, HISTORY, "2024-12-31") == {"back", "stays"}
    # the gap: the history read whole shows the return, the population at the date must not
    assert _pop(ACCOUNTS, OUTCOMES, HISTORY, "2025-01-02") == {"stays"}
    assert _pop(ACCOUNTS, OUTCOMES, HISTORY, "2025-05-31") == {"stays"}
    # data strictly before the date: on the day of the return it is not yet known
    assert _pop(ACCOUNTS, OUTCOMES, HISTORY, "2025-06-01") == {"stays"}
    assert _pop(ACCOUNTS, OUTCOMES, HISTORY, "2025-06-02") == {"back", "stays"}
    # churned again, with no second return
    assert _pop(ACCOUNTS, OUTCOMES, HISTORY, "2025-10-02") == {"stays"}
    assert _pop(ACCOUNTS, OUTCOMES, HISTORY, "2027-06-01") == {"stays"}


def test_the_churn_after_a_return_is_a_label_like_any_other():
    rets = returns(OUTCOMES, HISTORY)
    dates = [D("2025-03-01"), D("2025-08-01")]
    labels = build_labels(ACCOUNTS, OUTCOMES, dates, horizon_days=90, data_end=END, returns=rets)
    gap = labels[labels["observation_date"] == dates[0]].set_index("account_id")
    back = labels[labels["observation_date"] == dates[1]].set_index("account_id")
    assert set(gap.index) == {"stays"}
    assert set(back.index) == {"back", "stays"}
    assert back.loc["back", "label"] == 1
    assert back.loc["back", "churned_at"] == D("2025-10-01")
    assert back.loc["stays", "label"] == 0
    # without the returns the account never comes back, as before
    before = build_labels(ACCOUNTS, OUTCOMES, dates, horizon_days=90, data_end=END)
    assert set(before["account_id"]) == {"stays"}


def test_a_churn_announced_before_the_term_ends_returns_only_after_arr_went_to_zero():
    # renewal closed lost in October; ARR stays in force until the term ends in December; a
    # downgrade row in between is not a return (no gap); a new subscription in March is
    accounts = _accounts("late")
    outcomes = _outcomes([("late", "2025-10-15")])
    history = _history([
        ("late", "2024-12-01", 100.0), ("late", "2025-11-01", 60.0), ("late", "2025-12-01", 0.0),
        ("late", "2026-03-01", 100.0),
    ])
    assert returns(outcomes, history)["returned_at"].tolist() == [D("2026-03-01")]
    assert _pop(accounts, outcomes, history, "2025-10-15") == {"late"}
    for d in ("2025-10-16", "2025-11-15", "2026-01-01", "2026-03-01"):
        assert _pop(accounts, outcomes, history, d) == set(), d
    assert _pop(accounts, outcomes, history, "2026-03-02") == {"late"}


def test_positive_to_positive_after_a_churn_is_not_a_return():
    accounts = _accounts("down")
    outcomes = _outcomes([("down", "2025-10-15")])
    history = _history([("down", "2024-12-01", 100.0), ("down", "2025-11-01", 60.0)])
    assert returns(outcomes, history).empty
    assert _pop(accounts, outcomes, history, "2026-06-01") == set()


def test_a_trial_converting_before_any_churn_is_not_a_return():
    # trials carry ARR 0 until the paid term starts: that is no return, there was no churn
    accounts = _accounts("trial")
    outcomes = _outcomes([("trial", "2025-09-01")])
    history = _history([("trial", "2024-12-01", 0.0), ("trial", "2024-12-15", 100.0), ("trial", "2025-09-01", 0.0)])
    assert returns(outcomes, history).empty
    assert _pop(accounts, outcomes, history, "2025-01-01") == {"trial"}
    assert _pop(accounts, outcomes, history, "2025-09-02") == set()


def test_a_new_term_starting_at_the_churn_instant_is_not_a_return():
    # a return comes strictly after the churn event; a row at the same instant is the churned
    # term's own start (a churn announced on its first day), not a new subscription
    outcomes = _outcomes([("a", "2025-03-01")])
    history = _history([("a", "2025-01-01", 0.0), ("a", "2025-03-01", 100.0)])
    assert returns(outcomes, history).empty


def test_unknown_arr_is_neither_a_gap_nor_a_term():
    outcomes = _outcomes([("a", "2025-01-01"), ("b", "2025-01-01")])
    history = _history([
        ("a", "2024-01-01", 100.0), ("a", "2025-01-01", np.nan), ("a", "2025-06-01", 100.0),   # no known gap
        ("b", "2024-01-01", 100.0), ("b", "2025-01-01", 0.0), ("b", "2025-03-01", np.nan),
        ("b", "2025-06-01", 100.0),                                                            # gap, then a term
    ])
    out = returns(outcomes, history)
    assert out[["account_id", "returned_at"]].to_dict("records") == [{"account_id": "b", "returned_at": D("2025-06-01")}]


def test_several_churn_and_return_cycles():
    accounts = _accounts("cyc")
    outcomes = _outcomes([("cyc", "2025-01-01"), ("cyc", "2025-09-01"), ("cyc", "2026-06-01")])
    history = _history([
        ("cyc", "2024-01-01", 100.0), ("cyc", "2025-01-01", 0.0), ("cyc", "2025-04-01", 80.0),
        ("cyc", "2025-09-01", 0.0), ("cyc", "2026-01-01", 90.0), ("cyc", "2026-06-01", 0.0),
        ("cyc", "2027-01-01", 70.0),
    ])
    out = returns(outcomes, history)
    assert list(zip(out["churned_at"], out["returned_at"])) == [
        (D("2025-01-01"), D("2025-04-01")), (D("2025-09-01"), D("2026-01-01")), (D("2026-06-01"), D("2027-01-01")),
    ]
    inside = {"2024-06-01", "2025-05-01", "2026-02-01", "2027-02-01"}
    outside = {"2025-02-01", "2025-04-01", "2025-10-01", "2026-01-01", "2026-07-01", "2027-01-01"}
    for d in inside:
        assert _pop(accounts, outcomes, history, d) == {"cyc"}, d
    for d in outside:
        assert _pop(accounts, outcomes, history, d) == set(), d


def test_two_churns_before_one_return_both_lead_to_it():
    # two parallel subscriptions closed lost a month apart, then one new subscription
    accounts = _accounts("two")
    outcomes = _outcomes([("two", "2025-01-01"), ("two", "2025-02-01")])
    history = _history([("two", "2024-01-01", 100.0), ("two", "2025-01-01", 40.0), ("two", "2025-02-01", 0.0),
                        ("two", "2025-05-01", 100.0)])
    out = returns(outcomes, history)
    assert out["returned_at"].tolist() == [D("2025-05-01")] * 2
    assert _pop(accounts, outcomes, history, "2025-01-15") == set()
    assert _pop(accounts, outcomes, history, "2025-03-01") == set()
    assert _pop(accounts, outcomes, history, "2025-05-02") == {"two"}


@pytest.mark.parametrize("history", [None, _history([])], ids=["none", "empty"])
def test_no_history_means_no_returns_and_the_population_of_before(history):
    rets = returns(OUTCOMES, history)
    assert rets.empty and list(rets.columns) == ["account_id", "churned_at", "returned_at"]
    dates = [D("2024-12-01"), D("2025-03-01"), D("2025-08-01")]
    with_none = build_labels(ACCOUNTS, OUTCOMES, dates, horizon_days=90, data_end=END)
    with_empty = build_labels(ACCOUNTS, OUTCOMES, dates, horizon_days=90, data_end=END, returns=rets)
    pd.testing.assert_frame_equal(with_none, with_empty)
    for d in dates:
        assert population(ACCOUNTS, OUTCOMES, d, returns=rets).tolist() == population(ACCOUNTS, OUTCOMES, d).tolist()


def test_a_churned_account_without_a_history_row_stays_gone():
    # history for other accounts only: the churned one has nothing to show a return
    outcomes = _outcomes([("gone", "2025-01-01")])
    history = _history([("other", "2024-01-01", 10.0)])
    assert returns(outcomes, history).empty
    assert _pop(_accounts("gone", "other"), outcomes, history, "2026-01-01") == {"other"}


def test_the_population_at_a_date_uses_only_what_was_known_before_it():
    # random churn/return lives; cutting outcomes and history to strictly before each date
    # (what a system of record showed then) must give the same population as the whole data
    rng = np.random.default_rng(3)
    hist_rows, out_rows = [], []
    for i in range(60):
        a = f"a{i}"
        t = D("2024-01-01") + rng.integers(0, 90) * DAY
        hist_rows.append((a, t, 100.0))
        for _ in range(int(rng.integers(0, 4))):
            churn = t + int(rng.integers(30, 300)) * DAY
            term_end = churn + int(rng.integers(0, 60)) * DAY
            out_rows.append((a, churn))
            hist_rows.append((a, term_end, 0.0))
            if rng.random() < 0.3:
                break
            t = term_end + int(rng.integers(1, 200)) * DAY
            hist_rows.append((a, t, float(rng.integers(10, 200))))
    outcomes = pd.DataFrame([(a, t, 1.0) for a, t in out_rows], columns=["account_id", "churned_at", "arr_lost"])
    history = _history([(a, str(t.date()), arr) for a, t, arr in hist_rows])
    accounts = _accounts(*{a for a, _, _ in hist_rows}, created="2023-12-01")
    whole = returns(outcomes, history)
    assert len(whole) > 10
    for d in pd.date_range("2024-02-01", "2027-06-01", freq="23D"):
        known = returns(outcomes[outcomes["churned_at"] < d], history[history["valid_from"] < d])
        assert sorted(population(accounts, outcomes, d, returns=whole)) == sorted(
            population(accounts, outcomes[outcomes["churned_at"] < d], d, returns=known)), d

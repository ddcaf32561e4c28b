"""Account attributes as of the observation date: an attribute that changes later is not visible
at the date, and a model trained on today's values learns a leak that the as-of values do not have."""

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.churn.attributes import CHANGING_ATTRIBUTES, attributes_as_of
from models.churn.features import CATEGORICAL_FEATURES, FEATURE_NAMES, account_features
from models.churn.labels import observation_dates
from models.churn.model import fit_churn_model
from models.churn.training import build_training_set, time_split
from models.contracts import ACCOUNT_HISTORY, conform
from tests.factories import random_tables

AS_OF = pd.Timestamp("2025-09-01")
UPGRADE = pd.Timestamp("2025-10-01")


def _initial_history(accounts: pd.DataFrame) -> pd.DataFrame:
    """One row per account from its creation, with the values it started with."""
    return accounts[["account_id", "created_at", *CHANGING_ATTRIBUTES]].rename(columns={"created_at": "valid_from"})


@pytest.fixture
def upgraded():
    """A000 starts small and is upgraded after AS_OF; the accounts table shows today's values."""
    t = random_tables(n_accounts=6, seed=3)
    accounts = t["accounts"].copy()
    accounts.loc[0, ["arr", "plan", "seats"]] = [10_000.0, "starter", 10]
    history = _initial_history(accounts)
    upgrade = pd.DataFrame([{**history.iloc[0].to_dict(), "valid_from": UPGRADE, "arr": 240_000.0,
                             "plan": "enterprise", "seats": 120, "csm_owner": "dee"}])
    history = conform(pd.concat([history, upgrade], ignore_index=True), ACCOUNT_HISTORY)
    accounts.loc[0, ["arr", "plan", "seats", "csm_owner"]] = [240_000.0, "enterprise", 120, "dee"]
    return {**t, "accounts": accounts}, history


def _features(t, as_of, history):
    return account_features(t["accounts"], t["renewals"], t["tickets"], t["usage_daily"], as_of, account_history=history)


def test_an_upgrade_after_the_observation_date_is_not_visible_at_it(upgraded):
    t, history = upgraded
    before = _features(t, AS_OF, history).loc["A000"]
    assert before["arr"] == 10_000.0 and before["plan"] == "starter" and before["seats"] == 10.0
    assert before["csm_owner"] != "dee"
    assert before["arr_per_seat"] == pytest.approx(1_000.0)
    # "strictly before": on the day of the upgrade it is not known yet, the day after it is
    assert _features(t, UPGRADE, history).loc["A000", "arr"] == 10_000.0
    after = _features(t, UPGRADE + pd.Timedelta(days=1), history).loc["A000"]
    assert after["arr"] == 240_000.0 and after["plan"] == "enterprise" and after["seats"] == 120.0
    assert after["csm_owner"] == "dee"


def test_without_a_history_the_accounts_values_are_read_at_every_date(upgraded):
    t, _ = upgraded
    for history in (None, _initial_history(t["accounts"]).head(0)):
        f = _features(t, AS_OF, history)
        assert f.loc["A000", "arr"] == 240_000.0 and f.loc["A000", "plan"] == "enterprise"  # assumed constant


def test_no_history_row_before_the_date_leaves_changing_attributes_missing(upgraded):
    t, history = upgraded
    late = history.copy()
    late.loc[late["account_id"] == "A001", "valid_from"] = AS_OF + pd.Timedelta(days=10)
    f = _features(t, AS_OF, late).loc["A001"]
    assert pd.isna(f["arr"]) and pd.isna(f["seats"]) and pd.isna(f["plan"]) and pd.isna(f["segment"])
    assert pd.isna(f["csm_owner"]) and pd.isna(f["arr_per_seat"])
    acc = t["accounts"].set_index("account_id").loc["A001"]
    assert f["industry"] == acc["industry"] and f["region"] == acc["region"]  # constant by contract
    # accounts without any history row get the same treatment
    assert attributes_as_of(t["accounts"], history[history["account_id"] != "A002"], AS_OF).loc["A002"].isna().all()


def test_history_after_the_date_can_change_freely(upgraded):
    t, history = upgraded
    scrambled = history.copy()
    later = scrambled["valid_from"] >= AS_OF
    scrambled.loc[later, "arr"] = 1.0
    extra = scrambled.head(3).assign(valid_from=AS_OF, arr=0.0, plan="gone")  # on the date: not yet known
    scrambled = pd.concat([scrambled, extra], ignore_index=True)
    pd.testing.assert_frame_equal(_features(t, AS_OF, history), _features(t, AS_OF, scrambled))


# ------------------------------------------------------------------------------------------
# A model trained on today's ARR vs one trained on the ARR as of each date
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zeroed_at_churn():
    """A company whose CRM sets a churned account's ARR and seats to zero when it leaves.

    Churn happens at renewals only, so renewal timing is real signal; ARR and seats carry none
    until they are read after the churn."""
    t = random_tables(n_accounts=300, seed=8)
    accounts, renewals = t["accounts"].copy(), t["renewals"]
    history = _initial_history(accounts)
    churned = renewals[renewals["outcome"] == "churned"]
    gone = history.set_index("account_id").loc[churned["account_id"]].reset_index()
    gone["valid_from"] = churned["closed_at"].to_numpy()
    gone["arr"], gone["seats"] = 0.0, 0
    history = conform(pd.concat([history, gone], ignore_index=True), ACCOUNT_HISTORY)
    today = accounts.set_index("account_id")
    today.loc[churned["account_id"], ["arr", "seats"]] = [0.0, 0]
    t = {**t, "accounts": today.reset_index()}
    start = t["usage_daily"]["date"].min()
    end = t["usage_daily"]["date"].max() + pd.Timedelta(days=1)
    dates = observation_dates(start, end, horizon_days=90)
    usage = t["usage_daily"]

    def build(h):
        return build_training_set(t["accounts"], t["renewals"], t["tickets"],
                                  lambda a, b: usage[(usage["date"] >= a) & (usage["date"] < b)],
                                  dates, horizon_days=90, data_end=end, account_history=h)

    return build(None), build(history)


def test_a_model_trained_on_todays_arr_learns_a_leak_the_as_of_arr_does_not_have(zeroed_at_churn):
    leaked, as_of = zeroed_at_churn
    assert len(leaked) == len(as_of) and leaked["label"].sum() >= 40
    # at no observation date does a future churner show the zero it gets when it leaves
    assert (as_of["arr"] > 0).all()
    assert (leaked.loc[leaked["label"] == 1, "arr"] == 0).all()

    def fit_and_score(frame):
        train, valid = time_split(frame)
        model = fit_churn_model(train, valid, label="label", features=FEATURE_NAMES,
                                categorical=CATEGORICAL_FEATURES, seed=0, tuning_budget=1)
        return model, valid

    leaky_model, leaky_valid = fit_and_score(leaked)
    honest_model, honest_valid = fit_and_score(as_of)
    leaky_auc = roc_auc_score(leaky_valid["label"], leaky_model.predict_proba(leaky_valid))
    honest_auc = roc_auc_score(honest_valid["label"], honest_model.predict_proba(honest_valid))
    # what the leaky model meets in production: at the date, a future churner still has its ARR
    leaky_in_production = roc_auc_score(honest_valid["label"], leaky_model.predict_proba(honest_valid))
    # validated on today's values, the leaky model looks perfect, and leans on the leak
    assert leaky_auc > 0.99
    leaned_on = set(leaky_model.importance(leaky_valid).index[:3])
    assert leaned_on & {"arr", "seats", "arr_per_seat", "seat_utilization"}, leaned_on
    # its figure does not hold at scoring time, where the as-of model is the better one
    assert leaky_auc - leaky_in_production > 0.05
    assert honest_auc > leaky_in_production


def test_candidates_carry_the_attributes_as_of_the_snapshot(upgraded):
    from models.churn.health import health_scores
    from models.churn.scoring import build_candidates

    t, history = upgraded
    late = history.copy()
    late.loc[late["account_id"] == "A001", "valid_from"] = AS_OF + pd.Timedelta(days=10)
    feats = _features(t, AS_OF, late)
    scores = pd.DataFrame({"account_id": feats.index, "churn_risk": 0.1, "churn_risk_delta": 0.0, "drivers": [[]] * len(feats),
                           "top_reason": "", "model_version": "m1"})
    cands = build_candidates(feats, t["accounts"], scores, health_scores(feats, scores["churn_risk"].to_numpy()),
                             snapshot_date=AS_OF).set_index("account_id")
    assert cands.loc["A000", "arr"] == 10_000.0 and cands.loc["A000", "plan"] == "starter"  # not today's upgrade
    assert cands.loc["A000", "csm_owner"] != "dee"
    today = t["accounts"].set_index("account_id").loc["A001"]
    assert cands.loc["A001", "arr"] == today["arr"]  # no value as of the snapshot: routing still needs one

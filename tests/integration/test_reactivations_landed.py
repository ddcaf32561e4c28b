"""Reactivations on a mapped company: the subscription SaaS company (tests/companies/
subscription_saas.py) has accounts that churn and later start a new subscription. Landed through
its mapping, the account history shows each return (ARR 0 back to positive), and those accounts
are in the training set and the daily features again from the date after their return, never
during the gap.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from assets.stages import snapshot_features
from connectors.mapping.land import TARGETS, land_mapping
from connectors.mapping.loader import load_mapping
from connectors.mapping.manifest import read_manifest
from connectors.warehouse import Warehouse
from models.churn.labels import churn_outcomes, observation_dates, returns
from models.churn.training import build_training_set
from models.contracts import CONTRACTS
from tests.companies.subscription_saas import MAPPING, Company, read, write_company

HORIZON = 90


@pytest.fixture(scope="module")
def company(tmp_path_factory) -> tuple[Path, Warehouse, dict[str, pd.DataFrame]]:
    root = tmp_path_factory.mktemp("saas")
    write_company(root / "exports", Company())
    shutil.copy(MAPPING, root / MAPPING.name)
    wh = Warehouse(f"duckdb:///{root / 'warehouse.duckdb'}")
    land_mapping(load_mapping(root / MAPPING.name), wh)
    tables = {t: wh.read_contract_table(TARGETS[t], CONTRACTS[t])
              for t in ("accounts", "renewals", "tickets", "account_history")}
    tables["outcomes"] = churn_outcomes(tables["renewals"])
    return root / "exports", wh, tables


@pytest.fixture(scope="module")
def training(company):
    _, wh, t = company
    data_end = pd.Timestamp(read_manifest(wh)["last_date"]).normalize() + pd.Timedelta(days=1)
    start = wh.read_sql(f"SELECT MIN(date) AS d FROM {TARGETS['usage_daily']}")["d"].iloc[0]
    dates = observation_dates(pd.Timestamp(start), data_end, horizon_days=HORIZON)

    def build(history):
        return build_training_set(t["accounts"], t["renewals"], t["tickets"], wh.read_usage_daily, dates,
                                  horizon_days=HORIZON, data_end=data_end, account_history=history)

    return dates, build(t["account_history"]), build(None)


def test_the_returns_are_the_churns_the_company_marks_as_reactivations(company):
    exports, _, t = company
    back = returns(t["outcomes"], t["account_history"])
    events = read(exports, "churn_events.csv")
    assert len(back) >= 3
    assert set(back["account_id"]) == set(events.loc[events["is_reactivation"] == "True", "account_id"])
    assert (back["returned_at"] > back["churned_at"]).all()


def test_reactivated_accounts_are_in_the_training_set_after_their_return_and_not_in_the_gap(company, training):
    _, _, t = company
    dates, rows, without = training
    back = returns(t["outcomes"], t["account_history"])
    outcomes = t["outcomes"]
    present = set(zip(rows["account_id"], rows["observation_date"]))
    after, gap = [], []
    for account, churned_at, returned_at in back.itertuples(index=False):
        for d in dates:
            later_churn = ((outcomes["account_id"] == account) & (outcomes["churned_at"] > churned_at)
                           & (outcomes["churned_at"] < d)).any()
            if returned_at < d and not later_churn:
                after.append((account, d))
            elif churned_at < d <= returned_at:
                gap.append((account, d))
    assert after and gap, "the company should have rows both after a return and in a gap"
    assert set(after) <= present                    # back from the date after the return
    assert not set(gap) & present                   # never during the gap, though the history shows the return
    # features see the new term: the ARR as of each row's date is the new subscription's
    rows_after = rows.set_index(["account_id", "observation_date"]).loc[after]
    assert (rows_after["arr"] > 0).all()
    # with no account history the returns are unknown and those accounts stay gone, as before
    assert not set(after) & set(zip(without["account_id"], without["observation_date"]))
    assert len(rows) == len(without) + len(after)


def test_the_daily_features_include_accounts_that_came_back(company):
    _, wh, t = company
    as_of = pd.Timestamp(read_manifest(wh)["last_date"]).normalize() + pd.Timedelta(days=1)
    back = returns(t["outcomes"], t["account_history"])
    latest_churn = t["outcomes"][t["outcomes"]["churned_at"] < as_of].groupby("account_id")["churned_at"].max()
    came_back = {a for a, c, r in back.itertuples(index=False) if r < as_of and c == latest_churn.get(a)}
    assert came_back
    feats = snapshot_features(wh, t["accounts"], t["renewals"], t["tickets"], t["outcomes"], as_of,
                              account_history=t["account_history"])
    assert came_back <= set(feats.index)
    before = snapshot_features(wh, t["accounts"], t["renewals"], t["tickets"], t["outcomes"], as_of)
    assert not came_back & set(before.index)
    assert set(feats.index) == set(before.index) | came_back

"""The usage features' aggregates computed in the warehouse equal those computed in pandas.

The daily path reads the usage features as per-account aggregates (`models.churn.features.
USAGE_SUMS` and the last active day) computed in SQL by `Warehouse.read_usage_aggregates`, so
that one row per account comes back instead of 90 days of every account. The rule is stated once
(the list of windows); these tests hold the SQL answer against the pandas one
(`usage_aggregates`) and the features built from each, on DuckDB, SQLite and PostgreSQL, with
missing values, inactive days and accounts without usage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from connectors.warehouse import USAGE_DAILY_TABLE, Warehouse
from models.churn.features import LAST_ACTIVE, USAGE_AGGREGATES, account_features, usage_aggregates
from tests.factories import random_tables

AS_OF = [pd.Timestamp("2025-09-01"), pd.Timestamp("2025-03-20"), pd.Timestamp("2026-03-01")]


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    t = random_tables(60, seed=11)
    usage = t["usage_daily"].copy()
    rng = np.random.default_rng(3)
    usage.loc[rng.random(len(usage)) < 0.05, "events"] = np.nan        # unknown counts
    usage.loc[rng.random(len(usage)) < 0.10, "events"] = 0              # days without events
    usage.loc[rng.random(len(usage)) < 0.05, "active_users"] = np.nan
    # one account's usage stops 100 days before the last date: no row in the last window
    quiet = usage["account_id"].iloc[0]
    usage = usage[~((usage["account_id"] == quiet) & (usage["date"] > pd.Timestamp("2025-05-24")))]
    t["usage_daily"] = usage.reset_index(drop=True)
    return t


def _compare(wh: Warehouse, t: dict[str, pd.DataFrame]) -> None:
    wh.write_table(USAGE_DAILY_TABLE, t["usage_daily"])
    for as_of in AS_OF:
        expected = usage_aggregates(t["usage_daily"], as_of).sort_index()
        found = wh.read_usage_aggregates(as_of).sort_index()
        assert list(found.columns) == list(USAGE_AGGREGATES)
        assert len(found) > 0 and list(found.index) == list(expected.index), as_of
        pd.testing.assert_frame_equal(found.drop(columns=LAST_ACTIVE), expected.drop(columns=LAST_ACTIVE),
                                      check_exact=False, rtol=1e-12, check_index_type=False, check_names=False)
        pd.testing.assert_series_equal(pd.to_datetime(found[LAST_ACTIVE]).astype("datetime64[ns]"),
                                       pd.to_datetime(expected[LAST_ACTIVE]).astype("datetime64[ns]"),
                                       check_index_type=False, check_names=False)
        in_pandas = account_features(t["accounts"], t["renewals"], t["tickets"], t["usage_daily"], as_of)
        in_sql = account_features(t["accounts"], t["renewals"], t["tickets"], None, as_of, usage=found)
        pd.testing.assert_frame_equal(in_sql, in_pandas, check_exact=False, rtol=1e-12)


def test_duckdb_aggregates_equal_pandas(tmp_path, tables) -> None:
    _compare(Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}"), tables)


def test_sqlite_aggregates_equal_pandas(tmp_path, tables) -> None:
    _compare(Warehouse(f"sqlite:///{tmp_path / 'w.db'}"), tables)


def test_postgresql_aggregates_equal_pandas(pg_database_url, tables) -> None:
    _compare(Warehouse(pg_database_url), tables)


def test_an_account_without_usage_in_the_window_reads_as_no_usage(tmp_path, tables) -> None:
    wh = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    wh.write_table(USAGE_DAILY_TABLE, tables["usage_daily"])
    quiet = tables["usage_daily"]["account_id"].iloc[0]
    as_of = pd.Timestamp("2025-09-01")
    assert quiet not in wh.read_usage_aggregates(as_of).index
    feats = account_features(tables["accounts"], tables["renewals"], tables["tickets"], None, as_of,
                             usage=wh.read_usage_aggregates(as_of))
    assert feats.loc[quiet, "au_90d"] == 0.0 and feats.loc[quiet, "days_since_active"] == 91.0
    assert np.isnan(feats.loc[quiet, "advanced_share_30d"])


def test_aggregates_without_their_columns_are_refused(tables) -> None:
    with pytest.raises(ValueError, match="usage aggregates lack au_30d_sum.*last_active_date"):
        account_features(tables["accounts"], tables["renewals"], tables["tickets"], None, AS_OF[0],
                         usage=pd.DataFrame({"au_7d_sum": [1.0]}, index=pd.Index(["A"], name="account_id")))

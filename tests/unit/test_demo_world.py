"""The embedded demo world: determinism, contracts, consistency and a churn signal that comes first."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from connectors.demo.chunk import FEATURES
from connectors.demo.hazard import CHURN_FACTOR_COLUMNS, churn_factors_at, renewal_churn_probability
from connectors.demo.world import (
    ACCOUNTS_TABLE,
    EVENTS_TABLE,
    META_TABLE,
    RENEWALS_TABLE,
    TICKETS_TABLE,
    TRUTH_TABLE,
    WORLD_TABLES,
    DemoWorldConfig,
    DemoWorldResource,
    generate_demo_world,
    read_world_meta,
)
from connectors.warehouse import Warehouse
from models.contracts import ACCOUNTS, RENEWALS, TICKETS, USAGE_DAILY, conform

CONFIG = DemoWorldConfig(n_accounts=250, seed=11, end_date=date(2026, 11, 20), history_days=400)
END = pd.Timestamp(CONFIG.end_date)
START = pd.Timestamp(CONFIG.start_date)


def _read_all(wh: Warehouse) -> dict[str, pd.DataFrame]:
    keys = {
        ACCOUNTS_TABLE: ["account_id"],
        RENEWALS_TABLE: ["renewal_id"],
        TICKETS_TABLE: ["ticket_id"],
        EVENTS_TABLE: ["account_id", "user_id", "occurred_at", "feature", "quantity"],
        TRUTH_TABLE: ["account_id"],
    }
    return {
        t: wh.read_sql(f"SELECT * FROM {t}").sort_values(keys[t], kind="stable").reset_index(drop=True)
        for t in WORLD_TABLES
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    wh = Warehouse(f"duckdb:///{tmp_path_factory.mktemp('world') / 'wh.duckdb'}")
    counts = generate_demo_world(CONFIG, wh)
    wh.build_usage_daily()
    tables = _read_all(wh)
    return {
        "wh": wh,
        "counts": counts,
        "raw": tables,
        "accounts": conform(tables[ACCOUNTS_TABLE], ACCOUNTS),
        "renewals": conform(tables[RENEWALS_TABLE], RENEWALS),
        "tickets": conform(tables[TICKETS_TABLE], TICKETS),
        "events": tables[EVENTS_TABLE],
        "truth": tables[TRUTH_TABLE],
        "usage": wh.read_usage_daily(),
    }


def _churn(world: dict) -> pd.DataFrame:
    r = world["renewals"]
    return r[r["outcome"] == "churned"].set_index("account_id")


# -- determinism ----------------------------------------------------------------------------


def test_same_seed_gives_identical_tables_and_another_seed_does_not(world, tmp_path):
    again = Warehouse(f"duckdb:///{tmp_path / 'again.duckdb'}")
    generate_demo_world(CONFIG, again)
    for table, frame in _read_all(again).items():
        pd.testing.assert_frame_equal(frame, world["raw"][table], obj=table)

    other = Warehouse(f"duckdb:///{tmp_path / 'other.duckdb'}")
    generate_demo_world(CONFIG.model_copy(update={"seed": 12}), other)
    other_accounts = _read_all(other)[ACCOUNTS_TABLE]
    assert not other_accounts["arr"].equals(world["raw"][ACCOUNTS_TABLE]["arr"])


def test_chunks_built_ahead_in_threads_give_the_same_world(world, tmp_path, monkeypatch):
    import connectors.demo.world as world_module

    # small chunks, so 250 accounts are 5 chunks and the threads really build ahead
    monkeypatch.setattr(world_module, "ACCOUNTS_PER_CHUNK", 50)
    tables = {}
    for workers in (0, 2):
        wh = Warehouse(f"duckdb:///{tmp_path / f'w{workers}.duckdb'}")
        counts = generate_demo_world(CONFIG, wh, workers=workers)
        assert counts[ACCOUNTS_TABLE] == CONFIG.n_accounts
        tables[workers] = _read_all(wh)
    for table, frame in tables[2].items():
        pd.testing.assert_frame_equal(frame, tables[0][table], obj=table)
    # the chunks really are other streams than the default single chunk's
    assert not tables[0][ACCOUNTS_TABLE]["arr"].equals(world["raw"][ACCOUNTS_TABLE]["arr"])


# -- contracts and integrity ----------------------------------------------------------------


def test_every_table_conforms_and_counts_match(world):
    assert world["counts"][ACCOUNTS_TABLE] == CONFIG.n_accounts == len(world["accounts"])
    for table in WORLD_TABLES:
        assert world["counts"][table] == len(world["raw"][table]) > 0, table
    assert list(world["events"].columns) == ["account_id", "user_id", "occurred_at", "feature", "quantity"]
    assert set(world["events"]["feature"]) <= set(FEATURES)
    assert (world["events"]["quantity"] >= 1).all()
    conform(world["usage"], USAGE_DAILY)  # strict: raises on any missing column or bad type
    for frame, key in ((world["accounts"], "account_id"), (world["renewals"], "renewal_id"),
                       (world["tickets"], "ticket_id")):
        assert frame[key].is_unique, key
        assert frame.drop(columns=[c for c in frame if frame[c].isna().all()]).notna().any().all()


def test_every_reference_is_a_known_account(world):
    known = set(world["accounts"]["account_id"])
    for name in ("renewals", "tickets", "events", "truth"):
        assert set(world[name]["account_id"]) <= known, name


def test_accounts_are_plausible(world):
    acc = world["accounts"]
    shares = acc["segment"].value_counts(normalize=True)
    assert 0.45 < shares["smb"] < 0.75 and 0.03 < shares["enterprise"] < 0.2
    bounds = {"enterprise": (150_000, 1_500_000), "mid_market": (25_000, 150_000), "smb": (2_000, 25_000)}
    for segment, (lo, hi) in bounds.items():
        arr = acc.loc[acc["segment"] == segment, "arr"]
        assert arr.between(lo, hi).all(), segment
    assert acc["account_id"].str.fullmatch(r"ACC-\d{6}").all()
    # Enterprise accounts have dedicated CSMs: nobody owns both enterprise and other accounts.
    owners = acc.groupby("csm_owner")["segment"].agg(lambda s: set(s))
    assert not any("enterprise" in segs and len(segs) > 1 for segs in owners)
    assert acc["created_at"].min() < START < acc["created_at"].max() < END


def test_event_volume_is_sane(world):
    years = CONFIG.history_days / 365
    per_account_year = world["events"].groupby("account_id").size() / years
    assert per_account_year.max() < 7_000
    assert per_account_year.median() > 50


# -- renewals and churn ---------------------------------------------------------------------


def test_past_renewals_are_closed_and_future_ones_open(world):
    r = world["renewals"]
    past = r[r["renewal_date"] <= END]
    assert past["outcome"].isin(["renewed", "churned"]).all()
    assert past["closed_at"].notna().all() and (past["closed_at"] <= END).all()
    lag = (past["closed_at"] - past["renewal_date"]).dt.total_seconds() / 86_400
    assert lag.between(-46, 11).all()
    future = r[r["renewal_date"] > END]
    assert (future["outcome"] == "open").all() and future["closed_at"].isna().all()


def test_one_open_renewal_per_live_account_and_nothing_after_churn(world):
    r = world["renewals"]
    churned = _churn(world)
    assert churned.index.is_unique
    open_counts = r[r["outcome"] == "open"].groupby("account_id").size()
    live = set(world["accounts"]["account_id"]) - set(churned.index)
    assert set(open_counts.index) == live and (open_counts == 1).all()
    later = r.join(churned["renewal_date"].rename("churn_renewal"), on="account_id")
    assert not (later["renewal_date"] > later["churn_renewal"]).any()


def test_no_event_or_new_ticket_after_churn(world):
    churned = _churn(world)
    ev = world["events"].join(churned["closed_at"].rename("churned_at"), on="account_id")
    ev = ev[ev["churned_at"].notna()]
    assert len(ev) > 0
    assert (ev["occurred_at"] < ev["churned_at"]).all()
    assert (ev["occurred_at"] < ev["account_id"].map(churned["renewal_date"])).all()
    t = world["tickets"].join(churned["closed_at"].rename("churned_at"), on="account_id")
    assert not (t["created_at"] >= t["churned_at"]).any()


def test_churn_rate_per_renewal_is_in_a_sane_band(world):
    closed = world["renewals"][world["renewals"]["outcome"] != "open"]
    rate = (closed["outcome"] == "churned").mean()
    assert 0.05 <= rate <= 0.2, rate


def test_usage_falls_before_churn_more_than_before_renewal(world):
    """The signal exists before the event: over the 30 days before a churned renewal closes,
    usage is lower relative to the 90 days before them than it is for renewed renewals."""
    usage = world["usage"].set_index(["account_id", "date"])["events"].sort_index()
    closed = world["renewals"][world["renewals"]["outcome"] != "open"]
    closed = closed[closed["renewal_date"] - pd.Timedelta(days=120) >= START]

    def trend(row: pd.Series) -> float:
        at = row["closed_at"].normalize()
        days = usage.loc[row["account_id"]] if row["account_id"] in usage.index.get_level_values(0) else pd.Series()
        recent = days[(days.index >= at - pd.Timedelta(days=30)) & (days.index < at)].sum() / 30
        before = days[(days.index >= at - pd.Timedelta(days=120)) & (days.index < at - pd.Timedelta(days=30))].sum() / 90
        return recent / before - 1 if before > 0 else np.nan

    trends = closed.assign(trend=closed.apply(trend, axis=1)).dropna(subset=["trend"])
    by_outcome = trends.groupby("outcome")["trend"].median()
    assert by_outcome["churned"] < by_outcome["renewed"] - 0.1, by_outcome


# -- tickets --------------------------------------------------------------------------------


def test_ticket_timestamps_and_statuses_are_consistent(world):
    t = world["tickets"]
    assert (t["created_at"] >= START).all() and (t["created_at"] < END).all()
    responded = t["first_response_at"].notna()
    assert (t.loc[responded, "first_response_at"] >= t.loc[responded, "created_at"]).all()
    solved = t["solved_at"].notna()
    assert (t.loc[solved, "solved_at"] >= t.loc[solved, "first_response_at"]).all()
    assert (t.loc[solved, "solved_at"] < END).all()
    assert t.loc[solved, "status"].isin(["solved", "closed"]).all()
    assert t.loc[~solved, "status"].isin(["new", "open", "pending"]).all()
    assert (t.loc[~responded, "status"] == "new").all() and t.loc[~responded, "solved_at"].isna().all()
    assert t["csat"].dropna().between(1, 5).all() and t.loc[~solved, "csat"].isna().all()
    assert set(t["priority"]) == {"urgent", "high", "normal", "low"}
    assert 0 < t["escalated"].mean() < 0.5


# -- the hazard -----------------------------------------------------------------------------


def _factors(**overrides: float) -> pd.DataFrame:
    row = {"base_hazard": -3.0, "adoption_drop": 0.0, "support_pain": 0.2, "champion_lost": 0.0,
           "price_pressure": 0.0, "tenure_years": 2.0}
    row.update(overrides)
    return pd.DataFrame([row])


def test_hazard_rises_with_every_risk_factor():
    base = renewal_churn_probability(_factors())[0]
    for factor, value in (("adoption_drop", 0.6), ("support_pain", 1.5), ("champion_lost", 1.0),
                          ("price_pressure", 0.5), ("base_hazard", -2.0)):
        assert renewal_churn_probability(_factors(**{factor: value}))[0] > base, factor
    assert renewal_churn_probability(_factors(tenure_years=6.0))[0] < base


def test_odds_multiplier_scales_the_odds_exactly():
    f = pd.concat([_factors(noise=0.0), _factors(adoption_drop=0.7, noise=0.4)], ignore_index=True)
    p = renewal_churn_probability(f)
    q = renewal_churn_probability(f, odds_multiplier=np.array([0.5, 0.7]))
    np.testing.assert_allclose((q / (1 - q)) / (p / (1 - p)), [0.5, 0.7])
    with pytest.raises(ValueError, match="odds_multiplier"):
        renewal_churn_probability(f, odds_multiplier=0.0)
    with pytest.raises(KeyError, match="adoption_drop"):
        renewal_churn_probability(f.drop(columns=["adoption_drop"]))
    with pytest.raises(ValueError, match="'support_pain' has 1 missing"):
        renewal_churn_probability(f.assign(support_pain=[0.1, np.nan]))
    assert set(CHURN_FACTOR_COLUMNS) - set(f.columns) == set()


def test_truth_reproduces_the_open_renewal_probability(world):
    truth = world["truth"]
    live = truth[truth["next_renewal_date"].notna()].reset_index(drop=True)
    factors = churn_factors_at(live, live["next_renewal_date"])
    factors["noise"] = live["next_renewal_noise"].to_numpy()
    np.testing.assert_allclose(renewal_churn_probability(factors), live["next_renewal_churn_probability"], rtol=1e-6)


# -- writing: metadata, reruns, failures ----------------------------------------------------


def test_meta_records_config_and_counts(world):
    meta = read_world_meta(world["wh"])
    assert meta["seed"] == CONFIG.seed and meta["n_accounts"] == CONFIG.n_accounts
    assert pd.Timestamp(meta["end_date"]) == END and pd.Timestamp(meta["start_date"]) == START
    for table in WORLD_TABLES:
        assert meta[f"rows_{table}"] == world["counts"][table]


class _FailingWarehouse(Warehouse):
    """Fails while appending the Nth chunk frame, like a crash half-way through a run."""

    def __init__(self, url: str, fail_at: int):
        super().__init__(url)
        self.calls, self.fail_at = 0, fail_at

    def append_table(self, name: str, df: pd.DataFrame) -> int:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("disk full")
        return super().append_table(name, df)


def test_rerun_replaces_the_world_and_a_failed_run_keeps_the_previous_one(tmp_path):
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    small = DemoWorldConfig(n_accounts=40, seed=3, history_days=200)
    first = generate_demo_world(small, Warehouse(url))
    second = generate_demo_world(small, Warehouse(url))
    assert first == second
    wh = Warehouse(url)
    assert wh.row_count(ACCOUNTS_TABLE) == 40 and wh.row_count(EVENTS_TABLE) == first[EVENTS_TABLE]

    with pytest.raises(RuntimeError, match="disk full"):
        generate_demo_world(small.model_copy(update={"n_accounts": 60}), _FailingWarehouse(url, fail_at=4))
    assert wh.row_count(ACCOUNTS_TABLE) == 40
    assert read_world_meta(wh)["n_accounts"] == 40
    assert wh.row_count(META_TABLE) == 1


def test_resource_generates_its_configured_world(tmp_path):
    wh = Warehouse(f"sqlite:///{tmp_path / 'wh.db'}")
    counts = DemoWorldResource(n_accounts=30, seed=5, history_days=150).generate(wh)
    assert counts[ACCOUNTS_TABLE] == 30 == wh.row_count(ACCOUNTS_TABLE)
    assert read_world_meta(wh)["history_days"] == 150


def test_config_rejects_impossible_values():
    with pytest.raises(ValidationError, match="n_accounts"):
        DemoWorldConfig(n_accounts=0)
    with pytest.raises(ValidationError, match="history_days"):
        DemoWorldConfig(history_days=10)

"""Freshness per landed system: the age of its last completed dlt load (dlt's own
``_dlt_loads``), against the limit of the source it feeds; stale, it blocks routing through the
freshness check of that source, names the system, and is in every reading of the sources' ages;
a replay before a load is not stale; the landing assets carry the same limit as a Dagster
freshness policy."""

from __future__ import annotations

import dlt
import pandas as pd
import pytest
import sqlalchemy as sa

from connectors.freshness import landing_ages, source_ages
from connectors.landing.pipeline import landing_pipeline
from connectors.warehouse import Warehouse
from models.plausibility import Thresholds
from tests.data.source_runs import RUN_AT, company_sources, run_sources
from tests.factories import company_history

AT = {"rescue/now": RUN_AT}
RUN = pd.Timestamp(RUN_AT).tz_convert("UTC").tz_localize(None)


def _land(url: str, tmp_path, source: str = "freshdesk", *, loaded_at: pd.Timestamp | None = None) -> None:
    """One real dlt load into `source`'s dataset; `loaded_at`: when dlt recorded it (the test
    moves the recorded instant, as if the load had run then)."""
    @dlt.resource(name="tickets", primary_key="id", write_disposition="merge")
    def tickets():
        yield [{"id": 1, "updated_at": "2024-05-01T00:00:00Z"}]

    landing_pipeline(source, url, pipelines_dir=tmp_path / "dlt").run(tickets())
    if loaded_at is not None:
        with Warehouse(url).engine.begin() as conn:
            conn.execute(sa.text(f'UPDATE "{source}"."_dlt_loads" SET inserted_at = :t'), {"t": loaded_at.to_pydatetime()})


@pytest.fixture
def url(tmp_path) -> str:
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"


def test_a_landing_is_as_old_as_its_last_completed_load_against_the_limit_of_what_it_feeds(url, tmp_path):
    _land(url, tmp_path, loaded_at=RUN - pd.Timedelta(days=1))
    wh, limits = Warehouse(url), Thresholds()
    (fresh,) = landing_ages(wh, RUN, limits, sources=["freshdesk"])
    assert not fresh.stale and fresh.age_days == pytest.approx(1.0) and fresh.max_age_days == limits.tickets_max_age_days
    (old,) = landing_ages(wh, RUN + pd.Timedelta(days=3), limits, sources=["freshdesk"])
    assert old.stale and old.message.startswith("freshdesk landing: stale, last completed load 2024-06-02 06:00 UTC is 4.0 days old")
    assert landing_ages(wh, RUN, limits, feed="crm", sources=["freshdesk"]) == []  # Freshdesk feeds the tickets


def test_a_named_system_that_never_landed_is_stale_and_a_replay_before_a_load_is_not(url, tmp_path):
    wh = Warehouse(url)
    wh.write_table("placeholder", pd.DataFrame({"x": [1]}))
    (never,) = landing_ages(wh, RUN, Thresholds(), sources=["freshdesk"])
    assert never.stale and "no last completed load at or before the run's instant" in never.message
    _land(url, tmp_path)  # loaded now, years after the run's instant
    (replay,) = landing_ages(wh, RUN, Thresholds(), sources=["freshdesk"])
    assert not replay.stale and replay.age_days == 0 and "after the run's instant" in replay.message


@pytest.fixture(scope="module")
def sources() -> dict[str, pd.DataFrame]:
    return company_sources(company_history())


def test_a_stale_landing_blocks_routing_through_the_tickets_freshness_check_and_names_the_system(
        tmp_path, sources, monkeypatch):
    monkeypatch.setenv("RESCUE_SOURCES", "freshdesk")
    url = f"duckdb:///{tmp_path / 'run' / 'warehouse.duckdb'}"
    (tmp_path / "run").mkdir()
    _land(url, tmp_path, loaded_at=RUN - pd.Timedelta(days=5))
    run = run_sources(tmp_path / "run", sources, tags=AT)
    assert not run.result.success and run.ran == [] and run.failed() == ["support_tickets_fresh"]
    summary = run.summary("support_tickets_fresh")
    assert "freshdesk landing: stale, last completed load 2024-05-29 06:00 UTC is 5.0 days old" in summary
    assert "tickets: fresh" not in summary.split("problem(s)")[0]  # the tickets' own rows were fresh
    assert run.evals["support_tickets_fresh"].metadata["freshdesk_landing_age_days"].value == pytest.approx(5.0)
    ages = source_ages(Warehouse(url), Thresholds(), RUN, tickets=sources["tickets"], accounts=sources["accounts"],
                       renewals=sources["renewals"])
    assert [a.table for a in ages if a.stale] == ["freshdesk landing"]

    (tmp_path / "again").mkdir()
    _land(f"duckdb:///{tmp_path / 'again' / 'warehouse.duckdb'}", tmp_path / "again", loaded_at=RUN - pd.Timedelta(hours=12))
    again = run_sources(tmp_path / "again", sources, tags=AT)  # a fresh landing: nothing blocks
    assert again.result.success and again.failed() == []
    assert "freshdesk landing: fresh, last completed load 2024-06-02 18:00 UTC is 0.5 days old" in again.summary("support_tickets_fresh")


def test_the_landing_assets_carry_the_limit_as_a_freshness_policy(url):
    from assets.landing import freshdesk_assets

    spec = next(iter(freshdesk_assets(url).specs))
    assert spec.freshness_policy is not None
    assert spec.freshness_policy.fail_window.to_timedelta() == pd.Timedelta(days=Thresholds().tickets_max_age_days)

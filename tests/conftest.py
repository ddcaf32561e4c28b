"""Shared fixtures: a fresh rescue-queue database per test, on SQLite and on PostgreSQL.

`queue_url` is parametrized over both backends, so every storage test runs twice. PostgreSQL
comes from `RESCUE_TEST_PG_URL` when set (CI may start its own server); otherwise the first test
that needs it starts a throwaway cluster with `.ci/postgres.sh` and the session stops it at the
end. Each test gets its own database, created and dropped around it.

Without PostgreSQL server binaries the PostgreSQL half fails when `CI` is set (CI must test
both backends) and is skipped otherwise, with the reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import fresh_pg_databases

REPO = Path(__file__).resolve().parents[1]
PG_SCRIPT = REPO / ".ci" / "postgres.sh"


def _pg_binaries_present() -> bool:
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"], "initdb").exists()
    return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or shutil.which("initdb") is not None


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a PostgreSQL server database the tests may create databases from."""
    configured = os.environ.get("RESCUE_TEST_PG_URL")
    if configured:
        yield configured
        return
    if not _pg_binaries_present():
        message = ("PostgreSQL server binaries not found: set RESCUE_TEST_PG_URL, or install PostgreSQL "
                   "(or set PG_BIN) so .ci/postgres.sh can start a cluster")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run([str(PG_SCRIPT), "start"], capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        pytest.fail(f".ci/postgres.sh start failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    url = done.stdout.strip().splitlines()[-1]
    datadir = next(
        (line.split(" in ", 1)[1].split(" ", 1)[0] for line in done.stderr.splitlines() if "cluster in " in line),
        None,
    )
    try:
        yield url
    finally:
        if datadir:
            subprocess.run([str(PG_SCRIPT), "stop", datadir], capture_output=True, text=True, timeout=120)


@pytest.fixture
def pg_database_url(pg_server_url: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database on the test server, dropped afterwards."""
    with fresh_pg_databases(pg_server_url) as (url,):
        yield url.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}"
    return request.getfixturevalue("pg_database_url")


@pytest.fixture
def queue_store(queue_url: str):
    """A migrated QueueStore on a fresh database (each backend)."""
    from connectors.queue.store import QueueStore

    store = QueueStore(queue_url)
    store.migrate()
    try:
        yield store
    finally:
        store.close()


def snapshot_frames(rows: list[dict]) -> tuple:
    """(decisions, candidates) frames in the contracts' columns for a few accounts.

    Each row needs account_id; action defaults to route, priority P2, team csm, risk 0.7, ARR
    100,000; anything else given overrides the column of the same name in either frame.
    """
    import pandas as pd

    from models.contracts import CANDIDATE_COLUMNS, DECISION_COLUMNS

    decisions, candidates = [], []
    for spec in rows:
        risk = spec.get("churn_risk", 0.7)
        arr = spec.get("arr", 100_000.0)
        routed = spec.get("action", "route") != "not_eligible"
        candidate = {
            "account_id": spec["account_id"], "name": f"Company {spec['account_id']}", "segment": "enterprise",
            "industry": "retail", "region": "emea", "plan": "pro", "csm_owner": "ana", "arr": arr, "vip": False,
            "churn_risk": risk, "churn_risk_delta": 0.0, "health_score": 100 * (1 - risk), "health_band": "at_risk",
            "expected_arr_at_risk": risk * arr, "renewal_date": pd.Timestamp("2025-09-01"), "days_to_renewal": 90.0,
            "open_urgent_tickets": 1, "oldest_open_urgent_hours": 5.0, "open_compliance_tickets": 0,
            "wau_trend": -0.38, "top_reason": "weekly active users down 38%",
            "drivers": [{"feature": "wau_trend", "phrase": "weekly active users down 38%", "contribution": 0.4}],
            "model_version": "m1", "snapshot_date": pd.Timestamp("2025-06-02"),
        }
        decision = {
            "account_id": spec["account_id"], "action": spec.get("action", "route"),
            "priority": spec.get("priority", "P2") if routed else None, "team": spec.get("team", "csm") if routed else None,
            "required_skills": ["renewals"], "rule_id": "enterprise_high_risk",
            "rule_description": None, "reason_driver": "weekly active users down 38%",
            "reasons": ["enterprise with churn risk >= 0.6", "weekly active users down 38%"],
            "expected_arr_at_risk": risk * arr, "rank": spec.get("rank", 1), "assignee": None,
            "sla_first_touch_due": None, "sla_resolution_due": None, "case_id": None, "previous_priority": None,
        }
        for key, value in spec.items():
            if key in CANDIDATE_COLUMNS:
                candidate[key] = value
            if key in DECISION_COLUMNS:
                decision[key] = value
        decisions.append(decision)
        candidates.append(candidate)
    return pd.DataFrame(decisions), pd.DataFrame(candidates)


@pytest.fixture
def frames():
    """The `snapshot_frames` builder, for tests that fill a queue."""
    return snapshot_frames

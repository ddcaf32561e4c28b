"""Mapping faults: an export whose rows break a plausibility rule beyond its allowed share is
refused before anything is landed, by the same rule and threshold the daily job's blocking checks
apply, in one line naming the rule, the table, the count and the allowed share; the company that
knows its data is like that says so in the mapping's ``checks:`` block, and it loads with a
warning.

The dirty variant is the subscription SaaS company (tests/companies/subscription_saas.py) with a
fifth of its tickets dated 60 days before their account's signup (`make_dirty`), as an export
with a wrong year or time zone on its ticket dates would be.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from connectors.mapping.manifest import read_manifest
from connectors.settings import declared_names, default_warehouse_url
from connectors.warehouse import Warehouse
from pipelines.cli.main import app
from tests.companies.subscription_saas import MAPPING, Company, make_dirty, read, write_company
from tests.faults.conftest import assert_clean_failure

COMPANY = Company()


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("saas") / "exports"
    write_company(root, COMPANY)
    return root


@pytest.fixture
def dirty(exports, tmp_path) -> tuple[Path, list[str]]:
    """A copy of the company with 20% of its tickets before signup: (its mapping, the tickets moved)."""
    shutil.copytree(exports, tmp_path / "company" / "exports")
    mapping = tmp_path / "company" / MAPPING.name
    shutil.copy(MAPPING, mapping)
    n = len(read(mapping.parent / "exports", "support_tickets.csv")) // 5
    return mapping, make_dirty(mapping.parent / "exports", "tickets_before_signup", n=n)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    for name in declared_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RESCUE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "250")
    return tmp_path / "home"


def rescue(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_tickets_before_signup_beyond_the_allowed_share_block_the_check_and_the_load(dirty, home):
    mapping, moved = dirty
    total = len(read(mapping.parent / "exports", "support_tickets.csv"))
    result = rescue("data", "check", mapping)
    assert result.exit_code == 1
    assert_clean_failure(result.output, exit_code=result.exit_code)
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("error ")]
    assert line.startswith("error before_signup: tickets.created_at: rows dated more than 30 days before the "
                           "account's signup (accounts.created_at): "), line
    assert f": {len(moved):,} of {total:,} (20.0%, allowed 2.0%), e.g. ticket_id {moved[0]} on " in line
    assert line.endswith("; over checks.max_share_before_signup: the daily checks would block on it; fix the export, "
                         "or raise checks.max_share_before_signup in the mapping if these rows are right")
    assert "check: 1 error, 0 warnings: blocking" in result.stdout
    assert "thresholds (the defaults; the mapping has no checks:): signup_grace_days 30, max_share_before_signup 0.02" \
        in result.stdout

    refused = rescue("data", "load", mapping)
    assert refused.exit_code == 1
    assert_clean_failure(refused.output, names=["not loaded: before_signup: tickets.created_at",
                                                f"{len(moved):,} of {total:,} (20.0%, allowed 2.0%)"],
                         exit_code=refused.exit_code)
    assert refused.stderr.strip().splitlines()[-1].startswith(f"error: {mapping}: not loaded: before_signup: ")
    assert "loaded subscription-saas" not in refused.stdout
    warehouse = home / "warehouse.duckdb"
    assert not warehouse.exists() or _tables(default_warehouse_url()) == set()   # nothing written


def test_raising_the_share_in_the_mappings_checks_loads_it_with_a_warning(dirty, home):
    mapping, moved = dirty
    mapping.write_text(mapping.read_text() + "checks:\n  max_share_before_signup: 0.25   # our CRM re-dated old accounts\n")
    result = rescue("data", "check", mapping)
    assert result.exit_code == 0, result.output
    assert ("thresholds (the mapping's checks: over the defaults): signup_grace_days 30, "
            "max_share_before_signup 0.25 (mapping), churn_grace_days 7") in result.stdout
    (line,) = [line for line in result.stdout.splitlines() if line.startswith(("error ", "warning "))]
    assert line.startswith("warning before_signup: tickets.created_at: ") and "(20.0%, allowed 25.0%)" in line
    assert line.endswith("; within checks.max_share_before_signup: the daily checks let it pass")

    loaded = rescue("data", "load", mapping)
    assert loaded.exit_code == 0, loaded.output
    assert re.search(r"^warning before_signup: tickets\.created_at: .*\(20\.0%, allowed 25\.0%\)", loaded.stdout, re.M)
    assert "loaded subscription-saas: " in loaded.stdout
    meta = read_manifest(Warehouse(default_warehouse_url()))
    assert meta["checks"] == {"max_share_before_signup": 0.25}
    tickets = len(read(mapping.parent / "exports", "support_tickets.csv"))
    assert Warehouse(default_warehouse_url()).row_count("raw_support_tickets") == tickets   # the moved ones too

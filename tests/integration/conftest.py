"""Fixtures the landing tests share (`tests/integration/test_landing_*.py`)."""

from __future__ import annotations

import pytest
import tenacity


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The retry waits dlt's client asked for, in seconds (nothing actually sleeps)."""
    asked: list[float] = []

    class _Clock:
        @staticmethod
        def sleep(seconds: float) -> None:
            asked.append(float(seconds))

    monkeypatch.setattr(tenacity.nap, "time", _Clock)
    return asked


@pytest.fixture
def url(tmp_path) -> str:
    """A DuckDB warehouse file of the test's own."""
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"

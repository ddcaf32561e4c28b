"""What the demo world simulates: its size, seed and dates (read by the writer and every chunk)."""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict, Field


class DemoWorldConfig(BaseModel):
    """What to simulate. The same configuration always produces the same world."""

    model_config = ConfigDict(frozen=True)

    n_accounts: int = Field(2_000, ge=1, le=10_000_000, description="Number of customer accounts.")
    seed: int = Field(7, ge=0, description="Random seed.")
    end_date: date = Field(date(2026, 11, 20), description="The world's 'today': data stops before it.")
    history_days: int = Field(540, ge=120, le=3_650, description="Days of product and support history.")

    @property
    def start_date(self) -> date:
        """First day of product and support history."""
        return self.end_date - timedelta(days=self.history_days)

"""Where the escalation policy is read from (a YAML file, versioned with every case)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from connectors.settings import DEFAULT_POLICY, Settings, default_policy_path
from models.policy.loader import load_policy
from models.policy.schema import Policy

__all__ = ["DEFAULT_POLICY", "PolicyResource"]


class PolicyResource(dg.ConfigurableResource):
    """The escalation policy file; validated on every load (a malformed file fails the run)."""

    path: str = Field(
        default="", description=f"Policy YAML; empty = ${Settings.env('policy_path')} or {DEFAULT_POLICY.as_posix()}.")

    def resolved_path(self) -> Path:
        return Path(self.path) if self.path else default_policy_path()

    def load(self) -> Policy:
        return load_policy(self.resolved_path())

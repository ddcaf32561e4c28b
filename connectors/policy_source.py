"""Where the escalation policy is read from (a YAML file, versioned with every case)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from models.policy.loader import load_policy
from models.policy.schema import Policy

DEFAULT_POLICY = Path("policies") / "default.yaml"


class PolicyResource(dg.ConfigurableResource):
    """The escalation policy file; validated on every load (a malformed file fails the run)."""

    path: str = Field(default="", description="Policy YAML; empty = $RESCUE_POLICY_PATH or policies/default.yaml.")

    def resolved_path(self) -> Path:
        return Path(self.path or os.environ.get("RESCUE_POLICY_PATH") or DEFAULT_POLICY)

    def load(self) -> Policy:
        return load_policy(self.resolved_path())

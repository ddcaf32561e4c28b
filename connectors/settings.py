"""Where the embedded defaults live on disk.

Everything the embedded demo writes (warehouse, rescue queue, model registry, reports, the
Dagster instance) lives under one project-local home, `RESCUE_HOME` (default `./.rescue`), which
is git-ignored. Production deployments point the URLs at real systems with environment
variables instead; see the README's configuration table.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_home() -> Path:
    """The project-local home directory, created on first use."""
    home = Path(os.environ.get("RESCUE_HOME", ".rescue")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_warehouse_url() -> str:
    return os.environ.get("RESCUE_WAREHOUSE_URL") or f"duckdb:///{project_home() / 'warehouse.duckdb'}"


def default_queue_url() -> str:
    return os.environ.get("RESCUE_QUEUE_URL") or f"sqlite:///{project_home() / 'queue.db'}"


def default_model_dir() -> Path:
    path = Path(os.environ.get("RESCUE_MODEL_DIR") or project_home() / "models")
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_report_dir() -> Path:
    path = Path(os.environ.get("RESCUE_REPORT_DIR") or project_home() / "reports")
    path.mkdir(parents=True, exist_ok=True)
    return path

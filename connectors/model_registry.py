"""A small file-based model registry: versions, metadata and the champion pointer.

Layout under the registry root (default ``$RESCUE_HOME/models``)::

    versions/<version>/model.bin      serialized model (models.churn.model.ChurnModel.to_bytes)
    versions/<version>/metadata.json  training window, features, metrics, ROC-AUC intervals, health
                                      config, fingerprint, libraries, and the promotion decision
    champion.json                     {"version": ..., "promoted_at": ..., "reason": ..., "evidence": ...}
    history.jsonl                     append-only log of registrations and promotions

Every write goes to a temporary file first and is moved into place with ``os.replace``, so a
crash never leaves a half-written model or pointer. Scoring always loads the champion.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from connectors.settings import default_model_dir


class RegistryError(RuntimeError):
    pass


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ModelRegistry:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _dir(self, version: str) -> Path:
        return self.root / "versions" / version

    def _log(self, event: dict[str, Any]) -> None:
        with open(self.root / "history.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event, default=str) + "\n")

    def register(self, model_bytes: bytes, metadata: dict[str, Any], *, now: datetime | None = None) -> str:
        """Store a model; returns its version (``YYYYMMDD-HHMMSS-<sha8>``). Idempotent per content."""
        now = now or datetime.now(UTC)
        digest = hashlib.sha256(model_bytes).hexdigest()[:8]
        for existing in self.versions():
            if existing.endswith(digest) and (self._dir(existing) / "model.bin").exists():
                return existing
        version = f"{now:%Y%m%d-%H%M%S}-{digest}"
        meta = {**metadata, "version": version, "registered_at": now.isoformat(), "sha256_8": digest}
        _atomic_write(self._dir(version) / "model.bin", model_bytes)
        _atomic_write(self._dir(version) / "metadata.json", json.dumps(meta, indent=2, default=str).encode())
        self._log({"event": "registered", "version": version, "at": now.isoformat()})
        return version

    def versions(self) -> list[str]:
        base = self.root / "versions"
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.exists() else []

    def metadata(self, version: str) -> dict[str, Any]:
        path = self._dir(version) / "metadata.json"
        if not path.exists():
            raise RegistryError(f"model version {version!r} not found in {self.root}")
        return json.loads(path.read_text())

    def annotate(self, version: str, updates: dict[str, Any]) -> None:
        """Merge ``updates`` into a version's metadata (e.g. the promotion decision taken after it
        was registered); the model itself never changes."""
        meta = {**self.metadata(version), **updates}
        _atomic_write(self._dir(version) / "metadata.json", json.dumps(meta, indent=2, default=str).encode())

    def latest(self) -> str | None:
        """The most recently registered version (the champion or not), None when there is none."""
        versions = self.versions()
        return versions[-1] if versions else None

    def load_bytes(self, version: str) -> bytes:
        path = self._dir(version) / "model.bin"
        if not path.exists():
            raise RegistryError(f"model version {version!r} not found in {self.root}")
        return path.read_bytes()

    def champion(self) -> str | None:
        path = self.root / "champion.json"
        if not path.exists():
            return None
        return json.loads(path.read_text())["version"]

    def promote(self, version: str, *, reason: str, evidence: dict[str, Any] | None = None,
                now: datetime | None = None) -> None:
        """Make ``version`` the champion; ``evidence`` (e.g. its ROC-AUC interval) is kept with
        the pointer and in the history."""
        self.metadata(version)  # raises if unknown
        now = now or datetime.now(UTC)
        payload = {"version": version, "promoted_at": now.isoformat(), "reason": reason}
        if evidence is not None:
            payload["evidence"] = evidence
        _atomic_write(self.root / "champion.json", json.dumps(payload, indent=2, default=str).encode())
        self._log({"event": "promoted", **payload})


class ModelRegistryResource(dg.ConfigurableResource):
    """Where trained models and the champion pointer live."""

    path: str = Field(default="", description="Registry directory; empty = $RESCUE_HOME/models.")

    def get_client(self) -> ModelRegistry:
        return ModelRegistry(self.path or default_model_dir())

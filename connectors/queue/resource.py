"""The rescue queue database as a Dagster resource."""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr

from connectors.queue.store import QueueStore
from connectors.settings import default_queue_url

__all__ = ["QueueStoreResource"]


class QueueStoreResource(dg.ConfigurableResource):
    """The rescue queue database as a Dagster resource.

    `url` is any SQLAlchemy URL (e.g. `dg.EnvVar("RESCUE_QUEUE_URL")`); empty means the embedded
    default, a SQLite file under the project home. The schema is migrated on first use.
    """

    url: str | None = None

    _store: QueueStore | None = PrivateAttr(default=None)

    def get_client(self) -> QueueStore:
        if self._store is None:
            store = QueueStore(self.url or default_queue_url())
            store.migrate()
            self._store = store
        return self._store

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

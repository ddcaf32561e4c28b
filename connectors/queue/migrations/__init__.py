"""Alembic migrations of the rescue queue database (applied by `QueueStore.migrate()`)."""

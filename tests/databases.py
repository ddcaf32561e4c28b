"""Throwaway PostgreSQL databases on the test server (`pg_server_url` in tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa


@contextmanager
def fresh_pg_databases(server_url: str, kinds: tuple[str, ...] = ("db",)) -> Iterator[list[sa.URL]]:
    """New, empty PostgreSQL databases on the test server, one per kind, dropped afterwards."""
    server = sa.make_url(server_url)
    names = [f"rescue_{kind}_{uuid.uuid4().hex[:10]}" for kind in kinds]
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield [server.set(database=name) for name in names]
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

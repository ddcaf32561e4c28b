"""Alembic environment of the rescue queue.

`QueueStore.migrate()` builds the alembic configuration in code and passes its own connection in
`config.attributes["connection"]`, so no `alembic.ini` is needed. Developers create a new revision
with `alembic.command.revision(QueueStore(url).alembic_config(), message=..., autogenerate=True)`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from connectors.queue.schema import METADATA

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=METADATA,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=METADATA,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url"), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

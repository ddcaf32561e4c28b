"""The queue database: engine, transactions and schema migrations.

`QueueDatabase` is the base of `connectors.queue.store.QueueStore`. Its two transaction helpers
are the only way code outside the store reaches the tables (the desk users, for instance):

- `transaction()`: a read-write transaction (SQLite: `BEGIN IMMEDIATE`, so writers queue behind
  each other instead of failing with "database is locked");
- `reading()`: a read-only connection (SQLite: `BEGIN DEFERRED`).

The schema is managed by alembic (`connectors/queue/migrations`); `migrate()` upgrades a database
to the latest revision and needs no `alembic.ini`. Alembic is imported by the methods that run or
inspect migrations, not with this module: reading the queue (`rescue queue list`) does without it.

A URL that is not a database URL raises `QueueUrlError` when the store is made, and
`describe_database_error` turns an error reaching or writing the database into one line for
people (the queue is read-only, cannot be reached at host:port, ...). Neither shows a password.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from connectors.queue.schema import MIGRATIONS_DIR, for_dialect

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

#: Alembic's version table (its default name; the migrations do not change it).
VERSION_TABLE = "alembic_version"

#: Where a URL's port is not given.
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}
#: What a database URL looks like, for messages.
URL_EXAMPLES = "sqlite:///path/to/queue.db or postgresql://user@host:5432/dbname"


class QueueUrlError(ValueError):
    """The queue URL is not a database URL SQLAlchemy can use. The message never holds a
    password (an unparseable URL is not repeated at all)."""


def make_engine(url: str | sa.URL, *, echo: bool = False) -> sa.Engine:
    """An engine for `url`; `QueueUrlError` when it is not a usable database URL."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, TypeError, ValueError):
        raise QueueUrlError(f"the queue URL is not a database URL (expected e.g. {URL_EXAMPLES})") from None
    shown = parsed.render_as_string(hide_password=True)
    try:
        engine = sa.create_engine(parsed, echo=echo)
        for_dialect(engine.dialect.name)
        return engine
    except sa.exc.NoSuchModuleError:
        raise QueueUrlError(f"{shown} is not a database URL: no database kind {parsed.drivername!r} "
                            f"(expected e.g. {URL_EXAMPLES})") from None
    except ImportError as exc:
        raise QueueUrlError(f"{shown}: the database driver {exc.name or parsed.drivername!r} is not installed") from None
    except (sa.exc.ArgumentError, TypeError, ValueError) as exc:
        raise QueueUrlError(f"{shown} is not a usable database URL: {_first_line(exc, parsed)}") from None


def _first_line(exc: BaseException, url: sa.URL) -> str:
    """The first line of `exc`'s message, with the URL's password masked."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    if url.password:
        text = text.replace(str(url.password), "***")
    return text


def describe_database_error(url: str | sa.URL, exc: BaseException) -> str:
    """One line for an error opening, reading or writing the queue database at `url`: that it
    is read-only, cannot be opened (SQLite) or reached (a server, by host:port), or else what
    failed. No password, and no SQL."""
    parsed = sa.make_url(url)
    cause = getattr(exc, "orig", None) or exc
    reason = _first_line(cause, parsed)
    shown = parsed.render_as_string(hide_password=True)
    lowered = reason.lower()
    if "readonly database" in lowered or "read-only" in lowered or "read only" in lowered:
        return f"the queue database {shown} is read-only ({reason})"
    backend = parsed.get_backend_name()
    if isinstance(exc, sa.exc.OperationalError) or isinstance(exc, sa.exc.InterfaceError):
        if backend == "sqlite":
            return f"cannot open the queue database {shown} ({reason})"
        where = f"{parsed.host or 'localhost'}:{parsed.port or DEFAULT_PORTS.get(backend, '?')}"
        return f"cannot reach the queue database at {where} ({type(cause).__name__}: {reason})"
    return f"the queue database {shown} failed: {type(cause).__name__}: {reason}"


class QueueDatabase:
    """A connection pool to the rescue queue database (any SQLAlchemy URL)."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, echo=echo)
        if self.engine.dialect.name == "sqlite":
            _configure_sqlite(self.engine)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display_url!r})"

    @property
    def display_url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        return self.engine.url.render_as_string(hide_password=True)

    def describe_error(self, exc: BaseException) -> str:
        """One line for an error reaching or writing this database (`describe_database_error`)."""
        return describe_database_error(self.engine.url, exc)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    # -- transactions --------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A read-write transaction, committed when the block ends (rolled back on an error)."""
        with self.engine.connect() as conn:
            with conn.begin():
                yield conn

    @staticmethod
    def serialize(conn: sa.Connection, name: str) -> None:
        """Hold the lock `name` until `conn`'s transaction ends, so writers of the same kind run
        one after the other (PostgreSQL: a transaction-level advisory lock; SQLite write
        transactions are serialized by the database already)."""
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A connection for reads (no write lock taken)."""
        with self.engine.connect() as conn:
            conn.execution_options(sqlite_begin="DEFERRED")
            yield conn

    # -- schema --------------------------------------------------------------------------------

    def alembic_config(self) -> AlembicConfig:
        """An alembic configuration for this database, built in code (no alembic.ini)."""
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.engine.url.render_as_string(hide_password=False).replace("%", "%%"))
        return cfg

    def migrate(self) -> None:
        """Upgrade the database to the latest schema revision (a no-op when it is current)."""
        from alembic import command

        cfg = self.alembic_config()
        with self.engine.connect() as conn:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")

    def current_revision(self) -> str | None:
        """The schema revision of the database, or None when it was never migrated: the row of
        alembic's version table, read as alembic's `MigrationContext.get_current_revision` reads
        it (no table, or no row: None), without importing alembic. A table with several rows
        (unmerged branches) is left to alembic, which refuses it."""
        with self.reading() as conn:
            if not sa.inspect(conn).has_table(VERSION_TABLE):
                return None
            heads = conn.execute(sa.select(sa.column("version_num")).select_from(sa.table(VERSION_TABLE))).scalars().all()
        if len(heads) > 1:
            from alembic.runtime.migration import MigrationContext

            with self.reading() as conn:
                return MigrationContext.configure(conn).get_current_revision()
        return heads[0] if heads else None

    def head_revision(self) -> str:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()


def _configure_sqlite(engine: sa.Engine) -> None:
    """WAL, a busy timeout, foreign keys, and transactions that SQLite really begins.

    pysqlite defers BEGIN until the first write, so a read-then-write transaction can fail with
    "database is locked" instead of waiting. We emit BEGIN ourselves: IMMEDIATE for writes (the
    write lock is taken up front, and waiting writers queue behind `busy_timeout`), DEFERRED
    for reads.
    """

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

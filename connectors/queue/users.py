"""People who may use the rescue desk, and their API tokens, stored next to the rescue queue.

The desk (web pages and JSON API) authenticates every request with a per-person token. A token
is 32 random bytes (`secrets.token_urlsafe`), shown to its owner once when it is issued and
stored only as its SHA-256 digest: a random 256-bit secret needs no slow hash, and a stolen
database yields no usable token. Verification hashes the presented token, finds the user by the
digest and compares digests in constant time. Issuing a new token replaces the old one, which
stops working at once (and ends the browser sessions signed in with it, see `DeskUser.session_stamp`).

The table lives in the queue database (alembic revision 0002, `connectors/queue/migrations`) and is
declared with the queue's other tables (`connectors.queue.schema`), so schema comparisons see
the whole database. Every read and write goes through the store's transactions:

| column       | what                                                        |
|--------------|-------------------------------------------------------------|
| `user_id`    | the person's member id in the escalation policy             |
| `name`       | display name                                                |
| `role`       | `agent` or `manager`                                        |
| `team`       | team key in the policy                                      |
| `token_hash` | hex SHA-256 of the current token (unique)                   |
| `created_at` | when the user was added (naive UTC)                         |
| `disabled`   | a disabled user's token is refused                          |
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa

from connectors.queue.schema import desk_users
from connectors.queue.store import QueueStore
from connectors.queue.values import require_id
from models.clock import now_or

__all__ = ["ROLES", "DeskUser", "DeskUserError", "DeskUsers", "desk_users", "hash_token"]

Role = Literal["agent", "manager"]
ROLES: tuple[str, ...] = ("agent", "manager")

#: Tokens carry this prefix so that they are recognisable in secret scanners and config files.
TOKEN_PREFIX = "rdk_"

class DeskUserError(ValueError):
    """A desk user cannot be created or changed (unknown role, duplicate or unknown id)."""


@dataclass(frozen=True)
class DeskUser:
    """An authenticated person: who they are, their role and their team."""

    user_id: str
    name: str
    role: Role
    team: str
    created_at: datetime
    disabled: bool
    token_hash: str

    @property
    def is_manager(self) -> bool:
        return self.role == "manager"

    @property
    def session_stamp(self) -> str:
        """A short fingerprint of the current token: a browser session stores it and is ended
        when the token is reissued. It reveals nothing usable about the token."""
        return hashlib.sha256(f"session:{self.token_hash}".encode()).hexdigest()[:16]


def hash_token(token: str) -> str:
    """The stored form of a token: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _user(row: sa.RowMapping) -> DeskUser:
    return DeskUser(user_id=row["user_id"], name=row["name"], role=row["role"], team=row["team"],
                    created_at=row["created_at"], disabled=bool(row["disabled"]), token_hash=row["token_hash"])


class DeskUsers:
    """The desk's users in the queue database (any SQLAlchemy URL, or an open `QueueStore`,
    whose connection pool is then shared). The database must be migrated (`QueueStore.migrate()`)."""

    def __init__(self, queue: str | QueueStore) -> None:
        self._owns_store = isinstance(queue, str)
        self.store = QueueStore(queue) if isinstance(queue, str) else queue

    def close(self) -> None:
        if self._owns_store:
            self.store.close()

    def create_user(self, user_id: str, *, name: str, role: str, team: str,
                    now: datetime | None = None) -> tuple[DeskUser, str]:
        """Add a user; returns the user and their first token (shown once, never stored)."""
        user_id = user_id.strip() if isinstance(user_id, str) else ""
        if not user_id:
            raise DeskUserError("a desk user needs a non-empty user id (their member id in the policy)")
        if role not in ROLES:
            raise DeskUserError(f"unknown role {role!r} for {user_id}; expected one of: {', '.join(ROLES)}")
        if not team or not team.strip():
            raise DeskUserError(f"desk user {user_id} needs a team")
        try:  # ids and names as every other value people type (connectors.queue.values)
            user_id = require_id(user_id, "actor", label="user id")
            team = require_id(team, "team")
            name = require_id(name, "name") if isinstance(name, str) and name.strip() else user_id
        except ValueError as exc:
            raise DeskUserError(str(exc)) from None
        token = _new_token()
        values = {"user_id": user_id, "name": name, "role": role, "team": team,
                  "token_hash": hash_token(token), "created_at": now_or(now), "disabled": False}
        with self.store.transaction() as conn:
            if conn.execute(sa.select(desk_users.c.user_id).where(desk_users.c.user_id == user_id)).first():
                raise DeskUserError(f"desk user {user_id} already exists; issue them a new token instead")
            conn.execute(desk_users.insert().values(**values))
        return DeskUser(**values), token

    def issue_token(self, user_id: str) -> str:
        """Replace a user's token with a new one and return it; the old token stops working."""
        token = _new_token()
        with self.store.transaction() as conn:
            result = conn.execute(desk_users.update().where(desk_users.c.user_id == user_id)
                                  .values(token_hash=hash_token(token)))
            if result.rowcount != 1:
                raise DeskUserError(f"no desk user {user_id!r}")
        return token

    def set_disabled(self, user_id: str, disabled: bool = True) -> None:
        """Disable (or re-enable) a user: a disabled user's token and sessions are refused."""
        with self.store.transaction() as conn:
            result = conn.execute(desk_users.update().where(desk_users.c.user_id == user_id)
                                  .values(disabled=disabled))
            if result.rowcount != 1:
                raise DeskUserError(f"no desk user {user_id!r}")

    def verify_token(self, token: str | None) -> DeskUser | None:
        """The enabled user holding `token`, or None for a missing, unknown or disabled one."""
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 256:
            return None
        presented = hash_token(token)
        with self.store.reading() as conn:
            row = conn.execute(sa.select(desk_users).where(desk_users.c.token_hash == presented)).mappings().first()
        if row is None or not hmac.compare_digest(row["token_hash"], presented) or row["disabled"]:
            return None
        return _user(row)

    def get(self, user_id: str) -> DeskUser | None:
        """The user with this id (enabled or not), or None."""
        with self.store.reading() as conn:
            row = conn.execute(sa.select(desk_users).where(desk_users.c.user_id == user_id)).mappings().first()
        return None if row is None else _user(row)

    def list(self) -> list[DeskUser]:
        """Every user, by id."""
        with self.store.reading() as conn:
            rows = conn.execute(sa.select(desk_users).order_by(desk_users.c.user_id)).mappings().all()
        return [_user(r) for r in rows]


"""Who may do what on the rescue desk: authentication, CSRF and the role rules.

- **API**: every `/api/v1` request carries `Authorization: Bearer <token>`; a missing, unknown
  or disabled token gets 401 with no data.
- **Browser**: the sign-in form takes the token once and opens a signed session cookie
  (HttpOnly, SameSite=Lax) holding the user id and a fingerprint of their token, so reissuing
  a token or disabling the user ends their sessions. Pages without a session redirect to
  `/login`.
- **CSRF**: each session has a random token, rendered as a hidden field in every form and
  checked (constant-time) on every form POST, the sign-in form included.
- **Roles**: everybody reads the whole queue. Agents act on cases of their own team or
  assigned to them, hand off within their own team, and cannot hand a case to a person who is
  at capacity; managers act on every case, reassign across teams and may assign beyond a
  member's capacity (the policy's capacity is a routing limit; a manager's decision overrides it).

- **Throttling**: after `MAX_FAILED_SIGN_INS` wrong tokens from one client within
  `FAILED_WINDOW_SECONDS`, further attempts from it get 429 (with Retry-After) until the window
  has passed, whether the token was right or not; a right token does not reset the count.
- **Tokens are never logged and never put in URLs**: they travel in a header or a POST body
  only. A request whose query string carries a token-like parameter (`token`, `access_token`,
  `api_key`, ...) is refused with 400, and the access log shows such values as `[redacted]`.
- **Secure cookie**: over HTTPS (the request's scheme, as the server sees it, e.g. behind a
  proxy that sets X-Forwarded-Proto, trusted with `rescue desk serve --behind-proxy IPS`), the
  session cookie is marked `Secure`.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from connectors.queue.users import DeskUser, DeskUsers

SESSION_USER = "user_id"
SESSION_STAMP = "stamp"
SESSION_CSRF = "csrf"
CSRF_FIELD = "csrf_token"


#: Wrong tokens one client may send within the window before it is throttled.
MAX_FAILED_SIGN_INS = 10
FAILED_WINDOW_SECONDS = 300
#: Query parameters that look like credentials: refused, and redacted from the access log.
TOKEN_QUERY_PARAMS = re.compile(r"(?i)^(token|access_token|auth|auth_token|api_key|apikey|key|password|secret)$")
_TOKEN_IN_QUERY = re.compile(r"(?i)([?&](?:token|access_token|auth|auth_token|api_key|apikey|key|password|secret)=)[^&\s]*")


class NotAuthenticated(Exception):
    """No valid credentials on the request."""


class TooManyAttempts(Exception):
    """A client sent too many wrong tokens; `retry_after` seconds until it may try again."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many wrong tokens from this address; try again in {retry_after} s")
        self.retry_after = retry_after


class FailedSignIns:
    """Wrong tokens per client in a sliding window (in memory: per desk process)."""

    def __init__(self, limit: int = MAX_FAILED_SIGN_INS, window: float = FAILED_WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def check(self, client: str) -> None:
        """TooManyAttempts when `client` is throttled now."""
        with self._lock:
            now = self.clock()
            failures = self._recent(client, now)
            if len(failures) >= self.limit:
                raise TooManyAttempts(max(1, int(failures[0] + self.window - now + 0.999)))

    def failed(self, client: str) -> None:
        with self._lock:
            now = self.clock()
            self._recent(client, now).append(now)
            if len(self._failures) > 10_000:  # forget idle clients rather than grow without bound
                for key in [k for k, v in self._failures.items() if not v]:
                    del self._failures[key]


def verify_or_throttle(users: DeskUsers, attempts: FailedSignIns, client: str, token: str | None) -> DeskUser | None:
    """The user of `token`, None for a wrong one (counted); TooManyAttempts when throttled."""
    attempts.check(client)
    user = users.verify_token(token)
    if user is None and token:
        attempts.failed(client)
    return user


def token_in_query(query_params: Mapping[str, Any]) -> str | None:
    """The name of a credential-like query parameter, if the request has one."""
    return next((name for name in query_params if TOKEN_QUERY_PARAMS.match(name)), None)


class RedactQueryTokens(logging.Filter):
    """Shows credential-like query values as [redacted] in uvicorn's access log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN_IN_QUERY.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                                for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = _TOKEN_IN_QUERY.sub(r"\1[redacted]", record.msg)
        return True


class PermissionDenied(Exception):
    """The user is authenticated but their role does not allow this; the message says why."""


class CsrfError(Exception):
    """A form POST without the session's CSRF token."""


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def session_user(session: Mapping[str, Any], users: DeskUsers) -> DeskUser | None:
    """The user a session cookie is signed in as, if they still exist, are enabled and hold
    the token the session was opened with."""
    user_id, stamp = session.get(SESSION_USER), session.get(SESSION_STAMP)
    if not isinstance(user_id, str) or not isinstance(stamp, str):
        return None
    user = users.get(user_id)
    if user is None or user.disabled or not hmac.compare_digest(user.session_stamp, stamp):
        return None
    return user


def sign_in(session: dict[str, Any], user: DeskUser) -> None:
    """Start a fresh session for `user` (a new CSRF token: nothing from before sign-in survives)."""
    session.clear()
    session[SESSION_USER] = user.user_id
    session[SESSION_STAMP] = user.session_stamp
    session[SESSION_CSRF] = secrets.token_urlsafe(32)


def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token, created on first use (the sign-in page needs one too)."""
    token = session.get(SESSION_CSRF)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_CSRF] = token
    return token


def check_csrf(session: Mapping[str, Any], submitted: str | None) -> None:
    expected = session.get(SESSION_CSRF)
    if not isinstance(expected, str) or not submitted or not hmac.compare_digest(expected, submitted):
        raise CsrfError("the form has expired or did not come from this desk; reload the page and try again")


def can_manage(user: DeskUser) -> bool:
    """Manager-only: the manager view, reassigning across teams, opening an overflow account's case."""
    return user.is_manager


def can_act(user: DeskUser, case: Mapping[str, Any]) -> bool:
    """Agents work cases of their own team or assigned to them; managers work every case."""
    return can_manage(user) or case["team"] == user.team or case.get("assignee") == user.user_id


def permissions(user: DeskUser, case: Mapping[str, Any] | None = None) -> dict[str, bool]:
    """What `user` may do (on `case`), for the pages to show only those forms: the same rules
    the checks below enforce."""
    acts = case is not None and can_act(user, case)
    return {"act": acts, "hand_off_across_teams": acts and can_manage(user), "manage": can_manage(user),
            "open_overflow": can_manage(user)}


def require_manager(user: DeskUser, what: str) -> None:
    if not can_manage(user):
        raise PermissionDenied(f"only managers can {what}; you are signed in as {user.user_id} ({user.role})")


def check_can_act(user: DeskUser, case: Mapping[str, Any]) -> None:
    """Agents work cases of their own team or assigned to them; managers work every case."""
    if can_act(user, case):
        return
    raise PermissionDenied(
        f"case {case['case_id']} belongs to team {case['team']}; agents work cases of their own team "
        f"({user.team}) or assigned to them; ask a manager to move it"
    )


def check_can_hand_off(user: DeskUser, case: Mapping[str, Any], to_team: str) -> None:
    """Only managers reassign across teams; agents hand off within their own team."""
    check_can_act(user, case)
    if can_manage(user):
        return
    if case["team"] != user.team or to_team != user.team:
        raise PermissionDenied(
            f"only managers reassign cases across teams: agents hand off within their own team ({user.team}); "
            f"ask a manager to move case {case['case_id']} from {case['team']} to {to_team}"
        )

"""One retry policy for the HTTP APIs the connectors call themselves (Salesforce). The landing
sources (`connectors.landing`) retry with dlt's requests client instead.

What is retried, and how long to wait:

- **429 Too Many Requests** and **503 Service Unavailable** that carry a ``Retry-After`` header:
  wait exactly what the server asked (seconds or an HTTP date), capped by
  `RetryPolicy.max_retry_after` so a misbehaving server cannot park a run for hours;
- **other 5xx answers, timeouts and dropped connections**: exponential backoff with jitter
  (``base * 2**(attempt-1)`` capped at `RetryPolicy.max_delay`, half of it fixed and half
  random, so many workers retrying together spread out instead of hammering the API in step);
- anything else (4xx validation errors, authentication failures) is raised at once: retrying a
  request the server rejected on its merits only burns the API quota.

After `RetryPolicy.max_attempts` attempts, `RetryExhaustedError` is raised. Its message names the
endpoint (method and path, never the query string, headers or body, so no credential can leak
through it) and the last error. Retrying only ever repeats the *same* request, so callers must
make writes idempotent (the Salesforce writer upserts on external ids) before wrapping them.

Transient HTTP answers become exceptions in one place, `raise_for_transient`, installed on a
`requests.Session` as a response hook by `install_transient_hook`. Libraries that call
``session.request`` themselves (simple-salesforce) then surface 429/5xx as `TransientHTTPError`
with the parsed ``Retry-After`` instead of their own generic errors.

Sleeping and randomness are injectable (`Retrier(sleep=..., rng=...)`), so tests assert the
exact waits without waiting.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception, stop_after_attempt

log = logging.getLogger(__name__)

T = TypeVar("T")

#: HTTP statuses that mean "try again later" rather than "your request is wrong".
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


class TransientHTTPError(RuntimeError):
    """A retryable HTTP answer (429 or 5xx). Carries the server's Retry-After, if any."""

    def __init__(self, endpoint: str, status: int, retry_after: float | None = None) -> None:
        self.endpoint = endpoint
        self.status = status
        self.retry_after = retry_after
        wait = f", Retry-After {retry_after:g}s" if retry_after is not None else ""
        super().__init__(f"{endpoint} answered HTTP {status}{wait}")


class RetryExhaustedError(RuntimeError):
    """A call still failed after the policy's last attempt. The message never holds a secret."""

    def __init__(self, endpoint: str, attempts: int, last_error: BaseException) -> None:
        self.endpoint = endpoint
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(f"{endpoint}: gave up after {attempts} attempt(s); last error: {describe_error(last_error)}")


def endpoint_of(method: str, url: str) -> str:
    """``"PATCH /services/data/v59.0/sobjects/Task/Rescue_Key__c/k1"``: method and path only.

    The query string is dropped (it may carry cursors or search terms), and so are user info
    and fragments; headers, where credentials travel, are never part of it.
    """
    parts = urlsplit(url)
    return f"{method.upper()} {parts.path or '/'}"


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (and, for URLs, their path and query) replaced by [redacted]."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
        if "://" in secret:
            tail = secret.split("://", 1)[1]
            path = tail.partition("/")[2]
            if path:
                text = text.replace("/" + path, "/[redacted]")
    return text


def describe_error(exc: BaseException) -> str:
    """A short, secret-free description of a transport or HTTP error.

    `requests` exceptions embed the full URL (with its query string) and sometimes the request;
    only the exception type is kept for those. Our own errors already have clean messages.
    """
    if isinstance(exc, (TransientHTTPError, RetryExhaustedError)):
        return str(exc)
    if isinstance(exc, requests.Timeout):
        return f"timeout ({type(exc).__name__})"
    if isinstance(exc, requests.ConnectionError):
        return f"connection failed ({type(exc).__name__})"
    return type(exc).__name__


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date. None if
    absent or unreadable; never negative."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def raise_for_transient(response: requests.Response) -> None:
    """Raise `TransientHTTPError` when `response` is a retryable 429/5xx; do nothing otherwise."""
    if response.status_code in TRANSIENT_STATUSES:
        request = response.request
        endpoint = endpoint_of(request.method or "GET", request.url or response.url)
        raise TransientHTTPError(endpoint, response.status_code,
                                 parse_retry_after(response.headers.get("Retry-After")))


def install_transient_hook(session: requests.Session) -> requests.Session:
    """Make every response of `session` raise `TransientHTTPError` on 429/5xx. Idempotent."""
    hooks = session.hooks.setdefault("response", [])
    if _transient_hook not in hooks:
        hooks.append(_transient_hook)
    return session


def _transient_hook(response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
    raise_for_transient(response)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is worth retrying: a 429/5xx answer, a timeout or a dropped connection."""
    return isinstance(exc, (TransientHTTPError, requests.Timeout, requests.ConnectionError))


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry. The defaults ride out a few minutes of rate limiting or an outage
    blip; a longer outage is the outbox's business (it retries the item on a later run)."""

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("base_delay, max_delay and max_retry_after must be >= 0")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Wait after failed attempt number `attempt` (1-based) without a Retry-After:
        exponential, capped, half fixed and half jitter."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)

    def wait_for(self, exc: BaseException | None, attempt: int, rng: random.Random) -> float:
        """Wait after `exc` ended attempt `attempt`: the server's Retry-After when it gave one."""
        if isinstance(exc, TransientHTTPError) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_retry_after)
        return self.backoff(attempt, rng)


@dataclass
class RetryStats:
    """Counters of one `Retrier`, for run metadata and tests."""

    calls: int = 0
    retries: int = 0
    exhausted: int = 0
    slept_seconds: float = 0.0
    by_reason: dict[str, int] = field(default_factory=dict)


class Retrier:
    """Runs calls under a `RetryPolicy` (tenacity underneath).

    ``retrier.call("GET /api/v2/tickets", fn, *args)`` returns ``fn(*args)``, retrying transient
    failures; raises `RetryExhaustedError` when the attempts run out and re-raises any
    non-transient error unchanged.
    """

    def __init__(self, policy: RetryPolicy | None = None, *, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None, logger: logging.Logger | None = None) -> None:
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.logger = logger or log
        self.stats = RetryStats()

    def __repr__(self) -> str:
        return f"Retrier({self.policy!r})"

    def call(self, endpoint: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self.stats.calls += 1
        retrying = Retrying(
            stop=stop_after_attempt(self.policy.max_attempts),
            retry=retry_if_exception(is_transient),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(endpoint, state),
            reraise=False,
        )
        try:
            return retrying(fn, *args, **kwargs)
        except RetryError as exhausted:
            self.stats.exhausted += 1
            last = exhausted.last_attempt.exception()
            assert last is not None  # tenacity only gives up on a failed attempt
            raise RetryExhaustedError(endpoint, exhausted.last_attempt.attempt_number, last) from None

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return self.policy.wait_for(exc, state.attempt_number, self.rng)

    def _sleep(self, seconds: float) -> None:
        self.stats.slept_seconds += seconds
        self.sleep(seconds)

    def _log_retry(self, endpoint: str, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = f"HTTP {exc.status}" if isinstance(exc, TransientHTTPError) else type(exc).__name__
        self.stats.retries += 1
        self.stats.by_reason[reason] = self.stats.by_reason.get(reason, 0) + 1
        wait = state.next_action.sleep if state.next_action else 0.0
        self.logger.warning("%s failed (%s), attempt %d of %d; retrying in %.2fs", endpoint,
                            describe_error(exc) if exc else reason, state.attempt_number,
                            self.policy.max_attempts, wait)

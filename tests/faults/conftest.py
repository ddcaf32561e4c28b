"""The fault corpus: bad inputs and failing systems, each met with one clear line and nothing
written half-way.

Every case asserts the same contract (see `assert_clean_failure`): the message names the
problem in one line, the command exits non-zero (or the API answers 4xx), no Python traceback
reaches the user, and no secret appears in anything shown. Cases that touch storage run on
SQLite and PostgreSQL (the `queue_url` / `queue_store` fixtures of tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterable

SECRET_MARKERS: tuple[str, ...] = ("sk-test-secret-", "hunter2-", "Bearer s3cr3t")


def assert_clean_failure(output: str, *, names: Iterable[str] = (), exit_code: int | None = None,
                         secrets: Iterable[str] = SECRET_MARKERS) -> None:
    """`output` (what a user sees) is a failure told in words: no traceback, no secret, and it
    names every string in `names` (case-insensitive)."""
    text = output or ""
    assert "Traceback (most recent call last)" not in text, f"a traceback reached the user:\n{text[-2000:]}"
    lowered = text.lower()
    for name in names:
        assert name.lower() in lowered, f"the message does not name {name!r}:\n{text[-2000:]}"
    for secret in secrets:
        assert secret not in text, f"a secret ({secret[:6]}...) was shown:\n{text[-2000:]}"
    if exit_code is not None:
        assert exit_code != 0, "the command failed but exited 0"

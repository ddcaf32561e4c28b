"""The shared retry policy's reading of Retry-After (`connectors.http_retry`): seconds or an HTTP
date, anything else ignored, and a wait the server asks for capped by the policy."""

from __future__ import annotations

import random
from datetime import datetime, timezone

from connectors.http_retry import RetryPolicy, TransientHTTPError, parse_retry_after


def test_retry_after_is_read_as_seconds_or_a_date_and_capped():
    assert parse_retry_after("17") == 17.0
    assert parse_retry_after("Wed, 01 Jan 2025 00:01:00 GMT", now=datetime(2025, 1, 1, tzinfo=timezone.utc)) == 60.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    throttled = TransientHTTPError("GET /x", 429, retry_after=3600.0)
    assert RetryPolicy(max_retry_after=30).wait_for(throttled, 1, random.Random(0)) == 30
    assert RetryPolicy(max_retry_after=30).wait_for(TransientHTTPError("GET /x", 429, retry_after=7.0), 1,
                                                    random.Random(0)) == 7.0

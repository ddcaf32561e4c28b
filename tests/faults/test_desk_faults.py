"""Desk faults: credentials where they do not belong, guessing tokens, odd headers, plain HTTP
vs HTTPS. Each answer is a 4xx with one line and no data; nothing is written."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from pipelines.desk.auth import MAX_FAILED_SIGN_INS, FailedSignIns, RedactQueryTokens, TooManyAttempts
from tests.faults.conftest import assert_clean_failure
from tests.integration.desk_fixtures import ACCOUNTS, DeskEnv, desk_env  # noqa: F401


@pytest.fixture
def client(desk_env: DeskEnv) -> Iterator[TestClient]:  # noqa: F811
    with TestClient(desk_env.app) as test_client:
        yield test_client


def _no_account_data(text: str) -> None:
    for account_id, spec in ACCOUNTS.items():
        assert account_id not in text and spec["name"] not in text


def _counts(env: DeskEnv) -> tuple[int, int]:
    events = env.store.audit_events()
    return len(events), len(env.store.outbox())


@pytest.mark.parametrize("path", ["/api/v1/cases", "/queue", "/login"])
@pytest.mark.parametrize("param", ["token", "access_token", "API_KEY"])
def test_a_token_in_the_query_string_is_refused_and_never_echoed(client, desk_env, path, param) -> None:  # noqa: F811
    secret = desk_env.tokens["rs_lead_maya"]
    response = client.get(f"{path}?{param}={secret}", follow_redirects=False)
    assert response.status_code == 400
    assert_clean_failure(response.text, names=["credentials do not belong in a url", param], secrets=[secret])
    _no_account_data(response.text)


def test_the_access_log_shows_query_tokens_redacted() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/api/v1/cases?limit=5&token=s3cr3t-value&x=1", "1.1", 400),
                               None)
    assert RedactQueryTokens().filter(record)
    line = record.getMessage()
    assert "s3cr3t-value" not in line and "token=[redacted]" in line and "limit=5" in line and "x=1" in line


def test_wrong_tokens_are_throttled_per_client_then_the_window_passes() -> None:
    now = [1000.0]
    attempts = FailedSignIns(limit=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        attempts.check("10.0.0.1")
        attempts.failed("10.0.0.1")
    with pytest.raises(TooManyAttempts) as throttled:
        attempts.check("10.0.0.1")
    assert throttled.value.retry_after == 60 and "try again in 60 s" in str(throttled.value)
    attempts.check("10.0.0.2")  # another client is not affected
    now[0] += 61
    attempts.check("10.0.0.1")


def test_guessing_api_tokens_gets_429_even_for_the_right_token_until_the_window_passes(client, desk_env) -> None:  # noqa: F811
    before = _counts(desk_env)
    for i in range(MAX_FAILED_SIGN_INS):
        wrong = client.get("/api/v1/cases", headers={"Authorization": f"Bearer guess-{i}"})
        assert wrong.status_code == 401
    right = client.get("/api/v1/cases", headers={"Authorization": f"Bearer {desk_env.tokens['rs_lead_maya']}"})
    assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0
    assert_clean_failure(right.text, names=["too many wrong tokens"], secrets=[desk_env.tokens["rs_lead_maya"]])
    _no_account_data(right.text)
    assert _counts(desk_env) == before


def test_guessing_sign_in_tokens_gets_429_on_the_form(client, desk_env) -> None:  # noqa: F811
    page = client.get("/login")
    csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    for i in range(MAX_FAILED_SIGN_INS):
        assert client.post("/login", data={"token": f"guess-{i}", "csrf_token": csrf}).status_code == 401
    throttled = client.post("/login", data={"token": desk_env.tokens["csm_amara"], "csrf_token": csrf})
    assert throttled.status_code == 429 and "too many wrong tokens" in throttled.text
    queue = client.get("/queue", follow_redirects=False)  # the throttled sign-in opened no session
    assert queue.status_code == 303 and queue.headers["location"].startswith("/login")


@pytest.mark.parametrize("header", [
    "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer\tx", "Token abc", "Bearer " + "x" * 100_000,
    "Bearer tok%00en", "Bearer ' OR 1=1 --",
])
def test_odd_authorization_headers_get_401_and_no_data(client, header) -> None:
    response = client.get("/api/v1/cases", headers={"Authorization": header})
    assert response.status_code == 401
    assert_clean_failure(response.text, names=["token"])
    _no_account_data(response.text)


def _sign_in(client: TestClient, token: str):
    page = client.get("/login")
    csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return client.post("/login", data={"token": token, "csrf_token": csrf}, follow_redirects=False)


def test_the_session_cookie_is_secure_over_https(desk_env) -> None:  # noqa: F811
    with TestClient(desk_env.app, base_url="https://desk.example.com") as https:
        signed_in = _sign_in(https, desk_env.tokens["csm_amara"])
    assert signed_in.status_code == 303
    cookie = signed_in.headers["set-cookie"]
    assert "rescue_desk=" in cookie and "secure" in cookie.lower() and "httponly" in cookie.lower()


def test_the_session_cookie_over_plain_http_is_not_marked_secure(desk_env) -> None:  # noqa: F811
    with TestClient(desk_env.app) as http:  # local use (make desk) is plain HTTP on 127.0.0.1
        signed_in = _sign_in(http, desk_env.tokens["csm_amara"])
    assert signed_in.status_code == 303 and "secure" not in signed_in.headers["set-cookie"].lower()


@pytest.mark.parametrize("args, proxy_headers, allowed", [
    ([], False, "127.0.0.1"),
    (["--behind-proxy", "10.0.0.5,10.0.0.6"], True, "10.0.0.5,10.0.0.6"),
])
def test_desk_serve_trusts_forwarded_headers_only_from_a_named_proxy(tmp_path, monkeypatch, args, proxy_headers,
                                                                     allowed) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda _app, **kwargs: seen.update(kwargs))
    result = CliRunner().invoke(app, ["desk", "serve", "--queue-url", f"sqlite:///{tmp_path / 'q.db'}", *args])
    assert result.exit_code == 0, result.output
    assert (seen["proxy_headers"], seen["forwarded_allow_ips"]) == (proxy_headers, allowed)

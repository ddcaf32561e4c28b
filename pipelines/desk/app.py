"""The rescue desk's ASGI application: pages, JSON API, access control and error handling.

    app = create_app("sqlite:///.rescue/queue.db", "policies/default.yaml", secret_key="...")

Routes:

| path                         | what                                                          |
|------------------------------|---------------------------------------------------------------|
| `/login`, `/logout`          | sign in with a desk token (signed session cookie), sign out   |
| `/queue`                     | my cases / my team / all, with filters, SLA due and time left |
| `/cases/{id}`                | the context package, the audit trail and the action forms     |
| `/cases/{id}/{action}`       | claim, acknowledge, snooze, play, handoff, resolve (POST)     |
| `/manager`                   | team load vs capacity, SLA attainment, cases near breach      |
| `/static/desk.js`            | the reader's time zone, lists that refresh themselves         |
| `/policy`                    | teams, members and escalation paths, and the policy diagram   |
| `/api/v1/...`                | the JSON API (bearer token), described at `/openapi.json`     |

Everything but `/login`, `/static` and `/openapi.json` (which hold no account data) requires
authentication. Errors are `{"error": "..."}` JSON under `/api`, an error page elsewhere; an
unauthenticated page request is redirected to `/login`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from connectors.queue.users import DeskUsers
from connectors.queue.store import QueueStore
from models.policy.loader import load_policy
from models.policy.schema import Policy
from pipelines.desk import api, pages
from pipelines.desk.auth import (
    FailedSignIns,
    NotAuthenticated,
    RedactQueryTokens,
    TooManyAttempts,
    session_user,
    token_in_query,
)
from pipelines.desk.errors import STATUS_BY_ERROR, error_status
from pipelines.desk.service import Desk

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "rescue_desk"
SESSION_MAX_AGE = 12 * 3600
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def create_app(queue_url: str, policy_path: str | Path, *, secret_key: str | None = None,
               refresh_seconds: int = 30) -> FastAPI:
    """The desk over the queue at `queue_url` (migrated on start) and the policy at `policy_path`.

    `secret_key` signs session cookies; without one a random key is made, so sessions end when
    the process restarts (set one, e.g. from `RESCUE_DESK_SECRET`, to keep them).
    `refresh_seconds` is how often the queue and manager pages refresh their list in place.
    """
    policy = load_policy(policy_path)
    store = QueueStore(queue_url, policy=policy)
    store.migrate()
    desk = Desk(store, DeskUsers(store), policy)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(
        title="Rescue desk API",
        version="1",
        summary="Work the churn-rescue queue: list, read, claim, acknowledge, snooze, log plays, hand off, resolve.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.desk = desk
    app.state.refresh_seconds = refresh_seconds
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    app.state.policy_diagram = _policy_diagram(policy)
    app.state.failed_sign_ins = FailedSignIns()
    access_log = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQueryTokens) for f in access_log.filters):
        access_log.addFilter(RedactQueryTokens())
    app.add_middleware(SessionMiddleware, secret_key=secret_key or secrets.token_urlsafe(32),
                       session_cookie=SESSION_COOKIE, max_age=SESSION_MAX_AGE, same_site="lax")

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        leaked = token_in_query(request.query_params)
        if leaked is not None:
            message = (f"credentials do not belong in a URL (query parameter {leaked!r}): send the token in the "
                       "Authorization header, or sign in with the form")
            response = _json_error(400, message) if _is_api(request) else Response(message, status_code=400)
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.scheme == "https":  # the session cookie only ever travels encrypted
            raw = response.raw_headers
            for i, (key, val) in enumerate(raw):
                if key.lower() == b"set-cookie" and b"secure" not in val.lower():
                    raw[i] = (key, val + b"; Secure")
        return response

    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/policy/diagram.svg", include_in_schema=False)
    def policy_diagram(request: Request, user: pages.User) -> Response:
        diagram = request.app.state.policy_diagram
        if diagram is None:
            return pages.render(request, "error.html", user, 404, title="No diagram",
                                message="The policy diagram is not available in this installation.")
        return Response(diagram, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    _install_error_handlers(app)
    return app


def _policy_diagram(policy: Policy) -> bytes | None:
    """The policy drawn as swimlanes (SVG), when the diagram module is installed with the desk."""
    try:
        from models.policy.diagram import render_policy_diagram
    except ImportError:
        return None
    return render_policy_diagram(policy, fmt="svg")


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _json_error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="rescue-desk"'} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _page_error(request: Request, status: int, title: str, message: str) -> Response:
    user = session_user(request.session, request.app.state.desk.users) if "session" in request.scope else None
    if user is None:  # nothing about the desk's data is shown to an anonymous visitor
        return pages.render(request, "error.html", None, status, title=title,
                            message="Sign in to use the rescue desk." if status != 404 else "Not found.")
    return pages.render(request, "error.html", user, status, title=title, message=message)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotAuthenticated)
    async def not_authenticated(request: Request, exc: NotAuthenticated) -> Response:
        if _is_api(request):
            return _json_error(401, "authentication required: send Authorization: Bearer <token>")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(TooManyAttempts)
    async def throttled(request: Request, exc: TooManyAttempts) -> Response:
        headers = {"Retry-After": str(exc.retry_after)}
        if _is_api(request):
            return JSONResponse({"error": str(exc)}, status_code=429, headers=headers)
        response = pages.render(request, "login.html", None, 429, next="/queue", error=str(exc))
        response.headers.update(headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
            if err.get("type") == "value_error" and "error" in (err.get("ctx") or {}):
                problems.append(str(err["ctx"]["error"]))  # the queue's own rule, naming the field
            else:
                problems.append(f"{where}: {err.get('msg', 'invalid')}")
        message = "; ".join(problems) or "invalid request"
        if _is_api(request):
            return _json_error(400, message)
        return _page_error(request, 400, "Bad request", message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if _is_api(request):
            return _json_error(exc.status_code, message)
        return _page_error(request, exc.status_code, message, message)

    async def desk_error(request: Request, exc: Exception) -> Response:
        status = error_status(exc)
        if status >= 500:
            log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
            message = "internal error; the desk logged it"
        else:
            message = str(exc)
        if _is_api(request):
            return _json_error(status, message)
        title = {403: "Not allowed", 404: "Not found", 409: "Conflict"}.get(status, "Error")
        return _page_error(request, status, title, message)

    for kind, _status in STATUS_BY_ERROR:
        if kind is not NotAuthenticated:
            app.add_exception_handler(kind, desk_error)
    app.add_exception_handler(Exception, desk_error)

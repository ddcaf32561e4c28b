"""The desk's server-rendered pages: sign-in, queue, case, manager view and policy.

Times are shown in the reader's zone: `?tz=Europe/Berlin` on the queue and manager pages, else
the browser's zone (the `desk_tz` cookie `/static/desk.js` sets from `Intl`), else UTC. The queue
and manager pages refresh their list every `refresh_seconds` (30 by default) in place, keeping
the filters (they are in the URL) and anything being typed (see `static/desk.js`).

Forms post back to the server (no JavaScript needed); each POST carries the session's CSRF
token, and a successful action redirects back to the case page (post/redirect/get) with a
one-line confirmation. A refused action re-renders the case page with the reason and the
matching status code (403, 404, 409, 400).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from connectors.queue.users import DeskUser
from models.cases.lifecycle import STATUSES
from models.cases.sla_text import DEFAULT_TZ, TimeZoneError, zone
from models.clock import utcnow
from pipelines.desk import present
from pipelines.desk.auth import (
    CSRF_FIELD,
    CsrfError,
    NotAuthenticated,
    check_csrf,
    csrf_token,
    permissions,
    require_manager,
    session_user,
    verify_or_throttle,
    sign_in,
)
from pipelines.desk.errors import error_status
from pipelines.desk.service import STATUS_FILTERS, Desk, QueueFilters

FLASH = "flash"
#: The reader's time zone, set by /static/desk.js from the browser (Intl); `?tz=` overrides it.
TZ_COOKIE = "desk_tz"
SCOPES = ("mine", "team", "all")
PRIORITIES = ("P1", "P2", "P3", "P4")
OUTCOMES = (("saved", "Saved"), ("churned", "Churned"), ("no_action", "Closed, no action needed"))

router = APIRouter(include_in_schema=False)


def page_user(request: Request) -> DeskUser:
    """The signed-in user of a page request; pages without one redirect to /login."""
    user = session_user(request.session, request.app.state.desk.users)
    if user is None:
        raise NotAuthenticated("sign in to use the desk")
    return user


User = Annotated[DeskUser, Depends(page_user)]
FormText = Annotated[str, Form(max_length=4000)]


def _desk(request: Request) -> Desk:
    return request.app.state.desk


def _templates(request: Request) -> Jinja2Templates:
    return request.app.state.templates


def render(request: Request, name: str, user: DeskUser | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page with what every page needs (user, CSRF token, flash message, formatters)."""
    flash = request.session.pop(FLASH, None) if user is not None else None
    case = context.get("case")
    response = _templates(request).TemplateResponse(request, name, {
        "user": user, "csrf": csrf_token(request.session), "csrf_field": CSRF_FIELD, "flash": flash,
        "fmt": present, "perms": permissions(user, case if isinstance(case, dict) else None) if user else {},
        **context,
    }, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def viewer_tz(request: Request, asked: str = "") -> str:
    """The zone a page shows times in: `?tz=` (refused when unknown, see `queue_page`), else the
    browser's zone from the `desk_tz` cookie (ignored when unknown), else UTC."""
    if asked:
        return zone(asked).key
    try:
        return zone(request.cookies.get(TZ_COOKIE) or DEFAULT_TZ).key
    except TimeZoneError:
        return DEFAULT_TZ


def _refresh_seconds(request: Request) -> int:
    """How often the queue and manager pages refresh their list (`create_app(refresh_seconds=)`)."""
    return int(getattr(request.app.state, "refresh_seconds", 30))


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _safe_next(target: str | None) -> str:
    """Only same-site paths are followed after sign-in (no open redirects)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/queue"


# -- sign in / out ---------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    if session_user(request.session, _desk(request).users) is not None:
        return _redirect(_safe_next(next))
    return render(request, "login.html", None, next=_safe_next(next), error=None)


@router.post("/login")
def login(request: Request, token: FormText = "", csrf_token: FormText = "", next: FormText = "/queue") -> Response:
    try:
        check_csrf(request.session, csrf_token)
    except CsrfError as exc:
        return render(request, "login.html", None, 403, next=_safe_next(next), error=str(exc))
    user = verify_or_throttle(_desk(request).users, request.app.state.failed_sign_ins,
                              request.client.host if request.client else "unknown", token.strip())
    if user is None:
        return render(request, "login.html", None, 401, next=_safe_next(next),
                      error="That token is not valid (unknown, replaced or disabled). Ask a desk admin for a new one.")
    sign_in(request.session, user)
    return _redirect(_safe_next(next))


@router.post("/logout")
def logout(request: Request, csrf_token: FormText = "") -> Response:
    check_csrf(request.session, csrf_token)
    request.session.clear()
    return _redirect("/login")


# -- reading ---------------------------------------------------------------------------------


@router.get("/")
def home(user: User) -> Response:
    return _redirect("/queue")


@router.get("/queue")
def queue_page(request: Request, user: User, scope: str = "mine", priority: str = "", status: str = "active",
               breaching: str = "", segment: str = "", tz: str = "") -> Response:
    problems = []
    try:
        where = viewer_tz(request, tz)
    except TimeZoneError as exc:
        problems.append(str(exc))
    if scope not in SCOPES:
        problems.append(f"unknown view {scope!r}; expected one of: {', '.join(SCOPES)}")
    if priority and priority not in PRIORITIES:
        problems.append(f"unknown priority {priority!r}; expected one of: {', '.join(PRIORITIES)}")
    if status not in STATUS_FILTERS:
        problems.append(f"unknown status {status!r}; expected one of: {', '.join(STATUS_FILTERS)}")
    if breaching not in ("", "yes", "no"):
        problems.append(f"unknown breaching filter {breaching!r}; expected yes or no")
    if problems:
        return render(request, "error.html", user, 400, title="Bad filter", message="; ".join(problems))
    filters = QueueFilters(scope=scope, priority=priority or None, status=status,  # type: ignore[arg-type]
                           breaching={"yes": True, "no": False}.get(breaching), segment=segment or None)
    rows = _desk(request).queue(user, filters, utcnow(), tz=where)
    return render(request, "queue.html", user, rows=rows, filters=filters, breaching=breaching, tz=where,
                  tz_asked=tz, refresh_seconds=_refresh_seconds(request),
                  scopes=SCOPES, priorities=PRIORITIES, statuses=("active", "all", *STATUSES),
                  segments=("enterprise", "mid_market", "smb"))


def _case_page(request: Request, user: DeskUser, case_id: str, *, status_code: int = 200,
               error: str | None = None) -> HTMLResponse:
    desk = _desk(request)
    case = desk.case(case_id, utcnow(), tz=viewer_tz(request))
    usage = (case["context"].get("usage_trend") or {})
    health = (case["context"].get("health") or {})
    return render(request, "case.html", user, status_code, case=case, error=error,
                  sparkline=present.sparkline_svg(usage.get("weekly_active_users") or []),
                  bars=present.health_bars(health.get("components"), case["churn_risk"]),
                  targets=desk.handoff_targets(user), outcomes=OUTCOMES, plays=desk.play_choices(case["team"]))


@router.get("/cases/{case_id}")
def case_page(request: Request, user: User, case_id: str) -> Response:
    return _case_page(request, user, case_id)


def _manager_page(request: Request, user: DeskUser, tz: str = "", *, status_code: int = 200,
                  error: str | None = None) -> HTMLResponse:
    require_manager(user, "see the manager view")
    try:
        where = viewer_tz(request, tz)
    except TimeZoneError as exc:
        return render(request, "error.html", user, 400, title="Bad time zone", message=str(exc))
    desk = _desk(request)
    return render(request, "manager.html", user, status_code, view=desk.manager_view(utcnow(), tz=where), tz=where,
                  refresh_seconds=_refresh_seconds(request), overflow=desk.overflow(user), error=error)


@router.get("/manager")
def manager_page(request: Request, user: User, tz: str = "") -> Response:
    return _manager_page(request, user, tz)


@router.post("/overflow/{account_id}/open")
def open_overflow(request: Request, user: User, account_id: str, csrf_token: FormText = "") -> Response:
    """Open the case of an overflow account (managers); on to the case, or back with the reason."""
    check_csrf(request.session, csrf_token)
    try:
        message, case_id, _ = _desk(request).open_overflow(user, account_id)
    except Exception as exc:  # noqa: BLE001 - a refusal is shown on the manager page with its status
        status = error_status(exc)
        if status >= 500 or status == 403:
            raise
        return _manager_page(request, user, status_code=status, error=str(exc))
    request.session[FLASH] = message
    return _redirect(f"/cases/{case_id}")


@router.get("/policy")
def policy_page(request: Request, user: User) -> Response:
    desk = _desk(request)
    return render(request, "policy.html", user, policy=desk.policy, diagram=request.app.state.policy_diagram,
                  load=desk.member_load())


# -- acting ----------------------------------------------------------------------------------


def _act(request: Request, user: DeskUser, case_id: str, submitted_csrf: str, action: Callable[[], str]) -> Response:
    """Check the CSRF token, run the action, and go back to the case page (or show why not)."""
    check_csrf(request.session, submitted_csrf)
    try:
        message = action()
    except Exception as exc:  # noqa: BLE001 - every refusal is shown on the page with its status
        status = error_status(exc)
        if status >= 500 or status == 404:
            raise
        return _case_page(request, user, case_id, status_code=status, error=str(exc))
    request.session[FLASH] = message
    return _redirect(f"/cases/{case_id}")


@router.post("/cases/{case_id}/claim")
def claim(request: Request, user: User, case_id: str, csrf_token: FormText = "") -> Response:
    return _act(request, user, case_id, csrf_token, lambda: _desk(request).claim(user, case_id))


@router.post("/cases/{case_id}/acknowledge")
def acknowledge(request: Request, user: User, case_id: str, csrf_token: FormText = "", reason: FormText = "") -> Response:
    return _act(request, user, case_id, csrf_token, lambda: _desk(request).acknowledge(user, case_id, reason))


@router.post("/cases/{case_id}/snooze")
def snooze(request: Request, user: User, case_id: str, csrf_token: FormText = "", until: FormText = "",
           reason: FormText = "") -> Response:
    def run() -> str:
        try:
            wake = datetime.fromisoformat(until.strip())
        except ValueError:
            raise ValueError(f"snooze until {until!r} is not a date and time (YYYY-MM-DD HH:MM, UTC)") from None
        return _desk(request).snooze(user, case_id, wake, reason)

    return _act(request, user, case_id, csrf_token, run)


@router.post("/cases/{case_id}/play")
def log_play(request: Request, user: User, case_id: str, csrf_token: FormText = "", play: FormText = "",
             note: FormText = "") -> Response:
    return _act(request, user, case_id, csrf_token, lambda: _desk(request).log_play(user, case_id, play, note))


@router.post("/cases/{case_id}/handoff")
def hand_off(request: Request, user: User, case_id: str, csrf_token: FormText = "", to: FormText = "",
             note: FormText = "") -> Response:
    """`to` is `team:<key>` or `person:<member id>` (one select lists both)."""
    kind, _, target = to.partition(":")
    to_team = target if kind == "team" else None
    to_assignee = target if kind == "person" else None
    return _act(request, user, case_id, csrf_token,
                lambda: _desk(request).hand_off(user, case_id, to_team=to_team, to_assignee=to_assignee, note=note))


@router.post("/cases/{case_id}/resolve")
def resolve(request: Request, user: User, case_id: str, csrf_token: FormText = "", outcome: FormText = "",
            note: FormText = "") -> Response:
    return _act(request, user, case_id, csrf_token, lambda: _desk(request).resolve(user, case_id, outcome, note))

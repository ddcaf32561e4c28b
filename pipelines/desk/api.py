"""The desk's JSON API (`/api/v1`): the same operations as the pages, for other tools.

Every endpoint needs `Authorization: Bearer <token>` (`rescue desk add-user` prints a token).
Errors are JSON `{"error": "..."}`: 400 bad input, 401 no or bad token, 403 not allowed for
your role, 404 unknown case, 409 a lost race or a change the case's lifecycle does not allow
(e.g. "already claimed by X"). The OpenAPI description is served at `/openapi.json`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from connectors.queue.users import DeskUser
from connectors.queue.values import ID_MAX_LENGTHS, TEXT_MAX_LENGTH, clean_text, require_id
from models.cases.lifecycle import STATUSES
from models.clock import utcnow
from pipelines.desk.auth import NotAuthenticated, require_manager, verify_or_throttle
from pipelines.desk.service import Desk, QueueFilters

# What people type is checked by the queue's one rule (`connectors.queue.values`): ids as
# long as their column at most and in plain text (no control, bidirectional or invisible
# characters), free text without NUL or bidirectional controls; the limits are in the schema.
def _id(kind: str) -> Any:
    return Annotated[str, StringConstraints(max_length=ID_MAX_LENGTHS[kind]),
                     AfterValidator(lambda value, info: require_id(value, kind, label=info.field_name))]


TeamId, MemberId, PlayName = _id("team"), _id("assignee"), _id("play")
LongText = Annotated[str, StringConstraints(max_length=TEXT_MAX_LENGTH),
                     AfterValidator(lambda value, info: clean_text(value, info.field_name) or "")]
CaseId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$",
                             description="Case id, e.g. RC-1A2B3C4D5E.", examples=["RC-1A2B3C4D5E"])]

#: The status filter: one status, every active status, or everything.
StatusFilter = Literal[("active", "all", *STATUSES)]  # type: ignore[valid-type]



def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


#: The zone of the SLA texts (`due_text`, `label`); the instants themselves are always UTC.
TimeZoneQuery = Annotated[str | None, Query(max_length=64, description="IANA zone of the SLA texts (default UTC).",
                                            examples=["Europe/Berlin"])]

#: Stored times are naive UTC; the API states the zone (RFC 3339 `...Z`).
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]

bearer = HTTPBearer(auto_error=False, description="A desk token (`rescue desk add-user` prints one).")


class ErrorOut(BaseModel):
    error: str = Field(description="What went wrong, in words.")


class UserOut(BaseModel):
    user_id: str
    name: str
    role: Literal["agent", "manager"]
    team: str


class SlaOut(BaseModel):
    state: str | None = Field(description="due, warning, paused, breached, met; null without a target.")
    clock: str | None = Field(description="'first touch', 'resolution', or null (closed, no target).")
    due_at: UtcDatetime | None
    minutes_left: float | None = Field(description="Business minutes left when business_time; negative once breached.")
    business_minutes_left: float | None = Field(
        description="Business minutes left on the team's calendar (negative once overdue); null on the wall clock.")
    business_time: bool
    breached: bool
    near_breach: bool
    paused: bool
    due_text: str = Field(description="The due time in the zone `tz`, e.g. 'Tue 8 Dec 15:00 UTC'.")
    left_text: str = Field(description="e.g. '5 business days left', 'overdue by 2 business days 3 h'.")
    tz: str = Field(description="The IANA zone the texts are in.")
    label: str


class CaseOut(BaseModel):
    case_id: str
    account_id: str
    account_name: str | None
    segment: str | None
    status: str
    priority: str
    team: str
    assignee: str | None
    arr: float | None
    churn_risk: float | None
    health_score: float | None
    expected_arr_at_risk: float | None
    reason: str | None
    opened_at: UtcDatetime | None
    acknowledged_at: UtcDatetime | None
    resolved_at: UtcDatetime | None
    snoozed_until: UtcDatetime | None
    outcome: str | None
    escalation_level: int
    escalation: str | None = Field(description="e.g. 'escalated: step 2 of 2 (moved to Rescue Squad)'; null if never escalated.")
    version: int
    due_at: UtcDatetime | None = Field(description="The running SLA clock's due instant (ISO 8601, UTC).")
    business_minutes_left: float | None = Field(
        description="Business minutes left on the running clock (negative once overdue); null on the wall clock.")
    sla: SlaOut


class PlayOut(BaseModel):
    action_id: int
    at: UtcDatetime
    actor: str
    play: str
    note: str | None
    outcome: str | None


class EventOut(BaseModel):
    event_id: int
    at: UtcDatetime
    actor: str
    kind: str
    from_status: str | None
    to_status: str | None
    reason: str | None
    payload: dict[str, Any]


class CaseDetailOut(CaseOut):
    policy_version: str | None
    model_version: str | None
    rule_id: str | None
    required_skills: list[str]
    context: dict[str, Any] = Field(description="The handoff context package (account, health, risk, tickets, usage).")
    evidence: list[dict[str, Any]]
    plays: list[PlayOut]
    events: list[EventOut] = Field(description="The audit trail, oldest first.")


class ActionOut(BaseModel):
    message: str
    case: CaseDetailOut


class MemberLoadOut(BaseModel):
    id: str
    name: str
    capacity: int
    open: int


class TeamLoadOut(BaseModel):
    team: str
    name: str
    tier: int
    capacity: int
    open_cases: int
    unassigned: int
    load_pct: float | None
    members: list[MemberLoadOut]


class AttainmentOut(BaseModel):
    team: str
    priority: str
    cases_opened: int
    first_touch_median_h: float | None
    first_touch_attainment: float | None
    resolution_median_h: float | None
    resolution_attainment: float | None
    reassignments: int
    bounced_cases: int


class ManagerOut(BaseModel):
    teams: list[TeamLoadOut]
    attainment: list[AttainmentOut]
    near_breach: list[CaseOut] = Field(description="Breached and near-breach cases, most urgent first.")
    overview: str = Field(description="Where every open case stands, in one sentence.")


class OverflowOut(BaseModel):
    account_id: str
    account_name: str | None
    snapshot_date: UtcDatetime
    team: str | None = Field(description="The team the matched rule sends the account to.")
    priority: str | None
    rule_id: str | None
    churn_risk: float | None
    arr: float | None
    expected_arr_at_risk: float | None
    rank: int | None = Field(description="Rank within the team's daily budget (1 = most ARR at risk).")
    cause: Literal["budget", "capacity"] | None = Field(
        description="budget: over the team's remaining daily budget; capacity: nobody had the skills and room.")
    cause_text: str
    reason: str | None = Field(description="The routing's reason, in words.")
    case_id: str | None = Field(description="The account's active case, when one was opened since.")


class OverflowOpenOut(ActionOut):
    opened: bool = Field(description="False when the account already had an active case (nothing was opened).")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AcknowledgeIn(_Body):
    reason: LongText | None = None


class SnoozeIn(_Body):
    until: datetime = Field(description="Wake-up time; UTC unless it carries an offset. Must be in the future.")
    reason: LongText | None = None


class PlayIn(_Body):
    play: PlayName = Field(description="A play of the policy's catalogue (`rescue policy plays`); any other is refused.")
    note: LongText | None = None


class HandoffIn(_Body):
    to_team: TeamId | None = Field(None, description="Team key; inferred from to_assignee when omitted.")
    to_assignee: MemberId | None = Field(None, description="Member id; omit to hand the case to the whole team.")
    note: Annotated[str, StringConstraints(min_length=1, max_length=TEXT_MAX_LENGTH),
                    AfterValidator(lambda value, info: clean_text(value, info.field_name, required=True))] = Field(
        description="Required: what was done and what the next owner should do.")


class ResolveIn(_Body):
    outcome: Literal["saved", "churned", "no_action"]
    note: LongText | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in ((400, "Bad input"), (401, "Missing or invalid token"), (403, "Not allowed for your role"),
                       (404, "Unknown case"), (409, "Lost race or invalid lifecycle transition"),
                       (429, "Too many wrong tokens from this client; retry after the Retry-After seconds"))
}


def api_user(request: Request,
             credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> DeskUser:
    """The user of the request's bearer token; 401 otherwise."""
    desk: Desk = request.app.state.desk
    user = verify_or_throttle(desk.users, request.app.state.failed_sign_ins, _client(request),
                              credentials.credentials if credentials else None)
    if user is None:
        raise NotAuthenticated("a valid bearer token is required")
    return user


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _query_names(dependant: Dependant) -> set[str]:
    """Names of the query parameters an endpoint declares, its dependencies' included."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def strict_query(request: Request) -> None:
    """Query parameters are the documented ones, once each: a typo (`?priorty=P1`) or a repeated
    parameter is refused rather than silently ignored or reduced to one value."""
    keys = [key for key, _ in request.query_params.multi_items()]
    route = request.scope.get("route")
    known = _query_names(route.dependant) if isinstance(route, APIRoute) else set()
    unknown = sorted(set(keys) - known)
    if unknown:
        accepted = f"; accepted: {', '.join(sorted(known))}" if known else "; this endpoint takes none"
        raise ValueError(f"unknown query parameter(s): {', '.join(repr(k) for k in unknown)}{accepted}")
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"query parameter(s) given more than once: {', '.join(repeated)}")


User = Annotated[DeskUser, Depends(api_user)]
router = APIRouter(prefix="/api/v1", tags=["rescue desk"], responses=ERRORS,
                   dependencies=[Depends(strict_query)])


def _desk(request: Request) -> Desk:
    return request.app.state.desk


def _done(request: Request, message: str, case_id: str) -> ActionOut:
    return ActionOut(message=message, case=CaseDetailOut(**_desk(request).case(case_id, utcnow())))


@router.get("/me", response_model=UserOut, summary="Who the token belongs to")
def me(user: User) -> UserOut:
    return UserOut(user_id=user.user_id, name=user.name, role=user.role, team=user.team)


@router.get("/cases", response_model=list[CaseOut],
            summary="The queue, most urgent first: priority, breach state, ARR at risk, SLA due, case id")
def list_cases(
    request: Request,
    user: User,
    scope: Annotated[Literal["mine", "team", "all"], Query(description="Cases assigned to me, my team's, or all.")] = "all",
    priority: Annotated[Literal["P1", "P2", "P3", "P4"] | None, Query()] = None,
    status: Annotated[StatusFilter | None, Query()] = "active",
    breaching: Annotated[bool | None, Query(description="Only cases past (true) or within (false) their SLA.")] = None,
    segment: Annotated[str | None, Query(max_length=64)] = None,
    tz: TimeZoneQuery = None,
) -> list[CaseOut]:
    filters = QueueFilters(scope=scope, priority=priority, status=status or "active", breaching=breaching,
                           segment=segment)
    return [CaseOut(**row) for row in _desk(request).queue(user, filters, utcnow(), tz=tz)]


@router.get("/cases/{case_id}", response_model=CaseDetailOut, summary="A case with its context and audit trail")
def get_case(request: Request, user: User, case_id: CaseId, tz: TimeZoneQuery = None) -> CaseDetailOut:
    return CaseDetailOut(**_desk(request).case(case_id, utcnow(), tz=tz))


@router.post("/cases/{case_id}/claim", response_model=ActionOut, summary="Take the case (409 if someone else has it)")
def claim(request: Request, user: User, case_id: CaseId) -> ActionOut:
    return _done(request, _desk(request).claim(user, case_id), case_id)


@router.post("/cases/{case_id}/acknowledge", response_model=ActionOut, summary="First touch without taking it")
def acknowledge(request: Request, user: User, case_id: CaseId, body: AcknowledgeIn | None = None) -> ActionOut:
    return _done(request, _desk(request).acknowledge(user, case_id, body.reason if body else None), case_id)


@router.post("/cases/{case_id}/snooze", response_model=ActionOut, summary="Pause the case and its SLA clocks")
def snooze(request: Request, user: User, case_id: CaseId, body: SnoozeIn) -> ActionOut:
    return _done(request, _desk(request).snooze(user, case_id, body.until, body.reason), case_id)


@router.post("/cases/{case_id}/plays", response_model=ActionOut, summary="Log a rescue play with a note")
def log_play(request: Request, user: User, case_id: CaseId, body: PlayIn) -> ActionOut:
    return _done(request, _desk(request).log_play(user, case_id, body.play, body.note), case_id)


@router.post("/cases/{case_id}/handoff", response_model=ActionOut,
             summary="Hand off to a team or person (a note is required; only managers cross teams)")
def hand_off(request: Request, user: User, case_id: CaseId, body: HandoffIn) -> ActionOut:
    message = _desk(request).hand_off(user, case_id, to_team=body.to_team, to_assignee=body.to_assignee,
                                      note=body.note)
    return _done(request, message, case_id)


@router.post("/cases/{case_id}/resolve", response_model=ActionOut, summary="Close the case with its outcome")
def resolve(request: Request, user: User, case_id: CaseId, body: ResolveIn) -> ActionOut:
    return _done(request, _desk(request).resolve(user, case_id, body.outcome, body.note), case_id)


@router.get("/manager", response_model=ManagerOut, summary="Team load vs capacity, SLA attainment, near-breach cases")
def manager(request: Request, user: User, tz: TimeZoneQuery = None) -> ManagerOut:
    require_manager(user, "see the manager view")
    return ManagerOut(**_desk(request).manager_view(utcnow(), tz=tz))


AccountId = Annotated[str, Path(min_length=1, max_length=ID_MAX_LENGTHS["account"], description="Account id.")]


@router.get("/overflow", response_model=list[OverflowOut],
            summary="The latest snapshot's overflow accounts, riskiest first (managers)")
def overflow(request: Request, user: User) -> list[OverflowOut]:
    return [OverflowOut(**row) for row in _desk(request).overflow(user)]


@router.post("/overflow/{account_id}/open", response_model=OverflowOpenOut,
             summary="Open the case of an overflow account (managers; a second call opens nothing)")
def open_overflow(request: Request, user: User, account_id: AccountId) -> OverflowOpenOut:
    message, case_id, opened = _desk(request).open_overflow(user, account_id)
    return OverflowOpenOut(message=message, case=CaseDetailOut(**_desk(request).case(case_id, utcnow())), opened=opened)

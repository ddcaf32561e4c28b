"""The escalation policy's schema: the pydantic models one policy file validates into.

One YAML file says who handles which at-risk account, how fast, and what happens when nobody
does (see `policies/default.yaml` for a commented example). Its shape is declared here: calendars,
teams and their members, severity rules, SLA targets, escalation ladders with RACI, hysteresis,
cooldown and holdout, and the catalogue of rescue plays (`plays`): the only plays the queue
accepts, the desk suggests and the effectiveness report counts. `Policy` also answers the lookups the rest of the product needs (a team's
calendar, escalation path and ladder, the fields the conditions read) and carries its
`content_hash`, the identity stored on every case it creates.

Reading and cross-checking a file is `models.policy.loader`; applying a policy to the candidate
frame is `models.routing.route`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from functools import cached_property
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from models.routing.assignment import Member
from models.policy.calendar import BusinessCalendar, CalendarError
from models.policy.conditions import AllOf, AnyOf, Condition, Leaf, NotOf

Priority = Literal["P1", "P2", "P3", "P4"]
PRIORITIES: tuple[str, ...] = ("P1", "P2", "P3", "P4")

#: RACI entries that name a role rather than a person, resolved per case by
#: `models.cases.ladder.resolve_raci`.
RACI_ROLES: dict[str, str] = {
    "assignee": "the case's current assignee",
    "csm_owner": "the account's CSM (from the candidate frame)",
    "escalation_manager": "the escalation manager of the case's team",
    "team_channel": "the notification channels of the case's team",
    "target_escalation_manager": "for a reassign step, the escalation manager of the receiving team",
    "target_team_channel": "for a reassign step, the channels of the receiving team",
}
#: Literal channel addresses allowed in RACI lists (`slack:ENV_VAR`, `email:someone@example.com`).
CHANNEL_PREFIXES: tuple[str, ...] = ("slack:", "email:")


#: A play id: lower-case letters, digits and underscores, starting with a letter (it is stored
#: on every play logged, sent to the CRM and used as a label, so it stays plain).
PLAY_ID_PATTERN = r"[a-z][a-z0-9_]*"
PLAY_ID_MAX_LENGTH = 64


def _play_id(value: str) -> str:
    if len(value) > PLAY_ID_MAX_LENGTH or not re.fullmatch(PLAY_ID_PATTERN, value):
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise ValueError(f"a play id is at most {PLAY_ID_MAX_LENGTH} lower-case letters, digits and underscores, "
                         f"starting with a letter; got {shown!r}")
    return value


PlayId = Annotated[str, AfterValidator(_play_id)]


class UnknownPlay(ValueError):
    """A play that is not in the policy's catalogue; the message lists the known ones."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class HoursSpec(_Spec):
    start: str = Field(description="Local opening time, HH:MM.")
    end: str = Field(description="Local closing time, HH:MM (24:00 = midnight).")


class HolidaySpec(_Spec):
    country: str = Field(description="ISO country code known to the `holidays` package.")
    subdiv: str | None = Field(None, description="Subdivision (state, province, region).")


class CalendarSpec(_Spec):
    """A business-hours calendar."""

    timezone: str
    working_days: list[str | int] = Field(min_length=1)
    hours: HoursSpec
    holidays: HolidaySpec | None = None

    @model_validator(mode="after")
    def _buildable(self) -> CalendarSpec:
        try:
            self.build()
        except CalendarError as exc:
            raise ValueError(str(exc)) from None
        return self

    def build(self) -> BusinessCalendar:
        return BusinessCalendar(
            timezone=self.timezone,
            working_days=self.working_days,
            start=self.hours.start,
            end=self.hours.end,
            holidays_country=self.holidays.country if self.holidays else None,
            subdiv=self.holidays.subdiv if self.holidays else None,
        )


class ChannelSpec(_Spec):
    """Where a team is notified."""

    slack_webhook_env: str | None = Field(
        None, description="Name of the environment variable holding the Slack incoming-webhook URL."
    )
    email: str | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> ChannelSpec:
        if not self.slack_webhook_env and not self.email:
            raise ValueError("a team needs at least one channel: slack_webhook_env or email")
        return self

    def addresses(self) -> list[str]:
        out = []
        if self.slack_webhook_env:
            out.append(f"slack:{self.slack_webhook_env}")
        if self.email:
            out.append(f"email:{self.email}")
        return out


class MemberSpec(_Spec):
    id: str = Field(min_length=1)
    name: str
    email: str
    skills: list[str] = Field(default_factory=list)
    timezone: str = "UTC"
    capacity: int = Field(ge=0, description="Maximum number of open cases.")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value


class TeamSpec(_Spec):
    name: str
    tier: int = Field(ge=1, description="1 = first line; higher tiers receive escalations.")
    escalates_to: str | None = Field(
        None, description="Team key of the next tier (a higher tier); None at the top."
    )
    skills: list[str] = Field(default_factory=list)
    calendar: str
    escalation_manager: str = Field(description="Member id (of any team) accountable for escalations.")
    daily_budget: int = Field(ge=0, description="Maximum number of new cases per day.")
    channels: ChannelSpec
    members: list[MemberSpec] = Field(min_length=1)


class SeverityRule(_Spec):
    id: str = Field(min_length=1)
    description: str
    when: Condition
    priority: Priority
    team: str
    required_skills: list[str] = Field(default_factory=list)


class SlaTarget(_Spec):
    first_touch_minutes: float = Field(gt=0, description="Business minutes to the first touch.")
    resolution_minutes: float = Field(gt=0, description="Business minutes to resolution.")
    pre_breach_pct: float = Field(gt=0, lt=100, description="Warn at this share of a clock.")

    @model_validator(mode="after")
    def _ordered(self) -> SlaTarget:
        if self.first_touch_minutes > self.resolution_minutes:
            raise ValueError(
                f"first_touch_minutes ({self.first_touch_minutes:g}) exceeds "
                f"resolution_minutes ({self.resolution_minutes:g})"
            )
        return self


class RaciSpec(_Spec):
    responsible: list[str] = Field(default_factory=list)
    accountable: list[str] = Field(default_factory=list)
    consulted: list[str] = Field(default_factory=list)
    informed: list[str] = Field(default_factory=list)


class LadderStep(_Spec):
    """One rung of an escalation ladder.

    Triggered either `after_minutes` business minutes without a first touch, or when a clock
    (`first_touch` or `resolution`) reaches `at_sla_pct` percent of its SLA target; the word
    `pre_breach` stands for the priority's `pre_breach_pct`, and 100 is the breach itself.
    """

    id: str = Field(min_length=1)
    description: str = ""
    after_minutes: float | None = Field(None, gt=0)
    at_sla_pct: float | Literal["pre_breach"] | None = None
    clock: Literal["first_touch", "resolution"] = "first_touch"
    action: Literal["warn", "reassign", "notify"]
    target: str = Field("next_tier", description="For reassign: 'next_tier' or a team key.")
    raci: RaciSpec

    @field_validator("at_sla_pct")
    @classmethod
    def _positive_pct(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, (int, float)) and value <= 0:
            raise ValueError(f"at_sla_pct must be > 0, got {value}")
        return value

    @model_validator(mode="after")
    def _one_trigger(self) -> LadderStep:
        if (self.after_minutes is None) == (self.at_sla_pct is None):
            raise ValueError("a step needs exactly one trigger: after_minutes or at_sla_pct")
        if self.after_minutes is not None and self.clock != "first_touch":
            raise ValueError("after_minutes counts time without a first touch; drop 'clock'")
        return self


class HysteresisSpec(_Spec):
    field: str = "churn_risk"
    enter_threshold: float
    exit_threshold: float
    min_days_in_state: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> HysteresisSpec:
        if self.exit_threshold > self.enter_threshold:
            raise ValueError(
                f"exit_threshold ({self.exit_threshold}) must not exceed "
                f"enter_threshold ({self.enter_threshold})"
            )
        return self


class HoldoutSpec(_Spec):
    fraction: float = Field(ge=0, lt=1)
    seed: str | int


class PlaySpec(_Spec):
    """A rescue play of the catalogue: what the team may run on a case and log."""

    description: str = Field(min_length=1, description="What the play is, in a few words.")
    teams: list[str] = Field(default_factory=list, description="Team keys it suits; empty: every team.")
    aliases: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] = Field(
        default_factory=list,
        description="Former names of the play: plays logged under them count as this play in reports.")


class Policy(_Spec):
    """A validated escalation policy. Build it with `models.policy.loader.load_policy` or `parse_policy`."""

    version: str = Field(min_length=1)
    name: str = ""
    description: str = ""
    calendars: dict[str, CalendarSpec] = Field(min_length=1)
    teams: dict[str, TeamSpec] = Field(min_length=1)
    severity_rules: list[SeverityRule] = Field(min_length=1)
    sla: dict[Priority, SlaTarget]
    ladders: dict[Priority, list[LadderStep]] = Field(default_factory=dict)
    team_ladders: dict[str, dict[Priority, list[LadderStep]]] = Field(default_factory=dict)
    hysteresis: HysteresisSpec
    cooldown_days: int = Field(ge=0)
    holdout: HoldoutSpec
    plays: dict[PlayId, PlaySpec] = Field(min_length=1, description="The catalogue of rescue plays.")

    # -- identity -----------------------------------------------------------------------------

    @cached_property
    def content_hash(self) -> str:
        """First 12 hex digits of the sha256 of the normalized policy content."""
        normalized = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(normalized.encode()).hexdigest()[:12]

    # -- lookups ------------------------------------------------------------------------------

    @cached_property
    def business_calendars(self) -> dict[str, BusinessCalendar]:
        """Calendar name -> `BusinessCalendar`."""
        return {name: spec.build() for name, spec in self.calendars.items()}

    def team_calendar(self, team: str) -> BusinessCalendar:
        return self.business_calendars[self.teams[team].calendar]

    @cached_property
    def members_by_id(self) -> dict[str, MemberSpec]:
        return {m.id: m for team in self.teams.values() for m in team.members}

    @cached_property
    def member_team(self) -> dict[str, str]:
        """Member id -> team key."""
        return {m.id: key for key, team in self.teams.items() for m in team.members}

    def assignable_members(self) -> list[Member]:
        """Every member as an `models.routing.assignment.Member`, in the order of the file."""
        return [
            Member(id=m.id, team=key, skills=frozenset(m.skills), capacity=m.capacity)
            for key, team in self.teams.items()
            for m in team.members
        ]

    def escalation_path(self, team: str) -> list[str]:
        """The teams above `team`, nearest first, following `escalates_to`."""
        path: list[str] = []
        nxt = self.teams[team].escalates_to
        while nxt is not None and nxt in self.teams and nxt not in path and nxt != team:
            path.append(nxt)
            nxt = self.teams[nxt].escalates_to
        return path

    def escalation_paths(self) -> dict[str, list[str]]:
        """Team key -> `escalation_path(team)`, the shape `models.routing.assignment.assign` takes."""
        return {key: self.escalation_path(key) for key in self.teams}

    def next_tier_team(self, team: str) -> str | None:
        """The team a `next_tier` reassignment sends a case of `team` to (None at the top)."""
        return self.teams[team].escalates_to

    def ladder_for(self, team: str, priority: str) -> list[LadderStep]:
        """The ladder of a case: the team's own ladder for the priority, else the default."""
        override = self.team_ladders.get(team, {})
        if priority in override:
            return override[priority]
        return self.ladders.get(priority, [])  # type: ignore[call-overload]

    def sla_pct(self, step: LadderStep, priority: str) -> float:
        """The percentage threshold of an `at_sla_pct` step, with `pre_breach` resolved."""
        if step.at_sla_pct is None:
            raise ValueError(f"step {step.id!r} is triggered by after_minutes, not at_sla_pct")
        if step.at_sla_pct == "pre_breach":
            return self.sla[priority].pre_breach_pct  # type: ignore[index]
        return float(step.at_sla_pct)

    # -- plays --------------------------------------------------------------------------------

    @cached_property
    def play_names(self) -> dict[str, str]:
        """Every name a play is known by (its id and its former names) -> its id."""
        names = {alias: key for key, play in self.plays.items() for alias in play.aliases}
        return {**names, **{key: key for key in self.plays}}

    def check_play(self, name: str) -> str:
        """`name` if it is a play of the catalogue; UnknownPlay otherwise, naming the plays (and
        the new name of a renamed one)."""
        if name in self.plays:
            return name
        known = ", ".join(self.plays)
        renamed = self.play_names.get(name)
        if renamed is not None:
            raise UnknownPlay(f"play {name!r} is now called {renamed!r}; the policy's plays: {known}")
        shown = name if len(name) <= 40 else name[:37] + "..."
        raise UnknownPlay(f"unknown play {shown!r}; the policy's plays: {known}")

    def plays_for(self, team: str) -> list[str]:
        """The plays that suit `team` (those naming it, and those naming no team), in catalogue order."""
        return [key for key, play in self.plays.items() if not play.teams or team in play.teams]

    def condition_fields(self) -> set[str]:
        """Every column the severity rules read, plus the hysteresis field."""
        fields = {self.hysteresis.field}
        for rule in self.severity_rules:
            fields |= {leaf.field for _, leaf in condition_leaves(rule.when)}
        return fields


def condition_leaves(condition: Condition, path: str = "") -> Iterator[tuple[str, Leaf]]:
    """Every leaf of a condition tree with its key path below `path` (e.g. ``.all[0]``)."""
    if isinstance(condition, Leaf):
        yield path, condition
    elif isinstance(condition, AllOf):
        for i, child in enumerate(condition.all_):
            yield from condition_leaves(child, f"{path}.all[{i}]")
    elif isinstance(condition, AnyOf):
        for i, child in enumerate(condition.any_):
            yield from condition_leaves(child, f"{path}.any[{i}]")
    elif isinstance(condition, NotOf):
        yield from condition_leaves(condition.not_, f"{path}.not")

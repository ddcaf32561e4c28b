"""The escalation policy as code: schema, loader, and the routing of rescue candidates.

One YAML file says who handles which at-risk account, how fast, and what happens when nobody
does (see `policies/default.yaml` for a commented example). `load_policy` validates it with
pydantic and checks every cross-reference (teams, calendars, members, RACI entries, condition
fields); a malformed file raises `PolicyError` naming the key path and the reason, e.g.

    policies/default.yaml: severity_rules[2].when.all[0].op: unknown operator '=>'; expected ...

Each policy carries its declared `version` and a `content_hash` (sha256 of its normalized
content, so comments and formatting do not change it); both are stored on every case it creates.

`route` applies a policy to the whole candidate frame in a handful of vectorized passes:

1. hysteresis: an account enters `at_risk` at `enter_threshold`, leaves below `exit_threshold`,
   and must have been at risk for `min_days_in_state` days;
2. severity rules, in order, first match wins: priority, team, required skills;
3. eligible accounts with an open case are `update`s (their case gains evidence; a priority
   change is reported through `previous_priority`), recently resolved ones are in `cooldown`,
   a seeded share is `holdout` (the control group);
4. per team and day, the alert budget admits new cases by expected ARR at risk; the rest are
   `overflow` with their rank kept; admitted cases are assigned (`models.routing.assignment`) and get
   their SLA due times on the team's business calendar.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from models.routing.assignment import Member, assign
from models.policy.calendar import BusinessCalendar, CalendarError
from models.policy.conditions import AllOf, AnyOf, Condition, Leaf, NotOf, evaluate, format_location
from models.contracts import CANDIDATE_COLUMNS

Priority = Literal["P1", "P2", "P3", "P4"]
PRIORITIES: tuple[str, ...] = ("P1", "P2", "P3", "P4")
ACTIONS: tuple[str, ...] = ("route", "update", "holdout", "overflow", "cooldown", "not_eligible")
STATE_AT_RISK, STATE_OK = "at_risk", "ok"

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



class PolicyError(ValueError):
    """A policy file is malformed. `problems` holds `(key path, reason)` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {path}: {why}" if path else f"{source}: {why}"
                                   for path, why in problems))


class RoutingError(ValueError):
    """The frames given to `route` do not fit the policy (missing column, duplicate account)."""


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------


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


class Policy(_Spec):
    """A validated escalation policy. Build it with `load_policy` or `parse_policy`."""

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

    def condition_fields(self) -> set[str]:
        """Every column the severity rules read, plus the hysteresis field."""
        fields = {self.hysteresis.field}
        for rule in self.severity_rules:
            fields |= {leaf.field for _, leaf in _leaves_with_paths(rule.when, "")}
        return fields


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_policy(path: str | Path, *, known_fields: set[str] | None = None) -> Policy:
    """Read and validate a policy file. See `parse_policy`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(str(path), [("", f"cannot read the file: {exc.strerror or exc}")]) from None
    return parse_policy(text, source=str(path), known_fields=known_fields)


def parse_policy(
    text: str,
    source: str = "<policy>",
    *,
    known_fields: set[str] | None = None,
) -> Policy:
    """Validate policy YAML text.

    `known_fields` are the columns conditions may use; by default the candidate frame's
    contract (`models.contracts.CANDIDATE_COLUMNS`). Raises `PolicyError` listing every problem
    with its key path.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(source, [(where, f"invalid YAML: {problem}")]) from None
    if not isinstance(data, dict):
        raise PolicyError(source, [("", f"a policy is a mapping of keys, got {type(data).__name__}")])
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(source, [_describe(err) for err in exc.errors()]) from None
    fields = set(CANDIDATE_COLUMNS) if known_fields is None else set(known_fields)
    problems = _cross_reference_problems(policy, fields)
    if problems:
        raise PolicyError(source, problems)
    return policy


def _describe(err: Any) -> tuple[str, str]:
    path = format_location(tuple(err["loc"]))
    kind = err["type"]
    if kind == "value_error":
        why = str(err["ctx"]["error"])
    elif kind == "missing":
        why = "required key is missing"
    elif kind == "extra_forbidden":
        why = "unknown key (not part of the policy schema)"
    else:
        why = err["msg"]
        if "input" in err and kind not in ("invalid_condition",):
            why += f", got {err['input']!r}"
    return path, why


def _leaves_with_paths(condition: Condition, path: str) -> Iterator[tuple[str, Leaf]]:
    if isinstance(condition, Leaf):
        yield path, condition
    elif isinstance(condition, AllOf):
        for i, child in enumerate(condition.all_):
            yield from _leaves_with_paths(child, f"{path}.all[{i}]")
    elif isinstance(condition, AnyOf):
        for i, child in enumerate(condition.any_):
            yield from _leaves_with_paths(child, f"{path}.any[{i}]")
    elif isinstance(condition, NotOf):
        yield from _leaves_with_paths(condition.not_, f"{path}.not")


def _one_of(values: Any) -> str:
    return "expected one of " + ", ".join(sorted(map(str, values)))


def _cross_reference_problems(policy: Policy, known_fields: set[str]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    teams = policy.teams
    seen_members: dict[str, str] = {}
    for key, team in teams.items():
        if team.calendar not in policy.calendars:
            problems.append((f"teams.{key}.calendar",
                             f"unknown calendar {team.calendar!r}; {_one_of(policy.calendars)}"))
        for i, member in enumerate(team.members):
            if member.id in seen_members:
                problems.append((f"teams.{key}.members[{i}].id",
                                 f"member id {member.id!r} is already used in team {seen_members[member.id]!r}"))
            seen_members.setdefault(member.id, key)
    for key, team in teams.items():
        if team.escalates_to is not None:
            above = teams.get(team.escalates_to)
            if above is None:
                problems.append((f"teams.{key}.escalates_to",
                                 f"unknown team {team.escalates_to!r}; {_one_of(teams)}"))
            elif above.tier <= team.tier:
                problems.append((f"teams.{key}.escalates_to",
                                 f"team {team.escalates_to!r} is tier {above.tier}, not above "
                                 f"tier {team.tier}"))
        if team.escalation_manager not in seen_members:
            problems.append((f"teams.{key}.escalation_manager",
                             f"unknown member {team.escalation_manager!r}; the manager must be a member of a team"))

    rule_ids: set[str] = set()
    for i, rule in enumerate(policy.severity_rules):
        where = f"severity_rules[{i}]"
        if rule.id in rule_ids:
            problems.append((f"{where}.id", f"duplicate rule id {rule.id!r}"))
        rule_ids.add(rule.id)
        if rule.team not in teams:
            problems.append((f"{where}.team", f"unknown team {rule.team!r}; {_one_of(teams)}"))
        elif rule.required_skills:
            needed = set(rule.required_skills)
            reachable = [rule.team, *policy.escalation_path(rule.team)]
            if not any(needed <= set(m.skills) for k in reachable for m in teams[k].members):
                problems.append((f"{where}.required_skills",
                                 f"no member of team {rule.team!r} or the teams above it has all of "
                                 f"{sorted(needed)}"))
        if rule.priority not in policy.sla:
            problems.append((f"{where}.priority", f"no sla target for {rule.priority}"))
        for path, leaf in _leaves_with_paths(rule.when, f"{where}.when"):
            if leaf.field not in known_fields:
                problems.append((f"{path}.field",
                                 f"unknown field {leaf.field!r}; {_one_of(known_fields)}"))
    if policy.hysteresis.field not in known_fields:
        problems.append(("hysteresis.field",
                         f"unknown field {policy.hysteresis.field!r}; {_one_of(known_fields)}"))

    ladders: list[tuple[str, str | None, str, list[LadderStep]]] = [
        ("ladders", None, prio, steps) for prio, steps in policy.ladders.items()
    ]
    for team_key, per_priority in policy.team_ladders.items():
        if team_key not in teams:
            problems.append((f"team_ladders.{team_key}", f"unknown team {team_key!r}; {_one_of(teams)}"))
            continue
        ladders += [(f"team_ladders.{team_key}", team_key, p, s) for p, s in per_priority.items()]
    step_ids: dict[str, str] = {}
    raci_names = set(RACI_ROLES) | set(seen_members) | set(teams)
    for base, team_key, prio, steps in ladders:
        if prio not in policy.sla:
            problems.append((f"{base}.{prio}", f"no sla target for {prio}"))
        for j, step in enumerate(steps):
            where = f"{base}.{prio}[{j}]"
            if step.id in step_ids:
                problems.append((f"{where}.id", f"step id {step.id!r} is already used at {step_ids[step.id]}"))
            step_ids.setdefault(step.id, where)
            if step.action == "reassign" and step.target != "next_tier" and step.target not in teams:
                problems.append((f"{where}.target",
                                 f"unknown team {step.target!r}; expected next_tier or one of "
                                 + ", ".join(sorted(teams))))
            if step.action == "reassign" and step.target == "next_tier" and team_key is not None:
                if policy.next_tier_team(team_key) is None:
                    problems.append((f"{where}.target", f"team {team_key!r} is the top tier: no next tier"))
            for role in ("responsible", "accountable", "consulted", "informed"):
                for k, entry in enumerate(getattr(step.raci, role)):
                    if entry not in raci_names and not entry.startswith(CHANNEL_PREFIXES):
                        problems.append((f"{where}.raci.{role}[{k}]",
                                         f"unknown entry {entry!r}; expected a role "
                                         f"({', '.join(RACI_ROLES)}), a member id, a team key, "
                                         f"or a channel (slack:ENV_VAR, email:address)"))
    return problems


# --------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutingResult:
    """`decisions`: one row per candidate (exactly `DECISION_COLUMNS`).
    `account_states`: account_id, state (at_risk | ok), since — persist it for the next run."""

    decisions: pd.DataFrame
    account_states: pd.DataFrame
    policy_version: str
    policy_hash: str

    def counts(self) -> dict[str, int]:
        """Number of decisions per action."""
        counts = self.decisions["action"].value_counts()
        return {action: int(counts.get(action, 0)) for action in ACTIONS}


def holdout_draw(account_ids: pd.Series | list[str], seed: str | int) -> np.ndarray:
    """A uniform number in [0, 1) per account, fixed by (seed, account id).

    Uses BLAKE2b, so the draw (and therefore membership of the control group) is the same on
    every run, machine and library version.
    """
    prefix = f"{seed}\x1f".encode()
    out = np.empty(len(account_ids), dtype=np.float64)
    for i, account in enumerate(account_ids):
        digest = hashlib.blake2b(prefix + str(account).encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "big") / 2.0**64
    return out


def _utc_timestamp(value: dt.datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise RoutingError(f"now must be timezone-aware, got {value!r}")
    return stamp.tz_convert("UTC")


def _naive_utc(series: pd.Series) -> pd.Series:
    """A datetime column as naive UTC (the contracts' convention); naive input is UTC already."""
    series = pd.to_datetime(series)
    if getattr(series.dtype, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return series.astype("datetime64[ns]")


def _require(frame: pd.DataFrame, columns: set[str], name: str) -> None:
    missing = sorted(columns - set(frame.columns))
    if missing:
        raise RoutingError(
            f"{name} frame lacks column(s) {', '.join(missing)}; "
            f"columns: {', '.join(map(str, frame.columns))}"
        )


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


def route(
    candidates: pd.DataFrame,
    policy: Policy,
    *,
    now: dt.datetime,
    open_cases: pd.DataFrame | None = None,
    recent_resolutions: pd.DataFrame | None = None,
    account_states: pd.DataFrame | None = None,
    member_load: Mapping[str, int] | None = None,
    as_of: dt.datetime | dt.date | None = None,
) -> RoutingResult:
    """Decide, for every candidate account, what the rescue queue does with it.

    Parameters
    ----------
    candidates: one row per account (`CANDIDATE_COLUMNS`; at least account_id,
        expected_arr_at_risk and the columns the rules and hysteresis read).
    now: tz-aware instant of the run; SLA clocks of new cases start here.
    open_cases: account_id, case_id, priority, team, opened_at (naive UTC or aware) of cases
        that are not resolved; used for "one open case per account" and the daily budget.
    recent_resolutions: account_id, resolved_at of resolved cases (for the cooldown).
    account_states: the `account_states` of the previous run (account_id, state, since).
    member_load: open cases per member id (for capacity and load balancing).
    as_of: the snapshot date the candidates describe. Hysteresis states are dated by it, so
        "minimum days in state" counts snapshot days and a backfill of consecutive partitions
        behaves like the daily runs it replays. Defaults to ``now``.
    """
    now_ts = _utc_timestamp(now)
    now_naive = now_ts.tz_localize(None)
    state_clock = now_naive if as_of is None else pd.Timestamp(as_of).tz_localize(None) if pd.Timestamp(as_of).tzinfo else pd.Timestamp(as_of)
    hyst = policy.hysteresis
    _require(candidates, {"account_id", "expected_arr_at_risk"} | policy.condition_fields(), "candidates")
    open_cases = open_cases if open_cases is not None else _empty(
        {"account_id": "str", "case_id": "str", "priority": "str", "team": "str", "opened_at": "datetime64[ns]"})
    recent_resolutions = recent_resolutions if recent_resolutions is not None else _empty(
        {"account_id": "str", "resolved_at": "datetime64[ns]"})
    account_states = account_states if account_states is not None else _empty(
        {"account_id": "str", "state": "str", "since": "datetime64[ns]"})
    _require(open_cases, {"account_id", "case_id", "priority", "team", "opened_at"}, "open_cases")
    _require(recent_resolutions, {"account_id", "resolved_at"}, "recent_resolutions")
    _require(account_states, {"account_id", "state", "since"}, "account_states")

    ids = candidates["account_id"].astype(str).reset_index(drop=True)
    if ids.duplicated().any():
        raise RoutingError(f"candidates has duplicate account_id(s), e.g. {ids[ids.duplicated()].iloc[0]!r}")
    n = len(ids)

    # 1. hysteresis -------------------------------------------------------------------------
    previous = account_states.assign(account_id=account_states["account_id"].astype(str))
    previous = previous.drop_duplicates("account_id", keep="last").set_index("account_id")
    prev_state = previous["state"].reindex(ids).to_numpy(dtype=object)
    prev_since = _naive_utc(previous["since"]).reindex(ids).to_numpy()
    was_at_risk = prev_state == STATE_AT_RISK
    value = pd.to_numeric(candidates[hyst.field], errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        enters = ~was_at_risk & (value >= hyst.enter_threshold)
        exits = was_at_risk & (value < hyst.exit_threshold)
    at_risk = (was_at_risk & ~exits) | enters
    changed = enters | exits | pd.isna(prev_since)
    since = np.where(changed, np.datetime64(state_clock.to_datetime64()), prev_since).astype("datetime64[ns]")
    days_in_state = (
        np.datetime64(state_clock.normalize().to_datetime64()) - since.astype("datetime64[D]")
    ).astype("timedelta64[D]").astype(np.int64)
    settled = at_risk & (days_in_state >= hyst.min_days_in_state)
    states_now = pd.DataFrame({
        "account_id": ids,
        "state": pd.Series(np.where(at_risk, STATE_AT_RISK, STATE_OK), dtype="str"),
        "since": since,
    })
    untouched = previous.loc[~previous.index.isin(ids)].reset_index()[["account_id", "state", "since"]]
    if len(untouched):
        untouched = untouched.assign(since=_naive_utc(untouched["since"]))
        new_states = pd.concat([states_now, untouched], ignore_index=True)
    else:
        new_states = states_now

    # 2. severity rules: first match wins ----------------------------------------------------
    frame = candidates.reset_index(drop=True)
    rules = policy.severity_rules
    matches = np.column_stack([evaluate(rule.when, frame).to_numpy() for rule in rules])
    matched = matches.any(axis=1)
    rule_idx = np.where(matched, matches.argmax(axis=1), -1)
    eligible = settled & matched

    rule_priority = np.array([r.priority for r in rules] + [None], dtype=object)
    rule_team = np.array([r.team for r in rules] + [None], dtype=object)
    rule_ids = np.array([r.id for r in rules] + [None], dtype=object)
    priority = np.where(eligible, rule_priority[rule_idx], None)
    team = np.where(eligible, rule_team[rule_idx], None)
    rule_id = np.where(eligible, rule_ids[rule_idx], None)

    # 3. open cases, cooldown, holdout --------------------------------------------------------
    cases = open_cases.assign(account_id=open_cases["account_id"].astype(str))
    cases = cases.sort_values("opened_at").drop_duplicates("account_id", keep="last").set_index("account_id")
    has_open = ids.isin(cases.index).to_numpy()
    update = eligible & has_open

    resolved = recent_resolutions.assign(
        account_id=recent_resolutions["account_id"].astype(str),
        resolved_at=_naive_utc(recent_resolutions["resolved_at"]),
    ).groupby("account_id")["resolved_at"].max()
    last_resolved = resolved.reindex(ids).to_numpy()
    cutoff = np.datetime64((now_naive - pd.Timedelta(days=policy.cooldown_days)).to_datetime64())
    cooling = eligible & ~has_open & ~pd.isna(last_resolved) & (last_resolved > cutoff)

    fresh = eligible & ~has_open & ~cooling
    holdout = np.zeros(n, dtype=bool)
    if policy.holdout.fraction > 0 and fresh.any():
        fresh_pos = np.flatnonzero(fresh)
        holdout[fresh_pos] = holdout_draw(ids.iloc[fresh_pos], policy.holdout.seed) < policy.holdout.fraction
    pool = fresh & ~holdout

    # 4. budget per team and day, then assignment --------------------------------------------
    arr_at_risk = pd.to_numeric(frame["expected_arr_at_risk"], errors="coerce").fillna(0.0).to_numpy()
    rank = np.zeros(n, dtype=np.int64)
    admitted = np.zeros(n, dtype=bool)
    pool_pos = np.flatnonzero(pool)
    ranked = pd.DataFrame({"pos": pool_pos, "team": team[pool_pos], "ear": arr_at_risk[pool_pos],
                           "account_id": ids.to_numpy()[pool_pos]})
    ranked = ranked.sort_values(["team", "ear", "account_id"], ascending=[True, False, True], kind="stable")
    ranked["rank"] = ranked.groupby("team", sort=False).cumcount() + 1
    opened_today = _opened_today(cases, policy, now_ts)
    budget_left = {k: max(0, t.daily_budget - opened_today.get(k, 0)) for k, t in policy.teams.items()}
    ranked["admitted"] = ranked["rank"] <= ranked["team"].map(budget_left).astype(np.int64)
    rank[ranked["pos"].to_numpy()] = ranked["rank"].to_numpy()
    admitted[ranked["pos"].to_numpy()] = ranked["admitted"].to_numpy()

    assignee = np.full(n, None, dtype=object)
    admitted_pos = np.flatnonzero(admitted)
    if len(admitted_pos):
        prio_order = {p: i for i, p in enumerate(PRIORITIES)}
        to_assign = pd.DataFrame({
            "pos": admitted_pos,
            "team": team[admitted_pos],
            "required_skills": [rules[i].required_skills for i in rule_idx[admitted_pos]],
            "prio": [prio_order[p] for p in priority[admitted_pos]],
            "ear": arr_at_risk[admitted_pos],
            "account_id": ids.to_numpy()[admitted_pos],
        }).sort_values(["prio", "ear", "account_id"], ascending=[True, False, True], kind="stable")
        who = assign(to_assign, policy.assignable_members(), dict(member_load or {}),
                     escalation_paths=policy.escalation_paths())
        assignee[to_assign["pos"].to_numpy()] = who.to_numpy()
    routed = admitted & pd.notna(assignee)
    no_capacity = admitted & ~routed
    routed_team = team.copy()
    routed_team[routed] = [policy.member_team[a] for a in assignee[routed]]

    action = np.full(n, "not_eligible", dtype=object)
    action[update] = "update"
    action[cooling] = "cooldown"
    action[holdout] = "holdout"
    action[pool] = "overflow"
    action[routed] = "route"

    # SLA clocks of new cases, on the receiving team's calendar.
    first_due = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    resolution_due = first_due.copy()
    routed_pos = np.flatnonzero(routed)
    for (team_key, prio), group in pd.Series(routed_pos).groupby(
            [routed_team[routed_pos], priority[routed_pos]]):
        calendar, target = policy.team_calendar(team_key), policy.sla[prio]
        first_due[group.to_numpy()] = _naive64(calendar.add_business_minutes(now_ts, target.first_touch_minutes))
        resolution_due[group.to_numpy()] = _naive64(calendar.add_business_minutes(now_ts, target.resolution_minutes))

    case_id = np.full(n, None, dtype=object)
    previous_priority = np.full(n, None, dtype=object)
    update_pos = np.flatnonzero(update)
    if len(update_pos):
        matched_cases = cases.loc[ids.iloc[update_pos]]
        case_id[update_pos] = matched_cases["case_id"].astype(str).to_numpy()
        previous_priority[update_pos] = matched_cases["priority"].to_numpy(dtype=object)

    reasons = _reasons(
        frame, policy, action=action, rule_idx=rule_idx, at_risk=at_risk, days_in_state=days_in_state,
        matched=matched, rank=rank, budget_left=budget_left, team=team, routed_team=routed_team,
        no_capacity=no_capacity, case_id=case_id, priority=priority,
        previous_priority=previous_priority, last_resolved=last_resolved,
    )
    empty_skills: list[str] = []
    decisions = pd.DataFrame({
        "account_id": ids,
        "action": pd.Series(action, dtype="str"),
        "priority": pd.Series(priority, dtype=object),
        "team": pd.Series(routed_team, dtype=object),
        "required_skills": [list(rules[i].required_skills) if e else empty_skills.copy()
                            for i, e in zip(rule_idx, eligible)],
        "rule_id": pd.Series(rule_id, dtype=object),
        "reasons": reasons,
        "expected_arr_at_risk": arr_at_risk,
        "rank": _ranks(rank, pool),
        "assignee": pd.Series(np.where(routed, assignee, None), dtype=object),
        "sla_first_touch_due": first_due,
        "sla_resolution_due": resolution_due,
        "case_id": pd.Series(case_id, dtype=object),
        "previous_priority": pd.Series(previous_priority, dtype=object),
    })
    return RoutingResult(decisions, new_states, policy.version, policy.content_hash)


def _ranks(rank: np.ndarray, ranked: np.ndarray) -> pd.arrays.IntegerArray:
    """Budget ranks as nullable integers: missing for rows that never entered the budget."""
    return pd.arrays.IntegerArray(rank.astype(np.int64), mask=~ranked)


def _naive64(instant: dt.datetime) -> np.datetime64:
    return pd.Timestamp(instant).tz_convert("UTC").tz_localize(None).to_datetime64()


def _opened_today(cases: pd.DataFrame, policy: Policy, now: pd.Timestamp) -> dict[str, int]:
    """Cases opened on the current local day of each team (they already used the budget)."""
    counts: dict[str, int] = {}
    if cases.empty:
        return counts
    opened = _naive_utc(cases["opened_at"]).dt.tz_localize("UTC")
    for key in policy.teams:
        tz = policy.team_calendar(key).tz
        mine = (cases["team"] == key).to_numpy()
        if mine.any():
            local_days = opened[mine].dt.tz_convert(tz).dt.date
            counts[key] = int((local_days == now.tz_convert(tz).date()).sum())
    return counts


def _reasons(
    frame: pd.DataFrame,
    policy: Policy,
    *,
    action: np.ndarray,
    rule_idx: np.ndarray,
    at_risk: np.ndarray,
    days_in_state: np.ndarray,
    matched: np.ndarray,
    rank: np.ndarray,
    budget_left: dict[str, int],
    team: np.ndarray,
    routed_team: np.ndarray,
    no_capacity: np.ndarray,
    case_id: np.ndarray,
    priority: np.ndarray,
    previous_priority: np.ndarray,
    last_resolved: np.ndarray,
) -> list[list[str]]:
    """Human-readable reasons per decision (the first one explains the action)."""
    hyst = policy.hysteresis
    not_at_risk = f"not at risk: {hyst.field} has not reached {hyst.enter_threshold:g}"
    no_rule = "no severity rule matched"
    too_new = f"at risk for less than {hyst.min_days_in_state} day(s)"
    why_not = np.select([~at_risk, ~matched], [not_at_risk, no_rule], default=too_new)
    reasons: list[list[str]] = [[str(text)] for text in why_not]

    top_reason = frame["top_reason"] if "top_reason" in frame.columns else None
    for pos in np.flatnonzero(action != "not_eligible"):
        rule = policy.severity_rules[rule_idx[pos]]
        act = action[pos]
        if act == "route":
            head = f"routed to {routed_team[pos]} as {priority[pos]}"
            if routed_team[pos] != team[pos]:
                head += f" (team {team[pos]} had no member with the skills and capacity)"
        elif act == "update":
            head = f"open case {case_id[pos]} gains evidence"
            if previous_priority[pos] != priority[pos]:
                head += f"; priority {previous_priority[pos]} -> {priority[pos]}"
        elif act == "cooldown":
            day = pd.Timestamp(last_resolved[pos]).date().isoformat()
            head = f"cooldown: a case was resolved on {day} ({policy.cooldown_days}-day cooldown)"
        elif act == "holdout":
            head = f"holdout: control group ({policy.holdout.fraction:.0%} of eligible accounts)"
        elif no_capacity[pos]:
            head = f"overflow: no member of {team[pos]} or the teams above it has the skills and capacity"
        else:
            head = (f"overflow: rank {rank[pos]} is over team {team[pos]}'s remaining daily "
                    f"budget of {budget_left[team[pos]]}")
        entry = [head, f"{rule.id}: {rule.description}"]
        if top_reason is not None and isinstance(top_reason.iat[pos], str) and top_reason.iat[pos]:
            entry.append(f"top driver: {top_reason.iat[pos]}")
        reasons[pos] = entry
    return reasons

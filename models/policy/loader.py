"""Loading a policy file: read the YAML, validate it, cross-check it, name every problem.

`load_policy` (a path) and `parse_policy` (text) validate against the pydantic schema in
`models.policy.schema` and then check every cross-reference (teams, calendars, members, RACI
entries, condition fields); a malformed file raises `PolicyError` naming the key path and the
reason, e.g.

    policies/default.yaml: severity_rules[2].when.all[0].op: unknown operator '=>'; expected ...

A severity rule whose description claims something its condition does not test ("usage
falling fast" on a rule that also matches accounts whose usage rose) loads with a
`PolicyWordingWarning` per claim (`models.policy.wording`): its cases would state a reason that
is not true.

Each policy carries its declared `version` and a `content_hash` (sha256 of its normalized
content, so comments and formatting do not change it); both are stored on every case it creates.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from models.contracts import CANDIDATE_COLUMNS
from models.policy.conditions import format_location
from models.policy.schema import CHANNEL_PREFIXES, RACI_ROLES, LadderStep, Policy, condition_leaves
from models.policy.wording import PolicyWordingWarning, wording_problems


class PolicyError(ValueError):
    """A policy file is malformed. `problems` holds `(key path, reason)` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {path}: {why}" if path else f"{source}: {why}"
                                   for path, why in problems))


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
    with its key path; warns (`PolicyWordingWarning`) for every rule description that claims
    what its condition does not test.
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
    for path, why in wording_problems(policy):
        warnings.warn(PolicyWordingWarning(f"{source}: {path}: {why}"), stacklevel=2)
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
        for path, leaf in condition_leaves(rule.when, f"{where}.when"):
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

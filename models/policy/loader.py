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

A policy file is read with limits, so a hostile or broken file fails fast with one line instead
of exhausting the machine: at most `MAX_POLICY_BYTES` of UTF-8 text; at most `MAX_NODES` YAML
nodes once every alias is expanded (an "alias bomb" of a few kilobytes expands to millions), no
alias that refers to a node containing it and at most `MAX_DEPTH` levels of nesting
(`models.policy.safe_yaml`); every reported reason on one line and clipped to
`MAX_REASON_CHARS` characters, at most `MAX_PROBLEMS` of them.
"""

from __future__ import annotations

import reprlib
import warnings
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from models.contracts import CANDIDATE_COLUMNS
from models.policy.conditions import format_location
from models.schema_errors import describe
from models.policy.safe_yaml import MAX_DEPTH, MAX_NODES, YamlRefused, read_yaml
from models.policy.schema import CHANNEL_PREFIXES, RACI_ROLES, LadderStep, Policy, condition_leaves
from models.policy.wording import PolicyWordingWarning, wording_problems


#: Largest policy file read, in bytes (the shipped policies are about 12 KB).
MAX_POLICY_BYTES = 1024 * 1024
#: Longest reason or key path reported for one problem; longer ones are clipped.
MAX_REASON_CHARS = 300
#: Most problems reported for one file; the rest are counted.
MAX_PROBLEMS = 40

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxstring, _SHORT.maxother = 2, 4, 4, 60, 60


def _clip(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """`text` on one line, at most `limit` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


__all__ = ["MAX_DEPTH", "MAX_NODES", "MAX_POLICY_BYTES", "PolicyError", "load_policy", "parse_policy"]


class PolicyError(ValueError):
    """A policy file is malformed. `problems` holds `(key path, reason)` pairs, each on one
    line and clipped (`MAX_REASON_CHARS`), at most `MAX_PROBLEMS` of them; `count` is how many
    there were in all."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.count = len(problems)
        self.problems = [(_clip(path, 120), _clip(why)) for path, why in problems[:MAX_PROBLEMS]]
        lines = [f"{source}: {path}: {why}" if path else f"{source}: {why}" for path, why in self.problems]
        if self.omitted:
            lines.append(f"{source}: {self.omitted_line}")
        super().__init__("\n".join(lines))

    @property
    def omitted(self) -> int:
        """Problems found but not listed (past `MAX_PROBLEMS`)."""
        return self.count - len(self.problems)

    @property
    def omitted_line(self) -> str:
        return f"and {self.omitted} more problem{'s' if self.omitted > 1 else ''} (not listed)"

    def summary(self) -> str:
        """The first problem on one line, with the number of the others."""
        path, why = self.problems[0] if self.problems else ("", "invalid policy")
        more = self.count - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
        return f"{self.source}: {path + ': ' if path else ''}{why}{tail}"


def load_policy(path: str | Path, *, known_fields: set[str] | None = None) -> Policy:
    """Read and validate a policy file (at most `MAX_POLICY_BYTES` of UTF-8). See `parse_policy`."""
    path = Path(path)
    source = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(source, [("", f"cannot read the file: {exc.strerror or exc}")]) from None
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(source, [("", _too_big())])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PolicyError(source, [("", f"the policy file is not UTF-8 text "
                                        f"(byte 0x{data[exc.start]:02x} at offset {exc.start})")]) from None
    return parse_policy(text, source=source, known_fields=known_fields)


def _too_big() -> str:
    return f"the file is larger than {MAX_POLICY_BYTES:,} bytes (MAX_POLICY_BYTES), the most a policy may be"


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
    if len(text) > MAX_POLICY_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        raise PolicyError(source, [("", _too_big())])
    data = _read_yaml(text, source)
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


def _read_yaml(text: str, source: str) -> Any:
    """The YAML document of `text` (`models.policy.safe_yaml`); PolicyError naming the line."""
    try:
        return read_yaml(text)
    except YamlRefused as exc:
        raise PolicyError(source, [(exc.where, str(exc))]) from None


def _describe(err: Any) -> tuple[str, str]:
    hide = err["type"] in ("invalid_condition",)
    return describe(err, format_location(tuple(err["loc"])), unknown="unknown key (not part of the policy schema)",
                    show_input=lambda value: None if hide else _SHORT.repr(value))


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
    problems += _play_problems(policy)
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


def _play_problems(policy: Policy) -> list[tuple[str, str]]:
    """Plays name known teams; a former name belongs to one play and is no play's id."""
    problems: list[tuple[str, str]] = []
    owner: dict[str, str] = {}
    for key, play in policy.plays.items():
        for i, team in enumerate(play.teams):
            if team not in policy.teams:
                problems.append((f"plays.{key}.teams[{i}]", f"unknown team {team!r}; {_one_of(policy.teams)}"))
        for i, alias in enumerate(play.aliases):
            if alias in policy.plays:
                problems.append((f"plays.{key}.aliases[{i}]", f"{alias!r} is the id of a play, not a former name"))
            elif alias in owner:
                problems.append((f"plays.{key}.aliases[{i}]", f"{alias!r} is already a former name of {owner[alias]!r}"))
            owner.setdefault(alias, key)
    return problems

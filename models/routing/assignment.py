"""Skills- and capacity-aware assignment of rescue cases to people.

For each case, in the order given (callers sort by priority, then by ARR at risk):

1. **skills**: only members whose skills include every skill the case requires;
2. **capacity**: only members whose open cases are below their capacity. If nobody in the
   case's team qualifies, the case goes up the ladder: the first team on the team's escalation
   path (`escalation_paths`, e.g. CSMs -> rescue squad -> leadership) with a qualifying member;
3. **load balancing**: the qualifying member with the least open work; ties go round-robin
   (the tied member who received a case longest ago in this call, then the order of `members`).

A case nobody can take gets `None`, and the policy records it as overflow. Job titles play no
part. Assignment is deterministic: the same inputs give the same assignees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class Member:
    """A person who can own rescue cases."""

    id: str
    team: str
    skills: frozenset[str] = field(default_factory=frozenset)
    capacity: int = 0

    def __post_init__(self) -> None:
        if self.capacity < 0:
            raise ValueError(f"member {self.id!r}: capacity must be >= 0, got {self.capacity}")
        object.__setattr__(self, "skills", frozenset(self.skills))


class AssignmentError(ValueError):
    """The inputs to `assign` are inconsistent (missing column, duplicate member id)."""


def assign(
    cases: pd.DataFrame,
    members: Sequence[Member],
    open_load: Mapping[str, int],
    *,
    escalation_paths: Mapping[str, Sequence[str]] | None = None,
) -> pd.Series:
    """The assignee (member id) of each case, or None when nobody has the skills and room.

    `cases` needs a `team` column and a `required_skills` column (an iterable of skills per row;
    missing means no requirement). `open_load` is each member's current number of open cases
    (absent = 0); it is not modified. `escalation_paths` maps a team key to the teams above it,
    nearest first: a case whose team has nobody qualifying may go to those teams, in order.
    """
    for column in ("team", "required_skills"):
        if column not in cases.columns:
            raise AssignmentError(
                f"cases frame has no {column!r} column; columns: {', '.join(map(str, cases.columns))}"
            )
    ids = [m.id for m in members]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise AssignmentError(f"duplicate member id(s): {', '.join(dupes)}")

    by_team: dict[str, list[int]] = {}
    for position, member in enumerate(members):
        by_team.setdefault(member.team, []).append(position)
    paths = {team: list(path) for team, path in (escalation_paths or {}).items()}

    load = [int(open_load.get(m.id, 0)) for m in members]
    room = [m.capacity - current for m, current in zip(members, load)]
    last_assigned = [-1] * len(members)  # sequence number of the member's latest case here

    # Cases that share (team, skills) share their candidate list; once it has no room left it
    # stays full for the rest of the call (capacity only shrinks), so the lookup is cached.
    candidates_cache: dict[tuple[str, frozenset[str]], list[list[int]]] = {}
    full: set[tuple[str, frozenset[str]]] = set()

    def candidates_for(team: str, skills: frozenset[str]) -> list[list[int]]:
        """Qualifying member positions, one list per team from the case's team upward."""
        key = (team, skills)
        if key not in candidates_cache:
            teams = [team, *paths.get(team, [])]
            candidates_cache[key] = [
                [p for p in by_team.get(t, []) if skills <= members[p].skills] for t in teams
            ]
        return candidates_cache[key]

    result: list[str | None] = []
    for sequence, (team, required) in enumerate(zip(cases["team"], cases["required_skills"])):
        skills = _skill_set(required)
        key = (team, skills)
        chosen = None
        if team is not None and not pd.isna(team) and key not in full:
            for tier in candidates_for(team, skills):
                open_members = [p for p in tier if room[p] > 0]
                if open_members:
                    chosen = min(open_members, key=lambda p: (load[p], last_assigned[p], p))
                    break
            if chosen is None:
                full.add(key)
        if chosen is None:
            result.append(None)
            continue
        load[chosen] += 1
        room[chosen] -= 1
        last_assigned[chosen] = sequence
        result.append(members[chosen].id)
    return pd.Series(result, index=cases.index, dtype=object, name="assignee")


def _skill_set(required: object) -> frozenset[str]:
    if required is None or (isinstance(required, float) and pd.isna(required)):
        return frozenset()
    if isinstance(required, str):
        return frozenset([required])
    if isinstance(required, Iterable):
        return frozenset(required)
    raise AssignmentError(f"required_skills must be a list of skills, got {required!r}")

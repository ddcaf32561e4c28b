"""What `rescue data check` finds: problems with a count, a share and a few example ids.

A problem is *blocking* (``error``: loading would fail, or land wrong data, or the pipeline's
blocking quality checks would stop the daily job: a plausibility rule of `models.plausibility`
over its allowed share among them) or a *warning* (the data loads, but something in it is
unlikely and worth a look: such a rule within its share, usage outside its subscription, an
export's churn or reactivation flags that contradict its terms). Each renders as one line; a
rule with an allowed share shows it next to the share found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]
MAX_EXAMPLES = 3


@dataclass(frozen=True)
class Problem:
    severity: Severity
    code: str              # e.g. before_signup, unmapped_value, unreadable_date
    message: str           # what is wrong, naming the table / key path / column
    count: int = 0         # rows concerned (0: not a row count, e.g. a missing column)
    total: int = 0         # rows the share is taken of
    examples: tuple[str, ...] = ()
    hint: str = ""
    allowed: float | None = None  # the share of `total` a rule allows, when it allows one

    @property
    def share(self) -> float:
        return self.count / self.total if self.total else 0.0

    def line(self, *, severity: bool = True) -> str:
        text = f"{self.severity} {self.code}: {self.message}" if severity else f"{self.code}: {self.message}"
        if self.total:
            allowed = f", allowed {self.allowed:.1%}" if self.allowed is not None else ""
            text += f": {self.count:,} of {self.total:,} ({self.share:.1%}{allowed})"
        elif self.count:
            text += f": {self.count:,}"
        if self.examples:
            text += ", e.g. " + ", ".join(self.examples[:MAX_EXAMPLES])
        if self.hint:
            text += f"; {self.hint}"
        return text


@dataclass
class Report:
    """Everything a check found, plus the profile lines printed before the problems."""

    profile: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def add(self, problem: Problem | None) -> None:
        if problem is not None:
            self.problems.append(problem)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def blocking(self) -> bool:
        return bool(self.errors)

    def summary(self) -> str:
        e, w = len(self.errors), len(self.warnings)
        verdict = "blocking: fix the errors, then check again" if e else "ready to load"
        return f"check: {e} error{'s' * (e != 1)}, {w} warning{'s' * (w != 1)}: {verdict}"

    def lines(self) -> list[str]:
        ordered = self.errors + self.warnings
        return [*self.profile, *(p.line() for p in ordered), self.summary()]

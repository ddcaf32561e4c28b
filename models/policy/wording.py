"""Does a severity rule's condition state what its description says?

A rule's description is the first half of every case headline it produces ("Churn risk at least
35% and weekly active users down at least 30%: 3 urgent tickets open"), so a rule named for a
fact must match only when that fact holds. `wording_problems` reads each description for the
claims it makes (`CLAIMS`: usage falling, churn risk at least N%, renewal within N days, an
urgent ticket, a VIP or enterprise account, a health band...) and checks that every way the
condition can match tests that claim. A rule named "usage falling fast" whose condition is
``churn_risk >= 0.35 and (wau_trend <= -0.3 or churn_risk_delta >= 0.1)`` is caught: the second
branch matches accounts whose usage did not fall.

The check reads words, so it can miss a claim phrased in words it does not know; it never
guesses at one it cannot see. The loader (`models.policy.loader.parse_policy`) reports what it
finds as `PolicyWordingWarning`s.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from models.policy.conditions import AllOf, AnyOf, Condition, Leaf, NotOf
from models.policy.schema import Policy


class PolicyWordingWarning(UserWarning):
    """A severity rule's description claims something its condition does not test."""


def _number(match: re.Match[str]) -> float | None:
    numbers = [g for g in match.groups() if g is not None]
    return float(numbers[0]) if numbers else None


def _any(leaf: Leaf, match: re.Match[str]) -> bool:
    return True


def _falls(leaf: Leaf, match: re.Match[str]) -> bool:
    """`field <= -x` (or `< -x`, or a `between` below zero); at least as steep as a stated N%."""
    if leaf.op in ("<", "<="):
        bound = leaf.value
    elif leaf.op == "between":
        bound = leaf.value[1]
    else:
        return False
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or bound >= 0:
        return False
    pct = _number(match)
    return pct is None or bound <= -pct / 100 + 1e-9


def _rises(leaf: Leaf, match: re.Match[str]) -> bool:
    return (leaf.op in (">", ">=") and isinstance(leaf.value, (int, float)) and not isinstance(leaf.value, bool)
            and leaf.value > 0)


def _at_least_pct(leaf: Leaf, match: re.Match[str]) -> bool:
    """`churn_risk >= p` with p at least the stated N% (a stricter rule still makes the claim)."""
    pct = _number(match)
    return (leaf.op in (">", ">=") and isinstance(leaf.value, (int, float)) and not isinstance(leaf.value, bool)
            and pct is not None and leaf.value >= pct / 100 - 1e-9)


def _within_days(leaf: Leaf, match: re.Match[str]) -> bool:
    """`days_to_renewal between [lo, hi]` with 0 <= lo and hi at most the stated N days."""
    days = _number(match)
    if days is None:
        return False
    if leaf.op == "between":
        lo, hi = leaf.value
        return lo >= 0 and hi <= days
    return leaf.op in ("<", "<=") and isinstance(leaf.value, (int, float)) and leaf.value <= days


def _past_hours(leaf: Leaf, match: re.Match[str]) -> bool:
    hours = _number(match)
    return (leaf.op in (">", ">=") and isinstance(leaf.value, (int, float)) and hours is not None
            and leaf.value >= hours)


def _is_true(leaf: Leaf, match: re.Match[str]) -> bool:
    return leaf.op == "==" and leaf.value is True


def _is_category(value: str) -> Callable[[Leaf, re.Match[str]], bool]:
    def check(leaf: Leaf, match: re.Match[str]) -> bool:
        if leaf.op == "==":
            return leaf.value == value
        return leaf.op == "in" and set(leaf.value) == {value}

    return check


def _band(leaf: Leaf, match: re.Match[str]) -> bool:
    band = match.group(1).lower().replace("-", "_")
    return _is_category(band)(leaf, match)


@dataclass(frozen=True)
class Claim:
    """Something a description can say about an account, and the leaves that test it."""

    name: str
    pattern: re.Pattern[str]
    fields: frozenset[str]
    holds: Callable[[Leaf, re.Match[str]], bool] = field(default=_any)

    def tested_by(self, leaf: Leaf, match: re.Match[str]) -> bool:
        return leaf.field in self.fields and self.holds(leaf, match)


def _re(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE)


_USAGE = r"(?:usage|active users|activity|adoption)"
_FALL = r"(?:fall\w*|declin\w*|drop\w*|down|shrink\w*)"

#: The claims a severity rule's description is read for. A rule whose description matches a
#: pattern must, on every branch of its condition, have a leaf on one of the fields that `holds`.
CLAIMS: tuple[Claim, ...] = (
    Claim("usage falling",
          _re(rf"\b{_USAGE}\b[^,;.:]*?\b{_FALL}(?:\s+(?:at least|by|more than|over)?\s*(\d+(?:\.\d+)?)\s*%)?"
              rf"|\b{_FALL}\s+{_USAGE}\b"),
          frozenset({"wau_trend"}), _falls),
    Claim("churn risk up", _re(r"\brisk\s+(?:up|ris\w*|jump\w*|climb\w*)|\b(?:rising|jump\w* in)\s+(?:churn\s+)?risk\b"),
          frozenset({"churn_risk_delta"}), _rises),
    Claim("churn risk at least N%", _re(r"\brisk\s+(?:of\s+)?(?:at least|>=)\s*(\d+(?:\.\d+)?)\s*%"),
          frozenset({"churn_risk"}), _at_least_pct),
    Claim("churn risk", _re(r"(?<![-\w])risk\b(?!\s*band)"),
          frozenset({"churn_risk", "churn_risk_delta", "expected_arr_at_risk"})),
    Claim("renewal within N days", _re(r"\brenewal\s+within\s+(\d+)\s*days?"), frozenset({"days_to_renewal"}),
          _within_days),
    Claim("renewal", _re(r"\brenewal"), frozenset({"days_to_renewal", "renewal_date"})),
    Claim("open past N hours", _re(r"\bpast\s+(?:its\s+)?(\d+(?:\.\d+)?)-hour"),
          frozenset({"oldest_open_urgent_hours"}), _past_hours),
    Claim("urgent ticket", _re(r"\burgent\b"), frozenset({"open_urgent_tickets", "oldest_open_urgent_hours"})),
    Claim("compliance ticket", _re(r"\b(?:compliance|legal|security)\b"), frozenset({"open_compliance_tickets"})),
    Claim("VIP account", _re(r"\bvip\b"), frozenset({"vip"}), _is_true),
    Claim("enterprise account", _re(r"\benterprise\b"), frozenset({"segment"}), _is_category("enterprise")),
    Claim("health band", _re(r"\b(critical|at-risk|at_risk|watch|healthy)\s+band\b"), frozenset({"health_band"}),
          _band),
    Claim("health", _re(r"\bhealth\b"), frozenset({"health_band", "health_score"})),
)


def always_tests(condition: Condition, test: Callable[[Leaf], bool]) -> bool:
    """Does every way `condition` can match go through a leaf that passes `test`?

    `all`: one child suffices; `any`: every child must; a leaf under `not` states the opposite
    of its test, so it never counts.
    """
    if isinstance(condition, Leaf):
        return test(condition)
    if isinstance(condition, AllOf):
        return any(always_tests(child, test) for child in condition.all_)
    if isinstance(condition, AnyOf):
        return all(always_tests(child, test) for child in condition.any_)
    if isinstance(condition, NotOf):
        return False
    return False  # pragma: no cover - the condition union has no other node


def claims_in(description: str) -> list[tuple[Claim, re.Match[str]]]:
    """The claims a description makes, with the words that make them."""
    found = []
    for claim in CLAIMS:
        for match in claim.pattern.finditer(description):
            found.append((claim, match))
    return found


def wording_problems(policy: Policy) -> list[tuple[str, str]]:
    """(key path, reason) for every claim of a severity rule's description that its condition
    does not test on every branch."""
    problems: list[tuple[str, str]] = []
    for i, rule in enumerate(policy.severity_rules):
        reported: set[str] = set()
        for claim, match in claims_in(rule.description):
            if claim.name in reported:
                continue
            if not always_tests(rule.when, lambda leaf, c=claim, m=match: c.tested_by(leaf, m)):
                reported.add(claim.name)
                problems.append((
                    f"severity_rules[{i}].description",
                    f"rule {rule.id!r} says {match.group(0).strip()!r} ({claim.name}) but its condition can "
                    f"match when that does not hold (it must test {' or '.join(sorted(claim.fields))} on "
                    f"every branch); state the fact in the condition or change the description",
                ))
    return problems

"""The fields a source mapping fills, section by section.

A mapping (`connectors.mapping.schema`) has one section per kind of export. Each section's
``columns`` maps these field names to the company's own columns (or SQL expressions). Sections
that correspond to a canonical contract (accounts, renewals, tickets) take their fields from it;
the others describe the shapes the mapping turns into canonical tables:

- ``subscriptions``: contract terms (several per account) -> `renewals` and `account_history`;
- ``usage``: usage rows at user, subscription or account grain -> `usage_daily`;
- ``churn``: churn events -> the outcomes of the terms they close (`renewals`, `churn_outcomes`).
"""

from __future__ import annotations

from dataclasses import dataclass

from models.contracts import (
    ACCOUNTS,
    RENEWAL_OUTCOMES,
    RENEWALS,
    SEGMENTS,
    TICKET_PRIORITIES,
    TICKET_STATUSES,
    TICKETS,
    Kind,
    TableContract,
)

BILLING_PERIODS = ("monthly", "annual")
#: Months in one term of each billing period (an open-ended subscription renews every period).
PERIOD_MONTHS = {"monthly": 1, "annual": 12}

#: Words read as booleans when a column has no value map of its own (compared lower-cased).
TRUE_WORDS = ("true", "t", "yes", "y", "1", "1.0")
FALSE_WORDS = ("false", "f", "no", "n", "0", "0.0")


@dataclass(frozen=True)
class MappedField:
    """One field a section's ``columns`` may map."""

    name: str
    kind: Kind
    required: bool = False        # the section is unusable without it
    allowed: tuple[str, ...] | None = None
    description: str = ""


def _from_contract(contract: TableContract, required: set[str], optional: set[str] = frozenset(),
                   extra: tuple[MappedField, ...] = ()) -> dict[str, MappedField]:
    fields = {
        c.name: MappedField(c.name, c.kind, required=c.name in required and c.name not in optional,
                            allowed=c.allowed, description=c.description)
        for c in contract.columns
    }
    fields.update({f.name: f for f in extra})
    return fields


SECTION_FIELDS: dict[str, dict[str, MappedField]] = {
    # arr, plan, seats and created_at come from the subscriptions when the section has them.
    "accounts": _from_contract(
        ACCOUNTS, required={"account_id", "segment"},
        extra=(MappedField("churned", "bool", description="The export's own churn flag (checked against the outcomes)."),),
    ),
    "renewals": _from_contract(RENEWALS, required={"account_id", "renewal_date", "amount", "outcome"}),
    "tickets": _from_contract(TICKETS, required={"ticket_id", "account_id", "created_at", "priority"}),
    "subscriptions": {f.name: f for f in (
        MappedField("subscription_id", "str", description="Id of the subscription (the renewal id of its term)."),
        MappedField("account_id", "str", required=True),
        MappedField("started_at", "datetime", required=True, description="Start of the term."),
        MappedField("ended_at", "datetime", description="End of the term; empty = runs on, renewing every billing period."),
        MappedField("arr", "float", description="Annual recurring revenue of the term."),
        MappedField("mrr", "float", description="Monthly recurring revenue (ARR = 12 x MRR when no arr is mapped)."),
        MappedField("plan", "str"),
        MappedField("seats", "int"),
        MappedField("trial", "bool", description="Trial terms are not renewals."),
        MappedField("billing", "str", allowed=BILLING_PERIODS, description="Billing period (default annual)."),
    )},
    "usage": {f.name: f for f in (
        MappedField("account_id", "str", description="Account grain (or user grain with account ids)."),
        MappedField("subscription_id", "str", description="Subscription grain: the account comes from the subscription."),
        MappedField("user_id", "str", description="User grain: active users are distinct users per day."),
        MappedField("date", "datetime", required=True, description="Day (or time) of the usage."),
        MappedField("feature", "str", description="Feature name, grouped by the section's feature groups."),
        MappedField("events", "int", description="Events in the row (default 1 per row)."),
        MappedField("active_users", "int", description="Active users in the row (grains without users)."),
    )},
    "churn": {f.name: f for f in (
        MappedField("account_id", "str", required=True),
        MappedField("churned_at", "datetime", required=True, description="When the churn became known."),
        MappedField("reason", "str", description="Reason code (kept in the renewal's stage)."),
        MappedField("refund", "float"),
        MappedField("reactivated", "bool", description="The account came back after this churn."),
        MappedField("feedback", "str"),
    )},
}

#: Fields whose values must be one of a closed set: a value map translates the company's words.
VOCABULARIES: dict[tuple[str, str], tuple[str, ...]] = {
    ("accounts", "segment"): SEGMENTS,
    ("tickets", "priority"): TICKET_PRIORITIES,
    ("tickets", "status"): TICKET_STATUSES,
    ("renewals", "outcome"): RENEWAL_OUTCOMES,
    ("subscriptions", "billing"): BILLING_PERIODS,
}

#: The section each canonical field of a vocabulary belongs to, for messages.
SECTIONS = tuple(SECTION_FIELDS)

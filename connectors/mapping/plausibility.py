"""The check's export-shape findings (warnings: the data loads, but something in it is unlikely).

These are the rules the canonical tables cannot see, because they read the export's own shape:
its subscriptions (trials included) and its own churn and reactivation flags. The rules the
canonical tables can judge (tickets and usage before the signup, usage after a churn,
contradictory renewal outcomes) are `models.plausibility`'s, the same rules and thresholds the
daily job's blocking checks apply, and `connectors.mapping.check` runs them.

- **usage_outside_subscription**: usage outside its subscription's dates (subscription grain), or
  on days no subscription of the account covers (other grains);
- **churned_flag_mismatch**: the export's own churn flag (``accounts.columns.churned``) against
  the outcome of the account's last term;
- **reactivation_flag_mismatch**: reactivation flags (``churn.columns.reactivated``) against the
  subscriptions that follow;
- **churn_outside_term**: churn events inside no paid subscription (and its grace period);
- **repeated_churn**: a second churn with no new subscription since the first.

Each finding has a count, a share and a few example ids. `run` takes the `Checker`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.mapping.compile import TYPED_PREFIX

if TYPE_CHECKING:  # pragma: no cover
    from connectors.mapping.check import Checker

SUBS = TYPED_PREFIX + "subscriptions"
CHURN = TYPED_PREFIX + "churn"
USAGE = TYPED_PREFIX + "usage"


def run(ch: Checker) -> None:
    if "usage" in ch.plan.sections and "subscriptions" in ch.plan.sections:
        usage_outside_subscription(ch)
    flags_against_terms(ch)


def usage_outside_subscription(ch: Checker) -> None:
    d, date = ch.d, ch.q("date")
    if "subscription_id" in ch.plan.mapping.usage.columns:
        rows = (f"{USAGE} AS x JOIN {SUBS} AS s ON s.subscription_id = x.subscription_id "
                f"WHERE {d.day(f'x.{date}')} < {d.day('s.started_at')} OR (s.ended_at IS NOT NULL AND {d.day(f'x.{date}')} > s.ended_at)")
        ch.add("warning", "usage_outside_subscription",
               "usage rows dated outside their subscription (subscriptions.started_at .. ended_at)",
               ch.count(rows), ch.count(USAGE),
               ch.examples(f"x.subscription_id, x.{date} FROM {rows}", f"x.subscription_id, x.{date}"))
        return
    u = ch.canon("usage_daily")
    rows = (f"{u} AS x WHERE NOT EXISTS (SELECT 1 FROM {SUBS} AS s WHERE s.account_id = x.account_id "
            f"AND {d.day('s.started_at')} <= x.{date} AND (s.ended_at IS NULL OR x.{date} <= s.ended_at))")
    ch.add("warning", "usage_outside_subscription", "usage days on which no subscription of the account runs",
           ch.count(rows), ch.count(u), ch.examples(f"x.account_id, x.{date} FROM {rows}", f"x.account_id, x.{date}"))


def flags_against_terms(ch: Checker) -> None:
    sections, mapping, d = ch.plan.sections, ch.plan.mapping, ch.d
    acc, renewals = ch.canon("accounts"), ch.canon("renewals")
    if "churned" in mapping.accounts.columns:
        last = (f"(SELECT r.outcome FROM {renewals} AS r WHERE r.account_id = a.account_id "
                f"ORDER BY r.renewal_date DESC, r.renewal_id DESC LIMIT 1)")
        flags = f"(SELECT a.account_id, {last} AS last_outcome, m.churned FROM {acc} AS a JOIN {TYPED_PREFIX}accounts AS m ON m.account_id = a.account_id) AS x"
        total = ch.count(acc)
        wrong = f"{flags} WHERE x.churned AND (x.last_outcome IS NULL OR x.last_outcome <> 'churned')"
        ch.add("warning", "churned_flag_mismatch",
               "accounts flagged churned (accounts.columns.churned) whose last term did not churn", ch.count(wrong), total,
               ch.examples(f"x.account_id FROM {wrong}", "x.account_id"))
        wrong = f"{flags} WHERE NOT x.churned AND x.last_outcome = 'churned'"
        ch.add("warning", "churned_flag_mismatch",
               "accounts not flagged churned (accounts.columns.churned) whose last term churned", ch.count(wrong), total,
               ch.examples(f"x.account_id FROM {wrong}", "x.account_id"))
    if "churn" not in sections or "subscriptions" not in sections:
        return
    total = ch.count(CHURN)
    paid = "NOT COALESCE(s.trial, FALSE)"
    later = f"EXISTS (SELECT 1 FROM {SUBS} AS s WHERE s.account_id = x.account_id AND {paid} AND s.started_at > x.churned_at)"
    if "reactivated" in mapping.churn.columns:
        wrong = f"{CHURN} AS x WHERE x.reactivated AND NOT {later}"
        ch.add("warning", "reactivation_flag_mismatch",
               "churn events flagged as reactivated (churn.columns.reactivated) with no subscription after them",
               ch.count(wrong), total, ch.examples(f"x.account_id, x.churned_at FROM {wrong}", "x.account_id, x.churned_at"))
        wrong = f"{CHURN} AS x WHERE NOT x.reactivated AND {later}"
        ch.add("warning", "reactivation_flag_mismatch",
               "churn events not flagged as reactivated (churn.columns.reactivated) but followed by a new subscription",
               ch.count(wrong), total, ch.examples(f"x.account_id, x.churned_at FROM {wrong}", "x.account_id, x.churned_at"))
    grace = mapping.subscriptions.grace_days
    inside = (f"EXISTS (SELECT 1 FROM {SUBS} AS s WHERE s.account_id = x.account_id AND {paid} AND s.started_at <= x.churned_at "
              f"AND (s.ended_at IS NULL OR x.churned_at <= {d.add_days('s.ended_at', grace)}))")
    wrong = f"{CHURN} AS x WHERE x.churned_at IS NOT NULL AND NOT {inside}"
    ch.add("warning", "churn_outside_term", f"churn events outside every paid subscription (and its {grace}-day grace period)",
           ch.count(wrong), total, ch.examples(f"x.account_id, x.churned_at FROM {wrong}", "x.account_id, x.churned_at"))
    twice = (f"{CHURN} AS x WHERE EXISTS (SELECT 1 FROM {CHURN} AS e WHERE e.account_id = x.account_id "
             f"AND e.churned_at < x.churned_at AND NOT EXISTS (SELECT 1 FROM {SUBS} AS s WHERE s.account_id = x.account_id "
             f"AND s.started_at > e.churned_at AND s.started_at <= x.churned_at))")
    ch.add("warning", "repeated_churn", "churn events of accounts that had churned already, with no subscription in between",
           ch.count(twice), total, ch.examples(f"x.account_id, x.churned_at FROM {twice}", "x.account_id, x.churned_at"))

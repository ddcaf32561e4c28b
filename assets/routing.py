"""Routing assets: the policy's candidates and the rescue queue itself."""


import json

import dagster as dg
import pandas as pd

from assets import stages
from assets.metadata import clean
from assets.metadata import table as metadata_table
from assets.partitions import snapshot_date, snapshot_partitions
from assets.quality import SourceChecksResource
from assets.run_clock import run_now
from connectors.freshness import source_ages, stale_warnings
from connectors.policy_source import PolicyResource
from connectors.queue.resource import QueueStoreResource
from connectors.warehouse import WarehouseResource
from models.cases.ordering import sort_queue
from models.churn.fallback import RULES_FALLBACK_TEXT, RULES_FALLBACK_VERSION

GROUP = "routing"
OWNERS = ["team:cs-ops"]


@dg.asset(group_name=GROUP, kinds={"pandas"}, owners=OWNERS, partitions_def=snapshot_partitions)
def rescue_candidates(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    crm_accounts: pd.DataFrame,
    account_features: pd.DataFrame,
    churn_scores: pd.DataFrame,
    health_scores: pd.DataFrame,
) -> pd.DataFrame:
    """Every scored account with the fields the policy's conditions read, ranked by ARR at risk."""
    cands = stages.rescue_candidates(warehouse.get_client(), crm_accounts, account_features, churn_scores, health_scores,
                                     snapshot_date(context))
    fallback = bool((cands["model_version"] == RULES_FALLBACK_VERSION).any())
    if fallback:
        context.log.warning(f"routing on {RULES_FALLBACK_TEXT}: no champion model (model version {RULES_FALLBACK_VERSION!r})")
    context.add_output_metadata(clean(
        {
            "risk_source": "rules fallback (no champion model)" if fallback else "champion model",
            "dagster/row_count": len(cands),
            "arr_at_risk": dg.MetadataValue.float(float(cands["expected_arr_at_risk"].sum())),
            "top_10": metadata_table(cands.head(10), columns=["account_id", "segment", "arr", "churn_risk",
                                                               "health_score", "top_reason"]),
        }
    ))
    return cands


#: Overflow accounts (eligible, not routed) the `rescue_queue` metadata lists, riskiest first.
OVERFLOW_SHOWN = 20
#: Their columns on the asset page.
OVERFLOW_COLUMNS = {"account_id": "account_id", "account_name": "account", "team": "team", "priority": "priority",
                    "churn_risk": "churn risk", "arr": "ARR", "expected_arr_at_risk": "ARR at risk", "cause": "cause",
                    "case_id": "case opened since"}
#: The queue head on the asset page: its columns, as the frame names them and as the table shows them.
QUEUE_HEAD_COLUMNS = {"case_id": "case", "priority": "priority", "account": "account", "expected_arr_at_risk": "ARR at risk",
                      "sla_due_at": "SLA due", "reason": "headline"}


def queue_head_table(cases: pd.DataFrame) -> dg.TableMetadataValue:
    """`cases` (open cases with the SLA columns, `QueueStore.list_cases(sla=True)`) as the table
    of the queue head: priority, account (its name, else its id), ARR at risk, the running SLA
    clock's due instant (`models.cases.sla`) and the headline reason."""
    shown = cases.assign(account=cases["account_name"].fillna(cases["account_id"]) if "account_name" in cases
                         else cases["account_id"])
    return metadata_table(shown, columns=QUEUE_HEAD_COLUMNS)


class QueueRunConfig(dg.Config):
    now: str = ""  # ISO timestamp that pins the whole run's clock (`assets.run_clock`); empty = the rule


@dg.asset(group_name=GROUP, kinds={"sqlite", "postgres"}, owners=OWNERS, partitions_def=snapshot_partitions, deps=["product_usage_daily"])
def rescue_queue(
    context: dg.AssetExecutionContext,
    config: QueueRunConfig,
    policy: PolicyResource,
    queue: QueueStoreResource,
    warehouse: WarehouseResource,
    rescue_candidates: pd.DataFrame,
    source_checks: SourceChecksResource,
    health_scores: pd.DataFrame,
    support_tickets: pd.DataFrame,
    crm_accounts: pd.DataFrame,
    crm_renewals: pd.DataFrame,
) -> dg.MaterializeResult:
    """The rescue queue: candidates routed through the escalation policy, one open case per account.

    A stale source reaches here only when freshness warns (``RESCUE_FRESHNESS=warn``): then
    every case written says which source was stale and how old (``data_warnings``)."""
    as_of = snapshot_date(context)
    now = run_now(context)
    pol = policy.load()
    store = queue.get_client()
    client = warehouse.get_client()
    instant = pd.Timestamp(now).tz_convert("UTC").tz_localize(None)
    ages = source_ages(client, source_checks.get_thresholds(), instant,
                       tickets=support_tickets, accounts=crm_accounts, renewals=crm_renewals)
    warnings = stale_warnings(ages)
    for line in warnings:
        context.log.warning(line)
    run = stages.rescue_queue(store, client, pol, rescue_candidates, health_scores, support_tickets,
                              now=now, as_of=as_of, data_warnings=warnings)
    decisions, summary = run.decisions, run.summary
    open_cases = sort_queue(store.list_cases(status="active", now=now, sla=True))  # the queue's one order
    overflow = store.overflow(as_of)
    counts = decisions["action"].value_counts().to_dict()
    return dg.MaterializeResult(
        metadata=clean({
            "policy_version": pol.version,
            "policy_hash": pol.content_hash,
            "decisions": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
            "opened": summary.opened,
            "updated": summary.updated,
            "logged_not_routed": summary.logged,
            "open_cases": len(open_cases),
            "queue_head": queue_head_table(open_cases.head(10)),
            "overflow": len(overflow),
            f"overflow_top_{OVERFLOW_SHOWN}": metadata_table(overflow.head(OVERFLOW_SHOWN), columns=OVERFLOW_COLUMNS),
            "source_ages": dg.MetadataValue.md("\n".join(f"- {age.message}" for age in ages) or "(no dated source)"),
            "routed_on_stale_data": len(warnings) > 0,
            "by_priority": dg.MetadataValue.md(json.dumps(open_cases["priority"].value_counts().to_dict()) if len(open_cases) else "{}"),
        })
    )

"""Operations assets: the escalation policy itself and how the rescue queue is doing.

- `escalation_policy`: the validated policy file, its version and content hash, and the policy
  drawn as swimlanes with its RACI table (generated from the YAML, so it never drifts).
- `queue_operations_metrics`: time to first touch, time to resolution, SLA attainment and breach
  rate per team, priority and week, cases that bounce between tiers, and holdout vs treated save
  rates where outcomes exist. Open cases are measured at the run's clock (`assets.run_clock`),
  so a replayed day is measured as of that day, not today.
"""

import dagster as dg

from models.charts import png_markdown
import pandas as pd

from assets.metadata import clean, markdown_table
from assets.metadata import table as metadata_table
from assets.run_clock import run_now
from connectors.policy_source import PolicyResource
from connectors.queue.resource import QueueStoreResource
from models.policy.diagram import render_policy_diagram
from models.cases.metrics import charts, queue_metrics

GROUP = "routing"  # the policy and how the queue is doing, beside the queue itself
OWNERS = ["team:cs-ops"]


@dg.asset(group_name=GROUP, kinds={"yaml"}, owners=OWNERS)
def escalation_policy(context: dg.AssetExecutionContext, policy: PolicyResource) -> dg.MaterializeResult:
    """The escalation policy in force: validated, versioned, drawn as swimlanes with its RACI table."""
    pol = policy.load()
    rules = pd.DataFrame(
        [{"rule": r.id, "priority": r.priority, "team": r.team, "description": r.description} for r in pol.severity_rules]
    )
    return dg.MaterializeResult(
        metadata=clean({
            "path": dg.MetadataValue.path(str(policy.resolved_path())),
            "version": pol.version,
            "content_hash": pol.content_hash,
            "teams": dg.MetadataValue.int(len(pol.teams)),
            "severity_rules": metadata_table(rules),
            "swimlanes": dg.MetadataValue.md(png_markdown("policy swimlanes and RACI", render_policy_diagram(pol, fmt="png"))),
        }),
        data_version=dg.DataVersion(pol.content_hash),
    )


@dg.asset(group_name=GROUP, kinds={"pandas"}, owners=OWNERS, deps=["rescue_queue", escalation_policy])
def queue_operations_metrics(
    context: dg.AssetExecutionContext, queue: QueueStoreResource, policy: PolicyResource
) -> pd.DataFrame:
    """Weekly SLA attainment, time to first touch and resolution, reassignments per team and priority."""
    pol = policy.load()
    store = queue.get_client()
    cases = store.list_cases()
    events = store.audit_events()
    calendars = {key: pol.team_calendar(key) for key in pol.teams}
    unknown = set(cases["team"].dropna()) - set(calendars)
    if unknown:
        context.log.warning(f"cases of teams not in the policy {sorted(unknown)}: durations in wall-clock hours")
        calendars = None
    metrics = queue_metrics(
        cases, events, now=run_now(context), calendars=calendars,
        holdout=store.routing_log(),
        # one outcome per held-out account: the renewal that followed its first holdout
        outcomes=store.holdout_outcomes().drop_duplicates("account_id")[["account_id", "outcome"]],
    )
    metadata = {
        "dagster/row_count": len(metrics.weekly),
        "cases": dg.MetadataValue.int(len(metrics.cases)),
        "business_hours": metrics.business_hours,
        "overall": dg.MetadataValue.md(markdown_table(metrics.overall, empty="(no cases)")),
    }
    if len(metrics.cases):
        metadata["charts"] = dg.MetadataValue.md("\n\n".join(png_markdown(n, p) for n, p in charts(metrics).items()))
    if len(metrics.save_rates):
        metadata["save_rates"] = metadata_table(metrics.save_rates)
    context.add_output_metadata(clean(metadata))
    return metrics.weekly

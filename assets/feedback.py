"""Feedback assets: what the rescue team did and what came of it, back to the CRM and the model.

- `rescue_actions`: the rescue team's work as the queue store holds it (cases and the holdout
  log that `rescue_queue` writes, plays, resolutions and renewal outcomes logged from the CLI
  and the desk). An external asset: nothing here materializes it; the rescue-actions sensor
  records an observation of it and requests a `feedback_job` run when it changes.
- `rescue_outcomes`: every treated account (a case, its plays, its outcome) and every held-out
  account (the control group) with its renewal outcome once known, read from `rescue_actions`.
  The weekly retrain reads it (`training_set` marks and drops treated rows), so lineage shows
  the loop as rescue_actions -> rescue_outcomes -> training_set -> churn_model -> churn_scores
  -> ... -> rescue_queue. The one edge it cannot show is rescue_queue -> rescue_actions: the
  asset graph admits no cycle, and the loop closes across runs (the daily runs open cases; a
  later weekly retrain learns from their outcomes), not within one.
- `crm_writeback`: delivers the CRM outbox (Tasks per case and per play, account health fields)
  through the configured CRM writer (demo tables, Salesforce or HubSpot: `RESCUE_CRM`), and the
  ticketing outbox (notes on the account's open escalated ticket, when `RESCUE_TICKET_WRITEBACK`
  names Freshdesk, Jira or ServiceNow); dead letters are listed in its metadata.
- `play_effectiveness`: treated vs holdout save rate and ARR retained, overall and per play, with
  confidence intervals, sample sizes and a plain verdict (`models.experiment.effectiveness`).

The experiment unit (an account, counted once) is defined in `models/experiment/outcomes.py`.
"""

import dagster as dg

from models.charts import png_markdown
import pandas as pd

from assets.metadata import clean, markdown_table
from assets.metadata import table as metadata_table
from assets.run_clock import run_now
from connectors.policy_source import PolicyResource
from connectors.writeback import CRMWriterResource, dead_letters
from connectors.queue.resource import QueueStoreResource
from connectors.queue.store import QueueStore
from models.experiment.effectiveness import effectiveness_chart
from models.experiment.outcomes import (
    compare_groups,
    effectiveness_frame,
    experiment_units,
    rescue_outcome_frame,
)

GROUP = "feedback"
OWNERS = ["team:cs-ops"]

def read_rescue_outcomes(store: QueueStore) -> pd.DataFrame:
    """`rescue_outcome_frame` of everything in the queue store."""
    return rescue_outcome_frame(store.list_cases(), store.plays(), store.routing_log(), store.holdout_outcomes())


rescue_actions = dg.AssetSpec(
    "rescue_actions",
    group_name=GROUP,
    kinds={"sqlite", "postgres"},
    owners=OWNERS,
    description=(
        "The rescue team's work in the queue store: cases, plays, resolutions, holdout log.\n\n"
        "Written by `rescue_queue` (cases, holdout log) and by the team through `rescue queue` and the desk "
        "(plays, resolutions, renewal outcomes); not materialized by a job. `rescue_actions_sensor` "
        "observes it and requests a `feedback_job` run when a play is logged or a CRM write is queued. "
        "No edge from `rescue_queue` is drawn: it would close a cycle through the model, and the loop "
        "closes across runs."
    ),
)


@dg.asset(group_name=GROUP, kinds={"pandas"}, owners=OWNERS, deps=[rescue_actions])
def rescue_outcomes(context: dg.AssetExecutionContext, queue: QueueStoreResource) -> pd.DataFrame:
    """Treated and held-out accounts with their plays and renewal outcomes: the experiment's units.

    Read from the queue store (`rescue_actions`). The next weekly retrain reads it (`training_set`
    drops the rows of treated accounts) and `play_effectiveness` compares the two groups: the
    feedback loop closes across runs, from the cases earlier daily runs opened to the next model.
    """
    frame = read_rescue_outcomes(queue.get_client())
    summary = (frame.assign(outcome=frame["outcome"].fillna("pending"))
               .groupby(["group", "outcome"]).size().unstack(fill_value=0))
    context.add_output_metadata(clean({
        "dagster/row_count": len(frame),
        "treated": int((frame["group"] == "treated").sum()),
        "holdout": int((frame["group"] == "holdout").sum()),
        "by_outcome": (metadata_table(summary.rename_axis(index="group", columns=None), index=True) if len(summary)
                       else dg.MetadataValue.text("(no outcomes yet)")),
        "latest": dg.MetadataValue.md(markdown_table(frame.tail(10).assign(plays=lambda f: f["plays"].map(", ".join)),
                                                     empty="(empty)")),
    }))
    return frame


class WritebackConfig(dg.Config):
    now: str = ""  # ISO timestamp that pins the whole run's clock (`assets.run_clock`); empty = the rule


@dg.asset(group_name=GROUP, kinds={"python"}, owners=OWNERS, deps=["rescue_queue"])
def crm_writeback(
    context: dg.AssetExecutionContext, config: WritebackConfig, queue: QueueStoreResource, crm_writer: CRMWriterResource
) -> dg.MaterializeResult:
    """CRM write-back: delivers the outbox's Tasks, account health fields and notes on open tickets.

    Tasks per case and per play and the account health fields go to the CRM `RESCUE_CRM` picks;
    notes go on the accounts' open escalated tickets when `RESCUE_TICKET_WRITEBACK` names a
    ticketing system (`connectors.ticket_notes`)."""
    store = queue.get_client()
    now = run_now(context)
    report = crm_writer.deliver(store, now=now)
    notes, note_stats = crm_writer.deliver_ticket_notes(store, now=now)
    for what, run in (("CRM", report), ("Ticketing system", notes)):
        if run.open_circuits:
            context.log.warning(f"{what} unreachable: {run.deferred} write(s) deferred to the next run "
                                f"(circuit open on {', '.join(run.open_circuits)}); nothing was lost")
    dead = dead_letters(store)
    pending = store.outbox("pending")
    return dg.MaterializeResult(metadata=clean({
        "attempted": report.attempted,
        "delivered": report.delivered,
        "failed": report.failed,
        "dead": report.dead,
        "deferred": report.deferred,
        "circuit_open": ", ".join(report.open_circuits) or "no",
        "pending": int((pending["channel"] == "crm").sum()),
        "ticket_notes": (f"{note_stats.posted} posted, {note_stats.already_there} already there, "
                         f"{len(note_stats.no_record)} with no open ticket (no record), {notes.failed} failed, "
                         f"{notes.dead} dead" if crm_writer.ticket_notes and crm_writer.ticket_notes.target
                         else "off (RESCUE_TICKET_WRITEBACK unset)"),
        "ticket_notes_pending": int((pending["channel"] == "ticketing").sum()),
        "dead_letters_total": len(dead),
        "dead_letters": dg.MetadataValue.md(markdown_table(dead.tail(20))),
    }))


@dg.asset(group_name=GROUP, kinds={"pandas"}, owners=OWNERS)
def play_effectiveness(context: dg.AssetExecutionContext, rescue_outcomes: pd.DataFrame,
                       policy: PolicyResource) -> pd.DataFrame:
    """Save rate and ARR retained of treated vs holdout accounts, overall and per play, with CIs.

    Per play of the policy's catalogue (plays logged under a former name count with the play)."""
    treated, holdout = experiment_units(rescue_outcomes)
    eff = compare_groups(treated, holdout, plays=policy.load().play_names)
    chart = png_markdown("play effectiveness", effectiveness_chart(eff), heading=False)
    context.add_output_metadata(clean({
        "verdict": eff.overall["verdict"],
        "n_treated": int(eff.overall["n_treated"]),
        "n_holdout": int(eff.overall["n_holdout"]),
        "save_rate_diff": eff.overall.get("save_rate_diff"),
        "table": metadata_table(effectiveness_frame(eff.table)),
        "chart": dg.MetadataValue.md(chart),
    }))
    return eff.table

"""Jobs: the daily scoring-and-routing run (per snapshot date), the weekly retrain and the
feedback run (CRM write-back, rescue outcomes, play effectiveness)."""

import dagster as dg

from assets.quality import freshness_checks

SOURCES = dg.AssetSelection.groups("sources")
#: The sources' freshness checks: they gate routing; the retrain, which routes nothing, skips them.
FRESHNESS = dg.AssetSelection.checks(*freshness_checks)

#: Sources (with their blocking checks), features, scores and the queue for one snapshot date.
daily_rescue_job = dg.define_asset_job(
    name="daily_rescue_job",
    selection=SOURCES
    | dg.AssetSelection.assets("churn_outcomes", "crm_writeback")
    | dg.AssetSelection.groups("features", "scoring", "routing"),
    description="Pull and validate sources, compute features, score and route one snapshot date; push cases to the CRM.",
)

#: Sources, the training set and the churn model (champion/challenger).
weekly_retrain_job = dg.define_asset_job(
    name="weekly_retrain_job",
    selection=(SOURCES | dg.AssetSelection.assets("churn_outcomes", "rescue_outcomes") | dg.AssetSelection.groups("model"))
    - FRESHNESS,
    description="Retrain the churn model on the latest history and promote it only if it passes the gate.",
)

#: What the rescue team did, back to the CRM and into the outcomes and the play-effectiveness report.
feedback_job = dg.define_asset_job(
    name="feedback_job",
    selection=dg.AssetSelection.groups("feedback"),
    description="Deliver CRM write-backs, collect rescue outcomes and measure play effectiveness.",
)

#: Only in the Definitions when `RESCUE_SOURCES` names a source (`assets.landing`).
landing_job = dg.define_asset_job(
    name="landing_job",
    selection=dg.AssetSelection.groups("landing"),
    description=("Land the sources RESCUE_SOURCES names into the warehouse with dlt (each from its saved cursor), "
                 "then map them into the canonical tables (landed_mapping)."),
)

all_jobs = [daily_rescue_job, weekly_retrain_job, feedback_job]

"""Jobs: the daily scoring-and-routing run (per snapshot date) and the weekly retrain."""

import dagster as dg

SOURCES = dg.AssetSelection.groups("sources")

#: Sources (with their blocking checks), features, scores and the queue for one snapshot date.
daily_rescue_job = dg.define_asset_job(
    name="daily_rescue_job",
    selection=SOURCES
    | dg.AssetSelection.assets("churn_outcomes")
    | dg.AssetSelection.groups("features", "scoring", "routing", "operations"),
    description="Pull and validate sources, compute features, score and route one snapshot date.",
)

#: Sources, the training set and the churn model (champion/challenger).
weekly_retrain_job = dg.define_asset_job(
    name="weekly_retrain_job",
    selection=SOURCES | dg.AssetSelection.assets("churn_outcomes") | dg.AssetSelection.groups("model"),
    description="Retrain the churn model on the latest history and promote it only if it passes the gate.",
)

all_jobs = [daily_rescue_job, weekly_retrain_job]

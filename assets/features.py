"""Feature assets: churn outcomes (labels) and account features as of each snapshot date."""


import dagster as dg
import pandas as pd

from assets.metadata import clean
from assets.metadata import table as metadata_table
from assets import stages
from assets.partitions import snapshot_date, snapshot_partitions
from connectors.warehouse import WarehouseResource
from models.contracts import CHURN_OUTCOMES
from models.churn.attributes import attributes_rule
from models.churn.features import FEATURE_NAMES
from models.churn.labels import churn_outcomes as derive_churn_outcomes

GROUP = "features"
OWNERS = ["team:data"]


@dg.asset(group_name=GROUP, kinds={"pandas"}, owners=OWNERS)
def churn_outcomes(context: dg.AssetExecutionContext, warehouse: WarehouseResource, crm_renewals: pd.DataFrame) -> pd.DataFrame:
    """Churn events (renewals closed as churned): the labels of the churn model.

    Also kept as the warehouse table `churn_outcomes`, which `rescue policy simulate` reads."""
    out = derive_churn_outcomes(crm_renewals)
    warehouse.get_client().write_table("churn_outcomes", out)
    context.add_output_metadata(clean(
        {
            "dagster/row_count": len(out),
            "arr_lost": dg.MetadataValue.float(float(out["arr_lost"].sum())),
            "contract": dg.MetadataValue.text(CHURN_OUTCOMES.description),
        }
    ))
    return out


@dg.asset(
    group_name=GROUP,
    kinds={"pandas"},
    owners=OWNERS,
    partitions_def=snapshot_partitions,
    deps=["product_usage_daily"],
)
def account_features(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    crm_accounts: pd.DataFrame,
    crm_renewals: pd.DataFrame,
    support_tickets: pd.DataFrame,
    churn_outcomes: pd.DataFrame,
    crm_account_history: pd.DataFrame | None,
) -> pd.DataFrame:
    """Features of every live account as of the snapshot date, from data strictly before it.

    ARR, plan, seats, segment and owner come from the account history as of the date, when one
    is landed."""
    as_of = snapshot_date(context)
    feats = stages.snapshot_features(warehouse.get_client(), crm_accounts, crm_renewals, support_tickets, churn_outcomes, as_of,
                                     account_history=crm_account_history)
    context.add_output_metadata(clean(
        {
            "attributes": dg.MetadataValue.text(attributes_rule(crm_account_history)),
            "dagster/row_count": len(feats),
            "snapshot_date": dg.MetadataValue.text(str(as_of.date())),
            "features": dg.MetadataValue.int(len(FEATURE_NAMES)),
            "missing_share": metadata_table(feats[FEATURE_NAMES].isna().mean().rename("missing_share")
                                            .rename_axis("feature").to_frame(), index=True),
        }
    ))
    return feats

"""Blocking Great Expectations checks on every source.

A failing check stops everything downstream in the run: bad data never reaches routing and the
rescue queue is left untouched. The check metadata names each failing column with the number
of bad rows and examples; an empty source table fails its own check by name, and the checks
that look up accounts do not blame their table when the accounts have no ids (`models.quality`).
"""


import dagster as dg
import pandas as pd

from assets.sources import NO_HISTORY, crm_account_history, crm_accounts, crm_renewals, product_usage_daily, support_tickets
from connectors.warehouse import WarehouseResource
from models.contracts import ACCOUNT_HISTORY, ACCOUNTS, RENEWALS, TICKETS, USAGE_DAILY, TableContract, conform, empty_frame
from models.quality import QualityResult, validate_frame

#: Usage is validated over the most recent days: the window every snapshot reads.
USAGE_CHECK_DAYS = 120


def _result(res: QualityResult) -> dg.AssetCheckResult:
    metadata = {
        "rows": dg.MetadataValue.int(res.rows),
        "expectations": dg.MetadataValue.int(res.evaluated),
        "failed": dg.MetadataValue.int(len(res.failures)),
        "summary": dg.MetadataValue.text(res.summary()),
    }
    if res.notes:
        metadata["not_checked"] = dg.MetadataValue.text("; ".join(res.notes))
    if res.failures:
        metadata["failures"] = dg.MetadataValue.md(res.markdown())
        metadata["failing_columns"] = dg.MetadataValue.text(", ".join(sorted({f.column for f in res.failures})))
    return dg.AssetCheckResult(passed=res.success, metadata=metadata, severity=dg.AssetCheckSeverity.ERROR)


def _check(df: pd.DataFrame, contract: TableContract, known: pd.DataFrame | None = None) -> dg.AssetCheckResult:
    ids = None if known is None or "account_id" not in known.columns else known["account_id"]
    return _result(validate_frame(df, contract, known_accounts=ids))


@dg.asset_check(asset=crm_accounts, blocking=True, description="Accounts satisfy the accounts contract (GX suite).")
def crm_accounts_contract(crm_accounts: pd.DataFrame) -> dg.AssetCheckResult:
    return _check(crm_accounts, ACCOUNTS)


@dg.asset_check(
    asset=crm_renewals,
    blocking=True,
    additional_ins={"crm_accounts": dg.AssetIn("crm_accounts")},
    description="Renewals satisfy the renewals contract and reference known accounts (GX suite).",
)
def crm_renewals_contract(crm_renewals: pd.DataFrame, crm_accounts: pd.DataFrame) -> dg.AssetCheckResult:
    return _check(crm_renewals, RENEWALS, crm_accounts)


@dg.asset_check(
    asset=crm_account_history,
    blocking=True,
    additional_ins={"crm_accounts": dg.AssetIn("crm_accounts")},
    description="The account history, where one is landed, satisfies its contract and references known accounts (GX suite).",
)
def crm_account_history_contract(crm_account_history: pd.DataFrame | None, crm_accounts: pd.DataFrame) -> dg.AssetCheckResult:
    if crm_account_history is None:
        return dg.AssetCheckResult(passed=True, description=NO_HISTORY, metadata={"landed": False})
    return _check(crm_account_history, ACCOUNT_HISTORY, crm_accounts)


@dg.asset_check(
    asset=support_tickets,
    blocking=True,
    additional_ins={"crm_accounts": dg.AssetIn("crm_accounts")},
    description="Tickets satisfy the tickets contract, reference known accounts, have possible dates (GX suite).",
)
def support_tickets_contract(support_tickets: pd.DataFrame, crm_accounts: pd.DataFrame) -> dg.AssetCheckResult:
    return _check(support_tickets, TICKETS, crm_accounts)


@dg.asset_check(
    asset=product_usage_daily,
    blocking=True,
    additional_ins={"crm_accounts": dg.AssetIn("crm_accounts")},
    description=f"The last {USAGE_CHECK_DAYS} days of usage satisfy the usage contract (GX suite).",
)
def product_usage_daily_contract(warehouse: WarehouseResource, crm_accounts: pd.DataFrame) -> dg.AssetCheckResult:
    client = warehouse.get_client()
    last = client.read_sql("SELECT MAX(date) AS last_day FROM usage_daily").iloc[0]["last_day"]
    if last is None or pd.isna(last):
        return _check(empty_frame(USAGE_DAILY), USAGE_DAILY, crm_accounts)
    end = pd.Timestamp(last) + pd.Timedelta(days=1)
    raw = client.read_sql(
        "SELECT * FROM usage_daily WHERE date >= :start",
        {"start": (end - pd.Timedelta(days=USAGE_CHECK_DAYS)).date()},
    )
    return _check(conform(raw, USAGE_DAILY, lenient=True), USAGE_DAILY, crm_accounts)


source_checks = [crm_accounts_contract, crm_renewals_contract, crm_account_history_contract, support_tickets_contract,
                 product_usage_daily_contract]

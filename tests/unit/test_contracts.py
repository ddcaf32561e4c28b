"""Data contracts: coercion, clear errors, and docs that match the code."""

from pathlib import Path

import pandas as pd
import pytest

from models.contracts import ACCOUNTS, TICKETS, ContractError, conform, describe_contracts_markdown, empty_frame

REPO = Path(__file__).resolve().parents[2]


def _accounts(**overrides):
    row = {
        "account_id": "A1", "name": "Acme", "segment": "smb", "industry": None, "region": "emea",
        "arr": "1200.50", "plan": "pro", "seats": "12", "csm_owner": "ana", "created_at": "2025-01-02T10:00:00Z",
        "extra": 1,
    }
    row.update(overrides)
    return pd.DataFrame([row])


def test_conform_coerces_text_numbers_and_dates_and_drops_extras():
    out = conform(_accounts(), ACCOUNTS)
    assert list(out.columns) == ACCOUNTS.column_names
    assert out["arr"].dtype == "float64" and out.loc[0, "arr"] == 1200.5
    assert out["seats"].dtype == "int64"
    assert out.loc[0, "created_at"] == pd.Timestamp("2025-01-02 10:00:00")


def test_conform_names_missing_columns_and_bad_types():
    with pytest.raises(ContractError, match=r"accounts: missing column\(s\) arr, seats"):
        conform(_accounts().drop(columns=["arr", "seats"]), ACCOUNTS)
    with pytest.raises(ContractError, match=r"accounts\.seats: cannot read as int"):
        conform(_accounts(seats="twelve"), ACCOUNTS)
    with pytest.raises(ContractError, match=r"accounts\.seats"):
        conform(_accounts(seats="1.5"), ACCOUNTS)


def test_lenient_conform_keeps_raw_values_for_the_checks():
    out = conform(_accounts(arr="lots").drop(columns=["plan"]), ACCOUNTS, lenient=True)
    assert "plan" not in out.columns
    assert out.loc[0, "arr"] == "lots"


def test_booleans_from_text():
    t = conform(
        pd.DataFrame({
            "ticket_id": ["t1", "t2"], "account_id": ["A1", "A1"], "created_at": ["2025-01-01", "2025-01-02"],
            "first_response_at": [None, None], "solved_at": [None, None], "priority": ["low", "urgent"],
            "category": ["bug", None], "status": ["open", "open"], "csat": [None, None], "escalated": ["yes", "0"],
        }),
        TICKETS,
    )
    assert t["escalated"].tolist() == [True, False]
    with pytest.raises(ContractError, match="tickets.escalated"):
        conform(t.assign(escalated=["maybe", "no"]), TICKETS)


def test_empty_frame_has_contract_dtypes():
    e = empty_frame(ACCOUNTS)
    assert list(e.columns) == ACCOUNTS.column_names and len(e) == 0
    assert e["created_at"].dtype == "datetime64[ns]"


def test_docs_contracts_md_matches_the_code():
    doc = (REPO / "docs" / "contracts.md").read_text()
    assert doc.strip() == describe_contracts_markdown().strip(), "regenerate: rescue demo contracts > docs/contracts.md"


def test_every_number_of_every_contract_has_a_finite_declared_range():
    from models.contracts import CONTRACTS

    for contract in CONTRACTS.values():
        for c in contract.columns:
            if c.numeric:
                assert c.min_value is not None and c.max_value is not None, f"{contract.name}.{c.name} has no range"
                assert float("-inf") < c.min_value <= c.max_value < float("inf"), f"{contract.name}.{c.name}"


def test_account_ids_have_the_queue_column_length_and_sources_may_not_be_empty():
    from connectors.queue import schema
    from models.contracts import ACCOUNT_ID_CHARS, CONTRACTS

    for contract in CONTRACTS.values():
        assert contract.column("account_id").max_length == ACCOUNT_ID_CHARS
    for table in schema.METADATA.tables.values():
        if "account_id" in table.c:
            assert table.c.account_id.type.length == ACCOUNT_ID_CHARS, table.name
    assert [c.name for c in CONTRACTS.values() if c.may_be_empty] == ["churn_outcomes"]


def _signups(*dates: str) -> pd.DataFrame:
    return pd.concat([_accounts(account_id=f"A{i}", created_at=d) for i, d in enumerate(dates)], ignore_index=True)


def test_a_day_month_text_date_is_refused_unless_its_order_is_declared():
    # a company's dd-mm-yyyy export: 03-04-2024 is the 3rd of April, 13-04-2024 the 13th
    export = _signups("03-04-2024", "13-04-2024", "2024-01-05T10:00:00Z")
    with pytest.raises(ContractError, match=r"accounts\.created_at: .*day/month order of '03-04-2024' is ambiguous"):
        conform(export, ACCOUNTS)
    day_first = conform(export, ACCOUNTS, day_first=True)["created_at"].tolist()
    # an ISO date in the same column keeps its own order (dayfirst would read it as May 1st)
    assert day_first == [pd.Timestamp("2024-04-03"), pd.Timestamp("2024-04-13"), pd.Timestamp("2024-01-05 10:00")]
    formatted = conform(_signups("03-04-2024", "13-04-2024"), ACCOUNTS, date_formats={"created_at": "%d-%m-%Y"})
    assert formatted["created_at"].tolist() == [pd.Timestamp("2024-04-03"), pd.Timestamp("2024-04-13")]
    # declared month first, 13-04-2024 is no date: refused, not quietly swapped
    with pytest.raises(ContractError, match="'13-04-2024' is not a date month first"):
        conform(export, ACCOUNTS, day_first=False)
    assert conform(_signups("04/03/2024"), ACCOUNTS, day_first=False)["created_at"].tolist() == [pd.Timestamp("2024-04-03")]
    # lenient: the raw text stays for the quality check to count and name
    assert conform(export, ACCOUNTS, lenient=True)["created_at"].tolist()[:2] == ["03-04-2024", "13-04-2024"]


def test_unambiguous_text_dates_need_no_declaration():
    out = conform(_signups("2024-04-03", "2024/04/03 10:00", "3 Apr 2024", "2024-04-03T10:00:00+02:00"), ACCOUNTS)
    assert out["created_at"].dt.date.astype(str).tolist() == ["2024-04-03"] * 4

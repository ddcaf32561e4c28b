"""The one formatting path of asset metadata (`assets.metadata`): numbers rounded to 3 decimals,
missing values as a dash, tables typed; and the figures it formats (calibration deciles, queue head)."""

import math

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from assets.metadata import DASH, clean, markdown_table, rounded, table
from assets.routing import QUEUE_HEAD_COLUMNS, queue_head_table
from models.churn.evaluation import calibration_plot, calibration_table
from tests.metadata_display import display_problems


@pytest.mark.parametrize(("given", "shown"), [
    (0.94712345, 0.947), (np.float32(0.5), 0.5), (-0.0001, 0.0), (12345.6789, 12345.679),
    (np.int64(7), 7), (True, True), (None, DASH), (float("nan"), DASH), (np.nan, DASH),
    (float("inf"), DASH), (pd.NaT, DASH), (pd.NA, DASH), (pd.Timestamp("2026-11-20"), "2026-11-20"),
    ("text", "text"),
])
def test_a_value_is_rounded_or_a_dash(given, shown):
    out = rounded(given)
    assert out == shown and type(out) is type(shown)


def test_a_whole_mapping_is_formatted_entry_by_entry():
    out = clean({
        "roc_auc": 0.94712345, "missing": float("nan"), "rows": np.int64(3), "none": None, "flag": np.bool_(True),
        "nested": {"low": [0.123456, np.nan], "name": "m1"}, "already": dg.MetadataValue.float(1.23456),
        "json": dg.MetadataValue.json({"p": 0.33333333}), "md": dg.MetadataValue.md("**kept**"),
    })
    assert out["roc_auc"] == dg.MetadataValue.float(0.947)
    assert out["missing"] == dg.MetadataValue.text(DASH) and out["none"] == dg.MetadataValue.text(DASH)
    assert out["rows"] == dg.MetadataValue.int(3) and out["flag"] == dg.MetadataValue.bool(True)
    assert out["nested"].data == {"low": [0.123, DASH], "name": "m1"}
    assert out["already"].value == 1.235 and out["json"].data == {"p": 0.333}
    assert out["md"].value == "**kept**"
    assert display_problems(out) == []


def test_a_frame_is_a_typed_table_with_rounded_cells_and_dashes():
    frame = pd.DataFrame({"score": [0.123456, np.nan], "name": ["a", None], "n": [1, 2],
                          "due": pd.to_datetime(["2026-11-20 10:30", None])})
    shown = table(frame, columns={"name": "account", "score": "risk", "n": "n", "due": "SLA due"})
    assert [(c.name, c.type) for c in shown.schema.columns] == [("account", "string"), ("risk", "float"),
                                                                 ("n", "int"), ("SLA due", "date")]
    assert [r.data for r in shown.records] == [{"account": "a", "risk": 0.123, "n": 1, "SLA due": "2026-11-20 10:30"},
                                               {"account": DASH, "risk": DASH, "n": 2, "SLA due": DASH}]
    assert display_problems({"t": shown}) == []
    again = clean({"t": dg.MetadataValue.table([dg.TableRecord({"x": 0.98765})], schema=shown.schema)})
    assert again["t"].records[0].data == {"x": 0.988}


def test_a_markdown_table_has_no_nan_and_no_long_decimals():
    text = markdown_table(pd.DataFrame({"psi": [0.123456, np.nan], "feature": ["wau_trend", None]}))
    assert "nan" not in text.lower() and "0.123 " in text and DASH in text
    assert markdown_table(pd.DataFrame(), empty="(none)") == "(none)"
    assert display_problems({"md": dg.MetadataValue.md(text)}) == []


def test_the_display_check_finds_what_the_ui_would_show_badly():
    """The check the pipeline tests apply can fail: long decimals and "nan" wherever they are."""
    bad = {
        "float": dg.MetadataValue.float(0.94712345),
        "md": dg.MetadataValue.md(pd.DataFrame({"x": [np.nan, 0.5]}).to_markdown()),
        "json": dg.MetadataValue.json({"auc": [0.9, 0.91234]}),
        "table": dg.MetadataValue.table([dg.TableRecord({"x": 0.12345})]),
        "text": dg.MetadataValue.text("mean 0.123456"),
    }
    found = display_problems(bad)
    assert [p.split(":")[0].split("[")[0].split(".")[0] for p in found] == ["float", "md", "json", "table", "text"]
    picture = dg.MetadataValue.md("![roc](data:image/png;base64,iVBORw0KGgo+nan/0.123456==)")
    assert display_problems({"plot": picture}) == []


def test_calibration_deciles_cover_every_row_in_order():
    rng = np.random.default_rng(3)
    p = rng.beta(0.6, 8, 2000)
    y = rng.random(2000) < p
    deciles = calibration_table(y, p)
    assert list(deciles["bin"]) == list(range(1, 11)) and deciles["rows"].sum() == 2000
    assert deciles["mean_predicted"].is_monotonic_increasing
    assert math.isclose((deciles["observed_rate"] * deciles["rows"]).sum(), y.sum())
    assert np.allclose(deciles["observed_minus_predicted"], deciles["observed_rate"] - deciles["mean_predicted"])
    assert calibration_table([1, 0], [0.2, 0.4], bins=10)["rows"].tolist() == [1, 1]  # fewer rows than bins


def test_the_calibration_plot_spans_the_bins_not_the_unit_square():
    from io import BytesIO

    from PIL import Image

    rng = np.random.default_rng(3)
    p = rng.beta(0.6, 8, 2000)
    png = calibration_plot(rng.random(2000) < p, {"model": p})
    width, height = Image.open(BytesIO(png)).size
    assert width >= 500 and 1.1 < width / height < 1.5  # a normal figure, not a narrow one


def test_the_queue_head_is_a_table_of_priority_account_arr_sla_and_headline():
    cases = pd.DataFrame({
        "case_id": ["c1", "c2"], "account_id": ["A-1", "A-2"], "account_name": ["Acme", None],
        "priority": ["P1", "P2"], "expected_arr_at_risk": [81234.56789, np.nan],
        "sla_due_at": pd.to_datetime(["2026-11-20 10:15", None]), "reason": ["usage down 38%", None],
    })
    shown = queue_head_table(cases)
    assert [c.name for c in shown.schema.columns] == list(QUEUE_HEAD_COLUMNS.values()) \
        == ["case", "priority", "account", "ARR at risk", "SLA due", "headline"]
    assert [r.data for r in shown.records] == [
        {"case": "c1", "priority": "P1", "account": "Acme", "ARR at risk": 81234.568, "SLA due": "2026-11-20 10:15",
         "headline": "usage down 38%"},
        {"case": "c2", "priority": "P2", "account": "A-2", "ARR at risk": DASH, "SLA due": DASH, "headline": DASH},
    ]

"""How the case page words numbers: signed changes, labelled bars and the usage chart."""

from __future__ import annotations

import re

import pytest

from pipelines.desk.present import health_bars, sign_of, signed, sparkline_svg


@pytest.mark.parametrize(("value", "kwargs", "text", "sign"), [
    (-0.0004, {"scale": 100}, "0", 0),
    (-0.004, {"scale": 100}, "0", 0),
    (0.004, {"scale": 100, "unit": " pts"}, "0 pts", 0),
    (-0.0, {}, "0", 0),
    (-0.3, {}, "0", 0),
    (-0.6, {}, "-1", -1),
    (0.14, {"scale": 100, "unit": " pts"}, "+14 pts", 1),
    (-12.0, {}, "-12", -1),
    (-0.04, {"digits": 1}, "0.0", 0),
    (-0.06, {"digits": 1}, "-0.1", -1),
    (None, {}, "", 0),
    (float("nan"), {}, "", 0),
])
def test_a_change_is_never_minus_zero_and_signed_only_when_it_is_not_zero(value, kwargs, text, sign) -> None:
    assert signed(value, **kwargs) == text
    assert sign_of(value, **{k: v for k, v in kwargs.items() if k != "unit"}) == sign
    assert not re.match(r"^[-+]0(\.0+)?($|[^.\d])", text)  # no "-0", "+0", "-0.0 pts"


def test_health_bars_fill_with_health_and_the_model_bar_is_churn_risk_filling_with_risk() -> None:
    bars = health_bars({"usage": 31.0, "support": 48.0, "relationship": 62.0, "model_risk": 0.0}, 0.67)
    by_key = {b.key: b for b in bars}
    assert set(by_key) == {"usage", "support", "relationship", "churn_risk"}
    assert (by_key["usage"].label, by_key["usage"].text, by_key["usage"].fill, by_key["usage"].kind) == \
        ("Usage health", "31 / 100", 31.0, "health")
    risk = by_key["churn_risk"]
    # model_risk 0 is the most risk there is: the bar shows that as a full risk bar, not an empty one
    assert (risk.label, risk.text, risk.fill, risk.kind) == ("Churn risk (model)", "67%", 67.0, "risk")
    assert health_bars({"usage": 140.0}, None)[0].fill == 100.0
    assert health_bars({}, None) == []


def _texts(svg: str) -> dict[str, str]:
    return dict(re.findall(r'<t(?:ext|span) class="([\w-]+)"[^>]*>([^<]*)</t(?:ext|span)>', svg))


def test_the_usage_chart_labels_its_axis_and_its_first_and_last_values() -> None:
    svg = str(sparkline_svg([42.0, 41.5, 40.0, 33.0, 24.5]))
    labels = _texts(svg)
    assert labels == {"y-max": "42", "y-min": "0", "first": "42", "last": "24.5"}
    assert "5 weeks ago: " in svg and "last week" in svg
    assert 'class="spark down"' in svg and "width=" not in svg.split(">", 1)[0]  # scales with its box


def test_a_tiny_flat_series_reads_as_its_value_on_a_zero_based_scale() -> None:
    svg = str(sparkline_svg([0.14, 0.14, 0.14, 0.14]))
    labels = _texts(svg)
    assert labels["first"] == labels["last"] == labels["y-max"] == "0.14" and labels["y-min"] == "0"
    ys = [float(y) for y in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', svg)]
    assert len(set(ys)) == 1  # flat stays flat, at the top of a 0-to-max scale
    zero = str(sparkline_svg([0.0, 0.0, 0.0]))
    assert _texts(zero)["last"] == "0"
    assert "Not enough usage history" in str(sparkline_svg([3.0]))

"""The policy swimlane diagram: content, readability (no overlapping text), stable bytes."""

from __future__ import annotations

import html
import itertools
import re
from pathlib import Path

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
import pytest
from matplotlib.patches import FancyBboxPatch, Rectangle
from matplotlib.text import Text

from models.policy.conditions import parse_condition
from models.policy.diagram import (
    STYLE,
    condition_text,
    minutes_text,
    policy_figure,
    render_policy_diagram,
    step_trigger_text,
)
from models.policy.loader import load_policy, parse_policy

POLICIES = Path(__file__).resolve().parents[2] / "policies"
DEFAULT = load_policy(POLICIES / "default.yaml")


@pytest.fixture(scope="module")
def default_svg() -> bytes:
    return render_policy_diagram(DEFAULT, fmt="svg")


@pytest.fixture(scope="module")
def svg_text(default_svg: bytes) -> str:
    svg = default_svg.decode("utf-8")
    return "\n".join(html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg))


def all_steps(policy):
    for steps in policy.ladders.values():
        yield from steps
    for per_priority in policy.team_ladders.values():
        for steps in per_priority.values():
            yield from steps


def test_condition_text_reads_like_the_rule():
    rule = next(r for r in DEFAULT.severity_rules if r.id == "enterprise_renewal_at_risk")
    assert condition_text(rule.when) == "segment = enterprise and churn_risk >= 0.3 and days_to_renewal in 0..120"
    usage = next(r for r in DEFAULT.severity_rules if r.id == "high_risk_fast_decline")
    assert condition_text(usage.when) == "churn_risk >= 0.35 and wau_trend <= -0.3"
    nested = parse_condition({"all": [{"field": "churn_risk", "op": ">=", "value": 0.35}, {"any": [
        {"field": "wau_trend", "op": "<=", "value": -0.3}, {"field": "churn_risk_delta", "op": ">=", "value": 0.1}]}]})
    assert condition_text(nested) == "churn_risk >= 0.35 and (wau_trend <= -0.3 or churn_risk_delta >= 0.1)"
    tree = parse_condition({"any": [
        {"all": [{"field": "vip", "op": "==", "value": True}, {"field": "region", "op": "in", "value": ["emea", "apac"]}]},
        {"not": {"field": "csm_owner", "op": "is_null", "value": True}},
        {"field": "plan", "op": "not_in", "value": ["free"]},
        {"field": "renewal_date", "op": "<", "value": "2026-03-01"},
    ]})
    assert condition_text(tree) == ("(vip = true and region in {emea, apac}) or not (csm_owner is missing) "
                                    "or plan not in {free} or renewal_date < 2026-03-01")


def test_step_times_in_words():
    steps = {s.id: s for s in all_steps(DEFAULT)}
    assert step_trigger_text(steps["legal_p1_untouched_15m"], "P1", DEFAULT) == "after 15 business min without first touch"
    assert step_trigger_text(steps["p2_untouched_reassign"], "P2", DEFAULT) == "after 4 business h without first touch"
    assert step_trigger_text(steps["p1_first_touch_warning"], "P1", DEFAULT) == \
        "at 75% of first-touch SLA (22.5 business min)"
    assert step_trigger_text(steps["p1_resolution_breach"], "P1", DEFAULT) == "at resolution SLA breach (16 business h)"
    assert minutes_text(90) == "90 business min" and minutes_text(150) == "2.5 business h"


def test_every_team_is_a_lane_and_every_ladder_step_is_drawn(svg_text):
    for key, team in DEFAULT.teams.items():
        assert team.name in svg_text
        assert f"{key} · tier {team.tier}" in svg_text
    for step in all_steps(DEFAULT):
        assert re.search(rf"\d+\. {re.escape(step.id)}\n", svg_text), step.id
    for rule in DEFAULT.severity_rules:
        assert f"{rule.priority} · {rule.id}" in svg_text
    assert "when open_compliance_tickets >= 1" in svg_text
    assert "after 30 business min without first touch" in svg_text
    assert "→ reassign to CS Leadership" in svg_text
    # RACI resolved to people and channels.
    for text in ("Responsible", "Informed", "Ruth Adeyemi", "Ines Duarte", "account CSM",
                 "security-officer@example.com", "legal channels"):
        assert text in svg_text


def test_escalations_received_get_their_own_ladder_row():
    # Ladder rows (one priority tag each): csm P2/P3/P4, rescue_squad P1/P2, legal P1 from the
    # rules, and leadership P1/P2, which no rule routes to but escalations do.
    texts = [t.get_text() for t in policy_figure(DEFAULT).findobj(Text)]
    assert sorted(t for t in texts if t in ("P1", "P2", "P3", "P4")) == ["P1", "P1", "P1", "P2", "P2", "P2", "P3", "P4"]
    joined = "\n".join(texts)
    assert "16. p1_first_touch_warning\n" in joined and "20. p2_first_touch_warning\n" in joined
    assert "leadership · P1" in texts and "leadership · P2" in texts  # their RACI rows
    # A top-tier reassign step says what it really does.
    assert "→ notify (top tier: nobody to reassign to)" in joined


def assert_readable(policy) -> int:
    """No two texts overlap, no two boxes overlap, every text is inside the figure and either
    inside a box or clear of it. Returns the number of texts checked."""
    with matplotlib.rc_context(STYLE):
        fig = policy_figure(policy)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        texts = [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]
        extents = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
        boxes = [p.get_window_extent(renderer) for p in fig.findobj(FancyBboxPatch)]
        panels = [p.get_window_extent(renderer) for p in fig.findobj(Rectangle)]  # lanes, headers, table rows
    figure_box = fig.bbox
    for text, box in extents:
        assert figure_box.x0 <= box.x0 and box.x1 <= figure_box.x1, text
        assert figure_box.y0 <= box.y0 and box.y1 <= figure_box.y1, text
    for (a_text, a), (b_text, b) in itertools.combinations(extents, 2):
        assert not a.overlaps(b), f"{a_text!r} overlaps {b_text!r}"
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), f"boxes at {a.bounds} and {b.bounds} overlap"
    for text, box in extents:
        for patch in boxes + panels:
            inside = (patch.x0 <= box.x0 and box.x1 <= patch.x1 and patch.y0 <= box.y0 and box.y1 <= patch.y1)
            assert inside or not patch.overlaps(box), f"{text!r} crosses the edge of a box"
    return len(extents)


def test_no_text_overlaps_and_every_text_fits_its_box():
    assert assert_readable(DEFAULT) > 200


def test_long_conditions_and_names_grow_their_row_instead_of_spilling():
    long_rule = ("when:\n      any:\n" + "".join(
        f"        - {{field: {field}, op: \">=\", value: {value}}}\n"
        for field, value in [("churn_risk", 0.9), ("churn_risk_delta", 0.25), ("open_urgent_tickets", 3),
                             ("oldest_open_urgent_hours", 48), ("days_to_renewal", 30), ("wau_trend", 0.5),
                             ("churn_risk", 0.95), ("churn_risk_delta", 0.4)]))
    text = (POLICIES / "default.yaml").read_text()
    text = text.replace('when: {field: open_compliance_tickets, op: ">=", value: 1}', long_rule.rstrip("\n"), 1)
    text = text.replace("description: Open compliance, legal or security ticket", "description: Any of many signs", 1)
    text = text.replace("name: Legal and Compliance",
                        "name: Legal, Compliance, Security, Privacy, Export Control and Data Protection Office "
                        "for EMEA, APAC and the Americas")
    policy = parse_policy(text)
    assert len(condition_text(policy.severity_rules[0].when)) > 200
    assert assert_readable(policy) > 200


def test_same_policy_same_bytes_and_a_change_shows(default_svg):
    assert default_svg.startswith(b"<?xml") and b"<dc:date>" not in default_svg
    assert render_policy_diagram(DEFAULT, fmt="svg") == default_svg
    png = render_policy_diagram(DEFAULT, fmt="png")
    assert png.startswith(b"\x89PNG") and render_policy_diagram(DEFAULT, fmt="png") == png
    changed = parse_policy((POLICIES / "default.yaml").read_text().replace("after_minutes: 15", "after_minutes: 20"))
    svg = render_policy_diagram(changed, fmt="svg")
    assert svg != default_svg
    assert b"after 20 business min without first touch" in svg


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown diagram format 'pdf'"):
        render_policy_diagram(DEFAULT, fmt="pdf")  # type: ignore[arg-type]


def test_the_other_shipped_policy_draws_too():
    aggressive = load_policy(POLICIES / "aggressive.yaml")
    svg = render_policy_diagram(aggressive, fmt="svg").decode()
    for team in aggressive.teams.values():
        assert team.name in svg

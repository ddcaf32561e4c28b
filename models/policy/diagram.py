"""The escalation policy drawn as the picture people reason with: swimlanes and a RACI table.

`render_policy_diagram(policy, fmt="svg")` draws, from the policy itself (so it never drifts):

- one horizontal **lane per team**, ordered by tier (first line on top), headed by the team's
  name, tier, calendar, members and channels;
- each **severity rule** as an entry box in its team's lane (priority, rule id and the condition in
  short words, numbered in the policy's first-match order), with an arrow into that team's ladder
  for the rule's priority;
- each **escalation ladder** a case of that priority meets in that team, as a row of numbered step
  boxes in firing order ("after 30 business min without first touch", "at 75% of first-touch
  SLA"), and every reassignment as an arrow from its step to the receiving team's ladder;
- under the lanes, a **RACI table** with one row per drawn step, its responsible / accountable /
  consulted / informed entries resolved to people (member names), roles that depend on the case
  (assignee, account CSM) and channels.

Ladders are per priority and may be overridden per team (`team_ladders`); a team's lane shows
the ladders of the priorities its rules route to it and of the escalations it receives.

Output is deterministic: fixed fonts and sizes, a fixed SVG hash salt and no creation date, so
the same policy always gives the same bytes (SVG text stays text, searchable and selectable).
`policy_figure` returns the matplotlib figure for callers that want to lay it out themselves.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import matplotlib
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.textpath import TextToPath

from models.policy.conditions import AllOf, Condition, Leaf, NotOf
from models.cases.ladder import RACI_KEYS, target_team
from models.charts import figure_png
from models.policy.schema import PRIORITIES, LadderStep, Policy

DiagramFormat = Literal["svg", "png"]
FORMATS: tuple[str, ...] = ("svg", "png")

#: Style fixed here (not taken from the user's matplotlib settings) so output is reproducible.
STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "svg.fonttype": "none",
    "svg.hashsalt": "churn-rescue-policy-diagram",
    "svg.image_inline": True,
    "path.simplify": False,
}
PNG_DPI = 100

PRIORITY_COLOURS: dict[str, str] = {"P1": "#f4c7c3", "P2": "#fbdcb8", "P3": "#fdf1b8", "P4": "#d9ead3"}
ACTION_COLOURS: dict[str, str] = {"warn": "#fff4c2", "notify": "#fde0c5", "reassign": "#f6cdd0"}
LANE_COLOURS: tuple[str, ...] = ("#f3f6fa", "#ffffff")
EDGE = "#4d4d4d"
ARROW = "#3d5a80"
ESCALATION_ARROW = "#b03a48"

# Geometry, in inches (the drawing axes span the figure one data unit per inch).
MARGIN = 0.3
HEADER_W = 2.5
TRIGGER_X, TRIGGER_W = MARGIN + HEADER_W + 0.2, 4.6
TAG_X, TAG_W, TAG_H = TRIGGER_X + TRIGGER_W + 0.75, 0.55, 0.34
STEP_X0 = TAG_X + TAG_W + 0.45
STEP_W, STEP_GAP = 2.6, 0.5
BOX_H, ROW_GAP, LANE_PAD = 0.72, 0.28, 0.22  # BOX_H: least box height; ROW_GAP: space between rows
TITLE_H = 0.95
TABLE_GAP = 0.55
FONT = 7.5
HEADER_FONT = 10
DETAILS_FONT = FONT - 0.5
LINE_H = FONT * 1.28 / 72  # inches per text line

_TEXT_TO_PATH = TextToPath()


# ------------------------------------------------------------------------------ condition text

_OPS = {"==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def condition_text(condition: Condition) -> str:
    """A condition tree in short words:
    ``segment = enterprise and churn_risk >= 0.6 and days_to_renewal in 0..120``.

    `all` joins with "and", `any` with "or"; a nested combinator gets parentheses; `between` is
    written ``lo..hi`` (both ends included), `in` as a set, `is_null` as "is missing"/"is set".
    """
    return _condition_text(condition, parent=None)


def _condition_text(node: Condition, parent: type | None) -> str:
    if isinstance(node, Leaf):
        return _leaf_text(node)
    if isinstance(node, NotOf):
        return f"not ({_condition_text(node.not_, NotOf)})"
    children, joiner = (node.all_, " and ") if isinstance(node, AllOf) else (node.any_, " or ")
    text = joiner.join(_condition_text(child, type(node)) for child in children)
    return f"({text})" if parent is not None and parent is not type(node) and len(children) > 1 else text


def _leaf_text(leaf: Leaf) -> str:
    if leaf.op == "is_null":
        return f"{leaf.field} {'is missing' if leaf.value else 'is set'}"
    if leaf.op == "between":
        lo, hi = leaf.value
        return f"{leaf.field} in {_value(lo)}..{_value(hi)}"
    if leaf.op in ("in", "not_in"):
        values = "{" + ", ".join(_value(v) for v in leaf.value) + "}"
        return f"{leaf.field} {'in' if leaf.op == 'in' else 'not in'} {values}"
    return f"{leaf.field} {_OPS[leaf.op]} {_value(leaf.value)}"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


# ---------------------------------------------------------------------------------- step text


def minutes_text(minutes: float) -> str:
    """Business minutes in words: "45 business min", "4 business h", "2.5 business h"."""
    if minutes < 120 or minutes % 30:
        return f"{minutes:g} business min"
    return f"{minutes / 60:g} business h"


def step_trigger_text(step: LadderStep, priority: str, policy: Policy) -> str:
    """When a step fires: "after 30 business min without first touch", "at 75% of first-touch
    SLA (22.5 business min)", "at resolution SLA breach (16 business h)"."""
    if step.after_minutes is not None:
        return f"after {minutes_text(step.after_minutes)} without first touch"
    pct = policy.sla_pct(step, priority)
    target = policy.sla[priority]  # type: ignore[index]
    goal = target.first_touch_minutes if step.clock == "first_touch" else target.resolution_minutes
    clock = step.clock.replace("_", "-")
    when = f"{clock} SLA breach" if pct >= 100 else f"{pct:g}% of {clock} SLA"
    return f"at {when} ({minutes_text(goal * pct / 100)})"


def step_action_text(step: LadderStep, team: str, policy: Policy) -> str:
    """What a step does for a case of `team`: "warn", "notify", "reassign to Rescue Squad"."""
    if step.action != "reassign":
        return step.action
    to = target_team(step, team, policy)
    if to is None:
        return "notify (top tier: nobody to reassign to)"
    return f"reassign to {policy.teams[to].name}"


# ------------------------------------------------------------------------------------ layout


@dataclass(frozen=True)
class _Ladder:
    team: str
    priority: str
    steps: list[LadderStep]


@dataclass(frozen=True)
class _Tag:
    """Where a ladder row starts: its priority tag, and the row's vertical extent."""

    x: float
    y: float
    row_top: float
    row_bottom: float


@dataclass(frozen=True)
class _DrawnStep:
    team: str
    priority: str
    step: LadderStep
    x: float
    y: float  # top of the box
    h: float


@dataclass(frozen=True)
class _LaneLayout:
    """The texts of one lane, wrapped, and the height of each of its rows."""

    key: str
    name: str  # wrapped team name
    details: str  # wrapped header details
    rules: list[tuple[str, str]]  # (priority, text)
    ladders: list[tuple[_Ladder, list[str]]]  # (ladder, text of each step)
    box_heights: list[float]

    @property
    def details_offset(self) -> float:
        """Distance from the lane's top to the top of the header details."""
        return 0.2 + _lines(self.name) * HEADER_FONT * 1.3 / 72

    @property
    def height(self) -> float:
        rows = sum(h + ROW_GAP for h in self.box_heights) + 2 * LANE_PAD
        header = self.details_offset + _lines(self.details) * DETAILS_FONT * 1.25 * 1.2 / 72 + 0.15
        return max(rows, header)


def _ordered_teams(policy: Policy) -> list[str]:
    position = {key: i for i, key in enumerate(policy.teams)}
    return sorted(policy.teams, key=lambda key: (policy.teams[key].tier, position[key]))


def _ladders(policy: Policy) -> dict[str, list[_Ladder]]:
    """Team -> the ladders its cases meet: priorities routed to it by rules or by escalations."""
    reached: set[tuple[str, str]] = set()
    pending = [(rule.team, rule.priority) for rule in policy.severity_rules]
    while pending:
        team, priority = pending.pop()
        if (team, priority) in reached:
            continue
        reached.add((team, priority))
        for step in policy.ladder_for(team, priority):
            to = target_team(step, team, policy)
            if to is not None:
                pending.append((to, priority))
    out: dict[str, list[_Ladder]] = {key: [] for key in policy.teams}
    for team, priority in sorted(reached, key=lambda tp: PRIORITIES.index(tp[1])):
        out[team].append(_Ladder(team, priority, policy.ladder_for(team, priority)))
    return out


@lru_cache(maxsize=8192)
def _text_width(text: str, size: float, bold: bool) -> float:
    """Width of one line of text in inches, measured with the diagram's font."""
    prop = FontProperties(family=STYLE["font.family"], size=size, weight="bold" if bold else "normal")
    width, _, _ = _TEXT_TO_PATH.get_text_width_height_descent(text, prop, ismath=False)
    return width / 72


def _wrap(text: str, width_in: float, size: float = FONT, *, bold: bool = False) -> str:
    """`text` broken at spaces into lines no wider than `width_in` (a single word longer than
    that keeps its own line: identifiers are never split)."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if line and _text_width(candidate, size, bold) > width_in:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return "\n".join(lines)


def _lines(text: str) -> int:
    return text.count("\n") + 1


def _box(ax: Any, x: float, y: float, w: float, h: float, colour: str, *, lw: float = 0.8) -> None:
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=0.06",
                                facecolor=colour, edgecolor=EDGE, linewidth=lw))


def _arrow(ax: Any, points: list[tuple[float, float]], colour: str, *, lw: float = 1.0) -> None:
    path = MplPath(points, [MplPath.MOVETO] + [MplPath.LINETO] * (len(points) - 1))
    ax.add_patch(FancyArrowPatch(path=path, arrowstyle="-|>,head_length=5,head_width=2.6",
                                 color=colour, linewidth=lw, shrinkA=0, shrinkB=0, joinstyle="miter"))


def _raci_name(entry: str, team: str, step: LadderStep, policy: Policy) -> str:
    receiving = target_team(step, team, policy) or team
    if entry == "assignee":
        return "assignee"
    if entry == "csm_owner":
        return "account CSM"
    if entry == "escalation_manager":
        return policy.members_by_id[policy.teams[team].escalation_manager].name
    if entry == "target_escalation_manager":
        return policy.members_by_id[policy.teams[receiving].escalation_manager].name
    if entry == "team_channel":
        return f"{team} channels"
    if entry == "target_team_channel":
        return f"{receiving} channels"
    if entry in policy.teams:
        return f"{entry} channels"
    if entry in policy.members_by_id:
        return policy.members_by_id[entry].name
    scheme, _, address = entry.partition(":")
    return f"Slack ${address}" if scheme == "slack" else address


def _raci(step: LadderStep, team: str, policy: Policy) -> list[str]:
    return [", ".join(dict.fromkeys(_raci_name(e, team, step, policy) for e in getattr(step.raci, key))) or "-"
            for key in RACI_KEYS]


def _channels_text(policy: Policy, team: str) -> str:
    channels = policy.teams[team].channels
    parts = ([f"Slack ${channels.slack_webhook_env}"] if channels.slack_webhook_env else []) + (
        [channels.email] if channels.email else [])
    return ", ".join(parts)


def _lane_layout(policy: Policy, key: str, numbers: dict[str, int], ladders: list[_Ladder],
                 first_step: int) -> _LaneLayout:
    rules = []
    for rule in policy.severity_rules:
        if rule.team != key:
            continue
        skills = f"  ·  skills: {', '.join(rule.required_skills)}" if rule.required_skills else ""
        text = (_wrap(f"R{numbers[rule.id]}. {rule.priority} · {rule.id}{skills}", TRIGGER_W - 0.2) + "\n"
                + _wrap("when " + condition_text(rule.when), TRIGGER_W - 0.2))
        rules.append((rule.priority, text))
    rows: list[tuple[_Ladder, list[str]]] = []
    number = first_step
    for ladder in ladders:
        texts = []
        for step in ladder.steps:
            texts.append(_wrap(f"{number}. {step.id}", STEP_W - 0.2) + "\n"
                         + _wrap(step_trigger_text(step, ladder.priority, policy), STEP_W - 0.2) + "\n"
                         + _wrap("→ " + step_action_text(step, key, policy), STEP_W - 0.2))
            number += 1
        rows.append((ladder, texts))
    heights = []
    for row in range(max(len(rules), len(rows), 1)):
        texts = ([rules[row][1]] if row < len(rules) else []) + (rows[row][1] if row < len(rows) else [])
        lines = max([_lines(t) for t in texts] + [1])
        heights.append(max(BOX_H, lines * LINE_H + 0.14))
    team = policy.teams[key]
    escalates = f"escalates to {team.escalates_to}" if team.escalates_to else "top tier"
    members = len(team.members)
    details = (f"{key} · tier {team.tier} · {escalates}\n"
               f"calendar {team.calendar}\n"
               f"{members} member{'' if members == 1 else 's'}, capacity {sum(m.capacity for m in team.members)}, "
               f"{team.daily_budget} new/day\n"
               f"channels: {_channels_text(policy, key)}")
    return _LaneLayout(key, _wrap(team.name, HEADER_W - 0.25, HEADER_FONT, bold=True),
                       _wrap(details, HEADER_W - 0.25, DETAILS_FONT), rules, rows, heights)


def policy_figure(policy: Policy) -> Figure:
    """The swimlane diagram and RACI table of `policy` as a matplotlib figure."""
    teams = _ordered_teams(policy)
    ladders = _ladders(policy)
    numbers = {rule.id: i for i, rule in enumerate(policy.severity_rules, start=1)}
    lanes: list[_LaneLayout] = []
    first_step = 1
    for key in teams:
        lanes.append(_lane_layout(policy, key, numbers, ladders[key], first_step))
        first_step += sum(len(ladder.steps) for ladder in ladders[key])
    columns = max([len(ladder.steps) for per_team in ladders.values() for ladder in per_team] + [1])
    width = STEP_X0 + columns * (STEP_W + STEP_GAP) + MARGIN

    table = _raci_rows(policy, teams, ladders)
    table_widths = _table_widths(width)
    table_heights = [_row_height(cells, table_widths) for cells in table]
    lanes_h = sum(lane.height for lane in lanes)
    height = TITLE_H + lanes_h + TABLE_GAP + sum(table_heights) + MARGIN

    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_axis_off()

    title = " ".join(part for part in ("Escalation policy", policy.name, policy.version) if part)
    ax.text(MARGIN, 0.3, title, fontsize=14, fontweight="bold", va="center")
    ax.text(MARGIN, 0.66,
            f"content hash {policy.content_hash}  ·  lanes: teams by tier  ·  left: severity rules, "
            "first match wins  ·  right: escalation ladders per priority, in business time on the "
            "team's calendar; red arrows move the case to another team",
            fontsize=FONT + 0.5, va="center", color="#333333")

    tags: dict[tuple[str, str], _Tag] = {}
    drawn: list[_DrawnStep] = []
    y = TITLE_H
    for index, lane in enumerate(lanes):
        _draw_lane_header(ax, lane, y, width, index)
        row_tops = list(itertools.accumulate([y + LANE_PAD] + [h + ROW_GAP for h in lane.box_heights]))
        for row, (ladder, texts) in enumerate(lane.ladders):
            top, box_h = row_tops[row], lane.box_heights[row]
            row_h = box_h + ROW_GAP
            tag = _Tag(TAG_X, top + (row_h - TAG_H) / 2, top, top + row_h)
            tags[(lane.key, ladder.priority)] = tag
            _box(ax, TAG_X, tag.y, TAG_W, TAG_H, PRIORITY_COLOURS.get(ladder.priority, "#eeeeee"), lw=1.0)
            ax.text(TAG_X + TAG_W / 2, tag.y + TAG_H / 2, ladder.priority, ha="center", va="center",
                    fontsize=FONT + 1, fontweight="bold")
            box_y, middle = top + ROW_GAP / 2, top + row_h / 2
            if not ladder.steps:
                ax.text(STEP_X0, middle, "no escalation steps", va="center", fontsize=FONT,
                        color="#666666", style="italic")
            previous_right = TAG_X + TAG_W
            for col, (step, text) in enumerate(zip(ladder.steps, texts)):
                sx = STEP_X0 + col * (STEP_W + STEP_GAP)
                drawn.append(_DrawnStep(lane.key, ladder.priority, step, sx, box_y, box_h))
                _box(ax, sx, box_y, STEP_W, box_h, ACTION_COLOURS[step.action])
                ax.text(sx + 0.09, middle, text, va="center", fontsize=FONT, linespacing=1.15)
                _arrow(ax, [(previous_right, middle), (sx, middle)], ARROW)
                previous_right = sx + STEP_W
        for row, (priority, text) in enumerate(lane.rules):
            top, box_h = row_tops[row], lane.box_heights[row]
            _box(ax, TRIGGER_X, top + ROW_GAP / 2, TRIGGER_W, box_h, PRIORITY_COLOURS.get(priority, "#eeeeee"))
            middle = top + (box_h + ROW_GAP) / 2
            ax.text(TRIGGER_X + 0.09, middle, text, va="center", fontsize=FONT, linespacing=1.15)
            tag = tags[(lane.key, priority)]
            _arrow(ax, [(TRIGGER_X + TRIGGER_W, middle), (tag.x, tag.y + TAG_H / 2)], ARROW)
        y += lane.height

    _escalation_arrows(ax, policy, drawn, tags)
    _raci_table(ax, table, table_widths, table_heights, y + TABLE_GAP, width)
    return fig


def _draw_lane_header(ax: Any, lane: _LaneLayout, y: float, width: float, index: int) -> None:
    ax.add_patch(Rectangle((MARGIN, y), width - 2 * MARGIN, lane.height, facecolor=LANE_COLOURS[index % 2],
                           edgecolor=EDGE, linewidth=0.8))
    ax.add_patch(Rectangle((MARGIN, y), HEADER_W, lane.height, facecolor="#dfe7f1", edgecolor=EDGE, linewidth=0.8))
    ax.text(MARGIN + 0.12, y + 0.14, lane.name, fontsize=HEADER_FONT, fontweight="bold", va="top")
    ax.text(MARGIN + 0.12, y + lane.details_offset, lane.details, fontsize=DETAILS_FONT, va="top",
            color="#333333", linespacing=1.25)


def _escalation_arrows(ax: Any, policy: Policy, drawn: list[_DrawnStep], tags: dict[tuple[str, str], _Tag]) -> None:
    """Reassignments as orthogonal arrows: out of the step box, along the free channel right of
    its column, then along the gap above (or below) the receiving ladder row to its tag."""
    moves = [(item, target_team(item.step, item.team, policy)) for item in drawn]
    moves = [(item, to) for item, to in moves if to is not None]
    per_channel: dict[float, list[_DrawnStep]] = {}
    for item, _ in moves:
        per_channel.setdefault(item.x + STEP_W + STEP_GAP / 2, []).append(item)
    for item, to in moves:
        tag = tags[(to, item.priority)]
        centre = item.x + STEP_W + STEP_GAP / 2
        sharing = per_channel[centre]
        spacing = min(0.12, (STEP_GAP - 0.2) / max(len(sharing) - 1, 1))
        channel = centre + (sharing.index(item) - (len(sharing) - 1) / 2) * spacing
        downward = tag.y > item.y
        start_y = item.y + item.h if downward else item.y
        exit_y = start_y + (0.07 if downward else -0.07)
        band_y = tag.row_top + 0.05 if downward else tag.row_bottom - 0.05
        end_y = tag.y if downward else tag.y + TAG_H
        sx = item.x + STEP_W - 0.25
        _arrow(ax, [(sx, start_y), (sx, exit_y), (channel, exit_y), (channel, band_y),
                    (tag.x + TAG_W / 2, band_y), (tag.x + TAG_W / 2, end_y)], ESCALATION_ARROW, lw=1.2)


# ---------------------------------------------------------------------------------- RACI table

_TABLE_HEADER = ("#", "step", "team · priority", "fires", "action", "Responsible", "Accountable",
                 "Consulted", "Informed")
_FIXED_WIDTHS = (0.35, 2.3, 1.7, 3.1, 2.3)


def _raci_rows(policy: Policy, teams: list[str], ladders: dict[str, list[_Ladder]]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [_TABLE_HEADER]
    number = 0
    for key in teams:
        for ladder in ladders[key]:
            for step in ladder.steps:
                number += 1
                rows.append((str(number), step.id, f"{key} · {ladder.priority}",
                             step_trigger_text(step, ladder.priority, policy),
                             step_action_text(step, key, policy), *_raci(step, key, policy)))
    return rows


def _table_widths(width: float) -> list[float]:
    rest = (width - 2 * MARGIN - sum(_FIXED_WIDTHS)) / 4
    return [*_FIXED_WIDTHS, *([rest] * 4)]


def _row_height(cells: tuple[str, ...], widths: list[float]) -> float:
    lines = max(_wrap(cell, w - 0.14).count("\n") + 1 for cell, w in zip(cells, widths))
    return lines * LINE_H + 0.1


def _raci_table(ax: Any, rows: list[tuple[str, ...]], widths: list[float], heights: list[float],
                top: float, width: float) -> None:
    ax.text(MARGIN, top - 0.2, "RACI per escalation step (numbers as in the lanes above)",
            fontsize=FONT + 2.5, fontweight="bold", va="center")
    y = top
    for index, (cells, h) in enumerate(zip(rows, heights)):
        colour = "#dfe7f1" if index == 0 else LANE_COLOURS[index % 2]
        ax.add_patch(Rectangle((MARGIN, y), width - 2 * MARGIN, h, facecolor=colour, edgecolor="#b0b0b0",
                               linewidth=0.5))
        x = MARGIN
        for cell, w in zip(cells, widths):
            ax.text(x + 0.07, y + 0.05, _wrap(cell, w - 0.14, bold=index == 0), fontsize=FONT, va="top",
                    fontweight="bold" if index == 0 else "normal", linespacing=1.1)
            x += w
        y += h


# ---------------------------------------------------------------------------------- rendering


#: Drawings already made in this process, by (policy content hash, format): the same policy
#: gives the same bytes, so a process that routes many snapshots (a backfill, a replay, the
#: desk) draws each policy version once. A few versions at most are kept.
_DRAWN: dict[tuple[str, str], bytes] = {}
_DRAWN_MAX = 8


def render_policy_diagram(policy: Policy, *, fmt: DiagramFormat = "svg") -> bytes:
    """The policy's swimlane diagram as SVG or PNG bytes; the same policy gives the same bytes
    (drawn once per process and policy version, `_DRAWN`)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown diagram format {fmt!r}; expected one of {', '.join(FORMATS)}")
    key = (policy.content_hash, fmt)
    if key not in _DRAWN:
        if len(_DRAWN) >= _DRAWN_MAX:
            _DRAWN.pop(next(iter(_DRAWN)))
        _DRAWN[key] = _draw(policy, fmt)
    return _DRAWN[key]


def _draw(policy: Policy, fmt: DiagramFormat) -> bytes:
    with matplotlib.rc_context(STYLE):
        fig = policy_figure(policy)
        if fmt == "png":
            return figure_png(fig, dpi=PNG_DPI, tight=False, metadata={"Software": None})
        buffer = io.BytesIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


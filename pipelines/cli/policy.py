"""`rescue policy ...`: check an escalation policy before it ships.

    rescue policy validate policies/default.yaml

prints the policy's version, content hash, teams, severity rules, SLA targets and ladders, and
exits 0; a severity rule whose description claims what its condition does not test is printed
as a warning line. A malformed file exits 2 with one line per problem: the key path and the
reason.

    rescue policy simulate policies/aggressive.yaml --against policies/default.yaml \
        --from 2026-01-01 --to 2026-06-30

replays the candidate snapshots stored in the warehouse (`rescue_candidates_history`) through
one or two policies and prints, side by side, cases per team and week, P1 cases, overflow,
churners caught and their lead time, ARR covered and holdout size. It writes the same report as
Markdown with a chart of weekly volumes to the report directory.

    rescue policy plays [policies/default.yaml]

lists the policy's catalogue of rescue plays (the only plays `rescue queue act --play` and the
desk accept), the teams each suits and its former names; without a file, the deployment's policy.

    rescue policy diagram policies/default.yaml --out policy.svg

draws the policy as a swimlane diagram (teams as lanes by tier, severity rules and escalation
steps as arrows with their times) with a RACI table, as SVG or PNG after the extension of
`--out`. A malformed policy or an unknown extension exits 2 with one line saying why.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from models.policy.schema import Policy
    from models.routing.replay import SimulationReport

# pandas, the policy's schema and the simulator load when a command runs, not when `rescue`
# starts (tests/unit/test_cli_imports.py).

policy_app = typer.Typer(help="Validate and simulate escalation policies.", no_args_is_help=True)

EXIT_INVALID = 2
SNAPSHOTS_TABLE = "rescue_candidates_history"
OUTCOMES_TABLE = "churn_outcomes"


def _load_or_exit(file: Path) -> Policy:
    from models.policy.loader import PolicyError, load_policy
    from models.policy.wording import PolicyWordingWarning

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PolicyWordingWarning)
            policy = load_policy(file)
        err = Console(stderr=True)
        for warning in caught:
            if issubclass(warning.category, PolicyWordingWarning):
                err.print(f"[bold yellow]warning[/] {warning.message}", highlight=False, soft_wrap=True)
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        return policy
    except PolicyError as exc:
        err = Console(stderr=True)
        # One unwrapped line per problem, so the output can be grepped and diffed; a file with
        # one problem (unreadable, not YAML, too large) is one line.
        if exc.count == 1:
            err.print(f"[bold red]invalid policy[/] {escape(exc.summary())}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_INVALID) from None
        err.print(f"[bold red]invalid policy[/] {escape(exc.source)}", highlight=False, soft_wrap=True)
        for path, why in exc.problems:
            err.print(f"  {path or '(file)'}: {why}", highlight=False, markup=False, soft_wrap=True)
        if exc.omitted:
            err.print(f"  {exc.omitted_line}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None


@policy_app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="Policy YAML file."),
) -> None:
    """Validate a policy file and print a summary of what it does."""
    _print_summary(_load_or_exit(file), Console(markup=False), file)  # the policy's text shown as written


@policy_app.command("plays")
def plays(
    file: Path | None = typer.Argument(None, help="Policy YAML file (default: the deployment's policy)."),
) -> None:
    """List the policy's rescue plays: the only plays the queue and the desk accept."""
    from connectors.settings import default_policy_path

    path = file or default_policy_path()
    _print_plays(_load_or_exit(path), Console(markup=False))


def _print_plays(policy: Policy, console: Console) -> None:
    table = Table(title=f"Rescue plays ({policy.name or 'policy'} {policy.version})", title_justify="left")
    table.add_column("play", no_wrap=True, min_width=max(map(len, policy.plays)))  # ids are never cut
    for column in ("description", "suits", "former names"):
        table.add_column(column, overflow="fold")
    for key, play in policy.plays.items():
        table.add_row(key, play.description, ", ".join(play.teams) or "every team", ", ".join(play.aliases) or "-")
    console.print(table)


@policy_app.command("diagram")
def diagram(
    file: Path = typer.Argument(..., help="Policy YAML file."),
    out: Path = typer.Option(..., "--out", help="Output file; .svg or .png decides the format."),
) -> None:
    """Draw a policy as a swimlane diagram with its RACI table."""
    from models.policy.diagram import FORMATS, DiagramFormat, render_policy_diagram
    from models.policy.loader import PolicyError, load_policy

    err = Console(stderr=True)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        err.print(f"cannot draw {out}: unknown extension {repr(out.suffix) if out.suffix else 'none'}; use "
                  + " or ".join(f".{f}" for f in FORMATS), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_INVALID)
    try:
        policy = load_policy(file)
    except PolicyError as exc:
        path, why = exc.problems[0]
        more = exc.count - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''}: rescue policy validate {file})" if more else ""
        err.print(f"invalid policy {exc.source}: {path + ': ' if path else ''}{why}{tail}",
                  highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None
    image = render_policy_diagram(policy, fmt=cast(DiagramFormat, fmt))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(image)
    Console().print(f"wrote {out} ({len(image):,} bytes, policy {policy.version})", highlight=False, markup=False,
                    soft_wrap=True)


@policy_app.command("simulate")
def simulate_command(
    file: Path = typer.Argument(..., help="Policy YAML file to replay."),
    against: Path | None = typer.Option(None, "--against", help="A second policy to compare with."),
    date_from: dt.datetime | None = typer.Option(None, "--from", formats=["%Y-%m-%d"], help="First snapshot date."),
    date_to: dt.datetime | None = typer.Option(None, "--to", formats=["%Y-%m-%d"], help="Last snapshot date."),
    warehouse_url: str = typer.Option("", "--warehouse", help="SQLAlchemy URL; default: the embedded warehouse."),
    case_days: int = typer.Option(14, min=1, help="Days a simulated case stays open before it resolves."),
    report_dir: Path | None = typer.Option(None, help="Where to write the report; default: the project's reports."),
) -> None:
    """Replay historical snapshots through a policy (and another one) and compare the outcomes."""
    from connectors.settings import default_report_dir, default_warehouse_url
    from connectors.warehouse import Warehouse, WarehouseError
    from models.contracts import CHURN_OUTCOMES
    from models.routing.replay import SimulationError, simulate

    policy_a = _load_or_exit(file)
    policy_b = _load_or_exit(against) if against else None
    err = Console(stderr=True)
    warehouse = Warehouse(warehouse_url or default_warehouse_url())
    conditions, params = [], {}
    if date_from:
        conditions.append("snapshot_date >= :date_from")
        params["date_from"] = date_from.date()
    if date_to:
        conditions.append("snapshot_date <= :date_to")
        params["date_to"] = date_to.date()
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    try:
        for table in (SNAPSHOTS_TABLE, OUTCOMES_TABLE):
            if not warehouse.table_exists(table):
                raise WarehouseError(f"table {table!r} does not exist in {warehouse.display_url}")
        snapshots = warehouse.read_sql(f"SELECT * FROM {SNAPSHOTS_TABLE}{where}", params)
        outcomes = warehouse.read_contract_table(OUTCOMES_TABLE, CHURN_OUTCOMES)
        report = simulate(policy_a, policy_b, snapshots, outcomes, case_days=case_days)
    except (WarehouseError, SimulationError) as exc:
        err.print(f"[bold red]cannot simulate:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    console = Console(markup=False)
    _print_report(report, console)
    written = write_report(report, report_dir or default_report_dir())
    console.print(f"report: {written}", highlight=False, soft_wrap=True)


def _format_metric(name: str, value: float) -> str:
    import pandas as pd

    if pd.isna(value):
        return "-"
    if name == "churners_caught_share":
        return f"{value:.1%}"
    if name == "arr_covered":
        return f"{value:,.0f}"
    return f"{value:g}"


def _print_report(report: SimulationReport, console: Console) -> None:
    import pandas as pd

    from models.routing.replay import METRICS

    table = Table(title="Policy simulation", title_justify="left")
    table.add_column("metric")
    for run in report.runs:
        table.add_column(run.label, justify="right")
    table.add_column("meaning")
    comparison = report.comparison
    for name in comparison.index:
        table.add_row(name, *(_format_metric(name, v) for v in comparison.loc[name]), METRICS[name])
    console.print(table)
    weekly = report.cases_per_team_week
    if not weekly.empty:
        per_week = Table(title="Cases per team and week", title_justify="left")
        per_week.add_column("week")
        for policy, team in weekly.columns:
            per_week.add_column(f"{policy}\n{team}", justify="right")
        for week, row in weekly.iterrows():
            per_week.add_row(pd.Timestamp(week).date().isoformat(), *(str(int(v)) for v in row))
        console.print(per_week)


def write_report(report: SimulationReport, directory: Path) -> Path:
    """Write `policy_simulation.md` and its weekly-volume chart into `directory`."""
    import pandas as pd

    from models.routing.replay import weekly_cases_chart

    directory.mkdir(parents=True, exist_ok=True)
    chart = directory / "policy_simulation_weekly.png"
    chart.write_bytes(weekly_cases_chart(report))

    comparison = report.comparison
    formatted = pd.DataFrame(
        {label: [_format_metric(name, comparison.at[name, label]) for name in comparison.index]
         for label in comparison.columns},
        index=comparison.index,
    )
    lines = ["# Policy simulation", "", formatted.to_markdown(disable_numparse=True), "",
             f"![weekly cases]({chart.name})", ""]
    weekly = report.cases_per_team_week
    if not weekly.empty:
        flat = weekly.copy()
        flat.columns = [f"{policy} / {team}" for policy, team in flat.columns]
        flat.index = [pd.Timestamp(w).date().isoformat() for w in flat.index]
        lines += ["## Cases per team and week", "", flat.to_markdown(), ""]
    path = directory / "policy_simulation.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _print_summary(policy: Policy, console: Console, file: Path) -> None:
    console.print(
        Text.assemble(("valid", "bold green"), f" {file}  version ", (policy.version, "bold"),
                      "  hash ", (policy.content_hash, "bold")),
        highlight=False,
        soft_wrap=True,
    )
    if policy.description:
        console.print(policy.description.strip(), highlight=False)

    teams = Table(title="Teams", title_justify="left")
    for column in ("team", "tier", "escalates to", "calendar", "members", "capacity", "daily budget"):
        teams.add_column(column)
    for key, team in policy.teams.items():
        teams.add_row(key, str(team.tier), team.escalates_to or "-", team.calendar,
                      str(len(team.members)), str(sum(m.capacity for m in team.members)),
                      str(team.daily_budget))
    console.print(teams)

    rules = Table(title="Severity rules (first match wins)", title_justify="left")
    for column in ("#", "rule", "priority", "team", "required skills"):
        rules.add_column(column, no_wrap=True)
    rules.add_column("description")
    for i, rule in enumerate(policy.severity_rules, start=1):
        rules.add_row(str(i), rule.id, rule.priority, rule.team,
                      ", ".join(rule.required_skills) or "-", rule.description)
    console.print(rules)

    sla = Table(title="SLA targets (business minutes)", title_justify="left")
    for column in ("priority", "first touch", "resolution", "pre-breach warning", "ladder steps"):
        sla.add_column(column)
    for priority, target in sorted(policy.sla.items()):
        steps = ", ".join(step.id for step in policy.ladders.get(priority, [])) or "-"
        sla.add_row(priority, f"{target.first_touch_minutes:g}", f"{target.resolution_minutes:g}",
                    f"{target.pre_breach_pct:g}%", steps)
    console.print(sla)
    for team_key, per_priority in policy.team_ladders.items():
        for priority, steps in per_priority.items():
            console.print(f"ladder override for {team_key} {priority}: "
                          + ", ".join(step.id for step in steps), highlight=False)

    _print_plays(policy, console)

    hyst = policy.hysteresis
    console.print(
        f"hysteresis: enter at {hyst.field} >= {hyst.enter_threshold:g}, exit below "
        f"{hyst.exit_threshold:g}, {hyst.min_days_in_state} day(s) at risk before a case; "
        f"cooldown {policy.cooldown_days} day(s); holdout {policy.holdout.fraction:.0%} "
        f"(seed {policy.holdout.seed!r})",
        highlight=False,
    )

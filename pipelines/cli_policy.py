"""`rescue policy ...`: check an escalation policy before it ships.

    rescue policy validate policies/default.yaml

prints the policy's version, content hash, teams, severity rules, SLA targets and ladders, and
exits 0. A malformed file exits 2 with one line per problem: the key path and the reason.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from models.policy import Policy, PolicyError, load_policy

policy_app = typer.Typer(help="Validate escalation policies.", no_args_is_help=True)

EXIT_INVALID = 2


@policy_app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="Policy YAML file."),
) -> None:
    """Validate a policy file and print a summary of what it does."""
    out, err = Console(), Console(stderr=True)
    try:
        policy = load_policy(file)
    except PolicyError as exc:
        err.print(f"[bold red]invalid policy[/] {exc.source}", highlight=False)
        for path, why in exc.problems:
            err.print(f"  {path or '(file)'}: {why}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    _print_summary(policy, out, file)


def _print_summary(policy: Policy, console: Console, file: Path) -> None:
    console.print(
        f"[bold green]valid[/] {file}  version [bold]{policy.version}[/]  "
        f"hash [bold]{policy.content_hash}[/]",
        highlight=False,
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

    hyst = policy.hysteresis
    console.print(
        f"hysteresis: enter at {hyst.field} >= {hyst.enter_threshold:g}, exit below "
        f"{hyst.exit_threshold:g}, {hyst.min_days_in_state} day(s) at risk before a case; "
        f"cooldown {policy.cooldown_days} day(s); holdout {policy.holdout.fraction:.0%} "
        f"(seed {policy.holdout.seed!r})",
        highlight=False,
    )

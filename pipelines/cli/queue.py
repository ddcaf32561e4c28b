"""`rescue queue ...`: the rescue team's command line for working the queue.

    rescue queue list [--team T] [--assignee A] [--priority P1] [--status S|all] [--breaching] [--wide] [--tz Z] [--json]
    rescue queue show CASE [--tz Z]
    rescue queue claim CASE --as WHO
    rescue queue ack CASE --as WHO
    rescue queue snooze CASE --until 2025-06-05T09:00 --as WHO
    rescue queue act CASE --play executive_sponsor_call --note "CFO call booked" --as WHO
    rescue queue resolve CASE --outcome saved|churned|no_action --as WHO
    rescue queue outbox [--status pending|delivered|dead] [--channel crm|ticketing|...] [--json]
    rescue queue overflow [--limit N] [--json]

The queue is `--queue-url`, else `RESCUE_QUEUE_URL`, else the embedded SQLite file. The actor is
`--as`, else `RESCUE_ACTOR`, else the login name. Times are UTC (`list --tz` shows due times in
another zone). An unknown case or a change the
lifecycle does not allow exits with status 2 and one line saying why. A play is one of the
escalation policy's catalogue (`rescue policy plays` lists them).
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import sqlalchemy as sa
import typer
from rich import box
from rich.console import Console

from pipelines.cli.console import make_console
from pipelines.cli.queue_table import PRIORITY_STYLE, fmt_money, fmt_pct, fmt_time, list_title, queue_table
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from connectors.settings import Settings, current, default_queue_url
from models.cases.lifecycle import ACTIVE_STATUSES, MAX_SNOOZE_DAYS, STATUSES, CaseError, CaseNotFound

if TYPE_CHECKING:
    import pandas as pd

    from connectors.queue.store import QueueStore

# pandas, the queue store (and through it the policy) load when a command runs, not when
# `rescue` starts: `rescue --help` stays quick (tests/unit/test_cli_imports.py).

queue_app = typer.Typer(
    help="Work the rescue queue: list, show, claim, ack, snooze, act, resolve, outbox, overflow.",
    no_args_is_help=True,
)

QUEUE_URL_VAR = Settings.env("queue_url")
ACTOR_VAR = Settings.env("actor")

QueueUrl = Annotated[
    str | None,
    typer.Option("--queue-url", help=f"SQLAlchemy URL of the rescue queue (default: ${QUEUE_URL_VAR}, "
                                     "else the embedded SQLite file)."),
]
Actor = Annotated[
    str | None,
    typer.Option("--as", help=f"Who is acting (default: ${ACTOR_VAR}, else your login name)."),
]
CaseArg = Annotated[str, typer.Argument(metavar="CASE", help="Case id, e.g. RC-1A2B3C4D5E.")]

SPARKS = "▁▂▃▄▅▆▇█"


class OutcomeChoice(str, Enum):
    saved = "saved"
    churned = "churned"
    no_action = "no_action"


class OutboxStatus(str, Enum):
    pending = "pending"
    delivered = "delivered"
    dead = "dead"


def _console(stderr: bool = False) -> Console:
    # No markup: cases carry what people typed (notes, names), shown as typed, never as styles.
    return make_console(stderr=stderr, highlight=False, soft_wrap=False, markup=False)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _console(stderr=True).print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def _store(url: str | None) -> Iterator[QueueStore]:
    """Open the queue; one clear line (no traceback, no password) for every error a user can
    cause: a URL that is not a database URL (exit 2), a database that cannot be reached or
    written (exit 1), a missing case or a change the lifecycle does not allow (exit 2)."""
    from connectors.queue.database import QueueUrlError
    from connectors.queue.store import QueueStore

    try:
        store = QueueStore(url or default_queue_url())
    except QueueUrlError as exc:
        raise _fail(str(exc)) from None
    try:
        try:
            revision = store.current_revision()
        except sa.exc.SQLAlchemyError as exc:
            raise _fail(store.describe_error(exc), code=1) from None
        if revision is None:
            raise _fail(f"the rescue queue at {store.display_url} has no tables yet; run the pipeline first "
                        f"(make demo), or point --queue-url / {QUEUE_URL_VAR} at the right database")
        try:
            yield store
        except CaseNotFound as exc:
            raise _fail(f"{exc} in the queue at {store.display_url}") from None
        except (CaseError, ValueError) as exc:
            raise _fail(str(exc)) from None
        except sa.exc.SQLAlchemyError as exc:
            raise _fail(store.describe_error(exc), code=1) from None
    finally:
        store.close()


def _actor(actor: str | None) -> str:
    """`--as` when given (it may not be empty), else `RESCUE_ACTOR`, else the login name; checked
    as the queue checks every actor (`connectors.queue.values.require_id`)."""
    from connectors.queue.values import require_id

    if actor is not None:
        label, who = "--as", actor
    else:
        label, who = ACTOR_VAR, current().actor or os.environ.get("USER") or _login_name()
        if not who:
            raise _fail(f"who is acting? pass --as NAME or set {ACTOR_VAR}")
    try:
        return require_id(who, "actor", label=label)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _login_name() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    import pandas as pd

    out = []
    for row in frame.to_dict("records"):
        out.append({k: (None if not isinstance(v, (list, dict)) and pd.isna(v) else
                        pd.Timestamp(v).isoformat() if isinstance(v, (datetime, pd.Timestamp)) else v)
                    for k, v in row.items()})
    return out


@queue_app.command("list")
def list_cases(
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    assignee: Annotated[str | None, typer.Option(help="Only cases assigned to this person.")] = None,
    priority: Annotated[str | None, typer.Option(help="Only this priority (P1-P4).")] = None,
    status: Annotated[str, typer.Option(help=f"A status ({', '.join(STATUSES)}), 'active' or 'all'.")] = "active",
    breaching: Annotated[bool, typer.Option("--breaching", help="Only cases whose running SLA clock is breached (paused time not counted).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many cases (the most urgent).")] = 50,
    wide: Annotated[bool, typer.Option("--wide", help="Every column, the whole SLA text and reason, one line per "
                                                      "case however long; by default cut to the terminal's width.")] = False,
    tz: Annotated[str | None, typer.Option("--tz", help="Time zone of the due times (IANA name, e.g. "
                                                        "Europe/Berlin; default UTC).")] = None,
    queue_url: QueueUrl = None,
) -> None:
    """List cases, most urgent first: priority, then breached and near breach, then ARR at risk,
    then SLA due, then case id (`models.cases.ordering`)."""
    import pandas as pd

    from models.cases.ordering import sort_queue
    from models.cases.sla_text import TimeZoneError, describe_sla, zone
    from models.clock import utcnow

    try:
        where = zone(tz).key
    except TimeZoneError as exc:
        raise _fail(str(exc)) from None
    statuses: Sequence[str] | None = {"active": list(ACTIVE_STATUSES), "all": None}.get(status, [status])
    now = utcnow()
    with _store(queue_url) as store:
        matching = sort_queue(store.list_cases(team=team, assignee=assignee, priority=priority, status=statuses,
                                               breaching=True if breaching else None, now=now, sla=True))
        cases = matching.head(limit) if limit is not None else matching
        if cases.empty:  # nothing to word: the policy (and its schema) need not load
            if as_json:
                typer.echo("[]")
            else:
                _console().print(f"No cases match in {store.display_url}.")
            return
        from models.cases.ladder import escalation_badge

        policy = store.policy
        pauses = store.pauses_of(cases["case_id"], now=now) if len(cases) else {}
        rows = cases.to_dict("records")
        texts = [describe_sla({k: (None if not isinstance(v, (list, dict)) and pd.isna(v) else v) for k, v in r.items()},
                              policy, now, pauses.get(r["case_id"]), tz=where) for r in rows]
        badges = [escalation_badge(r, policy) for r in rows]
        if as_json:
            keep = [c for c in cases.columns if c not in ("context", "evidence")]
            out = _records(cases[keep])
            for record, text, badge in zip(out, texts, badges):
                record.update(due_at=record.get("sla_due_at"), business_minutes_left=text.business_minutes_left,
                              sla_label=text.label, sla_due_text=text.due_text, sla_left=text.left_text,
                              sla_tz=text.tz, escalation=badge)
            typer.echo(json.dumps(out, indent=2, default=str))
            return
        console = _console()
        table = queue_table(rows, texts, badges, title=list_title(
            len(cases), len(matching), status=status, priority=priority, breaching=breaching, team=team,
            assignee=assignee, limit=limit, tz=where), wide=wide, width=console.width)
        if wide:  # every cell whole, one line per case however long (pipe it to `less -S`)
            narrow = console.width
            console.width = 100_000
            console.width = max(narrow, console.measure(table).maximum)
        console.print(table)


def _kv_table(pairs: Sequence[tuple[str, Any]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, value in pairs:
        if value is not None and value != "":
            table.add_row(key, str(value))
    return table


def _rows_table(title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in columns])
    return table


def _cell(value: Any) -> str:
    import pandas as pd

    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, (datetime, pd.Timestamp)):
        return fmt_time(value)
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def _renewal(account: Mapping[str, Any]) -> str:
    when = fmt_time(account.get("renewal_date"))[:10]
    days = account.get("days_to_renewal")
    return f"{when}  (in {days:.0f} days)" if when and days is not None else when


def _health(health: Mapping[str, Any], fallback: float | None) -> str:
    import pandas as pd

    score = health.get("score", fallback)
    if score is None or pd.isna(score):
        return ""
    band = health.get("band")
    return f"{float(score):.1f}" + (f" ({band})" if band else "")


def _sparkline(values: Sequence[float]) -> str:
    if not values:
        return ""
    top = max(values) or 1.0
    return "".join(SPARKS[min(int(v / top * (len(SPARKS) - 1) + 0.5), len(SPARKS) - 1)] for v in values)


@queue_app.command("show")
def show(case_id: CaseArg, queue_url: QueueUrl = None,
         tz: Annotated[str | None, typer.Option("--tz", help="Time zone of the SLA due time (IANA name; "
                                                             "default UTC).")] = None) -> None:
    """Show a case: the account, why it is at risk, recent tickets and usage, plays tried, audit trail."""
    from models.cases.ladder import escalation_badge
    from models.cases.lifecycle import SNOOZED
    from models.cases.sla import paused_intervals
    from models.cases.sla_text import TimeZoneError, describe_sla, zone
    from models.clock import utcnow

    try:
        where = zone(tz).key
    except TimeZoneError as exc:
        raise _fail(str(exc)) from None
    now = utcnow()
    with _store(queue_url) as store:
        case = store.get_case(case_id)
        events = store.case_events(case["case_id"])
        pauses = paused_intervals(events.to_dict("records"), now=now,
                                  snoozed_until=case["snoozed_until"] if case["status"] == SNOOZED else None)
        sla = describe_sla(case, store.policy, now, pauses, tz=where)
        badge = escalation_badge(case, store.policy)
    console = _console()
    ctx: dict[str, Any] = dict(case.get("context") or {})
    account = ctx.pop("account", {}) or {}
    health = ctx.pop("health", {}) or {}
    risk = ctx.pop("risk", {}) or {}
    tickets = ctx.pop("last_tickets", []) or []
    usage = ctx.pop("usage_trend", {}) or {}
    ctx.pop("plays_tried", None)  # shown live from the rescue actions below
    ctx.pop("snapshot_date", None)
    data_warnings = ctx.pop("data_warnings", []) or []

    name = case["account_name"] or account.get("name") or case["account_id"]
    header = _kv_table([
        ("status", case["status"]), ("priority", case["priority"]), ("team", case["team"]),
        ("assignee", case["assignee"] or "unassigned"), ("opened", fmt_time(case["opened_at"])),
        ("first touch", fmt_time(case["acknowledged_at"]) or
         (f"due {fmt_time(case['sla_first_touch_due'])}" if case["sla_first_touch_due"] else "")),
        ("resolution due", fmt_time(case["sla_resolution_due"])),
        ("SLA", sla.label), ("escalation", badge),
        ("snoozed until", fmt_time(case["snoozed_until"])), ("outcome", case["outcome"]),
        ("escalation level", case["escalation_level"] or None), ("rule", case["rule_id"]),
        ("why", case["reason"]),
        ("policy / model", f"{case['policy_version']} ({(case['policy_hash'] or '')[:8]}) / {case['model_version']}"),
    ])
    console.print(Panel(header, title=Text(f"{case['case_id']}  {name}"), title_align="left"))
    for line in data_warnings:
        console.print(Text(f"warning: {line}", style="bold yellow"))

    console.print(_kv_table([
        ("account", f"{case['account_id']}  {account.get('segment') or ''}".strip()),
        ("ARR", fmt_money(account.get("arr", case["arr"]))),
        ("CSM", account.get("csm_owner")),
        ("renewal", _renewal(account)),
        ("churn risk", f"{fmt_pct(case['churn_risk'])}  ARR at risk {fmt_money(case['expected_arr_at_risk'])}"),
        ("health", _health(health, case["health_score"])),
        ("components", "  ".join(f"{k} {v}" for k, v in (health.get("components") or {}).items())),
    ]))
    drivers = risk.get("top_drivers") or []
    if drivers:
        shown = [{**d, "kind": "account profile" if d.get("kind") == "fixed" else d.get("kind")} for d in drivers]
        console.print(_rows_table("Top risk drivers", shown, ["phrase", "kind", "contribution"]))
    if tickets:
        console.print(_rows_table("Last tickets", tickets,
                                  ["ticket_id", "created_at", "priority", "category", "status", "csat", "escalated"]))
    weekly = usage.get("weekly_active_users") or []
    if weekly:
        trend = usage.get("wau_trend")
        console.print(Text.assemble(("Usage", "bold"), f" weekly active users, last {len(weekly)} weeks: "
                                    f"{_sparkline(weekly)} {weekly[0]:.1f} -> {weekly[-1]:.1f}"
                                    + (f"  (trend {trend:+.0%})" if trend is not None else "")))
    for key, value in ctx.items():
        console.print(Text.assemble((str(key), "bold"), f" {json.dumps(value, default=str)}"))
    if case["actions"]:
        console.print(_rows_table("Plays tried", case["actions"], ["at", "actor", "play", "note", "outcome"]))
    else:
        console.print("Plays tried: none yet.")
    evidence = case.get("evidence") or []
    if len(evidence) > 1:
        console.print(_rows_table("Evidence by snapshot", evidence, ["snapshot_date", "priority", "churn_risk", "health"]))
    trail = events.astype(object).where(events.notna(), None).to_dict("records")
    console.print(_rows_table("Audit trail", trail, ["at", "actor", "kind", "from_status", "to_status", "reason"]))


def _done(message: str) -> None:
    _console().print(message)


@queue_app.command("claim")
def claim(case_id: CaseArg, actor: Actor = None, queue_url: QueueUrl = None) -> None:
    """Take ownership of a case (acknowledges it if nobody had). Fails if someone else has it."""
    who = _actor(actor)
    with _store(queue_url) as store:
        case = store.claim(case_id, who)
    _done(f"{case['case_id']} is {who}'s ({case['status']}).")


@queue_app.command("ack")
def ack(case_id: CaseArg, actor: Actor = None,
        reason: Annotated[str | None, typer.Option(help="Why, for the audit trail.")] = None,
        queue_url: QueueUrl = None) -> None:
    """Acknowledge a case (first touch) without taking it."""
    who = _actor(actor)
    with _store(queue_url) as store:
        case = store.transition(case_id, "acknowledged", actor=who, reason=reason)
    _done(f"{case['case_id']} acknowledged by {who}.")


@queue_app.command("snooze")
def snooze(
    case_id: CaseArg,
    until: Annotated[datetime, typer.Option("--until", help=f"Wake-up time (UTC unless an offset is given), "
                                                            f"at most {MAX_SNOOZE_DAYS} days ahead.",
                                            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M",
                                                     "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M%z"])],
    actor: Actor = None,
    reason: Annotated[str | None, typer.Option(help="Why, for the audit trail.")] = None,
    queue_url: QueueUrl = None,
) -> None:
    """Pause a case until a time (at most {MAX_SNOOZE_DAYS} days ahead); its SLA clocks stop meanwhile."""
    from models.clock import utc_naive

    who = _actor(actor)
    try:
        wake = utc_naive(until)
    except (OverflowError, ValueError):
        raise _fail(f"--until {until.isoformat()} is not a usable time") from None
    with _store(queue_url) as store:
        case = store.transition(case_id, "snoozed", actor=who, reason=reason, snooze_until=wake)
    _done(f"{case['case_id']} snoozed until {fmt_time(case['snoozed_until'])} UTC by {who}.")


@queue_app.command("act")
def act(
    case_id: CaseArg,
    play: Annotated[str, typer.Option("--play", help="The play run, one of the policy's catalogue (`rescue policy "
                                                     "plays` lists them), e.g. executive_sponsor_call.")],
    note: Annotated[str, typer.Option("--note", help="What happened.")] = "",
    actor: Actor = None,
    queue_url: QueueUrl = None,
) -> None:
    """Log a rescue play on a case (it goes back to the CRM); the case is then in progress."""
    who = _actor(actor)
    with _store(queue_url) as store:
        action = store.log_play(case_id, actor=who, play=play, note=note or None)
    _done(f"{action['case_id']}: play {action['play']} logged by {who} (case {action['status']}).")


@queue_app.command("resolve")
def resolve(
    case_id: CaseArg,
    outcome: Annotated[OutcomeChoice, typer.Option("--outcome", help="saved, churned or no_action.")],
    note: Annotated[str | None, typer.Option(help="Closing note.")] = None,
    actor: Actor = None,
    queue_url: QueueUrl = None,
) -> None:
    """Close a case with its outcome."""
    who = _actor(actor)
    with _store(queue_url) as store:
        case = store.resolve(case_id, actor=who, outcome=outcome.value, note=note)
    _done(f"{case['case_id']} {case['status']} by {who}.")


@queue_app.command("outbox")
def show_outbox(
    status: Annotated[OutboxStatus | None, typer.Option(help="Only rows in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows (newest).")] = 50,
    channel: Annotated[str | None, typer.Option(
        help="Only this channel: crm (CRM writes), ticketing (notes on tickets), slack, email, ...")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    queue_url: QueueUrl = None,
) -> None:
    """Notifications, CRM writes and ticket notes waiting, delivered or dead."""
    with _store(queue_url) as store:
        rows = store.outbox(status.value if status else None)
    if channel:
        rows = rows[rows["channel"] == channel.strip().lower()]
    rows = rows.tail(limit)
    if as_json:
        typer.echo(json.dumps(_records(rows), indent=2, default=str))
        return
    console = _console()
    if rows.empty:
        console.print("The outbox is empty." if status is None else f"No {status.value} rows in the outbox.")
        return
    table = Table(title=f"Outbox ({len(rows)} rows)")
    for column in ("id", "created", "kind", "channel", "destination", "case", "status", "attempts",
                   "next attempt", "last error"):
        table.add_column(column, no_wrap=column in ("id", "created", "next attempt"))
    for row in rows.to_dict("records"):
        table.add_row(str(row["outbox_id"]), fmt_time(row["created_at"]), row["kind"], row["channel"],
                      row["destination"], row["case_id"] if isinstance(row["case_id"], str) else "",
                      Text(row["status"], style={"dead": "bold red", "pending": "yellow"}.get(row["status"], "")),
                      str(row["attempts"]),
                      fmt_time(row["next_attempt_at"]) if row["status"] == "pending" else "",
                      row["last_error"] if isinstance(row["last_error"], str) else "")
    console.print(table)


@queue_app.command("overflow")
def show_overflow(
    limit: Annotated[int, typer.Option(min=1, help="At most this many accounts (riskiest first).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    queue_url: QueueUrl = None,
) -> None:
    """Accounts of the latest snapshot eligible for a case but not routed (overflow): over their
    team's daily budget, or nobody had the skills and room. Riskiest first (churn risk, then ARR
    at risk). A manager opens one from the desk's manager view."""
    from models.routing.decisions import OVERFLOW_CAUSES

    with _store(queue_url) as store:
        rows = store.overflow()
    total = len(rows)
    rows = rows.head(limit)
    if as_json:
        keep = [c for c in rows.columns if c not in ("context", "log_id", "logged_at")]
        typer.echo(json.dumps(_records(rows[keep]), indent=2, default=str))
        return
    console = _console()
    if rows.empty:
        console.print(f"No overflow in the latest snapshot of {store.display_url}.")
        return
    snapshot = fmt_time(rows["snapshot_date"].iloc[0])[:10]
    shown = f"{len(rows)} of {total}" if total > len(rows) else str(total)
    table = Table(title=f"Overflow on {snapshot} ({shown} account{'s' if total != 1 else ''}, riskiest first)",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    widest = max(len(text) for text in OVERFLOW_CAUSES.values())
    for name, justify in (("account", "left"), ("team", "left"), ("pri", "left"), ("risk", "right"),
                          ("ARR", "right"), ("at risk", "right"), ("why not routed", "left"), ("rank", "right"),
                          ("case", "left")):
        table.add_column(name, justify=justify, no_wrap=name != "account", overflow="fold",
                         min_width={"why not routed": widest, "team": int(rows["team"].astype(str).str.len().max()),
                                    "account": 12}.get(name))
    for row in rows.to_dict("records"):
        cause = row["cause"] if isinstance(row["cause"], str) else ""
        name = row["account_name"] if isinstance(row["account_name"], str) else ""
        table.add_row(
            f"{name} ({row['account_id']})" if name else str(row["account_id"]),
            row["team"] if isinstance(row["team"], str) else "",
            Text(str(row["priority"] or ""), style=PRIORITY_STYLE.get(row["priority"], "")),
            fmt_pct(row["churn_risk"]), fmt_money(row["arr"]), fmt_money(row["expected_arr_at_risk"]),
            OVERFLOW_CAUSES.get(cause, "not routed"), "" if _missing(row["rank"]) else str(int(row["rank"])),
            row["case_id"] if isinstance(row["case_id"], str) else "",
        )
    console.print(table)
    console.print("ARR at risk = churn risk x ARR; rank = place in the team's daily budget (1 = most ARR at risk). "
                  "Open one's case from the desk's manager view.", style="dim", soft_wrap=False)


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or pd.isna(value)

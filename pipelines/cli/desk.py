"""`rescue desk ...`: run the rescue desk and manage who may use it.

    rescue desk serve [--host 127.0.0.1] [--port 8080] [--policy FILE] [--queue-url URL]
    rescue desk add-user MEMBER_ID --role agent|manager [--team TEAM] [--name NAME]
    rescue desk new-token MEMBER_ID
    rescue desk users

Desk users are members of the escalation policy: `add-user` takes the member's name and team
from the policy unless given. It prints the user's token once; only its hash is stored. Session
cookies are signed with the desk secret (`RESCUE_DESK_SECRET`; random per process when unset, so
sessions end on restart). The queue and the policy default to their settings (`connectors.settings`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connectors.settings import Settings, current, default_policy_path, default_queue_url

if TYPE_CHECKING:
    from connectors.queue.users import DeskUsers

# The queue store, the policy, FastAPI and uvicorn load when a command runs, not when `rescue`
# starts (tests/unit/test_cli_imports.py).

desk_app = typer.Typer(help="The rescue desk: web pages and JSON API for the rescue team.", no_args_is_help=True)

QueueUrl = Annotated[
    str | None,
    typer.Option("--queue-url", help=f"SQLAlchemy URL of the rescue queue (default: ${Settings.env('queue_url')}, "
                                     "else the embedded SQLite file)."),
]
PolicyPath = Annotated[
    Path | None,
    typer.Option("--policy", help=f"Escalation policy YAML (default: ${Settings.env('policy_path')}, "
                                  "else policies/default.yaml)."),
]


class Role(str, Enum):
    agent = "agent"
    manager = "manager"


def _fail(message: str, code: int = 2) -> typer.Exit:
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code)


@contextmanager
def _users(queue_url: str | None) -> Iterator[DeskUsers]:
    """The desk users of the queue; one line for a bad URL (exit 2), a queue database that
    cannot be reached or written (exit 1) and a bad request (exit 2)."""
    from connectors.queue.database import QueueUrlError
    from connectors.queue.store import QueueStore
    from connectors.queue.users import DeskUserError, DeskUsers

    try:
        store = QueueStore(queue_url or default_queue_url())
    except QueueUrlError as exc:
        raise _fail(str(exc)) from None
    try:
        try:
            store.migrate()
        except sa.exc.SQLAlchemyError as exc:
            raise _fail(store.describe_error(exc), code=1) from None
        users = DeskUsers(store)
        try:
            yield users
        except DeskUserError as exc:
            raise _fail(str(exc)) from None
        except sa.exc.SQLAlchemyError as exc:
            raise _fail(store.describe_error(exc), code=1) from None
    finally:
        store.close()


@desk_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    policy: PolicyPath = None,
    queue_url: QueueUrl = None,
    proxy: Annotated[str | None, typer.Option(
        "--behind-proxy", metavar="PROXY_IPS",
        help="Trust X-Forwarded-Proto/For from these addresses (comma-separated): a TLS proxy in front, "
             "so the session cookie is marked Secure.")] = None,
    refresh: Annotated[int, typer.Option("--refresh", min=0, metavar="SECONDS",
                                         help="How often the queue and manager pages refresh their list "
                                              "in place (0: never).")] = 30,
) -> None:
    """Serve the desk (pages and /api/v1) with uvicorn."""
    import uvicorn

    from connectors.queue.database import QueueUrlError, describe_database_error
    from models.policy.loader import PolicyError
    from pipelines.desk import create_app

    url = queue_url or default_queue_url()
    try:
        app = create_app(url, policy or default_policy_path(), secret_key=current().desk_secret,
                         refresh_seconds=refresh)
    except PolicyError as exc:
        raise _fail(f"invalid policy {exc.summary()}") from None
    except (OSError, QueueUrlError) as exc:
        raise _fail(str(exc)) from None
    except sa.exc.SQLAlchemyError as exc:
        raise _fail(describe_database_error(url, exc), code=1) from None
    # uvicorn's access log records method, path and status only: never headers (tokens) or bodies.
    uvicorn.run(app, host=host, port=port, server_header=False,
                proxy_headers=proxy is not None, forwarded_allow_ips=proxy or "127.0.0.1")


@desk_app.command("add-user")
def add_user(
    member_id: Annotated[str, typer.Argument(metavar="MEMBER_ID", help="The person's member id in the policy.")],
    role: Annotated[Role, typer.Option("--role", help="agent or manager.")] = Role.agent,
    team: Annotated[str | None, typer.Option(help="Team key (default: the member's team in the policy).")] = None,
    name: Annotated[str | None, typer.Option(help="Display name (default: from the policy).")] = None,
    policy: PolicyPath = None,
    queue_url: QueueUrl = None,
) -> None:
    """Let a policy member use the desk; prints their token once."""
    from models.policy.loader import PolicyError, load_policy

    policy = policy or default_policy_path()
    try:
        rules = load_policy(policy)
    except PolicyError as exc:
        raise _fail(f"invalid policy {exc.summary()}") from None
    member = rules.members_by_id.get(member_id)
    if member is None:
        raise _fail(f"{member_id!r} is not a member of any team in {policy}; members: "
                    f"{', '.join(sorted(rules.members_by_id))}")
    team = team or rules.member_team[member_id]
    if team not in rules.teams:
        raise _fail(f"unknown team {team!r}; teams in {policy}: {', '.join(rules.teams)}")
    with _users(queue_url) as users:
        user, token = users.create_user(member_id, name=name or member.name, role=role.value, team=team)
    typer.echo(f"Added {user.name} ({user.user_id}) as {user.role} of team {user.team}.")
    typer.echo("Their desk token (shown once; hand it over privately):")
    typer.echo(token)


@desk_app.command("new-token")
def new_token(
    member_id: Annotated[str, typer.Argument(metavar="MEMBER_ID")],
    queue_url: QueueUrl = None,
) -> None:
    """Replace a user's token (the old one and its browser sessions stop working); prints it once."""
    with _users(queue_url) as users:
        token = users.issue_token(member_id)
    typer.echo(f"New desk token for {member_id} (shown once):")
    typer.echo(token)


@desk_app.command("users")
def list_users(queue_url: QueueUrl = None) -> None:
    """Who may use the desk."""
    with _users(queue_url) as users:
        rows = users.list()
    console = Console(highlight=False, markup=False)  # names as typed, not console styles
    if not rows:
        console.print("No desk users yet: add one with `rescue desk add-user MEMBER_ID --role agent`.")
        return
    table = Table(title=f"Desk users ({len(rows)})")
    for column in ("id", "name", "role", "team", "added", "status"):
        table.add_column(column)
    for u in rows:
        table.add_row(u.user_id, u.name, u.role, u.team, f"{u.created_at:%Y-%m-%d}", "disabled" if u.disabled else "active")
    console.print(table)

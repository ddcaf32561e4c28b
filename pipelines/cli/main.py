"""The `rescue` command: one entry point for operators, the CS team and analysts.

Sub-commands live next to the feature they drive:

- `rescue run ...`     run one snapshot of the daily rescue job on the configured sources
- `rescue demo ...`    generate the embedded demo world and run the whole pipeline
- `rescue data ...`    bring your own data: draft, check and load a source mapping
- `rescue model ...`   evaluate the churn model on any churn table (bring your own data)
- `rescue queue ...`   work the rescue queue (list, show, claim, ack, snooze, act, resolve)
- `rescue policy ...`  validate and simulate escalation policies
- `rescue desk ...`    serve the rescue desk and manage who may use it

`rescue --verbose ...` shows Dagster's logs and stack traces of the runs a command makes (they
go to a log file under `$RESCUE_HOME/logs/runs` otherwise).
"""

from __future__ import annotations

import typer

from pipelines.cli.data import data_app
from pipelines.cli.demo import demo_app
from pipelines.cli.desk import desk_app
from pipelines.cli.model import model_app
from pipelines.cli.policy import policy_app
from pipelines.cli.queue import queue_app
from pipelines.cli.run import run as run_snapshot
from pipelines.cli.runner import set_verbose

app = typer.Typer(
    name="rescue",
    help="Customer health scoring and churn-rescue routing.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _options(
    verbose: bool = typer.Option(False, "--verbose", help="Show Dagster's logs and stack traces of the runs."),
) -> None:
    set_verbose(verbose)


app.command("run")(run_snapshot)
app.add_typer(demo_app, name="demo")
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(queue_app, name="queue")
app.add_typer(policy_app, name="policy")
app.add_typer(desk_app, name="desk")


def main() -> None:
    from connectors.settings import SettingError

    try:
        app()
    except SettingError as exc:
        # a setting read when the Definitions load (RESCUE_EXECUTOR, RESCUE_SNAPSHOT_START) that a
        # command did not catch itself: one line naming the variable, as `rescue run` says it
        from rich.markup import escape

        from pipelines.cli.runner import err

        err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

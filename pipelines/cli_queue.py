"""`rescue queue ...` (being written)."""

import typer

queue_app = typer.Typer(help="queue commands", no_args_is_help=True)

"""`rescue policy ...` (being written)."""

import typer

policy_app = typer.Typer(help="policy commands", no_args_is_help=True)

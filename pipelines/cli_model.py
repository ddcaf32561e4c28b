"""`rescue model ...` (being written)."""

import typer

model_app = typer.Typer(help="model commands", no_args_is_help=True)

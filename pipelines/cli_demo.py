"""`rescue demo ...` (being written)."""

import typer

demo_app = typer.Typer(help="demo commands", no_args_is_help=True)

"""Rich consoles for the CLI: the terminal's width, or a wide page when output is piped."""

import os
import sys

from rich.console import Console

#: Width used when stdout is not a terminal (pipes, files, CI logs): rich would otherwise wrap
#: tables to 80 columns and make them unreadable.
PIPED_WIDTH = 200


def make_console(*, stderr: bool = False, **kwargs) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else PIPED_WIDTH
    return Console(stderr=stderr, width=width, **kwargs)

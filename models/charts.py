"""Charts as image bytes: the one figure-to-PNG and PNG-to-markdown path.

Every picture the product shows (model report, queue operations, play effectiveness, policy
swimlanes) is a pure function returning bytes; this module turns a matplotlib figure into PNG
bytes and PNG bytes into an inline markdown image for Dagster metadata or a report.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib is imported by the chart functions themselves, lazily
    from matplotlib.figure import Figure


def figure_png(fig: "Figure", *, dpi: int = 100, tight: bool = True, **savefig: Any) -> bytes:
    """Render `fig` (built with matplotlib's object API, no pyplot state) to PNG bytes."""
    buffer = io.BytesIO()
    if tight:
        fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=dpi, **savefig)
    return buffer.getvalue()


def png_markdown(name: str, png: bytes, *, heading: bool = True) -> str:
    """An inline markdown image (data URI) of PNG bytes, under a bold heading unless told not to."""
    image = f"![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"
    return f"**{name}**\n\n{image}" if heading else image

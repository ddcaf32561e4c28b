"""The README's configuration table lists exactly the variables the settings module declares."""

from __future__ import annotations

import re
from pathlib import Path

from connectors.settings import POLICY_SLACK_VARIABLES, declared_names, secret_names

README = Path(__file__).resolve().parents[2] / "README.md"


def configuration_table() -> list[tuple[list[str], str]]:
    """(variables in the first column, default column) of each row of the table under
    `## Configuration`."""
    text = README.read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first, rest = line.strip("|").split("|", 1)
        rows.append((re.findall(r"`([^`]+)`", first), rest.strip()))
    return rows


def test_every_declared_variable_is_in_the_table_and_nothing_else():
    listed = [name for names, _ in configuration_table() for name in names]
    assert len(listed) == len(set(listed)), "a variable is listed twice"
    assert set(listed) - {POLICY_SLACK_VARIABLES} == set(declared_names())
    assert POLICY_SLACK_VARIABLES in listed


def test_the_table_marks_exactly_the_secrets():
    marked = {name for names, default in configuration_table() if "*secret*" in default for name in names}
    assert marked - {POLICY_SLACK_VARIABLES} == set(secret_names())

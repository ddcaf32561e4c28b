"""Hostile and broken escalation policies: every command that loads one refuses it in one line.

The files are those a hostile tester sent: alias bombs (a few kilobytes that expand to millions of
condition leaves or to a multi-megabyte error message), recursive aliases, deep nesting, binary
and non-UTF-8 files, oversized files, integers Python will not convert, YAML tags that build
objects. Each must fail fast, with one line naming the file and the problem, a non-zero exit and
nothing written (no diagram, no report, no queue database).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.policy.loader import MAX_POLICY_BYTES, MAX_PROBLEMS
from pipelines.cli.main import app
from tests.faults.conftest import assert_clean_failure

POLICIES = Path(__file__).resolve().parents[2] / "policies"
DEFAULT = (POLICIES / "default.yaml").read_text(encoding="utf-8")
CRITICAL_RULE = 'when: {field: health_band, op: "==", value: critical}'
LEAF = '{field: churn_risk, op: ">=", value: 0.3}'
#: A hostile file used to take 88 s to be accepted; now any refusal takes a fraction of a second.
FAST_SECONDS = 10.0

runner = CliRunner()


def _with(old: str, new: str) -> str:
    assert old in DEFAULT, old
    return DEFAULT.replace(old, new, 1)


def _condition_bomb(levels: int = 7, fanout: int = 10) -> str:
    """A *valid* condition (any of: a leaf, any of ten of it, any of ten of that, ...) whose
    expansion has fanout**levels leaves: 10 million for the defaults, in about 400 bytes."""
    parts = [f"&c0 {LEAF}"]
    for level in range(1, levels + 1):
        parts.append(f"&c{level} {{any: [{', '.join([f'*c{level - 1}'] * fanout)}]}}")
    return _with(CRITICAL_RULE, "when: {any: [" + ", ".join(parts) + "]}")


def _error_bomb() -> str:
    """Under the node limit, but the invalid value it expands to is ten million characters:
    the error message must not repeat it."""
    long = "x" * 1000
    anchors = [f"&e0 {long}"] + [f"&e{i} [{', '.join([f'*e{i - 1}'] * 10)}]" for i in range(1, 5)]
    return _with("cooldown_days: 30", f"cooldown_days: [{', '.join(anchors)}]")


#: kind -> (file content, words the one-line message must contain)
HOSTILE: dict[str, tuple[Callable[[], str | bytes], tuple[str, ...]]] = {
    "condition_alias_bomb": (_condition_bomb, ("more than 50,000 YAML nodes", "MAX_NODES")),
    "recursive_alias": (lambda: _with("holdout:", "loop: &loop [1, *loop]\nholdout:"), ("recursive alias",)),
    "deep_nesting": (lambda: _with('name: default', "name: " + "[" * 500 + "]" * 500), ("nested deeper", "MAX_DEPTH")),
    "binary_file": (lambda: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe" * 40, ("is not UTF-8 text",)),
    "latin1_file": (lambda: DEFAULT.replace("name: default", "name: caf\u00e9").encode("latin-1"),
                    ("is not UTF-8 text", "byte 0xe9")),
    "oversized_file": (lambda: DEFAULT + "#" * (MAX_POLICY_BYTES + 1) + "\n", ("larger than", "MAX_POLICY_BYTES")),
    "nul_character": (lambda: _with("name: default", "name: de\x00fault"), ("invalid YAML", "#x0000")),
    "huge_integer": (lambda: _with("cooldown_days: 30", "cooldown_days: " + "9" * 5000), ("invalid YAML", "digits")),
    "two_documents": (lambda: DEFAULT + "\n---\n" + DEFAULT, ("invalid YAML", "single document")),
    "python_object_tag": (lambda: _with("name: default", 'name: !!python/object/apply:os.system ["true"]'),
                          ("invalid YAML", "constructor")),
    "a_list_not_a_mapping": (lambda: "- version: 1\n- teams: {}\n", ("a policy is a mapping",)),
}


def _write(tmp_path: Path, kind: str) -> Path:
    content = HOSTILE[kind][0]()
    path = tmp_path / f"{kind}.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _invoke(*args: str) -> tuple[str, int, float]:
    started = time.monotonic()
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.output, result.exit_code, time.monotonic() - started


def _one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{output[:3000]}"
    return lines[0]


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_validate_refuses_a_hostile_policy_in_one_line(tmp_path: Path, kind: str) -> None:
    path = _write(tmp_path, kind)
    output, code, seconds = _invoke("policy", "validate", str(path))
    assert_clean_failure(output, names=(str(path), *HOSTILE[kind][1]), exit_code=code)
    assert code == 2 and seconds < FAST_SECONDS
    assert _one_line(output).startswith(f"invalid policy {path}")


def test_a_directory_is_not_a_policy_file(tmp_path: Path) -> None:
    output, code, _ = _invoke("policy", "validate", str(tmp_path))
    assert_clean_failure(output, names=(str(tmp_path), "cannot read the file"), exit_code=code)
    _one_line(output)


def test_an_error_bomb_under_the_node_limit_gets_a_short_message(tmp_path: Path) -> None:
    path = tmp_path / "error_bomb.yaml"
    path.write_text(_error_bomb(), encoding="utf-8")
    output, code, seconds = _invoke("policy", "validate", str(path))
    assert_clean_failure(output, names=("cooldown_days", "valid integer"), exit_code=code)
    line = _one_line(output)
    assert len(line) < 500 and seconds < FAST_SECONDS


def test_a_policy_with_hundreds_of_problems_lists_a_bounded_number(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(DEFAULT + "".join(f"unknown_key_{i}: {i}\n" for i in range(300)), encoding="utf-8")
    output, code, _ = _invoke("policy", "validate", str(path))
    assert_clean_failure(output, names=("unknown key", "and 260 more problems"), exit_code=code)
    assert len(output.strip().splitlines()) == MAX_PROBLEMS + 2  # the file, the problems, the count


# -- every other command that loads a policy -----------------------------------------------------


def _diagram(path: Path, tmp: Path) -> tuple[list[str], Callable[[], bool]]:
    out = tmp / "out" / "policy.svg"
    return ["policy", "diagram", str(path), "--out", str(out)], lambda: not (tmp / "out").exists()


def _simulate(path: Path, tmp: Path) -> tuple[list[str], Callable[[], bool]]:
    reports = tmp / "reports"
    return (["policy", "simulate", str(path), "--against", str(POLICIES / "default.yaml"),
             "--warehouse", f"duckdb:///{tmp / 'wh.duckdb'}", "--report-dir", str(reports)],
            lambda: not reports.exists() and not (tmp / "wh.duckdb").exists())


def _serve(path: Path, tmp: Path) -> tuple[list[str], Callable[[], bool]]:
    db = tmp / "queue.db"
    return ["desk", "serve", "--policy", str(path), "--queue-url", f"sqlite:///{db}"], lambda: not db.exists()


def _add_user(path: Path, tmp: Path) -> tuple[list[str], Callable[[], bool]]:
    db = tmp / "queue.db"
    return (["desk", "add-user", "csm_amara", "--role", "agent", "--policy", str(path), "--queue-url", f"sqlite:///{db}"],
            lambda: not db.exists())


COMMANDS = {"policy diagram": _diagram, "policy simulate": _simulate, "desk serve": _serve, "desk add-user": _add_user}


@pytest.mark.parametrize("kind", ["condition_alias_bomb", "binary_file", "recursive_alias"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_that_loads_a_policy_refuses_it_in_one_line_and_writes_nothing(
        tmp_path: Path, command: str, kind: str) -> None:
    path = _write(tmp_path, kind)
    args, nothing_written = COMMANDS[command](path, tmp_path)
    output, code, seconds = _invoke(*args)
    assert_clean_failure(output, names=(str(path), *HOSTILE[kind][1]), exit_code=code)
    assert "invalid policy" in _one_line(output)
    assert code == 2 and seconds < FAST_SECONDS
    assert nothing_written(), f"{command} wrote something for a policy it refused"


# -- the catalogue of plays ----------------------------------------------------------------------

#: A mistake in the `plays:` catalogue -> (the edit, the key path and reason of the one line).
_PLAYS_BLOCK = DEFAULT[DEFAULT.index("plays:\n"):DEFAULT.index("\n# ---", DEFAULT.index("plays:\n"))]
CATALOGUE = {
    "no_catalogue": ((_PLAYS_BLOCK, ""), ("plays: required key is missing",)),
    "empty_catalogue": ((_PLAYS_BLOCK, "plays: {}\n"), ("plays: dictionary should have at least 1 item",)),
    "play_id_not_an_id": (("  adoption_workshop:\n", "  Adoption Workshop:\n"),
                          ("plays.Adoption Workshop", "a play id is at most 64 lower-case letters")),
    "play_for_unknown_team": (("teams: [csm]\n    aliases: [training_session]", "teams: [cms]\n    aliases: [training_session]"),
                              ("plays.adoption_workshop.teams[0]", "unknown team 'cms'")),
    "former_name_is_a_play": (("aliases: [discount_offer]", "aliases: [success_plan]"),
                              ("plays.commercial_concession.aliases[0]", "is the id of a play")),
    "former_name_used_twice": (("aliases: [discount_offer]", "aliases: [training_session]"),
                               ("plays.commercial_concession.aliases[0]", "already a former name of 'adoption_workshop'")),
}


@pytest.mark.parametrize("kind", sorted(CATALOGUE))
def test_a_broken_play_catalogue_is_refused_in_one_line_naming_the_key(tmp_path: Path, kind: str) -> None:
    (old, new), names = CATALOGUE[kind]
    path = tmp_path / f"{kind}.yaml"
    path.write_text(_with(old, new), encoding="utf-8")
    output, code, _ = _invoke("policy", "validate", str(path))
    assert_clean_failure(output, names=(str(path), *names), exit_code=code)
    assert code == 2 and _one_line(output).startswith(f"invalid policy {path}")


def test_brackets_in_a_policy_are_shown_as_written_not_read_as_console_styles(tmp_path: Path) -> None:
    path = tmp_path / "brackets.yaml"
    path.write_text(_with("name: default", "name: '[/] [red]x'").replace('version: "2026.12.1"', 'version: "[/]"', 1),
                    encoding="utf-8")
    for command in ("validate", "plays"):
        output, code, _ = _invoke("policy", command, str(path))
        assert code == 0, output
        assert_clean_failure(output, names=("[/] [red]x",) if command == "plays" else ("version [/]",))

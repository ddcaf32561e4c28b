"""`rescue policy diagram FILE --out PATH`: writes SVG or PNG, refuses bad input with exit 2."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from models.policy.diagram import render_policy_diagram
from models.policy.loader import load_policy
from pipelines.cli.main import app

POLICIES = Path(__file__).resolve().parents[2] / "policies"
runner = CliRunner()


def test_writes_svg_and_png_after_the_extension(tmp_path):
    policy = load_policy(POLICIES / "default.yaml")
    for name, magic in (("policy.svg", b"<?xml"), ("nested/dir/policy.PNG", b"\x89PNG")):
        out = tmp_path / name
        result = runner.invoke(app, ["policy", "diagram", str(POLICIES / "default.yaml"), "--out", str(out)],
                               env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert out.read_bytes().startswith(magic)
        assert f"wrote {out}" in result.output
    assert (tmp_path / "policy.svg").read_bytes() == render_policy_diagram(policy, fmt="svg")


def test_a_malformed_policy_exits_2_with_one_line_and_writes_nothing(tmp_path):
    text = (POLICIES / "default.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("calendar: us_office", "calendar: us_ofice", 1).replace(
        "escalates_to: leadership", "escalates_to: board", 1))
    out = tmp_path / "policy.svg"
    result = runner.invoke(app, ["policy", "diagram", str(bad), "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"invalid policy {bad}: teams.rescue_squad.calendar: unknown calendar 'us_ofice'")
    assert "(and 1 more problem: rescue policy validate" in lines[0]
    assert "Traceback" not in result.output and not out.exists()


def test_an_unknown_extension_exits_2(tmp_path):
    out = tmp_path / "policy.pdf"
    result = runner.invoke(app, ["policy", "diagram", str(POLICIES / "default.yaml"), "--out", str(out)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert result.output.strip() == f"cannot draw {out}: unknown extension '.pdf'; use .svg or .png"
    assert not out.exists()

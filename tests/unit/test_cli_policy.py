"""`rescue policy validate`: summary and exit 0 on a good file, key paths and exit 2 otherwise."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from models.policy.loader import load_policy
from pipelines.cli.main import app

POLICIES = Path(__file__).resolve().parents[2] / "policies"
runner = CliRunner()


def test_a_valid_policy_prints_its_summary_and_exits_0():
    result = runner.invoke(app, ["policy", "validate", str(POLICIES / "default.yaml")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    policy = load_policy(POLICIES / "default.yaml")
    assert f"version {policy.version}" in result.output
    assert f"hash {policy.content_hash}" in result.output
    for text in ("Teams", "rescue_squad", "enterprise_renewal_at_risk", "SLA targets", "holdout 10%"):
        assert text in result.output


def test_a_malformed_policy_exits_2_with_the_key_path_and_no_traceback(tmp_path):
    text = (POLICIES / "default.yaml").read_text()
    bad = text.replace('{field: churn_risk, op: ">=", value: 0.3}', '{field: churn_risk, op: "=>", value: 0.3}', 1)
    assert bad != text
    bad = bad.replace("calendar: us_office", "calendar: us_ofice", 1)
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    result = runner.invoke(app, ["policy", "validate", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert f"invalid policy {path}" in result.output
    assert "severity_rules[2].when.all[1].op: unknown operator '=>'; expected one of" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cross_reference_errors_are_listed_together(tmp_path):
    text = (POLICIES / "default.yaml").read_text()
    bad = text.replace("calendar: us_office", "calendar: us_ofice", 1).replace(
        "escalates_to: leadership", "escalates_to: board", 1)
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    result = runner.invoke(app, ["policy", "validate", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "teams.rescue_squad.calendar: unknown calendar 'us_ofice'" in result.output
    assert "teams.rescue_squad.escalates_to: unknown team 'board'" in result.output


def test_a_missing_file_exits_2(tmp_path):
    result = runner.invoke(app, ["policy", "validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read the file" in result.output


def test_plays_lists_the_catalogue_with_teams_and_former_names():
    result = runner.invoke(app, ["policy", "plays", str(POLICIES / "default.yaml")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    policy = load_policy(POLICIES / "default.yaml")
    for key, play in policy.plays.items():
        assert key in result.output and play.description in result.output
    assert "exec_sponsor_call" in result.output  # a former name, shown with its play
    default = runner.invoke(app, ["policy", "plays"], env={"COLUMNS": "200"})  # the deployment's policy
    assert default.exit_code == 0 and "executive_sponsor_call" in default.output


def test_a_rule_named_for_a_fact_it_does_not_test_is_a_warning_line(tmp_path):
    text = (POLICIES / "default.yaml").read_text()
    bad = text.replace("description: Health in the critical band", "description: Health in the critical band, usage falling")
    assert bad != text
    path = tmp_path / "worded.yaml"
    path.write_text(bad)
    result = runner.invoke(app, ["policy", "validate", str(path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "rule 'critical_band' says 'usage falling'" in result.output

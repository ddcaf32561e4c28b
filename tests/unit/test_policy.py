"""The policy file (schema, errors with key paths, version and hash) and `route` semantics."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from models.contracts import DECISION_COLUMNS
from models.policy.loader import PolicyError, load_policy, parse_policy
from models.routing.route import RoutingError, route
from models.routing.selection import holdout_draw

POLICIES = Path(__file__).resolve().parents[2] / "policies"
UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 20, 16, 30, tzinfo=UTC)  # Friday, 16:30 in London

SMALL = """
version: "t1"
calendars:
  always: {timezone: UTC, working_days: [mon, tue, wed, thu, fri, sat, sun], hours: {start: "00:00", end: "24:00"}}
  office: {timezone: Europe/London, working_days: [mon, tue, wed, thu, fri], hours: {start: "09:00", end: "17:00"},
           holidays: {country: GB, subdiv: ENG}}
teams:
  csm:
    name: CSMs
    tier: 1
    escalates_to: squad
    calendar: office
    escalation_manager: s1
    daily_budget: 2
    channels: {email: csm@example.com}
    members:
      - {id: c1, name: C One, email: c1@example.com, skills: [renewals], capacity: 2}
      - {id: c2, name: C Two, email: c2@example.com, skills: [renewals], capacity: 2}
  squad:
    name: Squad
    tier: 2
    calendar: always
    escalation_manager: s1
    daily_budget: 3
    channels: {slack_webhook_env: SQUAD_HOOK}
    members:
      - {id: s1, name: S One, email: s1@example.com, skills: [renewals, enterprise], capacity: 1}
severity_rules:
  - id: enterprise_high
    description: Enterprise with high risk
    when: {all: [{field: segment, op: "==", value: enterprise}, {field: churn_risk, op: ">=", value: 0.6}]}
    priority: P1
    team: squad
    required_skills: [enterprise]
  - id: high
    description: High risk
    when: {field: churn_risk, op: ">=", value: 0.5}
    priority: P2
    team: csm
    required_skills: [renewals]
  - id: some
    description: Some risk
    when: {field: churn_risk, op: ">=", value: 0.0}
    priority: P4
    team: csm
sla:
  P1: {first_touch_minutes: 30, resolution_minutes: 480, pre_breach_pct: 75}
  P2: {first_touch_minutes: 120, resolution_minutes: 960, pre_breach_pct: 75}
  P4: {first_touch_minutes: 480, resolution_minutes: 2400, pre_breach_pct: 80}
ladders:
  P1:
    - {id: p1_warn, at_sla_pct: pre_breach, action: warn, raci: {responsible: [assignee]}}
hysteresis: {field: churn_risk, enter_threshold: 0.5, exit_threshold: 0.3, min_days_in_state: 0}
plays:
  check_in: {description: Call the customer, teams: [csm]}
cooldown_days: 10
holdout: {fraction: 0.0, seed: s}
"""


def small(**replace: str):
    text = SMALL
    for old, new in replace.items():
        old = old.replace("__", " ")
        assert old in text, old
        text = text.replace(old, new)
    return parse_policy(text, source="small.yaml")


def candidates(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    """(account_id, segment, churn_risk, arr) rows."""
    frame = pd.DataFrame(rows, columns=["account_id", "segment", "churn_risk", "arr"])
    return frame.assign(expected_arr_at_risk=frame["churn_risk"] * frame["arr"],
                        top_reason="usage fell 38% over 90 days")


def at_risk_since(ids: list[str], since: str = "2026-11-01") -> pd.DataFrame:
    return pd.DataFrame({"account_id": ids, "state": "at_risk", "since": pd.Timestamp(since)})


def by_account(result) -> pd.DataFrame:
    return result.decisions.set_index("account_id")


# -- loading ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["default.yaml", "aggressive.yaml"])
def test_shipped_policies_load(name):
    policy = load_policy(POLICIES / name)
    assert policy.version
    assert re.fullmatch(r"[0-9a-f]{12}", policy.content_hash)
    assert {rule.priority for rule in policy.severity_rules} <= set(policy.sla)


def test_default_policy_expresses_the_required_rules():
    policy = load_policy(POLICIES / "default.yaml")
    rules = {rule.id: rule for rule in policy.severity_rules}
    assert rules["enterprise_renewal_at_risk"].priority == "P1"
    assert rules["vip_urgent_ticket_past_sla"].priority == "P1"
    assert rules["open_compliance_ticket"].team == "legal"
    assert policy.ladder_for("legal", "P1")[0].after_minutes == 15
    frame = pd.DataFrame({
        "segment": ["enterprise", "enterprise", "smb"], "churn_risk": [0.7, 0.7, 0.7],
        "days_to_renewal": [100.0, 150.0, 30.0],
    })
    from models.policy.conditions import evaluate

    assert evaluate(rules["enterprise_renewal_at_risk"].when, frame).tolist() == [True, False, False]


def test_content_hash_ignores_comments_and_layout_but_not_content():
    text = (POLICIES / "default.yaml").read_text()
    original = parse_policy(text)
    relaid = yaml.safe_dump(yaml.safe_load(text), default_flow_style=True, sort_keys=True)
    assert parse_policy("# a comment\n" + relaid).content_hash == original.content_hash
    changed = parse_policy(text.replace("cooldown_days: 30", "cooldown_days: 31"))
    assert changed.content_hash != original.content_hash


@pytest.mark.parametrize(
    ("replace", "path", "reason"),
    [
        ({'op: "==", value: enterprise}': 'op: "=>", value: enterprise}'},
         "severity_rules[0].when.all[0].op", "unknown operator '=>'; expected one of ==, !=, <"),
        ({'version: "t1"': ""}, "version", "required key is missing"),
        ({"team: squad\n": "team: sqaud\n"}, "severity_rules[0].team", "unknown team 'sqaud'; expected one of csm, squad"),
        ({"calendar: office": "calendar: ofice"}, "teams.csm.calendar", "unknown calendar 'ofice'"),
        ({"{field: churn_risk, op: \">=\", value: 0.5}": "{field: churn_rsk, op: \">=\", value: 0.5}"},
         "severity_rules[1].when.field", "unknown field 'churn_rsk'"),
        ({"id: c2,": "id: c1,"}, "teams.csm.members[1].id", "member id 'c1' is already used in team 'csm'"),
        ({"escalates_to: squad": "escalates_to: csm"}, "teams.csm.escalates_to", "tier 1, not above tier 1"),
        ({"escalation_manager: s1\n    daily_budget: 2": "escalation_manager: boss\n    daily_budget: 2"},
         "teams.csm.escalation_manager", "unknown member 'boss'"),
        ({"responsible: [assignee]": "responsible: [asignee]"}, "ladders.P1[0].raci.responsible[0]",
         "unknown entry 'asignee'"),
        ({"at_sla_pct: pre_breach,": "at_sla_pct: pre_breach, after_minutes: 5,"}, "ladders.P1[0]",
         "exactly one trigger"),
        ({"first_touch_minutes: 30,": "first_touch_minutes: 900,"}, "sla.P1", "exceeds resolution_minutes"),
        ({"enter_threshold: 0.5, exit_threshold: 0.3": "enter_threshold: 0.3, exit_threshold: 0.5"},
         "hysteresis", "must not exceed enter_threshold"),
        ({"fraction: 0.0": "fraction: 1.5"}, "holdout.fraction", "less than 1"),
        ({"priority: P4\n": "priority: P5\n"}, "severity_rules[2].priority", "'P1', 'P2', 'P3' or 'P4'"),
        ({"timezone: UTC,": "timezone: Mars/Base,"}, "calendars.always", "unknown timezone 'Mars/Base'"),
        ({"capacity: 1}": "capacity: -1}"}, "teams.squad.members[0].capacity", "greater than or equal to 0"),
        ({"cooldown_days: 10": "cooldown_days: 10\ncooldown: 3"}, "cooldown", "unknown key"),
        ({"required_skills: [enterprise]": "required_skills: [legal]"}, "severity_rules[0].required_skills",
         "has all of ['legal']"),
    ],
)
def test_malformed_policies_name_the_key_path_and_the_reason(replace, path, reason):
    text = SMALL
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.yaml")
    problems = dict(info.value.problems)
    assert path in problems, problems
    assert reason in problems[path]
    assert f"p.yaml: {path}: " in str(info.value)


def test_invalid_yaml_reports_the_line():
    # libyaml's wording ("did not find expected key") or PyYAML's ("expected <block end>")
    with pytest.raises(PolicyError, match=r"p.yaml: line 2, column 18: invalid YAML: (did not find expected key|expected <block end>)"):
        parse_policy('version: "1"\ncalendars: {a: 1}}\n', source="p.yaml")
    with pytest.raises(PolicyError, match="a policy is a mapping"):
        parse_policy("- just a list", source="p.yaml")


def test_missing_file_is_a_policy_error(tmp_path):
    with pytest.raises(PolicyError, match="cannot read the file"):
        load_policy(tmp_path / "nope.yaml")


def test_conditions_may_use_other_fields_when_told():
    text = SMALL.replace("{field: churn_risk, op: \">=\", value: 0.5}", "{field: nps, op: \"<\", value: 0}")
    text = text.replace("description: High risk", "description: Detractors")
    policy = parse_policy(text, known_fields={"segment", "churn_risk", "nps"})
    assert "nps" in policy.condition_fields()


# -- routing ----------------------------------------------------------------------------------


def test_one_decision_per_candidate_in_order_with_the_contract_columns():
    policy = small()
    frame = candidates([("a", "smb", 0.55, 1000), ("b", "enterprise", 0.9, 5000), ("c", "smb", 0.1, 10)])
    result = route(frame, policy, now=NOW, account_states=at_risk_since(["a", "b"]))
    assert list(result.decisions.columns) == list(DECISION_COLUMNS)
    assert list(result.decisions["account_id"]) == ["a", "b", "c"]
    decisions = by_account(result)
    assert decisions.loc["b", ["priority", "team", "rule_id", "action"]].tolist() == ["P1", "squad", "enterprise_high", "route"]
    assert decisions.loc["b", "required_skills"] == ["enterprise"]
    assert decisions.loc["a", ["priority", "rule_id", "assignee"]].tolist() == ["P2", "high", "c1"]
    assert decisions.loc["c", "action"] == "not_eligible"
    assert pd.isna(decisions.loc["c", "priority"])
    assert decisions.loc["c", "reasons"] == ["not at risk: churn_risk has not reached 0.5"]
    assert decisions.loc["b", "reasons"][1:] == ["enterprise_high: Enterprise with high risk",
                                                 "top driver: usage fell 38% over 90 days"]
    assert result.policy_version == "t1" and result.policy_hash == policy.content_hash


def test_hysteresis_enter_stay_exit_and_minimum_days():
    policy = small(**{"min_days_in_state: 0": "min_days_in_state: 2"})
    frame = candidates([
        ("enters", "smb", 0.55, 100),     # ok -> at_risk today: not yet eligible
        ("between_ok", "smb", 0.4, 100),  # ok, between thresholds: stays ok
        ("stays", "smb", 0.4, 100),       # at_risk since 3 days, between thresholds: stays, eligible
        ("exits", "smb", 0.25, 100),      # at_risk, below exit: leaves
        ("young", "smb", 0.6, 100),       # at_risk since yesterday: not yet eligible
    ])
    states = pd.DataFrame({
        "account_id": ["between_ok", "stays", "exits", "young", "absent"],
        "state": ["ok", "at_risk", "at_risk", "at_risk", "at_risk"],
        "since": pd.to_datetime(["2026-10-01 00:00", "2026-11-17 08:00", "2026-11-01 00:00", "2026-11-19 23:00",
                                 "2026-11-02 00:00"]),
    })
    result = route(frame, policy, now=NOW, account_states=states)
    decisions = by_account(result)
    assert decisions["action"].to_dict() == {
        "enters": "not_eligible", "between_ok": "not_eligible", "stays": "route",
        "exits": "not_eligible", "young": "not_eligible",
    }
    assert decisions.loc["young", "reasons"] == ["at risk for less than 2 day(s)"]
    new = result.account_states.set_index("account_id")
    now_naive = pd.Timestamp(NOW).tz_localize(None)
    assert new.loc["enters"].tolist() == ["at_risk", now_naive]
    assert new.loc["exits"].tolist() == ["ok", now_naive]
    assert new.loc["stays"].tolist() == ["at_risk", pd.Timestamp("2026-11-17 08:00")]
    assert new.loc["between_ok", "since"] == pd.Timestamp("2026-10-01")
    assert new.loc["absent"].tolist() == ["at_risk", pd.Timestamp("2026-11-02")]  # kept for later runs

    # Two days later the account that entered today is eligible, with no new state change.
    later = route(frame, policy, now=NOW + dt.timedelta(days=2), account_states=result.account_states)
    assert by_account(later).loc["enters", "action"] == "route"


def test_an_open_case_is_updated_and_a_priority_change_is_recorded():
    policy = small()
    frame = candidates([("a", "enterprise", 0.9, 1000), ("b", "smb", 0.55, 1000)])
    open_cases = pd.DataFrame({"account_id": ["a", "b"], "case_id": ["K-1", "K-2"], "priority": ["P2", "P2"],
                               "team": ["csm", "csm"], "opened_at": pd.to_datetime(["2026-11-01", "2026-11-02"])})
    decisions = by_account(route(frame, policy, now=NOW, open_cases=open_cases,
                                 account_states=at_risk_since(["a", "b"])))
    assert decisions.loc["a", ["action", "case_id", "priority", "previous_priority"]].tolist() == ["update", "K-1", "P1", "P2"]
    assert decisions.loc["a", "reasons"][0] == "open case K-1 gains evidence; priority P2 -> P1"
    assert decisions.loc["b", "reasons"][0] == "open case K-2 gains evidence"
    assert decisions["assignee"].isna().all()


def test_cooldown_after_a_resolved_case():
    policy = small()
    frame = candidates([("recent", "smb", 0.55, 100), ("old", "smb", 0.55, 100)])
    resolved = pd.DataFrame({"account_id": ["recent", "old", "old"],
                             "resolved_at": pd.to_datetime(["2026-11-15", "2026-11-05", "2026-10-01"])})
    decisions = by_account(route(frame, policy, now=NOW, recent_resolutions=resolved,
                                 account_states=at_risk_since(["recent", "old"])))
    assert decisions.loc["recent", "action"] == "cooldown"
    assert "resolved on 2026-11-15" in decisions.loc["recent", "reasons"][0]
    assert decisions.loc["old", "action"] == "route"


def test_holdout_is_seeded_reproducible_and_per_account():
    policy = small(**{"fraction: 0.0": "fraction: 0.3", "daily_budget: 2": "daily_budget: 1000",
                      "capacity: 2}": "capacity: 1000}"})
    ids = [f"acc{i}" for i in range(400)]
    frame = candidates([(i, "smb", 0.55, 100) for i in ids])
    states = at_risk_since(ids)
    first = by_account(route(frame, policy, now=NOW, account_states=states))
    second = by_account(route(frame, policy, now=NOW + dt.timedelta(days=1), account_states=states))
    control = set(first.index[first["action"] == "holdout"])
    assert control == set(second.index[second["action"] == "holdout"])
    assert 0.2 < len(control) / len(ids) < 0.4
    # Membership depends on the account alone, not on who else is in the frame.
    subset = by_account(route(frame.iloc[::7], policy, now=NOW, account_states=states))
    assert set(subset.index[subset["action"] == "holdout"]) == control & set(frame["account_id"].iloc[::7])
    assert (first.loc[list(set(ids) - control), "action"] == "route").all()
    # Another seed draws another control group.
    assert not np.array_equal(holdout_draw(ids, "s") < 0.3, holdout_draw(ids, "other") < 0.3)


def test_daily_budget_admits_by_arr_at_risk_and_keeps_the_overflow_rank():
    policy = small()
    frame = candidates([(f"a{i}", "smb", 0.55, arr) for i, arr in enumerate([100, 500, 300, 900, 200])])
    decisions = by_account(route(frame, policy, now=NOW, account_states=at_risk_since(list(frame["account_id"]))))
    assert decisions["rank"].to_dict() == {"a0": 5, "a1": 2, "a2": 3, "a3": 1, "a4": 4}
    assert decisions.loc[["a3", "a1"], "action"].tolist() == ["route", "route"]
    assert decisions.loc[["a2", "a4", "a0"], "action"].tolist() == ["overflow"] * 3
    assert decisions.loc["a2", "reasons"][0] == "overflow: rank 3 is over team csm's remaining daily budget of 2"

    # A case already opened today for the team uses one unit of today's budget.
    opened = pd.DataFrame({"account_id": ["zz"], "case_id": ["K-9"], "priority": ["P2"], "team": ["csm"],
                           "opened_at": [pd.Timestamp("2026-11-20 08:00")]})
    again = by_account(route(frame, policy, now=NOW, open_cases=opened,
                             account_states=at_risk_since(list(frame["account_id"]))))
    assert (again["action"] == "route").sum() == 1
    assert again.loc["a3", "action"] == "route"


def test_full_teams_send_work_up_the_path_and_otherwise_overflow():
    policy = small()
    frame = candidates([("p2", "smb", 0.55, 100), ("e1", "enterprise", 0.9, 900), ("e2", "enterprise", 0.8, 800)])
    decisions = by_account(route(frame, policy, now=NOW, account_states=at_risk_since(list(frame["account_id"])),
                                 member_load={"c1": 2, "c2": 2}))
    # e1 (P1, more ARR at risk) takes the squad's only seat; the P2 case finds csm full and
    # the squad full too; e2 finds nobody with the enterprise skill and room.
    assert decisions.loc["e1", ["action", "assignee", "team"]].tolist() == ["route", "s1", "squad"]
    assert decisions.loc["p2", "action"] == "overflow"
    assert decisions.loc["e2", "action"] == "overflow"
    assert "no member of squad or the teams above it" in decisions.loc["e2", "reasons"][0]

    only_p2 = by_account(route(frame.iloc[:1], policy, now=NOW, account_states=at_risk_since(["p2"]),
                               member_load={"c1": 2, "c2": 2}))
    assert only_p2.loc["p2", ["action", "assignee", "team"]].tolist() == ["route", "s1", "squad"]
    assert "team csm had no member with the skills and capacity" in only_p2.loc["p2", "reasons"][0]


def test_sla_due_times_follow_the_receiving_teams_calendar():
    policy = small()
    frame = candidates([("p2", "smb", 0.55, 100), ("p1", "enterprise", 0.9, 900)])
    decisions = by_account(route(frame, policy, now=NOW, account_states=at_risk_since(["p1", "p2"])))
    # P1 on the 24x7 squad calendar.
    assert decisions.loc["p1", "sla_first_touch_due"] == pd.Timestamp("2026-11-20 17:00")
    assert decisions.loc["p1", "sla_resolution_due"] == pd.Timestamp("2026-11-21 00:30")
    # P2 on the London office calendar: 30 minutes left on Friday, the rest on Monday.
    assert decisions.loc["p2", "sla_first_touch_due"] == pd.Timestamp("2026-11-23 10:30")
    assert decisions.loc["p2", "sla_resolution_due"] == pd.Timestamp("2026-11-24 16:30")


def test_routing_input_errors_are_named():
    policy = small()
    frame = candidates([("a", "smb", 0.55, 100), ("a", "smb", 0.6, 100)])
    with pytest.raises(RoutingError, match="duplicate account_id"):
        route(frame, policy, now=NOW)
    with pytest.raises(RoutingError, match="candidates frame lacks column\\(s\\) segment"):
        route(frame.drop(columns="segment").iloc[:1], policy, now=NOW)
    with pytest.raises(RoutingError, match="timezone-aware"):
        route(frame.iloc[:1], policy, now=dt.datetime(2026, 11, 20))
    with pytest.raises(RoutingError, match="open_cases frame lacks column\\(s\\) opened_at"):
        route(frame.iloc[:1], policy, now=NOW, open_cases=pd.DataFrame(
            {"account_id": [], "case_id": [], "priority": [], "team": []}))


def test_hysteresis_counts_snapshot_days_when_as_of_is_given():
    """A backfill of consecutive snapshots run at the same wall-clock time behaves like the daily
    runs it replays: the minimum days in state count snapshot dates, not the run's clock."""
    policy = small(**{"min_days_in_state: 0": "min_days_in_state: 2"})
    frame = candidates([("acct", "smb", 0.6, 100)])
    states = None
    actions = []
    for day in ("2026-11-16", "2026-11-17", "2026-11-18"):
        result = route(frame, policy, now=NOW, account_states=states, as_of=pd.Timestamp(day))
        states = result.account_states
        actions.append(by_account(result).loc["acct", "action"])
    assert actions == ["not_eligible", "not_eligible", "route"]
    assert states.set_index("account_id").loc["acct", "since"] == pd.Timestamp("2026-11-16")
    # without as_of the same three runs all happen "now": the account is never old enough
    states = None
    for _ in range(3):
        result = route(frame, policy, now=NOW, account_states=states)
        states = result.account_states
    assert by_account(result).loc["acct", "action"] == "not_eligible"


# -- wording: a rule named for a fact tests that fact ----------------------------------------

OLD_USAGE_RULE = """  - id: high_risk_fast_decline
    description: Churn risk at least 35% and weekly active users down at least 30%
    when:
      all:
        - {field: churn_risk, op: ">=", value: 0.35}
        - {field: wau_trend, op: "<=", value: -0.3}
"""


def _with_rule(description: str, when: str) -> str:
    """SMALL with one more rule in front (`when` as flow-style YAML)."""
    rule = f"""  - id: worded
    description: {description}
    when: {when}
    priority: P2
    team: csm
"""
    return SMALL.replace("severity_rules:\n", "severity_rules:\n" + rule)


def _wording(text: str) -> list[str]:
    import warnings

    from models.policy.wording import PolicyWordingWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parse_policy(text, source="worded.yaml")
    return [str(w.message) for w in caught if issubclass(w.category, PolicyWordingWarning)]


@pytest.mark.parametrize("name", ["default.yaml", "aggressive.yaml"])
def test_shipped_rules_test_what_their_descriptions_say(name):
    from models.policy.wording import wording_problems

    assert wording_problems(load_policy(POLICIES / name)) == []
    assert _wording((POLICIES / name).read_text()) == []


def test_a_usage_rule_that_also_matches_on_a_risk_jump_is_caught():
    """The rule as it was: 'usage falling fast', but one branch only asks for a risk jump."""
    text = (POLICIES / "default.yaml").read_text()
    assert OLD_USAGE_RULE in text
    old = text.replace(OLD_USAGE_RULE, """  - id: high_risk_fast_decline
    description: Churn risk at least 35% with usage falling fast
    when:
      all:
        - {field: churn_risk, op: ">=", value: 0.35}
        - any:
            - {field: wau_trend, op: "<=", value: -0.3}
            - {field: churn_risk_delta, op: ">=", value: 0.1}
""")
    found = _wording(old)
    assert len(found) == 1
    assert "severity_rules[3].description: rule 'high_risk_fast_decline' says 'usage falling' (usage falling)" in found[0]
    assert "wau_trend" in found[0]


@pytest.mark.parametrize(("description", "when"), [
    ("Usage falling fast", '{field: churn_risk, op: ">=", value: 0.35}'),               # a threshold only
    ("Usage falling fast", '{field: wau_trend, op: ">=", value: 0.3}'),                 # usage rising
    ("Weekly active users down at least 30%", '{field: wau_trend, op: "<=", value: -0.1}'),  # a smaller fall
    ("Declining usage", '{not: {field: wau_trend, op: ">", value: -0.3}}'),             # not: also missing trends
    ("Churn risk at least 50%", '{field: churn_risk, op: ">=", value: 0.25}'),
    ("Renewal within 90 days", '{field: days_to_renewal, op: between, value: [0, 180]}'),
    ("Health in the at-risk band", '{field: health_band, op: "==", value: watch}'),
    ("VIP account", '{field: churn_risk, op: ">=", value: 0.5}'),
    ("Open urgent ticket", '{any: [{field: open_urgent_tickets, op: ">=", value: 1}, {field: churn_risk, op: ">", value: 0.9}]}'),
    ("Churn risk up sharply", '{field: churn_risk, op: ">=", value: 0.9}'),
])
def test_a_description_that_claims_what_the_condition_does_not_test_warns(description, when):
    found = _wording(_with_rule(description, when))
    assert len(found) == 1 and "rule 'worded'" in found[0], found


@pytest.mark.parametrize(("description", "when"), [
    ("Weekly active users down at least 30%", '{field: wau_trend, op: "<=", value: -0.3}'),
    ("Usage falling", '{any: [{all: [{field: wau_trend, op: "<", value: -0.5}, {field: vip, op: "==", value: true}]},'
                      ' {field: wau_trend, op: between, value: [-1, -0.2]}]}'),
    ("Churn risk at least 50%", '{field: churn_risk, op: ">=", value: 0.6}'),           # stricter still holds
    ("Renewal within 90 days", '{field: days_to_renewal, op: between, value: [0, 60]}'),
    ("Health in the at-risk band", '{field: health_band, op: in, value: [at_risk]}'),
    ("Enterprise account", '{field: segment, op: "==", value: enterprise}'),
    ("Anything at all", '{field: churn_risk, op: ">=", value: 0.5}'),                   # claims nothing
])
def test_a_description_the_condition_states_loads_quietly(description, when):
    assert _wording(_with_rule(description, when)) == []

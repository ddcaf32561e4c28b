"""The desk's JSON API fuzzed from its own OpenAPI description: no input makes it fail with a 5xx.

Schemathesis generates requests for every operation of `/openapi.json` (valid and invalid
bodies, parameters and ids) and sends them in process to the ASGI app over a seeded queue,
authenticated as a manager so that every operation is reachable. Most generated case ids are
swapped for ids of real cases, so the actions really run against the lifecycle (claims,
snoozes, plays, handoffs, resolutions) rather than stopping at 404. Every response must also
match the documented status codes, content type and response schema, and invalid requests
must be refused.

One check is left out: "schema-valid data is accepted". The desk refuses some schema-valid
requests by design, with 400 and a reason the schema cannot express (a team that is not in
the policy, a handoff naming neither a team nor a person, a snooze time out of range).
"""

from __future__ import annotations

import zlib

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from pipelines.desk.auth import FailedSignIns
from tests.integration.desk_fixtures import DeskEnv, desk_env  # noqa: F401
from tests.integration.overflow_fixtures import OVERFLOW, seed_overflow

MAX_EXAMPLES = 30


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_the_api_answers_every_generated_request_without_a_server_error(desk_env: DeskEnv, mode: GenerationMode) -> None:  # noqa: F811
    # The fuzzer sends wrong tokens on purpose (its auth checks) from one client; the throttle
    # (tests/faults/test_desk_faults.py) would then answer 429 to everything after, so it is
    # lifted here to let the lifecycle be reached.
    desk_env.app.state.failed_sign_ins = FailedSignIns(limit=10**9)
    schema = schemathesis.openapi.from_asgi("/openapi.json", desk_env.app)
    token = desk_env.tokens["rs_lead_maya"]

    @schema.auth()
    class ManagerToken:
        def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
            return token

        def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 12, [op.label for op in operations]
    ids = sorted(desk_env.case_ids.values())
    seed_overflow(desk_env.store)  # overflow accounts to list and open
    accounts = sorted(OVERFLOW)
    seen: dict[str, set[int]] = {}

    for operation in operations:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def answers(case: schemathesis.Case) -> None:
            if mode is GenerationMode.POSITIVE and "case_id" in (case.path_parameters or {}):
                pick = zlib.crc32(repr((case.path_parameters, case.body, case.query)).encode())
                if pick % 4:  # three in four requests address a real case
                    case.path_parameters["case_id"] = ids[pick % len(ids)]
            if mode is GenerationMode.POSITIVE and "account_id" in (case.path_parameters or {}):
                pick = zlib.crc32(repr(case.path_parameters).encode())
                if pick % 4:  # and a real overflow account
                    case.path_parameters["account_id"] = accounts[pick % len(accounts)]
            response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
            assert response.status_code < 500
            if response.status_code >= 400:
                assert set(response.json()) == {"error"}
            seen.setdefault(operation.label, set()).add(response.status_code)

        answers()

    # The fuzzing reached every operation, and valid requests got past validation and into the
    # lifecycle (successes and refusals both).
    assert set(seen) == {op.label for op in operations}
    statuses = set().union(*seen.values())
    if mode is GenerationMode.POSITIVE:
        assert {200, 404, 409} <= statuses
    else:
        assert 400 in statuses

"""The command line's faults: job runs that fail, bad snapshot dates, queue URLs that are not
database URLs, queue databases that are read-only or out of reach.

Every fault is one clear line naming the problem, a non-zero exit status and no traceback
(`assert_clean_failure`), with Dagster's traces kept in the run log unless `--verbose`. A run
whose only problem is a failed WARN check succeeds: the warning is listed, the exit status is 0.

The pipeline cases share one small demo world with a trained champion (generated once per module
into a template home, copied per test), and run `rescue run --snapshot` on it exactly as an
operator would.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from assets.partitions import FALLBACK_HISTORY_DAYS
from connectors.queue.store import QueueStore
from connectors.queue.users import DeskUsers
from connectors.settings import declared_names
from pipelines.cli import runner
from pipelines.cli.main import app
from tests.faults.conftest import assert_clean_failure

REPO = Path(__file__).resolve().parents[2]
#: Small but trainable: the champion needs more than two observation dates.
WORLD_ACCOUNTS, WORLD_SEED, WORLD_END, WORLD_DAYS = 200, 3, date(2026, 11, 20), 400
SNAPSHOT = "2026-11-20"
#: A password that must never be shown (one of the corpus's secret markers).
PG_DOWN = "postgresql://rescue:hunter2-pw@127.0.0.1:1/rescue"

cli = CliRunner()


def _clean_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for name in declared_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("RESCUE_HOME", str(home))


def invoke(*args: str):
    result = cli.invoke(app, list(args))
    # an exception that escaped the command would be in result.exception, not in the output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def assert_one_line(output: str, *, names: Iterable[str], exit_code: int) -> str:
    """The corpus's contract, and one line of `output` names every one of `names`."""
    names = list(names)
    assert_clean_failure(output, names=names, exit_code=exit_code)
    lines = [line for line in output.splitlines() if all(n.lower() in line.lower() for n in names)]
    assert lines, f"no single line names all of {names}:\n{output[-2000:]}"
    assert "Stack Trace" not in output and 'File "' not in output, f"a stack trace reached the terminal:\n{output[-2000:]}"
    return lines[0]


# ------------------------------------------------------------------------------ the world


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory) -> Path:
    """A RESCUE_HOME with the demo world, a champion and the retrain's outputs (read by the
    daily job through Dagster's storage, which lives under RESCUE_HOME/dagster)."""
    from connectors.demo.world import DemoWorldConfig, generate_demo_world
    from connectors.settings import default_warehouse_url
    from connectors.warehouse import Warehouse
    from pipelines.definitions import build_definitions

    home = tmp_path_factory.mktemp("trained") / "home"
    with pytest.MonkeyPatch.context() as mp:
        _clean_env(mp, home)
        world = DemoWorldConfig(n_accounts=WORLD_ACCOUNTS, seed=WORLD_SEED, end_date=WORLD_END, history_days=WORLD_DAYS)
        generate_demo_world(world, Warehouse(default_warehouse_url()))
        runner.set_verbose(False)
        runner.run_job(build_definitions(), "weekly_retrain_job", runner.instance())
    return home


@pytest.fixture
def home(trained_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the trained home, as this test's RESCUE_HOME."""
    copy = tmp_path / "home"
    shutil.copytree(trained_home, copy, ignore=shutil.ignore_patterns("logs"))
    _clean_env(monkeypatch, copy)
    monkeypatch.setattr(runner, "_verbose", False)
    return copy


def _sql(home: Path, statement: str) -> None:
    from connectors.warehouse import Warehouse

    with Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}").engine.begin() as conn:
        conn.exec_driver_sql(statement)


def _drop_tickets(home: Path, mp: pytest.MonkeyPatch) -> None:
    _sql(home, "DROP TABLE raw_support_tickets")


def _negative_arr(home: Path, mp: pytest.MonkeyPatch) -> None:
    _sql(home, "UPDATE raw_crm_accounts SET arr = -5 WHERE account_id IN "
               "(SELECT account_id FROM raw_crm_accounts ORDER BY account_id LIMIT 3)")


def _bad_policy(home: Path, mp: pytest.MonkeyPatch) -> None:
    path = home / "broken-policy.yaml"
    path.write_text("version: 1\nteams: [csm\n")
    mp.setenv("RESCUE_POLICY_PATH", str(path))


def _no_champion(home: Path, mp: pytest.MonkeyPatch) -> None:
    (home / "empty-registry").mkdir()
    mp.setenv("RESCUE_MODEL_DIR", str(home / "empty-registry"))


def _queue_down(home: Path, mp: pytest.MonkeyPatch) -> None:
    mp.setenv("RESCUE_QUEUE_URL", PG_DOWN)


PIPELINE_FAULTS: list[tuple[str, Callable[[Path, pytest.MonkeyPatch], None], list[str]]] = [
    ("missing-source-table", _drop_tickets, ["asset support_tickets failed", "raw_support_tickets", "not found"]),
    ("blocking-check", _negative_arr, ["check crm_accounts_contract on crm_accounts failed", "arr", "3 row(s) outside its range"]),
    ("bad-policy", _bad_policy, ["asset escalation_policy failed", "PolicyError", "invalid YAML"]),
    ("queue-database-down", _queue_down, ["failed", "OperationalError", "127.0.0.1", "port 1"]),
]


@pytest.mark.slow
def test_a_day_without_a_champion_model_routes_on_the_rules_and_says_so(home, monkeypatch) -> None:
    _no_champion(home, monkeypatch)
    result = invoke("run", "--snapshot", SNAPSHOT)
    assert result.exit_code == 0, result.output
    assert_clean_failure(result.output)
    assert "succeeded" in result.output.strip().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "names"), [pytest.param(f, n, id=i) for i, f, n in PIPELINE_FAULTS])
def test_a_failed_run_is_one_line_naming_the_asset_and_its_root_cause(home, monkeypatch, fault, names) -> None:
    fault(home, monkeypatch)
    result = invoke("run", "--snapshot", SNAPSHOT)
    assert result.exit_code == 1, result.output
    assert_one_line(result.output, names=names, exit_code=result.exit_code)
    summary = result.output.strip().splitlines()[-1]
    assert summary.startswith(f"daily_rescue_job {SNAPSHOT} failed") and "not written" in summary, summary
    assert "Error occurred while executing op" not in result.output
    logs = sorted((home / "logs" / "runs").glob(f"daily_rescue_job-{SNAPSHOT}-*.log"))
    assert len(logs) == 1 and str(logs[0]) in summary
    assert "Stack Trace" in logs[0].read_text()  # the traces are kept, in the run log


# ------------------------------------------------------------------------ snapshot dates


#: With no warehouse, the partitions start FALLBACK_HISTORY_DAYS before today (`assets.partitions`);
#: the names below say "{fallback_start}" for that day, as of the test's own run.
FALLBACK_START = "{fallback_start}"


def _fallback_start() -> str:
    """The first partition without a warehouse, today (UTC): a moment before a UTC midnight is
    waited out, so that the command, a moment later, reads the same day."""
    now = dt.datetime.now(dt.UTC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
    if (midnight - now).total_seconds() < 10:
        time.sleep((midnight - now).total_seconds() + 0.5)
    return (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=FALLBACK_HISTORY_DAYS)).isoformat()


@pytest.mark.parametrize(("snapshot", "names"), [
    pytest.param("2019-12-31", ["2019-12-31", "outside", f"{FALLBACK_START} .. ", "730 days before today"],
                 id="before-the-first-partition"),
    pytest.param("2099-01-01", ["2099-01-01", "outside", f"{FALLBACK_START} .. "], id="after-the-last-partition"),
    pytest.param("2026-13-45", ["'2026-13-45' is not a date", "YYYY-MM-DD"], id="impossible-date"),
    pytest.param("yesterday", ["'yesterday' is not a date", "YYYY-MM-DD"], id="not-a-date"),
])
def test_a_snapshot_that_is_not_a_partition_is_one_line(tmp_path, monkeypatch, snapshot, names) -> None:
    _clean_env(monkeypatch, tmp_path / "home")
    start = _fallback_start()  # the day the command reads: set at the test's run, not at collection
    names = [name.replace(FALLBACK_START, start) for name in names]
    result = invoke("run", "--snapshot", snapshot)
    line = assert_one_line(result.output, names=names, exit_code=result.exit_code)
    assert result.exit_code == 2 and line.startswith("error:")
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "home" / "dagster" / "history").exists()  # nothing ran


def test_rescue_run_reads_the_configured_sources_and_never_generates_them(tmp_path, monkeypatch) -> None:
    from connectors.warehouse import Warehouse

    _clean_env(monkeypatch, tmp_path / "home")
    result = invoke("run", "--snapshot", SNAPSHOT)
    assert result.exit_code == 1
    assert_one_line(result.output, names=["asset crm_accounts failed", "raw_crm_accounts", "not found"], exit_code=1)
    warehouse = Warehouse(f"duckdb:///{tmp_path / 'home' / 'warehouse.duckdb'}")
    assert not [t for t in ("raw_crm_accounts", "raw_product_events") if warehouse.table_exists(t)]
    code = ("import sys\nfrom pipelines.cli import run\nfrom pipelines.definitions import build_definitions\n"
            "build_definitions().resolve_job_def(run.JOB)\n"
            "print(sorted(m for m in sys.modules if m.startswith('connectors.demo')))\n")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip() == "[]", f"`rescue run` loads the demo world: {loaded.stdout}"


def _relative_dagster_home(tmp_path: Path) -> str:
    return "relative/dagster-home"


def _dagster_yaml_needs_an_unset_variable(tmp_path: Path) -> str:
    (tmp_path / "dagster-home").mkdir()
    (tmp_path / "dagster-home" / "dagster.yaml").write_text("storage:\n  sqlite:\n    base_dir: {env: RESCUE_TEST_UNSET}\n")
    return str(tmp_path / "dagster-home")


@pytest.mark.parametrize(("dagster_home", "names"), [
    pytest.param(_relative_dagster_home, ["cannot open the Dagster instance", "must be an absolute path"],
                 id="relative-dagster-home"),
    pytest.param(_dagster_yaml_needs_an_unset_variable, ["cannot open the Dagster instance", "RESCUE_TEST_UNSET"],
                 id="dagster-yaml-variable-unset"),
])
def test_an_instance_that_does_not_load_is_one_line(tmp_path, monkeypatch, dagster_home, names) -> None:
    _clean_env(monkeypatch, tmp_path / "home")
    monkeypatch.delenv("RESCUE_TEST_UNSET", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", dagster_home(tmp_path))
    result = invoke("run", "--snapshot", SNAPSHOT)
    assert result.exit_code == 1
    assert_one_line(result.output, names=names, exit_code=result.exit_code)
    assert len(result.output.strip().splitlines()) == 1


# --------------------------------------------------------------------------- queue URLs


def _claimable_queue(tmp_path: Path, frames) -> tuple[str, str]:
    """A SQLite queue with one open case; its path and the case id."""
    path = tmp_path / "queue.db"
    store = QueueStore(f"sqlite:///{path}")
    store.migrate()
    decisions, candidates = frames([{"account_id": "A1"}])
    store.apply_decisions(decisions, candidates, policy_version="v1", policy_hash="abc", model_version="m1",
                          snapshot_date=pd.Timestamp("2025-06-02"), now=pd.Timestamp("2025-06-02 09:00"))
    case_id = store.list_cases()["case_id"].iloc[0]
    store.close()
    return str(path), case_id


QUEUE_FAULTS = [
    pytest.param(["queue", "list", "--queue-url", "notadb://x/y"], 2,
                 ["notadb://x/y is not a database URL", "notadb"], id="unknown-dialect"),
    pytest.param(["queue", "list", "--queue-url", "notadb://rescue:hunter2-pw@db.internal/q"], 2,
                 ["is not a database URL", "rescue:***@db.internal"], id="unknown-dialect-with-password"),
    pytest.param(["queue", "show", "RC-AAAAAAAAAA", "--queue-url", "just some words hunter2-pw"], 2,
                 ["the queue URL is not a database URL", "expected e.g."], id="unparseable-url"),
    pytest.param(["queue", "list", "--queue-url", PG_DOWN], 1,
                 ["cannot reach the queue database at 127.0.0.1:1"], id="server-down"),
    pytest.param(["queue", "claim", "{case}", "--as", "ana", "--queue-url", "sqlite:///file:{path}?mode=ro&uri=true"], 1,
                 ["queue database", "is read-only"], id="read-only-sqlite"),
    pytest.param(["queue", "show", "RC-ZZZZZZZZZZ", "--queue-url", "sqlite:///{path}"], 2,
                 ["no rescue case 'RC-ZZZZZZZZZZ' in the queue at sqlite:///"], id="case-not-found"),
    pytest.param(["desk", "serve", "--queue-url", PG_DOWN], 1,
                 ["cannot reach the queue database at 127.0.0.1:1"], id="desk-serve-server-down"),
    pytest.param(["desk", "serve", "--queue-url", "notadb://x/y"], 2,
                 ["notadb://x/y is not a database URL"], id="desk-serve-unknown-dialect"),
    pytest.param(["desk", "users", "--queue-url", "just some words hunter2-pw"], 2,
                 ["the queue URL is not a database URL"], id="desk-users-unparseable-url"),
    pytest.param(["desk", "new-token", "csm_amara", "--queue-url", PG_DOWN], 1,
                 ["cannot reach the queue database at 127.0.0.1:1"], id="desk-new-token-server-down"),
]


@pytest.mark.parametrize(("args", "code", "names"), QUEUE_FAULTS)
def test_a_queue_database_problem_is_one_line_without_a_password(tmp_path, monkeypatch, frames, args, code, names) -> None:
    import uvicorn

    _clean_env(monkeypatch, tmp_path / "home")
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the desk started on a queue it cannot use"))
    path, case_id = _claimable_queue(tmp_path, frames)
    result = invoke(*[a.format(path=path, case=case_id) for a in args])
    line = assert_one_line(result.output, names=names, exit_code=result.exit_code)
    assert result.exit_code == code, result.output
    assert line.startswith("error:") and len(result.output.strip().splitlines()) == 1
    assert "just some words" not in result.output


def test_the_desk_does_not_tell_where_the_queue_lives(tmp_path, monkeypatch) -> None:
    from pipelines.desk import create_app

    _clean_env(monkeypatch, tmp_path / "home")
    url = f"sqlite:///{tmp_path / 'internal' / 'queue.db'}"
    (tmp_path / "internal").mkdir()
    desk = create_app(url, REPO / "policies" / "default.yaml", secret_key="k")
    store = QueueStore(url)
    _, token = DeskUsers(store).create_user("csm_amara", name="Amara", role="agent", team="csm")
    store.close()
    with TestClient(desk) as client:
        missing = client.get("/api/v1/cases/RC-ZZZZZZZZZZ", headers={"Authorization": f"Bearer {token}"})
    assert missing.status_code == 404
    message = missing.json()["error"]
    assert "RC-ZZZZZZZZZZ" in message and "internal" not in message and "sqlite" not in message


# ----------------------------------------------------------------- the runner, in small


def _small_definitions(*, check_severity: dg.AssetCheckSeverity | None = None, fail: bool = False) -> dg.Definitions:
    @dg.asset
    def accounts() -> int:
        return 1

    @dg.asset(deps=[accounts])
    def scores() -> int:
        if fail:
            try:
                raise KeyError("segment")
            except KeyError as exc:
                raise RuntimeError("the scores need a segment column") from exc
        return 2

    @dg.asset(deps=[scores])
    def queue() -> int:
        return 3

    checks = []
    if check_severity is not None:
        @dg.asset_check(asset=accounts, blocking=check_severity == dg.AssetCheckSeverity.ERROR,
                        description="Accounts look like accounts.")
        def accounts_look_right() -> dg.AssetCheckResult:
            return dg.AssetCheckResult(passed=False, severity=check_severity, description="3 accounts without a name")

        checks.append(accounts_look_right)
    return dg.Definitions(assets=[accounts, scores, queue], asset_checks=checks,
                          jobs=[dg.define_asset_job("small_job")], executor=dg.in_process_executor)


def _run_small(defs: dg.Definitions, capsys) -> tuple[int, str]:
    try:
        runner.run_job(defs, "small_job", runner.instance())
        code = 0
    except typer.Exit as exc:
        code = exc.exit_code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize(("defs", "names"), [
    pytest.param(lambda: _small_definitions(fail=True),
                 ["asset scores failed", "KeyError", "segment"], id="step-failure-innermost-cause"),
    pytest.param(lambda: _small_definitions(check_severity=dg.AssetCheckSeverity.ERROR),
                 ["check accounts_look_right on accounts failed", "blocking", "3 accounts without a name"],
                 id="blocking-error-check"),
])
def test_the_runner_names_the_failure_and_keeps_the_trace_in_the_log(tmp_path, monkeypatch, capsys, defs, names) -> None:
    _clean_env(monkeypatch, tmp_path / "home")
    monkeypatch.setattr(runner, "_verbose", False)
    code, output = _run_small(defs(), capsys)
    assert code == 1
    assert_one_line(output, names=names, exit_code=code)
    assert "DagsterExecutionStepExecutionError" not in output and "DagsterAssetCheckFailedError" not in output
    assert "small_job failed" in output and "not written" in output
    log = next((tmp_path / "home" / "logs" / "runs").glob("small_job-*.log")).read_text()
    assert "STEP_FAILURE" in log and "Stack Trace" in log


def test_a_failed_warn_check_is_a_warning_of_a_successful_run(tmp_path, monkeypatch, capsys) -> None:
    _clean_env(monkeypatch, tmp_path / "home")
    monkeypatch.setattr(runner, "_verbose", False)
    code, output = _run_small(_small_definitions(check_severity=dg.AssetCheckSeverity.WARN), capsys)
    assert code == 0, output
    assert "warning: check accounts_look_right on accounts: 3 accounts without a name (Accounts look like accounts)" in output
    assert "small_job succeeded with 1 warning" in output
    assert "error:" not in output and "small_job failed" not in output and "not written" not in output


def test_verbose_shows_dagsters_logs_and_traces(tmp_path, monkeypatch, capsys) -> None:
    _clean_env(monkeypatch, tmp_path / "home")
    monkeypatch.setattr(runner, "_verbose", True)
    code, output = _run_small(_small_definitions(fail=True), capsys)
    assert code == 1
    assert "STEP_FAILURE" in output and "Stack Trace" in output
    assert "error: asset scores failed: KeyError" in output  # the summary still ends the output


def test_run_storage_follows_rescue_home(tmp_path, monkeypatch, capsys) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    _clean_env(monkeypatch, tmp_path / "home")
    code, _ = _run_small(_small_definitions(), capsys)
    assert code == 0
    storage = tmp_path / "home" / "dagster"
    assert (storage / "history" / "runs.db").is_file()
    instance = runner.instance()
    try:
        runs = instance.get_runs()
        assert [r.job_name for r in runs] == ["small_job"]
    finally:
        instance.dispose()
    assert not (elsewhere / ".rescue").exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_dev_gives_dagster_a_home_under_rescue_home(tmp_path, monkeypatch) -> None:
    home = tmp_path / "home"
    done = subprocess.run(["make", "-s", "dagster-home", f"RESCUE_HOME={home}"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (home / "dagster" / "dagster.yaml").resolve() == REPO / "dagster.yaml"
    stamp = tmp_path / "installed"  # newer than pyproject.toml: nothing to install
    stamp.touch()
    dry = subprocess.run(["make", "-n", "dev", f"RESCUE_HOME={home}", f"STAMP={stamp}", "BIN=/nonexistent/bin"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert f"DAGSTER_HOME={home}/dagster" in dry.stdout, dry.stdout
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    instance = dg.DagsterInstance.get()
    try:
        assert Path(instance.root_directory) == home / "dagster"
        assert instance.get_settings("concurrency")  # the repository's dagster.yaml was read
    finally:
        instance.dispose()


@pytest.mark.slow
def test_drift_is_a_warning_and_the_run_writes_the_queue(home, monkeypatch) -> None:
    import assets.scoring

    monkeypatch.setattr(assets.scoring, "DRIFT_WARN_PSI", 0.0)  # every feature drifts
    result = invoke("run", "--snapshot", SNAPSHOT)
    assert result.exit_code == 0, result.output
    warning = next(line for line in result.output.splitlines() if line.startswith("warning:"))
    assert "check churn_scores_drift on churn_scores: drift in" in warning
    assert "Population stability" in warning
    assert f"daily_rescue_job {SNAPSHOT} succeeded with 1 warning" in result.output
    assert "error:" not in result.output and "Stack Trace" not in result.output
    instance = runner.instance()  # the run is in RESCUE_HOME's instance, its every asset written
    try:
        run = instance.get_runs()[0]
        written = {e.dagster_event.asset_key.to_user_string() for e in instance.all_logs(run.run_id)
                   if e.dagster_event is not None and e.dagster_event.event_type_value == "ASSET_MATERIALIZATION"}
    finally:
        instance.dispose()
    assert run.job_name == "daily_rescue_job" and {"churn_scores", "rescue_queue", "crm_writeback"} <= written
    store = QueueStore(f"sqlite:///{home / 'queue.db'}")
    try:
        with store.reading() as conn:
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM account_states").scalar_one() > 0
    finally:
        store.close()

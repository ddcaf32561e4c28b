"""`RESCUE_EXECUTOR` and `RESCUE_MAX_CONCURRENCY`: the executor the Definitions get, and one line
for every value that cannot be used (`connectors.settings.executor_choice`, `pipelines.executors`).
The multiprocess run itself is tests/integration/test_multiprocess_postgres.py."""

from __future__ import annotations

import importlib.util

import dagster as dg
import pytest
from typer.testing import CliRunner

from connectors.settings import EXECUTORS, SettingError, current, declared_names, executor_choice
from pipelines.executors import FORKSERVER_PRELOAD, executor_for, runs_out_of_process

PG = "postgresql+psycopg://rescue@db.invalid/warehouse"


def test_the_default_is_in_process_and_the_values_are_read_loosely():
    assert executor_choice(current({})) == ("in_process", None)
    assert executor_choice(current({"RESCUE_EXECUTOR": " Multi-Process ", "RESCUE_MAX_CONCURRENCY": "3"})) == ("multiprocess", 3)
    assert executor_choice(current({"RESCUE_EXECUTOR": "in-process"})) == ("in_process", None)
    assert executor_for(current({}), PG) is dg.in_process_executor


@pytest.mark.parametrize(("environ", "expected"), [
    ({"RESCUE_EXECUTOR": "threads"}, "RESCUE_EXECUTOR='threads' is not one of in_process, multiprocess, k8s, celery"),
    ({"RESCUE_EXECUTOR": "multiprocess", "RESCUE_MAX_CONCURRENCY": "0"}, "RESCUE_MAX_CONCURRENCY='0' is not a positive whole number"),
    ({"RESCUE_EXECUTOR": "multiprocess", "RESCUE_MAX_CONCURRENCY": "two"}, "RESCUE_MAX_CONCURRENCY='two' is not a positive whole number"),
    ({"RESCUE_EXECUTOR": "multiprocess", "RESCUE_MAX_CONCURRENCY": "-4"}, "RESCUE_MAX_CONCURRENCY='-4' is not a positive whole number"),
])
def test_a_value_that_cannot_be_used_is_one_line_naming_the_variable(environ, expected):
    with pytest.raises(SettingError) as raised:
        executor_for(current(environ), PG)
    assert str(raised.value).startswith(expected) and "\n" not in str(raised.value)


def test_multiprocess_forks_each_step_from_a_preloaded_server_within_the_limit():
    executor = executor_for(current({"RESCUE_EXECUTOR": "multiprocess", "RESCUE_MAX_CONCURRENCY": "3"}), PG)
    assert executor.name == "multiprocess" and runs_out_of_process(executor)
    config = executor.config_schema.resolve_config({}).value["config"]  # the configured values
    assert config["max_concurrent"] == 3
    assert config["start_method"] == {"forkserver": {"preload_modules": list(FORKSERVER_PRELOAD)}}
    assert all(importlib.util.find_spec(name) for name in FORKSERVER_PRELOAD)
    unlimited = executor_for(current({"RESCUE_EXECUTOR": "multiprocess"}), PG)
    assert unlimited.config_schema.resolve_config({}).value["config"]["max_concurrent"] == 0  # Dagster: one per core


@pytest.mark.parametrize("name", [n for n in EXECUTORS if n != "in_process"])
def test_an_out_of_process_executor_on_a_duckdb_warehouse_is_refused(name, tmp_path):
    with pytest.raises(SettingError) as raised:
        executor_for(current({"RESCUE_EXECUTOR": name}), f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    message = str(raised.value)
    assert message.startswith(f"RESCUE_EXECUTOR={name} cannot run on a duckdb warehouse")
    assert "RESCUE_EXECUTOR=in_process" in message and "RESCUE_WAREHOUSE_URL" in message
    assert str(tmp_path) not in message  # a URL is a secret: never shown


def test_a_sqlite_warehouse_serializes_its_writers_and_is_allowed(tmp_path):
    executor = executor_for(current({"RESCUE_EXECUTOR": "multiprocess"}), f"sqlite:///{tmp_path / 'wh.db'}")
    assert executor.name == "multiprocess"


@pytest.mark.parametrize(("name", "module", "package"), [("k8s", "dagster_k8s", "dagster-k8s"),
                                                         ("celery", "dagster_celery", "dagster-celery")])
def test_k8s_and_celery_are_their_packages_executors_or_say_which_package(name, module, package):
    settings = current({"RESCUE_EXECUTOR": name})
    if importlib.util.find_spec(module) is None:
        with pytest.raises(SettingError, match=rf"^RESCUE_EXECUTOR={name} needs the {package} package: "
                                               rf"pip install 'churn-rescue\[{name}\]'$"):
            executor_for(settings, PG)
    else:
        assert executor_for(settings, PG).name == name


def test_the_definitions_take_the_setting_and_code_bound_resources_stay_in_process(tmp_path, monkeypatch):
    from connectors.warehouse import WarehouseResource
    from pipelines.definitions import build_definitions

    for variable in declared_names():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("RESCUE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RESCUE_WAREHOUSE_URL", f"sqlite:///{tmp_path / 'wh.db'}")
    monkeypatch.setenv("RESCUE_EXECUTOR", "multiprocess")
    defs = build_definitions()
    assert {defs.resolve_job_def(j).executor_def.name for j in ("daily_rescue_job", "weekly_retrain_job", "feedback_job")} \
        == {"multiprocess"}
    # resources bound in code exist only in this process: no step process could rebuild them
    bound = build_definitions({"warehouse": WarehouseResource(url=f"sqlite:///{tmp_path / 'other.db'}")})
    assert bound.resolve_job_def("daily_rescue_job").executor_def is dg.in_process_executor
    monkeypatch.setenv("RESCUE_EXECUTOR", "multiprocess")
    monkeypatch.setenv("RESCUE_WAREHOUSE_URL", f"duckdb:///{tmp_path / 'wh.duckdb'}")
    with pytest.raises(SettingError, match="cannot run on a duckdb warehouse"):
        build_definitions()


@pytest.mark.parametrize(("environ", "names"), [
    ({"RESCUE_EXECUTOR": "spark"}, ["RESCUE_EXECUTOR='spark'", "in_process, multiprocess, k8s, celery"]),
    ({"RESCUE_EXECUTOR": "multiprocess"}, ["RESCUE_EXECUTOR=multiprocess cannot run on a duckdb warehouse"]),
])
def test_rescue_run_tells_an_unusable_executor_in_one_line_before_anything_runs(tmp_path, monkeypatch, environ, names):
    from pipelines.cli.main import app

    for variable in declared_names():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("RESCUE_HOME", str(tmp_path / "home"))
    for variable, value in environ.items():
        monkeypatch.setenv(variable, value)
    result = CliRunner().invoke(app, ["run", "--snapshot", "2026-11-20"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and all(n in lines[0] for n in names), lines[0]
    assert not (tmp_path / "home" / "dagster" / "history").exists()  # nothing ran


def _documented_yaml() -> list[dict]:
    import re
    from pathlib import Path

    import yaml

    text = (Path(__file__).resolve().parents[2] / "docs" / "scale_out.md").read_text()
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def test_the_documented_configuration_is_valid_for_the_packages_installed(tmp_path, monkeypatch):
    """Every YAML block of docs/scale_out.md against the config schemas of the packages that
    read it: the PostgreSQL instance always (dagster-postgres is a dependency), the k8s run
    launcher and the k8s and celery executors' run config wherever their packages are installed."""
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster_postgres import DagsterPostgresStorage

    for variable in ("DAGSTER_PG_PASSWORD", "RESCUE_CELERY_BROKER_URL", "RESCUE_CELERY_BACKEND_URL"):
        monkeypatch.setenv(variable, "placeholder")
    blocks = _documented_yaml()
    instances = [b for b in blocks if "storage" in b]
    runs = [b["execution"]["config"] for b in blocks if "execution" in b]
    assert len(instances) == 2 and len(runs) == 2
    for number, block in enumerate(instances):
        home = tmp_path / f"instance{number}"
        home.mkdir()
        (home / "dagster.yaml").write_text(__import__("yaml").safe_dump(block))
        if "run_launcher" not in block or importlib.util.find_spec("dagster_k8s"):
            dagster_instance_config(str(home))  # raises on any key or value the instance refuses
        storage = process_config(DagsterPostgresStorage.config_type(), block["storage"]["postgres"])
        assert storage.success, storage.errors
        assert block["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    for name, config in zip(("k8s", "celery"), runs, strict=True):
        module = {"k8s": "dagster_k8s", "celery": "dagster_celery"}[name]
        if importlib.util.find_spec(module):
            executor = executor_for(current({"RESCUE_EXECUTOR": name}), PG)
            checked = process_config(executor.config_schema.config_type, config)
            assert checked.success, (name, checked.errors)

"""A CLI run is recorded as a run of this repository's job: the UI files it under the job's Runs
tab, its partitions and the timeline of `make dev`.

The UI's Runs tab of a job asks the instance for `RunsFilter(job_name=..., tags={".dagster/repository":
"__repository__@<location>"})` (`dagster_graphql.schema.pipelines.pipeline.resolve_runs`), the
timeline groups runs by their `remote_job_origin`, and the partitions view reads the
`dagster/partition` tag. The location is the one `dagster dev` loads from pyproject.toml.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG
from dagster._core.workspace.load_target import PyProjectFileTarget

from connectors.settings import declared_names
from pipelines.cli import runner

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    for name in declared_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("RESCUE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(runner, "_verbose", False)
    return tmp_path / "home"


def _workspace_location():
    """The code location `dagster dev` builds from this repository's pyproject.toml (run from its root)."""
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        (origin,) = PyProjectFileTarget(str(REPO / "pyproject.toml")).create_origins()
    finally:
        os.chdir(cwd)
    return origin


def _only_run(instance: dg.DagsterInstance, job: str, **tags: str) -> dg.DagsterRun:
    location = _workspace_location()
    runs = instance.get_runs(dg.RunsFilter(job_name=job, tags={REPOSITORY_LABEL_TAG: f"__repository__@{location.location_name}",
                                                            **tags}))
    assert len(runs) == 1, runs
    return runs[0]


def test_a_cli_run_is_a_run_of_the_job_in_the_workspaces_code_location(home):
    from pipelines.definitions import build_definitions

    instance = runner.instance()
    try:
        result = runner.run_job(build_definitions(), "feedback_job", instance)
        run = _only_run(instance, "feedback_job")  # what the job's Runs tab shows
        location = _workspace_location()
        assert run.run_id == result.run_id and run.status == dg.DagsterRunStatus.SUCCESS
        origin = run.remote_job_origin
        assert origin.job_name == "feedback_job"
        assert origin.repository_origin.repository_name == "__repository__"
        assert origin.location_name == location.location_name == "churn_rescue"
        assert origin.repository_origin.code_location_origin.loadable_target_origin.module_name \
            == location.loadable_target_origin.module_name == "pipelines.definitions"
        pointer = run.job_code_origin.repository_origin.code_pointer  # where the UI's re-execution rebuilds it
        assert (run.job_code_origin.job_name, pointer.module, pointer.fn_name) == ("feedback_job", "pipelines.definitions", "defs")
        assert Path(pointer.working_directory) == REPO
    finally:
        instance.dispose()


def _partitioned_definitions() -> dg.Definitions:
    days = dg.DailyPartitionsDefinition(start_date="2026-11-01", end_date="2026-11-30")

    @dg.asset(partitions_def=days)
    def scores(context) -> str:
        return context.partition_key

    return dg.Definitions(assets=[scores], jobs=[dg.define_asset_job("daily_rescue_job", partitions_def=days)],
                          executor=dg.in_process_executor)


def test_a_cli_run_of_a_partition_is_filed_under_that_partition(home):
    instance = runner.instance()
    try:
        runner.run_job(_partitioned_definitions(), "daily_rescue_job", instance, partition_key="2026-11-20")
        run = _only_run(instance, "daily_rescue_job", **{"dagster/partition": "2026-11-20"})
        assert run.tags["dagster/partition"] == "2026-11-20"
        assert run.remote_job_origin.job_name == "daily_rescue_job"
        written = instance.fetch_materializations(dg.AssetKey("scores"), limit=5).records
        assert [r.partition_key for r in written] == ["2026-11-20"] and written[0].run_id == run.run_id
    finally:
        instance.dispose()


def test_a_key_outside_the_partitions_starts_no_run(home, capsys):
    import typer

    instance = runner.instance()
    try:
        with pytest.raises(typer.Exit):
            runner.run_job(_partitioned_definitions(), "daily_rescue_job", instance, partition_key="2027-01-01")
        assert instance.get_runs() == []
    finally:
        instance.dispose()
    assert "did not start" in capsys.readouterr().err

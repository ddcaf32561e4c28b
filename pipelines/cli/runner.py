"""Running a job from the command line: the Dagster instance, the run and its summary.

Every CLI run of a job (`rescue run`, `rescue demo run`, `rescue demo loop`) goes through
`run_job`, which tells the outcome in a few lines on stderr:

- a **failed step** is named by its asset (or check) with the root cause of the failure: the
  innermost exception of the error's cause chain, type and message, on one line;
- a failed check of **ERROR** severity fails the run; a blocking one has stopped everything
  downstream of its asset;
- a failed check of **WARN** severity (drift, for instance) is a warning: the run succeeded and
  wrote what it writes; the summary lists the check and what it found;
- the last line says whether the run succeeded (exit 0, warnings included) or failed (exit 1)
  and, on failure, how many of the run's assets were not written.

Dagster's own log lines and stack traces go to a log file per run under
`$RESCUE_HOME/logs/runs`, not to the terminal; `--verbose` shows them as the run goes.

The instance (`instance`) is Dagster's home when `DAGSTER_HOME` is set, else a local instance
under `$RESCUE_HOME/dagster` configured by the repository's dagster.yaml, so runs are kept with
the rest of the project's state and appear in `make dev`.

Every run is recorded with the origins a run launched from the UI has (`job_origins`): the code
location `dagster dev` loads from pyproject.toml's `[tool.dagster]` (location `churn_rescue`,
module `pipelines.definitions`) and the job in it, and a partition's tags. So a CLI run shows
under its job's Runs tab, its partitions and the timeline of `make dev`, and re-executes from
there. The steps of an in-process run still execute the Definitions the command built (the demo
replay binds an experiment policy); a re-execution from the UI runs the module's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from pipelines.cli.console import make_console

#: Summary lines are never wrapped: one problem, one line (the terminal folds it if it must).
err = make_console(stderr=True, highlight=False, soft_wrap=True)

#: Dagster's console logger when not verbose: nothing reaches the terminal (the run log has it).
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
#: The repository's Dagster instance configuration.
DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"
#: At most this many characters of a root cause on the summary line (the run log has all of it).
MAX_CAUSE = 400
#: Where out-of-process steps rebuild the jobs from, and the directory they import it in.
DEFINITIONS_MODULE = "pipelines.definitions"
REPO_ROOT = Path(__file__).resolve().parents[2]

_verbose = False


def set_verbose(verbose: bool) -> None:
    """Show Dagster's logs and traces on the terminal (`--verbose`)."""
    global _verbose
    _verbose = bool(verbose)


def is_verbose() -> bool:
    return _verbose


# ------------------------------------------------------------------------------ the instance


def dagster_dir() -> Path:
    """Where the CLI's Dagster instance keeps runs and event logs: `$RESCUE_HOME/dagster`."""
    from connectors.settings import project_home

    return project_home() / "dagster"


def instance():
    """The Dagster instance of CLI runs: `$DAGSTER_HOME`'s when set, else one under
    `dagster_dir()` configured by the repository's dagster.yaml (Dagster's defaults when the
    file is not there, as in an installed package). Either way the runs, and the step outputs a
    later run reads (the daily job reads the retrain's training set), persist between commands."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    explicit = os.environ.get("DAGSTER_HOME")
    try:
        if explicit:
            return dg.DagsterInstance.get()
        home = dagster_dir()
        home.mkdir(parents=True, exist_ok=True)
        config_dir = DAGSTER_YAML.parent if DAGSTER_YAML.is_file() else home
        return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home), config_dir=str(config_dir)))
    except (dg.DagsterError, OSError) as exc:
        where = f"DAGSTER_HOME={explicit}" if explicit else str(dagster_dir())
        cause = innermost(exc)
        err.print(f"[bold red]error:[/] {escape(f'cannot open the Dagster instance ({where}): {type(cause).__name__}: {one_line(str(cause))}')}",
                  markup=True)
        raise typer.Exit(1) from None


def innermost(exc: BaseException) -> BaseException:
    """The exception at the bottom of `exc`'s chain (explicit causes first, then context)."""
    seen = {id(exc)}
    while True:
        nxt = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if nxt is None or id(nxt) in seen:
            return exc
        seen.add(id(nxt))
        exc = nxt


# ------------------------------------------------------------------------------- summaries


@dataclass(frozen=True)
class RunSummary:
    """What a run did, in lines a person reads (see the module docstring)."""

    job: str
    partition: str | None
    run_id: str
    success: bool
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    not_written: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.job} {self.partition}" if self.partition else self.job


def one_line(text: str, limit: int = MAX_CAUSE) -> str:
    """`text` on one line: its lines joined with '; ', cut at `limit` characters."""
    joined = "; ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())
    return joined if len(joined) <= limit else joined[: limit - 3].rstrip() + "..."


def root_cause(error: Any) -> str:
    """'Type: message' of the innermost exception of a `SerializableErrorInfo`'s cause chain
    (Dagster wraps the exception an asset raised in its own step errors)."""
    while error is not None and getattr(error, "cause", None) is not None:
        error = error.cause
    if error is None:
        return "unknown error"
    name = (error.cls_name or "Error").rsplit(".", 1)[-1]
    message = str(error.message or "").strip()
    # SerializableErrorInfo.message reads "module.Type: message": keep the message
    head, sep, rest = message.partition(":")
    if sep and head.strip().rsplit(".", 1)[-1] == name:
        message = rest.strip()
    return f"{name}: {one_line(message)}" if message else name


def _node_name(job_def: Any, event: Any) -> str:
    """'asset X' or 'check C on X' for the step of `event` (its step key when unknown)."""
    import dagster as dg

    try:
        keys = job_def.asset_layer.get_selected_entity_keys_for_node(event.node_handle)
    except Exception:  # an op outside the asset layer, or an older event shape
        keys = set()
    assets = sorted(k.to_user_string() for k in keys if isinstance(k, dg.AssetKey))
    checks = sorted((k.name, k.asset_key.to_user_string()) for k in keys if isinstance(k, dg.AssetCheckKey))
    if assets:
        return f"asset {', '.join(assets)}"
    if checks:
        return f"check {', '.join(name for name, _ in checks)} on {checks[0][1]}"
    return f"step {event.step_key}"


def _check_text(evaluation: Any, descriptions: Mapping[Any, str]) -> str:
    """What a failed check found, then what it checks."""
    found = evaluation.description
    summary = evaluation.metadata.get("summary") if evaluation.metadata else None
    if not found and summary is not None:
        found = getattr(summary, "value", summary)
    what = descriptions.get(evaluation.asset_check_key)
    text = one_line(found) if found else "did not pass"
    return f"{text} ({one_line(what, 200).rstrip('.')})" if what else text


def summarize(result: Any, job: str, *, partition: str | None = None, records: Iterable[Any] = (),
              check_descriptions: Mapping[Any, str] | None = None) -> RunSummary:
    """The summary of a run's result (`execute_run`). `records` are the run's event log entries
    (for the assets planned and written), `check_descriptions` the checks' descriptions by key."""
    descriptions = check_descriptions or {}
    failures: list[str] = []
    warnings: list[str] = []
    check_steps: set[str] = set()
    for event in result.all_events:
        if event.event_type_value != "ASSET_CHECK_EVALUATION":
            continue
        evaluation = event.event_specific_data
        if evaluation.passed:
            continue
        label = f"check {evaluation.check_name} on {evaluation.asset_key.to_user_string()}"
        if getattr(evaluation.severity, "value", evaluation.severity) == "WARN":
            warnings.append(f"{label}: {_check_text(evaluation, descriptions)}")
        else:
            blocked = " (blocking: nothing downstream of it ran)" if evaluation.blocking else ""
            failures.append(f"{label} failed{blocked}: {_check_text(evaluation, descriptions)}")
            check_steps.add(event.step_key)
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        error = event.event_specific_data.error
        if event.step_key in check_steps and error is not None and error.cls_name == "DagsterAssetCheckFailedError":
            continue  # told above, by the check's own findings
        failures.append(f"{_node_name(result.job_def, event)} failed: {root_cause(error)}")
    if not result.success and not failures:
        run_failure = next((e for e in result.all_events if e.event_type_value in ("PIPELINE_FAILURE", "RUN_FAILURE")), None)
        error = getattr(run_failure.event_specific_data, "error", None) if run_failure is not None else None
        failures.append(f"the run failed: {root_cause(error) if error is not None else 'see the run log'}")
    planned, written = [], set()
    for record in records:
        event = record.dagster_event
        if event is None or event.asset_key is None:
            continue
        key = event.asset_key.to_user_string()
        if event.event_type_value == "ASSET_MATERIALIZATION_PLANNED" and key not in planned:
            planned.append(key)
        elif event.event_type_value == "ASSET_MATERIALIZATION":
            written.add(key)
    return RunSummary(job=job, partition=partition, run_id=result.run_id, success=not failures,
                      failures=failures, warnings=warnings, planned=planned,
                      not_written=[k for k in planned if k not in written])


# ------------------------------------------------------------------------------- the run log


def run_log_path(summary_job: str, partition: str | None, run_id: str) -> Path:
    from connectors.settings import project_home

    name = "-".join(p for p in (summary_job, partition, run_id[:8]) if p)
    return project_home() / "logs" / "runs" / f"{name}.log"


def write_run_log(path: Path, records: Iterable[Any]) -> Path:
    """The run's event log as text, with every error's full stack trace and cause chain."""
    import datetime as dt
    import logging

    lines = []
    for record in records:
        event = record.dagster_event
        when = dt.datetime.fromtimestamp(record.timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        kind = event.event_type_value if event is not None else "LOG"
        message = record.user_message or (event.message if event is not None else "") or ""
        lines.append(f"{when} {logging.getLevelName(record.level):7} {record.step_key or '-'} {kind} {message}")
        error = getattr(getattr(event, "event_specific_data", None), "error", None) if event is not None else None
        if error is not None and hasattr(error, "to_string"):
            lines.append(error.to_string().rstrip())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------ a run


def _check_descriptions(defs: Any) -> dict[Any, str]:
    found = {}
    for definition in [*(defs.assets or []), *(defs.asset_checks or [])]:
        for spec in getattr(definition, "check_specs", ()) or ():
            if spec.description:
                found[spec.key] = spec.description
    return found


def report(summary: RunSummary, *, seconds: float, log_path: Path | None) -> None:
    """The summary on stderr: problems first, one line each, then the outcome."""
    for line in summary.failures:
        err.print(f"[bold red]error:[/] {escape(line)}", markup=True)
    for line in summary.warnings:
        err.print(f"[yellow]warning:[/] {escape(line)}", markup=True)
    where = escape(f"; Dagster's log and traces: {log_path}") if log_path else ""
    if summary.success:
        noted = f" with {len(summary.warnings)} warning{'s' if len(summary.warnings) != 1 else ''}" if summary.warnings else ""
        err.print(f"{summary.title} succeeded{noted} in {seconds:.1f}s (run {summary.run_id[:8]})"
                  + (where if summary.warnings else ""))
        return
    missing = (f"{len(summary.not_written)} of its {len(summary.planned)} assets not written"
               if summary.planned else "assets downstream of the failure not written")
    if summary.planned and not summary.not_written:
        missing = "every asset was written, but a check failed"
    err.print(f"[red]{summary.title} failed[/] (run {summary.run_id[:8]}): {missing}{where}", markup=True)


def code_location_origin() -> Any:
    """The code location `dagster dev` loads in this repository: pyproject.toml's `[tool.dagster]`
    module and location name (`dagster._core.workspace.load_target`), run from the repository
    root; the definitions module under its own name when there is no pyproject.toml (an
    installed package)."""
    import tomllib

    from dagster._core.workspace.load_target import ModuleTarget

    block: dict = {}
    pyproject = REPO_ROOT / "pyproject.toml"
    if pyproject.is_file():
        block = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("dagster", {})
    target = ModuleTarget(module_name=block.get("module_name", DEFINITIONS_MODULE), attribute=None,
                          working_directory=str(REPO_ROOT), location_name=block.get("code_location_name"))
    return target.create_origins()[0]


def job_origins(job_name: str) -> tuple[Any, Any]:
    """(remote job origin, job code origin) of job `job_name` of the repository's definitions:
    the first is what the UI files a run under (its job's Runs tab and partitions, the timeline:
    the `.dagster/repository` tag `__repository__@<location>`), the second where another
    process rebuilds the job from (`pipelines.definitions:defs`)."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository
    from dagster._core.definitions.repository_definition import SINGLETON_REPOSITORY_NAME
    from dagster._core.remote_origin import RemoteRepositoryOrigin

    location = code_location_origin()
    remote = RemoteRepositoryOrigin(code_location_origin=location, repository_name=SINGLETON_REPOSITORY_NAME)
    repository = ReconstructableRepository.for_module(location.loadable_target_origin.module_name, "defs",
                                                      working_directory=str(REPO_ROOT))
    return remote.get_job_origin(job_name), repository.get_reconstructable_job(job_name)


def _execute(job: Any, instance: Any, run_config: dict, partition_key: str | None, *, out_of_process: bool,
             tags: Mapping[str, str] | None = None) -> Any:
    """Create the run of `job` with its origins and partition tags (`job_origins`), then execute
    it: in this process on `job` itself, or (`out_of_process`) on the job's own executor
    (multiprocess, k8s, celery), whose steps rebuild it from `pipelines.definitions:defs`."""
    import dagster as dg
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.definitions.partitions.context import partition_loading_context
    from dagster._core.execution.api import execute_run

    from pipelines.executors import runs_out_of_process

    remote_origin, reconstructable = job_origins(job.name)
    if partition_key:
        with partition_loading_context(dynamic_partitions_store=instance) as ctx:
            job.validate_partition_key(partition_key, selected_asset_keys=None, context=ctx)
    # the partition's tags, as `execute_in_process(partition_key=...)`, a schedule's run request
    # and `dagster job execute --partition` set them
    tags = {**job.run_tags, **(tags or {}),
            **(job.get_tags_for_partition_key(partition_key, selected_asset_keys=None) if partition_key else {})}
    run = instance.create_run_for_job(job_def=job, run_config=run_config, tags=tags,
                                      remote_job_origin=remote_origin,
                                      job_code_origin=reconstructable.get_python_origin())
    if out_of_process:
        return execute_run(reconstructable, run, instance, raise_on_error=False)
    if runs_out_of_process(job.executor_def):  # in this process, as `execute_in_process` would run it
        job = job.with_executor_def(dg.in_process_executor)
    return execute_run(InMemoryJob(job), run, instance, raise_on_error=False)


def run_job(defs: Any, name: str, instance: Any, run_config: dict | None = None, *,
            partition_key: str | None = None, out_of_process: bool = False, **kwargs: Any) -> Any:
    """Run job `name` of `defs` on `instance`; report it (see the module docstring) and return
    the result, or exit with status 1 when it failed.

    In process by default, on the job of `defs` (the demo binds its own resources).
    Either way the run is recorded with the origins of the repository's job (`_execute`).
    `out_of_process` (`rescue run`) runs the job on its own executor when that is not in
    process (`RESCUE_EXECUTOR`, `pipelines.executors`): `defs` must then be the Definitions
    built from the environment, which another process can rebuild (`pipelines.definitions`)."""
    import dagster as dg

    from pipelines.executors import runs_out_of_process

    started = time.perf_counter()
    config = dict(run_config or {})
    if not _verbose:
        config = {**QUIET_LOGS, **config}
    title = f"{name} {partition_key}" if partition_key else name
    try:
        job = defs.resolve_job_def(name)
        separate = bool(out_of_process and runs_out_of_process(job.executor_def))
        execute = lambda: _execute(job, instance, config, partition_key, out_of_process=separate, **kwargs)  # noqa: E731
        if _verbose:
            result = execute()
        else:
            with err.status(f"running {title}"):
                result = execute()
    except dg.DagsterError as exc:
        err.print(f"[bold red]error:[/] {escape(f'{title} did not start: {type(exc).__name__}: {one_line(str(exc))}')}",
                  markup=True)
        raise typer.Exit(1) from None
    records = list(instance.all_logs(result.run_id))
    summary = summarize(result, name, partition=partition_key, records=records,
                        check_descriptions=_check_descriptions(defs))
    log_path = None
    try:
        log_path = write_run_log(run_log_path(name, partition_key, result.run_id), records)
    except OSError as exc:
        err.print(f"[yellow]warning:[/] the run log was not written: {escape(str(exc.strerror or exc))}", markup=True)
    report(summary, seconds=time.perf_counter() - started, log_path=log_path)
    if not summary.success:
        raise typer.Exit(1)
    return result

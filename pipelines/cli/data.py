"""`rescue data ...`: bring your own data.

    rescue data init FILES... [--out mapping.yaml] [--force]   draft a commented mapping from the files
    rescue data check [MAPPING]                                 profile and validate; exit 1 on blocking problems
    rescue data load [MAPPING] [--replace]                      land the canonical tables in the warehouse

With `RESCUE_SOURCES` naming landed systems, `check` and `load` read their default mappings
joined under MAPPING (optional then: `connectors.mapping.compose`), so "HubSpot + Freshdesk" needs
no file of the company's own.

`check` prints the profile (sources, canonical tables, join coverage, the plausibility thresholds
in force: the mapping's `checks:` over the defaults) and one line per problem to stdout, then a
summary line; it writes nothing. `load` prints its progress to stderr, lands every
table in one transaction with a manifest row (`rescue_data_meta`), and prints what landed. Any
error is one line naming the file, key path or column, with exit code 1; nothing is written
half-way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.console import make_console

data_app = typer.Typer(help="Bring your own data: map a company's exports to the canonical tables, check, load.",
                       no_args_is_help=True)
FAILED = 1


def _out():
    return make_console(highlight=False)


def _err():
    return make_console(stderr=True, highlight=False)


def _fail(lines: list[str] | str) -> None:
    err = _err()
    for line in [lines] if isinstance(lines, str) else lines:
        err.print(f"error: {line}", markup=False, soft_wrap=True)
    raise typer.Exit(FAILED)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load(path: Path | None):
    """The mapping file, under the default mappings of the systems `RESCUE_SOURCES` names."""
    from connectors.mapping.compose import compose_mapping
    from connectors.mapping.loader import MappingError
    from connectors.settings import SettingError, landing_sources

    try:
        return compose_mapping(landing_sources(), path)
    except (MappingError, SettingError) as exc:
        _fail(exc.lines() if isinstance(exc, MappingError) else str(exc))


def _warehouse_for(loaded, *, writing: bool):
    """The configured warehouse; a mapping of files only is checked in a private in-memory
    DuckDB when the warehouse is DuckDB (the check writes nothing and takes no file lock)."""
    import sqlalchemy as sa

    from connectors.settings import default_warehouse_url
    from connectors.warehouse import Warehouse

    url = default_warehouse_url()
    files_only = all(loaded.mapping.source_of(n)[1].file is not None for n in loaded.mapping.sections())
    if not writing and files_only and sa.make_url(url).get_backend_name() == "duckdb":
        return Warehouse("duckdb:///:memory:")
    return Warehouse(url)


@data_app.command("init")
def init(
    files: Annotated[list[Path], typer.Argument(help="The company's exports: CSV or Parquet files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the draft mapping.")] = Path("mapping.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Draft a commented mapping from the files: keys, dates (day first or not), types, and which
    file is which table, guessed from their columns. Edit it, then `rescue data check`."""
    from connectors.mapping.draft import DraftError, draft_mapping
    from connectors.mapping.loader import MappingError, parse_mapping

    if out.exists() and not force:
        _fail(f"{out} exists: not overwriting it (use --force to replace it)")
    try:
        draft = draft_mapping(files, out)
    except DraftError as exc:
        _fail(str(exc))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(draft.text, encoding="utf-8")
    except OSError as exc:
        _fail(f"{out}: cannot write it: {exc.strerror or exc}")
    console = _out()
    for name, role in draft.roles.items():
        console.print(f"{name} -> {role}", markup=False)
    for name in draft.unused_files:
        console.print(f"{name} -> not used (could not tell which table it is)", markup=False)
    lines = draft.text.count("\n")
    try:
        parse_mapping(draft.text, source=str(out), base_dir=out.resolve().parent)
        state = "valid as drafted"
    except MappingError as exc:
        state = f"{len(exc.problems)} thing{'s' * (len(exc.problems) != 1)} to fill in before it loads"
    todo = f", {draft.todos} TODO{'s' * (draft.todos != 1)}" if draft.todos else ""
    console.print(f"wrote {out} ({lines} lines{todo}; {state}): edit it, then `rescue data check {out}`",
                  markup=False, soft_wrap=True)


@data_app.command("check")
def check(
    mapping: Annotated[Path | None, typer.Argument(
        help="The mapping YAML file (optional when RESCUE_SOURCES names landed systems).")] = None,
) -> None:
    """Profile and validate the data before loading: rows and date ranges, join coverage, mapped
    and unmapped columns, values a value map misses, and plausibility problems (the daily job's
    rules with the mapping's checks: thresholds; over its share a rule blocks). Exit 1 when a
    problem blocks loading."""
    from connectors.mapping.dialect import DialectError
    from connectors.mapping.land import LandError, check_mapping
    from connectors.mapping.loader import MappingError

    import sqlalchemy as sa

    loaded = _load(mapping)
    err = _err()
    try:
        report = check_mapping(loaded, _warehouse_for(loaded, writing=False),
                               progress=lambda line: err.print(line, markup=False, soft_wrap=True))
    except MappingError as exc:
        _fail(exc.lines())
    except (DialectError, LandError) as exc:
        _fail(str(exc))
    except sa.exc.SQLAlchemyError as exc:
        _fail(f"{loaded.path}: the warehouse failed: {_first_line(exc)}")
    console = _out()
    for line in report.lines():
        console.print(line, markup=False, soft_wrap=True)
    if report.blocking:
        raise typer.Exit(FAILED)


@data_app.command("load")
def load(
    mapping: Annotated[Path | None, typer.Argument(
        help="The mapping YAML file (optional when RESCUE_SOURCES names landed systems).")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace source tables (or a demo world) that no load wrote.")] = False,
) -> None:
    """Land the mapping's canonical tables in the warehouse, all in one transaction with a
    manifest row; nothing is written when anything fails."""
    import sqlalchemy as sa

    from connectors.demo.world import EVENTS_TABLE, META_TABLE, TRUTH_TABLE, read_world_meta
    from connectors.mapping.dialect import DialectError
    from connectors.mapping.land import LandError, land_mapping
    from connectors.mapping.loader import MappingError
    from connectors.mapping.manifest import MANIFEST_TABLE
    from connectors.warehouse import WarehouseError

    loaded = _load(mapping)
    warehouse = _warehouse_for(loaded, writing=True)
    err = _err()
    drop: list[str] = []
    try:
        if read_world_meta(warehouse) is not None:
            if not replace:
                _fail(f"the warehouse {warehouse.display_url} holds the demo world: load into another one "
                      "(RESCUE_HOME or RESCUE_WAREHOUSE_URL), or pass --replace to replace the demo world's tables")
            drop = [EVENTS_TABLE, TRUTH_TABLE, META_TABLE]
            err.print("replacing the demo world in the warehouse", markup=False)
        landed = land_mapping(loaded, warehouse, replace=replace, drop=drop,
                              progress=lambda line: err.print(line, markup=False, soft_wrap=True))
    except MappingError as exc:
        _fail(exc.lines())
    except (DialectError, LandError, WarehouseError) as exc:
        _fail(str(exc))
    except sa.exc.SQLAlchemyError as exc:
        _fail(f"{loaded.path}: the warehouse failed: {_first_line(exc)}")
    console = _out()
    for problem in landed.report.warnings:
        console.print(problem.line(), markup=False, soft_wrap=True)
    tables = ", ".join(f"{t} {n:,}" for t, n in landed.tables.items())
    name = loaded.mapping.name or loaded.path.name
    console.print(f"loaded {name}: {tables}; data up to {landed.data_end:%Y-%m-%d}; in {landed.seconds:.1f}s", markup=False, soft_wrap=True)
    console.print(f"manifest: {MANIFEST_TABLE} (mapping hash {loaded.content_hash[:12]}) in {warehouse.display_url}",
                  markup=False, soft_wrap=True)

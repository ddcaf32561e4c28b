"""One dlt pipeline per source, loading into the warehouse `RESCUE_WAREHOUSE_URL` names.

Each source lands in a dataset (a schema) of its own, named after it (`freshdesk.tickets`,
`freshdesk.companies`), next to the tables the pipeline reads. dlt keeps the source's state
(incremental cursors) in that dataset (``_dlt_pipeline_state``), committed with the data it
describes in the same load: a pull that fails before its load completes leaves the state where it
was, and the next run starts from there again. The local working directory
(``$RESCUE_HOME/dlt``) holds nothing that cannot be rebuilt from the warehouse.

Destinations, from the warehouse URL (`destination_for`):

- ``duckdb:///path`` (the embedded default): dlt's ``duckdb`` destination on the same file;
- ``postgresql[+driver]://user:password@host:port/database``: dlt's ``postgres`` destination;
- ``snowflake://user:password@account/database?warehouse=...&role=...``: dlt's ``snowflake``
  destination (needs ``dlt[snowflake]``; not tested here);
- ``bigquery://project``: dlt's ``bigquery`` destination, credentials from dlt's own
  configuration (``DESTINATION__BIGQUERY__CREDENTIALS__*`` or the Google application default
  credentials; needs ``dlt[bigquery]``; not tested here).

Anything else (SQLite, an in-memory DuckDB) is refused with one line: the landed tables must
outlive the process and live where the mapping reads them (the mapping runs on DuckDB and
PostgreSQL; on Snowflake and BigQuery only the landing is configured). A PostgreSQL URL without
a password (trust or peer authentication) is passed with an empty one, which dlt requires.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dlt
import sqlalchemy as sa
from dlt.common.pipeline import LoadInfo
from dlt.extract.source import DltSource
from dlt.pipeline.exceptions import PipelineStepFailed

from connectors.settings import Settings, default_warehouse_url, project_home


class LandingError(RuntimeError):
    """A source could not be landed; the message is one line and names what to change."""


def site_url(text: str, vendor_domain: str) -> str:
    """The HTTPS root of a vendor account as a person writes it: ``acme`` (the vendor's own
    subdomain: ``https://acme.<vendor_domain>``), ``acme.<vendor_domain>``, a custom host, or a
    URL (its path is dropped). The one rule of every source's (and write-back's) account setting."""
    host = text.strip().removeprefix("https://").removeprefix("http://").split("/")[0]
    if "." not in host:
        host = f"{host}.{vendor_domain}"
    return f"https://{host}"


def destination_for(url: str, *, credentials: bool = True):
    """The dlt destination of a warehouse URL (see the module docs); without `credentials` only
    its kind and, for DuckDB, its file (what the asset definitions show; the run passes them)."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "duckdb":
        if not parsed.database or parsed.database == ":memory:":
            raise LandingError(f"{Settings.env('warehouse_url')}: landing needs a DuckDB file, not an in-memory database")
        return dlt.destinations.duckdb(credentials=str(Path(parsed.database).resolve()))
    if backend in ("postgresql", "postgres"):
        if not credentials:
            return dlt.destinations.postgres()
        from dlt.destinations.impl.postgres.configuration import PostgresCredentials

        creds = PostgresCredentials()
        creds.parse_native_representation(parsed.set(drivername="postgresql").render_as_string(hide_password=False))
        if creds.password is None:
            creds.password = ""  # trust or peer authentication: dlt would ask for a password
        return dlt.destinations.postgres(credentials=creds)
    if backend == "snowflake":
        if not credentials:
            return dlt.destinations.snowflake()
        return dlt.destinations.snowflake(credentials=parsed.render_as_string(hide_password=False))
    if backend == "bigquery":
        return dlt.destinations.bigquery(project_id=parsed.host or None)
    raise LandingError(f"{Settings.env('warehouse_url')}: dlt lands sources in DuckDB, PostgreSQL, Snowflake or "
                       f"BigQuery; this warehouse is {backend}")


def landing_pipeline(source: str, warehouse_url: str | None = None, *, pipelines_dir: str | Path | None = None,
                     credentials: bool = True) -> dlt.Pipeline:
    """The dlt pipeline of `source` (``rescue_<source>``) into dataset `source` of the warehouse."""
    url = warehouse_url or default_warehouse_url()
    return dlt.pipeline(
        pipeline_name=f"rescue_{source}",
        destination=destination_for(url, credentials=credentials),
        dataset_name=source,
        pipelines_dir=str(pipelines_dir or project_home() / "dlt"),
        progress=None,
    )


#: Turns a failure of a source's pull into its one-line explanation (None: not one it knows).
Explainer = Callable[[BaseException], "str | None"]


def explain_failure(exc: BaseException, explain: Explainer | None = None) -> str:
    """One line for a failed pipeline run: the source's own explanation of the first error in
    the chain it recognizes, else the innermost error's first line."""
    chain: list[BaseException] = []
    seen = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        nested = getattr(seen, "exception", None) if isinstance(seen, PipelineStepFailed) else None
        seen = nested or seen.__cause__ or seen.__context__
    for err in chain:
        if explain is not None and (line := explain(err)):
            return line
    inner = chain[-1]
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0] if text else ''}".rstrip(": ")


def run_pipeline(pipeline: dlt.Pipeline, source: DltSource, explain: Explainer | None = None) -> LoadInfo:
    """Run one pull and load. Packages left by an earlier failed run are dropped first (their
    state was never committed, so this run pulls them again from the saved cursor). Raises
    `LandingError` with one line on failure."""
    pipeline.abort_packages()
    try:
        info = pipeline.run(source)
        info.raise_on_failed_jobs()
    except LandingError:
        raise
    except Exception as exc:  # dlt wraps the source's error in PipelineStepFailed
        raise LandingError(f"landing {source.name} failed: {explain_failure(exc, explain)}") from None
    return info

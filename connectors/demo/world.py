"""The embedded demo world: a deterministic simulation of a B2B software company's source systems.

`generate_demo_world` writes into the warehouse what a CRM, a ticketing system and a product
analytics pipeline would land there, as raw tables:

=====================  ===============================================================
``raw_crm_accounts``   accounts (columns of `models.contracts.ACCOUNTS`)
``raw_crm_renewals``   annual renewal opportunities (columns of `RENEWALS`)
``raw_support_tickets`` support tickets (columns of `TICKETS`)
``raw_product_events`` per-user product events: account_id, user_id, occurred_at, feature,
                       quantity (one row = one batch of events a user produced in a session)
``demo_truth``         the latent ground truth per account; the pipeline never reads it
``demo_world_meta``    one row: the configuration and the row counts, written last
=====================  ===============================================================

Churn is *caused* by latent factors that evolve over time (declining adoption, support pain,
champion loss, price pressure) and leave traces in the raw data before the churn happens. At each
renewal the churn probability is `renewal_churn_probability` of the factors as they were in the
months before it (`connectors.demo.hazard`). The causal story, with the numbers, is in ``docs/demo_world.md``.

Determinism: the output depends only on the configuration. Accounts are generated in chunks of
`ACCOUNTS_PER_CHUNK`, each with its own random stream ``np.random.default_rng([seed, chunk])``,
so the same seed and configuration give identical tables whatever the machine, and whether the
chunks are built one after the other or ahead of the writer in a thread (they are written in
chunk order either way). Each chunk is generated with vectorized numpy and appended to
staging tables; when every chunk is written the
staging tables replace the previous world in one transaction (`Warehouse.promote`) together with
``demo_world_meta``, so a failed or interrupted run leaves the previous world intact.

This module writes the world; `connectors.demo.chunk` generates one chunk of accounts and
`connectors.demo.hazard` holds the churn hazard and the latent factors.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date

import dagster as dg
import pandas as pd
from pydantic import Field

from connectors.demo.chunk import Chunk, ChunkTables, csm_pool
from connectors.demo.config import DemoWorldConfig
from connectors.mapping.manifest import describe_landed, read_manifest
from connectors.sources import RAW_TABLES
from connectors.warehouse import RAW_EVENTS_TABLE, Warehouse

Progress = Callable[[str, float], None]

#: Accounts per generation chunk. Part of the output's definition: changing it changes the world.
ACCOUNTS_PER_CHUNK = 2_000
#: Worlds of at least this many chunks build the next ones while writing one (`_chunks`).
PARALLEL_MIN_CHUNKS = 2
#: Threads building chunks ahead of the writer.
PREFETCH_THREADS = 2
#: Bumped whenever the simulation changes, and recorded in ``demo_world_meta``.
GENERATOR_VERSION = "1"

#: The raw tables the source connectors read (one definition, in `connectors.sources`).
ACCOUNTS_TABLE = RAW_TABLES["accounts"]
RENEWALS_TABLE = RAW_TABLES["renewals"]
TICKETS_TABLE = RAW_TABLES["tickets"]
EVENTS_TABLE = RAW_EVENTS_TABLE
TRUTH_TABLE = "demo_truth"
META_TABLE = "demo_world_meta"
WORLD_TABLES = (ACCOUNTS_TABLE, RENEWALS_TABLE, TICKETS_TABLE, EVENTS_TABLE, TRUTH_TABLE)
_STAGING_SUFFIX = "__generating"


# ------------------------------------------------------------------------------------------
# Writing the world
# ------------------------------------------------------------------------------------------


class DemoRefused(RuntimeError):
    """The warehouse holds data the demo did not write; the demo never writes over it."""


def refuse_user_data(warehouse: Warehouse) -> None:
    """Raise `DemoRefused` when the warehouse holds data that is not a demo world: data landed by
    `rescue data load` (its manifest), or source tables no demo generation wrote."""
    elsewhere = "point RESCUE_HOME (or RESCUE_WAREHOUSE_URL) at another place for the demo"
    meta = read_manifest(warehouse)
    if meta is not None:
        raise DemoRefused(f"the warehouse {warehouse.display_url} holds {describe_landed(meta)}; "
                          f"the demo never writes over it: {elsewhere}")
    if read_world_meta(warehouse) is None:
        foreign = [t for t in WORLD_TABLES if warehouse.table_exists(t)]
        if foreign:
            raise DemoRefused(f"the warehouse {warehouse.display_url} holds {', '.join(foreign)}, which no demo "
                              f"generation wrote; the demo never writes over it: {elsewhere}")


def _build_chunk(config: DemoWorldConfig, index: int, csms: tuple) -> ChunkTables:
    first = index * ACCOUNTS_PER_CHUNK
    return Chunk(config, index, first, min(ACCOUNTS_PER_CHUNK, config.n_accounts - first), csms).build()


def _chunks(config: DemoWorldConfig, n_chunks: int, workers: int | None) -> Iterator[ChunkTables]:
    """The chunks in order. With `PARALLEL_MIN_CHUNKS` chunks or more, the next chunks are built
    in `workers` threads (default `PREFETCH_THREADS`) while the caller writes the current one:
    numpy and the warehouse's insert release the GIL for most of their work, so building and
    writing overlap. At most `workers` chunks are in flight, so memory stays bounded whatever the
    size. Each chunk draws from its own random stream, so the world is the same either way."""
    csms = csm_pool(config)
    workers = PREFETCH_THREADS if workers is None else workers
    if workers < 1 or n_chunks < PARALLEL_MIN_CHUNKS:
        for index in range(n_chunks):
            yield _build_chunk(config, index, csms)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="demo-chunk") as pool:
        pending: deque[Future] = deque()
        submitted = 0
        while submitted < n_chunks or pending:
            while submitted < n_chunks and len(pending) < workers:
                pending.append(pool.submit(_build_chunk, config, submitted, csms))
                submitted += 1
            yield pending.popleft().result()


def generate_demo_world(
    config: DemoWorldConfig,
    warehouse: Warehouse,
    progress: Progress | None = None,
    *,
    workers: int | None = None,
) -> dict[str, int]:
    """Generate the world described by ``config`` into ``warehouse``; return rows per table.

    The previous world (if any) is replaced atomically when the new one is complete; a failed
    run leaves it untouched (and staging tables that the next run drops). A warehouse holding
    anything else (landed data, source tables of its own) is refused with `DemoRefused`. The
    next chunks are built in `workers` threads while one is written (`_chunks`; 0: one after
    the other); the world does not depend on it.
    """
    refuse_user_data(warehouse)
    report = progress or (lambda _msg, _frac: None)
    staging = {table: f"{table}{_STAGING_SUFFIX}" for table in (*WORLD_TABLES, META_TABLE)}
    for name in staging.values():
        warehouse.drop_table(name)
    counts = dict.fromkeys(WORLD_TABLES, 0)
    n_chunks = math.ceil(config.n_accounts / ACCOUNTS_PER_CHUNK)
    for index, tables in enumerate(_chunks(config, n_chunks, workers)):
        first = index * ACCOUNTS_PER_CHUNK
        report(f"writing accounts {first + 1:,}-{first + len(tables.accounts):,} of {config.n_accounts:,}",
               index / n_chunks)
        for table, frame in ((ACCOUNTS_TABLE, tables.accounts), (RENEWALS_TABLE, tables.renewals),
                             (TICKETS_TABLE, tables.tickets), (EVENTS_TABLE, tables.events),
                             (TRUTH_TABLE, tables.truth)):
            counts[table] += warehouse.append_table(staging[table], frame)
    meta = pd.DataFrame([{
        **{k: (pd.Timestamp(v) if isinstance(v, date) else v) for k, v in config.model_dump().items()},
        "start_date": pd.Timestamp(config.start_date),
        "generator_version": GENERATOR_VERSION,
        **{f"rows_{table}": count for table, count in counts.items()},
    }])
    warehouse.write_table(staging[META_TABLE], meta)
    report("replacing the previous world", 0.99)
    warehouse.promote({source: target for target, source in staging.items()})
    report("done", 1.0)
    return {**counts, META_TABLE: 1}


def read_world_meta(warehouse: Warehouse) -> dict[str, object] | None:
    """The ``demo_world_meta`` row of the world in ``warehouse`` (None if there is none)."""
    if not warehouse.table_exists(META_TABLE):
        return None
    frame = warehouse.read_sql(f"SELECT * FROM {META_TABLE}")
    return frame.iloc[0].to_dict() if len(frame) else None


class DemoWorldResource(dg.ConfigurableResource):
    """The embedded demo world as a Dagster resource."""

    n_accounts: int = Field(default=2_000, description="Number of customer accounts.")
    seed: int = Field(default=7, description="Random seed: the same seed gives the same world.")
    end_date: str = Field(default="2026-11-20", description="The world's 'today' (ISO date).")
    history_days: int = Field(default=540, description="Days of product and support history.")

    @property
    def config(self) -> DemoWorldConfig:
        return DemoWorldConfig(
            n_accounts=self.n_accounts, seed=self.seed,
            end_date=date.fromisoformat(self.end_date), history_days=self.history_days,
        )

    def generate(self, warehouse: Warehouse, progress: Progress | None = None) -> dict[str, int]:
        return generate_demo_world(self.config, warehouse, progress)

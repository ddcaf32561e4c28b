"""What the multiprocess executor's fork server loads once per run (`pipelines.executors`).

Each step of a `RESCUE_EXECUTOR=multiprocess` run is forked from a server that imported this
module when the run started, so a step starts with the Definitions built (`pipelines.definitions`,
from the environment the run inherits), their repository resolved and Great Expectations
imported, instead of spending seconds on each in every step process. Nothing here starts a
thread or opens a connection: a fork copies neither safely.
"""

import great_expectations  # noqa: F401  (the source checks' suites; about 2 s an import)

from pipelines.definitions import defs

#: The resolved repository every step looks its job up in (cached on `defs`).
repository = defs.get_repository_def()

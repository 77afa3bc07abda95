"""What the project's SQL stores share: creating their tables when several processes start at
once (API workers, replicas, jobs) on a new database."""

from __future__ import annotations

import time
from typing import Final

import sqlalchemy as sa

CREATE_ATTEMPTS: Final = 5


def create_tables(metadata: sa.MetaData, engine: sa.Engine) -> None:
    """Create the missing tables. `create_all` checks, then creates: two processes can both see
    a table missing, and one fails with "already exists" while the other is half-way through
    the rest. Trying again settles it (each try only creates what is still missing)."""
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            metadata.create_all(engine)
            return
        except sa.exc.DBAPIError:
            existing = set(sa.inspect(engine).get_table_names())
            if {table.name for table in metadata.sorted_tables} <= existing:
                return
            if attempt == CREATE_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)

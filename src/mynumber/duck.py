"""DuckDB connections for the batch jobs (linkage, the general check).

Each gets a memory limit that leaves room for the Python side (DuckDB's default, 80 % of RAM per
connection, let a 1M × 500k linkage be killed by the kernel) and spills to a private temporary
directory (mode 0700: spilled pages hold names and addresses), removed when the process ends."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

import duckdb

__all__ = ["connect"]

MEMORY_SHARE = 0.4
"""Of physical memory, per connection."""


@functools.cache
def _spill_dir() -> str:
    path = tempfile.mkdtemp(prefix="mynumber-duckdb-")
    atexit.register(shutil.rmtree, path, True)
    return path


def connect(share: float = MEMORY_SHARE) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection limited to `share` of physical memory."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = max(256, int(total * share) >> 20)
    return duckdb.connect(config={"memory_limit": f"{limit}MiB", "temp_directory": _spill_dir()})

"""The databases a run uses: SQLite files in the temporary data dir, and optionally a fresh
PostgreSQL database created for the run and dropped afterwards.

Each backend also gives the raw-driver floors: a bare table for the import baseline and the
bare indexed lookup on the J-LIS identities table for the query baseline.
"""

from __future__ import annotations

import datetime as dt
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from mynumber.clock import FixedClock
from mynumber.config import Settings
from mynumber.csvformat import RESIDENT_COLUMNS
from mynumber.platform import Platform
from mynumber.synth import DEFAULT_MUNICIPALITIES, REFERENCE_DATE

__all__ = [
    "LOOKUP_SQL",
    "Backend",
    "Lookup",
    "open_platform",
    "postgres_backend",
    "sqlite_backend",
]

Lookup = Callable[[dt.date, int], Sequence[tuple[Any, ...]]]
"""(birth_date, sex) → rows of (resident_code, name_key, kana_key, address_key)."""

LOOKUP_SQL = (
    "SELECT resident_code, name_key, kana_key, address_key FROM {table} "
    "WHERE birth_date = {p} AND sex = {p}"
)

# The pragmas mynumber.db.make_engine sets on every SQLite connection (WAL, synchronous=NORMAL
# and the page cache), so the floor runs under the same durability and memory as the code.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=-131072",
    "PRAGMA temp_store=MEMORY",
)

_BARE_COLUMNS = ", ".join(f'"{c}" TEXT' for c in RESIDENT_COLUMNS)
_BARE_NAMES = ", ".join(f'"{c}"' for c in RESIDENT_COLUMNS)


def _clock() -> FixedClock:
    # Generated registers are valid as of synth.REFERENCE_DATE (no birth after it).
    return FixedClock(dt.datetime.combine(REFERENCE_DATE, dt.time(9, 0)))


def open_platform(data_dir: Path, database_url: str | None) -> Platform:
    """A platform over `data_dir` (and `database_url`), on the benchmarks' fixed clock: another
    process or thread opens the same deployment a backend's platform runs on."""
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        municipality_database_url=None,
        jlis_database_url=None,
        master_key=None,
    )
    return Platform(settings, _clock(), auto_sync=False)


def _platform(data_dir: Path, database_url: str | None) -> Platform:
    p = open_platform(data_dir, database_url)
    m = DEFAULT_MUNICIPALITIES[0]
    p.municipality.create_municipality(m.code, m.prefecture, m.name)
    return p


@dataclass
class Backend:
    name: str
    """sqlite | postgresql"""
    data_dir: Path
    database_url: str | None
    """None for SQLite files in data_dir; the run's own PostgreSQL database otherwise."""
    platform: Platform
    scratch: Path
    """Where the SQLite floor writes its bare files."""

    def bare_import(self, tuples: Sequence[tuple[str, ...]]) -> float:
        """Seconds to write `tuples` into a fresh bare table of 17 TEXT columns, the fastest
        way the driver offers: one executemany in one transaction (SQLite) or COPY (PostgreSQL)."""
        if self.database_url is None:
            return _sqlite_bare_import(self.scratch, tuples)
        return _postgres_bare_import(self.database_url, tuples)

    @contextmanager
    def lookup(self) -> Iterator[Lookup]:
        """The bare indexed lookup through the raw driver, one statement per call."""
        if self.database_url is None:
            path = self.platform.jlis.engine.url.database
            assert path
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                for pragma in SQLITE_PRAGMAS:
                    conn.execute(pragma)
                cur = conn.cursor()
                sql = LOOKUP_SQL.format(table="identities", p="?")

                def sqlite_lookup(birth: dt.date, sex: int) -> list[tuple[Any, ...]]:
                    # SQLAlchemy's Date is ISO text on SQLite; sex is an integer.
                    cur.execute(sql, (birth.isoformat(), sex))
                    return cur.fetchall()

                yield sqlite_lookup
            finally:
                conn.close()
            return
        with psycopg.connect(self.database_url, autocommit=True) as pg:
            pcur = pg.cursor()
            psql = LOOKUP_SQL.format(table="jlis.identities", p="%s")

            def pg_lookup(birth: dt.date, sex: int) -> list[tuple[Any, ...]]:
                pcur.execute(psql, (birth, sex), prepare=True)
                return pcur.fetchall()

            yield pg_lookup

    def close(self) -> None:
        self.platform.close()


def sqlite_backend(root: Path) -> Backend:
    data_dir = root / "sqlite-data"
    return Backend("sqlite", data_dir, None, _platform(data_dir, None), root)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database on the server of `admin_url` for this run; dropped afterwards."""
    name = f"mynumber_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_backend(root: Path, database_url: str) -> Backend:
    data_dir = root / "postgresql-data"
    return Backend("postgresql", data_dir, database_url, _platform(data_dir, database_url), root)


def postgres_version(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"


_bare_runs = 0


def _sqlite_bare_import(scratch: Path, tuples: Sequence[tuple[str, ...]]) -> float:
    global _bare_runs
    _bare_runs += 1
    path = scratch / f"bare-{_bare_runs}.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        conn.execute(f"CREATE TABLE bare ({_BARE_COLUMNS})")
        sql = f"INSERT INTO bare ({_BARE_NAMES}) VALUES ({', '.join('?' * len(RESIDENT_COLUMNS))})"
        t0 = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(sql, tuples)
        conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        (count,) = conn.execute("SELECT count(*) FROM bare").fetchone()
        assert count == len(tuples), (count, len(tuples))
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return elapsed


def _postgres_bare_import(url: str, tuples: Sequence[tuple[str, ...]]) -> float:
    global _bare_runs
    _bare_runs += 1
    table = f"bare_{_bare_runs}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE public.{table} ({_BARE_COLUMNS})")
        try:
            t0 = time.perf_counter()
            sql = f"COPY public.{table} ({_BARE_NAMES}) FROM STDIN"
            with conn.transaction(), conn.cursor() as cur, cur.copy(sql) as copy:
                for row in tuples:
                    copy.write_row(row)
            elapsed = time.perf_counter() - t0
            row0 = conn.execute(f"SELECT count(*) FROM public.{table}").fetchone()
            assert row0 is not None and row0[0] == len(tuples), (row0, len(tuples))
        finally:
            conn.execute(f"DROP TABLE public.{table}")
    return elapsed

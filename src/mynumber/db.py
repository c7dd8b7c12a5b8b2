"""Engines per role: a SQLite file per role by default, a PostgreSQL schema per role otherwise.

A role's tables live in its own database (SQLite) or its own schema (PostgreSQL); no role opens
another role's engine.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

from sqlalchemy import LargeBinary, Table, create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

__all__ = [
    "SQLITE_CACHE_KIB",
    "bulk_insert",
    "is_postgres",
    "make_engine",
    "stored_utc",
    "writing",
]


def stored_utc(value: dt.datetime | str) -> dt.datetime:
    """A stored time as an aware UTC datetime: SQLite hands back the UTC wall time, naive (or,
    through some paths, its ISO text); PostgreSQL an aware time in the session's zone."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


SQLITE_CACHE_KIB = 131072  # 128 MiB of page cache per connection


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction: committed on success, rolled back on any error."""
    with engine.connect() as conn:
        conn.execution_options(writing=True)
        with conn.begin():
            yield conn


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def make_engine(url: str, role: str) -> Engine:
    """An engine for `role` at `url`, its schema migrated to the newest revision."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()
            # Let SQLAlchemy's "begin" event below issue BEGIN itself (pysqlite would defer it).
            dbapi_conn.isolation_level = None

        # A writing transaction takes the write lock at BEGIN (IMMEDIATE), so two writers never
        # both read and then try to upgrade; reads use a plain deferred BEGIN and never block.
        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            write = conn.get_execution_options().get("writing", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    else:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        boot = create_engine(url)
        with boot.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{role}"'))
        boot.dispose()
        # At most 8 connections per role per process (6 roles): two server workers stay under
        # PostgreSQL's default 100 connections with room for a second server or a CLI. A
        # request that finds none free waits for one (pool_timeout) rather than opening more;
        # past that it is a 503 server.busy, and the same request again is safe.
        engine = create_engine(
            url,
            pool_size=4,
            max_overflow=4,
            pool_timeout=30,
            connect_args={"options": f"-csearch_path={role}"},
        )
    from mynumber.migrations import upgrade

    upgrade(engine, role)
    return engine


def bulk_insert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows through the driver directly: COPY on PostgreSQL, one prepared
    executemany on SQLite. Values pass through each column type's own bind processor, so what
    is stored is exactly what an ordinary insert would store."""
    if not rows:
        return
    cols = list(rows[0].keys())
    dialect = conn.dialect
    # sqlite3 takes bytes as they are; SQLAlchemy's LargeBinary processor only re-wraps them.
    procs = [
        None
        if dialect.name == "sqlite" and isinstance(table.c[c].type, LargeBinary)
        else table.c[c].type.bind_processor(dialect)
        for c in cols
    ]
    driver = conn.connection.driver_connection
    assert driver is not None
    dbapi = dialect.loaded_dbapi
    names = ", ".join(f'"{c}"' for c in cols)
    try:
        if dialect.name == "postgresql":
            sql = f'COPY "{table.name}" ({names}) FROM STDIN'
            with driver.cursor() as cur, cur.copy(sql) as copy:
                for row in rows:
                    copy.write_row(
                        [
                            v if p is None or v is None else p(v)
                            for p, v in zip(procs, (row[c] for c in cols), strict=True)
                        ]
                    )
            return
        get = itemgetter(*cols)
        converting = [(i, p) for i, p in enumerate(procs) if p is not None]
        # A batch often repeats one value in a column (the import's timestamp, today's date):
        # convert it once.
        last: dict[int, tuple[Any, Any]] = {}
        values: list[Any] = []
        for row in rows:
            vals = get(row) if len(cols) > 1 else (row[cols[0]],)
            if converting:
                vals = list(vals)
                for i, p in converting:
                    v = vals[i]
                    if v is None:
                        continue
                    seen = last.get(i)
                    if seen is not None and seen[0] is v:
                        vals[i] = seen[1]
                    else:
                        vals[i] = converted = p(v)
                        last[i] = (v, converted)
            values.append(vals)
        sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" * len(cols))})'
        cur = driver.cursor()
        try:
            cur.executemany(sql, values)
        finally:
            cur.close()
    except dbapi.Error as exc:
        # Raise what an ordinary insert would: SQLAlchemy's wrapper (IntegrityError, …).
        raise DBAPIError.instance(sql, None, exc, dbapi.Error, dialect=dialect) from exc


def read_once(engine: Engine, sql: str, params: Sequence[Any]) -> list[Any]:
    """Rows of one read-only statement, the fast way: a prebuilt driver statement on a pooled
    connection, no ORM statement building and no explicit transaction.

    `sql` uses ``?`` placeholders; on PostgreSQL they become ``%s`` and the statement runs in
    autocommit — one round trip instead of BEGIN, SELECT and the pool's ROLLBACK (psycopg
    prepares it after a few uses). SQLite gets `params` as given (dates as ISO text)."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        try:
            if engine.dialect.name == "sqlite":
                cur.execute(sql, tuple(params))
                return list(cur.fetchall())
            driver: Any = raw.driver_connection
            if driver.info.transaction_status != 0:  # not IDLE: end what is open first
                driver.rollback()
            driver.autocommit = True
            try:
                cur.execute(_pg_placeholders(sql), tuple(params))
                return list(cur.fetchall())
            finally:
                driver.autocommit = False
        finally:
            cur.close()
    finally:
        raw.close()


@functools.lru_cache(maxsize=64)
def _pg_placeholders(sql: str) -> str:
    return sql.replace("?", "%s")

"""Shared fixtures: a platform on SQLite and on PostgreSQL, a clock tests can set, tokens."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mynumber.clock import JST, FixedClock
from mynumber.config import Settings
from mynumber.platform import Platform

PG_URL = os.environ.get(
    "MYNUMBER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TODAY = dt.datetime(2026, 11, 26, 10, 0, tzinfo=JST)
MUNI = "131041"  # 東京都新宿区


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI (MYNUMBER_NO_SKIP=1) a skipped test is a failed test."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("MYNUMBER_NO_SKIP") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped tests fail in CI: {report.longrepr}"


def _pg_admin_url() -> str:
    return PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session")
def pg_available() -> bool:
    from sqlalchemy import create_engine, text

    try:
        eng = create_engine(_pg_admin_url())
        with eng.connect() as conn:
            conn.execute(text("SELECT 1"))
        eng.dispose()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new PostgreSQL database, dropped (connections and all) afterwards."""
    from sqlalchemy import create_engine, text

    name = f"mn_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(pg_available: bool) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    if not pg_available:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    with fresh_postgres() as url:
        yield url


@pytest.fixture(scope="module")
def module_postgres_url(pg_available: bool) -> Iterator[str]:
    """A fresh PostgreSQL database shared by one module's tests (an expensive server)."""
    if not pg_available:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    with fresh_postgres() as url:
        yield url


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(TODAY)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """The database URL under test: None for SQLite files, else a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings(tmp_path: Path, backend: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=backend)


@pytest.fixture
def platform(settings: Settings, clock: FixedClock) -> Iterator[Platform]:
    p = Platform(settings, clock)
    p.municipality.create_municipality(MUNI, "東京都", "新宿区")
    try:
        yield p
    finally:
        p.close()


# -- kiosk tests over real HTTP ------------------------------------------------------------------


@pytest.fixture
def kiosk_token(settings: Settings) -> str:
    """A token of the kiosk operator "kiosk" (kiosk ids kiosk and kiosk-*)."""
    from mynumber.api.auth import TokenStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return TokenStore(settings.data_dir / "tokens.json").create(
        "kiosk", ["kiosk:issue"], kiosk_operator="kiosk"
    )


@pytest.fixture
def base_url(platform: Platform) -> Iterator[str]:
    """The platform served over real HTTP (a thread of this process)."""
    from relykit import serve

    with serve(platform) as url:
        yield url

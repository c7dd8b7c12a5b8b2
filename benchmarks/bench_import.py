"""Import: import_residents(platform.municipality, rows), then platform.sync() (the J-LIS mirror).

Floor: the same rows as tuples written into a bare table of 17 TEXT columns by the raw driver
(one sqlite3 executemany in one transaction, same pragmas; psycopg COPY on PostgreSQL). The floor
runs once before and once after our import and the faster run counts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mynumber.csvformat import RESIDENT_COLUMNS
from mynumber.municipality.bulk import import_residents

from .backends import Backend
from .common import Result, err, progress

__all__ = ["ImportRun", "run_import"]

TARGET_ROWS = 1_000_000
TARGET_SECONDS = 120.0
TARGET_RATE = TARGET_ROWS / TARGET_SECONDS


@dataclass
class ImportRun:
    backend: str
    rows: int
    import_seconds: float
    sync_seconds: float
    events_applied: int
    baseline_seconds: list[float] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "rows": self.rows,
            "import_seconds": self.import_seconds,
            "sync_seconds": self.sync_seconds,
            "events_applied": self.events_applied,
            "baseline_seconds_runs": self.baseline_seconds,
        }


def as_tuples(rows: Sequence[dict[str, str]]) -> list[tuple[str, ...]]:
    """The rows as the floor takes them (materialised before anything is timed)."""
    return [tuple(r[c] for c in RESIDENT_COLUMNS) for r in rows]


def _floor(backend: Backend, tuples: Sequence[tuple[str, ...]], when: str) -> float:
    label = "executemany" if backend.database_url is None else "COPY"
    with progress() as bar:
        task = bar.add_task(f"{backend.name}: floor: bare {label} ({when})", total=None)
        seconds = backend.bare_import(tuples)
        bar.update(task, total=len(tuples), completed=len(tuples))
    return seconds


def run_import(
    backend: Backend,
    rows: Sequence[dict[str, str]],
    tuples: Sequence[tuple[str, ...]] | None,
) -> ImportRun:
    """Import `rows` into `backend` (always: the other benchmarks query this register); time the
    floor too when `tuples` is given."""
    n = len(rows)
    run = ImportRun(backend.name, n, 0.0, 0.0, 0)
    if tuples is not None:
        run.baseline_seconds.append(_floor(backend, tuples, "before"))
    numbered = [(i + 2, r) for i, r in enumerate(rows)]  # line numbers as a CSV file gives them
    p = backend.platform
    with progress() as bar:
        task = bar.add_task(f"{backend.name}: import_residents", total=n)
        t0 = time.perf_counter()
        report = import_residents(p.municipality, numbered, progress=lambda k: bar.advance(task, k))
        run.import_seconds = time.perf_counter() - t0
        if not report.committed or report.imported != n:
            for e in report.errors[:10]:
                err.print(f"[red]row {e.row} {e.field}: {e.code} — {e.en}", highlight=False)
            raise RuntimeError(
                f"import_residents imported {report.imported:,} of {n:,} rows "
                f"({len(report.errors):,} errors, committed={report.committed})"
            )
        sync_task = bar.add_task(f"{backend.name}: platform.sync() — J-LIS mirror", total=None)
        t1 = time.perf_counter()
        run.events_applied = p.sync()
        run.sync_seconds = time.perf_counter() - t1
        bar.update(sync_task, total=run.events_applied, completed=run.events_applied)
    counts = p.jlis.counts()
    if counts["identities"] != n or run.events_applied != n:
        raise RuntimeError(
            f"after sync J-LIS holds {counts['identities']:,} identities "
            f"({run.events_applied:,} events applied), expected {n:,}"
        )
    if tuples is not None:
        run.baseline_seconds.append(_floor(backend, tuples, "after"))
    return run


def import_results(run: ImportRun) -> list[Result]:
    n = run.rows
    base_s = min(run.baseline_seconds)
    base_rate = n / base_s
    floor = "bare executemany" if run.backend == "sqlite" else "bare COPY"
    total_s = run.import_seconds + run.sync_seconds
    sqlite = run.backend == "sqlite"
    projected = TARGET_ROWS * total_s / n

    def result(name: str, seconds: float, **kw: Any) -> Result:
        return Result(
            benchmark=name,
            backend=run.backend,
            value=n / seconds,
            unit="rows/s",
            count=n,
            seconds=seconds,
            baseline=floor,
            baseline_value=base_rate,
            baseline_seconds=base_s,
            **kw,
        )

    return [
        result("import_residents", run.import_seconds),
        result("platform.sync() (J-LIS mirror)", run.sync_seconds),
        result(
            "import + sync",
            total_s,
            target=TARGET_RATE if sqlite else None,
            target_text=f"≥ {TARGET_RATE:,.0f} rows/s" if sqlite else "—",
            notes=[
                f"{n:,} rows in {total_s:,.1f} s; 1M at this rate: {projected:,.0f} s"
                + ("" if n >= TARGET_ROWS else " (linear projection; optimistic if cost grows)")
                + ("; target: 1M residents in under 2 minutes" if sqlite else "")
            ],
        ),
    ]

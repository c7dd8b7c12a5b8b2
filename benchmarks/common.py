"""What every benchmark shares: result records, the machine description, progress bars."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = [
    "Result",
    "err",
    "fmt_rate",
    "machine_info",
    "out",
    "peak_rss_mib",
    "progress",
]

out = Console()
"""The report (table, machine, correctness) goes to stdout."""
err = Console(stderr=True)
"""Progress bars and phase notes go to stderr, so stdout stays a clean report."""


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


@dataclass
class Result:
    """One measured figure beside its baseline, both throughputs (higher is better).

    ratio = value / baseline_value: 1.0 is as fast as the floor, 0.1 is ten times slower. For a
    fixed amount of work this equals baseline time / our time.
    """

    benchmark: str
    backend: str
    value: float
    unit: str
    count: int
    seconds: float
    baseline: str
    baseline_value: float
    baseline_seconds: float
    target: float | None = None
    """Minimum acceptable value (same unit), or None when the brief sets no target."""
    target_text: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.value / self.baseline_value if self.baseline_value else float("nan")

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.value >= self.target

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = self.ratio
        d["target_met"] = self.met
        return d


def fmt_rate(value: float, unit: str) -> str:
    if value >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:,.1f} {unit}"


def progress(console: Console = err) -> Progress:
    """A progress display for one long phase (generation, import, queries, HTTP)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _nproc() -> str:
    exe = shutil.which("nproc")
    if exe:
        try:
            return subprocess.run([exe], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            pass
    return str(len(os.sched_getaffinity(0)))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    """What the figures were measured on (printed with the table, stored in the JSON)."""
    import httpx
    import psycopg
    import sqlalchemy

    import mynumber

    mem = _mem_total_gib()
    return {
        "nproc": _nproc(),
        "cpu": _cpu_model(),
        "memory_gib": round(mem, 1) if mem is not None else None,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "psycopg": psycopg.__version__,
        "httpx": httpx.__version__,
        "mynumber": mynumber.__version__,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }

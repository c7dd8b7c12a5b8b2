"""Running `mynumber …` as people run it: a process per command, against a test platform's
data directory (and PostgreSQL URL), with no MYNUMBER_ variable leaking in from outside."""

from __future__ import annotations

import os
import subprocess
import sys

from mynumber.platform import Platform


def run_cli(
    p: Platform,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    database: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`python -m mynumber.cli ARGS --data-dir … [--database-url …]`, 200 columns wide (Rich
    does not wrap the tables), `env` added to the cleaned environment. `database=False` for a
    command that is a client of the server and has no database of its own (the kiosk)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MYNUMBER_")}
    base["COLUMNS"] = "200"
    cmd = [sys.executable, "-m", "mynumber.cli", *args, "--data-dir", str(p.settings.data_dir)]
    if database and p.settings.database_url:
        cmd += ["--database-url", p.settings.database_url]
    return subprocess.run(
        cmd, capture_output=True, text=True, env={**base, **(env or {})}, timeout=timeout
    )

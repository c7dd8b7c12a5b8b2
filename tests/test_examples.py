"""The runnable examples in examples/ run to the end (each starts its own server)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_bank_ekyc_runs_end_to_end() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYNUMBER_")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "bank_ekyc.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    # Every step reported, in order, and the last line says all went as expected.
    steps = [line for line in lines if line.startswith("== ")]
    assert [s.split(".")[0] for s in steps] == [f"== {i}" for i in range(1, 7)]
    assert sum(line.strip().startswith("ok:") for line in lines) == 11
    assert lines[-1] == "bank eKYC: every step as expected"
    # No PIN is ever printed (the customer's side reads them from the demo file only).
    assert "pin" not in (done.stdout + done.stderr).lower()

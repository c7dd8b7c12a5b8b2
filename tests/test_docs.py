"""Documentation that must stay true as the code changes."""

from __future__ import annotations

import re
from pathlib import Path

from mynumber.numbers import Kind

ROOT = Path(__file__).resolve().parent.parent
NOT_CODES = {
    "landing",
    "master",
    "mynumber",
    "sqlalchemy",
    "tokens",
    "demo",
    "alembic",
    "legal_basis",
}


FILE_SUFFIXES = {"csv", "html", "png", "json", "parquet"}
"""A quoted "roll.csv" is a file name, not a reason code."""


def _codes_in_source() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "src" / "mynumber").rglob("*.py"):
        for code in re.findall(r'"([a-z_]+\.[a-z_]+)"', path.read_text(encoding="utf-8")):
            head, tail = code.split(".")
            if head not in NOT_CODES and tail not in FILE_SUFFIXES:
                found.add(code)
    for kind in Kind:
        for suffix in ("empty", "invalid_character", "length", "check_digit"):
            found.add(f"{kind}.{suffix}")
    return found


def test_every_reason_code_is_documented() -> None:
    doc = (ROOT / "docs" / "reason-codes.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z_-]+\.[a-z_]+)`", doc))
    documented |= {
        f"{k}.{s}" for k in Kind for s in ("empty", "invalid_character", "length", "check_digit")
    }
    missing = sorted(_codes_in_source() - documented)
    assert not missing, f"add these codes to docs/reason-codes.md: {missing}"


def test_readme_opens_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    head = readme[:1500]
    assert "make run" in head and "make test" in head

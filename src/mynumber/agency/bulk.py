"""Batch linkage at scale: a whole roll against a whole register, in two stages (DESIGN I3).

This module computes; it does no storage I/O. Its evidence is a :class:`Register` — the J-LIS
mirror's identities with their households, as an Arrow table, and a resolver of claimed numbers —
built by :mod:`mynumber.agency.batch` from the platform's roles, or by ``benchmarks/linkage`` from
generated data. What it returns (:class:`BatchDecision`) is stored by the caller.

Stage 1 (deterministic): each record's normalised keys are joined in DuckDB with the register on
(kana key — current or earlier —, birth date, sex); the owner of a claimed number and the owner's
household are looked up. Every decision is then made by the same pure functions as a single
enrolment (:func:`mynumber.agency.linkage.decide_claim`, :func:`~.decide_query`), so a roll links
exactly what one-by-one enrolment would.

Stage 2 (probabilistic, Splink on DuckDB) for every record stage 1 did not link: Splink proposes
candidates with Japanese-aware comparisons; I3 disposes (:func:`mynumber.agency.linkage.decide_search`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from mynumber.identity import keys_of

__all__ = [
    "REGISTER_SCHEMA",
    "BatchDecision",
    "BatchResult",
    "Progress",
    "Register",
    "register_table",
]

REGISTER_SCHEMA = pa.schema(
    [
        ("resident_code", pa.string()),
        ("status", pa.string()),  # active | moved_out | deceased
        ("household_id", pa.string()),  # may be null
        ("name", pa.string()),  # full kanji name as registered
        ("name_kana", pa.string()),  # full kana name as registered
        ("birth_date", pa.date32()),
        ("sex", pa.int8()),
        ("address", pa.string()),
        ("name_key", pa.string()),
        ("kana_key", pa.string()),
        ("address_key", pa.string()),
        ("earlier_name_keys", pa.list_(pa.string())),
        ("earlier_kana_keys", pa.list_(pa.string())),
        ("earlier_address_keys", pa.list_(pa.string())),
    ]
)
"""One row per person J-LIS knows. Keys are :func:`mynumber.identity.keys_of` of the values."""

Resolver = Callable[[Sequence[str]], Mapping[str, tuple[str, str | None]]]
"""Claimed numbers (already valid: 12 digits, check digit) → (``active`` | ``retired`` |
``unknown``, owner's resident code or ``None``), as :meth:`JlisService.number_status` answers."""

Progress = Callable[[str, int], Callable[[int], None]]
"""``progress(stage_label, total)`` returns a function to call with the count just done."""


@dataclass(frozen=True)
class Register:
    people: pa.Table
    """:data:`REGISTER_SCHEMA`."""
    resolve: Resolver


def register_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """A :data:`REGISTER_SCHEMA` table from plain rows with keys ``resident_code``, ``status``,
    ``household_id``, ``name``, ``name_kana``, ``birth_date`` (``date`` or ISO text), ``sex``,
    ``address`` and optionally ``earlier_names``, ``earlier_kanas``, ``earlier_addresses`` (values
    as written; their keys are computed here)."""
    cols: dict[str, list[Any]] = {f.name: [] for f in REGISTER_SCHEMA}
    for r in rows:
        k = keys_of(r["name"], r["name_kana"], r["address"])
        bd = r["birth_date"]
        cols["resident_code"].append(r["resident_code"])
        cols["status"].append(r.get("status", "active"))
        cols["household_id"].append(r.get("household_id"))
        cols["name"].append(r["name"])
        cols["name_kana"].append(r["name_kana"])
        cols["birth_date"].append(bd if isinstance(bd, dt.date) else dt.date.fromisoformat(bd))
        cols["sex"].append(int(r["sex"]))
        cols["address"].append(r["address"])
        cols["name_key"].append(k.name)
        cols["kana_key"].append(k.name_kana)
        cols["address_key"].append(k.address)
        cols["earlier_name_keys"].append(
            [keys_of(v, "", "").name for v in r.get("earlier_names", ())]
        )
        cols["earlier_kana_keys"].append(
            [keys_of("", v, "").name_kana for v in r.get("earlier_kanas", ())]
        )
        cols["earlier_address_keys"].append(
            [keys_of("", "", v).address for v in r.get("earlier_addresses", ())]
        )
    return pa.table(cols, schema=REGISTER_SCHEMA)


@dataclass(frozen=True, slots=True)
class BatchDecision:
    record_id: str
    decision: str
    """``linked`` | ``review`` | ``unmatched`` | ``rejected``."""
    resident_code: str | None
    """Linked to (``linked``), or the best candidate (``review``)."""
    reasons: tuple[str, ...]
    """Codes of :data:`mynumber.agency.linkage.REASONS`."""
    method: str
    """``claimed_number`` | ``five_item_query`` | ``search`` (stage 2)."""
    stage: str
    """``deterministic`` | ``probabilistic``."""
    score: float | None = None
    """Splink's match probability for ``resident_code`` (stage 2 only)."""
    candidates: tuple[str, ...] = ()
    """Resident codes a reviewer is shown, best first (at most 3); the linked person for links."""
    items: Mapping[str, str] = field(default_factory=dict)
    """Provenance: item → ``match`` | ``match_normalised`` | ``earlier`` | ``mismatch``."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    decisions: list[BatchDecision]
    """One per record, in roll order."""
    stage_seconds: dict[str, float]
    """Wall time of each stage (``normalise``, ``deterministic``, ``probabilistic``, …)."""

"""Batch linkage of an agency roll on the platform: the register's evidence gathered from J-LIS
and the municipality (:func:`platform_register`), the two stages of
:func:`mynumber.agency.bulk.link_records`, and the results stored the way single enrolment
stores them — links with their provenance, the rest on the review queue with their reasons and
candidates — in one transaction.

One output row per record, in roll order (:data:`OUTPUT_COLUMNS`):

- ``decision``: ``linked`` | ``review`` | ``unmatched`` | ``rejected``;
- ``individual_number``: always masked to its last four digits (``********1234``), never whole:
  the number linked for ``linked``, otherwise the number the record claimed when it is
  well-formed, else empty. The output file goes back to the agency, which already holds the
  number it claimed; the link itself (with its provenance) is looked up with
  ``mynumber agency …`` / the agency API;
- ``reasons``: the decision's reason codes (:data:`mynumber.agency.linkage.REASONS`) joined with
  ``;``, plus ``pending`` (below);
- ``score``: ``1.0`` for a deterministic link; for a record the probabilistic stage saw, the
  model's match probability for the person linked or the best candidate; else empty.

A record whose member already waits on the agency's review queue is not linked again: it is
reported as ``review`` with the single reason ``pending`` (the roll goes on).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from mynumber.agency.bulk import (
    REGISTER_SCHEMA,
    BatchDecision,
    BatchResult,
    Progress,
    Register,
    link_records,
)
from mynumber.agency.linkage import POLICIES, provenance_notes
from mynumber.agency.roll import RollRecord
from mynumber.errors import ValidationError
from mynumber.identity import items_json
from mynumber.jtext import normalise_kana
from mynumber.numbers import mask, parse_individual

__all__ = [
    "OUTPUT_COLUMNS",
    "PENDING",
    "RollDecision",
    "link_roll",
    "platform_register",
]

OUTPUT_COLUMNS = ("record_id", "decision", "individual_number", "reasons", "score")
PENDING = "pending"
"""Reason of a record whose member already waits on the review queue."""


@dataclass(frozen=True, slots=True)
class RollDecision:
    record_id: str
    decision: str
    individual_number: str
    """Masked to the last four digits, or empty."""
    reasons: tuple[str, ...]
    score: str
    stage: str = ""
    """``deterministic`` | ``probabilistic`` | ``""`` (pending)."""

    def row(self) -> list[str]:
        """The output CSV row (:data:`OUTPUT_COLUMNS`)."""
        return [
            self.record_id,
            self.decision,
            self.individual_number,
            ";".join(self.reasons),
            self.score,
        ]


def platform_register(p: Any, progress: Progress | None = None) -> Register:
    """The evidence of batch linkage from the platform's roles: J-LIS's identity mirror (no
    numbers), the municipality's households, and J-LIS's answer for claimed numbers."""
    households: dict[str, str] = p.municipality.household_keys()
    total = int(p.jlis.counts().get("identities", 0))
    advance = progress("register", total) if progress is not None else None
    batches: list[pa.RecordBatch] = []
    names = REGISTER_SCHEMA.names
    for rows in p.jlis.identity_batches():
        for r in rows:
            r["household_id"] = households.get(r["resident_code"])
            r["family_kana_key"] = _family_key(r.pop("family_name_kana"))
        cols = {n: [r[n] for r in rows] for n in names}
        batches.append(pa.RecordBatch.from_pydict(cols, schema=REGISTER_SCHEMA))
        if advance is not None:
            advance(len(rows))
    people = pa.Table.from_batches(batches, schema=REGISTER_SCHEMA)
    return Register(people, p.jlis.number_statuses)


def _family_key(family_kana: str) -> str | None:
    return normalise_kana(family_kana) or None


def _valid_claim(claimed: str | None) -> str | None:
    """The claimed number when it is well-formed, else None."""
    if claimed is None:
        return None
    try:
        return parse_individual(claimed)
    except ValidationError:
        return None


def _masked_claim(claimed: str | None) -> str:
    valid = _valid_claim(claimed)
    return "" if valid is None else mask(valid)


def _score(d: BatchDecision) -> str:
    if d.score is None:
        return ""
    return "1.0" if d.stage == "deterministic" else f"{d.score:.4f}"


def link_roll(
    p: Any,
    agency_id: str,
    records: Sequence[RollRecord],
    *,
    operator: str,
    policy: str = "strict",
    progress: Progress | None = None,
) -> tuple[list[RollDecision], BatchResult]:
    """Link a checked roll (:func:`mynumber.agency.roll.read_roll`) and store the results;
    the output rows in roll order and the computation's result (decisions, stage times)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown linkage policy {policy!r}; expected one of {POLICIES}")
    pending = p.agencies.pending_members(agency_id)
    todo = [r for r in records if r.record_id not in pending]
    register = platform_register(p, progress)
    result = link_records(register, todo, policy=policy, progress=progress)
    wanted = {
        rc
        for d in result.decisions
        for rc in (d.candidates if d.decision != "linked" else (d.resident_code,))
        if rc is not None
    }
    numbers: dict[str, str] = p.jlis.active_numbers(sorted(wanted))
    links: list[dict[str, Any]] = []
    reviews: list[dict[str, Any]] = []
    by_id: dict[str, RollDecision] = {}
    for record, d in zip(todo, result.decisions, strict=True):
        linked = numbers.get(d.resident_code or "") if d.decision == "linked" else None
        if linked is not None:
            links.append(
                {
                    "internal_id": record.record_id,
                    "number": linked,
                    "method": d.method,
                    "policy": policy,
                    "items": d.items,
                    "notes": provenance_notes(d.reasons),
                    "operator": operator,
                }
            )
            by_id[record.record_id] = RollDecision(
                record.record_id, "linked", mask(linked), d.reasons, _score(d), d.stage
            )
            continue
        # As single enrolment: whatever is not linked waits for a reviewer.
        reviews.append(
            {
                "internal_id": record.record_id,
                "record": items_json(record.items),
                "reasons": d.reasons,
                "claimed": _valid_claim(record.claimed),
                "candidates": [numbers[rc] for rc in d.candidates if rc in numbers],
                "score": d.score,
            }
        )
        decision = "review" if d.decision == "linked" else d.decision
        by_id[record.record_id] = RollDecision(
            record.record_id,
            decision,
            _masked_claim(record.claimed),
            d.reasons,
            _score(d),
            d.stage,
        )
    p.agencies.store_batch(agency_id, links, reviews)
    out = [
        by_id.get(r.record_id)
        or RollDecision(r.record_id, "review", _masked_claim(r.claimed), (PENDING,), "")
        for r in records
    ]
    return out, result

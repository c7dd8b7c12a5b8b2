"""Batch linkage of an agency roll, stage 1 (deterministic): every record goes through
:func:`mynumber.agency.enrolment.enrol` — the same evidence from J-LIS and the municipality, the
same decision core, links and review items stored exactly as a single enrolment stores them.
The probabilistic stage (Splink) is not built yet.

One output row per record, in roll order (:data:`OUTPUT_COLUMNS`):

- ``decision``: ``linked`` | ``review`` | ``unmatched`` | ``rejected``;
- ``individual_number``: always masked to its last four digits (``********1234``), never whole:
  the number linked for ``linked``, otherwise the number the record claimed when it is
  well-formed, else empty. The output file goes back to the agency, which already holds the
  number it claimed; the link itself (with its provenance) is looked up with
  ``mynumber agency …`` / the agency API;
- ``reasons``: the decision's reason codes (:data:`mynumber.agency.linkage.REASONS`) joined with
  ``;``, plus ``pending`` (below);
- ``score``: ``1.0`` for ``linked`` and empty otherwise — stage 1 has no probabilities; the
  probabilistic stage will fill it.

A record whose member already waits on the agency's review queue is not enrolled again: it is
reported as ``review`` with the single reason ``pending`` (the roll goes on).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mynumber.agency.enrolment import enrol
from mynumber.agency.linkage import POLICIES
from mynumber.agency.roll import RollRecord
from mynumber.errors import ConflictError, ValidationError
from mynumber.numbers import mask, parse_individual

__all__ = ["OUTPUT_COLUMNS", "PENDING", "RollDecision", "link_one", "link_roll"]

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

    def row(self) -> list[str]:
        """The output CSV row (:data:`OUTPUT_COLUMNS`)."""
        return [
            self.record_id,
            self.decision,
            self.individual_number,
            ";".join(self.reasons),
            self.score,
        ]


def _masked_claim(claimed: str | None) -> str:
    if claimed is None:
        return ""
    try:
        return mask(parse_individual(claimed))
    except ValidationError:
        return ""


def _pending(record: RollRecord) -> RollDecision:
    return RollDecision(record.record_id, "review", _masked_claim(record.claimed), (PENDING,), "")


def link_one(
    p: Any, agency_id: str, record: RollRecord, *, operator: str, policy: str
) -> RollDecision:
    """One record of a roll: enrolled as a single member would be (see the module docstring)."""
    try:
        result = enrol(
            p,
            agency_id,
            record.record_id,
            record.items,
            record.claimed,
            operator=operator,
            policy=policy,
        )
    except ConflictError as e:
        if e.code != "agency.member_pending":
            raise
        return _pending(record)
    decision = result.decision
    if decision.decision == "linked" and result.notice is not None:
        return RollDecision(
            record.record_id, "linked", result.notice["number"], decision.reasons, "1.0"
        )
    return RollDecision(
        record.record_id,
        decision.decision,
        _masked_claim(record.claimed),
        decision.reasons,
        "",
    )


def link_roll(
    p: Any,
    agency_id: str,
    records: Iterable[RollRecord],
    *,
    operator: str,
    policy: str = "strict",
    progress: Callable[[int], None] | None = None,
) -> list[RollDecision]:
    """Stage 1 over a checked roll (:func:`mynumber.agency.roll.read_roll`), in roll order;
    `progress` is called with 1 after each record."""
    if policy not in POLICIES:
        raise ValueError(f"unknown linkage policy {policy!r}; expected one of {POLICIES}")
    out: list[RollDecision] = []
    for record in records:
        out.append(link_one(p, agency_id, record, operator=operator, policy=policy))
        if progress is not None:
            progress(1)
    return out

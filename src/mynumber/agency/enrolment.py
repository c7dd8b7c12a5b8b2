"""Single enrolment (I3): an agency adds a member, with or without a claimed number; J-LIS's
evidence is gathered, :mod:`mynumber.agency.linkage` decides, and the agency stores a link with
its provenance or puts the record on its review queue. The member is sent a notice showing the
last four digits of the number linked.

The orchestration spans roles through their service interfaces only: J-LIS (the number's status
and owner, the mirror's identities, the five-item matches, active numbers), the municipality (the
owner's household), and the agency's own storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mynumber.agency.linkage import (
    Candidate,
    Decision,
    decide_claim,
    decide_query,
    how_matched,
    provenance_notes,
)
from mynumber.errors import ValidationError
from mynumber.identity import FiveItems, compare, items_from_json, items_json
from mynumber.numbers import mask, parse_individual

__all__ = ["EnrolmentResult", "decide", "enrol", "review_view"]


@dataclass(frozen=True, slots=True)
class EnrolmentResult:
    decision: Decision
    review_id: int | None
    notice: dict[str, str] | None
    """For a link: what the member is told (the number masked to its last four digits)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision.decision,
            "reasons": list(self.decision.reasons),
            "method": self.decision.method,
            "items": {r.item: how_matched(r) for r in self.decision.matched},
            "review_id": self.review_id,
            "notice": self.notice,
        }


def _candidates(p: Any, codes: list[str]) -> list[Candidate]:
    found = p.jlis.registered(codes)
    out = []
    for rc in codes:
        if rc in found:
            identity, status = found[rc]
            household, _others = p.municipality.household_of(rc)
            out.append(Candidate(rc, identity, status, household))
    return out


def enrol(
    p: Any,
    agency_id: str,
    internal_id: str,
    record: FiveItems,
    claimed: str | None,
    *,
    operator: str,
    policy: str = "strict",
) -> EnrolmentResult:
    """Verify and link (or queue) one agency record; see the module docstring. A record already
    waiting on the review queue is refused (``agency.member_pending``): decide it first."""
    p.agencies.require_not_pending(agency_id, internal_id)
    number: str | None = None
    if claimed is None:
        matches = _candidates(p, p.jlis.five_item_matches(record))
        decision = decide_query(record, matches)
    else:
        try:
            number = parse_individual(claimed, "individual_number")
        except ValidationError:
            number = None
        if number is None:
            decision = decide_claim(record, claimed, None, "unknown", [], policy)
        else:
            status, owner_rc = p.jlis.number_status(number)
            owner = _candidates(p, [owner_rc])[0] if owner_rc else None
            household: list[Candidate] = []
            if owner_rc:
                _hid, others = p.municipality.household_of(owner_rc)
                household = _candidates(p, others)
            decision = decide_claim(record, number, owner, status, household, policy)
    target = decision.resident_code
    linked_number = None
    if target is not None:
        linked_number = p.jlis.active_numbers([target]).get(target)
    items = {r.item: how_matched(r) for r in decision.matched}
    if decision.decision == "linked" and linked_number is not None:
        notes = provenance_notes(decision.reasons)
        p.agencies.store_link(
            agency_id,
            internal_id,
            linked_number,
            method=decision.method,
            policy=policy,
            items=items,
            notes=notes,
            operator=operator,
        )
        shown = mask(linked_number)
        return EnrolmentResult(
            decision,
            None,
            {
                "ja": f"あなたの記録を個人番号（下4桁 {shown[-4:]}）に紐付けました。",
                "en": f"Your record was linked to the individual number ending {shown[-4:]}.",
                "number": shown,
            },
        )
    review_id = p.agencies.queue_review(
        agency_id,
        internal_id,
        items_json(record),
        decision.reasons,
        number if number is not None else None,
        linked_number,
    )
    return EnrolmentResult(decision, review_id, None)


def review_view(p: Any, agency_id: str, review_id: int) -> dict[str, Any]:
    """A review item side by side with the people the evidence names: the agency's record, and
    for each candidate (best first) the registered identity and how each item compares
    (``differs`` marks what to look at). ``registered`` / ``comparison`` are the best's."""
    item: dict[str, Any] = p.agencies.review(agency_id, review_id)
    record = items_from_json(item["record"])
    sides: list[dict[str, Any]] = []
    for number in p.agencies.review_candidates(agency_id, review_id):
        _status, rc = p.jlis.number_status(number)
        found = p.jlis.registered([rc]) if rc else {}
        side: dict[str, Any] = {"number": mask(number), "registered": None, "comparison": None}
        if rc in found:  # a side per candidate, so that `candidate` N is the Nth shown
            identity, status = found[rc]
            cur = identity.current
            side["registered"] = {
                "name": cur.name,
                "name_kana": cur.name_kana,
                "birth_date": cur.birth_date.isoformat(),
                "sex": cur.sex,
                "address": cur.address,
                "status": status,
            }
            side["comparison"] = {
                r.item: {"result": how_matched(r), "differs": r.result == "mismatch"}
                for r in compare(record, identity).items
            }
        sides.append(side)
    item["candidates_view"] = sides
    item["registered"] = sides[0]["registered"] if sides else None
    item["comparison"] = sides[0]["comparison"] if sides else None
    return item


def decide(
    p: Any,
    agency_id: str,
    review_id: int,
    *,
    link: bool,
    operator: str,
    justification: str,
    candidate: int = 1,
) -> dict[str, Any]:
    """Record a reviewer's decision (a link to `candidate`, 1 = the best); a link keeps how
    each item compared with that person as its provenance."""
    view = review_view(p, agency_id, review_id)
    sides = view["candidates_view"]
    chosen = sides[candidate - 1]["comparison"] if 1 <= candidate <= len(sides) else None
    items = {k: v["result"] for k, v in (chosen or {}).items()}
    decided: dict[str, Any] = p.agencies.decide_review(
        agency_id,
        review_id,
        link=link,
        operator=operator,
        justification=justification,
        items=items,
        candidate=candidate,
    )
    return decided

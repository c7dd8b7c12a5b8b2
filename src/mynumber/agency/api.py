"""HTTP routes of the agency role under ``/api/agency`` (I3): enrol a member with five-item
verification, read the link, and work the review queue. Thin: decode, call, encode. Every route
needs a staff token with the scope ``agency:link`` bound to the agency of the path (or the
platform-wide ``agency:admin``): an insurer's clerk sees and decides only their own agency's
records and queue, and a token of another agency is refused (403 ``auth.wrong_agency``) before
anything is read or written. Individual numbers go out masked, only.

- ``POST /{agency_id}/members`` — enrol one member (``Idempotency-Key`` required). A retry with
  the same key runs the enrolment again: a link replaces the same link, and a member whose
  record is already on the review queue is refused (409 ``agency.member_pending``) rather than
  queued twice.
- ``GET /{agency_id}/members/{internal_id}/link`` — the link with its provenance.
- ``GET /{agency_id}/reviews`` — the open review items, oldest first.
- ``GET /{agency_id}/reviews/{review_id}`` — one item side by side with the registered person.
- ``POST /{agency_id}/reviews/{review_id}/decision`` — link or reject, once
  (``Idempotency-Key`` required; a retry of a decision made is answered 409 ``review.decided``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from mynumber.agency.enrolment import decide, enrol, review_view
from mynumber.agency.linkage import MAX_CANDIDATES
from mynumber.api.auth import AGENCY_ID
from mynumber.api.deps import PLAIN_TEXT, IdempotencyKey, PlatformDep, require_agency
from mynumber.api.problems import PROBLEM_RESPONSES
from mynumber.errors import NotFoundError, ValidationError
from mynumber.jlis.api import FiveItemsIn

__all__ = ["router"]

router = APIRouter(
    prefix="/api/agency",
    tags=["agency"],
    responses=PROBLEM_RESPONSES,
    # Router dependencies run before the route's own parameters, body and key are looked at.
    dependencies=[Depends(require_agency)],
)

INTERNAL_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,31}$"

AgencyId = Annotated[str, Path(pattern=AGENCY_ID, description="the agency's id")]
InternalId = Annotated[
    str, Path(pattern=INTERNAL_ID, description="the member's id in the agency's own records")
]
ReviewId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Operator = Annotated[
    str, Field(min_length=1, max_length=200, pattern=PLAIN_TEXT, description="who acts")
]


def _required(value: str, field: str) -> str:
    if not value.strip():
        raise ValidationError(
            "field.required", f"{field} is required.", f"{field} は必須です。", field=field
        )
    return value


def _utf8(body: BaseModel) -> None:
    """Refuse text that cannot be stored (lone surrogates sent as JSON escapes)."""
    for field, value in body.model_dump().items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValidationError(
                    "request.invalid",
                    f"{field} is not valid Unicode text.",
                    f"{field} は正しいUnicode文字列ではありません。",
                    field=field,
                ) from None


class EnrolIn(FiveItemsIn):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "internal_id": "H0000000001",
                    "name": "山田 太郎",
                    "name_kana": "ヤマダ タロウ",
                    "birth_date": "1980-01-02",
                    "sex": "1",
                    "address": "東京都新宿区新宿三丁目1番1号",
                    "individual_number": "1234 5678 9018",
                    "policy": "strict",
                    "operator": "clerk-1",
                }
            ]
        },
    )

    internal_id: str = Field(pattern=INTERNAL_ID, description="the member's id at the agency")
    individual_number: str | None = Field(
        default=None,
        max_length=40,
        pattern=PLAIN_TEXT,
        description="the number the member gave, if any (without one: a five-item query)",
    )
    policy: Literal["strict", "assisted"] = Field(
        default="strict", description="strict: five items; assisted: a one-item slip links"
    )
    operator: Operator


class EnrolOut(BaseModel):
    decision: str = Field(description="linked | review | unmatched | rejected")
    reasons: list[str] = Field(description="reason codes (docs/reason-codes.md, linkage)")
    method: str = Field(description="claimed_number | five_item_query")
    items: dict[str, str] = Field(description="item → match | match_normalised | earlier | …")
    review_id: int | None = Field(description="the review item, when not linked")
    notice: dict[str, str] | None = Field(
        description="what the member is told of a link (ja, en, number masked)"
    )


class LinkOut(BaseModel):
    internal_id: str
    individual_number: str = Field(description="masked to its last four digits")
    method: str
    policy: str
    items: dict[str, str]
    notes: list[str]
    operator: str
    linked_at: str


class ReviewSummary(BaseModel):
    review_id: int
    internal_id: str
    record: dict[str, Any] = Field(description="the five items as the agency holds them")
    reasons: list[str]
    claimed_number: str | None = Field(description="masked")
    candidate_number: str | None = Field(description="masked: whom the evidence names")
    candidates: list[str] = Field(
        default_factory=list, description="masked: every candidate shown, best first"
    )
    score: float | None = Field(
        default=None, description="batch search: the model's match probability for the best"
    )
    created_at: str


class ReviewOut(ReviewSummary):
    state: str = Field(description="open | linked | rejected")
    decided_by: str | None
    justification: str | None
    decided_at: str | None


class ComparisonOut(BaseModel):
    result: str
    differs: bool


class CandidateView(BaseModel):
    number: str = Field(description="masked")
    registered: dict[str, Any] | None = Field(description="None: J-LIS no longer knows them")
    comparison: dict[str, ComparisonOut] | None


class ReviewViewOut(ReviewOut):
    registered: dict[str, Any] | None = Field(
        description="the registered person the evidence names, current items"
    )
    comparison: dict[str, ComparisonOut] | None = Field(
        description="item → how the record compares; differs marks what to look at"
    )
    candidates_view: list[CandidateView] = Field(
        default_factory=list, description="each candidate side by side, best first"
    )


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["link", "reject"]
    operator: Operator
    justification: str = Field(min_length=1, max_length=2000, pattern=PLAIN_TEXT)
    candidate: int = Field(
        default=1, ge=1, le=MAX_CANDIDATES, description="which candidate to link (1 = the best)"
    )


@router.post(
    "/{agency_id}/members",
    response_model=EnrolOut,
    summary="Enrol a member: verify five items (and a claimed number), then link or queue",
)
def enrol_member(agency_id: AgencyId, body: EnrolIn, p: PlatformDep, _key: IdempotencyKey) -> Any:
    _utf8(body)
    record = body.items()
    operator = _required(body.operator, "operator")
    claimed = body.individual_number
    if claimed is not None and not claimed.strip():
        claimed = None
    result = enrol(
        p, agency_id, body.internal_id, record, claimed, operator=operator, policy=body.policy
    )
    return result.to_json()


@router.get(
    "/{agency_id}/members/{internal_id}/link",
    response_model=LinkOut,
    summary="A member's link with its provenance (number masked)",
)
def member_link(agency_id: AgencyId, internal_id: InternalId, p: PlatformDep) -> Any:
    link = p.agencies.link_of(agency_id, internal_id)
    if link is None:
        raise NotFoundError(
            "agency.no_link",
            "This member's record is not linked to an individual number.",
            "この記録は個人番号に紐付けられていません。",
            field="internal_id",
        )
    return link


@router.get(
    "/{agency_id}/reviews",
    response_model=list[ReviewSummary],
    summary="The agency's open review items, oldest first",
)
def reviews(
    agency_id: AgencyId,
    p: PlatformDep,
    response: Response,
    after: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="only items with a review id above this")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many items")] = 100,
) -> Any:
    """A page of the queue: pass the last item's `review_id` as `after` for the next one;
    `X-Total-Count` says how many are open."""
    response.headers["X-Total-Count"] = str(p.agencies.count_open_reviews(agency_id))
    return p.agencies.open_reviews(agency_id, after=after, limit=limit)


@router.get(
    "/{agency_id}/reviews/{review_id}",
    response_model=ReviewViewOut,
    summary="A review item side by side with the registered person",
)
def review(agency_id: AgencyId, review_id: ReviewId, p: PlatformDep) -> Any:
    return review_view(p, agency_id, review_id)


@router.post(
    "/{agency_id}/reviews/{review_id}/decision",
    response_model=ReviewOut,
    summary="Decide a review item: link to the person the evidence names, or reject (once)",
)
def decision(
    agency_id: AgencyId,
    review_id: ReviewId,
    body: DecisionIn,
    p: PlatformDep,
    _key: IdempotencyKey,
) -> Any:
    _utf8(body)
    return decide(
        p,
        agency_id,
        review_id,
        link=body.decision == "link",
        operator=body.operator,
        justification=body.justification,
        candidate=body.candidate,
    )

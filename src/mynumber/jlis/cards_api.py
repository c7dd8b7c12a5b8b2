"""HTTP routes of J-LIS's card management system under /api/jlis/cards.

Municipal counter staff (scope ``card:counter``) take applications, hand cards over, lift
suspensions, reissue, renew, update the face and reset PINs; the 24-hour loss line (scope
``card:suspend``) suspends. Every POST needs an ``Idempotency-Key``. PINs are accepted only at
the handover and a PIN reset — the holder types them at the counter terminal — and never
appear in a response, an error, a log or the stored request digest.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from mynumber.api.auth import Staff
from mynumber.api.deps import PLAIN_TEXT, IdempotencyKey, PlatformDep, require
from mynumber.api.problems import PROBLEM_RESPONSES
from mynumber.dates import parse_date
from mynumber.jlis.card_lifecycle import IDENTITY_DOCUMENTS, CardState
from mynumber.jlis.cards import Card, Outcome
from mynumber.numbers import parse_resident_code

__all__ = ["router"]

router = APIRouter(prefix="/api/jlis/cards", tags=["jlis: cards"], responses=PROBLEM_RESPONSES)

Counter = Annotated[Staff, Depends(require("card:counter"))]
Suspender = Annotated[Staff, Depends(require("card:suspend"))]
CardId = Annotated[str, Path(max_length=32, description="16 hexadecimal digits")]
Document = Annotated[str, Field(max_length=64, pattern=PLAIN_TEXT)]
Documents = Annotated[
    list[Document],
    Field(
        max_length=8,
        description="One photo document, or two others: "
        + ", ".join(f"`{k}` ({v[0]})" for k, v in IDENTITY_DOCUMENTS.items()),
    ),
]
Pin = Annotated[SecretStr, Field(max_length=16, description="typed by the holder; never echoed")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplyIn(_In):
    resident_code: Annotated[str, Field(max_length=20, pattern=PLAIN_TEXT)]
    channel: Literal["online", "paper", "counter"]
    application_id: Annotated[str | None, Field(max_length=23, pattern=PLAIN_TEXT)] = Field(
        default=None, description="申請書ID, 23 digits (needed online)"
    )
    period_of_stay_end: Annotated[str | None, Field(max_length=40, pattern=PLAIN_TEXT)] = Field(
        default=None, description="foreign residents with a fixed period of stay (ISO or 和暦)"
    )


class HandOverIn(_In):
    identity_documents: Documents
    auth_pin: Pin
    signature_pin: Pin


class DocumentsIn(_In):
    identity_documents: Documents


class ReissueIn(_In):
    reason: Literal["loss", "theft", "damage", "chip_fault"]
    identity_documents: Documents


class ReturnIn(_In):
    reason: Literal["death", "emigration", "holder_request"]


class RenewIn(_In):
    channel: Literal["online", "paper", "counter"] = "counter"
    application_id: Annotated[str | None, Field(max_length=23, pattern=PLAIN_TEXT)] = None


class CancelIn(_In):
    reason: Literal["withdrawn", "not_collected", "death", "emigration"] = "withdrawn"


class PinUnlockIn(_In):
    kind: Literal["signature", "authentication"]
    new_pin: Pin
    identity_documents: Documents


class FaceOut(BaseModel):
    name: str
    address: str
    birth_date: str
    sex: int
    expiry_date: str


class CardOut(BaseModel):
    card_id: str
    resident_code: str
    application_id: str | None
    channel: str
    state: str = Field(description=" | ".join(s.value for s in CardState))
    period_of_stay_end: str | None
    issued_on: str | None
    expires_on: str | None
    chip_id: str | None
    is_smartphone: bool
    face: FaceOut | None
    fee_yen: int
    replaces: str | None
    superseded_by: str | None
    reason: str | None


class EventOut(BaseModel):
    seq: int
    kind: str
    from_state: str | None
    to_state: str
    detail: dict[str, Any]
    operator: str
    at: str


def _answer(response: Response, outcome: Outcome) -> dict[str, Any]:
    response.status_code = outcome.status
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return outcome.card.to_json()


def _out(card: Card) -> dict[str, Any]:
    return card.to_json()


_REPLAY = {
    "headers": {
        "Idempotent-Replayed": {
            "description": "true when this is the first answer to the same key, replayed",
            "schema": {"type": "string"},
        }
    }
}


@router.post(
    "",
    response_model=CardOut,
    status_code=201,
    responses={201: _REPLAY},
    summary="Accept an application for a first card (交付申請)",
)
def apply(
    body: ApplyIn, p: PlatformDep, staff: Counter, response: Response, key: IdempotencyKey
) -> Any:
    stay: dt.date | None = None
    if body.period_of_stay_end:
        stay = parse_date(body.period_of_stay_end, field="period_of_stay_end")
    outcome = p.cards.apply(
        parse_resident_code(body.resident_code, field="resident_code"),
        channel=body.channel,
        application_id=body.application_id,
        period_of_stay_end=stay,
        operator=staff.name,
        idempotency_key=key,
    )
    return _answer(response, outcome)


@router.get("", response_model=list[CardOut], summary="Cards, by state or by person")
def list_cards(
    p: PlatformDep,
    _staff: Counter,
    state: Annotated[CardState | None, Query()] = None,
    resident_code: Annotated[str | None, Query(max_length=20, pattern=PLAIN_TEXT)] = None,
    after: Annotated[str | None, Query(max_length=32, pattern=PLAIN_TEXT)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    if resident_code is not None:
        rc = parse_resident_code(resident_code, field="resident_code")
        return [_out(c) for c in p.cards.cards_of(rc) if state is None or c.state is state]
    return [_out(c) for c in p.cards.list_cards(state, after=after, limit=limit)]


@router.get("/{card_id}", response_model=CardOut, summary="One card")
def get_card(card_id: CardId, p: PlatformDep, _staff: Counter) -> Any:
    return _out(p.cards.get(card_id))


@router.get("/{card_id}/events", response_model=list[EventOut], summary="A card's events")
def card_events(card_id: CardId, p: PlatformDep, _staff: Counter) -> Any:
    return p.cards.events(card_id)


@router.post(
    "/{card_id}/production",
    response_model=CardOut,
    responses={200: _REPLAY},
    summary="The card is manufactured and sent to the municipality",
)
def produce(
    card_id: CardId, p: PlatformDep, staff: Counter, response: Response, key: IdempotencyKey
) -> Any:
    return _answer(response, p.cards.produce(card_id, operator=staff.name, idempotency_key=key))


@router.post(
    "/{card_id}/handover",
    response_model=CardOut,
    responses={200: _REPLAY},
    summary="Hand the card over after the identity check; the holder sets both PINs (交付)",
)
def hand_over(
    card_id: CardId,
    body: HandOverIn,
    p: PlatformDep,
    staff: Counter,
    response: Response,
    key: IdempotencyKey,
) -> Any:
    outcome = p.cards.hand_over(
        card_id,
        body.identity_documents,
        body.auth_pin.get_secret_value(),
        body.signature_pin.get_secret_value(),
        operator=staff.name,
        idempotency_key=key,
    )
    return _answer(response, outcome)


@router.post(
    "/{card_id}/suspension",
    response_model=CardOut,
    responses={200: _REPLAY},
    summary="24-hour loss line: suspend the card and hold its certificates (一時停止)",
)
def suspend(
    card_id: CardId, p: PlatformDep, staff: Suspender, response: Response, key: IdempotencyKey
) -> Any:
    outcome = p.cards.report_loss(card_id, operator=staff.name, idempotency_key=key)
    return _answer(response, outcome)


@router.post(
    "/{card_id}/lift",
    response_model=CardOut,
    responses={200: _REPLAY},
    summary="Lift a suspension at the counter after an identity check",
)
def lift(
    card_id: CardId,
    body: DocumentsIn,
    p: PlatformDep,
    staff: Counter,
    response: Response,
    key: IdempotencyKey,
) -> Any:
    outcome = p.cards.lift_suspension(
        card_id, body.identity_documents, operator=staff.name, idempotency_key=key
    )
    return _answer(response, outcome)


@router.post(
    "/{card_id}/reissue",
    response_model=CardOut,
    status_code=201,
    responses={201: _REPLAY},
    summary="Reissue (再交付): the old card ends, a new card is applied for, with the fee",
)
def reissue(
    card_id: CardId,
    body: ReissueIn,
    p: PlatformDep,
    staff: Counter,
    response: Response,
    key: IdempotencyKey,
) -> Any:
    outcome = p.cards.reissue(
        card_id, body.reason, body.identity_documents, operator=staff.name, idempotency_key=key
    )
    return _answer(response, outcome)


@router.post(
    "/{card_id}/return",
    response_model=CardOut,
    responses={200: _REPLAY},
    summary="Return the card (返納): death, emigration or the holder's request",
)
def return_card(
    card_id: CardId,
    body: ReturnIn,
    p: PlatformDep,
    staff: Counter,
    response: Response,
    key: IdempotencyKey,
) -> Any:
    outcome = p.cards.return_card(card_id, body.reason, operator=staff.name, idempotency_key=key)
    return _answer(response, outcome)


@router.post(
    "/{card_id}/renewal",
    response_model=CardOut,
    status_code=201,
    responses={201: _REPLAY},
    summary="Apply for a renewal card (更新), from three months before expiry",
)
def renew(
    card_id: CardId,
    body: RenewIn,
    p: PlatformDep,
    staff: Counter,
    response: Response,
    key: IdempotencyKey,
) -> Any:
    outcome = p.cards.renew(
        card_id,
        operator=staff.name,
        channel=body.channel,
        application_id=body.application_id,
        idempotency_key=key,
    )
    return _answer(response, outcome)


@router.post(
    "/{card_id}/cancellation",
    response_model=CardOut,
    responses={200: _REPLAY},
    summary="Cancel a card not yet handed over",
)
def cancel(
    card_id: CardId,
    body: CancelIn,
    p: PlatformDep,
    staff: Counter,
    response: Response,
    key: IdempotencyKey,
) -> Any:
    outcome = p.cards.cancel(card_id, operator=staff.name, reason=body.reason, idempotency_key=key)
    return _answer(response, outcome)


@router.post(
    "/{card_id}/face-update",
    response_model=CardOut,
    responses={200: _REPLAY},
    summary="追記: the registered name and address onto the face; a new signature certificate",
)
def update_face(
    card_id: CardId,
    body: DocumentsIn,
    p: PlatformDep,
    staff: Counter,
    response: Response,
    key: IdempotencyKey,
) -> Any:
    outcome = p.cards.update_face(
        card_id, body.identity_documents, operator=staff.name, idempotency_key=key
    )
    return _answer(response, outcome)


@router.post(
    "/{card_id}/pin-unlock",
    response_model=CardOut,
    responses={200: _REPLAY},
    summary="Reset a locked or forgotten PIN after an identity check",
)
def unlock_pin(
    card_id: CardId,
    body: PinUnlockIn,
    p: PlatformDep,
    staff: Counter,
    response: Response,
    key: IdempotencyKey,
) -> Any:
    outcome = p.cards.unlock_pin(
        card_id,
        body.kind,
        body.new_pin.get_secret_value(),
        body.identity_documents,
        operator=staff.name,
        idempotency_key=key,
    )
    return _answer(response, outcome)

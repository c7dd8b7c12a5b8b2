"""HTTP routes of J-LIS's kiosk centre under /api/kiosk (scope ``kiosk:issue``): open a session
when a card is inserted, order a document with the card's signature, report the print."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from mynumber.api.auth import Staff
from mynumber.api.deps import BASE64, PLAIN_TEXT, PlatformDep, decode_base64, require
from mynumber.api.problems import PROBLEM_RESPONSES
from mynumber.documents.content import DOCUMENT_ID, DocumentKind
from mynumber.errors import ForbiddenError
from mynumber.kiosk.protocol import KIOSK_ID, KioskOrder

__all__ = ["router"]

router = APIRouter(prefix="/api/kiosk", tags=["kiosk"], responses=PROBLEM_RESPONSES)

KioskStaff = Annotated[Staff, Depends(require("kiosk:issue"))]
KioskId = Annotated[str, Field(max_length=32, pattern=f"^{KIOSK_ID.pattern}$")]
SessionId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]{8,64}$")]
Base64 = Annotated[str, Field(min_length=1, max_length=12000, pattern=BASE64)]


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kiosk_id: KioskId


class SessionOut(BaseModel):
    session_id: str
    nonce: str = Field(description="32 random bytes, base64: the card signs a statement naming it")
    expires_at: dt.datetime


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: DocumentKind
    household: bool = False
    members: list[Annotated[str, Field(max_length=20, pattern=PLAIN_TEXT)]] = Field(
        default_factory=list, max_length=50
    )
    relationship: bool = False
    individual_number: bool = False
    domicile: bool = False

    def order(self) -> KioskOrder:
        return KioskOrder(
            kind=self.kind,
            household=self.household,
            members=tuple(dict.fromkeys(self.members)),
            relationship=self.relationship,
            individual_number=self.individual_number,
            domicile=self.domicile,
        )


class RequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kiosk_id: KioskId
    order: OrderIn
    certificate: Base64 = Field(description="the card's user-authentication certificate (DER)")
    signature: Base64 = Field(description="the card's signature over the statement's SHA-256")


class ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kiosk_id: KioskId
    document_id: Annotated[str, Field(max_length=26, pattern=f"^{DOCUMENT_ID.pattern}$")]
    printed: bool = Field(description="true: printed (the fee is due); false: not printed")


class ReportOut(BaseModel):
    document_id: str
    outcome: str = Field(description="printed | aborted")
    fee: int


def _speaks_for(staff: Staff, kiosk_id: str) -> None:
    """A kiosk token speaks for its operator's kiosks only (:meth:`Staff.acts_for_kiosk`):
    another shop's id is refused before anything is read or written."""
    if not staff.acts_for_kiosk(kiosk_id):
        raise ForbiddenError(
            "kiosk.not_yours",
            "This token speaks for another kiosk operator's kiosks; nothing was done.",
            "このトークンは別の事業者の端末用です。処理は行っていません。",
            field="kiosk_id",
        )


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionOut,
    summary="A card was inserted: a new single-use session with a fresh nonce",
)
def open_session(body: SessionIn, p: PlatformDep, staff: KioskStaff) -> dict[str, Any]:
    _speaks_for(staff, body.kiosk_id)
    s = p.kiosk.open_session(body.kiosk_id)
    return {
        "session_id": s.session_id,
        "nonce": base64.b64encode(s.nonce).decode("ascii"),
        "expires_at": s.expires_at,
    }


@router.post(
    "/sessions/{session_id}/document",
    status_code=201,
    response_class=Response,
    responses={
        201: {
            "description": "The signed PDF (check it before printing); a retry of the same "
            "order returns the same document",
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    summary="Order the document the card signed for; J-LIS routes it to the municipality",
)
def order_document(
    session_id: SessionId, body: RequestIn, p: PlatformDep, staff: KioskStaff
) -> Response:
    _speaks_for(staff, body.kiosk_id)
    issued = p.kiosk.request(
        session_id,
        body.kiosk_id,
        body.order.order(),
        decode_base64(body.certificate, "certificate", 8192),
        decode_base64(body.signature, "signature", 1024),
    )
    headers = {"X-Document-Id": issued.document_id, "X-Fee": str(issued.fee)}
    if issued.replay:
        headers["Idempotent-Replayed"] = "true"
    return Response(issued.pdf, status_code=201, media_type="application/pdf", headers=headers)


@router.post(
    "/sessions/{session_id}/report",
    response_model=ReportOut,
    summary="Printed or not: the fee is recorded once, for printed documents only",
)
def report(
    session_id: SessionId, body: ReportIn, p: PlatformDep, staff: KioskStaff
) -> dict[str, Any]:
    _speaks_for(staff, body.kiosk_id)
    return p.kiosk.report(session_id, body.kiosk_id, body.document_id, body.printed)

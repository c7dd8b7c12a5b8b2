"""HTTP routes of the portal role, under ``/api/portal``. Thin: decode, call the service, encode.

- ``POST /accounts/challenge`` — the logged-in person (bearer: the session of a card login,
  ``POST /api/login``) names an account; the answer is the statement their card is to sign.
- ``POST /accounts`` — the statement, the user-authentication certificate and the card's
  signature over it (plus the session and an ``Idempotency-Key``): registers the account if the
  card is this person's, for this statement, once (DESIGN I4).
- ``GET /me/account`` — the logged-in person's account and its history.
- ``GET /reviews``, ``POST /reviews/{review_id}/decision`` — municipal staff: accounts
  registered to several people (``municipality:read`` / ``municipality:write``).
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from mynumber.api.auth import Staff
from mynumber.api.deps import (
    BASE64,
    PLAIN_TEXT,
    IdempotencyKey,
    OptionalIdempotencyKey,
    PlatformDep,
    decode_base64,
    require,
)
from mynumber.api.problems import PROBLEM_RESPONSES
from mynumber.errors import AuthError
from mynumber.portal.authorisation import HOLDER_KANA_MAX, STATEMENT_MAX_BYTES

__all__ = ["router"]

router = APIRouter(prefix="/api/portal", tags=["portal"], responses=PROBLEM_RESPONSES)
_bearer = HTTPBearer(auto_error=False)

Base64 = Annotated[str, Field(min_length=1, max_length=12000, pattern=BASE64)]


def _session_token(creds: HTTPAuthorizationCredentials | None) -> str:
    if creds is None:
        raise AuthError(
            "login.session_invalid",
            "Log in with your card (POST /api/login) and send the session as a bearer token.",
            "カードでログイン（POST /api/login）し、セッションをBearerトークンとして送ってください。",
        )
    return creds.credentials


Session = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _answer(response: Response, result: tuple[int, dict[str, Any], bool]) -> dict[str, Any]:
    status, body, replayed = result
    response.status_code = status
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return body


# -- the person ------------------------------------------------------------------------------


class AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bank: str = Field(min_length=1, max_length=8, pattern=PLAIN_TEXT, description="4 digits")
    branch: str = Field(min_length=1, max_length=8, pattern=PLAIN_TEXT, description="3 digits")
    number: str = Field(
        min_length=1, max_length=10, pattern=PLAIN_TEXT, description="1–7 digits (zero-padded)"
    )
    holder_kana: str = Field(
        min_length=1,
        max_length=HOLDER_KANA_MAX,
        pattern=PLAIN_TEXT,
        description="the account holder's name as the bank writes it (ﾔﾏﾀﾞ ﾀﾛｳ)",
    )


class ChallengeOut(BaseModel):
    statement: str = Field(
        description="the statement to sign with the card's user-authentication key, base64"
    )
    expires_at: str


class RegistrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    statement: Base64 = Field(description="the statement exactly as issued, base64")
    certificate: Base64 = Field(description="user-authentication certificate (DER), base64")
    signature: Base64 = Field(description="the statement signed by the card, base64")


class AccountOut(BaseModel):
    bank: str
    branch: str
    number: str
    holder_kana: str
    state: str = Field(description="active | review (a clerk will look at it) | rejected")
    notes: list[str] = Field(
        description="holder_earlier_name, account_shared, account_shared_family"
    )
    registered_at: str
    certificate_serial: str = Field(description="the card's certificate that authorised it, hex")
    seq: int


class HistoryOut(BaseModel):
    seq: int
    kind: str
    occurred_at: str
    detail: dict[str, Any]


class MyAccountOut(AccountOut):
    history: list[HistoryOut]


@router.post(
    "/accounts/challenge",
    response_model=ChallengeOut,
    summary="公金受取口座: the statement to sign with your card to register this account (120 s)",
)
def account_challenge(
    body: AccountIn, p: PlatformDep, creds: Session, _key: OptionalIdempotencyKey
) -> Any:
    challenge = p.portal.account_challenge(
        _session_token(creds), body.bank, body.branch, body.number, body.holder_kana
    )
    return ChallengeOut(
        statement=base64.b64encode(challenge.statement).decode("ascii"),
        expires_at=challenge.expires_at.isoformat(),
    )


@router.post(
    "/accounts",
    response_model=AccountOut,
    status_code=201,
    summary="公金受取口座: register the account, authorised by your card in this transaction",
)
def register_account(
    body: RegistrationIn,
    p: PlatformDep,
    creds: Session,
    response: Response,
    key: IdempotencyKey,
) -> Any:
    token = _session_token(creds)
    return _answer(
        response,
        p.portal.register_account(
            token,
            decode_base64(body.statement, "statement", STATEMENT_MAX_BYTES),
            decode_base64(body.certificate, "certificate", 8192),
            decode_base64(body.signature, "signature", 1024),
            idempotency_key=key,
        ),
    )


@router.get(
    "/me/account",
    response_model=MyAccountOut,
    summary="公金受取口座: your registered account and its history",
)
def my_account(p: PlatformDep, creds: Session) -> Any:
    return p.portal.my_account(_session_token(creds))


# -- municipal staff ---------------------------------------------------------------------------


class SharedWith(BaseModel):
    resident_code: str
    relationship: str | None = Field(description="their 続柄, when in the same household")
    registrant_relationship: str | None = Field(
        description="the registrant's 続柄, when in the same household"
    )


class ReviewOut(BaseModel):
    review_id: int
    resident_code: str
    bank: str
    branch: str
    number: str
    reasons: list[str]
    shared_with: list[SharedWith]
    state: str = Field(description="open | confirmed | rejected | superseded")
    created_at: str
    decided_by: str | None
    justification: str | None
    decided_at: str | None


class ReviewsOut(BaseModel):
    total: int
    items: list[ReviewOut]


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["confirm", "reject"]
    operator: str = Field(min_length=1, max_length=200, pattern=PLAIN_TEXT)
    justification: str = Field(min_length=1, max_length=2000, pattern=PLAIN_TEXT)


@router.get(
    "/reviews",
    response_model=ReviewsOut,
    summary="Public-funds accounts registered to several people, for a clerk's review",
)
def reviews(
    p: PlatformDep,
    _staff: Annotated[Staff, Depends(require("municipality:read"))],
    state: Annotated[Literal["open", "confirmed", "rejected", "superseded"], Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Any:
    return p.portal.reviews(state, limit, offset)


@router.post(
    "/reviews/{review_id}/decision",
    response_model=ReviewOut,
    summary="Decide a shared account once: confirm it, or reject it",
)
def decide_review(
    body: DecisionIn,
    p: PlatformDep,
    response: Response,
    key: IdempotencyKey,
    _staff: Annotated[Staff, Depends(require("municipality:write"))],
    review_id: Annotated[int, Path(ge=1, le=2**62)],
) -> Any:
    return _answer(
        response,
        p.portal.decide_review(
            review_id, body.decision, body.operator, body.justification, idempotency_key=key
        ),
    )

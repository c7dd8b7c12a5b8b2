"""HTTP routes for verifiers and card login: ``POST /api/jlis/four-items`` (基本4情報提供, for
registered signature verifiers with the scope ``jlis:four-items``) and the platform's own login
with the user-authentication certificate, ``POST /api/login/challenge`` and ``POST /api/login``
(public: the card is the credential). Thin: decode, call the service, encode."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from mynumber.api.auth import Staff
from mynumber.api.deps import BASE64, OptionalIdempotencyKey, PlatformDep, decode_base64, require
from mynumber.api.problems import PROBLEM_RESPONSES
from mynumber.jlis.verifiers import Verifier
from mynumber.platform import Platform

__all__ = ["login_router", "require_verifier", "router"]

router = APIRouter(prefix="/api/jlis", tags=["jlis"], responses=PROBLEM_RESPONSES)
login_router = APIRouter(prefix="/api/login", tags=["login"], responses=PROBLEM_RESPONSES)

_B64 = BASE64
Base64 = Annotated[str, Field(min_length=1, max_length=12000, pattern=_B64)]
Serial = Annotated[
    str,
    Field(
        min_length=1,
        max_length=40,
        pattern=r"^[0-9A-Fa-f]+$",
        description="certificate serial number, hex",
    ),
]


def require_verifier(scope: str, kind: str | None = None) -> Callable[..., Awaitable[Verifier]]:
    """A dependency that admits a token with `scope` belonging to an active registered
    verifier (registered for `kind` when given): ``auth.*``, then ``verifier.*`` refusals."""
    token_check = require(scope)

    async def check(
        request: Request,
        # A default, not Annotated: the dependency is local, and annotations are strings here.
        staff: Staff = Depends(token_check),  # noqa: B008
    ) -> Verifier:
        platform: Platform = request.app.state.platform
        return await run_in_threadpool(platform.verifiers.require_active, staff.verifier, kind)

    return check


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# -- 基本4情報提供 -------------------------------------------------------------------------------


class FourItemsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signature_serial: Serial = Field(
        description="the signature certificate the verifier relied on (hex)"
    )
    consent: Base64 = Field(description="the consent statement (mynumber.relying.consent), base64")
    certificate: Base64 = Field(
        description="the holder's user-authentication certificate (DER or PEM), base64"
    )
    signature: Base64 = Field(
        description="the statement signed with the user-authentication key, base64"
    )


class FourItemsOut(BaseModel):
    name: str
    address: str
    birth_date: str
    sex: int = Field(description="ISO/IEC 5218: 1 male, 2 female")
    resident_status: str = Field(description="active | moved_out | deceased")
    changed: bool = Field(description="whether the items differ from the old certificate's")
    signature_certificate_status: str = Field(description="valid | revoked | on_hold")


@router.post(
    "/four-items",
    response_model=FourItemsOut,
    summary="基本4情報提供: the latest four items, with the holder's consent (signature verifiers)",
)
def four_items(
    body: FourItemsIn,
    p: PlatformDep,
    response: Response,
    key: OptionalIdempotencyKey,
    verifier: Annotated[Verifier, Depends(require_verifier("jlis:four-items", "signature"))],
) -> Any:
    status, answer, replayed = p.verifiers.provide_four_items(
        verifier.id,
        int(body.signature_serial, 16),
        decode_base64(body.consent, "consent", 1024),
        decode_base64(body.certificate, "certificate", 8192),
        decode_base64(body.signature, "signature", 1024),
        idempotency_key=key,
    )
    response.status_code = status
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return answer


# -- card login ----------------------------------------------------------------------------------


class ChallengeOut(BaseModel):
    nonce: str = Field(description="32 random bytes, base64url: sign it with the card")
    expires_at: str


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nonce: Annotated[str, Field(min_length=1, max_length=64, pattern=_B64)]
    certificate: Base64 = Field(description="user-authentication certificate (DER), base64")
    signature: Base64 = Field(description="the nonce signed by the card, base64")


class LoginOut(BaseModel):
    session: str = Field(description="opaque session token")
    expires_at: str
    certificate_serial: str = Field(description="hex")
    certificate_not_after: str


@login_router.post(
    "/challenge",
    response_model=ChallengeOut,
    summary="A single-use login challenge (valid 120 s)",
)
def login_challenge(p: PlatformDep, _key: OptionalIdempotencyKey) -> Any:
    challenge = p.login.challenge()
    return ChallengeOut(nonce=_b64url(challenge.nonce), expires_at=challenge.expires_at.isoformat())


@login_router.post(
    "",
    response_model=LoginOut,
    summary="Log in with the card: the challenge signed with the user-authentication key",
)
def login(body: LoginIn, p: PlatformDep, _key: OptionalIdempotencyKey) -> Any:
    session = p.login.login(
        decode_base64(body.nonce, "nonce", 64),
        decode_base64(body.certificate, "certificate", 8192),
        decode_base64(body.signature, "signature", 1024),
    )
    return LoginOut(
        session=session.token,
        expires_at=session.expires_at.isoformat(),
        certificate_serial=f"{session.serial:X}",
        certificate_not_after=session.certificate_not_after.isoformat(),
    )

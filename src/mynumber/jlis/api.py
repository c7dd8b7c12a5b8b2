"""HTTP routes of J-LIS under /api/jlis: identity queries for authorised agencies, and the JPKI
CA's public face: the CRL and the CA chain (no token: anyone may fetch them) and the OCSP
responder (RFC 6960 over HTTP, for registered verifiers with the scope ``jlis:verify``)."""

from __future__ import annotations

import base64
import binascii
import contextlib
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from starlette.concurrency import run_in_threadpool

from mynumber.api.deps import (
    PLAIN_TEXT,
    IdempotencyKey,
    OptionalIdempotencyKey,
    PlatformDep,
    require,
)
from mynumber.api.problems import PROBLEM_RESPONSES
from mynumber.dates import parse_date, parse_sex
from mynumber.errors import ValidationError
from mynumber.identity import FiveItems
from mynumber.jlis.verifiers import Verifier
from mynumber.jlis.verify_api import require_verifier
from mynumber.numbers import mask, parse_individual, parse_resident_code

__all__ = ["router"]

router = APIRouter(prefix="/api/jlis", tags=["jlis"], responses=PROBLEM_RESPONSES)

Text = Annotated[str, Field(max_length=300, pattern=PLAIN_TEXT)]


_EXAMPLE: dict[str, JsonValue] = {
    "name": "山田 太郎",
    "name_kana": "ヤマダ タロウ",
    "birth_date": "1980-01-02",
    "sex": "1",
    "address": "東京都新宿区新宿三丁目1番1号",
}


class FiveItemsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    name: Text = Field(description="kanji name, family and given (a space between is optional)")
    name_kana: Text
    birth_date: Text = Field(description="ISO 8601 or 和暦")
    sex: Text = Field(description="1 or 2; 男/女 accepted")
    address: Text

    def items(self) -> FiveItems:
        for field in ("name", "name_kana", "address"):
            if not getattr(self, field).strip():
                raise ValidationError(
                    "field.required", f"{field} is required.", f"{field} は必須です。", field=field
                )
        return FiveItems(
            self.name,
            self.name_kana,
            parse_date(self.birth_date, field="birth_date"),
            parse_sex(self.sex, field="sex"),
            self.address,
        )


class VerifyIn(FiveItemsIn):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{**_EXAMPLE, "individual_number": "1234 5678 9018"}]},
    )

    individual_number: Annotated[str, Field(max_length=40, pattern=PLAIN_TEXT)]


class QueryOut(BaseModel):
    outcome: str = Field(description="found | none | ambiguous — never a guess")
    resident_code: str | None = None
    individual_number: str | None = Field(
        default=None, description="whole, for an authorised agency's linkage (番号法 第19条)"
    )
    status: str | None = None
    candidates: int


class ItemOut(BaseModel):
    item: str
    result: str = Field(description="match | match_normalised | mismatch")
    matches_earlier: bool


class VerifyOut(BaseModel):
    individual_number: str = Field(description="masked")
    number_status: str = Field(description="active | retired | unknown")
    all_match: bool
    all_match_or_earlier: bool
    items: list[ItemOut]


class NumberChangeOut(BaseModel):
    resident_code: str
    individual_number: str = Field(description="the new number, masked")


class StatsOut(BaseModel):
    identities: int
    numbers: int


@router.post(
    "/five-item-queries",
    response_model=QueryOut,
    dependencies=[Depends(require("jlis:query"))],
    summary="Five-item query: exactly one person, none, or ambiguous",
)
def five_item_query(body: FiveItemsIn, p: PlatformDep, _key: OptionalIdempotencyKey) -> Any:
    r = p.jlis.five_item_query(body.items())
    return QueryOut(
        outcome=r.outcome,
        resident_code=r.resident_code,
        individual_number=r.individual_number,
        status=r.status,
        candidates=r.candidates,
    )


@router.post(
    "/verifications",
    response_model=VerifyOut,
    dependencies=[Depends(require("jlis:query"))],
    summary="Verify a claimed number against five items, item by item",
)
def verify(body: VerifyIn, p: PlatformDep, _key: OptionalIdempotencyKey) -> Any:
    number = parse_individual(body.individual_number, field="individual_number")
    r = p.jlis.verify(number, body.items())
    return VerifyOut(
        individual_number=mask(number),
        number_status=r.number_status,
        all_match=r.all_match,
        all_match_or_earlier=r.all_match_or_earlier,
        items=[
            ItemOut(item=i.item, result=i.result, matches_earlier=i.matches_earlier)
            for i in r.items
        ],
    )


@router.post(
    "/numbers/{resident_code}/changes",
    response_model=NumberChangeOut,
    dependencies=[Depends(require("jlis:admin"))],
    summary="Change a leaked number; the old one is retired for ever",
)
def change_number(
    resident_code: Annotated[str, Path(max_length=20)],
    p: PlatformDep,
    response: Response,
    key: IdempotencyKey,
) -> Any:
    code = parse_resident_code(resident_code, field="resident_code")
    status, body, replayed = p.number_change(code, key)
    response.status_code = status
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return body


@router.get("/stats", response_model=StatsOut, dependencies=[Depends(require("jlis:query"))])
def stats(p: PlatformDep) -> Any:
    return p.jlis.counts()


# -- JPKI CA ----------------------------------------------------------------------------------

CRL_MEDIA = "application/pkix-crl"  # RFC 5280 §4.2.1.13
OCSP_REQUEST_MEDIA = "application/ocsp-request"  # RFC 6960 Appendix A
OCSP_RESPONSE_MEDIA = "application/ocsp-response"
CHAIN_MEDIA = "application/pem-certificate-chain"  # RFC 8555 §9.1
OCSP_MAX_REQUEST = 16 * 1024  # a single-certificate request is about 100 bytes
OcspVerifier = Annotated[Verifier, Depends(require_verifier("jlis:verify"))]
"""A registered verifier's token with the scope jlis:verify; its kinds bound what it may ask."""
_BINARY = {"type": "string", "format": "binary"}


def _content(media: str, description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": description, "content": {media: {"schema": _BINARY}}}}


@router.get(
    "/crl",
    response_class=Response,
    responses=_content(CRL_MEDIA, "The JPKI issuing CA's current CRL (DER)"),
    summary="Certificate revocation list (public)",
)
def crl(p: PlatformDep) -> Response:
    return Response(p.pki.crl(), media_type=CRL_MEDIA, headers={"Cache-Control": "no-cache"})


@router.get(
    "/ca",
    response_class=Response,
    responses=_content(CHAIN_MEDIA, "The issuing CA's certificate, then the root's (PEM)"),
    summary="The JPKI CA chain (public)",
)
def ca_chain(p: PlatformDep) -> Response:
    return Response(p.pki.chain_pem(), media_type=CHAIN_MEDIA)


@router.post(
    "/ocsp",
    response_class=Response,
    # Registered verifiers only (公的個人認証法 17・36条): the scope and an active registration.
    responses=_content(
        OCSP_RESPONSE_MEDIA,
        "An OCSP response (RFC 6960), always with HTTP 200: a signed good / revoked / unknown, "
        "or the unsigned status malformedRequest for a body that is not one OCSP request "
        "(whatever its Content-Type) or is over 16 KiB",
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {OCSP_REQUEST_MEDIA: {"schema": _BINARY}},
        }
    },
    summary="OCSP: the status of one certificate (registered verifiers)",
)
async def ocsp(request: Request, p: PlatformDep, verifier: OcspVerifier) -> Response:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > OCSP_MAX_REQUEST:
            body = bytearray()  # answered as malformed, like any other non-request
            break
    answer = await run_in_threadpool(p.pki.ocsp, bytes(body), verifier.kinds)
    return Response(answer, media_type=OCSP_RESPONSE_MEDIA, headers={"Cache-Control": "no-store"})


@router.get(
    "/ocsp/{encoded:path}",
    response_class=Response,
    responses=_content(
        OCSP_RESPONSE_MEDIA,
        "The same answer as POST /ocsp, for a request sent as RFC 6960 Appendix A.1 GET: the DER "
        "request, base64, URL-encoded, as the last path segment(s)",
    ),
    summary="OCSP over GET (RFC 6960 A.1; registered verifiers)",
)
def ocsp_get(encoded: str, p: PlatformDep, verifier: OcspVerifier) -> Response:
    der = b""  # answered as malformed, like any other non-request
    raw = unquote(encoded)  # the router has decoded the path once; a client may encode twice
    if len(raw) <= 2 * OCSP_MAX_REQUEST:
        with contextlib.suppress(ValueError, binascii.Error):
            der = base64.b64decode(raw, validate=True)
    answer = p.pki.ocsp(der if len(der) <= OCSP_MAX_REQUEST else b"", verifier.kinds)
    return Response(answer, media_type=OCSP_RESPONSE_MEDIA, headers={"Cache-Control": "no-store"})

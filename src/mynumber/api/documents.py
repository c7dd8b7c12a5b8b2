"""HTTP for certificates: issuing at the counter (staff, /api/municipality/…/certificates), and
checking any document (public: /api/documents/verify, /api/documents/{id}, the /verify page,
LGPKI's root and CRL). Thin adapters over IssuanceService and Platform.verify_document."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field

from mynumber.api.auth import Staff
from mynumber.api.deps import PLAIN_TEXT, OptionalIdempotencyKey, PlatformDep, require
from mynumber.api.problems import PROBLEM_RESPONSES, language
from mynumber.documents.content import DOCUMENT_ID, DocumentKind
from mynumber.documents.issue import IssueRequest
from mynumber.errors import ValidationError

__all__ = ["MAX_PDF_BYTES", "issue_router", "page_router", "public_router"]

MAX_PDF_BYTES = 20 << 20
PDF = "application/pdf"

issue_router = APIRouter(
    prefix="/api/municipality", tags=["certificates"], responses=PROBLEM_RESPONSES
)
public_router = APIRouter(tags=["documents"], responses=PROBLEM_RESPONSES)
page_router = APIRouter(include_in_schema=False)
_templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "web" / "templates"))

Writer = Annotated[Staff, Depends(require("municipality:write"))]
ResidentCode = Annotated[
    str, PathParam(description="11-digit resident record code", max_length=20, pattern=PLAIN_TEXT)
]
Code = Annotated[str, PathParam(description="6-digit municipality code", max_length=20)]


class CertificateIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"kind": "juminhyo", "relationship": True}]},
    )

    kind: DocumentKind = DocumentKind.residence
    household: bool = Field(default=False, description="住民票: every member of the household")
    members: list[Annotated[str, Field(max_length=20, pattern=PLAIN_TEXT)]] = Field(
        default_factory=list, max_length=50, description="住民票: household members to include"
    )
    relationship: bool = Field(default=False, description="住民票: print 続柄")
    domicile: bool = Field(default=False, description="住民票: print 本籍・筆頭者")
    individual_number: bool = Field(
        default=False, description="print the individual number (only on explicit request)"
    )


_PDF_RESPONSE: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "The signed PDF; X-Document-Id, X-Document-Digest and X-Fee say what it is",
        "content": {PDF: {"schema": {"type": "string", "format": "binary"}}},
    }
}


@issue_router.post(
    "/municipalities/{code}/residents/{resident_code}/certificates",
    status_code=201,
    response_class=Response,
    responses=_PDF_RESPONSE,
    summary="Issue a signed 住民票の写し, 記載事項証明書 or 印鑑登録証明書 at the counter",
)
def issue_certificate(
    code: Code,
    resident_code: ResidentCode,
    body: CertificateIn,
    p: PlatformDep,
    staff: Writer,
    key: OptionalIdempotencyKey,
) -> Response:
    issued = p.issuance.issue(
        IssueRequest(
            kind=body.kind,
            municipality_code=code,
            resident_code=resident_code,
            requester=staff.name,
            members=tuple(dict.fromkeys(body.members)) or None,
            whole_household=body.household,
            relationship=body.relationship,
            domicile=body.domicile,
            individual_number=body.individual_number,
            request_key=key,
        )
    )
    headers = {
        "X-Document-Id": issued.document_id,
        "X-Document-Digest": issued.content_digest,
        "X-Fee": str(issued.fee),
        "Content-Disposition": f'attachment; filename="{issued.document_id}.pdf"',
    }
    if issued.replay:
        headers["Idempotent-Replayed"] = "true"
    return Response(issued.pdf, status_code=201, media_type=PDF, headers=headers)


class SignatureOut(BaseModel):
    status: str = Field(description="valid | unsigned | broken | untrusted | revoked | unreadable")
    signer: str | None = None
    signer_serial: str | None = None
    signed_at: str | None = None
    detail: str | None = None


class VerificationOut(BaseModel):
    ok: bool
    signature: SignatureOut
    record: str = Field(description="matches | missing | differs | not_printed | not_checked")
    document_id: str | None = None
    kind: str | None = None
    municipality_code: str | None = None
    issued_at: str | None = None
    digest: str | None = None
    content_problem: str | None = None


def _too_large() -> ValidationError:
    return ValidationError(
        "document.too_large",
        f"A document is at most {MAX_PDF_BYTES >> 20} MiB.",
        f"文書は {MAX_PDF_BYTES >> 20} MiB までです。",
        field="body",
        status=413,
    )


async def _pdf_body(request: Request) -> bytes:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_PDF_BYTES:
            raise _too_large()
    return bytes(data)


@public_router.post(
    "/api/documents/verify",
    response_model=VerificationOut,
    summary="Check a document (public): signature, revocation, content and issuance record",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {PDF: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def verify_pdf(request: Request, p: PlatformDep) -> dict[str, Any]:
    data = await _pdf_body(request)
    result = await _in_thread(p, data)
    return result


async def _in_thread(p: Any, data: bytes) -> dict[str, Any]:
    import anyio.to_thread

    verification = await anyio.to_thread.run_sync(p.verify_document, data)
    out: dict[str, Any] = verification.to_json()
    return out


class RecordOut(BaseModel):
    record: str = Field(description="matches | missing | differs | not_printed")
    kind: str | None = None
    municipality_code: str | None = None
    issued_at: str | None = None


def _record(p: Any, document_id: str, digest: str) -> dict[str, Any]:
    found = p.issuance.record(document_id) if DOCUMENT_ID.fullmatch(document_id) else None
    if found is None:
        return {"record": "missing"}
    if found["content_digest"] != digest.lower():
        return {"record": "differs"}
    if found["outcome"] not in ("handed", "printed"):
        return {"record": "not_printed"}  # a kiosk never printed it: the paper does not exist
    return {
        "record": "matches",
        "kind": found["kind"],
        "municipality_code": found["municipality_code"],
        "issued_at": found["issued_at"],
    }


@public_router.get(
    "/api/documents/{document_id}",
    response_model=RecordOut,
    summary="Is there an issuance with this id and digest? (public; what the QR code asks)",
)
def document_record(
    document_id: Annotated[str, PathParam(max_length=26, pattern=DOCUMENT_ID.pattern)],
    digest: Annotated[str, Query(max_length=64, pattern="^[0-9a-fA-F]{64}$")],
    p: PlatformDep,
) -> dict[str, Any]:
    return _record(p, document_id, digest)


@public_router.get(
    "/api/jlis/lgpki/crl",
    response_class=Response,
    responses={200: {"content": {"application/pkix-crl": {}}, "description": "LGPKI's CRL"}},
    summary="LGPKI's current CRL: revoked municipal document signers (public)",
)
def lgpki_crl(p: PlatformDep) -> Response:
    return Response(
        p.lgpki.crl(), media_type="application/pkix-crl", headers={"Cache-Control": "no-cache"}
    )


@public_router.get(
    "/api/jlis/lgpki/root",
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {}}, "description": "PEM"}},
    summary="LGPKI's root certificate, the trust anchor of every document (public)",
)
def lgpki_root(p: PlatformDep) -> Response:
    pem = p.lgpki.root.public_bytes(serialization.Encoding.PEM)
    return Response(pem, media_type="application/x-pem-file")


def _lang(request: Request, lang: str | None) -> str:
    return lang if lang in ("ja", "en") else language(request)


@page_router.get("/verify", response_class=HTMLResponse)
def verify_page(
    request: Request,
    p: PlatformDep,
    lang: str | None = None,
    id: Annotated[str | None, Query(max_length=40)] = None,
    digest: Annotated[str | None, Query(max_length=80)] = None,
) -> Any:
    record = None
    if id is not None and digest is not None:
        record = _record(p, id.strip().upper(), digest.strip())
        record["document_id"] = id
    return _templates.TemplateResponse(
        request, "verify.html", {"lang": _lang(request, lang), "record": record, "result": None}
    )


@page_router.post("/verify", response_class=HTMLResponse)
async def verify_upload(
    request: Request,
    p: PlatformDep,
    document: Annotated[UploadFile, File()],
    lang: str | None = None,
) -> Any:
    data = await document.read(MAX_PDF_BYTES + 1)
    if len(data) > MAX_PDF_BYTES:
        raise _too_large()
    result = await _in_thread(p, data)
    return _templates.TemplateResponse(
        request,
        "verify.html",
        {
            "lang": _lang(request, lang),
            "record": None,
            "result": result,
            "filename": document.filename or "",
        },
    )

"""HTTP routes of the network role, under ``/api/network``. Thin: decode, call, encode.

- ``POST /exchanges`` — an agency's signed request (the signature is the credential; the
  request id is the idempotency key: a retry gets the same record and ``Idempotent-Replayed``).
  Provided or not held: 200 with the record's place in the log. Refused: a problem document
  whose code is the refusal reason, with the record's place in the log.
- ``GET /agencies``, ``GET /legal-basis`` — public.
- ``POST /agencies`` — register an agency and its key (scope ``network:admin``).
- ``GET /me/records`` — the logged-in person's access records, each with its proof bundle
  (bearer: the session of a card login, ``POST /api/login``).
- ``GET /anomalies`` — the auditor's anomaly report (scope ``network:audit``).
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from mynumber.api.auth import Staff
from mynumber.api.deps import (
    BASE64,
    PLAIN_TEXT,
    IdempotencyKey,
    PlatformDep,
    decode_base64,
    require,
)
from mynumber.api.problems import MEDIA, PROBLEM_RESPONSES, language
from mynumber.errors import AuthError, MynumberError, ValidationError
from mynumber.network.service import REFUSALS, ExchangeResult

__all__ = ["router"]

ANOMALY_DAYS = 30
"""The anomaly report's default window."""

router = APIRouter(prefix="/api/network", tags=["network"], responses=PROBLEM_RESPONSES)
_bearer = HTTPBearer(auto_error=False)

_B64 = BASE64


class ExchangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request: str = Field(
        min_length=1,
        max_length=6000,
        pattern=_B64,
        description="the request's canonical JSON bytes (mynumber.network.records), base64",
    )
    signature: str = Field(
        min_length=1,
        max_length=200,
        pattern=_B64,
        description="Ed25519 signature over 'mynumber exchange request v1\\0' ‖ request, base64",
    )


class RecordRef(BaseModel):
    leaf_index: int
    tree_size: int


class ExchangeOut(BaseModel):
    request_id: str
    outcome: str = Field(description="provided | not_held")
    reason: str | None
    basis: str | None = Field(description="the legal-basis row that allowed the exchange")
    record: RecordRef
    value: Any = Field(default=None, description="the item's value (when provided)")


@router.post(
    "/exchanges",
    response_model=ExchangeOut,
    response_model_exclude_none=False,
    summary="情報照会: broker an agency's signed request (recorded in the log before any answer)",
)
def exchange(body: ExchangeIn, p: PlatformDep, request: Request, response: Response) -> Any:
    result: ExchangeResult = p.network.exchange(
        decode_base64(body.request, "request", 4096),
        decode_base64(body.signature, "signature", 128),
    )
    replayed = {"Idempotent-Replayed": "true"} if result.replayed else {}
    if result.outcome == "refused":
        assert result.reason is not None
        en, ja = REFUSALS[result.reason]
        err = MynumberError(
            result.reason,
            en,
            ja,
            status=503 if result.reason == "network.provider_unavailable" else 403,
            extra={
                "request_id": result.request_id,
                "record": {"leaf_index": result.leaf_index, "tree_size": result.tree_size},
            },
        )
        # Returned, not raised: a retry's refusal carries Idempotent-Replayed too.
        return JSONResponse(
            err.problem(language(request), instance=request.url.path),
            status_code=err.status,
            media_type=MEDIA,
            headers=replayed,
        )
    response.headers.update(replayed)
    return result.to_json()


class AgencyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agency_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    kind: str = Field(min_length=1, max_length=32, pattern=PLAIN_TEXT)
    name_ja: str = Field(min_length=1, max_length=200, pattern=PLAIN_TEXT)
    name_en: str = Field(min_length=1, max_length=200, pattern=PLAIN_TEXT)
    public_key: str = Field(
        min_length=1, max_length=100, pattern=_B64, description="raw Ed25519 key, base64"
    )


class AgencyOut(BaseModel):
    agency_id: str
    kind: str
    name_ja: str
    name_en: str
    public_key: str = Field(description="raw Ed25519 key, base64")
    active: bool


def _agency_out(a: Any) -> dict[str, Any]:
    return {
        "agency_id": a.agency_id,
        "kind": a.kind,
        "name_ja": a.name_ja,
        "name_en": a.name_en,
        "public_key": base64.b64encode(a.public_key).decode(),
        "active": a.active,
    }


@router.get("/agencies", response_model=list[AgencyOut], summary="Registered agencies")
def agencies(p: PlatformDep) -> Any:
    return [_agency_out(a) for a in p.network.agencies()]


@router.post(
    "/agencies",
    response_model=AgencyOut,
    summary="Register an agency (or rotate its key)",
)
def register_agency(
    body: AgencyIn,
    p: PlatformDep,
    _key: IdempotencyKey,
    _staff: Annotated[Staff, Depends(require("network:admin"))],
) -> Any:
    key = decode_base64(body.public_key, "public_key", 64)
    a = p.network.register_agency(body.agency_id, body.kind, body.name_ja, body.name_en, key)
    return _agency_out(a)


@router.get("/legal-basis", summary="The exchanges the law allows (the legal-basis table)")
def legal_basis(p: PlatformDep) -> list[dict[str, Any]]:
    return [
        {
            "id": b.id,
            "requester_kind": b.requester_kind,
            "task": b.task,
            "task_ja": b.task_ja,
            "task_en": b.task_en,
            "provider_kind": b.provider_kind,
            "items": list(b.items),
            "law": b.law,
            "note_en": b.note_en,
        }
        for b in p.network.legal_basis.rows()
    ]


@router.get(
    "/me/records",
    summary="やりとり履歴: every access record about the logged-in person, with proofs",
)
async def my_records(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> dict[str, Any]:
    p = request.app.state.platform
    if creds is None:
        raise AuthError(
            "login.session_invalid",
            "Log in with your card (POST /api/login) and send the session as a bearer token.",
            "カードでログイン（POST /api/login）し、セッションをBearerトークンとして送ってください。",
        )
    session = p.login.open(creds.credentials)
    doc: dict[str, Any] = await run_in_threadpool(p.network.records_of, session.resident_code)
    return doc


def _time(value: str | None, field: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        t = None
    if t is None or t.tzinfo is None:
        raise ValidationError(
            "request.invalid",
            f"{field} is an ISO 8601 time with its offset.",
            f"{field} はオフセット付きのISO 8601時刻である必要があります。",
            field=field,
        )
    return t


@router.get("/anomalies", summary="The auditor's anomaly report (default window: the last 30 days)")
def anomalies(
    p: PlatformDep,
    _staff: Annotated[Staff, Depends(require("network:audit"))],
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
) -> list[dict[str, Any]]:
    # Thirty days unless asked: the report reads every record of its window into memory.
    start = _time(since, "since") or p.clock.now() - dt.timedelta(days=ANOMALY_DAYS)
    findings = p.network.anomalies(start, _time(until, "until"))
    return [
        {
            "kind": f.kind,
            "requester": f.requester,
            "start": f.start.isoformat(),
            "end": f.end.isoformat(),
            "count": f.count,
            "baseline": f.baseline,
            "detail": {"ja": f.detail_ja, "en": f.detail_en},
        }
        for f in findings
    ]


@router.get("/stats", summary="Exchanges by requester, provider and outcome")
def stats(p: PlatformDep) -> dict[str, Any]:
    doc: dict[str, Any] = p.network.counts()
    return doc

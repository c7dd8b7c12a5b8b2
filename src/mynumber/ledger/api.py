"""HTTP routes of the ledger role, under ``/api/ledger``: what anyone needs to check the log.

All public: the log's key, signed tree heads, consistency proofs between two heads, the proof
bundle of a record, and the records themselves (``GET /entries``) — they name no person (each
carries a per-record commitment), so anyone can rebuild the tree, and a person who knows their
subject key can scan it for every record about them.
"""

from __future__ import annotations

from typing import Annotated, Any

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse

from mynumber.api.deps import PlatformDep
from mynumber.api.problems import PROBLEM_RESPONSES
from mynumber.errors import NotFoundError, ValidationError

__all__ = ["router"]

router = APIRouter(prefix="/api/ledger", tags=["ledger"], responses=PROBLEM_RESPONSES)

_MAX_SIZE = 2**62
Size = Annotated[int, Query(ge=0, le=_MAX_SIZE)]


def _no_head() -> NotFoundError:
    return NotFoundError(
        "ledger.no_head",
        "The log has signed no tree head of that size.",
        "その大きさの署名付きツリーヘッドはありません。",
    )


@router.get("/key", response_class=PlainTextResponse, summary="The log's Ed25519 public key (PEM)")
def key(p: PlatformDep) -> str:
    return p.ledger.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@router.get("/head", summary="The newest signed tree head")
def head(p: PlatformDep) -> dict[str, Any]:
    h = p.ledger.head()
    if h is None:
        raise _no_head()
    doc: dict[str, Any] = h.to_json()
    return doc


@router.get("/heads/{tree_size}", summary="The signed tree head of a size")
def head_of(p: PlatformDep, tree_size: Annotated[int, Path(ge=0, le=_MAX_SIZE)]) -> dict[str, Any]:
    h = p.ledger.head(tree_size)
    if h is None:
        raise _no_head()
    doc: dict[str, Any] = h.to_json()
    return doc


@router.get("/consistency", summary="A consistency proof between two signed heads")
def consistency(p: PlatformDep, first: Size, second: Size) -> dict[str, Any]:
    if not 0 < first <= second:
        raise ValidationError(
            "request.invalid",
            "Ask for 0 < first ≤ second.",
            "0 < first ≤ second となるよう指定してください。",
            field="first",
        )
    a, b = p.ledger.head(first), p.ledger.head(second)
    if a is None or b is None:
        raise _no_head()
    return {
        "first": a.to_json(),
        "second": b.to_json(),
        "path": [h.hex() for h in p.ledger.consistency_proof(first, second)],
    }


@router.get("/proof/{leaf_index}", summary="A record's proof bundle (mynumber verify-proof)")
def proof(
    p: PlatformDep,
    leaf_index: Annotated[int, Path(ge=0, le=_MAX_SIZE)],
    earlier_size: Annotated[int | None, Query(ge=1, le=_MAX_SIZE)] = None,
) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = p.ledger.proof_bundle(leaf_index, earlier_size)
    except ValueError:
        raise NotFoundError(
            "ledger.no_record",
            "No signed tree holds that record, or no head of that earlier size was signed.",
            "その記録を含む署名付きツリー、または指定した大きさのヘッドがありません。",
        ) from None
    return doc


@router.get("/entries", summary="Records by index (anyone may rebuild the tree and scan it)")
def entries(
    p: PlatformDep,
    start: Size,
    end: Size,
) -> list[dict[str, Any]]:
    if not start < end or end - start > 1000:
        raise ValidationError(
            "request.invalid",
            "Ask for start < end, at most 1000 records at a time.",
            "start < end、一度に1000件までで指定してください。",
            field="end",
        )
    return p.ledger.entries(start, end)

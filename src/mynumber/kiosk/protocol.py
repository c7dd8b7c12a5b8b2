"""The kiosk protocol's values, shared by the kiosk (client) and J-LIS's kiosk centre.

A kiosk session has a fresh 32-byte nonce. The card authorises exactly one order in it: the
user-authentication key signs the SHA-256 of the *statement* — canonical JSON naming the
protocol, the session, the kiosk, the nonce and the order (document kind and options). So a
signature cannot be moved to another kiosk, session or document, and J-LIS can tell a retry
of the same order (same statement) from a second order (refused: one order per session).

The kiosk prints only what :func:`check_for_print` accepts: a valid municipal signature whose
signed content names this session's nonce, the certificate of the card that was inserted,
the kiosk channel and the kind ordered (DESIGN I1)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mynumber.documents.content import DocumentContent, DocumentKind, canonical_json
from mynumber.documents.signing import SignatureStatus, check_signature
from mynumber.documents.verify import attached_content
from mynumber.errors import MynumberError, ValidationError

__all__ = [
    "KIOSK_ID",
    "PROTOCOL",
    "KioskOrder",
    "card_fingerprint",
    "check_for_print",
    "statement",
    "statement_digest",
]

PROTOCOL = "mynumber-kiosk/1"
KIOSK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{2,31}")


@dataclass(frozen=True, slots=True)
class KioskOrder:
    """What the person chose on the screen."""

    kind: DocumentKind
    household: bool = False
    members: tuple[str, ...] = field(default_factory=tuple)
    relationship: bool = False
    individual_number: bool = False
    domicile: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "kind": str(self.kind),
            "household": self.household,
            "members": sorted(set(self.members)),
            "relationship": self.relationship,
            "individual_number": self.individual_number,
            "domicile": self.domicile,
        }


def statement(session_id: str, kiosk_id: str, nonce: bytes, order: KioskOrder) -> bytes:
    return canonical_json(
        {
            "protocol": PROTOCOL,
            "session": session_id,
            "kiosk": kiosk_id,
            "nonce": base64.b64encode(nonce).decode("ascii"),
            "order": order.to_json(),
        }
    )


def statement_digest(session_id: str, kiosk_id: str, nonce: bytes, order: KioskOrder) -> bytes:
    """What the card signs (32 bytes: within the chip's challenge size)."""
    return hashlib.sha256(statement(session_id, kiosk_id, nonce, order)).digest()


def card_fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the card's user-authentication certificate (DER), hex: how a document names
    the card that asked for it."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def _refused(detail: str) -> ValidationError:
    return ValidationError(
        "kiosk.not_printed",
        f"The document failed the kiosk's check and was not printed: {detail}.",
        f"証明書が端末の確認を通らなかったため、印刷していません（{detail}）。",
        status=502,
        extra={"detail": detail},
    )


def check_for_print(
    pdf: bytes,
    *,
    nonce: bytes,
    card: x509.Certificate,
    order: KioskOrder,
    trust_roots: Sequence[x509.Certificate],
    crls: Sequence[bytes],
    at: dt.datetime,
) -> DocumentContent:
    """The document's content if the kiosk may print it; ``kiosk.not_printed`` (naming the
    failed check) otherwise."""
    from mynumber.documents.content import parse_content

    signature, reader = check_signature(pdf, trust_roots, crls, at)
    if signature.status is not SignatureStatus.valid:
        raise _refused(f"signature {signature.status}")
    raw = None if reader is None else attached_content(reader)
    if raw is None:
        raise _refused("no signed content")
    try:
        content = parse_content(raw)
    except MynumberError:
        raise _refused("malformed content") from None
    if content.nonce != base64.b64encode(nonce).decode("ascii"):
        raise _refused("another session's nonce")
    if content.card != card_fingerprint(card):
        raise _refused("another card's document")
    if content.channel != "kiosk" or content.kind is not order.kind:
        raise _refused("not the document ordered")
    # Nothing the person did not choose to show: the number, 続柄, 本籍, other people.
    people = content.people
    if not order.individual_number and any(p.individual_number is not None for p in people):
        raise _refused("an individual number not asked for")
    if not order.relationship and any(p.relationship is not None for p in people):
        raise _refused("a relationship not asked for")
    if not order.domicile and any(p.domicile is not None for p in people):
        raise _refused("a domicile not asked for")
    if not order.household and len(people) > 1 + len(set(order.members)):
        raise _refused("more people than asked for")
    return content

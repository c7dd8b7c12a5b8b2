"""What is asked of an issuing municipality and what it answers: shared by the counter, the
kiosk centre (J-LIS) and the municipality's issuing service, so no role imports another's
service to speak to it."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from mynumber.documents.content import DocumentKind, canonical_json

__all__ = ["FEES", "IssueRequest", "Issued"]

FEES = {DocumentKind.residence: 300, DocumentKind.residence_items: 300, DocumentKind.seal: 300}
"""Yen per document (most municipalities charge 300 at the counter; kiosk discounts vary)."""


@dataclass(frozen=True, slots=True)
class IssueRequest:
    kind: DocumentKind
    municipality_code: str
    resident_code: str  # the subject: the person the document is about
    requester: str  # the operator at the counter, the kiosk id at a kiosk
    channel: str = "counter"  # counter | kiosk
    members: tuple[str, ...] | None = (
        None  # 住民票: others of the household; None = only the subject
    )
    whole_household: bool = False  # 住民票: every active member of the household
    relationship: bool = False  # print 続柄
    domicile: bool = False  # print 本籍・筆頭者 (Japanese nationals have them)
    individual_number: bool = False  # print the individual number (only on explicit request)
    nonce: str | None = None
    card: str | None = None
    request_key: str | None = None
    deadline: dt.datetime | None = None  # past it, the transaction rolls back: nothing issued

    def digest(self) -> str:
        body = {
            "kind": str(self.kind),
            "municipality_code": self.municipality_code,
            "resident_code": self.resident_code,
            "requester": self.requester,
            "channel": self.channel,
            "members": None if self.members is None else sorted(self.members),
            "whole_household": self.whole_household,
            "relationship": self.relationship,
            "individual_number": self.individual_number,
            "nonce": self.nonce,
            "card": self.card,
        }
        if self.domicile:  # added later: absent when not asked, so earlier digests still hold
            body["domicile"] = True
        return hashlib.sha256(canonical_json(body)).hexdigest()


@dataclass(frozen=True, slots=True)
class Issued:
    document_id: str
    kind: DocumentKind
    pdf: bytes
    content_digest: str
    subject: str
    fee: int
    issued_at: str
    replay: bool = False  # True when a retry returned the document issued before

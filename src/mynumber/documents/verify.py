"""Checking a document: anyone holding the PDF can ask three questions.

1. Is the municipality's signature intact, over the whole file, by a certificate that chains
   to the LGPKI root and is not revoked? (:func:`~mynumber.documents.signing.check_signature`)
2. What does the signed content say? (the attached ``mynumber-document.json``, whose SHA-256
   is the document digest printed and carried in the QR code)
3. Does the issuing municipality have a record of this document with this digest?

Only a document that passes all three is ``ok``. The answer names no one: it gives the kind,
the municipality, the time of issue and the digests, never the person."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography import x509
from pyhanko.pdf_utils.reader import PdfFileReader

from mynumber.documents.content import DocumentContent, parse_content
from mynumber.documents.render import ATTACHMENT
from mynumber.documents.signing import SignatureCheck, SignatureStatus, check_signature
from mynumber.errors import MynumberError

__all__ = ["DocumentVerification", "RecordStatus", "attached_content", "verify_document"]

Lookup = Callable[[str], Mapping[str, Any] | None]


class RecordStatus(enum.StrEnum):
    matches = "matches"  # the municipality issued this document, with this content
    missing = "missing"  # no issuance has this document id
    differs = "differs"  # an issuance has this id, but another content or file
    not_printed = "not_printed"  # issued to a kiosk that never printed it (aborted, or no report)
    not_checked = "not_checked"  # the content could not be read, so there was nothing to look up


@dataclasses.dataclass(frozen=True, slots=True)
class DocumentVerification:
    signature: SignatureCheck
    record: RecordStatus
    document_id: str | None = None
    kind: str | None = None
    municipality_code: str | None = None
    issued_at: str | None = None
    digest: str | None = None
    content_problem: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.signature.status is SignatureStatus.valid and self.record is RecordStatus.matches
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "signature": dataclasses.asdict(self.signature),
            "record": str(self.record),
            "document_id": self.document_id,
            "kind": self.kind,
            "municipality_code": self.municipality_code,
            "issued_at": self.issued_at,
            "digest": self.digest,
            "content_problem": self.content_problem,
        }


def attached_content(reader: PdfFileReader) -> bytes | None:
    """The bytes of the attached ``mynumber-document.json``, or None if there is none."""
    try:
        names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
        for i in range(0, len(names) - 1, 2):
            if str(names[i]) == ATTACHMENT:
                spec = names[i + 1]
                return bytes(spec["/EF"]["/F"].data)
    except Exception:  # anyone's file: a malformed name tree means no content
        return None
    return None


def verify_document(
    pdf: bytes,
    *,
    trust_roots: Sequence[x509.Certificate],
    crls: Sequence[bytes],
    at: dt.datetime,
    lookup: Lookup,
) -> DocumentVerification:
    signature, reader = check_signature(pdf, trust_roots, crls, at)
    raw = None if reader is None else attached_content(reader)
    if raw is None:
        return DocumentVerification(
            signature, RecordStatus.not_checked, content_problem="no attached content"
        )
    try:
        content: DocumentContent = parse_content(raw)
    except MynumberError as exc:
        return DocumentVerification(signature, RecordStatus.not_checked, content_problem=exc.code)
    digest = hashlib.sha256(raw).hexdigest()
    record = lookup(content.document_id)
    if record is None:
        status = RecordStatus.missing
    elif (
        record.get("content_digest") == digest
        and record.get("pdf_digest") == hashlib.sha256(pdf).hexdigest()
        and record.get("kind") == str(content.kind)
        and record.get("subject") == content.subject
    ):
        status = (
            RecordStatus.matches
            if record.get("outcome") in ("handed", "printed")
            else RecordStatus.not_printed
        )
    else:
        status = RecordStatus.differs
    return DocumentVerification(
        signature,
        status,
        document_id=content.document_id,
        kind=str(content.kind),
        municipality_code=content.municipality_code,
        issued_at=content.issued_at,
        digest=digest,
    )

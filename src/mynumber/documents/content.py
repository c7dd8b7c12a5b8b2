"""What a certificate document says, as data: the one thing that is rendered, signed, digested
and recorded.

A document's content is canonical JSON (sorted keys, no spaces, UTF-8). Its SHA-256 is the
document digest: the QR code carries it with the document id, the issuing municipality records
it with the issuance, and the PDF embeds the JSON itself inside the signed revision, so a
verifier compares three things that must agree — the signed JSON, the QR payload and the
record. Nothing here does I/O."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from mynumber.errors import ValidationError

__all__ = [
    "DOCUMENT_ID",
    "FORMAT",
    "DocumentContent",
    "DocumentKind",
    "PersonEntry",
    "SealEntry",
    "new_document_id",
    "parse_content",
    "qr_payload",
    "subject_digest",
]

FORMAT = "mynumber-document/1"
DOCUMENT_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
"""26 characters of Crockford base32: 130 random bits, never derived from time or a counter."""

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class DocumentKind(enum.StrEnum):
    residence = "juminhyo"  # 住民票の写し
    residence_items = "kisai_jiko"  # 住民票記載事項証明書
    seal = "inkan"  # 印鑑登録証明書

    @property
    def title_ja(self) -> str:
        return _TITLES[self][0]

    @property
    def title_en(self) -> str:
        return _TITLES[self][1]


_TITLES = {
    DocumentKind.residence: ("住民票の写し", "Copy of the residence record"),
    DocumentKind.residence_items: ("住民票記載事項証明書", "Certificate of residence record items"),
    DocumentKind.seal: ("印鑑登録証明書", "Certificate of seal registration"),
}


def new_document_id() -> str:
    """A fresh document id: 130 bits from the OS's CSPRNG (I1: no time, process or counter)."""
    value = secrets.randbits(130)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in range(25, -1, -1))


def subject_digest(key: bytes, municipality_code: str, resident_code: str) -> str:
    """The subject of a document, as a keyed digest of who they are in the register (HMAC-
    SHA-256 under the municipality's document key, hex). It names one person without printing
    a code anyone could look up, and the same person always gets the same digest."""
    message = f"subject|{municipality_code}|{resident_code}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class PersonEntry:
    """One person on a 住民票: always name, kana, birth date, sex and the day they became a
    resident; relationship (続柄), 本籍・筆頭者 and the individual number only when asked for."""

    name: str
    kana: str
    birth_date: str  # ISO
    sex: int  # 1 男, 2 女
    resident_since: str  # ISO: 住民となった年月日
    relationship: str | None = None
    individual_number: str | None = None
    domicile: str | None = None  # 本籍
    domicile_head: str | None = None  # 筆頭者


@dataclass(frozen=True, slots=True)
class SealEntry:
    """The registered seal a 印鑑登録証明書 certifies: its image and the image's SHA-256."""

    media_type: str
    image_digest: str
    image_b64: str


@dataclass(frozen=True, slots=True)
class DocumentContent:
    document_id: str
    kind: DocumentKind
    municipality_code: str
    municipality_name: str  # e.g. "東京都千代田区"
    issued_at: str  # ISO 8601 with +09:00
    postal_code: str
    address: str
    head_of_household: str | None
    people: tuple[PersonEntry, ...]
    seal: SealEntry | None
    subject: str  # subject_digest of the person the document is about
    channel: str  # "counter" | "kiosk"
    nonce: str | None = None  # the kiosk session's nonce (I1); None at the counter
    card: str | None = None  # SHA-256 of the authenticating card certificate (kiosk)
    format: str = FORMAT

    def to_json(self) -> bytes:
        """Canonical JSON: sorted keys, no whitespace, UTF-8."""
        return canonical_json(dataclasses.asdict(self))

    def digest(self) -> str:
        return hashlib.sha256(self.to_json()).hexdigest()


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def qr_payload(base_url: str, document_id: str, digest: str) -> str:
    """What the QR code says: the verify page's address with the document id and digest, so a
    phone camera opens the check of the issuance record."""
    return f"{base_url.rstrip('/')}/verify?id={document_id}&digest={digest}"


def _invalid(en: str, ja: str) -> ValidationError:
    return ValidationError("document.content", en, ja, field="document")


def _is(value: object, kind: type, optional: bool = False) -> None:
    if value is None and optional:
        return
    if type(value) is not kind:  # not isinstance: True is not a sex code
        raise TypeError(f"{kind.__name__} expected")


def _check_types(c: DocumentContent) -> None:
    """Anyone's file: every field must have its type, so nothing downstream meets a surprise."""
    for name in (
        "document_id",
        "municipality_code",
        "municipality_name",
        "issued_at",
        "postal_code",
        "address",
        "subject",
        "channel",
        "format",
    ):
        _is(getattr(c, name), str)
    for name in ("head_of_household", "nonce", "card"):
        _is(getattr(c, name), str, optional=True)
    dt.datetime.fromisoformat(c.issued_at)
    for p in c.people:
        for name in ("name", "kana", "birth_date", "resident_since"):
            _is(getattr(p, name), str)
        _is(p.sex, int)
        _is(p.relationship, str, optional=True)
        _is(p.individual_number, str, optional=True)
        _is(p.domicile, str, optional=True)
        _is(p.domicile_head, str, optional=True)
    if c.seal is not None:
        for name in ("media_type", "image_digest", "image_b64"):
            _is(getattr(c.seal, name), str)


def parse_content(data: bytes) -> DocumentContent:
    """The content embedded in a document, checked for shape; ``document.content`` (422)
    otherwise. Its digest is over `data` as given, so a re-encoded file does not match."""
    try:
        raw = json.loads(data.decode("utf-8"))
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise TypeError(raw.get("format") if isinstance(raw, dict) else raw)
        if canonical_json(raw) != data:
            raise ValueError("not canonical")
        people = tuple(PersonEntry(**p) for p in raw.pop("people"))
        seal_raw = raw.pop("seal")
        seal = None if seal_raw is None else SealEntry(**seal_raw)
        kind = DocumentKind(raw.pop("kind"))
        content = DocumentContent(kind=kind, people=people, seal=seal, **raw)
        _check_types(content)
    except (UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise _invalid(
            "The document's embedded content is not a mynumber document.",
            "文書に埋め込まれた内容はmynumberの証明書ではありません。",
        ) from exc
    if not DOCUMENT_ID.fullmatch(content.document_id):
        raise _invalid("The document id is malformed.", "文書IDの形式が正しくありません。")
    return content

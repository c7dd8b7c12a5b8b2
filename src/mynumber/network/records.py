"""The network's messages, as bytes that are signed or logged. Pure.

**Exchange request** (情報照会), signed by the requesting agency with its registered Ed25519 key::

    {"v": 1, "request_id": "<uuid>", "requester": "<agency id>", "task": "<task id>",
     "provider": "<agency id>", "item": "<item id>", "subject_code": "<requester's code>",
     "issued_at": "<RFC 3339 UTC>"}

**Access record** (情報提供等の記録), one leaf of the transparency log::

    {"v": 1, "type": "exchange", "request_id": …, "at": "<RFC 3339 UTC>",
     "requester": …, "task": …, "provider": …, "item": …,
     "basis": "<legal-basis id>" | null, "outcome": "provided" | "not_held" | "refused",
     "reason": "<refusal code>" | null, "subject": "<hex commitment>" | null}

**Issuance record** (a certificate issued by a municipality, DESIGN I6), the same members with
``"type": "issuance"``, one for each person the document shows: ``request_id`` is the document
id for its subject and ``DOCUMENT_ID-n`` for the n-th other household member printed, ``requester``
the kiosk id (kiosk) or
the issuing municipality's code (counter: the operator is not named), ``task``
``certificate_issuance``, ``provider`` the municipality code, ``item`` the document kind,
``basis`` the statute (``juki_act_12``: 住民基本台帳法12条; ``seal_ordinance``: the
municipality's 印鑑条例), ``outcome`` ``provided``, ``reason`` null, and the subject commitment
of the person the record is about. Never a name, resident code or number.

All are canonical JSON (keys sorted, no spaces, UTF-8), so the same content is always the same
bytes: what the agency signed is what the network checks, and what the log holds is what a
person's verifier re-hashes.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "ISSUANCE_TASK",
    "OUTCOMES",
    "RECORD_TYPES",
    "SIGNING_CONTEXT",
    "AccessRecord",
    "ExchangeRequest",
    "Provision",
    "RecordError",
    "canonical",
    "parse_time",
    "rfc3339",
]

OUTCOMES = ("provided", "not_held", "refused")
RECORD_TYPES = ("exchange", "issuance")
ISSUANCE_TASK = "certificate_issuance"
"""The task of every issuance record: no agency's task (the legal-basis table) is named so."""

SIGNING_CONTEXT = b"mynumber exchange request v1\x00"
"""Prefixed to the request bytes before signing: a signature made for anything else never
passes as a request."""


@dataclass(frozen=True, slots=True)
class Provision:
    """A provider's answer: the value, or that it holds nothing for that person and item."""

    held: bool
    value: Any = None


_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}\Z")  # not "$": it lets a final newline through
_MAX_BYTES = 4096


class RecordError(ValueError):
    """A message that is not well formed; `field` names the part that is wrong."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field


def canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def rfc3339(t: dt.datetime) -> str:
    """UTC, milliseconds, ``Z``: one text per instant."""
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: Any, field: str) -> dt.datetime:
    if not isinstance(text, str) or not text.endswith("Z") or len(text) > 40:
        raise RecordError(field, "an RFC 3339 UTC time ending in Z")
    try:
        t = dt.datetime.fromisoformat(text[:-1] + "+00:00")
    except ValueError:
        raise RecordError(field, "an RFC 3339 UTC time ending in Z") from None
    return t


def _ident(doc: dict[str, Any], field: str) -> str:
    value = doc.get(field)
    if not isinstance(value, str) or not _ID.match(value):
        raise RecordError(field, "lower-case letters, digits, '_', '.', '-' (1–64)")
    return value


def _load(data: bytes, keys: set[str]) -> dict[str, Any]:
    if len(data) > _MAX_BYTES:
        raise RecordError("message", f"at most {_MAX_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise RecordError("message", "not JSON") from None
    if not isinstance(doc, dict):
        raise RecordError("message", "a JSON object")
    if set(doc) != keys:
        missing, extra = sorted(keys - set(doc)), sorted(set(doc) - keys)
        raise RecordError((missing or extra)[0], "missing" if missing else "not allowed")
    if doc["v"] != 1 or isinstance(doc["v"], bool):
        raise RecordError("v", "version 1")
    return doc


@dataclass(frozen=True, slots=True)
class ExchangeRequest:
    request_id: str
    requester: str
    task: str
    provider: str
    item: str
    subject_code: str
    issued_at: dt.datetime

    def to_bytes(self) -> bytes:
        doc = asdict(self)
        doc["issued_at"] = rfc3339(self.issued_at)
        doc["v"] = 1
        return canonical(doc)

    @classmethod
    def from_bytes(cls, data: bytes) -> ExchangeRequest:
        fields = {"v", "request_id", "requester", "task", "provider", "item", "subject_code"}
        doc = _load(data, fields | {"issued_at"})
        rid = doc["request_id"]
        try:
            if not isinstance(rid, str) or str(uuid.UUID(rid)) != rid:
                raise ValueError
        except ValueError:
            raise RecordError("request_id", "a UUID in its canonical lower-case form") from None
        code = doc["subject_code"]
        if not isinstance(code, str) or not 1 <= len(code) <= 64:
            raise RecordError("subject_code", "an agency code")
        return cls(
            rid,
            _ident(doc, "requester"),
            _ident(doc, "task"),
            _ident(doc, "provider"),
            _ident(doc, "item"),
            code,
            parse_time(doc["issued_at"], "issued_at"),
        )

    @classmethod
    def new(
        cls, requester: str, task: str, provider: str, item: str, code: str, now: dt.datetime
    ) -> ExchangeRequest:
        return cls(str(uuid.uuid4()), requester, task, provider, item, code, now)


@dataclass(frozen=True, slots=True)
class AccessRecord:
    request_id: str
    at: dt.datetime
    requester: str
    task: str
    provider: str
    item: str
    basis: str | None
    outcome: str
    reason: str | None
    subject: bytes | None
    type: str = "exchange"

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "type": self.type,
            "request_id": self.request_id,
            "at": rfc3339(self.at),
            "requester": self.requester,
            "task": self.task,
            "provider": self.provider,
            "item": self.item,
            "basis": self.basis,
            "outcome": self.outcome,
            "reason": self.reason,
            "subject": None if self.subject is None else self.subject.hex(),
        }

    def to_bytes(self) -> bytes:
        return canonical(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes) -> AccessRecord:
        keys = {"v", "type", "request_id", "at", "requester", "task", "provider", "item"}
        doc = _load(data, keys | {"basis", "outcome", "reason", "subject"})
        if doc["type"] not in RECORD_TYPES:
            raise RecordError("type", " | ".join(RECORD_TYPES))
        if doc["outcome"] not in OUTCOMES:
            raise RecordError("outcome", " | ".join(OUTCOMES))
        for f in ("request_id", "requester", "task", "provider", "item"):
            if not isinstance(doc[f], str):
                raise RecordError(f, "a string")
        for f in ("basis", "reason"):
            if doc[f] is not None and not isinstance(doc[f], str):
                raise RecordError(f, "a string or null")
        subject = doc["subject"]
        try:
            raw = None if subject is None else bytes.fromhex(subject)
        except (TypeError, ValueError):
            raw = b""
        if raw is not None and len(raw) != 32:
            raise RecordError("subject", "32 bytes of hex or null")
        return cls(
            doc["request_id"],
            parse_time(doc["at"], "at"),
            doc["requester"],
            doc["task"],
            doc["provider"],
            doc["item"],
            doc["basis"],
            doc["outcome"],
            doc["reason"],
            raw,
            doc["type"],
        )

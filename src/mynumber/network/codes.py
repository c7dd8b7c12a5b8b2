"""Agency codes (機関別符号) and per-person commitments, derived under keys only the network
holds. Pure.

- A person's **pseudonym** inside the network is ``HMAC-SHA256(k_person, resident_code)``: the
  network never stores the resident record code, and never sees the individual number (I5).
- An agency's **code** for a person is ``HMAC-SHA256(k_code, agency_id ‖ 0 ‖ pseudonym)``,
  written as 26 characters of Crockford-style base32 (128 bits). Codes of two agencies for the same
  person are unrelated to anyone without ``k_code``; translating one into the other is a lookup
  the network alone can make.
- A record's **subject commitment** is ``SHA-256("mynumber subject v1" ‖ pseudonym ‖ request_id)``:
  each record about a person carries a different value, so the public log shows neither who a
  record is about nor which records are about the same person; the person, told their pseudonym,
  recomputes it for every record they are shown.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

__all__ = [
    "CODE_PATTERN",
    "agency_code",
    "is_code",
    "pseudonym",
    "subject_commitment",
]

CODE_LENGTH = 26
CODE_PATTERN = r"[0-9A-HJKMNP-TV-Z]{26}"
_CODE_RE = re.compile(CODE_PATTERN)
# RFC 4648 base32 alphabet → Crockford's (no I, L, O, U): unambiguous when read aloud or typed.
_TO_CROCKFORD = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)
_SUBJECT_DOMAIN = b"mynumber subject v1"


def pseudonym(person_key: bytes, resident_code: str) -> bytes:
    """The network's name for a person: 32 bytes, stable, unlinkable without `person_key`."""
    return hmac.new(person_key, b"person\x00" + resident_code.encode("ascii"), "sha256").digest()


def agency_code(code_key: bytes, agency_id: str, person: bytes) -> str:
    """The code agency `agency_id` knows the person with pseudonym `person` by."""
    mac = hmac.new(code_key, agency_id.encode("utf-8") + b"\x00" + person, "sha256").digest()
    return base64.b32encode(mac[:16]).decode("ascii").rstrip("=").translate(_TO_CROCKFORD)


def is_code(text: str) -> bool:
    return bool(_CODE_RE.fullmatch(text))


def subject_commitment(person: bytes, request_id: str) -> bytes:
    """What an access record says about whom it concerns (see the module docstring)."""
    return hashlib.sha256(_SUBJECT_DOMAIN + person + request_id.encode("utf-8")).digest()

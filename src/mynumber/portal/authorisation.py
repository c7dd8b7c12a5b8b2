"""What the card signs to authorise one account registration (DESIGN I4). Pure.

The portal does not let a login session write anything for a person. Each registration is
authorised by that person's card in that transaction: the portal issues a *statement* naming
the account and a fresh single-use nonce, the person's card signs it with the user-authentication
key after the 4-digit PIN (:meth:`mynumber.card.Chip.authenticate`), and the registration carries
the statement, the certificate and the signature. What is registered is exactly what was
signed — the account comes from the statement, never from a separate field.

The statement is canonical JSON (sorted keys, no spaces, ASCII with ``\\u`` escapes) of at most
1 KiB, the most a card signs as a challenge; :func:`AccountStatement.parse` accepts only the
exact bytes :meth:`AccountStatement.to_bytes` writes, so one registration has one encoding.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from mynumber.portal.accounts import Account, parse_account

__all__ = [
    "HOLDER_KANA_MAX",
    "REGISTRATION_PURPOSE",
    "STATEMENT_MAX_BYTES",
    "AccountStatement",
    "clean_holder_kana",
]

REGISTRATION_PURPOSE = "portal-account-registration"
STATEMENT_MAX_BYTES = 1024
HOLDER_KANA_MAX = 60
"""Characters of a holder's name as a bank writes it (a Zengin transfer allows 30 half-width
characters; 60 leaves room for full-width forms)."""
_KEYS = {"bank", "branch", "holder_kana", "nonce", "number", "purpose"}
_NONCE = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes, base64url without padding


def clean_holder_kana(text: str) -> str:
    """The holder's name as given, trimmed; ValueError if empty, too long, or holding control
    characters (a name never needs them)."""
    value = text.strip()
    if not value:
        raise ValueError("holder_kana: the account holder's name is required")
    if len(value) > HOLDER_KANA_MAX:
        raise ValueError(f"holder_kana: at most {HOLDER_KANA_MAX} characters")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 for c in value):
        raise ValueError("holder_kana: control characters are not part of a name")
    return value


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class AccountStatement:
    """“Register this account, held in this name, as my public-funds account” — with the
    nonce of the challenge it answers."""

    nonce: bytes
    account: Account
    holder_kana: str

    def to_bytes(self) -> bytes:
        """The statement the person's card signs."""
        return json.dumps(
            {
                "bank": self.account.bank,
                "branch": self.account.branch,
                "holder_kana": self.holder_kana,
                "nonce": _b64url(self.nonce),
                "number": self.account.number,
                "purpose": REGISTRATION_PURPOSE,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
        ).encode("ascii")

    @classmethod
    def parse(cls, statement: bytes) -> AccountStatement:
        """The registration `statement` states; ValueError unless it is exactly as
        :meth:`to_bytes` writes it."""
        if len(statement) > STATEMENT_MAX_BYTES:
            raise ValueError("a statement is at most 1 KiB")
        try:
            data = json.loads(statement.decode("ascii"))
        except RecursionError:
            raise ValueError("not a statement") from None
        if not isinstance(data, dict) or set(data) != _KEYS:
            raise ValueError("unexpected members")
        if not all(isinstance(v, str) for v in data.values()):
            raise ValueError("members are strings")
        if data["purpose"] != REGISTRATION_PURPOSE:
            raise ValueError("another purpose")
        if not _NONCE.fullmatch(data["nonce"]):
            raise ValueError("malformed nonce")
        try:
            nonce = base64.urlsafe_b64decode(data["nonce"] + "=")
        except (binascii.Error, ValueError):
            raise ValueError("malformed nonce") from None
        parsed = cls(
            nonce,
            parse_account(data["bank"], data["branch"], data["number"]),
            clean_holder_kana(data["holder_kana"]),
        )
        if parsed.to_bytes() != statement:
            raise ValueError("not in canonical form")
        return parsed

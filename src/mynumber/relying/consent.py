"""The holder's consent to 基本4情報提供: the statement a verifier asks the card to sign.

Since 2024 J-LIS gives a registered signature verifier the *latest* four basic items of a
person whose signature certificate it once relied on, with that person's consent (facts §4).
Here the consent is a short statement — this verifier, that old signature certificate, a fresh
nonce and the time — signed with the holder's user-authentication key after the 4-digit PIN
(:meth:`mynumber.card.Chip.authenticate`): the person's card authorises this one provision
(DESIGN I4). The statement is canonical JSON (sorted keys, no spaces, ASCII) of at most 1 KiB,
the most a card signs as a challenge.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from dataclasses import dataclass

__all__ = ["CONSENT_PURPOSE", "FourItemsConsent"]

CONSENT_PURPOSE = "jpki-four-items"
_MAX_BYTES = 1024
_HEX = re.compile(r"[0-9A-F]{1,40}")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KEYS = {"nonce", "purpose", "signature_serial", "time", "verifier"}


@dataclass(frozen=True, slots=True)
class FourItemsConsent:
    """Consent for `verifier` to receive the latest four items behind `signature_serial`."""

    verifier: str
    signature_serial: int
    nonce: str
    time: dt.datetime

    @classmethod
    def new(cls, verifier: str, signature_serial: int, at: dt.datetime) -> FourItemsConsent:
        """A consent with a fresh random nonce, dated `at` (to the second, UTC)."""
        return cls(
            verifier,
            signature_serial,
            secrets.token_urlsafe(16),
            at.astimezone(dt.UTC).replace(microsecond=0),
        )

    def to_bytes(self) -> bytes:
        """The statement the holder's card signs."""
        return json.dumps(
            {
                "nonce": self.nonce,
                "purpose": CONSENT_PURPOSE,
                "signature_serial": f"{self.signature_serial:X}",
                "time": self.time.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "verifier": self.verifier,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode("ascii")

    @classmethod
    def parse(cls, statement: bytes) -> FourItemsConsent:
        """The consent `statement` states; ValueError unless it is exactly as :meth:`to_bytes`
        writes it (so that two encodings of one consent cannot both be used)."""
        if len(statement) > _MAX_BYTES:
            raise ValueError("a consent statement is at most 1 KiB")
        data = json.loads(statement.decode("ascii"))
        if not isinstance(data, dict) or set(data) != _KEYS:
            raise ValueError("unexpected members")
        if data["purpose"] != CONSENT_PURPOSE:
            raise ValueError("another purpose")
        serial, verifier, nonce, when = (
            data["signature_serial"],
            data["verifier"],
            data["nonce"],
            data["time"],
        )
        if not all(isinstance(v, str) for v in (serial, verifier, nonce, when)):
            raise ValueError("members are strings")
        if not _HEX.fullmatch(serial) or not _ID.fullmatch(verifier) or not _ID.fullmatch(nonce):
            raise ValueError("malformed member")
        consent = cls(
            verifier,
            int(serial, 16),
            nonce,
            dt.datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC),
        )
        if consent.to_bytes() != statement:
            raise ValueError("not in canonical form")
        return consent

"""The platform's own login with the card (利用者証明): challenges, verification, sessions.

The relying-party SDK (:class:`~mynumber.relying.login.LoginVerifier`) does the protocol; this
module wires it for the platform's services (the portal, later): challenges in J-LIS's database
(``login_challenges``, shared by every worker), the CA of this deployment as the trust anchor,
revocation read in process, and J-LIS's own map from certificate serial to resident.

A session is an opaque token: AES-GCM under a key of the J-LIS keystore, holding the serial, the
resident record code and the expiry. Nothing in it can be read or altered without the key, so a
client learns neither whose it is nor how to extend it. It expires after :data:`SESSION_TTL`
and never outlives the certificate. (The portal will add revocation of sessions and I4's
per-transaction card authorisation on top.)
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mynumber.clock import Clock
from mynumber.jlis import models as m
from mynumber.jlis.pki import PkiService, serial_hex
from mynumber.keystore import Keystore
from mynumber.relying.errors import relying_error
from mynumber.relying.login import Challenge, LoginVerifier, SqlChallengeStore
from mynumber.relying.ocsp_client import LocalStatusSource
from mynumber.relying.verify import CertificateInput, Trust

__all__ = ["SESSION_TTL", "LoginSession", "PlatformLogin"]

SESSION_TTL = dt.timedelta(minutes=15)
_PREFIX = "mns_"
_AAD = b"mynumber login session v1"


@dataclass(frozen=True, slots=True, repr=False)
class LoginSession:
    """An authenticated session: whose card, which certificate, until when."""

    token: str
    serial: int
    resident_code: str
    expires_at: dt.datetime
    certificate_not_after: dt.datetime

    def __repr__(self) -> str:
        return f"LoginSession(serial={self.serial:X}, expires_at={self.expires_at.isoformat()})"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PlatformLogin:
    """Card login for the platform's own services."""

    def __init__(self, pki: PkiService, keystore: Keystore, clock: Clock) -> None:
        self._pki = pki
        self._clock = clock
        self._aead = AESGCM(keystore.secret("jlis-login-session"))
        self.verifier = LoginVerifier(
            SqlChallengeStore(pki.engine, m.login_challenges),
            trust=Trust(pki.ca.issuing_cert, pki.ca.root_cert),
            status=LocalStatusSource(pki.status),
            clock=clock,
        )

    def challenge(self) -> Challenge:
        return self.verifier.challenge()

    def login(self, nonce: bytes, certificate: CertificateInput, signature: bytes) -> LoginSession:
        """A session for the holder of `certificate` once the card's answer verifies."""
        result = self.verifier.verify(nonce, certificate, signature)
        holder = self._pki.holder_of(result.serial)
        if holder is None:
            raise relying_error("login.holder_unknown")
        now = self._clock.now().astimezone(dt.UTC).replace(microsecond=0)
        expires_at = min(now + SESSION_TTL, result.not_after)
        payload = json.dumps(
            {
                "serial": serial_hex(result.serial),
                "resident_code": holder,
                "expires_at": expires_at.isoformat(),
                "not_after": result.not_after.isoformat(),
            },
            separators=(",", ":"),
        ).encode()
        nonce_gcm = secrets.token_bytes(12)
        token = _PREFIX + _b64url(nonce_gcm + self._aead.encrypt(nonce_gcm, payload, _AAD))
        return LoginSession(token, result.serial, holder, expires_at, result.not_after)

    def open(self, token: str) -> LoginSession:
        """The session `token` stands for; ``login.session_invalid`` if altered or expired."""
        try:
            if not token.startswith(_PREFIX):
                raise ValueError("not a session token")
            blob = _unb64url(token[len(_PREFIX) :])
            data = json.loads(self._aead.decrypt(blob[:12], blob[12:], _AAD))
            session = LoginSession(
                token,
                int(data["serial"], 16),
                data["resident_code"],
                dt.datetime.fromisoformat(data["expires_at"]),
                dt.datetime.fromisoformat(data["not_after"]),
            )
        except (ValueError, KeyError, TypeError, InvalidTag, binascii.Error):
            raise relying_error("login.session_invalid") from None
        if self._clock.now() >= session.expires_at:
            raise relying_error("login.session_invalid")
        return session

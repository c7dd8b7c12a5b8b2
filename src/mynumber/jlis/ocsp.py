"""The JPKI OCSP responder's pure core (RFC 6960): a request in DER, a signed response out.

No HTTP and no storage: the adapter POSTs the body here and passes a `lookup` from serial number
to :class:`CertStatus` (backed by the certificate and revocation tables).

Responder — a **delegated OCSP signer** by default (RFC 6960 §4.2.2.2). The issuing CA certifies
a fresh P-256 key (extendedKeyUsage OCSPSigning, id-pkix-ocsp-nocheck, 7 days by default) when
the :class:`OcspResponder` first answers and again when half its life has passed; the key lives
only in the responder's memory and is never written anywhere, so each process (or restart) has
its own. The CA key then signs only certificates and CRLs, which keeps it usable from an HSM or
an offline box while the online responder signs at the request rate, and a leaked responder key
is worth a week at most — the reason its certificate may skip revocation checking (nocheck).
Every response carries the signer's certificate so a client that trusts the root can verify it
(`openssl ocsp … -CAfile chain.pem` reports "Response verify OK"). The price, measured with
P-256 keys: ≈ 6,000 responses/s per core instead of ≈ 14,800/s and 945 bytes instead of 284 (the
embedded certificate), and a relying party verifies one more signature until it caches the
signer — enough for the national peak of low thousands of checks per second on one or two
cores. ``delegated=False`` signs with the issuing CA's key instead (no certificate attached).

Answers:

- a request that does not parse, asks about several certificates at once (cryptography reads a
  single request only; `openssl ocsp` sends one), uses an unsupported CertID hash, or carries a
  nonce outside 1–32 octets (RFC 8954) → the unsigned status ``malformedRequest``;
- a CertID naming another issuer (issuer name or key hash differ) → a signed ``unknown``, as
  RFC 6960 §2.2 prescribes for issuers this responder does not serve;
- otherwise the lookup's answer: ``good``, ``revoked`` with the revocation time and reason
  (certificateHold for a suspension; no reason for "unspecified"), or ``unknown`` for a serial the
  CA never issued; a lookup that raises → ``internalError``;
- thisUpdate = now, nextUpdate = now + `response_validity` (1 hour by default, matching the CRL
  cadence the adapter chooses), the responder ID by key hash, and the request's nonce echoed.

producedAt is set by cryptography from the wall clock, not from the injected clock.
"""

from __future__ import annotations

import datetime as dt
import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp

from mynumber.clock import Clock
from mynumber.jlis.ca import CertificateAuthority, RevocationEntry

__all__ = ["CertStatus", "OcspResponder", "OcspStatus", "issuer_hashes", "ocsp_response"]


class OcspStatus(enum.StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CertStatus:
    """What the responder says about one serial number."""

    status: OcspStatus
    revoked_at: dt.datetime | None = None
    reason: x509.ReasonFlags = x509.ReasonFlags.unspecified

    def __post_init__(self) -> None:
        if (self.status is OcspStatus.REVOKED) != (self.revoked_at is not None):
            raise ValueError("a revoked status, and only that, has a revocation time")

    @classmethod
    def good(cls) -> CertStatus:
        return cls(OcspStatus.GOOD)

    @classmethod
    def unknown(cls) -> CertStatus:
        return cls(OcspStatus.UNKNOWN)

    @classmethod
    def revoked(cls, entry: RevocationEntry) -> CertStatus:
        return cls(OcspStatus.REVOKED, entry.revoked_at, entry.reason)


Lookup = Callable[[int], CertStatus]


def _subject_public_key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING's contents, which the CertID's issuerKeyHash digests."""
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    raise TypeError("CA keys are RSA or ECDSA")


@lru_cache(maxsize=32)
def issuer_hashes(issuer: x509.Certificate, algorithm: str) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of `issuer` under the hash called `algorithm`."""
    alg = _HASHES[algorithm]

    def digest(data: bytes) -> bytes:
        h = hashes.Hash(alg)
        h.update(data)
        return h.finalize()

    return digest(issuer.subject.public_bytes()), digest(_subject_public_key_bits(issuer))


_HASHES: dict[str, hashes.HashAlgorithm] = {
    h.name: h
    for h in (hashes.SHA1(), hashes.SHA224(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512())
}

Signer = Callable[[ocsp.OCSPResponseBuilder], ocsp.OCSPResponse]


def _der(response: ocsp.OCSPResponse) -> bytes:
    return response.public_bytes(serialization.Encoding.DER)


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return _der(ocsp.OCSPResponseBuilder.build_unsuccessful(status))


class LookupRefused(Exception):
    """Raised by a lookup when the client may not learn this certificate's status: the answer
    is the unsigned status ``unauthorized`` (RFC 6960 §2.3)."""


def ocsp_response(
    request_der: bytes,
    lookup: Lookup,
    *,
    issuer: x509.Certificate,
    sign: Signer,
    this_update: dt.datetime,
    next_update: dt.datetime | None,
) -> bytes:
    """The DER OCSP response to `request_der` for certificates of `issuer` (module docstring).

    `sign` completes a builder (responder ID, attached certificates) and signs it; see
    :class:`OcspResponder` for the delegated and the CA-signed forms. Never raises for a bad
    request: the answer is then an unsuccessful response.
    """
    try:
        request = ocsp.load_der_ocsp_request(request_der)
        algorithm = request.hash_algorithm
        name_hash, key_hash = issuer_hashes(issuer, algorithm.name)
        serial = request.serial_number
        nonce: bytes | None
        try:
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            nonce = None
    except (ValueError, UnsupportedAlgorithm, KeyError, NotImplementedError):
        return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    if nonce is not None and not 1 <= len(nonce) <= 32:
        return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)

    if (request.issuer_name_hash, request.issuer_key_hash) != (name_hash, key_hash):
        status = CertStatus.unknown()
    else:
        try:
            status = lookup(serial)
        except LookupRefused:  # this client may not ask about this certificate
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        except Exception:  # the protocol's answer to a failing back end
            return _unsuccessful(ocsp.OCSPResponseStatus.INTERNAL_ERROR)

    revoked_at = status.revoked_at
    revoked = revoked_at is not None
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=request.issuer_name_hash,
        issuer_key_hash=request.issuer_key_hash,
        serial_number=serial,
        algorithm=algorithm,
        cert_status={
            OcspStatus.GOOD: ocsp.OCSPCertStatus.GOOD,
            OcspStatus.REVOKED: ocsp.OCSPCertStatus.REVOKED,
            OcspStatus.UNKNOWN: ocsp.OCSPCertStatus.UNKNOWN,
        }[status.status],
        this_update=_utc(this_update),
        next_update=None if next_update is None else _utc(next_update),
        revocation_time=None if revoked_at is None else _utc(revoked_at),
        revocation_reason=(
            status.reason if revoked and status.reason is not x509.ReasonFlags.unspecified else None
        ),
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return _der(sign(builder))


def _utc(at: dt.datetime) -> dt.datetime:
    if at.tzinfo is None:
        raise ValueError("OCSP times must be timezone-aware")
    return at.astimezone(dt.UTC).replace(microsecond=0)


class OcspResponder:
    """Answers OCSP requests for `ca`'s certificates at the time `clock` gives.

    Thread-safe: the delegated signer is renewed under a lock, and answering is pure otherwise.
    """

    def __init__(
        self,
        ca: CertificateAuthority,
        clock: Clock,
        *,
        delegated: bool = True,
        response_validity: dt.timedelta = dt.timedelta(hours=1),
        signer_lifetime: dt.timedelta = dt.timedelta(days=7),
    ) -> None:
        self._ca = ca
        self._clock = clock
        self._delegated = delegated
        self._validity = response_validity
        self._lifetime = signer_lifetime
        self._lock = threading.Lock()
        self._signer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None

    def signer_certificate(self) -> x509.Certificate:
        """The certificate whose key signs the responses (the delegated signer, or the CA)."""
        if not self._delegated:
            return self._ca.issuing_cert
        return self._current_signer(self._clock.now())[0]

    def _current_signer(
        self, now: dt.datetime
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        with self._lock:
            signer = self._signer
            if signer is not None:
                cert = signer[0]
                half_life = (
                    cert.not_valid_before_utc
                    + (cert.not_valid_after_utc - cert.not_valid_before_utc) / 2
                )
                if cert.not_valid_before_utc <= now <= half_life:
                    return signer
            ca_cert = self._ca.issuing_cert
            # A few minutes' grace for clients whose clocks run slow, within the CA's own life.
            start = max(now - dt.timedelta(minutes=5), ca_cert.not_valid_before_utc)
            end = min(now + self._lifetime, ca_cert.not_valid_after_utc)
            self._signer = self._ca.issue_ocsp_signer(start, end)
            return self._signer

    def ocsp_response(self, request_der: bytes, lookup: Lookup) -> bytes:
        """The signed DER response to `request_der` (see :func:`ocsp_response`)."""
        now = _utc(self._clock.now())
        sign: Signer
        if self._delegated:
            cert, key = self._current_signer(now)

            def sign(builder: ocsp.OCSPResponseBuilder) -> ocsp.OCSPResponse:
                return (
                    builder.responder_id(ocsp.OCSPResponderEncoding.HASH, cert)
                    .certificates([cert])
                    .sign(key, hashes.SHA256())
                )

        else:
            sign = self._ca.sign_ocsp_response
        return ocsp_response(
            request_der,
            lookup,
            issuer=self._ca.issuing_cert,
            sign=sign,
            this_update=now,
            next_update=now + self._validity,
        )

"""A relying party's check of a JPKI signature or certificate (銀行・医療機関などの検証者).

:func:`verify_signature` answers one question — may this signature over these bytes be relied
on at this time — and names the first reason it may not, as a stable code:

1. the certificate parses (``pki.malformed``);
2. its chain leads to the trusted JPKI root (:func:`mynumber.jlis.ca.verify_chain`):
   ``pki.unknown_issuer`` (a foreign CA), ``pki.bad_signature`` (the certificate was altered),
   ``pki.expired``, ``pki.not_yet_valid``, ``pki.wrong_key_usage`` (the wrong kind: the
   user-authentication certificate used to sign, or the signature certificate to log in);
3. the signature over the data verifies with the certificate's key (``relying.signature_invalid``)
   — RSASSA-PKCS1-v1_5 with SHA-256 as the card makes it (ECDSA with SHA-256 for EC keys);
4. the certificate is not revoked, asked of a :class:`StatusSource` (OCSP over HTTP for a
   registered verifier, or in process for the platform itself): ``pki.revoked`` with the RFC 5280
   reason (``certificateHold`` while suspended), or an ``ocsp.*`` code when the status cannot be
   trusted or obtained — a certificate whose status is unknown is never accepted.

Network work comes last, so a forged or expired certificate costs no OCSP request. A valid
signature certificate yields its four basic items (:func:`~mynumber.jlis.ca.four_items_of`);
the user-authentication certificate has none, only its serial number and validity.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from mynumber.clock import JST
from mynumber.errors import MynumberError
from mynumber.jlis.ca import (
    CertificateKind,
    FourItems,
    four_items_of,
    load_certificate,
    verify_chain,
)
from mynumber.jlis.ocsp import CertStatus, OcspStatus
from mynumber.jlis.pki_errors import pki_error
from mynumber.relying.errors import relying_error

__all__ = [
    "CertificateInput",
    "SignatureVerification",
    "StatusSource",
    "Trust",
    "key_signed",
    "verify_authentication",
    "verify_certificate",
    "verify_signature",
]

CertificateInput = x509.Certificate | bytes
"""A certificate object, or its PEM or DER bytes."""


class StatusSource(Protocol):
    """Where a relying party learns whether a certificate is revoked.

    Returns the responder's answer about `certificate` (issued by `issuer`), checked for
    authenticity and freshness at `at`; raises a :class:`~mynumber.relying.errors.RelyingError`
    (``ocsp.*``) when no trustworthy answer can be had.
    """

    def check(
        self, certificate: x509.Certificate, issuer: x509.Certificate, at: dt.datetime
    ) -> CertStatus: ...


@dataclass(frozen=True, slots=True)
class Trust:
    """The trust anchors: the JPKI root (obtained out of band and pinned) and its issuing CA."""

    issuing: x509.Certificate
    root: x509.Certificate

    @classmethod
    def from_pem(cls, chain: bytes, *, root: x509.Certificate | None = None) -> Trust:
        """From the chain J-LIS publishes (``GET /api/jlis/ca``: the issuing CA, then the root).

        With `root`, the chain's root must be exactly that certificate (pin it). ValueError if
        the chain is not one self-signed root and one CA it issued.
        """
        return cls.from_certificates(x509.load_pem_x509_certificates(chain), root=root)

    @classmethod
    def from_certificates(
        cls, certificates: Sequence[x509.Certificate], *, root: x509.Certificate | None = None
    ) -> Trust:
        roots = [c for c in certificates if c.subject == c.issuer]
        others = [c for c in certificates if c.subject != c.issuer]
        if len(roots) != 1 or len(others) != 1 or others[0].issuer != roots[0].subject:
            raise ValueError("a JPKI chain is one self-signed root and the issuing CA it certified")
        if root is not None and roots[0] != root:
            raise ValueError("the chain's root is not the pinned root")
        return cls(issuing=others[0], root=roots[0])


@dataclass(frozen=True, slots=True)
class SignatureVerification:
    """The verdict: ``code`` is ``"ok"`` or the reason code of the first refusal."""

    code: str
    error: MynumberError | None = None
    serial: int | None = None
    """The certificate's serial number (when it parsed)."""
    not_after: dt.datetime | None = None
    """The certificate's last valid moment, UTC (when it parsed)."""
    four_items: FourItems | None = None
    """The basic items of a valid signature certificate; None otherwise."""

    @property
    def valid(self) -> bool:
        return self.error is None

    def raise_for_status(self) -> None:
        """Raise the refusal; return if the signature may be relied on."""
        if self.error is not None:
            raise self.error


def _refused(error: MynumberError, cert: x509.Certificate | None = None) -> SignatureVerification:
    if cert is None:
        return SignatureVerification(error.code, error)
    return SignatureVerification(error.code, error, cert.serial_number, cert.not_valid_after_utc)


def key_signed(key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm) -> bool:
    """Whether `signature` over `data` verifies with the public `key`: RSASSA-PKCS1-v1_5 for an
    RSA key, ECDSA for an EC key, with `algorithm`; any other key is refused."""
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def _signature_fits(cert: x509.Certificate, data: bytes, signature: bytes) -> bool:
    return key_signed(cert.public_key(), signature, data, hashes.SHA256())


def _revocation_error(status: CertStatus) -> MynumberError | None:
    if status.status is OcspStatus.GOOD:
        return None
    if status.status is OcspStatus.UNKNOWN or status.revoked_at is None:
        return relying_error("ocsp.unknown")
    return pki_error(
        "pki.revoked",
        extra={
            "revoked_at": status.revoked_at.isoformat(),
            "revocation_reason": status.reason.value,
            "on_hold": status.reason is x509.ReasonFlags.certificate_hold,
        },
    )


def verify_certificate(
    certificate: CertificateInput,
    *,
    trust: Trust | bytes,
    status: StatusSource,
    at: dt.datetime,
    kind: CertificateKind,
    signed: tuple[bytes, bytes] | None = None,
) -> SignatureVerification:
    """Check `certificate` for use as `kind` at `at` (steps 1, 2 and 4 of the module docstring),
    and, with `signed` = (data, signature), that the signature over the data verifies (step 3).

    `trust` is a :class:`Trust`, or the chain PEM it is read from (ValueError if malformed)."""
    if isinstance(trust, bytes):
        trust = Trust.from_pem(trust)
    if at.tzinfo is None:  # as everywhere in the platform, a naive time is Japan time
        at = at.replace(tzinfo=JST)
    try:
        cert = (
            certificate
            if isinstance(certificate, x509.Certificate)
            else load_certificate(certificate)
        )
    except MynumberError as exc:
        return _refused(exc)
    chain = verify_chain(cert, trust.issuing, trust.root, at, purpose=kind)
    if chain.error is not None:
        return _refused(chain.error, cert)
    if signed is not None and not _signature_fits(cert, *signed):
        return _refused(relying_error("relying.signature_invalid"), cert)
    try:
        four_items = four_items_of(cert) if kind is CertificateKind.SIGNATURE else None
        refusal = _revocation_error(status.check(cert, trust.issuing, at))
    except MynumberError as exc:
        return _refused(exc, cert)
    if refusal is not None:
        return _refused(refusal, cert)
    return SignatureVerification(
        "ok", None, cert.serial_number, cert.not_valid_after_utc, four_items
    )


def verify_signature(
    data: bytes,
    signature: bytes,
    certificate: CertificateInput,
    *,
    trust: Trust | bytes,
    status: StatusSource,
    at: dt.datetime,
    kind: CertificateKind = CertificateKind.SIGNATURE,
) -> SignatureVerification:
    """May `signature` over `data`, made with the key of `certificate`, be relied on at `at`?

    `kind` is the certificate the use calls for: the signature certificate (署名用) for a signed
    document or an eKYC (犯収法 method ワ), the user-authentication certificate (利用者証明用)
    for a login challenge. See the module docstring for the checks and their codes.
    """
    return verify_certificate(
        certificate, trust=trust, status=status, at=at, kind=kind, signed=(data, signature)
    )


def verify_authentication(
    data: bytes,
    signature: bytes,
    certificate: CertificateInput,
    *,
    trust: Trust | bytes,
    status: StatusSource,
    at: dt.datetime,
) -> tuple[int, dt.datetime]:
    """The serial and notAfter of the user-authentication certificate that signed `data` (a
    login challenge, a consent statement), or the refusal raised (``pki.*``, ``ocsp.*``,
    ``relying.*``)."""
    verdict = verify_signature(
        data, signature, certificate, trust=trust, status=status, at=at, kind=CertificateKind.AUTH
    )
    verdict.raise_for_status()
    assert verdict.serial is not None and verdict.not_after is not None
    return verdict.serial, verdict.not_after

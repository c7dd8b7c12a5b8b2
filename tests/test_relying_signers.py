"""Who may sign an OCSP response the SDK accepts: the issuing CA, or a responder it certified
for OCSPSigning — not any other certificate the same CA issued (a card holder's, say), nor an
OCSP signer of another CA; and the answer must be about this certificate of this issuer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cardkit import key_pool
from mynumber.clock import FixedClock
from mynumber.jlis.ca import CertificateAuthority
from mynumber.jlis.ocsp import OcspStatus
from mynumber.platform import Platform
from mynumber.relying import OcspClient, RelyingError, check_response
from relykit import make_holder

NONCE = b"0123456789abcdef"


def _signer(
    issuer: x509.Certificate, issuer_key: rsa.RSAPrivateKey, key: rsa.RSAPrivateKey,
    now: dt.datetime, usage: list[x509.ObjectIdentifier],
) -> x509.Certificate:  # fmt: skip
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "responder?")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def _response(
    cert: x509.Certificate, issuer: x509.Certificate, signer: x509.Certificate,
    key: rsa.RSAPrivateKey, now: dt.datetime,
) -> bytes:  # fmt: skip
    return (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert,
            issuer=issuer,
            algorithm=hashes.SHA256(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=now,
            next_update=now + dt.timedelta(hours=1),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, signer)
        .certificates([signer])
        .add_extension(x509.OCSPNonce(NONCE), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )


def test_only_a_delegated_responder_of_the_issuer_may_sign(
    platform: Platform, clock: FixedClock
) -> None:
    holder = make_holder(platform, clock)
    ca, now = platform.pki.ca, clock.now()
    cert, issuer = holder.signature_cert, ca.issuing_cert
    issuing_key = ca._issuing_key
    key = key_pool()[0]

    def code(der: bytes, **kw: object) -> str:
        args: dict[str, object] = {"issuer": issuer} | kw
        with pytest.raises(RelyingError) as raised:
            check_response(der, cert, at=now, nonce=NONCE, **args)  # type: ignore[arg-type]
        return raised.value.code

    delegated = _signer(issuer, issuing_key, key, now, [ExtendedKeyUsageOID.OCSP_SIGNING])
    good = _response(cert, issuer, delegated, key, now)
    assert check_response(good, cert, issuer, now, nonce=NONCE).status is OcspStatus.GOOD
    # Issued by the same CA, but not for OCSP signing (as a holder's certificate is).
    client = _signer(issuer, issuing_key, key, now, [ExtendedKeyUsageOID.CLIENT_AUTH])
    assert code(_response(cert, issuer, client, key, now)) == "ocsp.bad_signature"
    # For OCSP signing, but certified by another CA under the same name.
    foreign = CertificateAuthority.create(
        now=now - dt.timedelta(days=1), crl_url="http://x/crl", ocsp_url="http://x/ocsp"
    )
    alien = _signer(issuer, foreign._issuing_key, key, now, [ExtendedKeyUsageOID.OCSP_SIGNING])
    assert code(_response(cert, issuer, alien, key, now)) == "ocsp.bad_signature"
    # An authentic answer about this serial, but asked of another issuer.
    assert code(good, issuer=foreign.issuing_cert) == "ocsp.mismatch"


def test_an_oversized_or_failed_answer_is_unavailable(
    platform: Platform, clock: FixedClock
) -> None:
    holder = make_holder(platform, clock)
    issuer = platform.pki.ca.issuing_cert
    sent: list[int] = []

    def huge(request: httpx.Request) -> httpx.Response:
        def stream() -> Iterator[bytes]:
            for _ in range(1024):  # 64 MiB offered; the client stops after 64 KiB
                sent.append(1)
                yield b"\0" * 65536

        return httpx.Response(200, content=stream())

    def refused(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, content=b"no")

    for handler, expected in ((huge, "ocsp.unavailable"), (refused, "ocsp.unauthorised")):
        client = OcspClient("t", "http://jlis.invalid/ocsp",
                            client=httpx.Client(transport=httpx.MockTransport(handler)))  # fmt: skip
        with pytest.raises(RelyingError) as raised:
            client.check(holder.signature_cert, issuer, clock.now())
        assert raised.value.code == expected
    assert len(sent) <= 2

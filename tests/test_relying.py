"""The relying party's SDK against the real platform: signatures made by real chips, certificates
from the platform's CA, revocation over real HTTP OCSP (uvicorn on 127.0.0.1) — on SQLite and
PostgreSQL. `openssl dgst` checks the chip's signatures independently."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from mynumber.clock import JST, FixedClock
from mynumber.jlis.ca import CertificateAuthority, CertificateKind, RevocationEvent
from mynumber.jlis.ocsp import CertStatus, OcspResponder, OcspStatus
from mynumber.platform import Platform
from mynumber.relying import (
    LocalStatusSource,
    OcspClient,
    RelyingError,
    Trust,
    check_response,
    verify_signature,
)
from mynumber.relying.ocsp_client import build_request
from relykit import make_holder, serve, trust_of, verifier_token

DATA = "口座開設の申込み（犯収法 施行規則6条1項1号ワ）".encode()
OPENSSL = shutil.which("openssl")
PEM = serialization.Encoding.PEM


def local(p: Platform) -> LocalStatusSource:
    return LocalStatusSource(p.pki.status)


def client_for(url: str, token: str) -> OcspClient:
    return OcspClient(token, f"{url}/api/jlis/ocsp", trust_env=False)


def test_a_chip_signature_verifies_over_http_ocsp_and_yields_the_four_items(
    platform: Platform, clock: FixedClock
) -> None:
    holder = make_holder(platform, clock)
    signature = holder.sign(DATA)
    _, token = verifier_token(platform)
    with serve(platform) as url:
        verdict = verify_signature(
            DATA,
            signature,
            holder.signature_cert.public_bytes(PEM),
            trust=trust_of(platform),
            status=client_for(url, token),
            at=clock.now(),
        )
    assert verdict.valid and verdict.code == "ok", verdict.error
    verdict.raise_for_status()
    assert verdict.four_items == holder.items
    assert verdict.serial == holder.signature_cert.serial_number
    assert verdict.not_after == holder.signature_cert.not_valid_after_utc


def test_foreign_expired_and_tampered_certificates_are_refused_with_distinct_reasons(
    platform: Platform, clock: FixedClock
) -> None:
    holder = make_holder(platform, clock)
    signature = holder.sign(DATA)
    trust, status, now = trust_of(platform), local(platform), clock.now()
    cert = holder.signature_cert
    foreign_ca = CertificateAuthority.create(
        now=now - dt.timedelta(days=1),
        crl_url="http://other.example/crl",
        ocsp_url="http://other.example/ocsp",
        organisation="Some Other CA",
    )
    # The same key and items, certified by another CA: the signature itself is good.
    foreign = foreign_ca.issue_signature_certificate(
        cert.public_key(), holder.items, now, now + dt.timedelta(days=365)
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    tampered = der.replace(b'"birth_date":"1985-06-15"', b'"birth_date":"1986-06-15"')
    assert tampered != der

    def code(certificate: x509.Certificate | bytes, at: dt.datetime = now) -> str:
        return verify_signature(
            DATA, signature, certificate, trust=trust, status=status, at=at
        ).code

    after_expiry = cert.not_valid_after_utc + dt.timedelta(seconds=1)
    codes = {
        "foreign": code(foreign),
        "expired": code(cert, after_expiry),
        "tampered": code(tampered),
        "not_yet_valid": code(cert, cert.not_valid_before_utc - dt.timedelta(minutes=1)),
        "garbage": code(b"not a certificate"),
    }
    assert codes == {
        "foreign": "pki.unknown_issuer",
        "expired": "pki.expired",
        "tampered": "pki.bad_signature",
        "not_yet_valid": "pki.not_yet_valid",
        "garbage": "pki.malformed",
    }
    assert code(cert) == "ok"


def test_altered_data_wrong_kind_and_unknown_certificates_are_refused(
    platform: Platform, clock: FixedClock
) -> None:
    holder = make_holder(platform, clock)
    trust, status, now = trust_of(platform), local(platform), clock.now()
    signature = holder.sign(DATA)
    altered = verify_signature(
        DATA + b"!", signature, holder.signature_cert, trust=trust, status=status, at=now
    )
    assert altered.code == "relying.signature_invalid"
    assert altered.four_items is None
    with pytest.raises(RelyingError) as raised:
        altered.raise_for_status()
    assert raised.value.code == "relying.signature_invalid" and raised.value.ja and raised.value.en

    # The user-authentication key signs anything after its PIN, but its certificate is for
    # logins, not signatures — and the signature certificate is not for logins.
    auth_signed = holder.authenticate(DATA)
    wrong = verify_signature(
        DATA, auth_signed, holder.auth_cert, trust=trust, status=status, at=now
    )
    assert wrong.code == "pki.wrong_key_usage"
    login_with_sig = verify_signature(
        DATA,
        signature,
        holder.signature_cert,
        trust=trust,
        status=status,
        at=now,
        kind=CertificateKind.AUTH,
    )
    assert login_with_sig.code == "pki.wrong_key_usage"

    # The chain PEM as it is published, and a naive time read as Japan time, are accepted.
    from_pem = verify_signature(
        DATA,
        signature,
        holder.signature_cert,
        trust=platform.pki.chain_pem(),
        status=status,
        at=now.astimezone(JST).replace(tzinfo=None),
    )
    assert from_pem.code == "ok"

    # Issued by the CA's key but never recorded by J-LIS: OCSP says unknown, and that refuses.
    stray = platform.pki.ca.issue_signature_certificate(
        holder.signature_cert.public_key(), holder.items, now, now + dt.timedelta(days=30)
    )
    assert verify_signature(DATA, signature, stray, trust=trust, status=status, at=now).code == (
        "ocsp.unknown"
    )


def test_revoked_and_suspended_certificates_are_refused_over_http_ocsp(
    platform: Platform, clock: FixedClock
) -> None:
    holder = make_holder(platform, clock)
    other = make_holder(platform, clock, given="二郎", chip_id="chip-b")
    signature, other_signature = holder.sign(DATA), other.sign(DATA)
    _, token = verifier_token(platform)
    trust = trust_of(platform)
    platform.pki.revoke_for_event(holder.resident_code, RevocationEvent.ADDRESS_CHANGE)
    platform.pki.revoke_for_event(other.resident_code, RevocationEvent.SUSPENSION)
    with serve(platform) as url:
        status = client_for(url, token)
        revoked = verify_signature(
            DATA, signature, holder.signature_cert, trust=trust, status=status, at=clock.now()
        )
        held = verify_signature(
            DATA, other_signature, other.signature_cert, trust=trust, status=status, at=clock.now()
        )
    assert revoked.code == held.code == "pki.revoked"
    assert revoked.error is not None and held.error is not None
    assert revoked.error.extra["revocation_reason"] == "affiliationChanged"
    assert revoked.error.extra["on_hold"] is False
    assert held.error.extra["revocation_reason"] == "certificateHold"
    assert held.error.extra["on_hold"] is True


def test_ocsp_refuses_unregistered_verifiers_and_unreachable_responders(
    platform: Platform, clock: FixedClock
) -> None:
    holder = make_holder(platform, clock)
    signature = holder.sign(DATA)
    trust, now = trust_of(platform), clock.now()
    vid, token = verifier_token(platform)
    from mynumber.api.auth import TokenStore

    scoped_only = TokenStore(platform.settings.data_dir / "tokens.json").create(
        "not-registered", ["jlis:verify"]
    )
    with serve(platform) as url:
        body = build_request(holder.signature_cert, trust.issuing, None)
        r = httpx.post(
            f"{url}/api/jlis/ocsp",
            content=body,
            headers={"Authorization": f"Bearer {scoped_only}"},
            trust_env=False,
        )
        assert (r.status_code, r.json()["code"]) == (403, "verifier.not_registered")
        refused = verify_signature(
            DATA,
            signature,
            holder.signature_cert,
            trust=trust,
            status=client_for(url, scoped_only),
            at=now,
        )
        assert refused.code == "ocsp.unauthorised"
        platform.verifiers.deactivate(vid)
        withdrawn = verify_signature(
            DATA,
            signature,
            holder.signature_cert,
            trust=trust,
            status=client_for(url, token),
            at=now,
        )
        assert withdrawn.code == "ocsp.unauthorised"
    # Nobody listens there any more: a bounded wait, then "unavailable", never "ok".
    closed = OcspClient(token, url + "/api/jlis/ocsp", timeout=httpx.Timeout(2.0), trust_env=False)
    unreachable = verify_signature(
        DATA, signature, holder.signature_cert, trust=trust, status=closed, at=now
    )
    assert unreachable.code == "ocsp.unavailable"


def _response(
    p: Platform, cert: x509.Certificate, nonce: bytes | None, responder: OcspResponder
) -> bytes:
    return responder.ocsp_response(build_request(cert, p.pki.ca.issuing_cert, nonce), p.pki.status)


def test_ocsp_responses_are_checked_for_signature_topic_nonce_and_freshness(
    platform: Platform, clock: FixedClock
) -> None:
    holder = make_holder(platform, clock)
    other = make_holder(platform, clock, given="二郎", chip_id="chip-b")
    cert, issuer, now = holder.signature_cert, platform.pki.ca.issuing_cert, clock.now()
    nonce = b"0123456789abcdef"
    good = _response(platform, cert, nonce, OcspResponder(platform.pki.ca, clock))
    assert check_response(good, cert, issuer, now, nonce=nonce).status is OcspStatus.GOOD
    # Signed by the issuing CA itself (no delegated signer) is fine too.
    by_ca = _response(platform, cert, nonce, OcspResponder(platform.pki.ca, clock, delegated=False))
    assert check_response(by_ca, cert, issuer, now, nonce=nonce).status is OcspStatus.GOOD

    def code(der: bytes, **kw: object) -> str:
        args: dict[str, object] = {"certificate": cert, "at": now, "nonce": nonce} | kw
        with pytest.raises(RelyingError) as raised:
            check_response(der, issuer=issuer, **args)  # type: ignore[arg-type]
        return raised.value.code

    foreign_ca = CertificateAuthority.create(
        now=now - dt.timedelta(days=1), crl_url="http://x/crl", ocsp_url="http://x/ocsp"
    )
    # A responder of another CA answering with our issuer's CertID: signature not ours.
    forged = OcspResponder(foreign_ca, clock).ocsp_response(
        build_request(cert, issuer, nonce), lambda _s: CertStatus.good()
    )
    flipped = bytearray(good)
    flipped[-5] ^= 0x01  # inside the signature
    assert code(forged) == "ocsp.bad_signature"
    assert code(bytes(flipped)) in {"ocsp.bad_signature", "ocsp.mismatch"}
    assert code(good, at=now + dt.timedelta(hours=2)) == "ocsp.stale"
    # Dated ahead of the verifier's clock by more than the skew (the CA's own signature, so
    # that the delegated signer's validity does not refuse it first).
    assert code(by_ca, at=now - dt.timedelta(minutes=10)) == "ocsp.stale"
    within_skew = check_response(by_ca, cert, issuer, now - dt.timedelta(minutes=4), nonce=nonce)
    assert within_skew.status is OcspStatus.GOOD
    # Before the delegated signer's certificate was valid: its signature does not count.
    assert code(good, at=now - dt.timedelta(hours=1)) == "ocsp.bad_signature"
    assert code(good, nonce=b"another-nonce-16") == "ocsp.mismatch"
    assert code(good, certificate=other.signature_cert) == "ocsp.mismatch"
    assert code(b"junk") == "ocsp.mismatch"
    unauthorised = ocsp.OCSPResponseBuilder.build_unsuccessful(
        ocsp.OCSPResponseStatus.UNAUTHORIZED
    ).public_bytes(serialization.Encoding.DER)
    internal = ocsp.OCSPResponseBuilder.build_unsuccessful(
        ocsp.OCSPResponseStatus.INTERNAL_ERROR
    ).public_bytes(serialization.Encoding.DER)
    assert code(unauthorised) == "ocsp.unauthorised"
    assert code(internal) == "ocsp.unavailable"


def test_trust_anchors_are_pinned(platform: Platform) -> None:
    chain = platform.pki.chain_pem()
    trust = Trust.from_pem(chain)
    assert (trust.issuing, trust.root) == (platform.pki.ca.issuing_cert, platform.pki.ca.root_cert)
    other = CertificateAuthority.create(
        now=dt.datetime.now(dt.UTC), crl_url="http://x/crl", ocsp_url="http://x/ocsp"
    )
    with pytest.raises(ValueError, match="pinned"):
        Trust.from_pem(chain, root=other.root_cert)
    with pytest.raises(ValueError):
        Trust.from_pem(platform.pki.ca.issuing_cert.public_bytes(PEM))


@pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")
def test_openssl_verifies_the_chips_signature_as_the_sdk_does(
    platform: Platform, clock: FixedClock, tmp_path: Path
) -> None:
    holder = make_holder(platform, clock)
    signature = holder.sign(DATA)
    (tmp_path / "data.bin").write_bytes(DATA)
    (tmp_path / "data.sig").write_bytes(signature)
    (tmp_path / "pub.pem").write_bytes(
        holder.signature_cert.public_key().public_bytes(
            PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (tmp_path / "bad.bin").write_bytes(DATA + b"!")

    def openssl_verify(data: str) -> subprocess.CompletedProcess[str]:
        assert OPENSSL is not None
        return subprocess.run(
            [OPENSSL, "dgst", "-sha256", "-verify", "pub.pem", "-signature", "data.sig", data],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )

    ok, bad = openssl_verify("data.bin"), openssl_verify("bad.bin")
    assert ok.returncode == 0 and "Verified OK" in ok.stdout
    assert bad.returncode != 0 and "Verification failure" in bad.stdout + bad.stderr
    trust, status = trust_of(platform), local(platform)
    assert verify_signature(
        DATA, signature, holder.signature_cert, trust=trust, status=status, at=clock.now()
    ).valid
    assert not verify_signature(
        DATA + b"!", signature, holder.signature_cert, trust=trust, status=status, at=clock.now()
    ).valid

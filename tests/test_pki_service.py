"""The JPKI CA wired into J-LIS: issued certificates stored, revoked per event, CRL and OCSP over
HTTP — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from fastapi.testclient import TestClient

from conftest import MUNI
from mynumber.api.app import create_app
from mynumber.api.auth import TokenStore
from mynumber.clock import FixedClock
from mynumber.config import Settings
from mynumber.jlis.ca import (
    CertificateKind,
    ChainStatus,
    FourItems,
    RevocationEvent,
    four_items_of,
    verify_chain,
)
from mynumber.jlis.ocsp import OcspStatus
from mynumber.jlis.pki import PkiService
from mynumber.jlis.pki_errors import PkiError
from mynumber.municipality.domain import EventKind
from mynumber.platform import Platform

BIRTH = dt.date(1985, 6, 15)
ADDRESS = "東京都新宿区西新宿二丁目8番1号"
ITEMS = FourItems("髙橋 一郎", ADDRESS, BIRTH, 1)


def register(p: Platform) -> str:
    payload: dict[str, Any] = {
        "family_name": "髙橋",
        "given_name": "一郎",
        "family_name_kana": "タカハシ",
        "given_name_kana": "イチロウ",
        "birth_date": BIRTH.isoformat(),
        "sex": "1",
        "address": ADDRESS,
    }
    rc: str = p.municipality.record(MUNI, EventKind.MOVE_IN, payload)[1]["resident_code"]
    return rc


def card_keys() -> tuple[ec.EllipticCurvePrivateKey, ec.EllipticCurvePrivateKey]:
    return ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())


def issue_both(
    p: Platform, rc: str, clock: FixedClock
) -> tuple[x509.Certificate, x509.Certificate, ec.EllipticCurvePrivateKey]:
    sig_key, auth_key = card_keys()
    today = clock.today()
    sig = p.pki.issue("signature", rc, sig_key.public_key(), ITEMS, BIRTH, today, chip_id="chip-1")
    auth = p.pki.issue("authentication", rc, auth_key.public_key(), None, BIRTH, today)
    return sig, auth, sig_key


def client_and_token(p: Platform) -> tuple[TestClient, str]:
    verifier = p.verifiers.register("verifier", ["signature", "auth"])
    token = TokenStore(p.settings.data_dir / "tokens.json").create(
        "verifier", ["jlis:verify"], verifier=verifier.id
    )
    return TestClient(create_app(p)), token


def ocsp_request(p: Platform, cert: x509.Certificate, nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        cert, p.pki.ca.issuing_cert, hashes.SHA256()
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def ask_ocsp(
    client: TestClient, token: str, p: Platform, cert: x509.Certificate
) -> ocsp.OCSPResponse:
    r = client.post(
        "/api/jlis/ocsp",
        content=ocsp_request(p, cert, b"nonce-1234"),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/ocsp-request"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/ocsp-response"
    resp = ocsp.load_der_ocsp_response(r.content)
    assert resp.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert resp.serial_number == cert.serial_number
    # Signed by the delegated responder, which the issuing CA certified.
    signer = resp.certificates[0]
    signer.verify_directly_issued_by(p.pki.ca.issuing_cert)
    key = signer.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
    assert resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"nonce-1234"
    return resp


def fetch_crl(client: TestClient, p: Platform) -> x509.CertificateRevocationList:
    r = client.get("/api/jlis/crl")  # public: no token
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(r.content)
    ca_key = p.pki.ca.issuing_cert.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(ca_key)
    return crl


def test_issued_certificates_are_stored_and_a_signature_verifies(
    platform: Platform, clock: FixedClock
) -> None:
    rc = register(platform)
    sig, auth, sig_key = issue_both(platform, rc, clock)

    stored = platform.pki.certificates(rc)
    assert sorted((c.kind, c.status) for c in stored) == [
        (CertificateKind.AUTH, "valid"),
        (CertificateKind.SIGNATURE, "valid"),
    ]
    by_serial = {c.serial: c for c in stored}
    assert by_serial[sig.serial_number].chip_id == "chip-1"
    assert by_serial[sig.serial_number].certificate() == sig
    assert by_serial[auth.serial_number].chip_id is None
    # Valid to the end (JST) of the day before the 5th birthday after issue: 2031-06-15.
    assert sig.not_valid_after_utc == dt.datetime(2031, 6, 15, 14, 59, 59, tzinfo=dt.UTC)
    assert four_items_of(sig) == ITEMS
    assert platform.pki.status(sig.serial_number).status is OcspStatus.GOOD
    assert platform.pki.status(12345).status is OcspStatus.UNKNOWN

    # A fresh signature made with the card key verifies, and the chain leads to the root.
    ca = platform.pki.ca
    data = b"bank eKYC challenge"
    signature = sig_key.sign(data, ec.ECDSA(hashes.SHA256()))
    leaf_key = sig.public_key()
    assert isinstance(leaf_key, ec.EllipticCurvePublicKey)
    leaf_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    ok = verify_chain(
        sig, ca.issuing_cert, ca.root_cert, clock.now(), purpose=CertificateKind.SIGNATURE
    )
    assert ok.status is ChainStatus.OK
    # The URLs point at this deployment's routes.
    assert ca.crl_url == "http://127.0.0.1:8000/api/jlis/crl"
    assert ca.ocsp_url == "http://127.0.0.1:8000/api/jlis/ocsp"


def test_a_move_revokes_the_signature_certificate_only(
    platform: Platform, clock: FixedClock
) -> None:
    rc = register(platform)
    sig, auth, _ = issue_both(platform, rc, clock)
    client, token = client_and_token(platform)
    # A CRL fetched before the event is not served afterwards (no caching bug).
    assert (
        fetch_crl(client, platform).get_revoked_certificate_by_serial_number(sig.serial_number)
        is None
    )
    assert ask_ocsp(client, token, platform, sig).certificate_status is ocsp.OCSPCertStatus.GOOD

    clock.advance(dt.timedelta(minutes=1))
    changed = platform.pki.revoke_for_event(rc, RevocationEvent.ADDRESS_CHANGE)
    assert changed == [sig.serial_number]

    status = platform.pki.status(sig.serial_number)
    assert status.status is OcspStatus.REVOKED
    assert status.reason is x509.ReasonFlags.affiliation_changed
    assert platform.pki.status(auth.serial_number).status is OcspStatus.GOOD

    resp = ask_ocsp(client, token, platform, sig)
    assert resp.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_reason is x509.ReasonFlags.affiliation_changed
    assert resp.revocation_time_utc == clock.now().astimezone(dt.UTC).replace(microsecond=0)
    assert ask_ocsp(client, token, platform, auth).certificate_status is ocsp.OCSPCertStatus.GOOD

    crl = fetch_crl(client, platform)
    entry = crl.get_revoked_certificate_by_serial_number(sig.serial_number)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.affiliation_changed
    assert crl.get_revoked_certificate_by_serial_number(auth.serial_number) is None
    # The relying party's chain check with this CRL refuses the signature certificate.
    ca = platform.pki.ca
    refused = verify_chain(sig, ca.issuing_cert, ca.root_cert, clock.now(), crl=crl)
    assert refused.status is ChainStatus.REVOKED
    ok = verify_chain(auth, ca.issuing_cert, ca.root_cert, clock.now(), crl=crl)
    assert ok.status is ChainStatus.OK


def test_death_revokes_both_and_the_crl_number_grows(platform: Platform, clock: FixedClock) -> None:
    rc = register(platform)
    sig, auth, _ = issue_both(platform, rc, clock)
    client, token = client_and_token(platform)
    first = fetch_crl(client, platform)
    again = fetch_crl(client, platform)
    number = first.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert again.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number

    changed = platform.pki.revoke_for_event(rc, RevocationEvent.DEATH)
    assert sorted(changed) == sorted([sig.serial_number, auth.serial_number])
    assert platform.pki.revoke_for_event(rc, RevocationEvent.DEATH) == []  # already revoked
    for cert in (sig, auth):
        resp = ask_ocsp(client, token, platform, cert)
        assert resp.certificate_status is ocsp.OCSPCertStatus.REVOKED
        assert resp.revocation_reason is x509.ReasonFlags.cessation_of_operation
    crl = fetch_crl(client, platform)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number + 1
    assert {e.serial_number for e in crl} == {sig.serial_number, auth.serial_number}
    assert {c.status for c in platform.pki.certificates(rc)} == {"revoked"}


def test_suspension_holds_both_and_loss_revokes_for_good(
    platform: Platform, clock: FixedClock
) -> None:
    rc = register(platform)
    sig, auth, _ = issue_both(platform, rc, clock)
    assert len(platform.pki.revoke_for_event(rc, "suspension")) == 2
    assert platform.pki.revoke_for_event(rc, RevocationEvent.SUSPENSION) == []
    held = platform.pki.status(auth.serial_number)
    assert (held.status, held.reason) == (OcspStatus.REVOKED, x509.ReasonFlags.certificate_hold)
    assert {c.status for c in platform.pki.certificates(rc)} == {"on_hold"}
    clock.advance(dt.timedelta(hours=2))
    assert len(platform.pki.revoke_for_event(rc, RevocationEvent.LOSS)) == 2
    lost = platform.pki.status(sig.serial_number)
    assert (lost.status, lost.reason) == (OcspStatus.REVOKED, x509.ReasonFlags.key_compromise)


def test_crl_is_refreshed_half_way_through_its_validity(
    platform: Platform, clock: FixedClock
) -> None:
    client, _ = client_and_token(platform)
    first = fetch_crl(client, platform)
    clock.advance(dt.timedelta(minutes=29))
    assert fetch_crl(client, platform) == first
    clock.advance(dt.timedelta(minutes=2))
    later = fetch_crl(client, platform)
    assert later.last_update_utc > first.last_update_utc
    assert later.next_update_utc is not None
    assert later.next_update_utc - later.last_update_utc == dt.timedelta(hours=1)


def test_issue_is_refused_for_unknown_or_dead_residents(
    platform: Platform, clock: FixedClock
) -> None:
    key, _ = card_keys()
    with pytest.raises(PkiError) as unknown:
        platform.pki.issue(
            "signature", "12345678901", key.public_key(), ITEMS, BIRTH, clock.today()
        )
    assert unknown.value.code == "pki.resident_unknown"
    rc = register(platform)
    with pytest.raises(PkiError) as no_items:
        platform.pki.issue("signature", rc, key.public_key(), None, BIRTH, clock.today())
    assert no_items.value.code == "pki.four_items"
    platform.municipality.record(MUNI, EventKind.DEATH, {}, resident_code=rc)
    with pytest.raises(PkiError) as dead:
        platform.pki.issue("authentication", rc, key.public_key(), None, BIRTH, clock.today())
    assert dead.value.code == "pki.resident_inactive"
    assert platform.pki.certificates(rc) == []


def test_ocsp_answers_garbage_with_malformed_request_and_needs_a_token(
    platform: Platform, clock: FixedClock
) -> None:
    rc = register(platform)
    sig, _, _ = issue_both(platform, rc, clock)
    client, token = client_and_token(platform)
    auth = {"Authorization": f"Bearer {token}"}
    for body in (b"", b"garbage", b"\x30\x03\x02\x01\x01", b"\x30" * 40_000):
        r = client.post("/api/jlis/ocsp", content=body, headers=auth)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/ocsp-response"
        resp = ocsp.load_der_ocsp_response(r.content)
        assert resp.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST

    r = client.post("/api/jlis/ocsp", content=ocsp_request(platform, sig))
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "auth.token"
    other = TokenStore(platform.settings.data_dir / "tokens.json").create("clerk", ["jlis:query"])
    r = client.post(
        "/api/jlis/ocsp",
        content=ocsp_request(platform, sig),
        headers={"Authorization": f"Bearer {other}"},
    )
    assert (r.status_code, r.json()["code"]) == (403, "auth.scope")


def test_ca_chain_is_public_and_the_ca_survives_a_restart(
    platform: Platform, clock: FixedClock
) -> None:
    client, _ = client_and_token(platform)
    r = client.get("/api/jlis/ca")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pem-certificate-chain"
    issuing, root = x509.load_pem_x509_certificates(r.content)
    assert (issuing, root) == (platform.pki.ca.issuing_cert, platform.pki.ca.root_cert)

    rc = register(platform)
    sig, _, _ = issue_both(platform, rc, clock)
    again = PkiService.open(
        platform.jlis.engine,
        platform.settings.data_dir / "jpki",
        platform.keystore,
        clock,
        base_url="https://jpki.example.jp/",
    )
    assert again.ca.issuing_cert == platform.pki.ca.issuing_cert
    assert again.ca.ocsp_url == "https://jpki.example.jp/api/jlis/ocsp"
    assert again.status(sig.serial_number).status is OcspStatus.GOOD


def test_base_url_setting_reaches_the_certificates(tmp_path: Any, clock: FixedClock) -> None:
    settings = Settings(data_dir=tmp_path / "data", base_url="https://jlis.example.jp")
    p = Platform(settings, clock)
    try:
        p.municipality.create_municipality(MUNI, "東京都", "新宿区")
        rc = register(p)
        _, auth, _ = issue_both(p, rc, clock)
        aia = auth.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        assert aia[0].access_location.value == "https://jlis.example.jp/api/jlis/ocsp"
    finally:
        p.close()

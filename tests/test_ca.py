"""The JPKI CA core: both certificates, validity rules, CRL, OCSP and relying-party checks.

OpenSSL's command-line tools act as an independent client: `openssl verify -crl_check` on the
chain and CRL, and `openssl ocsp` against a local HTTP server answering with the responder.
"""

from __future__ import annotations

import datetime as dt
import http.server
import shutil
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import ocsp as xocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from mynumber.clock import JST, FixedClock, SystemClock
from mynumber.errors import ValidationError
from mynumber.jlis.ca import (
    AUTH_POLICY_OID,
    FOUR_ITEMS_OID,
    REVOCATION_REASONS,
    SIGNATURE_POLICY_OID,
    CertificateAuthority,
    CertificateKind,
    ChainStatus,
    FourItems,
    RevocationEntry,
    RevocationEvent,
    card_expiry,
    certificate_expiry,
    end_of_day,
    four_items_of,
    load_certificate,
    load_csr,
    revokes,
    verify_chain,
)
from mynumber.jlis.ocsp import CertStatus, OcspResponder
from mynumber.jlis.pki_errors import MESSAGES, PkiError
from mynumber.keystore import FileKeystore

CRL_URL = "http://127.0.0.1:8000/api/jlis/crl"
OCSP_URL = "http://127.0.0.1:8000/api/jlis/ocsp"
# OpenSSL checks validity against the real clock, so the certificates are issued around now.
NOW = dt.datetime.now(JST).replace(microsecond=0)
ITEMS = FourItems(
    name="山田 太郎",
    address="東京都新宿区西新宿二丁目8番1号",
    birth_date=dt.date(1990, 6, 15),
    sex=1,
)
DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM
OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")


def make_ca(**kwargs: object) -> CertificateAuthority:
    return CertificateAuthority.create(
        now=NOW - dt.timedelta(days=1),
        crl_url=CRL_URL,
        ocsp_url=OCSP_URL,
        **kwargs,  # type: ignore[arg-type]
    )


CA = make_ca()  # shared by the fixture and the Hypothesis test (which re-runs its body)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CA


@pytest.fixture(scope="module")
def card_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def validity() -> tuple[dt.datetime, dt.datetime]:
    expiry = certificate_expiry(ITEMS.birth_date, NOW.date())
    return NOW - dt.timedelta(hours=1), end_of_day(expiry)


@pytest.fixture(scope="module")
def sig_cert(ca: CertificateAuthority, card_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    return ca.issue_signature_certificate(card_key.public_key(), ITEMS, *validity())


@pytest.fixture(scope="module")
def auth_cert(ca: CertificateAuthority, card_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    return ca.issue_auth_certificate(card_key.public_key(), *validity())


def issue_auth(ca: CertificateAuthority) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    return ca.issue_auth_certificate(key.public_key(), *validity())


def ext(
    cert: x509.Certificate, kind: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(kind)


# ---------------------------------------------------------------------------------------------
# The two certificates


def common_checks(ca: CertificateAuthority, cert: x509.Certificate) -> None:
    assert cert.issuer == ca.issuing_cert.subject
    assert 2**63 < cert.serial_number < 2**159
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and isinstance(bc.value, x509.BasicConstraints) and not bc.value.ca
    aki = ext(cert, x509.AuthorityKeyIdentifier).value
    ca_ski = ext(ca.issuing_cert, x509.SubjectKeyIdentifier).value
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert isinstance(ca_ski, x509.SubjectKeyIdentifier)
    assert aki.key_identifier == ca_ski.digest
    ski = ext(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    crldp = ext(cert, x509.CRLDistributionPoints).value
    assert isinstance(crldp, x509.CRLDistributionPoints)
    assert crldp[0].full_name == [x509.UniformResourceIdentifier(CRL_URL)]
    aia = ext(cert, x509.AuthorityInformationAccess).value
    assert isinstance(aia, x509.AuthorityInformationAccess)
    assert [(a.access_method, a.access_location.value) for a in aia] == [
        (x509.oid.AuthorityInformationAccessOID.OCSP, OCSP_URL)
    ]
    cert.verify_directly_issued_by(ca.issuing_cert)


def test_signature_certificate_carries_the_four_items(
    ca: CertificateAuthority, sig_cert: x509.Certificate
) -> None:
    common_checks(ca, sig_cert)
    assert four_items_of(sig_cert) == ITEMS
    assert sig_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == ITEMS.name
    items_ext = sig_cert.extensions.get_extension_for_oid(FOUR_ITEMS_OID)
    assert not items_ext.critical
    ku = ext(sig_cert, x509.KeyUsage)
    assert ku.critical and isinstance(ku.value, x509.KeyUsage)
    assert ku.value.digital_signature and ku.value.content_commitment
    assert not (ku.value.key_encipherment or ku.value.key_cert_sign)
    with pytest.raises(x509.ExtensionNotFound):
        ext(sig_cert, x509.ExtendedKeyUsage)
    policies = ext(sig_cert, x509.CertificatePolicies).value
    assert isinstance(policies, x509.CertificatePolicies)
    assert [p.policy_identifier for p in policies] == [SIGNATURE_POLICY_OID]
    assert sig_cert.not_valid_after_utc == end_of_day(
        certificate_expiry(ITEMS.birth_date, NOW.date())
    ).astimezone(dt.UTC)


def test_auth_certificate_carries_no_personal_data(
    ca: CertificateAuthority, sig_cert: x509.Certificate, auth_cert: x509.Certificate
) -> None:
    common_checks(ca, auth_cert)
    sig_der, auth_der = sig_cert.public_bytes(DER), auth_cert.public_bytes(DER)
    b = ITEMS.birth_date
    needles = [
        ITEMS.name.encode(),
        "山田".encode(),
        "太郎".encode(),
        ITEMS.address.encode(),
        "西新宿".encode(),
        b.isoformat().encode(),
        b.strftime("%Y%m%d").encode(),
        f"{b.year}年".encode(),
    ]
    assert ITEMS.name.encode() in sig_der and ITEMS.address.encode() in sig_der  # the probe works
    for needle in needles:
        assert needle not in auth_der, needle
    assert four_items_of(auth_cert) is None
    cn = auth_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == f"{auth_cert.serial_number:X}"
    ku = ext(auth_cert, x509.KeyUsage)
    assert ku.critical and isinstance(ku.value, x509.KeyUsage)
    assert ku.value.digital_signature and not ku.value.content_commitment
    eku = ext(auth_cert, x509.ExtendedKeyUsage).value
    assert isinstance(eku, x509.ExtendedKeyUsage)
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    policies = ext(auth_cert, x509.CertificatePolicies).value
    assert isinstance(policies, x509.CertificatePolicies)
    assert [p.policy_identifier for p in policies] == [AUTH_POLICY_OID]


def make_csr(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> x509.CertificateSigningRequest:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csr-subject")])
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())


def test_issue_from_a_csr_with_an_rsa_card_key(ca: CertificateAuthority) -> None:
    key = rsa.generate_private_key(65537, 2048)  # what real JPKI cards hold
    csr = load_csr(make_csr(key).public_bytes(PEM))
    cert = ca.issue_signature_certificate(csr, ITEMS, *validity())
    assert cert.public_key() == key.public_key()
    assert "csr-subject" not in cert.subject.rfc4514_string()  # the CA decides the subject
    assert verify_chain(
        cert, ca.issuing_cert, ca.root_cert, NOW, purpose=CertificateKind.SIGNATURE
    ).ok


def test_a_csr_not_signed_by_its_key_is_refused(ca: CertificateAuthority) -> None:
    der = make_csr(ec.generate_private_key(ec.SECP256R1())).public_bytes(DER)
    forged = load_csr(der.replace(b"csr-subject", b"csr-subjecX"))
    with pytest.raises(PkiError) as err:
        ca.issue_auth_certificate(forged, *validity())
    assert err.value.code == "pki.csr_signature"


@pytest.mark.parametrize(
    "key",
    [
        rsa.generate_private_key(65537, 1024).public_key(),
        ec.generate_private_key(ec.SECP256K1()).public_key(),
        ed25519.Ed25519PrivateKey.generate().public_key(),
    ],
    ids=["rsa1024", "secp256k1", "ed25519"],
)
def test_weak_or_unsupported_keys_are_refused(ca: CertificateAuthority, key: object) -> None:
    with pytest.raises(PkiError) as err:
        ca.issue_auth_certificate(key, *validity())  # type: ignore[arg-type]
    assert err.value.code == "pki.key_type"


def test_issuance_refuses_bad_validity_serials_and_items(
    ca: CertificateAuthority, card_key: ec.EllipticCurvePrivateKey
) -> None:
    pub = card_key.public_key()
    start, end = validity()
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: ca.issue_auth_certificate(pub, end, start), "pki.validity"),
        (lambda: ca.issue_auth_certificate(pub, start, start), "pki.validity"),
        (
            lambda: ca.issue_auth_certificate(
                pub, start, ca.issuing_cert.not_valid_after_utc + dt.timedelta(days=1)
            ),
            "pki.validity",
        ),
        (lambda: ca.issue_auth_certificate(pub, start, end, serial=0), "pki.serial"),
        (lambda: ca.issue_auth_certificate(pub, start, end, serial=2**159), "pki.serial"),
        (
            lambda: ca.issue_signature_certificate(
                pub, FourItems(" ", "x", ITEMS.birth_date, 1), start, end
            ),
            "pki.four_items",
        ),
        (
            lambda: ca.issue_signature_certificate(
                pub, FourItems("a", "b\x00", ITEMS.birth_date, 1), start, end
            ),
            "pki.four_items",
        ),
        (
            lambda: ca.issue_signature_certificate(
                pub, FourItems("a", "b", ITEMS.birth_date, 9), start, end
            ),
            "pki.four_items",
        ),
    ]
    for call, code in cases:
        with pytest.raises(PkiError) as err:
            call()
        assert err.value.code == code


def test_a_given_serial_and_a_long_name(
    ca: CertificateAuthority, card_key: ec.EllipticCurvePrivateKey
) -> None:
    long_name = "ウォルフェシュレーゲルシュタインハウゼンベルガードルフ " * 3
    items = FourItems(long_name, ITEMS.address, ITEMS.birth_date, 2)
    cert = ca.issue_signature_certificate(card_key.public_key(), items, *validity(), serial=12345)
    assert cert.serial_number == 12345
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(cn, str) and cn.endswith("…") and len(cn.encode()) <= 64
    assert long_name.startswith(cn[:-1])
    assert four_items_of(cert) == items  # the extension keeps the whole name


def test_load_certificate_reads_pem_and_der_and_refuses_junk(sig_cert: x509.Certificate) -> None:
    assert load_certificate(sig_cert.public_bytes(PEM)) == sig_cert
    assert load_certificate(sig_cert.public_bytes(DER)) == sig_cert
    for junk in (
        b"",
        b"not a certificate",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ):
        with pytest.raises(PkiError) as err:
            load_certificate(junk)
        assert err.value.code == "pki.malformed"


# ---------------------------------------------------------------------------------------------
# Validity rules


@pytest.mark.parametrize(
    ("birth", "issued", "stay_end", "cert", "card"),
    [
        # adult: certificate on the 5th, card on the 10th birthday after issuance
        ("1990-06-15", "2026-03-01", None, "2030-06-15", "2035-06-15"),
        # a birthday on the day of issue does not count
        ("1990-06-15", "2026-06-15", None, "2031-06-15", "2036-06-15"),
        ("1990-06-15", "2026-06-16", None, "2031-06-15", "2036-06-15"),
        # under 18: the card also runs to the 5th birthday
        ("2010-01-10", "2026-11-26", None, "2031-01-10", "2031-01-10"),
        # 18 on the day of issue (the birthday itself) counts as 18; the day before does not
        ("2008-11-26", "2026-11-26", None, "2031-11-26", "2036-11-26"),
        ("2008-11-26", "2026-11-25", None, "2030-11-26", "2030-11-26"),
        # born on 29 February: 28 February in common years, 29 February in leap years
        ("2000-02-29", "2026-11-26", None, "2031-02-28", "2036-02-29"),
        ("2000-02-29", "2027-02-28", None, "2032-02-29", "2037-02-28"),
        ("2000-02-29", "2027-03-01", None, "2032-02-29", "2037-02-28"),
        # a period of stay caps both, or only the card when it ends after the 5th birthday
        ("1990-06-15", "2026-03-01", "2028-01-31", "2028-01-31", "2028-01-31"),
        ("1990-06-15", "2026-03-01", "2033-01-01", "2030-06-15", "2033-01-01"),
        ("1990-06-15", "2026-03-01", "2026-03-01", "2026-03-01", "2026-03-01"),
        # a newborn
        ("2026-11-26", "2026-11-26", None, "2031-11-26", "2031-11-26"),
    ],
)
def test_expiry_rules(birth: str, issued: str, stay_end: str | None, cert: str, card: str) -> None:
    d = dt.date.fromisoformat
    stay = d(stay_end) if stay_end else None
    assert certificate_expiry(d(birth), d(issued), stay) == d(cert)
    assert card_expiry(d(birth), d(issued), stay) == d(card)


def test_expiry_refusals_and_the_card_cap() -> None:
    birth, issued = dt.date(1990, 6, 15), dt.date(2026, 3, 1)
    for f in (certificate_expiry, card_expiry):
        with pytest.raises(PkiError) as err:
            f(birth, issued, dt.date(2026, 2, 28))
        assert err.value.code == "pki.stay_ended"
        with pytest.raises(ValidationError) as verr:
            f(issued, birth)
        assert verr.value.code == "age.before_birth"
    assert certificate_expiry(birth, issued, card_expires=dt.date(2029, 1, 1)) == dt.date(
        2029, 1, 1
    )


@settings(max_examples=300, deadline=None)
@given(
    birth=st.dates(dt.date(1900, 1, 1), dt.date(2030, 12, 31)),
    days=st.integers(0, 120 * 366),
)
def test_expiry_properties(birth: dt.date, days: int) -> None:
    issued = birth + dt.timedelta(days=days)
    cert, card = certificate_expiry(birth, issued), card_expiry(birth, issued)
    assert issued < cert <= card
    assert (cert.month, cert.day) in {(birth.month, birth.day), (2, 28)}
    assert dt.date(issued.year + 4, 1, 1) <= cert <= dt.date(issued.year + 5, 12, 31)
    adult = (
        issued.year - birth.year - ((issued.month, issued.day) < (birth.month, birth.day))
    ) >= 18
    assert card.year - cert.year == (5 if adult else 0)


# ---------------------------------------------------------------------------------------------
# Revocation: CRL


def test_revocation_reasons_and_what_each_event_revokes() -> None:
    r = x509.ReasonFlags
    assert REVOCATION_REASONS[RevocationEvent.LOSS] is r.key_compromise
    assert REVOCATION_REASONS[RevocationEvent.SUSPENSION] is r.certificate_hold
    assert REVOCATION_REASONS[RevocationEvent.ADDRESS_CHANGE] is r.affiliation_changed
    assert REVOCATION_REASONS[RevocationEvent.DEATH] is r.cessation_of_operation
    assert set(REVOCATION_REASONS) == set(RevocationEvent)
    assert revokes(RevocationEvent.ADDRESS_CHANGE, CertificateKind.SIGNATURE)
    assert not revokes(RevocationEvent.ADDRESS_CHANGE, CertificateKind.AUTH)
    assert not revokes(RevocationEvent.NAME_CHANGE, CertificateKind.AUTH)
    assert revokes(RevocationEvent.DEATH, CertificateKind.AUTH)
    assert revokes(RevocationEvent.LOSS, CertificateKind.AUTH)


def test_crl_is_signed_and_lists_serials_with_reasons(ca: CertificateAuthority) -> None:
    at = NOW - dt.timedelta(hours=2)
    entries = [
        RevocationEntry.for_event(101, at, RevocationEvent.LOSS),
        RevocationEntry.for_event(7, at, RevocationEvent.SUSPENSION),
        RevocationEntry.for_event(2**158, at, RevocationEvent.ADDRESS_CHANGE),
        RevocationEntry.for_event(55, at, RevocationEvent.DEATH),
        RevocationEntry.for_event(56, at, RevocationEvent.HOLDER_REQUEST),
    ]
    crl = ca.build_crl(entries, NOW, NOW + dt.timedelta(days=1), crl_number=42)
    crl = x509.load_der_x509_crl(crl.public_bytes(DER))
    key = ca.issuing_cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(key)
    assert crl.issuer == ca.issuing_cert.subject
    assert crl.last_update_utc == NOW.astimezone(dt.UTC)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 42
    idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    assert idp.critical and idp.value.only_contains_user_certs
    reasons: dict[int, x509.ReasonFlags | None] = {}
    for revoked in crl:
        assert revoked.revocation_date_utc == at.astimezone(dt.UTC)
        try:
            reasons[revoked.serial_number] = revoked.extensions.get_extension_for_class(
                x509.CRLReason
            ).value.reason
        except x509.ExtensionNotFound:
            reasons[revoked.serial_number] = None
    assert reasons == {
        101: x509.ReasonFlags.key_compromise,
        7: x509.ReasonFlags.certificate_hold,
        2**158: x509.ReasonFlags.affiliation_changed,
        55: x509.ReasonFlags.cessation_of_operation,
        56: None,  # "unspecified" is written as no reason code (RFC 5280 §5.3.1)
    }
    with pytest.raises(ValueError, match="twice"):
        ca.build_crl([entries[0], entries[0]], NOW, NOW + dt.timedelta(days=1), 43)
    for bad_number in (-1, 2**159):
        with pytest.raises(PkiError) as err:
            ca.build_crl([], NOW, NOW + dt.timedelta(days=1), bad_number)
        assert err.value.code == "pki.crl_number"
    with pytest.raises(PkiError) as err:
        ca.build_crl([], NOW, NOW, 1)
    assert err.value.code == "pki.validity"


@settings(max_examples=30, deadline=None)
@given(
    serials=st.sets(st.integers(1, 2**159 - 1), max_size=40),
    probes=st.lists(st.integers(1, 2**159 - 1), max_size=5),
)
def test_any_set_of_serials_round_trips_through_the_crl(
    serials: set[int], probes: list[int]
) -> None:
    ca = CA
    entries = [RevocationEntry(s, NOW, x509.ReasonFlags.superseded) for s in serials]
    crl = x509.load_der_x509_crl(
        ca.build_crl(entries, NOW, NOW + dt.timedelta(hours=6), 1).public_bytes(DER)
    )
    assert {r.serial_number for r in crl} == serials
    for serial in serials:
        assert crl.get_revoked_certificate_by_serial_number(serial) is not None
    for probe in probes:
        found = crl.get_revoked_certificate_by_serial_number(probe)
        assert (found is not None) == (probe in serials)


# ---------------------------------------------------------------------------------------------
# Relying parties: chain verification


def test_chain_verification_reasons_are_distinct(
    ca: CertificateAuthority, sig_cert: x509.Certificate, auth_cert: x509.Certificate
) -> None:
    good_sig = verify_chain(
        sig_cert, ca.issuing_cert, ca.root_cert, NOW, purpose=CertificateKind.SIGNATURE
    )
    good_auth = verify_chain(
        auth_cert, ca.issuing_cert, ca.root_cert, NOW, purpose=CertificateKind.AUTH
    )
    assert good_sig.ok and good_auth.ok and good_sig.error is None
    good_sig.raise_for_status()

    foreign = make_ca(organisation="Some Other CA")
    same_name = make_ca()  # the same names as ours, another key
    tampered = load_certificate(
        sig_cert.public_bytes(DER).replace(
            b'"birth_date":"1990-06-15"', b'"birth_date":"1991-06-15"'
        )
    )
    assert four_items_of(tampered) == FourItems(ITEMS.name, ITEMS.address, dt.date(1991, 6, 15), 1)
    cases = {
        "foreign": verify_chain(issue_auth(foreign), ca.issuing_cert, ca.root_cert, NOW),
        "same_name": verify_chain(issue_auth(same_name), ca.issuing_cert, ca.root_cert, NOW),
        "foreign_chain": verify_chain(issue_auth(foreign), foreign.issuing_cert, ca.root_cert, NOW),
        "tampered": verify_chain(tampered, ca.issuing_cert, ca.root_cert, NOW),
        "expired": verify_chain(
            sig_cert,
            ca.issuing_cert,
            ca.root_cert,
            sig_cert.not_valid_after_utc + dt.timedelta(seconds=1),
        ),
        "not_yet": verify_chain(
            sig_cert,
            ca.issuing_cert,
            ca.root_cert,
            sig_cert.not_valid_before_utc - dt.timedelta(seconds=1),
        ),
        "auth_for_signing": verify_chain(
            auth_cert, ca.issuing_cert, ca.root_cert, NOW, purpose=CertificateKind.SIGNATURE
        ),
        "signature_for_login": verify_chain(
            sig_cert, ca.issuing_cert, ca.root_cert, NOW, purpose=CertificateKind.AUTH
        ),
    }
    assert {k: v.status for k, v in cases.items()} == {
        "foreign": ChainStatus.UNKNOWN_ISSUER,
        "same_name": ChainStatus.UNKNOWN_ISSUER,
        "foreign_chain": ChainStatus.UNKNOWN_ISSUER,
        "tampered": ChainStatus.BAD_SIGNATURE,
        "expired": ChainStatus.EXPIRED,
        "not_yet": ChainStatus.NOT_YET_VALID,
        "auth_for_signing": ChainStatus.WRONG_KEY_USAGE,
        "signature_for_login": ChainStatus.WRONG_KEY_USAGE,
    }
    for result in cases.values():
        assert not result.ok and result.error is not None
        assert result.error.code == result.status.value
        assert result.error.en and result.error.ja and result.error.status == 422
        with pytest.raises(PkiError):
            result.raise_for_status()
    assert cases["expired"].error is not None
    assert cases["expired"].error.problem("ja")["title"] == "電子証明書の有効期限が切れています。"


def test_chain_verification_with_a_crl(
    ca: CertificateAuthority, sig_cert: x509.Certificate, auth_cert: x509.Certificate
) -> None:
    entry = RevocationEntry.for_event(sig_cert.serial_number, NOW, RevocationEvent.ADDRESS_CHANGE)
    crl = ca.build_crl([entry], NOW, NOW + dt.timedelta(days=1), 5)
    revoked = verify_chain(sig_cert, ca.issuing_cert, ca.root_cert, NOW, crl=crl)
    assert revoked.status is ChainStatus.REVOKED and revoked.error is not None
    assert revoked.error.extra["revocation_reason"] == "affiliationChanged"
    # the user-authentication certificate survives a move
    assert verify_chain(auth_cert, ca.issuing_cert, ca.root_cert, NOW, crl=crl).ok
    stale = verify_chain(
        auth_cert, ca.issuing_cert, ca.root_cert, NOW + dt.timedelta(days=2), crl=crl
    )
    assert stale.status is ChainStatus.CRL_STALE
    other_crl = make_ca().build_crl([], NOW, NOW + dt.timedelta(days=1), 1)
    forged = verify_chain(auth_cert, ca.issuing_cert, ca.root_cert, NOW, crl=other_crl)
    assert forged.status is ChainStatus.CRL_INVALID


def test_an_rsa_ca_works_too() -> None:
    rsa_ca = make_ca(key_type="rsa2048")
    cert = rsa_ca.issue_auth_certificate(
        make_csr(ec.generate_private_key(ec.SECP384R1())), *validity()
    )
    assert verify_chain(
        cert, rsa_ca.issuing_cert, rsa_ca.root_cert, NOW, purpose=CertificateKind.AUTH
    ).ok
    responder = OcspResponder(rsa_ca, FixedClock(NOW), delegated=False)
    resp = xocsp.load_der_ocsp_response(
        responder.ocsp_response(
            ocsp_request(cert, rsa_ca.issuing_cert), lambda s: CertStatus.good()
        )
    )
    assert resp.certificate_status is xocsp.OCSPCertStatus.GOOD


def test_every_pki_code_has_both_languages() -> None:
    for code, (en, ja) in MESSAGES.items():
        assert code.startswith("pki.") and en.endswith(".") and ja.endswith("。")
    assert {s.value for s in ChainStatus} - {"ok"} <= set(MESSAGES)


# ---------------------------------------------------------------------------------------------
# Persistence: keys encrypted under the keystore


def test_save_and_load_keep_private_keys_encrypted(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    keystore = FileKeystore(tmp_path / "keys", master_key_hex="11" * 32)
    ca.save(tmp_path / "ca", keystore)
    files = {p.name: p for p in (tmp_path / "ca").iterdir()}
    key_files = [p for n, p in files.items() if n.endswith("-key.pem")]
    assert len(key_files) == 2  # the root key too: this CA was created here
    for path in key_files:
        text = path.read_bytes()
        assert b"BEGIN ENCRYPTED PRIVATE KEY" in text and b"BEGIN PRIVATE KEY" not in text
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = CertificateAuthority.load(
        tmp_path / "ca", keystore, crl_url=CRL_URL, ocsp_url=OCSP_URL
    )
    assert loaded.issuing_cert == ca.issuing_cert and loaded.root_cert == ca.root_cert
    cert = issue_auth(loaded)
    assert verify_chain(cert, ca.issuing_cert, ca.root_cert, NOW).ok
    # an online CA without the root key exports no root key
    assert not any(n.startswith("jpki-root-ca-key") for n in loaded.export_pem(keystore))
    with_root = CertificateAuthority.load(
        tmp_path / "ca", keystore, crl_url=CRL_URL, ocsp_url=OCSP_URL, with_root_key=True
    )
    assert len([n for n in with_root.export_pem(keystore) if n.endswith("-key.pem")]) == 2

    other = FileKeystore(tmp_path / "other-keys", master_key_hex="22" * 32)
    with pytest.raises(PkiError) as err:
        CertificateAuthority.load(tmp_path / "ca", other, crl_url=CRL_URL, ocsp_url=OCSP_URL)
    assert err.value.code == "pki.ca_key" and err.value.status == 500
    with pytest.raises(PkiError) as err:
        CertificateAuthority.load(tmp_path / "empty", keystore, crl_url=CRL_URL, ocsp_url=OCSP_URL)
    assert err.value.code == "pki.ca_key"


# ---------------------------------------------------------------------------------------------
# OCSP


def ocsp_request(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    nonce: bytes | None = None,
    algorithm: hashes.HashAlgorithm | None = None,
) -> bytes:
    builder = xocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(DER)


class Registry:
    """A stand-in for the CA's certificate and revocation tables."""

    def __init__(self) -> None:
        self.issued: set[int] = set()
        self.revoked: dict[int, RevocationEntry] = {}
        self.asked: list[int] = []

    def __call__(self, serial: int) -> CertStatus:
        self.asked.append(serial)
        if serial in self.revoked:
            return CertStatus.revoked(self.revoked[serial])
        return CertStatus.good() if serial in self.issued else CertStatus.unknown()


def test_ocsp_good_revoked_unknown_with_the_nonce_echoed(
    ca: CertificateAuthority, sig_cert: x509.Certificate, auth_cert: x509.Certificate
) -> None:
    clock = FixedClock(NOW)
    responder = OcspResponder(ca, clock)
    registry = Registry()
    registry.issued |= {sig_cert.serial_number, auth_cert.serial_number}
    revoked_at = NOW - dt.timedelta(minutes=30)
    registry.revoked[sig_cert.serial_number] = RevocationEntry.for_event(
        sig_cert.serial_number, revoked_at, RevocationEvent.LOSS
    )
    stranger = issue_auth(ca)  # issued by this CA but unknown to the registry

    def ask(cert: x509.Certificate, nonce: bytes | None = None) -> xocsp.OCSPResponse:
        der = responder.ocsp_response(ocsp_request(cert, ca.issuing_cert, nonce), registry)
        return xocsp.load_der_ocsp_response(der)

    good = ask(auth_cert, b"n" * 16)
    assert good.response_status is xocsp.OCSPResponseStatus.SUCCESSFUL
    assert good.certificate_status is xocsp.OCSPCertStatus.GOOD
    assert good.serial_number == auth_cert.serial_number
    assert good.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"n" * 16
    assert good.this_update_utc == NOW.astimezone(dt.UTC)
    assert good.next_update_utc == NOW.astimezone(dt.UTC) + dt.timedelta(hours=1)

    # the delegated signer: certified by the issuing CA for OCSP signing only, attached
    signer = responder.signer_certificate()
    assert good.certificates == [signer]
    assert (
        good.responder_key_hash
        == x509.SubjectKeyIdentifier.from_public_key(signer.public_key()).digest
    )
    signer.verify_directly_issued_by(ca.issuing_cert)
    eku = ext(signer, x509.ExtendedKeyUsage).value
    assert isinstance(eku, x509.ExtendedKeyUsage) and list(eku) == [
        ExtendedKeyUsageOID.OCSP_SIGNING
    ]
    ext(signer, x509.OCSPNoCheck)
    signer_key = signer.public_key()
    assert isinstance(signer_key, ec.EllipticCurvePublicKey)
    signer_key.verify(good.signature, good.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))

    revoked = ask(sig_cert)
    assert revoked.certificate_status is xocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_time_utc == revoked_at.astimezone(dt.UTC)
    assert revoked.revocation_reason is x509.ReasonFlags.key_compromise
    with pytest.raises(x509.ExtensionNotFound):
        revoked.extensions.get_extension_for_class(x509.OCSPNonce)  # none asked, none given

    unknown = ask(stranger, b"\x01")
    assert unknown.certificate_status is xocsp.OCSPCertStatus.UNKNOWN
    assert unknown.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"\x01"

    # a CertID hashed with SHA-256 is answered in kind
    der = responder.ocsp_response(
        ocsp_request(auth_cert, ca.issuing_cert, algorithm=hashes.SHA256()), registry
    )
    sha256 = xocsp.load_der_ocsp_response(der)
    assert sha256.certificate_status is xocsp.OCSPCertStatus.GOOD
    assert isinstance(sha256.hash_algorithm, hashes.SHA256)

    # another issuer's certificate: "unknown", and the registry is not even asked
    foreign = make_ca(organisation="Some Other CA")
    registry.asked.clear()
    der = responder.ocsp_response(ocsp_request(issue_auth(foreign), foreign.issuing_cert), registry)
    assert xocsp.load_der_ocsp_response(der).certificate_status is xocsp.OCSPCertStatus.UNKNOWN
    assert registry.asked == []


def test_ocsp_bad_requests_get_protocol_answers(
    ca: CertificateAuthority, auth_cert: x509.Certificate
) -> None:
    responder = OcspResponder(ca, FixedClock(NOW))
    valid = ocsp_request(auth_cert, ca.issuing_cert)
    for bad in (
        b"",
        b"garbage",
        valid[:-3],
        b"\x30\x03\x02\x01\x01",
        ocsp_request(auth_cert, ca.issuing_cert, b"x" * 33),
    ):
        resp = xocsp.load_der_ocsp_response(
            responder.ocsp_response(bad, lambda s: CertStatus.good())
        )
        assert resp.response_status is xocsp.OCSPResponseStatus.MALFORMED_REQUEST

    def broken(serial: int) -> CertStatus:
        raise RuntimeError("database down")

    resp = xocsp.load_der_ocsp_response(responder.ocsp_response(valid, broken))
    assert resp.response_status is xocsp.OCSPResponseStatus.INTERNAL_ERROR


def test_ocsp_signed_by_the_ca_itself_and_signer_renewal(
    ca: CertificateAuthority, auth_cert: x509.Certificate
) -> None:
    direct = OcspResponder(ca, FixedClock(NOW), delegated=False)
    resp = xocsp.load_der_ocsp_response(
        direct.ocsp_response(ocsp_request(auth_cert, ca.issuing_cert), lambda s: CertStatus.good())
    )
    assert resp.certificates == [] and direct.signer_certificate() == ca.issuing_cert
    key = ca.issuing_cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))

    clock = FixedClock(NOW)
    delegated = OcspResponder(ca, clock, signer_lifetime=dt.timedelta(days=2))
    first = delegated.signer_certificate()
    clock.advance(dt.timedelta(hours=12))
    assert delegated.signer_certificate() == first
    clock.advance(dt.timedelta(hours=13))  # past half its life
    second = delegated.signer_certificate()
    assert second != first and second.not_valid_after_utc > first.not_valid_after_utc
    with pytest.raises(ValueError):
        CertStatus(CertStatus.good().status, revoked_at=NOW)


# ---------------------------------------------------------------------------------------------
# OpenSSL as an independent client


def run_openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )


def write_pki(
    tmp_path: Path, ca: CertificateAuthority, crl: x509.CertificateRevocationList | None = None
) -> None:
    (tmp_path / "chain.pem").write_bytes(ca.chain_pem())
    (tmp_path / "issuing.pem").write_bytes(ca.issuing_cert.public_bytes(PEM))
    if crl is not None:
        (tmp_path / "crl.pem").write_bytes(crl.public_bytes(PEM))


@needs_openssl
def test_openssl_verify_with_the_crl(
    ca: CertificateAuthority,
    sig_cert: x509.Certificate,
    auth_cert: x509.Certificate,
    tmp_path: Path,
) -> None:
    entry = RevocationEntry.for_event(
        sig_cert.serial_number, NOW - dt.timedelta(minutes=5), RevocationEvent.ADDRESS_CHANGE
    )
    crl = ca.build_crl([entry], NOW - dt.timedelta(minutes=1), NOW + dt.timedelta(days=1), 7)
    write_pki(tmp_path, ca, crl)
    (tmp_path / "good.pem").write_bytes(auth_cert.public_bytes(PEM))
    (tmp_path / "revoked.pem").write_bytes(sig_cert.public_bytes(PEM))
    (tmp_path / "foreign.pem").write_bytes(
        issue_auth(make_ca(organisation="Some Other CA")).public_bytes(PEM)
    )
    verify = ("verify", "-crl_check", "-CAfile", "chain.pem", "-CRLfile", "crl.pem")

    good = run_openssl(*verify, "good.pem", cwd=tmp_path)
    assert good.returncode == 0 and "good.pem: OK" in good.stdout, good.stdout + good.stderr
    revoked = run_openssl(*verify, "revoked.pem", cwd=tmp_path)
    assert revoked.returncode != 0 and "certificate revoked" in revoked.stdout + revoked.stderr
    foreign = run_openssl(*verify, "foreign.pem", cwd=tmp_path)
    assert (
        foreign.returncode != 0
        and "unable to get local issuer certificate" in foreign.stdout + foreign.stderr
    )


@pytest.fixture
def ocsp_server(ca: CertificateAuthority) -> Iterator[tuple[str, Registry]]:
    """A tiny HTTP OCSP endpoint on 127.0.0.1 answering POSTs with the responder."""
    responder = OcspResponder(ca, SystemClock())
    registry = Registry()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            answer = responder.ocsp_response(body, registry)
            self.send_response(200)
            self.send_header("Content-Type", "application/ocsp-response")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", registry
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@needs_openssl
def test_openssl_ocsp_against_the_responder(
    ca: CertificateAuthority,
    sig_cert: x509.Certificate,
    auth_cert: x509.Certificate,
    ocsp_server: tuple[str, Registry],
    tmp_path: Path,
) -> None:
    url, registry = ocsp_server
    registry.issued |= {sig_cert.serial_number, auth_cert.serial_number}
    registry.revoked[sig_cert.serial_number] = RevocationEntry.for_event(
        sig_cert.serial_number, NOW - dt.timedelta(minutes=5), RevocationEvent.SUSPENSION
    )
    write_pki(tmp_path, ca)
    (tmp_path / "good.pem").write_bytes(auth_cert.public_bytes(PEM))
    (tmp_path / "revoked.pem").write_bytes(sig_cert.public_bytes(PEM))
    (tmp_path / "unknown.pem").write_bytes(issue_auth(ca).public_bytes(PEM))
    expected = {"good.pem": "good", "revoked.pem": "revoked", "unknown.pem": "unknown"}
    for file, status in expected.items():
        out = run_openssl(
            "ocsp",
            "-issuer",
            "issuing.pem",
            "-cert",
            file,
            "-url",
            url,
            "-CAfile",
            "chain.pem",
            "-resp_text",
            cwd=tmp_path,
        )
        text = out.stdout + out.stderr
        assert out.returncode == 0, text
        assert "Response verify OK" in text, text
        assert f"{file}: {status}" in text, text
        assert "nonce" not in out.stderr.lower(), text  # openssl sent a nonce and got it back
        assert "OCSP Nonce" in out.stdout
        if status == "revoked":
            assert "Reason: certificateHold" in text


@needs_openssl
def test_a_request_for_several_certificates_is_answered_malformed(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """cryptography reads single-certificate requests only; `openssl ocsp` can ask for two."""
    write_pki(tmp_path, ca)
    for name in ("a.pem", "b.pem"):
        (tmp_path / name).write_bytes(issue_auth(ca).public_bytes(PEM))
    made = run_openssl(
        "ocsp",
        "-issuer",
        "issuing.pem",
        "-cert",
        "a.pem",
        "-cert",
        "b.pem",
        "-reqout",
        "req.der",
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    der = OcspResponder(ca, FixedClock(NOW)).ocsp_response(
        (tmp_path / "req.der").read_bytes(), lambda s: CertStatus.good()
    )
    resp = xocsp.load_der_ocsp_response(der)
    assert resp.response_status is xocsp.OCSPResponseStatus.MALFORMED_REQUEST

"""The JPKI certification authority's pure core: CA keys, both certificates, CRLs, validity rules.

J-LIS runs the 公的個人認証サービス CA (facts §4). This module issues the two certificates of a
My Number card, builds signed CRLs, holds the validity-period rules and offers relying parties a
chain check. It does no I/O except the explicit :meth:`CertificateAuthority.save` /
:meth:`~CertificateAuthority.load` helpers; storage of issued certificates and revocations and the
HTTP endpoints are adapters the J-LIS service wires later. OCSP is in :mod:`mynumber.jlis.ocsp`.

Key type — ECDSA P-256 with SHA-256 for the root, the issuing CA and the OCSP signer.
Measured through this module's own API (one core of this machine, Python 3.11, cryptography 50,
best of three runs while other jobs shared the machine, so ±20 %):

==========  =======  ========  ==========  ==========  ===========  ==========  =================
CA key      sign/s   verify/s  certs/s     OCSP/s      chain/s      CRL 10k     cert / OCSP bytes
            [1]      [1]       [2]         [3]         [4]          [5]         [6]
==========  =======  ========  ==========  ==========  ===========  ==========  =================
P-256       35,000   11,200    8,200       14,800      3,850        ≈ 190 ms    642 / 284
RSA-2048    2,800    32,700    2,150       2,480       7,900        ≈ 190 ms    834 / 475
RSA-3072    1,040    17,900    930         985         5,100        ≈ 190 ms    961 / 603
==========  =======  ========  ==========  ==========  ===========  ==========  =================

[1] bare primitive on 64 bytes (DESIGN.md's quieter figures: RSA-2048 ≈ 3,800/s, P-256
≈ 49,000/s); [2] :meth:`CertificateAuthority.issue_auth_certificate`; [3]
:class:`~mynumber.jlis.ocsp.OcspResponder` signing as the CA (request parsed, response built,
signed, encoded); the delegated P-256 signer this project uses by default answers ≈ 6,000/s and
945 bytes, the cost of embedding the signer's certificate; [4] :func:`verify_chain` of a good
certificate (two signature checks plus path validation); [5] :meth:`~CertificateAuthority.build_crl`
with 10,000 entries — the DER, not the signature, dominates; [6] a DER user-authentication
certificate / a CA-signed OCSP response.

Why P-256: (1) strength that outlives the certificates — a root lives 20 years and an issuing CA
10, past 2030, when NIST SP 800-57 retires 112-bit RSA-2048; P-256 gives 128-bit security like
RSA-3072 at 1/30 of its signing cost. (2) The CA's online load is signing: OCSP answers at the
eligibility-check rate (≈ 205 M a month, low thousands per second at peak, DESIGN.md) — 6,000/s
per core delegated, 14,800/s as the CA, against ≈ 1,000/s with RSA-3072. (3) Smaller
certificates and responses (a third less than RSA-3072). The price is paid by relying parties:
a P-256 verify is ≈ 3× slower than RSA-2048's, so :func:`verify_chain` runs at ≈ 3,850/s per
core against 7,900/s, and a full check — the chain plus an OCSP response — at ≈ 2,800/s per
core once the relying party has verified the week-long delegated OCSP signer (≈ 1,400/s if it
re-verifies that certificate every time; RSA-2048: 6,200/s and 3,400/s). That meets DESIGN.md's
2,000 eligibility checks/s per node, and caching the issuing-CA link would add more.
``key_type="rsa2048"`` (what the real JPKI CA uses, from memory) and
``"rsa3072"`` remain available to :meth:`CertificateAuthority.create`.

End-entity keys are the card's (I7: generated on the chip); the CA accepts RSA of 2048–8192 bits and
ECDSA P-256/P-384 public keys, given bare or in a CSR whose self-signature proves possession.

The two certificates (facts §4):

- **Signature certificate (署名用電子証明書)**: carries the four basic items. Subject
  ``C=JP, O=<organisation>, CN=<name>`` (a long name cut, with "…", to the 64 UTF-8 bytes
  cryptography allows a common name — display only) and, authoritative for all four items,
  the non-critical private extension :data:`FOUR_ITEMS_OID` whose value is a DER UTF8String
  holding the JSON object
  ``{"address": …, "birth_date": "YYYY-MM-DD", "name": …, "sex": 1|2}``
  (sorted keys, no spaces, UTF-8; sex per ISO/IEC 5218). The real JPKI encodes them its own
  way under J-LIS's OID arc (not verified here); this project uses 1.3.6.1.4.1.32473, the
  enterprise number IANA reserves for documentation (RFC 5612) — **a placeholder** to replace
  with an arc the operator owns. keyUsage digitalSignature + nonRepudiation (critical), no
  extendedKeyUsage, certificate policy :data:`SIGNATURE_POLICY_OID`. Read the items back with
  :func:`four_items_of`.
- **User-authentication certificate (利用者証明用電子証明書)**: no personal data anywhere.
  Subject ``C=JP, O=<organisation>, CN=<serial in hex>``; keyUsage digitalSignature (critical),
  extendedKeyUsage clientAuth, policy :data:`AUTH_POLICY_OID`.

Both carry basicConstraints CA:FALSE (critical), subject and authority key identifiers, the CRL
distribution point and the OCSP responder (authorityInfoAccess) URLs given to the CA. Serial
numbers are ``x509.random_serial_number()``: 159 random bits, positive (CA/B requires ≥ 64).
One issuing CA signs both kinds (the real JPKI has one CA per kind, from memory); the
certificate policy tells them apart.

Validity (:func:`certificate_expiry`, :func:`card_expiry`): the n-th birthday *after* the day of
issue — a birthday on the day of issue does not count, so a card issued on the 30th birthday of an
adult runs to the 40th. Someone born on 29 February has the birthday on 28 February in common
years (the みなし誕生日 of administrative practice, as secondary sources report it; not checked
against a J-LIS text), so validity never runs past the nominal
period and never ends on a day that does not exist. The expiry date is the last valid day; a
certificate's notAfter is its end in JST (:func:`end_of_day`).

Revocation (:class:`RevocationEntry`, :data:`REVOCATION_REASONS`): J-LIS events map to RFC 5280
reason codes — loss or theft → keyCompromise (the chip may be in other hands); the 24-hour
suspension after a reported loss → certificateHold (the only reversible reason: lifting the
suspension is dropping the entry from the next CRL); change of address, name or sex (the basic
items) → affiliationChanged (signature certificate only, facts §4); death, emigration, card
returned or expired → cessationOfOperation; reissue or renewal → superseded; the holder's own
request → unspecified (no reason code is written, as RFC 5280 §5.3.1 recommends).
"""

from __future__ import annotations

import calendar
import datetime as dt
import enum
import json
import os
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509 import ocsp, verification
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from mynumber.clock import JST
from mynumber.dates import age_on
from mynumber.jlis.pki_errors import PkiError, pki_error
from mynumber.keystore import Keystore

__all__ = [
    "AUTH_POLICY_OID",
    "FOUR_ITEMS_OID",
    "REVOCATION_REASONS",
    "SIGNATURE_POLICY_OID",
    "CaPrivateKey",
    "CertificateAuthority",
    "CertificateKind",
    "ChainStatus",
    "ChainVerification",
    "FourItems",
    "KeyType",
    "RevocationEntry",
    "RevocationEvent",
    "card_expiry",
    "certificate_expiry",
    "end_of_day",
    "four_items_of",
    "load_certificate",
    "load_csr",
    "revokes",
    "verify_chain",
]

# 1.3.6.1.4.1.32473 is IANA's documentation enterprise number (RFC 5612): a placeholder arc.
_ARC = "1.3.6.1.4.1.32473"
FOUR_ITEMS_OID = x509.ObjectIdentifier(f"{_ARC}.1.1")
"""Private extension holding the four basic items (placeholder OID, see the module docstring)."""
SIGNATURE_POLICY_OID = x509.ObjectIdentifier(f"{_ARC}.1.2.1")
AUTH_POLICY_OID = x509.ObjectIdentifier(f"{_ARC}.1.2.2")

KeyType: TypeAlias = Literal["p256", "rsa2048", "rsa3072"]
CaPrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
SubjectKey: TypeAlias = CertificatePublicKeyTypes | x509.CertificateSigningRequest

_MAX_SERIAL = 2**159  # 20 octets, positive
_CN_MAX = 64  # ub-common-name (X.520); cryptography counts UTF-8 bytes
_ROOT_SECRET = "jlis-ca-root"
_ISSUING_SECRET = "jlis-ca-issuing"
# File names: dashed, since tests/test_docs.py reads any quoted word.word as a reason code.
_ROOT_CERT, _ISSUING_CERT, _CHAIN = "jpki-root-ca.pem", "jpki-issuing-ca.pem", "jpki-chain.pem"
_ROOT_KEY, _ISSUING_KEY = "jpki-root-ca-key.pem", "jpki-issuing-ca-key.pem"


# --------------------------------------------------------------------------------------------
# Time and validity rules


def _utc(at: dt.datetime) -> dt.datetime:
    """`at` in UTC to the second (X.509 times carry seconds); a naive time is read as JST."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=JST)
    return at.astimezone(dt.UTC).replace(microsecond=0)


def end_of_day(day: dt.date) -> dt.datetime:
    """The last second of `day` in Japan Standard Time: the notAfter of a certificate expiring
    on `day`."""
    return dt.datetime.combine(day, dt.time(23, 59, 59), JST)


def _birthday_in(birth: dt.date, year: int) -> dt.date:
    # A 29 February birthday falls on 28 February in common years (module docstring).
    if (birth.month, birth.day) == (2, 29) and not calendar.isleap(year):
        return dt.date(year, 2, 28)
    return dt.date(year, birth.month, birth.day)


def _nth_birthday_after(birth: dt.date, day: dt.date, n: int) -> dt.date:
    first_year = day.year if _birthday_in(birth, day.year) > day else day.year + 1
    return _birthday_in(birth, first_year + n - 1)


def _cap_by_stay(expiry: dt.date, issued_on: dt.date, stay_end: dt.date | None) -> dt.date:
    if stay_end is None:
        return expiry
    if stay_end < issued_on:
        raise pki_error(
            "pki.stay_ended",
            field="period_of_stay_end",
            extra={"period_of_stay_end": stay_end.isoformat(), "issued_on": issued_on.isoformat()},
        )
    return min(expiry, stay_end)


def certificate_expiry(
    birth_date: dt.date,
    issued_on: dt.date,
    period_of_stay_end: dt.date | None = None,
    *,
    card_expires: dt.date | None = None,
) -> dt.date:
    """Last valid day of a JPKI certificate issued on `issued_on`: the 5th birthday after it.

    Capped by `period_of_stay_end` (foreign residents with a fixed period of stay; pass None for
    永住者, 特別永住者, 高度専門職2号 and Japanese nationals) and by `card_expires`, the expiry of
    the card that carries it (a certificate never outlives its card). Raises ValidationError
    ``age.before_birth`` if issued before birth, PkiError ``pki.stay_ended`` if the stay ended
    before issuance.
    """
    age_on(birth_date, issued_on)  # refuses an issue date before birth
    expiry = _cap_by_stay(
        _nth_birthday_after(birth_date, issued_on, 5), issued_on, period_of_stay_end
    )
    return expiry if card_expires is None else min(expiry, card_expires)


def card_expiry(
    birth_date: dt.date, issued_on: dt.date, period_of_stay_end: dt.date | None = None
) -> dt.date:
    """Last valid day of a My Number card issued on `issued_on`.

    The 10th birthday after issuance for someone 18 or older on the day of issue, the 5th for
    someone younger (the threshold has been 18 since 2022-04-01; applications received before
    then used 20 — not modelled). Capped by `period_of_stay_end`, which the caller passes as None
    for permanent statuses (永住者, 特別永住者, 高度専門職2号).
    """
    years = 10 if age_on(birth_date, issued_on) >= 18 else 5
    return _cap_by_stay(
        _nth_birthday_after(birth_date, issued_on, years), issued_on, period_of_stay_end
    )


# --------------------------------------------------------------------------------------------
# The four basic items


@dataclass(frozen=True, slots=True)
class FourItems:
    """基本4情報: full name, address, birth date and sex (ISO/IEC 5218: 1 male, 2 female)."""

    name: str
    address: str
    birth_date: dt.date
    sex: int

    def validate(self) -> None:
        for field in ("name", "address"):
            text: str = getattr(self, field)
            if not text.strip() or any(unicodedata.category(c)[0] == "C" for c in text):
                raise pki_error("pki.four_items", field=field)
        if self.sex not in (1, 2):
            raise pki_error("pki.four_items", field="sex")

    def to_json(self) -> str:
        return json.dumps(
            {
                "address": self.address,
                "birth_date": self.birth_date.isoformat(),
                "name": self.name,
                "sex": self.sex,
            },
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
        )


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_utf8string(text: str) -> bytes:
    data = text.encode("utf-8")
    return b"\x0c" + _der_length(len(data)) + data


def _parse_der_utf8string(der: bytes) -> str:
    """The text of a DER UTF8String that makes up the whole of `der`; ValueError otherwise."""
    if len(der) < 2 or der[0] != 0x0C:
        raise ValueError("not a UTF8String")
    first = der[1]
    if first < 0x80:
        length, start = first, 2
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or len(der) < 2 + count:
            raise ValueError("bad length")
        length, start = int.from_bytes(der[2 : 2 + count], "big"), 2 + count
        if length < 0x80 or der[2] == 0:
            raise ValueError("length not in DER minimal form")
    if len(der) != start + length:
        raise ValueError("length does not match")
    return der[start:].decode("utf-8")


def four_items_of(cert: x509.Certificate) -> FourItems | None:
    """The four basic items of a signature certificate; None if the certificate carries none.

    Raises PkiError ``pki.malformed`` if the extension is present but not as documented.
    """
    try:
        ext = cert.extensions.get_extension_for_oid(FOUR_ITEMS_OID)
    except x509.ExtensionNotFound:
        return None
    if not isinstance(ext.value, x509.UnrecognizedExtension):
        raise pki_error("pki.malformed")
    try:
        data = json.loads(_parse_der_utf8string(ext.value.value))
        items = FourItems(
            name=data["name"],
            address=data["address"],
            birth_date=dt.date.fromisoformat(data["birth_date"]),
            sex=data["sex"],
        )
        if not (isinstance(items.name, str) and isinstance(items.address, str)):
            raise TypeError("name and address are strings")
        if set(data) != {"name", "address", "birth_date", "sex"} or type(items.sex) is not int:
            raise TypeError("unexpected members")
        items.validate()
    except (ValueError, TypeError, KeyError, PkiError) as exc:
        raise pki_error("pki.malformed") from exc
    return items


# --------------------------------------------------------------------------------------------
# Parsing helpers for adapters


def load_certificate(data: bytes) -> x509.Certificate:
    """A certificate from PEM or DER bytes; PkiError ``pki.malformed`` otherwise."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise pki_error("pki.malformed") from exc


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """A certificate signing request from PEM or DER bytes; PkiError ``pki.malformed`` otherwise."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise pki_error("pki.malformed") from exc


# --------------------------------------------------------------------------------------------
# Revocation


class CertificateKind(enum.StrEnum):
    SIGNATURE = "signature"
    AUTH = "auth"


class RevocationEvent(enum.StrEnum):
    """Why J-LIS revokes (or suspends) a certificate."""

    LOSS = "loss"  # 紛失・盗難
    SUSPENSION = "suspension"  # 一時停止 (24 hours after a reported loss)
    ADDRESS_CHANGE = "address_change"  # 転居・転出転入
    NAME_CHANGE = "name_change"
    SEX_CHANGE = "sex_change"
    DEATH = "death"
    EMIGRATION = "emigration"  # 国外転出
    CARD_RETURNED = "card_returned"  # 返納・カードの失効
    REISSUE = "reissue"  # 再交付・更新
    HOLDER_REQUEST = "holder_request"  # 本人の失効申請


REVOCATION_REASONS: Mapping[RevocationEvent, x509.ReasonFlags] = {
    RevocationEvent.LOSS: x509.ReasonFlags.key_compromise,
    RevocationEvent.SUSPENSION: x509.ReasonFlags.certificate_hold,
    RevocationEvent.ADDRESS_CHANGE: x509.ReasonFlags.affiliation_changed,
    RevocationEvent.NAME_CHANGE: x509.ReasonFlags.affiliation_changed,
    RevocationEvent.SEX_CHANGE: x509.ReasonFlags.affiliation_changed,
    RevocationEvent.DEATH: x509.ReasonFlags.cessation_of_operation,
    RevocationEvent.EMIGRATION: x509.ReasonFlags.cessation_of_operation,
    RevocationEvent.CARD_RETURNED: x509.ReasonFlags.cessation_of_operation,
    RevocationEvent.REISSUE: x509.ReasonFlags.superseded,
    RevocationEvent.HOLDER_REQUEST: x509.ReasonFlags.unspecified,
}
_BASIC_ITEM_CHANGES = frozenset(
    {RevocationEvent.ADDRESS_CHANGE, RevocationEvent.NAME_CHANGE, RevocationEvent.SEX_CHANGE}
)


def revokes(event: RevocationEvent, kind: CertificateKind) -> bool:
    """Whether `event` revokes a certificate of `kind`: a change of a basic item revokes the
    signature certificate only (its content is out of date); every other event revokes both."""
    return kind is CertificateKind.SIGNATURE or event not in _BASIC_ITEM_CHANGES


@dataclass(frozen=True, slots=True)
class RevocationEntry:
    """One revoked (or suspended) certificate, as storage keeps it and the CRL and OCSP read it."""

    serial: int
    revoked_at: dt.datetime
    reason: x509.ReasonFlags = x509.ReasonFlags.unspecified

    @classmethod
    def for_event(
        cls, serial: int, revoked_at: dt.datetime, event: RevocationEvent
    ) -> RevocationEntry:
        return cls(serial, revoked_at, REVOCATION_REASONS[event])


# --------------------------------------------------------------------------------------------
# The certification authority


def _new_key(key_type: KeyType) -> CaPrivateKey:
    if key_type == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(65537, 2048 if key_type == "rsa2048" else 3072)


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_subject_key(key: CertificatePublicKeyTypes) -> None:
    if isinstance(key, rsa.RSAPublicKey) and 2048 <= key.key_size <= 8192:
        return
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(
        key.curve, ec.SECP256R1 | ec.SECP384R1
    ):
        return
    raise pki_error("pki.key_type", field="public_key")


def _ca_key_usage(*, digital_signature: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _ee_key_usage(*, non_repudiation: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=non_repudiation,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _ski(cert: x509.Certificate) -> bytes:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def _name(organisation: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _display_name(name: str) -> str:
    """`name` as a common name: cut, with "…", to the 64 UTF-8 bytes cryptography allows."""
    if len(name.encode("utf-8")) <= _CN_MAX:
        return name
    cut = name
    while len((cut + "…").encode("utf-8")) > _CN_MAX:
        cut = cut[:-1]
    return cut.rstrip() + "…"


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


class CertificateAuthority:
    """The JPKI root and issuing CA: issues card certificates, OCSP signers and CRLs.

    The root key is needed only to certify an issuing CA; an online CA is loaded without it
    (:meth:`load` with ``with_root_key=False``, the default). Methods are pure and thread-safe:
    time is always passed in (read it from the injected :class:`~mynumber.clock.Clock`).
    """

    def __init__(
        self,
        *,
        root_cert: x509.Certificate,
        issuing_cert: x509.Certificate,
        issuing_key: CaPrivateKey,
        crl_url: str,
        ocsp_url: str | None,
        root_key: CaPrivateKey | None = None,
        organisation: str = "mynumber JPKI",
    ) -> None:
        if _spki(issuing_key.public_key()) != _spki(issuing_cert.public_key()):
            raise pki_error("pki.ca_key")
        if root_key is not None and _spki(root_key.public_key()) != _spki(root_cert.public_key()):
            raise pki_error("pki.ca_key")
        try:
            issuing_cert.verify_directly_issued_by(root_cert)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise pki_error("pki.ca_key") from exc
        self.root_cert = root_cert
        self.issuing_cert = issuing_cert
        self._issuing_key = issuing_key
        self._root_key = root_key
        self.crl_url = crl_url
        self.ocsp_url = ocsp_url
        self.organisation = organisation
        self._aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            x509.SubjectKeyIdentifier(_ski(issuing_cert))
        )

    # -- creation, persistence --------------------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        now: dt.datetime,
        crl_url: str,
        ocsp_url: str | None,
        key_type: KeyType = "p256",
        root_years: int = 20,
        issuing_years: int = 10,
        organisation: str = "mynumber JPKI",
    ) -> CertificateAuthority:
        """A new root CA and an issuing CA certified by it, both valid from `now`."""
        start = _utc(now)
        root_key, issuing_key = _new_key(key_type), _new_key(key_type)
        root_name = _name(organisation, f"{organisation} Root CA")
        root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
        root_cert = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_key.public_key())
            .serial_number(_random_serial())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=365 * root_years + root_years // 4))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_ca_key_usage(digital_signature=False), critical=True)
            .add_extension(root_ski, critical=False)
            .sign(root_key, hashes.SHA256())
        )
        issuing_cert = (
            x509.CertificateBuilder()
            .subject_name(_name(organisation, f"{organisation} Issuing CA"))
            .issuer_name(root_name)
            .public_key(issuing_key.public_key())
            .serial_number(_random_serial())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=365 * issuing_years + issuing_years // 4))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_key_usage(digital_signature=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(issuing_key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
                critical=False,
            )
            .sign(root_key, hashes.SHA256())
        )
        return cls(
            root_cert=root_cert,
            issuing_cert=issuing_cert,
            issuing_key=issuing_key,
            root_key=root_key,
            crl_url=crl_url,
            ocsp_url=ocsp_url,
            organisation=organisation,
        )

    @staticmethod
    def _passphrase(keystore: Keystore, name: str) -> bytes:
        # Hex, so the same passphrase also works with `openssl … -passin` when needed.
        return keystore.secret(name).hex().encode("ascii")

    def chain_pem(self) -> bytes:
        """The issuing CA then the root, PEM: what a relying party or `openssl -CAfile` loads."""
        return self.issuing_cert.public_bytes(
            serialization.Encoding.PEM
        ) + self.root_cert.public_bytes(serialization.Encoding.PEM)

    def export_pem(self, keystore: Keystore) -> dict[str, bytes]:
        """Certificates and keys as PEM files (name -> bytes). Private keys are PKCS#8 encrypted
        (PBES2, AES-256-CBC) under passphrases from `keystore` ("jlis-ca-issuing",
        "jlis-ca-root"); they are never returned in clear."""
        files = {
            _ROOT_CERT: self.root_cert.public_bytes(serialization.Encoding.PEM),
            _ISSUING_CERT: self.issuing_cert.public_bytes(serialization.Encoding.PEM),
            _CHAIN: self.chain_pem(),
        }
        keys = [(_ISSUING_KEY, _ISSUING_SECRET, self._issuing_key)]
        if self._root_key is not None:
            keys.append((_ROOT_KEY, _ROOT_SECRET, self._root_key))
        for file, secret, key in keys:
            files[file] = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(self._passphrase(keystore, secret)),
            )
        return files

    @classmethod
    def from_pem(
        cls,
        files: Mapping[str, bytes],
        keystore: Keystore,
        *,
        crl_url: str,
        ocsp_url: str | None,
        with_root_key: bool = False,
        organisation: str = "mynumber JPKI",
    ) -> CertificateAuthority:
        """The CA :meth:`export_pem` wrote. PkiError ``pki.ca_key`` if a file is missing or a key
        does not decrypt under the keystore's passphrase or does not match its certificate."""

        def key(file: str, secret: str) -> CaPrivateKey:
            try:
                loaded = serialization.load_pem_private_key(
                    files[file], cls._passphrase(keystore, secret)
                )
            except (KeyError, ValueError, TypeError) as exc:
                raise pki_error("pki.ca_key") from exc
            if not isinstance(loaded, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
                raise pki_error("pki.ca_key")
            return loaded

        try:
            root_cert = x509.load_pem_x509_certificate(files[_ROOT_CERT])
            issuing_cert = x509.load_pem_x509_certificate(files[_ISSUING_CERT])
        except (KeyError, ValueError) as exc:
            raise pki_error("pki.ca_key") from exc
        return cls(
            root_cert=root_cert,
            issuing_cert=issuing_cert,
            issuing_key=key(_ISSUING_KEY, _ISSUING_SECRET),
            root_key=key(_ROOT_KEY, _ROOT_SECRET) if with_root_key else None,
            crl_url=crl_url,
            ocsp_url=ocsp_url,
            organisation=organisation,
        )

    def save(self, directory: Path, keystore: Keystore) -> None:
        """Write :meth:`export_pem` into `directory` (keys 0600, atomically replaced)."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for file, data in self.export_pem(keystore).items():
            _write(directory / file, data, 0o600 if file.endswith("-key.pem") else 0o644)

    @classmethod
    def load(
        cls,
        directory: Path,
        keystore: Keystore,
        *,
        crl_url: str,
        ocsp_url: str | None,
        with_root_key: bool = False,
        organisation: str = "mynumber JPKI",
    ) -> CertificateAuthority:
        files = {p.name: p.read_bytes() for p in directory.glob("jpki-*.pem")}
        return cls.from_pem(
            files,
            keystore,
            crl_url=crl_url,
            ocsp_url=ocsp_url,
            with_root_key=with_root_key,
            organisation=organisation,
        )

    # -- issuance ---------------------------------------------------------------------------

    def _builder(
        self,
        subject_key: SubjectKey,
        not_before: dt.datetime,
        not_after: dt.datetime,
        serial: int | None,
    ) -> tuple[x509.CertificateBuilder, CertificatePublicKeyTypes, int]:
        if isinstance(subject_key, x509.CertificateSigningRequest):
            if not subject_key.is_signature_valid:
                raise pki_error("pki.csr_signature", field="csr")
            try:
                public_key = subject_key.public_key()
            except ValueError as exc:  # an algorithm this build cannot load
                raise pki_error("pki.key_type", field="csr") from exc
        else:
            public_key = subject_key
        _check_subject_key(public_key)
        start, end = _utc(not_before), _utc(not_after)
        if not (
            self.issuing_cert.not_valid_before_utc
            <= start
            < end
            <= self.issuing_cert.not_valid_after_utc
        ):
            raise pki_error(
                "pki.validity",
                field="not_after",
                extra={"not_before": start.isoformat(), "not_after": end.isoformat()},
            )
        if serial is None:
            serial = _random_serial()
        elif not 0 < serial < _MAX_SERIAL:
            raise pki_error("pki.serial", field="serial")
        builder = (
            x509.CertificateBuilder()
            .issuer_name(self.issuing_cert.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._aki, critical=False)
            .add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            full_name=[x509.UniformResourceIdentifier(self.crl_url)],
                            relative_name=None,
                            reasons=None,
                            crl_issuer=None,
                        )
                    ]
                ),
                critical=False,
            )
        )
        if self.ocsp_url is not None:  # a CA that answers by CRL alone (LGPKI) names no OCSP
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(self.ocsp_url),
                        )
                    ]
                ),
                critical=False,
            )
        return builder, public_key, serial

    def issue_signature_certificate(
        self,
        subject_key: SubjectKey,
        four_items: FourItems,
        not_before: dt.datetime,
        not_after: dt.datetime,
        serial: int | None = None,
    ) -> x509.Certificate:
        """The signature certificate (署名用電子証明書) for the card's public key (bare, or in a
        CSR whose self-signature is checked; the CSR's subject and extensions are ignored)."""
        four_items.validate()
        builder, _, _ = self._builder(subject_key, not_before, not_after, serial)
        return (
            builder.subject_name(_name(self.organisation, _display_name(four_items.name)))
            .add_extension(_ee_key_usage(non_repudiation=True), critical=True)
            .add_extension(
                x509.CertificatePolicies([x509.PolicyInformation(SIGNATURE_POLICY_OID, None)]),
                critical=False,
            )
            .add_extension(
                x509.UnrecognizedExtension(FOUR_ITEMS_OID, _der_utf8string(four_items.to_json())),
                critical=False,
            )
            .sign(self._issuing_key, hashes.SHA256())
        )

    def issue_auth_certificate(
        self,
        subject_key: SubjectKey,
        not_before: dt.datetime,
        not_after: dt.datetime,
        serial: int | None = None,
    ) -> x509.Certificate:
        """The user-authentication certificate (利用者証明用電子証明書): no personal data; the
        subject's common name is the serial number in hex."""
        builder, _, serial = self._builder(subject_key, not_before, not_after, serial)
        return (
            builder.subject_name(_name(self.organisation, f"{serial:X}"))
            .add_extension(_ee_key_usage(non_repudiation=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(
                x509.CertificatePolicies([x509.PolicyInformation(AUTH_POLICY_OID, None)]),
                critical=False,
            )
            .sign(self._issuing_key, hashes.SHA256())
        )

    def issue_organisation_certificate(
        self,
        subject_key: SubjectKey,
        organisation_name: str,
        not_before: dt.datetime,
        not_after: dt.datetime,
    ) -> x509.Certificate:
        """An organisation's signing certificate (LGPKI 組織認証: a municipality signs the
        certificates it issues with it): digitalSignature and nonRepudiation, the
        organisation's name as the common name."""
        builder, _, _ = self._builder(subject_key, not_before, not_after, None)
        return (
            builder.subject_name(_name(self.organisation, _display_name(organisation_name)))
            .add_extension(_ee_key_usage(non_repudiation=True), critical=True)
            .sign(self._issuing_key, hashes.SHA256())
        )

    def issue_ocsp_signer(
        self, not_before: dt.datetime, not_after: dt.datetime
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A fresh P-256 key and its delegated OCSP-signing certificate (RFC 6960 §4.2.2.2:
        extendedKeyUsage OCSPSigning, id-pkix-ocsp-nocheck). Keep its life short: it is not
        itself checked for revocation."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder, _, serial = self._builder(key.public_key(), not_before, not_after, None)
        cert = (
            builder.subject_name(_name(self.organisation, f"mynumber JPKI OCSP {serial:X}"))
            .add_extension(_ee_key_usage(non_repudiation=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False
            )
            .add_extension(x509.OCSPNoCheck(), critical=False)
            .sign(self._issuing_key, hashes.SHA256())
        )
        return cert, key

    def sign_ocsp_response(self, builder: ocsp.OCSPResponseBuilder) -> ocsp.OCSPResponse:
        """Sign an OCSP response as the issuing CA itself (responder ID by key hash), for a
        responder without a delegated signer; the CA key stays inside this object."""
        return builder.responder_id(ocsp.OCSPResponderEncoding.HASH, self.issuing_cert).sign(
            self._issuing_key, hashes.SHA256()
        )

    # -- revocation -------------------------------------------------------------------------

    def build_crl(
        self,
        entries: Iterable[RevocationEntry],
        this_update: dt.datetime,
        next_update: dt.datetime,
        crl_number: int,
    ) -> x509.CertificateRevocationList:
        """The issuing CA's signed CRL (RFC 5280) listing `entries`, with the CRL number,
        authority key identifier and issuing distribution point (this CA's user certificates).
        Entries are written in serial order; a serial given twice is a ValueError."""
        if not 0 <= crl_number < _MAX_SERIAL:
            raise pki_error("pki.crl_number", field="crl_number")
        start, end = _utc(this_update), _utc(next_update)
        if end <= start:
            raise pki_error("pki.validity", field="next_update")
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.issuing_cert.subject)
            .last_update(start)
            .next_update(end)
            .add_extension(x509.CRLNumber(crl_number), critical=False)
            .add_extension(self._aki, critical=False)
            .add_extension(
                x509.IssuingDistributionPoint(
                    full_name=[x509.UniformResourceIdentifier(self.crl_url)],
                    relative_name=None,
                    only_contains_user_certs=True,
                    only_contains_ca_certs=False,
                    only_some_reasons=None,
                    indirect_crl=False,
                    only_contains_attribute_certs=False,
                ),
                critical=True,
            )
        )
        seen: set[int] = set()
        for entry in sorted(entries, key=lambda e: e.serial):
            if entry.serial in seen:
                raise ValueError(f"serial {entry.serial:X} is listed twice")
            if not 0 < entry.serial < _MAX_SERIAL:
                raise pki_error("pki.serial", field="serial")
            seen.add(entry.serial)
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(entry.serial)
                .revocation_date(_utc(entry.revoked_at))
            )
            if entry.reason is not x509.ReasonFlags.unspecified:
                revoked = revoked.add_extension(x509.CRLReason(entry.reason), critical=False)
            builder = builder.add_revoked_certificate(revoked.build())
        return builder.sign(self._issuing_key, hashes.SHA256())


def _random_serial() -> int:
    while True:
        serial = x509.random_serial_number()
        if serial > 0:
            return serial


# --------------------------------------------------------------------------------------------
# Verification for relying parties


class ChainStatus(enum.StrEnum):
    """Outcome of :func:`verify_chain`: "ok" or the reason code of the refusal."""

    OK = "ok"
    MALFORMED = "pki.malformed"
    UNKNOWN_ISSUER = "pki.unknown_issuer"
    BAD_SIGNATURE = "pki.bad_signature"
    EXPIRED = "pki.expired"
    NOT_YET_VALID = "pki.not_yet_valid"
    WRONG_KEY_USAGE = "pki.wrong_key_usage"
    INVALID_CHAIN = "pki.invalid_chain"
    CRL_INVALID = "pki.crl_invalid"
    CRL_STALE = "pki.crl_stale"
    REVOKED = "pki.revoked"


@dataclass(frozen=True, slots=True)
class ChainVerification:
    status: ChainStatus
    error: PkiError | None = None

    @property
    def ok(self) -> bool:
        return self.status is ChainStatus.OK

    def raise_for_status(self) -> None:
        """Raise the refusal as a :class:`PkiError`; return if the chain is good."""
        if self.error is not None:
            raise self.error


def _refuse(status: ChainStatus, **extra: str) -> ChainVerification:
    return ChainVerification(status, pki_error(status.value, extra=dict(extra) or None))


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `cert` names `issuer` as its issuer (name and, when present, key identifier)."""
    if cert.issuer != issuer.subject:
        return False
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return True
    return aki.key_identifier is None or aki.key_identifier == _ski(issuer)


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _usage_fits(
    leaf: x509.Certificate, issuing: x509.Certificate, purpose: CertificateKind | None
) -> bool:
    issuing_ku = _key_usage(issuing)
    if not (_is_ca(issuing) and issuing_ku is not None and issuing_ku.key_cert_sign):
        return False
    ku = _key_usage(leaf)
    if _is_ca(leaf) or ku is None or not ku.digital_signature:
        return False
    if purpose is CertificateKind.SIGNATURE:
        return ku.content_commitment
    if purpose is CertificateKind.AUTH:
        try:
            eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            return False
        return ExtendedKeyUsageOID.CLIENT_AUTH in eku
    return True


def verify_chain(
    cert: x509.Certificate,
    issuing_ca_cert: x509.Certificate,
    root_cert: x509.Certificate,
    at: dt.datetime,
    *,
    purpose: CertificateKind | None = None,
    crl: x509.CertificateRevocationList | None = None,
) -> ChainVerification:
    """Check `cert` against the trusted JPKI `root_cert` via `issuing_ca_cert`, at time `at`.

    The first failing check names the result, in this order: unknown issuer (another CA, or
    another key under the same name), bad signature (altered or forged), expired / not yet
    valid (any certificate of the chain), wrong key usage (the leaf for `purpose`, the issuer
    as a CA), anything else RFC 5280 path validation refuses (``pki.invalid_chain``), then, when
    `crl` is given, the CRL's issuer, signature and currency and whether it lists the serial
    (``pki.revoked``, with the reason and date in the error). A revoked certificate that has
    also expired reports ``expired``.

    Path validation is cryptography's ``ClientVerifier`` (webpki CA policy; the leaf's usage is
    checked here per `purpose`, as webpki's leaf defaults demand a SAN and clientAuth). Only when
    it refuses are the signatures and validity periods checked one by one to name the reason,
    so a good chain costs two signature verifications (three with a CRL), not four.
    """
    when = _utc(at)
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([root_cert]))
        .time(when)
        .max_chain_depth(1)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    try:
        for child, parent in ((issuing_ca_cert, root_cert), (cert, issuing_ca_cert)):
            if not _issued_by(child, parent):
                return _refuse(ChainStatus.UNKNOWN_ISSUER)
        try:
            verifier.verify(cert, [issuing_ca_cert])
            refusal = None
        except verification.VerificationError as exc:
            refusal = str(exc)
        if refusal is not None:
            for child, parent in ((issuing_ca_cert, root_cert), (cert, issuing_ca_cert)):
                if not _signed_by(child, parent):
                    return _refuse(ChainStatus.BAD_SIGNATURE)
            for c in (cert, issuing_ca_cert, root_cert):
                if when < c.not_valid_before_utc:
                    return _refuse(
                        ChainStatus.NOT_YET_VALID, not_before=c.not_valid_before_utc.isoformat()
                    )
                if when > c.not_valid_after_utc:
                    return _refuse(ChainStatus.EXPIRED, not_after=c.not_valid_after_utc.isoformat())
        if not _usage_fits(cert, issuing_ca_cert, purpose):
            return _refuse(ChainStatus.WRONG_KEY_USAGE)
    except ValueError:  # an extension that does not parse
        return _refuse(ChainStatus.MALFORMED)
    if refusal is not None:
        return _refuse(ChainStatus.INVALID_CHAIN, detail=refusal)
    if crl is None:
        return ChainVerification(ChainStatus.OK)
    ca_key = issuing_ca_cert.public_key()
    if (
        crl.issuer != issuing_ca_cert.subject
        or not isinstance(ca_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
        or not crl.is_signature_valid(ca_key)
    ):
        return _refuse(ChainStatus.CRL_INVALID)
    next_update = crl.next_update_utc
    if when < crl.last_update_utc or next_update is None or when > next_update:
        return _refuse(ChainStatus.CRL_STALE)
    revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if revoked is None:
        return ChainVerification(ChainStatus.OK)
    try:
        reason = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        reason = x509.ReasonFlags.unspecified
    return _refuse(
        ChainStatus.REVOKED,
        revoked_at=revoked.revocation_date_utc.isoformat(),
        revocation_reason=reason.value,
    )

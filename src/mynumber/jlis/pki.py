"""The JPKI CA as a service of the J-LIS role: issued certificates, revocation, CRL and OCSP.

The pure cores are :mod:`mynumber.jlis.ca` (certificates, CRLs, validity rules) and
:mod:`mynumber.jlis.ocsp` (the responder); this module adds what J-LIS owns around them:

- **Keys.** The CA (root and issuing CA, P-256) is loaded at start-up from ``<data dir>/jpki``,
  its private keys encrypted under passphrases from the J-LIS keystore, or created and saved there
  on first start. Certificates carry this deployment's CRL and OCSP URLs
  (``<base_url>/api/jlis/crl``, ``<base_url>/api/jlis/ocsp``).
- **Storage.** Every certificate issued is a row of ``certificates`` (serial in hex, kind, the
  resident record code, optional chip id, validity, DER, status ``valid`` | ``revoked`` |
  ``on_hold``, revocation time and RFC 5280 reason), written in the same transaction that decides
  to issue it. ``crl_state`` (one row) holds the CRL number, a revision counter bumped by every
  revocation, and the latest signed CRL.
- **Revocation.** :meth:`PkiService.revoke_for_event` revokes the resident's certificates that
  the event affects (:func:`mynumber.jlis.ca.revokes`: a change of address, name or sex revokes
  the signature certificate only; death, loss, emigration, return, reissue and the holder's
  request revoke both; a suspension puts both on hold). The change and the revision bump commit
  together, so OCSP (which reads the table on every request) and the next CRL see it at once.
- **CRL.** :meth:`PkiService.crl` serves the stored CRL while it reflects the current revision
  and is less than half-way through its validity (:data:`CRL_VALIDITY`); otherwise it signs a new
  one with the next CRL number. Certificates past their notAfter leave the CRL (RFC 5280 §3.3).
- **OCSP.** A delegated signer (:class:`~mynumber.jlis.ocsp.OcspResponder`), one per process,
  answers from the table: ``good``, ``revoked`` (certificateHold while on hold) or ``unknown``.

Time always comes from the injected clock.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from mynumber.clock import Clock
from mynumber.db import read_once, stored_utc, writing
from mynumber.jlis import models as m
from mynumber.jlis.ca import (
    REVOCATION_REASONS,
    CertificateAuthority,
    CertificateKind,
    FourItems,
    RevocationEntry,
    RevocationEvent,
    certificate_expiry,
    end_of_day,
    load_csr,
    revokes,
)
from mynumber.jlis.ocsp import CertStatus, LookupRefused, OcspResponder
from mynumber.jlis.pki_errors import pki_error
from mynumber.keystore import Keystore, file_lock

__all__ = [
    "CRL_VALIDITY",
    "IdentityChange",
    "IssuedCertificate",
    "PkiService",
    "revocations_for",
    "serial_hex",
]

CRL_VALIDITY = dt.timedelta(hours=1)
"""A CRL's nextUpdate − thisUpdate; a fresh one is signed half-way through, or at a revocation."""

_KIND_NAMES = {CertificateKind.SIGNATURE: "signature", CertificateKind.AUTH: "authentication"}
_KINDS = {name: kind for kind, name in _KIND_NAMES.items()}
_VALID, _REVOKED, _ON_HOLD = "valid", "revoked", "on_hold"
_STATE_ID = 1

_VERIFIER_KIND = {"signature": "signature", "authentication": "auth"}
"""A stored certificate kind → the verifier kind that may ask about it."""
_HOLDER_SQL = "SELECT resident_code FROM certificates WHERE serial = ?"
_STATUS_SQL = (
    "SELECT status, revoked_at, revocation_reason, kind FROM certificates WHERE serial = ?"
)

SubjectKeyInput = CertificatePublicKeyTypes | x509.CertificateSigningRequest | bytes


@dataclass(frozen=True, slots=True)
class IdentityChange:
    """A person's identity-mirror row before and after one event from the register."""

    resident_code: str
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    abroad: bool = False


def revocations_for(
    before: Mapping[str, Any], after: Mapping[str, Any], *, abroad: bool = False
) -> list[RevocationEvent]:
    """What a change of a person's identity (two rows of the identity mirror) revokes.

    Death revokes both certificates; so does a move abroad (国外転出). A change of name or sex
    revokes the signature certificate (it carries them); so does a change of address, and a
    move-out to another municipality (the registered address is no longer where the holder
    lives; the move-in that follows changes it again). Kana changes revoke nothing: the
    certificate does not carry the kana.
    """
    status = after["status"]
    if status == "deceased" and before["status"] != "deceased":
        return [RevocationEvent.DEATH]
    events: list[RevocationEvent] = []
    if status == "moved_out" and before["status"] != "moved_out" and abroad:
        return [RevocationEvent.EMIGRATION]
    if (before["family_name"], before["given_name"]) != (after["family_name"], after["given_name"]):
        events.append(RevocationEvent.NAME_CHANGE)
    if before["sex"] != after["sex"]:
        events.append(RevocationEvent.SEX_CHANGE)
    if before["address"] != after["address"] or (
        status == "moved_out" and before["status"] != "moved_out"
    ):
        events.append(RevocationEvent.ADDRESS_CHANGE)
    return events


def serial_hex(serial: int) -> str:
    """The storage form of a serial number: upper-case hex, zero-padded to 40 digits."""
    return f"{serial:040X}"


def _utc(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(microsecond=0)


def _kind(kind: CertificateKind | str) -> CertificateKind:
    if isinstance(kind, CertificateKind):
        return kind
    if kind in _KINDS:
        return _KINDS[kind]
    return CertificateKind(kind)  # "signature" | "auth"; ValueError otherwise


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """One row of the certificate table."""

    serial: int
    kind: CertificateKind
    resident_code: str
    chip_id: str | None
    not_before: dt.datetime
    not_after: dt.datetime
    status: str  # valid | revoked | on_hold
    revoked_at: dt.datetime | None
    revocation_reason: x509.ReasonFlags | None
    der: bytes

    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)


class PkiService:
    """The J-LIS JPKI CA: issues and stores certificates, revokes them, serves CRL and OCSP."""

    def __init__(self, engine: Engine, ca: CertificateAuthority, clock: Clock) -> None:
        self.engine = engine
        self.ca = ca
        self._clock = clock
        self._responder = OcspResponder(ca, clock)
        self._crl_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        engine: Engine,
        directory: Path,
        keystore: Keystore,
        clock: Clock,
        *,
        base_url: str,
    ) -> PkiService:
        """The service with the CA in `directory`, created and saved there on first start."""
        base = base_url.rstrip("/")
        crl_url, ocsp_url = f"{base}/api/jlis/crl", f"{base}/api/jlis/ocsp"
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Server workers start together on an empty data dir: one creates the CA, the others
        # wait on the lock and load it (without it, each would sign with a CA of its own).
        with file_lock(directory / ".lock"):
            if any(directory.glob("jpki-*.pem")):
                ca = CertificateAuthority.load(
                    directory, keystore, crl_url=crl_url, ocsp_url=ocsp_url
                )
            else:
                ca = CertificateAuthority.create(
                    now=clock.now(), crl_url=crl_url, ocsp_url=ocsp_url
                )
                ca.save(directory, keystore)
        return cls(engine, ca, clock)

    # -- issuance ---------------------------------------------------------------------------

    def issue(
        self,
        kind: CertificateKind | str,
        resident_code: str,
        csr_or_public_key: SubjectKeyInput,
        four_items: FourItems | None,
        birth_date: dt.date,
        issued_on: dt.date,
        period_of_stay_end: dt.date | None = None,
        chip_id: str | None = None,
        *,
        card_expires: dt.date | None = None,
    ) -> x509.Certificate:
        """Issue and store a certificate of `kind` ("signature" or "authentication") for the
        card key of `resident_code` (a public key, a CSR object, or a PEM/DER CSR).

        Valid from now to the end (JST) of :func:`~mynumber.jlis.ca.certificate_expiry`. The
        signature certificate needs `four_items`; the authentication certificate carries no
        personal data, so `four_items` must then be None. Refused unless the identity mirror
        knows the resident as active (``pki.resident_unknown``, ``pki.resident_inactive``).
        """
        subject_key = (
            load_csr(csr_or_public_key)
            if isinstance(csr_or_public_key, bytes)
            else csr_or_public_key
        )
        with writing(self.engine) as conn:
            return self.issue_in(
                conn,
                kind,
                resident_code,
                subject_key,
                four_items,
                birth_date,
                issued_on,
                chip_id=chip_id,
                period_of_stay_end=period_of_stay_end,
                card_expires=card_expires,
            )

    @staticmethod
    def _check_resident(conn: Connection, resident_code: str) -> None:
        status = conn.execute(
            select(m.identities.c.status).where(m.identities.c.resident_code == resident_code)
        ).scalar_one_or_none()
        if status is None:
            raise pki_error("pki.resident_unknown", field="resident_code")
        if status != "active":
            raise pki_error(
                "pki.resident_inactive", field="resident_code", extra={"resident_status": status}
            )

    # -- queries ----------------------------------------------------------------------------

    def certificates(self, resident_code: str) -> list[IssuedCertificate]:
        """Every certificate issued for `resident_code`, oldest first."""
        c = m.certificates.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(m.certificates)
                .where(c.resident_code == resident_code)
                .order_by(c.not_before, c.serial)
            ).all()
        return [
            IssuedCertificate(
                serial=int(r.serial, 16),
                kind=_KINDS[r.kind],
                resident_code=r.resident_code,
                chip_id=r.chip_id,
                not_before=stored_utc(r.not_before),
                not_after=stored_utc(r.not_after),
                status=r.status,
                revoked_at=None if r.revoked_at is None else stored_utc(r.revoked_at),
                revocation_reason=(
                    None if r.revocation_reason is None else x509.ReasonFlags(r.revocation_reason)
                ),
                der=bytes(r.der),
            )
            for r in rows
        ]

    def status(self, serial: int) -> CertStatus:
        """What OCSP says about `serial`: good, revoked (with time and reason; certificateHold
        while on hold) or unknown (never issued here)."""
        return self._status(serial, None)

    def _status(self, serial: int, kinds: frozenset[str] | None) -> CertStatus:
        if not 0 < serial < 2**160:
            return CertStatus.unknown()
        # The hot path of every OCSP request and login: one prebuilt statement.
        rows = read_once(self.engine, _STATUS_SQL, (serial_hex(serial),))
        if not rows:
            return CertStatus.unknown()
        status, revoked_at, reason, kind = rows[0]
        if kinds is not None and _VERIFIER_KIND[kind] not in kinds:
            raise LookupRefused(kind)
        if status == _VALID:
            return CertStatus.good()
        if isinstance(revoked_at, str):  # SQLite hands the raw column back as ISO text
            revoked_at = dt.datetime.fromisoformat(revoked_at)
        return CertStatus.revoked(
            RevocationEntry(serial, stored_utc(revoked_at), x509.ReasonFlags(reason))
        )

    # -- revocation -------------------------------------------------------------------------

    def revoke_for_event(self, resident_code: str, event: RevocationEvent | str) -> list[int]:
        """Revoke (or, for a suspension, hold) the resident's certificates `event` affects.

        Certificates already revoked stay as they are; a held certificate is revoked for good by
        any other event. Returns the serial numbers changed.
        """
        with writing(self.engine) as conn:
            return self.revoke_in(conn, resident_code, RevocationEvent(event))

    def revoke_for_changes(self, conn: Connection, changes: Sequence[IdentityChange]) -> list[int]:
        """Revoke what identity changes call for (:func:`revocations_for`) inside the caller's
        J-LIS transaction — the identity mirror's sync — so the mirror and the certificates'
        status commit together."""
        changed: list[int] = []
        for change in changes:
            for event in revocations_for(change.before, change.after, abroad=change.abroad):
                changed += self.revoke_in(conn, change.resident_code, event)
        return changed

    def revoke_in(self, conn: Connection, resident_code: str, event: RevocationEvent) -> list[int]:
        """:meth:`revoke_for_event` inside the caller's transaction on the J-LIS engine."""
        return self._revoke_where(conn, m.certificates.c.resident_code == resident_code, event)

    def _revoke_where(
        self, conn: Connection, which: ColumnElement[bool], event: RevocationEvent
    ) -> list[int]:
        """Revoke (or hold) the valid or held certificates `which` selects that `event`
        affects; bump the CRL revision if any changed. Returns the serials changed."""
        reason = REVOCATION_REASONS[event]
        hold = event is RevocationEvent.SUSPENSION
        now = _utc(self._clock.now())
        c = m.certificates.c
        changed: list[int] = []
        rows = conn.execute(
            select(c.serial, c.kind, c.status).where(which, c.status.in_([_VALID, _ON_HOLD]))
        ).all()
        for row in rows:
            if not revokes(event, _KINDS[row.kind]) or (hold and row.status == _ON_HOLD):
                continue
            done = conn.execute(
                update(m.certificates)
                .where(c.serial == row.serial, c.status == row.status)
                .values(
                    status=_ON_HOLD if hold else _REVOKED,
                    revoked_at=now,
                    revocation_reason=reason.value,
                )
            ).rowcount
            if done:  # not if a concurrent revocation changed it first
                changed.append(int(row.serial, 16))
        if changed:
            self._bump_revision(conn)
        return changed

    def _bump_revision(self, conn: Connection) -> None:
        s = m.crl_state
        done = conn.execute(
            update(s).where(s.c.id == _STATE_ID).values(revision=s.c.revision + 1)
        ).rowcount
        if not done:
            conn.execute(s.insert().values(id=_STATE_ID, crl_number=0, revision=1))

    # -- CRL and OCSP -----------------------------------------------------------------------

    def crl(self) -> bytes:
        """The current CRL in DER: the stored one while it reflects every revocation and is
        less than half-way through its validity, else a freshly signed one (next CRL number)."""
        now = _utc(self._clock.now())
        s = m.crl_state
        with self.engine.connect() as conn:
            row = conn.execute(select(s).where(s.c.id == _STATE_ID)).first()
        if row is not None and self._current(row, now):
            return bytes(row.der)
        with self._crl_lock, writing(self.engine) as conn:
            # The row lock (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers)
            # keeps two processes from signing different CRLs under one number.
            row = conn.execute(select(s).where(s.c.id == _STATE_ID).with_for_update()).first()
            if row is None:
                conn.execute(s.insert().values(id=_STATE_ID, crl_number=0, revision=0))
                row = conn.execute(select(s).where(s.c.id == _STATE_ID)).one()
            elif self._current(row, now):  # another writer got there first
                return bytes(row.der)
            c = m.certificates.c
            entries = [
                RevocationEntry(
                    int(r.serial, 16),
                    stored_utc(r.revoked_at),
                    x509.ReasonFlags(r.revocation_reason),
                )
                for r in conn.execute(
                    select(c.serial, c.revoked_at, c.revocation_reason).where(
                        c.status.in_([_REVOKED, _ON_HOLD]), c.not_after >= now
                    )
                )
            ]
            number = row.crl_number + 1
            next_update = now + CRL_VALIDITY
            crl = self.ca.build_crl(entries, now, next_update, number)
            der = crl.public_bytes(serialization.Encoding.DER)
            conn.execute(
                update(s)
                .where(s.c.id == _STATE_ID)
                .values(
                    crl_number=number,
                    built_revision=row.revision,
                    this_update=now,
                    next_update=next_update,
                    der=der,
                )
            )
        return der

    @staticmethod
    def _current(row: Any, now: dt.datetime) -> bool:
        if row.der is None or row.this_update is None or row.next_update is None:
            return False
        if row.built_revision != row.revision:
            return False
        start, end = stored_utc(row.this_update), stored_utc(row.next_update)
        return start <= now < start + (end - start) / 2

    def ocsp(self, request_der: bytes, kinds: frozenset[str] | None = None) -> bytes:
        """The signed DER OCSP response to `request_der` (malformedRequest for garbage).

        With `kinds` (a registered verifier's: ``signature`` for 署名検証者, ``auth`` for
        利用者証明検証者), a question about a certificate of another kind is answered with the
        unsigned status ``unauthorized`` (公的個人認証法 17条・36条: each kind of verifier is
        told about its own kind of certificate)."""
        if kinds is None:
            return self._responder.ocsp_response(request_der, self.status)
        return self._responder.ocsp_response(request_der, lambda s: self._status(s, kinds))

    def ocsp_signer_certificate(self) -> x509.Certificate:
        return self._responder.signer_certificate()

    def chain_pem(self) -> bytes:
        """The issuing CA's certificate then the root's, PEM."""
        return self.ca.chain_pem()

    # -- card management (mynumber.jlis.cards): the same operations inside a caller's
    # transaction, scoped to one chip, so a card's state change and its certificates commit
    # together (I8) ------------------------------------------------------------------------

    def issue_in(
        self,
        conn: Connection,
        kind: CertificateKind | str,
        resident_code: str,
        csr: CertificatePublicKeyTypes | x509.CertificateSigningRequest,
        four_items: FourItems | None,
        birth_date: dt.date,
        issued_on: dt.date,
        *,
        chip_id: str | None,
        period_of_stay_end: dt.date | None = None,
        card_expires: dt.date | None = None,
    ) -> x509.Certificate:
        """:meth:`issue` on the caller's write transaction `conn` (same rules, same row)."""
        which = _kind(kind)
        if which is CertificateKind.SIGNATURE and four_items is None:
            raise pki_error("pki.four_items", field="four_items")
        if which is CertificateKind.AUTH and four_items is not None:
            raise ValueError("the authentication certificate carries no personal data")
        expiry = certificate_expiry(
            birth_date, issued_on, period_of_stay_end, card_expires=card_expires
        )
        now = _utc(self._clock.now())
        self._check_resident(conn, resident_code)
        if which is CertificateKind.SIGNATURE:
            assert four_items is not None
            cert = self.ca.issue_signature_certificate(csr, four_items, now, end_of_day(expiry))
        else:
            cert = self.ca.issue_auth_certificate(csr, now, end_of_day(expiry))
        # A 159-bit random serial never collides; were it to, the primary key refuses it and
        # the caller's transaction rolls back whole.
        conn.execute(
            m.certificates.insert().values(
                serial=serial_hex(cert.serial_number),
                kind=_KIND_NAMES[which],
                resident_code=resident_code,
                chip_id=chip_id,
                not_before=cert.not_valid_before_utc,
                not_after=cert.not_valid_after_utc,
                der=cert.public_bytes(serialization.Encoding.DER),
                status=_VALID,
            )
        )
        return cert

    def revoke_chip_in(
        self, conn: Connection, chip_id: str, event: RevocationEvent | str
    ) -> list[int]:
        """:meth:`revoke_for_event` for the certificates of one chip, on `conn`."""
        return self._revoke_where(conn, m.certificates.c.chip_id == chip_id, RevocationEvent(event))

    def lift_hold_in(self, conn: Connection, chip_id: str) -> list[int]:
        """Lift the hold (certificateHold → valid again, RFC 5280 removeFromCRL) on the
        certificates of one chip, on `conn`: the suspension of a card found again, lifted at the
        counter after an identity check. Certificates revoked for good stay revoked."""
        c = m.certificates.c
        serials = [
            str(s)
            for s in conn.execute(
                select(c.serial).where(c.chip_id == chip_id, c.status == _ON_HOLD)
            ).scalars()
        ]
        if not serials:
            return []
        conn.execute(
            update(m.certificates)
            .where(c.serial.in_(serials), c.status == _ON_HOLD)
            .values(status=_VALID, revoked_at=None, revocation_reason=None)
        )
        self._bump_revision(conn)
        return [int(s, 16) for s in serials]

    # -- holders (for the platform's own verifiers: login, 基本4情報提供) -------------------------

    def holder_of(self, serial: int) -> str | None:
        """The resident record code of the certificate `serial`, or None if J-LIS never issued
        it. Internal to J-LIS: a relying party learns a serial number, never whose it is."""
        if not 0 < serial < 2**160:
            return None
        rows = read_once(self.engine, _HOLDER_SQL, (serial_hex(serial),))
        return str(rows[0][0]) if rows else None

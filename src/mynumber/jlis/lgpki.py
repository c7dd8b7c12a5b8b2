"""LGPKI, the local governments' organisation PKI (地方公共団体組織認証基盤), which J-LIS also
runs: a root and an issuing CA of their own (not JPKI's: a municipality is not a person), the
organisation certificates municipalities sign issued documents with, their revocation, and the
CRL a document verifier checks the signer against.

The CA is the same code as JPKI's (:class:`~mynumber.jlis.ca.CertificateAuthority`) with the
organisation "mynumber LGPKI", kept in its own directory with keys under passphrases of its
own. Certificates are stored in J-LIS's ``organisation_certificates`` table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from mynumber.clock import Clock
from mynumber.db import stored_utc, writing
from mynumber.errors import NotFoundError
from mynumber.jlis import models as m
from mynumber.jlis.ca import CertificateAuthority, RevocationEntry
from mynumber.jlis.pki import serial_hex
from mynumber.keystore import Keystore, file_lock

__all__ = ["ORGANISATION", "OrganisationAuthority"]

ORGANISATION = "mynumber LGPKI"
_YEARS = 3
_CRL_HOURS = 24


class _Prefixed:
    """The keystore with every secret's name prefixed: LGPKI's CA keys are encrypted under
    passphrases of their own, not JPKI's."""

    def __init__(self, keystore: Keystore, prefix: str) -> None:
        self._keystore, self._prefix = keystore, prefix

    def secret(self, name: str, size: int = 32) -> bytes:
        return self._keystore.secret(self._prefix + name, size)


class OrganisationAuthority:
    def __init__(self, engine: Engine, ca: CertificateAuthority, clock: Clock) -> None:
        self.engine = engine
        self.ca = ca
        self._clock = clock

    @classmethod
    def open(
        cls, engine: Engine, directory: Path, keystore: Keystore, clock: Clock, *, base_url: str
    ) -> OrganisationAuthority:
        """The authority with its CA in `directory`, created there on first start (under a
        lock: server workers starting together share one CA)."""
        base = base_url.rstrip("/")
        # LGPKI answers by CRL alone: its certificates name no OCSP responder (JPKI's would
        # not know them).
        crl_url, ocsp_url = f"{base}/api/jlis/lgpki/crl", None
        keys = _Prefixed(keystore, "lgpki-")
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with file_lock(directory / ".lock"):
            if any(directory.glob("jpki-*.pem")):
                ca = CertificateAuthority.load(
                    directory, keys, organisation=ORGANISATION, crl_url=crl_url, ocsp_url=ocsp_url
                )
            else:
                ca = CertificateAuthority.create(
                    now=clock.now(), organisation=ORGANISATION, crl_url=crl_url, ocsp_url=ocsp_url
                )
                ca.save(directory, keys)
        return cls(engine, ca, clock)

    @property
    def root(self) -> x509.Certificate:
        return self.ca.root_cert

    @property
    def chain(self) -> list[x509.Certificate]:
        return [self.ca.issuing_cert, self.ca.root_cert]

    def issue(
        self, municipality_code: str, name: str, public_key: CertificatePublicKeyTypes
    ) -> x509.Certificate:
        """A signing certificate for the municipality `municipality_code` (named `name`),
        valid three years (capped by the issuing CA's own validity)."""
        now = self._clock.now().astimezone(dt.UTC)
        end = min(now + dt.timedelta(days=365 * _YEARS), self.ca.issuing_cert.not_valid_after_utc)
        cert = self.ca.issue_organisation_certificate(public_key, name, now, end)
        with writing(self.engine) as conn:
            conn.execute(
                insert(m.organisation_certificates).values(
                    serial=serial_hex(cert.serial_number),
                    municipality_code=municipality_code,
                    not_before=now,
                    not_after=end,
                    der=cert.public_bytes(serialization.Encoding.DER),
                    status="valid",
                )
            )
        return cert

    def revoke(
        self, serial: int, reason: x509.ReasonFlags = x509.ReasonFlags.key_compromise
    ) -> None:
        """Revoke an organisation certificate (a municipality's key lost or replaced): every
        document it signed then fails verification as ``revoked``."""
        t = m.organisation_certificates
        with writing(self.engine) as conn:
            done = conn.execute(
                update(t)
                .where(t.c.serial == serial_hex(serial), t.c.status == "valid")
                .values(
                    status="revoked",
                    revoked_at=self._clock.now().astimezone(dt.UTC),
                    revocation_reason=reason.value,
                )
            ).rowcount
        if not done:
            raise NotFoundError(
                "lgpki.certificate_unknown",
                "No valid organisation certificate has this serial number.",
                "このシリアル番号の有効な組織証明書はありません。",
                field="serial",
            )

    def crl(self) -> bytes:
        """The current CRL (DER), signed now, valid for a day."""
        t = m.organisation_certificates
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.serial, t.c.revoked_at, t.c.revocation_reason).where(
                    t.c.status == "revoked"
                )
            ).all()
        now = self._clock.now()
        entries = [
            RevocationEntry(
                int(r.serial, 16),
                stored_utc(r.revoked_at),
                x509.ReasonFlags(r.revocation_reason),
            )
            for r in rows
        ]
        crl = self.ca.build_crl(
            entries,
            now - dt.timedelta(minutes=5),
            now + dt.timedelta(hours=_CRL_HOURS),
            int(now.timestamp() * 1000),
        )
        return crl.public_bytes(serialization.Encoding.DER)

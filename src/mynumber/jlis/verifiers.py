"""Registered verifiers and 基本4情報提供 — who may ask J-LIS about certificates, and for what.

Revocation information goes only to parties that notified J-LIS in advance as 署名検証者
(公的個人認証法 17条) or 利用者証明検証者 (36条) (facts §4). A :class:`Verifier` is that
registration: a name, the kinds of certificate it verifies (``signature``, ``auth``), and
whether it is active; its bearer token (``mynumber verifier register``) names it. The OCSP
responder and the four-items route admit a token only while its verifier is registered and
active (``verifier.not_registered``); the four-items route only for a verifier registered for
``signature`` (``verifier.kind``). The OCSP responder answers a verifier only about the kinds
of certificate it registered for; a question about another kind gets the unsigned OCSP status
``unauthorized`` (:meth:`~mynumber.jlis.pki.PkiService.ocsp` with the verifier's kinds).

**基本4情報提供** (:meth:`VerifierService.provide_four_items`): a signature verifier that once
relied on a person's signature certificate receives that person's *latest* four basic items from
the identity mirror — only with the person's consent, a
:class:`~mynumber.relying.consent.FourItemsConsent` signed with their user-authentication key
(their card and 4-digit PIN, DESIGN I4). J-LIS refuses, each with its own code, unless:

- the statement is well formed (``four_items.consent_malformed``), names the certificate asked
  about (``four_items.consent_mismatch``) and this verifier (``four_items.other_verifier``), and
  is recent (``four_items.consent_expired``: :data:`CONSENT_VALIDITY`);
- the user-authentication certificate and its signature over the statement verify now
  (``pki.*``, ``relying.signature_invalid``; revocation read in process);
- the old serial is a signature certificate J-LIS issued (``four_items.unknown_certificate``) to
  the same person as the consenting certificate (``four_items.other_person``);
- the consent was never used before (``four_items.consent_replayed``).

The consent and the provision are recorded in one transaction with the read of the items.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from mynumber.clock import Clock
from mynumber.db import stored_utc, writing
from mynumber.errors import MynumberError
from mynumber.idempotency import IdempotentRunner
from mynumber.jlis import models as m
from mynumber.jlis.ca import CertificateKind, FourItems, four_items_of
from mynumber.jlis.pki import PkiService, serial_hex
from mynumber.relying.consent import FourItemsConsent
from mynumber.relying.ocsp_client import LocalStatusSource
from mynumber.relying.verify import Trust, verify_authentication

__all__ = [
    "CONSENT_VALIDITY",
    "KINDS",
    "FourItemsProvision",
    "Verifier",
    "VerifierService",
    "verifier_error",
]

KINDS = ("auth", "signature")
CONSENT_VALIDITY = dt.timedelta(minutes=10)
"""How long after it is dated a consent may be used (once)."""
CLOCK_SKEW = dt.timedelta(minutes=5)

# code -> (HTTP status, English, Japanese)
_MESSAGES: dict[str, tuple[int, str, str]] = {
    "verifier.not_registered": (
        403,
        "Only verifiers registered with J-LIS (署名検証者・利用者証明検証者) may ask this; this "
        "token belongs to no active registered verifier.",
        "この照会はJ-LISに届け出た署名検証者・利用者証明検証者のみが行えます。このトークンは届出済みの検証者のものではありません。",
    ),
    "verifier.kind": (
        403,
        "This verifier is not registered for this kind of certificate.",
        "この検証者はこの種類の電子証明書の検証者として届け出られていません。",
    ),
    "verifier.name": (
        422,
        "A verifier's name is 1–200 characters without control characters.",
        "検証者の名称は制御文字を含まない1〜200文字です。",
    ),
    "four_items.consent_malformed": (
        422,
        "The consent statement is not one this service issues (canonical JSON naming the "
        "verifier, the signature certificate, a nonce and the time).",
        "同意文の形式が正しくありません。",
    ),
    "four_items.consent_mismatch": (
        422,
        "The consent names another signature certificate than the one asked about.",
        "同意文に記載された署名用電子証明書が照会対象と異なります。",
    ),
    "four_items.consent_expired": (
        422,
        "The consent is too old (or dated in the future); ask the holder to consent again.",
        "同意の有効期限が切れています（または日時が未来です）。改めて本人の同意を得てください。",
    ),
    "four_items.other_verifier": (
        403,
        "The holder consented to another verifier, not to this one.",
        "本人の同意は別の検証者に対するものです。",
    ),
    "four_items.other_person": (
        403,
        "The consenting certificate belongs to another person than the signature certificate.",
        "同意に用いた利用者証明用電子証明書は、署名用電子証明書と別の方のものです。",
    ),
    "four_items.consent_replayed": (
        409,
        "This consent has already been used: each consent serves one provision.",
        "この同意は使用済みです。同意1件につき1回のみ提供できます。",
    ),
    "four_items.unknown_certificate": (
        404,
        "J-LIS issued no signature certificate with this serial number.",
        "このシリアル番号の署名用電子証明書は発行されていません。",
    ),
}


def verifier_error(
    code: str, *, field: str | None = None, extra: dict[str, Any] | None = None
) -> MynumberError:
    status, en, ja = _MESSAGES[code]
    return MynumberError(code, en, ja, field=field, status=status, extra=extra)


@dataclass(frozen=True, slots=True)
class Verifier:
    id: str
    name: str
    kinds: frozenset[str]
    registered_at: dt.datetime
    active: bool


@dataclass(frozen=True, slots=True)
class FourItemsProvision:
    """What a verifier receives: the latest four items and what became of the old certificate."""

    four_items: FourItems
    resident_status: str
    """active | moved_out | deceased (the identity mirror's status)."""
    changed: bool
    """Whether the items differ from those the old signature certificate carries."""
    certificate_status: str
    """The old signature certificate: valid | revoked | on_hold."""


def _same(a: FourItems, b: FourItems) -> bool:
    def fold(text: str) -> str:
        return "".join(unicodedata.normalize("NFKC", text).split())

    return (fold(a.name), fold(a.address), a.birth_date, a.sex) == (
        fold(b.name),
        fold(b.address),
        b.birth_date,
        b.sex,
    )


class VerifierService:
    """J-LIS's register of verifiers, and the 基本4情報提供 it makes to them."""

    def __init__(self, engine: Engine, pki: PkiService, clock: Clock) -> None:
        self.engine = engine
        self._pki = pki
        self._clock = clock
        self._runner = IdempotentRunner(engine, m.idempotency, clock.now)
        self._trust = Trust(pki.ca.issuing_cert, pki.ca.root_cert)
        self._status = LocalStatusSource(pki.status)

    # -- the register -----------------------------------------------------------------------

    def register(self, name: str, kinds: Iterable[str]) -> Verifier:
        """Register a verifier for `kinds` (``signature``, ``auth``)."""
        chosen = frozenset(kinds)
        if not chosen or not chosen <= set(KINDS):
            raise ValueError(f"kinds are {' and '.join(KINDS)}")
        name = name.strip()
        if not 1 <= len(name) <= 200 or any(unicodedata.category(c)[0] == "C" for c in name):
            raise verifier_error("verifier.name", field="name")
        verifier = Verifier(
            "vf_" + secrets.token_hex(8), name, chosen, stored_utc(self._clock.now()), True
        )
        with writing(self.engine) as conn:
            conn.execute(
                m.verifiers.insert().values(
                    id=verifier.id,
                    name=verifier.name,
                    kinds=",".join(sorted(chosen)),
                    registered_at=verifier.registered_at,
                    active=True,
                )
            )
        return verifier

    def get(self, verifier_id: str) -> Verifier | None:
        v = m.verifiers
        with self.engine.connect() as conn:
            row = conn.execute(select(v).where(v.c.id == verifier_id)).first()
        if row is None:
            return None
        return Verifier(
            row.id,
            row.name,
            frozenset(row.kinds.split(",")),
            stored_utc(row.registered_at),
            bool(row.active),
        )

    def deactivate(self, verifier_id: str) -> bool:
        """Withdraw a registration; its tokens stop working at once. False if unknown."""
        v = m.verifiers
        with writing(self.engine) as conn:
            done = conn.execute(
                update(v).where(v.c.id == verifier_id).values(active=False)
            ).rowcount
        return bool(done)

    def require_active(self, verifier_id: str | None, kind: str | None = None) -> Verifier:
        """The active verifier `verifier_id`, registered for `kind` when given."""
        verifier = None if verifier_id is None else self.get(verifier_id)
        if verifier is None or not verifier.active:
            raise verifier_error("verifier.not_registered")
        if kind is not None and kind not in verifier.kinds:
            raise verifier_error("verifier.kind", extra={"required_kind": kind})
        return verifier

    # -- 基本4情報提供 ------------------------------------------------------------------------

    def provide_four_items(
        self,
        verifier_id: str,
        signature_serial: int,
        consent: bytes,
        certificate: bytes,
        signature: bytes,
        *,
        idempotency_key: str | None = None,
    ) -> tuple[int, dict[str, Any], bool]:
        """(HTTP status, body, replayed) for a 基本4情報提供 request (module docstring)."""
        self.require_active(verifier_id, "signature")
        statement = self._check_consent(verifier_id, signature_serial, consent)
        now = self._clock.now()
        auth_serial, _ = verify_authentication(
            consent, signature, certificate, trust=self._trust, status=self._status, at=now
        )
        holder = self._pki.holder_of(signature_serial)
        issued = self._pki.certificates(holder) if holder is not None else []
        record = next((c for c in issued if c.serial == signature_serial), None)
        if record is None or record.kind is not CertificateKind.SIGNATURE:
            raise verifier_error("four_items.unknown_certificate", field="signature_serial")
        if self._pki.holder_of(auth_serial) != holder:
            raise verifier_error("four_items.other_person", field="certificate")
        assert holder is not None
        old_items = four_items_of(record.certificate())

        def work(conn: Connection) -> tuple[int, dict[str, Any]]:
            self._record_consent(conn, verifier_id, statement, consent, auth_serial, holder, now)
            provision = self._latest(conn, holder, old_items, record.status)
            return 200, _body(provision)

        payload = {
            "verifier": verifier_id,
            "consent": hashlib.sha256(consent).hexdigest(),
            "signature": hashlib.sha256(signature).hexdigest(),
        }
        try:
            return self._runner.run(f"four-items:{verifier_id}", idempotency_key, payload, work)
        except IntegrityError:
            raise verifier_error("four_items.consent_replayed") from None

    def _check_consent(
        self, verifier_id: str, signature_serial: int, consent: bytes
    ) -> FourItemsConsent:
        try:
            statement = FourItemsConsent.parse(consent)
        except (ValueError, UnicodeDecodeError):
            raise verifier_error("four_items.consent_malformed", field="consent") from None
        if statement.signature_serial != signature_serial:
            raise verifier_error("four_items.consent_mismatch", field="signature_serial")
        if statement.verifier != verifier_id:
            raise verifier_error("four_items.other_verifier", field="consent")
        now = self._clock.now()
        if not now - CONSENT_VALIDITY <= statement.time <= now + CLOCK_SKEW:
            raise verifier_error("four_items.consent_expired", field="consent")
        return statement

    @staticmethod
    def _record_consent(
        conn: Connection,
        verifier_id: str,
        statement: FourItemsConsent,
        consent: bytes,
        auth_serial: int,
        holder: str,
        now: dt.datetime,
    ) -> None:
        # The primary key (the statement's digest) refuses a second use, even a concurrent one.
        conn.execute(
            m.four_item_consents.insert().values(
                id=hashlib.sha256(consent).hexdigest(),
                verifier_id=verifier_id,
                signature_serial=serial_hex(statement.signature_serial),
                auth_serial=serial_hex(auth_serial),
                resident_code=holder,
                granted_at=statement.time,
                expires_at=statement.time + CONSENT_VALIDITY,
                used=True,
                provided_at=stored_utc(now),
            )
        )

    @staticmethod
    def _latest(
        conn: Connection, holder: str, old: FourItems | None, certificate_status: str
    ) -> FourItemsProvision:
        t = m.identities
        row = conn.execute(
            select(
                t.c.family_name,
                t.c.given_name,
                t.c.address,
                t.c.birth_date,
                t.c.sex,
                t.c.status,
            ).where(t.c.resident_code == holder)
        ).one()
        name = f"{row.family_name} {row.given_name}".strip()
        items = FourItems(name, row.address, row.birth_date, int(row.sex))
        changed = old is None or not _same(items, old)
        return FourItemsProvision(items, row.status, changed, certificate_status)


def _body(p: FourItemsProvision) -> dict[str, Any]:
    return {
        "name": p.four_items.name,
        "address": p.four_items.address,
        "birth_date": p.four_items.birth_date.isoformat(),
        "sex": p.four_items.sex,
        "resident_status": p.resident_status,
        "changed": p.changed,
        "signature_certificate_status": p.certificate_status,
    }

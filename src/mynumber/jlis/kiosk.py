"""J-LIS's kiosk centre (証明書交付センター): sessions, the card's authorisation, routing.

1. :meth:`KioskCentre.open_session` — a kiosk starts a session when a card is inserted: a row
   with a random id and a fresh 32-byte nonce, valid :data:`SESSION_TTL`.
2. :meth:`KioskCentre.request` — the kiosk sends the order with the card's signature over the
   statement (:mod:`mynumber.kiosk.protocol`). J-LIS checks the user-authentication
   certificate (chain, kind, revocation from its own status: a suspended or revoked card is
   refused) and the signature, spends the session (one conditional UPDATE: of concurrent
   attempts one wins; a retry of the same statement is let through to be replayed), resolves
   the certificate to its holder and the holder's municipality, and asks that municipality to
   issue, with the session's end as the deadline. The municipality applies the refusal rules
   and renders inside its own transaction (I2).
3. :meth:`KioskCentre.report` — the kiosk says whether it printed (the fee is recorded then).

Nothing is kept between requests but the session row, keyed by its random id (I1: no slot
keyed by time, process or counter)."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from mynumber.clock import Clock
from mynumber.db import stored_utc, writing
from mynumber.documents.issue import Issued, IssueRequest
from mynumber.errors import ConflictError, ForbiddenError, NotFoundError, ValidationError
from mynumber.jlis import models as m
from mynumber.jlis.pki import PkiService, serial_hex
from mynumber.kiosk.protocol import KIOSK_ID, KioskOrder, card_fingerprint, statement_digest
from mynumber.relying.ocsp_client import LocalStatusSource
from mynumber.relying.verify import Trust, verify_authentication

__all__ = ["SESSION_RETENTION", "SESSION_TTL", "KioskCentre", "KioskSession"]

SESSION_TTL = dt.timedelta(seconds=180)
SESSION_RETENTION = dt.timedelta(days=1)
"""How long a session's row outlives its expiry: long enough for a late report or a retry to
be answered; the issuance's own record (nonce, card, kiosk) stays with the municipality."""
_PURGE_EVERY = dt.timedelta(minutes=1)
"""From card insertion to the document in the kiosk's hands (the real machines time out at a
few minutes of inactivity)."""

Issue = Callable[[IssueRequest], Issued]
Report = Callable[[str, str, str, bool], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class KioskSession:
    session_id: str
    kiosk_id: str
    nonce: bytes
    expires_at: dt.datetime


def check_kiosk_id(kiosk_id: str) -> str:
    if not isinstance(kiosk_id, str) or not KIOSK_ID.fullmatch(kiosk_id):
        raise ValidationError(
            "kiosk.id",
            "A kiosk id is 3–32 letters, digits, '-' or '_'.",
            "端末IDは英数字・ハイフン・下線の3〜32文字です。",
            field="kiosk_id",
        )
    return kiosk_id


def _session_refused(code: str, en: str, ja: str) -> ConflictError:
    return ConflictError(code, en, ja, field="session_id")


class KioskCentre:
    def __init__(
        self,
        engine: Engine,
        pki: PkiService,
        issue: Issue,
        report: Report,
        clock: Clock,
        *,
        ttl: dt.timedelta = SESSION_TTL,
    ) -> None:
        self.engine = engine
        self._ttl = ttl
        self._pki = pki
        self._issue = issue
        self._report = report
        self._clock = clock
        self._trust = Trust(pki.ca.issuing_cert, pki.ca.root_cert)
        self._status = LocalStatusSource(pki.status)
        self._next_purge: dt.datetime | None = None

    def open_session(self, kiosk_id: str) -> KioskSession:
        check_kiosk_id(kiosk_id)
        now = self._clock.now().astimezone(dt.UTC)
        session = KioskSession(
            session_id=secrets.token_urlsafe(24),
            kiosk_id=kiosk_id,
            nonce=secrets.token_bytes(32),
            expires_at=now + self._ttl,
        )
        with writing(self.engine) as conn:
            conn.execute(
                insert(m.kiosk_sessions).values(
                    session_id=session.session_id,
                    kiosk_id=kiosk_id,
                    nonce=base64.b64encode(session.nonce).decode("ascii"),
                    created_at=now,
                    expires_at=session.expires_at,
                )
            )
        if self._next_purge is None or now >= self._next_purge:
            self._next_purge = now + _PURGE_EVERY  # at most once a minute per process
            self.purge_sessions()
        return session

    def purge_sessions(self) -> int:
        """Delete sessions expired more than :data:`SESSION_RETENTION` ago; how many."""
        cutoff = self._clock.now().astimezone(dt.UTC) - SESSION_RETENTION
        t = m.kiosk_sessions
        with writing(self.engine) as conn:
            return int(conn.execute(delete(t).where(t.c.expires_at < cutoff)).rowcount or 0)

    def _session(self, session_id: str, kiosk_id: str) -> Any:
        t = m.kiosk_sessions
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t).where(t.c.session_id == session_id, t.c.kiosk_id == kiosk_id)
            ).first()
        if row is None:
            raise NotFoundError(
                "kiosk.session_unknown",
                "This kiosk has no such session.",
                "この端末にそのセッションはありません。",
                field="session_id",
            )
        return row

    def request(
        self,
        session_id: str,
        kiosk_id: str,
        order: KioskOrder,
        certificate: x509.Certificate | bytes,
        signature: bytes,
    ) -> Issued:
        """The document for the card's signed order (module docstring, step 2)."""
        check_kiosk_id(kiosk_id)
        row = self._session(session_id, kiosk_id)
        nonce = base64.b64decode(row.nonce)
        now = self._clock.now()
        expires_at = stored_utc(row.expires_at)
        if now >= expires_at:
            raise _session_refused(
                "kiosk.session_expired",
                "The session is over; insert the card again.",
                "操作の時間が過ぎました。カードを入れ直してください。",
            )
        digest = statement_digest(session_id, kiosk_id, nonce, order)
        serial, _ = verify_authentication(
            digest, signature, certificate, trust=self._trust, status=self._status, at=now
        )
        t = m.kiosk_sessions
        with writing(self.engine) as conn:
            won = conn.execute(
                update(t)
                .where(
                    t.c.session_id == session_id,
                    t.c.used_at.is_(None),
                    t.c.expires_at > now.astimezone(dt.UTC),
                )
                .values(used_at=now, statement_digest=digest.hex(), serial=serial_hex(serial))
            ).rowcount
            if not won:
                again = conn.execute(
                    select(t.c.statement_digest, t.c.serial).where(t.c.session_id == session_id)
                ).one()
                # a retry is the same statement signed by the same card: another card's
                # signature over it is another request, in a spent session
                if (again.statement_digest, again.serial) != (digest.hex(), serial_hex(serial)):
                    raise _session_refused(
                        "kiosk.session_used",
                        "This session has already been used for another order.",
                        "このセッションは別の請求に使われています。",
                    )
        holder = self._pki.holder_of(serial)
        place = None
        if holder is not None:
            with self.engine.connect() as conn:
                place = conn.execute(
                    select(m.identities.c.municipality_code).where(
                        m.identities.c.resident_code == holder
                    )
                ).scalar_one_or_none()
        if holder is None or place is None:
            raise ForbiddenError(
                "kiosk.holder_unknown",
                "The card's holder is not known to J-LIS.",
                "カードの所有者を確認できません。",
            )
        cert = (
            certificate
            if isinstance(certificate, x509.Certificate)
            else x509.load_der_x509_certificate(certificate)
            if not certificate.lstrip().startswith(b"-----")
            else x509.load_pem_x509_certificate(certificate)
        )
        issued = self._issue(
            IssueRequest(
                kind=order.kind,
                municipality_code=place,
                resident_code=holder,
                requester=kiosk_id,
                channel="kiosk",
                members=tuple(dict.fromkeys(order.members)) or None,
                whole_household=order.household,
                relationship=order.relationship,
                domicile=order.domicile,
                individual_number=order.individual_number,
                nonce=base64.b64encode(nonce).decode("ascii"),
                card=card_fingerprint(cert),
                request_key=f"kiosk:{session_id}",
                deadline=expires_at,
            )
        )
        with writing(self.engine) as conn:
            conn.execute(
                update(t)
                .where(t.c.session_id == session_id)
                .values(document_id=issued.document_id, municipality_code=place)
            )
        return issued

    def report(
        self, session_id: str, kiosk_id: str, document_id: str, printed: bool
    ) -> dict[str, Any]:
        """The kiosk's report on the session's document (module docstring, step 3)."""
        check_kiosk_id(kiosk_id)
        row = self._session(session_id, kiosk_id)
        if row.document_id != document_id:
            raise NotFoundError(
                "kiosk.document_unknown",
                "This session was given no document with this id.",
                "このセッションでその文書IDの証明書は交付されていません。",
                field="document_id",
            )
        return self._report(str(row.municipality_code), document_id, kiosk_id, printed)

"""The portal role's service: public-funds accounts (公金受取口座) registered with the card.

DESIGN I4 — *a citizen-facing write is authorised by that person's card in that transaction; no
session carries over from one person to the next*. In 2022–23, 748 accounts were registered to
the wrong person because support-desk staff did not log the previous person out. Here a login
session only says who is at the screen; it never authorises a write:

1. :meth:`PortalService.account_challenge` — the logged-in person asks to register an account;
   the portal answers with a statement naming that account and a fresh nonce
   (:class:`~mynumber.portal.authorisation.AccountStatement`), valid for
   :data:`CHALLENGE_TTL`, and remembers whose session asked and the statement's digest.
2. The person's card signs the statement with its user-authentication key after the PIN.
3. :meth:`PortalService.register_account` — in **one** transaction of the portal's database:
   the challenge is consumed (once, ever: a replayed signature is ``portal.challenge_used``);
   it must have been issued to this session's person (``portal.challenge_other_person``) for
   exactly this statement (``portal.statement_mismatch``); the signature must verify with a
   valid, unrevoked user-authentication certificate (the relying-party checks, ``pki.*``,
   ``relying.*``); and the card's holder must be the session's person
   (``portal.card_other_person`` — the support-desk failure). Then the account checks of
   :mod:`mynumber.portal.accounts` run against the register read now: the holder's kana
   (``portal.holder_mismatch``; an earlier reading is accepted with a note) and the account's
   other registrants (``account_shared[_family]``: accepted, flagged for a clerk's review).

A refusal anywhere rolls the whole transaction back: no account, no event, no review item, the
challenge not spent. A success writes the account, its event, any review item and the
idempotency record together (I8); a retry with the same ``Idempotency-Key`` gets the same answer.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.engine import Connection, Engine, Row

from mynumber.clock import Clock
from mynumber.db import is_postgres, stored_utc, writing
from mynumber.idempotency import IdempotentRunner
from mynumber.jlis.pki import PkiService
from mynumber.jlis.service import JlisService
from mynumber.jlis.sessions import LoginSession, PlatformLogin
from mynumber.municipality.service import MunicipalityService
from mynumber.portal import models as m
from mynumber.portal.accounts import check_registration, parse_account
from mynumber.portal.authorisation import AccountStatement, clean_holder_kana
from mynumber.portal.errors import portal_error
from mynumber.portal.people import People
from mynumber.relying.errors import relying_error
from mynumber.relying.ocsp_client import LocalStatusSource
from mynumber.relying.verify import CertificateInput, Trust, verify_authentication

__all__ = ["CHALLENGE_TTL", "AccountChallenge", "PortalService"]

CHALLENGE_TTL = dt.timedelta(seconds=120)
PURGE_AFTER = dt.timedelta(hours=1)
DECISIONS = ("confirm", "reject")


@dataclass(frozen=True, slots=True)
class AccountChallenge:
    """The statement to sign with the card, and until when it may be used."""

    statement: bytes
    expires_at: dt.datetime


def _utc(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _der(certificate: CertificateInput) -> bytes:
    if isinstance(certificate, x509.Certificate):
        return certificate.public_bytes(Encoding.DER)
    return bytes(certificate)


def _split(notes: str) -> list[str]:
    return [n for n in notes.split(";") if n]


class PortalService:
    """Public-funds accounts for the people logged in with their card (module docstring)."""

    def __init__(
        self,
        engine: Engine,
        login: PlatformLogin,
        pki: PkiService,
        jlis: JlisService,
        municipality: MunicipalityService,
        clock: Clock,
    ) -> None:
        self.engine = engine
        self._login = login
        self._pki = pki
        self._people = People(jlis, municipality)
        self._clock = clock
        self._runner = IdempotentRunner(engine, m.idempotency, clock.now)
        self._trust = Trust(pki.ca.issuing_cert, pki.ca.root_cert)
        self._status = LocalStatusSource(pki.status)

    # -- the person ----------------------------------------------------------------------------

    def session(self, token: str) -> LoginSession:
        """The login session `token` stands for (``login.session_invalid`` otherwise)."""
        return self._login.open(token)

    def account_challenge(
        self, session_token: str, bank: str, branch: str, number: str, holder_kana: str
    ) -> AccountChallenge:
        """The statement the logged-in person's card is to sign to register this account."""
        session = self.session(session_token)
        try:
            account = parse_account(bank, branch, number)
        except ValueError as exc:
            raise portal_error("portal.account_invalid", field=str(exc).split(":")[0]) from None
        try:
            kana = clean_holder_kana(holder_kana)
        except ValueError:
            raise portal_error("portal.holder_kana_invalid", field="holder_kana") from None
        now = self._clock.now()
        nonce = secrets.token_bytes(32)
        statement = AccountStatement(nonce, account, kana).to_bytes()
        expires_at = _utc(now + CHALLENGE_TTL)
        t = m.account_challenges
        with writing(self.engine) as conn:
            conn.execute(delete(t).where(t.c.expires_at < _utc(now - PURGE_AFTER)))
            conn.execute(
                insert(t).values(
                    nonce_digest=_digest(nonce),
                    resident_code=session.resident_code,
                    statement_digest=_digest(statement),
                    expires_at=expires_at,
                )
            )
        return AccountChallenge(statement, expires_at)

    def register_account(
        self,
        session_token: str,
        statement: bytes,
        certificate: CertificateInput,
        signature: bytes,
        *,
        idempotency_key: str | None = None,
    ) -> tuple[int, dict[str, Any], bool]:
        """Register the account `statement` names to the logged-in person, authorised by their
        card's `signature` over it: (status, body, replayed). See the module docstring."""
        session = self.session(session_token)
        rc = session.resident_code
        try:
            stmt = AccountStatement.parse(statement)
        except ValueError:
            raise portal_error("portal.statement_malformed", field="statement") from None
        der = _der(certificate)
        payload = {
            "statement": base64.b64encode(statement).decode("ascii"),
            "certificate": _digest(der),
            "signature": _digest(signature),
        }

        def work(conn: Connection) -> tuple[int, dict[str, Any]]:
            return self._register(conn, rc, stmt, statement, der, signature)

        return self._runner.run(f"portal:account:{rc}", idempotency_key, payload, work)

    def _lock(self, conn: Connection, key: str) -> None:
        """Serialise writers on `key` (PostgreSQL; SQLite's writers are serial already)."""
        if is_postgres(self.engine):
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})

    def _consume(self, conn: Connection, rc: str, stmt: AccountStatement, raw: bytes) -> None:
        t = m.account_challenges
        key = _digest(stmt.nonce)
        now = _utc(self._clock.now())
        won = conn.execute(
            update(t)
            .where(t.c.nonce_digest == key, t.c.used_at.is_(None), t.c.expires_at > now)
            .values(used_at=now)
        ).rowcount
        row = conn.execute(
            select(t.c.resident_code, t.c.statement_digest, t.c.used_at).where(
                t.c.nonce_digest == key
            )
        ).first()
        if row is None:
            raise portal_error("portal.challenge_unknown", field="statement")
        if won != 1:
            used = row.used_at is not None
            code = "portal.challenge_used" if used else "portal.challenge_expired"
            raise portal_error(code, field="statement")
        if row.resident_code != rc:
            raise portal_error("portal.challenge_other_person", field="statement")
        if row.statement_digest != _digest(raw):
            raise portal_error("portal.statement_mismatch", field="statement")

    def _register(
        self,
        conn: Connection,
        rc: str,
        stmt: AccountStatement,
        raw: bytes,
        der: bytes,
        signature: bytes,
    ) -> tuple[int, dict[str, Any]]:
        self._lock(conn, f"portal:person:{rc}")
        # 1. this transaction's challenge, issued to this person for exactly this statement
        self._consume(conn, rc, stmt, raw)
        # 2. the card: a valid, unrevoked user-authentication certificate signed it …
        now = self._clock.now()
        serial, _ = verify_authentication(
            raw, signature, der, trust=self._trust, status=self._status, at=now
        )
        # … and it is the card of the person logged in (I4: no session carries over)
        holder = self._pki.holder_of(serial)
        if holder is None:
            raise relying_error("login.holder_unknown")
        if holder != rc:
            raise portal_error("portal.card_other_person", field="certificate")
        # 3. the account checks, against the register as it is now
        registrant = self._people.registrant(rc)
        if registrant is None:
            raise portal_error("portal.person_not_active")
        acct = stmt.account
        self._lock(conn, f"portal:account:{acct.bank}:{acct.branch}:{acct.number}")
        a = m.accounts
        other_codes = list(
            conn.execute(
                select(a.c.resident_code)
                .where(
                    a.c.bank == acct.bank,
                    a.c.branch == acct.branch,
                    a.c.number == acct.number,
                    a.c.resident_code != rc,
                    a.c.state != "rejected",
                )
                .order_by(a.c.resident_code)
            ).scalars()
        )
        check = check_registration(stmt.holder_kana, registrant, self._people.others(other_codes))
        if not check.accepted:
            raise portal_error("portal.holder_mismatch", field="holder_kana")
        # 4. write: the event, the account, the review item — all or nothing
        at = _utc(now)
        previous = conn.execute(select(a).where(a.c.resident_code == rc)).first()
        r = m.account_reviews
        conn.execute(
            update(r)
            .where(r.c.resident_code == rc, r.c.state == "open")
            .values(state="superseded", decided_at=at)
        )
        state = "review" if check.review else "active"
        account = {"bank": acct.bank, "branch": acct.branch, "number": acct.number}
        detail: dict[str, Any] = {
            **account,
            "holder_kana": stmt.holder_kana,
            "state": state,
            "notes": list(check.reasons),
        }
        if previous is not None:
            detail["previous"] = {
                "bank": previous.bank,
                "branch": previous.branch,
                "number": previous.number,
            }
        seq = self._event(
            conn,
            rc,
            "replaced" if previous is not None else "registered",
            detail,
            f"card:{serial:X}",
            at,
        )
        row = {
            **account,
            "holder_kana": stmt.holder_kana,
            "state": state,
            "notes": ";".join(check.reasons),
            "certificate_serial": f"{serial:X}",
            "registered_at": at,
            "seq": seq,
        }
        if previous is None:
            conn.execute(insert(a).values(resident_code=rc, **row))
        else:
            conn.execute(update(a).where(a.c.resident_code == rc).values(**row))
        if check.review:
            shared = [
                {
                    "resident_code": other,
                    "relationship": their,
                    "registrant_relationship": mine,
                }
                for other, their, mine in check.shared_with
            ]
            conn.execute(
                insert(r).values(
                    resident_code=rc,
                    **account,
                    reasons=";".join(x for x in check.reasons if x.startswith("account_")),
                    shared_with=json.dumps(shared, ensure_ascii=False),
                    state="open",
                    created_at=at,
                )
            )
        return 201, self._account_view(conn.execute(select(a).where(a.c.resident_code == rc)).one())

    def _event(
        self,
        conn: Connection,
        rc: str,
        kind: str,
        detail: dict[str, Any],
        actor: str,
        at: dt.datetime,
    ) -> int:
        result = conn.execute(
            insert(m.account_events).values(
                resident_code=rc,
                kind=kind,
                detail=json.dumps(detail, ensure_ascii=False, sort_keys=True),
                actor=actor,
                occurred_at=at,
            )
        )
        seq = result.inserted_primary_key
        assert seq is not None
        return int(seq[0])

    @staticmethod
    def _account_view(row: Row[Any]) -> dict[str, Any]:
        return {
            "bank": row.bank,
            "branch": row.branch,
            "number": row.number,
            "holder_kana": row.holder_kana,
            "state": row.state,
            "notes": _split(row.notes),
            "registered_at": stored_utc(row.registered_at).isoformat(),
            "certificate_serial": row.certificate_serial,
            "seq": int(row.seq),
        }

    def my_account(self, session_token: str) -> dict[str, Any]:
        """The logged-in person's account and its history (``portal.no_account`` if none)."""
        rc = self.session(session_token).resident_code
        a, e = m.accounts, m.account_events
        with self.engine.connect() as conn:
            row = conn.execute(select(a).where(a.c.resident_code == rc)).first()
            if row is None:
                raise portal_error("portal.no_account")
            events = conn.execute(
                select(e.c.seq, e.c.kind, e.c.detail, e.c.occurred_at)
                .where(e.c.resident_code == rc)
                .order_by(e.c.seq)
            ).all()
        return {
            **self._account_view(row),
            "history": [
                {
                    "seq": int(ev.seq),
                    "kind": ev.kind,
                    "occurred_at": stored_utc(ev.occurred_at).isoformat(),
                    "detail": json.loads(ev.detail),
                }
                for ev in events
            ],
        }

    # -- municipal staff: the review queue --------------------------------------------------------

    @staticmethod
    def _review_view(row: Row[Any]) -> dict[str, Any]:
        return {
            "review_id": int(row.review_id),
            "resident_code": row.resident_code,
            "bank": row.bank,
            "branch": row.branch,
            "number": row.number,
            "reasons": _split(row.reasons),
            "shared_with": json.loads(row.shared_with),
            "state": row.state,
            "created_at": stored_utc(row.created_at).isoformat(),
            "decided_by": row.decided_by,
            "justification": row.justification,
            "decided_at": None
            if row.decided_at is None
            else stored_utc(row.decided_at).isoformat(),
        }

    def reviews(self, state: str = "open", limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """Review items in `state` (open by default), oldest first."""
        r = m.account_reviews
        with self.engine.connect() as conn:
            total = conn.execute(
                select(func.count()).select_from(r).where(r.c.state == state)
            ).scalar_one()
            rows = conn.execute(
                select(r)
                .where(r.c.state == state)
                .order_by(r.c.review_id)
                .limit(limit)
                .offset(offset)
            ).all()
        return {"total": int(total), "items": [self._review_view(x) for x in rows]}

    def decide_review(
        self,
        review_id: int,
        decision: str,
        operator: str,
        justification: str,
        *,
        idempotency_key: str | None = None,
    ) -> tuple[int, dict[str, Any], bool]:
        """A clerk's decision on a shared account, once: ``confirm`` makes the account active,
        ``reject`` keeps it from use (the person registers another with their card)."""
        if decision not in DECISIONS:
            raise portal_error("portal.review_justification", field="decision")
        if not operator.strip() or not justification.strip():
            raise portal_error("portal.review_justification", field="justification")
        payload = {"decision": decision, "operator": operator, "justification": justification}

        def work(conn: Connection) -> tuple[int, dict[str, Any]]:
            return self._decide(conn, review_id, decision, operator, justification)

        return self._runner.run(f"portal:review:{review_id}", idempotency_key, payload, work)

    def _decide(
        self, conn: Connection, review_id: int, decision: str, operator: str, justification: str
    ) -> tuple[int, dict[str, Any]]:
        r, a = m.account_reviews, m.accounts
        item = conn.execute(select(r).where(r.c.review_id == review_id)).first()
        if item is None:
            raise portal_error("portal.review_not_found")
        at = _utc(self._clock.now())
        decided = conn.execute(
            update(r)
            .where(r.c.review_id == review_id, r.c.state == "open")
            .values(
                state="confirmed" if decision == "confirm" else "rejected",
                decided_by=operator,
                justification=justification,
                decided_at=at,
            )
        ).rowcount
        if decided != 1:
            raise portal_error("portal.review_decided")
        new_state = "active" if decision == "confirm" else "rejected"
        seq = self._event(
            conn,
            item.resident_code,
            "review_decided",
            {"review_id": review_id, "decision": decision, "state": new_state},
            operator,
            at,
        )
        conn.execute(
            update(a)
            .where(
                a.c.resident_code == item.resident_code,
                a.c.bank == item.bank,
                a.c.branch == item.branch,
                a.c.number == item.number,
                a.c.state == "review",
            )
            .values(state=new_state, seq=seq)
        )
        row = conn.execute(select(r).where(r.c.review_id == review_id)).one()
        return 200, self._review_view(row)

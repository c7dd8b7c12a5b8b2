"""J-LIS's card management system (カード管理システム) as a service, operated at municipal counters.

A thin adapter over the pure rules of :mod:`mynumber.jlis.card_lifecycle`: every procedure locks
the card row, asks the state machine for the next state, and writes the new state, its event
row (``card_events``), any certificate change (:class:`~mynumber.jlis.pki.PkiService`'s ``*_in``
methods) and the idempotency record in **one** transaction of the J-LIS database (I8).

The chip (:class:`~mynumber.card.Chip`, the card role) generates its keys itself at the handover,
where the holder types the two PINs at the counter terminal; J-LIS certifies the chip's CSRs and
the chip is kept in a :class:`~mynumber.card.ChipStore` (``<data dir>/cards``). A chip file is
written before the transaction commits and removed (handover) or restored (face update, PIN
reset) if the transaction fails, so a failed procedure leaves neither a half-made chip nor a
certificate without its card. PINs never reach a log, an event, an error, an idempotency digest
or a response.

Certificates follow the card: a suspension (the 24-hour loss line) holds both, lifting the
suspension at the counter releases them, a reissue revokes the old card's for good (``loss`` or
``reissue``), a return revokes both (``death``, ``emigration``, ``card_returned``), a renewal
card's handover revokes the old card's (``reissue``) and a face update (追記) after a change of
name, address or sex gives the chip a new signature key and certificate.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from mynumber.card import CardFace, Chip, ChipStore, CounterAuthorisation, KeyKind, PinKdf
from mynumber.clock import Clock
from mynumber.db import writing
from mynumber.idempotency import IdempotentRunner
from mynumber.jlis import models as m
from mynumber.jlis.ca import CertificateKind, FourItems, RevocationEvent
from mynumber.jlis.card_lifecycle import (
    HOLDING,
    PENDING,
    Action,
    CardState,
    IllegalTransitionError,
    ReissueReason,
    ReturnReason,
    check_application,
    check_identity_documents,
    expiry_for,
    life_error,
    next_state,
    reissue_fee,
    reissue_reason,
    renewal_opens,
    return_reason,
    signature_certificate_allowed,
)
from mynumber.jlis.pki import PkiService
from mynumber.jlis.pki_errors import pki_error
from mynumber.staff import check_operator

__all__ = ["Card", "CardService", "Outcome"]

_NEW_CARD_PROCEDURES = frozenset({"apply", "reissue", "renew"})
"""Procedures whose only side effect is a new card row: safe to run again after a conflict."""
_CARD_ID = re.compile(r"[0-9A-F]{16}")

_RETURN_EVENTS = {
    ReturnReason.DEATH: RevocationEvent.DEATH,
    ReturnReason.EMIGRATION: RevocationEvent.EMIGRATION,
    ReturnReason.HOLDER_REQUEST: RevocationEvent.CARD_RETURNED,
}
_REISSUE_EVENTS = {
    ReissueReason.LOSS: RevocationEvent.LOSS,
    ReissueReason.THEFT: RevocationEvent.LOSS,
    ReissueReason.DAMAGE: RevocationEvent.REISSUE,
    ReissueReason.CHIP_FAULT: RevocationEvent.REISSUE,
}


def _aware(at: dt.datetime) -> dt.datetime:
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at


def _date(value: Any) -> dt.date | None:
    return None if value is None else dt.date.fromisoformat(str(value))


@dataclass(frozen=True, slots=True)
class Card:
    """One card record of the card management system."""

    card_id: str
    resident_code: str
    application_id: str | None
    channel: str
    state: CardState
    period_of_stay_end: dt.date | None
    issued_on: dt.date | None
    expires_on: dt.date | None
    chip_id: str | None
    is_smartphone: bool
    face: dict[str, Any] | None
    fee_yen: int
    replaces: str | None
    superseded_by: str | None
    reason: str | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Card:
        return cls(
            card_id=row.card_id,
            resident_code=row.resident_code,
            application_id=row.application_id,
            channel=row.channel,
            state=CardState(row.state),
            period_of_stay_end=row.period_of_stay_end,
            issued_on=row.issued_on,
            expires_on=row.expires_on,
            chip_id=row.chip_id,
            is_smartphone=bool(row.is_smartphone),
            face=row.face,
            fee_yen=int(row.fee_yen),
            replaces=row.replaces,
            superseded_by=row.superseded_by,
            reason=row.reason,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "card_id": self.card_id,
            "resident_code": self.resident_code,
            "application_id": self.application_id,
            "channel": self.channel,
            "state": str(self.state),
            "period_of_stay_end": _iso(self.period_of_stay_end),
            "issued_on": _iso(self.issued_on),
            "expires_on": _iso(self.expires_on),
            "chip_id": self.chip_id,
            "is_smartphone": self.is_smartphone,
            "face": self.face,
            "fee_yen": self.fee_yen,
            "replaces": self.replaces,
            "superseded_by": self.superseded_by,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Card:
        return cls(
            card_id=data["card_id"],
            resident_code=data["resident_code"],
            application_id=data["application_id"],
            channel=data["channel"],
            state=CardState(data["state"]),
            period_of_stay_end=_date(data["period_of_stay_end"]),
            issued_on=_date(data["issued_on"]),
            expires_on=_date(data["expires_on"]),
            chip_id=data["chip_id"],
            is_smartphone=bool(data["is_smartphone"]),
            face=data["face"],
            fee_yen=int(data["fee_yen"]),
            replaces=data["replaces"],
            superseded_by=data["superseded_by"],
            reason=data["reason"],
        )

    def __repr__(self) -> str:  # the face holds personal data: keep it out of logs
        return f"Card(id={self.card_id!r}, state={self.state!s})"


def _iso(day: dt.date | None) -> str | None:
    return None if day is None else day.isoformat()


@dataclass(frozen=True, slots=True)
class Outcome:
    """A procedure's result: the card it produced or changed (the new card of a reissue or a
    renewal), the HTTP status, and whether it is the replay of an earlier request."""

    card: Card
    status: int = 200
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class _Identity:
    municipality_code: str
    name: str
    address: str
    birth_date: dt.date
    sex: int
    status: str

    def four_items(self) -> FourItems:
        return FourItems(self.name, self.address, self.birth_date, self.sex)

    def face(self, expiry_date: dt.date) -> CardFace:
        """The card face of this person, for a card valid until `expiry_date`."""
        return CardFace(
            name=self.name,
            address=self.address,
            birth_date=self.birth_date,
            sex=self.sex,
            expiry_date=expiry_date,
        )


def _face_json(face: CardFace) -> dict[str, Any]:
    return {
        "name": face.name,
        "address": face.address,
        "birth_date": face.birth_date.isoformat(),
        "sex": face.sex,
        "expiry_date": face.expiry_date.isoformat(),
    }


def check_card_id(card_id: object) -> str:
    """`card_id` if it has the form of a card id (16 upper-case hex digits), else not found."""
    if not isinstance(card_id, str) or not _CARD_ID.fullmatch(card_id):
        raise life_error("card_life.not_found", field="card_id")
    return card_id


class CardService:
    """Card records, their transitions and events, the chips and their certificates."""

    def __init__(
        self,
        engine: Engine,
        pki: PkiService,
        chips: ChipStore,
        clock: Clock,
        *,
        kdf: PinKdf | None = None,
    ) -> None:
        self.engine = engine
        self.pki = pki
        self.chips = chips
        self.kdf = kdf or PinKdf()
        self._clock = clock
        self._runner = IdempotentRunner(engine, m.idempotency, clock.now)

    # -- reads ------------------------------------------------------------------------------

    def get(self, card_id: str) -> Card:
        check_card_id(card_id)
        with self.engine.connect() as conn:
            row = conn.execute(select(m.cards).where(m.cards.c.card_id == card_id)).first()
        if row is None:
            raise life_error("card_life.not_found", field="card_id")
        return Card.from_row(row)

    def cards_of(self, resident_code: str) -> list[Card]:
        """Every card of `resident_code`, oldest first."""
        c = m.cards.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(m.cards).where(c.resident_code == resident_code).order_by(c.created_at)
            ).all()
        return [Card.from_row(r) for r in rows]

    def list_cards(
        self, state: CardState | str | None = None, *, after: str | None = None, limit: int = 100
    ) -> list[Card]:
        """Cards in card-id order (`after` pages on), optionally in one `state`."""
        c = m.cards.c
        q = select(m.cards).order_by(c.card_id).limit(max(1, min(limit, 1000)))
        if state is not None:
            q = q.where(c.state == str(CardState(state)))
        if after is not None:
            q = q.where(c.card_id > after)
        with self.engine.connect() as conn:
            return [Card.from_row(r) for r in conn.execute(q)]

    def events(self, card_id: str) -> list[dict[str, Any]]:
        """The card's events in order: seq, kind, from_state, to_state, detail, operator, at."""
        self.get(card_id)
        e = m.card_events.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(m.card_events).where(e.card_id == card_id).order_by(e.seq)
            ).all()
        return [
            {
                "seq": r.seq,
                "kind": r.kind,
                "from_state": r.from_state,
                "to_state": r.to_state,
                "detail": r.detail,
                "operator": r.operator,
                "at": _aware(r.at).isoformat(),
            }
            for r in rows
        ]

    def counts(self) -> dict[str, int]:
        """Cards per state."""
        c = m.cards.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(c.state, func.count()).group_by(c.state)).all()
        return {str(state): int(n) for state, n in rows}

    # -- procedures -------------------------------------------------------------------------

    def apply(
        self,
        resident_code: str,
        *,
        channel: str,
        application_id: str | None = None,
        period_of_stay_end: dt.date | None = None,
        operator: str,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Accept an application (交付申請) for a first card: online (with its 23-digit
        application id), by paper, or at the counter."""
        chosen, app_id = check_application(channel, application_id)
        check_operator(operator)
        if period_of_stay_end is not None and period_of_stay_end < self._clock.today():
            raise pki_error("pki.stay_ended", field="period_of_stay_end")

        def work(conn: Connection) -> Card:
            self._lock_person(conn, resident_code)
            self._identity(conn, resident_code)
            held = self._cards_in(conn, resident_code, HOLDING)
            if held:
                raise life_error("card_life.card_held", extra={"card_id": held[0].card_id})
            return self._new_card(
                conn,
                resident_code,
                channel=chosen,
                application_id=app_id,
                period_of_stay_end=period_of_stay_end,
                fee=0,
                replaces=None,
                operator=operator,
                detail={"channel": str(chosen)},
            )

        payload = {
            "resident_code": resident_code,
            "channel": str(chosen),
            "application_id": app_id,
            "period_of_stay_end": _iso(period_of_stay_end),
            "operator": operator,
        }
        return self._run("apply", idempotency_key, payload, work, status=201)

    def produce(
        self, card_id: str, *, operator: str, idempotency_key: str | None = None
    ) -> Outcome:
        """The card has been manufactured and sent to the municipality (製造・発送)."""
        check_card_id(card_id)
        check_operator(operator)

        def work(conn: Connection) -> Card:
            row = self._lock(conn, card_id)
            return self._transition(conn, row, Action.PRODUCE, operator, {})

        return self._run("produce", idempotency_key, {"card_id": card_id}, work)

    def hand_over(
        self,
        card_id: str,
        identity_documents: Sequence[str],
        auth_pin: str,
        signature_pin: str,
        *,
        operator: str,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Hand the card over at the counter (交付) after the identity check: the chip generates
        its keys under the holder's PINs, J-LIS certifies them (the signature certificate only
        from 15), and the card becomes active. All or nothing: on any failure the chip file is
        removed and the card stays produced."""
        check_card_id(card_id)
        check_operator(operator)
        identity_check = check_identity_documents(identity_documents)
        before = self.get(card_id)
        today = self._clock.today()
        chip = self._new_chip(before, auth_pin, signature_pin, today)

        def work(conn: Connection) -> Card:
            row = self._lock(conn, card_id)
            next_state(row.state, Action.HAND_OVER)
            if chip is None:  # it was produced only after we looked: ask again
                raise IllegalTransitionError(before.state, Action.HAND_OVER)
            who = self._identity(conn, row.resident_code)
            if who.birth_date != chip.face.birth_date:  # corrected after the chip was made
                raise life_error("card_life.birth_date_changed")
            current = who.face(expiry_for(who.birth_date, today, row.period_of_stay_end))
            if chip.face != current:  # the register changed after the chip was made (I2)
                chip.update_face(current, self._authorisation(who, operator, identity_check))
            face = chip.face
            self._certify(conn, chip, row.resident_code, who, today, row.period_of_stay_end)
            self._supersede_held(conn, row.resident_code, card_id, operator)
            self.chips.add(chip)
            return self._transition(
                conn,
                row,
                Action.HAND_OVER,
                operator,
                {
                    "identity_check": identity_check,
                    "chip_id": chip.chip_id,
                    "signature_certificate": chip.has_certificate(KeyKind.SIGNATURE),
                },
                issued_on=today,
                expires_on=face.expiry_date,
                chip_id=chip.chip_id,
                face=_face_json(face),
            )

        # PINs are not part of the request digest: a 4-digit PIN would fall to a brute force of
        # the stored digest.
        payload = {
            "card_id": card_id,
            "identity_documents": sorted(set(identity_documents)),
            "operator": operator,
        }
        try:
            outcome = self._run("hand_over", idempotency_key, payload, work)
        except BaseException:
            if chip is not None:
                self.chips.remove(chip.chip_id)
            raise
        if chip is not None and outcome.card.chip_id != chip.chip_id:
            self.chips.remove(chip.chip_id)  # a replay: the first request's chip stands
        return outcome

    def _new_chip(
        self, before: Card, auth_pin: str, signature_pin: str, today: dt.date
    ) -> Chip | None:
        """The chip for a handover of `before`, made outside the transaction (RSA key generation
        must not hold the lock): None unless the card is produced."""
        if before.state is not CardState.PRODUCED:
            return None
        with self.engine.connect() as conn:
            who = self._identity(conn, before.resident_code)
        expires = expiry_for(who.birth_date, today, before.period_of_stay_end)
        return Chip.create(
            _new_id(),
            auth_pin=auth_pin,
            signature_pin=signature_pin,
            clock=self._clock,
            face=who.face(expires),
            kdf=self.kdf,
        )

    def _supersede_held(
        self, conn: Connection, resident_code: str, card_id: str, operator: str
    ) -> None:
        """A renewal card's handover replaces the card in the holder's hands, and revokes its
        certificates."""
        for old in self._cards_in(conn, resident_code, HOLDING):
            self._transition(
                conn, old, Action.SUPERSEDE, operator, {"by": card_id}, superseded_by=card_id
            )
            if old.chip_id is not None:
                self.pki.revoke_chip_in(conn, old.chip_id, RevocationEvent.REISSUE)

    def report_loss(
        self, card_id: str, *, operator: str, idempotency_key: str | None = None
    ) -> Outcome:
        """The 24-hour loss line (一時停止): the card is suspended and its certificates are put
        on hold at once."""
        check_card_id(card_id)
        check_operator(operator)

        def work(conn: Connection) -> Card:
            row = self._lock(conn, card_id)
            card = self._transition(conn, row, Action.SUSPEND, operator, {})
            assert row.chip_id is not None
            self.pki.revoke_chip_in(conn, row.chip_id, RevocationEvent.SUSPENSION)
            return card

        return self._run("report_loss", idempotency_key, {"card_id": card_id}, work)

    def lift_suspension(
        self,
        card_id: str,
        identity_documents: Sequence[str],
        *,
        operator: str,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """The card was found: lifted at the counter after an identity check; the held
        certificates become valid again (never by phone, facts §3)."""
        check_card_id(card_id)
        check_operator(operator)
        identity_check = check_identity_documents(identity_documents)

        def work(conn: Connection) -> Card:
            row = self._lock(conn, card_id)
            next_state(row.state, Action.LIFT)
            self._identity(conn, row.resident_code)
            assert row.chip_id is not None
            self.pki.lift_hold_in(conn, row.chip_id)
            return self._transition(
                conn, row, Action.LIFT, operator, {"identity_check": identity_check}
            )

        payload = {"card_id": card_id, "identity_documents": sorted(set(identity_documents))}
        return self._run("lift", idempotency_key, payload, work)

    def reissue(
        self,
        card_id: str,
        reason: str,
        identity_documents: Sequence[str],
        *,
        operator: str,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Reissue (再交付): the old card ends now and its certificates are revoked for good
        (``loss`` for a lost or stolen card); a new card record is applied for, with the fee."""
        check_card_id(card_id)
        check_operator(operator)
        why = reissue_reason(reason)
        identity_check = check_identity_documents(identity_documents)
        fee = reissue_fee(why)

        def work(conn: Connection) -> Card:
            row = self._lock(conn, card_id)
            next_state(row.state, Action.REISSUE)
            self._identity(conn, row.resident_code)
            self._transition(conn, row, Action.REISSUE, operator, {"reason": str(why)}, reason=why)
            if row.chip_id is not None:
                self.pki.revoke_chip_in(conn, row.chip_id, _REISSUE_EVENTS[why])
            return self._new_card(
                conn,
                row.resident_code,
                channel="counter",
                application_id=None,
                period_of_stay_end=row.period_of_stay_end,
                fee=fee,
                replaces=card_id,
                operator=operator,
                detail={"reissue_of": card_id, "fee_yen": fee, "identity_check": identity_check},
            )

        payload = {
            "card_id": card_id,
            "reason": str(why),
            "identity_documents": sorted(set(identity_documents)),
            "operator": operator,
        }
        return self._run("reissue", idempotency_key, payload, work, status=201)

    def return_card(
        self, card_id: str, reason: str, *, operator: str, idempotency_key: str | None = None
    ) -> Outcome:
        """Return (返納) after death, emigration or at the holder's request: both certificates
        are revoked; after death or emigration a card still on its way is cancelled too."""
        check_card_id(card_id)
        check_operator(operator)
        why = return_reason(reason)

        def work(conn: Connection) -> Card:
            row = self._lock(conn, card_id)
            card = self._transition(
                conn, row, Action.RETURN, operator, {"reason": str(why)}, reason=why
            )
            if row.chip_id is not None:
                self.pki.revoke_chip_in(conn, row.chip_id, _RETURN_EVENTS[why])
            if why is not ReturnReason.HOLDER_REQUEST:
                for pending in self._cards_in(conn, row.resident_code, PENDING):
                    self._transition(
                        conn, pending, Action.CANCEL, operator, {"reason": str(why)}, reason=why
                    )
            return card

        payload = {"card_id": card_id, "reason": str(why)}
        return self._run("return", idempotency_key, payload, work)

    def renew(
        self,
        card_id: str,
        *,
        operator: str,
        channel: str = "counter",
        application_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Apply for a renewal card (更新, free) from three months before expiry; the old card
        stays in use until the new one is handed over, which supersedes it."""
        check_card_id(card_id)
        check_operator(operator)
        chosen, app_id = check_application(channel, application_id)

        def work(conn: Connection) -> Card:
            row = self._lock(conn, card_id)
            next_state(row.state, Action.RENEW)
            self._identity(conn, row.resident_code)
            opens = renewal_opens(row.expires_on)
            if self._clock.today() < opens:
                raise life_error(
                    "card_life.renewal_too_early", extra={"renewal_opens": opens.isoformat()}
                )
            self._transition(conn, row, Action.RENEW, operator, {})
            return self._new_card(
                conn,
                row.resident_code,
                channel=chosen,
                application_id=app_id,
                period_of_stay_end=row.period_of_stay_end,
                fee=0,
                replaces=card_id,
                operator=operator,
                detail={"renewal_of": card_id, "channel": str(chosen)},
            )

        payload = {"card_id": card_id, "channel": str(chosen), "application_id": app_id}
        return self._run("renew", idempotency_key, payload, work, status=201)

    def cancel(
        self,
        card_id: str,
        *,
        operator: str,
        reason: str = "withdrawn",
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Cancel a card not yet handed over (the application withdrawn, or never collected)."""
        check_card_id(card_id)
        check_operator(operator)
        if reason not in ("withdrawn", "not_collected", "death", "emigration"):
            raise life_error("card_life.reason", field="reason")

        def work(conn: Connection) -> Card:
            row = self._lock(conn, card_id)
            return self._transition(
                conn, row, Action.CANCEL, operator, {"reason": reason}, reason=reason
            )

        payload = {"card_id": card_id, "reason": reason}
        return self._run("cancel", idempotency_key, payload, work)

    def update_face(
        self,
        card_id: str,
        identity_documents: Sequence[str],
        *,
        operator: str,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """追記: write the registered name and address onto the card face and chip after a move
        or a change of name. The old signature certificate (whose four items are now wrong) is
        revoked and the chip makes a new signature key, which J-LIS certifies."""
        check_card_id(card_id)
        check_operator(operator)
        identity_check = check_identity_documents(identity_documents)
        today = self._clock.today()

        def work(conn: Connection, change: _ChipChange) -> Card:
            row = self._lock(conn, card_id)
            next_state(row.state, Action.UPDATE_FACE)
            if row.is_smartphone:
                raise life_error("card_life.smartphone_face")
            who = self._identity(conn, row.resident_code)
            old = row.face or {}
            changed = [
                item
                for item, now in (("name", who.name), ("address", who.address), ("sex", who.sex))
                if old.get(item) != now
            ]
            if not changed:
                raise life_error("card_life.face_current")
            assert row.chip_id is not None and row.expires_on is not None
            event = (
                RevocationEvent.NAME_CHANGE
                if "name" in changed
                else RevocationEvent.ADDRESS_CHANGE
                if "address" in changed
                else RevocationEvent.SEX_CHANGE
            )
            if row.face is not None and row.face.get("birth_date") != who.birth_date.isoformat():
                raise life_error("card_life.birth_date_changed")
            face = who.face(row.expires_on)
            with change as chip:
                auth = self._authorisation(who, operator, identity_check)
                chip.update_face(face, auth)
                self.pki.revoke_chip_in(conn, row.chip_id, event)
                new_signature = signature_certificate_allowed(who.birth_date, today)
                if new_signature:
                    chip.renew_key(KeyKind.SIGNATURE, auth)
                    cert = self.pki.issue_in(
                        conn,
                        CertificateKind.SIGNATURE,
                        row.resident_code,
                        chip.certificate_request(KeyKind.SIGNATURE),
                        who.four_items(),
                        who.birth_date,
                        today,
                        chip_id=row.chip_id,
                        period_of_stay_end=row.period_of_stay_end,
                        card_expires=row.expires_on,
                    )
                    chip.install_certificate(KeyKind.SIGNATURE, cert)
                return self._transition(
                    conn,
                    row,
                    Action.UPDATE_FACE,
                    operator,
                    {
                        "changed": changed,
                        "identity_check": identity_check,
                        "new_signature_certificate": new_signature,
                    },
                    face=_face_json(face),
                )

        payload = {"card_id": card_id, "identity_documents": sorted(set(identity_documents))}
        return self._chip_run("update_face", card_id, idempotency_key, payload, work)

    def unlock_pin(
        self,
        card_id: str,
        kind: KeyKind | str,
        new_pin: str,
        identity_documents: Sequence[str],
        *,
        operator: str,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Reset a PIN (locked or forgotten) at the counter after an identity check: the
        counter's authorisation lets the chip take the new PIN, its counter back at 0."""
        check_card_id(card_id)
        check_operator(operator)
        if kind not in ("signature", "authentication"):
            raise life_error("card_life.pin_kind", field="kind")
        which = KeyKind(kind)
        identity_check = check_identity_documents(identity_documents)

        def work(conn: Connection, change: _ChipChange) -> Card:
            row = self._lock(conn, card_id)
            next_state(row.state, Action.UNLOCK_PIN)
            who = self._identity(conn, row.resident_code)
            with change as chip:
                chip.unlock(which, self._authorisation(who, operator, identity_check), new_pin)
                return self._transition(
                    conn,
                    row,
                    Action.UNLOCK_PIN,
                    operator,
                    {"pin_kind": str(which), "identity_check": identity_check},
                )

        # The new PIN is not part of the digest (a 4-digit PIN would fall to a brute force).
        payload = {
            "card_id": card_id,
            "kind": str(which),
            "identity_documents": sorted(set(identity_documents)),
            "operator": operator,
        }
        return self._chip_run("unlock_pin", card_id, idempotency_key, payload, work)

    def expire_due(self, *, operator: str = "system") -> list[str]:
        """Mark every card in use or suspended whose expiry date has passed as expired (its
        certificates expired with it, at the latest). Returns the card ids."""
        today = self._clock.today()
        c = m.cards.c
        done: list[str] = []
        with writing(self.engine) as conn:
            due = conn.execute(
                select(c.card_id).where(
                    c.state.in_([str(s) for s in HOLDING]), c.expires_on < today
                )
            ).scalars()
            for card_id in list(due):
                row = self._lock(conn, card_id)  # a procedure may have ended it meanwhile
                if CardState(row.state) in HOLDING:
                    self._transition(conn, row, Action.EXPIRE, operator, {})
                    done.append(card_id)
        return done

    def close_for_deceased(self, *, operator: str = "system") -> list[str]:
        """Return (reason ``death``) every card in use or suspended, and cancel every card on its
        way, of people the identity mirror records as deceased. Run after the mirror syncs."""
        c, i = m.cards.c, m.identities.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.card_id, c.state)
                .join(m.identities, i.resident_code == c.resident_code)
                .where(
                    i.status == "deceased",
                    c.state.in_([str(s) for s in HOLDING | PENDING]),
                )
            ).all()
        closed: list[str] = []
        for card_id, state in rows:
            try:
                if CardState(state) in HOLDING:
                    self.return_card(card_id, "death", operator=operator)
                else:
                    self.cancel(card_id, operator=operator, reason="death")
            except IllegalTransitionError:
                continue  # closed meanwhile
            closed.append(card_id)
        return closed

    def sweep_orphan_chips(self, older_than: dt.timedelta = dt.timedelta(hours=1)) -> list[str]:
        """Remove chip files that no card names and that are older than `older_than` — left by
        a process that died between writing a handover's chip file and committing it. Such a
        chip has no certificate (its certificates were in the transaction that never
        committed). Younger files may belong to a handover still in flight."""
        with self.engine.connect() as conn:
            known = set(conn.execute(select(m.cards.c.chip_id)).scalars())
        cutoff = time.time() - older_than.total_seconds()
        removed: list[str] = []
        for chip_id in self.chips.chip_ids():
            if chip_id in known:
                continue
            try:
                if self.chips.path(chip_id).stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            self.chips.remove(chip_id)
            removed.append(chip_id)
        return removed

    # -- inside -----------------------------------------------------------------------------

    def _run(
        self,
        name: str,
        key: str | None,
        payload: dict[str, Any],
        work: Callable[[Connection], Card],
        *,
        status: int = 200,
    ) -> Outcome:
        def run(conn: Connection) -> tuple[int, dict[str, Any]]:
            return status, work(conn).to_json()

        try:
            code, body, replayed = self._runner.run(f"jlis:cards:{name}", key, payload, run)
        except IntegrityError:
            if name not in _NEW_CARD_PROCEDURES:
                raise
            # Another person's application took the same 申請書ID at the same moment: asked
            # again, the procedure sees it and answers application_id_taken.
            code, body, replayed = self._runner.run(f"jlis:cards:{name}", key, payload, run)
        return Outcome(Card.from_json(body), code, replayed)

    @staticmethod
    def _lock(conn: Connection, card_id: str) -> Row[Any]:
        """The card's row, locked, after its holder (:meth:`_lock_person`): every procedure
        takes the person first, then cards, so two procedures never wait on each other."""
        c = m.cards.c
        holder = conn.execute(select(c.resident_code).where(c.card_id == card_id)).scalar()
        if holder is None:
            raise life_error("card_life.not_found", field="card_id")
        CardService._lock_person(conn, holder)
        row = conn.execute(select(m.cards).where(c.card_id == card_id).with_for_update()).first()
        if row is None:  # pragma: no cover - cards are never deleted
            raise life_error("card_life.not_found", field="card_id")
        return row

    @staticmethod
    def _lock_person(conn: Connection, resident_code: str) -> None:
        """Serialise the procedures of one person (PostgreSQL; SQLite writers are serial
        anyway): one held card and one pending card per person are checked, then written, by
        one transaction at a time, and a mirror sync changing the person waits for it."""
        i = m.identities.c
        conn.execute(
            select(i.resident_code).where(i.resident_code == resident_code).with_for_update()
        ).first()

    @staticmethod
    def _cards_in(conn: Connection, resident_code: str, states: Iterable[CardState]) -> list[Any]:
        c = m.cards.c
        return list(
            conn.execute(
                select(m.cards)
                .where(c.resident_code == resident_code, c.state.in_([str(s) for s in states]))
                .with_for_update()
            ).all()
        )

    @staticmethod
    def _identity(conn: Connection, resident_code: str) -> _Identity:
        i = m.identities.c
        row = conn.execute(
            select(
                i.municipality_code,
                i.family_name,
                i.given_name,
                i.address,
                i.birth_date,
                i.sex,
                i.status,
            ).where(i.resident_code == resident_code)
        ).first()
        if row is None:
            raise life_error("card_life.resident_unknown", field="resident_code")
        if row.status != "active":
            raise life_error(
                "card_life.resident_inactive",
                field="resident_code",
                extra={"resident_status": row.status},
            )
        name = f"{row.family_name} {row.given_name}".strip()
        return _Identity(
            row.municipality_code, name, row.address, row.birth_date, int(row.sex), row.status
        )

    def _authorisation(
        self, who: _Identity, operator: str, identity_check: str
    ) -> CounterAuthorisation:
        return CounterAuthorisation(
            municipality_code=who.municipality_code,
            staff_id=operator,
            identity_check=identity_check,
            at=self._clock.now(),
        )

    def _certify(
        self,
        conn: Connection,
        chip: Chip,
        resident_code: str,
        who: _Identity,
        today: dt.date,
        stay_end: dt.date | None,
    ) -> None:
        expires = chip.face.expiry_date
        kinds: list[tuple[KeyKind, CertificateKind, FourItems | None]] = [
            (KeyKind.AUTHENTICATION, CertificateKind.AUTH, None)
        ]
        if signature_certificate_allowed(who.birth_date, today):
            kinds.append((KeyKind.SIGNATURE, CertificateKind.SIGNATURE, who.four_items()))
        for key_kind, cert_kind, items in kinds:
            cert = self.pki.issue_in(
                conn,
                cert_kind,
                resident_code,
                chip.certificate_request(key_kind),
                items,
                who.birth_date,
                today,
                chip_id=chip.chip_id,
                period_of_stay_end=stay_end,
                card_expires=expires,
            )
            chip.install_certificate(key_kind, cert)

    def _new_card(
        self,
        conn: Connection,
        resident_code: str,
        *,
        channel: str,
        application_id: str | None,
        period_of_stay_end: dt.date | None,
        fee: int,
        replaces: str | None,
        operator: str,
        detail: dict[str, Any],
    ) -> Card:
        pending = self._cards_in(conn, resident_code, PENDING)
        if pending:
            raise life_error("card_life.application_pending", extra={"card_id": pending[0].card_id})
        c = m.cards.c
        if (
            application_id is not None
            and conn.execute(select(c.card_id).where(c.application_id == application_id)).first()
        ):
            raise life_error("card_life.application_id_taken", field="application_id")
        now = self._now()
        card_id = _new_id()
        state = next_state(None, Action.APPLY)
        conn.execute(
            m.cards.insert().values(
                card_id=card_id,
                resident_code=resident_code,
                application_id=application_id,
                channel=channel,
                state=str(state),
                period_of_stay_end=period_of_stay_end,
                is_smartphone=False,
                fee_yen=fee,
                replaces=replaces,
                created_at=now,
                updated_at=now,
            )
        )
        self._event(conn, card_id, resident_code, Action.APPLY, None, state, detail, operator)
        row = conn.execute(select(m.cards).where(c.card_id == card_id)).one()
        return Card.from_row(row)

    def _transition(
        self,
        conn: Connection,
        row: Any,
        action: Action,
        operator: str,
        detail: dict[str, Any],
        **values: Any,
    ) -> Card:
        before = CardState(row.state)
        after = next_state(before, action)
        c = m.cards.c
        done = conn.execute(
            update(m.cards)
            .where(c.card_id == row.card_id, c.state == str(before))
            .values(state=str(after), updated_at=self._now(), **values)
        ).rowcount
        if not done:  # pragma: no cover - the row is locked (SQLite: the whole database)
            raise IllegalTransitionError(before, action)
        self._event(conn, row.card_id, row.resident_code, action, before, after, detail, operator)
        fresh = conn.execute(select(m.cards).where(c.card_id == row.card_id)).one()
        return Card.from_row(fresh)

    def _event(
        self,
        conn: Connection,
        card_id: str,
        resident_code: str,
        action: Action,
        before: CardState | None,
        after: CardState,
        detail: dict[str, Any],
        operator: str,
    ) -> None:
        conn.execute(
            m.card_events.insert().values(
                card_id=card_id,
                resident_code=resident_code,
                kind=str(action),
                from_state=None if before is None else str(before),
                to_state=str(after),
                detail=detail,
                operator=operator,
                at=self._now(),
            )
        )

    def _now(self) -> dt.datetime:
        """Now in UTC: SQLite keeps the wall time of what it is given, without its offset."""
        return self._clock.now().astimezone(dt.UTC)

    def _chip_run(
        self,
        name: str,
        card_id: str,
        key: str | None,
        payload: dict[str, Any],
        work: Callable[[Connection, _ChipChange], Card],
    ) -> Outcome:
        """:meth:`_run` for a procedure that changes the card's chip as well."""
        chip_id = self.get(card_id).chip_id
        change = None if chip_id is None else _ChipChange(self.chips, chip_id, self._clock)

        def run(conn: Connection) -> Card:
            if change is None:  # never handed over: the state machine says why
                row = self._lock(conn, card_id)
                next_state(row.state, Action(name))
                raise IllegalTransitionError(CardState(row.state), Action(name))
            return work(conn, change)

        try:
            return self._run(name, key, payload, run)
        except BaseException:
            if change is not None:
                change.restore()
            raise


class _ChipChange:
    """A card's chip, changed in memory and written back only when the block succeeds. Should
    the enclosing transaction fail after that (at commit), :meth:`restore` writes back the
    chip as it was before, so the chip and the card record never disagree."""

    def __init__(self, store: ChipStore, chip_id: str, clock: Clock) -> None:
        self._store = store
        self._chip_id = chip_id
        self._clock = clock
        self._original: Chip | None = None
        self._saved = False

    def __enter__(self) -> Chip:
        self._original = self._store.load(self._chip_id, self._clock)
        self._original.set_persistence(None)
        chip = self._store.load(self._chip_id, self._clock)
        chip.set_persistence(None)  # changes stay in memory until the block succeeds
        self._chip = chip
        return chip

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._store.save(self._chip)
            self._saved = True

    def restore(self) -> None:
        if self._saved and self._original is not None:
            self._store.save(self._original)
            self._saved = False


def _new_id() -> str:
    return secrets.token_hex(8).upper()

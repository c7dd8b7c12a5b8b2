"""Issuing certificates (municipality role): 住民票の写し, 住民票記載事項証明書, 印鑑登録証明書.

The document is the register's word at the moment of recording (DESIGN I2). It is rendered and
signed from a read of the register, then recorded by a transaction that reads the same rows
again, holds them (PostgreSQL: FOR SHARE; SQLite: the one writer), applies the refusal rules
again, and commits only if they say exactly what the document says — else it is rendered
again. A move-out, a death or a seal's abolition committed before the recording is seen; one
committed after it waits for it. Rendering (≈ 0.1 s) happens outside the write lock: on SQLite,
holding the single writer for it queued 64 kiosks past the 30 s busy timeout. Nothing is cached
between requests: no buffer, work file or slot is shared (I1).

Refusal rules (reason codes ``issuance.*``, docs/reason-codes.md):
- the subject has moved out or died (a 除票 is a different document, issued at the counter);
- at a kiosk: the subject is under a support measure (支援措置), or their record changed today
  (a birth, a move in or within, a new name or household: not issued by machine that day);
- a seal certificate: no active seal (abolished, lost, or never registered);
- a household member asked for who is not in the subject's household, or not active.

A request key (the client's idempotency key) makes a retry return the same document: the same
id, the same bytes. The same key with a different request is a conflict.

Every document issued is an access record in the transparency log (DESIGN I6), sent through an
injected :class:`AccessLog` (the network's, wired by the platform) after the issuance commits —
never while the register's rows are held — and noted in ``issuances.logged_at``. A crash or a
failure in between leaves the issuance unlogged, not lost: :meth:`IssuanceService.reconcile_log`
(at start-up, before a person's records are read, on a replay) sends it again; the record's
bytes are a function of the issuance alone, so a second send is a no-op (DESIGN I8)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from mynumber.clock import JST, Clock
from mynumber.db import stored_utc, writing
from mynumber.documents.content import (
    DocumentContent,
    DocumentKind,
    PersonEntry,
    SealEntry,
    new_document_id,
    subject_digest,
)
from mynumber.documents.issue import FEES, Issued, IssueRequest
from mynumber.documents.render import render
from mynumber.documents.signing import DocumentSigner
from mynumber.errors import ConflictError, NotFoundError, ValidationError
from mynumber.municipality import models as m
from mynumber.municipality.seals import SealService
from mynumber.staff import check_operator
from mynumber.vault import NumberVault

__all__ = [
    "FEES",
    "AccessLog",
    "IssuanceService",
    "IssueRequest",
    "Issued",
    "Signers",
]  # FEES, IssueRequest and Issued re-exported

log = logging.getLogger("mynumber.municipality.issuance")

_HEAD = "世帯主"
_SAME_DAY = (
    "birth",
    "move_in",
    "move_within",
    "name_change",
    "household_change",
    "number_changed",
)
"""Changes a kiosk does not certify on the day they were recorded (the record is being
settled; the counter can). A migration from a legacy register (import) or a number's
assignment is not a change of the record's content."""

_ATTEMPTS = 3
"""Renderings tried before giving up when the register keeps changing under one."""


@dataclass(frozen=True, slots=True)
class _Facts:
    """What a document says about the register, compared before and after rendering."""

    municipality_name: str
    resident_code: str
    postal_code: str
    address: str
    head: str | None
    people: tuple[PersonEntry, ...]
    seal: SealEntry | None
    subject: str
    others: tuple[str, ...] = ()  # resident codes of the others printed, in the document's order


def _content(request: IssueRequest, facts: _Facts, now: dt.datetime) -> DocumentContent:
    return DocumentContent(
        document_id=new_document_id(),
        kind=request.kind,
        municipality_code=request.municipality_code,
        municipality_name=facts.municipality_name,
        issued_at=now.replace(microsecond=0).isoformat(),
        postal_code=facts.postal_code,
        address=facts.address,
        head_of_household=facts.head,
        people=facts.people,
        seal=facts.seal,
        subject=facts.subject,
        channel=request.channel,
        nonce=request.nonce,
        card=request.card,
    )


class AccessLog(Protocol):
    """Where an issuance is put on the record (the network's transparency log, DESIGN I6).
    Idempotent: the same issuance sent twice is recorded once. The resident code goes to the
    network, which keeps only its pseudonym; the log holds only a commitment to it."""

    def record_issuance(
        self,
        *,
        document_id: str,
        at: dt.datetime,
        requester: str,
        provider: str,
        kind: str,
        resident_code: str,
        member: int = 0,
    ) -> object: ...


Signers = Callable[[str], tuple[DocumentSigner, bytes]]
"""Municipality code → its document signer and its subject-digest key."""


def _refuse(code: str, en: str, ja: str, *, status: int = 409, **extra: Any) -> ConflictError:
    return ConflictError(code, en, ja, status=status, extra=extra or None)


class IssuanceService:
    def __init__(
        self,
        engine: Engine,
        vault: NumberVault,
        seals: SealService,
        signers: Signers,
        clock: Clock,
        base_url: str,
    ) -> None:
        self.engine = engine
        self._vault = vault
        self._seals = seals
        self._signers = signers
        self._clock = clock
        self._base_url = base_url
        self._log: AccessLog | None = None

    def connect_log(self, access_log: AccessLog) -> None:
        """Put every issuance on the record through `access_log` (module docstring)."""
        self._log = access_log

    # -- issuing ------------------------------------------------------------------------------

    def issue(self, request: IssueRequest) -> Issued:
        """Issue one document (module docstring). Raises ``issuance.*`` refusals (409),
        ``resident.not_found`` (404) or a 422 for a malformed request; nothing is recorded
        then."""
        self._check(request)
        with self.engine.connect() as conn:  # before a signing key is made for it
            self._place(conn, request.municipality_code)
        signer, subject_key = self._signers(request.municipality_code)
        replayed: Issued | None = None
        if request.request_key is not None:
            with self.engine.connect() as conn:
                replayed = self._replay(conn, request)
            if replayed is not None:
                return self._logged(replayed)
        for _ in range(_ATTEMPTS):
            now = self._clock.now().astimezone(JST)
            with self.engine.connect() as conn:
                facts = self._facts(conn, request, subject_key, now.date(), lock=False)
            content = _content(request, facts, now)
            pdf = signer.sign(render(content, self._base_url))
            try:
                with writing(self.engine) as conn:
                    if request.request_key is not None:
                        replayed = self._replay(conn, request)
                    if replayed is None:
                        again = self._facts(conn, request, subject_key, now.date(), lock=True)
                        if again != facts:
                            continue  # the register changed while rendering: render again
                        self._check_deadline(request)
                        issued = self._record(conn, request, content, pdf, now, facts.others)
            except IntegrityError as exc:  # the same request key, committed by a twin
                if request.request_key is None:
                    raise
                with self.engine.connect() as conn:
                    replayed = self._replay(conn, request)
                if replayed is None:
                    raise exc
                return self._logged(replayed)
            if replayed is not None:
                return self._logged(replayed)
            # Committed, the register's rows released: now on the record (I6).
            self._send_safely(
                issued.document_id,
                request.municipality_code,
                request.resident_code,
                str(request.kind),
                request.channel,
                request.requester,
                now,
                " ".join(facts.others),
            )
            return issued
        raise _refuse(
            "issuance.changed",
            "The record kept changing while the document was being made; try again.",
            "証明書の作成中に記録が変更されました。もう一度お試しください。",
        )

    # -- the access log (I6) --------------------------------------------------------------------

    def _send(
        self,
        document_id: str,
        municipality_code: str,
        resident_code: str,
        kind: str,
        channel: str,
        requester: str,
        issued_at: Any,
        others: str,
    ) -> None:
        """Put one issuance on the record — one access record for each person the document
        shows: the subject, then every other household member printed — then note it. Every
        argument comes from the issuance's row (or the values just written to it), so a resend
        sends the same."""
        if self._log is None:
            return
        for member, person in enumerate([resident_code, *others.split()]):
            self._log.record_issuance(
                document_id=document_id,
                member=member,
                at=stored_utc(issued_at).replace(microsecond=0),
                # a kiosk by its id; the counter by its municipality (a clerk is not named)
                requester=requester if channel == "kiosk" else municipality_code,
                provider=municipality_code,
                kind=kind,
                resident_code=person,
            )
        t = m.issuances.c
        with writing(self.engine) as conn:
            conn.execute(
                update(m.issuances)
                .where(t.document_id == document_id, t.logged_at.is_(None))
                .values(logged_at=self._clock.now().astimezone(dt.UTC))
            )

    def _send_safely(self, *args: Any) -> None:
        try:
            self._send(*args)
        except Exception as exc:  # the document is issued; reconcile_log records it later
            log.warning("issuance access record deferred: %s", type(exc).__name__)

    def _logged(self, replayed: Issued) -> Issued:
        """A replayed document, its access record sent if a crash kept it from the log."""
        if self._log is not None:
            for row in self._unlogged(replayed.document_id):
                self._send_safely(*row)
        return replayed

    def _unlogged(self, document_id: str | None = None) -> list[tuple[Any, ...]]:
        """(document id, municipality, resident, kind, channel, requester, issued at, others)
        of each issuance not yet noted as logged (just `document_id`'s, if given)."""
        t = m.issuances.c
        q = select(
            t.document_id,
            t.municipality_code,
            t.resident_code,
            t.kind,
            t.channel,
            t.requester,
            t.issued_at,
            t.others,
        ).where(t.logged_at.is_(None))
        if document_id is not None:
            q = q.where(t.document_id == document_id)
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(q.order_by(t.issued_at, t.document_id))]

    def reconcile_log(self) -> int:
        """Send every issuance not yet noted as logged (after a crash or a failure between the
        issuance's commit and the log's); how many were sent. A failure is raised: what is left
        is sent next time."""
        if self._log is None:
            return 0
        pending = self._unlogged()
        for row in pending:
            self._send(*row)
        return len(pending)

    def _check_deadline(self, request: IssueRequest) -> None:
        if request.deadline is not None and self._clock.now() >= request.deadline:
            # The requester has given up (the kiosk's session is over): roll everything back,
            # so no document exists that nobody will print (I1: a timeout aborts the whole).
            raise _refuse(
                "issuance.timeout",
                "The request ran past its deadline; nothing was issued.",
                "処理が時間内に終わらなかったため、交付していません。",
                status=504,
            )

    @staticmethod
    def _check(request: IssueRequest) -> None:
        check_operator(request.requester)
        if request.channel not in ("counter", "kiosk"):
            raise ValidationError(
                "issuance.channel",
                "The channel is counter or kiosk.",
                "交付の経路は counter または kiosk です。",
                field="channel",
            )
        if request.kind is not DocumentKind.residence and (
            request.members or request.whole_household or request.relationship or request.domicile
        ):
            raise ValidationError(
                "issuance.options",
                "Household members, relationship and 本籍 are printed only on a 住民票の写し.",
                "世帯員・続柄・本籍は住民票の写しにのみ記載できます。",
                field="kind",
            )
        if request.individual_number and request.kind is DocumentKind.seal:
            raise ValidationError(
                "issuance.options",
                "A seal certificate never shows the individual number.",
                "印鑑登録証明書に個人番号は記載しません。",
                field="individual_number",
            )
        if request.request_key is not None and not 1 <= len(request.request_key) <= 200:
            raise ValidationError(
                "issuance.request_key",
                "The request key is 1–200 characters.",
                "リクエストキーは1〜200文字です。",
                field="request_key",
            )

    def _replay(self, conn: Connection, request: IssueRequest) -> Issued | None:
        t = m.issuances.c
        row = conn.execute(
            select(m.issuances).where(
                t.municipality_code == request.municipality_code,
                t.request_key == request.request_key,
            )
        ).first()
        if row is None:
            return None
        if row.request_digest != request.digest():
            raise ConflictError(
                "idempotency.key_reused",
                "This request key was used for a different request.",
                "このリクエストキーは別の要求に使われています。",
                field="request_key",
            )
        return Issued(
            document_id=row.document_id,
            kind=DocumentKind(row.kind),
            pdf=bytes(row.pdf),
            content_digest=row.content_digest,
            subject=row.subject,
            fee=row.fee,
            issued_at=_iso(row.issued_at),
            replay=True,
        )

    def _facts(
        self,
        conn: Connection,
        request: IssueRequest,
        subject_key: bytes,
        today: dt.date,
        *,
        lock: bool,
    ) -> _Facts:
        """Everything the document says, read from the register on `conn`, after the refusal
        rules. With `lock`, the rows are held (FOR SHARE) until the transaction ends."""
        code = request.municipality_code
        place = self._place(conn, code)
        subject = self._resident(conn, code, request.resident_code, lock)
        self._refusals(conn, request, subject, today)
        people = self._people(conn, request, subject, lock)
        seal = self._seal(conn, request, lock) if request.kind is DocumentKind.seal else None
        head = None
        if request.kind is DocumentKind.residence:
            head = next(
                (
                    _name(r)
                    for r in self._household(conn, code, subject.household_id, lock)
                    if r.relationship == _HEAD
                ),
                None,
            )
        return _Facts(
            municipality_name=f"{place.prefecture}{place.name}",
            resident_code=subject.resident_code,
            postal_code=subject.postal_code,
            address=subject.address,
            head=head,
            people=tuple(self._entry(r, request) for r in people),
            seal=seal,
            subject=subject_digest(subject_key, code, subject.resident_code),
            others=tuple(
                r.resident_code for r in people if r.resident_code != subject.resident_code
            ),
        )

    @staticmethod
    def _place(conn: Connection, code: str) -> Row[Any]:
        place = conn.execute(
            select(m.municipalities).where(m.municipalities.c.code == code)
        ).first()
        if place is None:
            raise NotFoundError(
                "municipality.not_found",
                "No such municipality.",
                "該当する市区町村がありません。",
                field="municipality_code",
            )
        return place

    def _record(
        self,
        conn: Connection,
        request: IssueRequest,
        content: DocumentContent,
        pdf: bytes,
        now: dt.datetime,
        others: tuple[str, ...],
    ) -> Issued:
        code = request.municipality_code
        digest = content.digest()
        fee = FEES[request.kind]
        counter = request.channel == "counter"
        conn.execute(
            insert(m.issuances).values(
                document_id=content.document_id,
                municipality_code=code,
                resident_code=request.resident_code,
                kind=str(request.kind),
                subject=content.subject,
                content_digest=digest,
                pdf_digest=hashlib.sha256(pdf).hexdigest(),
                channel=request.channel,
                requester=request.requester,
                nonce=request.nonce,
                card=request.card,
                request_key=request.request_key,
                request_digest=request.digest(),
                fee=fee,
                # UTC: SQLite keeps a datetime's wall time and drops its offset
                issued_at=now.astimezone(dt.UTC),
                outcome="handed" if counter else "pending",
                outcome_at=now.astimezone(dt.UTC) if counter else None,
                pdf=pdf,
                others=" ".join(others),
            )
        )
        if counter:  # handed over at the counter: charged now; a kiosk's when it has printed
            conn.execute(
                insert(m.fees).values(
                    document_id=content.document_id,
                    municipality_code=code,
                    amount=fee,
                    channel=request.channel,
                    requester=request.requester,
                    charged_at=now.astimezone(dt.UTC),
                )
            )
        return Issued(
            document_id=content.document_id,
            kind=request.kind,
            pdf=pdf,
            content_digest=digest,
            subject=content.subject,
            fee=fee,
            issued_at=content.issued_at,
        )

    def report_print(
        self, municipality_code: str, document_id: str, requester: str, printed: bool
    ) -> dict[str, Any]:
        """The kiosk's report on a document it was given: ``printed`` (the fee is recorded,
        once) or ``aborted`` (its check failed or it gave up: no fee, and the record says the
        paper never existed). Only the kiosk that asked may report; a second report of the same
        outcome is a no-op, of the other outcome ``issuance.already_reported``."""
        t = m.issuances
        outcome = "printed" if printed else "aborted"
        now = self._clock.now().astimezone(dt.UTC)
        with writing(self.engine) as conn:
            row = conn.execute(
                select(t.c.outcome, t.c.fee, t.c.channel, t.c.requester)
                .where(t.c.municipality_code == municipality_code, t.c.document_id == document_id)
                .with_for_update()
            ).first()
            if row is None or row.channel != "kiosk" or row.requester != requester:
                raise NotFoundError(
                    "issuance.not_found",
                    "This kiosk was given no document with this id.",
                    "この端末に交付された、この文書IDの証明書はありません。",
                    field="document_id",
                )
            if row.outcome == outcome:
                return {"document_id": document_id, "outcome": outcome, "fee": _fee(row, outcome)}
            if row.outcome != "pending":
                raise ConflictError(
                    "issuance.already_reported",
                    f"The document was already reported {row.outcome}.",
                    "この証明書の印刷結果は報告済みです。",
                    field="document_id",
                )
            conn.execute(
                t.update()
                .where(t.c.document_id == document_id)
                .values(outcome=outcome, outcome_at=now)
            )
            if printed:
                conn.execute(
                    insert(m.fees).values(
                        document_id=document_id,
                        municipality_code=municipality_code,
                        amount=row.fee,
                        channel="kiosk",
                        requester=requester,
                        charged_at=now,
                    )
                )
        return {"document_id": document_id, "outcome": outcome, "fee": _fee(row, outcome)}

    # -- reading the register (on the issuing transaction, rows held) -------------------------

    @staticmethod
    def _resident(conn: Connection, code: str, resident_code: str, lock: bool = True) -> Row[Any]:
        r = m.residents.c
        query = select(m.residents).where(
            r.municipality_code == code, r.resident_code == resident_code
        )
        row = conn.execute(query.with_for_update(read=True) if lock else query).first()
        if row is None:
            raise NotFoundError(
                "resident.not_found",
                "No such resident.",
                "該当する住民がいません。",
                field="resident_code",
            )
        return row

    @staticmethod
    def _household(conn: Connection, code: str, household_id: str, lock: bool) -> list[Row[Any]]:
        r = m.residents.c
        query = (
            select(m.residents)
            .where(
                r.municipality_code == code,
                r.household_id == household_id,
                r.status == "active",
            )
            .order_by(r.resident_code)
        )
        return list(conn.execute(query.with_for_update(read=True) if lock else query).all())

    def _refusals(
        self, conn: Connection, request: IssueRequest, subject: Row[Any], today: dt.date
    ) -> None:
        if subject.status == "moved_out":
            raise _refuse(
                "issuance.moved_out",
                "The person has moved out: a residence record of someone who left is issued "
                "only at the counter (住民票の除票).",
                "転出した方の証明は、窓口で住民票の除票として交付します。",
            )
        if subject.status == "deceased":
            raise _refuse(
                "issuance.deceased",
                "The person has died: their record is closed (除票).",
                "亡くなった方の住民票は消除されています（除票）。",
            )
        if request.channel != "kiosk":
            return
        sm = m.support_measures.c
        measure = conn.execute(
            select(sm.until).where(
                sm.municipality_code == request.municipality_code,
                sm.resident_code == subject.resident_code,
                sm.since <= today,
            )
        ).first()
        if measure is not None and (measure.until is None or measure.until >= today):
            raise _refuse(
                "issuance.support_measure",
                "This record is issued only at the counter.",
                "この証明はコンビニ交付では取得できません。窓口でお申し込みください。",
            )
        if request.kind is not DocumentKind.seal:
            r = m.residents.c
            leaving = conn.execute(
                select(r.resident_code)
                .where(
                    r.municipality_code == request.municipality_code,
                    r.household_id == subject.household_id,
                    r.status == "moved_out",
                    r.status_since >= today,
                )
                .limit(1)
            ).first()
            if leaving is not None:
                raise _refuse(
                    "issuance.household_leaving",
                    "Someone in this household is moving out (転出予定): its record is issued "
                    "only at the counter.",
                    "世帯に転出予定の方がいるため、コンビニ交付では取得できません。"
                    "窓口でお申し込みください。",
                )
        e = m.events.c
        start = dt.datetime.combine(today, dt.time(), JST)
        changed_today = conn.execute(
            select(e.seq)
            .where(
                e.municipality_code == request.municipality_code,
                e.resident_code == subject.resident_code,
                e.recorded_at >= start,
                e.kind.in_(_SAME_DAY),
            )
            .limit(1)
        ).first()
        if changed_today is not None:
            raise _refuse(
                "issuance.same_day",
                "A record changed today is issued only at the counter.",
                "本日異動があったため、コンビニ交付では取得できません。窓口でお申し込みください。",
            )

    def _people(
        self, conn: Connection, request: IssueRequest, subject: Row[Any], lock: bool
    ) -> list[Row[Any]]:
        if request.kind is not DocumentKind.residence or not (
            request.whole_household or request.members
        ):
            return [subject]
        household = self._household(conn, request.municipality_code, subject.household_id, lock)
        if request.whole_household:
            chosen = household
        else:
            wanted = set(request.members or ()) | {subject.resident_code}
            chosen = [r for r in household if r.resident_code in wanted]
            missing = wanted - {r.resident_code for r in chosen}
            if missing:
                raise _refuse(
                    "issuance.not_household",
                    "A person asked for is not an active member of the subject's household.",
                    "指定された方は、請求者と同じ世帯の住民ではありません。",
                    status=422,
                )
        # The head first, then by code: the order of the register's household.
        return sorted(chosen, key=lambda r: (r.relationship != _HEAD, r.resident_code))

    def _seal(self, conn: Connection, request: IssueRequest, lock: bool) -> SealEntry:
        active = self._seals.active_seal(
            conn, request.municipality_code, request.resident_code, lock=lock
        )
        if active is None:
            ended = conn.execute(
                select(m.seals.c.state)
                .where(
                    m.seals.c.municipality_code == request.municipality_code,
                    m.seals.c.resident_code == request.resident_code,
                )
                .order_by(m.seals.c.seal_id.desc())
                .limit(1)
            ).scalar_one_or_none()
            raise _refuse(
                "issuance.no_seal",
                "The person has no registered seal"
                + (f" (the last one is {ended})." if ended else "."),
                "登録されている印鑑がありません"
                + ({"abolished": "（廃止済み）", "lost": "（亡失）"}.get(ended or "", ""))
                + "。",
                seal_state=ended,
            )
        image = conn.execute(
            select(m.seals.c.image).where(m.seals.c.seal_id == active["seal_id"])
        ).scalar_one()
        return SealEntry(
            media_type=active["media_type"],
            image_digest=active["image_digest"],
            image_b64=base64.b64encode(bytes(image)).decode("ascii"),
        )

    def _entry(self, row: Row[Any], request: IssueRequest) -> PersonEntry:
        number = None
        if request.individual_number:
            number = self._vault.open(row.number_enc) if row.number_enc else ""
        return PersonEntry(
            name=_name(row),
            kana=f"{row.family_name_kana} {row.given_name_kana}",
            birth_date=row.birth_date.isoformat(),
            sex=int(row.sex),
            resident_since=row.address_since.isoformat(),
            relationship=row.relationship if request.relationship else None,
            individual_number=number,
            # 本籍 only when asked for and recorded (foreign residents have none)
            domicile=row.domicile if request.domicile and row.domicile else None,
            domicile_head=row.domicile_head if request.domicile and row.domicile else None,
        )

    # -- the record ---------------------------------------------------------------------------

    def record(self, document_id: str) -> dict[str, Any] | None:
        """What a verifier may learn of an issuance: kind, municipality, time, digests,
        channel. Never the person or the PDF."""
        t = m.issuances.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    t.document_id,
                    t.kind,
                    t.municipality_code,
                    t.content_digest,
                    t.pdf_digest,
                    t.subject,
                    t.channel,
                    t.issued_at,
                    t.outcome,
                ).where(t.document_id == document_id)
            ).first()
        if row is None:
            return None
        return {
            "document_id": row.document_id,
            "kind": row.kind,
            "municipality_code": row.municipality_code,
            "content_digest": row.content_digest,
            "pdf_digest": row.pdf_digest,
            "subject": row.subject,
            "channel": row.channel,
            "issued_at": _iso(row.issued_at),
            "outcome": row.outcome,
        }

    def issued_to(self, municipality_code: str, resident_code: str) -> list[dict[str, Any]]:
        """The documents issued about a person, oldest first (their own record of it)."""
        t = m.issuances.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.document_id, t.kind, t.channel, t.fee, t.issued_at, t.outcome)
                .where(t.municipality_code == municipality_code, t.resident_code == resident_code)
                .order_by(t.issued_at, t.document_id)
            ).all()
        return [
            {
                "document_id": r.document_id,
                "kind": r.kind,
                "channel": r.channel,
                "fee": r.fee,
                "issued_at": _iso(r.issued_at),
                "outcome": r.outcome,
            }
            for r in rows
        ]

    def set_support_measure(
        self,
        municipality_code: str,
        resident_code: str,
        operator: str,
        *,
        until: dt.date | None = None,
    ) -> None:
        """Put a resident under a support measure from today (or extend/end it: `until`)."""
        check_operator(operator)
        sm = m.support_measures
        today = self._clock.today()
        with writing(self.engine) as conn:
            self._resident(conn, municipality_code, resident_code)
            conn.execute(
                sm.delete().where(
                    sm.c.municipality_code == municipality_code,
                    sm.c.resident_code == resident_code,
                )
            )
            conn.execute(
                insert(sm).values(
                    municipality_code=municipality_code,
                    resident_code=resident_code,
                    since=today,
                    until=until,
                    operator=operator,
                    recorded_at=self._clock.now().astimezone(dt.UTC),
                )
            )


def _fee(row: Any, outcome: str) -> int:
    return int(row.fee) if outcome == "printed" else 0


def _name(row: Row[Any]) -> str:
    return f"{row.family_name} {row.given_name}"


def _iso(value: Any) -> str:
    return stored_utc(value).astimezone(JST).isoformat()

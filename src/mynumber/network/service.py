"""The information-provision network (情報提供ネットワークシステム): agency registration, the code
map, and brokered exchanges, each one recorded in the network's database and in the
transparency log before any data is handed over.

What crosses the network is an agency's request (signed with its registered key) naming the
person by the requester's own code; the network translates that code into the provider's code —
a lookup and an HMAC under a key only it holds — asks the provider's intermediate server, and
returns the value. Neither the individual number nor the resident record code is stored here or
sent anywhere (I5): J-LIS supplies a resident record code when an agency obtains a code, and the
network keeps only its keyed pseudonym.

Order of an exchange (so a crash leaves nothing hidden and nothing half-given):

1. parse and check the signature, the clock window and the request id (no write: an
   unauthenticated request is answered, not recorded — there is no one to record it against);
2. decide — unknown code, unknown provider, no legal basis, or the provider's answer;
3. commit the access record to the network's ``requests`` table (its leaf hash included);
4. append it to the log and note its leaf index;
5. only then return the value.

A crash between 3 and 4 leaves a row without a leaf index; :meth:`NetworkService.reconcile`
(run at start-up and on a retry of the same request) finds its leaf by hash or appends it.

A municipality's certificate issuance is recorded the same way (:meth:`NetworkService.
record_issuance`, DESIGN I6): a row in ``requests`` keyed by (requester, document id), then a
leaf. The municipality calls it after its own commit and resends until it has noted success, so
the record's bytes are a function of the issuance alone and a resend is a no-op.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from mynumber.clock import Clock
from mynumber.db import read_once, writing
from mynumber.errors import (
    AuthError,
    ConflictError,
    MynumberError,
    NotFoundError,
    ValidationError,
)
from mynumber.keystore import Keystore
from mynumber.ledger.merkle import leaf_hash
from mynumber.ledger.service import LedgerService
from mynumber.network import models as m
from mynumber.network.anomaly import Access, Finding, Rules, anomaly_report
from mynumber.network.codes import agency_code, pseudonym, subject_commitment
from mynumber.network.legal_basis import KINDS, LegalBasisTable
from mynumber.network.records import (
    ISSUANCE_TASK,
    SIGNING_CONTEXT,
    AccessRecord,
    ExchangeRequest,
    Provision,
    RecordError,
)

__all__ = [
    "REFUSALS",
    "RETENTION_YEARS",
    "SIGNING_CONTEXT",
    "Agency",
    "ExchangeResult",
    "Holder",
    "NetworkService",
    "Provision",
]

CLOCK_WINDOW = dt.timedelta(minutes=5)
# The hot reads of every exchange, as prebuilt statements (mynumber.db.read_once).
_PERSON_SQL = "SELECT person FROM codes WHERE agency_id = ? AND code = ?"
_SEEN_SQL = "SELECT 1 FROM requests WHERE requester = ? AND request_id = ?"
RETENTION_YEARS = 7  # 番号法施行令 30条: access records are kept seven years
ISSUANCE_BASIS = {"juminhyo": "juki_act_12", "kisai_jiko": "juki_act_12", "inkan": "seal_ordinance"}
"""Document kind → the statute an issuance rests on: 住民基本台帳法12条 (本人等の請求による住民票の
写し等の交付); 印鑑登録証明書 rests on each municipality's 印鑑条例."""

REFUSALS: dict[str, tuple[str, str]] = {
    "network.unknown_code": (
        "The requester holds no such code: an agency can only name people by its own codes.",
        "照会機関の符号ではありません。機関は自らの機関別符号でのみ照会できます。",
    ),
    "network.unknown_provider": (
        "No active agency is registered under the provider named.",
        "指定された情報提供者は登録されていないか、停止されています。",
    ),
    "network.no_legal_basis": (
        "No legal basis allows this requester's task to ask this provider for this item.",
        "この事務でこの情報提供者にこの特定個人情報を照会する法令上の根拠がありません。",
    ),
    "network.stale_request": (
        "The request's issued_at is more than five minutes from the network's clock.",
        "照会の発行時刻がネットワークの時刻と5分以上ずれています。",
    ),
    "network.provider_unavailable": (
        "The provider's intermediate server did not answer.",
        "情報提供者の中間サーバーが応答しませんでした。",
    ),
}


class Holder(Protocol):
    """An intermediate server as the network sees it: it answers by the provider's own code."""

    def provide(self, agency_id: str, code: str, item: str) -> Provision: ...


@dataclass(frozen=True, slots=True)
class Agency:
    agency_id: str
    kind: str
    name_ja: str
    name_en: str
    public_key: bytes
    active: bool


@dataclass(frozen=True, slots=True)
class ExchangeResult:
    request_id: str
    outcome: str
    reason: str | None
    basis: str | None
    value: Any
    leaf_index: int
    tree_size: int
    replayed: bool = False

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "request_id": self.request_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "basis": self.basis,
            "record": {"leaf_index": self.leaf_index, "tree_size": self.tree_size},
        }
        if self.outcome == "provided":
            doc["value"] = self.value
        return doc


def _auth(code: str, en: str, ja: str) -> AuthError:
    return AuthError(code, en, ja)


class NetworkService:
    def __init__(
        self,
        engine: Engine,
        keystore: Keystore,
        ledger: LedgerService,
        clock: Clock,
        legal_basis: LegalBasisTable | None = None,
    ) -> None:
        self.engine = engine
        self._person_key = keystore.secret("network-person")
        self._code_key = keystore.secret("network-code")
        self._ledger = ledger
        self._clock = clock
        self.legal_basis = legal_basis or LegalBasisTable.load()
        self._holders: dict[str, Holder] = {}
        self._agencies: dict[str, Agency] = {}
        self._agencies_lock = threading.Lock()
        self._before_read: list[Callable[[], object]] = []

    # -- agencies ---------------------------------------------------------------------------

    def connect_holder(self, agency_id: str, holder: Holder) -> None:
        """Route queries for `agency_id` to `holder` (its intermediate server); ``"*"`` for
        every agency without a holder of its own."""
        self._holders[agency_id] = holder

    def _holder(self, agency_id: str) -> Holder | None:
        return self._holders.get(agency_id) or self._holders.get("*")

    def register_agency(
        self, agency_id: str, kind: str, name_ja: str, name_en: str, public_key: bytes
    ) -> Agency:
        """Register an information holder and its Ed25519 request-signing key (raw 32 bytes).
        Registering the same agency again with the same key is a no-op; a new key replaces the
        old one (key rotation)."""
        if kind not in KINDS:
            raise ValidationError(
                "network.unknown_kind",
                f"Unknown agency kind; one of {', '.join(KINDS)}.",
                f"機関の種別が不明です（{', '.join(KINDS)}）。",
                field="kind",
            )
        try:
            Ed25519PublicKey.from_public_bytes(public_key)
        except ValueError:
            raise ValidationError(
                "network.bad_key",
                "The public key is not a raw 32-byte Ed25519 key.",
                "公開鍵が32バイトのEd25519鍵ではありません。",
                field="public_key",
            ) from None
        a = m.agencies.c
        with writing(self.engine) as conn:
            row = conn.execute(select(m.agencies).where(a.agency_id == agency_id)).first()
            values = {
                "kind": kind,
                "name_ja": name_ja,
                "name_en": name_en,
                "public_key": public_key,
                "active": True,
            }
            if row is None:
                conn.execute(
                    m.agencies.insert().values(
                        agency_id=agency_id, registered_at=self._now(), **values
                    )
                )
            elif row.kind != kind:
                raise ConflictError(
                    "network.agency_kind",
                    "An agency keeps its kind; register a new agency instead.",
                    "機関の種別は変更できません。別の機関として登録してください。",
                    field="kind",
                )
            else:
                conn.execute(m.agencies.update().where(a.agency_id == agency_id).values(**values))
        with self._agencies_lock:
            self._agencies.pop(agency_id, None)
        return Agency(agency_id, kind, name_ja, name_en, public_key, True)

    def agency(self, agency_id: str) -> Agency | None:
        with self._agencies_lock:
            cached = self._agencies.get(agency_id)
        if cached is not None:
            return cached
        with self.engine.connect() as conn:
            row = conn.execute(
                select(m.agencies).where(m.agencies.c.agency_id == agency_id)
            ).first()
        if row is None:
            return None
        found = Agency(
            row.agency_id, row.kind, row.name_ja, row.name_en, bytes(row.public_key), row.active
        )
        with self._agencies_lock:
            self._agencies[agency_id] = found
        return found

    def agencies(self) -> list[Agency]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(m.agencies).order_by(m.agencies.c.agency_id)).all()
        return [
            Agency(r.agency_id, r.kind, r.name_ja, r.name_en, bytes(r.public_key), r.active)
            for r in rows
        ]

    # -- codes ------------------------------------------------------------------------------

    def issue_codes(self, agency_id: str, resident_codes: Sequence[str]) -> dict[str, str]:
        """The agency's codes for these people (issued on first request, the same ever after).

        Called by J-LIS, which resolved the agency's individual numbers to resident record
        codes: the number itself never reaches the network."""
        if self.agency(agency_id) is None:
            raise NotFoundError(
                "network.unknown_agency",
                "No agency is registered under that id.",
                "その機関は登録されていません。",
                field="agency_id",
            )
        now = self._now()
        out: dict[str, str] = {}
        rows: dict[str, dict[str, Any]] = {}
        for rc in resident_codes:
            person = pseudonym(self._person_key, rc)
            code = agency_code(self._code_key, agency_id, person)
            out[rc] = code
            rows[code] = {"agency_id": agency_id, "code": code, "person": person, "issued_at": now}
        c = m.codes.c
        with writing(self.engine) as conn:
            keys = list(rows)
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                have = conn.execute(
                    select(c.code).where(c.agency_id == agency_id, c.code.in_(chunk))
                ).scalars()
                for code in have:
                    rows.pop(code, None)
            if rows:
                conn.execute(m.codes.insert(), list(rows.values()))
        return out

    # -- exchanges --------------------------------------------------------------------------

    def exchange(self, message: bytes, signature: bytes) -> ExchangeResult:
        """Broker one signed request (see the module docstring for the order of things)."""
        try:
            req = ExchangeRequest.from_bytes(message)
        except RecordError as e:
            raise ValidationError(
                "network.malformed",
                f"The request is not well formed ({e}).",
                f"照会の形式が正しくありません（{e}）。",
                field=e.field,
            ) from None
        requester = self.agency(req.requester)
        if requester is None or not requester.active:
            raise _auth(
                "network.unknown_agency",
                "The requester is not a registered, active agency.",
                "照会機関が登録されていないか、停止されています。",
            )
        try:
            Ed25519PublicKey.from_public_bytes(requester.public_key).verify(
                signature, SIGNING_CONTEXT + message
            )
        except (InvalidSignature, ValueError):
            raise _auth(
                "network.bad_signature",
                "The request's signature does not verify under the requester's registered key.",
                "照会の署名が照会機関の登録鍵で検証できません。",
            ) from None
        digest = hashlib.sha256(message).digest()
        existing = self._existing(req, digest)
        if existing is not None:
            return existing
        person, outcome, reason, basis_id, value = self._decide(req, requester)
        now = self._now()
        record = AccessRecord(
            req.request_id,
            now,
            req.requester,
            req.task,
            req.provider,
            req.item,
            basis_id,
            outcome,
            reason,
            None if person is None else subject_commitment(person, req.request_id),
        )
        data = record.to_bytes()
        try:
            with writing(self.engine) as conn:
                conn.execute(
                    m.requests.insert().values(
                        requester=req.requester,
                        request_id=req.request_id,
                        request_digest=digest,
                        at=now,
                        person=person,
                        task=req.task,
                        provider=req.provider,
                        item=req.item,
                        basis=basis_id,
                        outcome=outcome,
                        reason=reason,
                        record=data,
                        leaf_hash=leaf_hash(data),
                        leaf_index=None,
                    )
                )
        except IntegrityError:  # the same request, at the same moment, from another worker
            again = self._existing(req, digest)
            if again is None:
                raise
            return again
        # A new record cannot be in the log yet: no search by hash on the common path.
        index, size = self._log(req.requester, req.request_id, data, search=False)
        return ExchangeResult(req.request_id, outcome, reason, basis_id, value, index, size)

    def _decide(
        self, req: ExchangeRequest, requester: Agency
    ) -> tuple[bytes | None, str, str | None, str | None, Any]:
        """(person, outcome, reason, basis id, value) for a well-signed request."""
        now = self._now()
        found = read_once(self.engine, _PERSON_SQL, (req.requester, req.subject_code))
        person = bytes(found[0][0]) if found else None
        if abs(req.issued_at - now) > CLOCK_WINDOW:
            return person, "refused", "network.stale_request", None, None
        if person is None:
            return None, "refused", "network.unknown_code", None, None
        provider = self.agency(req.provider)
        if provider is None or not provider.active:
            return person, "refused", "network.unknown_provider", None, None
        basis = self.legal_basis.find(requester.kind, req.task, provider.kind, req.item)
        if basis is None:
            return person, "refused", "network.no_legal_basis", None, None
        holder = self._holder(provider.agency_id)
        if holder is None:
            return person, "refused", "network.provider_unavailable", basis.id, None
        provider_code = agency_code(self._code_key, provider.agency_id, person)
        try:
            answer = holder.provide(provider.agency_id, provider_code, req.item)
        except Exception:  # the provider's failure is its own; the request is refused, recorded
            return person, "refused", "network.provider_unavailable", basis.id, None
        if not answer.held:
            return person, "not_held", None, basis.id, None
        return person, "provided", None, basis.id, answer.value

    def _existing(self, req: ExchangeRequest, digest: bytes) -> ExchangeResult | None:
        """The answer to a request already recorded (a retry), or None if it is new."""
        if not read_once(self.engine, _SEEN_SQL, (req.requester, req.request_id)):
            return None  # the common case, answered in one round trip
        r = m.requests.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(m.requests).where(
                    r.requester == req.requester, r.request_id == req.request_id
                )
            ).first()
        if row is None:
            return None
        if bytes(row.request_digest) != digest:
            raise ConflictError(
                "network.request_id_reused",
                "This request id was already used for a different request.",
                "この照会IDは別の照会に使用済みです。",
                field="request_id",
            )
        if row.leaf_index is None:
            index, size = self._log(req.requester, req.request_id, bytes(row.record))
        else:
            index = int(row.leaf_index)
            head = self._ledger.head()
            size = head.tree_size if head is not None else index + 1
        value = None
        if row.outcome == "provided":
            # The network keeps no copy of what it brokered (分散管理): a retry gets the same
            # record and the provider's answer asked again.
            provider_code = agency_code(self._code_key, row.provider, bytes(row.person))
            holder = self._holder(row.provider)
            try:
                if holder is None:
                    raise LookupError(row.provider)
                answer = holder.provide(row.provider, provider_code, row.item)
            except Exception:
                en, ja = REFUSALS["network.provider_unavailable"]
                raise MynumberError(
                    "network.provider_unavailable",
                    en,
                    ja,
                    status=503,
                    extra={"request_id": req.request_id},
                ) from None
            value = answer.value if answer.held else None
        return ExchangeResult(
            req.request_id, row.outcome, row.reason, row.basis, value, index, size, replayed=True
        )

    def _log(
        self, requester: str, request_id: str, data: bytes, *, search: bool = True
    ) -> tuple[int, int]:
        """Append the record to the log (unless, with `search`, a crash left it there already)
        and note its leaf index; (leaf index, tree size)."""
        index = self._ledger.index_of(leaf_hash(data)) if search else None
        if index is None:
            # unique, checked under the log's lock: a retry or a reconcile may be logging this
            # very record at the same moment (it saw the row before this append committed).
            indices, head = self._ledger.append([data], unique=True)
            index, size = indices[0], head.tree_size
        else:
            head_now = self._ledger.head()
            size = head_now.tree_size if head_now is not None else index + 1
        r = m.requests.c
        with writing(self.engine) as conn:
            conn.execute(
                m.requests.update()
                .where(r.requester == requester, r.request_id == request_id)
                .values(leaf_index=index)
            )
        return index, size

    def reconcile(self) -> int:
        """Give every recorded exchange its leaf (after a crash between the two commits)."""
        r = m.requests.c
        with self.engine.connect() as conn:
            pending = conn.execute(
                select(r.requester, r.request_id, r.record).where(r.leaf_index.is_(None))
            ).all()
        for requester, request_id, record in pending:
            self._log(requester, request_id, bytes(record))
        return len(pending)

    # -- provisions by other roles -----------------------------------------------------------

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
    ) -> int:
        """Record a certificate a municipality issued about the resident (DESIGN I6): a row in
        ``requests`` and a leaf, like an exchange; the leaf index. Idempotent: the same issuance
        again (a resend after a crash, a reconcile racing the first send) finds its row and
        makes sure of its leaf; other content under the same (requester, document id) is a
        conflict. `at` is the issuance's own time, so every send makes the same bytes.

        A document showing several people (a household's 住民票) is one record per person:
        `member` 0 is the subject (the record's id is the document id), member n ≥ 1 the n-th
        other person printed (``DOCUMENT_ID-n``)."""
        person = pseudonym(self._person_key, resident_code)
        record_id = document_id if member == 0 else f"{document_id}-{member}"
        basis = ISSUANCE_BASIS.get(kind)
        if basis is None:
            raise ValidationError(
                "network.unknown_item",
                "Unknown document kind.",
                "証明書の種類が不明です。",
                field="kind",
            )
        record = AccessRecord(
            record_id,
            at,
            requester,
            ISSUANCE_TASK,
            provider,
            kind,
            basis,
            "provided",
            None,
            subject_commitment(person, record_id),
            type="issuance",
        )
        data = record.to_bytes()
        digest = hashlib.sha256(data).digest()
        r = m.requests.c
        key = (r.requester == requester, r.request_id == record_id)
        with self.engine.connect() as conn:
            row = conn.execute(select(r.request_digest, r.leaf_index).where(*key)).first()
        if row is None:
            try:
                with writing(self.engine) as conn:
                    conn.execute(
                        m.requests.insert().values(
                            requester=requester,
                            request_id=record_id,
                            request_digest=digest,
                            at=record.at.astimezone(dt.UTC),
                            person=person,
                            task=ISSUANCE_TASK,
                            provider=provider,
                            item=kind,
                            basis=basis,
                            outcome="provided",
                            reason=None,
                            record=data,
                            leaf_hash=leaf_hash(data),
                            leaf_index=None,
                        )
                    )
            except IntegrityError:  # a resend racing this one: it is recorded
                with self.engine.connect() as conn:
                    row = conn.execute(select(r.request_digest, r.leaf_index).where(*key)).first()
                if row is None:
                    raise
            else:
                return self._log(requester, record_id, data, search=False)[0]
        if bytes(row.request_digest) != digest:
            raise ConflictError(
                "network.request_id_reused",
                "This document id was already recorded with other content.",
                "この文書IDは別の内容で記録済みです。",
                field="document_id",
            )
        if row.leaf_index is not None:
            return int(row.leaf_index)
        return self._log(requester, record_id, data)[0]

    def before_records(self, hook: Callable[[], object]) -> None:
        """Run `hook` before a person's records are read (another role's reconcile: whatever
        it still has to record is recorded before the person is answered)."""
        self._before_read.append(hook)

    # -- reading ----------------------------------------------------------------------------

    def person_key(self, resident_code: str) -> bytes:
        """The person's pseudonym: shown to them so they can check each record's commitment."""
        return pseudonym(self._person_key, resident_code)

    def records_of(self, resident_code: str) -> dict[str, Any]:
        """Every access record about the person, each with a proof bundle
        (`mynumber verify-proof` checks it offline) against the newest signed head."""
        for hook in self._before_read:
            hook()
        self.reconcile()
        person = self.person_key(resident_code)
        r = m.requests.c
        with self.engine.connect() as conn:
            indices = [
                int(i)
                for i in conn.execute(
                    select(r.leaf_index)
                    .where(r.person == person, r.leaf_index.is_not(None))
                    .order_by(r.leaf_index)
                ).scalars()
            ]
        bundles = self._ledger.proof_bundles(indices)
        out = []
        for index, bundle in zip(indices, bundles, strict=True):
            bundle["subject_key"] = person.hex()
            data = bundle.get("leaf_data")
            record = None if data is None else json.loads(bytes.fromhex(data))
            out.append({"leaf_index": index, "record": record, "proof": bundle})
        head = self._ledger.head()
        return {
            "subject_key": person.hex(),
            "tree_head": None if head is None else head.to_json(),
            "records": out,
        }

    def counts(self) -> dict[str, Any]:
        """Exchanges by requester, provider and outcome (for the landing page and the demo);
        certificate issuances are not exchanges."""
        r = m.requests.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(r.requester, r.provider, r.outcome, func.count())
                .where(r.task != ISSUANCE_TASK)
                .group_by(r.requester, r.provider, r.outcome)
                .order_by(r.requester, r.provider, r.outcome)
            ).all()
        return {
            "exchanges": [
                {"requester": a, "provider": b, "outcome": o, "count": int(n)}
                for a, b, o, n in rows
            ],
            "total": sum(int(n) for *_, n in rows),
        }

    def anomalies(
        self,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        rules: Rules | None = None,
    ) -> list[Finding]:
        """The auditor's anomaly report over the network's exchanges in [since, until) (not
        certificate issuances: a kiosk serves many people a day by design)."""
        r = m.requests.c
        q = select(r.requester, r.person, r.at, r.outcome).where(r.task != ISSUANCE_TASK)
        if since is not None:
            q = q.where(r.at >= since.astimezone(dt.UTC))
        if until is not None:
            q = q.where(r.at < until.astimezone(dt.UTC))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return anomaly_report(
            (Access(a, None if p is None else bytes(p), _aware(t), o) for a, p, t, o in rows),
            rules=rules or Rules(),
        )

    # -- retention --------------------------------------------------------------------------

    def erase_expired(self) -> tuple[int, int]:
        """Apply the seven-year retention: the network's own rows older than that are deleted;
        the log's payloads of that age are erased while their leaves stay, so every proof still
        verifies. (network rows deleted, log payloads erased)"""
        now = self._clock.now()
        try:
            cutoff = now.replace(year=now.year - RETENTION_YEARS)
        except ValueError:  # 29 February
            cutoff = now.replace(year=now.year - RETENTION_YEARS, day=28)
        r = m.requests.c
        with writing(self.engine) as conn:
            deleted = conn.execute(
                m.requests.delete().where(
                    r.at < cutoff.astimezone(dt.UTC), r.leaf_index.is_not(None)
                )
            ).rowcount
        return deleted, self._ledger.erase_before(cutoff)

    def _now(self) -> dt.datetime:
        # UTC throughout: SQLite keeps the wall time only, so every stored time is UTC.
        return self._clock.now().astimezone(dt.UTC)


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)

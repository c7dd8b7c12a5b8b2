"""The agency role: an information holder's own records, its agency codes, its intermediate
server (中間サーバー) and its client of the network.

Every agency of a deployment lives in this role's database, each row tagged with its agency id;
an agency's signing key is its own keystore secret. The intermediate server answers the network
from the **copy** (副本) of the agency's shareable items, keyed by internal id and agency code and
refreshed from the records (:meth:`AgencyService.refresh_copy`) — never from the business records
directly, as in the real system.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Table, delete, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from mynumber.agency import models as m
from mynumber.clock import Clock
from mynumber.db import read_once, writing
from mynumber.errors import ConflictError, NotFoundError, ValidationError
from mynumber.keystore import Keystore
from mynumber.network.legal_basis import ITEMS
from mynumber.network.records import SIGNING_CONTEXT, ExchangeRequest, Provision
from mynumber.numbers import mask
from mynumber.vault import NumberVault

__all__ = ["AgencyService", "SignedRequest"]

_CHUNK = 500
# The reads of every exchange, as prebuilt statements (mynumber.db.read_once).
_CODE_SQL = "SELECT code FROM codes WHERE agency_id = ? AND internal_id = ?"
_COPY_SQL = "SELECT value FROM copies WHERE agency_id = ? AND code = ? AND item = ?"

SignedRequest = tuple[bytes, bytes]
"""(request bytes, Ed25519 signature over SIGNING_CONTEXT ‖ request bytes)"""


class AgencyService:
    def __init__(self, engine: Engine, keystore: Keystore, clock: Clock) -> None:
        self.engine = engine
        self._keystore = keystore
        self._clock = clock
        self.vault = NumberVault(keystore, "agency")

    # -- keys -------------------------------------------------------------------------------

    def _key(self, agency_id: str) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(
            self._keystore.secret(f"agency-{agency_id}-sign")
        )

    def public_key(self, agency_id: str) -> bytes:
        """The agency's request-signing key, raw (what the network registers)."""
        return self._key(agency_id).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    # -- records and codes ------------------------------------------------------------------

    def put_records(self, agency_id: str, records: Mapping[str, Mapping[str, Any]]) -> int:
        """Create or replace business records (internal id → item → value)."""
        now = self._now()
        rows = [
            {
                "agency_id": agency_id,
                "internal_id": iid,
                "data": json.dumps(dict(data), ensure_ascii=False, sort_keys=True),
                "updated_at": now,
            }
            for iid, data in records.items()
        ]
        return self._replace(m.records, agency_id, rows)

    def store_codes(self, agency_id: str, codes: Mapping[str, str], method: str) -> int:
        """Keep the agency codes the network issued (internal id → code)."""
        now = self._now()
        rows = [
            {
                "agency_id": agency_id,
                "internal_id": iid,
                "code": code,
                "method": method,
                "acquired_at": now,
            }
            for iid, code in codes.items()
        ]
        return self._replace(m.codes, agency_id, rows)

    def _replace(self, table: Table, agency_id: str, rows: list[dict[str, Any]]) -> int:
        """Replace the agency's rows of `table` with these internal ids by `rows`, at once."""
        with writing(self.engine) as conn:
            return _replace_in(conn, table, agency_id, rows)

    def code_of(self, agency_id: str, internal_id: str) -> str:
        found = read_once(self.engine, _CODE_SQL, (agency_id, internal_id))
        code = found[0][0] if found else None
        if code is None:
            raise NotFoundError(
                "agency.no_code",
                "The agency holds no agency code for this record.",
                "この記録の機関別符号を取得していません。",
                field="internal_id",
            )
        return str(code)

    def internal_ids(self, agency_id: str) -> list[str]:
        c = m.codes.c
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(c.internal_id).where(c.agency_id == agency_id).order_by(c.internal_id)
                ).scalars()
            )

    def record(self, agency_id: str, internal_id: str) -> dict[str, Any] | None:
        r = m.records.c
        with self.engine.connect() as conn:
            data = conn.execute(
                select(r.data).where(r.agency_id == agency_id, r.internal_id == internal_id)
            ).scalar_one_or_none()
        return None if data is None else dict(json.loads(data))

    # -- links and the review queue (I3) ---------------------------------------------------

    def store_link(
        self,
        agency_id: str,
        internal_id: str,
        number: str,
        *,
        method: str,
        policy: str,
        items: Mapping[str, str],
        notes: Sequence[str],
        operator: str,
    ) -> None:
        """Link a record to a number, with its provenance (replacing an earlier link)."""
        row = {
            "agency_id": agency_id,
            "internal_id": internal_id,
            "number_index": self.vault.index(number),
            "number_enc": self.vault.seal(number),
            "method": method,
            "policy": policy,
            "items": json.dumps(dict(items), sort_keys=True),
            "notes": ";".join(notes),
            "operator": operator,
            "linked_at": self._now(),
        }
        self._replace(m.links, agency_id, [row])

    def store_batch(
        self,
        agency_id: str,
        links: Sequence[Mapping[str, Any]],
        reviews: Sequence[Mapping[str, Any]],
    ) -> None:
        """A roll's results in one transaction (I8: all or nothing). `links` as
        :meth:`store_link` takes them (``internal_id``, ``number``, ``method``, ``policy``,
        ``items``, ``notes``, ``operator``); `reviews` as :meth:`queue_review` with
        ``candidates`` (numbers, best first) and ``score``. A member already waiting on the queue
        refuses the whole lot (``agency.member_pending``): nothing is written."""
        now = self._now()

        def sealed(number: str | None) -> bytes | None:
            return None if number is None else self.vault.seal(number)

        link_rows = [
            {
                "agency_id": agency_id,
                "internal_id": k["internal_id"],
                "number_index": self.vault.index(k["number"]),
                "number_enc": self.vault.seal(k["number"]),
                "method": k["method"],
                "policy": k["policy"],
                "items": json.dumps(dict(k["items"]), sort_keys=True),
                "notes": ";".join(k["notes"]),
                "operator": k["operator"],
                "linked_at": now,
            }
            for k in links
        ]
        review_rows = [
            {
                "agency_id": agency_id,
                "internal_id": k["internal_id"],
                "record": json.dumps(dict(k["record"]), ensure_ascii=False, sort_keys=True),
                "claimed_enc": sealed(k["claimed"]),
                "reasons": ";".join(k["reasons"]),
                "candidate_enc": sealed(k["candidates"][0] if k["candidates"] else None),
                "candidates_enc": sealed(";".join(k["candidates"]) or None),
                "score": k["score"],
                "state": "open",
                "created_at": now,
            }
            for k in reviews
        ]
        try:
            with writing(self.engine) as conn:
                _replace_in(conn, m.links, agency_id, link_rows)
                if review_rows:
                    conn.execute(m.reviews.insert(), review_rows)
        except IntegrityError:
            raise ConflictError(
                "agency.member_pending",
                "A member of the roll was put on the review queue while the roll was being "
                "linked; nothing was stored. Link the roll again.",
                "名簿の処理中に、名簿内の記録が審査待ちになりました。何も保存していません。"
                "もう一度実行してください。",
            ) from None

    def pending_members(self, agency_id: str) -> set[str]:
        """Internal ids of the agency's records waiting on the review queue."""
        v = m.reviews.c
        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    select(v.internal_id).where(v.agency_id == agency_id, v.state == "open")
                ).scalars()
            )

    def link_of(self, agency_id: str, internal_id: str) -> dict[str, Any] | None:
        """The record's link with its provenance; the number masked to its last four digits."""
        k = m.links.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(m.links).where(k.agency_id == agency_id, k.internal_id == internal_id)
            ).first()
        if row is None:
            return None
        return {
            "internal_id": row.internal_id,
            "individual_number": mask(self.vault.open(bytes(row.number_enc))),
            "method": row.method,
            "policy": row.policy,
            "items": json.loads(row.items),
            "notes": [n for n in row.notes.split(";") if n],
            "operator": row.operator,
            "linked_at": row.linked_at.isoformat(),
        }

    def queue_review(
        self,
        agency_id: str,
        internal_id: str,
        record: Mapping[str, Any],
        reasons: Sequence[str],
        claimed: str | None,
        candidate: str | None,
    ) -> int:
        """Put a record on the review queue; its id. Nothing on it resolves itself. A record
        already waiting on the queue is refused (``agency.member_pending``)."""
        try:
            with writing(self.engine) as conn:
                result = conn.execute(
                    m.reviews.insert().values(
                        agency_id=agency_id,
                        internal_id=internal_id,
                        record=json.dumps(dict(record), ensure_ascii=False, sort_keys=True),
                        claimed_enc=None if claimed is None else self.vault.seal(claimed),
                        reasons=";".join(reasons),
                        candidate_enc=None if candidate is None else self.vault.seal(candidate),
                        state="open",
                        created_at=self._now(),
                    )
                )
                key = result.inserted_primary_key
                assert key is not None
                return int(key[0])
        except IntegrityError:
            raise self._pending(agency_id, internal_id) from None

    def require_not_pending(self, agency_id: str, internal_id: str) -> None:
        """``agency.member_pending`` if the record waits on the review queue: decide it first."""
        if self.open_review_of(agency_id, internal_id) is not None:
            raise self._pending(agency_id, internal_id)

    def _pending(self, agency_id: str, internal_id: str) -> ConflictError:
        pending = self.open_review_of(agency_id, internal_id)
        return ConflictError(
            "agency.member_pending",
            f"This member is already on the review queue (item {pending}): decide it first.",
            f"この記録は審査待ちです（案件 {pending}）。先に判断してください。",
            field="internal_id",
            extra={"review_id": pending},
        )

    def open_reviews(
        self, agency_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The agency's open review items, oldest first; numbers masked. A page: items with a
        review id above `after`, at most `limit` of them (all when ``None``)."""
        v = m.reviews.c
        query = (
            select(m.reviews)
            .where(v.agency_id == agency_id, v.state == "open", v.review_id > after)
            .order_by(v.review_id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query if limit is None else query.limit(limit)).all()
        return [self._review_json(r, full=False) for r in rows]

    def count_open_reviews(self, agency_id: str) -> int:
        """How many review items the agency has open."""
        v = m.reviews.c
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(m.reviews)
                    .where(v.agency_id == agency_id, v.state == "open")
                ).scalar_one()
            )

    def open_review_of(self, agency_id: str, internal_id: str) -> int | None:
        """The id of the record's open review item, if it has one (the oldest)."""
        v = m.reviews.c
        with self.engine.connect() as conn:
            found = conn.execute(
                select(v.review_id)
                .where(v.agency_id == agency_id, v.internal_id == internal_id, v.state == "open")
                .order_by(v.review_id)
                .limit(1)
            ).scalar_one_or_none()
        return None if found is None else int(found)

    def review(self, agency_id: str, review_id: int) -> dict[str, Any]:
        """One review item (any state), numbers masked; the sealed numbers stay inside."""
        return self._review_json(self._review_row(agency_id, review_id), full=True)

    def _review_json(self, row: Any, *, full: bool) -> dict[str, Any]:
        """A review row as shown: numbers masked; with `full`, its state and decision too."""

        def masked(sealed: bytes | None) -> str | None:
            return None if sealed is None else mask(self.vault.open(bytes(sealed)))

        doc: dict[str, Any] = {
            "review_id": int(row.review_id),
            "internal_id": row.internal_id,
            "record": json.loads(row.record),
            "reasons": [x for x in row.reasons.split(";") if x],
            "claimed_number": masked(row.claimed_enc),
            "candidate_number": masked(row.candidate_enc),
            "candidates": (
                [mask(n) for n in self.vault.open(bytes(row.candidates_enc)).split(";")]
                if row.candidates_enc is not None
                else [c for c in [masked(row.candidate_enc)] if c is not None]
            ),
            "score": row.score,
            "created_at": row.created_at.isoformat(),
        }
        if full:
            doc.update(
                state=row.state,
                decided_by=row.decided_by,
                justification=row.justification,
                decided_at=None if row.decided_at is None else row.decided_at.isoformat(),
            )
        return doc

    def review_candidates(self, agency_id: str, review_id: int) -> list[str]:
        """The whole numbers of every candidate the item names, best first (never shown)."""
        return self._candidates_of(self._review_row(agency_id, review_id))

    def _candidates_of(self, row: Any) -> list[str]:
        if row.candidates_enc is not None:
            return self.vault.open(bytes(row.candidates_enc)).split(";")
        return [] if row.candidate_enc is None else [self.vault.open(bytes(row.candidate_enc))]

    def _review_row(self, agency_id: str, review_id: int) -> Any:
        v = m.reviews.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(m.reviews).where(v.agency_id == agency_id, v.review_id == review_id)
            ).first()
        if row is None:
            raise NotFoundError(
                "review.not_found",
                "No review item with this id at this agency.",
                "この機関にこの審査案件はありません。",
                field="review_id",
            )
        return row

    def decide_review(
        self,
        agency_id: str,
        review_id: int,
        *,
        link: bool,
        operator: str,
        justification: str,
        items: Mapping[str, str] | None = None,
        candidate: int = 1,
    ) -> dict[str, Any]:
        """Decide an open review item: link it to one of the candidates the evidence names
        (`candidate`, 1 = the best), or reject it. Needs an operator and a justification;
        recorded; decided once."""
        if not operator.strip() or not justification.strip():
            raise ValidationError(
                "review.justification",
                "A decision needs an operator and a justification.",
                "判断には担当者と理由が必要です。",
                field="justification",
            )
        v = m.reviews.c
        with writing(self.engine) as conn:
            row = conn.execute(
                select(m.reviews).where(v.agency_id == agency_id, v.review_id == review_id)
            ).first()
            if row is None:
                self._review_row(agency_id, review_id)  # raises review.not_found
            assert row is not None
            if row.state != "open":
                raise ConflictError(
                    "review.decided",
                    "This review item was already decided.",
                    "この審査案件は判断済みです。",
                )
            candidates = self._candidates_of(row)
            if link and not candidates:
                raise ConflictError(
                    "review.no_candidate",
                    "The evidence names no person: the record can only be rejected.",
                    "証拠が本人を特定していないため、紐付けはできません（却下のみ可能）。",
                )
            if link and not 1 <= candidate <= len(candidates):
                raise ValidationError(
                    "review.candidate",
                    f"This item has {len(candidates)} candidate(s): choose 1–{len(candidates)}.",
                    f"この案件の候補は {len(candidates)} 人です（1〜{len(candidates)} を指定）。",
                    field="candidate",
                )
            now = self._now()
            done = conn.execute(
                m.reviews.update()
                .where(v.review_id == review_id, v.state == "open")
                .values(
                    state="linked" if link else "rejected",
                    decided_by=operator,
                    justification=justification,
                    decided_at=now,
                )
            ).rowcount
            if done != 1:  # another reviewer decided it in between
                raise ConflictError(
                    "review.decided",
                    "This review item was already decided.",
                    "この審査案件は判断済みです。",
                )
            if link:
                number = candidates[candidate - 1]
                k = m.links.c
                conn.execute(
                    delete(m.links).where(
                        k.agency_id == agency_id, k.internal_id == row.internal_id
                    )
                )
                conn.execute(
                    m.links.insert().values(
                        agency_id=agency_id,
                        internal_id=row.internal_id,
                        number_index=self.vault.index(number),
                        number_enc=self.vault.seal(number),
                        method="review",
                        policy="review",
                        items=json.dumps(dict(items or {}), sort_keys=True),
                        notes=row.reasons,
                        operator=operator,
                        linked_at=now,
                    )
                )
        return self.review(agency_id, review_id)

    # -- the intermediate server ------------------------------------------------------------

    def refresh_copy(self, agency_id: str, kind: str) -> int:
        """Rebuild the intermediate server's copy from the records: every item the agency's
        kind may provide, for every record whose person has a code. Returns the rows written."""
        offered = set(ITEMS.get(kind, {}))
        now = self._now()
        r, c = m.records.c, m.codes.c
        with writing(self.engine) as conn:
            rows = conn.execute(
                select(r.internal_id, r.data, c.code)
                .join(
                    m.codes,
                    (c.agency_id == r.agency_id) & (c.internal_id == r.internal_id),
                )
                .where(r.agency_id == agency_id)
            ).all()
            copy = [
                {
                    "agency_id": agency_id,
                    "code": code,
                    "item": item,
                    "internal_id": iid,
                    "value": json.dumps(value, ensure_ascii=False, sort_keys=True),
                    "refreshed_at": now,
                }
                for iid, data, code in rows
                for item, value in json.loads(data).items()
                if item in offered
            ]
            conn.execute(delete(m.copies).where(m.copies.c.agency_id == agency_id))
            if copy:
                conn.execute(m.copies.insert(), copy)
        return len(copy)

    def update_items(
        self, agency_id: str, changes: Mapping[str, Mapping[str, Any]], kind: str
    ) -> int:
        """Change some items of existing records (internal id → item → value) and carry them
        into the intermediate server's copy at once; records the agency does not hold are
        ignored. Returns the records changed."""
        offered = set(ITEMS.get(kind, {}))
        now = self._now()
        r, c, k = m.records.c, m.codes.c, m.copies.c
        changed = 0
        with writing(self.engine) as conn:
            for iid, items in changes.items():
                data = conn.execute(
                    select(r.data).where(r.agency_id == agency_id, r.internal_id == iid)
                ).scalar_one_or_none()
                if data is None:
                    continue
                merged = {**json.loads(data), **items}
                conn.execute(
                    m.records.update()
                    .where(r.agency_id == agency_id, r.internal_id == iid)
                    .values(
                        data=json.dumps(merged, ensure_ascii=False, sort_keys=True), updated_at=now
                    )
                )
                code = conn.execute(
                    select(c.code).where(c.agency_id == agency_id, c.internal_id == iid)
                ).scalar_one_or_none()
                for item, value in items.items():
                    if code is None or item not in offered:
                        continue
                    conn.execute(
                        delete(m.copies).where(
                            k.agency_id == agency_id, k.code == code, k.item == item
                        )
                    )
                    conn.execute(
                        m.copies.insert().values(
                            agency_id=agency_id,
                            code=code,
                            item=item,
                            internal_id=iid,
                            value=json.dumps(value, ensure_ascii=False, sort_keys=True),
                            refreshed_at=now,
                        )
                    )
                changed += 1
        return changed

    def provide(self, agency_id: str, code: str, item: str) -> Provision:
        """The intermediate server's answer to the network: by the agency's own code."""
        found = read_once(self.engine, _COPY_SQL, (agency_id, code, item))
        return Provision(True, json.loads(found[0][0])) if found else Provision(False)

    # -- the network client -----------------------------------------------------------------

    def sign_request(
        self, agency_id: str, internal_id: str, task: str, provider: str, item: str
    ) -> SignedRequest:
        """A request about the person of record `internal_id`, named by the agency's own code
        and signed with the agency's key."""
        req = ExchangeRequest.new(
            agency_id, task, provider, item, self.code_of(agency_id, internal_id), self._now()
        )
        data = req.to_bytes()
        return data, self._key(agency_id).sign(SIGNING_CONTEXT + data)

    def _now(self) -> dt.datetime:
        return self._clock.now().astimezone(dt.UTC)


def _replace_in(conn: Connection, table: Table, agency_id: str, rows: list[dict[str, Any]]) -> int:
    """Within `conn`'s transaction: the agency's rows of `table` with these internal ids
    replaced by `rows`."""
    c = table.c
    ids = [r["internal_id"] for r in rows]
    for i in range(0, len(ids), _CHUNK):
        conn.execute(
            delete(table).where(c.agency_id == agency_id, c.internal_id.in_(ids[i : i + _CHUNK]))
        )
    if rows:
        conn.execute(table.insert(), rows)
    return len(rows)

"""The ledger role's log: records appended for good, a signed tree head for every append.

- **Storage** (the ledger's own database): ``leaves`` (index, leaf hash, time), ``payloads``
  (the record, erasable while its leaf stays), ``heads`` (every signed tree head).
- **Appends** run in one write transaction under the log's lock (PostgreSQL: a transaction
  advisory lock; SQLite: ``BEGIN IMMEDIATE``). Inside it the process's in-memory tree first
  catches up with leaves other processes appended, then the new leaves, their payloads and the
  signed head of the new size are written together. If the transaction fails, the in-memory
  tree is cut back, so it never holds a leaf the database does not. Indices are dense and each is
  written once (primary key): no leaf is lost or duplicated, whatever the concurrency.
- **The tree** (:class:`~mynumber.ledger.merkle.MerkleTree`) is rebuilt from the stored leaf
  hashes when the service starts and checked against the newest signed head.
- **The key**: Ed25519, its 32-byte seed the ledger's keystore secret ``ledger-sth``.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Engine, Row

from mynumber.clock import Clock
from mynumber.db import is_postgres, writing
from mynumber.keystore import Keystore
from mynumber.ledger import models as m
from mynumber.ledger.heads import SignedTreeHead, log_id, sign_head, verify_head
from mynumber.ledger.merkle import MerkleTree, leaf_hash

__all__ = ["LedgerService"]

_LOCK_KEY = 0x6C65646765720001  # "ledger" ‖ 1: the PostgreSQL advisory lock of appends
_READ_CHUNK = 100_000


class LedgerIntegrityError(RuntimeError):
    """The stored leaves do not give the root the log signed: the store was altered."""


class LedgerService:
    def __init__(self, engine: Engine, keystore: Keystore, clock: Clock) -> None:
        self.engine = engine
        self._key = Ed25519PrivateKey.from_private_bytes(keystore.secret("ledger-sth"))
        self._log_id = log_id(self._key.public_key())
        self._clock = clock
        self._tree = MerkleTree()
        self._lock = threading.Lock()
        with self.engine.connect() as conn:
            # The head first: leaves appended after it was read only extend the tree, whereas
            # a head read after the leaves could be newer than them (another process appending).
            head = self._newest_head(conn)
            self._catch_up(conn)
        if head is not None and (
            head.tree_size > self._tree.size
            or self._tree.root(head.tree_size) != head.root_hash
            or not verify_head(head, self.public_key)
        ):
            raise LedgerIntegrityError("the stored leaves do not match the newest signed head")

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    # -- appends ---------------------------------------------------------------------------

    def append(
        self, records: Sequence[bytes], *, unique: bool = False
    ) -> tuple[list[int], SignedTreeHead]:
        """Append `records` (their bytes are the leaves' data); their indices and the signed
        head of the tree that holds them.

        With `unique`, a record whose leaf the log already holds is not appended again: its
        index is the existing leaf's. Checked under the log's lock, so two writers recording
        the same record at once (a retry racing the original, a reconcile racing a request
        in flight) leave one leaf."""
        if not records:
            raise ValueError("nothing to append")
        # UTC throughout: SQLite keeps the wall time only, so every stored time is UTC.
        with self._lock, writing(self.engine) as conn:
            if is_postgres(self.engine):
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            # Read under the lock, so heads are signed in time order across writers.
            now = self._clock.now().astimezone(dt.UTC)
            self._catch_up(conn)
            if not unique:
                return self._append(conn, records, now)
            known = self._known(conn, records)
            fresh = [r for r in dict.fromkeys(records) if leaf_hash(r) not in known]
            if fresh:
                indices, head = self._append(conn, fresh, now)
                known.update((leaf_hash(r), i) for r, i in zip(fresh, indices, strict=True))
            else:
                newest = self._newest_head(conn)
                if newest is None:
                    raise LedgerIntegrityError("the log holds leaves but no signed head")
                head = newest
            return [known[leaf_hash(r)] for r in records], head

    def _known(self, conn: Connection, records: Sequence[bytes]) -> dict[bytes, int]:
        """Leaf hash → first index, for those of `records` the log already holds."""
        lv = m.leaves.c
        rows = conn.execute(
            select(lv.leaf_hash, func.min(lv.idx))
            .where(lv.leaf_hash.in_({leaf_hash(r) for r in records}))
            .group_by(lv.leaf_hash)
        ).all()
        return {bytes(h): int(i) for h, i in rows}

    def _append(
        self, conn: Connection, records: Sequence[bytes], now: dt.datetime
    ) -> tuple[list[int], SignedTreeHead]:
        """Append inside the caller's write transaction, which holds the log's lock."""
        start = self._tree.size
        try:
            hashes = [leaf_hash(r) for r in records]
            for h in hashes:
                self._tree.append_hash(h)
            size = self._tree.size
            head = sign_head(self._key, size, self._tree.root(), int(now.timestamp() * 1000))
            # Through SQLAlchemy, not the raw driver: stored times must have the one text
            # form SQLite compares them in.
            conn.execute(
                m.leaves.insert(),
                [
                    {"idx": start + i, "leaf_hash": h, "appended_at": now}
                    for i, h in enumerate(hashes)
                ],
            )
            conn.execute(
                m.payloads.insert(),
                [{"idx": start + i, "body": r, "erased_at": None} for i, r in enumerate(records)],
            )
            conn.execute(
                m.heads.insert().values(
                    tree_size=size,
                    timestamp_ms=head.timestamp_ms,
                    root_hash=head.root_hash,
                    signature=head.signature,
                )
            )
        except BaseException:
            self._tree.truncate(start)
            raise
        return list(range(start, start + len(records))), head

    def _catch_up(self, conn: Connection) -> None:
        """Append to the in-memory tree the leaves other processes stored since."""
        c = m.leaves.c
        while True:
            rows = conn.execute(
                select(c.idx, c.leaf_hash)
                .where(c.idx >= self._tree.size)
                .order_by(c.idx)
                .limit(_READ_CHUNK)
            ).all()
            for idx, h in rows:
                if idx != self._tree.size:
                    raise LedgerIntegrityError(f"leaf {self._tree.size} is missing")
                self._tree.append_hash(bytes(h))
            if len(rows) < _READ_CHUNK:
                return

    # -- reading ---------------------------------------------------------------------------

    def _newest_head(self, conn: Connection) -> SignedTreeHead | None:
        h = m.heads.c
        row = conn.execute(select(m.heads).order_by(h.tree_size.desc()).limit(1)).first()
        return None if row is None else self._head_of(row)

    def _head_of(self, row: Row[Any]) -> SignedTreeHead:
        return SignedTreeHead(
            self._log_id,
            int(row.timestamp_ms),
            int(row.tree_size),
            bytes(row.root_hash),
            bytes(row.signature),
        )

    def head(self, tree_size: int | None = None) -> SignedTreeHead | None:
        """The newest signed head, or the one of `tree_size`."""
        with self.engine.connect() as conn:
            if tree_size is None:
                return self._newest_head(conn)
            row = conn.execute(select(m.heads).where(m.heads.c.tree_size == tree_size)).first()
        return None if row is None else self._head_of(row)

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        with self._lock:
            self._sync()
            return self._tree.inclusion_proof(index, tree_size)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        with self._lock:
            self._sync()
            return self._tree.consistency_proof(first, second)

    def leaf_hash(self, index: int) -> bytes:
        with self._lock:
            self._sync()
            return self._tree.leaf(index)

    def index_of(self, hash_: bytes) -> int | None:
        """The index of the first leaf with hash `hash_`, if the log holds one."""
        lv = m.leaves.c
        with self.engine.connect() as conn:
            idx = conn.execute(
                select(func.min(lv.idx)).where(lv.leaf_hash == hash_)
            ).scalar_one_or_none()
        return None if idx is None else int(idx)

    def proof_bundle(self, index: int, earlier_size: int | None = None) -> dict[str, Any]:
        """What `mynumber verify-proof` checks offline (:mod:`mynumber.ledger.bundle`): the
        record at `index` (its data, or only its leaf hash once erased), its inclusion path in
        the newest signed tree, and, with `earlier_size`, that head's consistency with the
        signed head of that earlier size."""
        head = self.head()
        if head is None or not 0 <= index < head.tree_size:
            raise ValueError("no signed tree holds that record")
        doc = self._bundles([index], head)[0]
        if earlier_size is not None:
            earlier = self.head(earlier_size)
            if earlier is None:
                raise ValueError("the log signed no head of that size")
            doc["earlier_head"] = earlier.to_json()
            doc["consistency_path"] = [
                h.hex() for h in self.consistency_proof(earlier_size, head.tree_size)
            ]
        return doc

    def proof_bundles(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """One bundle per index, all against the same (newest) signed head."""
        head = self.head()
        if not indices:
            return []
        if head is None or not all(0 <= i < head.tree_size for i in indices):
            raise ValueError("no signed tree holds that record")
        return self._bundles(indices, head)

    def _bundles(self, indices: Sequence[int], head: SignedTreeHead) -> list[dict[str, Any]]:
        p = m.payloads.c
        with self.engine.connect() as conn:
            bodies = dict(conn.execute(select(p.idx, p.body).where(p.idx.in_(list(indices)))).all())
        key = self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        with self._lock:
            self._sync()
            out = []
            for index in indices:
                doc: dict[str, Any] = {
                    "log_public_key": key,
                    "tree_head": head.to_json(),
                    "leaf_index": index,
                    "inclusion_path": [
                        h.hex() for h in self._tree.inclusion_proof(index, head.tree_size)
                    ],
                }
                body = bodies.get(index)
                if body is None:
                    doc["leaf_hash"] = self._tree.leaf(index).hex()
                else:
                    doc["leaf_data"] = bytes(body).hex()
                out.append(doc)
        return out

    def entries(self, start: int, end: int) -> list[dict[str, Any]]:
        """Leaves [start, end) with their records (None once erased), for auditors who rebuild
        the tree themselves."""
        lv, p = m.leaves.c, m.payloads.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(lv.idx, lv.leaf_hash, p.body)
                .join(m.payloads, p.idx == lv.idx)
                .where(lv.idx >= start, lv.idx < end)
                .order_by(lv.idx)
            ).all()
        return [
            {
                "index": int(i),
                "leaf_hash": bytes(h).hex(),
                "data": None if b is None else bytes(b).hex(),
            }
            for i, h, b in rows
        ]

    def audit(self) -> list[str]:
        """Check the whole store from scratch, trusting nothing in memory: every leaf is there
        once, every record hashes to its leaf, every signed head verifies and its root is the
        root of the stored leaves at its size. Each finding is a sentence naming what is wrong
        (an empty list: the store is intact)."""
        findings: list[str] = []
        tree = MerkleTree()
        lv, p = m.leaves.c, m.payloads.c
        with self.engine.connect() as conn:
            rows = conn.execution_options(yield_per=50_000).execute(
                select(lv.idx, lv.leaf_hash, p.body)
                .outerjoin(m.payloads, p.idx == lv.idx)
                .order_by(lv.idx)
            )
            for idx, h, body in rows:
                if idx != tree.size:
                    findings.append(f"leaf {tree.size} is missing")
                    break
                tree.append_hash(bytes(h))
                if body is not None and leaf_hash(bytes(body)) != bytes(h):
                    findings.append(f"record {idx} does not hash to its leaf")
            heads = conn.execution_options(yield_per=50_000).execute(
                select(m.heads).order_by(m.heads.c.tree_size)
            )
            last_ts = -1
            for row in heads:  # streamed: a log signs a head per append
                head = self._head_of(row)
                if not verify_head(head, self.public_key):
                    findings.append(f"the head of size {head.tree_size} has a bad signature")
                if head.tree_size > tree.size or tree.root(head.tree_size) != head.root_hash:
                    findings.append(f"the head of size {head.tree_size} does not match the leaves")
                if head.timestamp_ms < last_ts:
                    findings.append(
                        f"the head of size {head.tree_size} is older than the one before"
                    )
                last_ts = head.timestamp_ms
        return findings

    def payload(self, index: int) -> bytes | None:
        """The record at `index`, or None once erased."""
        p = m.payloads.c
        with self.engine.connect() as conn:
            body = conn.execute(select(p.body).where(p.idx == index)).scalar_one_or_none()
        return None if body is None else bytes(body)

    def erase_before(self, cutoff: dt.datetime) -> int:
        """Erase the payloads of records appended before `cutoff` (retention: 7 years); their
        leaves stay, so every proof still verifies. Returns how many were erased."""
        lv, p = m.leaves.c, m.payloads.c
        with writing(self.engine) as conn:
            old = select(lv.idx).where(lv.appended_at < cutoff.astimezone(dt.UTC)).scalar_subquery()
            return conn.execute(
                m.payloads.update()
                .where(p.idx.in_(old), p.body.is_not(None))
                .values(body=None, erased_at=self._clock.now().astimezone(dt.UTC))
            ).rowcount

    def _sync(self) -> None:
        with self.engine.connect() as conn:
            self._catch_up(conn)

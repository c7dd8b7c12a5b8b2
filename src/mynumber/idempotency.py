"""Idempotency keys (I8): a POST replayed with the same key returns the first result, and a key
reused for a different request is refused. The record is written in the same transaction as the
change it guards, in the role's own database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from mynumber.db import writing
from mynumber.errors import ConflictError, MynumberError

__all__ = ["IdempotentRunner", "idempotency_table", "request_digest"]


def idempotency_table(metadata: MetaData) -> Table:
    return Table(
        "idempotency_keys",
        metadata,
        Column("scope", String(120), primary_key=True),
        Column("key", String(200), primary_key=True),
        Column("request_digest", String(64), nullable=False),
        Column("status", Integer, nullable=False),
        Column("response", JSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )


def request_digest(payload: Any) -> str:
    """A digest of a request body, stable across key order."""
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


Work = Callable[[Connection], tuple[int, dict[str, Any]]]


class IdempotentRunner:
    """Runs a write at most once per (scope, key) in `engine`'s database."""

    def __init__(self, engine: Engine, table: Table, now: Callable[[], dt.datetime]) -> None:
        self._engine = engine
        self._table = table
        self._now = now

    def _stored(
        self, conn: Connection, scope: str, key: str, digest: str
    ) -> tuple[int, Any] | None:
        t = self._table
        row = conn.execute(
            select(t.c.request_digest, t.c.status, t.c.response).where(
                t.c.scope == scope, t.c.key == key
            )
        ).first()
        if row is None:
            return None
        if row.request_digest != digest:
            raise ConflictError(
                "idempotency.key_reused",
                "This Idempotency-Key was already used for a different request.",
                "この Idempotency-Key は別の要求で使用済みです。",
                field="Idempotency-Key",
            )
        return int(row.status), row.response

    def run(
        self, scope: str, key: str | None, payload: Any, work: Work
    ) -> tuple[int, dict[str, Any], bool]:
        """(status, body, replayed): `work` runs in one transaction with the key's record."""
        if key is None:
            with writing(self._engine) as conn:
                status, body = work(conn)
            return status, body, False
        digest = request_digest(payload)
        try:
            with writing(self._engine) as conn:
                stored = self._stored(conn, scope, key, digest)
                if stored is not None:
                    return stored[0], stored[1], True
                status, body = work(conn)
                conn.execute(
                    self._table.insert().values(
                        scope=scope,
                        key=key,
                        request_digest=digest,
                        status=status,
                        response=body,
                        created_at=self._now(),
                    )
                )
            return status, body, False
        except (IntegrityError, MynumberError):
            # A concurrent request with the same key may have won the race — its record was
            # committed while this one waited on a lock or a unique index, and this one then
            # failed on what the other had done: answer as the winner did.
            with self._engine.connect() as conn:
                stored = self._stored(conn, scope, key, digest)
            if stored is None:
                raise
            return stored[0], stored[1], True

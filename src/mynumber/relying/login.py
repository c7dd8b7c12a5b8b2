"""Challenge–response login with the user-authentication certificate (利用者証明).

The verifier issues a random 32-byte nonce that lives :data:`CHALLENGE_TTL`; the card signs it
after its 4-digit PIN (:meth:`mynumber.card.Chip.authenticate`); :meth:`LoginVerifier.verify`
consumes the nonce — atomically, once, whatever happens next — then checks the certificate
(chain, the user-authentication kind, revocation) and the signature, and returns only the
certificate's serial number and end of validity. The certificate holds no personal data; who
the serial belongs to is the platform's to know (J-LIS keeps serial → resident), not the SDK's.

A replayed nonce is ``login.nonce_used``, a late one ``login.nonce_expired``, one never issued
``login.nonce_unknown``. Challenges live in a :class:`ChallengeStore`: in memory for one
process, or in SQL (:class:`SqlChallengeStore`) for servers with several workers, where the
consumption is one ``UPDATE … WHERE used_at IS NULL AND expires_at > now`` whose row count says
who won: of any number of concurrent attempts exactly one succeeds.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import secrets
import threading
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    select,
    update,
)
from sqlalchemy.engine import Engine

from mynumber.clock import Clock
from mynumber.db import writing
from mynumber.relying.errors import relying_error
from mynumber.relying.verify import CertificateInput, StatusSource, Trust, verify_authentication

__all__ = [
    "CHALLENGE_TTL",
    "NONCE_SIZE",
    "Challenge",
    "ChallengeStore",
    "Consumed",
    "LoginResult",
    "LoginVerifier",
    "MemoryChallengeStore",
    "SqlChallengeStore",
    "challenge_table",
]

CHALLENGE_TTL = dt.timedelta(seconds=120)
NONCE_SIZE = 32
PURGE_AFTER = dt.timedelta(hours=1)
"""Used and expired challenges are kept this long after expiry (a replay then reads "used")."""


class Consumed(enum.StrEnum):
    """What consuming a nonce found: ``ok`` (this caller won) or the refusal's code."""

    OK = "ok"
    UNKNOWN = "login.nonce_unknown"
    USED = "login.nonce_used"
    EXPIRED = "login.nonce_expired"


def _utc(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC)


def _key(nonce: bytes) -> str:
    # Stored as a digest: whoever reads the table cannot answer a challenge still pending.
    return hashlib.sha256(nonce).hexdigest()


class ChallengeStore(Protocol):
    def add(self, key: str, expires_at: dt.datetime) -> None:
        """Remember a new challenge (its nonce's digest) until `expires_at`."""
        ...

    def consume(self, key: str, now: dt.datetime) -> Consumed:
        """Mark the challenge used, atomically: only one caller ever gets ``Consumed.OK``."""
        ...

    def purge(self, before: dt.datetime) -> int:
        """Forget challenges that expired before `before`; returns how many."""
        ...


class MemoryChallengeStore:
    """Challenges in this process's memory (one worker, or tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[dt.datetime, bool]] = {}

    def add(self, key: str, expires_at: dt.datetime) -> None:
        with self._lock:
            self._items[key] = (_utc(expires_at), False)

    def consume(self, key: str, now: dt.datetime) -> Consumed:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return Consumed.UNKNOWN
            expires_at, used = item
            if used:
                return Consumed.USED
            if _utc(now) >= expires_at:
                return Consumed.EXPIRED
            self._items[key] = (expires_at, True)
            return Consumed.OK

    def purge(self, before: dt.datetime) -> int:
        cutoff = _utc(before)
        with self._lock:
            old = [k for k, (exp, _) in self._items.items() if exp < cutoff]
            for k in old:
                del self._items[k]
        return len(old)


def challenge_table(metadata: MetaData, name: str = "login_challenges") -> Table:
    """The table a :class:`SqlChallengeStore` keeps its challenges in (times in UTC)."""
    return Table(
        name,
        metadata,
        Column("nonce_digest", String(64), primary_key=True),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Column("used_at", DateTime(timezone=True)),
        Index(f"ix_{name}_expires", "expires_at"),
    )


class SqlChallengeStore:
    """Challenges in a SQL table shared by every worker (SQLite or PostgreSQL).

    Pass the application's `engine` and a table made by :func:`challenge_table` (from its
    migrations), or let :meth:`create` make one for a database of the relying party's own.
    """

    def __init__(self, engine: Engine, table: Table) -> None:
        self._engine = engine
        self._t = table
        c = table.c
        # Built once: whoever's UPDATE changes the row first wins; the statement is the whole
        # check (known, unused, unexpired) so that two workers cannot both pass it.
        self._consume = (
            update(table)
            .where(
                c.nonce_digest == bindparam("key"),
                c.used_at.is_(None),
                c.expires_at > bindparam("now"),
            )
            .values(used_at=bindparam("used"))
        )

    @classmethod
    def create(cls, engine: Engine, name: str = "login_challenges") -> SqlChallengeStore:
        """A store whose table is created in `engine`'s database if missing."""
        table = challenge_table(MetaData(), name)
        table.create(engine, checkfirst=True)
        return cls(engine, table)

    def add(self, key: str, expires_at: dt.datetime) -> None:
        with writing(self._engine) as conn:
            conn.execute(self._t.insert().values(nonce_digest=key, expires_at=_utc(expires_at)))

    def consume(self, key: str, now: dt.datetime) -> Consumed:
        t, at = self._t, _utc(now)
        with writing(self._engine) as conn:
            won = conn.execute(self._consume, {"key": key, "now": at, "used": at}).rowcount
            if won == 1:
                return Consumed.OK
            row = conn.execute(select(t.c.used_at).where(t.c.nonce_digest == key)).first()
        if row is None:
            return Consumed.UNKNOWN
        return Consumed.USED if row.used_at is not None else Consumed.EXPIRED

    def purge(self, before: dt.datetime) -> int:
        with writing(self._engine) as conn:
            return conn.execute(delete(self._t).where(self._t.c.expires_at < _utc(before))).rowcount


@dataclass(frozen=True, slots=True)
class Challenge:
    nonce: bytes
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class LoginResult:
    """Who logged in, as far as a certificate says: its serial number and end of validity."""

    serial: int
    not_after: dt.datetime


class LoginVerifier:
    """Issues login challenges and verifies the card's answers (module docstring)."""

    def __init__(
        self,
        store: ChallengeStore,
        *,
        trust: Trust,
        status: StatusSource,
        clock: Clock,
        ttl: dt.timedelta = CHALLENGE_TTL,
    ) -> None:
        self._store = store
        self._trust = trust
        self._status = status
        self._clock = clock
        self._ttl = ttl

    def challenge(self) -> Challenge:
        """A fresh single-use nonce, valid for the TTL; old challenges are purged on the way."""
        now = self._clock.now()
        self._store.purge(now - PURGE_AFTER)
        nonce = secrets.token_bytes(NONCE_SIZE)
        expires_at = _utc(now + self._ttl)
        self._store.add(_key(nonce), expires_at)
        return Challenge(nonce, expires_at)

    def verify(self, nonce: bytes, certificate: CertificateInput, signature: bytes) -> LoginResult:
        """The certificate's serial once the nonce is consumed and the answer verifies; raises a
        ``login.*``, ``pki.*`` or ``ocsp.*`` error otherwise. The nonce is spent either way."""
        now = self._clock.now()
        consumed = self._store.consume(_key(nonce), now)
        if consumed is not Consumed.OK:
            raise relying_error(consumed.value, field="nonce")
        serial, not_after = verify_authentication(
            nonce, signature, certificate, trust=self._trust, status=self._status, at=now
        )
        return LoginResult(serial, not_after)

"""J-LIS as a service: resident-code pool, number generation, the identity mirror and its queries.

Other roles call these methods (in one process) or the HTTP routes in :mod:`mynumber.jlis.api`.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from mynumber.clock import Clock
from mynumber.db import bulk_insert, is_postgres, read_once, writing
from mynumber.errors import NotFoundError
from mynumber.idempotency import IdempotentRunner
from mynumber.identity import (
    FiveItems,
    ItemReport,
    RegisteredIdentity,
    compare,
    keys_of,
)
from mynumber.jlis import models as m
from mynumber.jlis.generator import NumberGenerator
from mynumber.jlis.pki import IdentityChange
from mynumber.municipality.interface import IdentityEvent, IdentitySnapshot, MunicipalityFeed
from mynumber.numbers import DEFAULT_RESIDENT_CODE_SCHEME, mask
from mynumber.vault import NumberVault

__all__ = ["JlisService", "QueryResult", "VerifyReport"]

_SEP = "\x1f"
# resident_code, status, 3 current keys, 3 earlier keys, sealed active number
_CANDIDATES_SQL = (
    "SELECT i.resident_code, i.status, i.name_key, i.kana_key, i.address_key,"
    " i.earlier_name_keys, i.earlier_kana_keys, i.earlier_address_keys, n.number_enc"
    " FROM identities i LEFT JOIN numbers n"
    " ON n.resident_code = i.resident_code AND n.status = 'active'"
    " WHERE i.birth_date = ? AND i.sex = ?"
    # Only people whose kana is the claim's now, or who have had another kana (checked below).
    " AND (i.kana_key = ? OR i.earlier_kana_keys <> '')"
)
_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Outcome of a five-item query: exactly one person, or none, or ambiguous — never a guess."""

    outcome: str  # found | none | ambiguous
    resident_code: str | None = None
    individual_number: str | None = None
    status: str | None = None
    candidates: int = 0


@dataclass(frozen=True, slots=True)
class VerifyReport:
    number_status: str  # active | retired | unknown
    items: tuple[ItemReport, ...]
    all_match: bool
    all_match_or_earlier: bool


def _snapshot_json(s: IdentitySnapshot) -> str:
    snap = {f: getattr(s, f) for f in IdentitySnapshot.__dataclass_fields__}
    snap["birth_date"] = s.birth_date.isoformat()
    return json.dumps(snap, ensure_ascii=False, separators=(",", ":"))


def _split(keys: str) -> tuple[str, ...]:
    return tuple(k for k in keys.split(_SEP) if k)


def _with_earlier(earlier: str, old_key: str, new_key: str) -> str:
    if old_key == new_key or not old_key or old_key in _split(earlier):
        return earlier
    return f"{earlier}{_SEP}{old_key}" if earlier else old_key


class JlisService:
    """The J-LIS role: owns its tables in `engine` and its keys in the keystore."""

    def __init__(
        self, engine: Engine, vault: NumberVault, generator: NumberGenerator, clock: Clock
    ) -> None:
        self.engine = engine
        self._vault = vault
        self._gen = generator
        self._clock = clock
        self._runner = IdempotentRunner(engine, m.idempotency, clock.now)
        self._sqlite = engine.dialect.name == "sqlite"
        self._change_listeners: list[Callable[[Connection, Sequence[IdentityChange]], object]] = []

    def on_identity_change(
        self, listener: Callable[[Connection, Sequence[IdentityChange]], object]
    ) -> None:
        """Call `listener(conn, changes)` inside the sync transaction that applies changes to
        people the mirror already knew (J-LIS's PKI revokes certificates there)."""
        self._change_listeners.append(listener)

    # -- resident record codes -------------------------------------------------------------

    def allocate_resident_codes(self, municipality_code: str, count: int) -> list[str]:
        """`count` fresh resident record codes from the national pool (random, never reused)."""
        out: list[str] = []
        while len(out) < count:
            want = count - len(out)
            batch: set[str] = set()
            while len(batch) < want:
                body = f"{secrets.randbelow(9 * 10**9) + 10**9:010d}"
                batch.add(body + DEFAULT_RESIDENT_CODE_SCHEME.check_digit(body))
            out.extend(self.reserve_resident_codes(municipality_code, batch))
        return out

    def reserve_resident_codes(self, municipality_code: str, codes: Iterable[str]) -> list[str]:
        """Record `codes` as in use; returns those that were new (the others already existed)."""
        codes = list(dict.fromkeys(codes))
        now = self._clock.now()
        new: list[str] = []
        with writing(self.engine) as conn:
            for i in range(0, len(codes), _CHUNK):
                part = codes[i : i + _CHUNK]
                seen = set(
                    conn.execute(
                        select(m.resident_codes.c.code).where(m.resident_codes.c.code.in_(part))
                    ).scalars()
                )
                fresh = [c for c in part if c not in seen]
                bulk_insert(
                    conn,
                    m.resident_codes,
                    [
                        {"code": c, "municipality_code": municipality_code, "reserved_at": now}
                        for c in fresh
                    ],
                )
                new.extend(fresh)
        return new

    # -- individual numbers ----------------------------------------------------------------

    def assign_number(self, resident_code: str) -> str:
        """The person's individual number: the same one every time it is asked for."""
        return self.assign_numbers([resident_code])[resident_code]

    def assign_numbers(self, resident_codes: Sequence[str]) -> dict[str, str]:
        """Numbers for many resident codes at once; existing ones are returned unchanged."""
        result: dict[str, str] = {}
        codes = list(dict.fromkeys(resident_codes))
        for attempt in range(5):
            try:
                with writing(self.engine) as conn:
                    for i in range(0, len(codes), _CHUNK):
                        result.update(self._assign_chunk(conn, codes[i : i + _CHUNK]))
                return result
            except (IntegrityError, self.engine.dialect.loaded_dbapi.IntegrityError):
                # Another writer assigned one of these numbers concurrently; read it back. (The
                # driver's own error arrives unwrapped from bulk_insert's COPY / executemany.)
                result.clear()
                if attempt == 4:
                    raise
        return result

    def _assign_chunk(self, conn: Connection, codes: list[str]) -> dict[str, str]:
        n = m.numbers
        result: dict[str, str] = {}
        generations: dict[str, int] = {}
        rows = conn.execute(
            select(n.c.resident_code, n.c.status, n.c.generation, n.c.number_enc).where(
                n.c.resident_code.in_(codes)
            )
        )
        for code, status, generation, enc in rows:
            if status == "active":
                result[code] = self._vault.open(enc)
            generations[code] = max(generation, generations.get(code, -1))
        missing = [c for c in codes if c not in result]
        if not missing:
            return result
        # First candidates for the whole chunk, then one query for which are taken.
        proposed = {
            c: self._gen.generate(c, generations.get(c, -1) + 1, lambda _: False) for c in missing
        }
        index = {c: self._vault.index(num) for c, num in proposed.items()}
        taken = set(
            conn.execute(select(n.c.number_index).where(n.c.number_index.in_(list(index.values()))))
            .scalars()
            .all()
        )
        batch_taken: set[bytes] = set()

        def is_taken(number: str) -> bool:
            ix = self._vault.index(number)
            return (
                ix in batch_taken
                or conn.execute(select(n.c.number_index).where(n.c.number_index == ix)).first()
                is not None
            )

        now = self._clock.now()
        inserts: list[dict[str, Any]] = []
        for code in missing:
            generation = generations.get(code, -1) + 1
            number = proposed[code]
            ix = index[code]
            if ix in taken or ix in batch_taken:
                number = self._gen.generate(code, generation, is_taken)
                ix = self._vault.index(number)
            batch_taken.add(ix)
            inserts.append(
                {
                    "number_index": ix,
                    "number_enc": self._vault.seal(number),
                    "resident_code": code,
                    "generation": generation,
                    "status": "active",
                    "issued_at": now,
                }
            )
            result[code] = number
        bulk_insert(conn, n, inserts)
        return result

    def number_owners(self, numbers: Sequence[str]) -> dict[str, str]:
        """For each of `numbers` already registered (active or retired), the resident code it is
        registered to."""
        return {n: rc for n, (_s, rc) in self.number_statuses(numbers).items() if rc is not None}

    def active_owners(self, numbers: Sequence[str]) -> dict[str, str]:
        """For each of `numbers` that is active, the resident code it belongs to. This is what
        J-LIS hands the network when an agency obtains its codes: the resident record code,
        never the number (I5)."""
        return {
            n: rc
            for n, (status, rc) in self.number_statuses(numbers).items()
            if status == "active" and rc is not None
        }

    def adopt_numbers(self, pairs: Mapping[str, str]) -> dict[str, str]:
        """Register numbers issued before this system (migration of a legacy register).

        Returns the resident codes that were refused, with the reason code; the rest are
        registered (or were already, to the same person)."""
        n = m.numbers
        refused: dict[str, str] = {}
        now = self._clock.now()
        with writing(self.engine) as conn:
            items = list(pairs.items())
            for i in range(0, len(items), _CHUNK):
                part = items[i : i + _CHUNK]
                codes = [c for c, _ in part]
                active = dict(
                    conn.execute(
                        select(n.c.resident_code, n.c.number_index).where(
                            n.c.resident_code.in_(codes), n.c.status == "active"
                        )
                    ).all()
                )
                ixs = [self._vault.index(num) for _, num in part]
                owners = dict(
                    conn.execute(
                        select(n.c.number_index, n.c.resident_code).where(n.c.number_index.in_(ixs))
                    ).all()
                )
                inserts = []
                for (code, number), ix in zip(part, ixs, strict=True):
                    owner = owners.get(ix)
                    if owner is not None and owner != code:
                        refused[code] = "individual_number.belongs_to_other"
                    elif code in active and active[code] != ix:
                        refused[code] = "individual_number.differs_from_registered"
                    elif owner is None:
                        inserts.append(
                            {
                                "number_index": ix,
                                "number_enc": self._vault.seal(number),
                                "resident_code": code,
                                "generation": 0,
                                "status": "active",
                                "issued_at": now,
                            }
                        )
                        owners[ix] = code
                if inserts:
                    bulk_insert(conn, n, inserts)
        return refused

    def change_number(
        self, resident_code: str, reason: str = "leaked", idempotency_key: str | None = None
    ) -> tuple[int, dict[str, Any], bool]:
        """Retire the person's number for ever and issue a new one (番号法 第7条第2項).

        Returns (status, body with the new number masked, replayed)."""
        n = m.numbers

        def work(conn: Connection) -> tuple[int, dict[str, Any]]:
            updated = conn.execute(
                update(n)
                .where(n.c.resident_code == resident_code, n.c.status == "active")
                .values(status="retired", retired_at=self._clock.now(), retired_reason=reason)
            ).rowcount
            if not updated:
                raise NotFoundError(
                    "jlis.number_not_found",
                    "No active individual number is registered for this resident record code.",
                    "この住民票コードに有効な個人番号はありません。",
                    field="resident_code",
                )
            number = self._assign_chunk(conn, [resident_code])[resident_code]
            return 200, {"resident_code": resident_code, "individual_number": mask(number)}

        request = {"resident_code": resident_code, "reason": reason}
        return self._runner.run("jlis:number-change", idempotency_key, request, work)

    def number_status(self, number: str) -> tuple[str, str | None]:
        """('active' | 'retired' | 'unknown', resident code)."""
        n = m.numbers
        with self.engine.connect() as conn:
            row = conn.execute(
                select(n.c.status, n.c.resident_code).where(
                    n.c.number_index == self._vault.index(number)
                )
            ).first()
        return ("unknown", None) if row is None else (row.status, row.resident_code)

    def number_statuses(self, numbers: Sequence[str]) -> dict[str, tuple[str, str | None]]:
        """:meth:`number_status` of many numbers at once (a roll's claims): every number given
        is answered, ``("unknown", None)`` when J-LIS never issued it."""
        n = m.numbers
        by_index = {self._vault.index(num): num for num in dict.fromkeys(numbers)}
        out: dict[str, tuple[str, str | None]] = dict.fromkeys(by_index.values(), ("unknown", None))
        keys = list(by_index)
        with self.engine.connect() as conn:
            for i in range(0, len(keys), _CHUNK):
                rows = conn.execute(
                    select(n.c.number_index, n.c.status, n.c.resident_code).where(
                        n.c.number_index.in_(keys[i : i + _CHUNK])
                    )
                )
                for ix, status, code in rows:
                    out[by_index[bytes(ix)]] = (str(status), str(code))
        return out

    def identity_batches(self, size: int = 50_000) -> Iterator[list[dict[str, Any]]]:
        """The whole identity mirror, `size` people at a time in resident-code order: current
        items, normalised keys, earlier keys and status — the evidence of batch linkage. No
        numbers."""
        t = m.identities
        after = ""
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(t)
                    .where(t.c.resident_code > after)
                    .order_by(t.c.resident_code)
                    .limit(size)
                ).all()
            if not rows:
                return
            yield [
                {
                    "resident_code": r.resident_code,
                    "status": r.status,
                    "name": f"{r.family_name}{r.given_name}",
                    "name_kana": f"{r.family_name_kana}{r.given_name_kana}",
                    "family_name_kana": r.family_name_kana,
                    "birth_date": r.birth_date,
                    "sex": r.sex,
                    "address": r.address,
                    "name_key": r.name_key,
                    "kana_key": r.kana_key,
                    "address_key": r.address_key,
                    "earlier_name_keys": list(_split(r.earlier_name_keys)),
                    "earlier_kana_keys": list(_split(r.earlier_kana_keys)),
                    "earlier_address_keys": list(_split(r.earlier_address_keys)),
                }
                for r in rows
            ]
            after = rows[-1].resident_code

    # -- identity mirror -------------------------------------------------------------------

    def sync(self, feed: MunicipalityFeed, batch: int = 100_000) -> int:
        """Pull every municipality's new identity events into the mirror; returns events applied."""
        applied = 0
        for code in feed.municipality_codes():
            while n := self.sync_once(feed, code, batch):
                applied += n
        return applied

    def sync_once(self, feed: MunicipalityFeed, municipality_code: str, batch: int) -> int:
        """Pull and apply at most `batch` new events of one municipality; 0 when up to date."""
        with self.engine.connect() as conn:
            after = conn.execute(
                select(m.feed_cursors.c.last_seq).where(
                    m.feed_cursors.c.municipality_code == municipality_code
                )
            ).scalar_one_or_none()
        events = feed.identity_events(municipality_code, after or 0, batch)
        if not events:
            return 0
        try:
            applied = self.ingest(municipality_code, events)
        except IntegrityError:
            # Another process created this municipality's cursor at the same moment: retry.
            applied = self.ingest(municipality_code, events)
        # Another process may have applied them meanwhile; report progress all the same.
        return applied or len(events)

    def ingest(self, municipality_code: str, events: Sequence[IdentityEvent]) -> int:
        """Apply events in order, exactly once each (the cursor moves in the same transaction)."""
        c = m.feed_cursors
        with writing(self.engine) as conn:
            q = select(c.c.last_seq).where(c.c.municipality_code == municipality_code)
            if is_postgres(self.engine):
                # Two first syncs may race to create the cursor: let one insert it, then lock it.
                conn.execute(
                    pg_insert(c)
                    .values(municipality_code=municipality_code, last_seq=0)
                    .on_conflict_do_nothing()
                )
                q = q.with_for_update()
            last = conn.execute(q).scalar_one_or_none()
            if last is None:
                conn.execute(c.insert().values(municipality_code=municipality_code, last_seq=0))
                last = 0
            todo = [e for e in events if e.seq > last]
            if not todo:
                return 0
            self._apply(conn, todo)
            conn.execute(
                update(c)
                .where(c.c.municipality_code == municipality_code)
                .values(last_seq=max(e.seq for e in todo))
            )
        return len(todo)

    def _apply(self, conn: Connection, events: Sequence[IdentityEvent]) -> None:
        t = m.identities
        codes = list({e.resident_code for e in events})
        current: dict[str, dict[str, Any]] = {}
        for i in range(0, len(codes), _CHUNK):
            for found in conn.execute(
                select(t).where(t.c.resident_code.in_(codes[i : i + _CHUNK]))
            ):
                current[found.resident_code] = dict(found._mapping)
        inserts: dict[str, dict[str, Any]] = {}
        history: list[dict[str, Any]] = []
        changes: list[IdentityChange] = []
        for e in events:
            s = e.identity
            keys = keys_of(
                f"{s.family_name}{s.given_name}",
                f"{s.family_name_kana}{s.given_name_kana}",
                s.address,
            )
            old = current.get(e.resident_code) or inserts.get(e.resident_code)
            row: dict[str, Any] = {
                "resident_code": e.resident_code,
                "municipality_code": e.municipality_code,
                "family_name": s.family_name,
                "given_name": s.given_name,
                "family_name_kana": s.family_name_kana,
                "given_name_kana": s.given_name_kana,
                "birth_date": s.birth_date,
                "sex": s.sex,
                "postal_code": s.postal_code,
                "address": s.address,
                "status": s.status,
                "name_key": keys.name,
                "kana_key": keys.name_kana,
                "address_key": keys.address,
                "earlier_name_keys": "",
                "earlier_kana_keys": "",
                "earlier_address_keys": "",
                "updated_seq": e.seq,
            }
            if old is not None and e.seq <= old["updated_seq"]:
                # Older than what the mirror holds (another municipality's stream was applied
                # first, e.g. the move-in after this move-out): its values are earlier values.
                for item in ("name", "kana", "address"):
                    old[f"earlier_{item}_keys"] = _with_earlier(
                        old[f"earlier_{item}_keys"], row[f"{item}_key"], old[f"{item}_key"]
                    )
            else:
                if old is not None:
                    for item in ("name", "kana", "address"):
                        row[f"earlier_{item}_keys"] = _with_earlier(
                            old[f"earlier_{item}_keys"], old[f"{item}_key"], row[f"{item}_key"]
                        )
                    changes.append(IdentityChange(e.resident_code, old, row, e.abroad))
                if e.resident_code in current:
                    current[e.resident_code] = row
                else:
                    inserts[e.resident_code] = row
            history.append(
                {
                    "resident_code": e.resident_code,
                    "municipality_code": e.municipality_code,
                    "seq": e.seq,
                    "kind": e.kind,
                    "occurred_on": e.occurred_on,
                    "snapshot": e.snapshot_json or _snapshot_json(s),
                }
            )
        if inserts:
            bulk_insert(conn, t, list(inserts.values()))
        changed = list(current.values())  # every loaded row was touched by an event
        if changed:
            cols = [col.name for col in t.columns if col.name != "resident_code"]
            stmt = (
                update(t)
                .where(t.c.resident_code == bindparam("b_resident_code"))
                .values({col: bindparam(f"b_{col}") for col in cols})
            )
            conn.execute(stmt, [{f"b_{k}": v for k, v in r.items()} for r in changed])
        bulk_insert(conn, m.identity_history, history)
        if changes:
            for listener in self._change_listeners:
                listener(conn, changes)

    # -- queries for authorised agencies ---------------------------------------------------

    def _candidates(self, birth_date: dt.date, sex: int, kana_key: str) -> list[Any]:
        """Everyone born that day with that sex, with their keys and sealed active number.

        The hot path of every agency query: one prebuilt statement (:func:`read_once`)."""
        birth: object = birth_date.isoformat() if self._sqlite else birth_date
        return read_once(self.engine, _CANDIDATES_SQL, (birth, sex, kana_key))

    def _matches(self, claim: FiveItems) -> list[Any]:
        keys = keys_of(claim.name, claim.name_kana, claim.address)
        return [
            r
            for r in self._candidates(claim.birth_date, claim.sex, keys.name_kana)
            if (keys.name == r[2] or keys.name in _split(r[5]))
            and (keys.name_kana == r[3] or keys.name_kana in _split(r[6]))
            and (keys.address == r[4] or keys.address in _split(r[7]))
        ]

    def five_item_matches(self, claim: FiveItems) -> list[str]:
        """Resident codes of everyone whose registered items match all five — the evidence an
        agency's linkage weighs (the query itself answers only found / none / ambiguous)."""
        return sorted({str(r[0]) for r in self._matches(claim)})

    def active_numbers(self, resident_codes: Sequence[str]) -> dict[str, str]:
        """The active number of each of these people (for a link, or a reviewer's candidate)."""
        n = m.numbers
        codes = list(dict.fromkeys(resident_codes))
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(codes), _CHUNK):
                for rc, enc in conn.execute(
                    select(n.c.resident_code, n.c.number_enc).where(
                        n.c.resident_code.in_(codes[i : i + _CHUNK]), n.c.status == "active"
                    )
                ):
                    out[rc] = self._vault.open(enc)
        return out

    def five_item_query(self, claim: FiveItems) -> QueryResult:
        """The one person whose registered items match all five (current or earlier values)."""
        matches = self._matches(claim)
        if not matches:
            return QueryResult("none")
        if len(matches) > 1:
            return QueryResult("ambiguous", candidates=len(matches))
        code, status, *_, sealed = matches[0]
        number = None if sealed is None else self._vault.open(bytes(sealed))
        return QueryResult("found", code, number, status, 1)

    def _active_number(self, conn: Connection, resident_code: str) -> str | None:
        n = m.numbers
        enc = conn.execute(
            select(n.c.number_enc).where(n.c.resident_code == resident_code, n.c.status == "active")
        ).scalar_one_or_none()
        return None if enc is None else self._vault.open(enc)

    def registered(
        self, resident_codes: Sequence[str]
    ) -> dict[str, tuple[RegisteredIdentity, str]]:
        """The mirror's identity (current items and earlier keys) and status ("active",
        "moved_out", "deceased", …) of each of these people it knows."""
        t = m.identities
        out: dict[str, tuple[RegisteredIdentity, str]] = {}
        codes = list(dict.fromkeys(resident_codes))
        with self.engine.connect() as conn:
            for i in range(0, len(codes), _CHUNK):
                for row in conn.execute(
                    select(t).where(t.c.resident_code.in_(codes[i : i + _CHUNK]))
                ):
                    person = RegisteredIdentity(
                        FiveItems(
                            f"{row.family_name}{row.given_name}",
                            f"{row.family_name_kana}{row.given_name_kana}",
                            row.birth_date,
                            row.sex,
                            row.address,
                        ),
                        _split(row.earlier_name_keys),
                        _split(row.earlier_kana_keys),
                        _split(row.earlier_address_keys),
                    )
                    out[row.resident_code] = (person, row.status)
        return out

    def verify(self, number: str, claim: FiveItems) -> VerifyReport:
        """A per-item report of a claimed number's registered identity against `claim`."""
        status, code = self.number_status(number)
        if code is None:
            return VerifyReport("unknown", (), False, False)
        found = self.registered([code]).get(code)
        if found is None:
            return VerifyReport(status, (), False, False)
        person, _status = found
        result = compare(claim, person)
        # A retired number never verifies, whatever its items say (it may have leaked).
        active = status == "active"
        return VerifyReport(
            status,
            result.items,
            active and result.all_match,
            active and result.all_match_or_earlier,
        )

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func

        with self.engine.connect() as conn:
            return {
                "identities": conn.execute(
                    select(func.count()).select_from(m.identities)
                ).scalar_one(),
                "numbers": conn.execute(select(func.count()).select_from(m.numbers)).scalar_one(),
            }

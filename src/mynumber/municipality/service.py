"""The municipality role as a service: the resident register and its events.

Routes, the CLI and other roles call these methods; nothing outside this package touches its
tables. Individual numbers come from J-LIS through :class:`NumberAuthority`.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import func, select, text, update
from sqlalchemy.engine import Connection, Engine, Row

from mynumber.clock import Clock
from mynumber.dates import parse_date
from mynumber.db import is_postgres, writing
from mynumber.errors import ConflictError, NotFoundError, ValidationError
from mynumber.idempotency import IdempotentRunner
from mynumber.municipality import models as m
from mynumber.municipality.domain import (
    EventKind,
    Status,
    check_transition,
    clean_kana,
    clean_name,
    clean_text,
    notification,
    validate_resident,
)
from mynumber.municipality.interface import IdentityEvent, IdentitySnapshot
from mynumber.municipality.seals import end_for_closed_record
from mynumber.numbers import mask, parse_municipality
from mynumber.vault import NumberVault

__all__ = ["MunicipalityService", "NumberAuthority", "lock_event_stream", "snapshot_of"]

CREATING = (EventKind.BIRTH, EventKind.MOVE_IN)
CHANGING = (
    EventKind.MOVE_WITHIN,
    EventKind.MOVE_OUT,
    EventKind.DEATH,
    EventKind.NAME_CHANGE,
    EventKind.HOUSEHOLD_CHANGE,
)


class NumberAuthority(Protocol):
    """What the municipality needs of J-LIS (番号法 第8条)."""

    def allocate_resident_codes(self, municipality_code: str, count: int) -> list[str]: ...

    def reserve_resident_codes(self, municipality_code: str, codes: Sequence[str]) -> list[str]: ...

    def assign_numbers(self, resident_codes: Sequence[str]) -> dict[str, str]: ...

    def adopt_numbers(self, pairs: Mapping[str, str]) -> dict[str, str]: ...

    def number_owners(self, numbers: Sequence[str]) -> dict[str, str]: ...


_SNAPSHOT_FIELDS = (
    "family_name",
    "given_name",
    "family_name_kana",
    "given_name_kana",
    "birth_date",
    "sex",
    "postal_code",
    "address",
    "status",
)


def snapshot_of(row: Mapping[Any, Any]) -> str:
    """The identity items of a resident row as the event feed carries them (no number)."""
    snap = {k: row[k] for k in _SNAPSHOT_FIELDS}
    snap["birth_date"] = snap["birth_date"].isoformat()
    return json.dumps(snap, ensure_ascii=False, separators=(",", ":"))


def lock_event_stream(conn: Connection, municipality_code: str) -> None:
    """Serialise writers of one municipality's events until the transaction ends.

    Event numbers come from one sequence; without this a transaction holding seq 10 could commit
    after one holding seq 11, and a reader of the feed that had already passed 11 would never see
    10. SQLite needs nothing: its write transactions (BEGIN IMMEDIATE) are already serial."""
    if is_postgres(conn.engine):
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"events:{municipality_code}"}
        )


def _occurred(payload: Mapping[str, Any], field: str, today: dt.date) -> dt.date:
    value = payload.get(field)
    return parse_date(str(value), field=field) if value else today


class MunicipalityService:
    def __init__(
        self, engine: Engine, vault: NumberVault, numbers: NumberAuthority, clock: Clock
    ) -> None:
        self.engine = engine
        self.vault = vault
        self.numbers = numbers
        self.clock = clock
        self._runner = IdempotentRunner(engine, m.idempotency, clock.now)
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every committed change (J-LIS pulls the feed then)."""
        self._listeners.append(listener)

    def notify(self) -> None:
        for listener in self._listeners:
            listener()

    # -- municipalities --------------------------------------------------------------------

    def create_municipality(self, code: str, prefecture: str, name: str) -> None:
        code = parse_municipality(code, field="code")
        with writing(self.engine) as conn:
            exists = conn.execute(
                select(m.municipalities.c.code).where(m.municipalities.c.code == code)
            ).first()
            if exists is None:
                conn.execute(
                    m.municipalities.insert().values(code=code, prefecture=prefecture, name=name)
                )

    def municipality_codes(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(m.municipalities.c.code)).scalars())

    def list_municipalities(self) -> list[dict[str, Any]]:
        r = m.residents
        with self.engine.connect() as conn:
            counts: dict[str, int] = dict(
                conn.execute(
                    select(r.c.municipality_code, func.count())
                    .where(r.c.status == Status.ACTIVE)
                    .group_by(r.c.municipality_code)
                ).all()
            )
            rows = conn.execute(select(m.municipalities).order_by(m.municipalities.c.code)).all()
        return [
            {
                "code": row.code,
                "prefecture": row.prefecture,
                "name": row.name,
                "residents": counts.get(row.code, 0),
            }
            for row in rows
        ]

    def require_municipality(self, conn: Connection, code: str) -> str:
        code = parse_municipality(code, field="municipality_code")
        found = conn.execute(
            select(m.municipalities.c.code).where(m.municipalities.c.code == code)
        ).first()
        if found is None:
            raise NotFoundError(
                "municipality.not_found",
                f"No municipality {code} in this deployment.",
                f"市区町村 {code} はこの環境に登録されていません。",
                field="municipality_code",
            )
        return code

    # -- the feed J-LIS reads ----------------------------------------------------------------

    def identity_events(
        self, municipality_code: str, after_seq: int, limit: int
    ) -> list[IdentityEvent]:
        e = m.events
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    e.c.seq, e.c.resident_code, e.c.kind, e.c.occurred_on, e.c.snapshot, e.c.detail
                )
                .where(e.c.municipality_code == municipality_code, e.c.seq > after_seq)
                .order_by(e.c.seq)
                .limit(limit)
            ).all()
        out = []
        for row in rows:
            s = json.loads(row.snapshot)
            s["birth_date"] = dt.date.fromisoformat(s["birth_date"])
            out.append(
                IdentityEvent(
                    row.seq,
                    municipality_code,
                    row.resident_code,
                    row.kind,
                    row.occurred_on,
                    IdentitySnapshot(**s),
                    row.snapshot,
                    abroad=row.kind == EventKind.MOVE_OUT
                    and bool(json.loads(row.detail).get("abroad")),
                )
            )
        return out

    def events(
        self, municipality_code: str, after_seq: int = 0, limit: int = 100
    ) -> list[dict[str, Any]]:
        e = m.events
        with self.engine.connect() as conn:
            code = self.require_municipality(conn, municipality_code)
            rows = conn.execute(
                select(e)
                .where(e.c.municipality_code == code, e.c.seq > after_seq)
                .order_by(e.c.seq)
                .limit(limit)
            ).all()
        return [
            {
                "seq": row.seq,
                "resident_code": row.resident_code,
                "kind": row.kind,
                "occurred_on": row.occurred_on.isoformat(),
                "notified_on": row.notified_on.isoformat(),
                "late": row.late,
                "detail": json.loads(row.detail),
            }
            for row in rows
        ]

    # -- events ----------------------------------------------------------------------------

    def _insert_event(
        self,
        conn: Connection,
        code: str,
        resident_code: str,
        kind: EventKind,
        occurred_on: dt.date,
        notified_on: dt.date,
        late: bool,
        row: Mapping[Any, Any],
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        seq = conn.execute(
            m.events.insert()
            .values(
                municipality_code=code,
                resident_code=resident_code,
                kind=kind,
                occurred_on=occurred_on,
                notified_on=notified_on,
                late=late,
                snapshot=snapshot_of(row),
                detail=json.dumps(detail or {}, ensure_ascii=False, default=str),
                recorded_at=self.clock.now(),
            )
            .returning(m.events.c.seq)
        ).scalar_one()
        conn.execute(
            update(m.residents)
            .where(
                m.residents.c.municipality_code == code,
                m.residents.c.resident_code == resident_code,
            )
            .values(updated_seq=seq)
        )
        return int(seq)

    def _resident(self, conn: Connection, code: str, resident_code: str) -> Row[Any] | None:
        r = m.residents
        return conn.execute(
            select(r).where(r.c.municipality_code == code, r.c.resident_code == resident_code)
        ).first()

    def record(
        self,
        municipality_code: str,
        kind: EventKind,
        payload: Mapping[str, Any],
        *,
        resident_code: str | None = None,
        idempotency_key: str | None = None,
        scope: str = "",
    ) -> tuple[int, dict[str, Any], bool]:
        """Record one event (creating or changing a resident) atomically and at most once per key.

        Returns (HTTP status, body, replayed)."""
        today = self.clock.today()
        municipality_code = parse_municipality(municipality_code, field="municipality_code")
        if kind not in CREATING and not resident_code:
            raise ValidationError(
                "field.required",
                "resident_code is required.",
                "住民票コードは必須です。",
                field="resident_code",
            )
        request = {"payload": dict(payload), "resident_code": resident_code, "kind": str(kind)}

        def work(conn: Connection) -> tuple[int, dict[str, Any]]:
            code = self.require_municipality(conn, municipality_code)
            lock_event_stream(conn, code)
            if kind in CREATING:
                return self._create(conn, code, kind, payload, today)
            assert resident_code
            return self._change(conn, code, kind, resident_code, payload, today)

        status, body, replayed = self._runner.run(
            f"{scope}:municipality:{municipality_code}:{kind}", idempotency_key, request, work
        )
        self.ensure_numbers(municipality_code, [body["resident_code"]])
        self.notify()
        body = {**body, "resident": self.get_resident(municipality_code, body["resident_code"])}
        return status, body, replayed

    def _create(
        self,
        conn: Connection,
        code: str,
        kind: EventKind,
        payload: Mapping[str, Any],
        today: dt.date,
    ) -> tuple[int, dict[str, Any]]:
        items = validate_resident(payload, today)
        if items.municipality_code and items.municipality_code != code:
            raise ValidationError(
                "municipality.mismatch",
                "municipality_code differs from the municipality in the path.",
                "municipality_code がパスの市区町村と一致しません。",
                field="municipality_code",
            )
        occurred = (
            items.birth_date if kind is EventKind.BIRTH else _occurred(payload, "moved_on", today)
        )
        note = notification(
            kind, occurred, _occurred(payload, "notified_on", today), today, items.birth_date
        )
        resident_code = items.resident_code
        existing = self._resident(conn, code, resident_code) if resident_code else None
        check_transition(kind, Status(existing.status) if existing else None)
        if resident_code and kind is EventKind.MOVE_IN:
            self._refuse_if_active_elsewhere(conn, code, resident_code)
        if kind is EventKind.BIRTH and resident_code:
            raise ValidationError(
                "birth.resident_code",
                "A newborn gets a new resident record code; do not give one.",
                "出生の場合、住民票コードは新たに付番されます。指定しないでください。",
                field="resident_code",
            )
        household = items.household_id
        r = m.residents
        if household is None:
            if kind is EventKind.BIRTH:
                raise ValidationError(
                    "household.required",
                    "A birth joins an existing household: give household_id.",
                    "出生の場合は世帯番号（household_id）を指定してください。",
                    field="household_id",
                )
            household = f"{code}-{secrets.token_hex(5)}"
        elif kind is EventKind.BIRTH:
            found = conn.execute(
                select(r.c.id).where(
                    r.c.municipality_code == code,
                    r.c.household_id == household,
                    r.c.status == Status.ACTIVE,
                )
            ).first()
            if found is None:
                raise NotFoundError(
                    "household.not_found",
                    "No active household with this id.",
                    "この世帯番号の世帯はありません。",
                    field="household_id",
                )
        if resident_code is None:
            resident_code = self.numbers.allocate_resident_codes(code, 1)[0]
        else:
            self.numbers.reserve_resident_codes(code, [resident_code])
        values: dict[str, Any] = {
            "municipality_code": code,
            "resident_code": resident_code,
            "family_name": items.family_name,
            "given_name": items.given_name,
            "family_name_kana": items.family_name_kana,
            "given_name_kana": items.given_name_kana,
            "birth_date": items.birth_date,
            "sex": items.sex,
            "postal_code": items.postal_code,
            "address": items.address,
            "household_id": household,
            "relationship": items.relationship if items.household_id else "世帯主",
            "alphabet_name": items.alphabet_name,
            "nationality": items.nationality,
            "residence_status": items.residence_status,
            "period_of_stay_end": items.period_of_stay_end,
            "domicile": items.domicile,
            "domicile_head": items.domicile_head,
            "status": Status.ACTIVE,
            "status_since": occurred,
            "address_since": occurred,
            "updated_seq": 0,
        }
        if existing is not None:  # a former resident moving back in: the 除票 becomes current again
            conn.execute(update(r).where(r.c.id == existing.id).values(values))
        else:
            conn.execute(r.insert().values(values))
        seq = self._insert_event(
            conn,
            code,
            resident_code,
            kind,
            occurred,
            note.notified_on,
            note.late,
            values,
            {"deadline": note.deadline},
        )
        return 201, self._event_body(resident_code, seq, note.late, note.deadline)

    def _refuse_if_active_elsewhere(self, conn: Connection, code: str, resident_code: str) -> None:
        """A person is a resident of one municipality at a time: 転入 needs the 転出 first."""
        r = m.residents
        other = conn.execute(
            select(r.c.municipality_code).where(
                r.c.resident_code == resident_code,
                r.c.municipality_code != code,
                r.c.status == Status.ACTIVE,
            )
        ).first()
        if other is not None:
            raise ConflictError(
                "resident.active_elsewhere",
                "This person is still an active resident of another municipality: record the "
                "move-out there first.",
                "この方は他の市区町村の住民として登録されたままです。先に転出を届け出てください。",
                field="resident_code",
            )

    @staticmethod
    def _event_body(resident_code: str, seq: int, late: bool, deadline: dt.date) -> dict[str, Any]:
        return {
            "resident_code": resident_code,
            "seq": seq,
            "late": late,
            "deadline": deadline.isoformat(),
        }

    def _change(
        self,
        conn: Connection,
        code: str,
        kind: EventKind,
        resident_code: str,
        payload: Mapping[str, Any],
        today: dt.date,
    ) -> tuple[int, dict[str, Any]]:
        row = self._resident(conn, code, resident_code)
        new_status = check_transition(kind, Status(row.status) if row else None)
        assert row is not None
        occurred = _occurred(payload, "occurred_on", today)
        note = notification(
            kind, occurred, _occurred(payload, "notified_on", today), today, row.birth_date
        )
        values: dict[str, Any] = {}
        detail: dict[str, Any] = {"deadline": note.deadline}
        if kind is EventKind.MOVE_WITHIN:
            items = validate_resident({**dict(row._mapping), **_stringify(row), **payload}, today)
            if items.address == row.address:
                raise ValidationError(
                    "move.same_address",
                    "The new address is the same as the current one.",
                    "新しい住所が現住所と同じです。",
                    field="address",
                )
            values = {
                "address": items.address,
                "postal_code": items.postal_code,
                "address_since": occurred,
            }
            detail["previous_address"] = row.address
        elif kind is EventKind.MOVE_OUT:
            detail["destination"] = clean_text(
                str(payload.get("destination") or ""), "destination", 200, required=True
            )
            detail["abroad"] = payload.get("abroad") is True
        elif kind is EventKind.NAME_CHANGE:
            values = {
                "family_name": clean_name(str(payload.get("family_name") or ""), "family_name"),
                # A given name (or its kana) left out is unchanged (e.g. a marriage changes the
                # family name only); given as "" it is cleared.
                "given_name": clean_name(
                    str(_given(payload, "given_name", row.given_name)), "given_name", required=False
                ),
                "family_name_kana": clean_kana(
                    str(payload.get("family_name_kana") or ""), "family_name_kana"
                ),
                "given_name_kana": clean_kana(
                    str(_given(payload, "given_name_kana", row.given_name_kana)),
                    "given_name_kana",
                    required=False,
                ),
            }
            detail["previous_name"] = f"{row.family_name} {row.given_name}".strip()
        elif kind is EventKind.HOUSEHOLD_CHANGE:
            household = clean_text(
                str(payload.get("household_id") or ""), "household_id", 40, required=True
            )
            relationship = clean_name(
                str(payload.get("relationship") or ""), "relationship", limit=40
            )
            values = {"household_id": household, "relationship": relationship}
            detail["previous_household_id"] = row.household_id
        if new_status != row.status:
            values.update(status=new_status, status_since=occurred)
        r = m.residents
        conn.execute(update(r).where(r.c.id == row.id).values(values))
        if new_status != Status.ACTIVE:  # the record closes: so does its seal registration
            ended = end_for_closed_record(conn, code, resident_code, str(kind), self.clock.now())
            if ended is not None:
                detail["seal_ended"] = ended
        merged = {**dict(row._mapping), **values}
        seq = self._insert_event(
            conn, code, resident_code, kind, occurred, note.notified_on, note.late, merged, detail
        )
        return 200, self._event_body(resident_code, seq, note.late, note.deadline)

    # -- numbers ---------------------------------------------------------------------------

    def ensure_numbers(
        self, municipality_code: str, resident_codes: Sequence[str] | None = None
    ) -> int:
        """Give every resident (or those named) without a number the one J-LIS has for them.

        Safe to repeat: J-LIS returns the same number for the same resident code, so a crash
        between J-LIS and here is repaired by calling this again."""
        r = m.residents
        q = select(r.c.resident_code).where(
            r.c.municipality_code == municipality_code, r.c.number_index.is_(None)
        )
        if resident_codes is not None:
            q = q.where(r.c.resident_code.in_(list(resident_codes)))
        with self.engine.connect() as conn:
            missing = list(conn.execute(q).scalars())
        if not missing:
            return 0
        assigned = self.numbers.assign_numbers(missing)
        today = self.clock.today()
        with writing(self.engine) as conn:
            lock_event_stream(conn, municipality_code)
            for rc, number in assigned.items():
                done = conn.execute(
                    update(r)
                    .where(
                        r.c.municipality_code == municipality_code,
                        r.c.resident_code == rc,
                        r.c.number_index.is_(None),
                    )
                    .values(
                        number_index=self.vault.index(number), number_enc=self.vault.seal(number)
                    )
                ).rowcount
                if done:
                    row = self._resident(conn, municipality_code, rc)
                    assert row is not None
                    self._insert_event(
                        conn,
                        municipality_code,
                        rc,
                        EventKind.NUMBER_ASSIGNED,
                        today,
                        today,
                        False,
                        row._mapping,
                        {"number": mask(number)},
                    )
        return len(assigned)

    def refresh_number(self, resident_code: str) -> int:
        """Take up a number J-LIS changed (a leaked number): every record of the person gets the
        new one, with a number_changed event. Returns how many records changed."""
        r = m.residents
        number = self.numbers.assign_numbers([resident_code])[resident_code]
        ix = self.vault.index(number)
        today = self.clock.today()
        changed = 0
        with writing(self.engine) as conn:
            rows = conn.execute(select(r).where(r.c.resident_code == resident_code)).all()
            for code in sorted({row.municipality_code for row in rows}):
                lock_event_stream(conn, code)
            for row in rows:
                if row.number_index == ix:
                    continue
                conn.execute(
                    update(r)
                    .where(r.c.id == row.id)
                    .values(number_index=ix, number_enc=self.vault.seal(number))
                )
                self._insert_event(
                    conn,
                    row.municipality_code,
                    resident_code,
                    EventKind.NUMBER_CHANGED,
                    today,
                    today,
                    False,
                    row._mapping,
                    {"number": mask(number)},
                )
                changed += 1
        return changed

    # -- reads -----------------------------------------------------------------------------

    def view(self, row: Mapping[Any, Any], *, whole_number: bool = False) -> dict[str, Any]:
        number = self.vault.open(row["number_enc"]) if row["number_enc"] else None
        shown = number if whole_number else (mask(number) if number else None)
        return {
            "resident_code": row["resident_code"],
            "individual_number": shown,
            "municipality_code": row["municipality_code"],
            "family_name": row["family_name"],
            "given_name": row["given_name"],
            "family_name_kana": row["family_name_kana"],
            "given_name_kana": row["given_name_kana"],
            "birth_date": row["birth_date"].isoformat(),
            "sex": row["sex"],
            "postal_code": row["postal_code"],
            "address": row["address"],
            "household_id": row["household_id"],
            "relationship": row["relationship"],
            "alphabet_name": row["alphabet_name"],
            "nationality": row["nationality"],
            "residence_status": row["residence_status"],
            "period_of_stay_end": row["period_of_stay_end"].isoformat()
            if row["period_of_stay_end"]
            else None,
            "domicile": row["domicile"],
            "domicile_head": row["domicile_head"],
            "status": row["status"],
            "status_since": row["status_since"].isoformat(),
            "address_since": row["address_since"].isoformat(),
            "updated_seq": row["updated_seq"],
        }

    def get_resident(self, municipality_code: str, resident_code: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            code = self.require_municipality(conn, municipality_code)
            row = self._resident(conn, code, resident_code)
        if row is None:
            raise NotFoundError(
                "resident.not_found",
                "No such resident in this municipality.",
                "該当する住民が見つかりません。",
                field="resident_code",
            )
        return self.view(row._mapping)

    def list_residents(
        self,
        municipality_code: str,
        *,
        kana_prefix: str = "",
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        r = m.residents
        with self.engine.connect() as conn:
            code = self.require_municipality(conn, municipality_code)
            q = select(r).where(r.c.municipality_code == code)
            if kana_prefix:
                prefix = clean_kana(kana_prefix, "kana_prefix").replace(" ", "")
                q = q.where(r.c.family_name_kana.startswith(prefix, autoescape=True))
            if status:
                q = q.where(r.c.status == Status(status))
            total = conn.execute(select(func.count()).select_from(q.subquery())).scalar_one()
            rows = conn.execute(q.order_by(r.c.id).limit(limit).offset(offset)).all()
        return {"total": total, "items": [self.view(row._mapping) for row in rows]}

    def household_of(self, resident_code: str) -> tuple[str | None, list[str]]:
        """The household of a resident (any municipality of this deployment): its id and the
        resident codes of its other members still on the register."""
        r = m.residents.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(r.municipality_code, r.household_id).where(r.resident_code == resident_code)
            ).first()
            if row is None or not row.household_id:
                return None, []
            others = conn.execute(
                select(r.resident_code).where(
                    r.municipality_code == row.municipality_code,
                    r.household_id == row.household_id,
                    r.resident_code != resident_code,
                    r.status == Status.ACTIVE,
                )
            ).scalars()
            return str(row.household_id), sorted(others)

    def household_keys(self) -> dict[str, str]:
        """Every resident's household, as ``municipality_code:household_id``: the evidence of
        batch linkage (which, like :meth:`household_of`, counts only members still active)."""
        r = m.residents.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(r.resident_code, r.municipality_code, r.household_id).where(
                    r.household_id != ""
                )
            )
            return {str(rc): f"{mc}:{h}" for rc, mc, h in rows}

    def household(self, municipality_code: str, household_id: str) -> list[dict[str, Any]]:
        r = m.residents
        with self.engine.connect() as conn:
            code = self.require_municipality(conn, municipality_code)
            rows = conn.execute(
                select(r)
                .where(r.c.municipality_code == code, r.c.household_id == household_id)
                .order_by(r.c.id)
            ).all()
        if not rows:
            raise NotFoundError(
                "household.not_found",
                "No household with this id.",
                "この世帯番号の世帯はありません。",
                field="household_id",
            )
        return [self.view(row._mapping) for row in rows]


def _given(payload: Mapping[str, Any], key: str, current: str) -> Any:
    """`payload[key]`, or `current` when the key is absent or None."""
    value = payload.get(key)
    return current if value is None else value


def _stringify(row: Row[Any]) -> dict[str, str]:
    """A resident row's values as strings, for re-validation with changed fields."""
    out: dict[str, str] = {}
    for key, value in row._mapping.items():
        if isinstance(value, dt.date):
            out[key] = value.isoformat()
        elif isinstance(value, int | str):
            out[key] = str(value)
    # never re-validate the stored number or code: they were checked when stored
    out.pop("individual_number", None)
    out["resident_code"] = ""
    return out

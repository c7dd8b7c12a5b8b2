"""The seal register (印鑑登録, municipality role): issue 6, deliverable 1.

A resident registers one seal: its image (PNG or JPEG), the image's SHA-256 digest, and the
number of the registration card (印鑑登録証) issued with it. A person has at most one active
seal; the database enforces it (a partial unique index), so two clerks registering at once
cannot both succeed. A seal ends by abolition (廃止, at the person's request, or by the register itself when the
record closes: a move-out or a death, in the event's own transaction) or loss (亡失, of the
card); an ended seal never comes back — a new registration is a new seal.
Every change is an event in ``seal_events`` with its operator and time: the history a
certificate's issuance is checked against (DESIGN I2: issuance reads this table in its own
transaction, never a copy).

The rules are plain functions (:func:`check_image`, :func:`check_card_number`,
:func:`check_registrant`); :class:`SealService` keeps them in one transaction each."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from typing import Any

import PIL.Image
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from mynumber.clock import Clock
from mynumber.dates import age_on
from mynumber.db import writing
from mynumber.errors import ConflictError, NotFoundError, ValidationError
from mynumber.municipality import models as m
from mynumber.staff import check_operator

__all__ = [
    "MAX_IMAGE_BYTES",
    "MIN_AGE",
    "SealService",
    "check_card_number",
    "check_image",
    "check_registrant",
]

MAX_IMAGE_BYTES = 1 << 20
"""A seal impression scanned at 600 dpi is far smaller; anything larger is refused."""

MAX_SIDE = 2048
"""Pixels on a side: a 25 mm seal at 600 dpi is about 600."""

MIN_AGE = 15
"""印鑑登録 is open from 15 (the model 印鑑条例 of most municipalities)."""

_CARD_NUMBER = re.compile(r"[0-9A-Z]{4,16}")
_ENDINGS = {"abolished": "廃止", "lost": "亡失"}


def check_image(data: bytes) -> str:
    """The image's media type (``image/png`` or ``image/jpeg``), or a 422 naming the fault."""
    if not data:
        raise ValidationError(
            "seal.image", "The seal image is empty.", "印影の画像が空です。", field="image"
        )
    if len(data) > MAX_IMAGE_BYTES:
        raise ValidationError(
            "seal.image",
            f"The seal image is larger than {MAX_IMAGE_BYTES:,} bytes.",
            f"印影の画像が {MAX_IMAGE_BYTES:,} バイトを超えています。",
            field="image",
        )
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        media, fmt = "image/png", "PNG"
    elif data.startswith(b"\xff\xd8\xff"):
        media, fmt = "image/jpeg", "JPEG"
    else:
        raise ValidationError(
            "seal.image",
            "The seal image must be a PNG or JPEG file.",
            "印影の画像は PNG または JPEG にしてください。",
            field="image",
        )
    # The image is printed on every certificate: it must decode, not just start right.
    try:
        with PIL.Image.open(io.BytesIO(data), formats=[fmt]) as img:
            width, height = img.size
            img.load()
    except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError) as exc:
        raise ValidationError(
            "seal.image",
            "The seal image does not decode as the PNG or JPEG it claims to be.",
            "印影の画像を読み取れません（PNG または JPEG として壊れています）。",
            field="image",
        ) from exc
    if not (16 <= width <= MAX_SIDE and 16 <= height <= MAX_SIDE):
        raise ValidationError(
            "seal.image",
            f"The seal image must be 16–{MAX_SIDE} pixels on each side.",
            f"印影の画像は縦横16〜{MAX_SIDE}ピクセルにしてください。",
            field="image",
        )
    return media


def check_card_number(value: str) -> str:
    """A registration card number: 4–16 ASCII digits or capital letters."""
    v = value.strip()
    if not _CARD_NUMBER.fullmatch(v):
        raise ValidationError(
            "seal.card_number",
            "The registration card number must be 4–16 digits or capital letters.",
            "印鑑登録証の番号は英大文字・数字4～16桁にしてください。",
            field="card_number",
        )
    return v


def check_registrant(status: str | None, birth_date: dt.date, today: dt.date) -> None:
    """Only an active resident of 15 or over may register a seal."""
    if status is None:
        raise NotFoundError(
            "resident.not_found",
            "No such resident in this municipality.",
            "該当する住民が見つかりません。",
            field="resident_code",
        )
    if status != "active":
        raise ConflictError(
            "resident.not_active",
            f"The resident's record is closed ({status}); a seal cannot be registered.",
            f"この住民の記録は消除されています（{status}）。印鑑登録はできません。",
            field="resident_code",
        )
    if age_on(birth_date, today) < MIN_AGE:
        raise ValidationError(
            "seal.too_young",
            f"A seal can be registered from the age of {MIN_AGE}.",
            f"印鑑登録は{MIN_AGE}歳からです。",
            field="resident_code",
        )


class SealService:
    """The seal register, on the municipality's database."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def register(
        self,
        municipality_code: str,
        resident_code: str,
        image: bytes,
        card_number: str,
        operator: str,
    ) -> dict[str, Any]:
        """Register a seal; 409 ``seal.already_registered`` while the person has an active one,
        ``seal.card_number_taken`` when the card number was ever used here."""
        media_type = check_image(image)
        card = check_card_number(card_number)
        operator = check_operator(operator)
        now = self.clock.now()
        r = m.residents.c
        try:
            with writing(self.engine) as conn:
                row = conn.execute(
                    select(r.status, r.birth_date).where(
                        r.municipality_code == municipality_code, r.resident_code == resident_code
                    )
                ).first()
                check_registrant(
                    None if row is None else row.status,
                    dt.date.min if row is None else row.birth_date,
                    self.clock.today(),
                )
                self._refuse_card_number(conn, municipality_code, card)
                seal_id = conn.execute(
                    insert(m.seals)
                    .values(
                        municipality_code=municipality_code,
                        resident_code=resident_code,
                        card_number=card,
                        image=image,
                        media_type=media_type,
                        image_digest=hashlib.sha256(image).hexdigest(),
                        state="active",
                        registered_at=now,
                    )
                    .returning(m.seals.c.seal_id)
                ).scalar_one()
                self._event(
                    conn, seal_id, municipality_code, resident_code, "registered", operator, ""
                )
        except IntegrityError as e:
            raise _conflict(e) from None
        return self.seal(municipality_code, int(seal_id))

    def _refuse_card_number(self, conn: Connection, municipality_code: str, card: str) -> None:
        s = m.seals.c
        taken = conn.execute(
            select(s.seal_id).where(s.municipality_code == municipality_code, s.card_number == card)
        ).first()
        if taken is not None:
            raise _card_taken()

    def end(
        self,
        municipality_code: str,
        resident_code: str,
        how: str,
        operator: str,
        reason: str = "",
    ) -> dict[str, Any]:
        """End the person's active seal: ``abolished`` (廃止) or ``lost`` (亡失 of the card).
        The row is locked, then one conditional UPDATE: of two clerks ending it at once, one
        succeeds."""
        if how not in _ENDINGS:
            raise ValueError(f"a seal ends as abolished or lost, not {how!r}")
        operator = check_operator(operator)
        s = m.seals.c
        with writing(self.engine) as conn:
            # Lock the row first, then read the time: an issuance holding the row (FOR SHARE)
            # commits before this goes on, so the history puts its certificate first (I2).
            seal_id = conn.execute(
                select(s.seal_id)
                .where(
                    s.municipality_code == municipality_code,
                    s.resident_code == resident_code,
                    s.state == "active",
                )
                .with_for_update()
            ).scalar_one_or_none()
            if seal_id is not None:
                ended = conn.execute(
                    update(m.seals)
                    .where(s.seal_id == seal_id, s.state == "active")
                    .values(state=how, ended_at=self.clock.now())
                ).rowcount
                seal_id = seal_id if ended else None
            if seal_id is None:
                raise NotFoundError(
                    "seal.not_registered",
                    "This resident has no registered seal.",
                    "この住民の印鑑登録はありません。",
                    field="resident_code",
                )
            self._event(conn, seal_id, municipality_code, resident_code, how, operator, reason)
        return self.seal(municipality_code, int(seal_id))

    def active_seal(
        self, conn: Connection, municipality_code: str, resident_code: str, *, lock: bool = False
    ) -> dict[str, Any] | None:
        """The person's active seal, read on `conn` — the issuing transaction's own (I2).
        With `lock`, the row is held (FOR SHARE on PostgreSQL; SQLite's writer holds the whole
        database) until that transaction ends, so an abolition waits for the issuance to commit
        or, if it committed first, the seal is no longer found."""
        s = m.seals.c
        query = select(m.seals).where(
            s.municipality_code == municipality_code,
            s.resident_code == resident_code,
            s.state == "active",
        )
        if lock:
            query = query.with_for_update(read=True)
        row = conn.execute(query).first()
        return None if row is None else _seal_json(row._mapping)

    def seal(self, municipality_code: str, seal_id: int) -> dict[str, Any]:
        s = m.seals.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(m.seals).where(
                    s.municipality_code == municipality_code, s.seal_id == seal_id
                )
            ).first()
        if row is None:
            raise NotFoundError("seal.not_found", "No such seal.", "該当する印鑑登録がありません。")
        return _seal_json(row._mapping)

    def history(self, municipality_code: str, resident_code: str) -> list[dict[str, Any]]:
        """Every seal the person registered here, oldest first, each with its events."""
        s, e = m.seals.c, m.seal_events.c
        with self.engine.connect() as conn:
            seals = conn.execute(
                select(m.seals)
                .where(s.municipality_code == municipality_code, s.resident_code == resident_code)
                .order_by(s.seal_id)
            ).all()
            events = conn.execute(
                select(m.seal_events)
                .where(e.municipality_code == municipality_code, e.resident_code == resident_code)
                .order_by(e.seq)
            ).all()
        out = []
        for row in seals:
            doc = _seal_json(row._mapping)
            doc["events"] = [
                {
                    "seq": int(ev.seq),
                    "kind": ev.kind,
                    "operator": ev.operator,
                    "reason": ev.reason,
                    "at": _iso(ev.at),
                }
                for ev in events
                if ev.seal_id == row.seal_id
            ]
            out.append(doc)
        return out

    def _event(
        self,
        conn: Connection,
        seal_id: int,
        municipality_code: str,
        resident_code: str,
        kind: str,
        operator: str,
        reason: str,
    ) -> None:
        conn.execute(
            insert(m.seal_events).values(
                seal_id=seal_id,
                municipality_code=municipality_code,
                resident_code=resident_code,
                kind=kind,
                operator=operator,
                reason=reason[:500],
                at=self.clock.now(),
            )
        )


def end_for_closed_record(
    conn: Connection, municipality_code: str, resident_code: str, event_kind: str, at: dt.datetime
) -> int | None:
    """職権抹消: the register closes a person's record (a move-out, a death), so their seal
    registration ends with it, in the same transaction as the event. Returns the seal ended,
    if there was one. The operator recorded is the system, the reason names the event."""
    s = m.seals.c
    seal_id = conn.execute(
        select(s.seal_id)
        .where(
            s.municipality_code == municipality_code,
            s.resident_code == resident_code,
            s.state == "active",
        )
        .with_for_update()
    ).scalar_one_or_none()
    if seal_id is None:
        return None
    conn.execute(update(m.seals).where(s.seal_id == seal_id).values(state="abolished", ended_at=at))
    conn.execute(
        insert(m.seal_events).values(
            seal_id=seal_id,
            municipality_code=municipality_code,
            resident_code=resident_code,
            kind="abolished",
            operator="system",
            reason=f"職権抹消 ({event_kind})",
            at=at,
        )
    )
    return int(seal_id)


def _card_taken() -> ConflictError:
    return ConflictError(
        "seal.card_number_taken",
        "This registration card number has already been used in this municipality.",
        "この印鑑登録証の番号はすでに使われています。",
        field="card_number",
    )


def _conflict(e: IntegrityError) -> ConflictError:
    """The unique index that refused the row, as the user's error."""
    if "card" in str(e.orig):
        return _card_taken()
    return ConflictError(
        "seal.already_registered",
        "This resident already has a registered seal; abolish it first.",
        "この住民はすでに印鑑登録をしています。先に廃止してください。",
        field="resident_code",
    )


def _iso(at: dt.datetime | None) -> str | None:
    if at is None:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).isoformat()


def _seal_json(row: Any) -> dict[str, Any]:
    return {
        "seal_id": int(row["seal_id"]),
        "resident_code": row["resident_code"],
        "card_number": row["card_number"],
        "media_type": row["media_type"],
        "image_digest": row["image_digest"],
        "state": row["state"],
        "registered_at": _iso(row["registered_at"]),
        "ended_at": _iso(row["ended_at"]),
    }

"""Card procedures under hostile use: a key reused with another body is refused, and no PIN
reaches a stored record (idempotency, events), a log or a response."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, update

from cardkit import (
    AUTH_PIN,
    DOCS,
    FAST_KDF,
    SIG_PIN,
    STAFF,
    active_card,
    assert_hidden,
    change,
    fast_chips,  # noqa: F401  (fixture)
    register,
)
from mynumber.card import Chip, KeyKind
from mynumber.errors import MynumberError
from mynumber.jlis import models as m
from mynumber.jlis.ca import four_items_of
from mynumber.municipality.domain import EventKind
from mynumber.platform import Platform

pytestmark = pytest.mark.usefixtures("fast_chips")

NEW_PIN = "3917"


def _code(call: Callable[..., object], *args: object, **kwargs: object) -> str:
    with pytest.raises(MynumberError) as caught:
        call(*args, **kwargs)
    return caught.value.code


def test_a_key_reused_with_another_body_is_refused(platform: Platform) -> None:
    p = platform
    rc = register(p)
    card = p.cards.apply(rc, channel="paper", operator=STAFF).card
    p.cards.cancel(card.card_id, operator=STAFF, reason="withdrawn", idempotency_key="c")
    again = p.cards.cancel(card.card_id, operator=STAFF, reason="withdrawn", idempotency_key="c")
    assert again.replayed
    reused = _code(
        p.cards.cancel, card.card_id, operator=STAFF, reason="death", idempotency_key="c"
    )
    assert reused == "idempotency.key_reused"

    held = active_card(p, register(p, given="二郎"))
    kind = "authentication"
    p.cards.unlock_pin(held.card_id, kind, NEW_PIN, DOCS, operator=STAFF, idempotency_key="u")
    reused = _code(
        p.cards.unlock_pin, held.card_id, kind, NEW_PIN, ["passport"], operator=STAFF,
        idempotency_key="u",
    )  # fmt: skip
    assert reused == "idempotency.key_reused"
    p.cards.report_loss(held.card_id, operator=STAFF)
    p.cards.reissue(held.card_id, "loss", DOCS, operator=STAFF, idempotency_key="r")
    reused = _code(
        p.cards.reissue, held.card_id, "loss", ["passport"], operator=STAFF, idempotency_key="r"
    )
    assert reused == "idempotency.key_reused"


def test_no_pin_in_stored_records_or_logs(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    p = platform
    caplog.set_level(logging.DEBUG)
    card = active_card(p, register(p))
    p.cards.unlock_pin(card.card_id, "authentication", NEW_PIN, DOCS, operator=STAFF,
                       idempotency_key="pin")  # fmt: skip
    with p.jlis.engine.connect() as conn:
        stored = [
            json.dumps(list(row), default=str, ensure_ascii=False)
            for table in (m.idempotency, m.card_events, m.cards)
            for row in conn.execute(select(table))
        ]
    text = "\n".join(stored) + caplog.text
    assert_hidden(text, AUTH_PIN, SIG_PIN, NEW_PIN)


def test_hand_over_writes_the_face_the_register_holds_at_commit(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chip is made before the transaction; a move recorded meanwhile reaches its face, the
    card record and the signature certificate alike."""
    p = platform
    p.cards.kdf = FAST_KDF
    rc = register(p)
    card = p.cards.apply(rc, channel="paper", operator=STAFF).card
    p.cards.produce(card.card_id, operator="factory")
    moved = "東京都新宿区新宿一丁目1番1号"
    original = Chip.create

    def create_then_move(*args: Any, **kwargs: Any) -> Chip:
        chip = original(*args, **kwargs)
        change(p, rc, EventKind.MOVE_WITHIN, {"address": moved})
        return chip

    monkeypatch.setattr(Chip, "create", create_then_move)
    handed = p.cards.hand_over(card.card_id, DOCS, AUTH_PIN, SIG_PIN, operator=STAFF).card
    assert handed.face is not None and handed.face["address"] == moved
    assert handed.chip_id is not None
    chip = p.cards.chips.load(handed.chip_id, p.clock)
    assert chip.face.address == moved
    items = four_items_of(chip.certificate(KeyKind.SIGNATURE))
    assert items is not None and items.address == moved


def _correct_birth_date(p: Platform, rc: str, **more: object) -> None:
    i = m.identities.c
    with p.jlis.engine.begin() as conn:
        conn.execute(
            update(m.identities)
            .where(i.resident_code == rc)
            .values(birth_date=dt.date(1985, 6, 16), **more)
        )


def test_a_corrected_birth_date_is_a_409_not_a_500(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = platform
    rc = register(p)
    card = active_card(p, rc)
    _correct_birth_date(p, rc, address="東京都新宿区新宿一丁目1番1号")
    assert _code(p.cards.update_face, card.card_id, DOCS, operator=STAFF) == (
        "card_life.birth_date_changed"
    )

    other = register(p, given="二郎")
    pending = p.cards.apply(other, channel="paper", operator=STAFF).card
    p.cards.produce(pending.card_id, operator="factory")
    original = Chip.create

    def create_then_correct(*args: Any, **kwargs: Any) -> Chip:
        chip = original(*args, **kwargs)
        _correct_birth_date(p, other)
        return chip

    monkeypatch.setattr(Chip, "create", create_then_correct)
    hand_over = p.cards.hand_over
    assert _code(hand_over, pending.card_id, DOCS, AUTH_PIN, SIG_PIN, operator=STAFF) == (
        "card_life.birth_date_changed"
    )
    assert p.cards.get(pending.card_id).state.value == "produced"

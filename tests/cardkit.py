"""Helpers for the card-lifecycle tests: residents, fast chips, a card through to handover."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import mynumber.card.chip as chip_module
from conftest import MUNI
from mynumber.card import PinKdf
from mynumber.jlis.cards import Card
from mynumber.municipality.domain import EventKind
from mynumber.platform import Platform

FAST_KDF = PinKdf(n=2**4, r=1, p=1)
ADULT = dt.date(1985, 6, 15)
AUTH_PIN, SIG_PIN = "2719", "K7QX9M"
DOCS = ["driving_licence"]
STAFF = "counter-01"
_POOL: list[rsa.RSAPrivateKey] = []


def key_pool() -> list[rsa.RSAPrivateKey]:
    """Seven RSA keys made once per process: key generation would dominate these tests."""
    if not _POOL:
        _POOL.extend(
            rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(7)
        )
    return _POOL


@pytest.fixture
def fast_chips(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    keys = itertools.cycle(key_pool())
    monkeypatch.setattr(chip_module, "_generate_key", lambda: next(keys))
    yield


def register(
    p: Platform,
    *,
    birth: dt.date = ADULT,
    family: str = "髙橋",
    given: str = "一郎",
    address: str = "東京都新宿区西新宿二丁目8番1号",
    **items: str,
) -> str:
    payload: dict[str, Any] = {
        "family_name": family,
        "given_name": given,
        "family_name_kana": "タカハシ",
        "given_name_kana": "イチロウ",
        "birth_date": birth.isoformat(),
        "sex": "1",
        "address": address,
        **items,
    }
    rc: str = p.municipality.record(MUNI, EventKind.MOVE_IN, payload)[1]["resident_code"]
    return rc


def change(p: Platform, rc: str, kind: EventKind, payload: dict[str, Any] | None = None) -> None:
    p.municipality.record(MUNI, kind, payload or {}, resident_code=rc)


def active_card(p: Platform, rc: str) -> Card:
    """A card applied for, produced and handed over to `rc` (PINs AUTH_PIN, SIG_PIN)."""
    p.cards.kdf = FAST_KDF
    card = p.cards.apply(rc, channel="paper", operator=STAFF).card
    p.cards.produce(card.card_id, operator="factory")
    return p.cards.hand_over(card.card_id, DOCS, AUTH_PIN, SIG_PIN, operator=STAFF).card


def assert_hidden(text: str, *secrets: str) -> None:
    """None of `secrets` (PINs) appears in `text` as a token of its own. A 4-digit PIN inside a
    resident code or a hex chip id is not a leak (CI once "found" 2719 in 62719852160)."""
    for secret in secrets:
        pattern = rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])"
        assert re.search(pattern, text) is None, "a PIN appears in the output"

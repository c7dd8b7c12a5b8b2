"""Concurrent card procedures for one person on PostgreSQL (READ COMMITTED): the rule "one card
on its way, one card held per person" is answered with a 409, never an IntegrityError (a 500),
and two requests with one Idempotency-Key give one card."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from cardkit import STAFF, register
from mynumber.errors import MynumberError
from mynumber.jlis.cards import CardService, Outcome
from mynumber.platform import Platform

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


def _race(
    monkeypatch: pytest.MonkeyPatch, calls: list[Callable[[], Outcome]]
) -> list[Outcome | MynumberError]:
    """Run `calls` at once, each held just before it writes its new card until all got there
    (or 1.5 s passed: a request that waits on another's lock never gets there)."""
    barrier = threading.Barrier(len(calls), timeout=1.5)
    original = CardService._new_card

    def held(self: CardService, *args: Any, **kwargs: Any) -> Any:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CardService, "_new_card", held)

    def run(call: Callable[[], Outcome]) -> Outcome | MynumberError:
        try:
            return call()
        except MynumberError as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_two_applications_for_one_person(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc = register(platform)
    results = _race(
        monkeypatch,
        [
            lambda: platform.cards.apply(rc, channel="paper", operator=STAFF, idempotency_key="a"),
            lambda: platform.cards.apply(rc, channel="paper", operator=STAFF, idempotency_key="b"),
        ],
    )
    codes = sorted(r.code if isinstance(r, MynumberError) else "ok" for r in results)
    assert codes == ["card_life.application_pending", "ok"]
    assert len(platform.cards.cards_of(rc)) == 1


def test_one_key_twice_at_once_is_one_card(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc = register(platform)

    def apply() -> Outcome:
        return platform.cards.apply(rc, channel="paper", operator=STAFF, idempotency_key="k")

    results = _race(monkeypatch, [apply, apply])
    assert all(isinstance(r, Outcome) for r in results), results
    outcomes = [r for r in results if isinstance(r, Outcome)]
    assert len({o.card.card_id for o in outcomes}) == 1
    assert sorted(o.replayed for o in outcomes) == [False, True]


def test_one_application_id_for_two_people(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = register(platform), register(platform, given="二郎")
    app_id = "12345678901234567890123"
    results = _race(
        monkeypatch,
        [
            lambda rc=rc: platform.cards.apply(
                rc, channel="online", application_id=app_id, operator=STAFF
            )
            for rc in (first, second)
        ],
    )
    codes = sorted(r.code if isinstance(r, MynumberError) else "ok" for r in results)
    assert codes == ["card_life.application_id_taken", "ok"]

"""Any sequence of card procedures, register events and time, over the real PKI (SQLite and
PostgreSQL): no certificate stays valid for a card that is suspended, returned, reissued,
superseded or cancelled, or for a person who has died; a person holds at most one card and has
at most one on its way; every card's state is the end of its chain of events; the chip files
are exactly the chips handed over."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from cardkit import DOCS, FAST_KDF, STAFF, change, fast_chips, register  # noqa: F401
from conftest import TODAY as START
from mynumber.clock import JST, FixedClock
from mynumber.errors import MynumberError
from mynumber.jlis import models as m
from mynumber.jlis.card_lifecycle import (
    HOLDING,
    PENDING,
    TRANSITIONS,
    Action,
    CardState,
    renewal_opens,
)
from mynumber.jlis.ocsp import OcspStatus
from mynumber.municipality.domain import EventKind
from mynumber.platform import Platform

PINS = ("2719", "K7QX9M")
NO_VALID_CERTIFICATE = {
    CardState.SUSPENDED,
    CardState.RETURNED,
    CardState.REISSUED,
    CardState.SUPERSEDED,
    CardState.CANCELLED,
    CardState.APPLIED,
    CardState.PRODUCED,
}
BIRTHS = st.sampled_from(
    [dt.date(1950, 2, 3), dt.date(1985, 6, 15), dt.date(2012, 9, 9), dt.date(2018, 1, 31)]
)
ON_HELD = [
    Action.SUSPEND,
    Action.LIFT,
    Action.REISSUE,
    Action.RETURN,
    Action.UPDATE_FACE,
    Action.RENEW,
    Action.UNLOCK_PIN,
]
GIVEN = ["一郎", "二郎", "花子", "美加子", "翔太", "陽菜"]
ADDRESSES = ["東京都新宿区新宿一丁目1番1号", "東京都新宿区大久保二丁目3番4号"]


class Boom(Exception):
    """An injected failure in the middle of a handover."""


def make_machine(p: Platform, clock: FixedClock) -> type[RuleBasedStateMachine]:
    class CardMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            p.cards.kdf = FAST_KDF
            clock.set(START)  # each example starts on the same day (its people are new)
            self.people: list[str] = []
            self.dead: set[str] = set()

        # -- people and time ----------------------------------------------------------------

        @rule(birth=BIRTHS)
        def move_in(self, birth: dt.date) -> None:
            given = GIVEN[len(self.people) % len(GIVEN)]
            self.people.append(register(p, birth=birth, given=given))

        @precondition(lambda self: self.people)
        @rule(i=st.integers(0, 50), which=st.integers(0, 1))
        def move(self, i: int, which: int) -> None:
            rc = self._person(i)
            self._ok(lambda: change(p, rc, EventKind.MOVE_WITHIN, {"address": ADDRESSES[which]}))

        @precondition(lambda self: self.people)
        @rule(i=st.integers(0, 50), close=st.booleans(), roll=st.integers(0, 3))
        def die(self, i: int, close: bool, roll: int) -> None:
            if roll:  # rarer than the rest: a dead person's cards see no more procedures
                return
            rc = self._person(i)
            if self._ok(lambda: change(p, rc, EventKind.DEATH, {"occurred_on": "2026-11-25"})):
                self.dead.add(rc)
            if close:
                p.cards.close_for_deceased()

        @rule(days=st.integers(0, 60))
        def time_passes(self, days: int) -> None:
            clock.advance(dt.timedelta(days=days))
            p.cards.expire_due()

        @precondition(lambda self: self.people)
        @rule(i=st.integers(0, 50), roll=st.integers(0, 3))
        def renewal_opens(self, i: int, roll: int) -> None:
            """Time runs on to the renewal window of the person's card in use, if any."""
            if roll:
                return
            for card in p.cards.cards_of(self._person(i)):
                if card.state is CardState.ACTIVE and card.expires_on is not None:
                    opens = renewal_opens(card.expires_on)
                    if opens > clock.today():
                        clock.set(dt.datetime.combine(opens, dt.time(9), JST))

        # -- procedures ---------------------------------------------------------------------

        @precondition(lambda self: self.people)
        @rule(i=st.integers(0, 50), channel=st.sampled_from(["paper", "counter"]))
        def apply(self, i: int, channel: str) -> None:
            rc = self._person(i)
            self._ok(lambda: p.cards.apply(rc, channel=channel, operator=STAFF))

        @precondition(lambda self: self.people)
        @rule(i=st.integers(0, 50), fail=st.booleans())
        def card_handed_over(self, i: int, fail: bool) -> None:
            """Apply, produce and hand over in one step (each may be refused)."""
            rc = self._person(i)
            self._ok(lambda: p.cards.apply(rc, channel="paper", operator=STAFF))
            cards = p.cards.cards_of(rc)
            if cards:
                self._ok(lambda: p.cards.produce(cards[-1].card_id, operator="factory"))
                self._ok(lambda: self._hand_over(cards[-1].card_id, fail))

        @precondition(lambda self: self.people)
        @rule(i=st.integers(0, 50), action=st.sampled_from(list(Action)), fail=st.booleans())
        def procedure(self, i: int, action: Action, fail: bool) -> None:
            """Any procedure on a person's newest card."""
            cards = p.cards.cards_of(self._person(i))
            if cards:
                self._do(cards[-1].card_id, action, fail)

        @rule(i=st.integers(0, 1000), action=st.sampled_from(ON_HELD))
        def procedure_on_a_card_in_use(self, i: int, action: Action) -> None:
            """A procedure on any card in the holder's hands (what can go wrong)."""
            held = p.cards.list_cards("active", limit=1000)
            held += p.cards.list_cards("suspended", limit=1000)
            if held:
                self._do(held[i % len(held)].card_id, action, False)

        @rule(i=st.integers(0, 1000), fail=st.booleans())
        def renewal_card_handed_over(self, i: int, fail: bool) -> None:
            """Renew a card in use within its window, and hand the new card over."""
            held = p.cards.list_cards("active", limit=1000)
            if not held:
                return
            old = held[i % len(held)]
            assert old.expires_on is not None
            opens = renewal_opens(old.expires_on)
            if opens > clock.today():
                clock.set(dt.datetime.combine(opens, dt.time(9), JST))
            new = p.cards.cards_of(old.resident_code)[-1]
            if new.card_id == old.card_id:
                if not self._ok(lambda: p.cards.renew(old.card_id, operator=STAFF)):
                    return
                new = p.cards.cards_of(old.resident_code)[-1]
            self._ok(lambda: p.cards.produce(new.card_id, operator="factory"))
            self._ok(lambda: self._hand_over(new.card_id, fail))

        def _do(self, card_id: str, action: Action, fail: bool) -> None:
            c = p.cards
            calls: dict[Action, Any] = {
                Action.PRODUCE: lambda: c.produce(card_id, operator="factory"),
                Action.HAND_OVER: lambda: self._hand_over(card_id, fail),
                Action.SUSPEND: lambda: c.report_loss(card_id, operator="24h"),
                Action.LIFT: lambda: c.lift_suspension(card_id, DOCS, operator=STAFF),
                Action.REISSUE: lambda: c.reissue(card_id, "loss", DOCS, operator=STAFF),
                Action.RETURN: lambda: c.return_card(card_id, "holder_request", operator=STAFF),
                Action.UPDATE_FACE: lambda: c.update_face(card_id, DOCS, operator=STAFF),
                Action.UNLOCK_PIN: lambda: c.unlock_pin(
                    card_id, "authentication", "5830", DOCS, operator=STAFF
                ),
                Action.RENEW: lambda: c.renew(card_id, operator=STAFF),
                Action.CANCEL: lambda: c.cancel(card_id, operator=STAFF),
            }
            call = calls.get(action)
            if call is not None:
                self._ok(call)

        def _hand_over(self, card_id: str, fail: bool) -> Any:
            if not fail:
                return p.cards.hand_over(card_id, DOCS, *PINS, operator=STAFF)
            real = p.pki.issue_in
            count = [0]

            def issue_in(*args: Any, **kwargs: Any) -> Any:
                count[0] += 1
                if count[0] == 2:
                    raise Boom
                return real(*args, **kwargs)

            p.pki.issue_in = issue_in  # type: ignore[method-assign]
            try:
                return p.cards.hand_over(card_id, DOCS, *PINS, operator=STAFF)
            except Boom:
                return None
            finally:
                del p.pki.issue_in

        def _person(self, i: int) -> str:
            return self.people[i % len(self.people)]

        @staticmethod
        def _ok(call: Any) -> bool:
            try:
                call()
            except MynumberError as exc:
                assert exc.status < 500, exc
                return False
            return True

        # -- invariants ---------------------------------------------------------------------

        @invariant()
        def certificates_follow_cards(self) -> None:
            now = clock.now()
            with p.jlis.engine.connect() as conn:
                cards = conn.execute(select(m.cards)).all()
                certs = conn.execute(select(m.certificates)).all()
            state_of_chip = {c.chip_id: CardState(c.state) for c in cards if c.chip_id}
            for cert in certs:
                status = p.pki.status(int(cert.serial, 16))
                not_after = cert.not_after
                if not_after.tzinfo is None:
                    not_after = not_after.replace(tzinfo=dt.UTC)
                valid = status.status is OcspStatus.GOOD and now <= not_after
                if not valid:
                    continue
                assert cert.chip_id in state_of_chip, "a valid certificate without a card"
                assert state_of_chip[cert.chip_id] not in NO_VALID_CERTIFICATE
                assert cert.resident_code not in self.dead, "a valid certificate of the dead"

        @invariant()
        def one_card_per_person(self) -> None:
            with p.jlis.engine.connect() as conn:
                rows = conn.execute(select(m.cards.c.resident_code, m.cards.c.state)).all()
            holding = Counter(rc for rc, s in rows if CardState(s) in HOLDING)
            pending = Counter(rc for rc, s in rows if CardState(s) in PENDING)
            assert max(holding.values(), default=0) <= 1
            assert max(pending.values(), default=0) <= 1

        @invariant()
        def every_transition_is_an_event(self) -> None:
            with p.jlis.engine.connect() as conn:
                cards = {c.card_id: c.state for c in conn.execute(select(m.cards))}
                events = conn.execute(select(m.card_events).order_by(m.card_events.c.seq)).all()
            last: dict[str, str | None] = {}
            for e in events:
                assert e.from_state == last.get(e.card_id), "events form a chain"
                before = None if e.from_state is None else CardState(e.from_state)
                assert TRANSITIONS[(before, Action(e.kind))] == CardState(e.to_state)
                last[e.card_id] = e.to_state
            assert last == cards

        @invariant()
        def chip_files_are_the_chips_handed_over(self) -> None:
            with p.jlis.engine.connect() as conn:
                chips = {c for c in conn.execute(select(m.cards.c.chip_id)).scalars() if c}
            files = {f.stem for f in (p.settings.data_dir / "cards").glob("*.chip")}
            assert files == chips

    return CardMachine


@pytest.mark.usefixtures("fast_chips")
def test_card_lifecycle_state_machine(platform: Platform, clock: FixedClock) -> None:
    run_state_machine_as_test(
        make_machine(platform, clock),
        settings=settings(
            max_examples=25,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )

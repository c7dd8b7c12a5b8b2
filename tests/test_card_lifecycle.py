"""The card lifecycle's pure rules: every (state, action) pair, documents, validity, fees, and
the diagram in docs/card-lifecycle.md kept equal to the transition table."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mynumber.errors import ConflictError, NotFoundError, ValidationError
from mynumber.jlis.ca import card_expiry
from mynumber.jlis.card_lifecycle import (
    FEES,
    HOLDING,
    IDENTITY_DOCUMENTS,
    LIFE_MESSAGES,
    PENDING,
    TRANSITIONS,
    Action,
    CardLifeError,
    CardState,
    Channel,
    IllegalTransitionError,
    check_application,
    check_identity_documents,
    expiry_for,
    life_error,
    next_state,
    reissue_fee,
    reissue_reason,
    renewal_opens,
    return_reason,
    signature_certificate_allowed,
)

ROOT = Path(__file__).resolve().parent.parent
STATES: list[CardState | None] = [None, *CardState]


@pytest.mark.parametrize(("state", "action"), list(itertools.product(STATES, Action)))
def test_every_state_and_action(state: CardState | None, action: Action) -> None:
    expected = TRANSITIONS.get((state, action))
    if expected is not None:
        assert next_state(state, action) is expected
        assert next_state(None if state is None else str(state), str(action)) is expected
        return
    with pytest.raises(IllegalTransitionError) as caught:
        next_state(state, action)
    err = caught.value
    assert err.code.startswith("card_life.") and err.code in LIFE_MESSAGES
    assert err.status == 409
    assert err.extra == {"state": "none" if state is None else str(state), "action": str(action)}
    assert err.ja and err.en and err.ja != err.en
    assert isinstance(err, CardLifeError)


def test_the_table_has_the_documented_shape() -> None:
    # Only a new record starts anywhere, and it starts as an application.
    assert [k for k in TRANSITIONS if k[0] is None] == [(None, Action.APPLY)]
    # Final states go nowhere.
    finals = {CardState.REISSUED, CardState.RETURNED, CardState.EXPIRED}
    finals |= {CardState.SUPERSEDED, CardState.CANCELLED}
    assert not [k for k in TRANSITIONS if k[0] in finals]
    # Every state is reachable from the start.
    reached: set[CardState | None] = {None}
    while True:
        more = {after for (before, _), after in TRANSITIONS.items() if before in reached}
        if more <= reached:
            break
        reached |= more
    assert reached == set(STATES)
    # Only cards in the holder's hands can carry certificates; the procedures that touch them
    # start there.
    for action in (Action.SUSPEND, Action.LIFT, Action.UPDATE_FACE, Action.UNLOCK_PIN):
        assert {b for (b, a) in TRANSITIONS if a is action} <= HOLDING
    assert {b for (b, a) in TRANSITIONS if a is Action.CANCEL} == PENDING


_ARROW = re.compile(r"^\s*(\[\*\]|\w+)\s*-->\s*(\w+)\s*:\s*(\w+)\s*$")


def test_the_diagram_is_the_transition_table() -> None:
    doc = (ROOT / "docs" / "card-lifecycle.md").read_text(encoding="utf-8")
    block = re.search(r"```mermaid\n(.*?)```", doc, re.S)
    assert block is not None
    lines = [ln for ln in block.group(1).splitlines() if ln.strip()]
    assert lines[0].strip() == "stateDiagram-v2"
    drawn = set()
    for line in lines[1:]:
        match = _ARROW.match(line)
        assert match, f"not a transition line: {line!r}"
        before, after, action = match.groups()
        drawn.add((None if before == "[*]" else before, after, action))
    coded = {
        (None if b is None else str(b), str(after), str(a)) for (b, a), after in TRANSITIONS.items()
    }
    assert drawn == coded
    assert len(lines) - 1 == len(coded)  # no line drawn twice


# -- identity documents -------------------------------------------------------------------


@pytest.mark.parametrize("doc", [k for k, v in IDENTITY_DOCUMENTS.items() if v[0] == "A"])
def test_one_photo_document_suffices(doc: str) -> None:
    assert check_identity_documents([doc]) == "photo_id"
    assert check_identity_documents(["pension_book", doc]) == "photo_id"


def test_two_other_documents_suffice_but_not_one_or_the_same_twice() -> None:
    assert check_identity_documents(["health_insurance_card", "pension_book"]) == "two_documents"
    for bad in ([], ["health_insurance_card"], ["pension_book", "pension_book"]):
        with pytest.raises(ValidationError) as caught:
            check_identity_documents(bad)
        assert caught.value.code == "card_life.identity_documents"
        assert caught.value.status == 422 and caught.value.field == "identity_documents"


@pytest.mark.parametrize("bad", ["library_card", "", "PASSPORT", None, 3])
def test_an_unknown_document_is_refused(bad: object) -> None:
    with pytest.raises(ValidationError) as caught:
        check_identity_documents(["passport", bad])
    assert caught.value.code == "card_life.identity_document_unknown"


@given(st.lists(st.sampled_from(sorted(IDENTITY_DOCUMENTS)), max_size=5))
def test_identity_check_rule(docs: list[str]) -> None:
    kinds = set(docs)
    has_a = any(IDENTITY_DOCUMENTS[d][0] == "A" for d in kinds)
    if has_a:
        assert check_identity_documents(docs) == "photo_id"
    elif len(kinds) >= 2:
        assert check_identity_documents(docs) == "two_documents"
    else:
        with pytest.raises(ValidationError):
            check_identity_documents(docs)


# -- applications -------------------------------------------------------------------------

APP_ID = "1" * 23


def test_application_channels() -> None:
    assert check_application("online", APP_ID) == (Channel.ONLINE, APP_ID)
    assert check_application("paper", None) == (Channel.PAPER, None)
    assert check_application("paper", "") == (Channel.PAPER, None)
    assert check_application("counter", APP_ID) == (Channel.COUNTER, APP_ID)


@pytest.mark.parametrize(
    ("channel", "app_id", "code", "field"),
    [
        ("online", None, "card_life.application_id", "application_id"),
        ("online", "1" * 22, "card_life.application_id", "application_id"),
        ("paper", "１" * 23, "card_life.application_id", "application_id"),
        ("paper", "1" * 22 + "x", "card_life.application_id", "application_id"),
        ("fax", None, "card_life.reason", "channel"),
        (None, None, "card_life.reason", "channel"),
    ],
)
def test_bad_applications(channel: object, app_id: object, code: str, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_application(channel, app_id)
    assert (caught.value.code, caught.value.field) == (code, field)


# -- validity, renewal, age, fees ---------------------------------------------------------


def test_card_validity() -> None:
    handed = dt.date(2026, 11, 26)
    assert expiry_for(dt.date(1985, 6, 15), handed) == dt.date(2036, 6, 15)  # adult: 10th
    assert expiry_for(dt.date(2010, 6, 15), handed) == dt.date(2031, 6, 15)  # 16: 5th
    assert expiry_for(dt.date(2008, 11, 26), handed) == dt.date(2036, 11, 26)  # 18 today
    assert expiry_for(dt.date(2008, 11, 27), handed) == dt.date(2030, 11, 27)  # 18 tomorrow
    stay = dt.date(2028, 3, 31)
    assert expiry_for(dt.date(1985, 6, 15), handed, stay) == stay


@given(
    st.dates(dt.date(1930, 1, 1), dt.date(2026, 11, 26)),
    st.dates(dt.date(2026, 11, 26), dt.date(2030, 12, 31)),
)
def test_validity_is_the_shared_rule(birth: dt.date, handed: dt.date) -> None:
    assert expiry_for(birth, handed) == card_expiry(birth, handed)
    assert expiry_for(birth, handed) > handed


def test_signature_certificate_from_15() -> None:
    assert signature_certificate_allowed(dt.date(2011, 11, 26), dt.date(2026, 11, 26))
    assert not signature_certificate_allowed(dt.date(2011, 11, 27), dt.date(2026, 11, 26))


@pytest.mark.parametrize(
    ("expires", "opens"),
    [
        (dt.date(2036, 6, 15), dt.date(2036, 3, 16)),
        (dt.date(2031, 5, 31), dt.date(2031, 3, 1)),  # back to 28 Feb, then the day after
        (dt.date(2032, 5, 31), dt.date(2032, 3, 1)),  # 29 Feb in a leap year
        (dt.date(2030, 1, 10), dt.date(2029, 10, 11)),
    ],
)
def test_renewal_window(expires: dt.date, opens: dt.date) -> None:
    assert renewal_opens(expires) == opens


def test_fees() -> None:
    assert FEES == {"card": 800, "certificates": 200}
    assert reissue_fee("loss") == reissue_fee("theft") == reissue_fee("damage") == 1000
    assert reissue_fee("chip_fault") == 0
    with pytest.raises(ValidationError) as caught:
        reissue_fee("whim")
    assert caught.value.code == "card_life.reason"


def test_reasons() -> None:
    assert reissue_reason("loss") == "loss"
    assert return_reason("death") == "death"
    for parse in (reissue_reason, return_reason):
        for bad in ("", "LOSS", None, "expired"):
            with pytest.raises(ValidationError):
                parse(bad)


def test_life_errors_have_status_and_both_languages() -> None:
    for code, (status, en, ja) in LIFE_MESSAGES.items():
        err = life_error(code)
        assert err.code == code and err.status == status and err.en == en and err.ja == ja
        base = {404: NotFoundError, 409: ConflictError, 422: ValidationError}[status]
        assert isinstance(err, base) and isinstance(err, CardLifeError)

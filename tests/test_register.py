"""The resident register under attack: events, deadlines, closed records, idempotency (I8),
concurrency, numbers and crash recovery — on SQLite and PostgreSQL — plus a stateful model test.
"""

from __future__ import annotations

import datetime as dt
import itertools
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import func, select

from conftest import MUNI, TODAY
from mynumber.clock import JST, FixedClock
from mynumber.config import Settings
from mynumber.errors import ConflictError, NotFoundError, ValidationError
from mynumber.identity import FiveItems
from mynumber.jlis import models as jm
from mynumber.municipality.domain import EventKind
from mynumber.numbers import DEFAULT_RESIDENT_CODE_SCHEME, mask, parse_individual
from mynumber.platform import Platform

D = dt.date


def person(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "family_name": "山田",
        "given_name": "太郎",
        "family_name_kana": "ヤマダ",
        "given_name_kana": "タロウ",
        "birth_date": "1980-04-01",
        "sex": "1",
        "postal_code": "1600022",
        "address": "東京都新宿区新宿一丁目1番1号",
    }
    base.update(over)
    return base


GIVEN = [
    ("太郎", "タロウ"),
    ("次郎", "ジロウ"),
    ("花子", "ハナコ"),
    ("一郎", "イチロウ"),
    ("美咲", "ミサキ"),
    ("健太", "ケンタ"),
    ("陽菜", "ヒナ"),
    ("翔太", "ショウタ"),
    ("結衣", "ユイ"),
    ("大輔", "ダイスケ"),
    ("由美", "ユミ"),
    ("直樹", "ナオキ"),
    ("彩", "アヤ"),
    ("誠", "マコト"),
    ("愛", "アイ"),
    ("悠斗", "ユウト"),
]


def nth_person(i: int, **over: Any) -> dict[str, Any]:
    """A distinct person for each i (given name and address differ)."""
    given, kana = GIVEN[i % len(GIVEN)]
    items = {
        "given_name": given,
        "given_name_kana": kana,
        "birth_date": (D(1960, 1, 1) + dt.timedelta(days=37 * i)).isoformat(),
        "address": f"東京都新宿区新宿{i % 7 + 1}丁目{i + 1}番{i % 5 + 1}号",
    }
    return person(**{**items, **over})


def fresh_code(i: int) -> str:
    """A well-formed resident record code nobody has been given."""
    body = f"{9_000_000_000 + i:010d}"
    return body + DEFAULT_RESIDENT_CODE_SCHEME.check_digit(body)


def move_in(p: Platform, payload: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    status, body, replayed = p.municipality.record(
        MUNI, EventKind.MOVE_IN, payload, idempotency_key=key
    )
    assert status == 201 and replayed is False
    return body


def change(
    p: Platform, rc: str, kind: EventKind, payload: dict[str, Any] | None = None, key: str = ""
) -> dict[str, Any]:
    _, body, _ = p.municipality.record(
        MUNI, kind, payload or {}, resident_code=rc, idempotency_key=key or None
    )
    return body


def at(clock: FixedClock, day: dt.date) -> None:
    clock.set(dt.datetime(day.year, day.month, day.day, 10, 0, tzinfo=JST))


def all_events(p: Platform) -> list[dict[str, Any]]:
    return p.municipality.events(MUNI, 0, 100_000)


def whole_number(p: Platform, rc: str) -> str:
    """The active number J-LIS holds for `rc` (assign_number never creates a second one)."""
    return p.jlis.assign_number(rc)


def count_residents(p: Platform, status: str | None = None) -> int:
    total: int = p.municipality.list_residents(MUNI, status=status, limit=1)["total"]
    return total


# -- events --------------------------------------------------------------------------------


def test_move_in_creates_an_active_resident_with_a_number_and_events(platform: Platform) -> None:
    body = move_in(platform, person(moved_on="2026-11-20"))
    rc = body["resident_code"]
    r = body["resident"]
    assert r["status"] == "active"
    assert r["family_name"] == "山田" and r["given_name"] == "太郎"
    assert r["status_since"] == "2026-11-20" and r["address_since"] == "2026-11-20"
    assert r["relationship"] == "世帯主"
    number = whole_number(platform, rc)
    assert parse_individual(number) == number
    assert r["individual_number"] == mask(number)
    assert number not in str(body)  # I5: only the masked form leaves the register
    kinds = [(e["kind"], e["resident_code"]) for e in all_events(platform)]
    assert kinds == [("move_in", rc), ("number_assigned", rc)]
    first = all_events(platform)[0]
    assert first["seq"] == body["seq"]
    assert first["occurred_on"] == "2026-11-20"
    assert first["notified_on"] == TODAY.date().isoformat()
    assert first["late"] is False


def test_every_event_kind_is_stored_in_order_with_full_history(platform: Platform) -> None:
    head = move_in(platform, person())
    hh = head["resident"]["household_id"]
    rc = head["resident_code"]
    child = platform.municipality.record(
        MUNI,
        EventKind.BIRTH,
        person(
            given_name="花子",
            given_name_kana="ハナコ",
            birth_date="2026-11-20",
            sex="2",
            household_id=hh,
            relationship="子",
        ),
    )[1]
    crc = child["resident_code"]
    assert child["resident"]["household_id"] == hh
    assert child["resident"]["relationship"] == "子"
    assert child["resident"]["status_since"] == "2026-11-20"
    seqs = [head["seq"], child["seq"]]
    b = change(platform, rc, EventKind.MOVE_WITHIN, {"address": "東京都新宿区西新宿二丁目8番1号"})
    seqs.append(b["seq"])
    b = change(
        platform,
        rc,
        EventKind.NAME_CHANGE,
        {"family_name": "佐藤", "given_name": "太郎", "family_name_kana": "サトウ"},
    )
    seqs.append(b["seq"])
    b = change(
        platform,
        crc,
        EventKind.HOUSEHOLD_CHANGE,
        {"household_id": f"{MUNI}-new", "relationship": "世帯主"},
    )
    seqs.append(b["seq"])
    b = change(platform, crc, EventKind.MOVE_OUT, {"destination": "大阪府大阪市北区"})
    seqs.append(b["seq"])
    b = change(platform, rc, EventKind.DEATH, {"occurred_on": "2026-11-25"})
    seqs.append(b["seq"])
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    events = all_events(platform)
    all_seqs = [e["seq"] for e in events]
    assert all(a < b for a, b in itertools.pairwise(all_seqs))
    assert set(seqs) <= set(all_seqs)
    mine = [(e["kind"], e["resident_code"]) for e in events if e["kind"] != "number_assigned"]
    assert mine == [
        ("move_in", rc),
        ("birth", crc),
        ("move_within", rc),
        ("name_change", rc),
        ("household_change", crc),
        ("move_out", crc),
        ("death", rc),
    ]
    by_kind = {e["kind"]: e for e in events}
    assert by_kind["move_within"]["detail"]["previous_address"] == "東京都新宿区新宿一丁目1番1号"
    assert by_kind["name_change"]["detail"]["previous_name"] == "山田 太郎"
    assert by_kind["household_change"]["detail"]["previous_household_id"] == hh
    assert by_kind["move_out"]["detail"]["destination"] == "大阪府大阪市北区"
    assert by_kind["death"]["occurred_on"] == "2026-11-25"
    # paging by seq gives the same history
    assert platform.municipality.events(MUNI, all_seqs[2], 2) == events[3:5]

    # closed records (除票) are kept and visible with their status
    dead = platform.municipality.get_resident(MUNI, rc)
    gone = platform.municipality.get_resident(MUNI, crc)
    assert dead["status"] == "deceased" and dead["status_since"] == "2026-11-25"
    assert dead["family_name"] == "佐藤"
    assert dead["address"] == "東京都新宿区西新宿二丁目8番1号"
    assert gone["status"] == "moved_out" and gone["household_id"] == f"{MUNI}-new"
    assert dead["individual_number"] is not None and gone["individual_number"] is not None
    assert count_residents(platform) == 2
    assert count_residents(platform, "active") == 0
    assert count_residents(platform, "deceased") == 1
    assert count_residents(platform, "moved_out") == 1


def test_name_change_of_the_family_name_only_keeps_the_given_name(platform: Platform) -> None:
    rc = move_in(platform, person())["resident_code"]
    r = change(
        platform, rc, EventKind.NAME_CHANGE, {"family_name": "佐藤", "family_name_kana": "さとう"}
    )["resident"]
    assert (r["family_name"], r["given_name"]) == ("佐藤", "太郎")
    assert (r["family_name_kana"], r["given_name_kana"]) == ("サトウ", "タロウ")


def test_name_change_is_validated_and_writes_nothing_when_refused(platform: Platform) -> None:
    rc = move_in(platform, person())["resident_code"]
    before = all_events(platform)
    for bad in (
        {"family_name": "", "family_name_kana": "サトウ"},
        {"family_name": "佐藤1", "family_name_kana": "サトウ"},
        {"family_name": "佐藤", "family_name_kana": "sato"},
    ):
        with pytest.raises(ValidationError) as err:
            change(platform, rc, EventKind.NAME_CHANGE, bad)
        assert err.value.status == 422
    assert all_events(platform) == before
    assert platform.municipality.get_resident(MUNI, rc)["family_name"] == "山田"


def test_move_within_to_the_same_address_is_refused(platform: Platform) -> None:
    rc = move_in(platform, person())["resident_code"]
    with pytest.raises(ValidationError) as err:
        change(platform, rc, EventKind.MOVE_WITHIN, {"address": "東京都新宿区新宿一丁目1番1号"})
    assert err.value.code == "move.same_address"


def test_birth_needs_an_existing_active_household(platform: Platform) -> None:
    baby = person(given_name="花子", given_name_kana="ハナコ", birth_date="2026-11-20", sex="2")
    with pytest.raises(ValidationError) as err:
        platform.municipality.record(MUNI, EventKind.BIRTH, baby)
    assert err.value.code == "household.required"
    with pytest.raises(NotFoundError):
        platform.municipality.record(MUNI, EventKind.BIRTH, {**baby, "household_id": "nope"})
    head = move_in(platform, person())
    hh = head["resident"]["household_id"]
    with pytest.raises((ValidationError, ConflictError)):
        platform.municipality.record(
            MUNI,
            EventKind.BIRTH,
            {**baby, "household_id": hh, "resident_code": head["resident_code"]},
        )
    with pytest.raises(ValidationError) as err:
        platform.municipality.record(
            MUNI, EventKind.BIRTH, {**baby, "household_id": hh, "resident_code": fresh_code(7)}
        )
    assert err.value.code == "birth.resident_code"
    change(platform, head["resident_code"], EventKind.MOVE_OUT, {"destination": "札幌市"})
    with pytest.raises(NotFoundError):  # the household has no active member any more
        platform.municipality.record(
            MUNI, EventKind.BIRTH, {**baby, "household_id": head["resident"]["household_id"]}
        )
    assert count_residents(platform) == 1


def test_unknown_resident_and_municipality(platform: Platform) -> None:
    with pytest.raises(ConflictError) as err:
        change(platform, "12345678901", EventKind.DEATH)
    assert err.value.status == 404
    with pytest.raises(NotFoundError):
        platform.municipality.record("011002", EventKind.MOVE_IN, person())
    with pytest.raises(ValidationError):
        platform.municipality.record("131042", EventKind.MOVE_IN, person())  # bad check digit


# -- deadlines -----------------------------------------------------------------------------

MOVE_DAY = D(2026, 10, 1)


DEADLINE_CASES = [(0, False), (13, False), (14, False), (15, True), (400, True)]


@pytest.mark.parametrize(
    "kind",
    [
        EventKind.MOVE_IN,
        EventKind.MOVE_WITHIN,
        EventKind.MOVE_OUT,
        EventKind.NAME_CHANGE,
        EventKind.HOUSEHOLD_CHANGE,
    ],
)
def test_fourteen_day_deadline(platform: Platform, clock: FixedClock, kind: EventKind) -> None:
    payloads: dict[EventKind, dict[str, Any]] = {
        EventKind.MOVE_WITHIN: {"address": "東京都新宿区西新宿2-8-1"},
        EventKind.MOVE_OUT: {"destination": "横浜市"},
        EventKind.NAME_CHANGE: {"family_name": "佐藤", "family_name_kana": "サトウ"},
        EventKind.HOUSEHOLD_CHANGE: {"household_id": "h2", "relationship": "世帯主"},
    }
    for i, (days, late) in enumerate(DEADLINE_CASES):
        at(clock, MOVE_DAY - dt.timedelta(days=30))
        if kind is EventKind.MOVE_IN:
            at(clock, MOVE_DAY + dt.timedelta(days=days))
            body = move_in(platform, nth_person(i, moved_on=MOVE_DAY.isoformat()))
        else:
            rc = move_in(platform, nth_person(i))["resident_code"]
            at(clock, MOVE_DAY + dt.timedelta(days=days))
            payload = {**payloads[kind], "occurred_on": MOVE_DAY.isoformat()}
            body = change(platform, rc, kind, payload)
        assert body["late"] is late, days
        assert body["deadline"] == (MOVE_DAY + dt.timedelta(days=14)).isoformat()
        event = next(e for e in all_events(platform) if e["seq"] == body["seq"])
        assert event["kind"] == kind
        assert event["late"] is late
        assert event["occurred_on"] == MOVE_DAY.isoformat()
        assert event["notified_on"] == (MOVE_DAY + dt.timedelta(days=days)).isoformat()


def test_birth_deadline_counts_the_day_of_birth(platform: Platform, clock: FixedClock) -> None:
    born = D(2026, 11, 1)
    at(clock, born)
    hh = move_in(platform, person())["resident"]["household_id"]
    for i, (days, late) in enumerate([(0, False), (13, False), (14, True), (15, True)]):
        at(clock, born + dt.timedelta(days=days))
        given, kana = GIVEN[i + 1]
        _, body, _ = platform.municipality.record(
            MUNI,
            EventKind.BIRTH,
            person(
                given_name=given,
                given_name_kana=kana,
                birth_date=born.isoformat(),
                household_id=hh,
                relationship="子",
            ),
        )
        assert body["late"] is late, days
        assert body["deadline"] == "2026-11-14"  # 14 days counting 11-01 itself


def test_death_deadline_is_seven_days(platform: Platform, clock: FixedClock) -> None:
    died = D(2026, 11, 1)
    for i, (days, late) in enumerate([(0, False), (6, False), (7, True)]):
        at(clock, died - dt.timedelta(days=10))
        rc = move_in(platform, nth_person(i))["resident_code"]
        at(clock, died + dt.timedelta(days=days))
        body = change(platform, rc, EventKind.DEATH, {"occurred_on": died.isoformat()})
        assert body["late"] is late, days
        assert body["deadline"] == "2026-11-07"


def test_explicit_notification_date_decides_lateness(platform: Platform, clock: FixedClock) -> None:
    at(clock, D(2026, 12, 31))
    body = move_in(platform, person(moved_on="2026-11-01", notified_on="2026-11-15"))
    assert body["late"] is False
    body = move_in(platform, nth_person(1, moved_on="2026-11-01", notified_on="2026-11-16"))
    assert body["late"] is True
    with pytest.raises(ValidationError):  # notified before it happened
        move_in(platform, nth_person(2, moved_on="2026-11-01", notified_on="2026-10-31"))
    with pytest.raises(ValidationError):  # notified in the future
        move_in(platform, nth_person(3, moved_on="2026-11-01", notified_on="2027-01-01"))


def test_future_and_impossible_dates_are_refused_without_writing(
    platform: Platform, clock: FixedClock
) -> None:
    tomorrow = (TODAY.date() + dt.timedelta(days=1)).isoformat()
    hh_body = move_in(platform, person())
    rc, hh = hh_body["resident_code"], hh_body["resident"]["household_id"]
    before = all_events(platform)
    numbers_before = platform.jlis.counts()
    attempts: list[Callable[[], object]] = [
        lambda: platform.municipality.record(
            MUNI, EventKind.BIRTH, person(birth_date=tomorrow, household_id=hh)
        ),
        lambda: platform.municipality.record(
            MUNI, EventKind.MOVE_IN, nth_person(1, birth_date=tomorrow)
        ),
        lambda: platform.municipality.record(
            MUNI, EventKind.MOVE_IN, nth_person(2, moved_on=tomorrow)
        ),
        lambda: change(platform, rc, EventKind.DEATH, {"occurred_on": tomorrow}),
        lambda: change(
            platform, rc, EventKind.MOVE_WITHIN, {"address": "別の住所1-1", "occurred_on": tomorrow}
        ),
        lambda: change(
            platform,
            rc,
            EventKind.NAME_CHANGE,
            {"family_name": "佐藤", "family_name_kana": "サトウ", "occurred_on": tomorrow},
        ),
        lambda: change(
            platform,
            rc,
            EventKind.MOVE_OUT,
            {
                "destination": "横浜市",
                "occurred_on": (TODAY.date() + dt.timedelta(days=15)).isoformat(),
            },
        ),
        lambda: platform.municipality.record(
            MUNI, EventKind.MOVE_IN, nth_person(5, birth_date="2026-02-30")
        ),
    ]
    for i, attempt in enumerate(attempts):
        with pytest.raises(ValidationError) as err:
            attempt()
        assert err.value.status == 422, i
    assert all_events(platform) == before
    assert count_residents(platform) == 1
    assert platform.jlis.counts() == numbers_before
    assert platform.municipality.get_resident(MUNI, rc)["status"] == "active"


def test_events_dated_before_birth_are_refused(platform: Platform) -> None:
    with pytest.raises(ValidationError):
        platform.municipality.record(
            MUNI, EventKind.MOVE_IN, person(birth_date="2000-01-01", moved_on="1999-12-31")
        )
    rc = move_in(platform, person())["resident_code"]
    with pytest.raises(ValidationError):
        change(platform, rc, EventKind.DEATH, {"occurred_on": "1979-01-01"})


def test_move_out_may_be_notified_in_advance(platform: Platform) -> None:
    rc = move_in(platform, person())["resident_code"]
    ahead = (TODAY.date() + dt.timedelta(days=14)).isoformat()
    body = change(platform, rc, EventKind.MOVE_OUT, {"destination": "京都市", "occurred_on": ahead})
    assert body["late"] is False
    assert body["resident"]["status"] == "moved_out"
    with pytest.raises(ValidationError):
        change(platform, move_in(platform, nth_person(1))["resident_code"], EventKind.MOVE_OUT, {})


# -- closed records ------------------------------------------------------------------------

CLOSING = [
    (EventKind.MOVE_OUT, {"destination": "大阪市"}, "moved_out"),
    (EventKind.DEATH, {}, "deceased"),
]
LATER = [
    (EventKind.MOVE_WITHIN, {"address": "東京都新宿区西新宿2-8-1"}),
    (EventKind.MOVE_OUT, {"destination": "名古屋市"}),
    (EventKind.DEATH, {}),
    (EventKind.NAME_CHANGE, {"family_name": "佐藤", "family_name_kana": "サトウ"}),
    (EventKind.HOUSEHOLD_CHANGE, {"household_id": "h9", "relationship": "世帯主"}),
]


@pytest.mark.parametrize(("closing", "closing_payload", "status"), CLOSING)
def test_events_on_a_closed_record_are_refused(
    platform: Platform, closing: EventKind, closing_payload: dict[str, Any], status: str
) -> None:
    rc = move_in(platform, person())["resident_code"]
    change(platform, rc, closing, closing_payload)
    snapshot = platform.municipality.get_resident(MUNI, rc)
    before = all_events(platform)
    for kind, payload in LATER:
        with pytest.raises(ConflictError) as err:
            change(platform, rc, kind, payload)
        assert err.value.code == "resident.not_active"
        assert err.value.status == 409
    assert all_events(platform) == before
    assert platform.municipality.get_resident(MUNI, rc) == snapshot
    assert snapshot["status"] == status


def test_a_moved_out_person_moving_back_keeps_code_and_number(
    platform: Platform, clock: FixedClock
) -> None:
    first = move_in(platform, person())
    rc = first["resident_code"]
    number = whole_number(platform, rc)
    change(platform, rc, EventKind.MOVE_OUT, {"destination": "大阪市"})
    clock.advance(dt.timedelta(days=200))
    back = move_in(platform, person(resident_code=rc, address="東京都新宿区大久保3-4-5"))
    assert back["resident_code"] == rc
    r = back["resident"]
    assert r["status"] == "active" and r["address"] == "東京都新宿区大久保3-4-5"
    assert r["individual_number"] == mask(number)
    assert whole_number(platform, rc) == number
    assert count_residents(platform) == 1
    assert platform.jlis.counts()["numbers"] == 1
    kinds = [e["kind"] for e in all_events(platform) if e["resident_code"] == rc]
    assert kinds == ["move_in", "number_assigned", "move_out", "move_in"]
    with pytest.raises(ConflictError) as err:  # already active again
        move_in(platform, person(resident_code=rc))
    assert err.value.code == "resident.already_active"


def test_a_deceased_person_cannot_move_back_in(platform: Platform) -> None:
    rc = move_in(platform, person())["resident_code"]
    change(platform, rc, EventKind.DEATH)
    before = all_events(platform)
    with pytest.raises(ConflictError) as err:
        move_in(platform, person(resident_code=rc))
    assert err.value.code == "resident.not_active"
    assert platform.municipality.get_resident(MUNI, rc)["status"] == "deceased"
    assert all_events(platform) == before


# -- idempotency (I8) ----------------------------------------------------------------------


def test_same_key_same_payload_replays(platform: Platform) -> None:
    s1, b1, r1 = platform.municipality.record(
        MUNI, EventKind.MOVE_IN, person(), idempotency_key="k-1"
    )
    s2, b2, r2 = platform.municipality.record(
        MUNI, EventKind.MOVE_IN, person(), idempotency_key="k-1"
    )
    assert (r1, r2) == (False, True)
    assert s1 == s2 == 201
    assert b1["resident_code"] == b2["resident_code"]
    assert b1["seq"] == b2["seq"]
    assert b1["resident"]["individual_number"] == b2["resident"]["individual_number"]
    assert count_residents(platform) == 1
    assert platform.jlis.counts()["numbers"] == 1
    assert [e["kind"] for e in all_events(platform)] == ["move_in", "number_assigned"]

    rc = b1["resident_code"]
    m1 = change(platform, rc, EventKind.MOVE_WITHIN, {"address": "新宿区西新宿2-8-1"}, key="mv")
    m2 = change(platform, rc, EventKind.MOVE_WITHIN, {"address": "新宿区西新宿2-8-1"}, key="mv")
    assert m1["seq"] == m2["seq"]
    assert [e["kind"] for e in all_events(platform)].count("move_within") == 1


def test_same_key_different_payload_is_refused(platform: Platform) -> None:
    platform.municipality.record(MUNI, EventKind.MOVE_IN, person(), idempotency_key="k-2")
    before = all_events(platform)
    with pytest.raises(ConflictError) as err:
        platform.municipality.record(
            MUNI, EventKind.MOVE_IN, person(given_name="次郎"), idempotency_key="k-2"
        )
    assert err.value.code == "idempotency.key_reused"
    assert all_events(platform) == before
    assert count_residents(platform) == 1
    rc = before[0]["resident_code"]
    change(platform, rc, EventKind.MOVE_WITHIN, {"address": "新宿区西新宿2-8-1"}, key="k-3")
    with pytest.raises(ConflictError) as err:
        change(platform, rc, EventKind.MOVE_WITHIN, {"address": "新宿区西新宿2-8-2"}, key="k-3")
    assert err.value.code == "idempotency.key_reused"
    assert platform.municipality.get_resident(MUNI, rc)["address"] == "新宿区西新宿2-8-1"


def test_a_refused_request_does_not_burn_its_key(platform: Platform) -> None:
    with pytest.raises(ValidationError):
        platform.municipality.record(
            MUNI, EventKind.MOVE_IN, person(sex="7"), idempotency_key="k-4"
        )
    _, body, replayed = platform.municipality.record(
        MUNI, EventKind.MOVE_IN, person(), idempotency_key="k-4"
    )
    assert replayed is False and body["resident"]["sex"] == 1


def _run_threads(n: int, target: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def go(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except BaseException as exc:  # collected and reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results, errors


def test_concurrent_births_with_one_key_create_one_resident(platform: Platform) -> None:
    hh = move_in(platform, person())["resident"]["household_id"]
    baby = person(
        given_name="陽菜",
        given_name_kana="ヒナ",
        birth_date="2026-11-25",
        sex="2",
        household_id=hh,
        relationship="子",
    )
    results, errors = _run_threads(
        8,
        lambda _: platform.municipality.record(MUNI, EventKind.BIRTH, baby, idempotency_key="b"),
    )
    assert errors == []
    codes = {body["resident_code"] for _, body, _ in results}
    assert len(codes) == 1
    assert sum(1 for _, _, replayed in results if not replayed) == 1
    assert {body["resident"]["individual_number"] for _, body, _ in results} != {None}
    assert len({body["resident"]["individual_number"] for _, body, _ in results}) == 1
    assert count_residents(platform) == 2
    assert len(platform.municipality.household(MUNI, hh)) == 2
    kinds = Counter(e["kind"] for e in all_events(platform))
    assert kinds == Counter({"move_in": 1, "birth": 1, "number_assigned": 2})
    assert platform.jlis.counts() == {"identities": 2, "numbers": 2}


def test_concurrent_move_ins_with_distinct_keys(platform: Platform) -> None:
    results, errors = _run_threads(
        8,
        lambda i: platform.municipality.record(
            MUNI, EventKind.MOVE_IN, nth_person(i), idempotency_key=f"m{i}"
        ),
    )
    assert errors == []
    codes = [body["resident_code"] for _, body, _ in results]
    assert len(set(codes)) == 8
    numbers = {whole_number(platform, rc) for rc in codes}
    assert len(numbers) == 8
    assert all(parse_individual(n) == n for n in numbers)
    assert count_residents(platform, "active") == 8
    platform.sync()
    for i, rc in enumerate(codes):
        p = nth_person(i)
        found = platform.jlis.five_item_query(
            FiveItems(
                p["family_name"] + p["given_name"],
                p["family_name_kana"] + p["given_name_kana"],
                D.fromisoformat(p["birth_date"]),
                1,
                p["address"],
            )
        )
        assert (found.outcome, found.resident_code) == ("found", rc)


def test_concurrent_changes_all_reach_the_mirror(platform: Platform) -> None:
    """The feed reader moves its cursor past every seq it has seen: an event committed later
    with a smaller seq would be lost to J-LIS for ever."""
    n = 16
    codes = [move_in(platform, nth_person(i))["resident_code"] for i in range(n)]
    _results, errors = _run_threads(
        n,
        lambda i: change(
            platform, codes[i], EventKind.MOVE_WITHIN, {"address": f"東京都中野区中野{i + 1}-2-3"}
        ),
    )
    assert errors == []
    platform.sync()
    events = all_events(platform)
    with platform.jlis.engine.connect() as conn:
        history = conn.execute(select(func.count()).select_from(jm.identity_history)).scalar_one()
        addresses = dict(
            conn.execute(select(jm.identities.c.resident_code, jm.identities.c.address)).all()
        )
    assert history == len(events)
    for i, rc in enumerate(codes):
        assert addresses[rc] == f"東京都中野区中野{i + 1}-2-3"


# -- numbers -------------------------------------------------------------------------------


def test_every_resident_gets_a_valid_unique_number(platform: Platform) -> None:
    codes = [move_in(platform, nth_person(i))["resident_code"] for i in range(12)]
    hh = platform.municipality.get_resident(MUNI, codes[0])["household_id"]
    for i in range(4):
        _, body, _ = platform.municipality.record(
            MUNI,
            EventKind.BIRTH,
            person(given_name=GIVEN[i][0], birth_date="2026-11-26", household_id=hh),
        )
        codes.append(body["resident_code"])
    numbers = [whole_number(platform, rc) for rc in codes]
    assert len(set(numbers)) == len(codes) == 16
    for rc, number in zip(codes, numbers, strict=True):
        assert parse_individual(number) == number
        assert platform.jlis.number_status(number) == ("active", rc)
        assert platform.municipality.get_resident(MUNI, rc)["individual_number"] == mask(number)
    assert platform.jlis.number_owners(numbers) == dict(zip(numbers, codes, strict=True))
    assert platform.jlis.assign_numbers(codes) == dict(zip(codes, numbers, strict=True))
    assert platform.jlis.counts()["numbers"] == 16


def test_change_number_retires_the_old_number_for_ever(platform: Platform) -> None:
    rc = move_in(platform, person())["resident_code"]
    other = move_in(platform, nth_person(1))["resident_code"]
    seen = [whole_number(platform, rc)]
    assert whole_number(platform, rc) == seen[0]
    for _ in range(4):
        status, body, replayed = platform.jlis.change_number(rc)
        assert status == 200 and replayed is False
        new = whole_number(platform, rc)
        assert body["individual_number"] == mask(new)
        assert parse_individual(new) == new
        assert new not in seen
        for old in seen:
            assert platform.jlis.number_status(old) == ("retired", rc)
        assert platform.jlis.number_status(new) == ("active", rc)
        seen.append(new)
    assert whole_number(platform, rc) == seen[-1]
    assert platform.jlis.assign_numbers([rc, rc]) == {rc: seen[-1]}
    assert platform.jlis.counts()["numbers"] == 6  # 5 of rc (4 retired) + 1 of the other
    assert whole_number(platform, other) not in seen
    with pytest.raises(NotFoundError):
        platform.jlis.change_number("12345678901")


def test_number_change_reaches_the_register(platform: Platform) -> None:
    rc = move_in(platform, person())["resident_code"]
    old = whole_number(platform, rc)
    _, body, _ = platform.number_change(rc, idempotency_key="nc-1")
    new = whole_number(platform, rc)
    assert new != old
    r = platform.municipality.get_resident(MUNI, rc)
    assert r["individual_number"] == mask(new) == body["individual_number"]
    changed = [e for e in all_events(platform) if e["kind"] == "number_changed"]
    assert len(changed) == 1
    assert changed[0]["resident_code"] == rc
    assert changed[0]["detail"] == {"number": mask(new)}
    assert new not in str(all_events(platform)) and old not in str(all_events(platform))
    # replay: no second change
    _, again, replayed = platform.number_change(rc, idempotency_key="nc-1")
    assert replayed is True and again == body
    assert whole_number(platform, rc) == new
    assert [e["kind"] for e in all_events(platform)].count("number_changed") == 1
    assert platform.jlis.number_status(old) == ("retired", rc)
    # the mirror verifies against the new number only
    items = FiveItems("山田太郎", "ヤマダタロウ", D(1980, 4, 1), 1, "東京都新宿区新宿一丁目1番1号")
    assert platform.jlis.five_item_query(items).individual_number == new
    assert platform.jlis.verify(old, items).number_status == "retired"


def test_crash_between_jlis_and_the_register_is_repaired(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(platform.municipality, "ensure_numbers", lambda *a, **k: 0)
    rc = move_in(platform, person())["resident_code"]
    assert platform.municipality.get_resident(MUNI, rc)["individual_number"] is None
    number = platform.jlis.assign_numbers([rc])[rc]  # J-LIS committed, the register did not
    monkeypatch.undo()
    assert platform.municipality.ensure_numbers(MUNI) == 1
    assert platform.municipality.get_resident(MUNI, rc)["individual_number"] == mask(number)
    assert whole_number(platform, rc) == number
    assert platform.municipality.ensure_numbers(MUNI) == 0
    assert [e["kind"] for e in all_events(platform)] == ["move_in", "number_assigned"]
    assert platform.jlis.counts()["numbers"] == 1


def test_crash_after_jlis_assigned_then_retry_with_the_same_key(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = platform.jlis.assign_numbers
    given: dict[str, str] = {}

    def crashing(codes: Any) -> dict[str, str]:
        given.update(real(codes))
        raise RuntimeError("power cut after J-LIS committed")

    monkeypatch.setattr(platform.jlis, "assign_numbers", crashing)
    with pytest.raises(RuntimeError):
        platform.municipality.record(MUNI, EventKind.MOVE_IN, person(), idempotency_key="c")
    monkeypatch.undo()
    ((rc, number),) = given.items()
    _, body, replayed = platform.municipality.record(
        MUNI, EventKind.MOVE_IN, person(), idempotency_key="c"
    )
    assert replayed is True
    assert body["resident_code"] == rc
    assert body["resident"]["individual_number"] == mask(number)
    assert whole_number(platform, rc) == number
    assert count_residents(platform) == 1
    assert platform.jlis.counts()["numbers"] == 1


def test_crash_during_number_change_is_repaired_by_the_retry(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc = move_in(platform, person())["resident_code"]
    old = whole_number(platform, rc)

    def crash(_rc: str) -> int:
        raise RuntimeError("crash before the register took the new number")

    monkeypatch.setattr(platform.municipality, "refresh_number", crash)
    with pytest.raises(RuntimeError):
        platform.number_change(rc, idempotency_key="x")
    new = whole_number(platform, rc)
    assert new != old
    assert platform.municipality.get_resident(MUNI, rc)["individual_number"] == mask(old)
    monkeypatch.undo()
    _, _, replayed = platform.number_change(rc, idempotency_key="x")
    assert replayed is True
    assert whole_number(platform, rc) == new  # not changed a second time
    assert platform.municipality.get_resident(MUNI, rc)["individual_number"] == mask(new)
    assert platform.jlis.counts()["numbers"] == 2


# -- a stateful model of the register (SQLite) ---------------------------------------------

FAMILIES = [("山田", "ヤマダ"), ("髙橋", "タカハシ"), ("佐藤", "サトウ"), ("渡邉", "ワタナベ")]
TOWNS = ["新宿", "西新宿", "大久保", "高田馬場"]

names = st.tuples(st.sampled_from(FAMILIES), st.sampled_from(GIVEN))
addresses = st.builds(
    lambda t, a, b, c: f"東京都新宿区{t}{a}丁目{b}番{c}号",
    st.sampled_from(TOWNS),
    st.integers(1, 3),
    st.integers(1, 4),
    st.integers(1, 3),
)
births = st.sampled_from([D(1950, 5, 5), D(1980, 4, 1), D(2001, 1, 1)]) | st.dates(
    D(1930, 1, 1), TODAY.date()
)
sexes = st.sampled_from([1, 2])


class RegisterMachine(RuleBasedStateMachine):
    """Random valid event sequences; a model says what the register and J-LIS must show.

    Names, birth dates and addresses are drawn from small pools so that namesakes, twins and
    people sharing earlier addresses occur."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.clock = FixedClock(TODAY)
        self.p = Platform(Settings(data_dir=Path(self.tmp.name) / "data"), self.clock)
        self.p.municipality.create_municipality(MUNI, "東京都", "新宿区")
        self.model: dict[str, dict[str, Any]] = {}
        self.retired: set[str] = set()
        self.last_seq = 0

    def teardown(self) -> None:
        self.p.close()
        self.tmp.cleanup()

    def _seq(self, body: dict[str, Any]) -> None:
        assert body["seq"] > self.last_seq
        self.last_seq = body["seq"]

    def _with(self, *statuses: str) -> list[str]:
        return sorted(rc for rc, r in self.model.items() if r["status"] in statuses)

    def _add(self, body: dict[str, Any], name: tuple[str, str, str, str], **items: Any) -> None:
        fam, giv, fam_k, giv_k = name
        self.model[body["resident_code"]] = {
            "status": "active",
            "name": name,
            "names": {fam + giv},
            "kanas": {fam_k + giv_k},
            "addresses": {items["address"]},
            "household_id": body["resident"]["household_id"],
            **items,
        }

    @rule(name=names, birth=births, address=addresses, sex=sexes)
    def move_in(
        self, name: tuple[tuple[str, str], tuple[str, str]], birth: dt.date, address: str, sex: int
    ) -> None:
        (fam, fam_k), (giv, giv_k) = name
        payload = person(
            family_name=fam,
            family_name_kana=fam_k,
            given_name=giv,
            given_name_kana=giv_k,
            birth_date=birth.isoformat(),
            sex=str(sex),
            address=address,
        )
        body = move_in(self.p, payload)
        self._seq(body)
        self._add(body, (fam, giv, fam_k, giv_k), birth_date=birth, sex=sex, address=address)

    @precondition(lambda self: self._with("active"))
    @rule(data=st.data(), name=st.sampled_from(GIVEN), sex=sexes)
    def birth(self, data: st.DataObject, name: tuple[str, str], sex: int) -> None:
        parent = self.model[data.draw(st.sampled_from(self._with("active")))]
        born = data.draw(st.dates(TODAY.date() - dt.timedelta(days=30), TODAY.date()))
        fam, _, fam_k, _ = parent["name"]
        _, body, _ = self.p.municipality.record(
            MUNI,
            EventKind.BIRTH,
            person(
                family_name=fam,
                family_name_kana=fam_k,
                given_name=name[0],
                given_name_kana=name[1],
                birth_date=born.isoformat(),
                sex=str(sex),
                address=parent["address"],
                household_id=parent["household_id"],
                relationship="子",
            ),
        )
        self._seq(body)
        assert body["resident"]["household_id"] == parent["household_id"]
        self._add(
            body,
            (fam, name[0], fam_k, name[1]),
            birth_date=born,
            sex=sex,
            address=parent["address"],
        )

    @precondition(lambda self: self._with("active"))
    @rule(data=st.data(), address=addresses)
    def move_within(self, data: st.DataObject, address: str) -> None:
        rc = data.draw(st.sampled_from(self._with("active")))
        if self.model[rc]["address"] == address:
            with pytest.raises(ValidationError):
                change(self.p, rc, EventKind.MOVE_WITHIN, {"address": address})
            return
        self._seq(change(self.p, rc, EventKind.MOVE_WITHIN, {"address": address}))
        self.model[rc]["address"] = address
        self.model[rc]["addresses"].add(address)

    @precondition(lambda self: self._with("active"))
    @rule(data=st.data())
    def move_out(self, data: st.DataObject) -> None:
        rc = data.draw(st.sampled_from(self._with("active")))
        self._seq(change(self.p, rc, EventKind.MOVE_OUT, {"destination": "大阪市北区"}))
        self.model[rc]["status"] = "moved_out"

    @precondition(lambda self: self._with("active"))
    @rule(data=st.data())
    def death(self, data: st.DataObject) -> None:
        rc = data.draw(st.sampled_from(self._with("active")))
        self._seq(change(self.p, rc, EventKind.DEATH))
        self.model[rc]["status"] = "deceased"

    @precondition(lambda self: self._with("active"))
    @rule(data=st.data(), family=st.sampled_from(FAMILIES))
    def name_change(self, data: st.DataObject, family: tuple[str, str]) -> None:
        rc = data.draw(st.sampled_from(self._with("active")))
        payload = {"family_name": family[0], "family_name_kana": family[1]}
        self._seq(change(self.p, rc, EventKind.NAME_CHANGE, payload))
        r = self.model[rc]
        _, giv, _, giv_k = r["name"]
        r["name"] = (family[0], giv, family[1], giv_k)
        r["names"].add(family[0] + giv)
        r["kanas"].add(family[1] + giv_k)

    @precondition(lambda self: self._with("moved_out"))
    @rule(data=st.data(), address=addresses)
    def move_back_in(self, data: st.DataObject, address: str) -> None:
        rc = data.draw(st.sampled_from(self._with("moved_out")))
        r = self.model[rc]
        fam, giv, fam_k, giv_k = r["name"]
        before = whole_number(self.p, rc)
        body = move_in(
            self.p,
            person(
                resident_code=rc,
                family_name=fam,
                given_name=giv,
                family_name_kana=fam_k,
                given_name_kana=giv_k,
                birth_date=r["birth_date"].isoformat(),
                sex=str(r["sex"]),
                address=address,
            ),
        )
        self._seq(body)
        assert body["resident_code"] == rc
        assert whole_number(self.p, rc) == before
        r.update(status="active", address=address, household_id=body["resident"]["household_id"])
        r["addresses"].add(address)

    @precondition(lambda self: self._with("moved_out", "deceased"))
    @rule(data=st.data(), kind=st.sampled_from([k for k, _ in LATER]))
    def closed_record_refuses_events(self, data: st.DataObject, kind: EventKind) -> None:
        rc = data.draw(st.sampled_from(self._with("moved_out", "deceased")))
        payload = dict(LATER)[kind]
        with pytest.raises(ConflictError):
            change(self.p, rc, kind, payload)
        if self.model[rc]["status"] == "deceased":
            with pytest.raises(ConflictError):
                move_in(self.p, person(resident_code=rc))

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def number_change(self, data: st.DataObject) -> None:
        rc = data.draw(st.sampled_from(sorted(self.model)))
        old = whole_number(self.p, rc)
        self.p.number_change(rc)
        assert whole_number(self.p, rc) != old
        assert self.p.jlis.number_status(old) == ("retired", rc)
        self.retired.add(old)

    @invariant()
    def register_mirror_and_numbers_agree(self) -> None:
        # events: strictly increasing, nothing after the last one we were told of
        seqs = [e["seq"] for e in all_events(self.p)]
        assert all(a < b for a, b in itertools.pairwise(seqs))
        assert not seqs or seqs[-1] >= self.last_seq
        # numbers: one active number per resident, all distinct, none ever retired
        with self.p.jlis.engine.connect() as conn:
            active = Counter(
                conn.execute(
                    select(jm.numbers.c.resident_code).where(jm.numbers.c.status == "active")
                ).scalars()
            )
            mirror = {r.resident_code: r for r in conn.execute(select(jm.identities))}
        assert set(active) == set(self.model)
        assert all(n == 1 for n in active.values())
        numbers = self.p.jlis.assign_numbers(sorted(self.model))
        assert len(set(numbers.values())) == len(numbers)
        assert not set(numbers.values()) & self.retired
        # the register matches the model
        for rc, want in self.model.items():
            got = self.p.municipality.get_resident(MUNI, rc)
            assert got["status"] == want["status"]
            assert (
                got["family_name"],
                got["given_name"],
                got["family_name_kana"],
                got["given_name_kana"],
            ) == want["name"]
            assert (got["birth_date"], got["sex"], got["address"]) == (
                want["birth_date"].isoformat(),
                want["sex"],
                want["address"],
            )
            assert got["individual_number"] == mask(numbers[rc])
        # the J-LIS mirror (fed only by the event feed) agrees with the register
        assert self.p.sync() == 0  # auto-sync already brought it up to date
        assert set(mirror) == set(self.model)
        for rc, want in self.model.items():
            row = mirror[rc]
            assert row.status == want["status"]
            assert (
                row.family_name,
                row.given_name,
                row.family_name_kana,
                row.given_name_kana,
            ) == want["name"]
            assert (row.birth_date, row.sex, row.address) == (
                want["birth_date"],
                want["sex"],
                want["address"],
            )
            fam, giv, fam_k, giv_k = want["name"]
            items = FiveItems(
                fam + giv, fam_k + giv_k, want["birth_date"], want["sex"], want["address"]
            )
            report = self.p.jlis.verify(numbers[rc], items)
            assert report.number_status == "active" and report.all_match
            # five-item query: exactly the people whose current or earlier values all match
            expected = [
                other
                for other, o in self.model.items()
                if (o["birth_date"], o["sex"]) == (want["birth_date"], want["sex"])
                and fam + giv in o["names"]
                and fam_k + giv_k in o["kanas"]
                and want["address"] in o["addresses"]
            ]
            found = self.p.jlis.five_item_query(items)
            if len(expected) == 1:
                assert (found.outcome, found.resident_code, found.status) == (
                    "found",
                    rc,
                    want["status"],
                )
                assert found.individual_number == numbers[rc]
            else:
                assert (found.outcome, found.candidates) == ("ambiguous", len(expected))
                assert found.resident_code is None and found.individual_number is None


TestRegisterMachine = RegisterMachine.TestCase
TestRegisterMachine.settings = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize(
    "attempt",
    ["move_in_relationship", "household_change_relationship", "move_in_household_nul"],
)
def test_values_the_register_cannot_hold_are_refused(platform: Platform, attempt: str) -> None:
    rc = move_in(platform, person())["resident_code"]
    before = all_events(platform)
    with pytest.raises(ValidationError):
        if attempt == "move_in_relationship":
            platform.municipality.record(
                MUNI, EventKind.MOVE_IN, nth_person(1, household_id="hx", relationship="妻" * 41)
            )
        elif attempt == "household_change_relationship":
            change(
                platform,
                rc,
                EventKind.HOUSEHOLD_CHANGE,
                {"household_id": "h", "relationship": "妻" * 41},
            )
        else:
            platform.municipality.record(
                MUNI, EventKind.MOVE_IN, nth_person(1, household_id="h\x00")
            )
    assert all_events(platform) == before

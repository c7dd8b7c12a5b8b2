"""J-LIS: the identity mirror fed by the municipality's event feed, the five-item query and
number verification — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from sqlalchemy import func, select

from conftest import MUNI
from mynumber.identity import FiveItems, ItemResult
from mynumber.jlis import models as jm
from mynumber.municipality.domain import EventKind
from mynumber.numbers import individual_check_digit
from mynumber.platform import Platform

D = dt.date
ADDRESS = "東京都新宿区西新宿二丁目8番1号"


def register(p: Platform, kind: EventKind = EventKind.MOVE_IN, **over: Any) -> str:
    payload: dict[str, Any] = {
        "family_name": "髙橋",
        "given_name": "一郎",
        "family_name_kana": "タカハシ",
        "given_name_kana": "イチロウ",
        "birth_date": "1985-06-15",
        "sex": "1",
        "postal_code": "1600023",
        "address": ADDRESS,
    }
    payload.update(over)
    rc: str = p.municipality.record(MUNI, kind, payload)[1]["resident_code"]
    return rc


def items(**over: Any) -> FiveItems:
    base: dict[str, Any] = {
        "name": "髙橋一郎",
        "name_kana": "タカハシイチロウ",
        "birth_date": D(1985, 6, 15),
        "sex": 1,
        "address": ADDRESS,
    }
    base.update(over)
    return FiveItems(**base)


def number_of(p: Platform, rc: str) -> str:
    return p.jlis.assign_number(rc)


def history_rows(p: Platform) -> int:
    with p.jlis.engine.connect() as conn:
        n: int = conn.execute(select(func.count()).select_from(jm.identity_history)).scalar_one()
    return n


def unissued_number(p: Platform) -> str:
    for body in range(10**10, 10**10 + 1000):
        candidate = f"{body:011d}"
        number = candidate + individual_check_digit(candidate)
        if p.jlis.number_status(number)[0] == "unknown":
            return number
    raise AssertionError("no free number found")


# -- five-item query -----------------------------------------------------------------------


def test_five_item_query_finds_the_person(platform: Platform) -> None:
    rc = register(platform)
    found = platform.jlis.five_item_query(items())
    assert found.outcome == "found"
    assert found.resident_code == rc
    assert found.individual_number == number_of(platform, rc)
    assert found.status == "active"
    assert found.candidates == 1


NOTATIONS: list[dict[str, Any]] = [
    {"name": "髙橋 一郎"},
    {"name": "高橋一郎"},  # variant kanji
    {"name": "高橋　一郎"},
    {"name_kana": "ﾀｶﾊｼ ｲﾁﾛｳ"},  # half-width
    {"name_kana": "たかはし いちろう"},  # hiragana
    {"name_kana": " タカハシ　イチロウ "},
    {"address": "東京都新宿区西新宿2-8-1"},
    {"address": "東京都新宿区西新宿２丁目８番１号"},
    {"address": "東京都新宿区 西新宿 2-8-1"},
    {
        "name": "高橋 一郎",
        "name_kana": "ﾀｶﾊｼｲﾁﾛｳ",
        "address": "東京都新宿区西新宿2丁目8-1",
    },
]


def test_query_is_found_through_documented_notation_differences(platform: Platform) -> None:
    rc = register(platform)
    for variant in NOTATIONS:
        found = platform.jlis.five_item_query(items(**variant))
        assert (found.outcome, found.resident_code) == ("found", rc), variant


def test_registered_in_one_notation_queried_in_another(platform: Platform) -> None:
    rc = register(
        platform,
        family_name="高橋",
        family_name_kana="ﾀｶﾊｼ",  # stored as full-width katakana
        given_name_kana="いちろう",
        address="東京都新宿区西新宿2-8-1",
    )
    found = platform.jlis.five_item_query(items())  # 髙橋, 二丁目8番1号
    assert (found.outcome, found.resident_code) == ("found", rc)


WRONG: list[dict[str, Any]] = [
    {"name": "髙橋二郎"},
    {"name": "高梨一郎"},
    {"name_kana": "タカハシジロウ"},
    {"name_kana": "タカバシイチロウ"},
    {"birth_date": D(1985, 6, 16)},
    {"birth_date": D(1985, 1, 15)},
    {"birth_date": D(1958, 6, 15)},
    {"sex": 2},
    {"address": "東京都新宿区西新宿2-8-2"},
    {"address": "東京都新宿区西新宿二丁目8番"},
    {"address": ""},
    {"name": ""},
]


def test_one_wrong_item_finds_no_one(platform: Platform) -> None:
    register(platform)
    assert platform.jlis.five_item_query(items()).outcome == "found"
    for wrong in WRONG:
        found = platform.jlis.five_item_query(items(**wrong))
        assert found.outcome == "none", wrong
        assert found.resident_code is None and found.individual_number is None


def test_twins_are_told_apart(platform: Platform) -> None:
    head = register(platform)
    hh = platform.municipality.get_resident(MUNI, head)["household_id"]
    twins = {}
    for given, kana in (("翔", "ショウ"), ("翼", "ツバサ")):
        twins[given] = register(
            platform,
            EventKind.BIRTH,
            given_name=given,
            given_name_kana=kana,
            birth_date="2026-11-20",
            household_id=hh,
            relationship="子",
        )
    for given, kana in (("翔", "ショウ"), ("翼", "ツバサ")):
        found = platform.jlis.five_item_query(
            items(name=f"髙橋{given}", name_kana=f"タカハシ{kana}", birth_date=D(2026, 11, 20))
        )
        assert (found.outcome, found.resident_code) == ("found", twins[given])
        assert found.individual_number == number_of(platform, twins[given])
    assert number_of(platform, twins["翔"]) != number_of(platform, twins["翼"])
    # a mixed-up claim (one twin's kanji with the other's kana) finds neither
    mixed = items(name="髙橋翔", name_kana="タカハシツバサ", birth_date=D(2026, 11, 20))
    assert platform.jlis.five_item_query(mixed).outcome == "none"


def test_identical_people_are_ambiguous_never_a_guess(platform: Platform) -> None:
    a = register(platform)
    b = register(platform, family_name="高橋", address="東京都新宿区西新宿2-8-1")
    assert a != b
    found = platform.jlis.five_item_query(items())
    assert found.outcome == "ambiguous"
    assert found.candidates == 2
    assert found.resident_code is None and found.individual_number is None and found.status is None
    # once one of them moves, the other's current items ...still match the mover's earlier ones
    platform.municipality.record(
        MUNI, EventKind.MOVE_WITHIN, {"address": "東京都新宿区大久保1-1-1"}, resident_code=b
    )
    assert platform.jlis.five_item_query(items()).outcome == "ambiguous"
    found = platform.jlis.five_item_query(items(address="東京都新宿区大久保1-1-1"))
    assert (found.outcome, found.resident_code) == ("found", b)


def test_closed_records_are_found_with_their_status(platform: Platform) -> None:
    rc = register(platform)
    platform.municipality.record(MUNI, EventKind.DEATH, {}, resident_code=rc)
    found = platform.jlis.five_item_query(items())
    assert (found.outcome, found.resident_code, found.status) == ("found", rc, "deceased")
    other = register(platform, given_name="次郎", given_name_kana="ジロウ")
    platform.municipality.record(
        MUNI, EventKind.MOVE_OUT, {"destination": "大阪市"}, resident_code=other
    )
    found = platform.jlis.five_item_query(items(name="高橋次郎", name_kana="タカハシジロウ"))
    assert (found.outcome, found.resident_code, found.status) == ("found", other, "moved_out")


# -- earlier values ------------------------------------------------------------------------


def test_after_a_move_the_old_address_still_finds_the_person(platform: Platform) -> None:
    rc = register(platform)
    number = number_of(platform, rc)
    platform.municipality.record(
        MUNI, EventKind.MOVE_WITHIN, {"address": "東京都新宿区大久保三丁目4番5号"}, resident_code=rc
    )
    for address in (ADDRESS, "東京都新宿区西新宿2-8-1", "東京都新宿区大久保3-4-5"):
        found = platform.jlis.five_item_query(items(address=address))
        assert (found.outcome, found.resident_code) == ("found", rc), address

    old = platform.jlis.verify(number, items(address="東京都新宿区西新宿2-8-1"))
    by = {r.item: r for r in old.items}
    assert by["address"].result is ItemResult.MISMATCH
    assert by["address"].matches_earlier is True
    assert old.all_match is False and old.all_match_or_earlier is True
    assert old.number_status == "active"
    new = platform.jlis.verify(number, items(address="東京都新宿区大久保3-4-5"))
    assert new.all_match
    assert {r.item: r.result for r in new.items}["address"] is ItemResult.NORMALISED
    never = platform.jlis.verify(number, items(address="東京都新宿区大久保3-4-6"))
    assert never.all_match_or_earlier is False


def test_after_a_name_change_the_old_name_still_finds_the_person(platform: Platform) -> None:
    rc = register(platform)
    number = number_of(platform, rc)
    platform.municipality.record(
        MUNI,
        EventKind.NAME_CHANGE,
        {"family_name": "佐藤", "family_name_kana": "サトウ"},
        resident_code=rc,
    )
    for name, kana in (("髙橋一郎", "タカハシイチロウ"), ("佐藤一郎", "サトウイチロウ")):
        found = platform.jlis.five_item_query(items(name=name, name_kana=kana))
        assert (found.outcome, found.resident_code) == ("found", rc), name
    old = platform.jlis.verify(number, items())
    by = {r.item: r for r in old.items}
    assert by["name"].result is ItemResult.MISMATCH and by["name"].matches_earlier
    assert by["name_kana"].result is ItemResult.MISMATCH and by["name_kana"].matches_earlier
    assert not old.all_match and old.all_match_or_earlier
    current = platform.jlis.verify(number, items(name="佐藤一郎", name_kana="サトウイチロウ"))
    assert current.all_match
    # a name never recorded is no excuse
    assert not platform.jlis.verify(number, items(name="鈴木一郎")).all_match_or_earlier


def test_earlier_values_accumulate_across_several_changes(platform: Platform) -> None:
    rc = register(platform)
    for town in ("大久保1-1-1", "高田馬場2-2-2", "新宿3-3-3"):
        platform.municipality.record(
            MUNI, EventKind.MOVE_WITHIN, {"address": f"東京都新宿区{town}"}, resident_code=rc
        )
    for address in (ADDRESS, "東京都新宿区大久保1-1-1", "東京都新宿区高田馬場2-2-2"):
        found = platform.jlis.five_item_query(items(address=address))
        assert found.resident_code == rc, address


# -- verify --------------------------------------------------------------------------------


def test_verify_reports_each_item(platform: Platform) -> None:
    rc = register(platform)
    number = number_of(platform, rc)
    exact = platform.jlis.verify(number, items())
    assert exact.number_status == "active"
    assert [r.result for r in exact.items] == [ItemResult.MATCH] * 5
    assert exact.all_match and exact.all_match_or_earlier

    loose = platform.jlis.verify(
        number,
        items(name="高橋 一郎", name_kana="たかはしいちろう", address="東京都新宿区西新宿2-8-1"),
    )
    assert [r.result for r in loose.items] == [
        ItemResult.NORMALISED,
        ItemResult.NORMALISED,
        ItemResult.MATCH,
        ItemResult.MATCH,
        ItemResult.NORMALISED,
    ]
    assert loose.all_match

    wrong = platform.jlis.verify(number, items(sex=2, birth_date=D(1985, 6, 16)))
    assert [r.result for r in wrong.items] == [
        ItemResult.MATCH,
        ItemResult.MATCH,
        ItemResult.MISMATCH,
        ItemResult.MISMATCH,
        ItemResult.MATCH,
    ]
    assert not wrong.all_match and not wrong.all_match_or_earlier


def test_verify_unknown_and_retired_numbers(platform: Platform) -> None:
    rc = register(platform)
    unknown = platform.jlis.verify(unissued_number(platform), items())
    assert unknown.number_status == "unknown"
    assert not unknown.all_match and not unknown.all_match_or_earlier
    old = number_of(platform, rc)
    platform.number_change(rc)
    retired = platform.jlis.verify(old, items())
    assert retired.number_status == "retired"
    current = platform.jlis.verify(number_of(platform, rc), items())
    assert current.number_status == "active" and current.all_match
    assert platform.jlis.five_item_query(items()).individual_number == number_of(platform, rc)


def test_a_family_members_number_never_all_matches(platform: Platform) -> None:
    parent = register(platform)
    hh = platform.municipality.get_resident(MUNI, parent)["household_id"]
    child = register(
        platform,
        EventKind.BIRTH,
        given_name="一",
        given_name_kana="ハジメ",
        birth_date="2026-11-01",
        household_id=hh,
        relationship="子",
    )
    child_items = items(name="髙橋一", name_kana="タカハシハジメ", birth_date=D(2026, 11, 1))
    # the parent's number typed against the child's five items
    report = platform.jlis.verify(number_of(platform, parent), child_items)
    assert report.number_status == "active"
    assert not report.all_match and not report.all_match_or_earlier
    mismatched = {r.item for r in report.items if r.result is ItemResult.MISMATCH}
    assert {"name", "name_kana", "birth_date"} <= mismatched
    # and the other way round
    report = platform.jlis.verify(number_of(platform, child), items())
    assert not report.all_match and not report.all_match_or_earlier
    # the child's own number does match
    assert platform.jlis.verify(number_of(platform, child), child_items).all_match


# -- the mirror is fed by the event feed only ----------------------------------------------


def test_mirror_follows_the_feed_and_sync_is_idempotent(platform: Platform) -> None:
    platform.auto_sync = False
    rc = register(platform)
    assert platform.jlis.five_item_query(items()).outcome == "none"  # not synced yet
    assert platform.jlis.counts()["identities"] == 0
    applied = platform.sync()
    assert applied == len(platform.municipality.events(MUNI))  # move_in + number_assigned
    assert applied == 2
    assert platform.sync() == 0
    assert platform.jlis.five_item_query(items()).resident_code == rc
    assert history_rows(platform) == 2

    platform.municipality.record(
        MUNI, EventKind.MOVE_WITHIN, {"address": "東京都新宿区大久保1-1-1"}, resident_code=rc
    )
    assert platform.jlis.verify(number_of(platform, rc), items()).all_match  # still stale
    assert platform.sync() == 1
    assert platform.sync() == 0
    assert not platform.jlis.verify(number_of(platform, rc), items()).all_match
    assert history_rows(platform) == 3


def test_ingesting_the_same_events_twice_changes_nothing(platform: Platform) -> None:
    platform.auto_sync = False
    rc = register(platform)
    platform.municipality.record(
        MUNI, EventKind.MOVE_WITHIN, {"address": "東京都新宿区大久保1-1-1"}, resident_code=rc
    )
    platform.municipality.record(
        MUNI,
        EventKind.NAME_CHANGE,
        {"family_name": "佐藤", "family_name_kana": "サトウ"},
        resident_code=rc,
    )
    events = platform.municipality.identity_events(MUNI, 0, 1000)
    assert len(events) == 4
    assert platform.jlis.ingest(MUNI, events[:2]) == 2
    assert platform.jlis.ingest(MUNI, events[:2]) == 0
    assert history_rows(platform) == 2
    assert platform.jlis.ingest(MUNI, events) == 2  # only the two not yet applied
    assert platform.jlis.ingest(MUNI, events) == 0
    assert platform.jlis.ingest(MUNI, list(reversed(events))) == 0
    assert history_rows(platform) == 4
    assert platform.sync() == 0
    assert history_rows(platform) == 4
    with platform.jlis.engine.connect() as conn:
        seqs = list(conn.execute(select(jm.identity_history.c.seq)).scalars())
        row = conn.execute(select(jm.identities)).one()
    assert sorted(seqs) == [e.seq for e in events]
    assert (row.family_name, row.address) == ("佐藤", "東京都新宿区大久保1-1-1")
    # earlier values were recorded exactly once each
    assert row.earlier_address_keys.count("\x1f") == 0 and row.earlier_address_keys
    assert row.earlier_name_keys == "髙橋一郎".replace("髙", "高")
    found = platform.jlis.five_item_query(items())
    assert (found.outcome, found.resident_code) == ("found", rc)


def test_a_new_jlis_replica_rebuilds_the_same_mirror(platform: Platform) -> None:
    """Replaying the whole feed from seq 0 into an empty mirror gives the same answers."""
    rc = register(platform)
    platform.municipality.record(
        MUNI, EventKind.MOVE_WITHIN, {"address": "東京都新宿区大久保1-1-1"}, resident_code=rc
    )
    with platform.jlis.engine.begin() as conn:
        for table in (jm.identities, jm.identity_history, jm.feed_cursors):
            conn.execute(table.delete())
    assert platform.jlis.five_item_query(items()).outcome == "none"
    assert platform.sync() == 3
    assert history_rows(platform) == 3
    found = platform.jlis.five_item_query(items())  # the old address, an earlier value
    assert (found.outcome, found.resident_code) == ("found", rc)


def test_concurrent_syncs_apply_each_event_once(platform: Platform) -> None:
    platform.auto_sync = False
    codes = [
        register(platform, given_name=g, given_name_kana=k)
        for g, k in (("一郎", "イチロウ"), ("次郎", "ジロウ"), ("三郎", "サブロウ"))
    ]
    platform.municipality.record(
        MUNI, EventKind.MOVE_WITHIN, {"address": "東京都新宿区大久保1-1-1"}, resident_code=codes[0]
    )
    n_events = len(platform.municipality.events(MUNI))
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def go() -> None:
        barrier.wait()
        try:
            platform.jlis.sync(platform.municipality, batch=2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert history_rows(platform) == n_events
    assert platform.sync() == 0
    found = platform.jlis.five_item_query(items(address="東京都新宿区大久保1-1-1"))
    assert found.resident_code == codes[0]


def test_a_move_between_municipalities_synced_in_one_batch(platform: Platform) -> None:
    platform.municipality.create_municipality("011002", "北海道", "札幌市")
    # move from the municipality sync visits last to the one it visits first
    codes = platform.municipality.municipality_codes()
    src, dst = codes[-1], codes[0]
    platform.auto_sync = False  # e.g. a deferred sync, or a new replica replaying the feed
    person = {
        "family_name": "髙橋",
        "given_name": "一郎",
        "family_name_kana": "タカハシ",
        "given_name_kana": "イチロウ",
        "birth_date": "1985-06-15",
        "sex": "1",
        "address": ADDRESS,
    }
    rc = platform.municipality.record(src, EventKind.MOVE_IN, person)[1]["resident_code"]
    platform.municipality.record(
        src, EventKind.MOVE_OUT, {"destination": "転居先"}, resident_code=rc
    )
    new_address = "北海道札幌市中央区北一条西二丁目1番地"
    _, body, _ = platform.municipality.record(
        dst, EventKind.MOVE_IN, {**person, "resident_code": rc, "address": new_address}
    )
    assert body["resident"]["status"] == "active"
    platform.sync()
    found = platform.jlis.five_item_query(items(address=new_address))
    assert (found.outcome, found.resident_code) == ("found", rc)
    assert found.status == "active"  # the register says so; the mirror must agree

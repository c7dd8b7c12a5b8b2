"""Pure tests of mynumber.identity: the five items, their comparison keys and per-item reports."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mynumber.identity import (
    ITEMS,
    FiveItems,
    ItemResult,
    RegisteredIdentity,
    compare,
    keys_of,
)
from mynumber.jtext import normalise_kana, normalise_name

BORN = dt.date(1985, 6, 15)
REGISTERED = FiveItems("髙橋一郎", "タカハシイチロウ", BORN, 1, "東京都新宿区西新宿二丁目8番1号")


def results(claim: FiveItems, person: RegisteredIdentity | None = None) -> dict[str, ItemResult]:
    report = compare(claim, person or RegisteredIdentity(REGISTERED))
    return {r.item: r.result for r in report.items}


def claim(**over: object) -> FiveItems:
    items = {
        "name": REGISTERED.name,
        "name_kana": REGISTERED.name_kana,
        "birth_date": REGISTERED.birth_date,
        "sex": REGISTERED.sex,
        "address": REGISTERED.address,
    }
    items.update(over)
    return FiveItems(**items)  # type: ignore[arg-type]


def test_exact_claim_matches_every_item_in_order() -> None:
    report = compare(REGISTERED, RegisteredIdentity(REGISTERED))
    assert tuple(r.item for r in report.items) == ITEMS
    assert all(r.result is ItemResult.MATCH for r in report.items)
    assert not any(r.matches_earlier for r in report.items)
    assert report.all_match and report.all_match_or_earlier


def test_surrounding_white_space_is_still_an_exact_match() -> None:
    got = results(
        claim(name=" 髙橋一郎 ", name_kana="タカハシイチロウ\n", address="\t" + REGISTERED.address)
    )
    assert set(got.values()) == {ItemResult.MATCH}


@pytest.mark.parametrize(
    ("name", "kana"),
    [
        ("髙橋 一郎", "タカハシ イチロウ"),
        ("髙橋　一郎", "タカハシ　イチロウ"),
        (" 髙橋  一郎", "タカハシイチロウ"),
    ],
)
def test_the_space_between_family_and_given_name_is_as_written(name: str, kana: str) -> None:
    # DESIGN: full names are "family and given separated by a space, or not": no variant.
    got = results(claim(name=name, name_kana=kana))
    assert set(got.values()) == {ItemResult.MATCH}
    # a space inside a name part is not a separator a name may have, but folds the same way
    assert results(claim(name="髙 橋一郎"))["name"] is ItemResult.MATCH


NAME_CHARS = st.sampled_from(
    list(" \u3000aezAEZ\u0301\u0308\u3099\u309aカハタｶﾊ゛髙高々-ーｰ・\u1100\u1161")
)


@settings(max_examples=2000, deadline=None)
@given(
    a=st.text(NAME_CHARS, max_size=8),
    spaces=st.lists(st.tuples(st.integers(0, 8), st.sampled_from([" ", "\u3000"])), max_size=3),
)
def test_a_name_as_written_always_has_the_same_key(a: str, spaces: list[tuple[int, str]]) -> None:
    # Batch linkage's pool (agency.bulk.MAY_BE_TOLERANT) compares keys: a match as written must
    # never have another key. `b` is `a` with spaces put in anywhere — before a combining mark too.
    b = a
    for at, space in spaces:
        b = b[:at] + space + b[at:]
    for item, norm in (("name", normalise_name), ("name_kana", normalise_kana)):
        got = results(claim(**{item: a}), RegisteredIdentity(replace(REGISTERED, **{item: b})))
        if got[item] is ItemResult.MATCH:
            assert norm(a) == norm(b), (item, a, b)


def test_a_space_that_parts_a_mark_from_its_letter_is_not_as_written() -> None:
    person = RegisteredIdentity(replace(REGISTERED, name="Jose\u3000\u0301 Ruiz"))
    assert results(claim(name="Jose\u0301 Ruiz"), person)["name"] is not ItemResult.MATCH


@pytest.mark.parametrize(
    ("item", "value"),
    [
        ("name", "高橋一郎"),  # variant kanji 髙 → 高
        ("name", "髙橋\u200b一郎"),  # a zero-width space
        ("name_kana", "ﾀｶﾊｼ ｲﾁﾛｳ"),  # half-width
        ("name_kana", "たかはし いちろう"),  # hiragana
        ("address", "東京都新宿区西新宿2-8-1"),
        ("address", "東京都新宿区西新宿２－８－１"),  # full-width digits and dashes
        ("address", "東京都新宿区西新宿2丁目8番1号"),
        ("address", "東京都 新宿区 西新宿 2-8-1"),
    ],
)
def test_documented_normalisation_gives_match_normalised(item: str, value: str) -> None:
    got = results(claim(**{item: value}))
    assert got[item] is ItemResult.NORMALISED
    assert all(v is ItemResult.MATCH for k, v in got.items() if k != item)
    assert compare(claim(**{item: value}), RegisteredIdentity(REGISTERED)).all_match


@pytest.mark.parametrize(
    ("item", "value"),
    [
        ("name", "高橋二郎"),
        ("name", "高梨一郎"),
        ("name", "髙橋一"),
        ("name", ""),
        ("name_kana", "タカハシジロウ"),
        ("name_kana", "タカハシイチロ"),
        ("name_kana", "タカハシイチロー"),  # ー is the vowel of ロ (オ), not ウ
        ("name_kana", ""),
        ("birth_date", dt.date(1985, 6, 16)),
        ("birth_date", dt.date(1986, 6, 15)),
        ("birth_date", dt.date(1985, 1, 6)),
        ("sex", 2),
        ("address", "東京都新宿区西新宿2-8-2"),
        ("address", "東京都新宿区西新宿2-8"),
        ("address", "東京都新宿区東新宿2-8-1"),
        ("address", "新宿区西新宿2-8-1"),  # without the prefecture: not the same notation
        ("address", ""),
    ],
)
def test_a_different_value_is_a_mismatch(item: str, value: object) -> None:
    c = claim(**{item: value})
    report = compare(c, RegisteredIdentity(REGISTERED))
    got = {r.item: r for r in report.items}
    assert got[item].result is ItemResult.MISMATCH
    assert got[item].matches_earlier is False
    assert not report.all_match
    assert not report.all_match_or_earlier
    assert all(r.result is not ItemResult.MISMATCH for r in report.items if r.item != item)


def test_distinct_look_alike_kanji_are_not_folded() -> None:
    person = RegisteredIdentity(
        FiveItems("斎藤花子", "サイトウハナコ", BORN, 2, "東京都港区芝公園4-2-8")
    )
    for other in ("斉藤花子", "齊藤花子"):
        got = compare(FiveItems(other, "サイトウハナコ", BORN, 2, "東京都港区芝公園4-2-8"), person)
        assert got.items[0].result is ItemResult.MISMATCH, other
    got = compare(FiveItems("齋藤花子", "サイトウハナコ", BORN, 2, "東京都港区芝公園4-2-8"), person)
    assert got.items[0].result is ItemResult.NORMALISED  # 齋 is the old form of 斎


def earlier_person() -> RegisteredIdentity:
    old = keys_of("山田花子", "ヤマダハナコ", "東京都中野区中野4-1-1")
    return RegisteredIdentity(
        FiveItems("佐藤花子", "サトウハナコ", BORN, 2, "東京都新宿区新宿3-1-1"),
        earlier_name_keys=(old.name,),
        earlier_kana_keys=(old.name_kana,),
        earlier_address_keys=(old.address, keys_of("", "", "大阪府大阪市北区梅田1-1-1").address),
    )


def test_an_earlier_value_is_a_mismatch_flagged_as_earlier() -> None:
    person = earlier_person()
    c = FiveItems("山田 花子", "やまだ はなこ", BORN, 2, "東京都中野区中野四丁目1番1号")
    report = compare(c, person)
    got = {r.item: r for r in report.items}
    for item in ("name", "name_kana", "address"):
        assert got[item].result is ItemResult.MISMATCH
        assert got[item].matches_earlier is True
    assert got["birth_date"].result is ItemResult.MATCH
    assert not report.all_match
    assert report.all_match_or_earlier


def test_earlier_values_only_excuse_their_own_item() -> None:
    person = earlier_person()
    # the earlier address written as a name, a never-recorded address, a wrong birth date
    c = FiveItems("佐藤花子", "サトウハナコ", BORN, 2, "東京都中野区中野4-1-9")
    report = compare(c, person)
    assert report.items[4].result is ItemResult.MISMATCH
    assert report.items[4].matches_earlier is False
    assert not report.all_match_or_earlier
    c = FiveItems("佐藤花子", "サトウハナコ", dt.date(1985, 6, 16), 2, "東京都中野区中野4-1-1")
    report = compare(c, person)
    assert report.items[2].result is ItemResult.MISMATCH
    assert report.items[2].matches_earlier is False
    assert report.items[4].matches_earlier is True
    assert not report.all_match_or_earlier
    c = FiveItems("ヤマダハナコ", "サトウハナコ", BORN, 2, "東京都新宿区新宿3-1-1")
    report = compare(c, person)  # an earlier kana key is no excuse for the kanji name
    assert report.items[0].result is ItemResult.MISMATCH
    assert report.items[0].matches_earlier is False


def test_a_current_value_is_never_reported_as_earlier() -> None:
    person = RegisteredIdentity(
        REGISTERED, earlier_name_keys=(keys_of(REGISTERED.name, "", "").name,)
    )
    report = compare(claim(name="高橋 一郎"), person)
    assert report.items[0].result is ItemResult.NORMALISED
    assert report.items[0].matches_earlier is False


def test_an_empty_claim_never_matches_an_empty_earlier_key() -> None:
    person = RegisteredIdentity(
        REGISTERED, earlier_name_keys=("",), earlier_kana_keys=("",), earlier_address_keys=("",)
    )
    report = compare(claim(name="", name_kana=" ", address="\u3000"), person)
    for r in report.items:
        if r.item in ("name", "name_kana", "address"):
            assert r.result is ItemResult.MISMATCH and r.matches_earlier is False
    assert not report.all_match_or_earlier


def test_a_family_members_items_never_all_match() -> None:
    parent = RegisteredIdentity(REGISTERED)
    child = FiveItems("髙橋花子", "タカハシハナコ", dt.date(2015, 3, 3), 2, REGISTERED.address)
    report = compare(child, parent)
    assert not report.all_match and not report.all_match_or_earlier
    assert [r.item for r in report.items if r.result is ItemResult.MISMATCH] == [
        "name",
        "name_kana",
        "birth_date",
        "sex",
    ]
    twin = FiveItems("髙橋二郎", "タカハシジロウ", BORN, 1, REGISTERED.address)
    report = compare(twin, parent)
    assert [r.item for r in report.items if r.result is ItemResult.MISMATCH] == [
        "name",
        "name_kana",
    ]


def test_keys_of() -> None:
    k = keys_of("髙橋 一郎", "ﾀｶﾊｼ ｲﾁﾛｳ", "東京都新宿区西新宿二丁目8番1号")
    assert k.name == "高橋一郎"
    assert k.name_kana == "タカハシイチロウ"
    assert k.address == "東京都新宿区西新宿2-8-1"
    assert k == keys_of("高橋一郎", "たかはしいちろう", "東京都新宿区西新宿2-8-1")
    assert keys_of("斎藤", "サイトウ", "x").name != keys_of("斉藤", "サイトウ", "x").name
    assert keys_of("", "", "") == keys_of(" ", "\u3000", "")
    assert keys_of("", "", "").name == ""


texts = st.text(
    alphabet=st.sampled_from(
        list("髙高橋渡邉辺斎齋斉藤山田一二三丁目番号 　-ｰーアイウカタハシﾀｶﾊｼたかはし0123４5")
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(name=texts, kana=texts, address=texts)
def test_keys_are_idempotent(name: str, kana: str, address: str) -> None:
    k = keys_of(name, kana, address)
    assert keys_of(k.name, k.name_kana, k.address) == k


@settings(max_examples=300, deadline=None)
@given(
    name=texts,
    kana=texts,
    address=texts,
    other=texts,
    born=st.dates(dt.date(1900, 1, 1), dt.date(2026, 11, 26)),
    sex=st.sampled_from([1, 2]),
)
def test_compare_properties(
    name: str, kana: str, address: str, other: str, born: dt.date, sex: int
) -> None:
    person = FiveItems(name, kana, born, sex, address)
    # a person always matches themselves
    assert compare(person, RegisteredIdentity(person)).all_match
    # the result for a text item agrees with its key
    report = compare(FiveItems(other, other, born, sex, other), RegisteredIdentity(person))
    k_claim = keys_of(other, other, other)
    k_reg = keys_of(name, kana, address)
    for r, mine, theirs, raw_c, raw_r in zip(
        (report.items[0], report.items[1], report.items[4]),
        (k_claim.name, k_claim.name_kana, k_claim.address),
        (k_reg.name, k_reg.name_kana, k_reg.address),
        (other, other, other),
        (name, kana, address),
        strict=True,
    ):
        if raw_c.strip() == raw_r.strip():
            assert r.result is ItemResult.MATCH
        elif mine and mine == theirs:
            assert r.result is ItemResult.NORMALISED
        else:
            assert r.result is ItemResult.MISMATCH
        assert r.matches_earlier is False
    # all_match is exactly "no mismatch"
    assert report.all_match == all(r.result is not ItemResult.MISMATCH for r in report.items)
    assert report.all_match_or_earlier == report.all_match

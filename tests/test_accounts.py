"""Public-funds account registration checks (pure): the holder's kana, shared accounts."""

from __future__ import annotations

import jaconv
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mynumber.jtext import normalise_kana
from mynumber.portal.accounts import Holder, check_registration, parse_account

TARO = Holder("p1", "ヤマダ タロウ", (), "h1", "世帯主")


@pytest.mark.parametrize(
    "written",
    ["ﾔﾏﾀﾞ ﾀﾛｳ", "ﾔﾏﾀﾞﾀﾛｳ", "やまだ たろう", "ヤマダ　タロウ", " ヤマダ タロウ "],
)
def test_the_holders_kana_as_banks_write_it_is_accepted(written: str) -> None:
    check = check_registration(written, TARO, [])
    assert (check.accepted, check.review, check.reasons) == (True, False, ())


@pytest.mark.parametrize("written", ["ﾔﾏﾀﾞ ﾊﾅｺ", "ﾔﾏﾓﾄ ﾀﾛｳ", "", "ﾔﾏﾀﾞ ﾀﾛｰ"])
def test_another_name_is_refused(written: str) -> None:
    check = check_registration(written, TARO, [])
    assert (check.accepted, check.reasons) == (False, ("holder_mismatch",))


def test_small_kana_written_large_as_banks_do() -> None:
    shoko = Holder("p2", "サトウ ショウコ")
    assert check_registration("ｻﾄｳ ｼﾖｳｺ", shoko, []).accepted


def test_an_account_in_a_maiden_name_is_accepted_with_a_note() -> None:
    hanako = Holder("p3", "サトウ ハナコ", ("ヤマダ ハナコ",), "h1", "妻")
    check = check_registration("ﾔﾏﾀﾞ ﾊﾅｺ", hanako, [])
    assert (check.accepted, check.reasons) == (True, ("holder_earlier_name",))


def test_a_shared_account_is_flagged_with_the_family_relationship() -> None:
    # father and son with the same name and reading: the kana check cannot tell them apart
    son = Holder("p4", "ヤマダ タロウ", (), "h1", "子")
    check = check_registration("ﾔﾏﾀﾞ ﾀﾛｳ", son, [TARO])
    assert check.accepted and check.review
    assert check.reasons == ("account_shared_family",)
    assert check.shared_with == (("p1", "世帯主", "子"),)
    stranger = Holder("p5", "ヤマダ タロウ", (), "h9", "世帯主")
    check = check_registration("ﾔﾏﾀﾞ ﾀﾛｳ", stranger, [TARO])
    assert check.reasons == ("account_shared",) and check.shared_with == (("p1", None, None),)
    # registering again one's own account is not sharing
    assert check_registration("ﾔﾏﾀﾞ ﾀﾛｳ", TARO, [TARO]).reasons == ()


def test_account_numbers() -> None:
    assert parse_account("0005", "123", "42").number == "0000042"
    for bad in (
        ("5", "123", "1"),
        ("0005", "12", "1"),
        ("0005", "123", "12345678"),
        ("0005", "123", "１２"),
    ):
        with pytest.raises(ValueError):
            parse_account(*bad)


KATAKANA = st.text(
    alphabet="アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン",
    min_size=1,
    max_size=8,
)


@given(KATAKANA, KATAKANA, st.sampled_from(["half", "hira", "full"]))
def test_width_and_script_never_matter_and_nothing_else_matches(
    registered: str, other: str, form: str
) -> None:
    person = Holder("p", registered)
    written = {
        "half": jaconv.z2h(registered, kana=True),
        "hira": jaconv.kata2hira(registered),
        "full": registered,
    }[form]
    assert check_registration(written, person, []).accepted
    same = normalise_kana(other) == normalise_kana(registered)
    assert check_registration(other, person, []).accepted == same

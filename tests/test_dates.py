"""Dates, 和暦, ages and sex codes (mynumber.dates)."""

from __future__ import annotations

import datetime
import itertools
from datetime import date

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mynumber.dates import (
    ERAS,
    age_on,
    age_reached_on,
    era_of,
    parse_date,
    parse_sex,
    to_wareki,
)
from mynumber.errors import ValidationError

MEIJI_START = date(1868, 10, 23)
ERA_DATES = st.dates(min_value=MEIJI_START, max_value=date(2100, 12, 31))


def _code(value: str) -> str:
    with pytest.raises(ValidationError) as info:
        parse_date(value)
    return info.value.code


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# --- accepted forms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-04-01", date(2023, 4, 1)),
        ("2023-4-1", date(2023, 4, 1)),
        ("2023/4/1", date(2023, 4, 1)),
        ("2023/04/01", date(2023, 4, 1)),
        ("2023.4.1", date(2023, 4, 1)),
        ("2023年4月1日", date(2023, 4, 1)),
        ("20230401", date(2023, 4, 1)),
        ("令和5年4月1日", date(2023, 4, 1)),
        ("令和元年5月1日", date(2019, 5, 1)),
        ("令和1年5月1日", date(2019, 5, 1)),
        ("平成元年1月8日", date(1989, 1, 8)),
        ("R5.4.1", date(2023, 4, 1)),
        ("R05.04.01", date(2023, 4, 1)),
        ("R5/4/1", date(2023, 4, 1)),
        ("R5-4-1", date(2023, 4, 1)),
        ("R元.5.1", date(2019, 5, 1)),
        ("R5年4月1日", date(2023, 4, 1)),
        ("令和5.4.1", date(2023, 4, 1)),
        ("H31/4/30", date(2019, 4, 30)),
        ("S64.1.7", date(1989, 1, 7)),
        ("h31.4.30", date(2019, 4, 30)),
        ("r5.4.1", date(2023, 4, 1)),
        ("Ｒ５．４．１", date(2023, 4, 1)),
        ("令和５年４月１日", date(2023, 4, 1)),
        ("２０２３／０４／０１", date(2023, 4, 1)),
        ("2023－04－01", date(2023, 4, 1)),  # full-width hyphen-minus
        ("2023\u221204\u221201", date(2023, 4, 1)),  # minus sign
        ("2023ー04ー01", date(2023, 4, 1)),  # katakana long vowel mark
        ("  2023-04-01\t", date(2023, 4, 1)),
        ("\u30002023-04-01\u3000", date(2023, 4, 1)),  # ideographic spaces
        ("2023 / 4 / 1", date(2023, 4, 1)),
        ("2023 年 4 月 1 日", date(2023, 4, 1)),
        (" 令和 5 年 4 月 1 日 ", date(2023, 4, 1)),
        ("R 5 . 4 . 1", date(2023, 4, 1)),
        ("㍻31年4月30日", date(2019, 4, 30)),  # square era name, folded by NFKC
        ("㋿元年5月1日", date(2019, 5, 1)),
        ("㍾45年7月29日", date(1912, 7, 29)),
        ("M45.7.29", date(1912, 7, 29)),
        ("T15.12.24", date(1926, 12, 24)),
        ("0001-01-01", date(1, 1, 1)),
        ("9999-12-31", date(9999, 12, 31)),
        ("1850-01-01", date(1850, 1, 1)),  # Western dates need no era
    ],
)
def test_parse_date_accepts(text: str, expected: date) -> None:
    assert parse_date(text) == expected


# --- era boundaries ---------------------------------------------------------------------------

# (text, date) pairs that are valid: the last day of each era and the first day of the next,
# each in its own era's kanji and letter notation.
BOUNDARY_VALID = [
    ("明治元年10月23日", date(1868, 10, 23)),
    ("M1.10.23", date(1868, 10, 23)),
    ("明治45年7月29日", date(1912, 7, 29)),
    ("M45.7.29", date(1912, 7, 29)),
    ("大正元年7月30日", date(1912, 7, 30)),
    ("T1.7.30", date(1912, 7, 30)),
    ("大正15年12月24日", date(1926, 12, 24)),
    ("T15.12.24", date(1926, 12, 24)),
    ("昭和元年12月25日", date(1926, 12, 25)),
    ("S1.12.25", date(1926, 12, 25)),
    ("昭和64年1月7日", date(1989, 1, 7)),
    ("S64.1.7", date(1989, 1, 7)),
    ("平成元年1月8日", date(1989, 1, 8)),
    ("H1.1.8", date(1989, 1, 8)),
    ("平成31年4月30日", date(2019, 4, 30)),
    ("H31.4.30", date(2019, 4, 30)),
    ("令和元年5月1日", date(2019, 5, 1)),
    ("R1.5.1", date(2019, 5, 1)),
]

# The same boundaries written in the wrong era: the next era's first day in the old era's
# notation, and the old era's last day in the new era's notation.
BOUNDARY_OUTSIDE = [
    "明治元年10月22日",
    "M1.10.22",
    "明治元年1月1日",
    "明治45年7月30日",
    "M45.7.30",
    "大正元年7月29日",
    "T1.7.29",
    "大正15年12月25日",
    "T15.12.25",
    "昭和元年12月24日",
    "S1.12.24",
    "昭和64年1月8日",
    "S64.1.8",
    "平成元年1月7日",
    "H1.1.7",
    "平成31年5月1日",
    "H31.5.1",
    "令和元年4月30日",
    "R1.4.30",
    "平成32年1月1日",
    "H32.1.1",
    "平成32年2月29日",
    "大正16年1月1日",
    "明治46年1月1日",
    "昭和65年1月1日",
    "平成100年1月1日",
    "平成9999年1月1日",
]


@pytest.mark.parametrize(("text", "expected"), BOUNDARY_VALID)
def test_era_boundary_valid(text: str, expected: date) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize("text", BOUNDARY_OUTSIDE)
def test_era_boundary_outside(text: str) -> None:
    assert _code(text) == "date.outside_era"


def test_boundaries_cover_every_era_change() -> None:
    valid = {d for _, d in BOUNDARY_VALID}
    for before, after in itertools.pairwise(ERAS):
        assert before.end is not None
        assert before.end + datetime.timedelta(days=1) == after.start
        assert {before.end, after.start} <= valid


def test_outside_era_message_names_the_end_and_the_right_era() -> None:
    with pytest.raises(ValidationError) as info:
        parse_date("平成31年5月1日", field="birth_date")
    err = info.value
    assert err.code == "date.outside_era"
    assert err.field == "birth_date"
    assert err.status == 422
    assert "2019-04-30" in err.en and "令和元年5月1日" in err.en
    assert "平成31年4月30日" in err.ja and "令和元年5月1日" in err.ja


def test_outside_era_message_for_a_date_before_the_era() -> None:
    with pytest.raises(ValidationError) as info:
        parse_date("令和元年4月30日")
    assert "2019-05-01" in info.value.en and "平成31年4月30日" in info.value.en
    assert "平成31年4月30日" in info.value.ja


@pytest.mark.parametrize("text", ["平成0年1月8日", "令和0年5月1日", "R0.5.1", "S00.1.1"])
def test_era_year_zero(text: str) -> None:
    assert _code(text) == "date.era_year"


def test_reiwa_beyond_9999() -> None:
    assert _code("令和9999年1月1日") == "date.invalid"


# --- impossible dates, bad formats, empty ------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2023-02-30",
        "2023年2月30日",
        "令和5年2月30日",
        "R5.2.29",
        "平成31年2月29日",
        "2023-04-31",
        "2023/13/1",
        "2023-00-10",
        "2023-01-00",
        "20230230",
        "20231301",
        "1900-02-29",
        "2100-02-29",
        "0000-01-01",
        "令和5年13月1日",
        "令和5年4月0日",
        "令和5年4月31日",
    ],
)
def test_impossible_dates(text: str) -> None:
    assert _code(text) == "date.invalid"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2000-02-29", date(2000, 2, 29)),
        ("2024/2/29", date(2024, 2, 29)),
        ("令和2年2月29日", date(2020, 2, 29)),
        ("H12.2.29", date(2000, 2, 29)),
    ],
)
def test_leap_days(text: str, expected: date) -> None:
    assert parse_date(text) == expected


def test_invalid_message_is_bilingual() -> None:
    with pytest.raises(ValidationError) as info:
        parse_date("2023年2月30日", field="d")
    assert info.value.field == "d"
    assert "28" in info.value.en and "February" in info.value.en
    assert "2023年2月に30日はありません" in info.value.ja


@pytest.mark.parametrize(
    "text",
    [
        "abc",
        "2023-4/1",
        "2023/04-01",
        "2023-04-01T00:00",
        "2023-04-01 12:00",
        "23-04-01",
        "2023--04-01",
        "2023-004-01",
        "202341",
        "2023041",
        "202304011",
        "R5",
        "R5.4",
        "X5.4.1",
        "令和五年四月一日",  # kanji numerals are not accepted
        "令和5年4月1",
        "令和5年4月1日生",
        "令和元元年5月1日",
        "令和12345年1月1日",
        "R5.4.1.",
        "2023年4月1日 2023年4月1日",
        "٢٠٢٣-٠٤-٠١",  # Arabic-Indic digits
        "1" * 5000,
    ],
)
def test_unrecognised_format(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_date(text, field="when")
    assert info.value.code == "date.format"
    assert info.value.field == "when"
    assert "R5.4.1" in info.value.en and "令和5年4月1日" in info.value.ja


@pytest.mark.parametrize("text", ["", " ", "\t\n", "\u3000"])
def test_empty(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_date(text, field="f")
    assert info.value.code == "date.empty"
    assert info.value.field == "f"


# --- to_wareki / era_of -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("d", "long", "short"),
    [
        (date(2023, 4, 1), "令和5年4月1日", "R5.4.1"),
        (date(2019, 5, 1), "令和元年5月1日", "R1.5.1"),
        (date(2019, 4, 30), "平成31年4月30日", "H31.4.30"),
        (date(1989, 1, 8), "平成元年1月8日", "H1.1.8"),
        (date(1989, 1, 7), "昭和64年1月7日", "S64.1.7"),
        (date(1926, 12, 25), "昭和元年12月25日", "S1.12.25"),
        (date(1926, 12, 24), "大正15年12月24日", "T15.12.24"),
        (date(1912, 7, 30), "大正元年7月30日", "T1.7.30"),
        (date(1912, 7, 29), "明治45年7月29日", "M45.7.29"),
        (date(1868, 10, 23), "明治元年10月23日", "M1.10.23"),
    ],
)
def test_to_wareki(d: date, long: str, short: str) -> None:
    assert to_wareki(d) == long
    assert to_wareki(d, short=True) == short


def test_to_wareki_before_meiji() -> None:
    with pytest.raises(ValidationError) as info:
        to_wareki(date(1868, 10, 22))
    assert info.value.code == "date.no_era"
    assert era_of(date(1868, 10, 22)) is None


def test_era_of() -> None:
    assert era_of(date(2019, 4, 30)) is ERAS[3]
    assert era_of(date(2019, 5, 1)) is ERAS[4]
    assert era_of(date(9999, 12, 31)) is ERAS[4]


# --- properties ---------------------------------------------------------------------------------


@given(ERA_DATES)
@example(date(1868, 10, 23))
@example(date(2019, 4, 30))
@example(date(2019, 5, 1))
def test_wareki_round_trips(d: date) -> None:
    assert parse_date(to_wareki(d)) == d
    assert parse_date(d.isoformat()) == d
    short = to_wareki(d, short=True)
    assert parse_date(short) == d
    assert parse_date(short.lower()) == d
    assert parse_date(_full_width(short)) == d
    assert parse_date(_full_width(to_wareki(d))) == d


@given(ERA_DATES, st.sampled_from([".", "/", "-"]), st.booleans())
def test_padded_abbreviation_round_trips(d: date, sep: str, lower: bool) -> None:
    era = era_of(d)
    assert era is not None
    year = d.year - era.start.year + 1
    letter = era.letter.lower() if lower else era.letter
    assert parse_date(f"{letter}{year:02d}{sep}{d.month:02d}{sep}{d.day:02d}") == d
    assert parse_date(f" {letter} {year} {sep} {d.month} {sep} {d.day} ") == d


@given(st.dates())
def test_western_forms_round_trip(d: date) -> None:
    assert parse_date(d.isoformat()) == d
    assert parse_date(f"{d.year:04d}/{d.month}/{d.day}") == d
    assert parse_date(f"{d.year:04d}.{d.month}.{d.day}") == d
    assert parse_date(f"{d.year:04d}年{d.month}月{d.day}日") == d
    assert parse_date(f"{d.year:04d}{d.month:02d}{d.day:02d}") == d


@given(ERA_DATES)
def test_dates_in_the_wrong_era_are_refused(d: date) -> None:
    """Writing `d` with any era other than its own is refused as outside that era."""
    own = era_of(d)
    for era in ERAS:
        if era is own:
            continue
        year = d.year - era.start.year + 1
        if year < 0:
            continue  # a negative year cannot even be written
        text = f"{era.name}{year}年{d.month}月{d.day}日"
        with pytest.raises(ValidationError) as info:
            parse_date(text)
        assert info.value.code == ("date.era_year" if year == 0 else "date.outside_era")


_TOKENS = st.sampled_from(
    [
        "令和", "平成", "昭和", "大正", "明治", "元", "年", "月", "日", "R", "h", "S", "t", "m",
        "x", ".", "/", "-", "－", "ー", " ", "\u3000", "０", "９", "㍻", "㋿", "\n", "T", ":",
    ]
)  # fmt: skip
_FUZZ = st.one_of(
    st.text(),
    st.lists(
        st.one_of(_TOKENS, st.integers(min_value=0, max_value=10**6).map(str)), max_size=12
    ).map("".join),
)


@given(_FUZZ)
@example("平成0年0月0日")
@example("令和9999年2月30日")
@example("明治9999年12月31日")
@example("99999999")
@example("0000-00-00")
def test_parse_date_only_raises_validation_error(text: str) -> None:
    try:
        result = parse_date(text)
    except ValidationError as err:
        assert err.code in {
            "date.empty",
            "date.format",
            "date.invalid",
            "date.era_year",
            "date.outside_era",
        }
        assert err.en and err.ja
    else:
        assert isinstance(result, date)


# --- age ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [
        (date(2000, 4, 2), date(2000, 4, 2), 0),
        (date(2000, 4, 2), date(2001, 4, 1), 0),
        (date(2000, 4, 2), date(2001, 4, 2), 1),
        (date(2000, 4, 2), date(2020, 4, 1), 19),
        (date(2000, 4, 2), date(2020, 4, 2), 20),
        (date(2000, 2, 29), date(2001, 2, 28), 0),
        (date(2000, 2, 29), date(2001, 3, 1), 1),
        (date(2000, 2, 29), date(2004, 2, 28), 3),
        (date(2000, 2, 29), date(2004, 2, 29), 4),
        (date(1999, 12, 31), date(2000, 1, 1), 0),
        (date(1999, 12, 31), date(2000, 12, 31), 1),
    ],
)
def test_age_on(birth: date, on: date, age: int) -> None:
    assert age_on(birth, on) == age


def test_age_before_birth() -> None:
    with pytest.raises(ValidationError) as info:
        age_on(date(2000, 1, 2), date(2000, 1, 1))
    assert info.value.code == "age.before_birth"


@pytest.mark.parametrize(
    ("birth", "age", "reached"),
    [
        (date(2000, 4, 2), 1, date(2001, 4, 1)),
        (date(2000, 4, 2), 20, date(2020, 4, 1)),
        (date(2000, 1, 1), 1, date(2000, 12, 31)),
        (date(2000, 2, 29), 1, date(2001, 2, 28)),
        (date(2000, 2, 29), 4, date(2004, 2, 28)),
        (date(2000, 3, 1), 1, date(2001, 2, 28)),
    ],
)
def test_age_reached_on(birth: date, age: int, reached: date) -> None:
    assert age_reached_on(birth, age) == reached


def test_age_reached_on_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        age_reached_on(date(2000, 1, 1), 0)
    with pytest.raises(ValueError):
        age_reached_on(date(9999, 1, 1), 1)


@given(st.dates(), st.dates(), st.dates())
def test_age_is_monotonic(birth: date, a: date, b: date) -> None:
    first, second = sorted((a, b))
    if first < birth:
        return
    assert 0 <= age_on(birth, first) <= age_on(birth, second)


@given(st.dates(max_value=date(9000, 12, 31)), st.integers(min_value=1, max_value=999))
def test_age_changes_the_day_after_it_is_reached(birth: date, age: int) -> None:
    reached = age_reached_on(birth, age)
    assert age_on(birth, reached) == age - 1
    assert age_on(birth, reached + datetime.timedelta(days=1)) == age


# --- sex ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("1", 1),
        ("１", 1),
        ("男", 1),
        ("男性", 1),
        ("M", 1),
        ("m", 1),
        ("Ｍ", 1),
        ("male", 1),
        ("MALE", 1),
        (" Male ", 1),
        ("2", 2),
        ("２", 2),
        ("女", 2),
        ("女性", 2),
        ("F", 2),
        ("f", 2),
        ("female", 2),
        ("Female", 2),
        ("\u3000女性\u3000", 2),
    ],
)
def test_parse_sex(text: str, code: int) -> None:
    assert parse_sex(text) == code


@pytest.mark.parametrize("text", ["0", "9", "０", "９"])
def test_parse_sex_refuses_unknown_and_not_applicable(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_sex(text, field="sex")
    assert info.value.code == "sex.invalid"
    assert info.value.field == "sex"
    assert "1" in info.value.en and "2" in info.value.ja


@pytest.mark.parametrize("text", ["", " ", "3", "11", "x", "男女", "man", "女の子", "M F"])
def test_parse_sex_refuses_others(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_sex(text, field="sex")
    assert info.value.code == "sex.invalid"


@given(st.text())
def test_parse_sex_only_raises_validation_error(text: str) -> None:
    try:
        assert parse_sex(text) in (1, 2)
    except ValidationError as err:
        assert err.code == "sex.invalid"

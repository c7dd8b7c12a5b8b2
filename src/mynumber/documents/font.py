"""The Japanese font documents are set in: Noto Sans CJK JP (the ``noto-cjk-sans-jp-regular``
package, SIL OFL 1.1), cut down once to the characters a register can hold.

The whole font is 16 MB; fpdf2 parses and subsets the font it is given for every document,
≈ 0.4 s with the whole font (DESIGN, known costs). The characters the register and the forms
can contain are ASCII, JIS X 0208 and JIS X 0213 (planes 1 and 2: every character of the
family register's 戸籍統一文字 that has a Unicode code point, and the kana), so the font is
subset to them (≈ 11,000 characters, 2–3 MB) and cached on disk. Building it takes ≈ 10 s
once per machine; the cache file's name carries a digest of the source font and of the
character list, so a new font or list builds a new file, and several processes building at
once each write their own temporary file and rename it into place."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["FONT_FAMILY", "characters", "font_for", "font_path"]

FONT_FAMILY = "NotoSansCJKjp"
_VERSION = "2"


@functools.cache
def characters() -> frozenset[int]:
    """Every code point documents can show from the cut-down font: printable ASCII, the
    Latin-1 letters, every character of JIS X 0208 and JIS X 0213 planes 1 and 2 (through
    Python's EUC-JIS-2004), and Windows-31J's NEC and IBM extensions (髙, 﨑, …, common in
    names). A document with any other character is set in the whole font instead."""
    cps: set[int] = set(range(0x20, 0x7F)) | set(range(0xA0, 0x180))
    for lead in range(0xA1, 0xFF):
        for trail in range(0xA1, 0xFF):
            for raw in (bytes((lead, trail)), bytes((0x8F, lead, trail))):
                try:
                    text = raw.decode("euc_jis_2004")
                except UnicodeDecodeError:
                    continue
                cps.update(ord(ch) for ch in text)
    for lead in (*range(0x81, 0xA0), *range(0xE0, 0xFD)):
        for trail in range(0x40, 0xFD):
            try:
                cps.update(ord(ch) for ch in bytes((lead, trail)).decode("cp932"))
            except UnicodeDecodeError:
                continue
    cps.update(range(0x3000, 0x3100))  # CJK punctuation, hiragana, katakana
    cps.update(range(0xFF01, 0xFF5F))  # full-width forms
    return frozenset(cps)


def _source() -> Path:
    from noto_cjk_sans_jp_regular import FONT_PATH

    return Path(str(FONT_PATH))


def _cache_dir() -> Path:
    explicit = os.environ.get("MYNUMBER_FONT_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mynumber" / "fonts"


def font_for(text: str) -> Path:
    """The cut-down font if it has every character of `text`, else the whole font (slower to
    embed, ≈ 0.4 s, but a name is never printed with a missing glyph)."""
    chars = characters()
    if all(ord(ch) in chars for ch in text):
        return font_path()
    return _source()


@functools.cache
def font_path() -> Path:
    """The subset font file, built on first use and cached (see the module docstring)."""
    source = _source()
    stat = source.stat()
    chars = sorted(characters())
    key = hashlib.sha256(
        f"{_VERSION}|{source.name}|{stat.st_size}|{','.join(map(str, chars))}".encode()
    ).hexdigest()[:16]
    directory = _cache_dir()
    target = directory / f"{FONT_FAMILY}-jis2004-{key}.otf"
    if target.is_file():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.name_IDs = ["*"]  # keep the licence and the names
    options.name_languages = ["*"]
    options.layout_features = ["vert", "vrt2"]
    options.notdef_outline = True
    options.hinting = False
    options.desubroutinize = True
    font = TTFont(str(source), lazy=False)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=chars)
    subsetter.subset(font)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".font-", suffix=".otf")
    os.close(fd)
    try:
        font.save(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target

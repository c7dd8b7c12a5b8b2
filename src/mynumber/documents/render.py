"""A document's content as an A4 PDF: Noto Sans CJK JP embedded (subset), a QR code with the
document id and digest, and the content itself attached as ``mynumber-document.json`` so the
signature that covers the file covers it too. No I/O beyond reading the cached font file."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import io
import threading
from pathlib import Path

import segno
from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont
from PIL import Image

from mynumber.dates import to_wareki
from mynumber.documents.content import DocumentContent, DocumentKind, PersonEntry, qr_payload
from mynumber.documents.font import FONT_FAMILY, font_for
from mynumber.documents.fontsubset import CffSource, NotPlainCff, PresubsetCff
from mynumber.errors import ConflictError

__all__ = ["ATTACHMENT", "render"]

ATTACHMENT = "mynumber-document.json"
_SEX = {1: "男", 2: "女"}
_CERTIFY = {
    DocumentKind.residence: "この写しは、住民票の原本と相違ないことを証明する。",
    DocumentKind.residence_items: "上記の事項は、住民票に記載されていることを証明する。",
    DocumentKind.seal: "この印影は、登録されている印影と相違ないことを証明する。",
}
_LEFT = 15.0
_WIDTH = 180.0


_templates: dict[Path, TTFFont] = {}
_sources: dict[Path, CffSource | None] = {}
_templates_lock = threading.Lock()


def _add_font(pdf: FPDF, path: Path) -> TTFFont | None:
    """The font, parsed once per process (DESIGN's known costs: parsing is ≈ 0.15 s a
    document). fpdf2 subsets the TTFont it is given *in place* when it writes the PDF, so each
    document gets its own TTFont (see :func:`_embed_subset`), glyph map and font descriptor
    (fpdf2 writes its object id into it); only the immutable metrics (widths, glyph ids) and
    the :class:`CffSource` are shared. Bounding boxes are not recomputed on output (the whole
    font's box stays valid for any subset of it). Should fpdf2's internals change shape, the
    ordinary add_font is used (and None returned)."""
    try:
        with _templates_lock:
            if path not in _templates:
                probe = FPDF()
                probe.add_font(FONT_FAMILY, fname=str(path))
                parsed = probe.fonts[FONT_FAMILY.lower()]
                if not isinstance(parsed, TTFFont):
                    raise TypeError(type(parsed).__name__)
                _sources[path] = _cff_source(path) if parsed.is_cff else None
                _templates[path] = parsed
            template = _templates[path]
            source = _sources[path]
        font: TTFFont = copy.copy(template)
        # fpdf2 writes into the font descriptor as it outputs (its object id, the embedded
        # font file): each document its own, or two documents in flight swap object ids.
        font.desc = copy.copy(template.desc)
        # Laying out reads no font file; the TTFont fpdf2 embeds is set by _embed_subset.
        font.ttfont = (
            TTFont(str(path), recalcTimestamp=False, lazy=True, recalcBBoxes=False)
            if source is None
            else TTFont()
        )
        font.subset = SubsetMap(font)
        font.missing_glyphs = []
        font.biggest_size_pt = 0
        font._hbfont = None
        font.i = len(pdf.fonts) + 1
        pdf.fonts[template.fontkey] = font
        return font
    except (AttributeError, TypeError, KeyError):  # pragma: no cover - another fpdf2
        pdf.add_font(FONT_FAMILY, fname=str(path))
        return None


def _cff_source(path: Path) -> CffSource | None:
    try:
        return CffSource(path)
    except NotPlainCff:  # the whole font (subroutines): fpdf2 subsets it, ≈ 0.4 s
        return None


def _embed_subset(font: TTFFont | None, path: Path) -> None:
    """Just before output, the font fpdf2 embeds: the document's glyphs cut from the shared
    :class:`CffSource` (≈ 2 ms), as a table fpdf2's own subsetting leaves alone; without one,
    fpdf2 subsets the document's freshly opened TTFont (≈ 0.1 s)."""
    source = None if font is None else _sources.get(path)
    if font is None or source is None:
        return
    glyph_order, data = source.subset(font.subset.get_all_glyph_names())
    font.ttfont = PresubsetCff.font(glyph_order, data)


def _date(iso: str) -> str:
    d = dt.date.fromisoformat(iso)
    try:
        return f"{to_wareki(d)}（{d.isoformat()}）"
    except ValueError:  # before 明治: the Gregorian date alone
        return d.isoformat()


def _issued(iso: str) -> str:
    at = dt.datetime.fromisoformat(iso)
    return f"{_date(at.date().isoformat())} {at:%H:%M}"


def _row(pdf: FPDF, label: str, value: str, *, label_w: float = 32.0, h: float = 7.0) -> None:
    pdf.set_x(_LEFT)
    pdf.set_font(FONT_FAMILY, size=8)
    pdf.cell(label_w, h, label, border=1, align="C")
    pdf.set_font(FONT_FAMILY, size=10)
    pdf.cell(_WIDTH - label_w, h, f" {value}", border=1, new_x="LMARGIN", new_y="NEXT")


def _person(pdf: FPDF, n: int, p: PersonEntry, *, with_number: bool, seal: bool = False) -> None:
    pdf.ln(2)
    if not seal:  # a seal certificate is about one person: no numbering, no 住民となった日
        pdf.set_x(_LEFT)
        pdf.set_font(FONT_FAMILY, size=9)
        pdf.cell(_WIDTH, 6, f"{n}.", new_x="LMARGIN", new_y="NEXT")
    _row(pdf, "氏名", f"{p.name}（{p.kana}）")
    _row(pdf, "生年月日・性別", f"{_date(p.birth_date)}  {_SEX.get(p.sex, str(p.sex))}")
    if p.relationship is not None:
        _row(pdf, "続柄", p.relationship)
    if p.domicile is not None:
        _row(pdf, "本籍", p.domicile)
        _row(pdf, "筆頭者", p.domicile_head or "")
    if not seal:
        _row(pdf, "住民となった日", _date(p.resident_since))
    if with_number:
        _row(pdf, "個人番号", p.individual_number or "（なし）")


def _qr_image(payload: str) -> Image.Image:
    """The QR code as a bilevel image, 4 pixels a module with a 2-module quiet zone: the
    pixels segno's PNG has, without writing the PNG for fpdf2 to read back (≈ 2 ms)."""
    rows = segno.make(payload, error="m").matrix_iter(scale=1, border=2)
    modules = bytes(0 if dark else 255 for row in rows for dark in row)
    side = int(len(modules) ** 0.5)
    image = Image.frombytes("L", (side, side), modules)
    return image.resize((side * 4, side * 4), Image.Resampling.NEAREST).convert("1")


def render(content: DocumentContent, base_url: str) -> bytes:
    """The unsigned PDF of `content` (sign it with :mod:`mynumber.documents.signing`)."""
    digest = content.digest()
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=45)
    font_file = font_for(content.to_json().decode())
    font = _add_font(pdf, font_file)
    pdf.set_title(f"{content.kind.title_ja} {content.document_id}")
    pdf.set_subject(qr_payload(base_url, content.document_id, digest))
    pdf.set_author(content.municipality_name)
    pdf.set_creator("mynumber")
    pdf.set_lang("ja")
    issued = dt.datetime.fromisoformat(content.issued_at)
    pdf.set_creation_date(issued)
    pdf.add_page()

    pdf.set_font(FONT_FAMILY, size=20)
    pdf.cell(0, 12, content.kind.title_ja, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT_FAMILY, size=9)
    pdf.cell(0, 5, content.kind.title_en, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    _row(pdf, "住所", f"〒{content.postal_code[:3]}-{content.postal_code[3:]}  {content.address}")
    if content.head_of_household is not None:
        _row(pdf, "世帯主", content.head_of_household)
    with_number = any(p.individual_number is not None for p in content.people)
    for n, person in enumerate(content.people, start=1):
        _person(pdf, n, person, with_number=with_number, seal=content.kind is DocumentKind.seal)

    if content.seal is not None:
        pdf.ln(4)
        pdf.set_x(_LEFT)
        pdf.set_font(FONT_FAMILY, size=8)
        pdf.cell(32, 40, "印影", border=1, align="C")
        x, y = pdf.get_x(), pdf.get_y()
        pdf.cell(40, 40, "", border=1, new_x="LMARGIN", new_y="NEXT")
        image = io.BytesIO(base64.b64decode(content.seal.image_b64))
        try:
            pdf.image(image, x=x + 2, y=y + 2, w=36, h=36, keep_aspect_ratio=True)
        except Exception as exc:  # a seal registered before images were decoded on entry
            raise ConflictError(
                "document.seal_image",
                "The registered seal image cannot be printed: register the seal again.",
                "登録されている印影の画像を印刷できません。印鑑を登録し直してください。",
            ) from exc

    pdf.ln(8)
    pdf.set_x(_LEFT)
    pdf.set_font(FONT_FAMILY, size=11)
    pdf.cell(_WIDTH, 7, _CERTIFY[content.kind], new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_x(_LEFT)
    pdf.cell(_WIDTH, 7, _issued(content.issued_at), new_x="LMARGIN", new_y="NEXT")
    pdf.set_x(_LEFT)
    pdf.set_font(FONT_FAMILY, size=13)
    pdf.cell(_WIDTH, 9, f"{content.municipality_name}長", align="R", new_x="LMARGIN", new_y="NEXT")

    # The footer: what lets anyone check this paper or file.
    pdf.set_auto_page_break(auto=False)
    top = 297 - 42
    pdf.image(_qr_image(qr_payload(base_url, content.document_id, digest)), x=_LEFT, y=top, w=30)
    pdf.set_xy(_LEFT + 34, top)
    pdf.set_font(FONT_FAMILY, size=7)
    lines = [
        f"文書ID Document id: {content.document_id}",
        f"ダイジェスト Digest (SHA-256): {digest}",
        f"対象者 Subject: {content.subject[:32]}…",
        f"交付 Channel: {content.channel}"
        + (f"   ノンス Nonce: {content.nonce}" if content.nonce else ""),
        "この文書は電子署名されています。検証: mynumber verify-document または /verify",
        "This document is signed; check it with `mynumber verify-document` or the /verify page.",
    ]
    for line in lines:
        pdf.set_x(_LEFT + 34)
        pdf.cell(_WIDTH - 34, 4.2, line, new_x="LMARGIN", new_y="NEXT")

    pdf.embed_file(
        bytes=content.to_json(),
        basename=ATTACHMENT,
        modification_date=issued,
        mime_type="application/json",
        desc="The signed content of this document (canonical JSON)",
    )
    _embed_subset(font, font_file)
    return bytes(pdf.output())

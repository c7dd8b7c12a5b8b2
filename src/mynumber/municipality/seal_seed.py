"""Demo seals for a seeded deployment: every demo card holder (cards/DEMO-PINS.csv) gets a
registered seal, a round red 印影 of their family name set in the documents' font, so the
kiosk can print a 印鑑登録証明書 on `make run`. Idempotent: people with a seal are skipped."""

from __future__ import annotations

import csv
import functools
import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from mynumber.documents.font import font_path
from mynumber.errors import MynumberError
from mynumber.municipality.seals import SealService
from mynumber.municipality.service import MunicipalityService

__all__ = ["impression", "seed_seals"]

_RED = (196, 30, 40)


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path()), size)  # parsed once per size, not per person


def impression(family_name: str, size: int = 240) -> bytes:
    """A PNG seal impression: a ring with the name written top to bottom."""
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    draw.ellipse((6, 6, size - 7, size - 7), outline=_RED, width=max(4, size // 30))
    chars = list(family_name.replace(" ", "").replace("\u3000", ""))[:3] or ["印"]
    cell = int(size * 0.62 / len(chars))
    font = _font(max(12, cell))
    top = (size - cell * len(chars)) // 2
    for i, ch in enumerate(chars):
        box = draw.textbbox((0, 0), ch, font=font)
        x = (size - (box[2] - box[0])) // 2 - box[0]
        draw.text((x, top + i * cell - box[1]), ch, font=font, fill=_RED)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


def seed_seals(
    seals: SealService, municipality: MunicipalityService, pins_file: Path
) -> tuple[int, int]:
    """(registered, already held) for the card holders listed in `pins_file`."""
    if not pins_file.is_file():
        return 0, 0
    with pins_file.open(newline="") as fh:
        codes = [row[1] for row in csv.reader(fh) if len(row) >= 2]
    registered = already = 0
    for resident_code in codes:
        person = None
        for code in municipality.municipality_codes():
            try:
                person = municipality.get_resident(code, resident_code)
                break
            except MynumberError:
                continue
        if person is None or person["status"] != "active":
            continue
        place = person["municipality_code"]
        card_number = f"D{resident_code[-9:]}"
        try:
            seals.register(
                place, resident_code, impression(person["family_name"]), card_number, "seed"
            )
            registered += 1
        except MynumberError as exc:
            if exc.code not in ("seal.already_registered", "seal.card_number_taken"):
                raise
            already += 1
    return registered, already

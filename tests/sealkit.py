"""Seal impressions for tests: real PNG and JPEG files (a red ring with a mark), since the seal
register decodes every image it accepts."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def impression(fmt: str = "PNG", mark: int = 0, size: int = 96) -> bytes:
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    if size < 32:  # too small for a ring: a dot
        img.putpixel((0, 0), (200, 20, 20))
    else:
        draw.ellipse((4, 4, size - 5, size - 5), outline=(200, 20, 20), width=6)
        edge = size // 3
        draw.rectangle((edge, edge, edge + mark % 30 + 4, 2 * edge), fill="red")
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


PNG = impression("PNG")
JPEG = impression("JPEG", mark=7)

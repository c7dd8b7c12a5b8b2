"""Reading residents CSV files as people actually have them: UTF-8 with or without a BOM, or
Shift_JIS (CP932) from older municipal systems; the header checked before any row is read."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from mynumber.csvformat import NAME_ALIASES, REQUIRED_COLUMNS, RESIDENT_COLUMNS
from mynumber.errors import ValidationError

__all__ = ["count_lines", "decode_file", "detect_encoding", "read_residents", "read_rows"]

csv.field_size_limit(1 << 20)


def _not_utf8_or_cp932() -> ValidationError:
    return ValidationError(
        "csv.encoding",
        "The file is neither UTF-8 nor Shift_JIS (CP932); save it as UTF-8.",
        "ファイルの文字コードが UTF-8 でも Shift_JIS (CP932) でもありません。UTF-8 で保存してください。",
    )


def detect_encoding(sample: bytes) -> str:
    """'utf-8-sig', 'utf-8' or 'cp932', judged from the first bytes of a file."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    # UTF-16/32 (what Excel's "Unicode text" writes): every ASCII character comes with NUL
    # bytes, which both decoders below would accept. No text CSV contains NUL.
    if b"\x00" in sample or sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _not_utf8_or_cp932()
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        codecs.getincrementaldecoder("cp932")().decode(sample, final=False)
        return "cp932"
    except UnicodeDecodeError:
        raise _not_utf8_or_cp932() from None


def decode_file(path: Path) -> tuple[str, str]:
    """(text, encoding) of a whole file judged as :func:`detect_encoding` judges its start; a NUL
    anywhere, or a part that is not valid in the detected encoding, is ``csv.encoding``."""
    data = path.read_bytes()
    encoding = detect_encoding(data[: 1 << 16])
    if b"\x00" in data:
        raise _not_utf8_or_cp932()
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError:
        raise _not_utf8_or_cp932() from None


def count_lines(path: Path) -> int:
    n = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def _check_header(header: list[str]) -> list[str]:
    cols = [h.strip() for h in header]
    unknown = [c for c in cols if c not in RESIDENT_COLUMNS and c not in NAME_ALIASES]
    if unknown:
        raise ValidationError(
            "csv.unknown_column",
            f"Unknown column(s) in the header: {', '.join(unknown[:5])}.",
            f"ヘッダーに不明な列があります: {', '.join(unknown[:5])}",
            field=unknown[0],
        )
    dupes = sorted({c for c in cols if cols.count(c) > 1})
    if dupes:
        raise ValidationError(
            "csv.duplicate_column",
            f"Column(s) appear twice: {', '.join(dupes)}.",
            f"列が重複しています: {', '.join(dupes)}",
            field=dupes[0],
        )
    for col, alias in REQUIRED_COLUMNS.items():
        if col not in cols and (alias is None or alias not in cols):
            raise ValidationError(
                "csv.missing_column",
                f"The header has no '{col}' column.",
                f"ヘッダーに「{col}」列がありません。",
                field=col,
            )
    return cols


def read_residents(
    fh: IO[str],
) -> Iterator[tuple[int, dict[str, str | None] | ValidationError]]:
    """(line number, fields) for each row, or the row's error; the header line is 1."""
    return read_rows(fh, _check_header)


def read_rows(
    fh: IO[str], check_header: Callable[[list[str]], list[str]]
) -> Iterator[tuple[int, dict[str, str | None] | ValidationError]]:
    """(line number, fields) for each row of any CSV format, or the row's error (``csv.row_width``);
    `check_header` turns the header into the column names or raises. Blank lines are skipped."""
    reader = csv.reader(fh)
    try:
        header = next(reader)
    except StopIteration:
        raise ValidationError("csv.empty", "The file is empty.", "ファイルが空です。") from None
    cols = check_header(header)
    width = len(cols)
    end = reader.line_num
    for row in reader:
        # A quoted field may hold line breaks: a row is named by the line it starts on.
        line, end = end + 1, reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != width:
            yield (
                line,
                ValidationError(
                    "csv.row_width",
                    f"Line {line} has {len(row)} fields; the header has {width}.",
                    f"{line}行目の項目数は{len(row)}個ですが、ヘッダーは{width}個です。",
                ),
            )
            continue
        yield line, dict(zip(cols, row, strict=True))

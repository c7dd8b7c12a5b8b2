"""Reading an agency roll (``mynumber link ROLL.csv``): the whole file is checked before anything
is linked, so a bad roll is refused with nothing written.

Format (docs/../DESIGN.md "Data formats"): a header, then one record a line, columns
``record_id, name, name_kana, birth_date, sex, address, individual_number`` in any order; every
column but ``individual_number`` is required in the header. The encoding is judged as for the
residents import (:mod:`mynumber.csvio`): UTF-8 with or without a BOM, or Shift_JIS (CP932);
UTF-16 and anything holding NUL is ``csv.encoding``.

A roll is refused (a :class:`~mynumber.errors.ValidationError` naming the line in
``extra["line"]`` and the field in ``field``, in Japanese and English) for:

- ``csv.encoding``, ``csv.empty``, ``csv.row_width``, ``roll.malformed`` (CSV the reader cannot
  parse, e.g. a field over 1 MiB);
- ``roll.missing_column`` (all missing columns named), ``roll.unknown_column``,
  ``roll.duplicate_column``;
- ``roll.duplicate_id``: a record id seen before (both line numbers named; ``first_line`` in
  ``extra``);
- per row: ``roll.empty_field`` (a required value empty), ``roll.record_id`` (not 1–32 of
  A-Z a-z 0-9 ``_ . : -``, starting with a letter or digit: the agency's internal id),
  ``roll.too_long`` (over :data:`MAX_LENGTH`), ``roll.control_character``, and the date and sex
  codes of :mod:`mynumber.dates` (``date.format``, ``date.invalid``, ``sex.invalid`` …) with the
  line added.

The individual number is optional (empty → a five-item query). A malformed number is *not* a file
error: it is carried through as written, and the decision core answers ``check_digit`` for that
record alone.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from mynumber.csvio import decode_file, read_rows
from mynumber.dates import parse_date, parse_sex
from mynumber.errors import MynumberError, ValidationError
from mynumber.identity import FiveItems

__all__ = ["MAX_LENGTH", "REQUIRED", "ROLL_COLUMNS", "RollRecord", "parse_roll", "read_roll"]

ROLL_COLUMNS = (
    "record_id",
    "name",
    "name_kana",
    "birth_date",
    "sex",
    "address",
    "individual_number",
)
REQUIRED = ROLL_COLUMNS[:-1]
MAX_LENGTH = {
    "record_id": 32,
    "name": 100,
    "name_kana": 100,
    "birth_date": 32,
    "sex": 16,
    "address": 300,
    "individual_number": 32,
}
"""Longest value (in characters, after stripping surrounding white space) of each column."""

_RECORD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,31}")


@dataclass(frozen=True, slots=True)
class RollRecord:
    line: int
    """The line the record starts on (the header is line 1)."""
    record_id: str
    items: FiveItems
    claimed: str | None
    """The individual number as written (stripped), or ``None`` when empty."""


def _check_header(header: list[str]) -> list[str]:
    cols = [h.strip() for h in header]
    if cols:
        cols[0] = cols[0].lstrip("\ufeff")  # a second BOM some tools add
    unknown = [c for c in cols if c not in ROLL_COLUMNS]
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:5])
        raise ValidationError(
            "roll.unknown_column",
            f"Line 1: unknown column(s) in the header: {shown}. A roll has the columns "
            f"{', '.join(ROLL_COLUMNS)}.",
            f"1行目: ヘッダーに不明な列があります: {shown}。名簿の列は {', '.join(ROLL_COLUMNS)} です。",
            field=unknown[0][:64],
            extra={"line": 1},
        )
    dupes = sorted({c for c in cols if cols.count(c) > 1})
    if dupes:
        raise ValidationError(
            "roll.duplicate_column",
            f"Line 1: column(s) appear twice: {', '.join(dupes)}.",
            f"1行目: 列が重複しています: {', '.join(dupes)}",
            field=dupes[0],
            extra={"line": 1},
        )
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise ValidationError(
            "roll.missing_column",
            f"Line 1: the header lacks the column(s) {', '.join(missing)}.",
            f"1行目: ヘッダーに次の列がありません: {', '.join(missing)}",
            field=missing[0],
            extra={"line": 1},
        )
    return cols


def _at(line: int, e: MynumberError) -> ValidationError:
    """`e` (a date or sex error) with the line named."""
    return ValidationError(
        e.code,
        f"Line {line}: {e.en}",
        f"{line}行目: {e.ja}",
        field=e.field,
        extra={**e.extra, "line": line},
    )


def _bad(line: int, code: str, field: str, en: str, ja: str) -> ValidationError:
    return ValidationError(
        code, f"Line {line}, {field}: {en}", f"{line}行目の {field}: {ja}", field=field,
        extra={"line": line},
    )  # fmt: skip


def _record(line: int, row: dict[str, str | None]) -> RollRecord:
    values: dict[str, str] = {}
    for col in ROLL_COLUMNS:
        value = (row.get(col) or "").strip()
        if any(unicodedata.category(ch) == "Cc" for ch in value):
            raise _bad(
                line,
                "roll.control_character",
                col,
                "a control character (tab, line break …) is not allowed.",
                "制御文字（タブ・改行など）は使えません。",
            )
        if len(value) > MAX_LENGTH[col]:
            raise _bad(
                line,
                "roll.too_long",
                col,
                f"longer than {MAX_LENGTH[col]} characters.",
                f"{MAX_LENGTH[col]}文字を超えています。",
            )
        if not value and col in REQUIRED:
            raise _bad(line, "roll.empty_field", col, "the value is empty.", "値が空です。")
        values[col] = value
    if not _RECORD_ID.fullmatch(values["record_id"]):
        raise _bad(
            line,
            "roll.record_id",
            "record_id",
            "a record id is 1–32 of A-Z, a-z, 0-9, '_', '.', ':', '-', starting with a letter "
            "or digit.",
            "記録IDは英数字・「_」「.」「:」「-」の1〜32文字（先頭は英数字）です。",
        )
    try:
        birth = parse_date(values["birth_date"], field="birth_date")
        sex = parse_sex(values["sex"], field="sex")
    except MynumberError as e:
        raise _at(line, e) from None
    items = FiveItems(values["name"], values["name_kana"], birth, sex, values["address"])
    return RollRecord(line, values["record_id"], items, values["individual_number"] or None)


def parse_roll(text: str) -> list[RollRecord]:
    """The records of a roll already decoded to `text`; the first error is raised."""
    records: list[RollRecord] = []
    seen: dict[str, int] = {}
    try:
        for line, row in read_rows(io.StringIO(text, newline=""), _check_header):
            if isinstance(row, MynumberError):
                row.extra["line"] = line  # csv.row_width names the line already
                raise row
            record = _record(line, row)
            first = seen.get(record.record_id)
            if first is not None:
                raise ValidationError(
                    "roll.duplicate_id",
                    f"Line {line}: record id {record.record_id} already appears on line {first}.",
                    f"{line}行目: 記録ID {record.record_id} は{first}行目にもあります。",
                    field="record_id",
                    extra={"line": line, "first_line": first},
                )
            seen[record.record_id] = line
            records.append(record)
    except csv.Error as e:
        raise ValidationError(
            "roll.malformed",
            f"The file is not CSV the reader can parse ({e}).",
            f"CSV として読み取れません（{e}）。",
        ) from None
    return records


def read_roll(path: Path) -> list[RollRecord]:
    """Read and check the whole roll at `path` (see the module docstring); nothing is written."""
    text, _encoding = decode_file(path)
    return parse_roll(text)

"""Reading an agency roll: encodings, header, duplicate ids and bad values refused with the line
and field named (ja + en), before anything is linked."""

from __future__ import annotations

import codecs
import datetime as dt
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mynumber.agency.roll import read_roll
from mynumber.errors import MynumberError, ValidationError

HEADER = "record_id,name,name_kana,birth_date,sex,address,individual_number\n"
ROW1 = "A001,髙橋 一郎,タカハシ イチロウ,1985-06-15,1,東京都新宿区西新宿二丁目8番1号,\n"
ROW2 = "A002,佐藤 花子,サトウ ハナコ,昭和60年6月15日,女,東京都新宿区大久保三丁目4番5号,1234-5678-9012\n"
DOC = (Path(__file__).resolve().parent.parent / "docs" / "reason-codes.md").read_text("utf-8")
DOCUMENTED = set(re.findall(r"`([a-z_-]+\.[a-z_]+)`", DOC))


def write(tmp_path: Path, data: bytes | str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "roll.csv"
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return path


def refused(path: Path, code: str) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        read_roll(path)
    e = info.value
    assert e.code == code, str(e)
    assert any("\u3040" <= ch <= "\u9fff" for ch in e.ja) and e.en
    return e


@pytest.mark.parametrize(
    "data",
    [
        (HEADER + ROW1 + ROW2).encode("utf-8"),
        codecs.BOM_UTF8 + (HEADER + ROW1 + ROW2).encode("utf-8"),
        (HEADER + ROW1 + ROW2).encode("cp932"),
    ],
    ids=["utf-8", "utf-8-bom", "shift_jis"],
)
def test_utf8_bom_and_shift_jis_rolls_read(tmp_path: Path, data: bytes) -> None:
    a, b = read_roll(write(tmp_path, data))
    assert (a.line, a.record_id, a.claimed) == (2, "A001", None)
    assert a.items.name == "髙橋 一郎" and a.items.birth_date == dt.date(1985, 6, 15)
    assert a.items.sex == 1 and a.items.address.endswith("8番1号")
    # 和暦 and 女 accepted; the number carried as written, checked later
    assert (b.line, b.items.birth_date, b.items.sex) == (3, dt.date(1985, 6, 15), 2)
    assert b.claimed == "1234-5678-9012"


def test_columns_in_any_order_and_the_number_column_optional(tmp_path: Path) -> None:
    path = write(
        tmp_path, "sex,address,birth_date,name_kana,name,record_id\n1,住所,1990-01-02,カナ,名前,X\n"
    )
    [r] = read_roll(path)
    assert r.record_id == "X" and r.claimed is None and r.items.name_kana == "カナ"


def test_utf16_and_nul_are_refused(tmp_path: Path) -> None:
    refused(write(tmp_path, (HEADER + ROW1).encode("utf-16")), "csv.encoding")
    refused(write(tmp_path, (HEADER + ROW1).encode("utf-16-le")), "csv.encoding")
    # a NUL far past the sample the encoding is judged by
    refused(write(tmp_path, (HEADER + ROW1 * 2000).encode() + b"\x00\n"), "csv.encoding")
    # invalid UTF-8 past the sample
    refused(write(tmp_path, (HEADER + ROW1 * 2000).encode() + b"\xff\xfe\n"), "csv.encoding")


def test_missing_columns_are_all_named(tmp_path: Path) -> None:
    path = write(tmp_path, "record_id,name,birth_date,address\nA,名前,1990-01-01,住所\n")
    e = refused(path, "roll.missing_column")
    assert "name_kana" in e.en and "sex" in e.en and "sex" in e.ja
    assert e.extra["line"] == 1


def test_unknown_and_duplicate_columns(tmp_path: Path) -> None:
    e = refused(write(tmp_path, HEADER.strip() + ",phone\n"), "roll.unknown_column")
    assert e.field == "phone" and "phone" in e.ja
    refused(write(tmp_path, HEADER.strip() + ",sex\n"), "roll.duplicate_column")
    refused(write(tmp_path, b""), "csv.empty")


def test_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW1 + ROW2 + ROW1.replace("A001", "A003") + ROW1)
    e = refused(path, "roll.duplicate_id")
    assert e.extra == {"line": 5, "first_line": 2} and e.field == "record_id"
    assert "5" in e.en and "2" in e.en and "5行目" in e.ja and "2行目" in e.ja


@pytest.mark.parametrize(
    ("row", "code", "field"),
    [
        ("B1,名,カナ,1985-02-30,1,住所,", "date.invalid", "birth_date"),
        ("B1,名,カナ,yesterday,1,住所,", "date.format", "birth_date"),
        ("B1,名,カナ,1985-02-01,3,住所,", "sex.invalid", "sex"),
        (",名,カナ,1985-02-01,1,住所,", "roll.empty_field", "record_id"),
        ("B1,,カナ,1985-02-01,1,住所,", "roll.empty_field", "name"),
        ("B 1,名,カナ,1985-02-01,1,住所,", "roll.record_id", "record_id"),
        ("B1,名,カナ,1985-02-01,1," + "あ" * 301 + ",", "roll.too_long", "address"),
        ('B1,"名\t前",カナ,1985-02-01,1,住所,', "roll.control_character", "name"),
        ('B1,名,"カ\nナ",1985-02-01,1,住所,', "roll.control_character", "name_kana"),
        ("B1,名,カナ,1985-02-01,1", "csv.row_width", None),
    ],
)
def test_bad_values_name_the_line_and_field(
    tmp_path: Path, row: str, code: str, field: str | None
) -> None:
    e = refused(write(tmp_path, HEADER + ROW1 + row + "\n"), code)
    assert e.extra["line"] == 3 and e.field == field
    assert "3" in e.en and "3行目" in e.ja


def test_a_malformed_number_is_carried_through(tmp_path: Path) -> None:
    [r] = read_roll(write(tmp_path, HEADER + ROW1.replace(",\n", ",12345\n")))
    assert r.claimed == "12345"


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=400),
        st.builds(
            lambda body: HEADER.encode() + body,
            st.binary(max_size=300),
        ),
        st.builds(
            lambda text, enc: (HEADER + text).encode(enc, errors="replace"),
            st.text(max_size=200),
            st.sampled_from(["utf-8", "cp932", "utf-16"]),
        ),
    )
)
def test_arbitrary_bytes_read_or_raise_a_documented_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "roll.csv"
        path.write_bytes(data)
        try:
            read_roll(path)
        except MynumberError as e:
            assert e.code in DOCUMENTED, e.code
            assert e.ja and e.en

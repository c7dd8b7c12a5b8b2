"""Bulk import and export of residents (municipality.bulk, csvio) on SQLite and PostgreSQL.

What must hold (DESIGN.md "Data formats", I8, I9): a file imports completely or not at all
(unless skip_invalid, which commits exactly the good rows); nothing is left behind at J-LIS by
an import that was not committed; every bad row is reported by line (the header is line 1),
field and a stable code; export → import round-trips every field, numbers and resident codes
included (migration of a legacy register).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import create_engine, func, select, text

from mynumber.clock import FixedClock
from mynumber.config import Settings
from mynumber.csvformat import RESIDENT_COLUMNS
from mynumber.csvio import read_residents
from mynumber.errors import MynumberError, ValidationError
from mynumber.jlis import models as jm
from mynumber.municipality import bulk
from mynumber.municipality import models as mm
from mynumber.municipality.bulk import ImportReport, RowError, export_residents, import_residents
from mynumber.municipality.domain import validate_resident
from mynumber.numbers import (
    DEFAULT_RESIDENT_CODE_SCHEME,
    individual_check_digit,
    parse_individual,
    parse_resident_code,
)
from mynumber.platform import Platform
from mynumber.synth import generate_residents

MUNI = "131041"
SYNTH_ROWS = 2000
Row = dict[str, str]


# -- helpers ---------------------------------------------------------------------------------


def individual(body: str) -> str:
    """A valid individual number with the 11 leading digits `body`."""
    return body + individual_check_digit(body)


def rcode(body: str) -> str:
    """A valid resident record code with the 10 leading digits `body`."""
    return body + DEFAULT_RESIDENT_CODE_SCHEME.check_digit(body)


def wrong_check_digit(number: str) -> str:
    return number[:-1] + str((int(number[-1]) + 1) % 10)


def person(**over: str) -> Row:
    """A valid resident row; fields overridden by `over`."""
    row = dict.fromkeys(RESIDENT_COLUMNS, "")
    row.update(
        family_name="山田",
        given_name="太郎",
        family_name_kana="ヤマダ",
        given_name_kana="タロウ",
        birth_date="1980-04-01",
        sex="1",
        municipality_code=MUNI,
        postal_code="1620052",
        address="東京都新宿区戸山1-1-1",
    )
    row.update(over)
    return row


def numbered(rows: Sequence[Mapping[str, str]]) -> list[tuple[int, Mapping[str, str]]]:
    """Rows as a file gives them: line numbers from 2 (the header is line 1)."""
    return [(i + 2, r) for i, r in enumerate(rows)]


def run(p: Platform, rows: Sequence[Mapping[str, str]], **kw: Any) -> ImportReport:
    return import_residents(p.municipality, numbered(rows), **kw)


def errors_of(report: ImportReport) -> list[tuple[int, str | None, str]]:
    return [(e.row, e.field, e.code) for e in report.errors]


def state(p: Platform) -> dict[str, int]:
    """Row counts of every table an import writes, in both roles."""

    def count(conn: Any, table: Any) -> int:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    with p.municipality.engine.connect() as conn:
        out = {
            "residents": count(conn, mm.residents),
            "events": count(conn, mm.events),
            "municipalities": count(conn, mm.municipalities),
        }
    with p.jlis.engine.connect() as conn:
        out |= {
            "jlis_numbers": count(conn, jm.numbers),
            "jlis_resident_codes": count(conn, jm.resident_codes),
            "jlis_identities": count(conn, jm.identities),
        }
    return out


def exported(p: Platform, municipality: str | None = None) -> dict[str, Row]:
    return {r["resident_code"]: r for r in export_residents(p.municipality, municipality)}


def only(p: Platform) -> Row:
    rows = list(export_residents(p.municipality))
    assert len(rows) == 1, rows
    return rows[0]


def to_csv(rows: Sequence[Mapping[str, str]], columns: Sequence[str] = RESIDENT_COLUMNS) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in columns})
    return buf.getvalue()


def from_csv(data: str) -> list[tuple[int, Mapping[str, str | None] | MynumberError]]:
    return list(read_residents(io.StringIO(data, newline="")))


def assert_bilingual(e: RowError | MynumberError) -> None:
    assert e.en and e.ja and e.en != e.ja
    assert any("\u3040" <= ch <= "\u9fff" for ch in e.ja), e.ja


def _pg_database(admin_url: str, name: str, create: bool) -> None:
    eng = create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    try:
        with eng.connect() as conn:
            if create:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            else:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        eng.dispose()


@pytest.fixture
def fresh_platform(
    tmp_path: Path, backend: str | None, clock: FixedClock
) -> Iterator[Callable[[], Platform]]:
    """Another deployment: its own data dir (keys) and, on PostgreSQL, its own database."""
    made: list[Platform] = []
    databases: list[str] = []

    def make() -> Platform:
        url = None
        if backend is not None:
            name = f"mn_test_{uuid.uuid4().hex[:12]}"
            _pg_database(backend, name, create=True)
            databases.append(name)
            url = f"{backend.rsplit('/', 1)[0]}/{name}"
        p = Platform(Settings(data_dir=tmp_path / f"other{len(made)}", database_url=url), clock)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()
    for name in databases:
        assert backend is not None
        _pg_database(backend, name, create=False)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared_platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """One platform per backend for the many one-row cases below (a PostgreSQL database per
    case would cost more than the cases). Each case either changes nothing or adds its row."""
    from conftest import PG_URL, TODAY

    url = None
    name = f"mn_test_{uuid.uuid4().hex[:12]}"
    if request.param == "postgres":
        if not request.getfixturevalue("pg_available"):
            pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
        _pg_database(PG_URL, name, create=True)
        url = f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    p = Platform(
        Settings(data_dir=tmp_path_factory.mktemp("shared"), database_url=url), FixedClock(TODAY)
    )
    p.municipality.create_municipality(MUNI, "東京都", "新宿区")
    try:
        yield p
    finally:
        p.close()
        if url is not None:
            _pg_database(PG_URL, name, create=False)


def run_one(p: Platform, row: Mapping[str, str]) -> tuple[ImportReport, Row | None]:
    """Import one row; the report and the row as exported (None if nothing was added)."""
    before = set(exported(p))
    report = run(p, [row])
    added = [r for code, r in exported(p).items() if code not in before]
    assert len(added) == report.imported
    return report, added[0] if added else None


@pytest.fixture(scope="module")
def synthetic() -> list[Row]:
    return list(generate_residents(SYNTH_ROWS, seed=20261126))


# -- a whole synthetic municipality ----------------------------------------------------------


def test_synthetic_file_imports_completely(platform: Platform, synthetic: list[Row]) -> None:
    before = state(platform)
    report = run(platform, synthetic)
    assert report.errors == []
    assert (report.read, report.imported, report.committed) == (SYNTH_ROWS, SYNTH_ROWS, True)

    out = exported(platform)
    assert set(out) == {r["resident_code"] for r in synthetic}
    numbers = [r["individual_number"] for r in out.values()]
    assert len(set(numbers)) == SYNTH_ROWS
    for n in numbers:
        assert parse_individual(n) == n
    # every field as given (the synthetic rows are already in their stored form)
    for row in synthetic:
        got = out[row["resident_code"]]
        assert {k: got[k] for k in RESIDENT_COLUMNS if k != "individual_number"} == {
            k: row[k] for k in RESIDENT_COLUMNS if k != "individual_number"
        }

    platform.sync()
    after = state(platform)
    assert after["residents"] - before["residents"] == SYNTH_ROWS
    assert after["jlis_numbers"] - before["jlis_numbers"] == SYNTH_ROWS
    assert after["jlis_identities"] - before["jlis_identities"] == SYNTH_ROWS
    assert after["events"] - before["events"] == SYNTH_ROWS  # one import event per resident
    for rc, row in list(out.items())[::97]:
        assert platform.jlis.number_status(row["individual_number"]) == ("active", rc)
        assert platform.jlis.assign_number(rc) == row["individual_number"]
    assert platform.sync() == 0


def test_export_reimport_round_trips_every_field(
    platform: Platform,
    synthetic: list[Row],
    fresh_platform: Callable[[], Platform],
    tmp_path: Path,
) -> None:
    tricky = [
        person(
            family_name="𠮷田",
            given_name="髙志",
            given_name_kana="タカシ",
            domicile="大阪府大阪市北区中之島一丁目3番",
            domicile_head="𠮷田 髙志",
        ),
        person(
            family_name="グエン",
            given_name="ヴァン アン",
            family_name_kana="グエン",
            given_name_kana="ヴァン アン",
            alphabet_name="NGUYEN VAN AN",
            nationality="VN",
            residence_status="技能実習",
            period_of_stay_end="2027-03-31",
            sex="2",
            household_id="HH-1",
            relationship="同居人",
            postal_code="",
            address='東京都新宿区戸山1-1-1, "コーポ" 201',
        ),
    ]
    assert run(platform, synthetic[:300] + tricky).committed
    first = list(export_residents(platform.municipality))
    assert len(first) == 302

    path = tmp_path / "export.csv"
    path.write_text(to_csv(first), encoding="utf-8", newline="")
    other = fresh_platform()
    with path.open(encoding="utf-8", newline="") as fh:
        report = import_residents(
            other.municipality, read_residents(fh), create_municipalities=True
        )
    assert report.errors == []
    assert report.imported == len(first)
    again = {r["resident_code"]: r for r in export_residents(other.municipality)}
    assert {r["resident_code"]: r for r in first} == again
    assert [r["domicile_head"] for r in first if r["domicile"].startswith("大阪府")] == [
        "𠮷田 髙志"
    ]
    second = list(export_residents(other.municipality))
    key: Callable[[Row], str] = lambda r: r["resident_code"]  # noqa: E731
    assert sorted(second, key=key) == sorted(first, key=key)

    other.sync()
    counts = state(other)
    assert counts["jlis_numbers"] == counts["jlis_identities"] == counts["residents"] == 302
    for row in first[::31]:
        assert other.jlis.number_status(row["individual_number"]) == (
            "active",
            row["resident_code"],
        )

    # The same file again into the first register: every row refused, nothing written.
    before = state(platform)
    with path.open(encoding="utf-8", newline="") as fh:
        again = import_residents(platform.municipality, read_residents(fh))
    assert not again.committed and again.imported == 0
    assert [e.row for e in again.errors] == list(range(2, len(first) + 2))
    assert all(e.code.endswith(".duplicate_register") for e in again.errors), {
        e.code for e in again.errors
    }
    assert state(platform) == before


# -- all or nothing --------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [5000, 7])
def test_one_bad_row_commits_nothing(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(bulk, "CHUNK", chunk)
    rows = [dict(r) for r in generate_residents(40, seed=5)]
    for r in rows[::2]:
        r["resident_code"] = ""  # half the codes are allocated by J-LIS, half given
    rows[29]["sex"] = "3"  # line 31
    before = state(platform)
    report = run(platform, rows)
    assert errors_of(report) == [(31, "sex", "sex.invalid")]
    assert_bilingual(report.errors[0])
    assert not report.committed and report.imported == 0
    platform.sync()
    # nothing in the register, and nothing left behind at J-LIS either (no numbers, no codes)
    assert state(platform) == before


def test_bad_row_in_the_last_chunk_commits_nothing(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "CHUNK", 10)
    rows = [dict(r, resident_code="") for r in generate_residents(35, seed=6)]
    rows[-1]["birth_date"] = "令和2年2月30日"
    before = state(platform)
    report = run(platform, rows)
    assert errors_of(report) == [(36, "birth_date", "date.invalid")]
    assert not report.committed
    assert state(platform) == before


def test_failed_migration_can_be_retried(platform: Platform) -> None:
    """A legacy register with numbers but no resident codes: a refused attempt must not leave
    the numbers registered at J-LIS to codes nobody holds, or the retry would be refused."""
    rows = [
        person(given_name=g, individual_number=individual(f"5000000{i:04d}"))
        for i, g in enumerate(["一郎", "二郎", "三郎", "四郎"])
    ]
    rows[2]["birth_date"] = "平成31年5月1日"
    first = run(platform, rows)
    assert errors_of(first) == [(4, "birth_date", "date.outside_era")]
    assert not first.committed

    rows[2]["birth_date"] = "令和元年5月1日"
    retry = run(platform, rows)
    assert retry.errors == []
    assert retry.imported == 4
    got = {r["given_name"]: r["individual_number"] for r in exported(platform).values()}
    assert got == {r["given_name"]: r["individual_number"] for r in rows}


def test_skip_invalid_commits_the_good_rows(platform: Platform) -> None:
    rows = [dict(r) for r in generate_residents(30, seed=8)]
    rows[2]["individual_number"] = "1234567890123"  # line 4
    rows[15]["family_name_kana"] = ""  # line 17
    rows[29]["resident_code"] = wrong_check_digit(rows[29]["resident_code"])  # line 31
    before = state(platform)
    report = run(platform, rows, skip_invalid=True)
    assert errors_of(report) == [
        (4, "individual_number", "individual.length"),
        (17, "family_name_kana", "field.required"),
        (31, "resident_code", "resident-code.check_digit"),
    ]
    assert report.committed and report.imported == 27 and report.read == 30
    platform.sync()
    after = state(platform)
    assert after["residents"] - before["residents"] == 27
    assert after["jlis_numbers"] - before["jlis_numbers"] == 27
    assert after["jlis_identities"] - before["jlis_identities"] == 27
    good = {r["resident_code"] for i, r in enumerate(rows) if i not in (2, 15, 29)}
    assert set(exported(platform)) == good


def test_skip_invalid_with_nothing_valid_commits_nothing(platform: Platform) -> None:
    before = state(platform)
    report = run(platform, [person(sex="x"), person(address="")], skip_invalid=True)
    assert report.imported == 0
    assert errors_of(report) == [(2, "sex", "sex.invalid"), (3, "address", "field.required")]
    assert state(platform) == before


# -- field by field --------------------------------------------------------------------------

REFUSED = [
    ("individual_number", "1234567890123", "individual.length"),
    ("individual_number", "12345678901", "individual.length"),
    ("individual_number", "123456789019", "individual.check_digit"),
    ("individual_number", "１２３４－５６７８－９０１９", "individual.check_digit"),
    ("individual_number", "1234-5678-901X", "individual.invalid_character"),
    ("resident_code", "24727059607", "resident-code.check_digit"),
    ("resident_code", "2472705960", "resident-code.length"),
    ("resident_code", "２４７２７０５９６０７", "resident-code.check_digit"),
    ("birth_date", "平成31年5月1日", "date.outside_era"),
    ("birth_date", "平成32年1月1日", "date.outside_era"),
    ("birth_date", "H31.5.1", "date.outside_era"),
    ("birth_date", "2000-02-30", "date.invalid"),
    ("birth_date", "2000年2月30日", "date.invalid"),
    ("birth_date", "令和2年2月30日", "date.invalid"),
    ("birth_date", "2099-01-01", "birth_date.range"),
    ("birth_date", "1.4.2000", "date.format"),
    ("birth_date", "", "date.empty"),
    ("family_name", "", "field.required"),
    ("family_name", "　", "field.required"),
    ("family_name", "山田1", "name.invalid_character"),
    ("family_name_kana", "", "field.required"),
    ("family_name_kana", "Yamada", "kana.invalid"),
    ("given_name_kana", "太郎", "kana.invalid"),
    ("sex", "", "sex.invalid"),
    ("sex", "3", "sex.invalid"),
    ("sex", "9", "sex.invalid"),
    ("address", "", "field.required"),
    ("address", "東京都\x07新宿区", "address.invalid_character"),
    ("postal_code", "162-083", "postal_code.invalid"),
    ("municipality_code", "131042", "municipality.check_digit"),
    ("nationality", "VNM", "nationality.invalid"),
    ("period_of_stay_end", "someday", "date.format"),
    ("domicile", "東京都\x07千代田区", "text.invalid_character"),
    ("domicile_head", "佐藤1号", "name.invalid_character"),
    ("household_id", "x" * 41, "field.too_long"),
]


@pytest.mark.parametrize(("field", "value", "code"), REFUSED)
def test_bad_field_is_named_with_a_stable_code(
    shared_platform: Platform, field: str, value: str, code: str
) -> None:
    p = shared_platform
    before = state(p)
    report = run(p, [person(), person(**{field: value}), person(given_name="花子")])
    assert errors_of(report) == [(3, field, code)]
    assert_bilingual(report.errors[0])
    assert not report.committed
    assert state(p) == before


ACCEPTED = [
    ("individual_number", "１２３４－５６７８－９０１８", "123456789018"),
    ("individual_number", "1234 5678 9000", "123456789000"),
    ("resident_code", "２４７２７０５９６０８", "24727059608"),
    ("resident_code", "1234-5678-903", "12345678903"),
    ("postal_code", "〒１６２－００５２", "1620052"),
    ("postal_code", "162-0052", "1620052"),
    ("municipality_code", "１３１０４１", MUNI),
    ("birth_date", "令和5年4月1日", "2023-04-01"),
    ("birth_date", "R5.4.1", "2023-04-01"),
    ("birth_date", "Ｒ５．４．１", "2023-04-01"),
    ("birth_date", "平成元年1月8日", "1989-01-08"),
    ("birth_date", "令和元年5月1日", "2019-05-01"),
    ("birth_date", "昭和64年1月7日", "1989-01-07"),
    ("birth_date", "２０００－０２－２９", "2000-02-29"),
    ("birth_date", "2000/2/29", "2000-02-29"),
    ("sex", "男", "1"),
    ("sex", "女", "2"),
    ("family_name", "𠮷田", "𠮷田"),  # outside JIS X 0208: stored as given, not folded to 吉
    ("family_name", "髙橋", "髙橋"),  # not folded to 高
    ("given_name", "しけ\u3099る", "しげる"),  # combining dakuten composed (NFC)
    ("family_name_kana", "ﾔﾏﾀﾞ", "ヤマダ"),  # half-width katakana → full-width
    ("given_name_kana", "ﾀﾛｳ", "タロウ"),
    ("given_name_kana", "たろう", "タロウ"),
    ("family_name_kana", "ヤマタ\u3099", "ヤマダ"),
    ("given_name", "", ""),
    ("given_name_kana", "", ""),
    ("family_name", " 山田 ", "山田"),
]


@pytest.mark.parametrize(("field", "value", "stored"), ACCEPTED)
def test_accepted_and_normalised(
    shared_platform: Platform, field: str, value: str, stored: str
) -> None:
    report, row = run_one(shared_platform, person(**{field: value}))
    assert report.errors == []
    assert report.committed and report.imported == 1
    assert row is not None
    assert row[field] == stored
    assert unicodedata.is_normalized("NFC", row[field])


def test_names_outside_jis_x_0208_reach_the_mirror_unchanged(platform: Platform) -> None:
    run(platform, [person(family_name="𠮷田", given_name="髙志")])
    platform.sync()
    with platform.jlis.engine.connect() as conn:
        names = conn.execute(select(jm.identities.c.family_name, jm.identities.c.given_name)).all()
    assert [tuple(n) for n in names] == [("𠮷田", "髙志")]


def test_full_name_columns(platform: Platform) -> None:
    data = (
        "name,name_kana,birth_date,sex,address,municipality_code\n"
        "山田 太郎,ヤマダ タロウ,1980-04-01,男,東京都新宿区戸山1-1-1,131041\n"
        "山田　花子,ﾔﾏﾀﾞ ﾊﾅｺ,1982-05-02,女,東京都新宿区戸山1-1-1,131041\n"
        "佐藤一郎,サトウイチロウ,R1.5.1,1,東京都新宿区戸山1-1-2,131041\n"
        "  鈴木   次郎 ,すずき じろう,1990-01-01,1,東京都新宿区戸山1-1-3,131041\n"
    )
    report = import_residents(platform.municipality, from_csv(data))
    assert report.errors == [] and report.imported == 4
    got = {
        (r["family_name"], r["given_name"], r["family_name_kana"], r["given_name_kana"])
        for r in exported(platform).values()
    }
    assert got == {
        ("山田", "太郎", "ヤマダ", "タロウ"),
        ("山田", "花子", "ヤマダ", "ハナコ"),
        ("佐藤一郎", "", "サトウイチロウ", ""),
        ("鈴木", "次郎", "スズキ", "ジロウ"),
    }


def test_full_name_column_empty_is_required(platform: Platform) -> None:
    data = "name,name_kana,birth_date,sex,address,municipality_code\n,ヤマダ,1980-04-01,1,東京都新宿区戸山1-1-1,131041\n"
    report = import_residents(platform.municipality, from_csv(data))
    assert errors_of(report) == [(2, "family_name", "field.required")]


# -- duplicates ------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [5000, 2])
def test_duplicates_inside_one_file(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(bulk, "CHUNK", chunk)
    code, number = rcode("1000000001"), individual("10000000001")
    rows = [
        person(resident_code=code),  # 2
        person(given_name="花子"),  # 3
        person(resident_code="１０００－０００－００１" + code[-1]),  # 4: the same code, full-width
        person(individual_number=number),  # 5
        person(individual_number=f"{number[:4]}-{number[4:8]}-{number[8:]}"),  # 6: the same
    ]
    before = state(platform)
    report = run(platform, rows)
    assert errors_of(report) == [
        (4, "resident_code", "resident_code.duplicate_in_file"),
        (6, "individual_number", "individual_number.duplicate_in_file"),
    ]
    assert not report.committed and state(platform) == before
    report = run(platform, rows, skip_invalid=True)
    assert report.imported == 3 and len(report.errors) == 2


def test_duplicates_against_the_register(platform: Platform) -> None:
    code, number = rcode("2000000002"), individual("20000000002")
    assert run(platform, [person(resident_code=code, individual_number=number)]).imported == 1
    before = state(platform)
    for row, field in [
        (person(resident_code=code), "resident_code"),
        (person(individual_number=number), "individual_number"),
        (person(resident_code=rcode("2000000003"), individual_number=number), "individual_number"),
        (person(resident_code=code, individual_number=number), "resident_code"),
    ]:
        report = run(platform, [person(given_name="花子"), row])
        assert errors_of(report) == [(3, field, f"{field}.duplicate_register")]
        assert_bilingual(report.errors[0])
        assert not report.committed
        assert state(platform) == before


def test_number_that_belongs_to_someone_else_at_jlis(platform: Platform) -> None:
    # A person J-LIS knows but this register does not (e.g. living elsewhere).
    theirs_code = platform.jlis.allocate_resident_codes(MUNI, 1)[0]
    theirs = platform.jlis.assign_number(theirs_code)
    before = state(platform)
    for row in (
        person(individual_number=theirs),
        person(resident_code=rcode("3000000003"), individual_number=theirs),
    ):
        report = run(platform, [row])
        assert errors_of(report) == [(2, "individual_number", "individual_number.belongs_to_other")]
        assert_bilingual(report.errors[0])
        assert state(platform) == before
    # The number with its own person's code is that person's: accepted.
    report = run(platform, [person(resident_code=theirs_code, individual_number=theirs)])
    assert report.errors == [] and report.imported == 1
    assert only(platform)["individual_number"] == theirs


def test_resident_code_with_another_number_at_jlis(platform: Platform) -> None:
    code = platform.jlis.allocate_resident_codes(MUNI, 1)[0]
    platform.jlis.assign_number(code)
    before = state(platform)
    report = run(
        platform,
        [person(resident_code=code, individual_number=individual("40000000004"))],
        skip_invalid=True,
    )
    assert errors_of(report) == [
        (2, "individual_number", "individual_number.differs_from_registered")
    ]
    assert_bilingual(report.errors[0])
    assert report.imported == 0
    assert state(platform) == before


# -- municipality ----------------------------------------------------------------------------


def test_municipality_code_empty(platform: Platform) -> None:
    report = run(platform, [person(municipality_code="")])
    assert errors_of(report) == [(2, "municipality_code", "field.required")]
    assert_bilingual(report.errors[0])
    assert not report.committed

    report = run(platform, [person(municipality_code="")], municipality=MUNI)
    assert report.errors == [] and report.imported == 1
    assert only(platform)["municipality_code"] == MUNI

    report = run(
        platform, [person(municipality_code="", given_name="花子")], municipality="１３１０４１"
    )
    assert report.imported == 1
    assert {r["municipality_code"] for r in exported(platform).values()} == {MUNI}


def test_municipality_default_with_a_wrong_check_digit(platform: Platform) -> None:
    before = state(platform)
    with pytest.raises(ValidationError) as exc:
        run(platform, [person(municipality_code="")], municipality="131042")
    assert exc.value.code == "municipality.check_digit"
    assert state(platform) == before


def test_row_code_wins_over_the_default(platform: Platform) -> None:
    platform.municipality.create_municipality("132039", "東京都", "武蔵野市")
    report = run(platform, [person(municipality_code="132039")], municipality=MUNI)
    assert report.imported == 1
    assert set(exported(platform, "132039")) and not exported(platform, MUNI)


# -- the file itself -------------------------------------------------------------------------


def test_rows_with_the_wrong_number_of_fields(platform: Platform) -> None:
    good = to_csv([person()]).splitlines()[1]
    data = "\n".join(
        [
            ",".join(RESIDENT_COLUMNS),  # 1
            good,  # 2
            good + ",extra",  # 3
            good.rsplit(",", 2)[0],  # 4
            "",  # 5: blank lines are skipped, but counted
            good,  # 6
            "x",  # 7
        ]
    )
    before = state(platform)
    report = import_residents(platform.municipality, from_csv(data + "\n"))
    assert errors_of(report) == [
        (3, None, "csv.row_width"),
        (4, None, "csv.row_width"),
        (7, None, "csv.row_width"),
    ]
    assert not report.committed and state(platform) == before
    report = import_residents(platform.municipality, from_csv(data), skip_invalid=True)
    assert report.imported == 2 and len(report.errors) == 3


def test_line_numbers_count_quoted_newlines(platform: Platform) -> None:
    rows = [
        person(),  # line 2
        person(address="東京都新宿区\n戸山1-1-1", sex="x"),  # lines 3-4
        person(address="東京都新宿区\r\n戸山\n1-1-1"),  # lines 5-7
        person(birth_date="2000-02-30"),  # line 8
    ]
    report = import_residents(platform.municipality, from_csv(to_csv(rows)), skip_invalid=True)
    assert errors_of(report) == [(3, "sex", "sex.invalid"), (8, "birth_date", "date.invalid")]
    assert report.imported == 2
    addresses = {r["address"] for r in exported(platform).values()}
    assert addresses == {"東京都新宿区戸山1-1-1", "東京都新宿区 戸山 1-1-1"}


@pytest.mark.parametrize(
    ("header", "code", "field"),
    [
        ("family_name,family_name_kana,birth_date,address", "csv.missing_column", "sex"),
        ("name_kana,birth_date,sex,address", "csv.missing_column", "family_name"),
        (
            "family_name,family_name_kana,birth_date,sex,address,email",
            "csv.unknown_column",
            "email",
        ),
        (
            "family_name,family_name_kana,birth_date,sex,address,sex",
            "csv.duplicate_column",
            "sex",
        ),
    ],
)
def test_bad_header_refuses_the_file(
    platform: Platform, header: str, code: str, field: str
) -> None:
    before = state(platform)
    with pytest.raises(ValidationError) as exc:
        import_residents(platform.municipality, from_csv(header + "\n山田,ヤマダ,1980-01-01,1,x\n"))
    assert (exc.value.code, exc.value.field) == (code, field)
    assert_bilingual(exc.value)
    assert state(platform) == before


def test_empty_file_and_header_only(platform: Platform) -> None:
    with pytest.raises(ValidationError) as exc:
        import_residents(platform.municipality, from_csv(""))
    assert exc.value.code == "csv.empty"
    report = import_residents(platform.municipality, from_csv(",".join(RESIDENT_COLUMNS) + "\n"))
    assert report.errors == [] and report.imported == 0 and report.read == 0


def test_minimal_header_in_any_order(platform: Platform) -> None:
    data = " sex , address,birth_date,family_name_kana,family_name\n2,東京都新宿区戸山1-1-1,S50.1.2,ハナコ,花子\n"
    report = import_residents(platform.municipality, from_csv(data), municipality=MUNI)
    assert report.errors == [] and report.imported == 1
    row = only(platform)
    assert (row["family_name"], row["sex"], row["birth_date"]) == ("花子", "2", "1975-01-02")
    assert parse_resident_code(row["resident_code"]) == row["resident_code"]
    assert parse_individual(row["individual_number"]) == row["individual_number"]


# -- what the database can hold --------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("relationship", "妻" * 41),
        ("household_id", "HH\x00"),
        ("alphabet_name", "YAMADA\x00TARO"),
        ("residence_status", "留学\x00"),
    ],
)
def test_values_the_database_cannot_hold_are_refused_per_row(
    platform: Platform, field: str, value: str
) -> None:
    before = state(platform)
    report = run(platform, [person(**{"household_id": "HH-2", field: value})])
    assert [(e.row, e.field) for e in report.errors] == [(2, field)]
    assert state(platform) == before


# -- arbitrary input -------------------------------------------------------------------------

COLUMNS = (*RESIDENT_COLUMNS, "name", "name_kana")
# NUL and over-long relationships are the known domain bug above (xfail); leave them out here so
# that this property keeps finding new ones.
_text = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=30)
_patch = st.dictionaries(st.sampled_from(COLUMNS), _text, max_size=8)
_BASE = [dict(r, resident_code="") for r in generate_residents(8, seed=99)]


@hsettings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    patches=st.lists(st.tuples(st.booleans(), _patch), min_size=1, max_size=8),
    skip_invalid=st.booleans(),
    default=st.booleans(),
)
def test_arbitrary_rows_are_answered_row_by_row(
    platform: Platform,
    patches: list[tuple[bool, dict[str, str]]],
    skip_invalid: bool,
    default: bool,
) -> None:
    platform.auto_sync = False
    rows: list[dict[str, str]] = [
        {**_BASE[i % len(_BASE)], **patch} if on_valid_row else patch
        for i, (on_valid_row, patch) in enumerate(patches)
    ]
    today = platform.municipality.clock.today()
    before = state(platform)
    report = import_residents(
        platform.municipality,
        numbered(rows),
        municipality=MUNI if default else None,
        skip_invalid=skip_invalid,
    )
    after = state(platform)

    lines = [e.row for e in report.errors]
    assert len(lines) == len(set(lines)), "one error per row"
    assert set(lines) <= set(range(2, len(rows) + 2))
    for line, raw in numbered(rows):
        got = [(e.field, e.code) for e in report.errors if e.row == line]
        try:
            items = validate_resident(raw, today)
        except MynumberError as exc:
            assert got == [(exc.field, exc.code)]
            continue
        if items.municipality_code is None and not default:
            assert got == [("municipality_code", "field.required")]
        elif got:  # a valid row is refused only as a duplicate
            assert got[0][1].split(".", 1)[1] in {
                "duplicate_in_file",
                "duplicate_register",
                "belongs_to_other",
                "differs_from_registered",
            }, got
    assert report.read == len(rows)
    added = after["residents"] - before["residents"]
    if skip_invalid or not report.errors:
        assert report.committed
        assert added == report.imported == len(rows) - len(report.errors)
        assert after["jlis_numbers"] - before["jlis_numbers"] == added
        assert after["events"] - before["events"] == added
    else:
        assert not report.committed and report.imported == 0
        assert after == before


def test_whole_numbers_only_in_the_export(platform: Platform) -> None:
    """The export is for migration and carries whole numbers; nothing else in a report does."""
    number = individual("60000000006")
    report = run(platform, [person(individual_number=number), person(individual_number=number)])
    for e in report.errors:
        assert number not in e.en and number not in e.ja
    run(platform, [person(individual_number=number)])
    assert only(platform)["individual_number"] == number
    assert dt.date.fromisoformat(only(platform)["birth_date"]) == dt.date(1980, 4, 1)

"""The command line as people run it: one `python -m mynumber.cli` process per command.

Every failing command must exit non-zero with a message in Japanese and English naming the code
(and the row and field) — never a traceback — and no command may print a whole individual
number (I5): only the export file carries them.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mynumber.config import Settings
from mynumber.csvformat import RESIDENT_COLUMNS
from mynumber.municipality.bulk import export_residents
from mynumber.numbers import individual_check_digit, mask, parse_individual
from mynumber.platform import Platform

MUNI = "131041"
SYNTH = 500
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


# Without bytecode caching (PYTHONDONTWRITEBYTECODE) every command spends a second compiling its
# imports; cache it outside the source tree instead.
PYCACHE = Path(tempfile.gettempdir()) / f"mynumber-test-pycache-{os.getuid()}"


def cli(
    *args: str | Path, cwd: Path, create_municipalities: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the CLI; imports register the file's municipality unless told not to (a fresh data
    dir has none, and a row for an unregistered municipality is refused)."""
    if create_municipalities and tuple(map(str, args[:2])) == ("import", "residents"):
        args = (*args, "--create-municipalities")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MYNUMBER_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env |= {
        "HOME": str(cwd),
        "COLUMNS": "200",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONPYCACHEPREFIX": str(PYCACHE),
    }
    result = subprocess.run(
        [sys.executable, "-m", "mynumber.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=600,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout
    return result


def read_csv(path: Path, encoding: str = "utf-8") -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding=encoding, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def write_csv(path: Path, rows: list[dict[str, str]], encoding: str = "utf-8") -> None:
    with path.open("w", encoding=encoding, newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _encodable(row: dict[str, str], encoding: str) -> bool:
    try:
        ",".join(row.values()).encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def assert_bilingual_error(stderr: str, code: str) -> None:
    assert code in stderr, stderr
    assert JAPANESE.search(stderr), stderr
    assert re.search(r"[A-Za-z]{4,} [a-z]{2,}", stderr), stderr


def residents_in(data_dir: Path, database_url: str | None = None) -> list[dict[str, str]]:
    """What the register holds (read in this process: quicker than another command)."""
    p = Platform(Settings(data_dir=data_dir, database_url=database_url))
    try:
        return list(export_residents(p.municipality))
    finally:
        p.close()


@pytest.fixture(scope="module")
def synth_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("synth")
    r = cli("synth", "--residents", SYNTH, "--seed", 3, "--out", "f.csv", cwd=tmp)
    assert r.returncode == 0, r.stderr
    assert f"wrote {SYNTH}" in r.stderr
    return tmp / "f.csv"


@pytest.fixture
def f_csv(synth_file: Path, tmp_path: Path) -> Path:
    path = tmp_path / "f.csv"
    shutil.copy(synth_file, path)
    return path


def test_synth_writes_the_format(synth_file: Path) -> None:
    header, rows = read_csv(synth_file)
    assert header == list(RESIDENT_COLUMNS)
    assert len(rows) == SYNTH
    assert {r["municipality_code"] for r in rows} == {MUNI}


def test_import_then_export(f_csv: Path, tmp_path: Path) -> None:
    data = tmp_path / "d"
    r = cli("import", "residents", f_csv, "--data-dir", data, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"imported {SYNTH} of {SYNTH} rows" in r.stdout
    assert "import" in r.stderr and f"{SYNTH}/{SYNTH}" in r.stderr  # progress, on stderr

    out = tmp_path / "out.csv"
    r = cli("export", "residents", out, "--data-dir", data, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    header, rows = read_csv(out)
    assert header == list(RESIDENT_COLUMNS)
    assert len(rows) == SYNTH
    _, given = read_csv(f_csv)
    assert {r["resident_code"] for r in rows} == {r["resident_code"] for r in given}
    numbers = {r["individual_number"] for r in rows}
    assert len(numbers) == SYNTH and all(parse_individual(n) == n for n in numbers)

    # An existing, world-readable file is made private too before numbers go into it.
    out.chmod(0o644)
    r = cli("export", "residents", out, "--data-dir", data, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    r = cli("sync", "--data-dir", data, cwd=tmp_path)
    assert r.returncode == 0 and "applied 0 events" in r.stdout  # the import synced already
    r = cli("municipality", "list", "--data-dir", data, cwd=tmp_path)
    assert r.returncode == 0 and MUNI in r.stdout and f"{SYNTH}" in r.stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_import_command_on_each_backend(
    f_csv: Path, tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    db: list[str] = []
    if backend == "postgres":
        db = ["--database-url", request.getfixturevalue("postgres_url")]
    data = tmp_path / "d"
    r = cli("import", "residents", f_csv, "--data-dir", data, *db, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(residents_in(data, *db[1:])) == SYNTH

    # The same file again: every row is already in the register; nothing changes.
    r = cli("import", "residents", f_csv, "--data-dir", data, *db, cwd=tmp_path)
    assert r.returncode == 1
    assert "resident_code.duplicate_register" in r.stderr and "nothing imported" in r.stderr
    _, report = read_csv(tmp_path / "f.errors.csv")
    assert [int(e["row"]) for e in report] == list(range(2, SYNTH + 2))
    assert {e["code"] for e in report} == {"resident_code.duplicate_register"}
    assert len(residents_in(data, *db[1:])) == SYNTH


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp932"])
def test_bom_and_shift_jis_files_import(f_csv: Path, tmp_path: Path, encoding: str) -> None:
    _, rows = read_csv(f_csv)
    if encoding == "cp932":  # a Shift_JIS file cannot hold every name (婷, for one)
        rows = [r for r in rows if _encodable(r, encoding)]
        assert len(rows) > SYNTH * 0.9
    path = tmp_path / f"{encoding}.csv"
    write_csv(path, rows, encoding=encoding)
    if encoding == "utf-8-sig":
        assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    data = tmp_path / "d"
    r = cli("import", "residents", path, "--data-dir", data, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    if encoding == "cp932":
        assert "Shift_JIS" in r.stderr
    got = {r["resident_code"]: r for r in residents_in(data)}
    assert len(got) == len(rows)
    for row in rows:  # the text came through intact, whatever the encoding
        for col in ("family_name", "given_name", "family_name_kana", "address"):
            assert got[row["resident_code"]][col] == row[col]


@pytest.mark.parametrize(
    ("encoding", "whole"), [("utf-16", True), ("utf-16-le", False), ("utf-32", True)]
)
def test_undecodable_encoding_is_refused(
    f_csv: Path, tmp_path: Path, encoding: str, whole: bool
) -> None:
    # the whole file, or only its (ASCII) header, which both decoders would otherwise accept
    text = f_csv.read_text(encoding="utf-8") if whole else ",".join(RESIDENT_COLUMNS) + "\n"
    path = tmp_path / "wide.csv"
    path.write_bytes(text.encode(encoding))
    data = tmp_path / "d"
    r = cli("import", "residents", path, "--data-dir", data, cwd=tmp_path)
    assert r.returncode == 1
    assert_bilingual_error(r.stderr, "csv.encoding")
    assert "UTF-8" in r.stderr
    assert residents_in(data) == []


def test_bad_bytes_after_the_first_64_kib(f_csv: Path, tmp_path: Path) -> None:
    raw = f_csv.read_bytes()
    assert len(raw) > 1 << 16
    lines = raw.split(b"\n")
    lines[-3] = lines[-3].replace("東京都".encode(), "東京都".encode("cp932"), 1)
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"\n".join(lines))
    data = tmp_path / "d"
    r = cli("import", "residents", path, "--data-dir", data, cwd=tmp_path)
    assert r.returncode == 1
    assert_bilingual_error(r.stderr, "csv.encoding")
    assert residents_in(data) == []


def test_bad_rows_import_nothing_and_are_reported(f_csv: Path, tmp_path: Path) -> None:
    _, rows = read_csv(f_csv)
    rows[8]["sex"] = "3"  # line 10
    rows[98]["birth_date"] = "2000年2月30日"  # line 100
    rows[498]["individual_number"] = "12345678901"  # line 500
    path = tmp_path / "bad.csv"
    write_csv(path, rows)
    data = tmp_path / "d"
    r = cli("import", "residents", path, "--data-dir", data, cwd=tmp_path)
    assert r.returncode == 1
    assert "line 10 [sex] sex.invalid" in r.stderr
    assert "line 100 [birth_date] date.invalid" in r.stderr
    assert "line 500 [individual_number] individual.length" in r.stderr
    assert "nothing imported" in r.stderr and JAPANESE.search(r.stderr)
    report_header, report = read_csv(tmp_path / "bad.errors.csv")
    assert report_header == ["row", "field", "code", "message_ja", "message_en"]
    assert [(e["row"], e["field"], e["code"]) for e in report] == [
        ("10", "sex", "sex.invalid"),
        ("100", "birth_date", "date.invalid"),
        ("500", "individual_number", "individual.length"),
    ]
    assert all(JAPANESE.search(e["message_ja"]) and e["message_en"] for e in report)
    assert residents_in(data) == []

    custom = tmp_path / "report.csv"
    r = cli("import", "residents", path, "--data-dir", data, "--report", custom, cwd=tmp_path)
    assert r.returncode == 1 and len(read_csv(custom)[1]) == 3

    r = cli("import", "residents", path, "--data-dir", data, "--skip-invalid", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"imported {SYNTH - 3} of {SYNTH} rows" in r.stdout
    got = {r["resident_code"] for r in residents_in(data)}
    assert got == {r["resident_code"] for i, r in enumerate(rows) if i not in (8, 98, 498)}


def test_missing_required_column(f_csv: Path, tmp_path: Path) -> None:
    _, rows = read_csv(f_csv)
    path = tmp_path / "nosex.csv"
    write_csv(path, [{k: v for k, v in r.items() if k != "sex"} for r in rows])
    data = tmp_path / "d"
    r = cli("import", "residents", path, "--data-dir", data, cwd=tmp_path)
    assert r.returncode == 1
    assert_bilingual_error(r.stderr, "csv.missing_column")
    assert "[sex]" in r.stderr
    assert residents_in(data) == []


def test_rows_with_the_wrong_number_of_fields(f_csv: Path, tmp_path: Path) -> None:
    lines = f_csv.read_text(encoding="utf-8").splitlines()
    lines[4] += ",extra"  # line 5
    lines[6] = lines[6].rsplit(",", 3)[0]  # line 7
    path = tmp_path / "width.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = cli("import", "residents", path, "--data-dir", tmp_path / "d", cwd=tmp_path)
    assert r.returncode == 1
    assert "line 5 [None]" not in r.stderr
    assert "line 5" in r.stderr and "line 7" in r.stderr and "csv.row_width" in r.stderr


def test_municipality_option(f_csv: Path, tmp_path: Path) -> None:
    _, rows = read_csv(f_csv)
    path = tmp_path / "nomuni.csv"
    write_csv(path, [dict(r, municipality_code="") for r in rows[:20]])
    data = tmp_path / "d"
    r = cli("import", "residents", path, "--data-dir", data, cwd=tmp_path)
    assert r.returncode == 1 and "[municipality_code] field.required" in r.stderr
    r = cli(
        "import", "residents", path, "--data-dir", data, "--municipality", "131042", cwd=tmp_path
    )
    assert r.returncode == 1
    assert_bilingual_error(r.stderr, "municipality.check_digit")
    r = cli("import", "residents", path, "--data-dir", data, "--municipality", MUNI, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert {r["municipality_code"] for r in residents_in(data)} == {MUNI}


def test_missing_file(tmp_path: Path) -> None:
    r = cli("import", "residents", tmp_path / "nope.csv", "--data-dir", tmp_path, cwd=tmp_path)
    assert r.returncode == 2


def test_number_check(tmp_path: Path) -> None:
    r = cli("number", "check", "1234-5678-9018", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == mask("123456789018")
    r = cli("number", "check", "１２３４ ５６７８ ９０１８", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "********9018"
    for wrong, code in [
        ("123456789019", "individual.check_digit"),
        ("12345678901", "individual.length"),
        ("1234567890123", "individual.length"),
        ("12345678901a", "individual.invalid_character"),
        ("", "individual.empty"),
    ]:
        r = cli("number", "check", wrong, cwd=tmp_path)
        assert r.returncode == 1, (wrong, r.stdout)
        assert r.stdout == ""
        assert_bilingual_error(r.stderr, code)
    r = cli("number", "check", "131041", "--kind", "municipality", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "131041"
    r = cli("number", "check", "131042", "--kind", "municipality", cwd=tmp_path)
    assert r.returncode == 1 and "municipality.check_digit" in r.stderr
    r = cli("number", "check", "24727059608", "--kind", "resident-code", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "24727059608"
    r = cli("number", "check", "123", "--kind", "passport", cwd=tmp_path)
    assert r.returncode == 2 and "passport" in r.stderr


def test_no_command_prints_a_whole_number(f_csv: Path, tmp_path: Path) -> None:
    data = tmp_path / "d"
    outputs: list[str] = []

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        r = cli(*args, cwd=tmp_path)
        outputs.append(r.stdout + r.stderr)
        return r

    assert run("import", "residents", f_csv, "--data-dir", data).returncode == 0
    exported = tmp_path / "exported.csv"
    assert run("export", "residents", exported, "--data-dir", data).returncode == 0
    _, rows = read_csv(exported)
    numbers = [r["individual_number"] for r in rows]
    assert len(numbers) == SYNTH

    # the exported file (with numbers) into the same register: every row a duplicate
    assert run("import", "residents", exported, "--data-dir", data).returncode == 1
    # into a new register, with a few rows spoilt in ways that name the number field
    spoilt = [dict(r) for r in rows]
    spoilt[3]["individual_number"] = spoilt[4]["individual_number"]  # duplicate in file
    spoilt[5]["sex"] = "x"
    n = spoilt[6]["individual_number"]
    spoilt[6]["individual_number"] = n[:-1] + str((int(n[-1]) + 1) % 10)  # check digit
    migrated = tmp_path / "migrate.csv"
    write_csv(migrated, spoilt)
    fresh = tmp_path / "fresh"
    assert run("import", "residents", migrated, "--data-dir", fresh).returncode == 1
    assert (
        run("import", "residents", migrated, "--data-dir", fresh, "--skip-invalid").returncode == 0
    )
    assert run("export", "residents", tmp_path / "again.csv", "--data-dir", fresh).returncode == 0
    for number in numbers[:3]:
        r = run("number", "check", number)
        assert r.returncode == 0 and r.stdout.strip() == mask(number)
        body = number[:11]
        wrong = body + str((int(individual_check_digit(body)) + 1) % 10)
        assert run("number", "check", wrong).returncode == 1
    assert run("sync", "--data-dir", data).returncode == 0
    assert run("municipality", "list", "--data-dir", data).returncode == 0

    reports = [p.read_text(encoding="utf-8") for p in tmp_path.glob("*.errors.csv")]
    assert len(reports) == 2
    seen = "\n".join(outputs + reports)
    flat = re.sub(r"\s+", "", seen)  # a number wrapped across lines is still printed
    for number in numbers:
        assert number not in seen and number not in flat, "a whole individual number was printed"


def test_token_create(tmp_path: Path) -> None:
    data = tmp_path / "d"
    tokens = []
    for _ in range(2):
        r = cli(
            "token", "create", "--name", "ci", "--scope", "municipality:read",
            "--scope", "municipality:write", "--data-dir", data, cwd=tmp_path,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        lines = r.stdout.split()
        assert len(lines) == 1 and re.fullmatch(r"mnt_[A-Za-z0-9_-]{40,}", lines[0])
        assert lines[0] not in r.stderr
        tokens.append(lines[0])
    assert tokens[0] != tokens[1]
    store = data / "tokens.json"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert not any(t in store.read_text() for t in tokens)
    r = cli("token", "create", "--name", "x", "--scope", "root", "--data-dir", data, cwd=tmp_path)
    assert r.returncode == 2 and "root" in r.stderr and not r.stdout


def test_municipality_add(tmp_path: Path) -> None:
    data = tmp_path / "d"
    r = cli(
        "municipality", "add", "131042", "--prefecture", "東京都", "--name", "新宿区",
        "--data-dir", data, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 1
    assert_bilingual_error(r.stderr, "municipality.check_digit")
    assert "検査用数字" in r.stderr and "check digit" in r.stderr
    r = cli(
        "municipality", "add", "１３１０４１", "--prefecture", "東京都", "--name", "新宿区",
        "--data-dir", data, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = cli("municipality", "list", "--data-dir", data, cwd=tmp_path)
    assert r.returncode == 0
    assert "131041" in r.stdout and "新宿区" in r.stdout and "131042" not in r.stdout


def test_import_refuses_an_unregistered_municipality(f_csv: Path, tmp_path: Path) -> None:
    data = tmp_path / "d"
    r = cli(
        "import", "residents", f_csv, "--data-dir", data, cwd=tmp_path, create_municipalities=False
    )
    assert r.returncode == 1
    assert_bilingual_error(r.stderr, "municipality.not_found")
    assert residents_in(data) == []
    assert (
        cli(
            "municipality",
            "add",
            "131041",
            "--prefecture",
            "東京都",
            "--name",
            "新宿区",
            "--data-dir",
            data,
            cwd=tmp_path,
        ).returncode
        == 0
    )
    r = cli(
        "import", "residents", f_csv, "--data-dir", data, cwd=tmp_path, create_municipalities=False
    )
    assert r.returncode == 0, r.stderr
    assert len(residents_in(data)) == SYNTH

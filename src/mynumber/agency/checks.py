"""The general check (総点検) of an agency's existing links (issue 5; DESIGN I3, I5).

An agency extracts every link it holds — ``record_id, individual_number, name, name_kana,
birth_date, sex, address`` — and each is classified against the number's owner in the register
(a :class:`mynumber.agency.bulk.Register`). Items are compared only by
:func:`mynumber.identity.compare`, i.e. after the normalisation of docs/normalisation.md, and
an item *matches* when ``compare`` says ``match`` or ``match_normalised``, or a mismatch that
``matches_earlier``. The classes (:data:`CLASSES`), decided in this order:

1. ``number_unknown``: the number is malformed (not 12 digits after
   :func:`mynumber.numbers.parse_individual`'s tolerance, or a wrong check digit), J-LIS never
   issued it, it is retired, or its owner is not in the register; the note says which
   (``malformed_number``, ``not_issued``, ``retired``).
2. ``deceased``: the owner is recorded as deceased.
3. ``ok``: all five items equal the owner's current values as written (surrounding white space
   aside).
4. ``variant_only``: all five equal the current values, some only after normalisation.
5. ``name_changed``: all five match, the kanji name or the kana name only an earlier value (the
   address may be an earlier one too: both notes are listed).
6. ``moved``: all five match, the address only an earlier value.
7. ``household_member_number``: the owner does not match, but another member of the owner's
   household matches all five items — the family-member number of 2023.
8. ``different_person``: anything else.

Beside the class each link gets ``differs`` — the items that differ from the owner's *current*
values (``name``, ``name_kana``, ``birth_date``, ``sex``, ``address``), so an auditor tells a
one-kana slip from another person — and ``notes`` (:data:`NOTES`).

Scale: :func:`load_extract` reads and checks the CSV with DuckDB (the whole file is refused,
naming the line and field, before anything is written); :func:`resolve_numbers` asks the
register's resolver in chunks; :func:`classify_duckdb` decides every link whose items equal
the owner's as written in one SQL statement (:data:`FAST_SQL`, shared with the Spark path of
:mod:`mynumber.agency.checks_spark`) and passes only the rest through :func:`classify`.
:func:`write_report` writes ``report.csv`` and ``report.html`` into the report directory,
each atomically. Individual numbers appear in outputs masked to their last four digits only.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import csv
import datetime as dt
import html
import io
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from mynumber import duck
from mynumber.agency.bulk import Register
from mynumber.csvio import _not_utf8_or_cp932, detect_encoding
from mynumber.dates import parse_date, parse_sex
from mynumber.errors import MynumberError, ValidationError
from mynumber.identity import FiveItems, ItemResult, RegisteredIdentity, compare
from mynumber.numbers import _INDIVIDUAL_WEIGHTS, parse_individual

__all__ = [
    "CLASSES",
    "CLASS_TEXT",
    "EXTRACT_COLUMNS",
    "FAST_SQL",
    "NOTES",
    "REPORT_COLUMNS",
    "CheckResult",
    "Owner",
    "Verdict",
    "check_links",
    "classify",
    "classify_duckdb",
    "load_extract",
    "member_matches",
    "open_connection",
    "owner_of",
    "resolve_numbers",
    "utf8_path",
    "write_report",
]

CLASSES = (
    "ok",
    "variant_only",
    "moved",
    "name_changed",
    "household_member_number",
    "different_person",
    "number_unknown",
    "deceased",
)
EXTRACT_COLUMNS = (
    "record_id",
    "individual_number",
    "name",
    "name_kana",
    "birth_date",
    "sex",
    "address",
)
REPORT_COLUMNS = ("record_id", "class", "individual_number", "differs", "notes")
NOTES = (
    "malformed_number",
    "not_issued",
    "retired",
    "owner_moved_out",
    "variant_name",
    "variant_name_kana",
    "variant_address",
    "name_changed",
    "moved",
)
"""What the ``notes`` column may hold (``;``-separated, in this order)."""

CLASS_TEXT: Mapping[str, tuple[str, str]] = {
    "ok": ("5情報すべてが記載どおり一致", "all five items equal the register as written"),
    "variant_only": (
        "5情報が一致（異体字・カナの表記ゆれ・住所表記の正規化後）",
        "all five items equal after normalisation (variant kanji, kana and address notation)",
    ),
    "moved": (
        "住所が本人の以前の住所（転居）、他は一致",
        "the address is the person's earlier address (moved); the rest matches",
    ),
    "name_changed": (
        "氏名またはカナが本人の以前の氏名（婚姻など）、他は一致",
        "the name or kana is the person's earlier one (marriage …); the rest matches",
    ),
    "household_member_number": (
        "番号は同一世帯の別の人のもの（家族の番号の誤登録）",
        "the number belongs to another member of the same household",
    ),
    "different_person": (
        "番号の持ち主と5情報が一致しない（別人の可能性）",
        "the items do not match the number's owner (possibly another person)",
    ),
    "number_unknown": (
        "番号の形式誤り・未発行・廃止",
        "the number is malformed, was never issued, or is retired",
    ),
    "deceased": ("番号の持ち主は死亡", "the number's owner is recorded as deceased"),
}

# -- the decision, per link (pure) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Owner:
    """A person as the register holds them (a row of :data:`~mynumber.agency.bulk.REGISTER_SCHEMA`)."""

    resident_code: str
    status: str
    household_id: str | None
    identity: RegisteredIdentity


def owner_of(row: Mapping[str, Any], prefix: str = "") -> Owner:
    """An :class:`Owner` from a register row whose columns may carry `prefix`."""

    def g(k: str) -> Any:
        return row[prefix + k]

    return Owner(
        g("resident_code"),
        g("status"),
        g("household_id"),
        RegisteredIdentity(
            FiveItems(g("name"), g("name_kana"), g("birth_date"), int(g("sex")), g("address")),
            tuple(g("earlier_name_keys") or ()),
            tuple(g("earlier_kana_keys") or ()),
            tuple(g("earlier_address_keys") or ()),
        ),
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    cls: str
    differs: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def member_matches(items: FiveItems, member: Owner) -> bool:
    """`member` matches `items` on all five (current or earlier values, after normalisation)."""
    return compare(items, member.identity).all_match_or_earlier


def classify(
    items: FiveItems,
    number_ok: bool,
    status: str | None,
    owner: Owner | None,
    household: Iterable[Owner] = (),
) -> Verdict:
    """The class of one link (see the module docstring). `number_ok`: the number is well-formed;
    `status`: the resolver's answer for it (``None``: not asked); `household`: the owner's
    household (the owner itself is skipped) — consulted only when the owner does not match."""
    if not number_ok:
        return Verdict("number_unknown", (), ("malformed_number",))
    if status != "active" or owner is None:
        return Verdict("number_unknown", (), ("retired" if status == "retired" else "not_issued",))
    reports = compare(items, owner.identity).items
    differs = tuple(r.item for r in reports if r.result is ItemResult.MISMATCH)
    notes: list[str] = []
    if owner.status == "moved_out":
        notes.append("owner_moved_out")
    notes += [f"variant_{r.item}" for r in reports if r.result is ItemResult.NORMALISED]
    earlier = {r.item for r in reports if r.result is ItemResult.MISMATCH and r.matches_earlier}
    if earlier & {"name", "name_kana"}:
        notes.append("name_changed")
    if "address" in earlier:
        notes.append("moved")
    if owner.status == "deceased":
        return Verdict("deceased", differs, tuple(notes))
    if all(r.result is ItemResult.MATCH for r in reports):
        return Verdict("ok", (), tuple(notes))
    if not differs:
        return Verdict("variant_only", (), tuple(notes))
    if set(differs) <= earlier:
        cls = "name_changed" if earlier & {"name", "name_kana"} else "moved"
        return Verdict(cls, differs, tuple(notes))
    for m in household:
        if m.resident_code != owner.resident_code and member_matches(items, m):
            return Verdict("household_member_number", differs, tuple(notes))
    return Verdict("different_person", differs, tuple(notes))


# -- reading the extract -------------------------------------------------------------------------


def _invalid(code: str, en: str, ja: str, *, line: int | None = None, col: str | None = None) -> ValidationError:  # fmt: skip
    extra = {"line": line} if line is not None else {}
    if line is not None:
        where_en = f"Line {line}" + (f", {col}" if col else "") + ": "
        where_ja = f"{line}行目" + (f"の {col}" if col else "") + ": "
        en, ja = where_en + en, where_ja + ja
    return ValidationError(code, en, ja, field=col, extra=extra)


_CHUNK = 16 << 20


def utf8_path(path: Path, workdir: Path, progress: Callable[[int], None] | None = None) -> Path:
    """`path` itself when it is valid UTF-8 without a BOM, else a UTF-8 copy of it in `workdir`
    (a BOM dropped, Shift_JIS/CP932 transcoded), streaming; an encoding that is neither, a NUL
    byte, or an invalid sequence anywhere is ``csv.encoding``. `progress` gets bytes read."""
    with path.open("rb") as fh:
        sample = fh.read(1 << 16)
    if not sample.strip():
        raise ValidationError("csv.empty", "The file is empty.", "ファイルが空です。")
    encoding = detect_encoding(sample)
    decoder = codecs.getincrementaldecoder(encoding)()
    target = path if encoding == "utf-8" else workdir / "extract-utf8.csv"
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(path.open("rb"))
        dst = None if target == path else stack.enter_context(target.open("w", encoding="utf-8"))
        try:
            while chunk := src.read(_CHUNK):
                if b"\x00" in chunk:
                    raise _not_utf8_or_cp932()
                text = decoder.decode(chunk)
                if dst is not None:
                    dst.write(text)
                if progress is not None:
                    progress(len(chunk))
            tail = decoder.decode(b"", final=True)
            if dst is not None:
                dst.write(tail)
        except UnicodeDecodeError:
            raise _not_utf8_or_cp932() from None
    return target


def _unknown_column(position: int, name: str) -> tuple[str, str, str]:
    """How an unknown header cell is named (English, Japanese, field). A file without a header
    has a record in its place, individual number and all (I5): a cell holding a digit is named
    by its position, never quoted."""
    if any(ch.isdigit() for ch in name):
        return f"column {position}", f"{position}列目", f"column {position}"
    return repr(name[:64]), repr(name[:64]), name[:64]


def _check_header(header: list[str]) -> list[str]:
    cols = [h.strip() for h in header]
    if cols:
        cols[0] = cols[0].lstrip("\ufeff")
    unknown = [_unknown_column(i, c) for i, c in enumerate(cols, start=1) if c not in EXTRACT_COLUMNS]  # fmt: skip
    if unknown:
        shown_en = ", ".join(en for en, _ja, _f in unknown[:5])
        shown_ja = ", ".join(ja for _en, ja, _f in unknown[:5])
        raise _invalid(
            "checks.unknown_column",
            f"unknown column(s) in the header: {shown_en}. An extract has the columns "
            f"{', '.join(EXTRACT_COLUMNS)}.",
            f"ヘッダーに不明な列があります: {shown_ja}。抽出ファイルの列は {', '.join(EXTRACT_COLUMNS)} です。",
            line=1,
            col=unknown[0][2],
        )
    dupes = sorted({c for c in cols if cols.count(c) > 1})
    if dupes:
        raise _invalid(
            "checks.duplicate_column",
            f"column(s) appear twice: {', '.join(dupes)}.",
            f"列が重複しています: {', '.join(dupes)}",
            line=1,
            col=dupes[0],
        )
    missing = [c for c in EXTRACT_COLUMNS if c not in cols]
    if missing:
        raise _invalid(
            "checks.missing_column",
            f"the header lacks the column(s) {', '.join(missing)}.",
            f"ヘッダーに次の列がありません: {', '.join(missing)}",
            line=1,
            col=missing[0],
        )
    return cols


def _lines_of(path: Path, rows: Iterable[int]) -> dict[int, int]:
    """The line each data row (1-based, blank lines not counted — as DuckDB reads) starts on.
    Only called to name a refused row, so a plain scan is fine."""
    wanted = set(rows)
    found: dict[int, int] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        n, end = 0, reader.line_num
        for row in reader:
            line, end = end + 1, reader.line_num
            if not row:
                continue
            n += 1
            if n in wanted:
                found[n] = line
                if len(found) == len(wanted):
                    break
    return found


_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")


def _sql_path(path: Path) -> str:
    """`path` as an SQL string literal (a quote in a directory name is doubled)."""
    return "'" + path.as_posix().replace("'", "''") + "'"


def open_connection(workdir: Path, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB spilling to `workdir` (a check of 10 M links fits a few GiB)."""
    con = duck.connect()
    con.execute(f"SET temp_directory = {_sql_path(workdir)}")
    con.execute("SET preserve_insertion_order = true")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    return con


def _check_digit_sql(n: str) -> str:
    """SQL true when the 12-ASCII-digit column (or expression) `n` has the individual number's
    check digit (総務省令第85号 第5条; the weights of :mod:`mynumber.numbers`)."""
    s = " + ".join(
        f"TRY_CAST(substr({n}, {i + 1}, 1) AS INTEGER) * {w}"
        for i, w in enumerate(_INDIVIDUAL_WEIGHTS)
    )
    return (
        f"(CASE WHEN ({s}) % 11 <= 1 THEN 0 ELSE 11 - ({s}) % 11 END)"
        f" = TRY_CAST(substr({n}, 12, 1) AS INTEGER)"
    )


def load_extract(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    workdir: Path,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> int:
    """Read and check the extract at `path` into table ``ext`` (``idx, record_id, num,
    name, name_kana, birth_date, sex, address``; ``num`` the 12 digits, ``NULL`` when malformed);
    the number of links. Refused whole (a :class:`ValidationError` naming line and field) for
    an encoding, header, empty value, control character, date, sex or duplicate-id error."""
    size = path.stat().st_size
    tick = progress("read", size) if progress is not None else None
    src = utf8_path(path, workdir, tick)
    with src.open(encoding="utf-8", newline="") as fh:
        header = next(csv.reader([fh.readline()]), [])
    cols = _check_header(header)
    columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in cols) + "}"
    try:
        con.execute(
            "CREATE OR REPLACE TABLE raw AS SELECT * FROM read_csv(?, header = true,"
            " auto_detect = false, delim = ',', quote = '\"', escape = '\"', strict_mode = true,"
            f" columns = {columns}, null_padding = false, max_line_size = 4194304)",
            [str(src)],
        )
    except duckdb.Error as e:
        # DuckDB's message quotes the offending line (personal data): only its number is kept.
        m = _CSV_LINE.search(str(e))
        raise _invalid(
            "checks.malformed",
            "the line is not CSV with the header's number of fields.",
            "CSV として読み取れないか、項目数がヘッダーと一致しません。",
            line=int(m.group(1)) if m else None,
        ) from None
    n = int(con.execute("SELECT count(*) FROM raw").fetchone()[0])  # type: ignore[index]

    def refuse_at(row: int, code: str, col: str, en: str, ja: str) -> ValidationError:
        line = _lines_of(src, [row]).get(row)
        return _invalid(code, en, ja, line=line, col=col)

    # idx: the data row (1-based) in file order — DuckDB keeps the insertion order.
    con.execute("CREATE OR REPLACE TABLE rows AS SELECT rowid + 1 AS idx, * FROM raw")
    con.execute("DROP TABLE raw")
    for col in EXTRACT_COLUMNS:
        hit = con.execute(
            f"SELECT min(idx) FROM rows WHERE {col} IS NULL OR trim({col}) = ''"
        ).fetchone()
        if hit and hit[0] is not None:
            raise refuse_at(int(hit[0]), "checks.empty_field", col, "the value is empty.", "値が空です。")  # fmt: skip
    cc = " OR ".join(f"regexp_matches({c}, '[\\x00-\\x1f\\x7f]')" for c in EXTRACT_COLUMNS)
    hit = con.execute(
        f"SELECT idx, {', '.join(EXTRACT_COLUMNS)} FROM rows WHERE {cc} ORDER BY idx LIMIT 1"
    ).fetchone()
    if hit:
        col = next(c for c, v in zip(EXTRACT_COLUMNS, hit[1:], strict=True) if re.search(r"[\x00-\x1f\x7f]", v))  # fmt: skip
        raise refuse_at(
            int(hit[0]),
            "checks.control_character",
            col,
            "a control character (tab, line break …) is not allowed.",
            "制御文字（タブ・改行など）は使えません。",
        )
    dupes = con.execute(
        "SELECT trim(record_id) AS r, list(idx ORDER BY idx)[1:2] AS pos FROM rows GROUP BY r"
        " HAVING count(*) > 1 ORDER BY pos[2] LIMIT 3"
    ).fetchall()
    if dupes:
        lines = _lines_of(src, [i for _r, at in dupes for i in at])
        shown = [(str(r), lines.get(at[0]), lines.get(at[1])) for r, at in dupes]
        first = shown[0]
        raise ValidationError(
            "checks.duplicate_id",
            f"Line {first[2]}: record id(s) appear twice: "
            + "; ".join(f"{r} on lines {a} and {b}" for r, a, b in shown)
            + ".",
            f"{first[2]}行目: 記録IDが重複しています: "
            + "、".join(f"{r}（{a}行目と{b}行目）" for r, a, b in shown),
            field="record_id",
            extra={"line": first[2], "first_line": first[1]},
        )
    # Dates and sex: the common spellings in SQL, every other distinct spelling once in Python.
    dates = _lookup(
        con,
        "birth_date",
        "SELECT DISTINCT trim(birth_date) FROM rows"
        " WHERE TRY_CAST(trim(birth_date) AS DATE) IS NULL"
        " OR NOT regexp_full_match(trim(birth_date), '[0-9]{4}-[0-9]{2}-[0-9]{2}')",
        lambda v: parse_date(v, field="birth_date"),
        pa.date32(),
        refuse_at,
    )
    sexes = _lookup(
        con,
        "sex",
        "SELECT DISTINCT trim(sex) FROM rows WHERE trim(sex) NOT IN ('1', '2')",
        lambda v: parse_sex(v, field="sex"),
        pa.int8(),
        refuse_at,
    )
    nums = _lookup(
        con,
        "individual_number",
        f"SELECT DISTINCT individual_number FROM rows WHERE NOT (regexp_full_match("
        f"individual_number, '[0-9]{{12}}') AND {_check_digit_sql('individual_number')})",
        _number_or_none,
        pa.string(),
        None,
    )
    con.register("dates_map", dates)
    con.register("sexes_map", sexes)
    con.register("nums_map", nums)
    con.execute(
        """
        CREATE OR REPLACE TABLE ext AS
        SELECT r.idx, trim(r.record_id) AS record_id,
               CASE WHEN nm.k IS NULL THEN r.individual_number ELSE nm.v END AS num,
               r.name, r.name_kana,
               coalesce(dm.v, TRY_CAST(trim(r.birth_date) AS DATE)) AS birth_date,
               coalesce(sm.v, TRY_CAST(trim(r.sex) AS TINYINT)) AS sex,
               r.address
        FROM rows r
        LEFT JOIN dates_map dm ON dm.k = trim(r.birth_date)
        LEFT JOIN sexes_map sm ON sm.k = trim(r.sex)
        LEFT JOIN nums_map nm ON nm.k = r.individual_number
        ORDER BY r.idx
        """
    )
    for name in ("dates_map", "sexes_map", "nums_map"):
        con.unregister(name)
    con.execute("DROP TABLE rows")
    if src != path:
        src.unlink()
    return n


def _number_or_none(value: str) -> str | None:
    try:
        return parse_individual(value)
    except ValidationError:
        return None


def _lookup(
    con: duckdb.DuckDBPyConnection,
    col: str,
    sql: str,
    parse: Callable[[str], Any],
    typ: pa.DataType,
    refuse_at: Callable[[int, str, str, str, str], ValidationError] | None,
) -> pa.Table:
    """A (k, v) table of `parse` over the distinct values `sql` selects; the first value
    `parse` refuses is raised with its first line, when `refuse_at` is given."""
    keys: list[str] = []
    values: list[Any] = []
    for (value,) in con.execute(sql).fetchall():
        try:
            values.append(parse(str(value)))
        except MynumberError as e:
            if refuse_at is None:
                raise
            row = con.execute(
                f"SELECT min(idx) FROM rows WHERE trim({col}) = ?", [value]
            ).fetchone()
            raise refuse_at(int(row[0]) if row else 0, e.code, col, e.en, e.ja) from None
        keys.append(str(value))
    return pa.table({"k": pa.array(keys, pa.string()), "v": pa.array(values, typ)})


# -- resolving and classifying -------------------------------------------------------------------

RESOLVE_CHUNK = 500_000


def resolve_numbers(
    con: duckdb.DuckDBPyConnection,
    register: Register,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
    chunk: int = RESOLVE_CHUNK,
) -> int:
    """Table ``numbers (num, status, owner)`` for every distinct well-formed number of ``ext``,
    from the register's resolver, `chunk` numbers a call; the count of distinct numbers."""
    con.execute(
        "CREATE OR REPLACE TABLE distinct_nums AS SELECT row_number() OVER (ORDER BY num) AS k,"
        " num FROM (SELECT DISTINCT num FROM ext WHERE num IS NOT NULL)"
    )
    con.execute("CREATE OR REPLACE TABLE numbers (num VARCHAR, status VARCHAR, owner VARCHAR)")
    total = int(con.execute("SELECT count(*) FROM distinct_nums").fetchone()[0])  # type: ignore[index]
    tick = progress("resolve", total) if progress is not None else None
    for start in range(0, total, chunk):
        batch = [
            str(n)
            for (n,) in con.execute(
                "SELECT num FROM distinct_nums WHERE k > ? AND k <= ? ORDER BY k",
                [start, start + chunk],
            ).fetchall()
        ]
        answers = register.resolve(batch)
        got = [answers.get(n, ("unknown", None)) for n in batch]
        con.register(
            "answers",
            pa.table(
                {
                    "num": pa.array(batch, pa.string()),
                    "status": pa.array([s for s, _o in got], pa.string()),
                    "owner": pa.array([o for _s, o in got], pa.string()),
                }
            ),
        )
        con.execute("INSERT INTO numbers SELECT * FROM answers")
        con.unregister("answers")
        if tick is not None:
            tick(len(batch))
    con.execute("DROP TABLE distinct_nums")
    return total


FAST_SQL = """
SELECT e.idx,
  CASE
    WHEN e.num IS NULL THEN 'number_unknown'
    WHEN n.status IS DISTINCT FROM 'active' OR p.resident_code IS NULL THEN 'number_unknown'
    WHEN p.status = 'active' AND trim(e.name) = trim(p.name)
      AND trim(e.name_kana) = trim(p.name_kana) AND e.birth_date = p.birth_date
      AND e.sex = p.sex AND trim(e.address) = trim(p.address) THEN 'ok'
  END AS class,
  CASE
    WHEN e.num IS NULL THEN 'malformed_number'
    WHEN n.status = 'retired' THEN 'retired'
    WHEN n.status IS DISTINCT FROM 'active' OR p.resident_code IS NULL THEN 'not_issued'
    ELSE ''
  END AS notes
FROM ext e LEFT JOIN numbers n ON n.num = e.num LEFT JOIN people p ON p.resident_code = n.owner
"""
"""The decisions that need no normalisation, in SQL both DuckDB and Spark run: ``number_unknown``
(with its note) and ``ok`` — every item equal as written, ASCII spaces around aside (a subset
of :func:`mynumber.identity.compare`'s ``match``: Python's ``strip`` removes more, and a name
written with or without the space between family and given name is decided in Python). ``class``
is ``NULL`` for every other link: those go through :func:`classify`."""

SLOW_SQL = """
SELECT e.idx, e.name AS e_name, e.name_kana AS e_name_kana, e.birth_date AS e_birth_date,
       e.sex AS e_sex, e.address AS e_address,
       p.resident_code, p.status, p.household_id, p.name, p.name_kana, p.birth_date, p.sex,
       p.address, p.earlier_name_keys, p.earlier_kana_keys, p.earlier_address_keys
FROM fast f JOIN ext e ON e.idx = f.idx JOIN numbers n ON n.num = e.num
JOIN people p ON p.resident_code = n.owner
WHERE f.class IS NULL
"""

MEMBERS_SQL = """
SELECT s.idx, e.name AS e_name, e.name_kana AS e_name_kana, e.birth_date AS e_birth_date,
       e.sex AS e_sex, e.address AS e_address, m.*
FROM suspects s JOIN ext e ON e.idx = s.idx JOIN people m ON m.household_id = s.household_id
WHERE m.resident_code <> s.owner
"""
"""For each suspect (``idx, household_id, owner``: a ``different_person`` verdict), the link's
items and every other member of the owner's household; DuckDB and Spark run it alike."""

VERDICT_SCHEMA = pa.schema(
    [
        ("idx", pa.int64()),
        ("class", pa.string()),
        ("differs", pa.string()),
        ("notes", pa.string()),
    ]
)


def items_of(row: Mapping[str, Any], prefix: str = "e_") -> FiveItems:
    return FiveItems(
        row[prefix + "name"],
        row[prefix + "name_kana"],
        row[prefix + "birth_date"],
        int(row[prefix + "sex"]),
        row[prefix + "address"],
    )


def judge_rows(rows: Iterable[Mapping[str, Any]]) -> Iterator[tuple[int, Verdict, str | None]]:
    """(idx, verdict against the owner alone, the owner's household when the verdict is
    ``different_person`` and the household must be searched) for each row of :data:`SLOW_SQL`."""
    for row in rows:
        owner = owner_of(row)
        v = classify(items_of(row), True, "active", owner)
        yield int(row["idx"]), v, (owner.household_id if v.cls == "different_person" else None)


def verdict_batch(verdicts: Sequence[tuple[int, Verdict]]) -> pa.Table:
    return pa.table(
        {
            "idx": pa.array([i for i, _v in verdicts], pa.int64()),
            "class": pa.array([v.cls for _i, v in verdicts], pa.string()),
            "differs": pa.array([";".join(v.differs) for _i, v in verdicts], pa.string()),
            "notes": pa.array([";".join(v.notes) for _i, v in verdicts], pa.string()),
        },
        schema=VERDICT_SCHEMA,
    )


def upgrade(rows: Iterable[Mapping[str, Any]]) -> set[int]:
    """The links (idx) that another member of the owner's household matches, from the rows of
    :data:`MEMBERS_SQL`."""
    found: set[int] = set()
    for row in rows:
        idx = int(row["idx"])
        if idx not in found and member_matches(items_of(row), owner_of(row)):
            found.add(idx)
    return found


@dataclass
class CheckResult:
    counts: dict[str, int]
    """Links per class (every class present, 0 when none)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each stage."""
    slow: int = 0
    """Links that went through :func:`classify` (not decided by :data:`FAST_SQL`)."""

    @property
    def total(self) -> int:
        return sum(self.counts.values())


_BATCH = 100_000


def classify_duckdb(
    con: duckdb.DuckDBPyConnection,
    register: Register,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> CheckResult:
    """Table ``verdicts (idx, class, differs, notes)`` for every link of ``ext`` (after
    :func:`resolve_numbers`), with the counts."""
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    con.register("people", register.people)
    con.execute("CREATE OR REPLACE TABLE fast AS " + FAST_SQL)
    seconds["as written"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = int(con.execute("SELECT count(*) FROM fast WHERE class IS NULL").fetchone()[0])  # type: ignore[index]
    tick = progress("compare", slow) if progress is not None else None
    con.execute(f"CREATE OR REPLACE TABLE slow ({', '.join(f'{f.name} {_sqltype(f.type)}' for f in VERDICT_SCHEMA)})")  # fmt: skip
    suspects: dict[int, tuple[Verdict, str, str]] = {}
    reader = con.cursor()
    reader.register("people", register.people)
    result = reader.sql(SLOW_SQL).to_arrow_reader(_BATCH)
    for batch in result:
        rows = batch.to_pylist()
        done: list[tuple[int, Verdict]] = []
        for row, (idx, v, household) in zip(rows, judge_rows(rows), strict=True):
            if household is not None:
                suspects[idx] = (v, household, str(row["resident_code"]))
            else:
                done.append((idx, v))
        _insert(con, verdict_batch(done))
        if tick is not None:
            tick(len(rows))
    reader.close()
    seconds["compare"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tick = progress("household", len(suspects)) if progress is not None else None
    if suspects:
        con.register(
            "suspects_arrow",
            pa.table(
                {
                    "idx": pa.array(list(suspects), pa.int64()),
                    "household_id": pa.array([h for _v, h, _o in suspects.values()], pa.string()),
                    "owner": pa.array([o for _v, _h, o in suspects.values()], pa.string()),
                }
            ),
        )
        con.execute("CREATE OR REPLACE TABLE suspects AS SELECT * FROM suspects_arrow")
        con.unregister("suspects_arrow")
        matched: set[int] = set()
        reader = con.cursor()
        reader.register("people", register.people)
        for batch in reader.sql(MEMBERS_SQL + " ORDER BY s.idx").to_arrow_reader(_BATCH):
            matched |= upgrade(batch.to_pylist())
        reader.close()
        final = [
            (i, Verdict("household_member_number", v.differs, v.notes) if i in matched else v)
            for i, (v, _h, _o) in suspects.items()
        ]
        for start in range(0, len(final), _BATCH):
            _insert(con, verdict_batch(final[start : start + _BATCH]))
        if tick is not None:
            tick(len(suspects))
        con.execute("DROP TABLE suspects")
    seconds["household"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    con.execute(
        "CREATE OR REPLACE TABLE verdicts AS"
        " SELECT idx, class, '' AS differs, notes FROM fast WHERE class IS NOT NULL"
        " UNION ALL SELECT idx, class, differs, notes FROM slow"
    )
    con.execute("DROP TABLE fast")
    con.execute("DROP TABLE slow")
    con.unregister("people")
    result_ = _counts(con)
    seconds["collect"] = time.perf_counter() - t0
    result_.seconds = seconds
    result_.slow = slow
    return result_


def _sqltype(t: pa.DataType) -> str:
    return "BIGINT" if t == pa.int64() else "VARCHAR"


def _insert(con: duckdb.DuckDBPyConnection, table: pa.Table) -> None:
    if table.num_rows == 0:
        return
    con.register("batch_arrow", table)
    con.execute("INSERT INTO slow SELECT * FROM batch_arrow")
    con.unregister("batch_arrow")


def _counts(con: duckdb.DuckDBPyConnection) -> CheckResult:
    counts = dict.fromkeys(CLASSES, 0)
    for cls, n in con.execute("SELECT class, count(*) FROM verdicts GROUP BY class").fetchall():
        counts[str(cls)] = int(n)
    return CheckResult(counts)


# -- the report --------------------------------------------------------------------------------

REPORT_STEM = "report"


def _atomic_target(path: Path) -> tuple[int, Path]:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o600)
    return fd, Path(tmp)


def write_report(
    con: duckdb.DuckDBPyConnection,
    result: CheckResult,
    report_dir: Path,
    *,
    source: str = "",
    generated: dt.datetime | None = None,
) -> tuple[Path, Path]:
    """``report.csv`` (:data:`REPORT_COLUMNS`, in extract order) and ``report.html`` in
    `report_dir` (created if missing), each written to a temporary file and renamed."""
    report_dir.mkdir(exist_ok=True)
    csv_path = report_dir / f"{REPORT_STEM}.csv"
    html_path = report_dir / f"{REPORT_STEM}.html"
    fd, tmp = _atomic_target(csv_path)
    os.close(fd)
    try:
        con.execute(
            f"""
            COPY (
                SELECT e.record_id, v.class,
                       CASE WHEN e.num IS NOT NULL THEN '********' || right(e.num, 4) END
                         AS individual_number,
                       nullif(v.differs, '') AS differs, nullif(v.notes, '') AS notes
                FROM ext e JOIN verdicts v ON v.idx = e.idx ORDER BY e.idx
            ) TO {_sql_path(tmp)} (FORMAT csv, HEADER true, DELIMITER ',', QUOTE '"')
            """
        )
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, csv_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    page = render_html(result, source=source, generated=generated)
    fd, tmp = _atomic_target(html_path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, html_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return csv_path, html_path


def chart_png(counts: Mapping[str, int]) -> bytes:
    """A horizontal bar chart of the links per class (PNG; matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.6), dpi=100)
    ax = fig.add_subplot()
    labels = list(reversed(CLASSES))
    values = [counts.get(c, 0) for c in labels]
    colours = ["#2e7d32" if c in ("ok", "variant_only", "moved", "name_changed") else "#c62828" for c in labels]  # fmt: skip
    bars = ax.barh(labels, values, color=colours)
    ax.set_xscale("symlog", linthresh=1)
    ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=3, fontsize=8)
    ax.set_xlabel("links (log scale)")
    ax.set_title("general check: links per class")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def render_html(
    result: CheckResult, *, source: str = "", generated: dt.datetime | None = None
) -> str:
    """The HTML report: counts per class, the chart (inline PNG), what each class means."""
    when = (generated or dt.datetime.now().astimezone()).isoformat(timespec="seconds")
    total = result.total or 1
    rows = "\n".join(
        f"<tr><td><code>{c}</code></td><td class=n>{result.counts.get(c, 0):,}</td>"
        f"<td class=n>{100 * result.counts.get(c, 0) / total:.3f}%</td>"
        f"<td>{html.escape(CLASS_TEXT[c][0])}<br><span class=en>{html.escape(CLASS_TEXT[c][1])}</span></td></tr>"
        for c in CLASSES
    )
    png = base64.b64encode(chart_png(result.counts)).decode("ascii")
    return f"""<!doctype html>
<html lang="ja"><head><meta charset="utf-8">
<title>マイナンバー紐付け総点検 / General check of links</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #bbb; padding: .3em .6em; vertical-align: top; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
.en {{ color: #555; font-size: .9em; }}
</style></head><body>
<h1>マイナンバー紐付け総点検 <span class=en>General check of links</span></h1>
<p>点検した紐付け / links checked: <strong id="total">{result.total:,}</strong>
{f" — {html.escape(source)}" if source else ""} — {html.escape(when)}</p>
<table id="counts"><thead><tr><th>区分 / class</th><th>件数 / links</th><th>割合 / share</th>
<th>意味 / meaning</th></tr></thead>
<tbody>
{rows}
</tbody></table>
<p><img alt="links per class" src="data:image/png;base64,{png}"></p>
<p>個人番号は下4桁のみ表示しています。<span class=en>Individual numbers are shown by their last
four digits only.</span> 一致の判定は docs/normalisation.md の正規化に従います（5情報: 氏名・カナ氏名・生年月日・性別・住所）。
<span class=en>Items are compared after the normalisation of docs/normalisation.md.</span></p>
<p><code>differs</code>: 番号の持ち主の現在の登録と異なる項目 / the items that differ from the
owner's current registration. <code>notes</code>: {", ".join(f"<code>{n}</code>" for n in NOTES)}.</p>
</body></html>
"""


# -- one call ----------------------------------------------------------------------------------


def check_links(
    register: Register | Callable[[], Register],
    extract: Path,
    report_dir: Path | None,
    *,
    engine: str = "duckdb",
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
    memory_limit: str | None = None,
) -> CheckResult:
    """Check the links of `extract` against `register` and write the report into `report_dir`
    (``None``: no report). Nothing is written when the extract is refused. `register` may be
    a function that builds it: it is called only once the extract has passed its checks."""
    if engine not in ("duckdb", "spark"):
        raise ValueError(f"unknown engine {engine!r}")
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="mynumber-check-") as tmp:
        workdir = Path(tmp)
        con = open_connection(workdir, memory_limit)
        try:
            t0 = time.perf_counter()
            load_extract(con, extract, workdir, progress)
            seconds["read"] = time.perf_counter() - t0
            if not isinstance(register, Register):
                t0 = time.perf_counter()
                register = register()
                seconds["register"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            resolve_numbers(con, register, progress)
            seconds["resolve"] = time.perf_counter() - t0
            if engine == "spark":
                from mynumber.agency.checks_spark import classify_spark

                result = classify_spark(con, register, workdir, progress)
            else:
                result = classify_duckdb(con, register, progress)
            result.seconds = {**seconds, **result.seconds}
            if report_dir is not None:
                t0 = time.perf_counter()
                write_report(con, result, report_dir, source=extract.name)
                result.seconds["report"] = time.perf_counter() - t0
        finally:
            con.close()
    return result
